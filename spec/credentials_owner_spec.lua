-- auth0.credentials: a store holds the session of one tenant and one application. A manager
-- whose client is another tenant's (another base URL: here the same emulator reached as
-- https://localhost:<port>, whose issuer differs) or another client id's refuses a session it
-- loads with `store_mismatch`, sends no request (the emulator counts no refresh grant), and
-- leaves the store as it is: the owner's session keeps working. Real files, real HTTPS.
local credentials = require "auth0.credentials"
local stores = require "auth0.credentials.stores"
local emu = require "spec.support.emulator"
local util = require "spec.support.util"
local cjson = require("cjson.safe").new()

local server
local clock = util.clock(emu)
local now, advance = clock.now, clock.advance
local function client(opts) return util.client(server, opts) end
local function rt_state() return emu.control("GET", "/refresh_tokens") end
local function refreshes() return rt_state().refreshes end
local function login(c, email) return util.login(emu, c, email) end
local function slurp(path) return (assert(util.read(path))) end
local function poll_until(c, pred) assert(util.poll_until(c, pred), "timed out") end

-- The same emulator as another tenant: another host name (the certificate names localhost).
local function other_tenant() return client({ base_url = (server.base_url:gsub("127%.0%.0%.1", "localhost")) }) end

local function mismatch(v, err)
  assert.is_nil(v)
  assert.equal("store_mismatch", err and err.code, tostring(err))
  assert.equal("store", err.reason)
end

describe("auth0.credentials with a store of another tenant or client", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
    assert(emu.control("POST", "/clients", { client_id = "emu-second" }))   -- another public application
  end)
  after_each(util.rm_tmp)

  -- The owner's session on a file; returns the owner's client, the path and the file's bytes.
  local function owned(email)
    local c = client()
    local path = util.tmpdir("a0-owner") .. "/credentials"
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    assert(cm:save(login(c, email)))
    return c, path, slurp(path)
  end

  for _, case in ipairs {
    { what = "another tenant (base URL)", make = other_tenant },
    { what = "another client id", make = function() return client({ client_id = "emu-second" }) end },
  } do
    it("hands out none of the session's tokens to " .. case.what, function()
      local c, path, bytes = owned("valid@example.com")
      local o = case.make()
      local cm = credentials.new(o, { store = credentials.file_store { path = path }, now = now })
      mismatch(cm:credentials())   -- the stored access token is valid: still not handed out
      assert.is_false(cm:has_valid())
      assert.is_nil(cm:user())
      assert.equal(bytes, slurp(path))
      o:close()
      c:close()
    end)

    it("sends no refresh for " .. case.what .. " and leaves the store to its owner", function()
      local c, path, bytes = owned("owner@example.com")
      local active = rt_state().active
      local o = case.make()
      local cm = credentials.new(o, { store = credentials.file_store { path = path }, now = now })
      advance(86400)   -- expired: what would make a refresh
      local t, err = cm:credentials()
      assert.equal(0, refreshes())   -- the refresh token went nowhere
      mismatch(t, err)
      mismatch(cm:renew())
      mismatch(cm:api_credentials("https://api.example.com"))
      local got
      assert.is_true(cm:credentials(function(...) got = { ... } end))
      poll_until(o, function() return got ~= nil end)
      mismatch(got[1], got[2])
      -- a logout of the other profile neither revokes nor deletes this one's session
      mismatch(cm:clear())
      mismatch(cm:clear({ revoke = false }))
      got = nil
      assert.is_true(cm:clear({ revoke = false }, function(...) got = { ... } end))
      poll_until(o, function() return got ~= nil end)
      mismatch(got[1], got[2])
      assert.equal(0, refreshes())
      assert.equal(active, rt_state().active)
      assert.equal(bytes, slurp(path))
      o:close()
      -- the owner (another run: a new manager) still renews from it
      local mine = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
      t = assert(mine:credentials())
      assert.equal(86400, t.expires_in)
      assert.equal(1, refreshes())
      assert.not_equal(bytes, slurp(path))
      c:close()
    end)
  end

  it("accepts a session saved before owners were recorded, and records it on the next save", function()
    local c = client()
    local path = util.tmpdir("a0-owner") .. "/credentials"
    local store = credentials.file_store { path = path }
    local cm = credentials.new(c, { store = store, now = now })
    assert(cm:save(login(c, "old@example.com")))
    local saved = cjson.decode(slurp(path))
    assert.same({ server.base_url .. "/", "emu-native" }, { saved.issuer, saved.client_id })   -- a save records it
    local d = store.load()
    d.issuer, d.client_id = nil, nil   -- as an older version wrote it
    assert(store.save(d))
    assert.is_nil(slurp(path):find("client_id", 1, true))
    advance(86400)
    cm = credentials.new(c, { store = store, now = now })
    assert(cm:credentials())   -- renewed (accepted), and saved with the owner recorded
    assert.equal(1, refreshes())
    saved = cjson.decode(slurp(path))
    assert.same({ server.base_url .. "/", "emu-native" }, { saved.issuer, saved.client_id })
    -- from then on another client id is refused
    local o = client({ client_id = "emu-second" })
    mismatch(credentials.new(o, { store = store, now = now }):credentials())
    o:close()
    c:close()
  end)

  it("reads the recorded fields as strings only, and matches the host without case", function()
    local d = { v = 1, access_token = "x", expires_at = 0 }
    local owner = { issuer = "https://t.example.com/", client_id = "abc" }
    assert.is_nil(stores.foreign(owner, d))   -- not recorded: accepted
    d.issuer, d.client_id = "https://T.Example.com/", "abc"
    assert.is_nil(stores.foreign(owner, d))
    d.client_id = nil   -- half a record: not ours
    assert.equal("store_mismatch", stores.foreign(owner, d).code)
    local store = credentials.memory_store()
    assert(store.save({ v = 1, access_token = "x", expires_at = 0, issuer = 5, client_id = "emu-native" }))
    local c = client()
    local _, err = credentials.new(c, { store = store }):credentials()
    assert.equal("store_corrupt", err.code)
    c:close()
  end)
end)
