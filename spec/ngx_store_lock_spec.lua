-- The ngx_store refresh lock outlives the refresh that holds it: with a lock_ttl (1 s) shorter
-- than a slow refresh (the emulator answers /oauth/token after 2.5 s), a second request on
-- nginx's 4 workers waits for the first one's refresh instead of taking the expired lock and
-- presenting the same (by then rotated) refresh token, which Auth0's reuse detection answers by
-- revoking the whole family: the user would be logged out. And a holder whose lock was taken
-- from it does not write its tokens over the newer session another worker stored, nor write
-- its session back into a store another worker's logout emptied (the logout undone; attack8).
local emu = require "spec.support.emulator"
local util = require "spec.support.util"
local socket = require "socket"
local cjson = require("cjson.safe").new()
local launch = dofile("examples/openresty/launch.lua")

if not util.first_pass() then
  describe("ngx_store lock across a slow refresh", function() pending("runs once, in the Lua 5.4 pass") end)
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

describe("ngx_store lock across a slow refresh", function()
  local srv, api, work
  setup(function()
    srv = emu.start()
    work = io.popen("mktemp -d /tmp/auth0-ngxlock-spec.XXXXXX"):read("l")
    util.write(work .. "/h.lua", HANDLER:format(srv.base_url))
    local loc = "location = %s { content_by_lua_file " .. work .. "/h.lua; }\n"
    api = assert(launch.start { base_url = srv.base_url, ca_file = srv.ca_file, workers = 4,
      http = "lua_shared_dict creds 1m;\n",
      server = loc:format("/seed") .. loc:format("/token") .. loc:format("/steal") .. loc:format("/logout")
        .. loc:format("/peek") })
  end)
  teardown(function()
    emu.control("DELETE", "/faults")
    if api then api:stop() end
    if work then os.execute("rm -rf " .. util.q(work)) end
  end)

  local function seeded(email)
    emu.reset()
    local c = util.client(srv)
    local tokens = util.login(emu, c, email)
    tokens.expires_in = 0   -- expired as soon as it is stored
    local r, raw = get(api.port, "/seed", cjson.encode(tokens))
    assert.is_true(r and r.ok, r and r.err or raw .. api:log():sub(-1500))
    require("auth0").core.sleep(1.05)   -- a second boundary: the renewed token differs (iat)
    return tokens
  end

  it("a second worker waits for a refresh longer than lock_ttl: one refresh, no reuse, no logout", function()
    local tokens = seeded("slowlock@example.com")
    emu.control("POST", "/faults", { rules = { { kind = "delay", path = "/oauth/token", ms = 2500, times = 1 } } })
    local before = emu.control("GET", "/refresh_tokens")
    local first = send(api.port, "/token")
    require("auth0").core.sleep(1.4)   -- the first refresh is under way, past lock_ttl
    local second = send(api.port, "/token")
    local a, atext = answer(first)
    local b, btext = answer(second)
    assert.is_table(a, atext)
    assert.is_table(b, btext)
    assert.is_string(a.at, a.err)
    assert.is_string(b.at, b.err)
    assert.is_true(a.at == b.at, "two access tokens")
    assert.is_true(tokens.access_token ~= a.at, "not renewed")
    local after = emu.control("GET", "/refresh_tokens")
    assert.equal(before.refreshes + 1, after.refreshes)
    assert.equal(before.reuse_detected, after.reuse_detected)
    -- the stored refresh token is the rotated one, and it still works
    local p = get(api.port, "/peek")
    assert.is_true(tokens.refresh_token ~= p.rt, "not rotated")
    assert.truthy(util.client(srv):refresh { refresh_token = p.rt })
    local log = api:log()
    assert.is_nil(log:find(tokens.refresh_token, 1, true))
    assert.is_nil(log:find("%[error%]") or log:find("%[crit%]") or log:find("%[alert%]"), log)
  end)

  it("a holder whose lock was taken does not write over the newer session stored since", function()
    seeded("lostlock@example.com")
    emu.control("POST", "/faults", { rules = { { kind = "delay", path = "/oauth/token", ms = 3000, times = 1 } } })
    local first = send(api.port, "/token")
    local steal = send(api.port, "/steal?after=1.2")
    local a, atext = answer(first)
    assert.is_true(answer(steal).ok)
    assert.is_table(a, atext)
    assert.is_true(a.at == "newer-session-at", a.err or "the refresh's own token answered")
    local p = get(api.port, "/peek")
    assert.equal("newer-session-rt", p.rt)
    assert.equal("newer-session-at", p.at)
  end)

  it("a holder whose lock was lost to a logout does not write the session back", function()
    local tokens = seeded("a8-ngx-logout@example.com")
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
    assert.is_nil(api:log():find(tokens.refresh_token, 1, true))
  end)
end)
