--- Benchmark of issue #2: N passwordless logins (start + login, 2 requests each) against
-- the emulator under nginx over TLS (or canned answers, see MODE), three ways in the same run:
--   1. lua-auth0: one client object, keep-alive (one TLS connection).
--   2. what a Lua 5.4 user writes without us: LuaSocket + LuaSec `ssl.https.request`
--      (ltn12 source/sink, CA-verified) and lua-cjson.
--   3. the floor, bench/floor.c: libcurl, one reused easy handle, the same headers and JSON
--      bytes (the real codes, handed over through a FIFO), parsing nothing.
-- Usage, from anywhere: lua5.4 bench/passwordless.lua [N] [ROUNDS] [MODE]   (N = 2000 logins;
-- ROUNDS = 3 rounds, medians and the per-round ratio's spread reported). In a round, ours and
-- the floor run interleaved in chunks of 200 users (ABBA order; the floor is a process that
-- takes its chunks through a FIFO), so both see the same load from the rest of the machine,
-- which on a shared machine moves by more than the difference measured. A chunk is tens of
-- milliseconds of CPU: the caches each side finds cold after the other's chunk cost both the
-- same and are a fraction of a percent of it. A0_BENCH_CHUNK=N sets the chunk (N or more:
-- one chunk per phase, the two run back to back as before). Needs `make`,
-- `make luajit`, nginx, lua-socket, lua-sec, lua-cjson, cc and the libcurl headers.
--
-- MODE `emulator` (default) talks to the emulator. MODE `canned` talks to a plain nginx (no Lua
-- module loaded) whose two locations `return 200 '...'` the exact bodies, Content-Type and
-- rate-limit headers the emulator answered once (real-sized tokens), over TLS with HTTP/1.1;
-- `canned-h2` the same over HTTP/2 like the emulator. Then the figure does not depend on the
-- emulator's speed. The LuaSocket way runs only in the emulator mode.
--
-- CPU time is the figure: os.clock() (process CPU, user+sys) for 1 and 2, getrusage in the
-- floor. nginx and the emulator run on the same machine as the client, so wall times include
-- the server and are noisy.
--
-- Reading the codes from the emulator's outbox (control API) is not part of a login: every way
-- runs in two timed phases, N starts then N logins (one user per login), and the codes are read
-- in between, untimed, with one control-API call.
--
-- A0_BENCH_CPU=<CPUs, as `taskset -c` takes them, e.g. 0> pins the client, the floor, the
-- canned nginx (master and workers) and the emulator to those CPUs. Unpinned, on a small VM,
-- each request wakes the server on the other CPU and the answer wakes the client back there:
-- those cross-CPU wakeups cost the client more CPU than the floor (it waits in more
-- poll/wakeup cycles per request), so the ratio came out inflated and noisy (1.5-2.1x where
-- one CPU gave 1.45-1.48x). Pinned, both sides pay the same scheduling; what is measured is
-- unchanged. The run prints which pinning it used.
--
-- A0_BENCH_SERVE=<file> (canned modes; used by bench/instructions.sh): start the canned nginx,
-- write its address, CA and the floor's arguments to <file> as shell assignments, and serve
-- until standard input closes; nothing is measured.
--
-- A diagnostic row follows the three ways: the same traffic straight through auth0.core (no
-- Lua front, no cjson), to tell the C core's overhead from the Lua side's.
local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/lua5.4/?.so;" .. package.cpath

local auth0 = require "auth0"
local server = require "auth0.emulator.server"
local cjson = require("cjson.safe").new()
local socket = require "socket"
local https = require "ssl.https"
local ltn12 = require "ltn12"

local clock, gettime, format, concat = os.clock, socket.gettime, string.format, table.concat

local USAGE = "usage: lua5.4 bench/passwordless.lua [N] [ROUNDS] [emulator|canned|canned-h2]"
local MODES = { emulator = false, canned = "", ["canned-h2"] = " http2" }   -- the nginx listen flag
local nums, MODE = {}, "emulator"
for _, a in ipairs(arg) do
  if tonumber(a) then nums[#nums + 1] = tonumber(a) else MODE = a end
end
assert(MODES[MODE] ~= nil and #nums <= 2, USAGE)
local CANNED = MODES[MODE] ~= false
local N, ROUNDS = nums[1] or 2000, nums[2] or 3
assert(N and N >= 1 and N <= 49999999 and N % 1 == 0, USAGE)   -- the floor's users follow 50000000
assert(ROUNDS and ROUNDS >= 1 and ROUNDS <= 100 and ROUNDS % 1 == 0, USAGE)
N, ROUNDS = math.floor(N), math.floor(ROUNDS)

-- CPU pinning (A0_BENCH_CPU, see above): this process first, so that everything it starts
-- (the emulator, the canned nginx, the floor) inherits it; the canned nginx is pinned again
-- by pid, and the affinity read back, so the report says what really ran where.
local PIN = os.getenv("A0_BENCH_CPU")
if PIN == "" then PIN = nil end
assert(PIN == nil or PIN:find("^%d[%d,%-]*$"), "A0_BENCH_CPU must be a CPU list such as 0 or 0-1")

local function pin(pid)   -- every thread of pid
  assert(os.execute(format("taskset -a -p -c %s %d >/dev/null", PIN, pid)), "taskset failed (A0_BENCH_CPU)")
end

-- The CPU list pid may run on, as taskset reports it.
local function affinity(pid)
  local p = assert(io.popen(format("taskset -p -c %d 2>/dev/null", pid)))
  local out = p:read("a")
  p:close()
  return out:match(":%s*(%S+)%s*$") or "?"
end

if PIN then pin(server.self_pid()) end

local CLIENT_ID = "emu-native"
local EMAIL_FMT = "bench-%08d@example.com"   -- fixed width: every way sends the same body sizes

-- The users' addresses are test data, made before the timed phases (as the floor makes its
-- digits): what is timed is the login, not Lua's string.format (2.7k instructions a call).
local EMAILS = setmetatable({}, { __index = function(t, i)
  local e = format(EMAIL_FMT, i)
  t[i] = e
  return e
end })
local function email(i) return EMAILS[i] end
for i = 1, N do local _ = EMAILS[i] end   -- made once, untimed

---------------------------------------------------------------------------------------------
-- Emulator and its control API (untimed)

local srv      -- the emulator (control API)
local target   -- what the ways talk to: { base_url, ca_file }; the emulator or the canned nginx
local CANNED_CODE = "123456"   -- the canned server accepts anything

-- One control-API call over LuaSec, verified against the emulator's CA.
local function control(method, path, payload)
  local data = payload and assert(cjson.encode(payload)) or nil
  local chunks = {}
  local ok, status = https.request {
    url = srv.control_url .. path, method = method, cafile = srv.ca_file, verify = "peer",
    headers = { ["content-type"] = data and "application/json" or nil, ["content-length"] = data and tostring(#data) or nil,
      authorization = "Bearer " .. srv.control_token },   -- the control API's token
    source = data and ltn12.source.string(data) or nil, sink = ltn12.sink.table(chunks),
  }
  assert(ok, "control API: " .. tostring(status))
  local decoded = cjson.decode(concat(chunks))
  assert(status == 200, "control API " .. method .. " " .. path .. ": " .. tostring(status))
  return decoded
end

-- Fresh emulator state, rate limit raised, codes valid for an hour, outbox empty.
local function prepare_emulator()
  control("POST", "/reset")
  control("POST", "/rate_limits", { passwordless_start = { limit = 100000000, window = 1 } })
  control("POST", "/connections", { name = "email", strategy = "email", otp_lifetime = 3600 })
  control("DELETE", "/outbox")
end

-- Every code in the outbox, by address; then empties it.
local function emulator_codes()
  local codes = {}
  for _, m in ipairs(control("GET", "/outbox").messages) do codes[m.to] = m.code end
  control("DELETE", "/outbox")
  return codes
end

-- What the ways call between rounds and phases: nothing to do for the canned server, which
-- takes any code.
local function prepare()
  if not CANNED then prepare_emulator() end
end

local function read_codes()
  if CANNED then return setmetatable({}, { __index = function() return CANNED_CODE end }) end
  return emulator_codes()
end

---------------------------------------------------------------------------------------------
-- The two Lua ways. Each returns one function per phase: start(i) and login(i, code), which
-- raise on any unexpected answer (a benchmark that silently fails measures nothing).

local function ours_way()
  local client = auth0.new { base_url = target.base_url, ca_file = target.ca_file, client_id = CLIENT_ID }
  local way = { name = "lua-auth0 (ours)" }
  function way.start(i)
    local sent, err = client:passwordless_start { connection = "email", email = EMAILS[i] }
    if not sent then error("ours: start: " .. tostring(err)) end
  end
  function way.login(i, code)
    local tokens, err = client:passwordless_login { realm = "email", username = EMAILS[i], otp = code }
    if not tokens then error("ours: login: " .. tostring(err)) end
  end
  function way.connects() return client:stats().connects end
  function way.close() client:close() end
  return way
end

-- What a Lua user writes with LuaSocket + LuaSec + cjson. LuaSec's https.request opens a
-- new TCP+TLS connection per request; they are counted, not assumed, by wrapping socket.tcp.
local function luasocket_way()
  local opened = 0
  local tcp = socket.tcp
  local way = { name = "LuaSocket+LuaSec+cjson" }

  local function post_json(path, payload)
    local body = cjson.encode(payload)
    local chunks = {}
    local ok, status = https.request {
      url = target.base_url .. path, method = "POST", cafile = target.ca_file, verify = "peer",
      headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#body),
                  accept = "application/json" },
      source = ltn12.source.string(body), sink = ltn12.sink.table(chunks),
    }
    if not ok then return nil, status end
    local decoded = cjson.decode(concat(chunks))
    if status ~= 200 or type(decoded) ~= "table" then return nil, status end
    return decoded
  end

  local function counted(f, ...)
    socket.tcp = function(...)
      opened = opened + 1
      return tcp(...)
    end
    local ok, r, e = pcall(f, ...)
    socket.tcp = tcp
    if not ok then error(r, 0) end
    return r, e
  end

  function way.start(i)
    local sent, err = counted(post_json, "/passwordless/start",
      { client_id = CLIENT_ID, connection = "email", email = email(i), send = "code" })
    if not sent then error("luasocket: start: " .. tostring(err)) end
  end
  function way.login(i, code)
    local tokens, err = counted(post_json, "/oauth/token", {
      grant_type = "http://auth0.com/oauth/grant-type/passwordless/otp", client_id = CLIENT_ID,
      username = email(i), realm = "email", otp = code, scope = "openid profile email" })
    if not tokens or type(tokens.access_token) ~= "string" then error("luasocket: login: " .. tostring(err)) end
  end
  function way.connects() return opened end
  function way.close() end
  return way
end

-- N starts (timed), codes (untimed), N logins (timed). @return figures
local function run_lua_way(make)
  prepare()
  local way = make()
  collectgarbage()
  local cpu0, wall0 = clock(), gettime()
  for i = 1, N do way.start(i) end
  local cpu, wall = clock() - cpu0, gettime() - wall0
  local codes, list = read_codes(), {}
  for i = 1, N do list[i] = assert(codes[email(i)], "no code for " .. email(i)) end
  collectgarbage()
  cpu0, wall0 = clock(), gettime()
  for i = 1, N do way.login(i, list[i]) end
  cpu, wall = cpu + (clock() - cpu0), wall + (gettime() - wall0)
  local r = { name = way.name, cpu = cpu, wall = wall, connects = way.connects() }
  way.close()
  return r
end

-- Diagnostic, not one of the three ways: the same two phases straight through auth0.core
-- (no Lua front, no cjson: the answers are checked by status only).
local function core_way()
  local client = auth0.new { base_url = target.base_url, ca_file = target.ca_file, client_id = CLIENT_ID }
  local core = client._core
  local way = { name = "auth0.core only" }
  function way.start(i)
    local st = core:request("passwordless_start", { client_id = CLIENT_ID, connection = "email",
                                                    email = EMAILS[i], send = "code" })
    if st ~= 200 then error("core: start: " .. tostring(st)) end
  end
  function way.login(i, code)
    local st = core:request("passwordless_login", { client_id = CLIENT_ID, username = EMAILS[i], realm = "email",
                                                    otp = code, scope = "openid profile email" })
    if st ~= 200 then error("core: login: " .. tostring(st)) end
  end
  function way.connects() return client:stats().connects end
  function way.close() client:close() end
  return way
end

---------------------------------------------------------------------------------------------
-- The floor: build bench/floor.c if needed and run it with our client's exact request bytes.

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function build_floor()
  local bin, src = root .. "/build/bench-floor", root .. "/bench/floor.c"
  local ok = os.execute(format("test -x %s && test %s -ot %s", sh_quote(bin), sh_quote(src), sh_quote(bin)))
  if not ok then
    local cmd = format("mkdir -p %s && cc -O2 %s -o %s -lcurl", sh_quote(root .. "/build"), sh_quote(src), sh_quote(bin))
    assert(os.execute(cmd), "could not build the floor: " .. cmd)
  end
  return bin
end

-- Our client's requests as built by auth0.core (headers, JSON bodies), with the mark that the
-- floor replaces by the iteration number.
local function floor_requests()
  local client = auth0.new { base_url = target.base_url, ca_file = target.ca_file, client_id = CLIENT_ID }
  local mark = "bench-XXXXXXXX@example.com"
  local core = client._core
  local s = core:build("passwordless_start", { client_id = CLIENT_ID, connection = "email", email = mark,
                                              send = "code" })
  local t = core:build("passwordless_login", { client_id = CLIENT_ID, username = mark, realm = "email",
                                              otp = "######", scope = "openid profile email" })
  client:close()
  local headers = {}
  for k, v in pairs(s.headers) do headers[#headers + 1] = k .. ": " .. v end
  table.sort(headers)
  return s, t, headers
end

-- Ours and the floor run in alternating chunks of CHUNK users (ABBA order), so that both
-- see the same load from the rest of the machine; a round's figure for each is the sum of its
-- chunks. The floor's users are numbered from FLOOR_USERS (same width: the same body sizes).
local CHUNK, FLOOR_USERS = tonumber(os.getenv("A0_BENCH_CHUNK")) or 200, 50000000

-- Starts the floor process on our client's exact request bytes. @return handle: ask, close
local function floor_open()
  local bin = build_floor()
  local s, t, headers = floor_requests()
  local dir = assert(io.popen("mktemp -d")):read("l")
  local cmd, reply = dir .. "/cmd", dir .. "/reply"
  assert(os.execute("mkfifo " .. sh_quote(cmd) .. " " .. sh_quote(reply)))
  local args = { bin, s.url, t.url, target.ca_file, cmd, reply, s.body, t.body }
  for _, h in ipairs(headers) do args[#args + 1] = h end
  for i, a in ipairs(args) do args[i] = sh_quote(a) end
  local p = assert(io.popen(concat(args, " "), "r"))
  local w = assert(io.open(cmd, "w"))   -- the same order as the floor's opens: no deadlock
  local r = assert(io.open(reply, "r"))
  local function fields(line)
    local f = {}
    for k, v in tostring(line):gmatch("(%w[%w_]*)=(%S+)") do f[k] = tonumber(v) or v end
    return f
  end
  local floor = {}
  -- One command (and its code lines); the floor's figures for it.
  function floor.ask(line, codes)
    w:write(line, "\n")
    if codes then w:write(concat(codes, "\n"), "\n") end
    w:flush()
    local f = fields(r:read("l"))
    if not f.cpu_s or f.unexpected ~= 0 then error("floor failed on " .. line) end
    return f
  end
  function floor.close()
    w:write("quit\n")
    w:close()
    local f = fields(r:read("l"))
    r:close()
    local ok = p:close()
    os.execute("rm -rf " .. sh_quote(dir))
    if not ok or f.unexpected ~= 0 then error("floor failed: " .. tostring(f.unexpected) .. " unexpected answers") end
    return f
  end
  return floor
end

-- One round: a new client object and a new floor process, N starts then N logins each, in
-- alternating chunks. @return ours, floor (figures)
local function run_pair()
  prepare()
  local floor, way = floor_open(), ours_way()
  local o = { name = way.name, cpu = 0, wall = 0 }
  local f = { name = "floor (C, libcurl)", cpu = 0, wall = 0 }
  local function phase(codes)
    collectgarbage()
    local k = 0
    for a = 1, N, CHUNK do
      local z = math.min(a + CHUNK - 1, N)
      local fa, fz = FLOOR_USERS + a, FLOOR_USERS + z
      local list
      if codes then
        list = {}
        for i = fa, fz do list[#list + 1] = assert(codes[email(i)], "no code for " .. email(i)) end
      end
      local function run_floor()
        local r = floor.ask(format("%s %d %d", codes and "login" or "start", fa, fz), list)
        f.cpu, f.wall = f.cpu + r.cpu_s, f.wall + r.wall_s
      end
      local mine = {}   -- our users' codes, looked up before the clock starts
      if codes then for i = a, z do mine[i] = codes[email(i)] end end
      local function run_ours()
        local cpu0, wall0 = clock(), gettime()
        if codes then for i = a, z do way.login(i, mine[i]) end
        else for i = a, z do way.start(i) end end
        o.cpu, o.wall = o.cpu + (clock() - cpu0), o.wall + (gettime() - wall0)
      end
      k = k + 1
      if k % 4 == 1 or k % 4 == 0 then run_floor(); run_ours() else run_ours(); run_floor() end
    end
  end
  phase(nil)
  local codes = read_codes()
  for i = 1, N do assert(codes[email(i)], "no code for " .. email(i)) end
  phase(codes)
  o.connects = way.connects()
  way.close()
  local total = floor.close()
  f.connects, f.detail = total.connects, total
  if not CANNED then control("DELETE", "/outbox") end
  return o, f
end

---------------------------------------------------------------------------------------------
-- The canned server (MODE canned, canned-h2): plain nginx, no Lua, answering what the emulator
-- answered once.

-- One request to the emulator over LuaSec. @return body, headers (lowercase names)
local function fetch(path, payload)
  local data = assert(cjson.encode(payload))
  local chunks = {}
  local ok, status, headers = https.request {
    url = srv.base_url .. path, method = "POST", cafile = srv.ca_file, verify = "peer",
    headers = { ["content-type"] = "application/json", ["content-length"] = tostring(#data) },
    source = ltn12.source.string(data), sink = ltn12.sink.table(chunks),
  }
  assert(ok and status == 200, "emulator " .. path .. ": " .. tostring(status) .. " " .. concat(chunks))
  return concat(chunks), headers
end

-- The emulator's answers to one start and one login of the bench's shape.
local function capture_answers()
  prepare_emulator()
  local e = email(1)
  local answers = {}
  answers["/passwordless/start"] = { fetch("/passwordless/start",
    { client_id = CLIENT_ID, connection = "email", email = e, send = "code" }) }
  local code = emulator_codes()[e]
  answers["/oauth/token"] = { fetch("/oauth/token", {
    grant_type = "http://auth0.com/oauth/grant-type/passwordless/otp", client_id = CLIENT_ID,
    username = e, realm = "email", otp = code, scope = "openid profile email" }) }
  return answers
end

-- A string as an nginx single-quoted literal; `$` would start a variable.
local function ngx_quote(s)
  assert(not s:find("$", 1, true), "a canned answer contains '$'")
  return "'" .. s:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'"
end

-- nginx sets these itself.
local OWN_HEADERS = { server = true, date = true, ["content-length"] = true, ["content-type"] = true,
                      connection = true, ["keep-alive"] = true, ["transfer-encoding"] = true }

local CANNED_CONF = [[
%s
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
  client_max_body_size 1m;
  keepalive_requests 100000;
  keepalive_timeout 120s;
  types { }
  server {
    listen 127.0.0.1:%d ssl%s;
    ssl_certificate server.pem;        # relative to conf/
    ssl_certificate_key server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
%s    location / { return 404; }
  }
}
]]

local function port_open(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

-- Starts the canned nginx with the emulator's certificate. @return { base_url, ca_file, stop }
local function start_canned(answers)
  local prefix = assert(io.popen("mktemp -d /tmp/auth0-canned.XXXXXX")):read("l")
  for _, d in ipairs { "conf", "logs", "tmp" } do assert(os.execute("mkdir -p " .. sh_quote(prefix .. "/" .. d))) end
  local conf_dir = srv.ca_file:match("^(.*)/[^/]+$")
  for _, f in ipairs { "server.pem", "server.key", "ca.pem" } do
    assert(os.execute(format("cp %s %s", sh_quote(conf_dir .. "/" .. f), sh_quote(prefix .. "/conf/" .. f))))
  end
  local locations = {}
  for _, path in ipairs { "/passwordless/start", "/oauth/token" } do
    local body, headers = answers[path][1], answers[path][2]
    local lines = { format("    location = %s {", path),
                    format("      default_type %s;", ngx_quote(headers["content-type"])) }
    local names = {}
    for k in pairs(headers) do if not OWN_HEADERS[k] then names[#names + 1] = k end end
    table.sort(names)
    for _, k in ipairs(names) do lines[#lines + 1] = format("      add_header %s %s always;", k, ngx_quote(headers[k])) end
    lines[#lines + 1] = format("      return 200 %s;", ngx_quote(body))
    lines[#lines + 1] = "    }"
    locations[#locations + 1] = concat(lines, "\n") .. "\n"
  end
  local sock = assert(socket.bind("127.0.0.1", 0))
  local _, port = sock:getsockname()
  sock:close()
  port = tonumber(port)
  local root_user = assert(io.popen("id -u")):read("l") == "0"
  local f = assert(io.open(prefix .. "/conf/nginx.conf", "w"))
  f:write(format(CANNED_CONF, root_user and "user root;" or "", port, MODES[MODE], concat(locations)))
  f:close()
  local pid = tonumber(assert(io.popen(format("nginx -p %s -c conf/nginx.conf -e stderr >%s 2>&1 </dev/null & echo $!",
    sh_quote(prefix), sh_quote(prefix .. "/logs/error.log")))):read("l"))
  local t0 = gettime()
  while not port_open(port) do
    if gettime() - t0 > 10 then error("the canned nginx did not start: see " .. prefix .. "/logs/error.log") end
    socket.sleep(0.02)
  end
  local canned = { base_url = "https://127.0.0.1:" .. port, ca_file = prefix .. "/conf/ca.pem",
                   sizes = { #answers["/passwordless/start"][1], #answers["/oauth/token"][1] }, pids = { pid } }
  local t1 = gettime()
  repeat   -- nginx's workers: children of its master (the port may answer before they exist)
    local workers = assert(io.popen("pgrep -P " .. pid))
    for w in workers:lines() do canned.pids[#canned.pids + 1] = tonumber(w) end
    workers:close()
    if #canned.pids == 1 then socket.sleep(0.02) end
  until #canned.pids > 1 or gettime() - t1 > 2
  if PIN then for _, p in ipairs(canned.pids) do pin(p) end end
  function canned.stop()
    os.execute("kill " .. pid .. " 2>/dev/null; sleep 0.2; rm -rf " .. sh_quote(prefix))
  end
  return canned
end

---------------------------------------------------------------------------------------------

-- Median, min and max of field k over runs; the connections of the worst run.
local function summarize(name, runs)
  local function stat(k)
    local v = {}
    for i, r in ipairs(runs) do v[i] = r[k] end
    table.sort(v)
    local n = #v
    local med = n % 2 == 1 and v[(n + 1) / 2] or (v[n / 2] + v[n / 2 + 1]) / 2
    return med, v[1], v[n]
  end
  local s = { name = name, runs = #runs, connects = 0, detail = runs[1].detail }
  s.cpu, s.cpu_min, s.cpu_max = stat("cpu")
  s.wall = stat("wall")
  for _, r in ipairs(runs) do if r.connects > s.connects then s.connects = r.connects end end
  return s
end

local canned_srv

local function main()
  srv = assert(server.start { owner_pid = server.self_pid() })
  target = srv
  if CANNED then
    canned_srv = start_canned(capture_answers())
    target = canned_srv
    srv:stop()   -- from here on nothing talks to the emulator
    local serve = os.getenv("A0_BENCH_SERVE")
    if serve then   -- bench/instructions.sh: describe the server and the floor, serve until stdin closes
      local s, t, headers = floor_requests()
      local f = assert(io.open(serve .. ".tmp", "w"))
      f:write("BASE=", sh_quote(target.base_url), "\nCA=", sh_quote(target.ca_file), "\nFLOOR_ARGS=(",
        sh_quote(s.url), " ", sh_quote(t.url), " ", sh_quote(target.ca_file), " \"$CMD\" \"$REPLY\" ",
        sh_quote(s.body), " ", sh_quote(t.body))
      for _, h in ipairs(headers) do f:write(" ", sh_quote(h)) end
      f:write(")\n")
      f:close()
      assert(os.rename(serve .. ".tmp", serve))
      io.read("a")
      return true
    end
  end
  -- Warm the emulator (LuaJIT traces, JWT signing) so the first way measured is not penalized.
  prepare()
  do
    local c = auth0.new { base_url = target.base_url, ca_file = target.ca_file, client_id = CLIENT_ID }
    for i = 1, 50 do assert(c:passwordless_start { connection = "email", email = email(i) }) end
    local codes = read_codes()
    for i = 1, 50 do assert(c:passwordless_login { realm = "email", username = email(i), otp = codes[email(i)] }) end
    c:close()
  end

  -- ours and the floor alternate ROUNDS times (medians are reported); LuaSocket, ~100x slower
  -- in wall time, runs once.
  local floor_runs, ours_runs, core_runs = {}, {}, {}
  for r = 1, ROUNDS do
    ours_runs[r], floor_runs[r] = run_pair()
    core_runs[r] = run_lua_way(core_way)
  end
  local floor = summarize("floor (C, libcurl)", floor_runs)
  local ours = summarize("lua-auth0 (ours)", ours_runs)
  local core = summarize("  auth0.core only", core_runs)
  local luasocket = not CANNED and summarize("LuaSocket+LuaSec+cjson", { run_lua_way(luasocket_way) })
  -- the ratio of each round (ours and the floor ran back to back), sorted for its spread
  local ratios, sorted = {}, {}
  for r = 1, ROUNDS do
    ratios[r] = format("%.2f", ours_runs[r].cpu / floor_runs[r].cpu)
    sorted[r] = ours_runs[r].cpu / floor_runs[r].cpu
  end
  table.sort(sorted)
  local rmed = ROUNDS % 2 == 1 and sorted[(ROUNDS + 1) / 2] or (sorted[ROUNDS / 2] + sorted[ROUNDS / 2 + 1]) / 2

  print(format("passwordless bench: N = %d logins (start + login = 2 requests each), %s, libcurl %s",
    N, _VERSION, floor.detail.curl))
  if CANNED then
    print(format("server: canned nginx (no Lua), %s over TLS; answers of %d and %d bytes taken from the emulator",
      MODE == "canned" and "HTTP/1.1" or "HTTP/2", canned_srv.sizes[1], canned_srv.sizes[2]))
  else
    print("server: the emulator under nginx, HTTP/2 over TLS")
  end
  if PIN then
    local where = { "client " .. affinity(server.self_pid()), "floor (inherited) " .. PIN }
    if canned_srv then
      for i, p in ipairs(canned_srv.pids) do where[#where + 1] = (i == 1 and "nginx master " or "worker ") .. affinity(p) end
    end
    print("pinning (A0_BENCH_CPU=" .. PIN .. "), CPUs: " .. concat(where, ", "))
  else
    print("pinning: none (A0_BENCH_CPU unset): the CPU ratio includes cross-CPU wakeups, see the header")
  end
  print(format("%-24s %7s %14s %19s %15s %12s", "way", "rounds", "CPU ms/login", "(min - max)",
    "wall ms/login", "connections"))
  for _, r in ipairs(luasocket and { ours, luasocket, floor, core } or { ours, floor, core }) do
    print(format("%-24s %7d %14.4f %19s %15.4f %12d", r.name, r.runs, r.cpu * 1000 / N,
      format("(%.4f - %.4f)", r.cpu_min * 1000 / N, r.cpu_max * 1000 / N), r.wall * 1000 / N, r.connects))
  end
  print(format("ours / floor:      CPU %.2fx  wall %.2fx   (target: CPU within 1.2x; best rounds: CPU %.2fx)",
    ours.cpu / floor.cpu, ours.wall / floor.wall, ours.cpu_min / floor.cpu_min))
  print(format("ours / floor per round: median %.2fx, spread %.2fx - %.2fx (%s)", rmed, sorted[1],
    sorted[ROUNDS], concat(ratios, " ")))
  if luasocket then
    print(format("luasocket / ours:  CPU %.2fx  wall %.2fx   (target: at least 10x)",
      luasocket.cpu / ours.cpu, luasocket.wall / ours.wall))
  end
  print(format("diagnostic: auth0.core alone (no Lua front, no cjson) %.2fx the floor (best rounds: %.2fx)",
    core.cpu / floor.cpu, core.cpu_min / floor.cpu_min))
  print(format("ours: %d TLS connection(s) per client object for %d requests%s", ours.connects, 2 * N,
    ours.connects == 1 and "" or "  <-- EXPECTED EXACTLY 1"))
  print("notes:")
  print("- CPU = client process CPU (user+sys): os.clock() deltas for the Lua ways, getrusage for the")
  print("  floor; medians over the rounds (ratios of the best rounds in parentheses: other load only adds),")
  print("  one new client object (or floor process) per round; ours and the floor alternate in chunks")
  print(format("  of %d users within a round (ABBA), so both run under the same load.", CHUNK))
  print("- every way runs N starts then N logins; reading the codes from the emulator's outbox")
  print("  (control API) happens between the two phases and is not timed (canned: a fixed code).")
  print(format("- the floor sends the same headers and JSON bytes (the real codes, %d bytes in per login)"
    .. " and parses nothing; its CPU excludes the code hand-over, like the Lua ways'.",
    math.floor(floor.detail.bytes_in / N)))
  print("- the indented row is a diagnostic, not a way: auth0.core called directly (no Lua front, no")
  print("  cjson), same two phases.")
  print("- the server shares the machine's cores with the client: wall times include the server")
  print("  and are noisy; CPU time is the figure.")
  if not luasocket then return ours.connects == 1 end
  print("- LuaSec's https.request opens one TCP+TLS connection per request (counted by wrapping socket.tcp);")
  print("  LuaSocket writes headers and body separately, so Nagle + delayed ACK add ~40 ms per request.")
  return ours.connects == 1
end

local ok, res = xpcall(main, debug.traceback)
if canned_srv then canned_srv.stop() end
if srv then srv:stop() end
if not ok then
  io.stderr:write(res, "\n")
  os.exit(1)
end
os.exit(res and 0 or 1)
