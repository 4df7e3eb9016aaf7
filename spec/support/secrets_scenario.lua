--- The "callbacks raise error objects" scenario of spec/secrets_spec.lua, shared by its run
-- in this process (libcurl) and its run inside an nginx worker (auth0.transport.ngx): every
-- kind of callback (a request's, a cached value's, mfa_poll's on_pending and final one, a
-- flow's on_state, a credentials manager's, a loopback listener's) raises an auth0.Error, a
-- table holding one, and the flow object itself (which holds the mfa_token).
-- `env`: `clients` (each with on_log or on_callback_error sinks of the caller's),
-- `control(method, path, body)` (the emulator's control API, path after /__emulator),
-- `secret(s)` (records a value that must never be seen), `dump(v)` (what a sink saw: a
-- value checked for secrets afterwards), `email` (a prefix for addresses).
local auth0 = require "auth0"
local flow = require "auth0.flow"
local credentials = require "auth0.credentials"

return function(env)
  local control, secret, px = env.control, env.secret, env.email or "cb"
  local function code_for(to)
    local out = control("GET", "/outbox?to=" .. auth0.core.pct_escape(to))
    return secret(out.messages[#out.messages].code)
  end
  local function drain(c) while c:poll(20) > 0 do end end
  local function until_state(c, f, ...)
    local want = {}
    for _, s in ipairs({ ... }) do want[s] = true end
    for _ = 1, 500 do
      if want[f.state] then return end
      c:poll(20)
    end
    error("flow stuck in " .. tostring(f.state))
  end
  local mfa_email, plain_email = px .. "-mfa@example.com", px .. "-plain@example.com"
  local u = control("POST", "/users", { connection = "email", email = mfa_email, mfa = "always" })
  control("POST", "/mfa/authenticators", { user_id = u.user_id, type = "push", name = "phone" })
  control("POST", "/mfa", { poll_min_interval = 0 })
  local function mfa_err(cl)
    assert(cl:passwordless_start { connection = "email", email = mfa_email })
    local _, err = cl:passwordless_login { realm = "email", username = mfa_email, otp = code_for(mfa_email) }
    assert(err and err.code == "mfa_required", "expected mfa_required")
    secret(err.mfa_token)
    return err
  end
  local raisers = {
    function(_, err) assert(nil, err) end,                     -- assert(tokens, err)
    function(_, err) error(err) end,
    function(_, err) error({ err = err, note = "wrapped" }) end,
    function(_, err) error({ { inner = err } }) end,
    function(_, err, f) error(f or err) end,                   -- the flow object itself
    function(_, err, f) error({ flow = f, err = err }) end,
  }
  local runs = 0
  for _, cl in ipairs(env.clients) do
    for _, raise in ipairs(raisers) do
      -- a request callback
      assert(cl:passwordless_start { connection = "email", email = mfa_email })
      cl:passwordless_login({ realm = "email", username = mfa_email, otp = code_for(mfa_email) }, raise)
      drain(cl)
      -- a cached-value callback (jwks) and mfa_poll's on_pending and final callback
      local e = mfa_err(cl)
      cl:jwks(function() raise(nil, e) end)
      drain(cl)
      local ch = assert(cl:mfa_challenge { mfa_token = e.mfa_token, challenge_type = "oob" })
      secret(ch.oob_code)
      cl:mfa_poll({ mfa_token = e.mfa_token, oob_code = ch.oob_code, interval = 0.01, timeout = 0.05,
        on_pending = function() raise(nil, e) end }, function() raise(nil, e) end)
      drain(cl)
      -- a flow's on_state, at every state change: up to a push wait, then cancelled
      local f = flow.login(cl, { connection = "email", email = mfa_email, push_interval = 0.01,
        on_state = function(fl)
          raise(nil, fl.error or e, fl)
        end })
      until_state(cl, f, "awaiting_code")
      f:submit_code(code_for(mfa_email))
      until_state(cl, f, "awaiting_mfa_choice")
      f:choose_authenticator(f.authenticators[1])
      until_state(cl, f, "awaiting_push")
      local st = f:serialize()
      secret(st.mfa_token); secret(st.oob_code)
      -- a careless logger that dumps the flow field by field (all but its client and request)
      local fields = {}
      for k, v in pairs(f) do
        if k ~= "_client" and k ~= "_req" then fields[k] = v end
      end
      env.dump(fields)
      f:cancel()
      drain(cl)
      -- a credentials manager's callbacks: save, then a forced renewal
      assert(cl:passwordless_start { connection = "email", email = plain_email })
      local t = assert(cl:passwordless_login { realm = "email", username = plain_email, otp = code_for(plain_email),
        scope = "openid offline_access" })
      secret(t.access_token); secret(t.id_token); secret(t.refresh_token)
      local cm = credentials.new(cl)
      local saved
      cm:save(t, function(ok, err)
        saved = { ok, err and tostring(err) }
        raise(ok, err or e, cm)
      end)
      drain(cl)
      assert(saved and saved[1], "save failed: " .. tostring(saved and saved[2]))
      cm:credentials({ min_ttl = 86400 * 365 }, function(tok, err)
        if tok then secret(tok.access_token) end
        raise(nil, err or e, tok)
      end)
      drain(cl)
      runs = runs + 1
    end
  end
  return runs
end
