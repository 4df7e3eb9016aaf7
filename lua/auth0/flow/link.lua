--- auth0.flow's magic-link login (`flow.login{ send = "link", ... }`): the states
-- sending_link and awaiting_link, completed by `f:submit_link(url)` (the link itself) or
-- `f:submit_callback(url)` (the redirect the browser got, with `redirect_uri`); MFA after a
-- link goes on as after a code (lua/auth0/flow.lua documents the states). Internal.
-- @local
if rawget(_G, "jit") then rawget(_G, "jit").off(true, true) end -- LuaJIT: interpreted (tracing it in a frame costs more than it saves)
local machine = require "auth0.flow.machine"
local check = require "auth0.check"

local type, tostring, getmetatable = type, tostring, getmetatable
local Flow, misuse, bad_self, set_state, finish = machine.Flow, machine.misuse, machine.bad_self, machine.set_state,
  machine.finish

local _M = {}

-- After these the user cannot go on by pasting another link or resending.
local FATAL = { misconfigured = true, user_blocked = true }

-- A link step's answer: done, MFA, back to awaiting_link with f.error, or failed.
local function on_answer(f)
  return function(tokens, e)
    if tokens then return finish(f, "done", nil, tokens) end
    if e.reason == "mfa_required" then
      if type(e.mfa_token) ~= "string" then return finish(f, "failed", e) end
      f._mfa_token, f.mfa_requirements = e.mfa_token, e.mfa_requirements
      return machine.chain(f, function() machine.list_authenticators(f) end)
    end
    if FATAL[e.reason] then return finish(f, "failed", e) end
    set_state(f, "awaiting_link", e)
  end
end

local launch = machine.launch

--- Sends the link (state sending_link, then awaiting_link; a failed first send fails the flow).
function _M.send_link(f)
  local first = f._sent_at == nil
  local lb = f._loopback
  if lb and not lb._sock then
    -- closed by the callback of an earlier link (an expired one): the new link needs it open
    local ok, e = lb:reopen()
    if not ok then
      if first then return finish(f, "failed", e) end
      return set_state(f, "awaiting_link", e)
    end
    f._redirect_uri = lb.redirect_uri
  end
  local p = { connection = f.connection, send = "link", language = f._language, redirect_uri = f._redirect_uri,
    response_type = f._redirect_uri and f._response_type or nil }
  -- the login's scope and audience travel in authParams, for the code exchange too
  p.auth_params = { scope = f.scope, audience = f.audience }
  p[f._id_field] = f.identifier
  local client = f._client
  launch(f, "sending_link", function(cb)
    return client:passwordless_start(p, function(r, e, link)
      if link then f._link = link end
      cb(r, e)
    end)
  end, function(_, e)
    if e then
      if first then return finish(f, "failed", e) end
      return set_state(f, "awaiting_link", e)
    end
    f._sent_at, f._sends = os.time(), f._sends + 1
    if lb and f._link then
      lb.state = f._link.state   -- a resend moves the listener on to the new link
      if not lb._timer then
        lb:attach(client, function(url, err)
          if f.state ~= "awaiting_link" then return end
          if url then return f:submit_callback(url) end
          set_state(f, "awaiting_link", err)
        end)
      end
    end
    set_state(f, "awaiting_link")
  end)
end

--- Reads the link options of flow.login into `f`; `a` reports misuse (check.at).
function _M.configure(f, opts, a)
  if opts.send ~= "link" then a:fail("send must be \"code\" or \"link\", got " .. check.show(opts.send)) end
  if opts.redirect_uri ~= nil and type(opts.redirect_uri) ~= "string" then
    a:fail("field 'redirect_uri': string expected, got " .. type(opts.redirect_uri))
  end
  local lb = opts.loopback
  if lb ~= nil then
    if getmetatable(lb) ~= require("auth0.loopback").Loopback then
      a:fail("field 'loopback': auth0.Loopback expected, got " .. type(lb))
    end
    if opts.redirect_uri ~= nil then a:fail("give redirect_uri or loopback, not both") end
    if opts.response_type ~= nil and opts.response_type ~= "code" then
      a:fail("a loopback listener needs response_type \"code\"")
    end
    f._loopback = lb
  end
  f._redirect_uri = lb and lb.redirect_uri or opts.redirect_uri
  f._response_type, f.send = opts.response_type or "code", "link"
end

local function expect_link(f, method)
  machine.flow_self(f, method)
  if f.state ~= "awaiting_link" then bad_self(method, "called in state '" .. tostring(f.state) .. "'") end
end

local function check_url(url, fn)
  if type(url) ~= "string" then misuse(fn, 1, "string expected, got " .. type(url)) end
  if url == "" then misuse(fn, 1, "url must not be empty") end
  return url
end

--- Logs in with the link itself, e.g. pasted by the user (state awaiting_link). Goes to
-- verifying, then done, MFA, or awaiting_link with `f.error` (an `invalid_link`, a used or
-- expired link: resend_link or paste another).
-- @tparam string url the magic link
function Flow:submit_link(url)
  expect_link(self, "submit_link")
  check_url(url, "submit_link")
  local client, o = self._client, { audience = self.audience, scope = self.scope }
  launch(self, "verifying", function(cb) return client:passwordless_login_link(url, o, cb) end, on_answer(self))
end

--- Completes the login from the URL the browser was redirected to (state awaiting_link,
-- flows started with `redirect_uri`): state, code exchange or fragment tokens, nonce.
-- @tparam string url the callback URL
function Flow:submit_callback(url)
  expect_link(self, "submit_callback")
  check_url(url, "submit_callback")
  if not self._link then bad_self("submit_callback", "the flow was not started with redirect_uri") end
  local client, link = self._client, self._link
  launch(self, "verifying", function(cb) return client:passwordless_complete_link(url, link, cb) end, on_answer(self))
end

--- Sends a new link (state awaiting_link); the old one stops working.
function Flow:resend_link()
  expect_link(self, "resend_link")
  _M.send_link(self)
end

return _M
