-- A credentials store whose lock can be lost (store.holds, as ngx_store's), and the manager
-- around it (spec/credentials_lock_spec.lua, spec/attack8_spec.lua).
local credentials = require "auth0.credentials"
local util = require "spec.support.util"

local M = {}

--- A memory store (`s.inner`) whose lock is "mark" and whose `holds` answers plan[i] on its
-- i-th call (a function returning the answer, or the answer itself; true once the plan is
-- done). A false answer first saves `st.newer` when set (another holder wrote meanwhile).
-- `st` records calls, each holds' hold, and lock's wait and hold.
function M.store(plan)
  local inner = credentials.memory_store()
  local st = { calls = 0, holds = {} }
  local s = { kind = "lossy", inner = inner }
  s.load, s.save, s.clear = inner.load, inner.save, inner.clear
  function s.lock(wait, hold) st.wait, st.hold = wait, hold; return "mark" end
  function s.unlock(m) st.unlocked = m end
  function s.holds(m, hold)
    st.calls = st.calls + 1
    st.holds[#st.holds + 1] = hold
    local v = plan[st.calls]
    if type(v) == "function" then v = v() end
    if v == nil then v = true end
    if v == false and st.newer then inner.save(st.newer) end
    return m == "mark" and v
  end
  return s, st
end

--- A manager on `store` holding a login of `email` whose access token has expired.
-- @return client, manager, tokens
function M.seeded(emu, srv, store, email)
  emu.reset()
  local c = util.client(srv, { timeout = 7 })
  local tokens = util.login(emu, c, email)
  tokens.expires_in = 0
  local cm = credentials.new(c, { store = store })
  assert(cm:save(tokens))
  return c, cm, tokens
end

--- cm:credentials() in `form` ("blocking" or "callback", polled until it ends).
function M.get(form, c, cm)
  if form == "blocking" then return cm:credentials() end
  local res, err, done
  cm:credentials(function(r, e) res, err, done = r, e, true end)
  assert(util.poll_until(c, function() return done end, 20), "the callback never came")
  return res, err
end

return M
