--- One-time passwords: RFC 4226 HOTP, RFC 6238 TOTP and `otpauth://` enrollment URIs.
-- The HMAC work happens in `auth0.core`; this module checks arguments and parses URIs.
-- @module auth0.otp

local core = require "auth0.core"

local type, tonumber, tostring, pairs = type, tonumber, tostring, pairs
local floor = math.floor
local os_time = os.time
local str_upper, str_lower, str_find, str_sub, str_gsub, str_char, str_match =
  string.upper, string.lower, string.find, string.sub, string.gsub, string.char, string.match

local errors = require "auth0.error"

local parse   -- parse_otpauth's work: (result) or (nil, message)
local _M = { _VERSION = "0.1.0" }

local argerror = require("auth0.check").argerror
-- Misuse raises in luaL_argerror's form at the caller: `bad argument #2 to 'totp' (...)`.
local OPTS_ARG = { totp = 2, hotp = 3 }

local ALGORITHMS = { SHA1 = true, SHA256 = true, SHA512 = true }
local TOTP_OPTS = { time = true, digits = true, period = true, algorithm = true }
local HOTP_OPTS = { digits = true, algorithm = true }

local function is_int(v)
  return type(v) == "number" and v == floor(v) and v >= 0 and v < 2^53
end

-- Raises at the caller of the public function (level 3 from here).
local function check_opts(fname, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    argerror(fname, OPTS_ARG[fname], "table expected, got " .. type(opts))
  end
  for k in pairs(opts) do
    if not allowed[k] then
      argerror(fname, OPTS_ARG[fname], "unknown option '" .. tostring(k) .. "'")
    end
  end
  return opts
end

local function check_common(fname, opts)
  local digits = opts.digits == nil and 6 or opts.digits
  if not is_int(digits) or digits < 6 or digits > 10 then
    argerror(fname, OPTS_ARG[fname], "digits must be an integer in 6..10")
  end
  local alg = opts.algorithm == nil and "SHA1" or opts.algorithm
  if type(alg) ~= "string" or not ALGORITHMS[str_upper(alg)] then
    argerror(fname, OPTS_ARG[fname], "algorithm must be SHA1, SHA256 or SHA512")
  end
  return digits, str_upper(alg)
end

-- The message names the problem and its position, never the secret itself.
local function decode_secret(fname, secret)
  if type(secret) ~= "string" then
    argerror(fname, 1, "secret must be a base32 string")
  end
  -- real secrets are 16-64 characters; a huge one is a mistake, not a key
  if #secret > 1024 then
    argerror(fname, 1, "invalid secret: longer than 1024 characters")
  end
  local key, err = core.base32_decode(secret)
  if not key then
    argerror(fname, 1, "invalid secret: " .. err)
  end
  if key == "" then
    argerror(fname, 1, "invalid secret: empty")
  end
  return key
end

--- Computes a TOTP code (RFC 6238).
-- @tparam string secret the shared secret, base32 (case-insensitive; spaces and `=` ignored)
-- @tparam[opt] table opts `time` (Unix seconds, default `os.time()`), `digits` (6..10,
--   default 6), `period` (seconds, default 30), `algorithm` ("SHA1" (default), "SHA256", "SHA512")
-- @treturn string the zero-padded code
-- @raise on a bad secret or option; the message never contains the secret
function _M.totp(secret, opts)
  opts = check_opts("totp", opts, TOTP_OPTS)
  local digits, alg = check_common("totp", opts)
  local period = opts.period == nil and 30 or opts.period
  if not is_int(period) or period < 1 then
    argerror("totp", 2, "period must be a positive integer")
  end
  local time = opts.time == nil and os_time() or opts.time
  if type(time) ~= "number" or time < 0 or time ~= time or time >= 2^63 then
    argerror("totp", 2, "time must be a number >= 0")
  end
  return core.totp(decode_secret("totp", secret), time, period, digits, alg)
end

--- Computes an HOTP code (RFC 4226).
-- @tparam string secret the shared secret, base32
-- @tparam integer counter the moving factor, >= 0
-- @tparam[opt] table opts `digits` (6..10, default 6), `algorithm` (default "SHA1")
-- @treturn string the zero-padded code
-- @raise on a bad secret, counter or option; the message never contains the secret
function _M.hotp(secret, counter, opts)
  opts = check_opts("hotp", opts, HOTP_OPTS)
  local digits, alg = check_common("hotp", opts)
  if not is_int(counter) then
    argerror("hotp", 2, "counter must be an integer >= 0")
  end
  return core.hotp(decode_secret("hotp", secret), counter, digits, alg)
end

local function hex_char(h)
  return str_char(tonumber(h, 16))
end

-- Percent-decodes s, or returns nil when a '%' is not followed by two hex digits.
local function unescape(s, plus_is_space)
  if plus_is_space then s = str_gsub(s, "%+", " ") end
  if str_find(s, "%%%X") or str_find(s, "%%%x%X") or str_find(s, "%%%x?$") then
    return nil
  end
  return (str_gsub(s, "%%(%x%x)", hex_char))
end

local function parse_uint(s, min, max)
  if type(s) ~= "string" or not str_match(s, "^%d+$") or #s > 15 then return nil end
  local v = tonumber(s)
  if v < min or (max and v > max) then return nil end
  return v
end

local function parse_query(query)
  local params = {}
  for pair in query:gmatch("[^&]+") do
    local eq = str_find(pair, "=", 1, true)
    local k = unescape(eq and str_sub(pair, 1, eq - 1) or pair, true)
    local v = unescape(eq and str_sub(pair, eq + 1) or "", true)
    if not k or not v then return nil, "malformed percent-encoding in otpauth parameters" end
    -- The first occurrence wins, as in Google Authenticator.
    if k ~= "" and params[k] == nil then params[k] = v end
  end
  return params
end

--- Parses an `otpauth://` URI (the Key URI format of Google Authenticator), such as the
-- `barcode_uri` returned by `/mfa/associate`.
-- Push (Guardian) enrollment URIs carry `enrollment_tx_id` and `base_url` instead of a
-- secret; they are accepted with `secret = nil`.
-- @tparam string uri
-- @treturn table `{ type, label, issuer, account, secret, digits, period, algorithm,
--   counter, params }`, with `params` holding every decoded query parameter
-- @treturn[2] nil
-- @treturn[2] auth0.Error `invalid_otpauth`, its message saying what is malformed (never the secret)
-- @raise when uri is not a string
function _M.parse_otpauth(uri)
  if type(uri) ~= "string" then
    argerror("parse_otpauth", 1, "string expected, got " .. type(uri))
  end
  local res, err = parse(uri)
  if not res then return nil, errors.new("invalid_otpauth", err, { context = "parse_otpauth" }) end
  return res
end

parse = function(uri)
  local scheme, kind, path = str_match(uri, "^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme or str_lower(scheme) ~= "otpauth" then
    return nil, "not an otpauth:// URI"
  end
  kind = str_lower(kind)
  if kind ~= "totp" and kind ~= "hotp" then
    return nil, "unsupported otpauth type (expected totp or hotp)"
  end
  path = str_gsub(path, "#.*$", "")
  local raw_label, query = str_match(path, "^/([^?]*)%??(.*)$")
  if not raw_label then return nil, "otpauth URI has no label" end
  local label = unescape(raw_label)
  if not label then return nil, "malformed percent-encoding in otpauth label" end
  local params, err = parse_query(query)
  if not params then return nil, err end

  local prefix, account = str_match(label, "^([^:]*):%s*(.*)$")
  if not prefix then account = label end
  local issuer = params.issuer
  if issuer == nil and prefix and prefix ~= "" then issuer = prefix end

  local res = {
    type = kind, label = label, issuer = issuer, account = account,
    secret = params.secret, params = params,
    digits = 6, period = 30, algorithm = "SHA1",
  }
  if params.digits ~= nil then
    res.digits = parse_uint(params.digits, 6, 10)
    if not res.digits then return nil, "invalid otpauth digits parameter (expected 6..10)" end
  end
  if params.period ~= nil then
    res.period = parse_uint(params.period, 1)
    if not res.period then return nil, "invalid otpauth period parameter" end
  end
  if params.algorithm ~= nil then
    res.algorithm = str_upper(params.algorithm)
    if not ALGORITHMS[res.algorithm] then
      return nil, "unsupported otpauth algorithm (expected SHA1, SHA256 or SHA512)"
    end
  end
  if kind == "hotp" then
    res.counter = parse_uint(params.counter, 0)
    if not res.counter then return nil, "missing or invalid otpauth counter parameter" end
  end
  if res.secret == nil then
    if params.enrollment_tx_id == nil then
      return nil, "otpauth URI has no secret parameter"
    end
  else
    local key, derr = core.base32_decode(res.secret)
    if not key then return nil, "invalid otpauth secret parameter: " .. derr end
    if key == "" then return nil, "invalid otpauth secret parameter: empty" end
  end
  return res
end

return _M
