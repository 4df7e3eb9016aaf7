--- auth0.Client: options, the call path (blocking, or with a callback through the scheduler),
-- retries, and the passwordless, token and user methods. The MFA methods are in auth0.mfa.
-- Every network method blocks and returns `result` or `nil, err`; given a trailing callback
-- `function(result, err)` it returns at once a request object instead and the callback runs
-- later from `client:poll(ms)` (lua/auth0/sched.lua says what a callback may call).
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local core = require "auth0.core"
local errors = require "auth0.error"
local check = require "auth0.check"
local retry = require "auth0.retry"
local sched = require "auth0.sched"
local cjson = require("cjson.safe").new()

local type, pairs, tostring, tonumber, setmetatable, pcall, max =
  type, pairs, tostring, tonumber, setmetatable, pcall, math.max
local now, sleep, json_flat = core.now, core.sleep, core.json_flat
local new_error, from_response = errors.new, errors.from_response
local at = check.at
local FLAT = require("auth0.shape").flat

local M = {}

local Client = { __name = "auth0.Client" }
Client.__index = Client
M.Client = Client

local LOOPBACK = { ["127.0.0.1"] = true, ["localhost"] = true, ["[::1]"] = true }

-- The core's captured headers by wire name: its map, not restated here.
local HEADER_FIELDS = core.header_fields

local VALID_OPTS = {
  domain = true, base_url = true, client_id = true, client_secret = true, audience = true, scope = true,
  timeout = true, connect_timeout = true, ca_file = true, language = true, telemetry = true,
  on_log = true, on_callback_error = true, transport = true, insecure_skip_verify = true,
  retries = true, max_retry_wait = true, sleep = true,
  -- the "ngx" transport's own options (see lua/auth0/transport/ngx.lua)
  pool_size = true, keepalive_timeout = true, server_name = true, pool = true,
  poll_budget_ms = true, io_thread = true,
  -- ID tokens (README "Security")
  id_token_alg = true, jwks_ttl = true, jwks_min_refetch = true,
}

local NEW = at("new", 1)

-- Returns base_url without a trailing slash and the host, or raises.
local function parse_base(opts)
  local url
  if opts.base_url ~= nil then
    url = check.header(NEW, opts.base_url, "base_url")
  elseif opts.domain ~= nil then
    local d = check.header(NEW, opts.domain, "domain")
    if d:find("[/:@%s]") and not d:find("^[%w%.%-]+:%d+$") then NEW:fail("domain must be a host name, got a URL") end
    url = "https://" .. d
  else
    NEW:fail("domain or base_url is required")
  end
  url = url:gsub("/+$", "")
  local scheme, hostport = url:match("^(https?)://([^/?#]+)$")
  if not scheme then NEW:fail("base_url must be scheme://host[:port] with no path, query or user info") end
  if hostport:find("@", 1, true) then NEW:fail("base_url must not carry user:password@") end
  local host = hostport:match("^(%[[^%]]+%])") or hostport:match("^([^:]+)")
  local port = hostport:match(":(%d+)$")
  if hostport:find(":", #host + 1, true) and not port then NEW:fail("base_url has an invalid port") end
  if port and (tonumber(port) < 1 or tonumber(port) > 65535) then NEW:fail("base_url has an invalid port") end
  if scheme == "http" and not LOOPBACK[host:lower()] then
    NEW:fail("http:// is only allowed for loopback hosts (127.0.0.1, localhost, [::1])")
  end
  return url, host
end

local function lua_env()
  if type(jit) == "table" then return { luajit = jit.version } end -- luacheck: ignore 113
  return { lua = _VERSION:match("%d+%.%d+") }
end

local function check_options(opts)
  check.table(NEW, opts, "an options table")
  for k in pairs(opts) do
    if not VALID_OPTS[k] then NEW:fail("unknown option " .. check.show(k)) end
  end
  local base_url, host = parse_base(opts)
  local cfg = {
    base_url = base_url, host = host, issuer = base_url .. "/",
    client_id = check.header(NEW, opts.client_id, "client_id"),
    client_secret = check.header(NEW, opts.client_secret, "client_secret", true),
    audience = check.header(NEW, opts.audience, "audience", true),
    scope = check.header(NEW, opts.scope, "scope", true) or "openid profile email",
    language = check.header(NEW, opts.language, "language", true),
    timeout = check.seconds(NEW, opts.timeout, "timeout", 10),
    connect_timeout = check.seconds(NEW, opts.connect_timeout, "connect_timeout", 5),
    ca_file = check.header(NEW, opts.ca_file, "ca_file", true),
    retries = opts.retries == nil and 2 or opts.retries,
    max_retry_wait = check.seconds(NEW, opts.max_retry_wait, "max_retry_wait", 10),
    poll_budget = check.seconds(NEW, opts.poll_budget_ms, "poll_budget_ms", nil, 1000, "milliseconds"),
    io_thread = opts.io_thread,
    id_token_alg = opts.id_token_alg == nil and "RS256" or opts.id_token_alg,
    jwks_ttl = check.seconds(NEW, opts.jwks_ttl, "jwks_ttl", 600),
    jwks_min_refetch = check.seconds(NEW, opts.jwks_min_refetch, "jwks_min_refetch", 60),
  }
  if cfg.id_token_alg ~= "RS256" and cfg.id_token_alg ~= "HS256" then
    NEW:fail("id_token_alg must be \"RS256\" or \"HS256\", got " .. check.show(cfg.id_token_alg))
  end
  if cfg.id_token_alg == "HS256" and not cfg.client_secret then NEW:fail("id_token_alg \"HS256\" needs client_secret") end
  if cfg.io_thread ~= nil and type(cfg.io_thread) ~= "boolean" then NEW:fail("io_thread must be a boolean") end
  if type(cfg.retries) ~= "number" or not (cfg.retries >= 0 and cfg.retries <= 10) or cfg.retries % 1 ~= 0 then
    NEW:fail("retries must be an integer in 0..10")
  end
  for _, f in ipairs({ "on_log", "on_callback_error", "sleep" }) do check.func(NEW, opts[f], f, true) end
  if opts.transport ~= nil and opts.transport ~= "ngx" and type(opts.transport) ~= "function" then
    NEW:fail("transport must be a function or \"ngx\"")
  end
  check.pool_options(opts, function(msg) NEW:fail(msg) end)
  if opts.insecure_skip_verify and not LOOPBACK[host:lower()] then
    NEW:fail("insecure_skip_verify is only allowed for loopback hosts")
  end
  return cfg
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

-- One round trip through a transport function: (status, body, hdrs) | (nil, code, msg).
local function via_transport(self, ep, fields, opts)
  local req = self._core:build(ep, fields, opts)
  req.timeout = req.timeout or self._cfg.timeout
  local ok, resp, code, msg = pcall(self._transport, req)
  if not ok then return nil, "transport", "transport failed: " .. tostring(resp) end
  if resp == nil then return nil, code or "transport", msg or "transport failed" end
  if type(resp) ~= "table" or type(resp.status) ~= "number" then
    return nil, "bad_response", "transport returned no status"
  end
  local st = resp.status
  if not (st >= 100 and st <= 599) or st % 1 ~= 0 then   -- NaN fails the first test
    return nil, "bad_response", "transport returned an invalid HTTP status"
  end
  return resp.status, type(resp.body) == "string" and resp.body or "", map_headers(resp.headers)
end

--- Creates a client (README "auth0.new"); raises on misuse.
-- @tparam table opts see README: `domain` or `base_url`, `client_id`, `client_secret`,
-- `audience`, `scope`, `timeout`, `connect_timeout`, `ca_file`, `language`, `telemetry`,
-- `on_log`, `on_callback_error`, `transport`, `retries`, `max_retry_wait`, `sleep`,
-- `insecure_skip_verify`, `poll_budget_ms`, `io_thread`, `id_token_alg` ("RS256", or "HS256"
-- with client_secret), `jwks_ttl` (600 s), `jwks_min_refetch` (60 s), and the "ngx" transport's options
-- @return the client
function M.new(opts)
  local cfg = check_options(opts)
  -- false, not nil, for what is absent: a miss would go on to Client through __index at each call
  local self = setmetatable({ _cfg = cfg, _on_log = opts.on_log or false, _sleep = opts.sleep or sleep }, Client)
  local headers = { "Accept: application/json", "Expect:", "User-Agent: lua-auth0/" .. core.version }
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
  end
  self._transport = transport or false
  self._on_cb_error = opts.on_callback_error or function(msg)
    self:_log("warn", "error in a callback", { error = msg })
  end
  self._core = core.client {
    base_url = cfg.base_url, timeout = cfg.timeout, connect_timeout = cfg.connect_timeout,
    ca_file = cfg.ca_file, insecure = opts.insecure_skip_verify == true, headers = headers,
    threaded = cfg.io_thread == true and transport == nil,
  }
  self._sched = sched.new(self._core, {
    budget = cfg.poll_budget, threaded = cfg.io_thread == true and transport == nil,
    on_error = function(msg) self._on_cb_error(msg) end,
    transport = transport and function(ep, fields, o) return via_transport(self, ep, fields, o) end,
    -- a transport's or the caller's sleep waits for timers; otherwise the engine, which wakeup() ends
    sleep = (transport or opts.sleep) and function(s) self._sleep(s) end or nil,
  })
  self._insecure = opts.insecure_skip_verify == true
  self._fetch = self._core.fetch   -- a userdata's method is found through two metatables at each call
  return self
end

function Client:__tostring()
  if self._sched.closed then return "auth0.Client (closed)" end
  return "auth0.Client (" .. self._cfg.base_url .. ")"
end

-- on_log gets strings and plain scalars only: a field holding a table (an error object,
-- a result) is rendered by sched.plain, so no secret-bearing table reaches a log sink.
function Client:_log(level, message, fields)
  local fn = self._on_log
  if not fn then return end
  local out = {}
  for k, v in pairs(fields or {}) do out[k] = sched.plain(v) end
  pcall(fn, level, sched.plain(message), out)
end
-- Hot paths test self._on_log first so that no fields table is built when nobody listens.

-- -------------------------------------------------------------------------------------
-- The call path

-- The error of a 2xx answer that its shape refused (`msg` says why).
local function refused(self, ep, status, msg, hdrs)
  return nil, errors.add_headers(new_error("bad_response", msg, { status = status, context = ep }),
    hdrs or self._core:last_headers())
end

-- Turns the core's answer into (value) or (nil, err); `fit` (a shape) checks a 2xx body.
-- A 2xx answer of core:fetch comes without hdrs: core:last_headers() has them, for the
-- rare path that needs them (a log line, an error), until this client's next call.
local function finish(self, ep, fit, status, body, hdrs)
  if status == nil then
    -- body, hdrs are the core's code and message here
    local reached = retry.not_sent[body] or body == "tls" or body == "timeout"
    local e = new_error(body, hdrs, { context = (reached and "could not reach " or "bad answer from ") .. self._cfg.host })
    if self._on_log then self:_log("info", "request failed", { endpoint = ep, code = e.code }) end
    return nil, e
  end
  if self._on_log then
    hdrs = hdrs or self._core:last_headers()
    self:_log("debug", "response", { endpoint = ep, status = status, request_id = hdrs and errors.clean(hdrs.request_id) })
  end
  if status >= 200 and status < 300 then
    -- a flat object (a token set) decodes in C as cjson would, and says whether it held a
    -- null (a shape then has none to strip); anything else through cjson
    local decoded, nulls = true, true
    if body ~= "" then decoded, nulls = json_flat(body) end
    if decoded == nil then decoded = true end
    if decoded == true and body ~= "" and not body:find("^%s*$") then
      decoded = cjson.decode(body)
      if decoded == nil then
        return nil, errors.add_headers(new_error("bad_response", "the server sent invalid JSON",
          { status = status, context = ep }), hdrs or self._core:last_headers())
      end
    end
    -- old servers answer authorization_pending with 200 (docs/protocol.md, "MFA push"): an
    -- error body is an error whatever the status
    if type(decoded) == "table" and type(decoded.error) == "string" and decoded.access_token == nil then
      local e = from_response(status, body, hdrs or self._core:last_headers(), ep)
      if self._on_log then self:_log("info", "request failed", { endpoint = ep, status = status, code = e.code }) end
      return nil, e
    end
    if not fit then return decoded end
    local v, msg = fit(decoded, self, nulls == false)
    if v == nil then return refused(self, ep, status, msg, hdrs) end
    return v
  end
  local e = from_response(status, body, hdrs, ep)
  if self._on_log then
    self:_log("info", "request failed", { endpoint = ep, status = status, code = e.code, request_id = e.request_id })
  end
  return nil, e
end

-- Only a failed connection, 429 or 503 can be retried (auth0.retry): the common answer skips the policy.
local function may_retry(status) return status == nil or status == 429 or status == 503 end

-- A retry only gets what is left of the call's timeout.
local function remaining(opts, left)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.timeout = max(left, 0.001)
  return o
end

function Client:_timeout(opts) return (opts and opts.timeout) or self._cfg.timeout end

-- The rest of a blocking call after an attempt that did not end it at once (or before
-- the first with a transport): retries, and finish() for the answer.
-- The fields given to _call, a table and key, value pairs (a nil value: absent), as one
-- table: for the paths that keep or resend them (retries, callbacks, transports).
local function all_fields(fields, ...)
  local n = select("#", ...)
  if n == 0 then return fields end
  local t = {}
  for k, v in pairs(fields or t) do t[k] = v end
  for i = 1, n, 2 do
    local k, v = select(i, ...)
    -- as the C core's check of the blocking path: a field given both ways is a library bug
    if v ~= nil and t[k] ~= nil then error("field '" .. tostring(k) .. "' given twice", 2) end
    if v ~= nil then t[k] = v end
  end
  return t
end

local function call_rest(self, ep, fields, opts, fit, start, status, body, hdrs)
  local cfg = self._cfg
  local timeout = (opts and opts.timeout) or cfg.timeout   -- self:_timeout(opts), inlined
  local deadline = start + timeout
  local attempt = 1
  if self._transport then status, body, hdrs = via_transport(self, ep, fields, opts) end
  while true do
    if status ~= nil and status ~= 429 and status ~= 503 then return finish(self, ep, fit, status, body, hdrs) end
    local wait = retry.wait(cfg, ep, attempt, status, body, hdrs, deadline - now(), timeout)
    if not wait then return finish(self, ep, fit, status, body, hdrs) end
    self:_log("info", "retrying", { endpoint = ep, attempt = attempt, wait = wait })
    self._sleep(wait)
    attempt = attempt + 1
    local o = remaining(opts, deadline - now())
    if self._transport then status, body, hdrs = via_transport(self, ep, fields, o)
    else status, body, hdrs = self._core:fetch(ep, fields, o) end
  end
end

--- The one task helper of requests: sends `ep` for `req`, retries by the policy (each retry
-- a timer task, then a transfer), and hands the outcome to `on_result(value, err)`.
-- @return true, or nil, err when the first transfer could not be started
function Client:_attempts(req, ep, fields, opts, fit, on_result)
  local s, cfg, timeout = self._sched, self._cfg, self:_timeout(opts)
  local deadline = now() + timeout
  local attempt, send = 1, nil
  local function answer(status, body, hdrs)
    local wait = may_retry(status) and retry.wait(cfg, ep, attempt, status, body, hdrs, deadline - now(), timeout)
    if not wait then return on_result(finish(self, ep, fit, status, body, hdrs)) end
    if self._on_log then self:_log("info", "retrying", { endpoint = ep, attempt = attempt, wait = wait }) end
    attempt = attempt + 1
    s:wait(req, wait, function()
      -- a late timer (a busy machine, rare polls) must not retry with almost no time left:
      -- that would end in `timeout` and hide the answer that made it retry
      local left = deadline - now()
      if left < retry.min_left(timeout) then return on_result(finish(self, ep, fit, status, body, hdrs)) end
      send(remaining(opts, left))
    end)
  end
  send = function(o)
    local ok, code, msg = s:send(req, ep, fields, o, answer)
    if not ok then answer(nil, code, msg) end
  end
  local ok, code, msg = s:send(req, ep, fields, opts, answer)
  if not ok then return finish(self, ep, fit, nil, code, msg) end
  return true
end

-- Performs one endpoint call, blocking (cb == nil) or not; `where` names the public function.
-- Blocking, retries included: a 2xx answer the C core decoded against the shape's checker
-- (body false), or that json_flat decodes, without an error member, that `fit` takes, is
-- returned at once; call_rest and finish() handle everything else in full (finish decodes
-- the body again: the fast paths decide nothing finish would not). Inline here, not a
-- function of its own: a Lua call is a visible part of a login's CPU. The fields are the table
-- `fields` (or nil) and the key, value pairs after `fit` (a nil value: absent): the hot
-- methods pass pairs, which cost no table (a table of five fields is ~2k instructions).
function Client:_call(where, ep, fields, opts, cb, fit, ...)
  if self._sched.closed then where:fail("attempt to use a closed auth0.Client") end
  if self._insecure then
    self:_log("warn", "TLS certificate verification is OFF (insecure_skip_verify)", { endpoint = ep })
  end
  local on_log = self._on_log
  if on_log then self:_log("debug", "request", { endpoint = ep }) end
  if cb == nil then
    if self._transport then return call_rest(self, ep, all_fields(fields, ...), opts, fit, now()) end
    -- 2xx: headers on demand (finish); with a shape's checker and nobody logging, a flat
    -- answer without error member or null whose listed fields fit is decoded in C
    local status, body, hdrs = self._fetch(self._core, ep, fields, opts, not on_log and fit and FLAT[fit] or nil, ...)
    if body == false then
      local v, msg = fit(hdrs, self, true, true)
      if v ~= nil then return v end
      return refused(self, ep, status, msg, nil)   -- as finish() would, on the same table
    end
    if hdrs == nil and status ~= nil and not on_log then   -- 2xx, nobody logging
      local decoded, nulls = json_flat(body)
      if decoded ~= nil and decoded.error == nil then
        if not fit then return decoded end
        local v = fit(decoded, self, nulls == false)
        if v ~= nil then return v end
      end
    end
    -- the retries' deadline counts from when the fetch began
    return call_rest(self, ep, all_fields(fields, ...), opts, fit, self._core:started(), status, body, hdrs)
  end
  if type(cb) ~= "function" then where:fail("callback must be a function") end
  local req = self._sched:request(ep, cb)
  local ok, err = self:_attempts(req, ep, all_fields(fields, ...), opts, fit, function(...) req:finish(...) end)
  if not ok then return nil, err end
  return req
end

local BLOCKING = at("_call_blocking")

-- One blocking call (kept for callers of the old name: Client:_call without a callback).
function Client._call_blocking(self, ep, fields, opts, fit) return self:_call(BLOCKING, ep, fields, opts, nil, fit) end

--- The call options `o` with `p.forwarded_for` (the end user's IP address, sent as the
-- auth0-forwarded-for header) when given; Auth0 honours it from confidential clients only,
-- so a public client raises (README "Security").
function Client:_forwarded(where, p, o)
  local ip = p.forwarded_for
  if ip == nil then return o end
  check.ip(where, ip, "forwarded_for")
  if not self._cfg.client_secret then
    where:fail("forwarded_for needs a confidential client (client_secret): Auth0 ignores it otherwise")
  end
  local out = { forwarded_for = ip }
  for k, v in pairs(o) do out[k] = v end
  return out
end

-- -------------------------------------------------------------------------------------
-- Polling and lifetime

local POLL = at("poll", 1)

--- Advances every request and runs what is due: callbacks, retries, resumed coroutines.
-- `poll(0)` never blocks; `poll(ms)` waits up to ms for activity.
-- @return the number of requests and timers still pending, or `nil, err` (code `reentrant`
-- inside a callback, or `network` when the engine failed)
function Client:poll(ms)
  local s = self._sched
  if s.closed then POLL:fail("attempt to use a closed auth0.Client") end
  ms = ms or 0
  if type(ms) ~= "number" or not (ms >= 0 and ms <= 3600000) then POLL:fail("poll expects milliseconds in 0..3600000") end
  local n, code, msg = s:poll(math.ceil(ms))   -- poll(16.6) from a frame timer: whole milliseconds
  if n == nil then return nil, new_error(code, msg, { context = "poll" }) end
  return n
end

--- Number of requests and timers still pending.
function Client:pending() return self._sched:pending() end

--- Interrupts a poll(ms) that is waiting (safe from another coroutine's callback).
function Client:wakeup() if not self._sched.closed then self._core:wakeup() end end

--- Connection and request counters: { connects, requests, inflight }.
function Client:stats() return self._core:stats() end

--- Cancels everything pending (each callback runs once with code "cancelled", message
-- "client closed") and releases the connections. Idempotent.
-- @return true
function Client:close()
  self._sched:close()
  return true
end
Client.__close = Client.close
Client.__gc = Client.close

-- Timers of the client's own (tests, flows): `fn` runs from poll after `seconds`.
function Client:_after(seconds, fn) return self._sched:wait(nil, seconds, fn) end
function Client:_cancel_timer(t) self._sched:cancel_timer(t) end

-- Runs a callback of the user's as callbacks run (errors go to on_callback_error).
function Client:_deliver(cb, ...) self._sched:call(cb, ...) end

return M
