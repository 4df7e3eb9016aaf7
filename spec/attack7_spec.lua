-- Hostile review (attack7) of the frames3/perf3 merge after attack6: the credentials manager's
-- in-order saves against client:close(), the flow's chained step, the blocking fast path.
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"
local util = require "spec.support.util"
local core = require "auth0.core"

local server
local clock = util.clock(emu)

describe("attack7: in-order saves and client:close()", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  it("close() with a save waiting its turn behind a slow one: each callback once, nothing written after", function()
    local c = util.client(server, { jwks_min_refetch = 0.001 })
    local path = util.tmpdir("a7-creds") .. "/credentials"
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
    local old = util.login(emu, c, "old@example.com")
    assert(c:jwks())
    require("socket").sleep(0.01)
    assert(emu.control("POST", "/keys", { rotate = true, keep_old = true }))
    local new = util.login(emu, c, "new@example.com")
    assert(emu.control("POST", "/faults", { rules = { { kind = "delay", ms = 500, path = "/.well-known/jwks.json" } } }))
    local got = {}
    assert.is_true(cm:save(new, function(ok, err) got[#got + 1] = { "new", ok, err and err.reason } end))
    assert.is_true(cm:save(old, function(ok, err) got[#got + 1] = { "old", ok, err and err.reason } end))
    local t0 = core.now()
    while core.now() - t0 < 0.15 do c:poll(10) end   -- old's check is done: it waits its turn
    assert.same({}, got)
    c:close()
    assert.same({ { "new", nil, "cancelled" }, { "old", nil, "cancelled" } }, got)
    assert.is_nil(core.store_read(path))
  end)

  it("a raise in a later save's step run on an earlier one's turn ends the later one (a clear asked after runs)", function()
    local errs = {}
    local c = util.client(server, { on_callback_error = function(m) errs[#errs + 1] = m end })
    local n = 0
    local cm = credentials.new(c, { store = credentials.memory_store(), now = clock.now,
      on_change = function(event) n = n + 1; if n == 2 then error("on_change raised for " .. event) end end })
    local first = util.login(emu, c, "first@example.com")   -- the JWKS not held: its check fetches it
    assert(emu.control("POST", "/faults", { rules = { { kind = "delay", ms = 300, path = "/.well-known/jwks.json" } } }))
    local got = {}
    assert.is_true(cm:save(first, function(ok, err) got[#got + 1] = { "first", ok, err } end))
    -- no ID token: checked at once, it waits for the first's turn and runs on it
    assert.is_true(cm:save({ access_token = "at2", expires_in = 3600 }, function(ok, err) got[#got + 1] = { "second", ok, err } end))
    assert(util.poll_until(c, function() return #errs == 1 end, 10), "no raise")
    assert.matches("on_change raised for saved", errs[1])
    assert.same({ { "first", true } }, got)   -- the second ended by its raise, as a raise on its own turn ends it
    local cleared
    assert.is_true(cm:clear(function(ok, err) cleared = { ok, err } end))
    assert(util.poll_until(c, function() return cleared ~= nil end, 5), "the clear waits for ever for the second save")
    assert.same({ true }, cleared)
    c:close()
  end)

  it("a later save's callback raising on an earlier one's turn: the clear asked after still lands last (held)", function()
    local errs = {}
    local c = util.client(server, { on_callback_error = function(m) errs[#errs + 1] = m end })
    local path = util.tmpdir("a7-creds") .. "/credentials"
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
    local first = util.login(emu, c, "first2@example.com")   -- the JWKS not held: its check fetches it
    assert(emu.control("POST", "/faults", { rules = { { kind = "delay", ms = 300, path = "/.well-known/jwks.json" } } }))
    local got = {}
    assert.is_true(cm:save(first, function(ok, err) got[#got + 1] = { "first", ok, err and err.reason } end))
    assert.is_true(cm:save({ access_token = "at2", expires_in = 3600, id_token = "not.a.token" }, function(ok, err)
      got[#got + 1] = { "second", ok, err and err.reason }
      error("second callback raised")
    end))
    assert.is_true(cm:clear(function(ok, err) got[#got + 1] = { "clear", ok, err and err.reason } end))
    assert(util.poll_until(c, function() return #got == 3 end, 10), "timed out")
    -- the second's error is handed over on the first's turn, before the first's write ends
    assert.same({ "second", nil, "invalid_id_token" }, got[1])
    assert.same({ "first", true }, got[2])
    assert.same({ "clear", true }, got[3])
    assert.equal(1, #errs)
    assert.matches("second callback raised", errs[1])
    assert.is_nil(cm:user())
    assert.is_nil(core.store_read(path))
    c:close()
  end)
end)
