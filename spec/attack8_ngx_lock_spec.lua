-- Hostile review of the ngx_store lock (681b5aa), in a real nginx with 4 workers: a refresh
-- whose lock was lost while another worker logged the user out (the store emptied) wrote its
-- session back: the logout undone. The emulator delays /oauth/token 3 s (lock_ttl 1).
local emu = require "spec.support.emulator"
local util = require "spec.support.util"
local socket = require "socket"
local cjson = require("cjson.safe").new()
local launch = dofile("examples/openresty/launch.lua")

if not util.first_pass() then
  describe("attack8: ngx_store logout during a refresh", function() pending("runs once, in the Lua 5.4 pass") end)
  return
end

local HANDLER = [[
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local cjson = require("cjson.safe").new()
local base = "%s"
local transport = require("auth0.transport.ngx").new({ base_url = base, host = "127.0.0.1", timeout = 6,
  connect_timeout = 2 }, { server_name = "localhost" })
local c = auth0.new { base_url = base, client_id = "emu-native", transport = transport, sleep = ngx.sleep,
  timeout = 6 }
local store = credentials.ngx_store { dict = "creds", key = "u", lock_ttl = 1 }
local cm = credentials.new(c, { store = store })
ngx.header["content-type"] = "application/json"
if ngx.var.uri == "/seed" then
  ngx.req.read_body()
  local ok, err = cm:save(cjson.decode(ngx.req.get_body_data()))
  return ngx.print(cjson.encode { ok = ok ~= nil, err = err and tostring(err) })
end
if ngx.var.uri == "/steal" then   -- another session stored while a refresh holds the lock
  ngx.sleep(tonumber(ngx.var.arg_after))
  ngx.shared.creds:delete("u:lock")
  local d = store.load()
  d.refresh_token, d.access_token, d.expires_at = "newer-session-rt", "newer-session-at", os.time() + 3600
  store.save(d)
  return ngx.print(cjson.encode { ok = true })
end
if ngx.var.uri == "/logout" then   -- another worker's logout while a refresh holds the lock
  ngx.sleep(tonumber(ngx.var.arg_after))
  ngx.shared.creds:delete("u:lock")
  store.clear()
  return ngx.print(cjson.encode { ok = true })
end
if ngx.var.uri == "/peek" then
  local d = store.load()
  return ngx.print(cjson.encode { rt = d and d.refresh_token, at = d and d.access_token })
end
local tok, err = cm:credentials()
ngx.print(cjson.encode { at = tok and tok.access_token, err = err and tostring(err), pid = ngx.worker.pid() })
]]

local function send(port, path, body)
  local s = assert(socket.connect("127.0.0.1", port))
  local data = body or ""
  s:send(("%s %s HTTP/1.0\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")
    :format(body and "POST" or "GET", path, #data, data))
  return s
end
local function answer(s)
  s:settimeout(30)
  local text = s:receive("*a") or ""
  s:close()
  return cjson.decode(text:match("\r\n\r\n(.*)$") or ""), text
end
local function get(port, path, body) return answer(send(port, path, body)) end

describe("attack8: ngx_store logout during a refresh", function()
  local srv, api, work
  setup(function()
    srv = emu.start()
    work = io.popen("mktemp -d /tmp/auth0-a8ngx-spec.XXXXXX"):read("l")
    util.write(work .. "/h.lua", HANDLER:format(srv.base_url))
    local loc = "location = %s { content_by_lua_file " .. work .. "/h.lua; }\n"
    api = assert(launch.start { base_url = srv.base_url, ca_file = srv.ca_file, workers = 4,
      http = "lua_shared_dict creds 1m;\n",
      server = loc:format("/seed") .. loc:format("/token") .. loc:format("/logout") .. loc:format("/peek") })
  end)
  teardown(function()
    emu.control("DELETE", "/faults")
    if api then api:stop() end
    if work then os.execute("rm -rf " .. util.q(work)) end
  end)

  it("a holder whose lock was lost to a logout does not write the session back", function()
    emu.reset()
    local tokens = util.login(emu, util.client(srv), "a8-ngx-logout@example.com")
    tokens.expires_in = 0
    local r, raw = get(api.port, "/seed", cjson.encode(tokens))
    assert.is_true(r and r.ok, r and r.err or raw)
    emu.control("POST", "/faults", { rules = { { kind = "delay", path = "/oauth/token", ms = 3000, times = 1 } } })
    local first = send(api.port, "/token")
    local logout = send(api.port, "/logout?after=1.2")
    local a, atext = answer(first)
    assert.is_true(answer(logout).ok)
    assert.is_table(a, atext)
    assert.is_nil(a.at, "tokens answered after the logout")
    assert.truthy(a.err and a.err:find("login_required", 1, true), a.err)
    local p = get(api.port, "/peek")
    assert.is_nil(p.rt, "the session was written back after the logout")
    local log = api:log()
    assert.is_nil(log:find(tokens.refresh_token, 1, true))
  end)
end)
