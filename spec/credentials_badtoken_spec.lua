-- A server's answer whose id_token verify_id_token would refuse as misuse (a NUL byte, invalid
-- UTF-8): in a renewal it came after the server rotated the refresh token. The renewal must
-- answer tokens (the ID token's claims unchecked, the old ones kept), store the rotated refresh
-- token, and raise nothing; a save of such tokens is `invalid_id_token`. The in-process
-- emulator behind a transport that rewrites the refresh answer (no fault of the emulator's
-- does this).
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local emulator = require "auth0.emulator"
local util = require "spec.support.util"
local cjson = require("cjson.safe").new()

local BASE = "https://tenant.example"

-- A client on a fresh in-process emulator; `poison(id_token)` rewrites the id_token of refresh
-- answers while set. @return client, control(method, path, body), state
local function setup_client()
  local e = emulator.new { base_url = BASE }
  local fn = e:transport()
  local st = { refreshes = 0 }
  local function transport(req)
    local resp = fn(req)
    local refresh = req.url == BASE .. "/oauth/token" and tostring(req.body):find("refresh_token", 1, true)
      and not tostring(req.body):find("otp", 1, true)
    if refresh then st.refreshes = st.refreshes + 1 end
    if refresh and st.poison and resp.status == 200 then
      local t = assert(cjson.decode(resp.body))
      t.id_token = st.poison(t.id_token)
      st.sent_refresh_token = t.refresh_token
      resp.body = assert(cjson.encode(t))
    end
    return resp
  end
  local c = auth0.new { base_url = BASE, client_id = "emu-native", transport = transport,
    scope = "openid profile email offline_access" }
  local function ctl(method, path, body)
    local resp = fn { method = method, url = BASE .. "/__emulator" .. path,
      headers = { ["content-type"] = "application/json" }, body = body and cjson.encode(body) }
    assert(resp.status == 200, path .. " answered " .. resp.status)
    return cjson.decode(resp.body)
  end
  return c, ctl, st
end

local function login(c, ctl, email)
  ctl("POST", "/users", { connection = "email", email = email })
  assert(c:passwordless_start { connection = "email", email = email })
  local m = ctl("GET", "/outbox?to=" .. auth0.core.pct_escape(email)).messages
  return assert(c:passwordless_login { realm = "email", username = email, otp = m[#m].code })
end

local POISONS = {
  { "a NUL byte", function(t) return t .. "\0" end },
  { "invalid UTF-8", function(t) return t:sub(1, 10) .. "\255" .. t:sub(11) end },
}

describe("credentials: a refresh answer whose id_token is not a JWT string", function()
  after_each(util.rm_tmp)

  for _, p in ipairs(POISONS) do
    local what, poison = p[1], p[2]

    it("blocking renew (" .. what .. "): tokens answered, rotated refresh token stored, no raise", function()
      local c, ctl, st = setup_client()
      local store = credentials.memory_store()
      local cm = credentials.new(c, { store = store })
      local tokens = login(c, ctl, "bad1@example.com")
      assert.is_true(cm:save(tokens))
      st.poison = poison
      local ok, t, err = pcall(cm.renew, cm)
      assert.is_true(ok, tostring(t))
      assert.is_table(t, tostring(err))
      assert.is_string(t.access_token)   -- the emulator's clock stands still: the same token may come back
      assert.equal(1, st.refreshes)
      local saved = store.load()
      assert.equal(st.sent_refresh_token, saved.refresh_token)
      assert.not_equal(tokens.refresh_token, saved.refresh_token)
      assert.equal("bad1@example.com", cm:user().email)   -- the old, checked claims
      c:close()
    end)

    it("callback renew with a file store (" .. what .. "): the same, from the callback", function()
      local c, ctl, st = setup_client()
      local store = credentials.file_store { path = util.tmpdir("badtoken") .. "/creds" }
      local errs = {}
      local cm = credentials.new(c, { store = store })
      c._cfg.on_callback_error = function(m) errs[#errs + 1] = m end
      local tokens = login(c, ctl, "bad2@example.com")
      assert.is_true(cm:save(tokens))
      assert(c:jwks())
      st.poison = poison
      local got, gerr, called = nil, nil, 0
      cm:renew(function(t, e) called = called + 1; got, gerr = t, e end)
      assert(util.poll_until(c, function() return called > 0 end, 10), "timed out")
      assert.equal(1, called)
      assert.is_table(got, tostring(gerr))
      assert.is_string(got.access_token)
      assert.equal(1, st.refreshes)
      assert(util.poll_until(c, function() return c:pending() == 0 end, 10), "timed out")
      assert.equal(st.sent_refresh_token, store.load().refresh_token)
      assert.same({}, errs)
      c:close()
    end)

    it("save (" .. what .. "): invalid_id_token, blocking and callback, nothing stored", function()
      local c, ctl = setup_client()
      local store = credentials.memory_store()
      local cm = credentials.new(c, { store = store })
      local tokens = login(c, ctl, "bad3@example.com")
      tokens.id_token = poison(tokens.id_token)
      local ok, r, err = pcall(cm.save, cm, tokens)
      assert.is_true(ok, tostring(r))
      assert.is_nil(r)
      assert.equal("invalid_id_token", err.code)
      local got, called = nil, 0
      cm:save(tokens, function(v, e) called = called + 1; got = { v, e } end)
      assert(util.poll_until(c, function() return called > 0 end, 10), "timed out")
      assert.is_nil(got[1])
      assert.equal("invalid_id_token", got[2].code)
      assert.is_nil(store.load())
      c:close()
    end)
  end
end)
