--- Emulator module: magic links opened in a browser (`GET /passwordless/verify_redirect`) and
-- the authorization_code grant on /oauth/token (docs/protocol.md "2.5 Magic link format (for
-- `send=link`)", "2.4 Server semantics to emulate (passwordless code)").
-- Control route of this module (JSON):
--   POST /__emulator/callbacks {client_id, callbacks = [url, ...]} -> {client_id, callbacks}
--        the client's allowed callback URLs (exact match, as Auth0 compares them)
-- Choices where the protocol document infers ([INF], each also in docs/protocol.md 2.5):
-- a wrong, superseded, used or expired link redirects with error=access_denied and the OTP
-- grant's "Wrong email or verification code." text; an unknown client or a redirect_uri that
-- is not allowed cannot be redirected to and gets a 400 page; codes live 60 s, one use; the
-- authorization_code grant is allowed for clients that have callback URLs; an allowed
-- "http://127.0.0.1/path" admits any loopback port.
-- luacheck: ignore 212/self
local core = require "auth0.core"
local util = require "auth0.emulator.util"

local type, ipairs, tostring = type, ipairs, tostring
local lower = string.lower

local err = util.error

local M = { methods = {} }
local methods = M.methods

M.routes = {
  { "GET", "/passwordless/verify_redirect", "verify_redirect" },
  { "POST", "/__emulator/callbacks", "ctl_callbacks" },
}
M.grants = { authorization_code = "grant_authorization_code" }

local CODE_TTL = 60  -- [INF] authorization code lifetime, seconds

M.reset = function(self)
  self.auth_codes = {}
  self.callbacks = {}
end

local function page(status, text)
  -- Auth0 shows an HTML error page when it cannot redirect; the emulator keeps it short.
  local r = util.text(status, text)
  r.headers["content-type"] = "text/html; charset=utf-8"
  r.body = "<!doctype html><title>Error</title><p>" .. text:gsub("[<>&]", "") .. "</p>"
  return r
end

local function redirect(uri, fields, fragment)
  local q = util.build_query(fields)
  local sep = fragment and "#" or (uri:find("?", 1, true) and "&" or "?")
  return { status = 302, headers = { location = uri .. sep .. q, ["content-type"] = "text/plain" },
           body = "Found. Redirecting to " .. uri }
end

-- [INF] an allowed "http://127.0.0.1/path" matches that path on any port (RFC 8252 7.3:
-- native apps listen on whatever port is free); every other URL must match exactly.
function methods:callback_allowed(client_id, uri)
  local anyport = uri:gsub("^http://127%.0%.0%.1:%d+/", "http://127.0.0.1/")
  for _, u in ipairs(self.callbacks[client_id] or {}) do
    if u == uri or u == anyport then return true end
  end
  return false
end

--- POST /__emulator/callbacks: sets a client's allowed callback URLs.
function methods:ctl_callbacks(req)
  local p, perr = self:params(req)
  if not p then return perr end
  if type(p.client_id) ~= "string" or not self.clients[p.client_id] then
    return err(400, "bad_request", "unknown client_id")
  end
  local list = util.array({})
  for i, u in ipairs(type(p.callbacks) == "table" and p.callbacks or {}) do list[i] = tostring(u) end
  self.callbacks[p.client_id] = list
  return util.json(200, { client_id = p.client_id, callbacks = list })
end

-- The transaction of a link, or nil (the same key as the OTP grant's transaction).
local function find_tx(self, client_id, conn, identifier)
  if conn.strategy == "email" then identifier = lower(identifier) end
  local key = client_id .. "\0" .. conn.name .. "\0" .. identifier
  return self.passwordless_tx[key], key
end

-- The user of a verified link, created at first login as the OTP grant does; or nil, error text.
local function link_user(self, conn, identifier)
  local user = self:find_user(conn, identifier)
  if not user then
    if conn.disable_signup then return nil, "Public signup is disabled" end
    local u = { connection = conn.name }
    u[conn.strategy == "sms" and "phone_number" or "email"] = identifier
    user = assert(self:put_user(u))
  end
  if user.blocked then return nil, "user is blocked" end
  user.last_login = self:now()
  return user
end

-- Adds `nonce` to the ID token of a token response (issue_tokens knows no nonce), and with
-- `at_hash` the hash binding the access token (OIDC Core 3.2.2.10, implicit answers).
local function with_nonce(self, resp, nonce, at_hash)
  if resp.status ~= 200 or not (nonce or at_hash) then return resp end
  local body = util.decode(resp.body)
  local claims = body.id_token and self:verify_jwt(body.id_token)
  if claims then
    claims.nonce = nonce
    if at_hash and body.access_token then
      claims.at_hash = core.b64url_encode(core.sha256(body.access_token):sub(1, 16))
    end
    body.id_token = self:sign_jwt(claims)
    resp.body = util.encode(body)
  end
  return resp
end

--- GET /passwordless/verify_redirect: checks the link as the OTP grant checks a code, then
-- redirects to redirect_uri with a code (response_type=code) or fragment tokens.
function methods:verify_redirect(req)
  local q = req.query
  local client = type(q.client_id) == "string" and self.clients[q.client_id]
  if not client then return page(400, "Unknown client.") end
  local uri = q.redirect_uri
  if type(uri) ~= "string" or not self:callback_allowed(client.client_id, uri) then
    return page(400, "Callback URL mismatch. The redirect_uri is not in the application's allowed callback URLs.")
  end
  local rtype = q.response_type or "code"
  local implicit = rtype ~= "code"
  local function fail(code, text)
    return redirect(uri, { error = code, error_description = text, state = q.state }, implicit)
  end
  if rtype ~= "code" and rtype ~= "token id_token" and rtype ~= "id_token token" and rtype ~= "id_token" then
    return redirect(uri, { error = "unsupported_response_type", error_description = "Unsupported response type: "
                           .. rtype, state = q.state })
  end
  -- the methods the discovery document lists; another one must not be compared as plain
  if q.code_challenge ~= nil and q.code_challenge_method ~= nil and q.code_challenge_method ~= "S256"
      and q.code_challenge_method ~= "plain" then
    return fail("invalid_request", "Invalid code_challenge_method")
  end
  local conn = type(q.connection) == "string" and self.connections[q.connection]
  local field = conn and conn.strategy == "sms" and "phone_number" or "email"
  local identifier = q[field]
  if not conn or type(identifier) ~= "string" then return fail("invalid_request", "the connection was not found") end
  local wrong = field == "phone_number" and "Wrong phone number or verification code."
                or "Wrong email or verification code."
  local tx, key = find_tx(self, client.client_id, conn, identifier)
  if not tx or tx.expires_at <= self:now() then return fail("access_denied", wrong) end
  if tx.failures >= 3 then
    return fail("access_denied", "You've reached the maximum number of attempts. Please try to login again.")
  end
  if q.verification_code ~= tx.code then
    tx.failures = tx.failures + 1
    return fail("access_denied", wrong)
  end
  self.passwordless_tx[key] = nil  -- a used link is gone
  local user, uerr = link_user(self, conn, identifier)
  if not user then return fail(uerr == "user is blocked" and "unauthorized" or "access_denied", uerr) end
  local login = { grant_type = "authorization_code", audience = q.audience ~= "" and q.audience or nil,
                  scope = q.scope, connection = conn.name }
  if not implicit then
    local code = self:random_hex(16)
    self.auth_codes[code] = { client_id = client.client_id, redirect_uri = uri, user_id = user.user_id,
      user = user, login = login, nonce = q.nonce, expires_at = self:now() + CODE_TTL,
      challenge = q.code_challenge, method = q.code_challenge_method or "plain" }
    return redirect(uri, { code = code, state = q.state })
  end
  local gate = self:mfa_gate(user, client, login)
  if gate then
    local b = util.decode(gate.body) or {}
    return fail(b.error or "access_denied", b.error_description or "Multifactor authentication required")
  end
  local resp = with_nonce(self, self:issue_tokens(user, client, login), q.nonce, rtype ~= "id_token")
  local body = util.decode(resp.body)
  local out = { id_token = body.id_token, state = q.state, token_type = body.token_type,
                expires_in = tostring(body.expires_in) }
  if rtype ~= "id_token" then out.access_token = body.access_token end
  return redirect(uri, out, true)
end

--- The authorization_code grant: one use, CODE_TTL seconds, bound to the client and the
-- redirect_uri, PKCE (S256 or plain) checked when the link carried a code_challenge.
function methods:grant_authorization_code(req, params)
  local client, authenticated = self:authenticate_client(req, params)
  if not client then return err(403, "unauthorized_client", "invalid client") end
  if client.confidential and not authenticated then return err(401, "access_denied", "Unauthorized") end
  if #(self.callbacks[client.client_id] or {}) == 0 then
    return err(403, "unauthorized_client", "Grant type 'authorization_code' not allowed for the client.",
               { error_uri = "https://auth0.com/docs/clients/client-grant-types" })
  end
  if type(params.code) ~= "string" or params.code == "" then
    return err(400, "invalid_request", "Missing required parameter: code")
  end
  local entry = self.auth_codes[params.code]
  self.auth_codes[params.code] = nil  -- one presentation, whatever its outcome
  if not entry or entry.expires_at <= self:now() or entry.client_id ~= client.client_id then
    return err(403, "invalid_grant", "Invalid authorization code")
  end
  if params.redirect_uri ~= entry.redirect_uri then
    return err(403, "invalid_grant", "Invalid redirect_uri")  -- [INF] wording
  end
  if entry.challenge then
    local v = params.code_verifier
    local ok = type(v) == "string" and v ~= ""
      and (entry.method == "S256" and core.b64url_encode(core.sha256(v)) or v) == entry.challenge
    if not ok then return err(403, "invalid_grant", "Failed to verify code verifier") end
  end
  local gate = self:mfa_gate(entry.user, client, entry.login)
  if gate then return gate end
  return with_nonce(self, self:issue_tokens(entry.user, client, entry.login), entry.nonce)
end

return M
