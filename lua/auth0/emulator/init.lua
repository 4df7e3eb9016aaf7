--- Local Auth0 emulator: the `Emulator` object (state, virtual clock, router, body parsing,
-- client authentication). Endpoint logic lives in the feature modules (passwordless, tokens,
-- mfa, control, faults), which plug into the router and the grant table through `register`.
-- Pure Lua; runs under Lua 5.4 and LuaJIT (nginx). Crypto comes from the C module `auth0.core`.
-- Over HTTP it is served by `auth0.emulator.server`; in process it is a client's transport.
-- @module auth0.emulator
-- @usage
-- local emu = require("auth0.emulator").new{ base_url = "https://tenant.test" }
-- local client = require("auth0").new{ base_url = "https://tenant.test", client_id = "emu-native",
--                                      transport = emu:transport() }
-- assert(client:passwordless_start{ connection = "email", email = "a@example.com" })
-- local code = emu.outbox[#emu.outbox].code

-- luacheck: ignore 212/self
local core = require "auth0.core"
local util = require "auth0.emulator.util"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local setmetatable, xpcall, traceback = setmetatable, xpcall, debug.traceback
local unpack = rawget(table, "unpack") or rawget(_G, "unpack")
local concat = table.concat
local format, gsub, lower = string.format, string.gsub, string.lower
local os_time = os.time
local url_decode = util.url_decode

-- The module table doubles as the helper library (util's functions are re-exported).
local _M = { _VERSION = "0.1.0" }
for k, v in pairs(util) do _M[k] = v end

local Emulator = {}
Emulator.__index = Emulator
_M.Emulator = Emulator


-- -----------------------------------------------------------------------------------------
-- Feature modules. A module is a table with any of:
--   methods = { name = function(self, ...) }   mixed into Emulator (may override hooks)
--   routes  = { { method, path_or_pattern, handler_name, pattern = bool } }
--   grants  = { [grant_type] = handler_name }  dispatched by POST /oauth/token
--   reset   = function(self)                   called on new() and POST /__emulator/reset

local modules, routes, grants = {}, {}, {}

--- Registers a feature module (see above). Later registrations win for the same route/grant.
function _M.register(mod)
  modules[#modules + 1] = mod
  for name, fn in pairs(mod.methods or {}) do Emulator[name] = fn end
  for _, r in ipairs(mod.routes or {}) do
    routes[#routes + 1] = { method = r[1], path = r[2], handler = r[3], pattern = r.pattern }
  end
  for gt, handler in pairs(mod.grants or {}) do grants[gt] = handler end
end

-- -----------------------------------------------------------------------------------------
-- Emulator object.

local function trim_slash(s) return (gsub(s, "/+$", "")) end

--- Creates an emulator.
-- @tparam table opts `base_url` (default "https://127.0.0.1"; issuer = base_url .. "/"),
--   `seed` (string: deterministic ids and codes), `key_pem` (reuse an RSA signing key).
-- @return Emulator
function _M.new(opts)
  opts = opts or {}
  local base_url = trim_slash(opts.base_url or "https://127.0.0.1")
  local self = setmetatable({
    base_url = base_url,
    issuer = base_url .. "/",
    host = base_url:match("^%a+://([^/]+)") or base_url,
    seed = opts.seed and tostring(opts.seed) or nil,
    seed_counter = 0,
    clock_offset = 0,
    faults = nil,  -- fault-injection seam: consulted by handle() before dispatch (auth0.emulator.faults)
  }, Emulator)
  -- Key generation is slow-ish: once per instance, and reset() keeps it.
  self.key = core.rsa_key(opts.key_pem)
  local jwk = self.key:jwk()
  -- kid = RFC 7638 thumbprint of the public key.
  self.kid = core.b64url_encode(core.sha256(format('{"e":"%s","kty":"RSA","n":"%s"}', jwk.e, jwk.n)))
  self.jwk = { kty = "RSA", n = jwk.n, e = jwk.e, alg = "RS256", use = "sig", kid = self.kid }
  self:reset()
  return self
end

--- Restores the default state (clients, connections, users, outbox, clock); keeps the key.
function Emulator:reset()
  self.clock_offset = 0
  self.frozen_at = nil
  self.faults = nil
  self.clients, self.connections, self.users, self.apis = {}, {}, {}, {}
  self.users_by_identity = {}
  self.outbox = {}
  self.refresh_tokens = {}
  self.pending_ids = {}
  self.rate_buckets = {}
  self.rate_limits = { enabled = true, passwordless_start = { limit = 50, window = 3600 } }
  self:put_client{ client_id = "emu-native", app_type = "native", name = "Emulator Native App" }
  self:put_client{ client_id = "emu-confidential", client_secret = "emu-confidential-secret",
                   app_type = "regular_web", name = "Emulator Confidential App" }
  self:put_connection{ name = "email", strategy = "email" }
  self:put_connection{ name = "sms", strategy = "sms" }
  self:put_api{ identifier = "https://api.example.com", allow_offline_access = true }
  for _, mod in ipairs(modules) do
    if mod.reset then mod.reset(self) end
  end
end

--- Virtual clock: epoch seconds, os.time() + offset (or the frozen value while frozen).
function Emulator:now()
  return self.frozen_at or (os_time() + self.clock_offset)
end

--- Advances the virtual clock.
-- @tparam number seconds how far (may be negative)
-- @treturn number the new now (epoch seconds)
function Emulator:advance(seconds)
  self.clock_offset = self.clock_offset + seconds
  if self.frozen_at then self.frozen_at = self.frozen_at + seconds end
  return self:now()
end

--- Sets the virtual clock.
-- @tparam number epoch the new now (epoch seconds)
-- @treturn number the new now
function Emulator:set_time(epoch)
  self.clock_offset = epoch - os_time()
  if self.frozen_at then self.frozen_at = epoch end
  return self:now()
end

--- Stops or restarts the virtual clock; handy for exact assertions.
-- @tparam boolean on true stops it (it then moves only by `advance` and `set_time`), false
--   lets it run again from where it stands
-- @treturn number now
function Emulator:freeze(on)
  if on then
    self.frozen_at = self:now()
  elseif self.frozen_at then
    self.clock_offset = self.frozen_at - os_time()
    self.frozen_at = nil
  end
  return self:now()
end

-- Randomness (ids, codes, secrets): lua/auth0/emulator/random.lua, deterministic with a seed.
local random = require "auth0.emulator.random"
Emulator.random_bytes, Emulator.random_hex = random.bytes, random.hex
Emulator.new_id, Emulator.random_digits = random.id, random.digits

--- Creates or replaces a client (application).
-- @tparam table c `client_id` (required), `client_secret` (makes it confidential), `app_type`,
--   `name`, `grant_types` (default: passwordless otp, refresh_token and the three MFA grants),
--   `refresh_token_rotation` (default true)
-- @treturn table the stored client
function Emulator:put_client(c)
  local grant_types = c.grant_types
  if type(grant_types) ~= "table" then grant_types = util.DEFAULT_GRANT_TYPES end
  local client = {
    client_id = c.client_id,
    client_secret = c.client_secret,
    confidential = c.client_secret ~= nil,
    app_type = c.app_type or (c.client_secret and "regular_web" or "native"),
    name = c.name or c.client_id,
    grant_types = util.array({}),
    refresh_token_rotation = c.refresh_token_rotation ~= false,
  }
  for i, g in ipairs(grant_types) do client.grant_types[i] = g end
  self.clients[client.client_id] = client
  return client
end

--- Creates or replaces a connection.
-- @tparam table c `name` (required), `strategy` ("email" default, "sms"; anything else is not
--   passwordless), `otp_length` (6), `otp_lifetime` (180 s), `disable_signup`,
--   `enabled_clients` (a list of client ids; default every client)
-- @treturn table the stored connection
function Emulator:put_connection(c)
  local conn = {
    name = c.name,
    strategy = c.strategy or "email",
    otp_length = util.int(c.otp_length, 6),
    otp_lifetime = util.int(c.otp_lifetime, 180),
    disable_signup = c.disable_signup == true,
    enabled_clients = type(c.enabled_clients) == "table" and c.enabled_clients or nil,
  }
  self.connections[conn.name] = conn
  return conn
end

--- Creates or replaces an API (resource server) by identifier.
-- @tparam table a `identifier` (required), `allow_offline_access` (default true),
--   `token_lifetime` (86400 s), `scopes`
-- @treturn table the stored API
function Emulator:put_api(a)
  local api = {
    identifier = a.identifier,
    allow_offline_access = a.allow_offline_access ~= false,
    token_lifetime = util.int(a.token_lifetime, 86400),
    scopes = type(a.scopes) == "table" and a.scopes or nil,
  }
  self.apis[api.identifier] = api
  return api
end

--- True when `conn` is enabled for `client_id`.
function Emulator:connection_enabled(conn, client_id)
  if not conn.enabled_clients then return true end
  for _, id in ipairs(conn.enabled_clients) do
    if id == client_id then return true end
  end
  return false
end

--- The identity key of a user in a connection (emails compare case-insensitively).
function Emulator:identity_key(conn, identifier)
  if conn.strategy == "email" then identifier = lower(identifier) end
  return conn.name .. "\0" .. identifier
end

--- Finds a user by connection and email/phone number. @return user | nil
function Emulator:find_user(conn, identifier)
  return self.users_by_identity[self:identity_key(conn, identifier)]
end

--- The 24-hex id that a user of this identity has or will get at sign-up.
function Emulator:identity_id(conn, identifier)
  local user = self:find_user(conn, identifier)
  if user then return user.id end
  local key = self:identity_key(conn, identifier)
  local id = self.pending_ids[key]
  if not id then
    id = self:new_id()
    self.pending_ids[key] = id
  end
  return id
end

--- Creates or updates a user. `u.connection` names a connection; `u.email` or `u.phone_number`
-- identifies the user. Other fields (blocked, name, nickname, picture, email_verified,
-- phone_verified, user_metadata, mfa, ...) are stored as given.
-- @tparam table u the user's fields
-- @treturn[1] table the stored user, with `user_id`
-- @treturn[2] nil
-- @treturn[2] string what is wrong with `u`
function Emulator:put_user(u)
  local conn = self.connections[u.connection or ""]
  if not conn then return nil, "unknown connection: " .. tostring(u.connection) end
  local identifier = conn.strategy == "sms" and u.phone_number or u.email
  if type(identifier) ~= "string" or identifier == "" then
    return nil, conn.strategy == "sms" and "phone_number is required" or "email is required"
  end
  local key = self:identity_key(conn, identifier)
  local user = self.users_by_identity[key]
  local now = self:now()
  if not user then
    local id = u.id or self.pending_ids[key] or self:new_id()
    self.pending_ids[key] = nil
    user = { id = id, user_id = conn.strategy .. "|" .. id, connection = conn.name,
             strategy = conn.strategy, created_at = now }
    if conn.strategy == "sms" then
      user.phone_number, user.phone_verified = identifier, true
    else
      user.email, user.email_verified = lower(identifier), true
    end
  end
  for k, v in pairs(u) do
    if k ~= "connection" and k ~= "id" and k ~= "user_id" and k ~= "email" and k ~= "phone_number" then
      user[k] = v
    end
  end
  user.blocked = u.blocked == true or (u.blocked == nil and user.blocked == true)
  user.updated_at = now
  self.users[user.user_id] = user
  self.users_by_identity[key] = user
  return user
end

--- Deletes a user.
-- @tparam string user_id the user's id (`email|...`, `sms|...`)
-- @treturn ?boolean true, or nil when there is no such user
function Emulator:delete_user(user_id)
  local user = self.users[user_id]
  if not user then return nil end
  self.users[user_id] = nil
  local conn = self.connections[user.connection]
  if conn then
    self.users_by_identity[self:identity_key(conn, user.phone_number or user.email)] = nil
  end
  return true
end

-- -----------------------------------------------------------------------------------------
-- Requests.

--- Parses the request body as JSON or form-urlencoded. Caches the result on `req.params`.
-- @return table | nil, error response
function Emulator:params(req, error_code)
  if req.params then return req.params end
  local body = req.body or ""
  local ctype = lower(req.headers["content-type"] or "")
  local params
  if body:match("^%s*$") then
    params = {}
  elseif ctype:find("application/x-www-form-urlencoded", 1, true) then
    params = util.parse_query(body)
  elseif ctype:find("json", 1, true) or ctype == "" or body:match("^%s*{") then
    local v = util.decode(body)
    if not util.is_object(v) then
      -- [INF] Auth0 does not document the body for an unparsable payload.
      return nil, util.error(400, error_code or "invalid_request", "Invalid request body: expected a JSON object")
    end
    params = v
  else
    return nil, util.error(400, error_code or "invalid_request",
                         "Unsupported content type: " .. (req.headers["content-type"] or ""))
  end
  -- JSON null means absent, as far as this emulator is concerned.
  for k, v in pairs(params) do
    if v == util.null then params[k] = nil end
  end
  req.params = params
  return params
end

--- Reads client credentials from the body or an HTTP Basic header.
-- @return client_id | nil, client_secret | nil, bad (true when the Basic header is malformed
--   or disagrees with the body)
function Emulator:client_credentials(req, params)
  local id, secret = params.client_id, params.client_secret
  if type(id) ~= "string" then id = nil end
  if type(secret) ~= "string" then secret = nil end
  local auth = req.headers["authorization"]
  if type(auth) == "string" and auth:match("^[Bb]asic ") then
    local b64 = gsub(gsub(gsub(auth:sub(7), "%s", ""), "+", "-"), "/", "_")
    local raw = core.b64url_decode((gsub(b64, "=", "")))
    local bid, bsecret = (raw or ""):match("^([^:]*):(.*)$")
    if not bid then return id, nil, true end
    bid, bsecret = url_decode(bid), url_decode(bsecret)
    if id and id ~= bid then return id, nil, true end
    return bid, bsecret, false
  end
  return id, secret, false
end

--- Looks up and authenticates the calling client.
-- @return client | nil, authenticated (bool: a confidential client with its valid secret)
function Emulator:authenticate_client(req, params)
  local id, secret, bad = self:client_credentials(req, params)
  local client = id and self.clients[id]
  if not client then return nil, false end
  local ok = not bad and client.confidential and secret == client.client_secret
  return client, ok and true or false
end

--- True when `grant_type` is enabled for `client`.
function Emulator:grant_allowed(client, grant_type)
  for _, g in ipairs(client.grant_types) do
    if g == grant_type then return true end
  end
  return false
end

--- MFA hook for login grants: return an error response (e.g. `mfa_required`) to stop token
-- issuance, or nil to go on. `tx` describes the login ({grant_type, audience, scope, ...}).
-- The mfa module overrides it.
-- @tparam table user the user logging in
-- @tparam table client the calling client
-- @tparam table tx the login
-- @treturn ?table an error response, or nil
function Emulator:mfa_gate(user, client, tx) -- luacheck: ignore 212/user 212/client 212/tx
  return nil
end

local function match_route(method, path)
  local allowed
  for i = #routes, 1, -1 do
    local r = routes[i]
    local caps
    if r.pattern then
      caps = { path:match("^" .. r.path .. "$") }
      if caps[1] == nil then caps = nil end
    elseif r.path == path then
      caps = {}
    end
    if caps then
      if r.method == method or (r.method == "GET" and method == "HEAD") then
        for j, c in ipairs(caps) do caps[j] = url_decode(c) end
        return r, caps
      end
      allowed = true
    end
  end
  return nil, allowed
end

--- Dispatches POST /oauth/token on `grant_type`.
function Emulator:oauth_token(req)
  local params, err = self:params(req)
  if not params then return err end
  local gt = params.grant_type
  if type(gt) ~= "string" or gt == "" then
    return util.error(400, "invalid_request", "Missing required parameter: grant_type")
  end
  local handler = grants[gt]
  if not handler then
    -- [INF] wording of the unsupported-grant description.
    return util.error(400, "unsupported_grant_type", "Unsupported grant type: " .. gt)
  end
  return self[handler](self, req, params)
end

local function finish(self, resp, request_id)
  resp.status = resp.status or 200
  resp.headers = resp.headers or {}
  resp.body = resp.body or ""
  resp.headers["x-auth0-requestid"] = request_id
  if resp.headers["content-type"] == nil then resp.headers["content-type"] = util.JSON_CONTENT_TYPE end
  self.last_request_id = request_id
  return resp
end

--- Handles one request.
-- @tparam table req `{ method, path, query (string|nil), headers (lowercase keys), body, remote_addr }`
-- @return `{ status, headers (lowercase keys), body }`
function Emulator:handle(req)
  local request_id = self:random_hex(10)
  local path, query = req.path or "/", req.query
  if not query then
    local p, q = path:match("^([^?]*)%?(.*)$")
    if p then path, query = p, q end
  end
  local headers = {}
  for k, v in pairs(req.headers or {}) do
    if type(v) == "table" then v = concat(v, ", ") end
    headers[lower(k)] = v
  end
  local r = {
    method = (req.method or "GET"):upper(), path = path, query_string = query,
    query = util.parse_query(query), headers = headers, body = req.body,
    remote_addr = req.remote_addr or "127.0.0.1",
  }
  if self.faults then
    local resp = self.faults(self, r)
    if resp then return finish(self, resp, request_id) end
  end
  local route, caps = match_route(r.method, path)
  if not route then
    if caps then return finish(self, util.error(405, "method_not_allowed", "Method not allowed"), request_id) end
    return finish(self, util.error(404, "not_found", "Not found"), request_id)
  end
  local ok, resp = xpcall(function()
    return self[route.handler](self, r, unpack(caps))
  end, traceback)
  if not ok then
    self.last_error = resp
    resp = util.error(500, "server_error", "emulator error: " .. tostring(resp):match("^[^\n]*"))
  end
  if r.method == "HEAD" then resp.body = "" end
  return finish(self, resp, request_id)
end

--- The handler's request for a client transport's `{ method, url, headers (lowercase keys), body }`.
function Emulator:transport_request(request)
  local url = request.url or ""
  local path = url:match("^%a[%w+.-]*://[^/?#]*(.*)$") or url
  if path == "" then path = "/" elseif path:sub(1, 1) == "?" then path = "/" .. path end
  path = path:match("^[^#]*")
  local p, q = path:match("^([^?]*)%?(.*)$")
  return { method = request.method or "GET", path = p or path, query = q,
           headers = request.headers or {}, body = request.body, remote_addr = "127.0.0.1" }
end

--- An in-process transport for the client library (`auth0.new{ transport = emu:transport() }`).
-- @treturn function `fn(request) -> response`, with `request` `{ method, url, headers, body }`
function Emulator:transport()
  return function(request) return self:handle(self:transport_request(request)) end
end

Emulator.routes, Emulator.grants = routes, grants

_M.register{ routes = { { "POST", "/oauth/token", "oauth_token" } } }
_M.register(require "auth0.emulator.passwordless")
_M.register(require "auth0.emulator.tokens")
_M.register(require "auth0.emulator.control")
_M.register(require "auth0.emulator.mfa")
_M.register(require "auth0.emulator.faults")
_M.register(require "auth0.emulator.link")

return _M
