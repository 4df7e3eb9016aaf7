--- Login requests per second through the OpenResty example, cosockets vs nginx's own proxy.
--   make && make luajit && lua5.4 bench/openresty.lua
--   env: BENCH_DURATION (s per run, 10), BENCH_CONNECTIONS (32), BENCH_THREADS (wrk threads, 2),
--   BENCH_WORKERS (the gateway's worker_processes, 1), BENCH_PROFILE (a jit.p mode such as "F"
--   or "v": profiles one run of each path in the worker instead, and prints the top entries;
--   "trace": jit.v's log of trace aborts), BENCH_NO_WRK=1 (the LuaSocket client even where wrk
--   exists)
-- Starts the emulator and the example gateway (both nginx, same machine) and drives
-- `POST /login/start` (one passwordless_start to Auth0 over TLS through auth0.transport.ngx)
-- and `POST /bench/capture` (the same Auth0 call made with ngx.location.capture + proxy_pass
-- to a keep-alive upstream, with the same bookkeeping: the per-address and per-identifier
-- limits and the sealed state cookie) with wrk (Debian package `wrk`), or with a LuaSocket
-- keep-alive client when wrk is missing. Every request comes from another end-user address
-- (X-Forwarded-For, believed from loopback) for another e-mail, as many users would; the
-- gateway's global ceiling is off.
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]+$") or "."
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. here .. "/../examples/openresty/?.lua;"
  .. package.path

local socket = require "socket"
socket.http = require "socket.http"
local https = require "ssl.https"
local ltn12 = require "ltn12"
local server = require "auth0.emulator.server"
local launch = require "launch"

local DURATION = tonumber(os.getenv("BENCH_DURATION")) or 10
local CONNS = tonumber(os.getenv("BENCH_CONNECTIONS")) or 32
local THREADS = tonumber(os.getenv("BENCH_THREADS")) or 2
local WORKERS = tonumber(os.getenv("BENCH_WORKERS")) or 1
local PROFILE = os.getenv("BENCH_PROFILE")
local PROFILE_LOCATIONS = [[
    location = /bench/profile {
      content_by_lua_block {
        -- mode "trace": jit.v's trace log (what the JIT compiler gave up on) instead of jit.p
        local trace = ngx.var.arg_mode == "trace"
        local p = require(trace and "jit.v" or "jit.p")
        if ngx.var.arg_stop then (p.stop or p.off)()
        elseif trace then p.on(ngx.var.arg_file)
        else p.start(ngx.var.arg_mode, ngx.var.arg_file) end
        ngx.print("ok")
      }
    }
]]

-- wrk: each request from its own address, for its own e-mail (the limits stay out of the way);
-- %d is this run's offset, so that no two runs (nor wrk threads) reuse an address
local WRK_SCRIPT = [[
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
local n = 0
request = function()
  n = n + 1
  local k = %d + tid * 2097152 + n
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json",
    ["X-Forwarded-For"] = ("10.%%d.%%d.%%d"):format(math.floor(k / 65536) %% 256, math.floor(k / 256) %% 256, k %% 256) },
    '{"email":"b' .. k .. '@example.com"}')
end
]]

local function control(emu, method, path, body)
  local out = {}
  local ok, status = https.request {
    url = emu.control_url .. path, method = method, cafile = emu.ca_file, verify = "peer",
    headers = { ["content-type"] = body and "application/json" or nil, ["content-length"] = body and tostring(#body) or nil,
      authorization = "Bearer " .. emu.control_token },   -- the control API's token
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(out),
  }
  assert(ok and status == 200, "control API: " .. tostring(status))
end

local CAPTURE = [[
  upstream auth0_emulator {
    server 127.0.0.1:%d;
    keepalive 64;
  }
]]

local CAPTURE_LOCATIONS = [[
    location = /bench/capture {
      content_by_lua_block {
        local cjson = require("cjson.safe")
        local limit = require("example.limit")
        ngx.req.read_body()
        local p = cjson.decode(ngx.req.get_body_data() or "") or {}
        local dict = ngx.shared.auth0_limits
        if type(p.email) ~= "string" or not (limit.hit(dict, "ip|" .. ngx.var.remote_addr, 10, 60)
            and limit.hit(dict, "id|" .. p.email:lower(), 5, 600)) then
          ngx.status = 429; ngx.print('{"error":"too_many_requests"}'); return
        end
        local res = ngx.location.capture("/__auth0/passwordless/start", { method = ngx.HTTP_POST,
          body = cjson.encode({ client_id = "emu-native", connection = "email", email = p.email, send = "code" }) })
        local r = res.status == 200 and cjson.decode(res.body)
        if not r then ngx.status = 502; ngx.print('{"error":"upstream"}'); return end
        local value = require("example.login").sealer():seal({ realm = "email", username = p.email })
        ngx.header["set-cookie"] = "auth0_session=" .. value .. "; Path=/login; Max-Age=600; Secure; HttpOnly; SameSite=Strict"
        local out = '{"code_sent":true}'
        ngx.header["content-type"] = "application/json"
        ngx.header["content-length"] = #out
        ngx.print(out)
      }
    }
    location /__auth0/ {
      internal;
      proxy_pass https://auth0_emulator/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host localhost:%d;
      proxy_set_header Content-Type application/json;
      proxy_set_header Accept application/json;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
      proxy_ssl_trusted_certificate %s;
    }
]]

local function have(cmd)
  local r = os.execute("command -v " .. cmd .. " >/dev/null 2>&1")
  return r == true or r == 0
end

-- wrk: returns requests/s, non-2xx count, latency text
local function run_wrk(url, seconds, script)
  local p = io.popen(("wrk -t%d -c%d -d%ds --latency -s %s %s 2>&1"):format(THREADS, CONNS, seconds, script, url))
  local out = p:read("*a")
  p:close()
  local rps = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local bad = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0
  local errs = out:match("Socket errors:[^\n]*")
  if errs then bad = bad + 1 end
  return rps, bad, (out:match("\n%s+50%%%s+(%S+)") or "?") .. " p50, "
    .. (out:match("\n%s+99%%%s+(%S+)") or "?") .. " p99", out
end

-- LuaSocket fallback: CONNS keep-alive connections, each sending the next request as soon as
-- the previous answer (Content-Length framed) is complete.
local function run_lua(url, seconds)
  local port, path = url:match("^http://127%.0%.0%.1:(%d+)(/.*)$")
  local n = math.random(0, 2 ^ 20) * 16
  local function req()   -- like the wrk script: another address and e-mail every time
    n = n + 1
    local body = '{"email":"b' .. n .. '@example.com"}'
    return ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Forwarded-For: 10.%d.%d.%d\r\n"
      .. "Content-Length: %d\r\n\r\n%s"):format(path, n // 65536 % 256, n // 256 % 256, n % 256, #body, body)
  end
  local conns, by = {}, {}
  for i = 1, CONNS do
    local s = assert(socket.connect("127.0.0.1", tonumber(port)))
    s:settimeout(0)
    s:send(req())
    conns[i] = { sock = s, buf = "" }
    by[s] = conns[i]
  end
  local done, bad, stop = 0, 0, socket.gettime() + seconds
  local t0 = socket.gettime()
  while socket.gettime() < stop do
    local list = {}
    for _, c in ipairs(conns) do list[#list + 1] = c.sock end
    local ready = socket.select(list, nil, 1)
    for _, s in ipairs(ready) do
      local c = by[s]
      local data, _, partial = s:receive(65536)
      c.buf = c.buf .. (data or partial or "")
      while true do
        local head_end = c.buf:find("\r\n\r\n", 1, true)
        if not head_end then break end
        local len = tonumber(c.buf:sub(1, head_end):lower():match("content%-length:%s*(%d+)")) or 0
        if #c.buf < head_end + 3 + len then break end
        if not c.buf:match("^HTTP/1%.1 200") then bad = bad + 1 end
        c.buf = c.buf:sub(head_end + 4 + len)
        done = done + 1
        s:send(req())
      end
    end
  end
  local elapsed = socket.gettime() - t0
  for _, c in ipairs(conns) do c.sock:close() end
  return done / elapsed, bad, "n/a"
end

local me = server.self_pid()
local emu = assert(server.start { owner_pid = me })
local api, err = launch.start { base_url = "https://localhost:" .. emu.port, ca_file = emu.ca_file, owner_pid = me,
  log_level = "warn", workers = WORKERS, options = "limit_global = false,", http = CAPTURE:format(emu.port),
  server = CAPTURE_LOCATIONS:format(emu.port, emu.ca_file) .. (PROFILE and PROFILE_LOCATIONS or "") }
if not api then emu:stop(); error(err, 0) end

local ok, msg = pcall(function()
  control(emu, "POST", "/rate_limits", '{"enabled":false}')
  local use_wrk = have("wrk") and not os.getenv("BENCH_NO_WRK")
  local script = os.tmpname()
  local runs = 0
  local function run(path, seconds)
    runs = runs + 1
    local f = assert(io.open(script, "w"))
    f:write(WRK_SCRIPT:format(runs * 16777216))
    f:close()
    control(emu, "DELETE", "/outbox")
    if use_wrk then return run_wrk(api.url .. path, seconds, script) end
    return run_lua(api.url .. path, seconds)
  end
  print(("load: %s, %d connections, %d s per run, gateway workers %d; emulator, gateway and load generator share %s cores")
    :format(use_wrk and ("wrk -t" .. THREADS) or "LuaSocket keep-alive client", CONNS, DURATION, WORKERS,
      (io.popen("nproc"):read("*l") or "?")))
  run("/login/start", 2)    -- warm-up: TLS sessions, pools, JIT
  run("/bench/capture", 2)
  if PROFILE then
    for _, path in ipairs { "/login/start", "/bench/capture" } do
      local file = api.prefix .. "/logs/profile.txt"
      assert(socket.http.request(api.url .. "/bench/profile?mode=" .. PROFILE .. "&file=" .. file))
      local rps = run(path, DURATION)
      assert(socket.http.request(api.url .. "/bench/profile?stop=1"))
      print(("profile of %s (%.0f req/s, jit.p mode %s), top entries:"):format(path, rps, PROFILE))
      local lines, counts, order = {}, {}, {}
      for line in io.lines(file) do
        if PROFILE == "trace" then   -- aborted traces, by where and why, most frequent first
          local what = line:match("^%[TRACE %-%-%- (.*)%]$")
          if what then
            what = what:gsub("^%(%d+/%d+%) ", "")
            if not counts[what] then order[#order + 1] = what end
            counts[what] = (counts[what] or 0) + 1
          end
        else
          lines[#lines + 1] = line
        end
      end
      table.sort(order, function(a, b) return counts[a] > counts[b] end)
      for _, what in ipairs(order) do lines[#lines + 1] = ("%6d  %s"):format(counts[what], what) end
      for i = 1, math.min(25, #lines) do print("  " .. lines[i]) end
      os.remove(file)
    end
    return
  end
  local best = {}
  for round = 1, 3 do   -- interleaved, best of 3: the machine is shared
    for _, path in ipairs { "/login/start", "/bench/capture" } do
      local rps, bad, lat = run(path, DURATION)
      assert(rps, "no result for " .. path)
      print(("  round %d  %-15s %8.0f req/s  (%s, non-2xx/errors %d)"):format(round, path, rps, lat, bad))
      if bad > 0 then error(path .. " had failed requests: see " .. api.prefix .. "/logs/error.log") end
      if not best[path] or rps > best[path] then best[path] = rps end
    end
  end
  os.remove(script)
  print(("cosocket transport (POST /login/start):      %.0f req/s"):format(best["/login/start"]))
  print(("proxy_pass via ngx.location.capture:         %.0f req/s"):format(best["/bench/capture"]))
  print(("ratio cosocket / proxy_pass:                 %.2f"):format(best["/login/start"] / best["/bench/capture"]))
end)
api:stop()
emu:stop()
if not ok then error(msg, 0) end
