-- NaN, +inf and -inf are misuse for every numeric parameter of the public API (issue 11,
-- item 4): each call below raises, naming the function, and sends nothing.
local auth0 = require "auth0"
local jwt = require "auth0.jwt"
local flow = require "auth0.flow"

local NAN, INF = 0 / 0, math.huge
local VALUES = { { "NaN", NAN }, { "inf", INF }, { "-inf", -INF } }
local SECRET = "JBSWY3DPEHPK3PXP"

local function opts(over)
  local o = { base_url = "https://127.0.0.1:9", client_id = "c", client_secret = "s" }
  for k, v in pairs(over or {}) do o[k] = v end
  return o
end

local client = auth0.new(opts())

-- name, function(v) using v as the numeric parameter
local CASES = {}
local function case(name, fn) CASES[#CASES + 1] = { name, fn } end
for _, o in ipairs({ "timeout", "connect_timeout", "max_retry_wait", "retries", "poll_budget_ms",
  "jwks_ttl", "jwks_min_refetch" }) do
  case("auth0.new{" .. o .. "}", function(v) return auth0.new(opts({ [o] = v })) end)
end
case("client:poll(ms)", function(v) return client:poll(v) end)
for _, o in ipairs({ "leeway", "now", "max_age" }) do
  case("client:verify_id_token{" .. o .. "}", function(v) return client:verify_id_token("a.b.c", { [o] = v }) end)
  case("client:verify_id_token{" .. o .. "}, cb", function(v)
    return client:verify_id_token("a.b.c", { [o] = v }, function() end)
  end)
  case("jwt.verify_id_token{" .. o .. "}", function(v)
    return jwt.verify_id_token("a.b.c", { issuer = "i", client_id = "c", jwks = { keys = {} }, [o] = v })
  end)
end
for _, o in ipairs({ "interval", "timeout" }) do
  case("client:mfa_poll{" .. o .. "}", function(v)
    return client:mfa_poll({ mfa_token = "m", oob_code = "o", [o] = v })
  end)
  case("client:mfa_poll{" .. o .. "}, cb", function(v)
    return client:mfa_poll({ mfa_token = "m", oob_code = "o", [o] = v }, function() end)
  end)
end
for _, o in ipairs({ "time", "digits", "period" }) do
  case("auth0.totp{" .. o .. "}", function(v) return auth0.totp(SECRET, { [o] = v }) end)
end
case("auth0.hotp(counter)", function(v) return auth0.hotp(SECRET, v) end)
case("auth0.hotp{digits}", function(v) return auth0.hotp(SECRET, 1, { digits = v }) end)
for _, o in ipairs({ "code_lifetime", "push_interval", "push_timeout", "max_restarts", "max_prompts",
  "max_wait", "totp_period" }) do
  case("flow.login{" .. o .. "}", function(v)
    return flow.login(client, { connection = "email", email = "a@example.com", [o] = v })
  end)
end
for _, o in ipairs({ "attempts_left", "sent_at", "restarts", "push_waited" }) do
  case("flow.resume{" .. o .. "}", function(v)
    return flow.resume(client, { version = 1, state = "awaiting_push", mfa_token = "m", oob_code = "o", [o] = v })
  end)
end

describe("non-finite numbers are misuse", function()
  after_each(function() end)
  for _, c in ipairs(CASES) do
    for _, val in ipairs(VALUES) do
      it(c[1] .. " with " .. val[1], function()
        local before = client:stats().requests
        local ok, err = pcall(c[2], val[2])
        assert.is_false(ok, c[1] .. " accepted " .. val[1])
        assert.equal("string", type(err))
        assert.equal(before, client:stats().requests)
        assert.equal(0, client:pending())
      end)
    end
  end
end)
