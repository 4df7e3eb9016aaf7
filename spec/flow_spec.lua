-- auth0.flow (issue #4): every state and rule of the login state machine, driven by
-- client:poll(0) like a game loop, and by flow.run with prompt functions; serialize/resume.
-- Real HTTPS against the emulator under nginx (passwordless and MFA modules).
local auth0 = require "auth0"
local flow = require "auth0.flow"
local emu = require "spec.support.emulator"
local socket = require "socket"
local cjson = require("cjson.safe").new()

local now = auth0.core.now
local server
local clients = {}

local function client(opts)
  opts = opts or {}
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 10 }
  for k, v in pairs(opts) do o[k] = v end
  local c = auth0.new(o)
  clients[#clients + 1] = c
  return c
end

local function ctl(method, path, body)
  local out, status = emu.control(method, path, body)
  assert(status == 200, "control " .. path .. " answered " .. tostring(status) .. ": " .. cjson.encode(out))
  return out
end

local function outbox(to)
  return ctl("GET", "/outbox?to=" .. auth0.core.pct_escape(to)).messages
end

local function last_code(to)
  local m = outbox(to)
  return m[#m].code
end

local function wrong(code) return code == "000000" and "111111" or "000000" end

-- A user with MFA on and the given authenticators enrolled directly (types: otp, sms, push).
local function mfa_user(email, policy, kinds)
  local user = ctl("POST", "/users", { connection = "email", email = email, mfa = policy or "always" })
  local out = { user_id = user.user_id }
  for _, kind in ipairs(kinds or {}) do
    local r = ctl("POST", "/mfa/authenticators", { user_id = user.user_id, type = kind,
      phone_number = kind == "sms" and "+15550001111" or nil })
    out[kind] = r.authenticator
    out.recovery_code = out.recovery_code or r.recovery_code
  end
  return out
end

local function totp(secret)
  return auth0.totp(secret, { time = ctl("GET", "/clock").now })
end

-- The game loop: poll(0), then a short sleep, until `f.state` is one of `states`.
local function run_until(c, f, ...)
  local want = {}
  for i = 1, select("#", ...) do want[select(i, ...)] = true end
  local deadline = now() + 15
  while not want[f.state] do
    assert(c:poll(0))
    assert(now() < deadline, "flow stuck in state " .. f.state)
    socket.sleep(0.002)
  end
  return f.state
end

local function recorder()
  local states = {}
  return states, function(f) states[#states + 1] = f.state end
end

local function find(list, kind)
  for _, a in ipairs(list) do
    if a.id:find("^" .. kind .. "|") then return a end
  end
end

local function pending_push(user_id)
  local deadline = now() + 10
  while now() < deadline do
    local t = ctl("GET", "/guardian?user_id=" .. auth0.core.pct_escape(user_id)).transactions
    if t[1] then return t[1] end
    socket.sleep(0.02)
  end
  error("no push transaction")
end

describe("auth0.flow", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    ctl("POST", "/mfa", { poll_min_interval = 0 })
  end)
  after_each(function()
    for _, c in ipairs(clients) do
      local pending = c:pending()
      c:close()
      assert.equal(0, pending)
    end
    clients = {}
    collectgarbage()
  end)

  describe("passwordless", function()
    it("logs in with an email code, passing each state once", function()
      local c = client()
      local states, on_state = recorder()
      local f = flow.login(c, { connection = "email", email = "f1@example.com", on_state = on_state,
        scope = "openid email" })
      assert.equal("sending_code", f.state)
      assert.equal("auth0.Flow (sending_code)", tostring(f))
      run_until(c, f, "awaiting_code")
      assert.equal(3, f.attempts_left)
      assert.is_false(f.must_resend)
      assert.is_nil(f.error)
      f:submit_code(last_code("f1@example.com"))
      assert.equal("verifying", f.state)
      run_until(c, f, "done")
      assert.same({ "sending_code", "awaiting_code", "verifying", "done" }, states)
      assert.equal("Bearer", f.tokens.token_type)
      assert.equal("openid email", f.tokens.scope)
      local claims = assert(c:verify_id_token(f.tokens.id_token))
      assert.equal("f1@example.com", claims.email)
      assert.is_nil(f.error)
      assert.equal(0, c:pending())
    end)

    it("logs in with an SMS code", function()
      local c = client()
      local f = flow.login(c, { connection = "sms", phone_number = "+15557654321" })
      run_until(c, f, "awaiting_code")
      assert.equal("+15557654321", f.identifier)
      f:submit_code(last_code("+15557654321"))
      run_until(c, f, "done", "failed")
      assert.equal("done", f.state)
      assert.matches("^sms|", assert(c:verify_id_token(f.tokens.id_token)).sub)
    end)

    it("counts wrong codes down, then needs a resend, then logs in", function()
      local c = client()
      local states, on_state = recorder()
      local f = flow.login(c, { connection = "email", email = "f2@example.com", on_state = on_state })
      run_until(c, f, "awaiting_code")
      local code = last_code("f2@example.com")
      for left = 2, 0, -1 do
        f:submit_code(wrong(code))
        run_until(c, f, "awaiting_code")
        assert.equal(left, f.attempts_left)
        assert.equal("invalid_grant", f.error.code)
        assert.equal("Wrong email or verification code.", f.error.message)
        assert.equal(left == 0, f.must_resend)
      end
      local ok, msg = pcall(f.submit_code, f, code)
      assert.is_false(ok)
      assert.is_truthy(msg:find("calling 'submit_code' on bad self (this code can no longer be used: call resend_code() first)",
        1, true), msg)
      f:resend_code()
      assert.equal("sending_code", f.state)
      run_until(c, f, "awaiting_code")
      assert.equal(3, f.attempts_left)
      assert.is_false(f.must_resend)
      assert.is_nil(f.error)
      assert.equal(2, #outbox("f2@example.com"))
      f:submit_code(last_code("f2@example.com"))
      run_until(c, f, "done")
      assert.same({ "sending_code", "awaiting_code", "verifying", "awaiting_code", "verifying", "awaiting_code",
        "verifying", "awaiting_code", "sending_code", "awaiting_code", "verifying", "done" }, states)
    end)

    it("treats a wrong answer for a code older than code_lifetime as expired", function()
      local c = client()
      local f = flow.login(c, { connection = "email", email = "f3@example.com", code_lifetime = 1 })
      run_until(c, f, "awaiting_code")
      ctl("POST", "/clock", { advance = 181 })   -- the server forgets the code ...
      socket.sleep(1.05)                         -- ... and the flow knows it is old
      f:submit_code(last_code("f3@example.com"))
      run_until(c, f, "awaiting_code")
      assert.equal("invalid_grant", f.error.code)
      assert.equal(0, f.attempts_left)
      assert.is_true(f.must_resend)
    end)

    it("trusts the server's 'maximum number of attempts' over its own count", function()
      local c = client()
      local f = flow.login(c, { connection = "email", email = "f4@example.com" })
      run_until(c, f, "awaiting_code")
      local code = last_code("f4@example.com")
      local t = f:serialize()
      t.attempts_left = 5                        -- a stale count, e.g. from an old session
      local g = flow.resume(c, t)
      for _ = 1, 3 do
        g:submit_code(wrong(code))
        run_until(c, g, "awaiting_code")
      end
      assert.equal(2, g.attempts_left)
      g:submit_code(code)
      run_until(c, g, "awaiting_code")
      assert.equal("You've reached the maximum number of attempts. Please try to login again.", g.error.message)
      assert.equal(0, g.attempts_left)
      assert.is_true(g.must_resend)
    end)

    it("keeps the old code when a resend fails", function()
      local c = client()
      ctl("POST", "/rate_limits", { passwordless_start = { limit = 1, window = 3600 } })
      local f = flow.login(c, { connection = "email", email = "f5@example.com" })
      run_until(c, f, "awaiting_code")
      local code = last_code("f5@example.com")
      f:submit_code(wrong(code))
      run_until(c, f, "awaiting_code")
      f:resend_code()
      run_until(c, f, "awaiting_code")
      assert.equal("too_many_requests", f.error.code)
      assert.equal(429, f.error.status)
      assert.equal(2, f.attempts_left)
      assert.is_false(f.must_resend)
      f:submit_code(code)
      run_until(c, f, "done")
    end)

    it("fails when the first code cannot be sent", function()
      local c = client()
      local states, on_state = recorder()
      local f = flow.login(c, { connection = "nope", email = "f6@example.com", on_state = on_state })
      run_until(c, f, "failed")
      assert.equal("bad.connection", f.error.code)
      assert.equal("Connection does not exist", f.error.message)
      assert.same({ "sending_code", "failed" }, states)
      assert.is_false(f:cancel())
    end)

    it("cancels while a request is in flight; late answers are ignored", function()
      local c = client()
      local states, on_state = recorder()
      local f = flow.login(c, { connection = "email", email = "f7@example.com", on_state = on_state })
      run_until(c, f, "awaiting_code")
      f:submit_code(last_code("f7@example.com"))
      assert.is_true(f:cancel())
      assert.equal("cancelled", f.state)
      assert.equal("cancelled", f.error.code)
      assert.equal("login cancelled", f.error.message)
      assert.is_false(f:cancel())
      assert.equal(0, c:poll(50))
      assert.same({ "sending_code", "awaiting_code", "verifying", "cancelled" }, states)
      assert.is_nil(f.tokens)
    end)

    it("is cancelled when its client is closed", function()
      local c = client()
      local f = flow.login(c, { connection = "email", email = "f8@example.com" })
      c:close()
      assert.equal("cancelled", f.state)
      assert.equal("client closed", f.error.message)
    end)

    it("keeps the state that a request answered at once led to", function()
      local c = client()
      -- a start whose callback runs before it returns (as for a client closed meanwhile)
      c.passwordless_start = function(_, _, cb)
        cb(nil, auth0.error.new("cancelled", "client closed"))
        return { done = function() return true end, cancel = function() return false end }
      end
      local states = {}
      local f = flow.login(c, { connection = "email", email = "f9@example.com",
        on_state = function(fl) states[#states + 1] = fl.state end })
      assert.equal("cancelled", f.state)
      assert.same({ "cancelled" }, states)
    end)

    it("sends an error raised in on_state to on_callback_error and goes on", function()
      local errs = {}
      local c = client { on_callback_error = function(msg) errs[#errs + 1] = msg end }
      local f = flow.login(c, { connection = "email", email = "f9@example.com",
        on_state = function(f) if f.state == "awaiting_code" then error("on_state boom") end end })
      run_until(c, f, "awaiting_code")
      assert.equal(1, #errs)
      assert.is_truthy(errs[1]:find("on_state boom", 1, true))
      assert.is_truthy(errs[1]:find("stack traceback:", 1, true))
      f:submit_code(last_code("f9@example.com"))
      run_until(c, f, "done")
      assert.equal(1, #errs)
    end)

    it("raises on misuse", function()
      local c = client()
      local f = flow.login(c, { connection = "email", email = "f10@example.com" })
      -- luaL_argerror's form (issue 11 item 9), raised at the caller's line, not inside the library
      local function raises(fn, want)
        local ok, msg = pcall(fn)
        assert.is_false(ok)
        assert.matches("^spec/flow_spec%.lua:%d+: ", msg)
        assert.equal(want, (msg:gsub("^[^:]+:%d+: ", "")))
      end
      local E = { connection = "email", email = "a@example.com" }
      local function with(extra)
        local t = {}
        for k, v in pairs(E) do t[k] = v end
        for k, v in pairs(extra) do t[k] = v end
        return t
      end
      raises(function() f:submit_code("123456") end, "calling 'submit_code' on bad self (called in state 'sending_code')")
      raises(function() f:serialize() end, "calling 'serialize' on bad self (called in state 'sending_code')")
      raises(function() flow.login(nil, E) end, "bad argument #1 to 'login' (auth0.Client expected, got nil)")
      raises(function() flow.login(c) end, "bad argument #2 to 'login' (table expected, got nil)")
      raises(function() flow.login(c, with { colour = 1 }) end, "bad argument #2 to 'login' (unknown option 'colour')")
      raises(function() flow.login(c, with { phone_number = "+1555" }) end,
        "bad argument #2 to 'login' (give exactly one of email, phone_number)")
      raises(function() flow.login(c, { email = "a@example.com" }) end,
        "bad argument #2 to 'login' (field 'connection': string expected, got nil)")
      raises(function() flow.login(c, with { on_state = 1 }) end,
        "bad argument #2 to 'login' (field 'on_state': function expected, got number)")
      raises(function() flow.run(c, E, {}) end, "bad argument #3 to 'run' (field 'ask_code': function expected, got nil)")
      raises(function() flow.run(c, E, "x") end, "bad argument #3 to 'run' (table expected, got string)")
      raises(function() flow.run(c, "x", {}) end, "bad argument #2 to 'run' (table expected, got string)")
      raises(function() flow.run(nil, E, {}) end, "bad argument #1 to 'run' (auth0.Client expected, got nil)")
      raises(function() flow.run(c, with { max_wait = 0 / 0 }, { ask_code = print }) end,
        "bad argument #2 to 'run' (max_wait must be a number of seconds in (0, 86400])")
      raises(function() flow.resume(c, { version = 2 }) end, "bad argument #2 to 'resume' (unknown serialized flow version 2)")
      raises(function() flow.resume(c, nil) end,
        "bad argument #2 to 'resume' (the table from f:serialize() expected, got nil)")
      raises(function() flow.resume(c, { version = 1, state = "verifying" }) end,
        "bad argument #2 to 'resume' (cannot resume a flow in state 'verifying')")
      raises(function() flow.resume(c, { version = 1, state = "awaiting_mfa_code" }) end,
        "bad argument #2 to 'resume' (mfa_token is missing)")
      raises(function() flow.resume(c, { version = 1, state = "awaiting_code", connection = "email", identifier = "a@b.co",
        identifier_field = "email" }, { email = "x@y.z" }) end,
        "bad argument #3 to 'resume' (takes no email: it comes from the serialized flow)")
      raises(function() flow.resume(c, { version = 1, state = "awaiting_code", connection = "email", identifier = "a@b.co",
        identifier_field = "email" }, { max_restarts = 1 / 0 }) end,
        "bad argument #3 to 'resume' (max_restarts must be an integer >= 0)")
      raises(function() flow.resume({}, { version = 1 }) end, "bad argument #1 to 'resume' (auth0.Client expected, got table)")
      -- a damaged serialized flow raises at resume, not later in a method (issue 11, third review)
      raises(function() flow.resume(c, { version = 1, state = "awaiting_mfa_choice", mfa_token = "m", authenticators = { 5 } }) end,
        "bad argument #2 to 'resume' (authenticators[1] must be a table with a string id)")
      raises(function() flow.resume(c, { version = 1, state = "awaiting_mfa_code", mfa_token = "m", authenticator = {},
        oob_code = 5 }) end, "bad argument #2 to 'resume' (field 'oob_code': string expected, got number)")
      raises(function() flow.resume(c, { version = 1, state = "awaiting_code", connection = "email", identifier = "a@b.co",
        identifier_field = "email", must_resend = "yes" }) end,
        "bad argument #2 to 'resume' (field 'must_resend': boolean expected, got string)")
      raises(function() flow.login(c, { connection = "email", email = "not an email" }) end,
        "bad argument #2 to 'login' (email is malformed)")
      raises(function() flow.login(c, { connection = "sms", phone_number = "555" }) end,
        "bad argument #2 to 'login' (phone_number must match ^\\+[0-9]{1,15}$)")
      raises(function() flow.login(c, with { push_interval = 0 / 0 }) end,
        "bad argument #2 to 'login' (push_interval must be a number of seconds in (0, 86400])")
      raises(function() flow.login(c, with { max_prompts = 0 }) end,
        "bad argument #2 to 'login' (max_prompts must be an integer >= 1)")
      raises(function() flow.login(c, with { audience = 1 }) end,
        "bad argument #2 to 'login' (field 'audience': string expected, got number)")
      raises(function() flow.login(c, with { redirect_uri = "x" }) end,
        "bad argument #2 to 'login' (redirect_uri, response_type and loopback need send = \"link\")")
      raises(function() flow.login(c, with { send = "links" }) end,
        "bad argument #2 to 'login' (send must be \"code\" or \"link\", got \"links\")")
      raises(function() flow.login(c, with { send = "link", redirect_uri = 1 }) end,
        "bad argument #2 to 'login' (field 'redirect_uri': string expected, got number)")
      raises(function() flow.login(c, with { send = "link", loopback = {} }) end,
        "bad argument #2 to 'login' (field 'loopback': auth0.Loopback expected, got table)")
      run_until(c, f, "awaiting_code")
      raises(function() f:submit_code(123456) end, "bad argument #1 to 'submit_code' (string expected, got number)")
      raises(function() f:submit_code("") end, "bad argument #1 to 'submit_code' (code must not be empty)")
      raises(function() f:submit_code("12 34") end, "bad argument #1 to 'submit_code' (code is malformed)")
      raises(function() f:submit_mfa_code("123456") end,
        "calling 'submit_mfa_code' on bad self (called in state 'awaiting_code')")
      raises(function() f:choose_authenticator({}) end,
        "calling 'choose_authenticator' on bad self (called in state 'awaiting_code')")
      raises(function() f:enroll({}) end, "calling 'enroll' on bad self (called in state 'awaiting_code')")
      raises(function() f:submit_recovery_code("X") end,
        "calling 'submit_recovery_code' on bad self (called in state 'awaiting_code')")
      raises(function() f:submit_link("https://x/") end, "calling 'submit_link' on bad self (called in state 'awaiting_code')")
      raises(function() f:submit_callback("https://x/") end,
        "calling 'submit_callback' on bad self (called in state 'awaiting_code')")
      raises(function() f:resend_link() end, "calling 'resend_link' on bad self (called in state 'awaiting_code')")
      assert.equal("awaiting_code", f.state)
      f:cancel()
      raises(function() f:resend_code() end, "calling 'resend_code' on bad self (called in state 'cancelled')")
    end)
  end)

  describe("MFA", function()
    -- Logs in up to the MFA choice.
    local function to_choice(c, email, opts)
      local o = { connection = "email", email = email, push_interval = 0.05 }
      for k, v in pairs(opts or {}) do o[k] = v end
      local f = flow.login(c, o)
      run_until(c, f, "awaiting_code")
      f:submit_code(last_code(email))
      run_until(c, f, "awaiting_mfa_choice", "failed", "done")
      assert.equal("awaiting_mfa_choice", f.state)
      return f
    end

    it("an OTP authenticator: choice, challenge, wrong code, right code", function()
      local u = mfa_user("m1@example.com", { "otp" }, { "otp" })
      local c = client()
      local states, on_state = recorder()
      local f = to_choice(c, "m1@example.com", { on_state = on_state })
      assert.same({ { id = u.otp.id, authenticator_type = "otp", active = true, type = "otp" } }, f.authenticators)
      assert.is_false(f.enroll_required)
      assert.is_true(f.has_recovery_code)
      assert.same({ challenge = { { type = "otp" } } }, f.mfa_requirements)
      -- misuse in the choice, in luaL_argerror's form, at this line (issue 11 item 9)
      for _, case in ipairs {
        { function() f:choose_authenticator({ id = "nope" }) end,
          "bad argument #1 to 'choose_authenticator' (one of f.authenticators expected, got table)" },
        { function() f:choose_authenticator() end,
          "bad argument #1 to 'choose_authenticator' (one of f.authenticators expected, got nil)" },
        { function() f:enroll("otp") end, "bad argument #1 to 'enroll' (table expected, got string)" },
        { function() f:enroll { token = "x" } end,
          "bad argument #1 to 'enroll' (field 'token': not allowed, the flow supplies the token)" },
        { function() f:submit_recovery_code(42) end, "bad argument #1 to 'submit_recovery_code' (string expected, got number)" },
        { function() f:submit_recovery_code("A B") end,
          "bad argument #1 to 'submit_recovery_code' (recovery code is malformed)" },
      } do
        local ok, msg = pcall(case[1])
        assert.is_false(ok)
        assert.matches("^spec/flow_spec%.lua:%d+: ", msg)
        assert.equal(case[2], (msg:gsub("^[^:]+:%d+: ", "")))
      end
      assert.equal("awaiting_mfa_choice", f.state)
      f:choose_authenticator(f.authenticators[1])
      assert.equal("mfa_challenging", f.state)
      run_until(c, f, "awaiting_mfa_code")
      assert.equal("otp", f.challenge_type)
      assert.is_nil(f.binding_method)
      local code = totp(u.otp.secret)
      local ok, msg = pcall(function() f:submit_mfa_code(true) end)
      assert.is_false(ok)
      assert.matches("^[^:]+:%d+: bad argument #1 to 'submit_mfa_code' %(string expected, got boolean%)$", msg)
      f:submit_mfa_code(wrong(code))
      run_until(c, f, "awaiting_mfa_code", "failed")
      assert.equal("awaiting_mfa_code", f.state)
      assert.equal("invalid_grant", f.error.code)
      assert.equal("Invalid otp_code.", f.error.message)
      f:submit_mfa_code(code)
      run_until(c, f, "done", "failed")
      assert.equal("done", f.state)
      assert.is_nil(f.error)
      assert.same({ "mfa" }, assert(c:verify_id_token(f.tokens.id_token)).amr)
      assert.same({ "sending_code", "awaiting_code", "verifying", "verifying", "awaiting_mfa_choice",
        "mfa_challenging", "awaiting_mfa_code", "verifying", "awaiting_mfa_code", "verifying", "done" }, states)
    end)

    it("starts the step after an answer from the next poll: cancel() and close() in between end the flow", function()
      mfa_user("m1c@example.com", { "otp" }, { "otp" })
      -- the listing after mfa_required: not in the poll that delivered the answer
      local c = client()
      local calls, list = 0, c.mfa_authenticators
      c.mfa_authenticators = function(...) calls = calls + 1; return list(...) end
      local f = flow.login(c, { connection = "email", email = "m1c@example.com" })
      run_until(c, f, "awaiting_code")
      f:submit_code(last_code("m1c@example.com"))
      local deadline = now() + 15
      while calls == 0 and f._req and f._req._name ~= "flow" do
        assert(c:poll(0))
        assert(now() < deadline, "no answer")
        socket.sleep(0.002)
      end
      assert.equal(0, calls)   -- the answer came; the listing waits for the next poll
      assert.equal("verifying", f.state)
      assert(c:poll(0))
      assert.equal(1, calls)
      run_until(c, f, "awaiting_mfa_choice")
      -- cancel() in between: no listing, cancelled
      local function at_gap(email)
        local fl = flow.login(c, { connection = "email", email = email })
        run_until(c, fl, "awaiting_code")
        fl:submit_code(last_code(email))
        local d = now() + 15
        while not (fl._req and fl._req._name == "flow") do
          assert(c:poll(0))
          assert(now() < d, "no answer")
          socket.sleep(0.002)
        end
        return fl
      end
      mfa_user("m1d@example.com", { "otp" }, { "otp" })
      calls = 0
      local g = at_gap("m1d@example.com")
      g:cancel()
      assert.equal("cancelled", g.state)
      assert(c:poll(0))
      assert.equal(0, calls)
      assert.equal("cancelled", g.state)
      -- client:close() in between: cancelled, nothing pending
      mfa_user("m1e@example.com", { "otp" }, { "otp" })
      local h = at_gap("m1e@example.com")
      c:close()
      assert.equal("cancelled", h.state)
      assert.equal("cancelled", h.error.code)
      assert.equal(0, calls)
    end)

    it("filters authenticators by mfa_requirements", function()
      mfa_user("m2@example.com", { "phone" }, { "otp", "sms" })
      local c = client()
      local f = to_choice(c, "m2@example.com")
      assert.equal(1, #f.authenticators)
      assert.equal("sms", f.authenticators[1].oob_channel)
    end)

    it("an SMS authenticator: the binding code", function()
      mfa_user("m3@example.com", "always", { "sms" })
      local c = client()
      local f = to_choice(c, "m3@example.com")
      f:choose_authenticator(find(f.authenticators, "sms"))
      run_until(c, f, "awaiting_mfa_code")
      assert.equal("prompt", f.binding_method)
      assert.equal("oob", f.challenge_type)
      local m = outbox("+15550001111")
      assert.equal("mfa", m[#m].kind)
      f:submit_mfa_code(m[#m].binding_code)
      run_until(c, f, "done", "failed")
      assert.equal("done", f.state)
    end)

    it("push: rejected, back to the choice, retried and approved", function()
      local u = mfa_user("m4@example.com", "always", { "push" })
      local c = client()
      local f = to_choice(c, "m4@example.com")
      local push = find(f.authenticators, "push")
      assert.equal("auth0", push.oob_channel)
      f:choose_authenticator(push)
      run_until(c, f, "awaiting_push")
      local tx = pending_push(u.user_id)
      local deadline = now() + 10
      while f.push_waited == 0 and now() < deadline do assert(c:poll(10)) end
      assert.is_true(f.push_waited > 0)
      ctl("POST", "/guardian/" .. tx.oob_code .. "/reject")
      run_until(c, f, "awaiting_mfa_choice", "failed")
      assert.equal("awaiting_mfa_choice", f.state)
      assert.equal("access_denied", f.error.code)
      assert.equal("MFA Authorization rejected.", f.error.message)
      f:choose_authenticator(push)
      run_until(c, f, "awaiting_push")
      assert.is_nil(f.error)
      tx = pending_push(u.user_id)
      ctl("POST", "/guardian/" .. tx.oob_code .. "/approve")
      run_until(c, f, "done", "failed")
      assert.equal("done", f.state)
      assert.same({ "mfa" }, assert(c:verify_id_token(f.tokens.id_token)).amr)
    end)

    it("push: slow_down keeps waiting, five seconds longer", function()
      ctl("POST", "/mfa", { poll_min_interval = 1 })
      local u = mfa_user("m5@example.com", "always", { "push" })
      local c = client()
      local f = to_choice(c, "m5@example.com", { push_interval = 0.3 })
      local t_choose = now()
      f:choose_authenticator(find(f.authenticators, "push"))
      run_until(c, f, "awaiting_push")
      local t_push = now()
      local tx = pending_push(u.user_id)
      -- polls at 0.3 s (pending) and 0.6 s (slow_down: the next one comes 5.3 s later)
      local deadline = now() + 1.5
      while now() < deadline do assert(c:poll(10)) end
      assert.equal("awaiting_push", f.state)
      -- push_waited is the time spent waiting when read, not the last poll's (issue #10)
      local t_read = now()
      local waited = f.push_waited
      assert.is_true(waited >= t_read - t_push and waited <= t_read - t_choose, "waited " .. waited)
      ctl("POST", "/guardian/" .. tx.oob_code .. "/approve")
      local t0 = now()
      run_until(c, f, "done", "failed")
      assert.equal("done", f.state)
      assert.is_true(now() - t0 > 3, "the poll after slow_down came too early")
    end)

    it("switches from a push wait to another authenticator", function()
      local u = mfa_user("m6@example.com", "always", { "push", "otp" })
      local c = client()
      local f = to_choice(c, "m6@example.com")
      f:choose_authenticator(find(f.authenticators, "push"))
      run_until(c, f, "awaiting_push")
      local otp_auth
      for _, a in ipairs(f.authenticators) do
        if a.authenticator_type == "otp" and a.id == u.otp.id then otp_auth = a end
      end
      f:choose_authenticator(otp_auth)
      run_until(c, f, "awaiting_mfa_code")
      f:submit_mfa_code(totp(u.otp.secret))
      run_until(c, f, "done", "failed")
      assert.equal("done", f.state)
    end)

    it("a recovery code: wrong one, then the right one, rotated", function()
      local u = mfa_user("m7@example.com", "always", { "otp" })
      local c = client()
      local f = to_choice(c, "m7@example.com")
      f:submit_recovery_code("AAAABBBBCCCCDDDDEEEEFFFF")
      assert.equal("verifying", f.state)
      run_until(c, f, "awaiting_mfa_choice", "failed")
      assert.equal("awaiting_mfa_choice", f.state)
      assert.equal("invalid_grant", f.error.code)
      assert.equal("Invalid recovery code.", f.error.message)
      f:submit_recovery_code(u.recovery_code)
      run_until(c, f, "done", "failed")
      assert.equal("done", f.state)
      assert.matches("^[1-9A-HJ-NP-Z]+$", f.recovery_code)
      assert.equal(24, #f.recovery_code)
      assert.are_not.equal(u.recovery_code, f.recovery_code)
      -- the old code is dead, the new one works
      local g = to_choice(c, "m7@example.com")
      g:submit_recovery_code(u.recovery_code)
      run_until(c, g, "awaiting_mfa_choice")
      assert.equal("invalid_grant", g.error.code)
      g:submit_recovery_code(f.recovery_code)
      run_until(c, g, "done", "failed")
      assert.equal("done", g.state)
    end)

    it("enrolls an OTP authenticator when none is enrolled", function()
      mfa_user("m8@example.com", { "otp" })
      local c = client()
      local f = to_choice(c, "m8@example.com")
      assert.is_true(f.enroll_required)
      assert.same({}, f.authenticators)
      assert.same({ enroll = { { type = "otp" } } }, f.mfa_requirements)
      f:enroll { authenticator_types = { "otp" } }
      assert.equal("mfa_challenging", f.state)
      run_until(c, f, "awaiting_mfa_code", "failed")
      assert.equal("awaiting_mfa_code", f.state)
      assert.matches("^[A-Z2-7]+$", f.enrollment.secret)
      assert.equal(32, #f.enrollment.secret)
      assert.matches("^otpauth://totp/", f.enrollment.barcode_uri)
      assert.equal(24, #f.recovery_code)
      f:submit_mfa_code(totp(f.enrollment.secret))
      run_until(c, f, "done", "failed")
      assert.equal("done", f.state)
    end)

    it("enrolls push and waits for the approval", function()
      local u = mfa_user("m9@example.com", "always")
      local c = client()
      local f = to_choice(c, "m9@example.com")
      assert.is_true(f.enroll_required)
      f:enroll { authenticator_types = { "oob" }, oob_channels = { "auth0" } }
      run_until(c, f, "awaiting_push", "failed")
      assert.equal("awaiting_push", f.state)
      assert.matches("enrollment_tx_id=", f.enrollment.barcode_uri)
      local tx = pending_push(u.user_id)
      assert.is_true(tx.enrollment)
      ctl("POST", "/guardian/" .. tx.oob_code .. "/approve")
      run_until(c, f, "done", "failed")
      assert.equal("done", f.state)
    end)

    it("restarts from a new code when the mfa_token expired, then fails the second time", function()
      mfa_user("m10@example.com", "always", { "otp" })
      local c = client()
      local states, on_state = recorder()
      local f = to_choice(c, "m10@example.com", { on_state = on_state })
      ctl("POST", "/clock", { advance = 601 })
      f:choose_authenticator(f.authenticators[1])
      run_until(c, f, "awaiting_code", "failed")
      assert.equal("awaiting_code", f.state)
      assert.equal(1, f.restarts)
      assert.equal("expired_token", f.error.code)
      assert.equal("mfa_token is expired", f.error.message)
      assert.is_nil(f.authenticators)
      assert.equal(3, f.attempts_left)
      assert.equal(2, #outbox("m10@example.com"))
      f:submit_code(last_code("m10@example.com"))
      run_until(c, f, "awaiting_mfa_choice")
      ctl("POST", "/clock", { advance = 601 })
      f:choose_authenticator(f.authenticators[1])
      run_until(c, f, "failed", "awaiting_code")
      assert.equal("failed", f.state)
      assert.equal("expired_token", f.error.code)
      assert.same({ "sending_code", "awaiting_code", "verifying", "verifying", "awaiting_mfa_choice",
        "mfa_challenging", "sending_code", "awaiting_code", "verifying", "verifying", "awaiting_mfa_choice",
        "mfa_challenging", "failed" }, states)
    end)

    it("goes back to the choice when a binding code's oob_code expired", function()
      mfa_user("m11@example.com", "always", { "sms" })
      local c = client()
      local f = to_choice(c, "m11@example.com")
      f:choose_authenticator(f.authenticators[1])
      run_until(c, f, "awaiting_mfa_code")
      local m = outbox("+15550001111")
      ctl("POST", "/clock", { advance = 301 })
      f:submit_mfa_code(m[#m].binding_code)
      run_until(c, f, "awaiting_mfa_choice", "failed", "awaiting_code")
      assert.equal("awaiting_mfa_choice", f.state)
      assert.equal("oob_code is expired", f.error.message)
    end)
  end)

  describe("flow.run", function()
    it("runs a login with MFA through prompt functions", function()
      local u = mfa_user("r1@example.com", "always", { "otp" })
      local c = client()
      local calls = { ask_code = 0, choose = 0, ask_mfa = 0 }
      local tokens, err, f = flow.run(c, { connection = "email", email = "r1@example.com" }, {
        ask_code = function(f)
          calls.ask_code = calls.ask_code + 1
          assert.equal("awaiting_code", f.state)
          local code = last_code("r1@example.com")
          if calls.ask_code == 1 then return wrong(code) end
          return code
        end,
        choose_authenticator = function(f, list)
          calls.choose = calls.choose + 1
          assert.equal(f.authenticators, list)
          return list[1]
        end,
        ask_mfa_code = function()
          calls.ask_mfa = calls.ask_mfa + 1
          return totp(u.otp.secret)
        end,
      })
      assert.is_nil(err)
      assert.equal("Bearer", tokens.token_type)
      assert.equal("done", f.state)
      assert.same({ ask_code = 2, choose = 1, ask_mfa = 1 }, calls)
    end)

    it("resends a dead code by itself and waits for a push", function()
      local u = mfa_user("r2@example.com", "always", { "push" })
      local c = client()
      local asked, waits = 0, {}
      local tokens, err = flow.run(c, { connection = "email", email = "r2@example.com", push_interval = 0.05 }, {
        ask_code = function()
          asked = asked + 1
          local code = last_code("r2@example.com")
          if asked <= 3 then return wrong(code) end
          return code
        end,
        on_push_wait = function(f, waited)
          waits[#waits + 1] = waited
          assert.equal("awaiting_push", f.state)
          if #waits == 2 then
            ctl("POST", "/guardian/" .. pending_push(u.user_id).oob_code .. "/approve")
          end
        end,
      })
      assert.is_nil(err)
      assert.is_string(tokens.access_token)
      assert.equal(4, asked)
      local codes = 0
      for _, m in ipairs(outbox("r2@example.com")) do if m.kind == "code" then codes = codes + 1 end end
      assert.equal(2, codes)
      assert.is_true(#waits >= 2)
      assert.is_true(waits[2] > waits[1])
    end)

    it("returns nil, err (cancelled) when a prompt gives up", function()
      local c = client()
      local tokens, err, f = flow.run(c, { connection = "email", email = "r3@example.com" },
        { ask_code = function() return nil end })
      assert.is_nil(tokens)
      assert.equal("cancelled", err.code)
      assert.equal("cancelled", f.state)
    end)

    it("raises naming the prompt when it answers with something that is not text, and cancels the flow", function()
      local c = client()
      local seen
      local ok, msg = pcall(flow.run, c, { connection = "email", email = "r5@example.com" },
        { ask_code = function(f) seen = f; return 123456 end })
      assert.is_false(ok)
      assert.matches("bad argument #3 to 'run' (field 'ask_code' returned a number (string or nil expected))", msg, 1, true)
      assert.equal("cancelled", seen.state)
    end)

    it("lets a prompt act on the flow itself (recovery code)", function()
      local u = mfa_user("r4@example.com", "always", { "otp" })
      local c = client()
      local tokens, err, f = flow.run(c, { connection = "email", email = "r4@example.com" }, {
        ask_code = function() return last_code("r4@example.com") end,
        choose_authenticator = function(f)
          f:submit_recovery_code(u.recovery_code)
        end,
      })
      assert.is_nil(err)
      assert.is_string(tokens.access_token)
      assert.equal(tokens.recovery_code, f.recovery_code)
    end)

    it("refuses to run inside a callback", function()
      local c = client()
      local ok, msg
      c:openid_configuration(function()
        ok, msg = pcall(flow.run, c, { connection = "email", email = "r5@example.com" },
          { ask_code = function() return "123456" end })
      end)
      local deadline = now() + 10
      while ok == nil and now() < deadline do c:poll(10) end
      assert.is_false(ok)
      assert.is_truthy(msg:find("bad argument #1 to 'run' (flow.run cannot run inside a callback", 1, true), msg)
      assert.equal(0, c:poll(50))
    end)
  end)

  -- Issue #10: flow.run used as a script would (a prompt that keeps answering the same code)
  -- must stop; waits are visible; f.error and f.push_waited describe the present.
  describe("flow.run limits", function()
    local function faults(rules) return ctl("POST", "/faults", { rules = rules }) end
    local function seen(path) return ctl("GET", "/faults").requests[path] or 0 end

    -- A prompt that answers `answer()` and fails the test instead of being asked forever.
    local function bounded(calls, answer)
      return function(f)
        calls[#calls + 1] = { t = now(), wait = f.wait, error = f.error }
        if #calls > 20 then error("flow.run asked for ever") end
        return answer(f)
      end
    end

    it("stops after max_prompts answers when the same wrong code keeps coming", function()
      faults({})
      local calls, first = {}, nil
      local tokens, err, f = flow.run(client(), { connection = "email", email = "l1@example.com" }, {
        ask_code = bounded(calls, function()
          first = first or wrong(last_code("l1@example.com"))
          return first
        end),
      })
      assert.is_nil(tokens)
      assert.equal("too_many_prompts", err.code)
      assert.equal("too_many_attempts", err.reason)
      assert.equal("failed", f.state)
      assert.equal(err, f.error)
      assert.equal(5, #calls)
      -- 3 wrong answers kill a code; the run resends once by itself
      assert.equal(5, seen("/oauth/token"))
      assert.equal(2, seen("/passwordless/start"))
    end)

    it("honours max_prompts", function()
      local calls = {}
      local _, err = flow.run(client(), { connection = "email", email = "l2@example.com", max_prompts = 2 },
        { ask_code = bounded(calls, function() return "00000x" end) })
      assert.equal("too_many_prompts", err.code)
      assert.equal(2, #calls)
    end)

    it("waits retry_after after a 429 before asking again, and shows the wait", function()
      faults({ { kind = "rate_limit", path = "/oauth/token", times = 1, retry_after = 1 } })
      local calls, waits = {}, {}
      local tokens, err = flow.run(client(), { connection = "email", email = "l3@example.com" }, {
        ask_code = bounded(calls, function() return last_code("l3@example.com") end),
        on_wait = function(f, s, why) waits[#waits + 1] = { s, why, f.state } end,
      })
      assert.is_nil(err)
      assert.is_string(tokens.access_token)
      assert.equal(2, #calls)
      assert.is_true(calls[2].t - calls[1].t >= 1, "asked again after " .. (calls[2].t - calls[1].t) .. " s")
      assert.same({ { 1, "rate_limited", "awaiting_code" } }, waits)
      assert.same({ reason = "rate_limited", seconds = 1 }, calls[2].wait)
      assert.equal("rate_limited", calls[2].error.reason)
      assert.equal(429, calls[2].error.status)
    end)

    it("waits between failed resends, then goes on", function()
      local calls, waits = {}, {}
      local t_third
      local tokens, err = flow.run(client(), { connection = "email", email = "l4@example.com" }, {
        ask_code = bounded(calls, function()
          local code = last_code("l4@example.com")
          if #calls == 3 then
            faults({ { kind = "rate_limit", path = "/passwordless/start", times = 2, retry_after = 1 } })
            t_third = now()
          end
          if #calls <= 3 then return wrong(code) end
          return code
        end),
        on_wait = function(_, s, why) waits[#waits + 1] = { s, why } end,
      })
      assert.is_nil(err)
      assert.is_string(tokens.access_token)
      assert.equal(4, #calls)
      assert.same({ { 1, "rate_limited" }, { 1, "rate_limited" } }, waits)
      assert.is_true(calls[4].t - t_third >= 2, "resent after " .. (calls[4].t - t_third) .. " s")
      assert.equal(3, seen("/passwordless/start"))   -- since the rule: 2 refused, 1 sent
    end)

    it("stops with the send's error after max_prompts failed resends", function()
      local calls = {}
      local tokens, err, f = flow.run(client(), { connection = "email", email = "l5@example.com", max_prompts = 3 }, {
        ask_code = bounded(calls, function()
          if #calls == 3 then faults({ { kind = "rate_limit", path = "/passwordless/start", retry_after = 0 } }) end
          return wrong(last_code("l5@example.com"))
        end),
      })
      assert.is_nil(tokens)
      assert.equal("too_many_requests", err.code)
      assert.equal("rate_limited", err.reason)
      assert.equal("failed", f.state)
      assert.equal(3, #calls)
      assert.equal(3, seen("/passwordless/start"))
    end)

    it("stops when the server asks for a wait over max_wait", function()
      faults({ { kind = "rate_limit", path = "/oauth/token", retry_after = 30 } })
      local calls = {}
      local t0 = now()
      local _, err = flow.run(client(), { connection = "email", email = "l6@example.com", max_wait = 10 },
        { ask_code = bounded(calls, function() return last_code("l6@example.com") end) })
      assert.equal("rate_limited", err.reason)
      assert.equal(30, err.retry_after)
      assert.equal(1, #calls)
      assert.is_true(now() - t0 < 5)
    end)

    it("never sends one TOTP code twice in a time step; too_many_attempts waits", function()
      local u = mfa_user("l7@example.com", "always", { "otp" })
      local sent = {}
      local c = client { on_log = function(_, msg, fields)
        if msg == "request" and fields.endpoint == "mfa_otp" then sent[#sent + 1] = socket.gettime() end
      end }
      local calls, waits = {}, {}
      local same
      local tokens, err = flow.run(c, { connection = "email", email = "l7@example.com", totp_period = 1 }, {
        ask_code = function() return last_code("l7@example.com") end,
        ask_mfa_code = bounded(calls, function()
          same = same or (totp(u.otp.secret) == "000000" and "111111" or "000000")
          return same
        end),
        on_wait = function(f, s, why)
          waits[#waits + 1] = why
          assert.equal("awaiting_mfa_code", f.state)
          assert.is_true(s > 0 and s <= 1)
        end,
      })
      assert.is_nil(tokens)
      assert.equal("too_many_prompts", err.code)
      assert.equal(5, #calls)
      assert.is_true(#sent >= 2)
      assert.equal(5, #sent + #waits)
      for i = 2, #sent do
        assert.is_true(math.floor(sent[i]) > math.floor(sent[i - 1]), "one code twice in one step")
      end
      for _, why in ipairs(waits) do assert.equal("totp_step", why) end
      for i = 2, #calls do
        if calls[i].wait then assert.equal("totp_step", calls[i].wait.reason) end
      end
    end)

    it("waits after too_many_attempts from the MFA failure bucket", function()
      ctl("POST", "/mfa", { attempts = 1 })
      local u = mfa_user("l8@example.com", "always", { "otp" })
      local calls, waits = {}, {}
      local tokens, err = flow.run(client(), { connection = "email", email = "l8@example.com", totp_period = 1 }, {
        ask_code = function() return last_code("l8@example.com") end,
        ask_mfa_code = bounded(calls, function()
          if #calls == 1 then return totp(u.otp.secret) == "000000" and "111111" or "000000" end
          return totp(u.otp.secret)
        end),
        on_wait = function(_, s, why) waits[#waits + 1] = { s, why } end,
      })
      -- the bucket stays empty (one token per 6 min): the run waits 1 s between answers and
      -- gives up after max_prompts
      assert.is_nil(tokens)
      assert.equal("too_many_prompts", err.code)
      assert.equal(5, #calls)
      for i = 3, #calls do
        assert.equal("too_many_attempts", calls[i].error.reason)
        assert.is_true(calls[i].t - calls[i - 1].t >= 1)
      end
      assert.same({ 1, "too_many_attempts" }, waits[1])
    end)
  end)

  describe("f.error and f.push_waited describe the present", function()
    it("clears f.error when the flow leaves the state it described", function()
      local u = mfa_user("e1@example.com", "always", { "otp" })
      local c = client()
      local seen = {}
      local f = flow.login(c, { connection = "email", email = "e1@example.com",
        on_state = function(f) seen[#seen + 1] = { f.state, f.error and f.error.reason } end })
      run_until(c, f, "awaiting_code")
      f:submit_code(wrong(last_code("e1@example.com")))
      run_until(c, f, "awaiting_code")
      assert.equal("wrong_code", f.error.reason)
      f:submit_code(last_code("e1@example.com"))
      assert.equal("verifying", f.state)
      assert.is_nil(f.error)
      run_until(c, f, "awaiting_mfa_choice")
      f:choose_authenticator(f.authenticators[1])
      run_until(c, f, "awaiting_mfa_code")
      f:submit_mfa_code(totp(u.otp.secret) == "000000" and "111111" or "000000")
      run_until(c, f, "awaiting_mfa_code")
      assert.equal("wrong_code", f.error.reason)
      f:choose_authenticator(f.authenticators[1])
      assert.equal("mfa_challenging", f.state)
      assert.is_nil(f.error)
      run_until(c, f, "awaiting_mfa_code")
      assert.is_nil(f.error)
      f:submit_mfa_code(totp(u.otp.secret))
      run_until(c, f, "done")
      assert.same({ { "sending_code" }, { "awaiting_code" }, { "verifying" }, { "awaiting_code", "wrong_code" },
        { "verifying" }, { "verifying" }, { "awaiting_mfa_choice" }, { "mfa_challenging" }, { "awaiting_mfa_code" },
        { "verifying" }, { "awaiting_mfa_code", "wrong_code" }, { "mfa_challenging" }, { "awaiting_mfa_code" },
        { "verifying" }, { "done" } }, seen)
    end)

    it("f.push_waited is the time waited whenever it is read", function()
      mfa_user("e2@example.com", "always", { "push" })
      local c = client()
      local f = flow.login(c, { connection = "email", email = "e2@example.com", push_interval = 2 })
      run_until(c, f, "awaiting_code")
      f:submit_code(last_code("e2@example.com"))
      run_until(c, f, "awaiting_mfa_choice")
      local t0 = now()
      f:choose_authenticator(f.authenticators[1])
      run_until(c, f, "awaiting_push")
      local t1 = now()
      assert.is_true(f.push_waited < 0.5)
      while now() - t1 < 0.6 do assert(c:poll(10)) end
      local t2 = now()
      local w = f.push_waited
      assert.is_true(w >= t2 - t1 and w <= t2 - t0, "push_waited " .. w .. " after " .. (t2 - t1) .. " s")
      assert.equal(0, f.push_polls)   -- no poll yet (every 2 s): push_polls counts the answers
      f:cancel()
      local frozen = f.push_waited
      socket.sleep(0.05)
      assert.equal(frozen, f.push_waited)
    end)
  end)

  describe("flow.mfa", function()
    -- An mfa_required answer obtained without a flow (as a refresh would give it).
    local function mfa_required(c, email)
      assert(c:passwordless_start { connection = "email", email = email, send = "code" })
      local t, e = c:passwordless_login { realm = "email", username = email, otp = last_code(email) }
      assert.is_nil(t)
      assert.equal("mfa_required", e.reason)
      return e
    end

    it("completes an MFA challenge from an mfa_required error, with the login's states", function()
      local u = mfa_user("x1@example.com", "always", { "otp" })
      local c = client()
      local e = mfa_required(c, "x1@example.com")
      local states, on_state = recorder()
      local f = flow.mfa(c, { mfa_token = e.mfa_token, mfa_requirements = e.mfa_requirements }, { on_state = on_state })
      assert.equal("verifying", f.state)
      run_until(c, f, "awaiting_mfa_choice")
      assert.equal(1, #f.authenticators)
      assert.is_nil(f.identifier)
      f:choose_authenticator(f.authenticators[1])
      run_until(c, f, "awaiting_mfa_code")
      f:submit_mfa_code(totp(u.otp.secret))
      run_until(c, f, "done", "failed")
      assert.equal("done", f.state)
      assert.same({ "mfa" }, assert(c:verify_id_token(f.tokens.id_token)).amr)
      assert.same({ "verifying", "awaiting_mfa_choice", "mfa_challenging", "awaiting_mfa_code", "verifying", "done" },
        states)
    end)

    it("fails on an expired mfa_token (no login to restart); serializes and resumes", function()
      mfa_user("x2@example.com", "always", { "otp" })
      local c = client()
      local e = mfa_required(c, "x2@example.com")
      local f = flow.mfa(c, { mfa_token = e.mfa_token })
      run_until(c, f, "awaiting_mfa_choice")
      local t = cjson.decode(cjson.encode(f:serialize()))
      assert.is_nil(t.identifier)
      local g = flow.resume(client(), t)
      assert.equal("awaiting_mfa_choice", g.state)
      ctl("POST", "/clock", { advance = 601 })
      g:choose_authenticator(g.authenticators[1])
      run_until(g._client, g, "failed", "awaiting_code")
      assert.equal("failed", g.state)
      assert.equal("mfa_token_expired", g.error.reason)
      assert.equal(0, g.restarts)
    end)

    it("runs with prompts: flow.run with mfa_token", function()
      local u = mfa_user("x3@example.com", "always", { "otp" })
      local c = client()
      local e = mfa_required(c, "x3@example.com")
      local tokens, err, f = flow.run(c, { mfa_token = e.mfa_token, mfa_requirements = e.mfa_requirements },
        { ask_mfa_code = function() return totp(u.otp.secret) end })
      assert.is_nil(err)
      assert.equal("done", f.state)
      assert.is_string(tokens.access_token)
    end)

    it("raises on misuse", function()
      local c = client()
      assert.has_error(function() flow.mfa(c, nil) end, "bad argument #2 to 'mfa' (table expected, got nil)")
      assert.has_error(function() flow.mfa(nil, {}) end, "bad argument #1 to 'mfa' (auth0.Client expected, got nil)")
      assert.has_error(function() flow.mfa(c, {}) end, "bad argument #2 to 'mfa' (field 'mfa_token': string expected, got nil)")
      assert.has_error(function() flow.mfa(c, { mfa_token = "" }) end, "bad argument #2 to 'mfa' (mfa_token must not be empty)")
      assert.has_error(function() flow.mfa(c, { mfa_token = "t", x = 1 }) end, "bad argument #2 to 'mfa' (unknown field 'x')")
      assert.has_error(function() flow.mfa(c, { mfa_token = "t", mfa_requirements = "x" }) end,
        "bad argument #2 to 'mfa' (field 'mfa_requirements': table expected, got string)")
      assert.has_error(function() flow.mfa(c, { mfa_token = "t" }, { email = "a@b.c" }) end,
        "bad argument #3 to 'mfa' (takes no email for an MFA flow: there is no login to restart)")
      assert.has_error(function() flow.mfa(c, { mfa_token = "t" }, { bogus = 1 }) end,
        "bad argument #3 to 'mfa' (unknown option 'bogus')")
      assert.has_error(function() flow.mfa(c, { mfa_token = "t" }, 5) end,
        "bad argument #3 to 'mfa' (table expected, got number)")
      assert.has_error(function() flow.run(c, { mfa_token = "t" }, { ask_mfa_code = 1 }) end,
        "bad argument #3 to 'run' (field 'ask_mfa_code': function expected, got number)")
      assert.has_error(function() flow.run(c, { mfa_token = 7 }, {}) end,
        "bad argument #2 to 'run' (field 'mfa_token': string expected, got number)")
    end)
  end)

  -- Issue #10: the flow decides on err.reason, never on Auth0's English: the emulator (in
  -- process, as a transport) with every error text reworded routes a login the same way.
  describe("reworded error texts", function()
    local emulator = require "auth0.emulator"
    local BASE = "https://tenant.example"
    local rewrites

    -- Rewrites every error text of the emulator's answers ("error" codes are kept).
    local function reworded(fn)
      return function(req)
        local resp = fn(req)
        local body = resp.status >= 400 and cjson.decode(resp.body or "")
        if type(body) == "table" and body.error then
          rewrites = rewrites + 1
          body.error_description = "Texto cambiado " .. rewrites
          resp.body = cjson.encode(body)
        end
        return resp
      end
    end

    -- One login through every rerouting rule; returns the (state, reason) trail.
    local function scenario(reword)
      rewrites = 0
      local e = emulator.new { base_url = BASE }
      local fn = e:transport()
      local function ectl(method, path, body)
        local resp = fn { method = method, url = BASE .. "/__emulator" .. path,
          headers = { ["content-type"] = "application/json" }, body = body and cjson.encode(body) }
        assert(resp.status == 200, path .. " answered " .. resp.status)
        return cjson.decode(resp.body)
      end
      ectl("POST", "/mfa", { poll_min_interval = 0 })
      local user = ectl("POST", "/users", { connection = "email", email = "w@example.com", mfa = "always" })
      local otp = ectl("POST", "/mfa/authenticators", { user_id = user.user_id, type = "otp" }).authenticator
      ectl("POST", "/mfa/authenticators", { user_id = user.user_id, type = "push" })
      ectl("POST", "/mfa/authenticators", { user_id = user.user_id, type = "sms", phone_number = "+15550002222" })
      local function code()
        local m = ectl("GET", "/outbox?to=w%40example.com").messages
        return m[#m].code
      end
      local function totp_now() return auth0.totp(otp.secret, { time = ectl("GET", "/clock").now }) end
      local c = client { base_url = BASE, transport = reword and reworded(fn) or fn }
      local trail = {}
      local f = flow.login(c, { connection = "email", email = "w@example.com", push_interval = 0.02,
        on_state = function(f) trail[#trail + 1] = f.state .. (f.error and " " .. f.error.reason or "") end })
      run_until(c, f, "awaiting_code")
      for _ = 1, 3 do
        f:submit_code(wrong(code()))
        run_until(c, f, "awaiting_code")
      end
      assert.is_true(f.must_resend)
      f:resend_code()
      run_until(c, f, "awaiting_code")
      f:submit_code(code())
      run_until(c, f, "awaiting_mfa_choice")
      f:choose_authenticator(find(f.authenticators, "push"))
      run_until(c, f, "awaiting_push")
      local tx = ectl("GET", "/guardian").transactions[1]
      ectl("POST", "/guardian/" .. auth0.core.pct_escape(tx.oob_code) .. "/reject")
      run_until(c, f, "awaiting_mfa_choice")
      -- an expired binding code: Auth0's code (expired_token) is the mfa_token's too
      f:choose_authenticator(find(f.authenticators, "sms"))
      run_until(c, f, "awaiting_mfa_code")
      local sms = ectl("GET", "/outbox?to=%2B15550002222").messages
      ectl("POST", "/clock", { advance = 301 })
      f:submit_mfa_code(sms[#sms].binding_code)
      run_until(c, f, "awaiting_mfa_choice")
      f:choose_authenticator(find(f.authenticators, "totp"))
      run_until(c, f, "awaiting_mfa_code")
      local right = totp_now()
      f:submit_mfa_code(right == "000000" and "111111" or "000000")
      run_until(c, f, "awaiting_mfa_code")
      ectl("POST", "/clock", { advance = 601 })
      f:submit_mfa_code(totp_now())
      run_until(c, f, "awaiting_code", "failed")
      f:submit_code(code())
      run_until(c, f, "awaiting_mfa_choice")
      f:choose_authenticator(find(f.authenticators, "totp"))
      run_until(c, f, "awaiting_mfa_code")
      f:submit_mfa_code(totp_now())
      run_until(c, f, "done", "failed")
      return trail, rewrites
    end

    it("routes a login the same whatever the texts say", function()
      local expected = {
        "sending_code", "awaiting_code",
        "verifying", "awaiting_code wrong_code", "verifying", "awaiting_code wrong_code",
        "verifying", "awaiting_code wrong_code",
        "sending_code", "awaiting_code", "verifying", "verifying", "awaiting_mfa_choice",
        "mfa_challenging", "awaiting_push", "awaiting_mfa_choice push_rejected",
        "mfa_challenging", "awaiting_mfa_code", "verifying", "awaiting_mfa_choice oob_expired",
        "mfa_challenging", "awaiting_mfa_code", "verifying", "awaiting_mfa_code wrong_code",
        "verifying", "sending_code mfa_token_expired", "awaiting_code mfa_token_expired",
        "verifying", "verifying", "awaiting_mfa_choice", "mfa_challenging", "awaiting_mfa_code",
        "verifying", "done" }
      local trail, n = scenario(false)
      assert.same(expected, trail)
      assert.equal(0, n)
      trail, n = scenario(true)
      assert.same(expected, trail)
      -- 3 wrong codes, a push rejection, an expired binding code, a wrong and an expired
      -- TOTP answer, and the pending polls
      assert.is_true(n >= 7, n .. " texts reworded")
    end)
  end)

  describe("serialize and resume", function()
    it("resumes a flow waiting for its code on another client", function()
      local c1, c2 = client(), client()
      local f = flow.login(c1, { connection = "email", email = "s1@example.com", scope = "openid email" })
      run_until(c1, f, "awaiting_code")
      local t = f:serialize()
      assert.equal(1, t.version)
      assert.equal("awaiting_code", t.state)
      assert.equal("email", t.connection)
      assert.equal("s1@example.com", t.identifier)
      assert.equal("email", t.identifier_field)
      assert.equal(3, t.attempts_left)
      assert.equal("openid email", t.scope)
      local g = flow.resume(c2, cjson.decode(cjson.encode(t)))
      assert.equal("awaiting_code", g.state)
      g:submit_code(last_code("s1@example.com"))
      run_until(c2, g, "done", "failed")
      assert.equal("done", g.state)
      assert.equal("openid email", g.tokens.scope)
    end)

    it("resumes at the MFA code and at a push wait", function()
      local u = mfa_user("s2@example.com", "always", { "otp", "push" })
      local c = client()
      local f = flow.login(c, { connection = "email", email = "s2@example.com" })
      run_until(c, f, "awaiting_code")
      f:submit_code(last_code("s2@example.com"))
      run_until(c, f, "awaiting_mfa_choice")
      f:choose_authenticator(find(f.authenticators, "totp"))
      run_until(c, f, "awaiting_mfa_code")
      local t = cjson.decode(cjson.encode(f:serialize()))
      assert.equal("awaiting_mfa_code", t.state)
      assert.matches("^Fe26%.2%*", t.mfa_token)
      assert.equal("otp", t.challenge_type)
      f:cancel()
      local g = flow.resume(client(), t)
      g:submit_mfa_code(totp(u.otp.secret))
      run_until(g._client, g, "done", "failed")
      assert.equal("done", g.state)

      -- a push wait resumes polling at once
      f = flow.login(c, { connection = "email", email = "s2@example.com", push_interval = 0.05 })
      run_until(c, f, "awaiting_code")
      f:submit_code(last_code("s2@example.com"))
      run_until(c, f, "awaiting_mfa_choice")
      f:choose_authenticator(find(f.authenticators, "push"))
      run_until(c, f, "awaiting_push")
      t = cjson.decode(cjson.encode(f:serialize()))
      assert.is_string(t.oob_code)
      f:cancel()
      local c3 = client()
      local states, on_state = recorder()
      g = flow.resume(c3, t, { push_interval = 0.05, on_state = on_state })
      assert.equal("awaiting_push", g.state)
      ctl("POST", "/guardian/" .. pending_push(u.user_id).oob_code .. "/approve")
      run_until(c3, g, "done", "failed")
      assert.equal("done", g.state)
      assert.same({ "awaiting_push", "done" }, states)
    end)
  end)
end)
