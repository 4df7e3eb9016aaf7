-- Magic links over real HTTPS (libcurl -> nginx -> emulator), issue #16: the link from the
-- outbox opened by curl (no redirect following), its Location fed to the completion; a pasted
-- link; every refusal; MFA after a link; secrets kept out of logs and errors.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"

local server
local CB = "https://app.example/callback"

local function ctl(method, path, body)
  local r, status = emu.control(method, path, body)
  assert(status == 200, "control " .. path .. " answered " .. tostring(status))
  return r
end

local function client(opts)
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return auth0.new(o)
end

local function last_msg(to)
  local m = ctl("GET", "/outbox?to=" .. auth0.core.pct_escape(to)).messages
  return m[#m]
end

-- Opens `url` with curl, not following redirects. @return status, Location, body
-- (curl runs without the ASan pass's LD_PRELOAD, under which it hangs.)
local function open(url)
  local out = os.tmpname()
  local cmd = string.format("env -u LD_PRELOAD curl -s --cacert '%s' -o '%s' -w '%%{http_code} %%{redirect_url}' '%s'",
    server.ca_file, out, (url:gsub("'", "%%27")))
  local p = assert(io.popen(cmd))
  local line = p:read("*a")
  p:close()
  local f = io.open(out)
  local body = f and f:read("*a") or ""
  if f then f:close() end
  os.remove(out)
  local status, loc = line:match("^(%d+) ?(.*)$")
  return tonumber(status), loc ~= "" and loc or nil, body
end

local function logger()
  local lines = {}
  return lines, function(level, msg, fields)
    local parts = { level, msg }
    for k, v in pairs(fields) do parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
    lines[#lines + 1] = table.concat(parts, " ")
  end
end

local function absent(lines, secret)
  for _, l in ipairs(lines) do assert.is_nil(l:find(secret, 1, true), "secret in log: " .. l) end
end

describe("magic links over HTTPS", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    ctl("POST", "/callbacks", { client_id = "emu-native", callbacks = { CB } })
  end)

  describe("from the link itself", function()
    it("logs in with a pasted link (OTP grant)", function()
      local c = client()
      assert(c:passwordless_start { connection = "email", email = "paste@example.com", send = "link" })
      local msg = last_msg("paste@example.com")
      assert.equal("link", msg.kind)
      local tokens, err = c:passwordless_login_link(msg.link)
      assert.is_nil(err)
      local claims = assert(c:verify_id_token(tokens.id_token))
      assert.equal("paste@example.com", claims.email)
      -- the code is spent: the same link again is refused by the server
      local again, aerr = c:passwordless_login_link(msg.link)
      assert.is_nil(again)
      assert.equal("invalid_grant", aerr.code)
      c:close()
    end)

    it("refuses a malformed or foreign link without sending anything", function()
      local lines, on_log = logger()
      local c = client({ on_log = on_log })
      assert(c:passwordless_start { connection = "email", email = "f@example.com", send = "link" })
      local link = last_msg("f@example.com").link
      local code = link:match("verification_code=(%d+)")
      local before = c:stats().requests
      local bad = {
        "not a url",
        link:gsub("client_id=emu%-native", "client_id=other-app"),
        link:gsub("^https://[^/]+", "https://evil.example"),
        link:gsub("/passwordless/verify_redirect", "/other"),
        link:gsub("verification_code=%d+", "verification_code="),
        link:gsub("&email=[^&]*", ""),
        link .. "&client_id=emu-native",
      }
      for _, u in ipairs(bad) do
        local t, err = c:passwordless_login_link(u)
        assert.is_nil(t)
        assert.equal("invalid_link", err.code)
        assert.equal("invalid_link", err.reason)
        assert.is_nil(tostring(err):find(code, 1, true))
      end
      assert.equal(before, c:stats().requests)
      absent(lines, code)
      -- with a callback: the same answer from the next poll
      local got
      c:passwordless_login_link("https://evil.example/x", function(t, e) got = { t, e } end)
      assert.is_nil(got)
      c:poll(0)
      assert.equal("invalid_link", got[2].code)
      assert.has_error(function() c:passwordless_login_link(42) end)
      c:close()
    end)
  end)

  describe("from the redirect", function()
    local function start(c, email, extra)
      local p = { connection = "email", email = email, send = "link", redirect_uri = CB }
      for k, v in pairs(extra or {}) do p[k] = v end
      local r, link = c:passwordless_start(p)
      assert.is_table(r)
      return link, last_msg(email).link
    end

    it("code: opens the link, exchanges the code with PKCE, checks state and nonce", function()
      local lines, on_log = logger()
      local c = client({ on_log = on_log })
      local link, url = start(c, "code@example.com")
      assert.matches("^[%w_-]+$", link.state)
      assert.matches("state=" .. link.state:gsub("%-", "%%-"), url)
      assert.matches("code_challenge_method=S256", url)
      local status, loc = open(url)
      assert.equal(302, status)
      assert.equal(CB .. "?", loc:sub(1, #CB + 1))
      local code = loc:match("[?&]code=([^&]+)")
      assert.is_string(code)
      local tokens, err = c:passwordless_complete_link(loc, link)
      assert.is_nil(err)
      local claims = assert(c:verify_id_token(tokens.id_token, { nonce = link.nonce }))
      assert.equal("code@example.com", claims.email)
      assert.equal(link.nonce, claims.nonce)
      -- the code is one use
      local again, aerr = c:passwordless_complete_link(loc, link)
      assert.is_nil(again)
      assert.equal("invalid_grant", aerr.code)
      -- the link is one use too: opening it again redirects with an error
      local s2, loc2 = open(url)
      assert.equal(302, s2)
      assert.matches("error=access_denied", loc2)
      for _, secret in ipairs{ link.state, link.nonce, link.code_verifier, code, url:match("verification_code=(%d+)") } do
        absent(lines, secret)
        assert.is_nil(tostring(aerr):find(secret, 1, true))
      end
      c:close()
    end)

    it("code with a callback: the exchange and the nonce check run from poll", function()
      local c = client()
      local link, got
      c:passwordless_start({ connection = "email", email = "cb@example.com", send = "link", redirect_uri = CB },
        function(r, e, l) assert.is_nil(e); assert.is_table(r); link = l end)
      while link == nil do c:poll(50) end
      local _, loc = open(last_msg("cb@example.com").link)
      c:passwordless_complete_link(loc, link, function(t, e) got = { t, e } end)
      while got == nil do c:poll(50) end
      assert.is_nil(got[2])
      assert.is_string(got[1].access_token)
      c:close()
    end)

    it("token id_token: reads the fragment and checks the nonce", function()
      local c = client()
      local link, url = start(c, "frag@example.com", { response_type = "token id_token" })
      assert.is_nil(link.code_verifier)
      local status, loc = open(url)
      assert.equal(302, status)
      assert.equal(CB .. "#", loc:sub(1, #CB + 1))
      local tokens, err = c:passwordless_complete_link(loc, link)
      assert.is_nil(err)
      assert.is_string(tokens.access_token)
      -- another login's nonce is refused
      local t2, e2 = c:passwordless_complete_link(loc, { state = link.state, nonce = "other" })
      assert.is_nil(t2)
      assert.equal("invalid_id_token", e2.code)
      c:close()
    end)

    it("refuses a wrong state without sending anything", function()
      local c = client()
      local link, url = start(c, "state@example.com")
      local _, loc = open(url)
      local before = c:stats().requests
      local t, err = c:passwordless_complete_link(loc, { state = "forged", nonce = link.nonce })
      assert.is_nil(t)
      assert.equal("invalid_state", err.code)
      assert.equal(before, c:stats().requests)
      c:close()
    end)

    it("an expired link redirects with an error that becomes an auth0.Error", function()
      local c = client()
      local link, url = start(c, "old@example.com")
      ctl("POST", "/clock", { advance = 181 })
      local status, loc = open(url)
      assert.equal(302, status)
      local t, err = c:passwordless_complete_link(loc, link)
      assert.is_nil(t)
      assert.is_true(require("auth0.error").is(err))
      assert.equal("access_denied", err.code)
      assert.equal("Wrong email or verification code.", err.message)
      c:close()
    end)

    it("a superseded link and a wrong code are refused", function()
      local c = client()
      local _, first = start(c, "two@example.com")
      start(c, "two@example.com")
      local _, loc = open(first)
      assert.matches("error=access_denied", loc)
      local _, loc2 = open(first:gsub("verification_code=%d+", "verification_code=000000"))
      assert.matches("error=access_denied", loc2)
      c:close()
    end)

    it("three wrong codes kill the link; a code older than 60 s is refused", function()
      local c = client()
      local _, url = start(c, "three@example.com")
      local wrong = url:match("verification_code=(%d+)") == "000000" and "111111" or "000000"
      for _ = 1, 3 do
        local _, l = open((url:gsub("verification_code=%d+", "verification_code=" .. wrong)))
        assert.matches("Wrong%%20email", l)
      end
      local _, dead = open(url)
      assert.matches("maximum%%20number%%20of%%20attempts", dead)
      local link, url2 = start(c, "late@example.com")
      local _, loc = open(url2)
      ctl("POST", "/clock", { advance = 61 })
      local t, err = c:passwordless_complete_link(loc, link)
      assert.is_nil(t)
      assert.equal("invalid_grant", err.code)
      c:close()
    end)

    it("a redirect_uri that is not allowed, or another client, gets a 400 page", function()
      local c = client()
      local _, url = start(c, "cbx@example.com", { redirect_uri = "https://evil.example/cb" })
      local status, loc, body = open(url)
      assert.equal(400, status)
      assert.is_nil(loc)
      assert.matches("Callback URL mismatch", body)
      ctl("POST", "/clients", { client_id = "other-app" })
      local link2, url2 = start(c, "cby@example.com")
      local s3, loc3 = open((url2:gsub("client_id=emu%-native", "client_id=other-app")))
      assert.equal(400, s3)
      assert.is_nil(loc3)
      -- the code of one redirect_uri is refused for another
      local _, good = open(url2)
      local t, err = c:passwordless_complete_link(good, { state = link2.state, nonce = link2.nonce,
        code_verifier = link2.code_verifier, redirect_uri = "https://app.example/other" })
      assert.is_nil(t)
      assert.equal("invalid_grant", err.code)
      c:close()
    end)

    it("the code needs the PKCE verifier", function()
      local c = client()
      local link, url = start(c, "pkce@example.com")
      local _, loc = open(url)
      local t, err = c:passwordless_complete_link(loc, { state = link.state, nonce = link.nonce,
        code_verifier = "wrong-verifier-wrong-verifier-wrong-verifier" })
      assert.is_nil(t)
      assert.equal("invalid_grant", err.code)
      c:close()
    end)

    it("MFA after a link continues as after a code", function()
      local u = ctl("POST", "/users", { connection = "email", email = "mfa@example.com", mfa = "always" })
      local a = ctl("POST", "/mfa/authenticators", { user_id = u.user_id, type = "otp" }).authenticator
      local c = client()
      local link, url = start(c, "mfa@example.com")
      local _, loc = open(url)
      local t, err = c:passwordless_complete_link(loc, link)
      assert.is_nil(t)
      assert.equal("mfa_required", err.code)
      local tokens = assert(c:mfa_verify { mfa_token = err.mfa_token, otp = auth0.totp(a.secret) })
      assert.is_string(tokens.access_token)
      -- and from a pasted link
      assert(c:passwordless_start { connection = "email", email = "mfa@example.com", send = "link" })
      local t2, e2 = c:passwordless_login_link(last_msg("mfa@example.com").link)
      assert.is_nil(t2)
      assert.equal("mfa_required", e2.code)
      c:close()
    end)

    it("misuse raises", function()
      local c = client()
      assert.has_error(function() c:passwordless_start { connection = "email", email = "a@example.com",
        send = "code", redirect_uri = CB } end)
      assert.has_error(function() c:passwordless_start { connection = "email", email = "a@example.com",
        redirect_uri = CB, response_type = "token" } end)
      assert.has_error(function() c:passwordless_complete_link(CB .. "?code=x") end)
      assert.has_error(function() c:passwordless_complete_link(CB, { nonce = "n" }) end)
      c:close()
    end)
  end)
end)

describe("auth0.flow with send = \"link\"", function()
  local flow = require "auth0.flow"
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    ctl("POST", "/callbacks", { client_id = "emu-native", callbacks = { CB } })
  end)

  local function until_state(c, f, ...)
    local want = {}
    for _, s in ipairs{ ... } do want[s] = true end
    local deadline = os.time() + 10
    while not want[f.state] do
      assert(os.time() < deadline, "flow stuck in " .. f.state)
      c:poll(20)
    end
  end

  it("awaiting_link, then a pasted link: a refused link keeps the state, a good one finishes", function()
    local c = client()
    local seen = {}
    local f = flow.login(c, { connection = "email", email = "fl@example.com", send = "link",
      on_state = function(x) seen[#seen + 1] = x.state end })
    assert.equal("sending_link", f.state)
    assert.has_error(function() f:submit_code("123456") end)
    until_state(c, f, "awaiting_link")
    f:submit_link("https://evil.example/passwordless/verify_redirect?x=1")
    until_state(c, f, "awaiting_link", "failed", "done")
    assert.equal("awaiting_link", f.state)
    assert.equal("invalid_link", f.error.code)
    local link = last_msg("fl@example.com").link
    assert.equal("link", last_msg("fl@example.com").kind)
    f:submit_link(link)
    until_state(c, f, "done", "failed")
    assert.equal("done", f.state)
    assert.is_string(f.tokens.access_token)
    assert.same({ "sending_link", "awaiting_link", "verifying", "awaiting_link", "verifying", "done" }, seen)
    c:close()
  end)

  it("redirect_uri: submit_callback with the Location of the opened link; a reused link stays awaiting", function()
    local c = client()
    local f = flow.login(c, { connection = "email", email = "fc@example.com", send = "link", redirect_uri = CB })
    until_state(c, f, "awaiting_link")
    local url = last_msg("fc@example.com").link
    local _, loc = open(url)
    local _, loc2 = open(url)   -- the second opening: the link is spent
    f:submit_callback(loc2)
    until_state(c, f, "awaiting_link", "failed", "done")
    assert.equal("awaiting_link", f.state)
    assert.equal("access_denied", f.error.code)
    f:submit_callback(loc)
    until_state(c, f, "done", "failed")
    assert.equal("done", f.state)
    c:close()
  end)

  it("MFA after a link continues as after a code", function()
    local u = ctl("POST", "/users", { connection = "email", email = "fm@example.com", mfa = "always" })
    local a = ctl("POST", "/mfa/authenticators", { user_id = u.user_id, type = "otp" }).authenticator
    local c = client()
    local f = flow.login(c, { connection = "email", email = "fm@example.com", send = "link" })
    until_state(c, f, "awaiting_link")
    f:submit_link(last_msg("fm@example.com").link)
    until_state(c, f, "awaiting_mfa_choice", "failed")
    assert.equal("awaiting_mfa_choice", f.state)
    f:choose_authenticator(f.authenticators[1])
    until_state(c, f, "awaiting_mfa_code", "failed")
    f:submit_mfa_code(auth0.totp(a.secret))
    until_state(c, f, "done", "failed")
    assert.equal("done", f.state)
    c:close()
  end)
end)

describe("auth0.loopback", function()
  local flow = require "auth0.flow"
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    ctl("POST", "/callbacks", { client_id = "emu-native", callbacks = { "http://127.0.0.1/callback" } })
  end)

  -- Starts curl on `url` in the background (the listener answers only when polled).
  local function curl_bg(url, extra)
    local h = { body = os.tmpname(), status = os.tmpname() }
    os.execute(string.format("(env -u LD_PRELOAD curl -s -m 10 %s -o '%s' -w '%%{http_code}' '%s' > '%s.tmp'; mv '%s.tmp' '%s') &",
      extra or "", h.body, url, h.status, h.status, h.status))
    return h
  end
  -- The status and body once curl has ended, or nil while it runs.
  local function result(h)
    local f = io.open(h.status)
    local st = f and f:read("*a")
    if f then f:close() end
    if not st or st == "" then return nil end
    local b = io.open(h.body)
    local body = b and b:read("*a") or ""
    if b then b:close() end
    os.remove(h.body); os.remove(h.status)
    return tonumber(st), body
  end
  -- Polls `c` until curl `h` has ended.
  local function finish_bg(h, c)
    local deadline = os.time() + 15
    while true do
      local s, b = result(h)
      if s then return s, b end
      if c then c:poll(20) else os.execute("env -u LD_PRELOAD sleep 0.05") end
      assert(os.time() < deadline, "curl did not finish")
    end
  end

  it("receives a real redirect, answers the browser, and closes", function()
    local c = client()
    local lb = assert(auth0.loopback { port = 0 })
    assert.matches("^http://127%.0%.0%.1:%d+/callback$", lb.redirect_uri)
    local _, link = assert(c:passwordless_start { connection = "email", email = "lb@example.com", send = "link",
      redirect_uri = lb.redirect_uri })
    lb.state = link.state
    local status, loc = open(last_msg("lb@example.com").link)
    assert.equal(302, status)
    assert.equal(lb.redirect_uri .. "?", loc:sub(1, #lb.redirect_uri + 1))
    -- noise first: another path, a wrong state; the listener answers and goes on
    local p404 = curl_bg("http://127.0.0.1:" .. lb.port .. "/favicon.ico")
    local got
    lb:attach(c, function(url, err) got = { url, err } end)
    assert.equal(404, (finish_bg(p404, c)))
    assert.equal(400, (finish_bg(curl_bg(lb.redirect_uri .. "?code=x&state=forged"), c)))
    assert.is_nil(got)
    local s, body = finish_bg(curl_bg(loc), c)
    assert.equal(200, s)
    assert.matches("You can close this window", body)
    local deadline = os.time() + 10
    while not got do c:poll(20); assert(os.time() < deadline) end
    assert.equal(loc, got[1])
    assert.is_nil(got[2])
    -- closed: a second browser is refused at the socket
    assert.equal(0, (finish_bg(curl_bg(loc))))
    local tokens, err = c:passwordless_complete_link(got[1], link)
    assert.is_nil(err)
    assert.is_string(tokens.access_token)
    c:close()
  end)

  it("times out, refuses oversized requests, and raises on misuse", function()
    local c = client()
    local lb = assert(auth0.loopback { timeout = 1 })
    -- issue 11 (third review): without a state the first code that came was taken
    for _, fn in ipairs({ "step", "attach" }) do
      local ok, msg = pcall(function() lb[fn](lb, c, function() end) end)
      assert.is_false(ok)
      assert.equal("spec/link_spec.lua", msg:match("^([^:]+):%d+: "))
      assert.equal("calling '" .. fn .. "' on bad self (state is not set: set lb.state to the link's state first)",
        (msg:gsub("^[^:]+:%d+: ", "")))
    end
    lb.state = "s0"
    for _, case in ipairs({
      { function() lb:attach(nil, function() end) end, "bad argument #1 to 'attach' (auth0.Client expected, got nil)" },
      { function() lb:attach({}, function() end) end, "bad argument #1 to 'attach' (auth0.Client expected, got table)" },
      { function() lb:attach(c, 1) end, "bad argument #2 to 'attach' (callback must be a function)" },
    }) do
      local ok, msg = pcall(case[1])
      assert.is_false(ok)
      assert.equal("spec/link_spec.lua", msg:match("^([^:]+):%d+: "))
      assert.equal(case[2], (msg:gsub("^[^:]+:%d+: ", "")))
    end
    local big = curl_bg(lb.redirect_uri .. "?code=x", "-H 'X-Big: " .. string.rep("a", 9000) .. "'")
    local got
    lb:attach(c, function(url, err) got = { url, err } end)
    assert.equal(431, (finish_bg(big, c)))
    while not got do c:poll(20) end
    assert.is_nil(got[1])
    assert.equal("timeout", got[2].code)
    assert.equal(true, lb:close())
    assert.has_error(function() auth0.loopback { port = -1 } end)
    assert.has_error(function() auth0.loopback { bogus = 1 } end)
    assert.has_error(function() auth0.loopback { port = 0 / 0 } end)
    c:close()
  end)

  it("completes a flow by itself", function()
    local c = client()
    local lb = assert(auth0.loopback {})
    local f = flow.login(c, { connection = "email", email = "lbf@example.com", send = "link", loopback = lb })
    local deadline = os.time() + 10
    while f.state ~= "awaiting_link" do c:poll(20); assert(os.time() < deadline) end
    local _, loc = open(last_msg("lbf@example.com").link)
    local p = curl_bg(loc)
    while f.state ~= "done" and f.state ~= "failed" do c:poll(20); assert(os.time() < deadline) end
    assert.equal(200, (finish_bg(p, c)))
    assert.equal("done", f.state)
    assert.is_string(f.tokens.id_token)
    c:close()
  end)
end)
