-- core:fetch and core:last_headers (csrc/l_client.c): the blocking call path gets a 2xx
-- answer without its header table, and asks for the headers only when it needs them (a log
-- line, an error). What a caller sees must not change: every error from a 2xx answer still
-- carries the answer's request id and rate limits. Over real HTTPS against the emulator.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"

local server

local function client(opts)
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return auth0.new(o)
end

local function ctl(method, path, body)
  local r, status = emu.control(method, path, body)
  assert(status == 200, "control " .. path .. " answered " .. tostring(status))
  return r
end

local START = { client_id = "emu-native", connection = "email", email = "h@example.com", send = "code" }

describe("core:fetch and core:last_headers", function()
  local c
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    c = client()
  end)
  after_each(function() c:close() end)

  it("a 2xx answer comes as status and body only; its headers until the next call", function()
    local core = c._core
    assert.is_nil(core:last_headers())
    local n = select("#", core:fetch("passwordless_start", START))
    assert.equal(2, n)
    local status, body = core:fetch("passwordless_start", START)
    assert.equal(200, status)
    assert.matches('"email":"h@example.com"', body, 1, true)
    local h = core:last_headers()
    assert.is_string(h.request_id)
    assert.matches("^application/json", h.content_type)
    assert.is_string(h.ratelimit_limit)
    assert.is_string(h.ratelimit_remaining)
    assert.is_string(h.ratelimit_reset)
    assert.is_nil(h.location)
    -- the same headers request gives as its third result
    local _, _, full = core:request("passwordless_start", START)
    assert.same({ "content_type", "ratelimit_limit", "ratelimit_remaining", "ratelimit_reset", "request_id" },
      (function() local k = {} for name in pairs(full) do k[#k + 1] = name end table.sort(k) return k end)())
    -- request is a call too: the headers of the fetch before it are gone
    assert.is_nil(core:last_headers())
  end)

  it("any other answer comes as request's (status, body, headers)", function()
    local core = c._core
    assert(core:fetch("passwordless_start", START))
    local status, body, h = core:fetch("passwordless_login", { client_id = "emu-native", username = "h@example.com",
      realm = "email", otp = "000000", scope = "openid" })
    assert.equal(403, status)
    assert.matches("invalid_grant", body, 1, true)
    assert.is_string(h.request_id)
    assert.is_nil(core:last_headers())   -- only a 2xx answer of fetch leaves them
  end)

  it("a start (callback path) ends the last fetch's headers too", function()
    local core = c._core
    assert(core:fetch("passwordless_start", START))
    assert.is_table(core:last_headers())
    local req = core:start("passwordless_start", START)
    assert.is_nil(core:last_headers())
    req:cancel()
  end)

  it("errors from a 2xx answer keep its request id, as the callback path's do", function()
    ctl("POST", "/faults", { rules = { { kind = "invalid_json", path = "/passwordless/start" } } })
    local p = { connection = "email", email = "h@example.com" }
    local v, err = c:passwordless_start(p)
    assert.is_nil(v)
    assert.equal("bad_response", err.code)
    assert.equal(200, err.status)
    assert.is_string(err.request_id)
    local got
    c:passwordless_start(p, function(r, e) got = { r, e } end)
    while not got do c:poll(50) end
    assert.is_nil(got[1])
    assert.equal("bad_response", got[2].code)
    assert.is_string(got[2].request_id)
    assert.not_equal(err.request_id, got[2].request_id)
  end)

  it("a shape failure keeps its headers; on_log sees each answer's request id", function()
    local lines = {}
    local c2 = client { on_log = function(level, msg, f) lines[#lines + 1] = { level, msg, f } end }
    ctl("POST", "/faults", { rules = { { kind = "wrong_shape", path = "/oauth/token", variant = "array" } } })
    assert(c2:passwordless_start { connection = "email", email = "h@example.com" })
    local msgs = ctl("GET", "/outbox?to=" .. auth0.core.pct_escape("h@example.com")).messages
    local _, err = c2:passwordless_login { realm = "email", username = "h@example.com", otp = msgs[#msgs].code }
    assert.equal("bad_response", err.code)
    assert.is_string(err.request_id)
    local ids = 0
    for _, l in ipairs(lines) do
      if l[2] == "response" then
        assert.is_string(l[3].request_id)
        ids = ids + 1
      end
    end
    assert.equal(2, ids)
    c2:close()
  end)

  it("a method refuses any self but a client: a request handle, another client's metatable in a table", function()
    local core = c._core
    local methods = getmetatable(core).__index
    local req = core:start("passwordless_start", START)
    for _, bad in ipairs { req, setmetatable({}, getmetatable(core)), io.stdout, "x" } do
      local ok, err = pcall(methods.fetch, bad, "passwordless_start", START)
      assert.is_false(ok)
      assert.matches("auth0.Client expected", err, 1, true)
      assert.is_false((pcall(methods.stats, bad)))
    end
    req:cancel()
  end)
end)
