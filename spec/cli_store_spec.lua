-- The auth0 command with one credentials file for two profiles (AUTH0_STORE_PATH or
-- --store-path shared by prod and staging): the profile whose session it is not exits 1 with
-- store_mismatch, prints no token, sends no refresh (the emulator's count) nor revocation, and
-- leaves the file as it is; the owner's `token` still renews from it (also a session an older
-- version saved, judged by its ID token's claims: attack11). A relative store path is
-- refused (exit 2): cron runs the command from another folder. Real processes, real HTTPS.
local emu = require "spec.support.emulator"
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local cjson = require("cjson.safe").new()
local util = require "spec.support.util"
local cli = require "spec.support.cli"
local q, read, write = util.q, util.read, util.write

if not util.first_pass() then
  describe("the auth0 command sharing a store", function() pending("runs once, in the Lua 5.4 pass") end)
  return
end

describe("the auth0 command sharing a store", function()
  local srv, work, store

  -- profile `name`: the emulator at `host` (localhost is another tenant: another issuer)
  local function profile(name, host, client_id)
    write(work .. "/config/lua-auth0/" .. name .. ".conf", ("base_url = %s\nclient_id = %s\nca_file = %s\n"):format(
      srv.base_url:gsub("127%.0%.0%.1", host), client_id, srv.ca_file))
    os.execute("chmod 0600 " .. q(work .. "/config/lua-auth0/" .. name .. ".conf"))
  end
  local function run(args, extra) return cli.run(work, args, extra or { AUTH0_STORE_PATH = store }) end
  local function refreshes() return emu.control("GET", "/refresh_tokens").refreshes end
  local function active() return emu.control("GET", "/refresh_tokens").active end
  local function bytes() return (read(store)) end

  setup(function() srv = emu.start() end)
  before_each(function()
    emu.reset()
    assert(emu.control("POST", "/clients", { client_id = "emu-second" }))
    work = util.tmpdir("a0-cli-store")
    os.execute("mkdir -m 0700 " .. q(work .. "/config") .. " " .. q(work .. "/config/lua-auth0"))
    profile("prod", "127.0.0.1", "emu-native")
    profile("staging", "localhost", "emu-native")
    profile("other-app", "127.0.0.1", "emu-second")
    store = work .. "/shared/credentials"
    -- prod logs in (as `auth0 login --profile prod` saves it)
    local c = auth0.new { base_url = srv.base_url, ca_file = srv.ca_file, client_id = "emu-native" }
    assert(credentials.new(c, { store = credentials.file_store { path = store } }):save(util.login(emu, c, "prod@example.com")))
    c:close()
  end)
  after_each(util.rm_tmp)

  it("gives staging (another tenant) and another client id no token of prod's, valid or not", function()
    local before = bytes()
    for _, p in ipairs { "staging", "other-app" } do
      local rc, out, err = run("token --profile " .. p)   -- prod's access token is valid
      assert.same({ 1, "" }, { rc, out }, err)
      assert.matches("^auth0: store_mismatch: ", err)
      assert.matches("give each profile its own --store-path", err, 1, true)
      rc, out, err = run("whoami --profile " .. p .. " --store-path " .. q(store), {})
      assert.same({ 1, "" }, { rc, out }, err)
      assert.matches("store_mismatch", err, 1, true)
    end
    assert.equal(before, bytes())
  end)

  it("sends no refresh nor revocation for staging, leaves prod's file, and prod still renews", function()
    local before, live = bytes(), active()
    auth0.core.sleep(1.05)   -- a second boundary: --min-ttl 86400 is more than is left
    local rc, out, err = run("token --min-ttl 86400 --profile staging")
    assert.equal(0, refreshes())   -- prod's refresh token never went to staging's /oauth/token
    assert.same({ 1, "" }, { rc, out }, err)
    assert.matches("store_mismatch", err, 1, true)
    rc, out, err = run("logout --profile staging")   -- a logout of staging is not one of prod
    assert.same({ 1, "" }, { rc, out }, err)
    assert.matches("store_mismatch", err, 1, true)
    rc = run("token --min-ttl 86400 --profile other-app")
    assert.equal(1, rc)
    assert.same({ 0, live, before }, { refreshes(), active(), bytes() })
    rc, out, err = run("token --min-ttl 86400 --profile prod")
    assert.equal(0, rc, err)
    assert.matches("^[%w_-]+%.[%w_-]+%.[%w_-]+\n$", out)
    assert.equal(1, refreshes())
    local saved = cjson.decode(bytes())
    assert.same({ srv.base_url .. "/", "emu-native" }, { saved.issuer, saved.client_id })
  end)

  it("a session saved before owners were recorded: staging's logout neither revokes nor deletes prod's", function()
    local d = cjson.decode(bytes())   -- as an older version wrote it: prod's ID token claims only
    d.issuer, d.client_id = nil, nil
    write(store, cjson.encode(d))
    local before, live = bytes(), active()
    for _, p in ipairs { "staging", "other-app" } do
      local rc, out, err = run("logout --profile " .. p)
      assert.same({ 1, "" }, { rc, out }, err)
      assert.matches("store_mismatch", err, 1, true)
      rc, out, err = run("token --min-ttl 86400 --profile " .. p)
      assert.same({ 1, "" }, { rc, out }, err)
    end
    assert.same({ 0, live, before }, { refreshes(), active(), bytes() })
    local rc, _, err = run("token --profile prod")
    assert.equal(0, rc, err)
  end)

  it("refuses a relative --store-path or AUTH0_STORE_PATH with status 2", function()
    for _, how in ipairs {
      { "token --profile prod --store-path creds", {}, "--store-path" },
      { "token --profile prod", { AUTH0_STORE_PATH = "creds" }, "AUTH0_STORE_PATH" },
      { "token --profile prod --store-path ./x/creds", {}, "--store-path" },
    } do
      local rc, out, err = run(how[1], how[2])
      assert.same({ 2, "" }, { rc, out }, err)
      assert.matches("^auth0: " .. how[3]:gsub("%-", "%%-") .. " must be an absolute path", err)
    end
    assert.is_nil(read("creds"))
    assert.equal(0, refreshes())
  end)

  it("refuses an empty --store-path with status 2 rather than fall back to the profile's file", function()
    local rc, out, err = run("token --profile prod --store-path ''", { AUTH0_STORE_PATH = "/nonexistent/creds" })
    assert.same({ 2, "" }, { rc, out }, err)
    assert.matches("^auth0: %-%-store%-path must not be empty", err)
    assert.equal(0, refreshes())
  end)
end)
