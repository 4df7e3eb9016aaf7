-- The LÖVE login screen (examples/love) played by its autopilot under Xvfb against the
-- bundled emulator: an e-mail code, then a TOTP enrollment whose QR code is decoded from a
-- screenshot with zbarimg and must equal the enrollment URI; then a logout and a login again
-- with an MFA push chosen from the list and approved through the emulator.
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  return out:match("rc=(%d+)%s*$") == "0", (out:gsub("\n?rc=%d+%s*$", ""))
end

describe("examples/love", function()
  it("logs in through the real screen, QR code decoded from a screenshot", function()
    if os.getenv("A0_PASS") ~= "lua54" then pending("runs once, in the Lua 5.4 pass"); return end
    for _, tool in ipairs { "love", "xvfb-run", "zbarimg" } do
      if not run("command -v " .. tool) then pending(tool .. " is not installed (make deps installs it)"); return end
    end
    local ok, out = run("make -s love-demo AUTOPILOT=1")
    assert(ok, out)
    for _, line in ipairs {
      "autopilot: typing the code from the outbox",
      "autopilot: enrolling an authenticator app (F3)",
      "autopilot: the QR code on screen decodes to the enrollment URI (",
      "autopilot: logged in (token_type Bearer)",
      "autopilot: 3 authenticators offered; choosing push (key ",
      "autopilot: push approved, logged in again (",
    } do
      assert.truthy(out:find(line, 1, true), "missing: " .. line .. "\n" .. out)
    end
    assert.matches("%d+ frames: library work per frame", out)
  end)
end)
