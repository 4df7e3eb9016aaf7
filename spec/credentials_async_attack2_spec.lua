-- A login saved while the manager's own refresh is in flight (callback forms, issue 14's store
-- jobs): the refresh, started from the previous session, must not land over the new login.
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"
local cjson = require "cjson"
local core = require("auth0").core
local util = require "spec.support.util"

local server
local clock = util.clock(emu)

describe("auth0.credentials: a save during the manager's refresh", function()
  setup(function() server = emu.start() end)
  before_each(function() emu.reset(); clock.reset() end)
  after_each(util.rm_tmp)

  for _, blocking in ipairs({ false, true }) do
    it("the login saved last stays (" .. (blocking and "blocking" or "callback") .. " save)", function()
      local path = util.tmpdir("a0-creds-attack2") .. "/creds"
      local c = util.client(server)
      local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
      local a = util.login(emu, c, "first@example.com")
      assert(cm:save(a))
      local b = util.login(emu, c, "second@example.com")
      local renewed, saved
      assert.is_true(cm:renew(function(t, e) renewed = { t, e } end))
      if blocking then saved = { cm:save(b) }
      else assert.is_true(cm:save(b, function(ok, e) saved = { ok, e } end)) end
      assert(util.poll_until(c, function() return renewed and saved end), "timed out")
      assert.is_true(saved[1], tostring(saved[2]))
      local disk = cjson.decode(core.store_read(path))
      assert.equal(b.refresh_token, disk.refresh_token)   -- not the first session's rotated token
      assert.equal("second@example.com", cm:user().email)
      local t = assert(cm:credentials())
      assert.equal(b.access_token, t.access_token)
      c:close()
    end)
  end
end)
