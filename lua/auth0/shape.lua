--- Result shapes: each checks a decoded 2xx body and returns the value a caller gets, or
-- nil and why the body does not fit (the caller makes that a `bad_response` error).
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local cjson = require("cjson.safe").new()
local core_kinds = require("auth0.core").kinds

local type, pairs, ipairs, tonumber, next, floor, time = type, pairs, ipairs, tonumber, next, math.floor, os.time
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

-- Field-by-field checks: every listed field, when present, has its JSON type ("string",
-- "boolean", "number", "object", "strings" = a list of strings); `req` lists the fields
-- that must be there. A field of the wrong type fails the whole answer: nothing partial
-- reaches the caller (an `active = "false"` would be truthy in Lua).
local function is_list(v)
  if type(v) ~= "table" then return false end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
  end
  return true
end

-- The kinds that are not a Lua type name ("string", "boolean" and "number" are).
local KIND = {
  object = function(v) return type(v) == "table" and not (next(v) ~= nil and v[1] ~= nil) end,
  strings = function(v)
    if not is_list(v) then return false end
    for i = 1, #v do if type(v[i]) ~= "string" then return false end end
    return true
  end,
}

-- A field list `{ name = kind }` compiled once into straight-line Lua (a loop over the list
-- cost more than the rest of a login's Lua side): check(t) returns the first field, in name
-- order, whose value is not of its kind, and that kind; nothing when all fit.
local function spec(types)
  local names, code = {}, { "local type, KIND, huge = ...\nreturn function(t)\nlocal v\n" }
  for name in pairs(types) do names[#names + 1] = name end
  table.sort(names)
  -- only JSON scalars (a token set, a start answer): the same check in C, a third of the cost
  local kinds = {}
  for i, name in ipairs(names) do kinds[i] = types[name] end
  local scalar = true
  for _, kind in ipairs(kinds) do scalar = scalar and (kind == "string" or kind == "boolean" or kind == "number") end
  if scalar then return core_kinds(names, kinds) end
  for _, name in ipairs(names) do
    local kind = types[name]
    local ok = (kind == "string" or kind == "boolean") and ("type(v) == %q"):format(kind)
      or kind == "number" and "type(v) == 'number' and v == v and v ~= huge and v ~= -huge"
      or ("KIND.%s(v)"):format(kind)
    code[#code + 1] = ("v = t[%q]\nif v ~= nil and not (%s) then return %q, %q end\n"):format(name, ok, name, kind)
  end
  code[#code + 1] = "end\n"
  return assert(load(table.concat(code), "=shape", "t", {}))(type, KIND, math.huge)
end

local NONE = {}

local function fields(t, what, check, req)
  req = req or NONE
  for i = 1, #req do
    if t[req[i]] == nil then return nil, what .. " without " .. req[i] end
  end
  local name, kind = check(t)
  if name then return nil, what .. ": " .. name .. " is not a " .. (kind == "strings" and "list of strings" or kind) end
  return t
end

local TOKENS = spec { access_token = "string", id_token = "string", refresh_token = "string", token_type = "string",
  scope = "string", recovery_code = "string", expires_in = "number" }

--- A token answer: needs `access_token`; adds `expires_at` (epoch seconds).
-- `clean` (the call path's json_flat saw no null) skips the walk for nulls; `checked` (the
-- C core decoded it with M.flat's checker, which found every listed field of its kind)
-- skips that check.
function M.tokens(t, _, clean, checked)
  if checked then   -- a table whose access_token and expires_in are absent or of their kind
    local exp = t.expires_in
    if t.access_token == nil then return nil, "token response without an access_token" end
    if exp ~= nil then
      exp = floor(exp)   -- as below
      t.expires_in = exp
      t.expires_at = time() + exp
    end
    return t
  end
  if type(t) ~= "table" or type(t.access_token) ~= "string" then
    return nil, "token response without an access_token"
  end
  if not clean then strip_nulls(t, 1) end
  local exp = tonumber(t.expires_in)   -- numbers sent as strings are tolerated
  if t.expires_in ~= nil and not exp then return nil, "token response: expires_in is not a number" end
  if exp then
    exp = floor(exp)   -- cjson on 5.4 decodes 86400 as 86400.0
    t.expires_in = exp
    t.expires_at = time() + exp
  end
  return fields(t, "token response", TOKENS)
end

--- A JSON object (an empty answer is `{}`); `clean` as M.tokens'.
function M.object(t, _, clean)
  if t == true then return {} end
  if type(t) ~= "table" or t[1] ~= nil then return nil, "expected a JSON object" end
  if clean then return t end
  return strip_nulls(t, 1)
end

local START = spec { _id = "string", email = "string", phone_number = "string", email_verified = "boolean",
  phone_number_verified = "boolean" }

--- The answer of /passwordless/start (`clean`, `checked` as M.tokens').
function M.start(t, _, clean, checked)
  if checked then return t end   -- an object of string keys, no null, every field of its kind
  if type(t) == "table" and t[1] == nil and clean then   -- M.object's common case, inline
    return fields(t, "passwordless start answer", START)
  end
  local v, msg = M.object(t, nil, clean)
  if not v then return nil, msg end
  return fields(v, "passwordless start answer", START)
end

local USERINFO = spec { sub = "string", name = "string", given_name = "string", family_name = "string",
  nickname = "string", picture = "string", email = "string", email_verified = "boolean",
  phone_number = "string", phone_number_verified = "boolean", updated_at = "string", locale = "string" }

--- The OIDC claims of /userinfo: `sub` and the standard claims typed.
function M.userinfo(t)
  local v, msg = M.object(t)
  if not v then return nil, msg end
  return fields(v, "userinfo", USERINFO, { "sub" })
end

local DISCOVERY = spec { issuer = "string", jwks_uri = "string", authorization_endpoint = "string",
  token_endpoint = "string", userinfo_endpoint = "string", mfa_challenge_endpoint = "string",
  revocation_endpoint = "string", device_authorization_endpoint = "string",
  scopes_supported = "strings", response_types_supported = "strings", grant_types_supported = "strings",
  id_token_signing_alg_values_supported = "strings", subject_types_supported = "strings",
  claims_supported = "strings", token_endpoint_auth_methods_supported = "strings" }

--- The OpenID discovery document: `issuer` and `jwks_uri`, the endpoints and lists typed.
function M.discovery(t)
  local v, msg = M.object(t)
  if not v then return nil, msg end
  return fields(v, "discovery document", DISCOVERY, { "issuer", "jwks_uri" })
end

local AUTHENTICATOR = spec { id = "string", authenticator_type = "string", active = "boolean", oob_channel = "string",
  name = "string", type = "string", created_at = "string", last_auth_at = "string", phone_number = "string",
  email = "string" }

--- A list of authenticators.
function M.authenticators(t)
  if t == true then return {} end
  if type(t) ~= "table" or (next(t) ~= nil and t[1] == nil) or not is_list(t) then
    return nil, "expected a JSON array"
  end
  strip_nulls(t, 1)
  for i = 1, #t do
    if type(t[i]) ~= "table" then return nil, "authenticator entry is not an object" end
    oob_channel(t[i])
    local ok, msg = fields(t[i], "authenticator " .. i, AUTHENTICATOR, { "id", "authenticator_type", "active" })
    if not ok then return nil, msg end
  end
  return t
end

local CHALLENGE = spec { challenge_type = "string", oob_code = "string", binding_method = "string" }

--- A challenge (POST /mfa/challenge): `challenge_type`, and `oob_code` for oob.
function M.challenge(t)
  local v, msg = M.object(t)
  if not v then return nil, msg end
  v, msg = fields(v, "challenge", CHALLENGE, { "challenge_type" })
  if v and v.challenge_type == "oob" and v.oob_code == nil then return nil, "challenge without oob_code" end
  return v, msg
end

local ASSOCIATE = spec { authenticator_type = "string", secret = "string", barcode_uri = "string",
  recovery_codes = "strings", oob_code = "string", binding_method = "string", oob_channel = "string" }

--- An enrollment (POST /mfa/associate).
function M.associate(t)
  if type(t) ~= "table" or (next(t) ~= nil and t[1] ~= nil) then return nil, "expected a JSON object" end
  strip_nulls(t, 1)
  oob_channel(t)
  return fields(t, "enrollment", ASSOCIATE, { "authenticator_type" })
end

local JWK = spec { kty = "string", kid = "string", alg = "string", use = "string", n = "string", e = "string",
  x5c = "strings", x5t = "string" }

--- A JWKS: an object with a `keys` list of key objects (`kty` and the RSA fields typed).
function M.jwks(t)
  if type(t) ~= "table" or type(t.keys) ~= "table" then return nil, "JWKS without keys" end
  if not is_list(t.keys) then return nil, "JWKS: keys is not a list" end
  for i, k in ipairs(t.keys) do
    if type(k) ~= "table" then return nil, "JWKS: key " .. i .. " is not an object" end
    local ok, msg = fields(k, "JWKS key " .. i, JWK, { "kty" })
    if not ok then return nil, msg end
  end
  return t
end

--- The C core's checker for a shape that only checks JSON scalars (core.kinds): given to
-- client:fetch, which then decodes a flat 2xx answer that fits it itself; the shape is
-- still called, with `checked`.
M.flat = { [M.tokens] = TOKENS, [M.start] = START }

--- Success without a value.
function M.ok() return true end

return M
