-- Chaos (issue #5): a few hundred login flows (start + login, MFA OTP for some users, userinfo)
-- through the emulator under nginx with faults drawn from a seed, blocking and with callbacks.
-- Every flow must end in tokens or an error object whose code the round's fault explains, no
-- call may run past its deadline, no callback may run twice or never. The seed is printed;
-- A0_CHAOS_SEED=<n> replays a run, with A0_CHAOS_SLOWDOWN=<factor> the timeouts' factor it
-- printed (the drawn delays are relative to the timeout; by default the factor follows the
-- CPU pressure at the start). The long version is bench/chaos.lua (same engine).
local auth0 = require "auth0"
local emu = require "spec.support.emulator"
local control = require "auth0.emulator.client"

local chaos = assert(loadfile("bench/chaos.lua"))("--lib")

local FLOWS = 240
local SEED = tonumber(os.getenv("A0_CHAOS_SEED") or "") or os.time()
local FORCED = tonumber(os.getenv("A0_CHAOS_SLOWDOWN") or "")
local SLOWDOWN = FORCED and FORCED > 0 and FORCED or chaos.slowdown()

local function lines(list)
  local out = {}
  for i = 1, math.min(#list, 15) do out[i] = "  " .. list[i] end
  return table.concat(out, "\n")
end

describe("chaos", function()
  local server, ctl
  setup(function()
    server = emu.start()
    ctl = control.new { base_url = server.base_url, ca_file = server.ca_file }
  end)
  teardown(function() ctl:close() end)
  before_each(function() emu.reset() end)

  local function run(n, extra)
    local opts = { auth0 = auth0, server = server, ctl = ctl, seed = SEED, mfa = ctl:get("mfa") ~= nil,
      slowdown = SLOWDOWN }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return chaos.run(n, opts)
  end

  it(FLOWS .. " flows end in tokens or an expected error, none past its deadline", function()
    print(("\nchaos seed %d (A0_CHAOS_SEED=%d A0_CHAOS_SLOWDOWN=%g replays it), timeouts x%g (CPU pressure %.0f %%)")
      :format(SEED, SEED, SLOWDOWN, SLOWDOWN, chaos.cpu_pressure()))
    local t0 = auth0.core.now()
    local st = run(FLOWS)
    local dt = auth0.core.now() - t0
    local n_inj, n_out = 0, 0
    for _, v in pairs(st.injected) do n_inj = n_inj + v end
    for _, v in pairs(st.outcomes) do n_out = n_out + v end
    print(("chaos: %d flows, %d rounds, %d calls, %d faults, %d ok, %.1f s"):format(st.flows, st.rounds, st.calls,
      n_inj, st.outcomes.ok or 0, dt))
    assert.equal(FLOWS, st.flows)
    assert.equal(FLOWS, n_out)
    assert(#st.crashes == 0, #st.crashes .. " crashes (seed " .. SEED .. "):\n" .. lines(st.crashes))
    assert(#st.unexpected == 0, #st.unexpected .. " unexpected codes (seed " .. SEED .. "):\n" .. lines(st.unexpected))
    assert(#st.hangs == 0, #st.hangs .. " calls past their deadline (seed " .. SEED .. "):\n" .. lines(st.hangs))
    assert(st.errors_without_fault == 0, ("%d failed flows without a fault (A0_CHAOS_SEED=%d A0_CHAOS_SLOWDOWN=%g):\n")
      :format(st.errors_without_fault, SEED, SLOWDOWN) .. lines(st.unfaulted))
    assert.is_nil(st.outcomes.unfinished)
    -- the run did exercise both APIs, faults, successes and failures
    assert.is_true((st.modes.blocking or 0) > 0 and (st.modes.callback or 0) > 0)
    assert.is_true(n_inj > 0)
    assert.is_true((st.outcomes.ok or 0) > 0 and (st.outcomes.ok or 0) < FLOWS)
  end)

  it("flags a code the fault does not explain", function()
    local st = run(12, {
      draw = function() return { kind = "http_500", path = "/passwordless/start", probability = 1 }, "blocking" end,
      allowed = { http_500 = { bad_response = true } },
    })
    assert.same({ server_error = 12 }, st.outcomes)
    assert.same({ http_500 = 12 }, st.injected)
    assert.equal(12, #st.unexpected)
    assert.equal(0, st.errors_without_fault)
  end)

  it("flags failed flows beyond the faults injected", function()
    -- the connection is off for our client: every start fails, and no fault explains it
    assert(ctl:post("connections", { name = "email", strategy = "email", enabled_clients = { "someone-else" } }))
    local st = run(6, {
      draw = function() return { kind = "delay", path = "/nowhere", probability = 1, ms = 0 }, "callback" end,
    })
    assert.is_nil(st.outcomes.ok)
    assert.same({}, st.injected)
    assert.equal(6, st.errors_without_fault)
    assert.equal(6, #st.unexpected)
  end)
end)
