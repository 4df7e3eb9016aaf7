--- The retry policy (README "Retries"), a table beside the endpoint table of the C core:
-- reads may be retried on 429/503; any call may be retried when its connection failed before
-- the request was sent; nothing else is ever resent (a code would be burnt, a message resent).
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local errors = require "auth0.error"

local tonumber, time, random, min = tonumber, os.time, math.random, math.min

local M = {}

--- Endpoint -> "read" (retried on 429 and 503); absent: never retried once sent.
M.policy = { userinfo = "read", mfa_authenticators = "read", jwks = "read", openid_configuration = "read" }

--- Failures that happen before anything was sent.
M.not_sent = { couldnt_connect = true, couldnt_resolve = true }

--- The time a retry needs after its wait, of a call whose timeout is `timeout`: with less
-- left it would end in `timeout` and hide the answer that made it retry.
function M.min_left(timeout) return min(0.25 * timeout, 1) end

--- The wait before retrying a call to `ep` whose attempt number `attempt` (1 first) got
-- (status, body, hdrs) or (nil, code, msg); nil when it must not be retried.
-- @tparam table cfg `retries`, `max_retry_wait`
-- @string ep the endpoint's name
-- @int attempt the attempt that just ended, 1 first
-- @tparam ?number status the HTTP status, nil when no answer came
-- @tparam ?string code the engine's error code when no answer came
-- @tparam ?table hdrs the answer's captured headers
-- @number left seconds left before the call's deadline
-- @number timeout the call's timeout
-- @treturn ?number seconds to wait, or nil: do not retry
function M.wait(cfg, ep, attempt, status, code, hdrs, left, timeout)
  if attempt > cfg.retries then return nil end
  local retry = (status == nil and M.not_sent[code]) or (M.policy[ep] == "read" and (status == 429 or status == 503))
  if not retry then return nil end
  local wait = status and errors.parse_retry_after(hdrs and hdrs.retry_after) or nil
  if not wait and status == 429 and hdrs and tonumber(hdrs.ratelimit_reset) then
    wait = tonumber(hdrs.ratelimit_reset) - time()
  end
  wait = wait or (0.1 * 2 ^ (attempt - 1))
  if wait < 0 then wait = 0 end
  if wait > cfg.max_retry_wait then return nil end -- the caller decides: err.retry_after says when
  wait = wait + random() * 0.1
  if wait + M.min_left(timeout) > left then return nil end
  return wait
end

return M
