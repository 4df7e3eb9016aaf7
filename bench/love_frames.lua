--- The frame budget in a real game host: the LÖVE login screen's autopilot (two LÖVE processes
-- under Xvfb, examples/love/drive.lua), `rounds` times, with the per-frame figures of each
-- round: the library's own work per frame (poll, its callbacks, ID token checks, QR building,
-- the credentials store; thread CPU time) worst, p99 and median with the frame count, the same
-- without the frames where auth0.credentials was at work (from a save's, renewal's or logout's
-- call to its callback), and love.update's worst (wall). A benchmark, not a test: it fails only when the autopilot does.
-- Targets (issue 14): worst < 0.5 ms, p99 < 0.15 ms.
--   make all luajit && lua5.4 bench/love_frames.lua [rounds]
local rounds = tonumber(arg[1]) or 3
local root = arg[0]:match("^(.*)/bench/love_frames%.lua$") or "."
local function target(v, limit) return v < limit and "under" or "OVER" end

print(("love_frames: %d rounds of examples/love's autopilot (login, restart, logout) under Xvfb"):format(rounds))
local status = 0
for r = 1, rounds do
  local p = io.popen("A0_ROOT='" .. root .. "' lua5.4 '" .. root .. "/examples/love/drive.lua' 2>&1; echo rc=$?")
  local out = p:read("*a")
  p:close()
  if not out:find("\nrc=0", 1, true) then
    io.stderr:write(out)
    status = 1
  end
  local n, worst, p99, median, upd = out:match("both runs: (%d+) frames: .-worst (%S+) ms, p99 (%S+) ms, median (%S+) ms;" ..
    " love.update worst (%S+) ms")
  local k, w2, p2 = out:match("without the (%d+) frames.-worst (%S+) ms, p99 (%S+) ms")
  if n then
    print(("round %d: %s frames: library work per frame worst %s ms (%s 0.5), p99 %s ms (%s 0.15), median %s ms;" ..
      " love.update worst %s ms"):format(r, n, worst, target(tonumber(worst), 0.5), p99, target(tonumber(p99), 0.15),
      median, upd))
    print(("round %d: without the %s frames of auth0.credentials: worst %s ms (%s 0.5), p99 %s ms (%s 0.15)")
      :format(r, k, w2, target(tonumber(w2), 0.5), p2, target(tonumber(p2), 0.15)))
    for line in out:gmatch("the costliest frames[^\n]*") do print("round " .. r .. ": " .. line) end
  end
end
os.exit(status)
