--- Runs the emulator under nginx (lua-nginx-module) over TLS on loopback, for specs, the demo
-- and `make emulator`. Generates a throwaway CA plus a server certificate for 127.0.0.1 and
-- localhost with the openssl CLI, writes nginx.conf into a prefix directory and starts nginx
-- in the foreground (daemon off) as a child process.
-- @module auth0.emulator.server
-- @usage
-- local srv = assert(require("auth0.emulator.server").start{})
-- local client = require("auth0").new{ base_url = srv.base_url, ca_file = srv.ca_file,
--                                      client_id = "emu-native" }
-- -- srv.control_url is the control API (README, "Control API"), which needs the header
-- -- `Authorization: Bearer <srv.control_token>` (also in srv.control_token_file, 0600,
-- -- beside srv.ca_file); srv.pid is nginx's
-- srv:stop()
local _M = {}

local has_socket, socket = pcall(require, "socket")

local tostring, tonumber, format = tostring, tonumber, string.format

local sys = require "auth0.emulator.sys"
local quote, execute, capture, read_file, write_file, sleep =
  sys.quote, sys.execute, sys.capture, sys.read_file, sys.write_file, sys.sleep

--- True while process `pid` exists and is not a zombie.
function _M.alive(pid)
  local stat = read_file("/proc/" .. tostring(pid) .. "/stat")
  if not stat then return false end
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z"
end
local alive = _M.alive

--- The pid of the calling process (from /proc/self). @return number | nil
function _M.self_pid()
  local stat = read_file("/proc/self/stat")
  return stat and tonumber(stat:match("^(%d+)"))
end

--- The repository root (the folder holding lua/ and build/), from this file's location.
function _M.root()
  local src = debug.getinfo(1, "S").source
  local file = src:sub(1, 1) == "@" and src:sub(2) or "lua/auth0/emulator/server.lua"
  if file:sub(1, 1) ~= "/" then
    local cwd = os.getenv("PWD") or capture("pwd"):gsub("%s+$", "")
    file = cwd .. "/" .. file
  end
  file = file:gsub("/%./", "/")
  local root = file:match("^(.*)/lua/auth0/emulator/server%.lua$")
  return root or "."
end

local function free_port(host)
  if has_socket then
    local s = socket.bind(host, 0)
    if s then
      local _, port = s:getsockname()
      s:close()
      return tonumber(port)
    end
  end
  return 20000 + math.random(0, 40000)
end

local function port_open(host, port)
  if not has_socket then return false end
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect(host, port)
  c:close()
  return ok ~= nil
end

local function make_certs(dir, host)
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local ok = write_file(dir .. "/server.ext", table.concat({
    "subjectAltName=IP:" .. host .. ",DNS:localhost",
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth", "" }, "\n"))
  if not ok then return nil, "cannot write to " .. dir end
  local d = quote(dir)
  local cmds = {
    format("openssl req -x509 %s -keyout %s/ca.key -out %s/ca.pem -days 30 -subj '/CN=lua-auth0 emulator CA'"
           .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign", ec, d, d),
    format("openssl req %s -keyout %s/server.key -out %s/server.csr -subj /CN=%s", ec, d, d, host),
    format("openssl x509 -req -in %s/server.csr -CA %s/ca.pem -CAkey %s/ca.key -set_serial 0x%s -days 30"
           .. " -out %s/server.pem -extfile %s/server.ext", d, d, d,
           format("%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff)), d, d),
  }
  for _, cmd in ipairs(cmds) do
    if not execute(cmd .. " >" .. d .. "/openssl.log 2>&1") then
      return nil, "openssl failed: " .. cmd .. "\n" .. (read_file(dir .. "/openssl.log") or "")
    end
  end
  return true
end

local CONF = [[
%s
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process on;
worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log notice;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  client_body_buffer_size 1m;
  client_max_body_size 1m;
  keepalive_requests 100000;
  keepalive_timeout 120s;
  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;;";
  lua_package_cpath "%s/build/luajit/?.so;;";
  init_by_lua_file %s/conf/init.lua;
  init_worker_by_lua_block {
    require("auth0.emulator.nginx").init{ base_url = %q, key_file = %s, seed = %s, owner_pid = %s,
      control_token = %q }
  }
  server {
    listen %s:%d ssl http2;
    server_name localhost;
    ssl_certificate %s/conf/server.pem;
    ssl_certificate_key %s/conf/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      content_by_lua_block { require("auth0.emulator.nginx").serve() }
    }
  }
}
]]

local Server = {}
Server.__index = Server

--- Stops nginx (TERM, then KILL after 5 s), waits for it and removes a temporary prefix.
-- Idempotent. @return true
function Server:stop()
  if self.pid and alive(self.pid) then
    execute("kill " .. self.pid .. " 2>/dev/null")
    for _ = 1, 250 do
      if not alive(self.pid) then break end
      sleep(0.02)
    end
    if alive(self.pid) then execute("kill -9 " .. self.pid .. " 2>/dev/null") end
  end
  self.pid = nil
  if self.temp_prefix and self.prefix then
    execute("rm -rf " .. quote(self.prefix))
    self.temp_prefix = nil
  end
  return true
end

--- nginx's error log so far (for diagnostics).
function Server:log()
  return read_file(self.prefix .. "/logs/error.log") or ""
end

--- Checks that the emulator answers over HTTPS (with lua-sec; skipped without it).
-- @return true | nil, err
function Server:probe()
  local ok, https = pcall(require, "ssl.https")
  if not ok then return true end
  local sink = {}
  local res, status = https.request{ url = self.control_url .. "/clock", cafile = self.ca_file, verify = "peer",
                                     headers = { authorization = "Bearer " .. self.control_token },
                                     sink = function(chunk) sink[#sink + 1] = chunk; return 1 end }
  if res and status == 200 then return true end
  return nil, "the emulator does not answer (" .. tostring(status) .. " " .. table.concat(sink) .. "): "
              .. self:log()
end

-- Started as root, the worker runs as nobody: it reads only what the master hands it (the
-- config, with the control token, stays root's) and writes only tmp/.
local function drop_root(prefix, key_file)
  local p = quote(prefix)
  execute(format("chmod 0711 %s %s/conf && chmod 0600 %s/conf/*.key %s/conf/nginx.conf %s/conf/control-token"
    .. " && chown -R nobody:nogroup %s/tmp", p, p, p, p, p, p))
  if key_file then execute(format("chgrp nogroup %s && chmod 0640 %s", quote(key_file), quote(key_file))) end
end

-- A random control token (hex), from /dev/urandom.
local function new_token()
  local f = io.open("/dev/urandom", "rb")
  local raw = f and f:read(24)
  if f then f:close() end
  if not raw or #raw ~= 24 then return nil end
  return (raw:gsub(".", function(c) return format("%02x", c:byte()) end))
end

local function launch(self, opts)
  local prefix, root = self.prefix, self.root
  local as_root = capture("id -u"):match("^0%s*$") ~= nil
  local user = as_root and "user nobody nogroup;" or ""
  local key_file, key_path = "nil", nil
  if opts.key_pem then
    key_path = prefix .. "/conf/signing-key.pem"
    write_file(key_path, opts.key_pem)
    key_file = format("%q", key_path)
  end
  local conf = format(CONF, user, root, root, root, prefix, self.base_url, key_file,
                      opts.seed and format("%q", tostring(opts.seed)) or "nil",
                      tonumber(opts.owner_pid) and tostring(math.floor(opts.owner_pid)) or "nil",
                      self.control_token, self.host, self.port, prefix, prefix)
  execute("umask 077 && : > " .. quote(prefix .. "/conf/nginx.conf"))
  write_file(prefix .. "/conf/nginx.conf", conf)
  if as_root then drop_root(prefix, key_path) end
  write_file(prefix .. "/conf/init.lua", 'require "resty.core"\n' .. (opts.lua_init or "") .. "\n")
  write_file(prefix .. "/logs/error.log", "")
  local out = capture(format("%s -p %s -c conf/nginx.conf -e stderr >>%s 2>&1 </dev/null & echo $!",
                             opts.nginx or "nginx", quote(prefix), quote(prefix .. "/logs/error.log")))
  self.pid = tonumber(out and out:match("%d+"))
  if not self.pid then return nil, "could not start nginx" end
  local deadline = os.time() + (opts.timeout or 10)
  while os.time() <= deadline do
    if not alive(self.pid) then
      self.pid = nil
      return nil, "nginx exited: " .. self:log()
    end
    if port_open(self.host, self.port) then return self:probe() end
    sleep(0.02)
  end
  return nil, "nginx did not open " .. self.host .. ":" .. self.port .. ": " .. self:log()
end

--- Starts the emulator under nginx.
-- @tparam[opt] table opts `port` (default: a free loopback port, retried on bind failure),
--   `prefix` (default: a new temp dir, removed by stop), `host` ("127.0.0.1"), `key_pem`
--   (reuse a signing key), `seed`, `lua_init` (Lua code run in init_by_lua after resty.core),
--   `nginx` (binary), `timeout` (seconds, 10), `owner_pid` (nginx stops itself within ~1 s
--   after that process is gone).
-- @return server object | nil, err
function _M.start(opts)
  opts = opts or {}
  local root = _M.root()
  local so = root .. "/build/luajit/auth0/core.so"
  if not read_file(so) then
    return nil, "the LuaJIT build of auth0.core is missing (" .. so .. "): run `make luajit` first"
  end
  local prefix, temp = opts.prefix, false
  if not prefix then
    prefix = (capture("mktemp -d /tmp/auth0-emulator.XXXXXX") or ""):gsub("%s+$", "")
    if prefix == "" then return nil, "mktemp failed" end
    temp = true
  end
  for _, d in ipairs{ "conf", "logs", "tmp" } do execute("mkdir -p " .. quote(prefix .. "/" .. d)) end
  local host = opts.host or "127.0.0.1"
  local self = setmetatable({ prefix = prefix, temp_prefix = temp, root = root, host = host,
                              ca_file = prefix .. "/conf/ca.pem" }, Server)
  local ok, err = make_certs(prefix .. "/conf", host)
  if not ok then self:stop(); return nil, err end
  -- the control API's bearer token: random per start, in a 0600 file beside the CA file
  -- (auth0.emulator.client and the spec helper read it from there)
  self.control_token = new_token()
  if not self.control_token then self:stop(); return nil, "cannot read /dev/urandom" end
  self.control_token_file = prefix .. "/conf/control-token"
  execute("umask 077 && : > " .. quote(self.control_token_file))
  if not write_file(self.control_token_file, self.control_token .. "\n") then
    self:stop(); return nil, "cannot write " .. self.control_token_file
  end
  for _ = 1, opts.port and 1 or 5 do
    self.port = opts.port or free_port(host)
    self.base_url = "https://" .. host .. ":" .. self.port
    self.control_url = self.base_url .. "/__emulator"
    ok, err = launch(self, opts)
    if ok then return self end
    if not tostring(err):find("in use", 1, true) then break end
  end
  self:stop()
  return nil, err
end

return _M
