-- Multi-factor authentication after a passwordless e-mail login, against the bundled emulator:
-- a push approval (Guardian) for a user who has a phone enrolled, then a TOTP enrollment for a
-- user who has nothing enrolled yet.
--   make demo            (runs examples/passwordless.lua, then this file)
local auth0 = require "auth0"
local jwt = require "auth0.jwt"

local function short(s)
  if type(s) ~= "string" then return tostring(s) end
  return #s > 16 and (s:sub(1, 8) .. "..." .. s:sub(-4) .. " (" .. #s .. " chars)") or "***"
end

local function show_tokens(client, tokens)
  print(("  token_type=%s expires_in=%s scope=%q"):format(tokens.token_type, tokens.expires_in, tokens.scope))
  print("  access_token  " .. short(tokens.access_token))
  print("  id_token      " .. short(tokens.id_token))
  if tokens.refresh_token then print("  refresh_token " .. short(tokens.refresh_token)) end
  local claims, err = client:verify_id_token(tokens.id_token)
  if not claims then
    print("  ID token check FAILED: " .. tostring(err))
    claims = assert(jwt.decode(tokens.id_token)).payload
  else
    print("  ID token signature and claims verified against the tenant's JWKS")
  end
  print(("    %-15s %s"):format("sub", claims.sub))
  print(("    %-15s %s"):format("email", tostring(claims.email)))
  print(("    %-15s %s"):format("amr", type(claims.amr) == "table" and table.concat(claims.amr, ",") or "(none)"))
end

local server = assert(require("auth0.emulator.server").start {})
local control = require("auth0.emulator.client").new { base_url = server.base_url, ca_file = server.ca_file }
local client = auth0.new { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native" }
print("emulator running at " .. server.base_url .. " (CA " .. server.ca_file .. ")")

-- The e-mail code login; with MFA on for the user it ends in mfa_required.
local function first_factor(email)
  assert(client:passwordless_start { connection = "email", email = email, send = "code" })
  local code = assert(control:last_code(email))
  print("  the emulator delivered the code " .. code .. " to " .. email)
  local tokens, err = client:passwordless_login { realm = "email", username = email, otp = code,
    scope = "openid profile email offline_access" }
  if tokens then error("expected MFA to be required for " .. email, 0) end
  if err.reason ~= "mfa_required" then error("login failed: " .. tostring(err), 0) end
  print("  mfa_required: mfa_token " .. short(err.mfa_token))
  if err.mfa_requirements then
    for kind, list in pairs(err.mfa_requirements) do
      local types = {}
      for _, f in ipairs(list) do types[#types + 1] = f.type end
      print(("  mfa_requirements.%s: %s"):format(kind, table.concat(types, ", ")))
    end
  end
  return err.mfa_token
end

local function push_login()
  local email = "alice@example.com"
  print("\n== e-mail code + push approval for " .. email)
  local user = assert(control:post("users", { connection = "email", email = email,
    mfa = { "push-notification", "otp" } }))
  assert(control:post("mfa/authenticators", { user_id = user.user_id, type = "push", name = "Alice's phone" }))
  assert(control:post("mfa", { poll_min_interval = 1 }))  -- the demo polls every second
  local mfa_token = first_factor(email)

  local list = assert(client:mfa_authenticators(mfa_token))
  local push
  for _, a in ipairs(list) do
    print(("  authenticator %-38s %-14s %-6s %s"):format(a.id, a.authenticator_type .. (a.oob_channel and
      ("/" .. a.oob_channel) or ""), a.active and "active" or "inactive", a.name or ""))
    if a.active and a.oob_channel == "auth0" then push = push or a end
  end
  assert(push, "no push authenticator")
  print("  choosing push on " .. push.name)
  local ch = assert(client:mfa_challenge { mfa_token = mfa_token, challenge_type = "oob", authenticator_id = push.id })

  local spinner, approved = { "|", "/", "-", "\\" }, false
  local polls = 0
  local tokens, err = client:mfa_poll { mfa_token = mfa_token, oob_code = ch.oob_code, interval = 1,
    on_pending = function(waited)
      polls = polls + 1
      io.write(("\r  %s waiting for approval on %s ... %.0f s "):format(spinner[polls % 4 + 1], push.name, waited))
      io.flush()
      if waited >= 3 and not approved then
        -- the user taps "Allow" on the phone: the emulator's fake Guardian
        local pending = assert(control:get("guardian", { user_id = user.user_id })).transactions
        for _, tx in ipairs(pending) do
          if tx.oob_code == ch.oob_code then assert(control:post("guardian/" .. tx.oob_code .. "/approve")) end
        end
        approved = true
        io.write("\n  approved on the device\n")
      end
    end }
  if not tokens then error("push login failed: " .. tostring(err), 0) end
  print("  logged in with MFA")
  show_tokens(client, tokens)
end

local function totp_enrollment()
  local email = "bob@example.com"
  print("\n== e-mail code + TOTP enrollment for " .. email)
  assert(control:post("users", { connection = "email", email = email, mfa = "always" }))
  local mfa_token = first_factor(email)
  print(("  %d authenticators enrolled"):format(#assert(client:mfa_authenticators(mfa_token))))
  local a = assert(client:mfa_associate { token = mfa_token, authenticator_types = { "otp" } })
  print("  scan this in an authenticator app:")
  print("    " .. a.barcode_uri)
  local uri = assert(auth0.parse_otpauth(a.barcode_uri))
  print(("  issuer %q, account %q, %d digits every %d s (%s)"):format(uri.issuer, uri.account, uri.digits,
    uri.period, uri.algorithm))
  if a.recovery_codes then print("  recovery code (keep it safe): " .. short(a.recovery_codes[1])) end
  local code = auth0.totp(uri.secret, { digits = uri.digits, period = uri.period, algorithm = uri.algorithm })
  print("  auth0.totp computes the current code " .. code)
  local tokens, err = client:mfa_verify { mfa_token = mfa_token, otp = code }
  if not tokens then error("TOTP confirmation failed: " .. tostring(err), 0) end
  print("  enrolled and logged in")
  show_tokens(client, tokens)
end

local ok, err = pcall(function()
  push_login()
  totp_enrollment()
  print(("\n%d requests over %d TLS connection(s)"):format(client:stats().requests, client:stats().connects))
end)
client:close()
control:close()
server:stop()
if not ok then
  io.stderr:write("demo failed: ", tostring(err), "\n")
  os.exit(1)
end
