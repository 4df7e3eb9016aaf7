--- auth0.credentials, internal: a rotated session the store refused to write (a full queue, a
-- full disk). The server retired the refresh token it came from, and presenting that one again
-- is reuse, which revokes the whole family (a logout): the manager keeps the rotated session in
-- memory and the next refresh starts from it while the store still holds the retired token.
-- @submodule auth0.credentials
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (as the manager's other parts)

-- unsaved_or(self, d): what a refresh starts from, `d` being the store's content.
local function unsaved_or(self, d)
  local r = self._rotated
  if not (r and d and d.refresh_token == r.from) then return d end
  self._data = r.data
  return r.data
end

-- refused_write(self, d, nd, ok): after the write of `nd`, renewed from `d` (`ok`: written).
-- `from` stays the token the store holds through a chain of refused writes.
local function refused_write(self, d, nd, ok)
  local r = self._rotated
  local from = r and d == r.data and r.from or d.refresh_token
  if ok or nd.refresh_token == from then self._rotated = nil; return end   -- the store's token works
  self._rotated = { from = from, data = nd }
end

return function() return unsaved_or, refused_write end
