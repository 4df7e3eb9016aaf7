-- The OpenResty gateway under attack (the hostile review of issue 15): limiter keys an
-- attacker can vary for free. An IPv6 subscriber holds a whole /64 (2^64 addresses), so the
-- per-address limit counts the /64; and "victim+1@", "victim+2@", "Victim@" are one mailbox,
-- so the per-identifier limit counts the address without its +tag, case-folded.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"
local server = require "auth0.emulator.server"
local launch = dofile("examples/openresty/launch.lua")
local gw = require "spec.support.gateway"

local core = auth0.core
local post = gw.post
local srv, g

describe("the OpenResty gateway attacked: limiter keys", function()
  setup(function()
    srv = emu.start()
    local err
    g, err = launch.start { base_url = srv.base_url:gsub("127%.0%.0%.1", "localhost"), ca_file = srv.ca_file, owner_pid = server.self_pid(),
      client_id = "emu-confidential", workers = 1,
      env = { AUTH0_CLIENT_SECRET = "emu-confidential-secret",
              AUTH0_GATEWAY_KEYS = "k1:" .. core.b64url_encode(core.random_bytes(32)) },
      options = "limit_ip = { 5, 60 }, limit_identifier = { 3, 600 }, limit_verify = { 4, 60 }," }
    assert(g, err)
  end)
  teardown(function() if g then g:stop() end end)
  before_each(function()
    emu.reset()
    emu.control("POST", "/rate_limits", { enabled = false })
  end)

  it("counts IPv6 addresses of one /64 together on /login/start, and other /64s apart", function()
    for i = 1, 5 do
      local r = post(g.port, "/login/start", { email = ("six%d@example.com"):format(i) },
        { ["X-Forwarded-For"] = ("2001:db8:1:2::%x"):format(i) })
      assert.equal(200, r.status)
    end
    -- the same /64, spelled every way nginx or a client may spell it
    for _, a in ipairs({ "2001:db8:1:2:ffff:ffff:ffff:fffe", "2001:0db8:0001:0002::77", "2001:DB8:1:2::1.2.3.4" }) do
      local r = post(g.port, "/login/start", { email = "six9@example.com" }, { ["X-Forwarded-For"] = a })
      assert.equal(429, r.status, a)
      assert.equal("too many logins from this address; retry later", r.body.error_description)
    end
    -- the next /64 is someone else
    assert.equal(200, post(g.port, "/login/start", { email = "six9@example.com" },
      { ["X-Forwarded-For"] = "2001:db8:1:3::1" }).status)
  end)

  it("counts an IPv4-mapped IPv6 address as the IPv4 address", function()
    for i = 1, 5 do
      assert.equal(200, post(g.port, "/login/start", { email = ("four%d@example.com"):format(i) },
        { ["X-Forwarded-For"] = "198.51.100.20" }).status)
    end
    assert.equal(429, post(g.port, "/login/start", { email = "four9@example.com" },
      { ["X-Forwarded-For"] = "::ffff:198.51.100.20" }).status)
  end)

  it("limits verification attempts per /64 too", function()
    for i = 1, 4 do
      assert.equal(400, post(g.port, "/login/verify", { code = "123456" },
        { ["X-Forwarded-For"] = ("2001:db8:9:9::%x"):format(i) }).status)
    end
    assert.equal(429, post(g.port, "/login/verify", { code = "123456" },
      { ["X-Forwarded-For"] = "2001:db8:9:9::99" }).status)
  end)

  it("counts one mailbox once whatever its +tag or case (e-mail bombing)", function()
    local n = 0
    for _, e in ipairs({ "victim@example.com", "victim+1@example.com", "Victim+2@Example.COM" }) do
      n = n + 1
      assert.equal(200, post(g.port, "/login/start", { email = e },
        { ["X-Forwarded-For"] = "203.0.113." .. n }).status, e)
    end
    local r = post(g.port, "/login/start", { email = "VICTIM+zzz@example.com" }, { ["X-Forwarded-For"] = "203.0.113.9" })
    assert.equal(429, r.status)
    assert.equal("too many logins for this email; retry later", r.body.error_description)
    -- another mailbox of the same domain is not affected
    assert.equal(200, post(g.port, "/login/start", { email = "bystander@example.com" },
      { ["X-Forwarded-For"] = "203.0.113.10" }).status)
  end)

  it("tells the end user that Auth0 is unreachable without the upstream's address or the TLS details", function()
    local dead = launch.free_port()
    local g2, err = launch.start { base_url = "https://localhost:" .. dead, ca_file = srv.ca_file,
      owner_pid = server.self_pid(), client_id = "emu-confidential", workers = 1,
      env = { AUTH0_CLIENT_SECRET = "emu-confidential-secret",
              AUTH0_GATEWAY_KEYS = "k1:" .. core.b64url_encode(core.random_bytes(32)) } }
    assert(g2, err)
    finally(function() g2:stop() end)
    local r = post(g2.port, "/login/start", { email = "down@example.com" }, { ["X-Forwarded-For"] = "192.0.2.200" })
    assert.equal(502, r.status)
    local text = require("cjson").encode(r.body)
    assert.is_nil(text:find(tostring(dead), 1, true), text)
    assert.is_nil(text:find("localhost", 1, true), text)
    assert.is_nil(text:lower():find("refused", 1, true), text)
    -- the operator still has the details in the log (code, status, request id)
    assert.matches("auth0 failure: step=start code=", g2:log())
  end)
end)
