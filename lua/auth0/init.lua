--- lua-auth0: the Auth0 Authentication API for embedded (non-browser) login.
-- The module table: `auth0.new` (lua/auth0/client.lua), the error type, the OTP helpers and
-- `auth0.await`. Every network method blocks and returns `result` or `nil, err`; given a
-- trailing callback `function(result, err)` it returns a request object at once and the
-- callback runs later from `client:poll(ms)`.
local core = require "auth0.core"
local errors = require "auth0.error"
local check = require "auth0.check"
local client = require "auth0.client"
require "auth0.login"
require "auth0.mfa"
require "auth0.link"

local select, type, tostring = select, type, tostring
local unpack = table.unpack or unpack -- luacheck: ignore 113 143

local _M = { _VERSION = core.version, error = errors, core = core, Client = client.Client, new = client.new }

local otp = require "auth0.otp"
_M.totp = otp.totp
_M.hotp = otp.hotp
_M.parse_otpauth = otp.parse_otpauth
_M.qr = require("auth0.qr").encode

local AWAIT = check.at("await", 2)

--- Inside a coroutine, starts `client[method](client, ...)` with a callback and yields until
-- it completes; returns what the callback got. The coroutine is resumed from the client's run
-- queue during `client:poll`, after the callback has returned (never from inside it), so it
-- may start requests and `await` again; like a callback it may call every client method but
-- `poll` (which returns `nil, err`, `reentrant`). An error it raises goes to
-- `on_callback_error`.
-- @param client_ an auth0.Client
-- @tparam string method a network method's name, e.g. "passwordless_login"
-- @return the results of the call; raises outside a coroutine or for an unknown method
function _M.await(client_, method, ...)
  local co, main = coroutine.running()
  if not co or main then check.argerror("await", 1, "auth0.await must be called inside a coroutine") end
  local fn = type(method) == "string" and method:sub(1, 1) ~= "_" and client_[method]
  if type(fn) ~= "function" then AWAIT:fail("unknown method " .. tostring(method)) end
  local results, done
  local s = client_._sched
  local args = { n = select("#", ...) + 1, ... }
  args[args.n] = function(...)
    results, done = { n = select("#", ...), ... }, true
    if coroutine.status(co) == "suspended" then
      s:push(function()
        local ok, msg = coroutine.resume(co)
        if not ok then error(debug.traceback(co, msg), 0) end
      end)
    end
  end
  local r, err = fn(client_, unpack(args, 1, args.n))
  if r == nil and not done then return nil, err end   -- the start failed: nothing was queued
  while not done do coroutine.yield() end
  return unpack(results, 1, results.n)
end

--- A loopback listener for one magic-link redirect (lua/auth0/loopback.lua).
function _M.loopback(opts) return require("auth0.loopback").new(opts) end

return _M
