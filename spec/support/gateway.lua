--- Spec helper for spec/gateway_spec.lua: a raw concurrent HTTP/1.1 client and the "edge"
-- nginx (round-robin over two gateways, plus a TLS proxy to the emulator that counts the
-- auth0-forwarded-for addresses it sees).
local socket = require "socket"
local cjson = require("cjson.safe").new()
local launch = dofile("examples/openresty/launch.lua")

local _M = {}

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

-- One raw HTTP/1.1 exchange per request, all in flight at once; answers collected with select.
-- A request: { port, path, body (table or string), headers = {}, method, chunked }.
-- Returns { { status, headers (lowercase; set-cookie kept whole), body (decoded JSON or text) } }.
function _M.exchange(reqs, tick)
  local conns, by_sock = {}, {}
  for i, r in ipairs(reqs) do
    local data = type(r.body) == "string" and r.body or assert(cjson.encode(r.body or {}))
    local lines = { ("%s %s HTTP/1.1"):format(r.method or "POST", r.path), "Host: 127.0.0.1", "Connection: close" }
    local headers = { ["Content-Type"] = "application/json" }
    for k, v in pairs(r.headers or {}) do headers[k] = v end
    for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
    if r.chunked then
      lines[#lines + 1] = "Transfer-Encoding: chunked"
      data = ("%x\r\n%s\r\n0\r\n\r\n"):format(#data, data)
    elseif (r.method or "POST") == "POST" then
      lines[#lines + 1] = "Content-Length: " .. #data
    else
      data = ""
    end
    local s = assert(socket.tcp())
    s:settimeout(10)
    assert(s:connect("127.0.0.1", r.port))
    s:settimeout(0)
    conns[i] = { sock = s, parts = {}, out = table.concat(lines, "\r\n") .. "\r\n\r\n" .. data, sent = 0 }
    by_sock[s] = conns[i]
  end
  local open, deadline = #conns, socket.gettime() + 120
  while open > 0 and socket.gettime() < deadline do
    local readers, writers = {}, {}
    for _, c in ipairs(conns) do
      if not c.done then
        if c.sent < #c.out then writers[#writers + 1] = c.sock else readers[#readers + 1] = c.sock end
      end
    end
    local r, w = socket.select(readers, writers, tick and 0.1 or 1)
    if tick then tick() end
    for _, s in ipairs(w) do
      local c = by_sock[s]
      local n, err, last = s:send(c.out, c.sent + 1)
      c.sent = n or last or c.sent
      if err == "closed" then c.sent = #c.out end   -- nginx answered early (413) and closed
    end
    for _, s in ipairs(r) do
      local c = by_sock[s]
      local data, err, partial = s:receive(65536)
      c.parts[#c.parts + 1] = data or partial or ""
      if err == "closed" then
        c.done, open = true, open - 1
        s:close()
      end
    end
  end
  local out = {}
  for i, c in ipairs(conns) do
    if not c.done then c.sock:close() end
    local text = table.concat(c.parts)
    local head, body = text:match("^(.-)\r\n\r\n(.*)$")
    local h = {}
    for k, v in (head or ""):gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do h[k:lower()] = v end
    out[i] = { status = tonumber(text:match("^HTTP/1%.%d (%d+)")), headers = h,
      body = cjson.decode(body or "") or body, raw = text }
  end
  return out
end

function _M.post(port, path, body, headers, extra)
  local r = { port = port, path = path, body = body, headers = headers }
  for k, v in pairs(extra or {}) do r[k] = v end
  return _M.exchange({ r })[1]
end

-- The session cookie from a Set-Cookie value ("auth0_session=v; ..." -> "auth0_session=v").
function _M.jar(res)
  local sc = res.headers["set-cookie"]
  return sc and sc:match("^(auth0_session=[^;]*)")
end

--- Starts the edge: round-robin over gateways `gw1` and `gw2`, and on `rec_port` a TLS proxy
-- to the emulator `srv` that counts the auth0-forwarded-for values it sees (GET /seen?ip= on
-- `e.rec_ctl`). Its own nginx (not the example's config). @return { port, rec, rec_ctl, pid }
function _M.start_edge(prefix, srv, gw1, gw2, rec_port)
  local e = { port = launch.free_port(), rec = rec_port, rec_ctl = launch.free_port(), prefix = prefix }
  os.execute("mkdir -p " .. prefix .. "/conf " .. prefix .. "/logs " .. prefix .. "/tmp")
  local conf = srv.prefix .. "/conf"
  write(prefix .. "/conf/nginx.conf", ([[
%s
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off; master_process on; worker_processes 1;
pid logs/nginx.pid; error_log logs/error.log notice;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  lua_shared_dict seen 1m;
  upstream gateways { server 127.0.0.1:%d; server 127.0.0.1:%d; }
  # X-Node: 1 or 2 picks the gateway (a spec proving that every step may land on the other
  # node); without it, round-robin
  map $http_x_node $gateway { "1" 127.0.0.1:%d; "2" 127.0.0.1:%d; default gateways; }
  server {
    listen 127.0.0.1:%d backlog=4096;
    client_max_body_size 1m;
    location / {
      proxy_pass http://$gateway;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_next_upstream off;
      add_header X-Upstream $upstream_addr always;
    }
  }
  server {
    listen 127.0.0.1:%d ssl backlog=4096;
    ssl_certificate %s/server.pem;
    ssl_certificate_key %s/server.key;
    keepalive_requests 100000;
    location / {
      access_by_lua_block {
        local ip = ngx.var.http_auth0_forwarded_for
        if ip then ngx.shared.seen:incr(ip .. " " .. ngx.var.uri, 1, 0) end
      }
      proxy_pass https://127.0.0.1:%d;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_trusted_certificate %s;
    }
  }
  server {
    listen 127.0.0.1:%d;
    location = /seen { content_by_lua_block {
      local n = 0
      for _, path in ipairs { "/passwordless/start", "/oauth/token", "/mfa/challenge", "/mfa/authenticators" } do
        n = n + (ngx.shared.seen:get(ngx.var.arg_ip .. " " .. path) or 0)
      end
      ngx.print(n)
    } }
  }
}
]]):format(io.popen("id -u"):read("*l") == "0" and "user root;" or "", gw1.port, gw2.port, gw1.port, gw2.port, e.port,
    e.rec, conf, conf, srv.port, srv.ca_file, e.rec_ctl))
  e.pid = tonumber(io.popen(("nginx -p %s -c conf/nginx.conf -e stderr >>%s/logs/error.log 2>&1 </dev/null & echo $!")
    :format(prefix, prefix)):read("*l"))
  for _ = 1, 250 do
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", e.rec_ctl)
    c:close()
    if ok then return e end
    socket.sleep(0.02)
  end
  error("edge nginx did not start: " .. read(prefix .. "/logs/error.log"))
end

return _M
