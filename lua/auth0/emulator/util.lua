--- Helpers shared by the emulator modules: JSON (with real empty arrays), URL/form coding,
-- response builders and protocol constants. No state.
local cjson = require("cjson.safe").new()

local type, pairs, ipairs, next, tostring, tonumber = type, pairs, ipairs, next, tostring, tonumber
local setmetatable = setmetatable
local concat, sort = table.concat, table.sort
local byte, char, format, gsub = string.byte, string.char, string.format, string.gsub

local _M = {}

_M.GRANT_PASSWORDLESS_OTP = "http://auth0.com/oauth/grant-type/passwordless/otp"
_M.GRANT_REFRESH_TOKEN = "refresh_token"
_M.GRANT_MFA_OTP = "http://auth0.com/oauth/grant-type/mfa-otp"
_M.GRANT_MFA_OOB = "http://auth0.com/oauth/grant-type/mfa-oob"
_M.GRANT_MFA_RECOVERY_CODE = "http://auth0.com/oauth/grant-type/mfa-recovery-code"

_M.DEFAULT_GRANT_TYPES = {
  _M.GRANT_PASSWORDLESS_OTP, _M.GRANT_REFRESH_TOKEN,
  _M.GRANT_MFA_OTP, _M.GRANT_MFA_OOB, _M.GRANT_MFA_RECOVERY_CODE,
}

_M.JSON_CONTENT_TYPE = "application/json; charset=utf-8"

--- `v` as an integer (JSON numbers decode as floats in Lua 5.4), or `default`.
function _M.int(v, default)
  v = tonumber(v)
  if not v then return default end
  return math.floor(v)
end

---------------------------------------------------------------------------------------------
-- JSON. Debian's lua-cjson cannot encode an empty array, so tables passed through
-- `_M.array` are remembered (weakly) and encoded as `[]` when empty.

local arrays = setmetatable({}, { __mode = "k" })
-- The marker and its JSON form contain no pattern magic characters.
local EMPTY_ARRAY = "\1auth0emulatoremptyarray\1"
local EMPTY_ARRAY_JSON = '"\\u0001auth0emulatoremptyarray\\u0001"'

_M.null = cjson.null

--- Marks `t` (default: a new table) as a JSON array so that it encodes as `[]` when empty.
-- @treturn table t
function _M.array(t)
  t = t or {}
  arrays[t] = true
  return t
end

local function prepare(v)
  if type(v) ~= "table" then return v end
  if next(v) == nil then
    if arrays[v] then return EMPTY_ARRAY end
    return v
  end
  local copy = {}
  for k, x in pairs(v) do copy[k] = prepare(x) end
  return copy
end

--- Encodes a Lua value as JSON (empty `_M.array` tables as `[]`, slashes unescaped).
-- @return string
function _M.encode(v)
  local s = assert(cjson.encode(prepare(v)))
  -- cjson escapes every "/", so a "\/" pair is always such an escape, never half of "\\".
  s = gsub(s, "\\/", "/")
  return (gsub(s, EMPTY_ARRAY_JSON, "[]"))
end

--- Decodes JSON text. @return value | nil, err
function _M.decode(s)
  return cjson.decode(s)
end

--- True when `t` decoded from JSON is an object (including `{}`), false for a non-empty array.
function _M.is_object(t)
  if type(t) ~= "table" then return false end
  if next(t) == nil then return true end
  return t[1] == nil
end

---------------------------------------------------------------------------------------------
-- URL and form encoding.

--- Percent-encodes `s` per RFC 3986 (unreserved characters kept, space as %20).
function _M.url_encode(s)
  return (gsub(tostring(s), "[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
end

--- Decodes percent-escapes (and "+" as space when `plus` is true).
function _M.url_decode(s, plus)
  if plus then s = gsub(s, "+", " ") end
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end
local url_decode = _M.url_decode

--- Parses `a=b&c=d` into a table (first value wins for repeated names).
function _M.parse_query(q)
  local t = {}
  if not q or q == "" then return t end
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = url_decode(k, true)
    if k ~= "" and t[k] == nil then t[k] = url_decode(v, true) end
  end
  return t
end

--- Builds a query string from a table with sorted keys (deterministic output).
function _M.build_query(t, keys)
  if not keys then
    keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    sort(keys)
  end
  local out = {}
  for _, k in ipairs(keys) do
    if t[k] ~= nil then out[#out + 1] = _M.url_encode(k) .. "=" .. _M.url_encode(t[k]) end
  end
  return concat(out, "&")
end

---------------------------------------------------------------------------------------------
-- Responses.

--- A JSON response. @return response table
function _M.json(status, body, headers)
  local h = headers or {}
  h["content-type"] = _M.JSON_CONTENT_TYPE
  return { status = status, headers = h, body = _M.encode(body) }
end

--- An OAuth-style error response `{"error":code,"error_description":description}` plus `extra` fields.
function _M.error(status, code, description, extra, headers)
  local body = { error = code, error_description = description }
  if extra then for k, v in pairs(extra) do body[k] = v end end
  return _M.json(status, body, headers)
end

--- A plain-text response.
function _M.text(status, text, headers)
  local h = headers or {}
  h["content-type"] = "text/plain; charset=utf-8"
  return { status = status, headers = h, body = text }
end

return _M
