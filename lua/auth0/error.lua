--- Error objects: what every `nil, err` of lua-auth0 carries.
-- `err.code` is the server's `error` string (or its legacy `code`), or one of ours:
-- `timeout`, `couldnt_connect`, `couldnt_resolve`, `tls`, `bad_response`, `too_large`,
-- `cancelled`, `network`, `transport`, `unauthorized`, `forbidden`, `not_found`,
-- `server_error`, `http_error`. `tostring(err)` is one line without any secret.
--
-- `err.reason` is a stable word to switch on, derived once here from the code, the HTTP
-- status, the endpoint and, only where Auth0 answers different situations with one code,
-- its error_description wording. Auth0's texts may change; the reasons do not.
--
-- | reason              | meaning                                                          |
-- |---------------------|------------------------------------------------------------------|
-- | wrong_code          | the one-time code (email/SMS, TOTP, binding, recovery) is wrong  |
-- | code_exhausted      | the email/SMS code failed 3 times: send a new one                |
-- | code_expired        | the email/SMS code expired: send a new one                       |
-- | mfa_required        | a second factor is needed: `err.mfa_token`, `err.mfa_requirements`|
-- | mfa_token_expired   | the mfa_token expired: log in again                              |
-- | mfa_token_invalid   | the mfa_token is malformed or its user is gone                   |
-- | oob_expired         | the challenge's oob_code expired or is spent: challenge again    |
-- | push_pending        | the push is not answered yet (mfa-oob polling)                   |
-- | slow_down           | polling too fast: wait longer between polls                      |
-- | push_rejected       | the user rejected the push                                       |
-- | enroll_required     | no enrolled authenticator fits: enroll one                       |
-- | already_enrolled    | enrolling with an mfa_token after an authenticator is active     |
-- | unknown_authenticator | no authenticator with that id                                  |
-- | login_required      | the refresh token is dead (revoked, expired, rotated out)        |
-- | user_blocked        | the user is blocked                                              |
-- | access_denied       | denied by a rule, an action or the tenant's policy               |
-- | invalid_token       | the bearer access token is invalid, expired or lacks a scope     |
-- | invalid_identifier  | the email address or phone number was refused                    |
-- | delivery_failed     | the SMS provider failed to send                                  |
-- | too_many_attempts   | too many failed attempts (brute-force protection): wait          |
-- | rate_limited        | any other 429: wait `err.retry_after` seconds                    |
-- | misconfigured       | the application or tenant settings refuse the call (client id,   |
-- |                     | secret, grant types, connection, endpoint)                       |
-- | bad_request         | the request was refused as malformed                             |
-- | server_error        | a 5xx answer                                                     |
-- | invalid_id_token    | an ID token failed verification                                  |
-- | unknown_kid         | the ID token's key id is not in the JWKS                         |
-- | malformed           | a value given to a helper does not parse (jwt.decode, parse_otpauth) |
-- | invalid_link        | a magic link that is malformed or not for this tenant and client |
-- | invalid_state       | a magic-link callback whose `state` is not the one sent          |
-- | store               | the credentials store cannot be used: `insecure_store`,          |
-- |                     | `store_corrupt`, `store_busy`, `store_error`, `store_mismatch`   |
-- |                     | (auth0.credentials)                                              |
-- | timeout, network, tls, bad_response, cancelled | no usable answer (ours)               |
-- | unknown             | anything else (a code this version does not know)                |
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local cjson = require("cjson.safe").new()
local core = require "auth0.core"

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

-- ------------------------------------------------------------------------------------
-- Reasons (the table above). Each rule cites the `docs/protocol.md` section it follows.

-- Our own codes (no server answer) and codes that mean one thing wherever they come from.
local BY_CODE = {
  timeout = "timeout", couldnt_connect = "network", couldnt_resolve = "network", network = "network",
  transport = "network", tls = "tls", bad_response = "bad_response", too_large = "bad_response",
  cancelled = "cancelled", invalid_id_token = "invalid_id_token", unknown_kid = "unknown_kid",
  invalid_jwt = "malformed", invalid_otpauth = "malformed",
  insecure_store = "store", store_corrupt = "store", store_busy = "store", store_error = "store", store_mismatch = "store",
  invalid_link = "invalid_link", invalid_state = "invalid_state",
  login_required = "login_required",
  -- docs/protocol.md "4.1 Shape": match on `error` only, the text varies
  mfa_required = "mfa_required",
  -- docs/protocol.md "6.2 `http://auth0.com/oauth/grant-type/mfa-oob`": pending (400, or 200 on old servers)
  authorization_pending = "push_pending", slow_down = "slow_down",
  -- docs/protocol.md "10. Rate limits & attack protection": brute-force protection; "6.4 MFA verification limits"
  too_many_attempts = "too_many_attempts", too_many_logins = "too_many_attempts",
  too_many_requests = "rate_limited",
  -- docs/protocol.md "5.4 `POST /mfa/challenge`": SDKs treat both as "enroll required"
  unsupported_challenge_type = "enroll_required", association_required = "enroll_required",
  -- docs/protocol.md "5.2 DELETE /mfa/authenticators/{authenticator_id}", "5.4 POST /mfa/challenge": unknown id
  invalid_authenticator = "unknown_authenticator",
  -- docs/protocol.md "6.1 `http://auth0.com/oauth/grant-type/mfa-otp`": the legacy wrong-code code
  ["a0.mfa_invalid_code"] = "wrong_code",
  -- docs/protocol.md "2.3 Errors": the identifier the user typed
  ["bad.email"] = "invalid_identifier", ["bad.phone_number"] = "invalid_identifier",
  sms_provider_error = "delivery_failed",
  -- docs/protocol.md "2.3 Errors", "3.3 Errors": the application's or tenant's settings
  ["bad.tenant"] = "misconfigured", ["bad.client_id"] = "misconfigured", ["bad.connection"] = "misconfigured",
  unauthorized_client = "misconfigured", invalid_client = "misconfigured",
  unsupported_grant_type = "misconfigured", endpoint_disabled = "misconfigured", not_found = "misconfigured",
  -- docs/protocol.md "2.3 Errors", "1.5 Error envelope and client parsing rules": a refused request
  ["bad.request"] = "bad_request", ["bad.send"] = "bad_request", ["bad.authParams"] = "bad_request",
  invalid_request = "bad_request", invalid_scope = "bad_request",
  -- docs/protocol.md "5.1 `GET /mfa/authenticators`", "8.2 `GET /userinfo`": a bad bearer token
  invalid_token = "invalid_token", insufficient_scope = "invalid_token",
  server_error = "server_error",
}

-- The grants whose invalid_grant means "this one-time code is wrong".
local CODE_GRANTS = { passwordless_login = true, mfa_otp = true, mfa_oob = true, mfa_recovery_code = true }
-- The endpoints authenticated by a bearer token (mfa_token or access token).
local BEARER = { userinfo = true, mfa_authenticators = true, mfa_associate = true, mfa_delete_authenticator = true }
-- The endpoints that take an mfa_token.
local MFA_TOKEN = { mfa_challenge = true, mfa_authenticators = true, mfa_associate = true,
  mfa_delete_authenticator = true, mfa_otp = true, mfa_oob = true, mfa_recovery_code = true }

local function has(text, word) return text:find(word, 1, true) ~= nil end

-- expired_token, docs/protocol.md "4.4 mfa_token lifetime and usage" (mfa_token), "6.2
-- `http://auth0.com/oauth/grant-type/mfa-oob`" (oob_code, "oob_code is expired"), "5.1 `GET
-- /mfa/authenticators`" (an access token): one code for three tokens, so the wording tells
-- which one died. Without it, mfa-oob says oob_expired: a new challenge then finds out
-- whether the mfa_token is dead too, since /mfa/challenge takes no oob_code.
local function expired(text, ep)
  if has(text, "mfa_token") then return "mfa_token_expired" end
  if has(text, "oob_code") or ep == "mfa_oob" then return "oob_expired" end
  if has(text, "access token") or ep == "userinfo" then return "invalid_token" end
  return "mfa_token_expired"
end

-- invalid_grant: the same code for a wrong code, a dead refresh token and a bad mfa_token.
local function invalid_grant(text, ep)
  -- docs/protocol.md "3.3 Errors" (login grants) and "8.1 Refresh token grant": "user is blocked"
  if has(text, "blocked") then return "user_blocked" end
  -- docs/protocol.md "4.4 mfa_token lifetime and usage": "Malformed mfa_token";
  -- docs/protocol.md "6.2 http://auth0.com/oauth/grant-type/mfa-oob": "oob_code is expired"
  -- (its code "likely invalid_grant or expired_token")
  if has(text, "expired") and (has(text, "oob_code") or has(text, "mfa_token")) then return expired(text, ep) end
  if MFA_TOKEN[ep] and has(text, "mfa_token") then return "mfa_token_invalid" end
  -- docs/protocol.md "6.2 `http://auth0.com/oauth/grant-type/mfa-oob`": an unknown or spent oob_code
  if ep == "mfa_oob" and has(text, "oob_code") then return "oob_expired" end
  -- docs/protocol.md "6.2 http://auth0.com/oauth/grant-type/mfa-oob", "13. Known discrepancies":
  -- the docs answer a rejected push with invalid_grant
  if ep == "mfa_oob" and has(text, "rejected") then return "push_rejected" end
  -- docs/protocol.md "8.1 Refresh token grant": revoked, expired, rotated out, user deleted
  if ep == "refresh" then return "login_required" end
  if ep == "passwordless_login" then
    -- docs/protocol.md "3.3 Errors": the same code after 3 failures, only the text differs
    if has(text, "maximum number of attempts") then return "code_exhausted" end
    -- docs/protocol.md "3.3 Errors": Auth0 answers an expired code like a wrong one; a text saying so is kept
    if has(text, "expired") then return "code_expired" end
  end
  if CODE_GRANTS[ep] then return "wrong_code" end
  if MFA_TOKEN[ep] then return "mfa_token_invalid" end
  return "unknown"
end

-- The reason of a server answer; `text` is the error_description, lowercased.
local function derive(code, status, text, ep)
  if code == "mfa_required" or code == "authorization_pending" or code == "slow_down"
      or code == "too_many_attempts" or code == "too_many_logins" then
    return BY_CODE[code]
  end
  -- docs/protocol.md "10. Rate limits & attack protection": the global limit answers 429 access_denied, and
  -- /userinfo and the JWKS plain text
  if status == 429 then return "rate_limited" end
  if code == "expired_token" then return expired(text, ep) end
  if code == "invalid_grant" then return invalid_grant(text, ep) end
  if code == "access_denied" then
    -- docs/protocol.md "3.3 Errors": a confidential client without its secret gets 401 "Unauthorized"
    if status == 401 then return "misconfigured" end
    -- docs/protocol.md "6.2 http://auth0.com/oauth/grant-type/mfa-oob", "13. Known discrepancies":
    -- the real server rejects a push with 400 access_denied
    if ep == "mfa_oob" and (status == 400 or has(text, "rejected")) then return "push_rejected" end
    -- docs/protocol.md "5.3 `POST /mfa/associate` (enroll)": "User is already enrolled", the only refusal there
    if ep == "mfa_associate" then return "already_enrolled" end
    return "access_denied"
  end
  if code == "unauthorized" then
    -- docs/protocol.md "3.3 Errors": a blocked user on the login grants
    if has(text, "blocked") then return "user_blocked" end
    if BEARER[ep] then return "invalid_token" end
    -- docs/protocol.md "3.3 Errors": legacy Rules deny with `unauthorized`
    return "access_denied"
  end
  if code == "invalid_request" then
    -- docs/protocol.md "3.3 Errors": "the connection was disabled" / "the connection was not found"
    if has(text, "connection") then return "misconfigured" end
    -- docs/protocol.md "5.3 `POST /mfa/associate` (enroll)": a refused phone number or email address
    if ep == "mfa_associate" and (has(text, "phone") or has(text, "email")) then return "invalid_identifier" end
  end
  -- docs/protocol.md "5.2 `DELETE /mfa/authenticators/{authenticator_id}`": unknown id -> 404, body undocumented
  if status == 404 and (ep == "mfa_challenge" or ep == "mfa_delete_authenticator") then
    return "unknown_authenticator"
  end
  if BY_CODE[code] then return BY_CODE[code] end
  if status >= 500 then return "server_error" end
  if status == 401 and BEARER[ep] then return "invalid_token" end
  -- docs/protocol.md "1.5 Error envelope and client parsing rules": other statuses by their meaning
  if status == 400 then return "bad_request" end
  if status == 404 then return "misconfigured" end
  return "unknown"
end

--- The reason of an answer: `code` (the body's error), HTTP `status`, `message` (its
-- error_description, may be nil) and the endpoint name it came from (may be nil).
-- @treturn string one of the reasons in the table above
function _M.reason(code, status, message, endpoint)
  return derive(code, status or 0, type(message) == "string" and message:lower() or "", endpoint)
end

-- Characters that break a line or reorder text on screen without being ASCII controls:
-- C1 controls (U+0080..U+009F), U+2028/U+2029 (line and paragraph separators), the bidi
-- embeddings and overrides (U+202A..U+202E), isolates (U+2066..U+2069) and marks (U+200E,
-- U+200F, U+061C); invisible ones are dropped: zero-width space and joiners (U+200B..U+200D),
-- word joiner and invisible operators (U+2060..U+2064), U+FEFF and the tag characters
-- (U+E0000..U+E007F), which can smuggle text a reader of the log never sees.
local function unicode_controls(s)
  s = s:gsub("\226\128[\139-\141]", "")
  s = s:gsub("\226\129[\160-\164]", "")
  s = s:gsub("\239\187\191", "")
  s = s:gsub("\243\160[\128\129][\128-\191]", "")
  s = s:gsub("\194[\128-\159]", " ")
  s = s:gsub("\226\128[\168-\174\142\143]", " ")
  s = s:gsub("\216\156", " ")
  return (s:gsub("\226\129[\166-\169]", " "))
end

-- One line of text: no control characters (ASCII, C1, separators, bidi), valid UTF-8 (else
-- every non-ASCII byte becomes "?").
local function one_line(s)
  if not s:find("[%c\128-\255]") then return s end
  s = s:gsub("%c", " ")
  if s:find("[\128-\255]") then
    if core.utf8_valid(s) then s = unicode_controls(s) else s = s:gsub("[\128-\255]", "?") end
  end
  return s
end

-- At most n bytes of valid UTF-8 `s`, cut before a character, "..." marking the cut.
local function cut(s, n)
  if #s <= n then return s end
  return s:sub(1, n):gsub("[\192-\255][\128-\191]*$", "") .. "..."
end

--- A new error object; `fields` may carry anything the caller needs to act on, and
-- `reason` when the code alone does not say it (else it is derived from the code).
-- A string code or message is made one line (no control characters, valid UTF-8) of at
-- most 1024 bytes whatever its source: a transport's text, a server's, a forged callback's.
function _M.new(code, message, fields)
  local e = fields or {}
  if type(code) == "string" then code = cut(one_line(code), 1024) end
  if type(message) == "string" then message = cut(one_line(message), 1024) end
  e.code, e.message = code, message
  e.reason = e.reason or BY_CODE[code] or "unknown"
  return setmetatable(e, Error)
end

--- Every reason this module gives (a set), for documentation checks.
_M.REASONS = {}
for _, r in pairs(BY_CODE) do _M.REASONS[r] = true end
for r in ("wrong_code code_exhausted code_expired mfa_token_expired mfa_token_invalid oob_expired " ..
    "push_rejected already_enrolled login_required user_blocked access_denied unknown"):gmatch("%S+") do
  _M.REASONS[r] = true
end

local status_codes = {
  [401] = "unauthorized", [403] = "forbidden", [404] = "not_found", [429] = "too_many_requests",
}

--- Server text (or a forger's) as it may appear in an error message or a log: one line,
-- at most 300 bytes, no control characters (ASCII, C1, line separators, bidi overrides),
-- valid UTF-8 (else every non-ASCII byte becomes "?"). Nil for a non-string.
-- @param s the text
-- @treturn string|nil
local function clean(s)
  if type(s) ~= "string" then return nil end
  return cut(one_line(s), 300)
end
_M.clean = clean

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
  e.request_id = clean(hdrs.request_id)   -- a header value: logged, so one clean line too
  -- a header value handed on as a URL: one, or none (no control character, space or megabyte)
  local loc = hdrs.location
  if e.status and e.status >= 300 and e.status < 400 and type(loc) == "string" and #loc <= 8192
      and not loc:find("[%s%c]") then
    e.location = loc
  end
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
-- @tparam number status the HTTP status
-- @tparam string body the raw body
-- @tparam[opt] table hdrs the captured headers
-- @tparam[opt] string context the endpoint name (passwordless_login, mfa_oob, refresh, ...):
-- the reason of some codes depends on it
-- @return the error object, `reason` set
function _M.from_response(status, body, hdrs, context)
  local decoded = body ~= "" and cjson.decode(body) or nil
  local code, message
  if type(decoded) == "table" then
    code = decoded.error or decoded.code or decoded.name
    message = decoded.error_description or decoded.description or decoded.message
    -- a code is shown in tostring(err) and logs: one line, bounded, never empty
    if type(code) == "string" then code = clean(code) else code = nil end
    if code == "" then code = nil end   -- empty, or nothing left once cleaned (e.g. a lone BOM)
    if type(message) ~= "string" then message = nil end
  else
    decoded = nil
    message = body
  end
  code = code or status_codes[status] or (status >= 500 and "server_error") or "http_error"
  message = clean(message) or ""
  local e = _M.new(code, message, { status = status, body = decoded, context = context,
    reason = _M.reason(code, status, message, context) })
  if decoded then
    if type(decoded.mfa_token) == "string" then e.mfa_token = decoded.mfa_token end
    if type(decoded.mfa_requirements) == "table" then e.mfa_requirements = decoded.mfa_requirements end
  end
  return add_headers(e, hdrs)
end

--- Builds the error object of an OAuth error redirect (RFC 6749 section 4.1.2.1) from its
-- decoded parameters: `error` and `error_description` came through a URL anyone can
-- forge, so they are cleaned as a server answer's are (one line, bounded, no controls).
-- @tparam table params the callback's decoded query and fragment parameters
-- @tparam[opt] string context
-- @return the error object, `reason` set
function _M.from_callback(params, context)
  local code = clean(params.error)
  if code == nil or code == "" then code = "invalid_request" end
  local message = clean(params.error_description) or code
  return _M.new(code, message, { context = context, reason = _M.reason(code, nil, message, nil) })
end

return _M
