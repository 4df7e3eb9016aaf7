--- Emulator module: the control API for tests, under /__emulator/. JSON in, JSON out.
--
-- Routes (errors are 400 `{"error":"bad_request","error_description":"..."}`):
--
--   GET    /__emulator/outbox[?to=<email or phone>]
--          -> {"messages":[{to, connection, client_id, kind:"code"|"link", send, code, link?,
--                           language?, sent_at}]}  oldest first, newest last.
--   DELETE /__emulator/outbox                      -> {"deleted": <count>}
--   GET    /__emulator/clock                       -> {"now": <epoch>}
--   POST   /__emulator/clock   {"advance": seconds} | {"set": epoch} and/or {"freeze": true|false}
--          -> {"now": <epoch>, "frozen": bool}  (a frozen clock only moves by advance/set)
--   POST   /__emulator/clients {client_id, client_secret?, app_type?, name?, grant_types?,
--                               refresh_token_rotation?}
--          create/replace; a secret makes the client confidential; grant_types defaults to
--          passwordless otp, refresh_token, mfa-otp, mfa-oob, mfa-recovery-code.  -> the client
--   POST   /__emulator/connections {name, strategy:"email"|"sms", otp_length?, otp_lifetime?,
--                                   disable_signup?, enabled_clients?}  -> the connection
--          (enabled_clients omitted = enabled for every client; another strategy value makes a
--          non-passwordless connection, for the "Invalid connection strategy" error.)
--   POST   /__emulator/apis    {identifier, allow_offline_access?, token_lifetime?, scopes?}
--   POST   /__emulator/users   {connection, email | phone_number, blocked?, name?, nickname?,
--                               picture?, email_verified?, phone_verified?, mfa?, ...}
--          create/update (free-form fields are stored on the user) -> the user (with user_id)
--   GET    /__emulator/users[?user_id=...]         -> {"users":[...]}
--   DELETE /__emulator/users?user_id=...           -> {"deleted": true|false}
--   POST   /__emulator/rate_limits {"passwordless_start": {"limit": 50, "window": 3600}}
--          and/or {"enabled": false|true}          -> the rate-limit settings
--   POST   /__emulator/reset                       -> {"ok": true}; defaults back, key kept
--   GET    /__emulator/state                       -> {"now", "clients", "connections", "apis"}
--
-- Defaults after start/reset: public client "emu-native" (no secret), confidential client
-- "emu-confidential" / "emu-confidential-secret", connections "email" and "sms" enabled for
-- both, API "https://api.example.com" with offline access, rate limits on (50/h per IP).
-- luacheck: ignore 212/self
local util = require "auth0.emulator.util"

local type, pairs, ipairs, tonumber, tostring = type, pairs, ipairs, tonumber, tostring
local sort = table.sort

local json = util.json

local M = { methods = {} }
local methods = M.methods
local P = "/__emulator"

M.routes = {
  { "GET", P .. "/outbox", "ctl_outbox" },
  { "DELETE", P .. "/outbox", "ctl_outbox_clear" },
  { "GET", P .. "/clock", "ctl_clock" },
  { "POST", P .. "/clock", "ctl_clock" },
  { "POST", P .. "/clients", "ctl_clients" },
  { "POST", P .. "/connections", "ctl_connections" },
  { "POST", P .. "/apis", "ctl_apis" },
  { "POST", P .. "/users", "ctl_users" },
  { "GET", P .. "/users", "ctl_users_list" },
  { "DELETE", P .. "/users", "ctl_users_delete" },
  { "POST", P .. "/rate_limits", "ctl_rate_limits" },
  { "POST", P .. "/reset", "ctl_reset" },
  { "GET", P .. "/state", "ctl_state" },
}

local function bad(msg)
  return util.error(400, "bad_request", msg)
end

local function body(self, req)
  local params, perr = self:params(req, "bad_request")
  return params, perr
end

local function public_client(c)
  return { client_id = c.client_id, client_secret = c.client_secret, confidential = c.confidential,
           app_type = c.app_type, name = c.name, grant_types = util.array(c.grant_types),
           refresh_token_rotation = c.refresh_token_rotation }
end

local function public_user(u)
  local out = {}
  for k, v in pairs(u) do out[k] = v end
  return out
end

function methods:ctl_outbox(req)
  local to = req.query.to
  local list = util.array()
  for _, m in ipairs(self.outbox) do
    if not to or m.to == to or (m.to:lower() == to:lower() and m.to:find("@", 1, true)) then
      list[#list + 1] = m
    end
  end
  return json(200, { messages = list })
end

function methods:ctl_outbox_clear()
  local n = #self.outbox
  self.outbox = {}
  return json(200, { deleted = n })
end

function methods:ctl_clock(req)
  if req.method == "POST" then
    local p, perr = body(self, req)
    if not p then return perr end
    if p.freeze ~= nil then self:freeze(p.freeze == true) end
    if tonumber(p.set) then
      self:set_time(util.int(p.set))
    elseif tonumber(p.advance) then
      self:advance(util.int(p.advance))
    elseif p.freeze == nil then
      return bad("expected {\"advance\": seconds}, {\"set\": epoch} or {\"freeze\": bool}")
    end
  end
  return json(200, { now = self:now(), frozen = self.frozen_at ~= nil })
end

function methods:ctl_clients(req)
  local p, perr = body(self, req)
  if not p then return perr end
  if type(p.client_id) ~= "string" or p.client_id == "" then return bad("client_id is required") end
  if p.client_secret ~= nil and type(p.client_secret) ~= "string" then return bad("client_secret must be a string") end
  if p.grant_types ~= nil and type(p.grant_types) ~= "table" then return bad("grant_types must be a list") end
  return json(200, public_client(self:put_client(p)))
end

function methods:ctl_connections(req)
  local p, perr = body(self, req)
  if not p then return perr end
  if type(p.name) ~= "string" or p.name == "" then return bad("name is required") end
  if p.strategy ~= nil and type(p.strategy) ~= "string" then return bad("strategy must be a string") end
  local c = self:put_connection(p)
  return json(200, { name = c.name, strategy = c.strategy, otp_length = c.otp_length,
                     otp_lifetime = c.otp_lifetime, disable_signup = c.disable_signup,
                     enabled_clients = c.enabled_clients and util.array(c.enabled_clients) or util.null })
end

function methods:ctl_apis(req)
  local p, perr = body(self, req)
  if not p then return perr end
  if type(p.identifier) ~= "string" or p.identifier == "" then return bad("identifier is required") end
  local a = self:put_api(p)
  return json(200, { identifier = a.identifier, allow_offline_access = a.allow_offline_access,
                     token_lifetime = a.token_lifetime })
end

function methods:ctl_users(req)
  local p, perr = body(self, req)
  if not p then return perr end
  local user, uerr = self:put_user(p)
  if not user then return bad(uerr) end
  return json(200, public_user(user))
end

function methods:ctl_users_list(req)
  local list = util.array()
  for id, u in pairs(self.users) do
    if not req.query.user_id or req.query.user_id == id then list[#list + 1] = public_user(u) end
  end
  sort(list, function(a, b) return a.user_id < b.user_id end)
  return json(200, { users = list })
end

function methods:ctl_users_delete(req)
  local id = req.query.user_id
  if not id then return bad("user_id is required") end
  return json(200, { deleted = self:delete_user(id) == true })
end

function methods:ctl_rate_limits(req)
  local p, perr = body(self, req)
  if not p then return perr end
  if p.enabled ~= nil then self.rate_limits.enabled = p.enabled == true end
  for name, cfg in pairs(p) do
    if name ~= "enabled" then
      if type(cfg) ~= "table" or not tonumber(cfg.limit) or not tonumber(cfg.window)
         or tonumber(cfg.limit) < 1 or tonumber(cfg.window) <= 0 then
        return bad("expected {\"" .. tostring(name) .. "\": {\"limit\": n, \"window\": seconds}}")
      end
      self.rate_limits[name] = { limit = util.int(cfg.limit), window = util.int(cfg.window) }
      -- New settings start from full buckets.
      for key in pairs(self.rate_buckets) do
        if key:sub(1, #name + 1) == name .. "\0" then self.rate_buckets[key] = nil end
      end
    end
  end
  return json(200, self.rate_limits)
end

function methods:ctl_reset()
  self:reset()
  return json(200, { ok = true })
end

function methods:ctl_state()
  local clients, conns, apis = util.array(), util.array(), util.array()
  for _, c in pairs(self.clients) do clients[#clients + 1] = public_client(c) end
  for _, c in pairs(self.connections) do conns[#conns + 1] = { name = c.name, strategy = c.strategy } end
  for _, a in pairs(self.apis) do apis[#apis + 1] = { identifier = a.identifier } end
  return json(200, { now = self:now(), issuer = self.issuer, clients = clients, connections = conns, apis = apis })
end

return M
