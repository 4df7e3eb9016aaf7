--- Argument checks of the public API: meaning only (an email's shape, "exactly one of", an
-- enum, a range). Wire invariants (size caps, NUL, UTF-8, CR/LF) belong to the C core, which
-- checks every value it encodes once (docs/protocol.md, "Limits").
-- Misuse raises in the form of luaL_argerror, at the caller of the public function:
-- `bad argument #1 to 'passwordless_start' (email is malformed)`.
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local core = require "auth0.core"

local type, error, tostring, tonumber, ipairs, getinfo = type, error, tostring, tonumber, ipairs, debug.getinfo
local email_shape = core.email_shape

local M = {}

-- The first stack level outside the library's own files: where the misuse is (flow's
-- misuse uses it too).
local function user_level()
  local level = 3
  while true do
    local info = getinfo(level, "S")
    if not info then return 0 end
    if not info.source:find("[/\\]auth0[/\\][%w_/\\]*%.lua$") then return level - 1 end
    level = level + 1
  end
end
M.user_level = user_level

--- Raises `bad argument #narg to 'fn' (msg)` at the first caller outside auth0.
-- @tparam string fn public function name
-- @tparam number narg argument position (methods count from their first argument after self)
-- @tparam string msg what is wrong
function M.argerror(fn, narg, msg)
  error(("bad argument #%d to '%s' (%s)"):format(narg, fn, msg), user_level())
end

--- A place to report misuse: `check.at("passwordless_start", 1)`; its `fail(msg)` raises.
local At = {}
At.__index = At
function At:fail(msg) M.argerror(self.fn, self.narg, msg) end
function M.at(fn, narg) return setmetatable({ fn = fn, narg = narg or 1 }, At) end

--- A user's value in a message: short printable values only, never a long or binary one.
function M.show(v)
  if type(v) ~= "string" then return type(v) end
  if #v > 32 or v:find("[%c\128-\255]") then return "a " .. #v .. "-byte string" end
  return ("%q"):format(v)
end

M.MAX_VALUE = core.limits.max_value

-- The C core's wire checks, for the few values it does not see under their public name:
-- client options (checked once, at auth0.new), bearer tokens (its header option `bearer`),
-- revoke's refresh_token (its body field `token`), an ID token (never sent).
local function wire(at, v, name)
  if #v > M.MAX_VALUE then at:fail(name .. " is longer than " .. M.MAX_VALUE .. " bytes") end
  if v:find("%z") then at:fail(name .. " contains a NUL byte") end
  if not core.utf8_valid(v) then at:fail(name .. " is not valid UTF-8") end
end
M.wire = wire

--- A non-empty string (or nil when `optional`); returns it.
function M.string(at, v, name, optional)
  if v == nil and optional then return nil end
  if type(v) ~= "string" then
    -- a field of a table argument in luaL_argerror's form; a positional one named
    if at.fields then at:fail("field '" .. name .. "': string expected, got " .. type(v)) end
    at:fail(name .. " must be a string, got " .. type(v))
  end
  if v == "" then at:fail(name .. " must not be empty") end
  return v
end

--- A string headed for an HTTP header or a client option: also the wire checks and no CR/LF.
function M.header(at, v, name, optional)
  if M.string(at, v, name, optional) == nil then return nil end
  wire(at, v, name)
  if v:find("[\r\n]") then at:fail(name .. " contains CR, LF or NUL") end
  return v
end

--- An email address's shape (one @, a dot in the domain, no space or control character).
-- The rule is `^L@D$` where L and D are runs of `[!-?A-~\128-\255]` (any byte but @, a
-- control character or a space), D has a dot that is neither its first nor its last
-- byte, at most 254 bytes; judged by one C byte scan (core.email_shape), a tenth of the
-- pattern's cost (every start checks one).
function M.email(at, v, name)
  if email_shape(v) then return v end
  name = name or "email"
  M.string(at, v, name)
  at:fail(name .. " is malformed")
end

--- An E.164 phone number: `^\+[0-9]{1,15}$`.
function M.phone(at, v, name)
  name = name or "phone_number"
  M.string(at, v, name)
  if #v > 16 or not v:find("^%+%d+$") then at:fail(name .. " must match ^\\+[0-9]{1,15}$") end
  return v
end

--- One of the keys of `set` (or nil when `optional`).
function M.enum(at, v, name, set, optional)
  if v == nil and optional then return nil end
  if set[v] == nil then
    local names = {}
    for k in pairs(set) do names[#names + 1] = tostring(k) end
    table.sort(names)
    at:fail(name .. " must be one of " .. table.concat(names, ", ") .. ", got " .. M.show(v))
  end
  return v
end

--- A number in (0, max] (NaN and inf are misuse), or `default` when nil.
function M.seconds(at, v, name, default, max, unit)
  if v == nil then return default end
  max = max or 86400
  if type(v) ~= "number" or not (v > 0 and v <= max) then
    at:fail(name .. " must be a number of " .. (unit or "seconds") .. " in (0, " .. max .. "]")
  end
  return v
end

--- A finite number (NaN and +-inf are misuse) in [min, max] when given, or nil (optional).
function M.finite(at, v, name, min, max)
  if v == nil then return nil end
  if type(v) ~= "number" then at:fail(name .. " must be a number, got " .. type(v)) end
  if v ~= v or v == math.huge or v == -math.huge then at:fail(name .. " must be a finite number") end
  if (min and v < min) or (max and v > max) then
    at:fail(name .. " must be in [" .. tostring(min or "-inf") .. ", " .. tostring(max or "inf") .. "]")
  end
  return v
end

local function ipv4(v)
  local a, b, c, d = v:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return false end
  for _, o in ipairs({ a, b, c, d }) do
    if #o > 3 or tonumber(o) > 255 or (#o > 1 and o:sub(1, 1) == "0") then return false end
  end
  return true
end

local function ipv6(v)
  if #v > 45 or v:find("[^%x:%.]") then return false end
  local head, tail = v, nil
  local dc = v:find("::", 1, true)
  if dc then
    if v:find("::", dc + 1, true) then return false end
    head, tail = v:sub(1, dc - 1), v:sub(dc + 2)
  end
  local groups = 0
  local function part(s, last)
    if s == "" then return true end
    local items = {}
    for g in (s .. ":"):gmatch("([^:]*):") do items[#items + 1] = g end
    for i, g in ipairs(items) do
      if last and i == #items and g:find(".", 1, true) then
        if not ipv4(g) then return false end
        groups = groups + 2
      elseif not g:find("^%x%x?%x?%x?$") then return false
      else groups = groups + 1 end
    end
    return true
  end
  if not part(head, tail == nil) or (tail and not part(tail, true)) then return false end
  if dc then return groups < 8 end
  return groups == 8
end

--- An IPv4 (dotted decimal) or IPv6 (RFC 4291 text form, no zone) address; returns it.
function M.ip(at, v, name)
  M.string(at, v, name)
  if not (ipv4(v) or ipv6(v)) then at:fail(name .. " must be an IPv4 or IPv6 address") end
  return v
end

--- A function (or nil when `optional`).
function M.func(at, v, name, optional)
  if v == nil and optional then return nil end
  if type(v) ~= "function" then at:fail(name .. " must be a function") end
  return v
end

--- A table argument: `bad argument #n to 'fn' (table expected, got nil)` (luaL_checktype's
-- words; `what`, e.g. "a refresh token or a table", names what else fits).
function M.table(at, v, what)
  at.fields = true   -- this argument is a table: its checks name fields (see M.string)
  if type(v) ~= "table" then
    at:fail((what and what:gsub("^an? ", "") or "table") .. " expected, got " .. type(v))
  end
  return v
end

--- Exactly one of the fields `names` of t is set; returns its name.
function M.one_of(at, t, names)
  local found
  for _, n in ipairs(names) do
    if t[n] ~= nil then
      if found then found = false; break end
      found = n
    end
  end
  if not found then at:fail("give exactly one of " .. table.concat(names, ", ")) end
  return found
end

-- Kept for callers of the first version (flow.lua): check_string(v, name, level, optional).
function M.check_string(v, name, _, optional) return M.string(M.at("auth0", 1), v, name, optional) end
function M.check_email(v) return M.email(M.at("auth0", 1), v) end
function M.check_phone(v) return M.phone(M.at("auth0", 1), v) end

--- The cosocket transport's pool options (`pool_size`, `keepalive_timeout`), checked by
-- auth0.new whatever the transport (a config must not pass outside nginx and raise inside)
-- and by the transport's own `new`: `fail(msg)` raises in the caller's form.
function M.pool_options(opts, fail)
  local n = opts.pool_size
  if n ~= nil and (type(n) ~= "number" or not (n >= 1 and n <= 100000) or n % 1 ~= 0) then   -- NaN too
    fail("pool_size must be an integer in 1..100000")
  end
  n = opts.keepalive_timeout
  if n ~= nil and (type(n) ~= "number" or not (n > 0 and n <= 86400)) then
    fail("keepalive_timeout must be a number of seconds in (0, 86400]")
  end
end

return M
