-- Comparing two ways of making the same call (spec/flat_fit_spec.lua, spec/attack9_spec.lua:
-- the blocking call's fused C decode against the general path).
local mtype = math.type or function() return "float" end -- luacheck: ignore 143 (LuaJIT: doubles only)
local M = {}

--- Deep equality of plain data: numbers of the same subtype and value (-0 is not 0; NaN is NaN),
-- `expires_at` within a second (the two calls may fall in different seconds) plus a double's ulp
-- (LuaJIT adds doubles: an expires_in of 2^53 rounds).
function M.same(a, b, key)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if key == "expires_at" then return math.abs(a - b) <= 1 + math.abs(a) * 2 ^ -52 end
    return mtype(a) == mtype(b) and ((a == b and 1 / a == 1 / b) or (a ~= a and b ~= b))
  end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not M.same(v, b[k], k) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

--- A call's outcome as plain data: { value = v }, or { err = the error's fields and message }.
function M.of(v, err)
  if v ~= nil then return { value = v } end
  local e = {}
  for k, x in pairs(err) do e[k] = x end
  e.message = tostring(err)
  return { err = e }
end

return M
