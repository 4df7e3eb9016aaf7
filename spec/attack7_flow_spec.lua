-- attack7: the flow's chained step (the listing after mfa_required, the push poll after its
-- challenge, started from the next poll) with a raising on_state and in the blocking flow.run.
local auth0 = require "auth0"
local flow = require "auth0.flow"
local emu = require "spec.support.emulator"
local socket = require "socket"

local now = auth0.core.now
local server

local function ctl(method, path, body)
  local out, status = emu.control(method, path, body)
  assert(status == 200, "control " .. path .. " answered " .. tostring(status))
  return out
end

local function client(opts)
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 10 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return auth0.new(o)
end

local function mfa_user(email, kind)
  local user = ctl("POST", "/users", { connection = "email", email = email, mfa = "always" })
  ctl("POST", "/mfa/authenticators", { user_id = user.user_id, type = kind })
  return user.user_id
end

local function last_code(to)
  local m = ctl("GET", "/outbox?to=" .. auth0.core.pct_escape(to)).messages
  return m[#m].code
end

describe("attack7: the flow's chained steps", function()
  setup(function() server = emu.start() end)
  before_each(function()
    emu.reset()
    ctl("POST", "/mfa", { poll_min_interval = 0 })
  end)

  it("an on_state that raises at every change: the chained listing and push poll still run (held)", function()
    local uid = mfa_user("ch1@example.com", "push")
    local errs = {}
    local c = client { on_callback_error = function(m) errs[#errs + 1] = m end }
    local states = {}
    local f = flow.login(c, { connection = "email", email = "ch1@example.com", push_interval = 0.05,
      on_state = function(fl) states[#states + 1] = fl.state; error("on_state raised") end })
    local function run_until(want)
      local deadline = now() + 15
      while f.state ~= want and f.state ~= "failed" and f.state ~= "cancelled" do
        assert(c:poll(0))
        assert(now() < deadline, "stuck in " .. f.state)
        socket.sleep(0.002)
      end
      assert.equal(want, f.state)
    end
    run_until("awaiting_code")
    f:submit_code(last_code("ch1@example.com"))
    run_until("awaiting_mfa_choice")
    f:choose_authenticator(f.authenticators[1])
    run_until("awaiting_push")
    local tx
    local deadline = now() + 10
    repeat
      assert(c:poll(10))
      tx = ctl("GET", "/guardian?user_id=" .. auth0.core.pct_escape(uid)).transactions[1]
    until tx or now() > deadline
    ctl("POST", "/guardian/" .. tx.oob_code .. "/approve")
    run_until("done")
    assert.same({ "sending_code", "awaiting_code", "verifying", "verifying", "awaiting_mfa_choice", "mfa_challenging",
      "awaiting_push", "done" }, states)
    assert.equal(#states, #errs)
    for _, m in ipairs(errs) do assert.matches("on_state raised", m) end
    assert.equal(0, c:pending())
    c:close()
  end)

  it("flow.run through the chained listing and push poll (held)", function()
    local uid = mfa_user("ch2@example.com", "push")
    local c = client()
    local pushes = 0
    local tokens, err, f = flow.run(c, { connection = "email", email = "ch2@example.com", push_interval = 0.05 }, {
      ask_code = function() return last_code("ch2@example.com") end,
      choose_authenticator = function(_, list) return list[1] end,
      on_push_wait = function()
        pushes = pushes + 1
        local tx = ctl("GET", "/guardian?user_id=" .. auth0.core.pct_escape(uid)).transactions[1]
        if tx then ctl("POST", "/guardian/" .. tx.oob_code .. "/approve") end
      end,
    })
    assert.is_nil(err)
    assert.is_string(tokens.access_token)
    assert.equal("done", f.state)
    assert.is_true(pushes >= 1)
    assert.equal(0, c:pending())
    c:close()
  end)
end)
