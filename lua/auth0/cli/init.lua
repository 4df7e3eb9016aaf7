--- The `auth0` command: logs in, keeps the credentials and prints tokens for scripts.
-- `require("auth0.cli").main(arg)` returns the exit status (bin/auth0 calls it):
--
-- | status | meaning                                                 |
-- |--------|---------------------------------------------------------|
-- | 0      | ok                                                      |
-- | 1      | failure (network, server, anything else)                |
-- | 2      | usage: a wrong flag or argument                         |
-- | 3      | login required: no credentials, or the refresh token is dead |
-- | 4      | MFA required (a refresh answered `mfa_required`)        |
-- | 5      | rate limited (the message says how long to wait)        |
-- | 130    | interrupted (Ctrl-C): the request was cancelled, nothing half-saved |
local argparse = require "argparse"
local settings = require "auth0.cli.settings"
local term = require "auth0.cli.term"
local cjson = require("cjson.safe").new()

local _M = { EXIT = { ok = 0, failure = 1, usage = 2, login_required = 3, mfa_required = 4,
  rate_limited = 5, interrupted = 130 } }
local EXIT = _M.EXIT

local EXIT_HELP = [[
Exit status: 0 ok, 1 failure, 2 usage, 3 login required, 4 MFA required,
5 rate limited (the message says how long to wait), 130 interrupted.
Settings: flags, then AUTH0_DOMAIN / AUTH0_BASE_URL, AUTH0_CLIENT_ID, AUTH0_CLIENT_SECRET
(or --client-secret-file), AUTH0_CA_FILE, AUTH0_AUDIENCE, AUTH0_SCOPE, AUTH0_CONNECTION, then
the profile $XDG_CONFIG_HOME/lua-auth0/<profile>.conf. Credentials are kept in
$XDG_STATE_HOME/lua-auth0/<profile>/ (mode 0600).]]

-- A failure the command reports: one line on stderr and an exit status.
local Fail = {}
Fail.__index = Fail
local function fail(status, msg) return setmetatable({ status = status, msg = msg }, Fail) end
_M.fail = fail

--- The exit status and the one-line message for an auth0.Error.
function _M.classify(err)
  local code = type(err) == "table" and err.code or nil
  local reason = type(err) == "table" and err.reason or nil
  local line = tostring(err)
  if code == "login_required" or code == "invalid_grant" and reason ~= "wrong_code" then
    return EXIT.login_required, line .. " (run: auth0 login)"
  end
  if code == "mfa_required" then return EXIT.mfa_required, line .. " (run: auth0 login)" end
  if code == "store_mismatch" then return EXIT.failure, line .. " (give each profile its own --store-path)" end
  if reason == "rate_limited" or err and err.status == 429 or code == "too_many_requests" then
    local wait = type(err) == "table" and tonumber(err.retry_after)
    return EXIT.rate_limited, line .. (wait and (" (retry in " .. math.ceil(wait) .. " s)") or "")
  end
  return EXIT.failure, line
end

local function common(p)
  p:option("--profile", "Settings profile (a file under $XDG_CONFIG_HOME/lua-auth0/).")
  p:option("--domain", "The tenant's domain, e.g. example.eu.auth0.com.")
  p:option("--base-url", "https://host[:port] instead of a domain (the emulator).")
  p:option("--client-id", "The application's client id.")
  p:option("--client-secret-file", "A file holding the client secret (confidential clients).")
  p:option("--ca-file", "A CA bundle to trust instead of the system store.")
  p:option("--store-path", "The credentials file (default $XDG_STATE_HOME/lua-auth0/<profile>/credentials;"
    .. " also AUTH0_STORE_PATH).")
  p:flag("--json", "One JSON document on stdout.")
end

--- The argument parser (also the source of the bash completion script).
function _M.parser()
  local p = argparse("auth0", "Log in to Auth0 and keep the credentials for scripts (lua-auth0).")
    :epilog(EXIT_HELP):command_target("command"):require_command(false):help_max_width(100)
  p:flag("--version", "Print the version and exit.")
  common(p)
  local login = p:command("login", "Log in with an e-mail or SMS code (and MFA), save the credentials.")
  login:mutex(login:option("--email", "The user's e-mail address."), login:option("--phone", "The user's phone, +E.164."))
  login:option("--connection", "The passwordless connection (default email or sms).")
  login:option("--audience", "The API to get an access token for.")
  login:option("--scope", "Scopes (default openid profile email offline_access).")
  login:option("--mfa", "Without a terminal: which factor to use (otp, push, sms, voice, email, recovery).")
  login:option("--totp-secret-file", "Compute TOTP codes from this secret (base32 or otpauth://).")
  login:flag("--link", "Log in with a magic link (not available yet).")
  local token = p:command("token", "Print a valid access token, renewing it when needed.")
  token:option("--audience", "An API other than the login's (uses the same refresh token).")
  token:option("--scope", "Scopes for --audience.")
  token:option("--min-ttl", "Seconds the token must still be valid (default 60)."):convert(tonumber)
  p:command("whoami", "Print the stored ID token's claims.")
  p:command("userinfo", "Ask Auth0 for the user's profile (/userinfo).")
  p:command("logout", "Revoke the refresh token at Auth0, then forget the credentials.")
  local mfa = p:command("mfa", "Manage the user's own authenticators."):command_target("mfa_command")
  mfa:command("list", "List the enrolled authenticators.")
  local enroll = mfa:command("enroll", "Enroll an authenticator.")
  enroll:argument("type", "otp, sms, voice, email or push."):choices { "otp", "sms", "voice", "email", "push" }
  enroll:option("--phone", "The phone number for sms and voice.")
  enroll:option("--email", "The address for email.")
  mfa:command("delete", "Delete an authenticator."):argument("id", "The authenticator's id.")
  local totp = p:command("totp", "Print the current TOTP code and the seconds it has left.")
  totp:argument("source", "'-' to read the secret or otpauth:// URI from standard input."):args("?")
  totp:option("--file", "A file holding the secret or otpauth:// URI.")
  p:command("qr", "Print a QR code in the terminal."):argument("text", "The text, or '-' for standard input.")
  local emu = p:command("emulator", "Run the bundled Auth0 emulator in the foreground.")
  emu:option("--port", "The port (default: a free one)."):convert(tonumber)
  emu:argument("action", "'code EMAIL|PHONE': the last code the emulator sent there."):args("*")
  local help = p:command("help", "Show help for a command.")
  help:argument("topic", "A command."):args("?")
  p:command("completion", "Print the bash completion script.")
  return p
end

-- The command's name for the settings table: --base-url arrives as base_url.
local function flags_of(args)
  local t = {}
  for _, k in ipairs(settings.KEYS) do t[k] = args[k] end
  t.profile, t.store_path = args.profile, args.store_path
  return t
end

-- Ctrl-C makes the interpreter raise "interrupted!" in whatever Lua code runs next; when that
-- is one of the library's callbacks, the error lands here instead of unwinding the command:
-- note it, and the command stops at its next step (_M.check_interrupt).
local interrupted = false
function _M.on_callback_error(msg)
  if tostring(msg):find("interrupted!", 1, true) then interrupted = true; return end
  term.say("auth0: error in a callback: ", tostring(msg):match("^[^\n]*"), "\n")
end

--- Raises the interrupt failure if Ctrl-C was pressed during a callback.
function _M.check_interrupt()
  if interrupted then error(fail(EXIT.interrupted, "interrupted"), 0) end
end

--- A client for the resolved settings (raises a Fail when the settings are incomplete).
function _M.client(s)
  local auth0 = require "auth0"
  if not s.domain and not s.base_url then
    error(fail(EXIT.usage, "no tenant: set --domain, AUTH0_DOMAIN or a profile (see auth0 help)"), 0)
  end
  if not s.client_id then error(fail(EXIT.usage, "no client id: set --client-id, AUTH0_CLIENT_ID or a profile"), 0) end
  local ok, c = pcall(auth0.new, { domain = not s.base_url and s.domain or nil, base_url = s.base_url,
    client_id = s.client_id, client_secret = s.client_secret, ca_file = s.ca_file,
    on_callback_error = _M.on_callback_error })
  if not ok then error(fail(EXIT.usage, tostring(c):gsub("^[^:]*:%d+: ", "")), 0) end
  return c
end

--- The credentials manager over the profile's file store.
function _M.credentials(s, client)
  local credentials = require "auth0.credentials"
  local store = credentials.file_store { path = s.store_path }
  return credentials.new(client, { store = store })
end

local function version()
  local ok, core = pcall(require, "auth0.core")
  return "auth0 (lua-auth0) " .. (ok and core.version or "?")
end

--- Runs the command line `argv`; returns the exit status.
function _M.main(argv, env)
  env = env or os.getenv
  local t = term.new(env)
  local p = _M.parser()
  local ok, args = p:pparse(argv)
  if not ok then
    term.say("auth0: ", args, "\n", "Try 'auth0 --help'.\n")
    return EXIT.usage
  end
  if args.version then print(version()); return EXIT.ok end
  if not args.command then term.say(p:get_help(), "\n"); return EXIT.usage end
  local cmds = require "auth0.cli.commands"
  local s
  local run_ok, status = xpcall(function()
    if args.command == "help" then return cmds.help(p, args) end
    if args.command == "completion" then io.write(p:get_bash_complete()); return EXIT.ok end
    local err
    s, err = settings.resolve(flags_of(args), env)
    if not s then error(fail(EXIT.usage, err), 0) end
    local fn = cmds[args.command]
    local status = fn(s, args, t)
    _M.check_interrupt()
    return status
  end, function(e)
    if getmetatable(e) == Fail then return e end
    if type(e) == "string" and e:find("interrupted!", 1, true) then return fail(EXIT.interrupted, "interrupted") end
    return fail(EXIT.failure, "internal error: " .. tostring(e) .. "\n" .. debug.traceback())
  end)
  if run_ok then return status or EXIT.ok end
  if cmds.on_exit then pcall(cmds.on_exit) end
  if status.msg then term.say("auth0: ", term.clean(status.msg), "\n") end
  return status.status
end

--- `value` as JSON on stdout (one document).
function _M.print_json(value)
  io.write(assert(cjson.encode(value)), "\n")
end

return _M
