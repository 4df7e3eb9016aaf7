--- JSON Web Tokens: decoding and ID-token validation (docs/protocol.md "9. Tokens and ID-token claims").
-- Signatures are checked by `auth0.core` (RS256 against a JWKS key, or HS256 with the
-- client secret). Error messages name the failing claim but never contain the token.
-- @module auth0.jwt

if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local core = require "auth0.core"
local errors = require "auth0.error"
local cjson = require("cjson.safe").new()

local type, pairs, ipairs, tostring =
  type, pairs, ipairs, tostring
local os_time = os.time
local str_find, str_sub, str_format, str_match = string.find, string.sub, string.format, string.match

local argerror = require("auth0.check").argerror   -- luaL_argerror's form, at the caller
local decode   -- _M.decode's work: (result) or (nil, message)
local _M = { _VERSION = "0.1.0" }

local b64url_decode, b64url_encode, rsa_public, hmac, sha256, rs256_start =
  core.b64url_decode, core.b64url_encode, core.rsa_public, core.hmac, core.sha256, core.rs256_verify_start

-- Only the canonical spelling decodes (no padding, zero unused bits): a respelled copy of
-- a token is another string and must not verify as the same token.
local function canonical_decode(part)
  local raw, err = b64url_decode(part)
  if not raw then return nil, err end
  if b64url_encode(raw) ~= part then return nil, "not in canonical form" end
  return raw
end

local ERR_CODE = "invalid_id_token"

local function fail(message, reason)
  return nil, errors.new(ERR_CODE, message, reason and { reason = reason } or nil)
end

-- A claim value fit for an error message: short printable strings and numbers only.
local function show(v)
  if type(v) == "number" then return str_format("%.0f", v) end
  if type(v) == "string" and #v <= 200 and str_match(v, "^[%w%p ]*$") then return v end
  return "(" .. type(v) .. ")"
end

local function decode_part(part, what)
  local raw, err = canonical_decode(part)
  if not raw then return nil, what .. " is not base64url: " .. err end
  local value = cjson.decode(raw)
  if type(value) ~= "table" then return nil, what .. " is not a JSON object" end
  return value
end

--- Decodes a compact JWS without verifying it.
-- @tparam string token
-- @treturn table `{ header, payload, signing_input = "h.p", signature = raw bytes }`
-- @treturn[2] nil
-- @treturn[2] auth0.Error `invalid_jwt`, its message saying what is malformed (never the token)
-- @raise when token is not a string
function _M.decode(token)
  if type(token) ~= "string" then
    argerror("decode", 1, "string expected, got " .. type(token))
  end
  local jwt, err = decode(token)
  if not jwt then return nil, errors.new("invalid_jwt", err, { context = "jwt.decode" }) end
  return jwt
end

decode = function(token)
  local d1 = str_find(token, ".", 1, true)
  local d2 = d1 and str_find(token, ".", d1 + 1, true)
  if not d2 or str_find(token, ".", d2 + 1, true) then
    return nil, "token is not a JWS compact serialization (expected 3 parts)"
  end
  local header, err = decode_part(str_sub(token, 1, d1 - 1), "token header")
  if not header then return nil, err end
  local payload
  payload, err = decode_part(str_sub(token, d1 + 1, d2 - 1), "token payload")
  if not payload then return nil, err end
  local signature
  signature, err = canonical_decode(str_sub(token, d2 + 1))
  if not signature then return nil, "token signature is not base64url: " .. err end
  return {
    header = header,
    payload = payload,
    signing_input = str_sub(token, 1, d2 - 1),
    signature = signature,
  }
end

local VERIFY_OPTS = {
  jwks = true, issuer = true, client_id = true, leeway = true, now = true, nonce = true,
  max_age = true, client_secret = true, alg = true,
}

local function check_verify_opts(opts)
  if type(opts) ~= "table" then argerror("verify_id_token", 2, "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not VERIFY_OPTS[k] then
      argerror("verify_id_token", 2, "unknown option '" .. tostring(k) .. "'")
    end
  end
  local function need(name, kind, optional)
    local v = opts[name]
    if (v ~= nil or not optional) and type(v) ~= kind then
      argerror("verify_id_token", 2, "field '" .. name .. "': " .. kind .. " expected, got " .. type(v))
    end
  end
  need("issuer", "string")
  need("client_id", "string")
  need("jwks", "table", true)
  need("leeway", "number", true)
  need("now", "number", true)
  need("nonce", "string", true)
  need("max_age", "number", true)
  need("client_secret", "string", true)
  need("alg", "string", true)
  if opts.alg ~= nil and opts.alg ~= "RS256" and opts.alg ~= "HS256" then
    argerror("verify_id_token", 2, "field 'alg': must be \"RS256\" or \"HS256\"")
  end
  if opts.alg == "HS256" and opts.client_secret == nil then
    argerror("verify_id_token", 2, "field 'alg': \"HS256\" needs client_secret")
  end
  for _, name in ipairs({ "leeway", "now", "max_age" }) do
    local v = opts[name]
    if v ~= nil and (v ~= v or v == math.huge or v == -math.huge or (name ~= "now" and v < 0)) then
      argerror("verify_id_token", 2, "field '" .. name .. "': must be a finite number" ..
        (name ~= "now" and " >= 0" or ""))
    end
  end
end

-- Picks the JWKS entry for the header's kid (or the only key when there is no kid).
local function find_key(jwks, kid)
  local keys = jwks.keys
  if type(keys) ~= "table" or #keys == 0 then return nil, "jwks has no keys", "unknown_kid" end
  if kid == nil then
    if #keys == 1 then return keys[1] end
    return nil, "id token has no kid and the jwks has several keys"
  end
  if type(kid) ~= "string" then return nil, "id token kid is not a string" end
  for _, k in ipairs(keys) do
    if type(k) == "table" and k.kid == kid then return k end
  end
  return nil, "id token signing key not found in jwks: kid " .. show(kid), "unknown_kid"
end

-- The one algorithm accepted (pinned): opts.alg, else HS256 for a secret without a JWKS
-- (the first version's behaviour), else RS256. Beside a JWKS an HS256 token is refused even
-- when the secret would verify it: whoever extracts a shipped app's secret could mint it.
local function pinned(opts)
  if opts.alg ~= nil then return opts.alg end
  if opts.client_secret and opts.jwks == nil then return "HS256" end
  return "RS256"
end

-- Imported public keys by JWK table (weak: a refetched key set drops the old ones), each with
-- the n and e it was built from, so a JWK table changed in place is imported again. Importing
-- costs OpenSSL about as much as the verification itself.
local imported = setmetatable({}, { __mode = "k" })

local function rs256_verify(key, data, sig)
  local c = imported[key]
  if not c or c.n ~= key.n or c.e ~= key.e then
    c = { n = key.n, e = key.e, pk = rsa_public(key.n, key.e) or false }
    imported[key] = c
  end
  return c.pk and c.pk:verify_rs256(data, sig)
end

--- Imports the RSA keys of a JWKS now (the key set does when a fetch lands), so that the
-- first verification with each does not pay for it (a game's frame, a request's latency).
-- @tparam table jwks a key set as `client:jwks()` returns it
function _M.import_keys(jwks)
  if type(jwks) ~= "table" or type(jwks.keys) ~= "table" then return end
  for _, key in ipairs(jwks.keys) do
    if type(key) == "table" and key.kty == "RSA" and type(key.n) == "string" and type(key.e) == "string"
      and not imported[key] then
      imported[key] = { n = key.n, e = key.e, pk = rsa_public(key.n, key.e) or false }
    end
  end
end

-- The key that must have signed the token (a JWK, or the HS256 secret's marker), after the
-- header's checks: key | nil, message, reason.
local function signing_key(jwt, opts)
  local alg, want = jwt.header.alg, pinned(opts)
  if alg ~= want then
    if alg == nil then return nil, "id token header has no alg" end
    return nil, "id token signing algorithm not supported: expected " .. want .. ", got " .. show(alg)
  end
  if alg == "HS256" then return "HS256" end
  if opts.jwks == nil then
    argerror("verify_id_token", 2, "field 'jwks': required for RS256 tokens")
  end
  local key, err, reason = find_key(opts.jwks, jwt.header.kid)
  if not key then return nil, err, reason end
  if key.kty ~= "RSA" or type(key.n) ~= "string" or type(key.e) ~= "string"
    or (key.alg ~= nil and key.alg ~= "RS256") or (key.use ~= nil and key.use ~= "sig") then
    return nil, "jwks key for the id token is not an RS256 signing key"
  end
  return key
end

local function check_signature(jwt, opts, key)
  if key ~= "HS256" then
    if not rs256_verify(key, jwt.signing_input, jwt.signature) then
      return nil, "id token signature verification failed"
    end
    return true
  end
  local mac = hmac("SHA256", opts.client_secret, jwt.signing_input)
  -- Comparing digests of both sides keeps the comparison time independent of the MAC.
  if sha256(mac) ~= sha256(jwt.signature) then
    return nil, "id token signature verification failed"
  end
  return true
end

local function check_audience(claims, client_id)
  local aud = claims.aud
  if type(aud) == "string" then
    if aud ~= client_id then
      return nil, "id token audience (aud) mismatch: expected " .. client_id .. ", got " .. show(aud)
    end
    return true
  end
  if type(aud) ~= "table" or #aud == 0 then
    return nil, "id token audience (aud) claim missing"
  end
  local found = false
  for _, v in ipairs(aud) do
    if v == client_id then found = true end
  end
  if not found then
    return nil, "id token audience (aud) does not contain the client id " .. client_id
  end
  if #aud > 1 then
    if claims.azp == nil then
      return nil, "id token authorized party (azp) claim missing (required with several audiences)"
    end
    if claims.azp ~= client_id then
      return nil, "id token authorized party (azp) mismatch: expected " .. client_id
        .. ", got " .. show(claims.azp)
    end
  end
  return true
end

local function check_claims(claims, opts)
  local now = opts.now or os_time()
  local leeway = opts.leeway or 60

  if type(claims.iss) ~= "string" then return nil, "id token issuer (iss) claim missing" end
  if claims.iss ~= opts.issuer then
    return nil, "id token issuer mismatch: expected " .. opts.issuer .. ", got " .. show(claims.iss)
  end
  if type(claims.sub) ~= "string" or claims.sub == "" then
    return nil, "id token subject (sub) claim missing or empty"
  end
  local ok, err = check_audience(claims, opts.client_id)
  if not ok then return nil, err end
  if type(claims.exp) ~= "number" then return nil, "id token expiration (exp) claim missing" end
  if claims.exp <= now - leeway then
    return nil, str_format("id token expired: exp %.0f is before now %.0f (leeway %.0f s)",
      claims.exp, now, leeway)
  end
  if type(claims.iat) ~= "number" then return nil, "id token issued at (iat) claim missing" end
  if claims.iat > now + leeway then
    return nil, str_format("id token issued in the future: iat %.0f is after now %.0f (leeway %.0f s)",
      claims.iat, now, leeway)
  end
  if claims.nbf ~= nil then
    if type(claims.nbf) ~= "number" then return nil, "id token not-before (nbf) claim is not a number" end
    if claims.nbf > now + leeway then
      return nil, str_format("id token not yet valid: nbf %.0f is after now %.0f (leeway %.0f s)",
        claims.nbf, now, leeway)
    end
  end
  if opts.nonce ~= nil then
    if claims.nonce == nil then return nil, "id token nonce claim missing" end
    if claims.nonce ~= opts.nonce then return nil, "id token nonce mismatch" end
  end
  if opts.max_age ~= nil then
    if type(claims.auth_time) ~= "number" then
      return nil, "id token authentication time (auth_time) claim missing (required with max_age)"
    end
    if now > claims.auth_time + opts.max_age + leeway then
      return nil, str_format("id token auth_time %.0f is too old for max_age %.0f (now %.0f)",
        claims.auth_time, opts.max_age, now)
    end
  end
  return true
end

local function check_args(token, opts)
  if type(token) ~= "string" then
    argerror("verify_id_token", 1, "string expected, got " .. type(token))
  end
  check_verify_opts(opts)
end

-- The token decoded and the key chosen by its header: jwt, key | nil, message, reason.
local function first_step(token, opts)
  local jwt, err = decode(token)
  if not jwt then return nil, "id token could not be decoded: " .. err end
  local key, kerr, reason = signing_key(jwt, opts)
  if not key then return nil, kerr, reason end
  return jwt, key
end

--- Validates an ID token the way Auth0's SDKs do.
-- @tparam string token the compact JWT
-- @tparam table opts `issuer` ("https://host/", exact match), `client_id`, `jwks` (the
--   decoded JWKS document, required for RS256), `leeway` (seconds, default 60), `now`
--   (default `os.time()`), `nonce`, `max_age`, `client_secret`, `alg` (the one algorithm
--   accepted: "RS256", or "HS256" with client_secret; default RS256, or HS256 when only a
--   client_secret is given). Base64url parts must be canonical (no padding, zero unused bits).
-- @treturn table the claims
-- @treturn[2] nil
-- @treturn[2] auth0.Error `invalid_id_token`, its message naming the failing check
-- @raise on a non-string token, a missing or wrongly typed option, an unknown option
function _M.verify_id_token(token, opts)
  check_args(token, opts)
  local jwt, key, reason = first_step(token, opts)
  if not jwt then return fail(key, reason) end
  local ok, err = check_signature(jwt, opts, key)
  if not ok then return fail(err) end
  ok, err = check_claims(jwt.payload, opts)
  if not ok then return fail(err) end
  return jwt.payload
end

--- `verify_id_token` in steps, each handed to `later(fn)` by the one before it (a game runs
-- each from a poll of its own): the decode, the header's checks and an RS256 signature's check
-- started on a worker's thread or one of its own (core.rs256_verify_start: the caller's thread
-- pays for neither the key's import nor the verification); then, looked at from `later` until
-- the thread is done, the claims. HS256, or no thread: the signature in a step of its own, the
-- claims in the next. Misuse of the arguments raises at once, as verify_id_token's.
-- @tparam string token
-- @tparam table opts as verify_id_token's
-- @tparam function later later(fn): runs fn later
-- @tparam function done done(claims) or done(nil, err), as verify_id_token returns
-- @param[opt] worker a `core.rs256_worker()` to check the signature on, instead of a thread of its own
function _M.verify_id_token_steps(token, opts, later, done, worker)
  check_args(token, opts)
  later(function()
    local jwt, key, reason = first_step(token, opts)
    if not jwt then return done(fail(key, reason)) end
    local function signed(ok, err)
      if not ok then return done(fail(err)) end
      local ok2, err2 = check_claims(jwt.payload, opts)
      if not ok2 then return done(fail(err2)) end
      done(jwt.payload)
    end
    local job = key ~= "HS256" and (worker and worker:verify(key.n, key.e, jwt.signing_input, jwt.signature)
      or rs256_start(key.n, key.e, jwt.signing_input, jwt.signature))
    if not job then
      return later(function()
        local ok, err = check_signature(jwt, opts, key)
        later(function() signed(ok, err) end)
      end)
    end
    local function look()
      local valid, lost = job:result()
      if valid == nil then
        if lost then return signed(check_signature(jwt, opts, key)) end   -- a forked child: here
        return later(look)
      end
      signed(valid, "id token signature verification failed")
    end
    later(look)
  end)
end

return _M
