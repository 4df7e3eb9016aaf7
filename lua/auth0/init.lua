--- lua-auth0: the Auth0 Authentication API for embedded (non-browser) login.
-- Every network method blocks and returns `result` or `nil, err`; given a trailing
-- callback `function(result, err)` it returns at once a request object instead and the
-- callback runs later from `client:poll(ms)`.
local core = require "auth0.core"
local errors = require "auth0.error"
local cjson = require("cjson.safe").new()

local type, pairs, ipairs, tostring, tonumber, setmetatable, error, pcall, xpcall, select =
  type, pairs, ipairs, tostring, tonumber, setmetatable, error, pcall, xpcall, select
local traceback = debug.traceback
local function nop() end
local time, now, sleep = os.time, core.now, core.sleep
local new_error, from_response = errors.new, errors.from_response

local unpack = table.unpack or unpack -- luacheck: ignore 113 143

local _M = { _VERSION = core.version, error = errors, core = core }

local Client = { __name = "auth0.Client" }
Client.__index = Client
_M.Client = Client

-- Misuse raises, naming the argument, at the caller of the public method.
local function raise(msg, level) error("auth0: " .. msg, (level or 2) + 1) end

local function has_ctl(s) return s:find("[%z\r\n]") ~= nil end

local MAX_VALUE = 65536   -- the C core's per-field cap; checked here to name the parameter

local function check_string(v, name, level, optional)
  if v == nil and optional then return nil end
  level = (level or 2) + 1
  if type(v) ~= "string" then raise(name .. " must be a string, got " .. type(v), level) end
  if v == "" then raise(name .. " must not be empty", level) end
  if #v > MAX_VALUE then raise(name .. " is longer than " .. MAX_VALUE .. " bytes", level) end
  if v:find("%z") then raise(name .. " contains a NUL byte", level) end
  if not core.utf8_valid(v) then raise(name .. " is not valid UTF-8", level) end
  return v
end

-- A user's value in a message: short values only, never a long or binary one.
local function show(v)
  if type(v) ~= "string" then return type(v) end
  if #v > 32 or v:find("[%c\128-\255]") then return "a " .. #v .. "-byte string" end
  return ("%q"):format(v)
end

local LOOPBACK = { ["127.0.0.1"] = true, ["localhost"] = true, ["[::1]"] = true }

-- Returns base_url without a trailing slash and the host, or raises.
local function parse_base(opts)
  local url
  if opts.base_url ~= nil then
    url = check_string(opts.base_url, "base_url", 4)
  elseif opts.domain ~= nil then
    local d = check_string(opts.domain, "domain", 4)
    if d:find("[/:@%s]") and not d:find("^[%w%.%-]+:%d+$") then raise("domain must be a host name, got a URL", 4) end
    url = "https://" .. d
  else
    raise("domain or base_url is required", 4)
  end
  url = url:gsub("/+$", "")
  local scheme, hostport = url:match("^(https?)://([^/?#]+)$")
  if not scheme then raise("base_url must be scheme://host[:port] with no path, query or user info", 4) end
  if hostport:find("@", 1, true) then raise("base_url must not carry user:password@", 4) end
  local host = hostport:match("^(%[[^%]]+%])") or hostport:match("^([^:]+)")
  local port = hostport:match(":(%d+)$")
  if hostport:find(":", #host + 1, true) and not port then raise("base_url has an invalid port", 4) end
  if port and (tonumber(port) < 1 or tonumber(port) > 65535) then raise("base_url has an invalid port", 4) end
  if scheme == "http" and not LOOPBACK[host:lower()] then
    raise("http:// is only allowed for loopback hosts (127.0.0.1, localhost, [::1])", 4)
  end
  if has_ctl(url) then raise("base_url contains control characters", 4) end
  return url, host
end

local function check_seconds(v, name, default)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v <= 0 or v > 86400 then
    raise(name .. " must be a number of seconds in (0, 86400]", 4)
  end
  return v
end

local HEADER_FIELDS = {
  ["retry-after"] = "retry_after", ["x-ratelimit-limit"] = "ratelimit_limit",
  ["x-ratelimit-remaining"] = "ratelimit_remaining", ["x-ratelimit-reset"] = "ratelimit_reset",
  ["x-auth0-requestid"] = "request_id", ["content-type"] = "content_type", ["location"] = "location",
}

local function lua_env()
  if type(jit) == "table" then return { luajit = jit.version } end -- luacheck: ignore 113
  return { lua = _VERSION:match("%d+%.%d+") }
end

local VALID_OPTS = {
  domain = true, base_url = true, client_id = true, client_secret = true, audience = true, scope = true,
  timeout = true, connect_timeout = true, ca_file = true, language = true, telemetry = true,
  on_log = true, on_callback_error = true, transport = true, insecure_skip_verify = true,
  retries = true, max_retry_wait = true, sleep = true,
  -- the "ngx" transport's own options (see lua/auth0/transport/ngx.lua)
  pool_size = true, keepalive_timeout = true, server_name = true, pool = true,
  poll_budget_ms = true, io_thread = true,
}

-- With a poll budget, new transfers are started a few per poll, after the callbacks: a
-- burst of them in one frame is what makes a frame slow. Without io_thread libcurl spends
-- about this much sending one, in the next poll; with it, the cost of one start (handing it
-- to the I/O thread) is learned as a decaying maximum, starting from this.
local START_COST_MS = 0.1

--- Creates a client.
-- @tparam table opts `domain` or `base_url`, `client_id` (required), `client_secret`,
-- `audience`, `scope` (default "openid profile email"), `timeout` (10 s), `connect_timeout`
-- (5 s), `ca_file`, `language`, `telemetry` (true), `on_log(level, message, fields)`,
-- `on_callback_error(msg)`, `transport` (function or "ngx"), `retries` (2),
-- `max_retry_wait` (10 s), `insecure_skip_verify` (loopback tests only; logs a warning),
-- `poll_budget_ms`, `io_thread` (libcurl on a thread of the client's own; README "Frame budget");
-- with the "ngx" transport also `pool_size` (64), `keepalive_timeout` (60 s), `server_name`, `pool`.
-- @return the client; raises on misuse
function _M.new(opts)
  if type(opts) ~= "table" then raise("new expects an options table, got " .. type(opts)) end
  for k in pairs(opts) do
    if not VALID_OPTS[k] then raise("unknown option " .. show(k)) end
  end
  local base_url, host = parse_base(opts)
  local cfg = {
    base_url = base_url, host = host, issuer = base_url .. "/",
    client_id = check_string(opts.client_id, "client_id", 2),
    client_secret = check_string(opts.client_secret, "client_secret", 2, true),
    audience = check_string(opts.audience, "audience", 2, true),
    scope = check_string(opts.scope, "scope", 2, true) or "openid profile email",
    language = check_string(opts.language, "language", 2, true),
    timeout = check_seconds(opts.timeout, "timeout", 10),
    connect_timeout = check_seconds(opts.connect_timeout, "connect_timeout", 5),
    ca_file = check_string(opts.ca_file, "ca_file", 2, true),
    retries = opts.retries == nil and 2 or opts.retries,
    max_retry_wait = check_seconds(opts.max_retry_wait, "max_retry_wait", 10),
    poll_budget = opts.poll_budget_ms,
    io_thread = opts.io_thread,
  }
  if cfg.io_thread ~= nil and type(cfg.io_thread) ~= "boolean" then raise("io_thread must be a boolean") end
  if cfg.poll_budget ~= nil and (type(cfg.poll_budget) ~= "number" or not (cfg.poll_budget > 0 and cfg.poll_budget <= 1000)) then
    raise("poll_budget_ms must be a number of milliseconds in (0, 1000]")
  end
  if type(cfg.retries) ~= "number" or cfg.retries < 0 or cfg.retries > 10 or cfg.retries % 1 ~= 0 then
    raise("retries must be an integer in 0..10")
  end
  if cfg.language and has_ctl(cfg.language) then raise("language contains CR, LF or NUL") end
  for _, f in ipairs({ "on_log", "on_callback_error", "sleep" }) do
    if opts[f] ~= nil and type(opts[f]) ~= "function" then raise(f .. " must be a function") end
  end
  local self = setmetatable({ _cfg = cfg, _on_log = opts.on_log, _queue = {}, _timers = {},
    _deferred = {}, _dhead = 1, _dtail = 0, _start_cost = START_COST_MS,
    _sleep = opts.sleep or sleep, _own_sleep = opts.sleep ~= nil }, Client)
  local headers = { "Accept: application/json", "Expect:",
    "User-Agent: lua-auth0/" .. core.version }
  if opts.telemetry ~= false then
    local info = cjson.encode({ name = "lua-auth0", version = core.version, env = lua_env() })
    headers[#headers + 1] = "Auth0-Client: " .. core.b64_encode(info)
  end
  local transport = opts.transport
  if transport == nil and type(ngx) == "table" and ngx.get_phase then -- luacheck: ignore 113
    transport = "ngx"   -- inside nginx: never block a worker with libcurl
  end
  if transport == "ngx" then
    transport = require("auth0.transport.ngx").new(cfg, opts)
    if not opts.sleep then self._sleep = ngx.sleep end -- luacheck: ignore 113
    if cfg.ca_file then
      self:_log("warn", "ca_file is ignored by the ngx transport: nginx's lua_ssl_trusted_certificate is the trust store")
    end
  elseif transport ~= nil and type(transport) ~= "function" then
    raise("transport must be a function or \"ngx\"")
  end
  self._transport = transport
  local on_cb_error = opts.on_callback_error or function(msg)
    self:_log("warn", "error in a callback", { error = msg })
  end
  self._core = core.client {
    base_url = base_url, timeout = cfg.timeout, connect_timeout = cfg.connect_timeout,
    ca_file = cfg.ca_file, insecure = opts.insecure_skip_verify == true, headers = headers,
    on_callback_error = on_cb_error, threaded = cfg.io_thread == true and transport == nil,
  }
  self._on_cb_error = on_cb_error
  if opts.insecure_skip_verify then
    self._insecure = true
    if not LOOPBACK[host:lower()] then raise("insecure_skip_verify is only allowed for loopback hosts") end
  end
  return self
end

function Client:__tostring()
  if self._closed then return "auth0.Client (closed)" end
  return "auth0.Client (" .. self._cfg.base_url .. ")"
end

function Client:_log(level, message, fields)
  local fn = self._on_log
  if fn then pcall(fn, level, message, fields or {}) end
end
-- Hot paths test self._on_log first so that no fields table is built when nobody listens.

-- Endpoint classes for the retry policy (README, "Retries"): reads may be retried on
-- 429/503; everything may be retried when the connection failed before sending.
local READS = { userinfo = true, mfa_authenticators = true, jwks = true, openid_configuration = true }
local NOT_SENT = { couldnt_connect = true, couldnt_resolve = true }

-- Turns the core's answer into (value) or (nil, err). `shape` validates/decorates a
-- decoded 2xx body and returns the value.
local function finish(self, ep, shape, status, body, hdrs)
  if status == nil then
    -- body, hdrs are the core's code and message here
    local context = (NOT_SENT[body] or body == "tls" or body == "timeout") and "could not reach " or "bad answer from "
    local e = new_error(body, hdrs, { context = context .. self._cfg.host })
    self:_log("info", "request failed", { endpoint = ep, code = e.code })
    return nil, e
  end
  if self._on_log then
    self:_log("debug", "response", { endpoint = ep, status = status, request_id = hdrs and hdrs.request_id })
  end
  if status >= 200 and status < 300 then
    local decoded
    if body == "" or body:find("^%s*$") then
      decoded = true
    else
      decoded = cjson.decode(body)
      if decoded == nil then
        return nil, errors.add_headers(new_error("bad_response", "the server sent invalid JSON",
          { status = status, context = ep }), hdrs)
      end
      -- old servers answer authorization_pending with 200 (PROTOCOL.md 6.2, 13): an error body
      -- is an error whatever the status
      if type(decoded) == "table" and type(decoded.error) == "string" and decoded.access_token == nil then
        local e = from_response(status, body, hdrs, ep)
        if self._on_log then self:_log("info", "request failed", { endpoint = ep, status = status, code = e.code }) end
        return nil, e
      end
    end
    if shape then
      local v, msg = shape(decoded, self)
      if v == nil then
        return nil, errors.add_headers(new_error("bad_response", msg, { status = status, context = ep }), hdrs)
      end
      return v
    end
    return decoded
  end
  local e = from_response(status, body, hdrs, ep)
  self:_log("info", "request failed", { endpoint = ep, status = status, code = e.code, request_id = e.request_id })
  return nil, e
end

local function map_headers(h)
  local out = {}
  if type(h) == "table" then
    for k, v in pairs(h) do
      local f = type(k) == "string" and HEADER_FIELDS[k:lower()]
      if f then out[f] = type(v) == "table" and tostring(v[1]) or tostring(v) end
    end
  end
  return out
end

-- One round trip through the transport seam: (status, body, hdrs) | (nil, code, msg).
local function via_transport(self, ep, fields, opts)
  local req = self._core:build(ep, fields, opts)
  req.timeout = req.timeout or self._cfg.timeout
  local ok, resp, code, msg = pcall(self._transport, req)
  if not ok then return nil, "transport", "transport failed: " .. tostring(resp) end
  if resp == nil then return nil, code or "transport", msg or "transport failed" end
  if type(resp) ~= "table" or type(resp.status) ~= "number" then
    return nil, "bad_response", "transport returned no status"
  end
  return resp.status, type(resp.body) == "string" and resp.body or "", map_headers(resp.headers)
end

local function retry_wait(self, ep, attempt, status, code, hdrs)
  if attempt > self._cfg.retries then return nil end
  local retry = (status == nil and NOT_SENT[code]) or (READS[ep] and (status == 429 or status == 503))
  if not retry then return nil end
  local wait = status and errors.parse_retry_after(hdrs and hdrs.retry_after) or nil
  if not wait and status == 429 and hdrs and tonumber(hdrs.ratelimit_reset) then
    wait = tonumber(hdrs.ratelimit_reset) - time()
  end
  wait = wait or (0.1 * 2 ^ (attempt - 1))
  if wait < 0 then wait = 0 end
  if wait > self._cfg.max_retry_wait then return nil end -- caller decides: err.retry_after says when
  return wait + math.random() * 0.1
end

-- A retry only gets what is left of the call's timeout (1 ms at least: 0 means "default").
local function remaining(opts, deadline)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.timeout = math.max(deadline - now(), 0.001)
  return o
end

-- Performs one endpoint call, blocking (cb == nil) or not.
function Client:_call(ep, fields, opts, cb, shape)
  if self._closed then raise("attempt to use a closed auth0.Client", 3) end
  if cb ~= nil and type(cb) ~= "function" then raise("callback must be a function", 3) end
  if self._insecure then
    self:_log("warn", "TLS certificate verification is OFF (insecure_skip_verify)", { endpoint = ep })
  end
  if self._on_log then self:_log("debug", "request", { endpoint = ep }) end
  if cb == nil then
    local deadline = now() + ((opts and opts.timeout) or self._cfg.timeout)
    local attempt, o = 0, opts
    while true do
      attempt = attempt + 1
      if attempt > 1 then o = remaining(opts, deadline) end
      local status, body, hdrs
      if self._transport then status, body, hdrs = via_transport(self, ep, fields, o)
      else status, body, hdrs = self._core:request(ep, fields, o) end
      local wait = retry_wait(self, ep, attempt, status, body, hdrs)
      if not wait or now() + wait >= deadline then return finish(self, ep, shape, status, body, hdrs) end
      self:_log("info", "retrying", { endpoint = ep, attempt = attempt, wait = wait })
      self._sleep(wait)
    end
  end
  return self:_start(ep, fields, opts, cb, shape, 1)
end

-- A request finished through the transport seam or after a retry wait: a Lua object
-- with the same methods as auth0.Request.
local Pending = { __name = "auth0.Request" }
Pending.__index = Pending
function Pending:done() return self._done end
function Pending:cancel()
  if self._done then return false end
  self._done = true
  if self._inner then self._inner:cancel() end
  self._cancel()
  return true
end
Pending.__tostring = function(p) return "auth0.Request (" .. p._ep .. ", " .. (p._done and "done" or "in flight") .. ")" end

function Client:_deliver(cb, ...)
  local ok, msg = xpcall(cb, traceback, ...)
  if not ok then pcall(self._on_cb_error, msg) end
end

function Client:_start(ep, fields, opts, cb, shape, attempt)
  local p = setmetatable({ _ep = ep, _done = false }, Pending)
  local timer
  local deadline = now() + ((opts and opts.timeout) or self._cfg.timeout)
  -- the client was closed while this request was on the wire, queued or waiting to retry
  p._on_close = function()
    if p._done then return end
    p._done = true
    self:_deliver(cb, nil, new_error("cancelled", "client closed", { context = ep }))
  end
  local function settle(status, body, hdrs)
    if p._done then return end
    local wait = retry_wait(self, ep, attempt, status, body, hdrs)
    if wait and now() + wait < deadline then
      attempt = attempt + 1
      timer = self:_after(wait, function()
        p._inner = nil
        self:_launch(p, ep, fields, remaining(opts, deadline), settle)
      end)
      timer.on_close = p._on_close
      return
    end
    p._done = true
    self:_deliver(cb, finish(self, ep, shape, status, body, hdrs))
  end
  p._cancel = function()
    if timer then self:_cancel_timer(timer) end
    self:_deliver(cb, nil, new_error("cancelled", "request cancelled", { context = ep }))
  end
  self:_launch(p, ep, fields, opts, settle)
  return p
end

function Client:_launch(p, ep, fields, opts, settle)
  if self._transport then
    local status, body, hdrs = via_transport(self, ep, fields, opts)
    self._queue[#self._queue + 1] = function()
      if self._closed then p._on_close() else settle(status, body, hdrs) end
    end
  else
    local function start()
      if p._done then return end            -- cancelled while waiting for its turn
      if self._closed then return p._on_close() end
      p._inner = self._core:start(ep, fields, opts, function(status, body, hdrs)
        -- after Pending:cancel (which reports it) p is done; otherwise the client was closed
        if status == nil and body == "cancelled" then return p._on_close() end
        settle(status, body, hdrs)
      end)
    end
    if self._cfg.poll_budget then
      self._dtail = self._dtail + 1
      self._deferred[self._dtail] = start
    else
      start()
    end
  end
end

-- Starts up to `limit` deferred transfers, oldest first.
function Client:_launch_deferred(limit)
  local d = self._deferred
  while limit > 0 and self._dhead <= self._dtail do
    local fn = d[self._dhead]
    d[self._dhead] = nil
    self._dhead = self._dhead + 1
    local ok, err = xpcall(fn, traceback)
    if not ok then pcall(self._on_cb_error, err) end
    limit = limit - 1
  end
end

-- Timers for retries, push polling and flows; run from poll().
function Client:_after(seconds, fn)
  local t = { at = now() + seconds, fn = fn }
  local timers = self._timers
  timers[#timers + 1] = t
  return t
end

function Client:_cancel_timer(t)
  for i, v in ipairs(self._timers) do
    if v == t then table.remove(self._timers, i); return end
  end
end

--- Advances every request and runs the callbacks of those that finished.
-- `poll(0)` never blocks; `poll(ms)` waits up to ms for activity.
-- @return the number of requests and timers still pending, or `nil, err` (code `reentrant`)
function Client:poll(ms)
  if self._closed then raise("attempt to use a closed auth0.Client") end
  ms = ms or 0
  if type(ms) ~= "number" or not (ms >= 0) then raise("poll expects milliseconds >= 0") end -- luacheck: ignore 581 (NaN)
  ms = math.ceil(ms)   -- poll(16.6) from a frame timer: the C core counts whole milliseconds
  if self._polling then return nil, new_error("reentrant", "poll called from inside a callback") end
  local timers = self._timers
  if #timers > 0 or #self._queue > 0 then
    local soonest = math.huge
    for _, t in ipairs(timers) do if t.at < soonest then soonest = t.at end end
    if #self._queue > 0 then soonest = 0 end
    local cap = math.max(0, math.ceil((soonest - now()) * 1000))
    if cap < ms then ms = cap end
  end
  local budget = self._cfg.poll_budget
  local t_start = budget and now()
  if ms > 0 then self:_launch_deferred(math.huge) end   -- a script waiting: send everything now
  self._polling = true
  -- with io_thread, deferred starts run after the callbacks: keep room for one of them
  local threaded = self._cfg.io_thread
  local reserve = (threaded and self._dhead <= self._dtail) and self._start_cost or 0
  local left = budget and math.max(budget - reserve, 0.001)
  local ok, n, perr = pcall(self._core.poll, self._core, ms, left)
  if ok and n == 0 and ms > 0 and #timers > 0 and #self._queue == 0 then
    -- nothing on the wire: wait for the timer instead of spinning
    local wait = math.huge
    for _, t in ipairs(timers) do if t.at < wait then wait = t.at end end
    wait = math.min(wait - now(), ms / 1000)
    if wait > 0 then
      -- libcurl's engine waits so that wakeup() can end it; a transport or a sleep option
      -- of the caller's (ngx.sleep) is used as it is
      if self._transport or self._own_sleep then self._sleep(wait) else self._core:idle(math.ceil(wait * 1000)) end
    end
  end
  local queue = self._queue
  local ran = #queue > 0   -- queued results and timers may start new transfers
  if #queue > 0 then
    self._queue = {}
    for _, fn in ipairs(queue) do fn() end
  end
  if #timers > 0 then
    local t0, due, keep = now(), {}, {}
    for _, t in ipairs(timers) do
      if t.at <= t0 then due[#due + 1] = t else keep[#keep + 1] = t end
    end
    self._timers = keep
    ran = ran or #due > 0
    for _, t in ipairs(due) do
      -- a callback may have closed the client: the remaining timers are cancelled
      local tok, terr = xpcall(self._closed and (t.on_close or nop) or t.fn, traceback)
      if not tok then pcall(self._on_cb_error, terr) end
    end
  end
  if budget and not self._closed and self._dhead <= self._dtail then
    -- one per poll always (a slow machine must still make progress), more while they fit.
    -- With io_thread a start costs what it costs now (learned); without, libcurl sends it
    -- in the next poll for about START_COST_MS each, so a fixed number fits
    local cost = self._start_cost
    local n_max = threaded and math.huge or math.max(1, math.floor(budget / START_COST_MS))
    repeat
      local t1 = now()
      self:_launch_deferred(1)
      if threaded then
        local d = (now() - t1) * 1000
        cost = d > cost and d or cost + (d - cost) / 8
      end
      n_max = n_max - 1
    until n_max == 0 or self._dhead > self._dtail or (now() - t_start) * 1000 + (threaded and cost or 0) > budget
    self._start_cost = cost
    ran = true
  end
  self._polling = false
  if not ok then error(n, 0) end
  if n == nil then return nil, new_error(perr, "poll failed") end
  if self._closed then return 0 end
  if ran then n = self._core:stats().inflight end
  return n + #self._timers + #self._queue + (self._dtail - self._dhead + 1)
end

--- Number of requests and timers still pending.
function Client:pending()
  if self._closed then return 0 end
  return self._core:stats().inflight + #self._timers + #self._queue + (self._dtail - self._dhead + 1)
end

--- Interrupts a poll(ms) that is waiting (safe from another coroutine's callback).
function Client:wakeup() if not self._closed then self._core:wakeup() end end

--- Connection and request counters: { connects, requests, inflight }.
function Client:stats() return self._core:stats() end

--- Cancels everything in flight (each callback runs once with code "cancelled") and
-- releases the connections. Idempotent.
function Client:close()
  if self._closed then return end
  local timers, queue = self._timers, self._queue
  self._timers, self._queue = {}, {}
  self._closed = true
  self._core:close()
  for _, t in ipairs(timers) do if t.on_close then pcall(t.on_close) end end
  for _, fn in ipairs(queue) do pcall(fn) end
  self:_launch_deferred(math.huge)   -- each reports "cancelled": the client is closed
end
Client.__close = Client.close
Client.__gc = Client.close

---------------------------------------------------------------------------------------
-- Response shapes

local null = cjson.null

-- A server's JSON null means "absent" to a caller: nil, not a lightuserdata.
local function strip_nulls(t, depth)
  for k, v in pairs(t) do
    if v == null then t[k] = nil
    elseif type(v) == "table" and depth < 4 then strip_nulls(v, depth + 1) end
  end
  return t
end

local function tokens_shape(t)
  if type(t) ~= "table" or type(t.access_token) ~= "string" then
    return nil, "token response without an access_token"
  end
  strip_nulls(t, 1)
  local exp = tonumber(t.expires_in)
  if exp then
    exp = math.floor(exp)   -- cjson on 5.4 decodes 86400 as 86400.0
    t.expires_in = exp
    t.expires_at = time() + exp
  end
  return t
end

local function object_shape(t)
  if t == true then return {} end
  if type(t) ~= "table" or t[1] ~= nil then return nil, "expected a JSON object" end
  return strip_nulls(t, 1)
end

local function list_shape(t)
  if t == true then return {} end
  if type(t) ~= "table" or (next(t) ~= nil and t[1] == nil) then return nil, "expected a JSON array" end
  strip_nulls(t, 1)
  for i = 1, #t do
    local a = t[i]
    if type(a) ~= "table" then return nil, "authenticator entry is not an object" end
    -- old docs and some SDKs spell it oob_channels (string or array); normalize
    if a.oob_channel == nil and a.oob_channels ~= nil then
      a.oob_channel = type(a.oob_channels) == "table" and a.oob_channels[1] or a.oob_channels
    end
  end
  return t
end

local function true_shape() return true end

---------------------------------------------------------------------------------------
-- Passwordless

local SEND = { code = true, link = true, link_ios = true, link_android = true }
local PHONE = "^%+%d+$"

local function check_email(v, level)
  check_string(v, "email", level + 1)
  if #v > 254 or has_ctl(v) or v:find("%s") or not v:find("^[^@]+@[^@]+%.[^@%.]+$") then
    raise("email is malformed", level + 1)
  end
  return v
end

local function check_phone(v, level)
  check_string(v, "phone_number", level + 1)
  if not v:find(PHONE) or #v > 16 then raise("phone_number must match ^\\+[0-9]{1,15}$", level + 1) end
  return v
end

function Client:_client_fields(t)
  t.client_id = self._cfg.client_id
  t.client_secret = self._cfg.client_secret
  return t
end

--- Sends a one-time code or a magic link (POST /passwordless/start).
-- @tparam table p `connection` ("email", "sms" or a custom name), `email` or
-- `phone_number`, `send` ("code" default, "link", "link_ios", "link_android"),
-- `auth_params` (links only), `language` (x-request-language header)
-- @param cb optional callback(result, err)
-- @return the server's answer (e.g. `{_id=, email=, email_verified=}`) or nil, err
function Client:passwordless_start(p, cb)
  if type(p) ~= "table" then raise("passwordless_start expects a table") end
  local connection = check_string(p.connection, "connection", 2)
  if p.email ~= nil and p.phone_number ~= nil then raise("give either email or phone_number, not both") end
  if p.email == nil and p.phone_number == nil then raise("email or phone_number is required") end
  if connection == "email" and p.email == nil then raise("the email connection needs email") end
  if connection == "sms" and p.phone_number == nil then raise("the sms connection needs phone_number") end
  local email = p.email and check_email(p.email, 2)
  local phone = p.phone_number and check_phone(p.phone_number, 2)
  local send = p.send == nil and "code" or p.send
  if not SEND[send] then raise("send must be code, link, link_ios or link_android, got " .. show(send)) end
  if p.auth_params ~= nil then
    if type(p.auth_params) ~= "table" then raise("auth_params must be a table") end
    if send == "code" then raise("auth_params only applies to links (send = \"link\")") end
  end
  local language = check_string(p.language, "language", 2, true) or self._cfg.language
  if language and has_ctl(language) then raise("language contains CR, LF or NUL") end
  local fields = self:_client_fields { connection = connection, email = email, phone_number = phone,
    send = send, authParams = p.auth_params }
  return self:_call("passwordless_start", fields, language and { language = language }, cb, object_shape)
end

--- Exchanges the one-time code for tokens (passwordless OTP grant).
-- @tparam table p `realm` (connection), `username` (email or phone), `otp`, `audience`, `scope`
-- @return tokens `{access_token, id_token, refresh_token, token_type, expires_in, scope, expires_at}`
-- or nil, err (`err.code == "mfa_required"` carries `err.mfa_token`, `err.mfa_requirements`)
function Client:passwordless_login(p, cb)
  if type(p) ~= "table" then raise("passwordless_login expects a table") end
  local fields = self:_client_fields {
    realm = check_string(p.realm, "realm", 2),
    username = check_string(p.username, "username", 2),
    otp = check_string(p.otp, "otp", 2),
    audience = check_string(p.audience, "audience", 2, true) or self._cfg.audience,
    scope = check_string(p.scope, "scope", 2, true) or self._cfg.scope,
  }
  return self:_call("passwordless_login", fields, nil, cb, tokens_shape)
end

---------------------------------------------------------------------------------------
-- Tokens

--- Uses a refresh token (refresh_token grant). May answer `mfa_required`.
function Client:refresh(p, cb)
  if type(p) == "string" then p = { refresh_token = p } end
  if type(p) ~= "table" then raise("refresh expects a refresh token or a table") end
  local fields = self:_client_fields {
    refresh_token = check_string(p.refresh_token, "refresh_token", 2),
    scope = check_string(p.scope, "scope", 2, true),
    audience = check_string(p.audience, "audience", 2, true),
  }
  return self:_call("refresh", fields, nil, cb, tokens_shape)
end

--- Revokes a refresh token (POST /oauth/revoke). @return true or nil, err
function Client:revoke(refresh_token, cb)
  local fields = self:_client_fields { token = check_string(refresh_token, "refresh_token", 2) }
  return self:_call("revoke", fields, nil, cb, true_shape)
end

--- The user's profile (GET /userinfo) for an access token.
function Client:userinfo(access_token, cb)
  check_string(access_token, "access_token", 2)
  if has_ctl(access_token) then raise("access_token contains CR, LF or NUL") end
  return self:_call("userinfo", nil, { bearer = access_token }, cb, object_shape)
end

--- The tenant's JWKS (cached after the first success unless `refresh` is true).
function Client:jwks(refresh, cb)
  if type(refresh) == "function" then cb, refresh = refresh, nil end
  if self._jwks and not refresh then
    if cb then self._queue[#self._queue + 1] = function() self:_deliver(cb, self._jwks) end; return end
    return self._jwks
  end
  local function shape(t)
    if type(t) ~= "table" or type(t.keys) ~= "table" then return nil, "JWKS without keys" end
    self._jwks = t
    return t
  end
  return self:_call("jwks", nil, nil, cb, shape)
end

--- The OpenID discovery document.
function Client:openid_configuration(cb)
  return self:_call("openid_configuration", nil, nil, cb, object_shape)
end

--- Checks an ID token's signature (JWKS, RS256) and claims (iss, aud, exp, iat, sub...).
-- @return the claims, or nil, err (`err.code == "invalid_id_token"`)
function Client:verify_id_token(id_token, opts)
  check_string(id_token, "id_token", 2)
  opts = opts or {}
  local jwt = require "auth0.jwt"
  local jwks, err = self:jwks()
  if not jwks then return nil, err end
  local claims, verr = jwt.verify_id_token(id_token, {
    jwks = jwks, issuer = self._cfg.issuer, client_id = self._cfg.client_id,
    leeway = opts.leeway, now = opts.now, nonce = opts.nonce, max_age = opts.max_age,
  })
  if claims then return claims end
  if type(verr) == "table" and verr.code == "invalid_id_token" and verr.message:find("kid") and not opts._retried then
    -- keys rotate: refetch once
    self._jwks = nil
    opts._retried = true
    return self:verify_id_token(id_token, opts)
  end
  return nil, new_error("invalid_id_token", type(verr) == "table" and verr.message or tostring(verr))
end

---------------------------------------------------------------------------------------
-- Multi-factor authentication: lua/auth0/mfa.lua

require("auth0.mfa")(Client, {
  raise = raise, check_string = check_string, has_ctl = has_ctl, show = show,
  check_phone = check_phone, check_email = check_email, tokens_shape = tokens_shape,
  object_shape = object_shape, list_shape = list_shape, true_shape = true_shape,
  new_error = new_error, now = now, Pending = Pending, traceback = traceback,
})

---------------------------------------------------------------------------------------
-- OTP helpers (re-exported from auth0.otp)

local otp_ok, otp = pcall(require, "auth0.otp")
if otp_ok then
  _M.totp = otp.totp
  _M.hotp = otp.hotp
  _M.parse_otpauth = otp.parse_otpauth
end

--- Runs `fn(...)` and returns its results; a coroutine helper: inside a coroutine,
-- `auth0.await(client, method, args)` starts the call with a callback and yields until
-- it completes (resumed from client:poll after C has returned).
function _M.await(client, method, ...)
  local co, main = coroutine.running()
  if not co or main then raise("auth0.await must be called inside a coroutine") end
  local fn = client[method]
  if type(fn) ~= "function" then raise("unknown method " .. tostring(method)) end
  local results, done
  local args = { n = select("#", ...) + 1, ... }
  args[args.n] = function(...)
    results, done = { n = select("#", ...), ... }, true
    if coroutine.status(co) == "suspended" then
      local ok, msg = coroutine.resume(co)
      if not ok then error(msg, 0) end
    end
  end
  fn(client, unpack(args, 1, args.n))
  while not done do coroutine.yield() end
  return unpack(results, 1, results.n)
end

return _M
