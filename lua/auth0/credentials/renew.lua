--- auth0.credentials, part two: getting valid tokens, renewing them one refresh at a time,
-- and clearing. Installed into the manager's class by lua/auth0/credentials.lua.
-- @submodule auth0.credentials
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local keyset, stores = require "auth0.keyset", require "auth0.credentials.stores"
local unsaved_or, refused_write = require("auth0.credentials.rotated")()
local check = require "auth0.check"
local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error

return function(Manager, h)
  local raise, check_ttl, api_key, entry_of, fresh, view = h.raise, h.check_ttl, h.api_key, h.entry_of, h.fresh, h.view
  local deliver, changed, login_required, entry_from, store_new = h.deliver, h.changed, h.login_required,
    h.entry_from, h.store_new
  local xpcall, pcall, traceback, copy, new_error = h.xpcall, h.pcall, h.traceback, h.copy, h.new_error
  local store_new_cb, store_clear_cb, lock_cb, load_cb = h.store_new_cb, h.store_clear_cb, h.lock_cb, h.load_cb
  local later, hold, finish_jobs, flush_unsaved, check_open = h.later, h.hold, h.finish_jobs, h.flush_unsaved,
    h.check_open
  local run_queued, wait_own, async_store = h.run_queued, h.wait_own, h.async_store
  local VERIFY = check.at("verify_id_token")

  -- An ID token verify_id_token would refuse as misuse (over the size cap, a NUL byte, invalid
  -- UTF-8: check.wire's rule) came from a server's answer here, or from one through the
  -- application (save): an invalid token, `nil, err`, never a raise (which, in a renewal, came
  -- after the server had rotated the refresh token).
  local function unusable(token) return type(token) ~= "string" or not pcall(check.wire, VERIFY, token, "id_token") end
  local function unusable_error()
    return new_error("invalid_id_token", "the id token is not a compact JWT (too long, a NUL byte or invalid UTF-8)")
  end

  -- The blocking forms' check: verify_id_token's answer, or unusable's.
  local function verify_sync(self, token)
    if unusable(token) then return nil, unusable_error() end
    return self._client:verify_id_token(token, { now = self._now() })
  end

  -- The ID token checked for the callback forms, once the client holds the JWKS: fn(claims | nil, err).
  -- With a store that has async methods the check runs in steps (keyset.verify_steps), the
  -- decode, the signature and the claims each from a poll of its own; else client:verify_id_token.
  -- `held`: client:close() between the steps then ends it with fn(nil, "cancelled") (a save; a
  -- renewal's flight is held already).
  local function verify_cb(self, token, fn, guard, held)
    local client = self._client
    if unusable(token) then return fn(nil, unusable_error()) end
    local opts = { now = self._now() }
    if not (async_store(self) and type(client._cfg) == "table" and type(client._sched) == "table") then
      return fn(client:verify_id_token(token, opts))
    end
    local over, unhold = false, nil
    local function ends(claims, err)
      if over then return end
      over = true
      if unhold then unhold() end
      fn(claims, err)
    end
    if held then unhold = hold(self, function(err) ends(nil, err) end) end
    keyset.verify_steps(client, token, opts, function(step) later(self, step, guard) end, ends)
  end

  -- The store's lock, when it has one (file: flock; ngx.shared: add with a TTL).
  local function lock(self)
    if not self._store.lock then return true end
    return stores.locked(self._store.lock(nil, stores.lock_hold(self._client)))   -- an ngx_store lock outlives the refresh
  end
  local function unlock(self, l)
    if l ~= nil and l ~= true then self._store.unlock(l) end
  end

  -- The store content after a refresh answer `res` to `d` (what the refresh started from).
  local function merged(self, d, key, res, claims)
    local now = self._now()
    local nd = stores.stamp(self._owner, copy(d))   -- a session saved before owners were recorded: recorded now
    local e = entry_from(res, now)
    if key then
      nd.apis = nd.apis or {}
      nd.apis[key] = e
    else
      for k, v in pairs(e) do nd[k] = v end
      if claims then nd.id_token, nd.user = res.id_token, claims end
    end
    if res.refresh_token then nd.refresh_token = res.refresh_token end
    return nd, e, now
  end

  local function refused(self)
    self._data = false
    changed(self, "cleared", { reason = "invalid_grant" })
  end

  -- What the store held when reread under the lock (another process may have renewed
  -- already): d to refresh from, or nil, tokens (still fresh), or nil, nil, err.
  local function judge(self, key, min_ttl, force, d, err)
    if err then return nil, nil, err end
    local now = self._now()
    local e = entry_of(d, key)
    if not force and fresh(e, now, min_ttl) then return d, view(e, d, now, key) end
    if not d or not d.refresh_token then return nil, nil, login_required() end
    return d
  end

  -- After a refresh from `d` under lock `l`: when the lock was lost and another holder stored a newer
  -- session, true and that session's tokens (this refresh's answer never written nor cleared over it).
  local function superseded(self, key, l, d)
    local r = self._rotated   -- a refresh from the kept session: the store holds the token it came from
    if r and d == r.data then d = { refresh_token = r.from } end
    if not stores.superseded(self._store, l, d, stores.lock_hold(self._client)) then return false end
    self._data = nil
    local _, v, e = judge(self, key, self._min_ttl, false, self:_current())   -- as a load is judged
    return true, v, e or (not v and new_error("store_busy", "another worker renewed the session during this refresh")) or nil
  end

  -- Before presenting the refresh token: false when the store's lock `l` was lost (another holder
  -- may be presenting the same token: with rotation a second use revokes the family); a lock
  -- still held is extended to the refresh's longest.
  local function lost_lock(self, l)
    local s = self._store
    if type(s.holds) ~= "function" or l == nil or l == true or s.holds(l, stores.lock_hold(self._client)) then return nil end
    return new_error("store_busy", "the store's lock was lost before the refresh")
  end

  -- Applies a refresh answer to `d` (the store content the refresh started from) under lock `l`.
  -- Rotation: the new refresh token is saved before anyone sees the new access token.
  local function settle(self, d, key, res, err, claims, l)
    local sok, lost, v, e0 = pcall(superseded, self, key, l, d)
    if not sok then   -- a custom store's holds or load raised: a rotated token is written first, as abort does
      if res and res.refresh_token then pcall(store_new, self, (merged(self, d, key, res, claims)), "renewed") end
      error(lost, 0)
    end
    if lost then return v, e0 end
    if err then
      if err.code == "invalid_grant" then
        self._store.clear()
        refused(self)
        return nil, login_required(err)
      end
      return nil, err   -- mfa_required (with its mfa_token), network, 5xx: the store is kept
    end
    local nd, e, now = merged(self, d, key, res, claims)
    local ok, serr = store_new(self, nd, "renewed")
    refused_write(self, d, nd, ok)
    if not ok then return nil, serr end
    return view(e, nd, now, key)
  end

  -- settle for the callback forms: done(tokens | nil, err) once the store has the new tokens.
  local function settle_cb(self, d, key, res, err, claims, done, guard, l)
    local lost, v, e0 = superseded(self, key, l, d)
    if lost then return done(v, e0) end
    if err then
      if err.code ~= "invalid_grant" then return done(nil, err) end
      return store_clear_cb(self, function()
        refused(self)
        done(nil, login_required(err))
      end, guard)
    end
    local nd, e, now = merged(self, d, key, res, claims)
    -- until the store has it, abort writes it (or keeps it in memory: a sync store's save may be
    -- what raised); once saved, never again (an on_change raising after the save)
    if self._unsaved then
      self._unsaved = function()
        if self._data ~= nd then self._data = nd; store_new(self, nd, "renewed") end
      end
    end
    store_new_cb(self, nd, "renewed", function(ok, serr)
      refused_write(self, d, nd, ok)
      if not ok then return done(nil, serr) end
      done(view(e, nd, now, key))
    end, guard)
  end

  local function refresh_fields(d, req) return { refresh_token = d.refresh_token, audience = req.audience, scope = req.scope } end

  local function reread(self, key, min_ttl, force)
    self._data = nil
    local d, err = self:_current()
    return judge(self, key, min_ttl, force, unsaved_or(self, d), err)
  end

  local function blocking_refresh(self, key, req, min_ttl, force)
    local l, lerr = lock(self)
    if not l then return nil, lerr end
    -- pcall, not xpcall: a misuse raised inside is raised again unchanged, after the unlock
    local ok, res, err = pcall(function()
      local d, done, rerr = reread(self, key, min_ttl, force)
      if not d or done then return done, rerr end
      local lerr2 = lost_lock(self, l)
      if lerr2 then return nil, lerr2 end
      local client = self._client
      local t, terr = client:refresh(refresh_fields(d, req))
      local claims
      if t and not key and type(t.id_token) == "string" then
        claims = verify_sync(self, t.id_token)
      end
      return settle(self, d, key, t, terr, claims, l)
    end)
    unlock(self, l)
    if not ok then error(res, 0) end
    return res, err
  end

  -- Delivers the flight's result to every waiter, then starts the calls queued behind it.
  local function land(self, f, res, err)
    if f.landed then return end   -- once: client:close() may land it before its own steps do
    f.landed = true
    self._unsaved = nil
    if f.unhold then f.unhold() end
    unlock(self, f.lock)
    self._flight = nil
    local first
    for _, cb in ipairs(f.waiters) do
      local ok, msg = xpcall(cb, traceback, res and copy(res), err)
      if not ok and not first then first = msg end
    end
    run_queued(self, err)
    if first then error(first, 0) end
  end

  -- A raise while a callback refresh settles: the flight lands with an error (when it has not
  -- landed yet), its rotated tokens not yet handed to the store written first, and the raise
  -- goes on, unchanged, to the client's on_callback_error.
  local function abort(self, f, msg)
    if self._flight == f then
      flush_unsaved(self)   -- a rotated refresh token (the old one is dead) written before the lock goes
      land(self, f, nil, new_error("callback_error", "a callback or the store raised while the refresh settled"))
    end
    error(msg, 0)
  end

  local function async_refresh(self, key, req, min_ttl, force, cb)
    local f = self._flight
    if f then
      if f.key == key then f.waiters[#f.waiters + 1] = cb
      else
        self._queued[#self._queued + 1] = function(cerr)
          if cerr then return cb(nil, cerr) end
          self:_get(key, req, min_ttl, force, cb)
        end
      end
      return true
    end
    f = { key = key, waiters = { cb } }
    self._flight = f
    local client = self._client
    -- whatever raises later, from a callback or a timer (on_change, a store's save, the ID
    -- token check), still lands the flight, so waiters hear of it and the lock is released;
    -- then it goes on to on_callback_error
    local function guard(fn)
      return function(...)
        local ok, msg = pcall(fn, ...)
        if not ok then abort(self, f, msg) end
      end
    end
    local function landed(res, err) land(self, f, res, err) end
    -- client:close() lands the flight ("cancelled"): the timers it waits on are dropped then
    f.unhold = hold(self, function(err)
      if f.drop then f.drop() end
      flush_unsaved(self)   -- before land releases the lock: a rotated token is written first
      finish_jobs(self)
      if self._flight == f then land(self, f, nil, err) end
    end)
    local function refresh(d)
      local lerr = lost_lock(self, f.lock)
      if lerr then return land(self, f, nil, lerr) end
      client:refresh(refresh_fields(d, req), guard(function(t, terr)
        if t and t.refresh_token then   -- rotated: until its write is queued, close() writes it
          self._unsaved = function() store_new(self, (merged(self, d, key, t, nil)), "renewed") end
        end
        if not t or key or type(t.id_token) ~= "string" then return settle_cb(self, d, key, t, terr, nil, landed, guard, f.lock) end
        client:jwks(guard(function(jwks)   -- a JWKS failure only means the old claims stay
          if not jwks then return settle_cb(self, d, key, t, nil, nil, landed, guard, f.lock) end
          verify_cb(self, t.id_token, function(claims)
            settle_cb(self, d, key, t, nil, claims, landed, guard, f.lock)
          end, guard)
        end))
      end))
    end
    local function locked(l, lerr)
      if not l then return land(self, f, nil, lerr) end
      f.lock = l
      later(self, function()
        load_cb(self, function(data, lerr2)   -- after the store's own writes in flight
          local d, done, rerr = judge(self, key, min_ttl, force, unsaved_or(self, data), lerr2)
          if not d or done then return land(self, f, done, rerr) end
          later(self, function() refresh(d) end, guard)
        end, guard)
      end, guard)
    end
    -- a raise from a custom store's lock or load, in this call, must not leave the flight (or
    -- the lock) behind
    local ok, msg = pcall(later, self, function() lock_cb(self, locked, guard, f) end, guard)
    if not ok then
      f.landed = true
      f.unhold()
      if self._flight == f then self._flight = nil; unlock(self, f.lock) end
      error(msg, 0)
    end
    return true
  end

  function Manager:_get(key, req, min_ttl, force, cb)
    local d, err = self:_current()
    if err then return deliver(cb, nil, err) end
    if not force then
      local now = self._now()
      local e = entry_of(d, key)
      if fresh(e, now, min_ttl) then return deliver(cb, view(e, d, now, key)) end
    end
    if cb then
      check_open(self, 3)
      if self._saving > 0 or self._clearing then   -- a save or clear asked before lands first: refresh from it
        self._queued[#self._queued + 1] = function(cerr)
          if cerr then return cb(nil, cerr) end
          self:_get(key, req, min_ttl, force, cb)
        end
        return true
      end
      return async_refresh(self, key, req, min_ttl, force, cb)
    end
    wait_own(self, function() return self._saving > 0 or self._clearing end, 3)   -- and a clear asked before
    if self._flight then   -- a callback refresh is in flight: wait for it through the client
      local res, rerr, done
      async_refresh(self, key, req, min_ttl, force, function(r, e2) res, rerr, done = r, e2, true end)
      wait_own(self, function() return not done end, 3)
      return res, rerr
    end
    return blocking_refresh(self, key, req, min_ttl, force)
  end

  local function args(opts, cb, level)
    if type(opts) == "function" and cb == nil then opts, cb = nil, opts end
    if opts ~= nil and type(opts) ~= "table" then raise("options must be a table", level + 1) end
    if cb ~= nil and type(cb) ~= "function" then raise("callback must be a function", level + 1) end
    return opts or {}, cb
  end

  --- Tokens whose access token is valid for at least `min_ttl` seconds, renewed with the
  -- stored refresh token when it is not (one refresh for any number of concurrent calls).
  -- @tparam[opt] table opts `min_ttl` (overrides the manager's)
  -- @param[opt] cb callback(tokens, err)
  -- @return `{access_token, token_type, expires_at, expires_in, scope, id_token}` or nil, err:
  --   `login_required` (nothing stored, or the refresh token was refused: the store is now
  --   empty), `mfa_required` (with `mfa_token`, `mfa_requirements`; complete it with
  --   `flow.mfa` and `save` the result), network and server errors (the store is kept),
  --   `insecure_store`, `store_corrupt`, `store_busy`, `store_error`, `store_mismatch` (the
  --   store holds a session saved for another tenant or client id: nothing is sent, the store
  --   is left as it is)
  function Manager:credentials(opts, cb)
    local d = self._data
    if opts == nil and cb == nil and d then   -- the hot path: a cached token still valid
      local now = self._now()
      if fresh(d, now, self._min_ttl) then return view(d, d, now) end
    end
    opts, cb = args(opts, cb, 2)
    for k in pairs(opts) do if k ~= "min_ttl" then raise("unknown option " .. tostring(k)) end end
    local min_ttl = opts.min_ttl == nil and self._min_ttl or check_ttl(opts.min_ttl, "min_ttl", 2)
    return self:_get(nil, {}, min_ttl, false, cb)
  end

  --- An access token for another API (`audience`) from the same refresh token, cached per
  -- audience and scope and renewed like `credentials`.
  -- @tparam string audience the API identifier
  -- @tparam[opt] table opts `scope` (the API's scopes to ask for), `min_ttl`
  -- @param[opt] cb callback(tokens, err)
  -- @return `{access_token, token_type, expires_at, expires_in, scope}` or nil, err (as credentials)
  function Manager:api_credentials(audience, opts, cb)
    if type(audience) ~= "string" or audience == "" then raise("audience must be a non-empty string") end
    opts, cb = args(opts, cb, 2)
    for k in pairs(opts) do if k ~= "min_ttl" and k ~= "scope" then raise("unknown option " .. tostring(k)) end end
    if opts.scope ~= nil and type(opts.scope) ~= "string" then raise("scope must be a string") end
    local min_ttl = opts.min_ttl == nil and self._min_ttl or check_ttl(opts.min_ttl, "min_ttl", 2)
    return self:_get(api_key(audience, opts.scope), { audience = audience, scope = opts.scope }, min_ttl, false, cb)
  end

  --- Renews now with the stored refresh token, whatever the access token's expiry.
  -- @param[opt] cb callback(tokens, err) @return tokens or nil, err (as credentials)
  function Manager:renew(cb)
    if cb ~= nil and type(cb) ~= "function" then raise("callback must be a function") end
    return self:_get(nil, {}, self._min_ttl, true, cb)
  end

  -- clear in callback form: the lock tried on a timer, the revocation and the removal waited
  -- for from poll; the lock is held throughout and released before cb runs.
  local function clear_cb(self, opts, cb)
    local held, l, unhold, counted = false, nil, nil, true
    -- until it ends, saves asked after it wait (the removal would wipe what they wrote)
    self._clearing = (self._clearing or 0) + 1
    local function release(err)
      unhold()
      if held then held = false; unlock(self, l) end
      if counted then
        counted = false
        self._clearing = self._clearing > 1 and self._clearing - 1 or nil
        run_queued(self, err)
      end
    end
    local function guard(fn)   -- a raise goes on unchanged, after the release
      return function(...)
        local ok, msg = pcall(fn, ...)
        if not ok then release(); error(msg, 0) end
      end
    end
    local over = false
    local function finish(ok, err)
      release(err)
      if not over then over = true; cb(ok, err) end
    end
    local st = {}   -- st.drop: the lock's try in flight
    unhold = hold(self, function(err)   -- client:close(): "cancelled"
      if st.drop then st.drop() end
      finish_jobs(self)   -- a removal in flight ends before the lock is released
      finish(nil, err)
    end)
    local function empty()
      store_clear_cb(self, function(ok, cerr)
        if not ok then return finish(nil, cerr) end
        self._data = false
        changed(self, "cleared", { reason = "clear" })
        finish(true)
      end, guard)
    end
    local function locked(lk, lerr)
      if not lk then return finish(nil, lerr) end
      l, held = lk, true
      later(self, function() load_cb(self, function(d, rerr)   -- reread: another process may have rotated the token
        if rerr and (opts.revoke ~= false or rerr.code == "store_mismatch") then return finish(nil, rerr) end
        local token = opts.revoke ~= false and not rerr and d and unsaved_or(self, d).refresh_token   -- the live one
        if not token then return empty() end
        later(self, function()
          self._client:revoke(token, guard(function(rok, rerr2)
            if not rok then return finish(nil, rerr2) end
            empty()
          end))
        end, guard)
      end, guard) end, guard)
    end
    local ok, msg = pcall(later, self, function() lock_cb(self, locked, guard, st) end, guard)
    if not ok then release(); error(msg, 0) end
    return true
  end

  --- Logs out: with `revoke` (default true) revokes the refresh token at Auth0, then empties
  -- the store. A failed revocation keeps the store (so that it can be retried) and returns
  -- the error. It holds the store's lock throughout and revokes the token the store holds
  -- then (another process may have rotated it), so a concurrent refresh cannot bring the
  -- session back. A store holding another tenant's or client's session is left as it is, even
  -- with `revoke = false` (`store_mismatch`). @tparam[opt] table opts `revoke` @param[opt] cb callback(true | nil, err)
  -- @return true or nil, err
  function Manager:clear(opts, cb)
    opts, cb = args(opts, cb, 2)
    for k in pairs(opts) do if k ~= "revoke" then raise("unknown option " .. tostring(k)) end end
    if self._flight or self._saving > 0 or self._clearing then   -- our refresh or clear holds the lock, or a save would land after
      if cb then
        self._queued[#self._queued + 1] = function(err)
          if err then return cb(nil, err) end
          self:clear(opts, cb)
        end
        return true
      end
      wait_own(self, nil, 2)
    end
    if cb then
      check_open(self, 2)
      return clear_cb(self, opts, cb)
    end
    local l, lerr = lock(self)
    if not l then return nil, lerr end
    local ok, a, b = pcall(function()
      self._data = nil   -- reread: another process may have rotated the token
      local d, rerr = self:_current()
      if rerr and (opts.revoke ~= false or rerr.code == "store_mismatch") then return nil, rerr end   -- never another's
      local token = opts.revoke ~= false and not rerr and d and unsaved_or(self, d).refresh_token   -- the live one
      if token then
        local rok, rerr2 = self._client:revoke(token)
        if not rok then return nil, rerr2 end
      end
      local cok, cerr = self._store.clear()
      if not cok then return nil, cerr end
      self._data = false
      changed(self, "cleared", { reason = "clear" })
      return true
    end)
    unlock(self, l)
    if not ok then error(a, 0) end   -- a raise goes on unchanged, after the release
    return a, b
  end

  local in_order = require "auth0.credentials.order"

  -- One call queued behind the manager's work (run_queued), run as a callback is: a raise goes
  -- to on_callback_error, never into the context that ended that work (a save's or clear's
  -- own callback still to run, the calls queued after this one).
  function Manager:_call_queued(fn, err)
    local client = self._client
    if type(client._deliver) ~= "function" then return fn(err) end
    client:_deliver(fn, err)
  end

  return verify_cb, in_order, verify_sync
end
