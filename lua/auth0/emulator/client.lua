--- A client for the bundled emulator's control API (`/__emulator/...`), over the same
-- libcurl engine as auth0 itself. For tests and demos:
--   local ctl = require("auth0.emulator.client").new{ base_url = srv.base_url, ca_file = srv.ca_file }
--   ctl:post("clock", { advance = 181 }); local code = ctl:last_code("a@example.com")
local core = require "auth0.core"
local cjson = require("cjson.safe").new()

local _M = {}
local Control = { __name = "auth0.emulator.Client" }
Control.__index = Control

-- The control routes are not in auth0's shipped endpoint table: this client registers them
-- on its own core client (a verbatim sub-path such as "guardian/<id>/approve").
local ROUTES = {
  control_get = { method = "GET", path = "/__emulator/", verbatim = true },
  control_post = { method = "POST", path = "/__emulator/", body = "raw", verbatim = true },
  control_delete = { method = "DELETE", path = "/__emulator/", verbatim = true },
}

--- @tparam table opts `base_url`, `ca_file`, `timeout` (5 s)
function _M.new(opts)
  assert(type(opts) == "table" and type(opts.base_url) == "string", "base_url is required")
  local c = core.client { base_url = opts.base_url, ca_file = opts.ca_file,
    timeout = opts.timeout or 5, headers = { "Accept: application/json", "Expect:" } }
  for name, route in pairs(ROUTES) do c:register_endpoint(name, route) end
  return setmetatable({ _core = c }, Control)
end

local function query_string(q)
  if q == nil then return nil end
  local parts = {}
  for k, v in pairs(q) do parts[#parts + 1] = core.pct_escape(k) .. "=" .. core.pct_escape(tostring(v)) end
  table.sort(parts)
  return table.concat(parts, "&")
end

local function call(self, ep, path, query, body)
  local status, text = self._core:request(ep, nil, { path_arg = path, query = query_string(query),
    body = body ~= nil and cjson.encode(body) or nil })
  if not status then return nil, "control API unreachable: " .. tostring(text) end
  local decoded = text ~= "" and cjson.decode(text) or {}
  if status >= 300 then
    return nil, "control API " .. path .. " answered " .. status .. ": " .. tostring(decoded and decoded.error_description or text)
  end
  return decoded, status
end

--- GET /__emulator/<path>?<query>. @return decoded JSON | nil, err
function Control:get(path, query) return call(self, "control_get", path, query) end
--- POST /__emulator/<path> with a JSON body.
function Control:post(path, body) return call(self, "control_post", path, nil, body or {}) end
--- DELETE /__emulator/<path>.
function Control:delete(path, query) return call(self, "control_delete", path, query) end

--- The messages sent to `to` (email or phone), oldest first.
function Control:outbox(to)
  local r, err = self:get("outbox", to and { to = to })
  if not r then return nil, err end
  return r.messages
end

--- The newest message sent to `to` and its code. @return code, message | nil, err
function Control:last_code(to)
  local msgs, err = self:outbox(to)
  if not msgs then return nil, err end
  local m = msgs[#msgs]
  if not m then return nil, "no message for " .. tostring(to) end
  return m.code or m.binding_code, m
end

function Control:close() self._core:close() end

return _M
