--- flow.run's loop: drives a flow to its end with blocking prompt functions (see
-- `flow.run` in lua/auth0/flow.lua for the prompts and the limits). Internal.
-- @local
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local auth0 = require "auth0"
local machine = require "auth0.flow.machine"

local type, ipairs, tostring, floor, min = type, ipairs, tostring, math.floor, math.min
local time, now, sleep = os.time, auth0.core.now, auth0.core.sleep
local check = require "auth0.check"

local _M = {}

local POLL_MS = 100
local MAX_SLEEP = 0.1

-- Answers that are worth trying again only after `err.retry_after`.
local WAIT = { rate_limited = true, too_many_attempts = true }

-- Prompts whose answer is text (a code, a pasted link) or nil to cancel.
local TEXT = { ask_code = true, ask_mfa_code = true, ask_link = true }

--- Raises unless `prompts` is a table of functions with the ones a run needs.
local PROMPTS = machine.at("run", 3, true)

function _M.check_prompts(prompts, no_code)
  check.table(PROMPTS, prompts)
  if not no_code and type(prompts.ask_code) ~= "function" then
    PROMPTS:fail("field 'ask_code': function expected, got " .. type(prompts.ask_code))
  end
  for _, k in ipairs { "ask_code", "choose_authenticator", "ask_mfa_code", "on_push_wait", "on_wait", "ask_link" } do
    if prompts[k] ~= nil and type(prompts[k]) ~= "function" then
      PROMPTS:fail("field '" .. k .. "': function expected, got " .. type(prompts[k]))
    end
  end
end

local function poll(f, client, ms)
  local n, err = client:poll(ms)
  if not n then
    f:cancel()
    machine.misuse("run", 1, "flow.run cannot run inside a callback of this client (" .. tostring(err) .. ")")
  end
end

--- Runs `f` to its end. @return tokens, nil, f | nil, err, f
function _M.run(client, f, prompts)
  local max = f._max_prompts
  local answers = { ask_code = 0, choose_authenticator = 0, ask_mfa_code = 0, ask_link = 0 }
  local handled                        -- the error already waited for
  local sending, sends, failed_sends = false, f._sends, 0
  local last_otp, last_step            -- the TOTP code sent last and its time step
  local polls_seen = f.push_polls

  local function stop(err)
    machine.finish(f, "failed", err)
    return nil, err, f
  end

  -- Waits `s` seconds, serving the client meanwhile; f.wait and on_wait show it.
  local function wait(s, reason)
    f.wait = { reason = reason, seconds = s }
    if prompts.on_wait then prompts.on_wait(f, s, reason) end
    local deadline = now() + s
    while true do
      local left = deadline - now()
      if left <= 0 then break end
      if client:pending() > 0 then poll(f, client, min(left * 1000, POLL_MS)) else sleep(min(left, MAX_SLEEP)) end
    end
  end

  -- Calls prompt `kind` unless it answered max_prompts times already: ok, answer | false, err.
  local function ask(kind, default, ...)
    if answers[kind] >= max then
      local err = auth0.error.new("too_many_prompts", kind .. " answered " .. max .. " times (max_prompts)",
        { context = "flow", reason = "too_many_attempts" })
      f.wait = nil
      return false, err
    end
    answers[kind] = answers[kind] + 1
    local prompt = prompts[kind]
    local answer
    if prompt then answer = prompt(f, ...) else answer = default end
    f.wait = nil
    if TEXT[kind] and answer ~= nil and type(answer) ~= "string" then
      -- named here: submit_code's own check would name a method the caller never called
      f:cancel()
      PROMPTS:fail("field '" .. kind .. "' returned a " .. type(answer) .. " (string or nil expected)")
    end
    return true, answer
  end

  while true do
    local s = f.state
    if s == "done" then return f.tokens, nil, f end
    if s == "failed" or s == "cancelled" then return nil, f.error, f end
    if s == "awaiting_code" or s == "awaiting_mfa_code" or s == "awaiting_mfa_choice" then
      local e = f.error
      local send_failed = false
      if sending then
        sending = false
        send_failed = f._sends == sends
        sends = f._sends
        failed_sends = send_failed and failed_sends + 1 or 0
        if send_failed and failed_sends >= max then return stop(e) end
      end
      local pause
      if e and e ~= handled then
        handled = e
        if send_failed then
          pause = e.retry_after or min(2 ^ (failed_sends - 1), f._max_wait)
        elseif WAIT[e.reason] then
          pause = e.retry_after or 1
        end
      end
      if pause and pause > f._max_wait then return stop(e) end
      if pause and pause > 0 then wait(pause, e.reason) end
      if f.state ~= s then -- luacheck: ignore 542 (on_wait acted on the flow)
      elseif s == "awaiting_code" then
        if f.must_resend then
          f:resend_code()
        else
          local ok, code = ask("ask_code", nil)
          if not ok then return stop(code) end
          if f.state == s then
            if code ~= nil then f:submit_code(code) else f:cancel() end
          end
        end
      elseif s == "awaiting_mfa_choice" then
        local ok, a = ask("choose_authenticator", f.authenticators[1], f.authenticators)
        if not ok then return stop(a) end
        if f.state == s then
          if a ~= nil then f:choose_authenticator(a) else f:cancel() end
        end
      else
        if not prompts.ask_mfa_code then
          f:cancel()
          PROMPTS:fail("field 'ask_mfa_code': function expected, got nil (the login asks for an MFA code)")
        end
        local ok, code = ask("ask_mfa_code", nil)
        if not ok then return stop(code) end
        if f.state == s then
          local totp = f._oob_code == nil
          local period = f._totp_period
          local step = floor(time() / period)
          if code == nil then
            f:cancel()
          elseif totp and code == last_otp and step == last_step then
            -- the server refuses a TOTP code used in its step: wait for the next one, ask again
            wait((step + 1) * period - time(), "totp_step")
          else
            if totp then last_otp, last_step = code, step end
            f:submit_mfa_code(code)
          end
        end
      end
    elseif s == "awaiting_link" and prompts.ask_link then
      -- a pasted link; without ask_link the flow's loopback listener completes it
      local ok, url = ask("ask_link", nil)
      if not ok then return stop(url) end
      if f.state == s then
        if url ~= nil then f:submit_link(url) else f:cancel() end
      end
    else
      if s == "sending_code" then sending = true end
      poll(f, client, POLL_MS)
      if f.state == "awaiting_push" and f.push_polls ~= polls_seen then
        polls_seen = f.push_polls
        if prompts.on_push_wait then prompts.on_push_wait(f, f.push_waited) end
      end
    end
  end
end

return _M
