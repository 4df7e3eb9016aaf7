-- The credentials manager on ngx_store in nginx with 4 workers: 24 concurrent requests on an
-- expired access token renew it exactly once, every request gets the new token, no worker is
-- blocked (the lock waits with ngx.sleep), and no token reaches error.log; a revoked refresh
-- token answers login_required on every worker.
local emu = require "spec.support.emulator"
local util = require "spec.support.util"
local socket = require "socket"
local cjson = require("cjson.safe").new()
local launch = dofile("examples/openresty/launch.lua")

if not util.first_pass() then
  describe("ngx_store across nginx workers", function() pending("runs once, in the Lua 5.4 pass") end)
  return
end

local HANDLER = [[
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local cjson = require("cjson.safe").new()
local base = "%s"
local transport = require("auth0.transport.ngx").new({ base_url = base, host = "127.0.0.1", timeout = 10,
  connect_timeout = 2 }, { server_name = "localhost" })
local c = auth0.new { base_url = base, client_id = "emu-native", transport = transport, sleep = ngx.sleep,
  timeout = 10 }
local cm = credentials.new(c, { store = credentials.ngx_store { dict = "creds", key = "u" } })
ngx.header["content-type"] = "application/json"
if ngx.var.uri == "/seed" then
  ngx.req.read_body()
  local tokens = cjson.decode(ngx.req.get_body_data())
  local ok, err = cm:save(tokens)
  local d = credentials.ngx_store { dict = "creds", key = "u" }.load()
  return ngx.print(cjson.encode { ok = ok ~= nil, err = err and tostring(err), expired = d and d.expires_at <= os.time() })
end
local t0 = ngx.now()
local tok, err = cm:credentials()
ngx.update_time()
ngx.print(cjson.encode { at = tok and tok.access_token, err = err and tostring(err), pid = ngx.worker.pid(),
  ms = (ngx.now() - t0) * 1000 })
]]

local function get(port, path, body)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(30)
  local data = body or ""
  c:send(("%s %s HTTP/1.0\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")
    :format(body and "POST" or "GET", path, #data, data))
  local text = c:receive("*a")
  c:close()
  return cjson.decode(text:match("\r\n\r\n(.*)$") or ""), text
end

describe("ngx_store across nginx workers", function()
  local srv, api, work
  setup(function()
    srv = emu.start()
    work = io.popen("mktemp -d /tmp/auth0-ngxstore-spec.XXXXXX"):read("l")
    util.write(work .. "/h.lua", HANDLER:format(srv.base_url))
    api = assert(launch.start { base_url = srv.base_url, ca_file = srv.ca_file, workers = 4,
      http = "lua_shared_dict creds 1m;\n",
      server = ("location = /seed { content_by_lua_file %s/h.lua; }\n"
        .. "location = /token { content_by_lua_file %s/h.lua; }\n"):format(work, work) })
  end)
  teardown(function()
    if api then api:stop() end
    if work then os.execute("rm -rf " .. util.q(work)) end
  end)

  it("renews an expired token once for 24 concurrent requests on 4 workers", function()
    emu.reset()
    local c = util.client(srv)
    local tokens = util.login(emu, c, "workers@example.com")
    local rt = tokens.refresh_token
    tokens.expires_in = 0   -- expired as soon as it is stored
    local r, raw = get(api.port, "/seed", cjson.encode(tokens))
    assert.is_true(r and r.ok, r and r.err or raw .. api:log():sub(-1500))
    assert.is_true(r.expired)
    require("auth0").core.sleep(1.05)   -- a second boundary: the renewed token differs (iat)
    local before = emu.control("GET", "/refresh_tokens").refreshes
    -- all in flight at once
    local conns = {}
    for i = 1, 24 do
      local s = assert(socket.connect("127.0.0.1", api.port))
      s:send("GET /token HTTP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n")
      conns[i] = s
    end
    local pids, first = {}, nil
    for i, s in ipairs(conns) do
      s:settimeout(30)
      local text = s:receive("*a") or ""
      s:close()
      local o = cjson.decode(text:match("\r\n\r\n(.*)$") or "")
      assert.is_table(o, text)
      assert.is_string(o.at, o.err)
      first = first or o.at
      assert.equal(first, o.at, "request " .. i)
      pids[o.pid] = true
    end
    assert.not_equal(tokens.access_token, first)
    assert.equal(before + 1, emu.control("GET", "/refresh_tokens").refreshes)
    local n = 0
    for _ in pairs(pids) do n = n + 1 end
    assert.is_true(n >= 2, "answered by one worker only")
    local log = api:log()
    assert.is_nil(log:find(rt, 1, true))
    assert.is_nil(log:find(first, 1, true))
    assert.is_nil(log:find(tokens.access_token, 1, true))
    assert.is_nil(log:find("%[error%]") or log:find("%[crit%]") or log:find("%[alert%]"), log)
  end)
  it("answers login_required on every worker when the refresh token was revoked, nothing secret logged", function()
    emu.reset()
    local c = util.client(srv)
    local tokens = util.login(emu, c, "revoked@example.com")
    local rt = tokens.refresh_token
    tokens.expires_in = 0
    local r, raw = get(api.port, "/seed", cjson.encode(tokens))
    assert.is_true(r and r.ok, raw)
    assert(c:revoke(rt))
    local conns = {}
    for i = 1, 24 do
      local s = assert(socket.connect("127.0.0.1", api.port))
      s:send("GET /token HTTP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n")
      conns[i] = s
    end
    for i, s in ipairs(conns) do
      s:settimeout(30)
      local text = s:receive("*a") or ""
      s:close()
      local o = cjson.decode(text:match("\r\n\r\n(.*)$") or "")
      assert.is_table(o, text)
      assert.is_nil(o.at, "request " .. i)
      assert.matches("login_required", o.err, 1, true)
      assert.is_nil(o.err:find(rt, 1, true))
    end
    local log = api:log()
    assert.is_nil(log:find(rt, 1, true))
    assert.is_nil(log:find(tokens.access_token, 1, true))
  end)
end)
