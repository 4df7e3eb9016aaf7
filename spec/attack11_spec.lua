-- Hostile review (attack11) of the credentials' owner check and the engine's remembered wakeup.
-- Real files, real HTTPS to the emulator; the engine part against a loopback port that
-- listens and never answers (requests held there, no other process).
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"
local util = require "spec.support.util"
local socket = require "socket"

local now = auth0.core.now

local function mismatch(v, err)
  assert.is_true(v == nil, "a session's tokens were handed out")   -- (never printed)
  assert.equal("store_mismatch", err and err.code, tostring(err))
  assert.equal("store", err.reason)
end

describe("attack11: a store of another tenant or client", function()
  local server
  local clock = util.clock(emu)
  local function client(opts) return util.client(server, opts) end
  local function refreshes() return emu.control("GET", "/refresh_tokens").refreshes end
  local function other_tenant() return client({ base_url = (server.base_url:gsub("127%.0%.0%.1", "localhost")) }) end

  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
    assert(emu.control("POST", "/clients", { client_id = "emu-second" }))
  end)
  after_each(util.rm_tmp)

  -- The owner's session on a file, then written back as a version that recorded no owner
  -- did (the verified ID token's claims are in it: `user`). Returns the owner's client, the
  -- path and the file's bytes.
  local function legacy(email)
    local c = client()
    local path = util.tmpdir("a0-attack11") .. "/credentials"
    local store = credentials.file_store { path = path }
    assert(credentials.new(c, { store = store, now = clock.now }):save(util.login(emu, c, email)))
    local d = store.load()
    assert.equal(server.base_url .. "/", d.user.iss)
    d.issuer, d.client_id = nil, nil
    assert(store.save(d))
    return c, path, assert(util.read(path))
  end

  for _, case in ipairs {
    { what = "another tenant", make = other_tenant },
    { what = "another client id", make = function() return client({ client_id = "emu-second" }) end },
  } do
    it("an unrecorded session whose ID token names its owner: " .. case.what .. " gets none of it", function()
      local c, path, bytes = legacy("old-owner@example.com")
      local o = case.make()
      local cm = credentials.new(o, { store = credentials.file_store { path = path }, now = clock.now })
      mismatch(cm:credentials())   -- the access token is valid: still not handed out
      assert.is_nil(cm:user())
      clock.advance(86400)
      mismatch(cm:credentials())   -- expired: no refresh sent to the other tenant or client
      mismatch(cm:api_credentials("https://api.example.com"))
      local got
      assert.is_true(cm:renew(function(...) got = { ... } end))
      assert.is_true(util.poll_until(o, function() return got ~= nil end))
      mismatch(got[1], got[2])
      mismatch(cm:clear({ revoke = false }))   -- another's logout neither revokes nor deletes it
      mismatch(cm:clear())
      assert.equal(0, refreshes())
      assert.equal(bytes, assert(util.read(path)))   -- not claimed, not cleared
      o:close()
      -- the owner still renews from it, and records it
      local mine = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
      assert(mine:credentials())
      assert.equal(1, refreshes())
      c:close()
    end)
  end

  it("a client wrapped in a proxy table is checked as the client itself", function()
    local c = client()
    local path = util.tmpdir("a0-attack11") .. "/credentials"
    assert(credentials.new(c, { store = credentials.file_store { path = path } }):save(util.login(emu, c, "p@example.com")))
    local o = client({ client_id = "emu-second" })
    local proxy = setmetatable({}, { __index = o })   -- e.g. an application's logging wrapper
    local cm = credentials.new(proxy, { store = credentials.file_store { path = path } })
    mismatch(cm:credentials())
    o:close()
    c:close()
  end)
end)

describe("attack11: stores.foreign on an unrecorded session", function()
  local stores = require "auth0.credentials.stores"
  local owner = { issuer = "https://t.example.com/", client_id = "abc" }
  local function judge(user) return stores.foreign(owner, { v = 1, access_token = "x", expires_at = 0, user = user }) end

  it("goes by the claims as verify_id_token checked them: iss, aud, azp with several audiences", function()
    assert.is_nil(judge(nil))   -- no claims: accepted (claimed on its next save)
    assert.is_nil(judge({ sub = "u" }))
    assert.is_nil(judge({ iss = "https://T.example.com/", aud = "abc" }))
    assert.is_nil(judge({ iss = "https://t.example.com/", aud = { "abc" } }))
    assert.is_nil(judge({ iss = "https://t.example.com/", aud = { "abc", "api" }, azp = "abc" }))
    for _, u in ipairs {
      { iss = "https://other.example.com/", aud = "abc" },
      { iss = "https://t.example.com/", aud = "xyz" },
      { iss = "https://t.example.com/", aud = { "abc", "xyz" }, azp = "xyz" },   -- xyz's token
      { iss = "https://t.example.com/", aud = { "abc", "xyz" } },
      { iss = "https://t.example.com/" }, { aud = "abc" },
      { iss = 5, aud = "abc" }, { iss = "https://t.example.com/", aud = { { "abc" } } },
      { iss = "https://t.example.com/\0", aud = "abc" },
    } do
      local err = judge(u)
      assert.equal("store_mismatch", err and err.code)
      assert.is_nil(err.message:find("other.example", 1, true))   -- nothing of the store's in the text
    end
  end)
end)

describe("attack11: wakeup()", function()
  it("is answered by one poll(ms): the next one waits", function()
    local srv = assert(socket.bind("127.0.0.1", 0))   -- listens, never accepts nor answers
    local _, port = srv:getsockname()
    local c = auth0.new { base_url = "http://127.0.0.1:" .. port, client_id = "x", timeout = 30, retries = 0 }
    c:passwordless_start({ connection = "email", email = "held@example.com" }, function() end)
    for _ = 1, 10 do assert.equal(1, c:poll(30)) end   -- sent: the wire is quiet
    c:wakeup()
    local t0 = now()
    assert.equal(1, c:poll(3000))
    assert.is_true(now() - t0 < 1.5, "poll after wakeup took " .. (now() - t0) .. " s")
    t0 = now()
    assert.equal(1, c:poll(200))
    assert.is_true(now() - t0 >= 0.18, "the poll(200) after the answered wakeup took " .. (now() - t0) .. " s")
    c:close()
    srv:close()
  end)
end)
