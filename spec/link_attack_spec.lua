-- Hostile inputs to the magic-link completion and the loopback listener (second attack
-- review of issue #16): forged callbacks, hostile HTTP requests, connections that hold the
-- listener. Real HTTPS to the emulator; real sockets to the listener.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"

local server

local function client(opts)
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return auth0.new(o)
end

describe("passwordless_complete_link against forged callbacks", function()
  setup(function() server = emu.start() end)
  before_each(function() emu.reset() end)

  local link = { state = "the-state-of-this-login", nonce = "n", code_verifier = "v",
                 redirect_uri = "http://127.0.0.1:1/callback" }

  -- RFC 6749 4.1.2.1: an error answer carries the state too; one without this login's state
  -- was not sent by the server for this login (login CSRF, or an app told to give up).
  it("checks the state of an error callback before believing the error", function()
    local c = client()
    for _, url in ipairs({
      "http://127.0.0.1:1/callback?error=access_denied&error_description=forged",
      "http://127.0.0.1:1/callback?error=mfa_required&state=another",
    }) do
      local t, err = c:passwordless_complete_link(url, link)
      assert.is_nil(t)
      assert.equal("invalid_state", err.code)
      local got
      c:passwordless_complete_link(url, link, function(tt, e) got = { tt, e } end)
      c:poll(0)
      assert.is_nil(got[1])
      assert.equal("invalid_state", got[2].code)
    end
    -- the server's own error, with the state, still comes through
    local _, err = c:passwordless_complete_link(
      "http://127.0.0.1:1/callback?error=access_denied&error_description=no&state=" .. link.state, link)
    assert.equal("access_denied", err.code)
    assert.equal("access_denied", err.reason)
    c:close()
  end)

  -- Issue 11 (third review): a callback with the right state but a forged error_description
  -- kept its decoded CR/LF in err.message, and so in tostring(err) and in any log line.
  it("cleans the error text of a callback with the right state (control characters, separators)", function()
    local c = client()
    local forged = {
      { "line%0D%0AINFO%20fake%20log%20line", "line  INFO fake log line" },
      { "a%1B%5B31mred%07%00z", "a [31mred  z" },
      { "sep%E2%80%A8x%E2%80%AEy%C2%85z", "sep x y z" },
      { "bad%FF%FEutf8", "bad??utf8" },
      { string.rep("x", 400), string.rep("x", 300) .. "..." },
    }
    for _, case in ipairs(forged) do
      local url = "http://127.0.0.1:1/callback?error=access%0Adenied&error_description=" .. case[1] .. "&state=" .. link.state
      for _, async in ipairs({ false, true }) do
        local err
        if async then
          c:passwordless_complete_link(url, link, function(_, e) err = e end)
          c:poll(0)
        else
          _, err = c:passwordless_complete_link(url, link)
        end
        assert.equal("access denied", err.code)
        assert.equal(case[2], err.message)
        assert.is_nil(tostring(err):find("[%c\128-\159]"))
        assert.is_nil(tostring(err):find("\226\128[\168\174]"))
      end
    end
    -- without a description the (cleaned) code stands in for it
    local _, err = c:passwordless_complete_link("http://127.0.0.1:1/callback?error=x%0D&state=" .. link.state, link)
    assert.equal("x ", err.code)
    assert.equal("x ", err.message)
    c:close()
  end)
end)

describe("passwordless_complete_link after a key rotation", function()
  local CB = "https://app.example/callback"
  setup(function() server = server or emu.start() end)
  before_each(function()
    emu.reset()
    emu.control("POST", "/__emulator/callbacks", { client_id = "emu-native", callbacks = { CB } })
  end)

  -- Opens the magic link with curl (not following the redirect): the Location.
  local function open(url)
    local p = assert(io.popen(string.format("env -u LD_PRELOAD curl -s --cacert '%s' -o /dev/null -w '%%{redirect_url}' '%s'",
      server.ca_file, (url:gsub("'", "%%27")))))
    local loc = p:read("*a")
    p:close()
    return loc
  end

  -- The completion checked the nonce against the held JWKS only: a token signed with a key
  -- the tenant rotated in was refused (unknown kid) until jwks_ttl, where verify_id_token
  -- refetches the key set (and an id_token_alg = "HS256" client was refused outright).
  for _, async in ipairs({ false, true }) do
    it("verifies the ID token with the client's key set" .. (async and " (callback form)" or ""), function()
      local c = client({ jwks_min_refetch = 0.2 })
      assert(c:jwks())   -- keys held, then the tenant rotates
      emu.control("POST", "/__emulator/keys", { rotate = true, keep_old = true })
      auth0.core.sleep(0.25)
      local email = "rot@example.com"
      local _, link = assert(c:passwordless_start { connection = "email", email = email, send = "link", redirect_uri = CB })
      local out = emu.control("GET", "/__emulator/outbox?to=" .. auth0.core.pct_escape(email))
      local loc = open(out.messages[#out.messages].link)
      local t, err
      if async then
        local done = false
        c:passwordless_complete_link(loc, link, function(tt, e) t, err, done = tt, e, true end)
        local deadline = os.time() + 10
        while not done do c:poll(20); assert(os.time() < deadline, "no answer") end
      else
        t, err = c:passwordless_complete_link(loc, link)
      end
      assert.is_nil(err, err and tostring(err))
      assert.is_string(t.access_token)
      c:close()
    end)
  end
end)

describe("the emulator's PKCE", function()
  local CB = "https://app.example/callback"
  setup(function() server = server or emu.start() end)
  before_each(function()
    emu.reset()
    emu.control("POST", "/__emulator/callbacks", { client_id = "emu-native", callbacks = { CB } })
  end)

  -- An unknown code_challenge_method was compared as "plain": whoever can rewrite a link
  -- (or a client that misspells S256) got a code whose verifier is the challenge itself.
  -- The discovery document says S256 and plain; anything else is refused at the redirect.
  it("refuses a code_challenge_method other than S256 and plain", function()
    local c = client()
    local email = "pkce@example.com"
    local _, link = assert(c:passwordless_start { connection = "email", email = email, send = "link", redirect_uri = CB })
    local url = emu.control("GET", "/__emulator/outbox?to=" .. auth0.core.pct_escape(email)).messages[1].link
    assert.matches("code_challenge_method=S256", url)
    url = url:gsub("code_challenge_method=S256", "code_challenge_method=S512")
             :gsub("code_challenge=[^&]*", "code_challenge=" .. link.code_verifier)
    local p = assert(io.popen(string.format("env -u LD_PRELOAD curl -s --cacert '%s' -o /dev/null -w '%%{redirect_url}' '%s'",
      server.ca_file, (url:gsub("'", "%%27")))))
    local loc = p:read("*a")
    p:close()
    assert.matches("error=invalid_request", loc)
    assert.is_nil(loc:find("code=", 1, true))
    local t, err = c:passwordless_complete_link(loc, link)
    assert.is_nil(t)
    assert.equal("invalid_request", err.code)
    c:close()
  end)
end)

describe("a flow with a loopback listener after a failed link", function()
  local flow = require "auth0.flow"
  setup(function() server = server or emu.start() end)
  before_each(function() emu.reset() end)

  local function open(url)
    local p = assert(io.popen(string.format("env -u LD_PRELOAD curl -s --cacert '%s' -o /dev/null -w '%%{redirect_url}' '%s'",
      server.ca_file, (url:gsub("'", "%%27")))))
    local loc = p:read("*a")
    p:close()
    return loc
  end
  -- What a browser does with the redirect: GET it on the listener (in the background; the
  -- listener answers only when polled). @return a function: the HTTP status once curl ended
  local function browse(loc)
    local st = os.tmpname()
    os.execute(string.format("(env -u LD_PRELOAD curl -s -m 10 -o /dev/null -w '%%{http_code}' '%s' > '%s.tmp'; mv '%s.tmp' '%s') &",
      loc, st, st, st))
    return function()
      local f = io.open(st); local v = f and f:read("*a"); if f then f:close() end
      if v and v ~= "" then os.remove(st); return tonumber(v) end
    end
  end

  -- The listener closes after one callback with its state, an error one too (a wrong or
  -- expired link); resend_link then sent a link whose redirect went to a closed port.
  it("resend_link after a failed link still completes through the loopback", function()
    emu.control("POST", "/__emulator/callbacks", { client_id = "emu-native", callbacks = { "http://127.0.0.1/callback" } })
    local c = client()
    local lb = assert(auth0.loopback {})
    local email = "again@example.com"
    local f = flow.login(c, { connection = "email", email = email, send = "link", loopback = lb })
    local deadline = os.time() + 20
    local function until_(pred) while not pred() do c:poll(20); assert(os.time() < deadline, "stuck in " .. f.state) end end
    until_(function() return f.state == "awaiting_link" end)
    -- a mistyped link (a wrong code) redirects with this login's state and an error
    local first = emu.control("GET", "/__emulator/outbox?to=" .. email).messages[1].link
    local wrong = first:match("verification_code=(%d+)") == "000000" and "111111" or "000000"
    local st = browse(open((first:gsub("verification_code=%d+", "verification_code=" .. wrong))))
    until_(function() return f.state == "awaiting_link" and f.error ~= nil end)
    assert.equal("access_denied", f.error.code)
    until_(st)
    f:resend_link()
    until_(function() return f.state == "awaiting_link" and f._sends == 2 end)
    local msgs = emu.control("GET", "/__emulator/outbox?to=" .. email).messages
    local st2 = browse(open(msgs[#msgs].link))
    until_(function() return f.state == "done" or f.state == "failed" or (f.error and f.error.code ~= "access_denied") end)
    assert.equal("done", f.state, f.error and tostring(f.error))
    local code
    until_(function() code = st2(); return code end)
    assert.equal(200, code)
    c:close()
  end)
end)

describe("the fragment's tokens", function()
  local CB = "https://app.example/callback"
  setup(function() server = server or emu.start() end)
  before_each(function()
    emu.reset()
    emu.control("POST", "/__emulator/callbacks", { client_id = "emu-native", callbacks = { CB } })
  end)

  local function redirect_of(c, email)
    local _, link = assert(c:passwordless_start { connection = "email", email = email, send = "link",
      redirect_uri = CB, response_type = "token id_token" })
    local url = emu.control("GET", "/__emulator/outbox?to=" .. auth0.core.pct_escape(email)).messages[1].link
    local p = assert(io.popen(string.format("env -u LD_PRELOAD curl -s --cacert '%s' -o /dev/null -w '%%{redirect_url}' '%s'",
      server.ca_file, (url:gsub("'", "%%27")))))
    local loc = p:read("*a")
    p:close()
    return loc, link
  end

  -- OIDC Core 3.2.2.9/3.2.2.10: with "token id_token" the ID token's at_hash binds the access
  -- token; without the check an access token of another login (another user's, or one of
  -- lower rights) rode along with this login's signed ID token.
  it("an access token swapped into the fragment is refused (at_hash)", function()
    local c = client()
    local loc, link = redirect_of(c, "victim@example.com")
    local other = redirect_of(c, "attacker@example.com")
    local swapped = loc:gsub("access_token=[^&]*", other:match("access_token=[^&]*"))
    assert.are_not.equal(loc, swapped)
    local t, err = c:passwordless_complete_link(swapped, link)
    assert.is_nil(t)
    assert.equal("invalid_id_token", err.code)
    local got
    c:passwordless_complete_link(swapped, link, function(tt, e) got = { tt, e } end)
    local deadline = os.time() + 10
    while not got do c:poll(20); assert(os.time() < deadline, "no answer") end
    assert.is_nil(got[1])
    assert.equal("invalid_id_token", got[2].code)
    -- the untouched redirect still logs in
    assert.is_string(assert(c:passwordless_complete_link(loc, link)).access_token)
    c:close()
  end)
end)

describe("auth0.loopback against connections that hold it", function()
  local socket = require "socket"

  local function connect(port)
    local s = assert(socket.tcp())
    s:settimeout(2)
    assert(s:connect("127.0.0.1", port))
    return s
  end

  -- Steps lb until it has the callback; gives up after `limit` seconds.
  local function wait(lb, limit)
    local t0 = socket.gettime()
    while socket.gettime() - t0 < limit do
      local url, err = lb:step()
      if url or err then return url, err end
      socket.sleep(0.01)
    end
  end

  -- A browser's speculative preconnect (or a local process, or a web page's
  -- <link rel=preconnect>) opens sockets that send nothing; the listener read one connection
  -- at a time, so each of them held the real redirect for the idle limit (3 s).
  for _, idle_count in ipairs({ 1, 20 }) do
    it("answers the browser's request while " .. idle_count .. " silent connection(s) stay open", function()
      local lb = assert(auth0.loopback {})
      lb.state = "s1"
      local idle = {}
      for i = 1, idle_count do
        idle[i] = connect(lb.port)
        lb:step()   -- accepted and read (nothing) before the browser comes
      end
      local real = connect(lb.port)
      assert(real:send("GET /callback?code=c1&state=s1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
      local url = wait(lb, 2)
      assert.equal(lb.redirect_uri .. "?code=c1&state=s1", url)
      assert.matches("^HTTP/1.1 200", real:receive("*l"))
      for _, s in ipairs(idle) do s:close() end
      real:close()
    end)
  end

  -- issue 11 (third review): a listener without state took the first code it got
  it("refuses a code without the state, or with an empty or another one, and takes the right one", function()
    local lb = assert(auth0.loopback {})
    lb.state = "s3"
    for _, q in ipairs({ "code=evil", "code=evil&state=", "code=evil&state=s", "state=s3" }) do
      local s = connect(lb.port)
      assert(s:send("GET /callback?" .. q .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
      local url = wait(lb, 0.3)
      assert.is_nil(url)
      assert.matches("^HTTP/1.1 400", s:receive("*l"))
      s:close()
    end
    local s = connect(lb.port)
    assert(s:send("GET /callback?code=good&state=s3 HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert.equal(lb.redirect_uri .. "?code=good&state=s3", wait(lb, 2))
    s:close()
  end)

  it("a request trickled byte by byte between other connections is still read whole", function()
    local lb = assert(auth0.loopback {})
    lb.state = "s2"
    local a, b = connect(lb.port), connect(lb.port)
    local req = "GET /callback?code=c2&state=s2 HTTP/1.1\r\nHost: x\r\n\r\n"
    local url
    for i = 1, #req do
      assert(a:send(req:sub(i, i)))
      if i % 5 == 0 then assert(b:send("X")) end
      url = url or lb:step()
    end
    url = url or wait(lb, 2)
    assert.equal(lb.redirect_uri .. "?code=c2&state=s2", url)
    a:close(); b:close()
  end)
end)
