-- The `auth0` command (bin/auth0) as a script or a person runs it: a real process against the
-- emulator over HTTPS, codes fed through standard input (a FIFO, so the test answers after
-- the code was sent) or through a pseudo-terminal (`script`), exit statuses, JSON output,
-- and no secret on stdout (except the token `token` prints), stderr or the command line.
local emu = require "spec.support.emulator"
local auth0 = require "auth0"
local cjson = require("cjson.safe").new()

local util = require "spec.support.util"
local cli = require "spec.support.cli"
local q, read, write = util.q, util.read, util.write

local srv, work, n = nil, nil, 0

-- The emulator's settings for the command, with `extra` on top.
local function env(extra)
  local e = { AUTH0_BASE_URL = srv.base_url, AUTH0_CA_FILE = srv.ca_file, AUTH0_CLIENT_ID = "emu-native" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

-- Runs `auth0 args` to the end; returns status, stdout, stderr.
local function run(args, opts)
  opts = opts or {}
  return cli.run(work, args, env(opts.env), opts.stdin)
end

-- Starts `auth0 args` in the background with a FIFO on stdin (or, with opts.pty, under
-- `script` so that it has a terminal). Returns a handle: :send(line), :wait() -> status, out, err.
local function start(args, opts)
  opts = opts or {}
  n = n + 1
  local base = work .. "/bg" .. n
  os.execute("mkfifo " .. q(base .. ".fifo"))
  local cmd = cli.env(work, env(opts.env)) .. " bin/auth0 " .. args
  if opts.pty then cmd = "script -qfec " .. q(cmd) .. " /dev/null" end
  local pid = io.popen(("(%s <%s >%s.out 2>%s.err; echo $? >%s.rc) & echo $!"):format(cmd, q(base .. ".fifo"),
    base, base, base)):read("l")
  local fifo = assert(io.open(base .. ".fifo", "w"))
  local h = { pid = tonumber(pid), base = base }
  function h.send(_, line) fifo:write(line, "\n"); fifo:flush() end
  function h.output() return (read(base .. ".out") or "") .. (read(base .. ".err") or "") end
  function h.wait(_, seconds)
    fifo:close()
    local deadline = os.time() + (seconds or 30)
    while not read(base .. ".rc") and os.time() <= deadline do auth0.core.sleep(0.05) end
    return tonumber(read(base .. ".rc")), read(base .. ".out"), read(base .. ".err")
  end
  -- the auth0 process itself (lua5.4 under the shell, or under script)
  function h.lua_pid()
    return tonumber(util.tool("pgrep -f '^lua5.4 bin/auth0 " .. args:gsub("'", "") .. "$'"):match("%d+"))
  end
  return h
end

local function wait_for(fn, what)
  for _ = 1, 400 do
    local v = fn()
    if v then return v end
    auth0.core.sleep(0.05)
  end
  error("timed out waiting for " .. what)
end

local function codes(to)
  local out = {}
  for _, m in ipairs(emu.control("GET", "/outbox?to=" .. auth0.core.pct_escape(to)).messages) do
    if m.code then out[#out + 1] = m.code end
  end
  return out
end

local function stored()
  local text = read(work .. "/state/lua-auth0/default/credentials")
  return text and cjson.decode(text)
end

local function refreshes() return emu.control("GET", "/refresh_tokens").refreshes end

-- bin/auth0 is a Lua 5.4 program using build/lua5.4 whatever the pass: it runs once
if not util.first_pass() then
  describe("the auth0 command", function() pending("runs once, in the Lua 5.4 pass") end)
  return
end

describe("the auth0 command", function()
  setup(function()
    srv = emu.start()
    work = io.popen("mktemp -d /tmp/auth0-cli-spec.XXXXXX"):read("l")
  end)
  teardown(function() if work then os.execute("rm -rf " .. q(work)) end end)
  before_each(function()
    emu.reset()
    os.execute("rm -rf " .. q(work .. "/state") .. " " .. q(work .. "/config"))
  end)

  it("answers usage errors with status 2 and one line on stderr", function()
    local status, out, err, _ = run("--bogus")
    assert.same({ 2, "" }, { status, out })
    assert.equal("auth0: unknown option '--bogus'\nTry 'auth0 --help'.\n", err)
    status, _, err = run("login")
    assert.same({ 2, "auth0: give --email or --phone\n" }, { status, err })
    status, _, err = run("totp JBSWY3DPEHPK3PXP")
    assert.equal(2, status)
    assert.matches("not accepted on the command line", err, 1, true)
    assert.is_nil(err:find("JBSWY3DPEHPK3PXP", 1, true))
    status, _, err = run("token", { env = { AUTH0_BASE_URL = false } })
    assert.same({ 2, "auth0: no tenant: set --domain, AUTH0_DOMAIN or a profile (see auth0 help)\n" }, { status, err })
  end)

  it("prints its version, help with the exit statuses, and a bash completion", function()
    local status, out = run("--version")
    assert.same({ 0, "auth0 (lua-auth0) " .. auth0.core.version .. "\n" }, { status, out })
    status, out = run("help")
    assert.equal(0, status)
    assert.matches("Exit status: 0 ok, 1 failure, 2 usage, 3 login required, 4 MFA required", out, 1, true)
    status, out = run("completion")
    assert.equal(0, status)
    assert.matches("^_auth0%(%)", out)
  end)

  it("exits 3 when there are no credentials", function()
    local status, out, err = run("token")
    assert.same({ 3, "", "auth0: not logged in for profile default (run: auth0 login)\n" }, { status, out, err })
  end)

  it("logs in without a terminal (a wrong code first), then prints and renews the token", function()
    local email = "cli@example.com"
    local p = start("login --email " .. email)
    local code = wait_for(function() return codes(email)[1] end, "the code")
    p:send(code == "000000" and "111111" or "000000")
    p:send(code)
    local status, out, err = p:wait()
    assert.equal(0, status, err)
    assert.equal("", out)
    assert.matches("logged in as email|", err, 1, true)
    assert.is_nil(err:find(code, 1, true))
    local saved = stored()
    assert.is_string(saved and saved.refresh_token)
    -- token: the access token and nothing else
    local at
    status, at, err = run("token")
    assert.same({ 0, "" }, { status, err })
    assert.matches("^[%w_-]+%.[%w_-]+%.[%w_-]+\n$", at)
    local j
    status, j = run("token --json")
    assert.equal(0, status)
    j = cjson.decode(j)
    assert.equal(at, j.access_token .. "\n")
    assert.is_nil(j.refresh_token)
    assert.is_number(j.expires_at)
    -- past expiry (the emulator's clock) and asked for more than is left: exactly one refresh,
    -- the rotated refresh token stored, and the new access token accepted
    auth0.core.sleep(1.05)   -- a second boundary: the token has less than its lifetime left
    emu.control("POST", "/clock", { advance = 86400 + 60 })
    local old_rt, before = saved.refresh_token, refreshes()
    local at2
    status, at2 = run("token --min-ttl 86400")
    assert.equal(0, status)
    assert.not_equal(at, at2)
    assert.not_equal(old_rt, stored().refresh_token)
    status, out = run("token")   -- valid now: no second refresh
    assert.same({ 0, at2 }, { status, out })
    assert.equal(before + 1, refreshes())
    status, out = run("userinfo --json")
    assert.equal(0, status)
    assert.equal(email, cjson.decode(out).email)
    -- whoami: the ID token's claims
    status, out = run("whoami --json")
    assert.equal(0, status)
    assert.equal(email, cjson.decode(out).email)
  end)

  local function last_link(to)
    local out = emu.control("GET", "/outbox?to=" .. auth0.core.pct_escape(to)).messages
    local m = out[#out]
    return m and m.link
  end

  it("logs in with a magic link pasted on standard input (--link without a terminal)", function()
    local email = "paste@example.com"
    local p = start("login --link --email " .. email)
    local link = wait_for(function() return last_link(email) end, "the link")
    p:send(link)
    local status, out, err = p:wait()
    assert.equal(0, status, err)
    assert.equal("", out)
    assert.matches("logged in as email|", err, 1, true)
    assert.is_nil(err:find(link:match("verification_code=(%d+)"), 1, true))
    assert.is_string(stored().refresh_token)
  end)

  it("logs in with a magic link opened in a browser that comes back to the loopback (--link on a terminal)", function()
    local email = "click@example.com"
    emu.control("POST", "/callbacks", { client_id = "emu-native", callbacks = { "http://127.0.0.1/callback" } })
    local p = start("login --link --email " .. email, { pty = true })
    local link = wait_for(function() return last_link(email) end, "the link")
    wait_for(function() return p.output():find("open the link sent to", 1, true) end, "the instructions")
    -- the "browser": follows the emulator's redirect to the command's loopback listener
    local page = util.tool("curl -s -L --max-redirs 2 --cacert " .. q(srv.ca_file) .. " " .. q(link))
    assert.matches("close", page:lower(), 1, true)
    local status, out = p:wait()
    assert.equal(0, status, out)
    assert.matches("logged in as email|", out, 1, true)
    assert.is_string(stored().refresh_token)
  end)

  it("logs out: the refresh token is revoked at the emulator, then the store is empty", function()
    local email = "out@example.com"
    local p = start("login --email " .. email)
    p:send(wait_for(function() return codes(email)[1] end, "the code"))
    assert.equal(0, (p:wait()))
    local rt = stored().refresh_token
    local status, _, err = run("logout")
    assert.same({ 0, "logged out (refresh token revoked)\n" }, { status, err })
    assert.is_nil(stored())
    local c = auth0.new { base_url = srv.base_url, ca_file = srv.ca_file, client_id = "emu-native" }
    local t, rerr = c:refresh(rt)
    assert.is_nil(t)
    assert.equal("invalid_grant", rerr.code)
    assert.equal(3, (run("token")))
  end)

  it("computes TOTP codes from a secret file, agreeing with oathtool", function()
    write(work .. "/totp", "JBSWY3DPEHPK3PXP\n")
    local status, out = run("totp --file " .. q(work .. "/totp") .. " --json")
    assert.equal(0, status)
    local j = cjson.decode(out)
    local want = util.tool("oathtool --totp -b JBSWY3DPEHPK3PXP"):match("%d+")
    assert.equal(want, j.code)
    assert.is_true(j.expires_in >= 1 and j.expires_in <= 30)
  end)

  it("logs in with MFA from a TOTP secret file", function()
    local email = "totp@example.com"
    local u = emu.control("POST", "/users", { connection = "email", email = email, mfa = { "otp" } })
    emu.control("POST", "/mfa/authenticators", { user_id = u.user_id, type = "otp", secret = "JBSWY3DPEHPK3PXP" })
    write(work .. "/totp", "JBSWY3DPEHPK3PXP\n")
    local p = start("login --email " .. email .. " --totp-secret-file " .. q(work .. "/totp"))
    p:send(wait_for(function() return codes(email)[1] end, "the code"))
    local status, _, err = p:wait()
    assert.equal(0, status, err)
    assert.is_string(stored().refresh_token)
  end)

  it("lists and deletes the user's authenticators through the MFA API audience", function()
    local email = "mfa-api@example.com"
    local u = emu.control("POST", "/users", { connection = "email", email = email, mfa = { "otp" } })
    emu.control("POST", "/mfa/authenticators", { user_id = u.user_id, type = "otp", secret = "JBSWY3DPEHPK3PXP" })
    emu.control("POST", "/refresh_tokens", { client_id = "emu-native", policies = { { audience = srv.base_url .. "/mfa/",
      scope = { "enroll", "read:authenticators", "remove:authenticators" } } } })
    write(work .. "/totp", "JBSWY3DPEHPK3PXP\n")
    local p = start("login --email " .. email .. " --totp-secret-file " .. q(work .. "/totp"))
    p:send(wait_for(function() return codes(email)[1] end, "the code"))
    -- the secret is read from its file: nothing secret on any command line meanwhile
    local ps = util.tool("ps -eo args")
    assert.is_nil(ps:find("JBSWY3DPEHPK3PXP", 1, true))
    assert.equal(0, (p:wait()))
    local status, out = run("mfa list --json")
    assert.equal(0, status, out)
    local list = cjson.decode(out)
    local otp
    for _, a in ipairs(list) do if a.authenticator_type == "otp" then otp = a end end
    assert.is_table(otp, out)
    local err
    local _
    status, _, err = run("mfa delete " .. q(otp.id))
    assert.same({ 0, "deleted " .. otp.id .. "\n" }, { status, err })
    status, out = run("mfa list --json")
    assert.equal(0, status)
    for _, a in ipairs(cjson.decode(out)) do assert.not_equal(otp.id, a.id) end
  end)

  it("prints a QR code in the terminal, two modules per character row", function()
    local uri = "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP"
    -- a URI holding a secret is refused as a bare argument (it would show in ps)
    local status, out, err = run("qr " .. q(uri))
    assert.same({ 2, "" }, { status, out })
    assert.matches("not accepted on the command line", err, 1, true)
    -- from standard input: exactly the module's terminal rendering
    status, out = run("qr -", { stdin = uri .. "\n" })
    assert.same({ 0, auth0.qr(uri):terminal() }, { status, out })
    local size = auth0.qr(uri).size
    local _, lines = out:gsub("\n", "")
    assert.equal(math.ceil((size + 8) / 2), lines)   -- a quiet zone of 4 modules each side
  end)

  it("logs in through a terminal: hidden code, MFA menu, a push approved while the spinner runs", function()
    local email = "tty@example.com"
    local u = emu.control("POST", "/users", { connection = "email", email = email, mfa = { "push-notification", "otp" } })
    emu.control("POST", "/mfa/authenticators", { user_id = u.user_id, type = "otp", secret = "JBSWY3DPEHPK3PXP" })
    emu.control("POST", "/mfa/authenticators", { user_id = u.user_id, type = "push", name = "Phone" })
    local p = start("login --email " .. email, { pty = true })
    local code = wait_for(function() return codes(email)[1] end, "the code")
    -- typed once the prompt shows, as a person would (the terminal echoes what is typed before)
    wait_for(function() return p.output():find("code sent to", 1, true) end, "the prompt")
    p:send(code)
    wait_for(function() return p.output():find("choose a second factor", 1, true) end, "the menu")
    local menu = p.output()
    local push_n = menu:match("(%d)%) push")
    assert.is_string(push_n, menu)
    p:send(push_n)
    local tx = wait_for(function()
      return emu.control("GET", "/guardian?user_id=" .. auth0.core.pct_escape(u.user_id)).transactions[1]
    end, "the push")
    wait_for(function() return p.output():find("waiting for approval", 1, true) end, "the spinner")
    emu.control("POST", "/guardian/" .. tx.oob_code .. "/approve", {})
    local status, out = p:wait()
    assert.equal(0, status, out)
    assert.matches("logged in as", out, 1, true)
    assert.is_nil(out:find(code, 1, true))   -- not echoed
    assert.is_string(stored().refresh_token)
  end)

  it("exits 130 on Ctrl-C during a push wait, and saves nothing", function()
    local email = "int@example.com"
    local u = emu.control("POST", "/users", { connection = "email", email = email, mfa = { "push-notification" } })
    emu.control("POST", "/mfa/authenticators", { user_id = u.user_id, type = "push", name = "Phone" })
    local p = start("login --email " .. email .. " --mfa push")
    p:send(wait_for(function() return codes(email)[1] end, "the code"))
    wait_for(function()
      return emu.control("GET", "/guardian?user_id=" .. auth0.core.pct_escape(u.user_id)).transactions[1]
    end, "the push")
    local pid = wait_for(p.lua_pid, "the process")
    os.execute("kill -INT " .. pid)
    local status, _, err = p:wait()
    assert.same({ 130, "auth0: interrupted\n" }, { status, err })
    assert.is_nil(stored())
  end)

  it("exits 5 when rate limited, with the wait in the message", function()
    emu.control("POST", "/rate_limits", { passwordless_start = { limit = 1, window = 3600 } })
    local p = start("login --email rl@example.com")
    p:wait(5)
    local status, _, err = run("login --email rl@example.com")
    assert.equal(5, status)
    assert.matches("retry in %d+ s%)\n$", err)
  end)

  it("exits 4 when a refresh asks for MFA", function()
    local email = "mfa4@example.com"
    local u = emu.control("POST", "/users", { connection = "email", email = email,
      mfa = { factors = { "otp" }, requirements = true, refresh = false } })
    emu.control("POST", "/mfa/authenticators", { user_id = u.user_id, type = "otp", secret = "JBSWY3DPEHPK3PXP" })
    write(work .. "/totp", "JBSWY3DPEHPK3PXP\n")
    local p = start("login --email " .. email .. " --totp-secret-file " .. q(work .. "/totp"))
    p:send(wait_for(function() return codes(email)[1] end, "the code"))
    assert.equal(0, (p:wait()))
    emu.control("POST", "/users", { connection = "email", email = email,
      mfa = { factors = { "otp" }, requirements = true, refresh = true } })
    auth0.core.sleep(1.05)
    local status, out, err = run("token --min-ttl 86400")
    assert.same({ 4, "" }, { status, out })
    assert.matches("^auth0: .*mfa_required", err)
    assert.is_nil(err:find("mfa_token", 1, true) and err:find("eyJ", 1, true))
  end)
end)
