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
--   when that process exits), `control_token` (the bearer token /__emulator/ requires)
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

-- Status, the answer's headers and a Content-Length of `len`.
local function send_headers(resp, len)
  ngx.status = resp.status -- luacheck: ignore 122
  for k, v in pairs(resp.headers) do ngx.header[k] = v end -- luacheck: ignore 122
  ngx.header["content-length"] = len -- luacheck: ignore 122
  ngx.send_headers()
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
  -- the control API (client secrets, the outbox of codes) needs the token of this start;
  -- ngx.var.uri is the normalized path, so no spelling of /__emulator/ gets around it
  local uri = ngx.var.uri or path
  if (uri:sub(1, 12) == "/__emulator/" or uri == "/__emulator" or path:sub(1, 11) == "/__emulator")
    and opts.control_token and ngx.var.http_authorization ~= "Bearer " .. opts.control_token then
    local out = '{"error":"unauthorized","error_description":"the control API needs the header '
      .. 'Authorization: Bearer <token>; the token is in control-token beside the CA file"}'
    send_headers({ status = 401, headers = { ["content-type"] = "application/json",
      ["www-authenticate"] = 'Bearer realm="auth0-emulator-control"' } }, #out)
    ngx.print(out)
    return ngx.exit(ngx.HTTP_OK)
  end
  local resp = emu:handle{
    method = ngx.req.get_method(),
    path = path,
    query = query ~= "" and query or nil,
    headers = ngx.req.get_headers(200),
    body = body,
    remote_addr = ngx.var.remote_addr,
  }
  if resp.fault then return _M.serve_fault(resp) end
  local out = resp.body or ""
  send_headers(resp, #out)
  if out ~= "" then ngx.print(out) end
  return ngx.exit(ngx.HTTP_OK)
end

-- Faults that need the socket (auth0.emulator.faults describes them in `resp.fault`).

local REASONS = { [200] = "OK", [204] = "No Content", [302] = "Found", [400] = "Bad Request",
  [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found", [429] = "Too Many Requests",
  [500] = "Internal Server Error" }

-- The HTTP/1.1 status line and header block of the answer, written by hand.
local function head_block(resp, out)
  local lines = { "HTTP/1.1 " .. resp.status .. " " .. (REASONS[resp.status] or "Status") }
  for k, v in pairs(resp.headers) do lines[#lines + 1] = k .. ": " .. tostring(v) end
  lines[#lines + 1] = "content-length: " .. #out
  lines[#lines + 1] = "connection: close"
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- HTTP/1.x only: writes the status line and headers one byte every `interval` ms over the raw
-- downstream socket, then the body, then closes.
local function slow_raw(resp, out, interval)
  local sock, err = ngx.req.socket(true)
  if not sock then
    ngx.log(ngx.ERR, "slow_headers: no raw socket: ", err)
    return ngx.exit(444)
  end
  local head = head_block(resp, out)
  for i = 1, #head do
    if not sock:send(head:sub(i, i)) then return ngx.exit(444) end   -- the client gave up
    ngx.sleep(interval / 1000)
  end
  sock:send(out)
  return ngx.exit(444)
end

--- Carries out `resp.fault` (see auth0.emulator.faults): delays, closes, truncation, slow headers.
function _M.serve_fault(resp)
  local f = resp.fault
  local kind, out = f.kind, resp.body or ""
  if kind == "close_before_headers" then
    return ngx.exit(444)   -- HTTP/1.x: close without a byte; HTTP/2: RST_STREAM
  elseif kind == "close_after_headers" then
    send_headers(resp, #out)
    ngx.flush(true)
    return ngx.exit(444)
  elseif kind == "truncate" then
    send_headers(resp, #out + 32)   -- announces more than will ever come
    local half = out:sub(1, math.floor(#out / 2))
    if half ~= "" then ngx.print(half) end
    ngx.flush(true)
    return ngx.exit(444)
  elseif kind == "slow_headers" then
    if ngx.req.http_version() < 2 then return slow_raw(resp, out, f.interval) end
    -- HTTP/2 sends the header block as one HEADERS frame: hold it as long as dribbling would
    ngx.sleep(math.min(60, f.interval * #head_block(resp, out) / 1000))
  elseif kind == "delay" then
    ngx.sleep(f.ms / 1000)
  end
  send_headers(resp, #out)
  if out ~= "" then ngx.print(out) end
  return ngx.exit(ngx.HTTP_OK)
end

return _M
