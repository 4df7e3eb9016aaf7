--- Error objects: what every `nil, err` of lua-auth0 carries.
-- `err.code` is the server's `error` string (or its legacy `code`), or one of ours:
-- `timeout`, `couldnt_connect`, `couldnt_resolve`, `tls`, `bad_response`, `too_large`,
-- `cancelled`, `network`, `transport`, `unauthorized`, `forbidden`, `not_found`,
-- `server_error`, `http_error`. `tostring(err)` is one line without any secret.
local cjson = require("cjson.safe").new()

local type, tonumber, tostring, setmetatable = type, tonumber, tostring, setmetatable
local floor, time = math.floor, os.time

local _M = {}

local Error = { __name = "auth0.Error" }
Error.__index = Error
Error.__tostring = function(e)
  local s = (e.context and (e.context .. ": ") or "") .. tostring(e.code)
  if e.message and e.message ~= "" then s = s .. ": " .. e.message end
  if e.status then s = s .. " (HTTP " .. e.status .. ")" end
  return s
end
_M.Error = Error

--- True when `v` is an error object made here.
function _M.is(v) return type(v) == "table" and getmetatable(v) == Error end

--- A new error object; `fields` may carry anything the caller needs to act on.
function _M.new(code, message, fields)
  local e = fields or {}
  e.code, e.message = code, message
  return setmetatable(e, Error)
end

local status_codes = {
  [401] = "unauthorized", [403] = "forbidden", [404] = "not_found", [429] = "too_many_requests",
}

-- Server text is shown to people: one line, bounded, no control characters.
local function clean(s)
  if type(s) ~= "string" then return nil end
  s = s:gsub("[%c]", " ")
  if #s > 300 then s = s:sub(1, 300):gsub("[\192-\255][\128-\191]*$", "") .. "..." end
  return s
end

local months = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9,
  Oct = 10, Nov = 11, Dec = 12 }

-- Days from 1970-01-01 to a proleptic Gregorian date: os.time would read the date as local
-- time and raises on instants mktime cannot represent, so the epoch is computed directly.
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy - 719468
end

local MAX_WAIT = 366 * 86400   -- a longer "wait" is a broken header, not advice

local function bound(wait)
  if wait ~= wait or wait < 0 then return 0 end
  if wait > MAX_WAIT then return MAX_WAIT end
  return floor(wait)
end

--- Seconds to wait from a Retry-After value (delta seconds or an HTTP date), or nil.
function _M.parse_retry_after(v, now)
  if type(v) ~= "string" then return nil end
  local n = tonumber(v:match("^%s*(%d+)%s*$"))
  if n then return bound(n) end
  local d, mon, y, h, mi, s = v:match("^%a+, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not months[mon] then return nil end
  local epoch = days_from_civil(tonumber(y), months[mon], tonumber(d)) * 86400 + tonumber(h) * 3600 +
    tonumber(mi) * 60 + tonumber(s)
  return bound(epoch - (now or time()))
end

--- Fills rate-limit fields from the captured headers.
local function add_headers(e, hdrs)
  if not hdrs then return e end
  e.request_id = hdrs.request_id
  if e.status and e.status >= 300 and e.status < 400 then e.location = hdrs.location end
  local limit, remaining, reset = tonumber(hdrs.ratelimit_limit), tonumber(hdrs.ratelimit_remaining),
    tonumber(hdrs.ratelimit_reset)
  if limit or remaining or reset then
    e.rate_limit = { limit = limit, remaining = remaining, reset = reset }
  end
  e.retry_after = _M.parse_retry_after(hdrs.retry_after)
  if not e.retry_after and e.status == 429 and reset then e.retry_after = bound(reset - time()) end
  return e
end
_M.add_headers = add_headers

--- Builds the error object for a non-2xx answer. Tolerates every error body shape the
-- protocol has: OAuth `error`/`error_description`, legacy `code`/`description`,
-- `name`/`message`, a bare `message`, and plain text.
function _M.from_response(status, body, hdrs, context)
  local decoded = body ~= "" and cjson.decode(body) or nil
  local code, message
  if type(decoded) == "table" then
    code = decoded.error or decoded.code or decoded.name
    message = decoded.error_description or decoded.description or decoded.message
    -- a code is shown in tostring(err) and logs: one line, bounded, never empty
    if type(code) ~= "string" or code == "" then code = nil else code = clean(code) end
    if type(message) ~= "string" then message = nil end
  else
    decoded = nil
    message = body
  end
  code = code or status_codes[status] or (status >= 500 and "server_error") or "http_error"
  local e = _M.new(code, clean(message) or "", { status = status, body = decoded, context = context })
  if decoded then
    if type(decoded.mfa_token) == "string" then e.mfa_token = decoded.mfa_token end
    if type(decoded.mfa_requirements) == "table" then e.mfa_requirements = decoded.mfa_requirements end
  end
  return add_headers(e, hdrs)
end

return _M
