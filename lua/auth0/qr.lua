--- QR codes for enrollment screens: `auth0.qr(text[, opts])` builds the matrix of a QR code
-- (libqrencode, in the C core) for drawing in a game or printing in a terminal.
--
--     local qr = require "auth0.qr"
--     local m = assert(qr.encode(enrollment.barcode_uri))
--     io.write(m:terminal())            -- half blocks, for a light terminal background
--     for y = 1, m.size do for x = 1, m.size do
--       if m:get(x, y) then draw_square(x, y) end   -- leave 4 light modules around it
--     end end
--
-- The module is callable: `require("auth0.qr")(text, opts)` is `encode(text, opts)`.
-- The matrix encodes the text, and an otpauth URI holds the TOTP secret: treat it like the
-- secret. `tostring(m)` shows only its size; the text itself is not kept.
local core = require "auth0.core"
local errors = require "auth0.error"

local type, pairs, error, tostring, setmetatable, getmetatable, floor =
  type, pairs, error, tostring, setmetatable, getmetatable, math.floor
local byte, sub, concat = string.byte, string.sub, table.concat
local core_qr, new_error = core.qr, errors.new

local _M = {}

local MODULES = {}   -- private key of the module string in a matrix object

local QR = { __name = "auth0.QR" }
QR.__index = QR
_M.QR = QR

-- Misuse raises in the form of luaL_argerror, at the caller of the public function.
local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), level or 3)
end

-- NaN prints as "nan" or "-nan" depending on the platform
local function show_number(v) return v ~= v and "nan" or tostring(v) end

local LEVELS = { L = true, M = true, Q = true, H = true }

--- Builds the QR code of `text` at the smallest version that holds it.
-- @tparam string text the text to encode (an otpauth URI, a URL), 1 to 7089 bytes, no NUL byte
-- @tparam[opt] table opts `level`: error correction, `"L"` (7 %), `"M"` (15 %, default),
--   `"Q"` (25 %) or `"H"` (30 %)
-- @treturn[1] auth0.QR the matrix: field `size` (modules per side, 21 to 177), methods `get`,
--   `rows`, `terminal`
-- @treturn[2] nil when no QR code holds the text at that level (at most 2953 bytes of 8-bit
--   text at `L`, 1273 at `H`)
-- @treturn[2] auth0.Error `err.code == "too_large"`
-- @raise when `text` is not a non-empty string without NUL bytes, or an option is unknown or bad
function _M.encode(text, opts)
  if type(text) ~= "string" then argerror(1, "qr", "string expected, got " .. type(text)) end
  if text == "" then argerror(1, "qr", "must not be empty") end
  if text:find("%z") then argerror(1, "qr", "contains a NUL byte") end
  local level = "M"
  if opts ~= nil then
    if type(opts) ~= "table" then argerror(2, "qr", "table expected, got " .. type(opts)) end
    for k in pairs(opts) do
      if k ~= "level" then argerror(2, "qr", "unknown option '" .. tostring(k) .. "'") end
    end
    if opts.level ~= nil then
      level = opts.level
      if not LEVELS[level] then
        argerror(2, "qr", "level must be \"L\", \"M\", \"Q\" or \"H\", got " ..
          (type(level) == "string" and ("%q"):format(level:sub(1, 8)) or type(level)))
      end
    end
  end
  local modules, size = core_qr(text, level)
  if not modules then
    return nil, new_error("too_large", ("%d bytes do not fit in a QR code at level %s"):format(#text, level),
      { context = "qr" })
  end
  return setmetatable({ size = size, [MODULES] = modules }, QR)
end

setmetatable(_M, { __call = function(_, text, opts) return _M.encode(text, opts) end })

local function coordinate(v, n, size, fname)
  if type(v) ~= "number" then argerror(n, fname, "number expected, got " .. type(v), 4) end
  if v ~= v or v < 1 or v > size or floor(v) ~= v then
    argerror(n, fname, "must be an integer from 1 to " .. size .. ", got " .. show_number(v), 4)
  end
  return v
end

local function check_self(self, fname)
  if getmetatable(self) ~= QR then error(("calling '%s' on bad self (auth0.QR expected)"):format(fname), 3) end
end

--- Whether the module at column `x`, row `y` is dark. Both are 1-based: (1, 1) is the top left
-- module and (size, size) the bottom right; the quiet zone is not part of the matrix.
-- @treturn boolean true for dark
-- @raise when `x` or `y` is not an integer from 1 to `size`
function QR:get(x, y)
  check_self(self, "get")
  local size = self.size
  x = coordinate(x, 1, size, "get")
  y = coordinate(y, 2, size, "get")
  return byte(self[MODULES], (y - 1) * size + x) == 49   -- "1"
end

--- The rows from top to bottom, each a string of `size` characters, `"1"` dark and `"0"` light
-- (`rows()[y]:sub(x, x)` is module x, y).
-- @treturn {string,...}
function QR:rows()
  check_self(self, "rows")
  local size, modules, t = self.size, self[MODULES], {}
  for y = 1, size do t[y] = sub(modules, (y - 1) * size + 1, y * size) end
  return t
end

local TERMINAL_OPTS = { invert = "boolean", ascii = "boolean", quiet = "number" }

-- Half blocks indexed by top + 2 * bottom, 1 for a module drawn with the glyph.
local HALF = { [0] = " ", "\226\150\128", "\226\150\132", "\226\150\136" }   -- " ", ▀, ▄, █

--- The code as text for a terminal, with a quiet zone of light modules around it.
-- By default each character holds two rows (Unicode half blocks ▀ ▄ █) and draws dark modules
-- with the text colour, for a dark-on-light terminal; `invert` draws the light ones instead,
-- for light text on a dark background (phone cameras need dark modules on light).
-- @tparam[opt] table opts `invert` (boolean), `ascii` (boolean: `"##"` and two spaces per
--   module, one line per row, for terminals without Unicode), `quiet` (the quiet zone in
--   modules, integer 0 to 16, default 4; cameras need 4)
-- @treturn string lines, each ended by `"\n"`
-- @raise on an unknown option, a value of the wrong type, or `quiet` out of range (NaN too)
function QR:terminal(opts)
  check_self(self, "terminal")
  local invert, ascii, quiet = false, false, 4
  if opts ~= nil then
    if type(opts) ~= "table" then argerror(1, "terminal", "table expected, got " .. type(opts)) end
    for k, v in pairs(opts) do
      local want = TERMINAL_OPTS[k]
      if not want then argerror(1, "terminal", "unknown option '" .. tostring(k) .. "'") end
      if type(v) ~= want then argerror(1, "terminal", k .. " must be a " .. want .. ", got " .. type(v)) end
    end
    invert, ascii = opts.invert == true, opts.ascii == true
    if opts.quiet ~= nil then
      quiet = opts.quiet
      if quiet ~= quiet or quiet < 0 or quiet > 16 or floor(quiet) ~= quiet then
        argerror(1, "terminal", "quiet must be an integer from 0 to 16, got " .. show_number(quiet))
      end
    end
  end
  local size, modules = self.size, self[MODULES]
  local full = size + 2 * quiet
  local on = invert and 48 or 49   -- the byte ("0" or "1") drawn with the glyph
  -- 1 when the module at x, y (1-based, quiet zone included) is drawn with the glyph
  local function ink(x, y)
    x, y = x - quiet, y - quiet
    local b = (x >= 1 and x <= size and y >= 1 and y <= size) and byte(modules, (y - 1) * size + x) or 48
    return b == on and 1 or 0
  end
  local lines, line = {}, {}
  if ascii then
    for y = 1, full do
      for x = 1, full do line[x] = ink(x, y) == 1 and "##" or "  " end
      lines[#lines + 1] = concat(line, "", 1, full)
    end
  else
    for y = 1, full, 2 do
      for x = 1, full do line[x] = HALF[ink(x, y) + 2 * ink(x, y + 1)] end
      lines[#lines + 1] = concat(line, "", 1, full)
    end
  end
  lines[#lines + 1] = ""
  return concat(lines, "\n")
end

QR.__tostring = function(self) return ("auth0.QR (%dx%d)"):format(self.size, self.size) end

return _M
