-- The LÖVE login screen (examples/love) played by its autopilot under Xvfb against the bundled
-- emulator, in two LÖVE processes (examples/love/drive.lua): the first logs in with an e-mail
-- code and a TOTP enrollment whose QR code is decoded from a screenshot with zbarimg and must
-- equal the enrollment URI, logs out, logs in again with an MFA push, and quits logged in; the
-- second must skip the login thanks to the credentials stored in the save folder, then log out
-- with the button (refresh token revoked, file removed).
-- It runs in the "love" pass of spec/run.sh only (A0_PASS=love): one run of the game is enough,
-- and the other passes test the library, not LÖVE. Direct run:
--   A0_PASS=love lua5.4 /usr/bin/busted --run=default spec/love_spec.lua
if os.getenv("A0_PASS") ~= "love" then return end

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  return out:match("rc=(%d+)%s*$") == "0", (out:gsub("\n?rc=%d+%s*$", ""))
end

local function has(out, line) return out:find(line, 1, true) ~= nil end

-- Skipped, with one reason, only when LÖVE cannot start at all.
for _, tool in ipairs { "love", "xvfb-run" } do
  if not run("command -v " .. tool) then
    describe("examples/love under Xvfb", function()
      pending("LÖVE cannot start: " .. tool .. " is not installed (make deps installs it)")
    end)
    return
  end
end

describe("examples/love under Xvfb", function()
  local ok, out   -- the two LÖVE runs happen once, for every test below

  setup(function()
    ok, out = run("make -s love-demo AUTOPILOT=1")
    print(out)
  end)


  local function expect(lines)
    for _, line in ipairs(lines) do assert(has(out, line), "missing: " .. line .. "\n" .. out) end
  end

  it("plays both runs to the end (exit status 0, every check of drive.lua held)", function()
    assert(ok, out)
    expect { "drive: all checks held" }
    assert.falsy(has(out, "FAILED"), out)
  end)

  it("logs in with an e-mail code and enrolls TOTP, the QR code decoded from a screenshot", function()
    assert(run("command -v zbarimg"), "zbarimg is not installed (make deps installs it)")
    expect {
      "autopilot: typing the code from the outbox",
      "autopilot: enrolling an authenticator app (F3)",
      "autopilot: the QR code on screen decodes to the enrollment URI (",
      "autopilot: logged in (token_type Bearer)",
    }
  end)

  it("stores the login in the save folder (0600 file, 0700 folder), the claims from the ID token", function()
    expect {
      "autopilot: credentials saved in the save folder; welcome player@example.com",
      "drive: ok: the credentials file in the save folder is 0600",
      "drive: ok: its folder is 0700",
      "drive: ok: a refresh token is stored",
      "drive: ok: the stored claims are the player's",
    }
  end)

  it("logs out with F4 (file removed) and logs in again with a push chosen from the list", function()
    expect {
      "autopilot: 3 authenticators offered; choosing push (key ",
      "autopilot: push approved, logged in again (",
      "autopilot: quitting logged in (the credentials stay in the save folder)",
      "drive: ok: the login run exited with status 0",
    }
  end)

  it("logs in with an SMS code: the choice list offers the phone, the screen asks for the SMS code", function()
    expect {
      "autopilot: the player adds a phone (SMS), logs out (F4) and logs in with an SMS code",
      "autopilot: typing the code of the SMS (enter the code we sent by SMS to ",
      "autopilot: logged in with the SMS code",
    }
  end)

  it("restarts without the login thanks to the stored credentials, then logs out with the button", function()
    expect {
      "autopilot: restarted: the stored credentials are being renewed (no login screen)",
      "autopilot: login skipped thanks to the stored credentials; welcome player@example.com",
      "autopilot: clicking the logout button",
      "autopilot: logged out: refresh token revoked, credentials file removed",
      "drive: ok: the restart run exited with status 0",
      "drive: ok: the logout removed the credentials file",
      "drive: ok: the logged-out refresh token is refused (invalid_grant)",
    }
  end)

  it("prints the per-frame figures of both runs", function()
    assert.matches("love frames, both runs: %d+ frames: library work per frame", out)
    assert.matches("without the %d+ frames where auth0.credentials", out)
  end)
end)
