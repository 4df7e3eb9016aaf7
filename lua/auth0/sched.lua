--- The client's scheduler: one run queue of tasks, one budget, one request type.
--
-- The C core hands over completions and nothing else (`core:start`, `core:poll`, `core:take`,
-- `handle:cancel`); everything that runs Lua code runs here, from `poll`, as a task:
--   * a completion: the transfer's answer goes to its request (`send`'s `on_answer`), which
--     delivers it to the user's callback or schedules a retry;
--   * a queued task (`push`): a deferred start (with `poll_budget_ms`), a transport's answer,
--     a cached value, the resumption of an `auth0.await` coroutine;
--   * a timer (`wait`, `after`) that fell due: retry waits, push polls.
-- Queued tasks run first, oldest first, then completions; a task queued by another one (a
-- coroutine resumed after the callback that completed its call) runs right after it, in the
-- same poll. With a budget, a task starts only if the recent ones say it ends within the
-- budget (one decaying maximum for every kind of task, see run()); the first always runs.
--
-- What user code may call:
--   * a callback (and `on_pending`, `on_state`): any client method, blocking or not, `cancel`,
--     `close`; `poll` returns `nil, err` (`reentrant`).
--   * a coroutine in `auth0.await`: the same, and `auth0.await` again (it is resumed from the
--     run queue after the callback has returned, never from inside one); `poll` is reentrant
--     there too, since the queue runs inside `poll`.
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local core = require "auth0.core"
local errors = require "auth0.error"

local setmetatable, xpcall, pcall, next, sort, type, tostring =
  setmetatable, xpcall, pcall, next, table.sort, type, tostring
local traceback, now, ceil, huge = debug.traceback, core.now, math.ceil, math.huge
local new_error = errors.new

local M = {}

-- Without io_thread libcurl spends about this much sending one request, in the next poll:
-- a deferred start is charged that much against the budget.
local START_COST_MS = 0.1

-- -------------------------------------------------------------------------------------
-- The public request object

local Request = { __name = "auth0.Request" }
Request.__index = Request
M.Request = Request

--- True once the callback has run (or the request was cancelled).
function Request:done() return self._done end

--- Cancels the request: its callback runs at once, once, with `err.code == "cancelled"`.
-- @return true, or false when it was done already
function Request:cancel()
  if self._done then return false end
  self:finish(nil, new_error("cancelled", "request cancelled", { context = self._name }))
  return true
end

function Request:__tostring()
  return "auth0.Request (" .. self._name .. ", " .. (self._done and "done" or "in flight") .. ")"
end

--- Ends the request: stops what it waits for and runs the callback with `...`, once.
function Request:finish(...)
  if self._done then return end
  local s = self._sched
  self._done = true
  if self._handle then
    s.handles[self._handle] = nil
    self._handle:cancel()
    self._handle = nil
  end
  if self._timer then s:cancel_timer(self._timer) end
  if s.live[self] then s.live[self] = nil; s.nlive = s.nlive - 1 end
  s:call(self._cb, ...)
end

-- -------------------------------------------------------------------------------------
-- The scheduler

local Sched = {}
Sched.__index = Sched

--- A scheduler over the C client `c`. opts: `budget` (ms or nil), `threaded`, `on_error(msg)`,
-- `transport` (function(ep, fields, opts) -> status, body, hdrs | nil, code, msg, or nil),
-- `sleep` (a sleep of the caller's, used for timer waits instead of the engine's).
function M.new(c, opts)
  return setmetatable({ core = c, budget = opts.budget, threaded = opts.threaded, on_error = opts.on_error,
    transport = opts.transport, sleep = opts.sleep,
    q = {}, qh = 1, qt = 0,   -- the run queue: { fn, req } entries
    timers = {},              -- { at, fn, req }
    handles = {},             -- C handle -> its request (whose _on_answer takes the answer)
    live = {}, nlive = 0, seq = 0,
    nfree = 0,                -- queued tasks and timers that belong to no request
    cost = 0,                 -- the dearest task of the recent polls, ms: a decaying maximum
    charge = 0, polling = false, closed = false }, Sched)
end

-- The fields that hold a secret wherever the library hands out a table (tokens, MFA
-- answers, the link of passwordless_start, options): never rendered.
local SECRET = { access_token = true, id_token = true, refresh_token = true, mfa_token = true,
  client_secret = true, otp = true, verification_code = true, recovery_code = true,
  binding_code = true, oob_code = true, code_verifier = true, nonce = true, recovery_codes = true,
  password = true, secret = true, token = true, barcode_uri = true, state = true, code = true,
  authorization = true }

-- A key names a secret in any case (headers: Authorization, authorization).
local function secret(k) return type(k) == "string" and SECRET[k:lower()] end

-- A string inside a table is text of unknown origin: one bounded line, as error.clean makes it.
local function scalar(v) if type(v) == "string" then return errors.clean(v) end return v end

-- Keys and scalars of a table shown in a log line: a bounded, one-line rendering.
local function show_table(t, depth)
  if errors.is(t) then return tostring(t) end
  -- an object with its own tostring (a flow, a client, a request, a listener) shows that:
  -- the library's are redacted, and walking its fields would bypass them
  local mt = getmetatable(t)
  if type(mt) == "table" and mt.__tostring ~= nil then
    local ok, s = pcall(tostring, t)
    return ok and type(s) == "string" and s or "(object)"
  end
  if depth > 2 then return "{...}" end
  local parts, n = {}, 0
  for k, v in next, t do
    n = n + 1
    if n > 8 then parts[#parts + 1] = "..."; break end
    local sv = secret(k) and "(secret)" or type(v) == "table" and show_table(v, depth + 1) or scalar(M.plain(v))
    parts[#parts + 1] = tostring(scalar(M.plain(k))) .. "=" .. tostring(sv)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

--- A value fit for `on_log` or `on_callback_error`: strings, numbers, booleans and nil
-- pass; an auth0.Error becomes its redacted tostring; any other table (which may hold
-- one, or a secret in a field an error object keeps for the program) a rendering that
-- shows every error object it holds by its tostring; anything else its type.
function M.plain(v)
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" or t == "nil" then return v end
  if t == "table" then return show_table(v, 1) end
  return "(" .. t .. ")"
end
local plain = M.plain

-- The message handler of callbacks: a raised error object (`assert(tokens, err)`) or a
-- table holding one becomes text before the traceback is added.
local function handler(e)
  if type(e) ~= "string" then e = tostring(plain(e)) end
  return traceback(e, 2)
end

--- Runs user code: an error goes to `on_error` as text with a traceback, never further.
function Sched:call(fn, ...)
  local ok, msg = xpcall(fn, handler, ...)
  if not ok then pcall(self.on_error, msg) end
end

--- A new request named `name` (an endpoint, or "mfa_poll") whose callback is `cb`.
function Sched:request(name, cb)
  return setmetatable({ _name = name, _cb = cb, _done = false, _sched = self }, Request)
end

local function enlist(s, req)
  if req and not s.live[req] then
    s.seq = s.seq + 1
    req._seq = s.seq
    s.live[req] = true
    s.nlive = s.nlive + 1
  end
end

-- Work handed to a closed scheduler would never run: its request ends at once, cancelled,
-- as close() ends the ones it found. Work for nobody queued while close() runs (a coroutine
-- resumed by a "client closed" callback) still runs there; after, it is dropped.
local function refused(self, req)
  if not self.closed then return false end
  if req then
    req:finish(nil, new_error("cancelled", "client closed", { context = req._name }))
    return true
  end
  return self.drained == true
end

--- Counts `req` as pending until it finishes (it waits for something shared, e.g. a JWKS fetch).
function Sched:hold(req)
  if refused(self, req) then return end
  enlist(self, req)
end

--- Queues `fn` on the run queue, for `req` (skipped once req is done) or for nobody.
function Sched:push(fn, req)
  if refused(self, req) then return end
  enlist(self, req)
  if not req then self.nfree = self.nfree + 1 end
  self.qt = self.qt + 1
  self.q[self.qt] = { fn, req }
end

--- Runs `fn` after `seconds`, for `req` (one timer per request) or for nobody.
function Sched:wait(req, seconds, fn)
  if refused(self, req) then return nil end
  enlist(self, req)
  if not req then self.nfree = self.nfree + 1 end
  local t = { at = now() + seconds, fn = fn, req = req }
  local timers = self.timers
  timers[#timers + 1] = t
  if req then req._timer = t end
  return t
end

function Sched:cancel_timer(t)
  for i, v in ipairs(self.timers) do
    if v == t then
      table.remove(self.timers, i)
      if t.req then t.req._timer = nil else self.nfree = self.nfree - 1 end
      return
    end
  end
end

--- Sends one transfer of `req`; `on_answer(status, body, hdrs)` or `on_answer(nil, code, msg)`
-- runs as a task when it ends. Misuse raises here, at the call.
-- @return true, or nil, code, msg when it could not be started (nothing is queued then)
function Sched:send(req, ep, fields, opts, on_answer)
  if self.transport then
    local status, body, hdrs = self.transport(ep, fields, opts)
    self:push(function() on_answer(status, body, hdrs) end, req)
    return true
  end
  local deferred = self.budget ~= nil
  local h, code, msg = self.core:start(ep, fields, opts, deferred)
  if not h then return nil, code, msg end
  enlist(self, req)
  self.handles[h] = req
  req._handle, req._on_answer = h, on_answer
  if deferred then
    self:push(function()
      if not self.threaded then self.charge = START_COST_MS end
      local ok, c2, m2 = self.core:launch(h)
      if not ok then
        self.handles[h], req._handle = nil, nil
        on_answer(nil, c2, m2)
      end
    end, req)
  end
  return true
end

-- Timers that fell due move to the run queue, in the order of their deadlines.
local function due(self)
  local timers = self.timers
  if #timers == 0 then return end
  local t0, keep, fired = now(), {}, {}
  for _, t in ipairs(timers) do
    if t.at <= t0 then fired[#fired + 1] = t else keep[#keep + 1] = t end
  end
  if #fired == 0 then return end
  sort(fired, function(a, b) return a.at < b.at end)
  self.timers = keep
  for _, t in ipairs(fired) do
    if t.req then t.req._timer = nil else self.nfree = self.nfree - 1 end
    self:push(t.fn, t.req)
  end
end

-- Runs one task from the queue, or one completion; false when there is none.
local function step(self)
  local qh = self.qh
  if qh <= self.qt then
    local e = self.q[qh]
    self.q[qh] = nil
    self.qh = qh + 1
    local req = e[2]
    if not req then
      self.nfree = self.nfree - 1
      self:call(e[1])
    elseif not req._done then
      self:call(e[1])
    end
    return true
  end
  local h, a, b, c = self.core:take()
  if not h then return false end
  local req = self.handles[h]
  self.handles[h] = nil
  if req then
    req._handle = nil
    self:call(req._on_answer, a, b, c)
  end
  return true
end

-- Runs queued tasks and completions; with a budget, while the estimate says the next fits.
-- The estimate is the dearest task of the recent polls: it rises at once and decays by an
-- eighth per poll, so that cheap tasks (a start handed to the I/O thread) run beside dear
-- ones (a callback decoding a token) without talking the estimate down. Returns whether it
-- ran anything.
local function run(self, t0, budget)
  local ran, charged, peak = false, 0, 0
  while not self.closed do
    if budget and ran and (now() - t0) * 1000 + charged + self.cost > budget then break end
    local t1 = budget and now()
    self.charge = 0
    if not step(self) then break end
    ran = true
    if budget then
      local d = (now() - t1) * 1000 + self.charge
      charged = charged + self.charge
      if d > peak then peak = d end
      if d > self.cost then self.cost = d end
    end
  end
  if budget and ran and peak < self.cost then self.cost = self.cost + (peak - self.cost) / 8 end
  return ran
end

function Sched:soonest()
  local at = huge
  for _, t in ipairs(self.timers) do if t.at < at then at = t.at end end
  return at
end

--- Drives the engine and runs what is due: see the module comment.
-- @return the number pending, or nil, code, msg (`reentrant`, or the engine's failure)
function Sched:poll(ms)
  if self.polling then return nil, "reentrant", "poll called from inside a callback" end
  local budget = self.budget
  local t0 = now()
  self.polling = true
  due(self)
  -- a script waiting: no budget, send everything now; what was ready ends the wait
  local wait = ms
  if ms > 0 and run(self, t0, nil) or self.qh <= self.qt then
    wait = 0
  elseif #self.timers > 0 then
    wait = math.min(wait, math.max(0, ceil((self:soonest() - now()) * 1000)))
  end
  local n, code, msg = 0, nil, nil
  if not self.closed then
    if self.transport then   -- nothing of the C engine's is in flight: only timers to wait for
      if wait > 0 and #self.timers > 0 then (self.sleep or core.sleep)(wait / 1000) end
    else
      n, code, msg = self.core:poll(wait)
      if n == 0 and wait > 0 and #self.timers > 0 and self.qh > self.qt then
        -- nothing on the wire: wait for the timer instead of spinning; wakeup() ends it
        local left = ceil((self:soonest() - now()) * 1000)
        if left > 0 then
          if self.sleep then self.sleep(math.min(left, wait) / 1000) else self.core:idle(math.min(left, wait)) end
        end
      end
    end
  end
  due(self)
  run(self, t0, budget)
  self.polling = false
  if n == nil then return nil, code, msg end
  return self:pending()
end

--- Requests, timers and tasks still pending.
function Sched:pending()
  if self.closed then return 0 end
  return self.nlive + self.nfree
end

--- Ends everything: each live request's callback runs once with `cancelled` ("client
-- closed"), in the order they were made; then the queued tasks of nobody (coroutines
-- waiting to be resumed) run once more. Idempotent.
function Sched:close()
  if self.closed then return end
  self.closed = true
  local reqs = {}
  for req in next, self.live do reqs[#reqs + 1] = req end
  sort(reqs, function(a, b) return a._seq < b._seq end)
  for _, req in ipairs(reqs) do req._handle = nil end
  self.handles = {}
  self.core:close()
  local timers = self.timers
  self.timers = {}
  for _, t in ipairs(timers) do if t.req then t.req._timer = nil end end
  for _, req in ipairs(reqs) do
    req:finish(nil, new_error("cancelled", "client closed", { context = req._name }))
  end
  -- tasks queued meanwhile (a coroutine resumed by a "client closed" callback) run too
  while self.qh <= self.qt do
    local e = self.q[self.qh]
    self.q[self.qh] = nil
    self.qh = self.qh + 1
    if not e[2] then self:call(e[1]) end
  end
  self.nfree, self.nlive, self.drained = 0, 0, true
end

return M
