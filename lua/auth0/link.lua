--- Magic links (docs/protocol.md "2.5 Magic link format (for `send=link`)"): logging in from
-- the link itself (the OTP grant), or from the redirect a browser gets when it opens the link
-- (the authorization_code grant, or tokens in the fragment). Adds methods to auth0.Client.
local core = require "auth0.core"
local check = require "auth0.check"
local shape = require "auth0.shape"
local errors = require "auth0.error"
local Client = require("auth0.client").Client
require "auth0.login"

local type, pairs, tostring, tonumber = type, pairs, tostring, tonumber
local at = check.at

local M = {}

local LOGIN_LINK, COMPLETE = at("passwordless_login_link", 1), at("passwordless_complete_link", 1)
local START = at("passwordless_start")
local O_CODE = { fn = "passwordless_complete_link" }
local VERIFY_PATH = "/passwordless/verify_redirect"
local RESPONSE_TYPES = { code = true, ["token id_token"] = true, ["id_token token"] = true, id_token = true }

local function unescape(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(q, t)
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = unescape(k)
    if k ~= "" then
      if t[k] ~= nil then return nil end  -- a repeated name is ambiguous: refuse the URL
      t[k] = unescape(v)
    end
  end
  return t
end

--- Splits a URL into `{ base (scheme://host[:port]/path), scheme, authority, path, params }`
-- where params merges the query and the fragment; nil when it is not an absolute URL.
function M.parse(url)
  if type(url) ~= "string" or #url > 8192 or url:find("[%s%c]") then return nil end
  local scheme, authority, rest = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil end
  local path, query, fragment = rest:match("^([^?#]*)%??([^#]*)#?(.*)$")
  local params = parse_query(query, {})
  params = params and parse_query(fragment, params)
  if not params then return nil end
  return { scheme = scheme:lower(), authority = authority:lower(), path = path ~= "" and path or "/",
           params = params, base = scheme:lower() .. "://" .. authority .. path }
end

local function invalid(why)
  return errors.new("invalid_link", "not a magic link of this application: " .. why,
                    { reason = "invalid_link" })
end

-- Runs `cb(nil, err)` from the next poll, as a request of `where` (nothing is sent).
local function fail_later(self, where, name, cb, e)
  if self._sched.closed then where:fail("attempt to use a closed auth0.Client") end
  local req = self._sched:request(name, cb)
  self._sched:push(function() req:finish(nil, e) end, req)
  return req
end

-- The OTP grant's fields from a link, or nil, why.
local function link_fields(self, url)
  local u = M.parse(url)
  if not u then return nil, "not an absolute URL" end
  local cfg = self._cfg
  local mine = cfg.base_url:match("^%a+://(.*)$"):lower()
  if u.scheme .. "://" .. u.authority ~= cfg.base_url:match("^%a+"):lower() .. "://" .. mine then
    return nil, "another host"
  end
  if u.path ~= VERIFY_PATH then return nil, "not " .. VERIFY_PATH end
  local p = u.params
  if p.client_id ~= cfg.client_id then return nil, "another client_id" end
  if type(p.verification_code) ~= "string" or not p.verification_code:find("^%w+$") then
    return nil, "no verification_code"
  end
  if type(p.connection) ~= "string" or p.connection == "" then return nil, "no connection" end
  local username = p.email or p.phone_number
  if type(username) ~= "string" or username == "" or (p.email and p.phone_number) then
    return nil, "no email or phone_number"
  end
  return { realm = p.connection, username = username, otp = p.verification_code, scope = p.scope,
           audience = p.audience }
end

--- Logs in from a magic link itself (native apps, a pasted link): the OTP grant with the
-- link's verification_code, connection and email or phone_number.
-- @tparam string url the link
-- @tparam[opt] table opts `audience`, `scope` (default: the link's, then the client's)
-- @tparam[opt] function cb callback(tokens, err)
-- @return tokens, or nil, err: `err.code == "invalid_link"` (nothing sent) for a malformed
-- link or one of another host or client; else as passwordless_login (e.g. `mfa_required`)
function Client:passwordless_login_link(url, opts, cb)
  local cbn = 3   -- the callback's position, for misuse
  if type(opts) == "function" and cb == nil then opts, cb, cbn = nil, opts, 2 end
  check.string(LOGIN_LINK, url, "url")
  if opts ~= nil then check.table(at("passwordless_login_link", 2), opts) end
  if cb ~= nil then check.func(at("passwordless_login_link", cbn), cb, "callback") end
  local f, why = link_fields(self, url)
  if not f then
    local e = invalid(why)
    if self._on_log then self:_log("info", "magic link refused", { reason = why }) end
    if cb then return fail_later(self, LOGIN_LINK, "passwordless_login", cb, e) end
    return nil, e
  end
  opts = opts or {}
  f.audience = opts.audience or f.audience
  f.scope = opts.scope or f.scope
  return self:passwordless_login(f, cb)
end

---------------------------------------------------------------------------------------------
-- From the redirect: passwordless_start{ send = "link", redirect_uri = ... } and the completion.

local function random(n) return core.b64url_encode(core.random_bytes(n)) end

local start = Client.passwordless_start

-- passwordless_start with `redirect_uri` or `response_type` (auth0.login documents them):
-- also sets `response_type` ("code" default, or "token id_token"), `scope`, and fresh
-- `state`, `nonce` (and a PKCE challenge for "code") in `auth_params`; answers result, link
-- (`{ state, nonce, code_verifier, redirect_uri }`, the secrets the completion needs).
function Client:_start_link(p, cb)
  local redirect_uri = check.string(START, p.redirect_uri, "redirect_uri")
  if not redirect_uri:find("^%a[%w+.-]*://[^%s#]+$") then START:fail("redirect_uri must be an absolute URL") end
  local rtype = p.response_type == nil and "code" or p.response_type
  if not RESPONSE_TYPES[rtype] then START:fail("response_type must be code or token id_token, got " .. check.show(rtype)) end
  if p.send ~= nil and p.send ~= "link" then START:fail("redirect_uri needs send = \"link\"") end
  if p.auth_params ~= nil then check.table(START, p.auth_params, "auth_params") end
  local link = { state = random(24), nonce = random(24), redirect_uri = redirect_uri }
  local ap = {}
  for k, v in pairs(p.auth_params or {}) do ap[k] = v end
  ap.redirect_uri, ap.response_type, ap.state, ap.nonce = redirect_uri, rtype, link.state, link.nonce
  ap.scope = ap.scope or self._cfg.scope
  ap.audience = ap.audience or self._cfg.audience
  if rtype == "code" then
    link.code_verifier = random(32)
    ap.code_challenge = core.b64url_encode(core.sha256(link.code_verifier))
    ap.code_challenge_method = "S256"
  end
  local q = {}
  for k, v in pairs(p) do q[k] = v end
  q.redirect_uri, q.response_type, q.send, q.auth_params = nil, nil, "link", ap
  if cb == nil then
    local r, e = start(self, q)
    if r == nil then return nil, e end
    return r, link
  end
  check.func(START, cb, "callback")
  return start(self, q, function(r, e) cb(r, e, r ~= nil and link or nil) end)
end

-- Checks the ID token's nonce (and signature and claims) as verify_id_token does, with the
-- client's key set (refetched for a rotated key) and its pinned algorithm; then calls
-- done(tokens) or done(nil, err), from the callback when `async`. With `bind` (tokens from
-- the fragment) the ID token's at_hash must match the access token (OIDC Core 3.2.2.9).
local function check_nonce(self, tokens, nonce, done, async, bind)
  local tok = tokens.id_token
  if tok == nil then
    return done(nil, errors.new("invalid_id_token", "the answer has no id_token to check the nonce against"))
  end
  local function after(claims, err)
    if not claims then
      if errors.is(err) then return done(nil, err) end
      return done(nil, errors.new("invalid_id_token", tostring(err)))
    end
    if bind and tokens.access_token ~= nil
        and claims.at_hash ~= core.b64url_encode(core.sha256(tokens.access_token):sub(1, 16)) then
      return done(nil, errors.new("invalid_id_token", "the id token's at_hash does not match the access token"))
    end
    return done(tokens)
  end
  -- the token came from the network: a value verify_id_token would refuse as misuse is invalid
  local ok, r1, r2 = pcall(self.verify_id_token, self, tok, { nonce = nonce }, async and after or nil)
  if not ok then return after(nil, errors.new("invalid_id_token", "the id_token cannot be verified")) end
  if not async then return after(r1, r2) end
end

--- Completes a link login from the redirect it led to: checks `state`, then exchanges the
-- `code` (authorization_code grant, with the PKCE verifier) or reads the fragment's tokens,
-- and checks the ID token's `nonce`.
-- @tparam string callback_url the URL the browser was sent to (query or fragment)
-- @tparam table link what passwordless_start returned: `state`, `nonce`, `code_verifier`,
-- `redirect_uri` (default: the callback URL without query and fragment)
-- @tparam[opt] function cb callback(tokens, err)
-- @return tokens, or nil, err: `invalid_link` (not a callback), `invalid_state` (nothing
-- sent), the callback's `error` as an auth0.Error, `invalid_id_token` (nonce), or the grant's
function Client:passwordless_complete_link(callback_url, link, cb)
  check.string(COMPLETE, callback_url, "callback_url")
  local at2 = at("passwordless_complete_link", 2)   -- the link's fields are argument #2's
  check.table(at2, link, "a table { state, nonce }")
  local state = check.string(at2, link.state, "state")
  local nonce = check.string(at2, link.nonce, "nonce")
  if cb ~= nil then check.func(at("passwordless_complete_link", 3), cb, "callback") end
  local u = M.parse(callback_url)
  local e
  if not u then
    e = invalid("the callback is not an absolute URL")
  elseif u.params.state ~= state then
    -- first: an error answer carries the state too (RFC 6749 4.1.2.1), and one without it is forged
    e = errors.new("invalid_state", "the callback's state is not this login's", { reason = "invalid_state" })
  elseif u.params.error then
    e = errors.from_callback(u.params, "magic link")
  elseif not u.params.code and not u.params.id_token then
    e = invalid("the callback has no code and no tokens")
  end
  if e then
    if self._on_log then self:_log("info", "magic link callback refused", { code = e.code }) end
    if cb then return fail_later(self, COMPLETE, "passwordless_complete_link", cb, e) end
    return nil, e
  end
  local p = u.params
  local tokens
  if p.code then
    local cfg = self._cfg
    local fields = { client_id = cfg.client_id, client_secret = cfg.client_secret, code = p.code,
      redirect_uri = link.redirect_uri or u.base, code_verifier = link.code_verifier }
    if cb == nil then
      local t, terr = self:_call(COMPLETE, "authorization_code", fields, O_CODE, nil, shape.tokens)
      if not t then return nil, terr end
      tokens = t
    else
      if self._sched.closed then COMPLETE:fail("attempt to use a closed auth0.Client") end
      local req = self._sched:request("passwordless_complete_link", cb)
      local function done(...) req:finish(...) end
      local ok, serr = self:_attempts(req, "authorization_code", fields, O_CODE, shape.tokens, function(t, terr)
        if not t then return done(nil, terr) end
        check_nonce(self, t, nonce, done, true)
      end)
      if not ok then return nil, serr end
      return req
    end
  else
    tokens = shape.tokens({ access_token = p.access_token, id_token = p.id_token, token_type = p.token_type,
      expires_in = tonumber(p.expires_in), scope = p.scope })
    if not tokens then tokens = { id_token = p.id_token, token_type = p.token_type } end
    if cb then
      if self._sched.closed then COMPLETE:fail("attempt to use a closed auth0.Client") end
      local req = self._sched:request("passwordless_complete_link", cb)
      check_nonce(self, tokens, nonce, function(...) req:finish(...) end, true, true)
      return req
    end
  end
  local result, rerr
  check_nonce(self, tokens, nonce, function(t, ee) result, rerr = t, ee end, false, p.code == nil)
  return result, rerr
end

return M
