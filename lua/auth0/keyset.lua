--- The client's key set for ID tokens (docs/protocol.md, "ID tokens"): the tenant's JWKS,
-- held for `jwks_ttl` seconds (600), refetched for a token whose `kid` it lacks at most once
-- per `jwks_min_refetch` seconds (60) for the whole client, one fetch shared by every
-- verification waiting for it. A failed fetch never drops the keys held: a forged `kid`
-- during a JWKS outage cannot make valid tokens fail. A failed fetch is remembered too: with
-- no keys held, verifications within `jwks_min_refetch` of it fail at once with its reason
-- instead of each fetching again (an outage must not turn every login into a JWKS request).
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local core = require "auth0.core"
local jwt = require "auth0.jwt"
local shape = require "auth0.shape"
local errors = require "auth0.error"

local ipairs, huge, now, ceil = ipairs, math.huge, core.now, math.ceil

local M = {}

local O_JWKS = { fn = "jwks" }

local function state(client)
  local k = client._keys
  if not k then
    -- jwks: the held key set; at: when it was fetched; tried: when a fetch last started;
    -- failed: when a fetch last failed, and last_err its error
    k = { jwks = nil, at = -huge, tried = -huge, failed = -huge, last_err = nil, waiters = nil }
    client._keys = k
  end
  return k
end

--- The held JWKS when it is younger than jwks_ttl, else nil.
function M.fresh(client)
  local k = state(client)
  if k.jwks and now() - k.at < client._cfg.jwks_ttl then return k.jwks end
  return nil
end

--- Fetches the JWKS, blocking; keeps it on success. @return jwks | nil, err
function M.fetch_blocking(client, where)
  local k = state(client)
  k.tried = now()
  local v, err = client:_call(where, "jwks", nil, O_JWKS, nil, shape.jwks)
  if v then k.jwks, k.at = v, now(); jwt.import_keys(v) else k.failed, k.last_err = now(), err end
  return v, err
end

--- Fetches the JWKS without blocking: `on_done(jwks, err)` runs from poll. A fetch already
-- in flight is joined, not repeated.
function M.fetch_async(client, on_done)
  local k, s = state(client), client._sched
  if k.waiters then k.waiters[#k.waiters + 1] = on_done; return end
  k.waiters = { on_done }
  k.tried = now()
  -- a request of its own: cancelling one verification does not cancel the shared fetch
  local freq = s:request("jwks", function(v, err)
    local w = k.waiters
    k.waiters = nil
    -- the keys' import (about as dear as a verification) is a task of its own, not in this one;
    -- with a worker the staged checks import on its thread and the synchronous ones when used
    if v then
      k.jwks, k.at = v, now()
      if not k.worker then s:push(function() jwt.import_keys(v) end) end
    else k.failed, k.last_err = now(), err end
    for _, fn in ipairs(w) do s:call(fn, v, err) end
  end)
  local ok, err = client:_attempts(freq, "jwks", nil, O_JWKS, shape.jwks, function(...) freq:finish(...) end)
  if not ok then s:push(function() freq:finish(nil, err) end, freq) end
end

local function options(client, opts, jwks)
  local cfg = client._cfg
  local hs = cfg.id_token_alg == "HS256"
  return {
    jwks = jwks, issuer = cfg.issuer, client_id = cfg.client_id, alg = cfg.id_token_alg,
    client_secret = hs and cfg.client_secret or nil,
    leeway = opts.leeway, now = opts.now, nonce = opts.nonce, max_age = opts.max_age,
  }
end

local function check(client, token, opts, jwks) return jwt.verify_id_token(token, options(client, opts, jwks)) end

-- The error of a verification that found no keys while the last fetch failed less than
-- jwks_min_refetch ago: that fetch's code and reason, and when trying again makes sense.
local function backed_off(k, cfg)
  local last, ago = k.last_err, now() - k.failed
  local msg = ("no JWKS keys: the last fetch failed %.1f s ago and is not tried again within jwks_min_refetch (%g s)")
    :format(ago, cfg.jwks_min_refetch)
  if last and last.message and last.message ~= "" then msg = msg .. ": " .. last.message end
  return errors.new(last and last.code or "network", msg, { reason = last and last.reason or "network",
    status = last and last.status, context = "jwks", retry_after = ceil(cfg.jwks_min_refetch - ago) })
end

--- Verifies `token`; `fetch(on_done)` gets the JWKS (blocking or not); `done(claims, err)`.
function M.verify(client, token, opts, fetch, done)
  local k, cfg = state(client), client._cfg
  if cfg.id_token_alg == "HS256" then return done(check(client, token, opts, nil)) end
  local function with(jwks, fetched)
    local claims, err = check(client, token, opts, jwks)
    if claims or fetched or err.reason ~= "unknown_kid" then return done(claims, err) end
    -- an unknown kid: the tenant may have rotated its keys, or the token is forged
    if not k.waiters and now() - k.tried < cfg.jwks_min_refetch then return done(nil, err) end
    fetch(function(v, ferr)
      if not v then return done(nil, ferr) end
      return with(v, true)
    end)
  end
  local held = M.fresh(client)
  if held then return with(held, false) end
  -- stale keys during a fetch outage still verify, until a fetch succeeds
  if not k.waiters and now() - k.failed < cfg.jwks_min_refetch then
    if k.jwks then return with(k.jwks, true) end
    return done(nil, backed_off(k, cfg))
  end
  fetch(function(v, ferr)
    if v then return with(v, true) end
    if k.jwks then
      client:_log("warn", "JWKS fetch failed: verifying with the keys held", { code = ferr and ferr.code })
      return with(k.jwks, true)
    end
    return done(nil, ferr)
  end)
end

--- M.verify in steps with the keys held when they are fresh (jwt.verify_id_token_steps: the
-- decode now and the RS256 signature on the worker's thread (M.prepare) or one of its own, the
-- claims from a `later(fn)` once it is done), so that no frame pays for the signature; an
-- unknown kid, HS256 or no fresh keys: M.verify, fetching without blocking.
function M.verify_steps(client, token, opts, later, done)
  local function fetch(on_done) M.fetch_async(client, on_done) end
  local held = client._cfg.id_token_alg ~= "HS256" and M.fresh(client)
  if not held then return M.verify(client, token, opts, fetch, done) end
  jwt.verify_id_token_steps(token, options(client, opts, held), later, function(claims, err)
    if claims or err.reason ~= "unknown_kid" then return done(claims, err) end
    M.verify(client, token, opts, fetch, done)
  end, state(client).worker)
end

--- Starts the client's verification thread (core.rs256_worker) for verify_steps, at a time
-- of the caller's choosing (a loading screen): a thread's start costs a frame as much as a
-- verification. Without one each staged check starts a thread of its own.
function M.prepare(client)
  local k = state(client)
  if not k.worker and core.rs256_worker then k.worker = core.rs256_worker() or nil end
end

return M
