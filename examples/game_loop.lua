--- A login inside a game loop: a simulated 60 fps loop drives an auth0.flow with
-- client:poll(0) once per frame (never blocking), through an email code and an MFA push
-- that is approved after a few seconds, printing frame numbers and states, and reporting
-- the worst frame's time spent inside poll(0).
--   lua5.4 examples/game_loop.lua        (or luajit; needs `make && make luajit` and nginx)
-- Starts its own emulator under nginx and stops it at the end.
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
local vm = rawget(_G, "jit") and "luajit" or "lua5.4"
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/" .. vm .. "/?.so;" .. package.cpath

local auth0 = require "auth0"
local flow = require "auth0.flow"
local control = require "auth0.emulator.client"

local now, sleep = auth0.core.now, auth0.core.sleep
local FPS = 60
local FRAME = 1 / FPS
local APPROVE_AFTER = 3      -- seconds the "player" takes to approve the push on the phone
local EMAIL = "player@example.com"

local srv = assert(require("auth0.emulator.server").start {})
local ok, err = pcall(function()
  local ctl = control.new { base_url = srv.base_url, ca_file = srv.ca_file }
  -- a player with MFA and a push authenticator (the Guardian app) enrolled
  local user = assert(ctl:post("users", { connection = "email", email = EMAIL, mfa = "always" }))
  assert(ctl:post("mfa/authenticators", { user_id = user.user_id, type = "push", name = "Player's phone" }))
  assert(ctl:post("mfa", { poll_min_interval = 1 }))

  -- io_thread: libcurl (TLS handshakes, reading answers) runs on the client's own thread, so a
  -- frame's poll(0) only runs the callbacks, within poll_budget_ms
  local client = auth0.new { base_url = srv.base_url, ca_file = srv.ca_file, client_id = "emu-native",
    io_thread = true, poll_budget_ms = 0.2 }
  local frame, push_seen_at, approved = 0, nil, false
  local f = flow.login(client, { connection = "email", email = EMAIL, push_interval = 1,
    on_state = function(f)
      print(("frame %5d  state %-20s %s"):format(frame, f.state, f.error and ("(" .. tostring(f.error) .. ")") or ""))
    end })

  -- What the game's UI would do in each state; here the "player" answers at once.
  local function play()
    if f.state == "awaiting_code" then
      f:submit_code(assert(ctl:last_code(EMAIL)))
    elseif f.state == "awaiting_mfa_choice" then
      for _, a in ipairs(f.authenticators) do
        if a.oob_channel == "auth0" then return f:choose_authenticator(a) end
      end
      error("no push authenticator")
    elseif f.state == "awaiting_push" then
      push_seen_at = push_seen_at or now()
      if not approved and now() - push_seen_at >= APPROVE_AFTER then
        local pending = assert(ctl:get("guardian", { user_id = user.user_id })).transactions
        if pending[1] then
          assert(ctl:post("guardian/" .. pending[1].oob_code .. "/approve", { name = "Player's phone" }))
          approved = true
          print(("frame %5d  (the player approved the push on the phone after %.1f s)"):format(frame,
            now() - push_seen_at))
        end
      end
    end
  end

  local worst, total, last_polls, worst_frame, worst_state = 0, 0, 0, 0, nil
  local start = now()
  local next_frame = start
  while f.state ~= "done" and f.state ~= "failed" and f.state ~= "cancelled" do
    frame = frame + 1
    local t0 = now()
    assert(client:poll(0))
    local spent = now() - t0
    total = total + spent
    if spent > worst then worst, worst_frame, worst_state = spent, frame, f.state end
    -- push_waited moves every frame; push_polls once per answer from Auth0
    if f.state == "awaiting_push" and f.push_polls ~= last_polls then
      last_polls = f.push_polls
      print(("frame %5d  push still pending after %.1f s"):format(frame, f.push_waited))
    end
    play()
    -- the rest of the frame: render, simulate... then sleep to the frame boundary
    next_frame = next_frame + FRAME
    local rest = next_frame - now()
    if rest > 0 then sleep(rest) else next_frame = now() end
    assert(now() - start < 60, "the login took too long")
  end
  print(("done in %d frames (%.2f s): state %s%s"):format(frame, now() - start, f.state,
    f.tokens and (", token_type " .. f.tokens.token_type) or (", error " .. tostring(f.error))))
  print(("poll(0): worst frame %d (%.3f ms, state %s when it ended), mean %.3f ms over %d frames"):format(
    worst_frame, worst * 1000, worst_state, total / frame * 1000, frame))
  client:close()
  ctl:close()
  assert(f.state == "done", "the login did not finish")
end)
srv:stop()
if not ok then error(err, 0) end
