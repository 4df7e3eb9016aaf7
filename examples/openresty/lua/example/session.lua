--- Login state sealed into the session cookie (AES-256-GCM in the C core: auth0.core.seal/open),
-- so that a login started on one worker or node continues on any other with no shared store.
-- The envelope names its key id, so keys rotate: the newest key seals, every listed key opens.
-- The expiry and a random id travel inside the sealed data; the id lets a node refuse a state
-- it has already seen replaced (best effort, per node: the single-use codes and mfa_tokens at
-- Auth0 refuse a replay on the other nodes).
local auth0 = require "auth0"
local cjson = require("cjson.safe").new()

local core = auth0.core
local type, pcall = type, pcall

local _M = {}
local Sealer = {}
Sealer.__index = Sealer

local MAX_COOKIE = 4000     -- bytes of cookie value accepted (browsers keep 4096 with the name)

--- Parses AUTH0_GATEWAY_KEYS: "id:base64url-32-bytes[,id:...]", newest first.
-- @tparam string text
-- @return list of { id =, key = } | nil, err
function _M.parse_keys(text)
  local keys = {}
  for item in (text or ""):gmatch("[^,%s]+") do
    local id, b64 = item:match("^([%w._-]+):([%w_-]+)$")
    local key = b64 and core.b64url_decode(b64)
    if not key or #key ~= 32 or #id > 64 then
      return nil, "each key must be id:<32 bytes in base64url> (id: letters, digits, . _ -, at most 64)"
    end
    keys[#keys + 1] = { id = id, key = key }
  end
  if #keys == 0 then return nil, "no keys" end
  return keys
end

--- A sealer for a key list.
-- @tparam table keys { { id =, key = 32 bytes }, ... }, newest first
-- @tparam number ttl seconds a login may take from its start
-- @tparam[opt] table used an ngx.shared dict for replaced states (replay refusal on this node)
function _M.new(keys, ttl, used)
  local by_id = {}
  for _, k in ipairs(keys) do by_id[k.id] = k.key end
  return setmetatable({ newest = keys[1], by_id = by_id, ttl = ttl, used = used }, Sealer)
end

--- Seals a state (a JSON-able table) into a cookie value; a new state gets its id and expiry.
function Sealer:seal(state)
  state.jti = core.b64url_encode(core.random_bytes(12))
  state.exp = state.exp or ngx.time() + self.ttl
  return core.b64url_encode(core.seal(self.newest.key, self.newest.id, assert(cjson.encode(state))))
end

--- Opens a cookie value.
-- @return state | nil, reason ("malformed", "unknown key id", "expired", "replayed", OpenSSL's)
function Sealer:open(value)
  if type(value) ~= "string" or #value > MAX_COOKIE or not value:find("^[%w_-]+$") then return nil, "malformed" end
  local env = core.b64url_decode(value)
  if not env then return nil, "malformed" end
  local ok, pt, err = pcall(core.open, self.by_id, env)
  if not ok or not pt then return nil, err or "malformed" end
  local state = cjson.decode(pt)
  if type(state) ~= "table" or type(state.exp) ~= "number" or type(state.jti) ~= "string" then
    return nil, "malformed"
  end
  if state.exp <= ngx.time() then return nil, "expired" end
  if self.used and self.used:get("used|" .. state.jti) then return nil, "replayed" end
  return state
end

--- Marks a state as replaced or finished: this node refuses it from now on.
function Sealer:retire(state)
  if self.used and state.jti then
    self.used:set("used|" .. state.jti, true, math.max(1, state.exp - ngx.time() + 1))
  end
end

return _M
