-- An automation script that stays logged in: the first run logs in (an e-mail code typed once,
-- then a TOTP code computed from a secret file), every later run prints a valid access token,
-- renewed with the stored refresh token when needed (cron-safe: two runs at once make one
-- refresh). The tokens live in an encrypted private file:
--   $XDG_STATE_HOME/keep_token/credentials (default ~/.local/state/keep_token/credentials)
--
--   AUTH0_BASE_URL=https://YOUR_TENANT.auth0.com AUTH0_CLIENT_ID=... AUTH0_EMAIL=me@example.com \
--   AUTH0_TOTP_SECRET_FILE=~/.config/keep_token/totp AUTH0_KEY_FILE=~/.config/keep_token/key \
--   lua5.4 examples/keep_token.lua
-- Optional: AUTH0_CA_FILE (e.g. the emulator's CA), AUTH0_AUDIENCE. The key file holds 32
-- random bytes (`head -c 32 /dev/urandom > key; chmod 600 key`); without it the file is plain JSON.
-- Prints the access token on stdout and nothing else; prompts and errors go to stderr.
local auth0 = require "auth0"
local credentials = require "auth0.credentials"

local function env(name, optional)
  local v = os.getenv(name)
  if (v == nil or v == "") and not optional then
    io.stderr:write("keep_token: set ", name, "\n")
    os.exit(2)
  end
  return v ~= "" and v or nil
end

local function read_secret(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function fail(what, err)
  io.stderr:write("keep_token: ", what, ": ", tostring(err), "\n")   -- tostring(err) never holds a token
  os.exit(1)
end

local client = auth0.new { base_url = env("AUTH0_BASE_URL"), client_id = env("AUTH0_CLIENT_ID"),
  ca_file = env("AUTH0_CA_FILE", true), audience = env("AUTH0_AUDIENCE", true),
  scope = "openid profile email offline_access" }
local key_file = env("AUTH0_KEY_FILE", true)
local cm = credentials.new(client, {
  store = credentials.file_store { app = "keep_token", key = key_file and read_secret(key_file) },
})

-- Second factor: the TOTP secret (base32, as shown at enrollment) from a private file.
local function totp_step(mfa_token)
  local secret = read_secret(env("AUTH0_TOTP_SECRET_FILE")):gsub("%s+", "")
  local tokens, err = client:mfa_verify { mfa_token = mfa_token, otp = auth0.totp(secret) }
  if not tokens then fail("MFA", err) end
  return tokens
end

local function login()
  local email = env("AUTH0_EMAIL")
  local ok, err = client:passwordless_start { connection = "email", email = email }
  if not ok then fail("could not send the code", err) end
  io.stderr:write("code sent to ", email, "; type it: ")
  local code = (io.read("l") or ""):gsub("%s+", "")
  local tokens, lerr = client:passwordless_login { realm = "email", username = email, otp = code }
  if not tokens and lerr.code == "mfa_required" then tokens = totp_step(lerr.mfa_token) end
  if not tokens then fail("login failed", lerr) end
  local saved, serr = cm:save(tokens)
  if not saved then fail("could not store the tokens", serr) end
end

local t, err = cm:credentials()
if not t and err.code == "login_required" then
  login()
  t, err = cm:credentials()
elseif not t and err.code == "mfa_required" then   -- the tenant asks for MFA on refresh too
  cm:save(totp_step(err.mfa_token))
  t, err = cm:credentials()
end
if not t then fail("no valid token", err) end
print(t.access_token)
client:close()
