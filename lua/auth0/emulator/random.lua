--- The emulator's randomness: bytes, hex, Auth0-like ids and decimal codes, from the system's
-- generator, or deterministic (SHA-256 of seed and counter) when the emulator has a `seed`.
-- Installed as methods of the Emulator object by lua/auth0/emulator/init.lua.
-- @local
local core = require "auth0.core"

local concat, byte, format, gsub, tostring = table.concat, string.byte, string.format, string.gsub, tostring

local M = {}

--- `n` random bytes (deterministic when the emulator has a seed).
function M.bytes(self, n)
  if not self.seed then return core.random_bytes(n) end
  local out = {}
  local len = 0
  while len < n do
    self.seed_counter = self.seed_counter + 1
    local block = core.sha256(self.seed .. ":" .. self.seed_counter)
    out[#out + 1] = block
    len = len + #block
  end
  return concat(out):sub(1, n)
end

--- `n` random bytes as lowercase hex.
function M.hex(self, n)
  return (gsub(self:random_bytes(n), ".", function(c) return format("%02x", byte(c)) end))
end

--- A 24-hex id like Auth0's object ids.
function M.id(self)
  return self:random_hex(12)
end

--- A string of `n` uniformly random decimal digits.
function M.digits(self, n)
  local out = {}
  while #out < n do
    local bytes = self:random_bytes(n)
    for i = 1, #bytes do
      local b = byte(bytes, i)
      if b < 250 and #out < n then out[#out + 1] = tostring(b % 10) end
    end
  end
  return concat(out)
end

return M
