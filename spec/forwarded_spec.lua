-- auth0-forwarded-for (issue 11, item 7): `forwarded_for` on passwordless_start/login and the
-- MFA grants, for confidential clients only, validated as an IP address; the emulator's
-- per-IP limit counts the forwarded address of a confidential client, the peer otherwise.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"

local SECRET = "emu-confidential-secret"

-- A client whose transport records the request and answers `answer`.
local function recorder(opts)
  local seen = {}
  local o = { base_url = "https://127.0.0.1", client_id = "emu-confidential", client_secret = SECRET,
    transport = function(req)
      seen[#seen + 1] = req
      return { status = 200, body = '{"access_token":"a","token_type":"Bearer","expires_in":60}' }
    end }
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.client_secret == false then o.client_secret = nil end   -- false: a public client
  return auth0.new(o), seen
end

local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok)
  return (err:gsub("^[^:]+:%d+: ", ""))
end

describe("forwarded_for", function()
  it("is sent as auth0-forwarded-for on passwordless_start, passwordless_login and every MFA grant", function()
    local c, seen = recorder()
    local ip = "203.0.113.7"
    assert(c:passwordless_start { connection = "email", email = "a@example.com", forwarded_for = ip })
    assert(c:passwordless_login { realm = "email", username = "a@example.com", otp = "123456", forwarded_for = ip })
    assert(c:mfa_verify { mfa_token = "m", otp = "123456", forwarded_for = ip })
    assert(c:mfa_verify { mfa_token = "m", oob_code = "o", binding_code = "1", forwarded_for = ip })
    assert(c:mfa_verify { mfa_token = "m", recovery_code = "r", forwarded_for = "2001:db8::1" })
    assert(c:mfa_poll { mfa_token = "m", oob_code = "o", interval = 0.01, forwarded_for = ip })
    assert.equal(6, #seen)
    for i = 1, 5 do assert.equal(i == 5 and "2001:db8::1" or ip, seen[i].headers["auth0-forwarded-for"]) end
    assert.equal(ip, seen[6].headers["auth0-forwarded-for"])
    assert(c:passwordless_start { connection = "email", email = "a@example.com" })
    assert.is_nil(seen[7].headers["auth0-forwarded-for"])
  end)

  it("raises for a public client and for anything but an IPv4 or IPv6 address", function()
    local pub = recorder({ client_id = "emu-native", client_secret = false })
    assert.equal("bad argument #1 to 'passwordless_start' (forwarded_for needs a confidential client " ..
      "(client_secret): Auth0 ignores it otherwise)", raised(pub.passwordless_start, pub,
      { connection = "email", email = "a@example.com", forwarded_for = "203.0.113.7" }))
    assert.truthy(raised(pub.mfa_verify, pub, { mfa_token = "m", otp = "1", forwarded_for = "203.0.113.7" })
      :find("needs a confidential client", 1, true))
    local c = recorder()
    for _, bad in ipairs({ "1.2.3", "256.1.1.1", "01.2.3.4", "1.2.3.4.5", "::1::", "1:2:3:4:5:6:7:8:9",
      "2001:db8::g", "abc", "1.2.3.4\r\nX: y", "", " 1.2.3.4", "fe80::1%eth0", "1:2:3:4:5:6:7::8:9" }) do
      assert.equal("bad argument #1 to 'passwordless_login' (forwarded_for must be an IPv4 or IPv6 address)",
        raised(c.passwordless_login, c, { realm = "email", username = "a@example.com", otp = "1", forwarded_for = bad })
          :gsub("must not be empty", "must be an IPv4 or IPv6 address"), bad)
    end
    assert.truthy(raised(c.passwordless_start, c, { connection = "email", email = "a@example.com", forwarded_for = 42 })
      :find("(field 'forwarded_for': string expected, got number)", 1, true))
    for _, good in ipairs({ "0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8::1", "::ffff:192.0.2.1",
      "2001:db8:0:0:0:0:2:1", "fe80::", "1:2:3:4:5:6:7::" }) do
      assert(c:passwordless_start { connection = "email", email = "a@example.com", forwarded_for = good })
    end
  end)

  describe("the emulator's per-IP limit", function()
    local server
    setup(function() server = emu.start() end)
    before_each(function()
      emu.reset()
      emu.control("POST", "/__emulator/rate_limits", { passwordless_start = { limit = 2, window = 3600 } })
    end)
    local function client(secret)
      return auth0.new { base_url = server.base_url, ca_file = server.ca_file, retries = 0,
        client_id = secret and "emu-confidential" or "emu-native", client_secret = secret }
    end
    local function start(c, ip)
      return c:passwordless_start { connection = "email", email = "rl@example.com", forwarded_for = ip }
    end

    it("counts the forwarded address of a confidential client: one user cannot exhaust it for another", function()
      local c = client(SECRET)
      assert(start(c, "203.0.113.1"))
      assert(start(c, "203.0.113.1"))
      local _, err = start(c, "203.0.113.1")
      assert.equal("too_many_requests", err.code)
      assert(start(c, "203.0.113.2"))          -- another user, same server address
      assert(start(c, "2001:db8::2"))
      c:close()
    end)

    it("counts the peer address of a public client", function()
      local c = client(nil)
      assert(start(c))
      assert(start(c))
      local _, err = start(c)
      assert.equal("too_many_requests", err.code)
      c:close()
    end)
  end)
end)
