-- Hostile review of frames3 (#14): the credentials manager's callback-form saves check the ID
-- token in steps; a token whose kid the held JWKS lacks (the tenant rotated its key) falls back
-- to a JWKS fetch, which must not let an earlier save land after a later one.
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"
local util = require "spec.support.util"

local server
local clock = util.clock(emu)

describe("attack6: callback-form saves across a key rotation", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  it("two saves asked in a row store the second, whatever their checks cost", function()
    local c, cm, path, old, new = util.rotated_logins(emu, server, clock, { tag = "a6-creds",
      old = "old@example.com", new = "new@example.com", delay_ms = 300 })
    local got = {}
    assert.is_true(cm:save(new, function(ok, err) got[#got + 1] = { "new", ok, err } end))
    assert.is_true(cm:save(old, function(ok, err) got[#got + 1] = { "old", ok, err } end))
    assert(util.poll_until(c, function() return #got == 2 end, 20), "timed out")
    assert.same({ { "new", true }, { "old", true } }, got)
    assert.equal("old@example.com", cm:user().email)
    local again = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
    assert.equal("old@example.com", again:user().email)
    c:close()
  end)

  it("a clear asked while a save's signature is on the thread runs after it: nothing stays stored", function()
    local c = util.client(server)
    local path = util.tmpdir("a6-creds") .. "/credentials"
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
    local tokens = util.login(emu, c, "clear@example.com")
    assert(c:jwks())
    local got = {}
    assert.is_true(cm:save(tokens, function(ok, err) got[#got + 1] = { "save", ok, err } end))
    assert.truthy(c:poll(0))   -- the JWKS callback: the check's first step
    assert.is_true(cm:clear(function(ok, err) got[#got + 1] = { "clear", ok, err } end))
    assert(util.poll_until(c, function() return #got == 2 end, 20), "timed out")
    assert.same({ { "save", true }, { "clear", true } }, got)
    assert.is_nil(cm:user())
    assert.is_nil(require("auth0.core").store_read(path))
    c:close()
  end)
end)
