--- Emulator module: fault injection (issue #5). Rules chosen over the control API make the
-- emulator misbehave on chosen requests; the nginx host (auth0.emulator.nginx) carries out the
-- faults that need the socket, and the in-process transport (`emu:transport()`) emulates them
-- as the libcurl engine would report them.
--
-- Control routes (JSON; errors are 400 `{"error":"bad_request","error_description":"..."}`).
-- Requests under /__emulator/ are never faulted nor counted.
--
--   POST   /__emulator/faults {"rules": [rule, ...], "seed": n?}
--          replaces the rules, zeroes every counter, reseeds the generator (seed default 1)
--          -> the state (as GET)
--   GET    /__emulator/faults
--          -> {"seed": n, "rules": [rule + {"seen": n, "injected": n}],
--              "injected": {kind: n}, "requests": {path: n}, "total": n}
--          `requests` counts every non-control request per path since the POST (faulted or
--          not), `total` their sum, `injected` the faults carried out per kind.
--   DELETE /__emulator/faults  -> {"deleted": <rules>, "injected": {kind: n}}; no more faults,
--          no more counting. POST /__emulator/reset does the same.
--
-- A rule: {"kind": k, "path": p?, "method": m?, "every": n? | "probability": p?, "times": n?,
--          kind-specific fields}
--   path         exact request path; a trailing "*" matches a prefix ("/mfa/*"); absent = any
--   method       "GET", "POST", ... ; absent = any
--   every        fires on the n-th, 2n-th, ... request the rule matches
--   probability  fires with probability p in [0, 1], drawn from the seeded generator
--                (neither: fires on every matching request)
--   times        fires at most n times
-- The first rule (in order) that matches and fires wins; every matching rule counts the request.
--
-- In-process (`emu:transport()`, which this module replaces) the socket faults come back as the
-- libcurl engine reports them: close_* and truncate -> nil, "bad_response"; slow_headers, and a
-- delay of at least the request's timeout -> nil, "timeout" after sleeping that timeout; a body
-- over 1 MiB (huge_body) -> nil, "too_large". Shorter delays really sleep.
--
-- Kinds (the answer is the real one, computed by the endpoint, unless said otherwise):
--   delay                  answers after `ms` milliseconds (default 1000)
--   close_before_headers   closes the connection (HTTP/2: resets the stream) before any
--                          header; the request is not processed
--   close_after_headers    sends the real status and headers, then closes
--   truncate               sends the headers with a Content-Length 32 bytes over the real
--                          body's, half the body, then closes (HTTP/2: RST_STREAM)
--   invalid_json           200 application/json with a body that is not JSON (not processed)
--   wrong_shape            the real answer, reshaped by `variant`: "array" (default; the JSON
--                          wrapped in an array), "strings" (every number sent as a string),
--                          "nulls" (every field null)
--   huge_body              200 with a 2 MiB JSON body (not processed)
--   http_500, http_502, http_503
--                          that status with an HTML page (not processed)
--   rate_limit             429 too_many_requests (not processed); `variant`:
--                          "retry_after_seconds" (default): Retry-After: <retry_after> plus the
--                          X-RateLimit-Limit/-Remaining/-Reset headers; "retry_after_date": the
--                          same with an HTTP date; "reset_only": the X-RateLimit-* headers only;
--                          "none": no rate-limit header. `retry_after` seconds, default 1; the
--                          reset is wall-clock epoch seconds (the client's clock, not the
--                          emulator's virtual one)
--   slow_headers           the real answer with its header block written one byte every
--                          `interval` ms (default 100), over the raw socket for HTTP/1.x; an
--                          HTTP/2 HEADERS frame cannot be split, so there the whole block goes
--                          out after (header bytes x interval)
--   redirect_http          302 to http://<same host and path> (not processed)
-- luacheck: ignore 212/self
local core = require "auth0.core"
local util = require "auth0.emulator.util"

local type, pairs, ipairs, tonumber, tostring = type, pairs, ipairs, tonumber, tostring
local floor, min = math.floor, math.min
local format, rep = string.format, string.rep

local json, array = util.json, util.array

local M = { methods = {} }
local methods = M.methods
local P = "/__emulator"

M.routes = {
  { "GET", P .. "/faults", "ctl_faults" },
  { "POST", P .. "/faults", "ctl_faults_set" },
  { "DELETE", P .. "/faults", "ctl_faults_clear" },
}

-- Kinds and whether the endpoint computes the real answer first.
local KINDS = {
  delay = true, close_before_headers = false, close_after_headers = true, truncate = true,
  invalid_json = false, wrong_shape = true, huge_body = false, http_500 = false, http_502 = false,
  http_503 = false, rate_limit = false, slow_headers = true, redirect_http = false,
}
M.KINDS = KINDS

local VARIANTS = {
  rate_limit = { retry_after_seconds = true, retry_after_date = true, reset_only = true, none = true },
  wrong_shape = { array = true, strings = true, nulls = true },
}
local DEFAULT_VARIANT = { rate_limit = "retry_after_seconds", wrong_shape = "array" }

M.HUGE_BODY_SIZE = 2 * 1024 * 1024
local huge_body
local function huge()
  if not huge_body then
    local head, tail = '{"padding":"', '"}'
    huge_body = head .. rep("x", M.HUGE_BODY_SIZE - #head - #tail) .. tail
  end
  return huge_body
end

local function bad(msg) return util.error(400, "bad_request", msg) end

---------------------------------------------------------------------------------------------
-- The generator: Park-Miller (multiplier 48271 mod 2^31-1). Every product stays below 2^47, so
-- doubles (LuaJIT) and integers (5.4) give the same sequence for a seed.

local MODULUS = 2147483647

local function seed_state(seed)
  local s = floor(tonumber(seed) or 1) % MODULUS
  if s <= 0 then s = s + MODULUS - 1 end
  return s
end

local function draw(state)
  state.rng = (state.rng * 48271) % MODULUS
  return (state.rng - 1) / (MODULUS - 1)   -- in [0, 1)
end

---------------------------------------------------------------------------------------------
-- Rules.

local function is_int(v, lo, hi)
  return type(v) == "number" and v % 1 == 0 and v >= lo and v <= hi
end

-- A checked copy of a rule from the control API. @return rule | nil, message
local function check_rule(r, i)
  local where = "rules[" .. i .. "]: "
  if type(r) ~= "table" then return nil, where .. "expected an object" end
  if KINDS[r.kind] == nil then return nil, where .. "unknown kind " .. tostring(r.kind) end
  local rule = { kind = r.kind, seen = 0, injected = 0 }
  if r.path ~= nil then
    if type(r.path) ~= "string" or r.path:sub(1, 1) ~= "/" then return nil, where .. "path must start with /" end
    rule.path = r.path
  end
  if r.method ~= nil then
    if type(r.method) ~= "string" then return nil, where .. "method must be a string" end
    rule.method = r.method:upper()
  end
  if r.every ~= nil and r.probability ~= nil then return nil, where .. "give every or probability, not both" end
  if r.every ~= nil then
    if not is_int(r.every, 1, 1e9) then return nil, where .. "every must be an integer >= 1" end
    rule.every = floor(r.every)
  end
  if r.probability ~= nil then
    local p = r.probability
    if type(p) ~= "number" or p ~= p or p < 0 or p > 1 then return nil, where .. "probability must be in [0, 1]" end
    rule.probability = p
  end
  if r.times ~= nil then
    if not is_int(r.times, 1, 1e9) then return nil, where .. "times must be an integer >= 1" end
    rule.times = floor(r.times)
  end
  if r.kind == "delay" then
    if r.ms ~= nil and not is_int(r.ms, 0, 600000) then return nil, where .. "ms must be an integer in [0, 600000]" end
    rule.ms = floor(r.ms or 1000)
  elseif r.kind == "slow_headers" then
    if r.interval ~= nil and not is_int(r.interval, 1, 10000) then
      return nil, where .. "interval must be an integer in [1, 10000] ms"
    end
    rule.interval = floor(r.interval or 100)
  end
  if VARIANTS[r.kind] then
    local v = r.variant == nil and DEFAULT_VARIANT[r.kind] or r.variant
    if not VARIANTS[r.kind][v] then return nil, where .. "unknown variant " .. tostring(v) .. " for " .. r.kind end
    rule.variant = v
  elseif r.variant ~= nil then
    return nil, where .. "variant applies to rate_limit and wrong_shape only"
  end
  if r.kind == "rate_limit" then
    if r.retry_after ~= nil and not is_int(r.retry_after, 0, 86400) then
      return nil, where .. "retry_after must be an integer number of seconds"
    end
    rule.retry_after = floor(r.retry_after or 1)
  end
  return rule
end

local function matches(rule, req)
  if rule.method and rule.method ~= req.method then return false end
  local p = rule.path
  if not p then return true end
  if p:sub(-1) == "*" then return req.path:sub(1, #p - 1) == p:sub(1, -2) end
  return req.path == p
end

-- Counts `req` on every matching rule; returns the first one that fires.
local function pick(state, req)
  local chosen
  for _, rule in ipairs(state.rules) do
    if matches(rule, req) then
      rule.seen = rule.seen + 1
      local exhausted = rule.times and rule.injected >= rule.times
      if not chosen and not exhausted then
        local fire
        if rule.every then
          fire = rule.seen % rule.every == 0
        elseif rule.probability then
          fire = draw(state) < rule.probability
        else
          fire = true
        end
        if fire then chosen = rule end
      end
    end
  end
  return chosen
end

---------------------------------------------------------------------------------------------
-- Faulty answers.

local HTML = [[<html>
<head><title>%d %s</title></head>
<body>
<center><h1>%d %s</h1></center>
<hr><center>cloudflare</center>
</body>
</html>
]]
local REASONS = { [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Temporarily Unavailable" }

local function html(status)
  local reason = REASONS[status]
  return { status = status, headers = { ["content-type"] = "text/html" },
           body = format(HTML, status, reason, status, reason) }
end

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }

--- An IMF-fixdate (RFC 9110) for epoch seconds.
function M.http_date(epoch)
  local t = os.date("!*t", epoch)
  return format("%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[t.wday], t.day, MONTHS[t.month], t.year,
                t.hour, t.min, t.sec)
end

local function rate_limited(rule)
  local headers = {}
  local wall = os.time()
  local v = rule.variant
  if v ~= "none" then
    headers["x-ratelimit-limit"] = "10"
    headers["x-ratelimit-remaining"] = "0"
    headers["x-ratelimit-reset"] = tostring(wall + rule.retry_after)
  end
  if v == "retry_after_seconds" then
    headers["retry-after"] = tostring(rule.retry_after)
  elseif v == "retry_after_date" then
    headers["retry-after"] = M.http_date(wall + rule.retry_after)
  end
  return util.error(429, "too_many_requests", "Too many requests (injected fault)", nil, headers)
end

local function reshape(v, variant)
  if type(v) ~= "table" then
    if variant == "strings" and type(v) == "number" then
      return v % 1 == 0 and format("%d", v) or tostring(v)
    end
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    if variant == "nulls" and type(k) == "string" then out[k] = util.null else out[k] = reshape(x, variant) end
  end
  if v[1] ~= nil then array(out) end
  return out
end

local function wrong_shape(resp, variant)
  local decoded = util.decode(resp.body or "")
  if decoded == nil then decoded = util.null end
  if variant == "array" then
    decoded = array({ decoded })
  else
    decoded = reshape(decoded, variant)
  end
  return json(resp.status, decoded, { ["retry-after"] = resp.headers["retry-after"] })
end

local function real_answer(self, req)
  local seam = self.faults
  self.faults = nil
  local ok, resp = pcall(self.handle, self, { method = req.method, path = req.path, query = req.query_string,
    headers = req.headers, body = req.body, remote_addr = req.remote_addr })
  self.faults = seam
  if not ok then error(resp, 0) end
  return resp
end

-- Builds the answer for `rule`. Faults the socket must carry out are described by
-- `resp.fault = { kind, ms?, interval? }` and left to the host.
local function answer(self, rule, req)
  local kind = rule.kind
  local resp
  if KINDS[kind] then resp = real_answer(self, req) end
  if kind == "delay" then
    resp.fault = { kind = kind, ms = rule.ms }
  elseif kind == "close_before_headers" then
    resp = { status = 502, headers = {}, body = "", fault = { kind = kind } }
  elseif kind == "close_after_headers" or kind == "truncate" then
    resp.fault = { kind = kind }
  elseif kind == "slow_headers" then
    resp.fault = { kind = kind, interval = rule.interval }
  elseif kind == "invalid_json" then
    resp = { status = 200, headers = { ["content-type"] = util.JSON_CONTENT_TYPE },
             body = '{"access_token":"eyJ0eXAi.broken", "expires_in": 86400,,}' }
  elseif kind == "wrong_shape" then
    resp = wrong_shape(resp, rule.variant)
  elseif kind == "huge_body" then
    resp = { status = 200, headers = { ["content-type"] = util.JSON_CONTENT_TYPE }, body = huge() }
  elseif kind == "http_500" or kind == "http_502" or kind == "http_503" then
    resp = html(tonumber(kind:sub(6)))
  elseif kind == "rate_limit" then
    resp = rate_limited(rule)
  elseif kind == "redirect_http" then
    local host = req.headers.host or req.headers[":authority"] or self.host
    local target = "http://" .. host .. req.path .. (req.query_string and ("?" .. req.query_string) or "")
    resp = { status = 302, headers = { location = target, ["content-type"] = "text/html" },
             body = "<html><body>Moved: <a href=\"" .. target .. "\">here</a></body></html>\n" }
  end
  return resp
end

-- The seam installed as `emu.faults` while rules are set (see Emulator:handle).
local function inject(self, req)
  local state = self.fault_state
  if not state or req.path:sub(1, #P + 1) == P .. "/" or req.path == P then return nil end
  state.requests[req.path] = (state.requests[req.path] or 0) + 1
  state.total = state.total + 1
  local rule = pick(state, req)
  if not rule then return nil end
  rule.injected = rule.injected + 1
  state.injected[rule.kind] = (state.injected[rule.kind] or 0) + 1
  return answer(self, rule, req)
end
M.inject = inject

---------------------------------------------------------------------------------------------
-- Emulator methods.

--- Sets the fault rules (see the top of this file); `rules` as from the control API.
-- @return true | nil, message
function methods:set_faults(rules, seed)
  if rules ~= nil and type(rules) ~= "table" then return nil, "rules must be a list" end
  local checked = {}
  for i, r in ipairs(rules or {}) do
    local rule, msg = check_rule(r, i)
    if not rule then return nil, msg end
    checked[i] = rule
  end
  if seed ~= nil and not is_int(seed, 0, 2 ^ 53) then return nil, "seed must be a non-negative integer" end
  self.fault_state = { rules = checked, seed = floor(seed or 1), rng = seed_state(seed), requests = {},
                       injected = {}, total = 0 }
  self.faults = inject
  return true
end

--- Removes every rule and counter. @return the number of rules removed, the per-kind counts
function methods:clear_faults()
  local state = self.fault_state
  self.fault_state, self.faults = nil, nil
  if not state then return 0, {} end
  return #state.rules, state.injected
end

--- The fault state as the control API shows it.
function methods:fault_report()
  local state = self.fault_state or { rules = {}, requests = {}, injected = {}, total = 0 }
  local rules = array()
  for i, r in ipairs(state.rules) do
    local out = {}
    for k, v in pairs(r) do out[k] = v end
    rules[i] = out
  end
  local injected, requests = {}, {}
  for k, v in pairs(state.injected) do injected[k] = v end
  for k, v in pairs(state.requests) do requests[k] = v end
  return { seed = state.seed, rules = rules, injected = injected, requests = requests,
           total = state.total }
end

function methods:ctl_faults()
  return json(200, self:fault_report())
end

function methods:ctl_faults_set(req)
  local p, perr = self:params(req, "bad_request")
  if not p then return perr end
  local ok, msg = self:set_faults(p.rules, p.seed)
  if not ok then return bad(msg) end
  return json(200, self:fault_report())
end

function methods:ctl_faults_clear()
  local n, injected = self:clear_faults()
  return json(200, { deleted = n, injected = injected })
end

---------------------------------------------------------------------------------------------
-- In-process transport: the Emulator's, plus the faults that need a socket, reported the way
-- the libcurl engine reports them (`nil, code, message`).

local MAX_BODY = 1024 * 1024   -- the client's response cap

--- An in-process transport for the client library: `fn(request) -> response | nil, code, msg`.
-- request = `{ method, url, headers (lowercase keys), body, timeout (seconds) }`.
function methods:transport()
  return function(request)
    local resp = self:handle(self:transport_request(request))
    local fault = resp.fault
    local limit = tonumber(request.timeout) or 10
    if fault then
      resp.fault = nil
      local kind = fault.kind
      if kind == "delay" then
        local wait = fault.ms / 1000
        core.sleep(min(wait, limit))
        if wait >= limit then return nil, "timeout", "operation timed out (injected delay)" end
      elseif kind == "slow_headers" then
        core.sleep(limit)
        return nil, "timeout", "operation timed out (injected slow headers)"
      elseif kind == "close_before_headers" then
        return nil, "bad_response", "empty reply from server (injected close)"
      elseif kind == "close_after_headers" or kind == "truncate" then
        return nil, "bad_response", "connection closed in the middle of the answer (injected " .. kind .. ")"
      end
    end
    if #(resp.body or "") > MAX_BODY then
      return nil, "too_large", "response larger than " .. MAX_BODY .. " bytes"
    end
    return resp
  end
end

function M.reset(self)
  self.fault_state = nil
  self.faults = nil
end

return M
