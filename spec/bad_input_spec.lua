-- The bad-input catalogue (issue #5): every hostile value through every public parameter.
-- Each call must raise an error naming the parameter, or return nil, err; never crash, and
-- never send a request carrying a value it rejected.
local auth0 = require "auth0"

local MB = ("7"):rep(1024 * 1024)
local VALUES = {
  { "a table", {} }, { "a number", 42 }, { "a boolean", true }, { "a function", print },
  { "an empty string", "" }, { "a 1 MB string", MB }, { "a NUL byte", "12\0 34" },
  { "CR/LF", "a\r\nX-Injected: 1" }, { "invalid UTF-8", "\xff\xfe\xfd" }, { "a huge number", 1e308 },
  { "a negative number", -1 }, { "NaN", 0 / 0 }, { "a quoted email", "\"quoted\"@example.com" },
  { "a unicode domain", "u@exämple.com" }, { "a huge phone", "+1234567890123456789" },
}

-- Every call receives the hostile value v in one parameter; the rest is valid.
local CALLS = {
  { "passwordless_start", "connection", function(c, v) return c:passwordless_start { connection = v, email = "a@b.co" } end },
  { "passwordless_start", "email", function(c, v) return c:passwordless_start { connection = "email", email = v } end },
  { "passwordless_start", "phone_number",
    function(c, v) return c:passwordless_start { connection = "sms", phone_number = v } end },
  { "passwordless_start", "send", function(c, v) return c:passwordless_start { connection = "email", email = "a@b.co", send = v } end },
  { "passwordless_start", "auth_params", function(c, v)
    return c:passwordless_start { connection = "email", email = "a@b.co", send = "link", auth_params = v } end },
  { "passwordless_start", "language", function(c, v)
    return c:passwordless_start { connection = "email", email = "a@b.co", language = v } end },
  { "passwordless_login", "realm", function(c, v) return c:passwordless_login { realm = v, username = "a@b.co", otp = "1" } end },
  { "passwordless_login", "username", function(c, v)
    return c:passwordless_login { realm = "email", username = v, otp = "1" } end },
  { "passwordless_login", "otp", function(c, v) return c:passwordless_login { realm = "email", username = "a@b.co", otp = v } end },
  { "passwordless_login", "scope", function(c, v)
    return c:passwordless_login { realm = "email", username = "a@b.co", otp = "1", scope = v } end },
  { "refresh", "refresh_token", function(c, v) return c:refresh { refresh_token = v } end },
  { "revoke", "refresh_token", function(c, v) return c:revoke(v) end },
  { "userinfo", "access_token", function(c, v) return c:userinfo(v) end },
  { "verify_id_token", "id_token", function(c, v) return c:verify_id_token(v) end },
  { "mfa_authenticators", "token", function(c, v) return c:mfa_authenticators(v) end },
  { "mfa_delete_authenticator", "authenticator_id", function(c, v) return c:mfa_delete_authenticator("tok", v) end },
  { "mfa_associate", "token", function(c, v) return c:mfa_associate { token = v, authenticator_types = { "otp" } } end },
  { "mfa_associate", "authenticator_types", function(c, v) return c:mfa_associate { token = "t", authenticator_types = v } end },
  { "mfa_associate", "oob_channels", function(c, v)
    return c:mfa_associate { token = "t", authenticator_types = { "oob" }, oob_channels = v } end },
  { "mfa_associate", "phone_number", function(c, v)
    return c:mfa_associate { token = "t", authenticator_types = { "oob" }, oob_channels = { "sms" }, phone_number = v } end },
  { "mfa_challenge", "mfa_token", function(c, v) return c:mfa_challenge { mfa_token = v } end },
  { "mfa_challenge", "challenge_type", function(c, v) return c:mfa_challenge { mfa_token = "m", challenge_type = v } end },
  { "mfa_challenge", "authenticator_id", function(c, v) return c:mfa_challenge { mfa_token = "m", authenticator_id = v } end },
  { "mfa_verify", "otp", function(c, v) return c:mfa_verify { mfa_token = "m", otp = v } end },
  { "mfa_verify", "oob_code", function(c, v) return c:mfa_verify { mfa_token = "m", oob_code = v } end },
  { "mfa_verify", "binding_code", function(c, v) return c:mfa_verify { mfa_token = "m", oob_code = "o", binding_code = v } end },
  { "mfa_verify", "recovery_code", function(c, v) return c:mfa_verify { mfa_token = "m", recovery_code = v } end },
  { "mfa_poll", "interval", function(c, v) return c:mfa_poll { mfa_token = "m", oob_code = "o", interval = v, timeout = 1 } end },
  { "mfa_poll", "timeout", function(c, v) return c:mfa_poll { mfa_token = "m", oob_code = "o", interval = 1, timeout = v } end },
}

-- A transport that records what would go on the wire and answers like a server rejecting it.
local function recorder()
  local sent = {}
  local c = auth0.new { base_url = "https://tenant.test", client_id = "cid", retries = 0, sleep = function() end,
    transport = function(req)
      local wire = req.method .. " " .. req.url .. "\n" .. (req.body or "")
      for k, v in pairs(req.headers) do wire = wire .. "\n" .. k .. ": " .. v end
      sent[#sent + 1] = wire
      return { status = 400, headers = {}, body = '{"error":"invalid_request","error_description":"rejected"}' }
    end }
  return c, sent
end

-- The names a message may use for a parameter (the body field of auth_params is authParams).
local ALIASES = { auth_params = { "auth_params", "authParams" } }

describe("bad input catalogue", function()
  for _, call in ipairs(CALLS) do
    local method, param, fn = call[1], call[2], call[3]
    for _, val in ipairs(VALUES) do
      it(method .. " " .. param .. " = " .. val[1], function()
        local c, sent = recorder()
        local ok, r, err = pcall(fn, c, val[2])
        if not ok then
          assert.is_string(r)
          local named = false
          for _, n in ipairs(ALIASES[param] or { param }) do named = named or r:find(n, 1, true) ~= nil end
          assert.is_true(named, "message does not name " .. param .. ": " .. r)
          assert.is_true(#r < 400, "message too long")
          assert.equal(0, #sent, "a request was sent although the call raised")
        else
          -- accepted as well-formed: the answer is a clean nil, err (the fake server rejects)
          assert.is_nil(r)
          assert.is_true(auth0.error.is(err), "not an error object")
          if type(val[2]) == "string" and #val[2] > 0 then
            for _, wire in ipairs(sent) do
              assert.is_nil(wire:find("\r\nX-Injected", 1, true), "header injection reached the wire")
              assert.is_nil(wire:find("\0", 1, true), "NUL byte reached the wire")
            end
          end
        end
        c:close()
      end)
    end
  end

  local NEW_CASES = {
    { "base_url with user:password@", { base_url = "https://u:p@h.test", client_id = "x" }, "base_url" },
    { "base_url with a path", { base_url = "https://h.test/path", client_id = "x" }, "base_url" },
    { "base_url with a query", { base_url = "https://h.test?x=1", client_id = "x" }, "base_url" },
    { "base_url with CRLF", { base_url = "https://h.test\r\n", client_id = "x" }, "base_url" },
    { "base_url ftp", { base_url = "ftp://h.test", client_id = "x" }, "base_url" },
    { "base_url bad port", { base_url = "https://h.test:99999", client_id = "x" }, "base_url" },
    { "http remote", { base_url = "http://h.test", client_id = "x" }, "http://" },
    { "domain that is a URL", { domain = "https://h.test", client_id = "x" }, "domain" },
    { "unicode domain", { domain = "exämple.com/x", client_id = "x" }, "domain" },
    { "negative timeout", { domain = "h.test", client_id = "x", timeout = -1 }, "timeout" },
    { "huge timeout", { domain = "h.test", client_id = "x", timeout = 1e9 }, "timeout" },
    { "NaN timeout", { domain = "h.test", client_id = "x", timeout = 0 / 0 }, "timeout" },
    { "string timeout", { domain = "h.test", client_id = "x", timeout = "10" }, "timeout" },
    { "zero connect_timeout", { domain = "h.test", client_id = "x", connect_timeout = 0 }, "connect_timeout" },
    { "client_id number", { domain = "h.test", client_id = 7 }, "client_id" },
    { "client_id empty", { domain = "h.test", client_id = "" }, "client_id" },
    { "secret table", { domain = "h.test", client_id = "x", client_secret = {} }, "client_secret" },
    { "language CRLF", { domain = "h.test", client_id = "x", language = "en\r\nA: b" }, "language" },
    { "retries 1.5", { domain = "h.test", client_id = "x", retries = 1.5 }, "retries" },
    { "retries 100", { domain = "h.test", client_id = "x", retries = 100 }, "retries" },
    { "on_log string", { domain = "h.test", client_id = "x", on_log = "print" }, "on_log" },
    { "transport number", { domain = "h.test", client_id = "x", transport = 1 }, "transport" },
    { "insecure remote", { domain = "h.test", client_id = "x", insecure_skip_verify = true }, "insecure_skip_verify" },
    { "unknown option", { domain = "h.test", client_id = "x", verify = false }, "verify" },
    { "not a table", "h.test", "options table" },
  }
  for _, case in ipairs(NEW_CASES) do
    it("auth0.new rejects " .. case[1], function()
      local ok, msg = pcall(auth0.new, case[2])
      assert.is_false(ok)
      assert.is_truthy(msg:find(case[3], 1, true), msg)
    end)
  end

  it("otp helpers reject hostile secrets without echoing them", function()
    for _, v in ipairs({ "", "!!!!", MB, "ABC\0DEF", 42 }) do
      local ok, msg = pcall(auth0.totp, v)
      assert.is_false(ok)
      assert.is_true(#msg < 400)
    end
    for _, v in ipairs({ "", "http://x", "otpauth://", "otpauth://totp/a?secret=%%%", MB }) do
      local r, err = auth0.parse_otpauth(v)
      assert.is_nil(r)
      assert.is_true(auth0.error.is(err))
      assert.equal("invalid_otpauth", err.code)
    end
  end)

  it("the C core reads user tables raw: an __index never supplies a value", function()
    -- (the Lua front reads its arguments with normal indexing and hands C a plain table;
    -- the core is callable directly, so it must not run Lua code while it holds pointers)
    local c = recorder()
    local ok2, msg2 = pcall(c._core.build, c._core, "mfa_associate",
      setmetatable({}, { __index = function(_, k) if k == "authenticator_types" then return "otpotp" end end }),
      { bearer = "t" })
    assert.is_false(ok2)
    assert.matches("missing required field 'authenticator_types'", msg2)
    local ok3, msg3 = pcall(c._core.build, c._core, "userinfo", nil,
      setmetatable({}, { __index = function() return "tok" end }))
    assert.is_false(ok3)
    assert.matches("a bearer token is required", msg3)
  end)

  it("rejects lists with holes or string keys before anything is sent", function()
    local c, sent = recorder()
    for _, list in ipairs({ { "otp", nil, "anything" }, { ["1"] = "otp" }, { "otp", extra = "x" } }) do
      local ok, msg = pcall(c.mfa_associate, c, { token = "t", authenticator_types = list })
      assert.is_false(ok)
      assert.matches("authenticator_types", msg)
    end
    assert.equal(0, #sent)
  end)

  it("a closed client raises on use", function()
    local c = recorder()
    c:close()
    c:close()
    local ok, msg = pcall(c.passwordless_start, c, { connection = "email", email = "a@b.co" })
    assert.is_false(ok)
    assert.matches("closed auth0.Client", msg)
    assert.equal("auth0.Client (closed)", tostring(c))
  end)
end)
