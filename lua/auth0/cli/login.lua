--- `auth0 login`: the passwordless login with MFA through auth0.flow, then the credentials
-- saved to the profile's store. On a terminal it prompts (codes without echo, a numbered MFA
-- menu, a spinner while a push waits, the enrollment QR and the recovery code once);
-- without one it reads codes from standard input, one per line, and `--totp-secret-file`
-- computes TOTP codes itself, never the same time step twice.
local cli = require "auth0.cli"
local term = require "auth0.cli.term"
local EXIT, fail = cli.EXIT, cli.fail

local _M = {}

--- Prints `uri` as a QR code on stderr (a terminal's user scans it), and the secret in it.
function _M.show_qr(t, uri)
  local ok, qr = pcall(require, "auth0.qr")
  local m = ok and qr(uri)
  if m then term.say(m:terminal { invert = t.err_tty }) end
  local secret = uri:match("[?&]secret=([^&]+)")
  term.say("scan the QR code with an authenticator app", secret and (", or type the key " .. term.clean(secret)) or "", "\n")
end

-- TOTP codes from a secret file: never the same time step twice, waiting for the next one.
local function totp_source(path)
  local auth0 = require "auth0"
  local text = require("auth0.cli.settings").read_file(path)
  if not text then error(fail(EXIT.failure, "cannot read the TOTP secret file " .. path), 0) end
  text = text:gsub("%s+$", "")
  local secret, period, digits, algorithm = text, 30, nil, nil
  if text:find("^otpauth://") then
    local u, err = auth0.parse_otpauth(text)
    if not u then error(fail(EXIT.failure, "bad otpauth URI in " .. path .. ": " .. tostring(err)), 0) end
    secret, period, digits, algorithm = u.secret, u.period or 30, u.digits, u.algorithm
  end
  local last_step
  return function()
    local now = os.time()
    local step = now // period
    if last_step and step <= last_step then
      local wait = (last_step + 1) * period - now
      term.say("waiting ", wait, " s for the next TOTP code\n")
      require("auth0.core").sleep(wait)
      now = os.time()
      step = now // period
    end
    last_step = step
    local ok, code = pcall(auth0.totp, secret, { time = now, period = period, digits = digits, algorithm = algorithm })
    if not ok then error(fail(EXIT.failure, "bad TOTP secret in " .. path), 0) end
    return code
  end
end

local function label(a)
  local kind = a.authenticator_type == "oob" and (a.oob_channel or "oob") or a.authenticator_type
  if kind == "auth0" then kind = "push" end
  return kind .. (a.name and (" (" .. a.name .. ")") or "")
end

local function kind_of(a)
  local k = a.authenticator_type == "oob" and a.oob_channel or a.authenticator_type
  return k == "auth0" and "push" or k
end

local ENROLL = {
  otp = { type = "otp" }, push = { type = "push" }, sms = { type = "sms" }, voice = { type = "voice" },
  email = { type = "email" },
}

local function prompts(args, t)
  local totp = args.totp_secret_file and totp_source(args.totp_secret_file)
  local want = args.mfa or (totp and "otp") or nil
  local p = {}
  function p.ask_link(f)
    local line = t:ask("paste the link sent to " .. f.identifier .. ": ")
    if line == nil then error(fail(EXIT.failure, "no link on standard input"), 0) end
    return line
  end
  function p.ask_code(f)
    if f.error and t.interactive then term.say(t:paint("red", term.clean(f.error.message or f.error)), "\n") end
    local line = t:ask("code sent to " .. f.identifier .. ": ", true)
    if line == nil then error(fail(EXIT.failure, "no code on standard input"), 0) end
    return line
  end
  function p.choose_authenticator(f, list)
    if f.enroll_required or #list == 0 then
      local kind = want or "otp"
      if t.interactive and not args.mfa then
        term.say("this account must enroll a second factor:\n")
        local kinds = { "otp", "push", "sms", "voice", "email" }
        for i, k in ipairs(kinds) do term.say(("  %d) %s\n"):format(i, k)) end
        local n = tonumber(t:ask("choose [1]: ") or "") or 1
        kind = kinds[n] or "otp"
      end
      local e = { type = ENROLL[kind] and kind or "otp" }
      if kind == "sms" or kind == "voice" then
        e.phone_number = args.phone or t:ask("phone number (+E.164): ")
      elseif kind == "email" then e.email = args.email or t:ask("e-mail address: ") end
      f:enroll(e)
      return nil
    end
    if want == "recovery" then
      local code = t:ask("recovery code: ", true)
      if code then f:submit_recovery_code(code) end
      return nil
    end
    if want then
      for _, a in ipairs(list) do if kind_of(a) == want then return a end end
      if not t.interactive then error(fail(EXIT.failure, "no " .. want .. " authenticator enrolled"), 0) end
    end
    if not t.interactive or #list == 1 then return list[1] end
    if f.error then term.say(t:paint("red", term.clean(f.error.message or f.error)), "\n") end
    term.say("choose a second factor:\n")
    for i, a in ipairs(list) do term.say(("  %d) %s\n"):format(i, term.clean(label(a)))) end
    if f.has_recovery_code ~= false then term.say(("  %d) a recovery code\n"):format(#list + 1)) end
    local n = tonumber(t:ask("choose [1]: ") or "") or 1
    if n == #list + 1 then
      local code = t:ask("recovery code: ", true)
      if code then f:submit_recovery_code(code) end
      return nil
    end
    return list[n] or list[1]
  end
  function p.ask_mfa_code(f)
    if f.enrollment and f.enrollment.barcode_uri and not f._qr_shown then
      f._qr_shown = true
      _M.show_qr(t, f.enrollment.barcode_uri)
    end
    if totp and (f.authenticator == nil or f.authenticator.authenticator_type == "otp") then return totp() end
    local line = t:ask((f.challenge_type == "otp" and "authenticator app code: " or "code we sent: "), true)
    if line == nil then error(fail(EXIT.failure, "no MFA code on standard input"), 0) end
    return line
  end
  -- every prompt first stops the login if Ctrl-C landed in one of the library's callbacks
  for name, fn in pairs(p) do
    p[name] = function(...) cli.check_interrupt(); return fn(...) end
  end
  local frame = 0
  function p.on_push_wait(_, waited)
    cli.check_interrupt()
    frame = frame + 1
    t:spin(frame, ("waiting for approval on your phone %d s (Ctrl-C to stop)"):format(math.floor(waited)))
  end
  return p
end

--- Runs the login and saves the credentials. Returns the exit status.
function _M.run(c, s, args, t)
  local email, phone = args.email, args.phone
  if not email and not phone then error(fail(EXIT.usage, "give --email or --phone"), 0) end
  local flow = require "auth0.flow"
  local opts = { connection = args.connection or s.connection or (email and "email" or "sms"),
    email = email, phone_number = phone, audience = args.audience or s.audience,
    scope = args.scope or s.scope or "openid profile email offline_access" }
  local p = prompts(args, t)
  local lb
  if args.link then
    opts.send = "link"
    if t.interactive then
      -- the browser that opens the link comes back to this computer (RFC 8252 loopback)
      lb = require("auth0").loopback { port = 0, path = "/callback", timeout = 900 }
      opts.loopback, p.ask_link = lb, nil
      term.say("open the link sent to ", email or phone, " in a browser on this computer (Ctrl-C to stop)\n")
    end
  end
  local tokens, err, f = flow.run(c, opts, p)
  if lb then lb:close() end
  t:spin_done()
  cli.check_interrupt()   -- nothing is saved after a Ctrl-C, even if the login completed
  if not tokens then
    local status, line = cli.classify(err)
    error(fail(status, line), 0)
  end
  local cm = cli.credentials(s, c)
  local ok, serr = cm:save(tokens)
  if not ok then error(fail(EXIT.failure, "could not save the credentials: " .. tostring(serr)), 0) end
  if f and f.recovery_code then
    term.say(t:paint("yellow", "new recovery code (shown once, keep it safe): "), term.clean(f.recovery_code), "\n")
  end
  local claims = cm:user()
  if args.json then
    cli.print_json { logged_in = true, sub = claims and claims.sub, profile = s.profile }
  else
    term.say(t:paint("green", "logged in"), claims and claims.sub and (" as " .. term.clean(claims.sub)) or "", "\n")
  end
  return EXIT.ok
end

return _M
