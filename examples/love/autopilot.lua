-- luacheck: globals love
--- The autopilot of the login screen (A0_LOVE_AUTOPILOT=login|restart): plays the login as a
-- person would, through LÖVE's event queue, one step per frame (a coroutine resumed from
-- love.update). Raises on anything unexpected; main.lua then quits with status 1.
--   login:   e-mail code, TOTP enrollment (QR decoded from a screenshot), logout, a login
--            again with a push, then with an SMS code; quits logged in (the credentials stay
--            in the save folder)
--   restart: the next start: no login, the stored credentials renewed; then the logout button
local auth0 = require "auth0"

local function file_exists(path)
  local fh = io.open(path)
  if fh then fh:close() end
  return fh ~= nil
end

local M = {}

function M.login(env)
  local frame_limit = env.frames() + 60 * 60   -- a minute at 60 fps

  local function step()
    coroutine.yield()
    assert(env.frames() < frame_limit, "the login took too long")
    local f = env.flow()
    assert(not f or f.state ~= "failed", f and ("the flow failed: " .. tostring(f.error)))
  end

  local function wait_for(state)
    while not env.flow() or env.flow().state ~= state do step() end
    return env.flow()
  end

  local function type_text(s)
    for ch in s:gmatch(".") do love.event.push("textinput", ch) end
    love.event.push("keypressed", "return", "return", false)
    step()
  end

  print("autopilot: typing the e-mail address")
  type_text(env.email)
  wait_for("awaiting_code")
  local code = assert(env.ctl:last_code(env.email))
  print("autopilot: typing the code from the outbox")
  type_text(code)

  local f = wait_for("awaiting_mfa_choice")
  assert(f.enroll_required, "the player should have to enroll")
  print("autopilot: enrolling an authenticator app (F3)")
  love.event.push("keypressed", "f3", "f3", false)
  f = wait_for("awaiting_mfa_code")
  while not env.code_img() do step() end
  step()   -- drawn at least once

  local shot
  love.graphics.captureScreenshot(function(img) img:encode("png", "enroll.png"); shot = true end)
  while not shot do step() end
  local path = love.filesystem.getSaveDirectory() .. "/enroll.png"
  local p = io.popen("zbarimg --raw -q '" .. path .. "' 2>/dev/null")
  local decoded = p:read("*a"):gsub("\n$", "")
  p:close()
  assert(decoded == f.enrollment.barcode_uri, "the QR code on screen decodes to " .. ("%q"):format(decoded))
  print("autopilot: the QR code on screen decodes to the enrollment URI (" .. #decoded .. " bytes)")

  local uri = assert(auth0.parse_otpauth(decoded))
  local now = assert(env.ctl:get("clock")).now
  print("autopilot: typing the TOTP code of the scanned secret")
  type_text(auth0.totp(uri.secret, { time = now }))
  f = wait_for("done")
  assert(f.tokens and f.tokens.access_token, "no tokens")
  print("autopilot: logged in (token_type " .. tostring(f.tokens.token_type) .. ")")
  while env.session() ~= "in" do step() end
  assert(env.welcome().email == env.email, "the welcome is not from the ID token's claims")
  assert(file_exists(env.store_path), "the credentials were not stored in the save folder")
  print("autopilot: credentials saved in the save folder; welcome " .. env.welcome().email)

  print("autopilot: the player adds a push authenticator (Guardian) on the side, logs out (F4)")
  assert(env.ctl:post("mfa/authenticators", { user_id = env.user_id, type = "push", name = "Player's phone" }))
  love.event.push("keypressed", "f4", "f4", false)
  while env.session() do step() end
  assert(not file_exists(env.store_path), "the logout left the credentials file")
  love.event.push("keypressed", "return", "return", false)   -- the e-mail is still in the field
  wait_for("awaiting_code")
  type_text(assert(env.ctl:last_code(env.email)))
  f = wait_for("awaiting_mfa_choice")
  local pick
  for i, a in ipairs(f.authenticators) do
    if a.oob_channel == "auth0" then pick = i end
  end
  assert(pick, "no push authenticator in the choice list")
  print(("autopilot: %d authenticators offered; choosing push (key %d)"):format(#f.authenticators, pick))
  love.event.push("keypressed", tostring(pick), tostring(pick), false)
  wait_for("awaiting_push")
  local sent = love.timer.getTime()
  while love.timer.getTime() - sent < 2 do step() end   -- the player reaches for the phone
  local pending = assert(env.ctl:get("guardian", { user_id = env.user_id })).transactions
  assert(pending[1], "no pending push")
  assert(env.ctl:post("guardian/" .. pending[1].oob_code .. "/approve", { name = "Player's phone" }))
  wait_for("done")
  print(("autopilot: push approved, logged in again (%.1f s after the push was sent)"):format(love.timer.getTime() - sent))
  while env.session() ~= "in" do step() end
  assert(file_exists(env.store_path), "the second login was not stored")

  print("autopilot: the player adds a phone (SMS), logs out (F4) and logs in with an SMS code")
  assert(env.ctl:post("mfa/authenticators", { user_id = env.user_id, type = "sms", phone_number = env.phone }))
  love.event.push("keypressed", "f4", "f4", false)
  while env.session() do step() end
  love.event.push("keypressed", "return", "return", false)
  wait_for("awaiting_code")
  type_text(assert(env.ctl:last_code(env.email)))
  f = wait_for("awaiting_mfa_choice")
  pick = nil
  for i, a in ipairs(f.authenticators) do
    if a.oob_channel == "sms" then pick = i end
  end
  assert(pick, "no SMS authenticator in the choice list")
  love.event.push("keypressed", tostring(pick), tostring(pick), false)
  wait_for("awaiting_mfa_code")
  assert(env.prompt():find("SMS", 1, true), "the screen does not ask for the SMS code: " .. env.prompt())
  local sms = assert(env.ctl:last_code(env.phone))
  print("autopilot: typing the code of the SMS (" .. env.prompt() .. ")")
  type_text(sms)
  wait_for("done")
  while env.session() ~= "in" do step() end
  assert(file_exists(env.store_path), "the SMS login was not stored")
  print("autopilot: logged in with the SMS code")
  print("autopilot: quitting logged in (the credentials stay in the save folder)")
  love.event.quit(0)
end

function M.restart(env)
  local frame_limit = env.frames() + 60 * 60
  assert(file_exists(env.store_path), "no stored credentials to start from")
  assert(env.load_session == "restoring", "the start did not pick up the stored credentials: " ..
    tostring(env.load_session))
  print("autopilot: restarted: the stored credentials are being renewed (no login screen)")
  while env.session() ~= "in" do
    assert(env.session() == "restoring", "the saved login was not kept: " .. tostring(env.message()))
    assert(not env.flow(), "a login was started")
    coroutine.yield()
    assert(env.frames() < frame_limit, "the renewal took too long")
  end
  assert(not env.message(), "renewed with a message: " .. tostring(env.message()))
  assert(env.welcome().email == env.email, "the welcome is not from the ID token's claims")
  print("autopilot: login skipped thanks to the stored credentials; welcome " .. env.welcome().email)
  for _ = 1, 3 do coroutine.yield() end   -- the button drawn
  local shot   -- kept by drive.lua with A0_LOVE_SHOTS, to look at the screen
  love.graphics.captureScreenshot(function(img) img:encode("png", "welcome.png"); shot = true end)
  while not shot do coroutine.yield() end
  local b = env.logout_button
  print("autopilot: clicking the logout button")
  love.event.push("mousepressed", b.x + b.w / 2, b.y + b.h / 2, 1, false, 1)
  while env.session() do
    coroutine.yield()
    assert(env.frames() < frame_limit, "the logout took too long")
  end
  assert(env.message() == "logged out", "the logout failed: " .. tostring(env.message()))
  assert(not file_exists(env.store_path), "the logout left the credentials file")
  print("autopilot: logged out: refresh token revoked, credentials file removed")
  love.event.quit(0)
end

return M
