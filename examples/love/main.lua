-- luacheck: globals love
--- A LÖVE 11.4 login screen over `auth0.flow`: an e-mail code, then the enrollment of an
-- authenticator app, its QR code drawn from `auth0.qr`'s matrix (built on a love.thread,
-- qrthread.lua), and the code it shows; push and SMS codes for the next logins.
-- The login is kept between runs by `auth0.credentials` in LÖVE's save folder: the next start
-- renews it (callback form) and skips the login; the logout button revokes it and clears it.
-- The network runs on the client's I/O thread (`io_thread`); every call is in callback form,
-- each frame polls once within a budget and steps the collector once.
--   make love-demo                 (a display: you play; none: the autopilot under Xvfb)
--   love examples/love             (from the checkout, after `make luajit`)
-- It starts the bundled emulator (nginx), with a player whose account requires MFA and has
-- no authenticator yet: read the e-mail code in the panel on the right (the emulator's
-- outbox), then scan the QR code with an authenticator app, or read the secret below it.
--
-- A0_LOVE_AUTOPILOT=login|restart drives the real screen through LÖVE's event queue (text
-- input, key presses, clicks; see autopilot.lua), prints the per-frame figures and quits with
-- status 0 (1 on any failure); examples/love/drive.lua runs both, two LÖVE processes against
-- one emulator (A0_LOVE_EMU, A0_LOVE_EMU_CA, A0_LOVE_USER_ID).

io.stdout:setvbuf("line")

-- The autopilot runs unattended: an error prints and quits instead of LÖVE's error screen.
local AUTOPILOT = os.getenv("A0_LOVE_AUTOPILOT")
if AUTOPILOT == "1" then AUTOPILOT = "login" end
if AUTOPILOT then
  function love.errorhandler(msg)
    print("autopilot: FAILED: " .. debug.traceback(tostring(msg), 2))
    return function() return 1 end
  end
end

-- This checkout's modules: A0_ROOT (make love-demo sets it), else two folders up.
local function checkout_root()
  local root = os.getenv("A0_ROOT")
  if root then return root end
  local base = love.filesystem.getSourceBaseDirectory()   -- examples/
  if base:sub(1, 1) ~= "/" then base = (os.getenv("PWD") or ".") .. "/" .. base end
  return base .. "/.."
end
local ROOT = checkout_root()
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = ROOT .. "/build/luajit/?.so;" .. package.cpath   -- LÖVE is LuaJIT

local auth0 = require "auth0"
local flow = require "auth0.flow"
local credentials = require "auth0.credentials"
local control = require "auth0.emulator.client"

local cpu = auth0.core.thread_cpu
local EMAIL = "player@example.com"
local PHONE = "+15555550123"       -- the player's phone, for SMS codes (autopilot: added on the side)
local RESEND_COOLDOWN = 30   -- seconds before "resend" is offered again
local POLL_BUDGET_MS = 0.15

local srv, ctl, client, f, cm, user_id
local session                      -- nil (logged out) | "restoring" | "in" | "saving" | "logging_out"
local welcome                      -- the verified ID token's claims shown once logged in
local push_since                   -- when the push was sent (for the elapsed time shown)
local input, message = "", nil     -- the text field, and a line of help or error
local resend_at = 0
local code_img                      -- { uri = ..., image = love Image } being shown
local qr_thread, qr_requests, qr_answers   -- QR codes are built on a love.thread (qrthread.lua)
local qr_asked                      -- the URI handed to it
local frame_work, frames = {}, 0   -- per frame: the library's own CPU time (ms)
local frame_state = {}             -- per frame: the flow's state after the poll
local frame_store = {}             -- per frame: true when auth0.credentials was at work (a save, renewal, logout)
local store_touched = false
local qr_ms                        -- what building the QR code cost (ms)
local update_worst = 0
local autopilot                    -- the autopilot's coroutine
local load_session                 -- the session when love.load ended (the autopilot checks it)
local carried = 0                  -- library work done in input handlers, added to the next frame
local prompt                       -- the line telling the player what to do (defined with the drawing)
local LOGOUT = { x = 20, y = 80, w = 120, h = 30 }   -- the logout button

local function field_label()
  if session then return nil end
  if not f then return "e-mail" end
  if f.state == "awaiting_code" then return "code from the e-mail" end
  if f.state == "awaiting_mfa_code" then
    if f.challenge_type == "oob" then return "code from the SMS" end
    return f.enrollment and "6-digit code from the app" or "6-digit code from your authenticator app"
  end
  return nil
end

-- What the player sees of an error: the message in words, never the raw table.
local function say_error(err) message = err and ("error: " .. (err.message ~= "" and err.message or err.code)) or nil end

local function own_pid()
  local fh = io.open("/proc/self/stat")
  local pid = fh and tonumber(fh:read("*l"):match("^(%d+)"))
  if fh then fh:close() end
  return pid
end

-- Library calls made from input handlers (submit a code, log out) count in the next frame.
local function lib(fn, ...)
  local c0 = cpu()
  fn(...)
  carried = carried + (cpu() - c0) * 1000
end

-- After a login: the tokens go to the store (the ID token verified first, keys fetched on the
-- I/O thread); what the player sees next comes from the verified claims.
local function keep_login(tokens)
  session = "saving"
  cm:save(tokens, function(ok, err)
    store_touched = true   -- the ID token was checked and the file written, in earlier polls
    if not ok then say_error(err) end   -- still logged in for this run, just not remembered
    session, welcome = "in", cm:user() or {}
  end)
end

-- A stored login: renewed once at start (the refresh token may have been revoked from
-- elsewhere), in callback form; offline, the stored session is kept.
local function restore()
  session = "restoring"
  store_touched = true
  cm:renew(function(_, err)
    store_touched = true
    if err and err.code == "login_required" then
      session, message = nil, "your saved login has expired: log in again"
    else
      if err then message = "offline: playing with the saved login (" .. tostring(err.message) .. ")" end
      session, welcome = "in", cm:user() or {}
    end
  end)
end

local function logout()
  session = "logging_out"
  store_touched = true
  cm:clear({ revoke = true }, function(ok, err)
    store_touched = true
    if ok then session, welcome, f, code_img, qr_asked, input, message = nil, nil, nil, nil, nil, EMAIL, "logged out"
    else session = "in"; say_error(err) end
  end)
end

-- The emulator: the one named by A0_LOVE_EMU (kept across restarts), else our own.
local function emulator()
  local url, ca = os.getenv("A0_LOVE_EMU"), os.getenv("A0_LOVE_EMU_CA")
  if url and ca then
    ctl = control.new { base_url = url, ca_file = ca }
    return url, ca, os.getenv("A0_LOVE_USER_ID")
  end
  srv = assert(require("auth0.emulator.server").start { owner_pid = own_pid() })
  ctl = control.new { base_url = srv.base_url, ca_file = srv.ca_file }
  return srv.base_url, srv.ca_file, require("setup")(ctl, EMAIL)
end

function love.load()
  collectgarbage("stop")   -- stepped once per frame in love.update
  local url, ca
  url, ca, user_id = emulator()
  client = auth0.new { base_url = url, ca_file = ca, client_id = "emu-native",
    io_thread = true, poll_budget_ms = POLL_BUDGET_MS }
  -- in the save folder (~/.local/share/love/<identity>): the store makes auth0/ 0700, the file 0600
  -- when it writes; another copy of the game refreshing: the lock is tried again from poll for
  -- up to lock_wait seconds, never waited for in a frame (the store's disk work is on its thread)
  cm = credentials.new(client, { store = credentials.file_store {
    path = love.filesystem.getSaveDirectory() .. "/auth0/credentials", lock_wait = 5 } })
  client:jwks(function() end)   -- the TLS handshake happens now, on the I/O thread
  -- the QR codes' thread (a code costs 0.1-0.4 ms: not in a frame); it warms libqrencode up
  qr_requests, qr_answers = love.thread.newChannel(), love.thread.newChannel()
  qr_thread = love.thread.newThread("qrthread.lua")
  qr_thread:start(qr_requests, qr_answers, ROOT)
  love.keyboard.setKeyRepeat(true)
  input = AUTOPILOT and "" or EMAIL
  if cm:has_valid() then restore() end
  load_session = session
  if AUTOPILOT then autopilot = coroutine.create(require("autopilot")[AUTOPILOT]) end
end

local function start_login()
  f = flow.login(client, { connection = "email", email = input, scope = "openid profile email offline_access",
    push_interval = 1, on_state = function(fl)
    say_error(fl.error)
    if fl.state == "done" then keep_login(fl.tokens) end
    push_since = fl.state == "awaiting_push" and (push_since or love.timer.getTime()) or nil
    if fl.state == "awaiting_code" or fl.state == "awaiting_mfa_code" then input = "" end
    if fl.state == "awaiting_mfa_code" and fl.challenge_type == "oob" then   -- an SMS just went out
      resend_at = love.timer.getTime() + RESEND_COOLDOWN
    end
  end })
  resend_at = love.timer.getTime() + RESEND_COOLDOWN
end

-- Enter in the text field: what it means depends on the state.
local function submit()
  if not f or f.state == "failed" or f.state == "cancelled" then
    if input:find("^[^@%s]+@[^@%s]+$") then start_login() else message = "error: that is not an e-mail address" end
  elseif f.state == "awaiting_code" then
    if f.must_resend then message = "error: that code expired: press F2 for a new one"
    elseif input:find("^%d+$") then f:submit_code(input) else message = "error: the code is digits only" end
  elseif f.state == "awaiting_mfa_code" then
    if f.challenge_type == "oob" then   -- a code sent by SMS (or voice, e-mail): digits, its length is the server's
      if input:find("^%d+$") then f:submit_mfa_code(input) else message = "error: the code is digits only" end
    elseif input:find("^%d%d%d%d%d%d$") then f:submit_mfa_code(input) else message = "error: the code has 6 digits" end
  end
end

function love.textinput(t)
  if field_label() and #input < 64 then input = input .. t end
end

function love.keypressed(key)
  if key == "backspace" then input = input:sub(1, -2)
  elseif key == "return" or key == "kpenter" then if not session then lib(submit) end
  elseif key == "f2" and f and f.state == "awaiting_code" and love.timer.getTime() >= resend_at then
    lib(f.resend_code, f)
    resend_at = love.timer.getTime() + RESEND_COOLDOWN
  elseif key == "f2" and f and f.state == "awaiting_mfa_code" and f.challenge_type == "oob"
         and love.timer.getTime() >= resend_at then   -- a new SMS: the same authenticator challenged again
    lib(f.choose_authenticator, f, f.authenticator)
    resend_at = love.timer.getTime() + RESEND_COOLDOWN
  elseif key == "f3" and f and f.state == "awaiting_mfa_choice" then
    lib(f.enroll, f, { authenticator_types = { "otp" } })
  elseif key:find("^%d$") and f and f.state == "awaiting_mfa_choice" then   -- the choice list (no text field)
    local a = f.authenticators[tonumber(key)]
    if a then lib(f.choose_authenticator, f, a) end
  elseif key == "f4" and session == "in" then lib(logout)
  elseif key == "f1" then   -- the emulator's outbox stands in for the player's mailbox and phone
    local code = ctl:last_code(f and f.state == "awaiting_mfa_code" and f.challenge_type == "oob" and PHONE or EMAIL)
    message = code and ("outbox: the last code sent is " .. code) or "outbox: empty"
  elseif key == "escape" then
    if f and f.state ~= "done" then lib(f.cancel, f) else love.event.quit() end
  end
end

function love.mousepressed(x, y, button)
  local b = LOGOUT
  if button == 1 and session == "in" and x >= b.x and x < b.x + b.w and y >= b.y and y < b.y + b.h then lib(logout) end
end

-- The QR code as an image made once: one pixel per module, light, with a quiet zone of 4
-- modules, drawn scaled up without smoothing (per-module rectangles every frame cost more).
-- `size` and `rows` come from auth0.qr's matrix (built on the QR thread).
local function qr_image(size, rows)
  local side = size + 8
  local data = love.image.newImageData(side, side)
  data:mapPixel(function() return 1, 1, 1, 1 end)
  local y = 0
  for row in rows:gmatch("[01]+") do
    y = y + 1
    for x = 1, size do
      if row:byte(x) == 49 then data:setPixel(x + 3, y + 3, 0, 0, 0, 1) end   -- "1": dark
    end
  end
  local image = love.graphics.newImage(data)
  image:setFilter("nearest", "nearest")
  return image
end

function love.update()
  local t0, auto = love.timer.getTime(), 0
  local c0 = cpu()
  assert(client:poll(0))
  -- the enrollment QR code: built once, on the QR thread (handing the URI over costs
  -- microseconds), drawn once its matrix is back
  local uri = f and f.enrollment and f.enrollment.barcode_uri
  if uri and uri ~= qr_asked then
    qr_asked = uri
    qr_requests:push(uri)
  end
  frames = frames + 1
  frame_work[frames] = (cpu() - c0) * 1000 + carried
  -- auth0.credentials' frames: from the call to its callback (lock, reread, ID token check and
  -- write each run from a poll of their own)
  local at_work = session == "saving" or session == "restoring" or session == "logging_out"
  frame_store[frames], carried, store_touched = store_touched or at_work, 0, false
  local got = qr_answers:pop()   -- the game's work: an image from the matrix, once
  if got and got.uri == qr_asked then
    assert(not got.err, got.err)
    code_img, qr_ms = { uri = got.uri, image = qr_image(got.size, got.rows) }, got.ms
  end
  frame_state[frames] = session or (f and f.state) or "start"
  if autopilot then   -- the player, not the game: its time is left out of the figures
    local a0 = love.timer.getTime()
    local ok, err = coroutine.resume(autopilot, { flow = function() return f end, ctl = ctl, email = EMAIL,
      code_img = function() return code_img end, frames = function() return frames end, user_id = user_id,
      session = function() return session end, load_session = load_session, welcome = function() return welcome end,
      message = function() return message end, logout_button = LOGOUT, store_path = cm._store.path,
      phone = PHONE, prompt = function() return session and "" or prompt() end })
    if not ok then
      print("autopilot: FAILED: " .. tostring(err))
      love.event.quit(1)
      autopilot = nil
    elseif coroutine.status(autopilot) == "dead" then
      autopilot = nil
    end
    auto = love.timer.getTime() - a0
  end
  collectgarbage("step", 0)
  collectgarbage("stop")   -- LuaJIT's step restarts the collector
  update_worst = math.max(update_worst, (love.timer.getTime() - t0 - auto) * 1000)
end

--- The per-frame figures: the library's own work (poll, its callbacks, QR building).
local function frame_report()
  local t, worst = {}, 1
  for i = 1, frames do
    t[i] = frame_work[i]
    if frame_work[i] > frame_work[worst] then worst = i end
  end
  table.sort(t)
  local idx = {}
  for i = 1, frames do idx[i] = i end
  table.sort(idx, function(x, y) return frame_work[x] > frame_work[y] end)
  local top = {}
  for i = 1, math.min(12, frames) do
    top[i] = ("%d %s %.3f"):format(idx[i], frame_state[idx[i]], frame_work[idx[i]])
  end
  print("the costliest frames (frame, state after the poll, ms): " .. table.concat(top, "; "))
  return ("%d frames: library work per frame (thread CPU) worst %.3f ms (frame %d, %s), p99 %.3f ms, median %.3f ms;" ..
    " building the QR code (on its thread, not in a frame) %s; love.update worst %.3f ms (wall, without the autopilot)")
    :format(frames, t[#t] or 0, worst, frame_state[worst] or "-", t[math.max(1, math.ceil(#t * 0.99))] or 0,
      t[math.max(1, math.ceil(#t / 2))] or 0, qr_ms and ("%.3f ms"):format(qr_ms) or "-", update_worst)
end

function love.quit()
  print(frame_report())
  local out = os.getenv("A0_LOVE_FRAMES")   -- drive.lua adds up the frames of both runs
  if out then
    local fh = assert(io.open(out, "a"))
    for i = 1, frames do fh:write(("%.6f %s\n"):format(frame_work[i], frame_store[i] and "store" or "-")) end
    fh:write(("update %.6f\n"):format(update_worst))
    fh:close()
  end
  -- a save or logout still writing on the store's thread: let it end (a second at most)
  local deadline = love.timer.getTime() + 1
  local busy = { saving = true, restoring = true, logging_out = true }
  while client and busy[session] and love.timer.getTime() < deadline do
    client:poll(10)
  end
  if qr_thread then qr_requests:push(false); qr_thread:wait() end
  if client then client:close() end
  if ctl then ctl:close() end
  if srv then srv:stop() end
end

local STATE_TEXT = {
  sending_code = "sending the code...", awaiting_code = "we sent a code to your e-mail",
  verifying = "checking...", awaiting_mfa_choice = "this account needs a second factor",
  mfa_challenging = "asking the server...", awaiting_mfa_code = "enter the code from your app",
  awaiting_push = "approve the login on your phone", done = "logged in", failed = "the login failed",
  cancelled = "cancelled",
}

-- The line under the title: what the player has to do now.
function prompt()
  if not f then return "enter your e-mail and press Enter" end
  if f.state == "awaiting_mfa_code" and f.challenge_type == "oob" then
    local a = f.authenticator or {}
    return "enter the code we sent by SMS to " .. tostring(a.name or a.phone_number or "your phone")
  end
  return STATE_TEXT[f.state] or f.state
end

function love.draw()
  local g = love.graphics
  g.clear(0.12, 0.13, 0.16)
  g.setColor(1, 1, 1)
  g.print("lua-auth0 login (state: " .. (session or (f and f.state) or "start") .. ")", 20, 20)
  g.print(session and "" or prompt(), 20, 45)
  local label = field_label()
  if label then
    g.print(label .. ":", 20, 80)
    g.rectangle("line", 20, 100, 360, 26)
    g.print(input .. ((love.timer.getTime() % 1 < 0.5) and "_" or ""), 26, 105)
  end
  local y = 140
  if f and f.state == "awaiting_code" then
    local wait = resend_at - love.timer.getTime()
    g.print(wait > 0 and ("resend in %d s"):format(math.ceil(wait)) or "F2: send a new code", 20, y)
    y = y + 25
  elseif f and f.state == "awaiting_mfa_choice" then
    for i, a in ipairs(f.authenticators) do
      if i > 9 then break end
      local kind = a.authenticator_type == "otp" and "authenticator app" or
        (a.oob_channel == "auth0" and "push to " or (a.oob_channel or "") .. " to ") .. (a.name or a.id)
      g.print(("%d: %s"):format(i, kind), 20, y)
      y = y + 20
    end
    g.print(f.enroll_required and "F3: set up an authenticator app" or "F3: add an authenticator app", 20, y)
    y = y + 25
  elseif f and f.state == "awaiting_mfa_code" and f.challenge_type == "oob" then
    local wait = resend_at - love.timer.getTime()
    g.print(wait > 0 and ("new SMS in %d s"):format(math.ceil(wait)) or "F2: send a new SMS", 20, y)
    y = y + 25
  elseif f and f.state == "awaiting_push" then
    local t = love.timer.getTime()
    g.arc("line", "open", 34, y + 12, 10, t * 6, t * 6 + 4.5)   -- a spinner: the frame goes on
    g.print(("waiting for your phone: %.1f s"):format(t - (push_since or t)), 54, y + 4)
    y = y + 35
  end
  if session then
    g.print(({ restoring = "welcome back: checking your saved login...", saving = "logged in: saving the login...",
      logging_out = "logging out...", ["in"] = "welcome, " .. tostring(welcome and (welcome.email or welcome.sub)) ..
      "! (from your verified ID token)" })[session], 20, 45)
    if session == "in" then
      local b = LOGOUT
      g.setColor(0.35, 0.2, 0.2)
      g.rectangle("fill", b.x, b.y, b.w, b.h, 4, 4)
      g.setColor(1, 1, 1)
      g.rectangle("line", b.x, b.y, b.w, b.h, 4, 4)
      g.printf("Log out (F4)", b.x, b.y + 8, b.w, "center")
      g.print("Esc quits: the login is kept for the next start", 20, 125)
    end
    y = 160
  end
  if f and f.recovery_code and f.state ~= "done" then
    g.printf("recovery code (write it down, it is shown once): " .. f.recovery_code, 20, y, 380)
    y = y + 45
  end
  if message then
    g.setColor(1, 0.5, 0.5)
    g.printf(message, 20, y, 760)
    g.setColor(1, 1, 1)
  end
  if code_img and f and f.state == "awaiting_mfa_code" then
    local scale = 6
    g.setColor(1, 1, 1)
    g.draw(code_img.image, 420, 80, 0, scale, scale)
    local side = code_img.image:getWidth() * scale
    g.print("scan it with your authenticator app", 420, 90 + side)
    if f.enrollment.secret then g.print("or type the key " .. f.enrollment.secret, 420, 110 + side) end
  end
  g.setColor(0.6, 0.6, 0.6)
  g.print("emulator outbox: F1 shows the last code sent (demo only)", 20, 570)
end
