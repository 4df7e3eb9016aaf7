-- Hostile review of issue 11's changes (attack3): each test is a reproducer of a weakness
-- found by attacking error.clean/new, the flow's hidden secrets, the flow's misuse errors,
-- the key set and the loopback listener. Offline where the attack needs no server: a
-- `transport` function stands in for the network (the seam the README documents).
local auth0 = require "auth0"
local flow = require "auth0.flow"
local errors = require "auth0.error"

local core = auth0.core

local function offline(body, status)
  return auth0.new { base_url = "https://tenant.example", client_id = "c", retries = 0,
    transport = function() return { status = status or 200, body = body or "{}" } end }
end

describe("error text (attack3)", function()
  it("clean drops the bidi marks LRM, RLM and ALM (they reorder text on screen)", function()
    for _, mark in ipairs { "\226\128\142", "\226\128\143", "\216\156" } do
      local s = errors.clean("user" .. mark .. "name")
      assert.is_nil(s:find(mark, 1, true))
      assert.equal("user name", s)
      assert.is_nil(tostring(errors.new("x", "a" .. mark .. "b")):find(mark, 1, true))
    end
  end)

  it("clean drops invisible characters: zero-width, word joiners, BOM and tag characters", function()
    for _, ch in ipairs { "\226\128\139", "\226\128\140", "\226\128\141", "\226\129\160", "\226\129\164",
                          "\239\187\191", "\243\160\128\129", "\243\160\129\191" } do
      assert.equal("username", errors.clean("user" .. ch .. "name"))
      assert.equal("x: ab", tostring(errors.new("x", "a" .. ch .. "b")))
    end
    -- neighbours that are visible stay: U+200A (hair space), U+2065 (unassigned), U+E0080
    for _, ch in ipairs { "\226\128\138", "\243\160\130\128" } do
      assert.equal("user" .. ch .. "name", errors.clean("user" .. ch .. "name"))
    end
  end)

  it("error.new bounds a huge message (a transport's 1 MB text) and keeps it valid UTF-8", function()
    local huge = ("\195\169"):rep(512 * 1024)   -- 1 MiB of valid two-byte characters
    local c = auth0.new { base_url = "https://tenant.example", client_id = "c", retries = 0,
      transport = function() return nil, "network", huge end }
    local r, err = c:passwordless_start { connection = "email", email = "a@example.com" }
    assert.is_nil(r)
    assert.is_true(#err.message <= 1024 + 3, "message of " .. #err.message .. " bytes")
    assert.is_true(#tostring(err) <= 2048)
    assert.is_true(core.utf8_valid(err.message))
    c:close()
    local e = errors.new(("c"):rep(1e6), "m")
    assert.is_true(#e.code <= 1024 + 3, "code of " .. #e.code .. " bytes")
  end)

  it("clean and new stay linear on 1 MB of hostile text", function()
    for _, s in ipairs { ("\27[31m"):rep(200000), ("\226\128\174"):rep(333333), ("\240"):rep(1e6),
        ("\195\169"):rep(500000), ("%c"):rep(500000), ("\0"):rep(1e6) } do
      local t = os.clock()
      local a, e = errors.clean(s), errors.new("c", s)
      assert.is_true(os.clock() - t < 2, "slow")
      assert.is_true(#a <= 303 and core.utf8_valid(a) and not a:find("%c"))
      assert.is_true(core.utf8_valid(e.message) and not e.message:find("%c"))
    end
  end)
end)

describe("flow secrets (attack3)", function()
  -- every string reachable from the flow by pairs(), the client aside
  local function strings(f)
    local seen, out = {}, {}
    local function walk(t, path)
      if seen[t] then return end
      seen[t] = true
      for k, v in pairs(t) do
        if k ~= "_client" then
          if type(v) == "string" then out[v] = path .. "." .. tostring(k) end
          if type(v) == "table" then walk(v, path .. "." .. tostring(k)) end
        end
      end
    end
    walk(f, "f")
    return out
  end

  it("a link flow with a loopback listener shows no link state to pairs() or on_state", function()
    local c = offline('{"_id":"x","email":"a@example.com","email_verified":false}')
    local lb = assert(auth0.loopback { port = 0 })
    local from_callback = {}
    local f = flow.login(c, { connection = "email", email = "a@example.com", send = "link", loopback = lb,
      on_state = function(fl) from_callback[#from_callback + 1] = strings(fl) end })
    for _ = 1, 50 do
      c:poll(0)
      if f.state == "awaiting_link" then break end
    end
    assert.equal("awaiting_link", f.state)
    local link = f._link   -- reachable by name only, as the flow's own code reads it
    assert.is_string(link.state)
    for _, seen in ipairs(from_callback) do
      for _, secret in ipairs { link.state, link.nonce, link.code_verifier } do
        assert.is_nil(seen[secret], "reachable at " .. tostring(seen[secret]))
      end
    end
    local seen = strings(f)
    for _, secret in ipairs { link.state, link.nonce, link.code_verifier } do
      assert.is_nil(seen[secret], "reachable at " .. tostring(seen[secret]))
    end
    f:cancel()
    lb:close()
    c:close()
  end)
end)

describe("flow methods on a bad self (attack3)", function()
  local c, f
  setup(function()
    c = offline()
    f = flow.login(c, { connection = "email", email = "a@example.com" })
  end)
  teardown(function() f:cancel(); c:close() end)

  -- f.m(x) for f:m(x) is the everyday slip: Lua's own words for self, at the caller
  local methods = { "submit_code", "resend_code", "choose_authenticator", "enroll", "submit_mfa_code",
    "submit_recovery_code", "cancel", "serialize", "submit_link", "submit_callback", "resend_link" }
  for _, m in ipairs(methods) do
    for _, bad in ipairs { "nil", "table", "string" } do
      it(m .. " on a " .. bad, function()
        local self_value = bad == "table" and {} or bad == "string" and "123456" or nil
        local ok, err = pcall(f[m], self_value, "123456")
        assert.is_false(ok)
        assert.equal(("calling '%s' on bad self (auth0.Flow expected, got %s)"):format(m, bad), err)
      end)
    end
  end
end)

describe("flow side table (attack3)", function()
  it("abandoned link flows with an attached loopback listener are collected (LuaJIT's weak keys too)", function()
    local probe = setmetatable({}, { __mode = "k" })
    for _ = 1, 3 do
      local c = offline('{"_id":"x","email":"a@example.com","email_verified":false}')
      local lb = assert(auth0.loopback { port = 0 })
      local f = flow.login(c, { connection = "email", email = "a@example.com", send = "link", loopback = lb })
      for _ = 1, 50 do
        c:poll(0)
        if f.state == "awaiting_link" then break end
      end
      assert.equal("awaiting_link", f.state)
      assert.equal(lb, f._loopback)
      probe[f] = true
    end
    for _ = 1, 4 do collectgarbage() end
    assert.is_nil(next(probe))
  end)
end)

describe("loopback methods on a bad self (attack3)", function()
  -- lb.step() for lb:step() raised 'attempt to index a nil value (local 'self')', and
  -- reopen on a plain table opened a listening socket before failing
  for _, m in ipairs { "step", "attach", "close", "reopen" } do
    for _, bad in ipairs { "nil", "table" } do
      it(m .. " on a " .. bad, function()
        local lb = assert(auth0.loopback { port = 0 })
        local ok, err = pcall(lb[m], bad == "table" and { state = "s", path = "/x" } or nil)
        lb:close()
        assert.is_false(ok)
        assert.equal(("calling '%s' on bad self (auth0.Loopback expected, got %s)"):format(m, bad), err)
      end)
    end
  end
end)

describe("the command's terminal text (attack3)", function()
  it("term.clean shows bidi controls and line separators as \\uXXXX (a user's name reordered the line)", function()
    local term = require "auth0.cli.term"
    local s = term.clean("name\226\128\174gpj.exe\226\128\168x\226\129\167y\226\128\143z\216\156w \195\169\226\130\172")
    assert.equal("name\\u202egpj.exe\\u2028x\\u2067y\\u200fz\\u061cw \195\169\226\130\172", s)
    assert.equal("a\\027[2J\\u0085b", term.clean("a\27[2J\194\133b"))
    -- invisible characters are shown too: zero-width space and joiner, word joiner, BOM, a tag
    assert.equal("a\\u200bb\\u200dc\\u2060d\\ufeffe\\U000e0041f",
      term.clean("a\226\128\139b\226\128\141c\226\129\160d\239\187\191e\243\160\129\129f"))
  end)
end)

describe("the loopback listener's state in logs (attack3)", function()
  it("a listener raised from a callback (or in a table) shows no state to on_log, nor to pairs()", function()
    local logged, state = {}, nil
    local c = auth0.new { base_url = "https://tenant.example", client_id = "c", retries = 0,
      transport = function() return { status = 200, body = '{"_id":"x","email":"a@example.com","email_verified":false}' } end,
      on_log = function(_, msg, fields)
        logged[#logged + 1] = tostring(msg)
        for _, v in pairs(fields) do logged[#logged + 1] = tostring(v) end
      end }
    local lb = assert(auth0.loopback { port = 0 })
    for _, raised in ipairs { function() return lb end, function() return { listener = lb } end } do
      c:passwordless_start({ connection = "email", email = "a@example.com", send = "link",
        redirect_uri = lb.redirect_uri }, function(_, _, link)
          lb.state, state = link.state, link.state
          error(raised())
        end)
      for _ = 1, 5 do c:poll(0) end
    end
    assert.is_string(state)
    assert.equal(state, lb.state)
    assert.is_true(#logged > 2)
    for _, l in ipairs(logged) do assert.is_nil(l:find(state, 1, true), l) end
    for k, v in pairs(lb) do assert.is_true(v ~= state, "pairs() found it at " .. tostring(k)) end
    lb:close()
    c:close()
  end)
end)

describe("error fields from headers (attack3)", function()
  local function answer(location)
    local c = auth0.new { base_url = "https://tenant.example", client_id = "c", retries = 0,
      transport = function() return { status = 302, body = "", headers = { location = location } } end }
    local _, err = c:passwordless_start { connection = "email", email = "a@example.com" }
    c:close()
    return err
  end

  it("err.location is kept only when it is one URL (no control character, no space, bounded)", function()
    assert.equal("https://tenant.example/next?a=1", answer("https://tenant.example/next?a=1").location)
    for _, bad in ipairs { "http://x/\r\nSet-Cookie: a=b", "http://x/\27[2J", "http://x/ y", ("x"):rep(9000) } do
      local err = answer(bad)
      assert.equal(302, err.status)
      assert.is_nil(err.location)
    end
  end)
end)

describe("flow:enroll misuse (attack3)", function()
  it("names 'enroll', the method called, not the request it makes", function()
    local c = offline()
    local f = flow.resume(c, { version = 1, state = "awaiting_mfa_choice", mfa_token = "m",
      authenticators = {}, enroll_required = true })
    for _, case in ipairs {
      { { authenticator_types = 0 / 0 }, "authenticator_types must be a non-empty list" },
      { { authenticator_types = { "sms" } }, 'authenticator_types: unknown type "sms"' },
      { { authenticator_types = { "oob" } }, "oob enrollment needs oob_channels" },
    } do
      local ok, err = pcall(f.enroll, f, case[1])
      assert.is_false(ok)
      assert.equal("bad argument #1 to 'enroll' (" .. case[2] .. ")", err)
      assert.equal("awaiting_mfa_choice", f.state)
    end
    -- at the caller's line, as every misuse
    local ok, err = pcall(function() f:enroll { authenticator_types = { "sms" } } end)
    assert.is_false(ok)
    assert.matches("^spec/attack3_spec%.lua:%d+: bad argument #1 to 'enroll'", err)
    f:cancel()
    c:close()
  end)
end)

-- Findings of attack3 in the scheduler's log rendering and the transport seam, fixed by the
-- integrator in lua/auth0/sched.lua and lua/auth0/client.lua.
describe("log rendering and transport answers (attack3, integrator's fixes)", function()
  local function logging_client(extra)
    local logs = {}
    local o = { base_url = "https://tenant.example", client_id = "c", retries = 0,
      transport = function() return { status = 200, body = '{"a":1}' } end,
      on_log = function(_, msg, fields)
        logs[#logs + 1] = tostring(msg)
        for k, v in pairs(fields) do
          assert.is_true(type(v) ~= "table", "a table reached on_log as field " .. tostring(k))
          logs[#logs + 1] = tostring(v)
        end
      end }
    for k, v in pairs(extra or {}) do o[k] = v end
    return auth0.new(o), logs
  end

  it("a table raised from a callback shows no link state or authorization code", function()
    local c, logs = logging_client()
    c:passwordless_start({ connection = "email", email = "a@example.com" }, function()
      error({ link = { state = "STATE-SECRET-1" }, params = { code = "AUTHCODE-SECRET-2", state = "STATE-SECRET-1" } })
    end)
    while c:pending() > 0 do c:poll(10) end
    local all = table.concat(logs, "\n")
    assert.truthy(all:find("(secret)", 1, true))
    assert.is_nil(all:find("STATE-SECRET-1", 1, true))
    assert.is_nil(all:find("AUTHCODE-SECRET-2", 1, true))
  end)

  it("an object with its own tostring (a flow) raised from a callback is shown by it", function()
    local c, logs = logging_client()
    local obj = setmetatable({ hidden = "FIELD-SECRET-3" }, { __tostring = function() return "my.Object" end })
    c:passwordless_start({ connection = "email", email = "a@example.com" }, function() error({ obj }) end)
    while c:pending() > 0 do c:poll(10) end
    local all = table.concat(logs, "\n")
    assert.truthy(all:find("my.Object", 1, true))
    assert.is_nil(all:find("FIELD-SECRET-3", 1, true))
  end)

  it("a transport's status outside 100..599, fractional or NaN is bad_response", function()
    for _, st in ipairs { 0 / 0, 1e308, -1, 99, 600, 200.5, math.huge } do
      local c = auth0.new { base_url = "https://tenant.example", client_id = "c", retries = 0,
        transport = function() return { status = st, body = "{}" } end }
      local r, err = c:passwordless_start { connection = "email", email = "a@example.com" }
      assert.is_nil(r)
      assert.equal("bad_response", err.code, tostring(st))
      assert.equal("transport returned an invalid HTTP status", err.message)
    end
  end)
end)
