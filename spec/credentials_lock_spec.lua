-- The manager and a store whose lock can be lost (store.holds, as ngx_store's): it asks the
-- lock to last its longest refresh (lock(wait, hold)), checks it still holds the lock before
-- presenting the refresh token (a lost lock: store_busy, no request: another holder may be
-- presenting the same token), and after the answer does not write nor clear over a newer
-- session another holder stored meanwhile.
local emu = require "spec.support.emulator"

local lossy = require "spec.support.lossy"
local lossy_store = lossy.store

describe("credentials and a store whose lock can be lost", function()
  local srv
  setup(function() srv = emu.start() end)
  after_each(function() emu.control("DELETE", "/faults") end)

  local function seeded(store, email) return lossy.seeded(emu, srv, store, email) end

  for _, form in ipairs { "blocking", "callback" } do
    local function get(c, cm) return lossy.get(form, c, cm) end

    it(form .. ": asks the lock for 2 x timeout + 5 s and renews while it holds it", function()
      local s, st = lossy_store({})
      local c, cm = seeded(s, "lossy-ok-" .. form .. "@example.com")
      local before = emu.control("GET", "/refresh_tokens").refreshes
      local t, err = get(c, cm)
      assert.is_table(t, err and tostring(err))
      assert.equal(before + 1, emu.control("GET", "/refresh_tokens").refreshes)
      assert.equal(19, st.hold)
      assert.is_true(st.calls >= 2)   -- before the request and before the write
      for _, h in ipairs(st.holds) do assert.equal(19, h) end
      assert.equal("mark", st.unlocked)
    end)

    it(form .. ": a lock lost before the request: store_busy and no refresh sent", function()
      local s = lossy_store({ false })
      local c, cm = seeded(s, "lossy-before-" .. form .. "@example.com")
      local before = emu.control("GET", "/refresh_tokens").refreshes
      local t, err = get(c, cm)
      assert.is_nil(t, "renewed with a lost lock")
      assert.equal("store_busy", err.code)
      assert.equal(before, emu.control("GET", "/refresh_tokens").refreshes)
    end)

    it(form .. ": a lock lost during the request: the newer session stored meanwhile is the answer and stays", function()
      local s, st = lossy_store({ true, false })
      local c, cm, tokens = seeded(s, "lossy-during-" .. form .. "@example.com")
      local newer = s.load()
      newer.access_token, newer.refresh_token, newer.expires_at = "newer-at", "newer-rt", os.time() + 3600
      st.newer = newer
      local t, err = get(c, cm)
      assert.is_table(t, err and tostring(err))
      assert.is_true(t.access_token == "newer-at", "not the newer session's token")
      local d = s.load()
      assert.equal("newer-rt", d.refresh_token)
      assert.equal("newer-at", d.access_token)
      assert.is_true(tokens.access_token ~= d.access_token)
    end)
  end
end)
