-- Wrong-typed success answers are bad_response, field by field, and nothing partial reaches
-- the caller (issue 11, item 10). A transport answers each call with a crafted 200 body.
local auth0 = require "auth0"
local cjson = require "cjson"

local function client(body)
  return auth0.new { base_url = "https://tenant.test", client_id = "c", client_secret = "s", retries = 0,
    transport = function() return { status = 200, headers = {}, body = body } end }
end

local CALLS = {
  tokens = function(c) return c:passwordless_login { realm = "email", username = "a@b.co", otp = "1" } end,
  authenticators = function(c) return c:mfa_authenticators("tok") end,
  challenge = function(c) return c:mfa_challenge { mfa_token = "m", challenge_type = "oob" } end,
  associate = function(c) return c:mfa_associate { token = "t", authenticator_types = { "otp" } } end,
  userinfo = function(c) return c:userinfo("tok") end,
  jwks = function(c) return c:jwks(true) end,
  discovery = function(c) return c:openid_configuration() end,
  start = function(c) return c:passwordless_start { connection = "email", email = "a@b.co" } end,
}

local GOOD = {
  tokens = { access_token = "a", id_token = "i", refresh_token = "r", token_type = "Bearer", expires_in = 60, scope = "openid" },
  authenticators = { { id = "totp|dev_1", authenticator_type = "otp", active = true, name = "phone" },
    { id = "sms|dev_2", authenticator_type = "oob", active = false, oob_channel = "sms", name = "+1555" } },
  challenge = { challenge_type = "oob", oob_code = "o", binding_method = "prompt" },
  associate = { authenticator_type = "otp", secret = "S", barcode_uri = "otpauth://totp/x", recovery_codes = { "R" } },
  userinfo = { sub = "u1", email = "a@b.co", email_verified = true, name = "A" },
  jwks = { keys = { { kty = "RSA", kid = "k", n = "n", e = "AQAB", alg = "RS256", use = "sig", x5c = { "c" } } } },
  discovery = { issuer = "https://tenant.test/", jwks_uri = "https://tenant.test/.well-known/jwks.json",
    token_endpoint = "https://tenant.test/oauth/token", scopes_supported = { "openid" } },
  start = { _id = "x", email = "a@b.co", email_verified = false },
}

-- shape, the answer's wrong-typed variant (a function of a fresh good copy)
local BAD = {
  { "tokens", function(t) t.id_token = 5 end },
  { "tokens", function(t) t.refresh_token = { "r" } end },
  { "tokens", function(t) t.token_type = true end },
  { "tokens", function(t) t.expires_in = "soon" end },
  { "tokens", function(t) t.scope = {} end },
  { "authenticators", function(t) t[1].id = 42 end },
  { "authenticators", function(t) t[2].active = "false" end },
  { "authenticators", function(t) t[1].authenticator_type = { "otp" } end },
  { "authenticators", function(t) t[1].active = nil end },
  { "authenticators", function(t) t[2].oob_channel = 1 end },
  { "authenticators", function(t) t[3] = "x" end },
  { "challenge", function(t) t.oob_code = 1 end },
  { "challenge", function(t) t.challenge_type = nil end },
  { "challenge", function(t) t.oob_code = nil end },
  { "associate", function(t) t.secret = 1 end },
  { "associate", function(t) t.recovery_codes = "R" end },
  { "associate", function(t) t.recovery_codes = { 1 } end },
  { "associate", function(t) t.authenticator_type = nil end },
  { "userinfo", function(t) t.sub = 1 end },
  { "userinfo", function(t) t.sub = nil end },
  { "userinfo", function(t) t.email_verified = "true" end },
  { "userinfo", function(t) t.email = {} end },
  { "jwks", function(t) t.keys[1].n = 1 end },
  { "jwks", function(t) t.keys[1].kty = nil end },
  { "jwks", function(t) t.keys[1] = "k" end },
  { "jwks", function(t) t.keys = { a = 1 } end },
  { "jwks", function(t) t.keys[1].x5c = "c" end },
  { "discovery", function(t) t.issuer = 1 end },
  { "discovery", function(t) t.jwks_uri = nil end },
  { "discovery", function(t) t.scopes_supported = "openid" end },
  { "start", function(t) t.email_verified = "false" end },
  { "start", function(t) t._id = 7 end },
}

local function copy(v)
  if type(v) ~= "table" then return v end
  local o = {}
  for k, x in pairs(v) do o[k] = copy(x) end
  return o
end

describe("result shapes", function()
  for name, good in pairs(GOOD) do
    it(name .. ": a well-typed answer reaches the caller", function()
      local c = client(cjson.encode(good))
      local r, err = CALLS[name](c)
      assert.is_nil(err)
      assert.is_table(r)
    end)
  end
  for i, case in ipairs(BAD) do
    it(case[1] .. " #" .. i .. ": a wrong-typed field is bad_response, nothing partial", function()
      local t = copy(GOOD[case[1]])
      case[2](t)
      local c = client(cjson.encode(t))
      local r, err = CALLS[case[1]](c)
      assert.is_nil(r)
      assert.equal("bad_response", err.code)
      assert.equal(200, err.status)
      -- the blocking and the callback form agree
      local got
      CALLS[case[1]](setmetatable({}, { __index = function(_, k)
        local f = c[k]
        local cb = function(x, e) got = { x, e } end
        return function(_, a)
          if k == "openid_configuration" then return f(c, cb) end
          return f(c, a, cb)
        end
      end }))
      while c:pending() > 0 do c:poll(10) end
      assert.is_nil(got[1])
      assert.equal("bad_response", got[2].code)
    end)
  end
end)
