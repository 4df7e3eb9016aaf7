--- Result shapes: each checks a decoded 2xx body and returns the value a caller gets, or
-- nil and why the body does not fit (the caller makes that a `bad_response` error).
local cjson = require("cjson.safe").new()

local type, pairs, tonumber, next, floor, time = type, pairs, tonumber, next, math.floor, os.time
local null = cjson.null

local M = {}

-- A server's JSON null means "absent" to a caller: nil, not a lightuserdata.
local function strip_nulls(t, depth)
  for k, v in pairs(t) do
    if v == null then t[k] = nil
    elseif type(v) == "table" and depth < 4 then strip_nulls(v, depth + 1) end
  end
  return t
end

-- Old docs and some SDKs spell an authenticator's channel `oob_channels` (string or list).
local function oob_channel(a)
  if a.oob_channel == nil and a.oob_channels ~= nil then
    a.oob_channel = type(a.oob_channels) == "table" and a.oob_channels[1] or a.oob_channels
  end
end

--- A token answer: needs `access_token`; adds `expires_at` (epoch seconds).
function M.tokens(t)
  if type(t) ~= "table" or type(t.access_token) ~= "string" then
    return nil, "token response without an access_token"
  end
  strip_nulls(t, 1)
  local exp = tonumber(t.expires_in)
  if exp then
    exp = floor(exp)   -- cjson on 5.4 decodes 86400 as 86400.0
    t.expires_in = exp
    t.expires_at = time() + exp
  end
  return t
end

--- A JSON object (an empty answer is `{}`).
function M.object(t)
  if t == true then return {} end
  if type(t) ~= "table" or t[1] ~= nil then return nil, "expected a JSON object" end
  return strip_nulls(t, 1)
end

--- A list of authenticators.
function M.authenticators(t)
  if t == true then return {} end
  if type(t) ~= "table" or (next(t) ~= nil and t[1] == nil) then return nil, "expected a JSON array" end
  strip_nulls(t, 1)
  for i = 1, #t do
    if type(t[i]) ~= "table" then return nil, "authenticator entry is not an object" end
    oob_channel(t[i])
  end
  return t
end

--- An enrollment (POST /mfa/associate).
function M.associate(t)
  if type(t) ~= "table" then return nil, "expected a JSON object" end
  oob_channel(t)
  return t
end

--- A JWKS: an object with a `keys` list.
function M.jwks(t)
  if type(t) ~= "table" or type(t.keys) ~= "table" then return nil, "JWKS without keys" end
  return t
end

--- Success without a value.
function M.ok() return true end

return M
