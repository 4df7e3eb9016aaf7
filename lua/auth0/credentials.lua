--- Stay logged in: stored tokens that renew themselves, one refresh at a time.
--
--    local credentials = require "auth0.credentials"
--    local cm = credentials.new(client, { store = credentials.file_store { app = "mygame" } })
--    cm:save(tokens)                 -- after a login
--    local t, err = cm:credentials() -- later: a valid access token, renewed when needed
--
-- Every method that may touch the network blocks and returns `result` or `nil, err`; given
-- a trailing callback `function(result, err)` it returns `true` at once and the callback runs
-- later from `client:poll()` (or before the call returns when nothing needs the network:
-- a valid stored token); inside a coroutine `auth0.await(cm, "credentials")` works too.
-- In those forms a file store's disk work (write, removal, reread, each try of the lock) runs
-- on the store's own thread and is looked at from the client's timers: the caller's thread
-- (a game's frame) never waits for the disk nor for another process's lock.
--
-- Concurrent calls make one refresh: callbacks and coroutines of one manager join the
-- refresh in flight; processes sharing a file store, and nginx workers sharing an
-- `ngx_store`, take the store's lock and reread the store before refreshing, so the
-- second one finds the first one's tokens.
-- @module auth0.credentials
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local stores = require "auth0.credentials.stores"
local errors = require "auth0.error"
local keyset = require "auth0.keyset"

local type, pairs, ipairs, tostring, setmetatable, error, xpcall, pcall = type, pairs, ipairs, tostring, setmetatable,
  error, xpcall, pcall
local traceback, mono = debug.traceback, require("auth0.core").now
local new_error, copy = errors.new, stores.copy

local _M = {
  memory_store = stores.memory_store,
  file_store = stores.file_store,
  ngx_store = stores.ngx_store,
  default_path = stores.default_path,
}

local verify_cb, in_order, verify_sync   -- ID token checks and saves' order (lua/auth0/credentials/renew.lua)
local Manager = { __name = "auth0.Credentials" }
Manager.__index = Manager
_M.Manager = Manager

local function raise(msg, level) error("auth0.credentials: " .. msg, (level or 2) + 1) end

local function check_ttl(v, name, level)
  if type(v) ~= "number" or not (v >= 0 and v < 1e9) then raise(name .. " must be seconds >= 0", level + 1) end
  return v
end

local NEW_OPTS = { store = true, min_ttl = true, on_change = true, now = true }

--- A credentials manager for `client` (an `auth0.Client`; only its public methods are used).
-- @tparam table client
-- @tparam[opt] table opts `store` (default `memory_store()`), `min_ttl` (seconds an access
--   token must still be valid, default 60), `on_change(event, info)` (called after the store
--   changed: "saved", "renewed", "cleared"; `info` never holds a token), `now` (a clock
--   returning epoch seconds, default `os.time`, for tests)
-- @return manager
-- @raise on a wrong argument or option
function _M.new(client, opts)
  if type(client) ~= "table" or type(client.refresh) ~= "function" then raise("client must be an auth0.Client") end
  opts = opts or {}
  if type(opts) ~= "table" then raise("options must be a table") end
  for k in pairs(opts) do if not NEW_OPTS[k] then raise("unknown option " .. tostring(k)) end end
  local store = opts.store or stores.memory_store()
  if type(store) ~= "table" or type(store.load) ~= "function" or type(store.save) ~= "function"
     or type(store.clear) ~= "function" then
    raise("store must have load, save and clear functions")
  end
  -- a NaN or infinite wait would retry a busy lock forever
  if store.lock_wait ~= nil then check_ttl(store.lock_wait, "store.lock_wait", 2) end
  if opts.on_change ~= nil and type(opts.on_change) ~= "function" then raise("on_change must be a function") end
  if opts.now ~= nil and type(opts.now) ~= "function" then raise("now must be a function") end
  local now = os.time
  if opts.now then
    local user_now = opts.now
    now = function()   -- a NaN or infinite clock would make every token look valid
      local t = user_now()
      if type(t) ~= "number" or not (t > -1e15 and t < 1e15) then raise("now() must return finite epoch seconds", 2) end
      return t
    end
  end
  -- the store's thread starts now (a loading screen), not in the frame of the first save
  if type(store.prepare) == "function" and type(client._after) == "function" then store.prepare() end
  -- and the ID token checks' thread, for a store whose callback forms check in steps (verify_cb)
  if store.save_async and type(client._cfg) == "table" and type(client._after) == "function" then keyset.prepare(client) end
  return setmetatable({
    _client = client, _store = store, _min_ttl = check_ttl(opts.min_ttl or 60, "min_ttl", 2),
    _on_change = opts.on_change, _now = now, _owner = stores.owner(client),   -- recorded in what it saves
    _data = nil,          -- cached store content; false = known empty; nil = not read yet
    _flight = nil,        -- the refresh in flight: { key, waiters, lock }
    _queued = {},         -- calls for another audience, waiting for the flight to land
    _unsaved = nil,       -- writes a renewal not yet handed to the store (client:close())
    _saving = 0,          -- callback-form saves not ended: refreshes and clears wait for them
  }, Manager)
end

function Manager:__tostring()
  local d = self._data
  local state = d == nil and "not loaded" or (d and (d.refresh_token and "refresh token stored" or "access token only"))
                or "empty"
  return "auth0.Credentials (" .. (self._store.kind or "custom") .. " store, " .. state .. ")"
end

-- Field by field: a store edited by hand (or by another program) must not reach the client
-- as a table where a token belongs, nor make an access token look valid for ever.
local function entry_ok(e)
  if type(e) ~= "table" then return false end
  for _, k in ipairs({ "access_token", "token_type", "scope" }) do
    if e[k] ~= nil and type(e[k]) ~= "string" then return false end
  end
  local x = e.expires_at
  return x == nil or (type(x) == "number" and x > -1e15 and x < 1e15)
end

local function data_ok(d)
  if not entry_ok(d) then return false end
  for _, k in ipairs({ "refresh_token", "id_token", "issuer", "client_id" }) do
    if d[k] ~= nil and type(d[k]) ~= "string" then return false end
  end
  if d.user ~= nil and type(d.user) ~= "table" then return false end
  if d.apis ~= nil then
    if type(d.apis) ~= "table" then return false end
    for k, e in pairs(d.apis) do
      if type(k) ~= "string" or not entry_ok(e) then return false end
    end
  end
  return true
end

-- What the store's load gave (data | nil), checked and cached: data | false, or nil, err (store_mismatch: unused, untouched).
function Manager:_accept(d)
  if d and not data_ok(d) then
    return nil, new_error("store_corrupt", "the stored credentials have fields of the wrong type")
  end
  local foreign = stores.foreign(self._owner, d)
  if foreign then return nil, foreign end
  self._data = d or false
  return self._data
end

-- The store's content (cached): data | false, or nil, err.
function Manager:_current()
  if self._data == nil then
    local d, err = self._store.load()
    if err then return nil, err end
    return self:_accept(d)
  end
  return self._data
end

local function api_key(audience, scope) return audience .. "\0" .. (scope or "") end

local function entry_of(d, key)
  if not d then return nil end
  if key then return d.apis and d.apis[key] end
  return d
end

local function fresh(e, now, min_ttl)
  return e ~= nil and e.access_token ~= nil and type(e.expires_at) == "number" and e.expires_at - now >= min_ttl
end

-- What callers get: never the refresh token (the manager owns it).
local function view(e, d, now, key)
  return { access_token = e.access_token, token_type = e.token_type or "Bearer", expires_at = e.expires_at,
           expires_in = e.expires_at - now, scope = e.scope, id_token = not key and d.id_token or nil }
end

local function changed(self, event, info) if self._on_change then self._on_change(event, info or {}) end end

local function deliver(cb, ...)
  if cb then cb(...); return true end
  return ...
end

local function login_required(cause)
  local msg = cause and ("the refresh token was refused (" .. tostring(cause.message or cause.code) .. "): log in again")
              or "no refresh token is stored: log in"
  return new_error("login_required", msg, { status = cause and cause.status or nil, cause = cause and cause.code or nil })
end

-- Auth0 issues access tokens for at most 30 days: a longer (or infinite) expires_in is not
-- believed, and a NaN, negative or non-number one means "renew next time".
local MAX_TTL = 30 * 86400

local function entry_from(res, now)
  local ttl = res.expires_in
  if type(ttl) ~= "number" or ttl ~= ttl or ttl <= 0 then ttl = 0 elseif ttl > MAX_TTL then ttl = MAX_TTL end
  return { access_token = res.access_token, token_type = res.token_type, scope = res.scope, expires_at = now + ttl }
end

-- ------------------------------------------------------------------------------------
-- Saving after a login

local function build(self, tokens, claims)
  local now = self._now()
  local d = entry_from(tokens, now)
  d.v, d.id_token, d.refresh_token, d.user, d.apis = 1, tokens.id_token, tokens.refresh_token, claims, {}
  return stores.stamp(self._owner, d)
end

local function store_new(self, d, event)
  local ok, err = self._store.save(d)
  self._data = d   -- kept in memory even when the store failed: a rotated token must not be lost
  if not ok then return nil, err end
  changed(self, event, { expires_at = d.expires_at })
  return true
end

-- ------------------------------------------------------------------------------------
-- The store in the callback forms: its disk work (write, fsync, rename) on a thread of its
-- own when it has save_async/clear_async, looked at from the client's timers, so that the
-- thread calling poll (a game's frame) never waits for the disk.

local STORE_STEP = 0.002   -- seconds between looks at a store job (a write takes about 1 ms)

local function async_store(self)
  local s = self._store
  return s.save_async ~= nil and s.clear_async ~= nil and type(self._client._after) == "function"
end

local function no_guard(fn) return fn end

-- Calls queued behind the manager's own work (a refresh in flight, callback-form saves), started once it has
-- all ended, each as a callback (a raise never stops the rest); client:close() cancels them with it (else never end).
local function run_queued(self, err)
  if self._flight or self._saving > 0 or self._clearing then return end
  local q = self._queued
  self._queued = {}
  local cancelled = err and err.code == "cancelled" and err or nil
  for _, fn in ipairs(q) do self:_call_queued(fn, cancelled) end
end

-- The blocking forms wait for the manager's own work (a refresh in flight, callback-form saves)
-- by polling the client until `pending()` is false; from inside one of the client's callbacks
-- the poll cannot advance it (it would loop for ever): misuse.
local function wait_own(self, pending, level)
  pending = pending or function() return self._flight or self._saving > 0 or self._clearing end
  while pending() do
    local n, err = self._client:poll(10)
    if not n then
      raise("a blocking call waits for the manager's work in flight and cannot from here ("
            .. tostring(err and err.message) .. "): use the callback form", level + 1)
    end
  end
end

-- A callback-form call that needs the client, on a closed one: misuse, as for the client's own
-- methods (started, it would never end).
local function check_open(self, level)
  local s = self._client._sched
  if type(s) == "table" and s.closed then raise("attempt to use a closed auth0.Client", level + 1) end
end

-- For client:close() cancelling a call: the store's jobs asked for so far are waited for (a
-- write takes milliseconds), so the lock released next never lets another process reread the
-- file before a rotated refresh token is on it.
local function finish_jobs(self)
  local s = self._store
  if async_store(self) and type(s.wait) == "function" then s.wait() end
end

-- Also for client:close(): a renewal's tokens not yet handed to the store (the server has
-- rotated the refresh token: the stored one is dead) are written at once, blocking; a store
-- error then changes nothing more than it would have on the thread.
local function flush_unsaved(self)
  local f = self._unsaved
  self._unsaved = nil
  if f then pcall(f) end
end

-- fn(result, err) from poll once the job behind `poll` ended; `guard` wraps what runs from
-- the timer (a refresh in flight lands whatever raises there).
local function wait_job(self, poll, fn, guard)
  local look
  look = (guard or no_guard)(function()
    local done, res, err = poll()
    if not done then self._client:_after(STORE_STEP, look); return end
    fn(res, err)
  end)
  self._client:_after(STORE_STEP, look)
end

-- Work of the manager's in flight (timers and store jobs, no request of the client's): counted
-- by client:pending(), and ended by client:close(), which runs on_close(err) once with
-- "cancelled" (the timers it waited on are dropped then). Returns the function that ends it.
local function hold(self, on_close)
  local s = self._client._sched
  if type(s) ~= "table" or type(s.request) ~= "function" or type(s.hold) ~= "function" then
    return function() end
  end
  local ended = false
  local req = s:request("credentials", function(_, err)
    if not ended then ended = true; on_close(err) end
  end)
  s:hold(req)
  return function()
    if not ended then ended = true; req:finish() end
  end
end

-- fn() from the next poll, as a task of its own, for a store with async methods: the steps of a
-- callback-form call (lock and read; verify; write) then fall into separate polls within the
-- client's poll budget instead of adding up in one frame. Other stores: fn() at once.
local function later(self, fn, guard)
  if not async_store(self) then return fn() end
  self._client:_after(0, (guard or no_guard)(fn))
end

-- fn() once the store's earlier jobs ended (a read must see what they wrote), at once if none.
local function after_jobs(self, fn, guard)
  local s = self._store
  if not (async_store(self) and s.busy and s.busy()) then return fn() end
  wait_job(self, function() return not s.busy() end, fn, guard)
end

-- The store reread (the cache dropped: another process may have written), for the callback
-- forms: fn(data | false | nil, err), the read on the store's thread when it has load_async.
local function load_cb(self, fn, guard)
  local s = self._store
  if not (s.load_async and async_store(self)) then
    return after_jobs(self, function()
      self._data = nil
      fn(self:_current())
    end, guard)
  end
  wait_job(self, s.load_async(), function(d, err)
    self._data = nil
    if err then return fn(nil, err) end
    fn(self:_accept(d))
  end, guard)
end

-- store_new for the callback forms: fn(true | nil, err) once the data is on disk. The cached
-- data changes only then: nobody sees a rotated access token before its refresh token is saved.
local function store_new_cb(self, d, event, fn, guard)
  if not async_store(self) then return fn(store_new(self, d, event)) end
  local started
  local function unsaved() store_new(self, d, event) end
  local unhold = hold(self, function(err)
    flush_unsaved(self)   -- a renewal not queued yet: written now
    finish_jobs(self)     -- one queued: ended
    if started then self._data = d end
    fn(nil, err)
  end)
  if event == "renewed" then self._unsaved = unsaved end
  local done, outer = fn, guard or no_guard
  fn = function(...) unhold(); return done(...) end
  guard = function(g)   -- a raise on the way (the store's save_async) ends the hold too
    return outer(function(...)
      local ok, msg = pcall(g, ...)
      if not ok then unhold(); error(msg, 0) end
    end)
  end
  later(self, function()   -- not in the task that verified the ID token: each fits a poll
    if self._unsaved == unsaved then self._unsaved = nil end
    started = true
    wait_job(self, self._store.save_async(d), function(ok, err)
      self._data = d
      if not ok then return fn(nil, err) end
      changed(self, event, { expires_at = d.expires_at })
      fn(true)
    end, guard)
  end, guard)
end

-- The store emptied, for the callback forms: fn(true | nil, err).
local function store_clear_cb(self, fn, guard)
  if not async_store(self) then return fn(self._store.clear()) end
  wait_job(self, self._store.clear_async(), fn, guard)
end

-- The store's lock for the callback forms: a store that says how long to wait (lock_wait) is
-- tried without waiting, again on a timer until then, so a lock held elsewhere never blocks
-- the caller's thread; fn(handle | nil, err), at once when the first try decides. `st.drop`
-- is set while a try runs on the store's thread (to drop it when the call is cancelled).
local function lock_cb(self, fn, guard, st)
  local s = self._store
  if not s.lock then return fn(true) end
  local life = stores.lock_hold(self._client)   -- an ngx_store lock outlives the refresh holding it
  if type(s.lock_wait) ~= "number" or type(self._client._after) ~= "function" then return fn(stores.locked(s.lock(nil, life))) end
  local deadline, delay = mono() + check_ttl(s.lock_wait, "store.lock_wait", 2), STORE_STEP   -- (NaN since new(): no end)
  local try
  local function tried(l, err)
    if l or not err or err.code ~= "store_busy" or mono() >= deadline then return fn(l, err) end
    self._client:_after(delay, try)
    delay = delay < 0.02 and delay * 2 or delay   -- short first waits: a refresh takes tens of ms
  end
  local function attempt()   -- the try itself on the store's thread when it has lock_async
    if s.lock_async and async_store(self) then
      local poll, drop = s.lock_async()
      if st then st.drop = drop end   -- client:close() drops a try in flight: no lock left held
      return wait_job(self, poll, function(l, err)
        if st then st.drop = nil end
        tried(l, err)
      end, guard)
    end
    tried(stores.locked(s.lock(0, life)))
  end
  try = (guard or no_guard)(attempt)
  attempt()
end

--- Stores the tokens of a login (flow's `f.tokens`, `passwordless_login`'s result, an MFA
-- grant's result), replacing what was stored. The ID token, when present, is verified
-- first (fetching the JWKS if needed) and its claims kept for `user()`. It waits for this manager's
-- refresh or callback-form clear in progress (and calls queued behind them), and refreshes or clears
-- asked while a callback-form save is unfinished wait for it: the new login is what stays stored.
-- @tparam table tokens with `access_token`, `expires_in`, and usually `refresh_token`, `id_token`
-- @param[opt] cb callback(true | nil, err)
-- @return true or nil, err (`invalid_id_token`, a network error, a store error)
-- @raise when tokens has no access_token
function Manager:save(tokens, cb)
  if type(tokens) ~= "table" or type(tokens.access_token) ~= "string" then raise("tokens must have an access_token") end
  if cb ~= nil and type(cb) ~= "function" then raise("callback must be a function") end
  if cb then check_open(self, 2) end
  local client = self._client
  if self._flight or self._clearing or self._queued[1] then   -- our refresh, a clear, a call queued: theirs first
    if cb then
      self._queued[#self._queued + 1] = function(err)
        if err then return cb(nil, err) end
        self:save(tokens, cb)
      end
      return true
    end
  end
  if not cb then   -- and the callback-form saves asked before: they write first too
    wait_own(self, nil, 2)
  end
  local guard, turn
  if cb then   -- until it ends, refreshes and clears asked after it wait (they would write first)
    self._saving = self._saving + 1
    local user_cb, over = cb, false
    local function ended(err)
      if over then return end
      over = true
      self._saving = self._saving - 1
      run_queued(self, err)
    end
    cb = function(ok, err) ended(err); return user_cb(ok, err) end
    guard = function(g)   -- a raise on the way ends it too
      return function(...)
        local ok, msg = pcall(g, ...)
        if not ok then ended(); turn(); error(msg, 0) end
      end
    end
  end
  local function verified(claims, err)
    if err then return deliver(cb, nil, err) end
    if cb then store_new_cb(self, build(self, tokens, claims), "saved", cb, guard); return true end
    return store_new(self, build(self, tokens, claims), "saved")
  end
  if cb then verified, turn = in_order(self, verified, guard) end   -- the callback forms land in the order asked
  local function verify_now() return verify_sync(self, tokens.id_token) end
  if not cb then
    if type(tokens.id_token) ~= "string" then return verified(nil) end
    return verified(verify_now())
  end
  guard(function()
    if type(tokens.id_token) ~= "string" then return verified(nil) end
    client:jwks(guard(function(_, err)
      if err then return verified(nil, err) end
      verify_cb(self, tokens.id_token, verified, guard, true)
    end))
  end)()
  return true
end

-- ------------------------------------------------------------------------------------
-- Reading

--- True when an access token with at least `min_ttl` seconds left, or a refresh token, is
-- stored. Reads the store (no network).
-- @tparam[opt] number min_ttl seconds (default: the manager's)
-- @treturn boolean
function Manager:has_valid(min_ttl)
  min_ttl = min_ttl == nil and self._min_ttl or check_ttl(min_ttl, "min_ttl", 2)
  local d = self:_current()
  if not d then return false end
  return d.refresh_token ~= nil or fresh(d, self._now(), min_ttl)
end

--- The stored ID token's claims (verified when it was saved or renewed).
-- @treturn table|nil the claims
function Manager:user()
  local d = self:_current()
  return d and copy(d.user) or nil
end

verify_cb, in_order, verify_sync = require("auth0.credentials.renew")(Manager, {
  raise = raise, check_ttl = check_ttl, api_key = api_key, entry_of = entry_of, fresh = fresh, view = view,
  deliver = deliver, changed = changed, login_required = login_required, entry_from = entry_from,
  store_new = store_new, store_new_cb = store_new_cb, store_clear_cb = store_clear_cb, lock_cb = lock_cb, async_store = async_store,
  later = later, load_cb = load_cb, hold = hold, new_error = new_error, xpcall = xpcall, pcall = pcall, traceback = traceback, copy = copy,
  finish_jobs = finish_jobs, flush_unsaved = flush_unsaved, check_open = check_open, run_queued = run_queued,
  wait_own = wait_own,
})

return _M
