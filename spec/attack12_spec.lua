-- attack12: client:fetch's fields as key, value pairs after the checker (csrc/l_call.c
-- check_fields). Pairs carry strings only; a table-valued field (authParams: an object)
-- given as a pair was taken as a string and then read from the fields table by
-- encode_fields: lua_next on nil (no table, or a table without it), a segfault.
local auth0 = require "auth0"

describe("attack12: fields as key, value pairs", function()
  local c
  before_each(function()
    c = auth0.new { base_url = "http://127.0.0.1:9", client_id = "emu-native", retries = 0, timeout = 1 }
  end)
  after_each(function() c:close() end)

  it("refuses an object field given as a pair, with or without a fields table", function()
    local core = c._core
    for _, t in ipairs({ false, {}, { phone_number = "+15550100" } }) do
      local ok, err = pcall(core.fetch, core, "passwordless_start", t or nil, nil, nil, "client_id", "x",
        "connection", "email", "send", "link", "email", "a@b.co", "authParams", "zz")
      assert.is_false(ok)
      assert.matches("field 'authParams' must be in the fields table", err, 1, true)
    end
    -- a table value as a pair too (the pairs are strings only)
    local ok, err = pcall(core.fetch, core, "passwordless_start", nil, nil, nil, "authParams", { scope = "openid" })
    assert.is_false(ok)
    assert.matches("field 'authParams' must be in the fields table", err, 1, true)
  end)

  it("refuses an unknown key whose value is nil (absent, but still a misspelt name)", function()
    local core = c._core
    local ok, err = pcall(core.fetch, core, "passwordless_start", nil, nil, nil, "client_id", "x",
      "connection", "email", "send", "code", "email", "a@b.co", "phone_numbr", nil)
    assert.is_false(ok)
    assert.matches("attack12_spec.lua:%d+: bad argument #1 to 'passwordless_start' %(unknown field 'phone_numbr'%)", err)
    ok, err = pcall(core.fetch, core, "passwordless_start", nil, nil, nil, 1, nil)
    assert.is_false(ok)
    assert.matches("field names must be strings", err, 1, true)
    -- an odd number of slots names the caller's line too (as every other misuse)
    ok, err = pcall(core.fetch, core, "passwordless_start", nil, nil, nil, "client_id")
    assert.is_false(ok)
    assert.matches("attack12_spec.lua:%d+: fields as key, value pairs: a key without its value", err)
  end)

  it("a field given both in the table and as a pair raises on the callback path too", function()
    -- the blocking path's C check says "given twice"; the callback path merges in Lua first
    local at = require("auth0.check").at("passwordless_start")
    local shape = require "auth0.shape"
    local ok, err = pcall(c._call, c, at, "passwordless_start", { email = "a@b.co" }, { fn = "passwordless_start" },
      function() end, shape.start, "client_id", "x", "connection", "email", "email", "b@c.co")
    assert.is_false(ok)
    assert.matches("field 'email' given twice", err, 1, true)
    assert.equal(0, c:pending())
  end)
end)

-- The bodies the pairs path sends (the blocking first attempt) and the table path sends
-- (client.lua's all_fields: a callback; a resend after a failed connection too) are the same
-- bytes, for a link start with auth_params (a table field and pairs at once) and values at
-- a0_plain_ascii's word edges or needing a JSON escape.
describe("attack12: pairs and table bodies", function()
  local raw = require "spec.support.rawserver"
  local ok200 = raw.http("200 OK", { "Content-Type: application/json" }, '{"_id":"x","email":"a@b.co"}')

  it("sends identical bodies blocking (pairs) and with a callback (a table)", function()
    local conns = { "abc", "abcd", "abcdefgh", "abcdefghi", "h\195\169llo", "del\127", "q\"uote", "back\\slash7",
      "tab\tconn" }
    local answers = {}
    for _ = 1, #conns do
      for _, a in ipairs({ ok200, ok200 }) do answers[#answers + 1] = a end
    end
    local base, seen = raw.serve(answers, "attack12")
    local c = auth0.new { base_url = base, client_id = "emu-native", retries = 2, timeout = 10 }
    for _, conn in ipairs(conns) do
      local p = { connection = conn, email = "a@b.co", send = "link", auth_params = { scope = "openid", state = "s\"1" } }
      assert(c:passwordless_start(p))   -- pairs
      local got
      assert(c:passwordless_start(p, function(v, err) got = v or err end))
      while got == nil do assert(c:poll(20)) end
      assert.equal("x", got._id)
    end
    c:close()
    local s = seen()
    assert.equal(2 * #conns, #s)
    for i = 1, #conns do
      local bodies = {}
      for j = 1, 2 do bodies[j] = s[2 * (i - 1) + j]:match("\n\n(.*)$") end
      assert.equal(bodies[1], bodies[2])
      local d = require("cjson").decode(bodies[1])
      assert.equal(conns[i], d.connection)
      assert.same({ scope = "openid", state = "s\"1" }, d.authParams)
    end
  end)
end)
