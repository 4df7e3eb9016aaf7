-- Hostile review of the lock-outlives-the-refresh change (store.holds, stores.superseded) and
-- of core.hold_signals. Each case failed on the merge it attacks (681b5aa):
-- * a refresh whose lock was lost while another holder logged out (the store emptied) wrote
--   its session back: a logout undone;
-- * a custom store's holds (or load) raising after the server had rotated the refresh token
--   lost the rotated token in the blocking form (the callback form writes it first);
-- * hold_signals released out of order (or a forgotten hold collected late) left SIGTERM,
--   SIGINT and SIGHUP blocked for the rest of the process;
-- * a custom store's lock answering false (or nothing) alone made credentials and clear answer
--   nil, nil (no error);
-- * a rotated session the store refused to write (store_busy: a full queue) was dropped at the
--   next refresh, which presented the retired token again: reuse detection, a logout; and a
--   logout then revoked the retired token, leaving the rotated one live at the server.
local emu = require "spec.support.emulator"
local util = require "spec.support.util"
local auth0 = require "auth0"
local credentials = require "auth0.credentials"

local lossy = require "spec.support.lossy"
local planned_store = lossy.store

describe("attack8: a refresh whose lock was lost", function()
  local srv
  setup(function() srv = emu.start() end)

  local function seeded(store, email) return lossy.seeded(emu, srv, store, email) end

  for _, form in ipairs { "blocking", "callback" } do
    local function get(c, cm) return lossy.get(form, c, cm) end

    it(form .. ": another holder's logout meanwhile stays a logout (nothing written back)", function()
      local s
      s = planned_store({ true, function() s.inner.clear(); return false end })
      local c, cm = seeded(s, "a8-logout-" .. form .. "@example.com")
      local t, err = get(c, cm)
      assert.is_nil(s.load(), "the session came back after the logout")
      assert.is_nil(t, "tokens answered after the logout")
      assert.equal("login_required", err.code)
    end)

    it(form .. ": the newer session answered instead is held to min_ttl: an expired one is no answer", function()
      local s
      s = planned_store({ true, function()
        local newer = s.inner.load()
        newer.refresh_token, newer.access_token, newer.expires_at = "newer-rt", "newer-at", os.time() + 5
        s.inner.save(newer)
        return false
      end })
      local c, cm = seeded(s, "a8-newer-stale-" .. form .. "@example.com")   -- min_ttl: the default 60 s
      local t, err = get(c, cm)
      assert.is_nil(t and t.access_token == "newer-at" and t, "a token expiring in 5 s answered (min_ttl 60)")
      assert.equal("store_busy", err and err.code)
      assert.equal("newer-rt", s.load().refresh_token)   -- kept, not overwritten
    end)

    it(form .. ": a lock that merely expired (the store unchanged) still gets the rotated token", function()
      local s = planned_store({ true, false })
      local c, cm, tokens = seeded(s, "a8-expired-" .. form .. "@example.com")
      local t, err = get(c, cm)
      assert.is_table(t, err and tostring(err))
      local d = s.load()
      assert.is_true(d.refresh_token ~= tokens.refresh_token, "the rotated token is not stored")
      assert.truthy(util.client(srv):refresh { refresh_token = d.refresh_token })
    end)
  end

  for _, what in ipairs { "holds", "load" } do
    it("blocking: a store whose " .. what .. " raises after the rotation still stores the rotated token", function()
      local s, st = planned_store({ true, false })
      local _, cm, tokens = seeded(s, "a8-raise-" .. what .. "@example.com")
      if what == "holds" then
        s.holds = function() st.calls = st.calls + 1; if st.calls == 2 then error("holds exploded", 0) end; return true end
      else
        local load = s.load
        s.load = function() if st.calls >= 2 then error("load exploded", 0) end; return load() end
      end
      local ok, msg = pcall(cm.credentials, cm)
      assert.is_false(ok)
      assert.equal(what .. " exploded", msg)   -- the raise goes on unchanged
      assert.equal("mark", st.unlocked)
      local d = s.inner.load()
      assert.is_true(d.refresh_token ~= tokens.refresh_token, "the rotated refresh token was lost")
      assert.truthy(util.client(srv):refresh { refresh_token = d.refresh_token }, "the stored token does not work")
    end)
  end
end)

describe("attack8: a rotated refresh token the store refused to write", function()
  local srv
  setup(function() srv = emu.start() end)

  -- a memory store whose save answers store_busy (a full queue) on the calls listed
  local function refusing_store(fails)
    local inner = credentials.memory_store()
    local n = 0
    local s = { kind = "refusing", load = inner.load, clear = inner.clear, refused = {} }
    function s.save(d)
      n = n + 1
      if fails[n] then s.refused[#s.refused + 1] = d; return nil, require("auth0.error").new("store_busy", "full") end
      return inner.save(d)
    end
    return s
  end

  for _, form in ipairs { "blocking", "callback" } do
    local function call(c, cm, method)
      if form == "blocking" then return cm[method](cm) end
      local res, err, done
      cm[method](cm, function(r, e) res, err, done = r, e, true end)
      assert.is_true(util.poll_until(c, function() return done end, 20))
      return res, err
    end

    it(form .. ": the next refresh starts from the rotated token kept in memory, not the retired one", function()
      emu.reset()
      local c = util.client(srv)
      local tokens = util.login(emu, c, "a8-refused-" .. form .. "@example.com")
      tokens.expires_in = 0
      local s = refusing_store({ [2] = true, [3] = true })   -- the seed saves; two renewals refused
      local cm = credentials.new(c, { store = s })
      assert(cm:save(tokens))
      local before = emu.control("GET", "/refresh_tokens")
      local t, err = call(c, cm, "renew")
      assert.is_nil(t)
      assert.equal("store_busy", err.code)   -- said so
      t, err = call(c, cm, "renew")   -- refused again: a chain of unsaved rotations
      assert.is_nil(t)
      assert.equal("store_busy", err and err.code)
      t, err = call(c, cm, "renew")
      assert.is_table(t, err and tostring(err))
      local after = emu.control("GET", "/refresh_tokens")
      assert.equal(before.reuse_detected, after.reuse_detected, "the retired refresh token was presented")
      local d = s.load()
      assert.is_true(d.refresh_token ~= tokens.refresh_token)
      assert.truthy(util.client(srv):refresh { refresh_token = d.refresh_token }, "the stored token does not work")
    end)

    it(form .. ": a refresh from the kept session whose lock merely expired still writes its answer", function()
      emu.reset()
      local c = util.client(srv)
      local tokens = util.login(emu, c, "a8-refused-expired-" .. form .. "@example.com")
      tokens.expires_in = 0
      local s = refusing_store({ [2] = true })
      local n = 0
      function s.lock() return "mark" end
      function s.unlock() end
      function s.holds() n = n + 1; return n ~= 4 end   -- the second renewal's lock expires during its request
      local cm = credentials.new(c, { store = s })
      assert(cm:save(tokens))
      local _, err = call(c, cm, "renew")
      assert.equal("store_busy", err and err.code)
      local t, err2 = call(c, cm, "renew")
      assert.is_table(t, err2 and tostring(err2))
      local d = s.load()
      assert.is_true(d.refresh_token ~= tokens.refresh_token, "the retired token is still the stored one")
      assert.truthy(util.client(srv):refresh { refresh_token = d.refresh_token }, "the stored token does not work")
    end)

    it(form .. ": a logout after a refused write revokes the live rotated token, not the retired one", function()
      emu.reset()
      local c = util.client(srv)
      local tokens = util.login(emu, c, "a8-refused-logout-" .. form .. "@example.com")
      tokens.expires_in = 0
      local s = refusing_store({ [2] = true })
      local cm = credentials.new(c, { store = s })
      assert(cm:save(tokens))
      local _, err = call(c, cm, "renew")
      assert.equal("store_busy", err and err.code)
      local live = s.refused[1].refresh_token
      assert.is_true(live ~= tokens.refresh_token)
      assert.is_true(call(c, cm, "clear"))
      assert.is_nil(s.load())
      local t2, err2 = util.client(srv):refresh { refresh_token = live }
      assert.is_nil(t2, "the session is still live at the server after the logout")
      assert.equal("invalid_grant", err2.code)
    end)
  end
end)

describe("attack8: a custom store's lock answering nothing", function()
  local srv
  setup(function() srv = emu.start() end)

  for _, answer in ipairs { "false", "nil" } do
    for _, form in ipairs { "blocking", "callback" } do
      for _, call in ipairs { "credentials", "clear" } do
        it(form .. " " .. call .. ": a lock answering " .. answer .. " alone is a store_error, never nil, nil", function()
          emu.reset()
          local c = util.client(srv)
          local tokens = util.login(emu, c, ("a8-nolock-%s-%s-%s@example.com"):format(answer, form, call))
          tokens.expires_in = 0
          local s = credentials.memory_store()
          local cm = credentials.new(c, { store = s })
          assert(cm:save(tokens))
          function s.lock() if answer == "false" then return false end end
          function s.unlock() end
          local r, err
          if form == "blocking" then r, err = cm[call](cm)
          else
            local done
            cm[call](cm, function(a, b) r, err, done = a, b, true end)
            assert.is_true(util.poll_until(c, function() return done end, 10))
          end
          assert.is_nil(r)
          assert.is_table(err, "nil, nil answered")
          assert.equal("store_error", err.code)
          assert.equal(tokens.refresh_token, s.load().refresh_token)   -- nothing refreshed nor cleared
        end)
      end
    end
  end
end)

-- The calling thread's blocked signals, from /proc (SigBlk of the main thread).
local function blocked()
  local f = assert(io.open("/proc/thread-self/status"))
  local text = f:read("a")
  f:close()
  local hex = assert(text:match("SigBlk:%s*(%x+)"))
  local set = {}
  for _, n in ipairs { 1, 2, 15 } do   -- SIGHUP, SIGINT, SIGTERM
    local at = #hex - math.floor((n - 1) / 4)
    local digit = tonumber(hex:sub(at, at), 16)
    set[n] = math.floor(digit / 2 ^ ((n - 1) % 4)) % 2 == 1
  end
  return set
end
local function none_blocked()
  local b = blocked()
  return not (b[1] or b[2] or b[15])
end
local function all_blocked()
  local b = blocked()
  return b[1] and b[2] and b[15]
end

describe("attack8: core.hold_signals", function()
  local core = auth0.core

  it("holds, then releases", function()
    assert.is_true(none_blocked())
    local h = assert(core.hold_signals())
    assert.is_true(all_blocked())
    assert.is_true(h:release())
    assert.is_true(none_blocked())
    assert.is_false(h:release())
  end)

  it("two holds released out of order leave nothing blocked", function()
    local h1 = assert(core.hold_signals())
    local h2 = assert(core.hold_signals())
    h1:release()
    h2:release()
    assert.is_true(none_blocked(), "SIGTERM, SIGINT, SIGHUP blocked for good")
  end)

  it("a forgotten hold collected during another one does not block them for good", function()
    core.hold_signals()   -- dropped: released when collected
    local h2 = assert(core.hold_signals())
    collectgarbage()
    collectgarbage()
    h2:release()
    assert.is_true(none_blocked(), "SIGTERM, SIGINT, SIGHUP blocked for good")
  end)

  it("nested in order: the inner release keeps the outer hold", function()
    local h1 = assert(core.hold_signals())
    local h2 = assert(core.hold_signals())
    h2:release()
    assert.is_true(all_blocked(), "the outer hold was undone")
    h1:release()
    assert.is_true(none_blocked())
  end)
end)
