--- The multi-factor methods of auth0.Client (PROTOCOL.md sections 4-7): installed by
-- auth0/init.lua, which hands over the helpers they share with the rest of the client.
return function(Client, h)
  local raise, check_string, has_ctl, show = h.raise, h.check_string, h.has_ctl, h.show
  local check_phone, check_email = h.check_phone, h.check_email
  local tokens_shape, object_shape, list_shape, true_shape = h.tokens_shape, h.object_shape, h.list_shape, h.true_shape
  local new_error, now, Pending, traceback = h.new_error, h.now, h.Pending, h.traceback
  local type, pairs, ipairs, pcall, xpcall, setmetatable = type, pairs, ipairs, pcall, xpcall, setmetatable


  --- Lists authenticators (GET /mfa/authenticators) with an mfa_token or MFA access token.
  function Client:mfa_authenticators(token, cb)
    check_string(token, "token", 2)
    if has_ctl(token) then raise("token contains CR, LF or NUL") end
    return self:_call("mfa_authenticators", nil, { bearer = token }, cb, list_shape)
  end

  --- Deletes an authenticator. @return true or nil, err
  function Client:mfa_delete_authenticator(token, authenticator_id, cb)
    check_string(token, "token", 2)
    check_string(authenticator_id, "authenticator_id", 2)
    if has_ctl(token) then raise("token contains CR, LF or NUL") end
    return self:_call("mfa_delete_authenticator", nil, { bearer = token, path_arg = authenticator_id }, cb,
      true_shape)
  end

  local OOB_CHANNELS = { sms = true, voice = true, auth0 = true, email = true }

  -- Old docs spell the answer's channel `oob_channels` (string or list); the real server `oob_channel`.
  local function associate_shape(t)
    if type(t) ~= "table" then return nil, "expected a JSON object" end
    if t.oob_channel == nil and t.oob_channels ~= nil then
      t.oob_channel = type(t.oob_channels) == "table" and t.oob_channels[1] or t.oob_channels
    end
    return t
  end

  local AUTH_TYPES = { otp = true, oob = true }

  --- Enrolls an authenticator (POST /mfa/associate).
  -- @tparam table p `token`, `authenticator_types` ({"otp"} or {"oob"}), `oob_channels`,
  -- `phone_number`, `email`
  function Client:mfa_associate(p, cb)
    if type(p) ~= "table" then raise("mfa_associate expects a table") end
    local token = check_string(p.token, "token", 2)
    if has_ctl(token) then raise("token contains CR, LF or NUL") end
    local types = p.authenticator_types
    if type(types) ~= "table" or #types == 0 then raise("authenticator_types must be a non-empty list") end
    for _, t in ipairs(types) do
      if not AUTH_TYPES[t] then raise("authenticator_types: unknown type " .. show(t)) end
    end
    local channels = p.oob_channels
    if channels ~= nil then
      if type(channels) ~= "table" or #channels == 0 then raise("oob_channels must be a non-empty list") end
      for _, c in ipairs(channels) do
        if not OOB_CHANNELS[c] then raise("oob_channels: unknown channel " .. show(c)) end
      end
    end
    if types[1] == "oob" and channels == nil then raise("oob enrollment needs oob_channels") end
    local fields = self:_client_fields { authenticator_types = types, oob_channels = channels,
      phone_number = p.phone_number and check_phone(p.phone_number, 2),
      email = p.email and check_email(p.email, 2) }
    return self:_call("mfa_associate", fields, { bearer = token }, cb, associate_shape)
  end

  local CHALLENGE_TYPES = { otp = true, oob = true, ["otp oob"] = true, ["oob otp"] = true }

  --- Starts a challenge (POST /mfa/challenge).
  -- @tparam table p `mfa_token`, `challenge_type` ("otp", "oob", "otp oob"), `authenticator_id`
  -- @return `{challenge_type, oob_code, binding_method}` or nil, err
  function Client:mfa_challenge(p, cb)
    if type(p) ~= "table" then raise("mfa_challenge expects a table") end
    local ct = p.challenge_type
    if ct ~= nil and not CHALLENGE_TYPES[ct] then raise("challenge_type must be otp, oob or \"otp oob\"") end
    local fields = self:_client_fields { mfa_token = check_string(p.mfa_token, "mfa_token", 2),
      challenge_type = ct, authenticator_id = check_string(p.authenticator_id, "authenticator_id", 2, true) }
    return self:_call("mfa_challenge", fields, nil, cb, object_shape)
  end

  --- Completes MFA with exactly one of `otp`, `oob_code` (+ `binding_code`), `recovery_code`.
  -- With a recovery code, `tokens.recovery_code` is the new code to show the user.
  function Client:mfa_verify(p, cb)
    if type(p) ~= "table" then raise("mfa_verify expects a table") end
    local mfa_token = check_string(p.mfa_token, "mfa_token", 2)
    local n = (p.otp ~= nil and 1 or 0) + (p.oob_code ~= nil and 1 or 0) + (p.recovery_code ~= nil and 1 or 0)
    if n ~= 1 then raise("give exactly one of otp, oob_code, recovery_code") end
    if p.binding_code ~= nil and p.oob_code == nil then raise("binding_code goes with oob_code") end
    for k in pairs(p) do
      if k ~= "mfa_token" and k ~= "otp" and k ~= "oob_code" and k ~= "binding_code" and k ~= "recovery_code" then
        raise("mfa_verify: unknown field " .. show(k))
      end
    end
    if p.otp ~= nil then
      return self:_call("mfa_otp", self:_client_fields { mfa_token = mfa_token,
        otp = check_string(p.otp, "otp", 2) }, nil, cb, tokens_shape)
    elseif p.oob_code ~= nil then
      return self:_call("mfa_oob", self:_client_fields { mfa_token = mfa_token,
        oob_code = check_string(p.oob_code, "oob_code", 2),
        binding_code = check_string(p.binding_code, "binding_code", 2, true) }, nil, cb, tokens_shape)
    end
    return self:_call("mfa_recovery_code", self:_client_fields { mfa_token = mfa_token,
      recovery_code = check_string(p.recovery_code, "recovery_code", 2) }, nil, cb, tokens_shape)
  end

  -- A rejected push: access_denied (real server) or invalid_grant "MFA Authorization rejected." (docs).
  local function is_rejection(e)
    return e.code == "access_denied" or (e.code == "invalid_grant" and (e.message or ""):find("rejected", 1, true))
  end

  --- Waits for a push approval by polling the mfa-oob grant.
  -- @tparam table p `mfa_token`, `oob_code`, `interval` (5 s), `timeout` (300 s),
  -- `on_pending(waited_seconds)`
  -- @return tokens, or nil, err: `access_denied` (rejected), `expired_token`, `timeout`, ...
  function Client:mfa_poll(p, cb)
    if type(p) ~= "table" then raise("mfa_poll expects a table") end
    local mfa_token = check_string(p.mfa_token, "mfa_token", 2)
    local oob_code = check_string(p.oob_code, "oob_code", 2)
    local interval = p.interval or 5
    local limit = p.timeout or 300
    if type(interval) ~= "number" or interval <= 0 or interval > 600 then raise("interval must be in (0, 600] seconds") end
    if type(limit) ~= "number" or limit <= 0 or limit > 86400 then raise("timeout must be in (0, 86400] seconds") end
    if p.on_pending ~= nil and type(p.on_pending) ~= "function" then raise("on_pending must be a function") end
    local on_pending = p.on_pending
    local started, slept = now(), 0
    local fields = self:_client_fields { mfa_token = mfa_token, oob_code = oob_code }

    -- one step of the state machine: returns "wait", seconds | "done", tokens, err
    local function step(tokens, err)
      if tokens then return "done", tokens end
      local code = err.code
      if code == "authorization_pending" or code == "slow_down" then
        if code == "slow_down" then interval = interval + 5 end
        -- the waits asked for count even when a custom `sleep` does not really sleep
        local waited = math.max(now() - started, slept)
        if on_pending then
          local ok, msg = xpcall(on_pending, traceback, waited)
          if not ok then pcall(self._on_cb_error, msg) end
        end
        if waited + interval > limit then
          return "done", nil, new_error("timeout", "push approval not received within " .. limit .. " s",
            { context = "mfa_poll" })
        end
        return "wait", interval
      end
      if is_rejection(err) then err.code = "access_denied" end
      return "done", nil, err
    end

    if cb == nil then
      local wait = interval
      while true do
        self._sleep(wait)
        slept = slept + wait
        local state, a, b = step(self:_call("mfa_oob", fields, nil, nil, tokens_shape))
        if state == "done" then return a, b end
        wait = a
      end
    end

    if type(cb) ~= "function" then raise("callback must be a function") end
    local p_obj = setmetatable({ _ep = "mfa_poll", _done = false }, Pending)
    local timer
    local function finish_poll(tokens, err)
      if p_obj._done then return end
      p_obj._done = true
      self:_deliver(cb, tokens, err)
    end
    local function schedule(wait)
      timer = self:_after(wait, function()
        timer = nil
        slept = slept + wait
        p_obj._inner = self:_call("mfa_oob", fields, nil, function(tokens, err)
          if p_obj._done then return end
          local state, a, b = step(tokens, err)
          if state == "done" then finish_poll(a, b) else schedule(a) end
        end, tokens_shape)
      end)
      timer.on_close = function() finish_poll(nil, new_error("cancelled", "client closed", { context = "mfa_poll" })) end
    end
    p_obj._cancel = function()
      if timer then self:_cancel_timer(timer) end
      self:_deliver(cb, nil, new_error("cancelled", "request cancelled", { context = "mfa_poll" }))
    end
    schedule(interval)
    return p_obj
  end
end
