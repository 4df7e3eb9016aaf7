-- auth0.credentials' callback forms with a file store check the ID token in steps (issue 14,
-- the frame budget): the decode in one poll, the RS256 signature on the keyset's worker thread
-- (never on the caller's), the claims in a later poll; what is refused and kept is unchanged.
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local emu = require "spec.support.emulator"

local util = require "spec.support.util"

local core = auth0.core
local server
local clock = util.clock(emu)
local now = clock.now
local function client(opts) return util.client(server, opts) end
local function login(c, email) return util.login(emu, c, email) end
local function poll_until(c, pred, secs) assert(util.poll_until(c, pred, secs), "timed out") end

-- Counts the RS256 checks made on the caller's thread (auth0.Key:verify_rs256, as
-- jwt.verify_id_token makes them) and on the worker (auth0.VerifyWorker:verify).
local function counting()
  local n = { caller = 0, worker = 0 }
  local kmt = getmetatable(assert(core.rsa_public(core.rsa_key():jwk().n, "AQAB"))).__index
  local wmt = getmetatable(assert(core.rs256_worker())).__index
  local kv, wv = kmt.verify_rs256, wmt.verify
  kmt.verify_rs256 = function(...) n.caller = n.caller + 1; return kv(...) end
  wmt.verify = function(...) n.worker = n.worker + 1; return wv(...) end
  n.restore = function() kmt.verify_rs256, wmt.verify = kv, wv end
  return n
end

describe("auth0.credentials callback forms: the ID token checked in steps", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    clock.reset()
  end)
  after_each(util.rm_tmp)

  it("saves a login's claims with the signature checked on the worker, never in a poll of the caller's", function()
    local c = client()
    local path = util.tmpdir("a0-creds-steps") .. "/credentials"
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    assert.truthy(c._keys and c._keys.worker, "the worker starts with the manager")
    local tokens = login(c, "steps@example.com")
    local n = counting()
    local saved
    assert.is_true(cm:save(tokens, function(ok, err) saved = { ok, err } end))
    local polls = 0
    poll_until(c, function() polls = polls + 1; return saved ~= nil end)
    n.restore()
    assert.same({ true, nil }, saved)
    assert.equal(0, n.caller)
    assert.equal(1, n.worker)
    assert.is_true(polls >= 3, "decode, signature and claims, write: in several polls (" .. polls .. ")")
    assert.equal("steps@example.com", cm:user().email)
    assert.truthy(core.store_read(path))
    c:close()
  end)

  it("refuses a tampered or expired ID token as before: nothing stored, invalid_id_token", function()
    local c = client()
    local path = util.tmpdir("a0-creds-steps") .. "/credentials"
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    local tokens = login(c, "tamper@example.com")
    local h, p = tokens.id_token:match("^([^.]+)%.([^.]+)%.")
    local bad = { access_token = "x", refresh_token = "y", expires_in = 60, id_token = h .. "." .. p .. ".AAAA" }
    local got
    assert.is_true(cm:save(bad, function(ok, err) got = { ok, err } end))
    poll_until(c, function() return got ~= nil end)
    assert.is_nil(got[1])
    assert.equal("invalid_id_token", got[2].code)
    assert.equal("id token signature verification failed", got[2].message)
    assert.is_nil(core.store_read(path))
    -- the claims step: the same token checked a day later is expired
    local late = credentials.new(c, { store = credentials.file_store { path = path }, now = function() return now() + 86400 * 2 end })
    got = nil
    assert.is_true(late:save(tokens, function(ok, err) got = { ok, err } end))
    poll_until(c, function() return got ~= nil end)
    assert.is_nil(got[1])
    assert.equal("invalid_id_token", got[2].code)
    assert.truthy(got[2].message:find("expired", 1, true))
    assert.is_nil(core.store_read(path))
    c:close()
  end)

  it("client:close() between the steps ends the save with cancelled, nothing left pending", function()
    local c = client()
    local path = util.tmpdir("a0-creds-steps") .. "/credentials"
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    local tokens = login(c, "close@example.com")
    assert(c:jwks())   -- held: the save's check starts from the next poll
    local got
    assert.is_true(cm:save(tokens, function(ok, err) got = { ok, err } end))
    assert.truthy(c:poll(0))   -- the JWKS callback: the decode, the signature handed to the worker
    assert.is_nil(got)
    c:close()
    assert.truthy(got, "the callback ran at close")
    assert.is_nil(got[1])
    assert.equal("cancelled", got[2].code)
    assert.equal(0, c:pending())
    assert.is_nil(core.store_read(path))
  end)

  it("a renewal in callback form keeps the renewed ID token's claims", function()
    local c = client()
    local path = util.tmpdir("a0-creds-steps") .. "/credentials"
    local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = now })
    assert(cm:save(login(c, "renew@example.com")))
    clock.advance(10)
    local n = counting()
    local renewed
    assert.is_true(cm:renew(function(t, err) renewed = { t, err } end))
    poll_until(c, function() return renewed ~= nil end)
    n.restore()
    assert.is_nil(renewed[2])
    assert.equal(0, n.caller)
    assert.equal(1, n.worker)
    assert.equal("renew@example.com", cm:user().email)
    c:close()
  end)
end)
