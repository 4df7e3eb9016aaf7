-- Hostile uses of the reshaped client (second attack review of issue #10): what a callback
-- raises must not carry a secret to on_callback_error or on_log. Real HTTPS to the emulator.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"

local server

local function code_for(to)
  local out = emu.control("GET", "/__emulator/outbox?to=" .. auth0.core.pct_escape(to))
  return out.messages[#out.messages].code
end

describe("a table raised from a callback", function()
  setup(function() server = emu.start() end)
  before_each(function() emu.reset() end)

  -- `error(tokens)` (or a table holding them) is an easy mistake in a callback; the handler
  -- renders tables for the report, and must not render the tokens in them.
  it("reaches on_callback_error and on_log without the secrets it holds", function()
    local reports = {}
    local function add(s) reports[#reports + 1] = tostring(s) end
    for _, handler in ipairs({ "on_callback_error", "on_log" }) do
      local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native" }
      if handler == "on_callback_error" then o.on_callback_error = add
      else o.on_log = function(_, msg, fields) add(msg); for k, v in pairs(fields) do add(k); add(v) end end end
      local c = auth0.new(o)
      local email = handler .. "@example.com"
      assert(c:passwordless_start { connection = "email", email = email })
      local got
      c:passwordless_login({ realm = "email", username = email, otp = code_for(email) }, function(t)
        got = t
        error({ what = "raised by the callback", tokens = t, t })
      end)
      local deadline = os.time() + 10
      while not got do c:poll(20); assert(os.time() < deadline, "no answer") end
      c:poll(0)
      local all = table.concat(reports, "\n")
      assert.matches("raised by the callback", all, 1, true)
      for _, name in ipairs({ "access_token", "id_token", "refresh_token" }) do
        if got[name] then assert.is_nil(all:find(got[name], 1, true), name .. " reached " .. handler) end
      end
      assert.is_string(got.access_token)
      c:close()
    end
  end)
end)

describe("callbacks that close, cancel and raise", function()
  setup(function() server = emu.start() end)
  before_each(function() emu.reset() end)

  local function new(opts)
    local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native" }
    for k, v in pairs(opts or {}) do o[k] = v end
    return auth0.new(o)
  end

  it("close from a callback ends every other request once, and later polls raise", function()
    local errs = {}
    local c = new { on_callback_error = function(m) errs[#errs + 1] = m end }
    local calls, closing = {}, false
    for i = 1, 6 do
      c:passwordless_start({ connection = "email", email = "c" .. i .. "@example.com" }, function(r, err)
        calls[i] = (calls[i] or 0) + 1
        if r and not closing then closing = true; c:close() end
        if not r then assert.equal("cancelled", err.code) end
      end)
    end
    local deadline = os.time() + 10
    while not closing do c:poll(20); assert(os.time() < deadline, "no answer") end
    for i = 1, 6 do assert.equal(1, calls[i], "callback " .. i) end
    assert.same({}, errs)
    assert.has_error(function() c:poll(0) end)
  end)

  it("cancelling a request whose answer is already queued runs its callback once", function()
    local c = new()
    local n = { a = 0, b = 0 }
    local b
    c:passwordless_start({ connection = "email", email = "a@example.com" }, function()
      n.a = n.a + 1
      b:cancel()
    end)
    b = c:passwordless_start({ connection = "email", email = "b@example.com" }, function()
      n.b = n.b + 1
      b:cancel()   -- from its own callback: a no-op
    end)
    local deadline = os.time() + 10
    while n.a + n.b < 2 do c:poll(20); assert(os.time() < deadline, "no answer") end
    c:poll(50); c:poll(50)
    assert.same({ a = 1, b = 1 }, n)
    c:close()
  end)
end)
