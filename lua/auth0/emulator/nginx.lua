--- nginx content handler for the emulator (lua-nginx-module). One emulator per worker, so the
-- server runs `worker_processes 1` to keep all state in one LuaJIT VM.
--   init_worker_by_lua_block { require("auth0.emulator.nginx").init{ base_url = "...", key_file = "..." } }
--   content_by_lua_block { require("auth0.emulator.nginx").serve() }
local emulator = require "auth0.emulator"

local _M = {}

local opts = {}
local instance

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

local function alive(pid)
  local stat = read_file("/proc/" .. tostring(pid) .. "/stat")
  local state = stat and stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z"
end

-- Stops nginx (TERM to the master, our parent) once the process that owns it is gone, so a
-- test runner that dies without cleaning up leaves no server behind.
local function watch_owner(premature, owner)
  if premature or alive(owner) then return end
  local stat = read_file("/proc/self/stat")
  local ppid = stat and stat:match("^%d+ %b() %a (%d+)")
  if ppid and tonumber(ppid) > 1 then os.execute("kill " .. ppid) end
end

--- Stores the emulator options and creates the instance (once per worker).
-- @tparam table o `base_url`, `key_file` (PEM path, reused), `seed`, `owner_pid` (stop nginx
--   when that process exits)
function _M.init(o)
  opts = o or {}
  if opts.owner_pid then ngx.timer.every(1, watch_owner, opts.owner_pid) end
  _M.instance()
end

--- The worker's emulator, created lazily.
function _M.instance()
  if not instance then
    local pem
    if opts.key_file then pem = read_file(opts.key_file) end
    instance = emulator.new{ base_url = opts.base_url, seed = opts.seed, key_pem = pem }
  end
  return instance
end

--- Serves the current request through the emulator's handler contract.
function _M.serve()
  local emu = _M.instance()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local file = ngx.req.get_body_file()
    if file then body = read_file(file) end
  end
  -- request_uri keeps percent-escapes in the path; the router decodes captured segments.
  local raw = ngx.var.request_uri or ngx.var.uri
  local path, query = raw:match("^([^?]*)%??(.*)$")
  local resp = emu:handle{
    method = ngx.req.get_method(),
    path = path,
    query = query ~= "" and query or nil,
    headers = ngx.req.get_headers(200),
    body = body,
    remote_addr = ngx.var.remote_addr,
  }
  local out = resp.body or ""
  ngx.status = resp.status -- luacheck: ignore 122
  for k, v in pairs(resp.headers) do ngx.header[k] = v end -- luacheck: ignore 122
  ngx.header["content-length"] = #out -- luacheck: ignore 122
  ngx.send_headers()
  if out ~= "" then ngx.print(out) end
  return ngx.exit(ngx.HTTP_OK)
end

return _M
