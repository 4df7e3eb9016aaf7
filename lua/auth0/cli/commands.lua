--- The commands of `auth0` (lua/auth0/cli/init.lua parses and dispatches). Each takes the
-- resolved settings, the parsed arguments and the terminal, and returns the exit status or
-- raises a failure made by cli.fail.
local cli = require "auth0.cli"
local term = require "auth0.cli.term"
local EXIT, fail = cli.EXIT, cli.fail

local _M = {}

-- The client of the running command, closed (cancelling what is in flight) on Ctrl-C.
local current
function _M.on_exit() if current then current:close() end end

local function client(s)
  current = cli.client(s)
  return current
end

local function check(v, err)
  if v == nil then
    local status, line = cli.classify(err)
    error(fail(status, line), 0)
  end
  return v
end

-- fn(...) with SIGTERM, SIGINT and SIGHUP held: a refresh may rotate the refresh token (the
-- server retires the old one), and a cron job's timeout wrapper stopping the command before
-- the new one is written would log the user out; a signal sent meanwhile stops it after.
local function unstoppable(fn, ...)
  local h = require("auth0.core").hold_signals()
  local ok, v, err = pcall(fn, ...)   -- (the manager's methods return value, err)
  if h then h:release() end
  if not ok then error(v, 0) end
  return v, err
end

-- Why nothing usable is stored, when the store says (another tenant's or client's session, a
-- corrupt or insecure file): that error; nil when there is just nothing. No request is sent then.
local function store_problem(cm)
  local _, err = cm:credentials()
  if type(err) == "table" and err.reason == "store" then return err end
end

-- The manager of the profile's store; its refreshing methods run unstoppable.
local function stored(s, c)
  local cm = cli.credentials(s, c)
  if not cm:has_valid(0) then
    local err = store_problem(cm)
    if err then check(nil, err) end
    error(fail(EXIT.login_required, "not logged in for profile " .. s.profile .. " (run: auth0 login)"), 0)
  end
  local get, get_api = cm.credentials, cm.api_credentials
  function cm.credentials(self, ...) return unstoppable(get, self, ...) end
  function cm.api_credentials(self, ...) return unstoppable(get_api, self, ...) end
  return cm
end

local function json_text(v) return require("cjson.safe").new().encode(v) or "?" end

local function print_table(t, as_json)
  if as_json then return cli.print_json(t) end
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "table" then v = json_text(v) end
    io.write(("%-16s %s\n"):format(term.clean(k), term.clean(v)))
  end
end

--- auth0 login
function _M.login(s, args, t)
  return require("auth0.cli.login").run(client(s), s, args, t)
end

--- auth0 token: prints the access token and nothing else.
function _M.token(s, args)
  local c = client(s)
  local cm = stored(s, c)
  local tokens, err
  local min_ttl = args.min_ttl
  if min_ttl ~= nil and not (min_ttl >= 0 and min_ttl <= 86400) then
    error(fail(EXIT.usage, "--min-ttl must be a number of seconds in 0..86400"), 0)
  end
  if args.audience then
    tokens, err = cm:api_credentials(args.audience, { scope = args.scope, min_ttl = min_ttl })
  else
    tokens, err = cm:credentials({ min_ttl = min_ttl })
  end
  check(tokens, err)
  -- scripts paste it into a header ($(auth0 token)): a CR, LF or space would add their own
  if type(tokens.access_token) ~= "string" or tokens.access_token:find("[^\33-\126]") then
    error(fail(EXIT.failure, "the access token has characters a token cannot have; not printed"), 0)
  end
  if args.json then
    cli.print_json { access_token = tokens.access_token, token_type = tokens.token_type, scope = tokens.scope,
      expires_at = tokens.expires_at, expires_in = tokens.expires_at and math.max(0, tokens.expires_at - os.time()) }
  else
    io.write(tokens.access_token, "\n")
  end
  return EXIT.ok
end

--- auth0 whoami: the stored ID token's claims (verified when they were saved).
function _M.whoami(s, args)
  local cm = stored(s, client(s))
  local claims = cm:user()
  if not claims then error(fail(EXIT.login_required, "no ID token stored (log in with scope openid)"), 0) end
  print_table(claims, args.json)
  return EXIT.ok
end

--- auth0 userinfo
function _M.userinfo(s, args)
  local c = client(s)
  local tokens = check(stored(s, c):credentials())
  print_table(check(c:userinfo(tokens.access_token)), args.json)
  return EXIT.ok
end

--- auth0 logout: revokes at Auth0, then clears; a revoke that fails keeps the credentials.
function _M.logout(s, args)
  local c = client(s)
  local cm = cli.credentials(s, c)
  if not cm:has_valid(0) then
    local err = store_problem(cm)   -- another profile's session: left as it is, and said
    if err then check(nil, err) end
    if not args.json then term.say("not logged in\n") end
  else
    check(cm:clear({ revoke = true }))
    if not args.json then term.say("logged out (refresh token revoked)\n") end
  end
  if args.json then cli.print_json { logged_out = true } end
  return EXIT.ok
end

-- The MFA API token: an access token for https://<tenant>/mfa/ from the stored refresh token.
local MFA_SCOPE = "enroll read:authenticators remove:authenticators"
local function mfa_token(s, c)
  local base = (s.base_url or ("https://" .. s.domain)):gsub("/+$", "")
  local tokens = check(stored(s, c):api_credentials(base .. "/mfa/", { scope = MFA_SCOPE }))
  return tokens.access_token
end

--- auth0 mfa list | enroll TYPE | delete ID
function _M.mfa(s, args, t)
  local c = client(s)
  local token = mfa_token(s, c)
  if args.mfa_command == "list" then
    local list = check(c:mfa_authenticators(token))
    if args.json then cli.print_json(list) else
      for _, a in ipairs(list) do
        io.write(("%-40s %-10s %-8s %s\n"):format(term.clean(a.id), term.clean(a.authenticator_type),
          tostring(a.active), term.clean(a.oob_channel or a.name or "")))
      end
    end
  elseif args.mfa_command == "delete" then
    check(c:mfa_delete_authenticator(token, args.id))
    if args.json then cli.print_json { deleted = args.id } else term.say("deleted ", args.id, "\n") end
  else
    local kind = args.type
    local p = { token = token }
    if kind == "otp" then p.authenticator_types = { "otp" }
    else
      p.authenticator_types = { "oob" }
      p.oob_channels = { kind == "push" and "auth0" or kind }
      p.phone_number, p.email = args.phone, args.email
    end
    local r = check(c:mfa_associate(p))
    if args.json then cli.print_json { authenticator_type = r.authenticator_type, barcode_uri = r.barcode_uri,
      oob_channel = r.oob_channel }
    else
      if r.barcode_uri then require("auth0.cli.login").show_qr(t, r.barcode_uri) end
      term.say("enrollment started (", term.clean(r.authenticator_type), "); confirm it with the first code\n")
    end
    if r.recovery_codes and r.recovery_codes[1] then
      term.say("recovery code (shown once, keep it safe): ", term.clean(r.recovery_codes[1]), "\n")
    end
  end
  return EXIT.ok
end

local function read_secret(args)
  if args.file then
    local text = require("auth0.cli.settings").read_file(args.file)
    if not text then error(fail(EXIT.failure, "cannot read " .. args.file), 0) end
    return (text:gsub("%s+$", ""))
  end
  if args.source == "-" then return ((io.read("a") or ""):gsub("%s+$", "")) end
  if args.source then
    error(fail(EXIT.usage, "a TOTP secret is not accepted on the command line (it would show in ps):"
      .. " use --file F or '-' for standard input"), 0)
  end
  error(fail(EXIT.usage, "give --file F or '-'"), 0)
end

--- auth0 totp --file F | -
function _M.totp(_, args)
  local auth0 = require "auth0"
  local secret, opts = read_secret(args), {}
  if secret:find("^otpauth://") then
    local u, err = auth0.parse_otpauth(secret)
    if not u then error(fail(EXIT.failure, "bad otpauth URI: " .. tostring(err)), 0) end
    secret, opts = u.secret, { digits = u.digits, period = u.period, algorithm = u.algorithm }
  end
  local now = os.time()
  local ok, code = pcall(auth0.totp, secret, { time = now, digits = opts.digits, period = opts.period,
    algorithm = opts.algorithm })
  if not ok then error(fail(EXIT.failure, "bad TOTP secret"), 0) end
  local period = opts.period or 30
  local left = period - now % period
  if args.json then cli.print_json { code = code, expires_in = left } else io.write(code, "  (", left, " s left)\n") end
  return EXIT.ok
end

--- auth0 qr TEXT | -
function _M.qr(_, args)
  if args.text ~= "-" and args.text:lower():find("^otpauth:") then
    error(fail(EXIT.usage, "an otpauth URI (it holds the TOTP secret) is not accepted on the command line"
      .. " (it would show in ps): give '-' and pipe it in"), 0)
  end
  local text = args.text == "-" and (io.read("a") or ""):gsub("\n$", "") or args.text
  local qr = require "auth0.qr"
  local m, err = qr(text)
  if not m then error(fail(EXIT.failure, tostring(err)), 0) end
  io.write(m:terminal())
  return EXIT.ok
end

--- auth0 emulator [--port N] | auth0 emulator code EMAIL|PHONE
function _M.emulator(s, args)
  return require("auth0.cli.emulator").run(s, args)
end

--- auth0 help [COMMAND]
function _M.help(p, args)
  if args.topic then
    local ok = pcall(p.parse, p, { args.topic, "--help" })
    if not ok then term.say("auth0: no command ", args.topic, "\n"); return EXIT.usage end
    return EXIT.ok
  end
  io.write(p:get_help(), "\n")
  return EXIT.ok
end

return _M
