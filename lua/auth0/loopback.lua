--- auth0.loopback: receives one OAuth redirect on 127.0.0.1 (RFC 8252 section 7.3), for a
-- magic link opened in the browser of the same computer (desktop games, the CLI).
--
--   local lb = auth0.loopback{ port = 0 }            -- any free port
--   local sent, link = client:passwordless_start{ connection = "email", email = e,
--     send = "link", redirect_uri = lb.redirect_uri }
--   lb.state = link.state                             -- other states are refused
--   lb:attach(client, function(url, err)              -- runs from client:poll
--     client:passwordless_complete_link(url, link, on_tokens)
--   end)
--
-- Non-blocking: `attach` steps the listener from a timer of the client's, so the game
-- loop's `client:poll(0)` drives it. The listener closes after one valid callback (its path,
-- a `code` or an `error`, the expected `state`) or at its timeout. The browser gets a
-- short page; other requests get 404 or 400 and the listener goes on.
--
-- `state` is required: `step` and `attach` raise until it is set. Without it the first
-- request with a `code` would be taken, and any local process or web page can send one
-- (login CSRF: the victim ends up logged in as the attacker).
local core = require "auth0.core"
local check = require "auth0.check"
local errors = require "auth0.error"

local type, pairs, setmetatable, getmetatable, error = type, pairs, setmetatable, getmetatable, error
local now = core.now
local at = check.at

local M = {}

local Loopback = { __name = "auth0.Loopback" }
M.Loopback = Loopback

-- `lb.state` lives beside the listener, not in it: a listener raised from a callback, or
-- walked field by field by a logger, does not show the link's state. Weak keys: strings only.
local states = setmetatable({}, { __mode = "k" })
function Loopback.__index(self, k)
  if k == "state" then return states[self] end
  return Loopback[k]
end
function Loopback.__newindex(self, k, v)
  if k == "state" then states[self] = v else rawset(self, k, v) end
end

local NEW = at("loopback", 1)
local OPTS = { port = true, path = true, timeout = true, page = true, interval = true }
local PAGE = "<!doctype html><meta charset=utf-8><title>Signed in</title>"
  .. "<p>You are signed in. You can close this window and return to the application.</p>"
local BAD = "<!doctype html><meta charset=utf-8><title>Error</title><p>This is not the expected sign-in answer.</p>"

--- Opens the listener on 127.0.0.1.
-- @tparam[opt] table opts `port` (0: any free port), `path` ("/callback"), `timeout`
-- (seconds, 300), `page` (the HTML the browser gets), `interval` (seconds between steps
-- when attached, 0.05)
-- @return the listener (`redirect_uri`, `port`, settable `state`), or nil, err when the
-- port cannot be bound; raises on misuse
function M.new(opts)
  opts = opts == nil and {} or opts
  check.table(NEW, opts, "an options table")
  for k in pairs(opts) do if not OPTS[k] then NEW:fail("unknown option " .. check.show(k)) end end
  local port = opts.port == nil and 0 or opts.port
  if type(port) ~= "number" or port % 1 ~= 0 or port < 0 or port > 65535 then NEW:fail("port must be an integer in 0..65535") end
  local path = check.string(NEW, opts.path, "path", true) or "/callback"
  if not path:find("^/[%w%-%._~/]*$") then NEW:fail("path must start with / and use only unreserved characters") end
  local sock, bound = core.listen(port)
  if not sock then return nil, errors.new("network", "cannot listen on 127.0.0.1:" .. port .. ": " .. bound) end
  return setmetatable({
    port = bound, path = path, redirect_uri = "http://127.0.0.1:" .. bound .. path,
    _sock = sock, _timeout = check.seconds(NEW, opts.timeout, "timeout", 300),
    _page = check.string(NEW, opts.page, "page", true) or PAGE,
    _interval = check.seconds(NEW, opts.interval, "interval", 0.05),
  }, Loopback):_started()
end

-- A method called with another self (`lb.step()` for `lb:step()`): Lua's words, at the caller.
local function loopback_self(self, fn)
  if getmetatable(self) ~= Loopback then
    error(("calling '%s' on bad self (auth0.Loopback expected, got %s)"):format(fn, type(self)), check.user_level())
  end
end

function Loopback:_started()
  self._deadline = now() + self._timeout
  return self
end

--- Opens the listener again once it has closed (after a callback, a timeout or close), for
-- a new link: on the same port when it is free, else on another (`redirect_uri` follows);
-- the timeout starts again.
-- @return true, or nil, err when no port can be bound
function Loopback:reopen()
  loopback_self(self, "reopen")
  if self._sock then return true end
  local sock, bound = core.listen(self.port)
  if not sock then sock, bound = core.listen(0) end
  if not sock then return nil, errors.new("network", "cannot listen on 127.0.0.1: " .. bound) end
  self._sock, self.port, self.redirect_uri = sock, bound, "http://127.0.0.1:" .. bound .. self.path
  self:_started()
  return true
end

local function query_has(q, name, value)
  for pair in q:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if k == name then
      if value == nil then return v ~= "" end
      return (v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) == value
    end
  end
  return false
end

--- One non-blocking step: accepts and reads what has arrived.
-- @return the callback URL (the listener is then closed), or nil while waiting, or nil, err
-- (`timeout`, or `cancelled` once closed); raises when `state` is not set
-- A listener used before its `state` is set: luaL_argerror's words for self, at the caller.
local function need_state(self, fn)
  loopback_self(self, fn)
  local st = self.state
  if type(st) ~= "string" or st == "" then
    error(("calling '%s' on bad self (state is not set: set lb.state to the link's state first)"):format(fn),
      check.user_level())
  end
end

function Loopback:step()
  need_state(self, "step")
  local sock = self._sock
  if not sock then return nil, errors.new("cancelled", "the loopback listener is closed") end
  while true do
    local target = sock:step()
    if not target then break end
    local p, q = target:match("^([^?#]*)%??([^#]*)")
    if p ~= self.path then
      sock:reply(404, "")
    elseif not (query_has(q, "code") or query_has(q, "error"))
        or not query_has(q, "state", self.state) then
      sock:reply(400, BAD)
    else
      sock:reply(200, self._page)
      self:close()
      return "http://127.0.0.1:" .. self.port .. target
    end
  end
  if now() >= self._deadline then
    self:close()
    return nil, errors.new("timeout", "no browser came back to " .. self.redirect_uri, { context = "loopback" })
  end
  return nil
end

--- Steps the listener from `client`'s poll until it has the callback or gives up, then
-- calls `cb(url)` or `cb(nil, err)` once (as a callback: errors go to on_callback_error).
-- @param client an auth0.Client
-- @tparam function cb
-- @return true; raises when `state` is not set (set it from passwordless_start's link)
function Loopback:attach(client, cb)
  need_state(self, "attach")
  if getmetatable(client) ~= require("auth0.client").Client then
    check.argerror("attach", 1, "auth0.Client expected, got " .. type(client))
  end
  check.func(at("attach", 2), cb, "callback")
  local function tick()
    self._timer = nil
    local url, err = self:step()
    if url or err then return client:_deliver(cb, url, err) end
    self._timer = client:_after(self._interval, tick)
  end
  self._client = client
  self._timer = client:_after(0, tick)
  return true
end

--- Closes the listener (idempotent); an attached wait ends without calling back.
-- @return true
function Loopback:close()
  loopback_self(self, "close")
  if self._timer and self._client then self._client:_cancel_timer(self._timer) end
  self._timer = nil
  if self._sock then self._sock:close() end
  self._sock = nil
  return true
end

function Loopback:__tostring()
  return "auth0.Loopback (" .. (self._sock and self.redirect_uri or "closed") .. ")"
end

return M
