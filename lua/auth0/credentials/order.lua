--- auth0.credentials, the order the callback-form saves land in (see in_order below).
-- @submodule auth0.credentials
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local select, pcall, error = select, pcall, error
local unpack = table.unpack or unpack -- luacheck: ignore 113 143

-- The callback-form saves land in the order they were asked (a later one must never be
-- overwritten by an earlier one whose check took longer, e.g. a JWKS fetch for a new kid).
-- in_order(self, fn, guard) takes a save's turn now: fn(...) through the wrapper it returns
-- runs once every earlier save has had its own; turn() gives up one not had (a raise ended
-- it). A later save's fn run on this one's turn raises through its own guard (which ends
-- that save), then to on_callback_error: never into this save's context, which it would end.
local function in_order(self, fn, guard)
  local q = self._turns or { h = 1, t = 0 }
  self._turns = q
  q.t = q.t + 1
  local me, taken = q.t, false
  local client = self._client
  local function turn(run)
    if taken then return end
    taken, q[me] = true, run or false
    local ok, err = true, nil
    while q[q.h] ~= nil do
      local k, f = q.h, q[q.h]
      q[k], q.h = nil, k + 1
      if f then
        local fok, ferr = pcall(f)
        if not fok then
          if k ~= me and type(client._deliver) == "function" then client:_deliver(error, ferr, 0)
          elseif ok then ok, err = false, ferr end
        end
      end
    end
    if not ok then error(err, 0) end
  end
  return function(...)
    local n, a = select("#", ...), { ... }
    turn(guard(function() fn(unpack(a, 1, n)) end))
  end, turn
end

return in_order
