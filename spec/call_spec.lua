-- The C core's request building (csrc/l_call.c, csrc/a0_body.c): every wire invariant is
-- checked once, in C, and raised in luaL_argerror's form naming the public parameter; the
-- caps and the header map are exported by auth0.core; endpoints a client registers (the
-- emulator's control routes) stay out of the shipped table.
local core = require "auth0.core"
local emu = require "spec.support.emulator"
local control = require "auth0.emulator.client"

local function new_core()
  return core.client { base_url = "https://tenant.test", headers = { "Accept: application/json" } }
end

-- The message of the error fn(...) raises (fails when it does not raise), without its position:
-- a misuse of a field or option names the first Lua caller outside the library (this file:
-- this helper's pcall; spec/argerror_spec.lua checks it through the public methods).
local function raised(fn, ...)
  local ok, msg = pcall(fn, ...)
  assert.is_false(ok, "did not raise")
  if msg:find("^bad argument #%d+ to '[%w_]+' %(field") then error("no position in: " .. msg) end
  return (msg:gsub("^spec/call_spec%.lua:%d+: ", ""))
end

local START = { client_id = "cid", connection = "email", email = "a@b.co" }
local function with(t, k, v)
  local c = {}
  for key, val in pairs(t) do c[key] = val end
  c[k] = v
  return c
end

describe("core request building", function()
  local c
  before_each(function() c = new_core() end)
  after_each(function() c:close() end)

  it("raises each wire invariant in luaL_argerror's form, naming the field", function()
    local big = ("x"):rep(core.limits.max_value + 1)
    local cases = {
      { with(START, "email", "a\0b"), "(field 'email': contains a NUL byte)" },
      { with(START, "email", 42), "(field 'email': string expected, got number)" },
      { with(START, "email", "\xff\xfe"), "(field 'email': not valid UTF-8)" },
      { with(START, "email", big), "(field 'email': longer than 65536 bytes)" },
      { with(START, "authParams", { scope = 1 }), "(field 'auth_params': table of strings expected)" },
      { with(START, "authParams", "x"), "(field 'auth_params': table expected, got string)" },
      { with(START, "authParams", { state = "a\0" }), "(field 'auth_params': contains a NUL byte)" },
      { with(START, "colour", "red"), "(unknown field 'colour')" },
      { with(START, "connection", nil), "(missing required field 'connection')" },
    }
    for _, case in ipairs(cases) do
      assert.equal("bad argument #1 to 'passwordless_start' " .. case[2],
        raised(c.build, c, "passwordless_start", case[1], { fn = "passwordless_start" }))
    end
    -- exactly max_value bytes pass
    local ok = c:build("passwordless_start", with(START, "email", big:sub(2)))
    assert.equal(core.limits.max_value + #'{"client_id":"cid","connection":"email","email":""}', #ok.body)
  end)

  it("checks lists and header values", function()
    local assoc = function(types, opts)
      return raised(c.build, c, "mfa_associate", { authenticator_types = types }, opts or { bearer = "t" })
    end
    assert.equal("bad argument #1 to 'mfa_associate' (field 'authenticator_types': array of strings expected)",
      assoc({ "otp", nil, "oob" }))
    assert.equal("bad argument #1 to 'mfa_associate' (field 'authenticator_types': array of strings expected)",
      assoc({ "otp", extra = "x" }))
    assert.equal("bad argument #1 to 'mfa_associate' (field 'bearer': contains CR or LF)",
      assoc({ "otp" }, { bearer = "t\r\nX-Injected: 1" }))
    assert.equal("bad argument #1 to 'mfa_associate' (field 'bearer': a bearer token is required)",
      assoc({ "otp" }, {}))
    assert.equal("bad argument #1 to 'userinfo' (field 'language': contains CR or LF)",
      raised(c.build, c, "userinfo", nil, { bearer = "t", language = "en\nX: y" }))
    assert.equal("bad argument #1 to 'userinfo' (field 'language': contains a NUL byte)",
      raised(c.build, c, "userinfo", nil, { bearer = "t", language = "en\0" }))
  end)

  it("rejects NaN, infinities and out-of-range timeouts", function()
    for _, v in ipairs { 0 / 0, math.huge, -math.huge, 0, -1, 86400.5 } do
      assert.equal("bad argument #1 to 'userinfo' (field 'timeout': must be in (0, 86400] seconds)",
        raised(c.build, c, "userinfo", nil, { bearer = "t", timeout = v }))
    end
    assert.equal("bad argument #1 to 'userinfo' (field 'timeout': number expected, got string)",
      raised(c.build, c, "userinfo", nil, { bearer = "t", timeout = "1" }))
    assert.equal(86400, c:build("userinfo", nil, { bearer = "t", timeout = 86400 }).timeout)
  end)

  it("names parameters as opts.fn, opts.arg and opts.params say", function()
    -- a positional argument
    assert.equal("bad argument #1 to 'revoke' (contains a NUL byte)",
      raised(c.build, c, "revoke", { client_id = "c", token = "a\0" }, { fn = "revoke", params = { refresh_token = 1 } }))
    assert.equal("bad argument #1 to 'revoke' (string expected, got no value)",
      raised(c.build, c, "revoke", { client_id = "c" }, { fn = "revoke", params = { refresh_token = 1 } }))
    -- the table field the public API uses, another argument number
    assert.equal("bad argument #2 to 'mfa_associate' (field 'token': contains CR or LF)",
      raised(c.build, c, "mfa_associate", { authenticator_types = { "otp" } },
        { bearer = "\r", fn = "mfa_associate", arg = 2, params = { bearer = "token" } }))
    -- the public column of the endpoint table without any mapping; the endpoint name by default
    assert.equal("bad argument #1 to 'revoke' (field 'refresh_token': not valid UTF-8)",
      raised(c.build, c, "revoke", { client_id = "c", token = "\xc0" }))
    assert.equal("bad argument #1 to 'mfa_delete_authenticator' (field 'path_arg': a path argument is required)",
      raised(c.build, c, "mfa_delete_authenticator", nil, { bearer = "t" }))
    assert.equal("option 'fn' must be a string", raised(c.build, c, "userinfo", nil, { fn = 1 }))
    assert.equal("option 'arg' must be an integer in 1..255", raised(c.build, c, "userinfo", nil, { arg = 0 / 0 }))
  end)

  it("encodes bodies in table order with the grant type first", function()
    local b = c:build("passwordless_login", { otp = "123 456", realm = "email", username = "u@b.co", client_id = "c" })
    assert.equal('{"grant_type":"http://auth0.com/oauth/grant-type/passwordless/otp","client_id":"c",' ..
      '"username":"u@b.co","realm":"email","otp":"123 456"}', b.body)
    b = c:build("mfa_associate", { authenticator_types = { "oob" }, oob_channels = { "sms", "voice" } }, { bearer = "t" })
    assert.equal('{"authenticator_types":["oob"],"oob_channels":["sms","voice"]}', b.body)
    assert.same({ accept = "application/json", authorization = "Bearer t", ["content-type"] = "application/json" },
      b.headers)
  end)
end)

describe("core exports", function()
  it("limits and the response-header map", function()
    assert.same({ max_value = 65536, max_request_body = 1048576, max_body = 1048576, max_header_value = 255,
      max_timeout = 86400, max_poll_ms = 3600000 }, core.limits)
    assert.same({ ["retry-after"] = "retry_after", ["x-ratelimit-limit"] = "ratelimit_limit",
      ["x-ratelimit-remaining"] = "ratelimit_remaining", ["x-ratelimit-reset"] = "ratelimit_reset",
      ["x-auth0-requestid"] = "request_id", ["content-type"] = "content_type", location = "location" },
      core.header_fields)
  end)
end)

describe("registered endpoints", function()
  it("the shipped table has no control routes; a client registers its own", function()
    assert.is_nil(core.endpoints.control_get)
    assert.is_nil(core.endpoints.control_post)
    assert.is_nil(core.endpoints.control_delete)
    local a, b = new_core(), new_core()
    assert.equal("bad argument #2 to '?' (unknown endpoint 'ctl')", raised(a.build, a, "ctl", nil, { path_arg = "x" }))
    assert.is_true(a:register_endpoint("ctl", { method = "POST", path = "/__emulator/", body = "raw", verbatim = true }))
    local req = a:build("ctl", nil, { path_arg = "guardian/ab/approve", body = '{"x":1}' })
    assert.equal("https://tenant.test/__emulator/guardian/ab/approve", req.url)
    assert.equal('{"x":1}', req.body)
    assert.equal("POST", req.method)
    -- per client
    assert.equal("bad argument #2 to '?' (unknown endpoint 'ctl')", raised(b.build, b, "ctl", nil, { path_arg = "x" }))
    -- a verbatim sub-path stays a path; fields are not allowed; a shipped name cannot be taken
    assert.equal("bad argument #1 to 'ctl' (field 'path_arg': invalid path)",
      raised(a.build, a, "ctl", nil, { path_arg = "x?y=1" }))
    assert.equal("bad argument #1 to 'ctl' (unknown field 'email')", raised(a.build, a, "ctl", { email = "e" }))
    assert.equal("bad argument #2 to '?' (names a shipped endpoint)", raised(a.register_endpoint, a, "jwks", { path = "/x" }))
    -- a shipped endpoint still escapes its path argument as one segment
    assert.equal("https://tenant.test/mfa/authenticators/a%2F..%3Fb",
      a:build("mfa_delete_authenticator", nil, { bearer = "t", path_arg = "a/..?b" }).url)
    a:close()
    b:close()
  end)

  it("the emulator's control client reaches its routes over real HTTPS", function()
    local srv = emu.start()
    emu.reset()
    local ctl = control.new { base_url = srv.base_url, ca_file = srv.ca_file }
    local body = assert(ctl:post("clock", { advance = 10 }))
    assert.is_number(body.now)
    local users = assert(ctl:get("users"))
    assert.same({}, users.users)
    ctl:close()
  end)
end)
