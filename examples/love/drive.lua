--- The autopilot of the LÖVE login screen, both runs (lua5.4, run by `make love-demo
-- AUTOPILOT=1`, spec/love_spec.lua and bench/love_frames.lua):
--   1. starts the bundled emulator once, for both LÖVE processes, with the player on it;
--   2. `login`: a LÖVE process under Xvfb logs in (e-mail code, TOTP enrollment, logout, push, SMS)
--      and quits logged in; the credentials file must then be 0600 in a 0700 folder;
--   3. `restart`: a second LÖVE process must skip the login thanks to the stored credentials,
--      then log out with the button; the file must be gone and the refresh token revoked;
--   4. prints the per-frame figures of both processes together.
-- The save folder is a temporary XDG_DATA_HOME, not the user's. Exit status 0 when all held.
--   lua5.4 examples/love/drive.lua
local ROOT = os.getenv("A0_ROOT") or (arg[0]:match("^(.*)/examples/love/drive%.lua$") or ".")
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. ROOT .. "/examples/love/?.lua;" .. package.path
package.cpath = ROOT .. "/build/lua5.4/?.so;" .. package.cpath
io.stdout:setvbuf("line")

local auth0 = require "auth0"
local server = require "auth0.emulator.server"
local control = require "auth0.emulator.client"
local cjson = require "cjson"

local EMAIL = "player@example.com"
local failures = 0
local function check(ok, what)
  print((ok and "drive: ok: " or "drive: FAILED: ") .. what)
  if not ok then failures = failures + 1 end
  return ok
end

local function sh(cmd)
  local p = io.popen(cmd)
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local srv = assert(server.start { owner_pid = server.self_pid() })
local ctl = control.new { base_url = srv.base_url, ca_file = srv.ca_file }
local user_id = require("setup")(ctl, EMAIL)
local tmp = sh("mktemp -d /tmp/auth0-love.XXXXXX")
local frames_file = tmp .. "/frames"
local store = tmp .. "/love/auth0-love-demo/auth0/credentials"

-- One LÖVE process under Xvfb, its output passed through; true when it exited 0.
local function run_love(phase)
  local env = ("A0_ROOT=%s A0_LOVE_AUTOPILOT=%s A0_LOVE_EMU=%s A0_LOVE_EMU_CA=%s A0_LOVE_USER_ID=%s " ..
    "A0_LOVE_FRAMES=%s XDG_DATA_HOME=%s"):format(q(ROOT), phase, q(srv.base_url), q(srv.ca_file), q(user_id),
    q(frames_file), q(tmp))
  local p = io.popen(env .. " timeout 300 xvfb-run -a love " .. q(ROOT .. "/examples/love") .. " 2>" ..
    q(tmp .. "/err") .. "; echo \"rc=$?\"")
  local rc
  for line in p:lines() do
    rc = line:match("^rc=(%d+)$") or rc
    if not line:match("^rc=%d+$") then print(line) end
  end
  p:close()
  for line in io.lines(tmp .. "/err") do   -- LÖVE without a sound card is noisy: keep the rest
    if not (line:find("^ALSA lib") or line:find("^AL lib") or line:find("^Could not open device")) then
      io.stderr:write(line, "\n")
    end
  end
  return check(rc == "0", "the " .. phase .. " run exited with status " .. tostring(rc))
end

local refresh_token
if run_love("login") then
  check(sh("stat -c %a " .. q(store)) == "600", "the credentials file in the save folder is 0600")
  check(sh("stat -c %a " .. q(store:match("^(.*)/[^/]+$"))) == "700", "its folder is 0700")
  local fh = io.open(store)
  local data = fh and cjson.decode(fh:read("*a"))
  if fh then fh:close() end
  refresh_token = data and data.refresh_token
  check(type(refresh_token) == "string", "a refresh token is stored")
  check(data and data.user and data.user.email == EMAIL, "the stored claims are the player's")
  if run_love("restart") then
    check(io.open(store) == nil, "the logout removed the credentials file")
    local client = auth0.new { base_url = srv.base_url, ca_file = srv.ca_file, client_id = "emu-native" }
    local res, err = client:refresh(refresh_token)
    check(not res and err.code == "invalid_grant", "the logged-out refresh token is refused (" ..
      tostring(err and err.code) .. ")")
    client:close()
  end
end

-- Both processes' frames together: the library's own work per frame (thread CPU time), all
-- frames, and the frames where auth0.credentials was not at work (saving, renewing, logging out).
local work, other, update = {}, {}, 0
for line in io.lines(frames_file) do
  local u = line:match("^update (%S+)$")
  local ms, tag = line:match("^(%S+) (%S+)$")
  if u then update = math.max(update, tonumber(u))
  elseif ms then
    work[#work + 1] = tonumber(ms)
    if tag ~= "store" then other[#other + 1] = tonumber(ms) end
  end
end
local function figures(t)
  table.sort(t)
  local function pct(p) return t[math.max(1, math.ceil(#t * p))] or 0 end
  return ("worst %.3f ms, p99 %.3f ms, median %.3f ms"):format(t[#t] or 0, pct(0.99), pct(0.5))
end
print(("love frames, both runs: %d frames: library work per frame (poll, callbacks, ID token checks, QR, store;" ..
  " thread CPU) %s; love.update worst %.3f ms (wall)"):format(#work, figures(work), update))
print(("love frames, both runs, without the %d frames where auth0.credentials was at work (a save, a renewal," ..
  " a logout): %s"):format(#work - #other, figures(other)))

local shots = os.getenv("A0_LOVE_SHOTS")   -- a folder to keep the screenshots in
if shots then os.execute("cp " .. q(tmp) .. "/love/auth0-love-demo/*.png " .. q(shots) .. " 2>/dev/null") end
ctl:close()
srv:stop()
os.execute("rm -rf " .. q(tmp))
print(failures == 0 and "drive: all checks held" or ("drive: %d checks FAILED"):format(failures))
os.exit(failures == 0 and 0 or 1)
