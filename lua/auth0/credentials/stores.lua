--- Credential stores for `auth0.credentials`: where the tokens live between runs.
-- A store is any table with `load() -> data | nil, err` (nil, nil when empty),
-- `save(data) -> true | nil, err` and `clear() -> true | nil, err`; optionally
-- `lock(wait) -> handle | nil, err` and `unlock(handle)` so that several processes
-- (or nginx workers) sharing it refresh one at a time, and `kind` (a name for tostring).
-- A store whose disk work should stay off the caller's thread also has `save_async(data)`
-- and `clear_async()`, each returning a function `poll()` that returns false while the work
-- goes on, then `true, result, err` (result as save/clear would return it); optionally
-- `load_async()` and `lock_async()` (the same, with load's and lock(0)'s results), `busy()`
-- (true while a job is unfinished: reads wait for it), `wait()` (blocks until the jobs end:
-- client:close() of a call with a write in flight) and `lock_wait` (seconds: the manager's
-- callback forms try the lock again on a timer until then).
-- @module auth0.credentials.stores
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local core = require "auth0.core"
local errors = require "auth0.error"
local cjson = require("cjson.safe").new()

local type, pairs, tostring, setmetatable, error = type, pairs, tostring, setmetatable, error
local new_error = errors.new

local _M = {}

local function raise(msg) error("auth0.credentials: " .. msg, 3) end

-- Store errors name the file, never its content.
local function store_error(code, message)
  if code == "insecure_store" then return new_error("insecure_store", message) end
  if code == "busy" then return new_error("store_busy", message) end
  return new_error("store_error", message, { store_status = code })
end

local function copy(t)
  if type(t) ~= "table" then return t end
  local o = {}
  for k, v in pairs(t) do o[k] = copy(v) end
  return o
end

-- ------------------------------------------------------------------------------------
-- Memory

--- A store in this Lua state only (lost when the process ends): for tests and for apps
-- that keep their own persistence.
-- @treturn table store
function _M.memory_store()
  local data
  return {
    kind = "memory",
    load = function() return copy(data) end,
    save = function(d) data = copy(d); return true end,
    clear = function() data = nil; return true end,
  }
end

-- ------------------------------------------------------------------------------------
-- File

local function check_key(key, name)
  if type(key) ~= "string" or #key ~= 32 then raise(name .. " must be a string of 32 bytes") end
end

--- The default file: `$XDG_STATE_HOME/<app>/credentials` (XDG_STATE_HOME defaults to
-- `~/.local/state`).
-- @tparam string app
-- @treturn string|nil the path, nil when HOME is unset too
function _M.default_path(app)
  local base = os.getenv("XDG_STATE_HOME")
  if not base or base == "" then
    local home = os.getenv("HOME")
    if not home or home == "" then return nil end
    base = home .. "/.local/state"
  end
  return base .. "/" .. app .. "/credentials"
end

local FILE_OPTS = { path = true, app = true, key = true, key_id = true, old_keys = true, lock_wait = true }

--- A private file, replaced atomically on every save (temporary file, fsync, rename).
-- The directory is created 0700 and the file 0600; a file accessible to group or others,
-- owned by another user or a symbolic link is refused with `insecure_store`. With `key`
-- the file is AES-256-GCM sealed (format version, key id and nonce in its header); a
-- truncated, corrupted or tampered file is `store_corrupt`.
-- @tparam table opts `path` (default `default_path(app)`), `app` ("lua-auth0"),
--   `key` (32 bytes, optional), `key_id` (string up to 64 bytes, default "1"),
--   `old_keys` ({[key_id] = key} still accepted when reading, for key rotation),
--   `lock_wait` (seconds to wait for another process's refresh, default 30)
-- @return store
-- @raise on a wrong option
function _M.file_store(opts)
  opts = opts or {}
  if type(opts) ~= "table" then raise("file_store expects a table") end
  for k in pairs(opts) do if not FILE_OPTS[k] then raise("unknown option " .. tostring(k)) end end
  local app = opts.app or "lua-auth0"
  if type(app) ~= "string" or app == "" or app:find("/", 1, true) then raise("app must be a name without /") end
  local path = opts.path or _M.default_path(app)
  if type(path) ~= "string" or path == "" then raise("path is required (HOME and XDG_STATE_HOME are unset)") end
  local key, key_id = opts.key, opts.key_id or "1"
  local keys
  if key ~= nil then
    check_key(key, "key")
    if type(key_id) ~= "string" or #key_id > 64 then raise("key_id must be a string of at most 64 bytes") end
    keys = { [key_id] = key }
    if opts.old_keys ~= nil then
      if type(opts.old_keys) ~= "table" then raise("old_keys must be a table") end
      for id, k in pairs(opts.old_keys) do
        if type(id) ~= "string" then raise("old_keys must map key ids to keys") end
        check_key(k, "old_keys[" .. id .. "]")
        if keys[id] == nil then keys[id] = k end
      end
    end
  elseif opts.old_keys ~= nil then
    raise("old_keys needs key")
  end
  local wait = opts.lock_wait or 30
  if type(wait) ~= "number" or not (wait >= 0 and wait <= 3600) then raise("lock_wait must be seconds in 0..3600") end

  local store = { kind = key and "encrypted file" or "file", path = path }
  -- The file's bytes (store_read's answer) as credentials.
  local function decode(raw, code, msg)
    if not raw then
      if code == "not_found" then return nil end
      return nil, store_error(code, msg)
    end
    if keys then
      if raw:sub(1, 3) ~= "A0S" then
        return nil, new_error("store_corrupt", path .. " is not an encrypted credentials file")
      end
      local plain, why = core.open(keys, raw)
      if not plain then return nil, new_error("store_corrupt", path .. ": " .. why) end
      raw = plain
    elseif raw:sub(1, 3) == "A0S" then
      return nil, new_error("store_corrupt", path .. " is encrypted: give file_store its key")
    end
    local data = cjson.decode(raw)
    if type(data) ~= "table" or data.v ~= 1 then return nil, new_error("store_corrupt", path .. " is not a credentials file") end
    return data
  end
  local function text_of(data)
    local text = assert(cjson.encode(data))
    if keys then text = core.seal(key, key_id, text) end
    return text
  end
  -- The store's jobs run on one thread of its own (made at the first one), one after the
  -- other in the order they were asked for: a later save is never overtaken by an earlier
  -- one's rename, and a read sees every write asked for before it. `last` is the newest job.
  local worker, last
  local function the_worker()
    if not worker then
      local w, code, msg = core.store_worker()
      if not w then return nil, code, msg end
      worker = w
    end
    return worker
  end
  local function start(method, ...)
    local w, code, msg = the_worker()
    if not w then return nil, code, msg end
    return w[method](w, ...)
  end
  --- Starts the store's thread now (a game's loading screen) rather than at the first job
  -- (a frame): starting a thread costs a tenth of a millisecond or more.
  -- @return true, or nil, err
  function store.prepare()
    local w, code, msg = the_worker()
    if not w then return nil, store_error(code, msg) end
    return true
  end
  -- Takes the job's result into op.res once it is there (block: waits for it).
  local function advance(op, block)
    if op.res then return true end
    if block then op.job:wait() end
    local r = { op.job:result() }
    if r[1] == nil and r[2] == nil then return false end   -- nothing: still running
    op.job = nil
    op.res = r
    op.prev = nil   -- the jobs before it ended too (in order)
    if last == op then last = nil end
    return true
  end
  -- A job and the poll function of the protocol; `finish(r1, r2, r3)` turns the job's result
  -- into what the blocking method returns.
  -- Also returns a function dropping the job (its result no longer wanted: a lock it takes
  -- is released at once).
  local function queue(finish, method, ...)
    local job, code, msg = start(method, ...)
    local op = { job = job, res = not job and { nil, code, msg } or nil }
    if job then   -- op.prev: the job before it while unfinished (a dropped op's wait goes there)
      op.prev = last ~= nil and not advance(last, false) and last or nil
      last = op
    end
    return function()
      if not advance(op, false) then return false end
      return true, finish(op.res[1], op.res[2], op.res[3])
    end, function()
      if op.job then op.job:release(); op.job = nil; op.res = { nil, "io", "dropped" }; op.dropped = true end
      -- the newest job to wait for is then the newest one before it not dropped: a dropped job
      -- can no longer be waited for, and the writes queued before it are still running
      if last == op then
        local p = op.prev
        while p and p.dropped do p = p.prev end
        last = p
      end
    end
  end
  local function done(ok, code, msg)
    if not ok then return nil, store_error(code, msg) end
    return true
  end
  -- The blocking forms first let the jobs asked for before them end.
  local function drain() if last then advance(last, true) end end
  function store.load()
    drain()
    return decode(core.store_read(path))
  end
  function store.save(data)
    local text = text_of(data)
    drain()
    return done(core.store_write(path, text))
  end
  function store.clear()
    drain()
    return done(core.store_remove(path))
  end
  --- The save on the store's thread: see the module comment.
  function store.save_async(data) return queue(done, "write", path, text_of(data)) end
  --- The removal on the store's thread.
  function store.clear_async() return queue(done, "remove", path) end
  --- The read on the store's thread (after the jobs asked for before it); decoded when polled.
  function store.load_async() return queue(decode, "read", path) end
  --- One try of the lock on the store's thread (the manager tries again on a timer until
  -- lock_wait: the thread never waits, so the jobs behind it do not either). Returns the poll
  -- function and a function dropping the try (a lock it takes is then released).
  function store.lock_async()
    return queue(function(l, code, msg)
      if not l then return nil, store_error(code, msg) end
      return l
    end, "lock", path .. ".lock", 0)
  end
  --- True while a job asked for is not finished (the manager's callback forms read after it).
  function store.busy() return last ~= nil and not advance(last, false) end
  --- Blocks until the jobs asked for so far have ended (a cancelled call's write: its lock is
  -- released only once the file holds what it wrote).
  function store.wait() drain() end
  store.lock_wait = wait
  function store.lock(w)
    local l, code, msg = core.store_lock(path .. ".lock", w or wait)
    if not l then return nil, store_error(code, msg) end
    return l
  end
  function store.unlock(l) l:unlock() end
  return store
end

-- ------------------------------------------------------------------------------------
-- ngx.shared (OpenResty)

local NGX_OPTS = { dict = true, key = true, seal_key = true, key_id = true, lock_ttl = true }

--- Tokens in an `ngx.shared` dictionary, shared by every nginx worker; the refresh lock is
-- an `add` of `<key>:lock` with a TTL, polled with `ngx.sleep`.
-- @tparam table opts `dict` (name of a `lua_shared_dict`), `key` (e.g. "user:" .. id),
--   `seal_key`/`key_id` (optional 32-byte key: values sealed with AES-256-GCM),
--   `lock_ttl` (seconds a crashed worker's lock lasts, default 30; a refresh holds it as long
--   as its client's calls can last when that is longer: `lock(wait, hold)`)
-- @return store
function _M.ngx_store(opts)
  local ngx = rawget(_G, "ngx")
  if type(opts) ~= "table" then raise("ngx_store expects a table") end
  if not ngx or not ngx.shared then raise("ngx_store needs OpenResty (ngx.shared)") end
  for o in pairs(opts) do if not NGX_OPTS[o] then raise("unknown option " .. tostring(o)) end end
  local dict = type(opts.dict) == "string" and ngx.shared[opts.dict]
  if not dict then raise("dict must name a lua_shared_dict") end
  if type(opts.key) ~= "string" or opts.key == "" then raise("key is required") end
  if opts.seal_key ~= nil then check_key(opts.seal_key, "seal_key") end
  local k, skey, kid, ttl = opts.key, opts.seal_key, opts.key_id or "1", opts.lock_ttl or 30
  if type(kid) ~= "string" or #kid > 64 then raise("key_id must be a string of at most 64 bytes") end
  -- a NaN wait never reaches its deadline: the lock loop would spin for ever
  if type(ttl) ~= "number" or not (ttl > 0 and ttl <= 3600) then raise("lock_ttl must be seconds in (0, 3600]") end
  local store = { kind = "ngx.shared" }
  function store.load()
    local raw = dict:get(k)
    if raw == nil then return nil end
    if skey then
      local plain, why = core.open(skey, raw)
      if not plain then return nil, new_error("store_corrupt", "ngx.shared " .. opts.dict .. ": " .. why) end
      raw = plain
    end
    local data = cjson.decode(raw)
    if type(data) ~= "table" or data.v ~= 1 then return nil, new_error("store_corrupt", "not a credentials value") end
    return data
  end
  function store.save(data)
    local text = assert(cjson.encode(data))
    if skey then text = core.seal(skey, kid, text) end
    local ok, err = dict:set(k, text)
    if not ok then return nil, new_error("store_error", "ngx.shared set failed: " .. tostring(err)) end
    return true
  end
  function store.clear() dict:delete(k); return true end
  local lk = k .. ":lock"
  -- The lock's life: lock_ttl, or the holder's longest refresh when longer (the manager says
  -- how long: a lock expiring mid-refresh lets another worker present the same refresh token,
  -- and rotation's reuse detection then revokes the session).
  local function life(hold, n)
    if hold ~= nil and (type(hold) ~= "number" or not (hold > 0 and hold <= 3600)) then
      error("bad argument #" .. n .. " (hold must be seconds in (0, 3600])", 3)
    end
    return (hold and hold > ttl) and hold or ttl
  end
  --- Takes the refresh lock, waiting up to `wait` seconds (default: the lock's life) for
  -- another worker's; it lasts `hold` seconds (default and minimum lock_ttl).
  -- @return the owner mark, or nil, err (`store_busy` when still held after the wait)
  function store.lock(wait, hold)
    if wait ~= nil and (type(wait) ~= "number" or not (wait >= 0 and wait <= 3600)) then
      error("bad argument #1 to 'lock' (wait must be seconds in 0..3600)", 2)   -- NaN: never a deadline
    end
    local span = life(hold, 2)
    local deadline = ngx.now() + (wait or span)
    -- an owner mark: a worker whose lock expired must not release the one taken since
    local mark = core.b64url_encode(core.random_bytes(12))
    while true do
      local ok, err = dict:add(lk, mark, span)
      if ok then return mark end
      if err ~= "exists" then return nil, new_error("store_error", "ngx.shared lock failed: " .. tostring(err)) end
      if ngx.now() >= deadline then return nil, new_error("store_busy", "another worker holds the refresh lock") end
      ngx.sleep(0.005)
    end
  end
  -- ngx.shared has no compare-and-set: the TTL is read first, and a lock with a second left
  -- (half a shorter lock_ttl) cannot expire (nor be taken by another worker) before the next
  -- call, as none of these yields; one about to expire counts as lost.
  local margin = math.min(1, ttl / 2)
  local function mine(mark)
    if dict.ttl then   -- (lua-resty-core's; a dict without it: the read alone, as before)
      local left = dict:ttl(lk)
      if left == nil or (left ~= 0 and left < margin) then return false end
    end
    return dict:get(lk) == mark
  end
  function store.unlock(mark)
    if mine(mark) then dict:delete(lk) end   -- else it expires on its own (or is another's)
  end
  --- True while `mark` still holds the lock, which then lasts `hold` seconds more (at least
  -- lock_ttl); false once it expired, is about to, or was taken (the holder must not write then unchecked).
  function store.holds(mark, hold)
    local span = life(hold, 2)
    if not mine(mark) then return false end
    dict:set(lk, mark, span)
    return true
  end
  return store
end

--- Seconds a refresh by `client` can hold the store's lock: the refresh call and a JWKS fetch,
-- each at most the client's timeout (retries included), and the store's work.
-- @tparam table client an auth0.Client
-- @treturn number
function _M.lock_hold(client)
  local cfg = type(client) == "table" and rawget(client, "_cfg")
  local timeout = type(cfg) == "table" and cfg.timeout
  -- a duck-typed client's NaN, negative or infinite timeout: the default (never a NaN hold)
  if type(timeout) ~= "number" or not (timeout > 0 and timeout < math.huge) then timeout = 10 end
  return math.min(2 * timeout + 5, 3600)
end

--- A custom store's lock(...) answer as the manager takes it: the lock, or nil and an error
-- (one answering neither, e.g. `false` alone, is a `store_error`: never nil, nil to the caller).
-- @return the lock, or nil, err
function _M.locked(l, err, ...)
  if l or err ~= nil then return l, err, ... end
  return nil, new_error("store_error", "the store's lock answered neither a lock nor an error")
end

--- After a refresh that started from `d` under the lock `l`: nil while `l` still holds the
-- lock (extended by `hold`), or when the store still holds `d`'s refresh token; else the newer
-- session another holder stored since, or true when another holder emptied the store (a
-- logout, a refused token), which the refresh's answer must not overwrite.
-- @return table|true|nil
function _M.superseded(store, l, d, hold)
  if type(store.holds) ~= "function" or l == nil or l == true or store.holds(l, hold) then return nil end
  if type(d) ~= "table" then return nil end
  local cur, err = store.load()
  if cur == nil and err == nil then return true end   -- emptied: writing would undo a logout
  if type(cur) == "table" and cur.refresh_token ~= d.refresh_token then return cur end
  return nil
end

--- Whose sessions a manager of `client` keeps: the tenant's issuer and the application's client
-- id (never a secret), recorded in every session it saves; nil for a client without them (a
-- duck-typed one), whose manager records and checks nothing. A table standing in for a client
-- (a proxy whose __index is one) is read as that client.
-- @tparam table client an auth0.Client
-- @treturn table|nil `{issuer, client_id}`
function _M.owner(client)
  local cfg = type(client) == "table" and client._cfg
  if type(cfg) ~= "table" or type(cfg.issuer) ~= "string" or type(cfg.client_id) ~= "string" then return nil end
  return { issuer = cfg.issuer, client_id = cfg.client_id }
end

--- `d` (a session about to be saved) marked as `owner`'s. @return d
function _M.stamp(owner, d)
  if owner then d.issuer, d.client_id = owner.issuer, owner.client_id end
  return d
end

-- The ID token's claims name client_id as verify_id_token requires: the audience (a string or a
-- list), and the authorized party when the list has several.
local function names(u, client_id)
  local aud = u.aud
  if type(aud) == "string" then return aud == client_id end
  if type(aud) ~= "table" or (#aud > 1 and u.azp ~= client_id) then return false end
  for _, a in ipairs(aud) do if a == client_id then return true end end
  return false
end

--- nil when `owner`'s manager may use the stored session `d`, else the `store_mismatch` error:
-- a session recorded for another tenant (issuer, host compared without case) or another client
-- id. One saved before sessions were recorded (neither field) is judged by the verified ID
-- token claims it keeps (`user`: `iss`, `aud`) when it has them, else accepted; its next save
-- (a renewal) records it. Nothing from the store goes into the error's text.
-- @return nil | err
function _M.foreign(owner, d)
  if not owner or type(d) ~= "table" then return nil end
  local iss, id, u = d.issuer, d.client_id, d.user
  if iss == nil and id == nil then   -- unrecorded: the claims say whose it was, if anything does
    if type(u) ~= "table" or (u.iss == nil and u.aud == nil) then return nil end
    iss, id = u.iss, names(u, owner.client_id) and owner.client_id or nil
  end
  if type(iss) == "string" and iss:lower() == owner.issuer:lower() and id == owner.client_id then return nil end
  return new_error("store_mismatch", "the store holds another tenant's or application's session, not one of "
    .. owner.issuer .. " with client " .. owner.client_id .. " (left as it is: use one store per tenant and client)")
end

_M.copy = copy
return setmetatable(_M, { __name = "auth0.credentials.stores" })
