--- Starts the example login API under nginx from nginx.conf.in (used by run.lua, the spec and
-- the bench). Plain Lua 5.4 or LuaJIT with LuaSocket; nginx runs in the foreground of a
-- child process with its own prefix and `worker_processes 1` (or `workers`).
--
--   local launch = dofile("examples/openresty/launch.lua")
--   local api = assert(launch.start{ base_url = "https://localhost:8443", ca_file = "ca.pem" })
--   api.url, api.port, api.prefix, api.pid; api:log(); api:stop()
local socket = require "socket"

local _M = {}

local sys = require "auth0.emulator.sys"
local quote, execute, capture, read_file = sys.quote, sys.execute, sys.capture, sys.read_file
local function write_file(path, data) assert(sys.write_file(path, data)) end

local function alive(pid)
  local stat = read_file("/proc/" .. tostring(pid) .. "/stat")
  local state = stat and stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z"
end
_M.alive = alive

--- This folder and the repository root (absolute paths).
function _M.paths()
  local src = debug.getinfo(1, "S").source:sub(2)
  if src:sub(1, 1) ~= "/" then src = (os.getenv("PWD") or capture("pwd"):gsub("%s+$", "")) .. "/" .. src end
  src = src:gsub("/%./", "/")
  local dir = src:match("^(.*)/[^/]+$")
  return dir, (dir:gsub("/examples/openresty$", ""))
end

--- A free TCP port on the loopback interface.
function _M.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function port_open(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

local function resolver()
  local conf = read_file("/etc/resolv.conf") or ""
  return conf:match("\nnameserver%s+(%d+%.%d+%.%d+%.%d+)") or conf:match("^nameserver%s+(%d+%.%d+%.%d+%.%d+)")
    or "127.0.0.1"
end

-- Stops nginx (TERM to the master) once `owner` is gone, so a test runner that dies leaves
-- nothing behind.
local WATCH = [[
    local function alive(pid)
      local f = io.open("/proc/" .. pid .. "/stat", "rb")
      local s = f and f:read("*a"); if f then f:close() end
      local st = s and s:match("^%%d+ %%b() (%%a)")
      return st ~= nil and st ~= "Z"
    end
    ngx.timer.every(1, function(premature)
      if premature or alive(%d) then return end
      local f = io.open("/proc/self/stat", "rb")   -- the master is this worker's parent
      local ppid = f and f:read("*a"):match("^%%d+ %%b() %%a (%%d+)"); if f then f:close() end
      if ppid and tonumber(ppid) > 1 then os.execute("kill " .. ppid) end
    end)
]]

local Api = {}
Api.__index = Api

--- nginx's error log so far.
function Api:log() return read_file(self.prefix .. "/logs/error.log") or "" end

--- Stops nginx (TERM, KILL after 5 s), waits for it, removes a temporary prefix. Idempotent.
function Api:stop()
  if self.pid and alive(self.pid) then
    execute("kill " .. self.pid .. " 2>/dev/null")
    for _ = 1, 250 do
      if not alive(self.pid) then break end
      socket.sleep(0.02)
    end
    if alive(self.pid) then execute("kill -9 " .. self.pid .. " 2>/dev/null") end
  end
  self.pid = nil
  if self.temp and self.prefix then execute("rm -rf " .. quote(self.prefix)) end
  self.temp = nil
  return true
end

--- Renders nginx.conf.in. @tparam table o see start
function _M.render(o)
  local dir, root = _M.paths()
  local vars = {
    ROOT = root, EXAMPLE = dir, LISTEN = "127.0.0.1:" .. o.port, BASE_URL = o.base_url,
    CLIENT_ID = o.client_id or "emu-native", CA_FILE = o.ca_file or "/etc/ssl/certs/ca-certificates.crt",
    RESOLVER = o.resolver or resolver(), LOG_LEVEL = o.log_level or "notice",
    USER = (capture("id -u") or ""):match("^0%s*$") and "user root;" or "",
    INIT_WORKER = (o.owner_pid and WATCH:format(o.owner_pid) or "")
      .. (o.init_worker or ""),
    HTTP = o.http or "", SERVER = o.server or "",
    WORKERS = tostring(o.workers or 1), TRUSTED_PROXY = o.trusted_proxy or "127.0.0.1",
    OPTIONS = o.options or "",
  }
  local tpl = assert(read_file(dir .. "/nginx.conf.in"))
  return (tpl:gsub("{{([%u_]+)}}", function(k) return assert(vars[k], "no value for " .. k) end))
end

--- Starts the example API.
-- @tparam table o `base_url` (Auth0 or the emulator, https://localhost:PORT), `ca_file`,
--   `client_id` ("emu-native"), `port` (free), `prefix` (temp dir), `owner_pid` (stop when it
--   exits), `http` / `server` / `init_worker` (extra config text), `log_level`, `timeout` (10 s),
--   `workers` (1), `trusted_proxy` (whose X-Forwarded-For is believed, "127.0.0.1"), `options`
--   (Lua text: more configure{} fields), `env` (table: variables for nginx, e.g.
--   AUTH0_CLIENT_SECRET, AUTH0_GATEWAY_KEYS)
-- @return api | nil, err
function _M.start(o)
  local prefix, temp = o.prefix, false
  if not prefix then
    prefix = (capture("mktemp -d /tmp/auth0-openresty.XXXXXX") or ""):gsub("%s+$", "")
    if prefix == "" then return nil, "mktemp failed" end
    temp = true
  end
  for _, d in ipairs { "conf", "logs", "tmp" } do execute("mkdir -p " .. quote(prefix .. "/" .. d)) end
  local self = setmetatable({ prefix = prefix, temp = temp }, Api)
  local last
  for _ = 1, o.port and 1 or 5 do
    self.port = o.port or _M.free_port()
    self.url = "http://127.0.0.1:" .. self.port
    local ok, conf = pcall(_M.render, setmetatable({ port = self.port }, { __index = o }))
    if not ok then self:stop(); return nil, conf end
    write_file(prefix .. "/conf/nginx.conf", conf)
    write_file(prefix .. "/logs/error.log", "")
    local env = {}
    for k, v in pairs(o.env or {}) do env[#env + 1] = k .. "=" .. quote(v) end
    local out = capture(string.format((#env > 0 and "env " .. table.concat(env, " ") .. " " or "")
      .. "nginx -p %s -c conf/nginx.conf -e stderr >>%s 2>&1 </dev/null & echo $!",
      quote(prefix), quote(prefix .. "/logs/error.log")))
    self.pid = tonumber(out and out:match("%d+"))
    if not self.pid then self:stop(); return nil, "could not start nginx" end
    local deadline = socket.gettime() + (o.timeout or 10)
    while socket.gettime() < deadline do
      if not alive(self.pid) then break end
      if port_open(self.port) then return self end
      socket.sleep(0.02)
    end
    last = self:log()
    if alive(self.pid) then execute("kill -9 " .. self.pid) end
    self.pid = nil
    if not last:find("in use", 1, true) then break end
  end
  self:stop()
  return nil, "nginx did not start: " .. (last or "")
end

return _M
