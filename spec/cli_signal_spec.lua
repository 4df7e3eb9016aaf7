-- `auth0 token` from cron, stopped by a timeout wrapper (SIGTERM), a hangup (SIGHUP) or Ctrl-C
-- (SIGINT) while its refresh is under way: the emulator has rotated the refresh token (the
-- old one is retired) and holds its answer back; the command still writes the rotated token
-- before it stops. The stored token then works, and the old one is refused.
local emu = require "spec.support.emulator"
local auth0 = require "auth0"
local credentials = require "auth0.credentials"
local cjson = require("cjson.safe").new()
local util = require "spec.support.util"
local cli = require "spec.support.cli"
local q, read = util.q, util.read

if not util.first_pass() then
  describe("auth0 token stopped by a signal mid-refresh", function() pending("runs once, in the Lua 5.4 pass") end)
  return
end

describe("auth0 token stopped by a signal mid-refresh", function()
  local srv, work
  setup(function()
    srv = emu.start()
    work = io.popen("mktemp -d /tmp/auth0-cli-signal-spec.XXXXXX"):read("l")
  end)
  teardown(function()
    emu.control("DELETE", "/faults")
    if work then os.execute("rm -rf " .. q(work)) end
  end)

  -- the status once the held signal is delivered: killed by it (128 + its number), or for
  -- Ctrl-C the interpreter's "interrupted!" (the command's 130)
  local STATUS = { TERM = 143, HUP = 129, INT = 130 }
  for _, sig in ipairs { "TERM", "HUP", "INT" } do
    it("keeps the rotated refresh token when SIG" .. sig .. " comes during the refresh", function()
      emu.reset()
      local c = util.client(srv)
      local tokens = util.login(emu, c, "signal-" .. sig:lower() .. "@example.com")
      local old = tokens.refresh_token
      tokens.expires_in = 0   -- expired: `auth0 token` refreshes
      local path = work .. "/state/lua-auth0/default/credentials"
      os.execute("rm -f " .. q(path))
      assert(credentials.new(c, { store = credentials.file_store { path = path } }):save(tokens))
      local before = emu.control("GET", "/refresh_tokens").refreshes
      emu.control("POST", "/faults", { rules = { { kind = "delay", path = "/oauth/token", ms = 2500, times = 1 } } })
      local e = cli.env(work, { AUTH0_BASE_URL = srv.base_url, AUTH0_CA_FILE = srv.ca_file,
        AUTH0_CLIENT_ID = "emu-native", HOME = false })
      local b = work .. "/job-" .. sig
      -- the command's own pid (exec): the signal goes to it, as a timeout wrapper's would
      os.execute(("(sh -c 'echo $$ >%s.pid; exec %s bin/auth0 token' </dev/null >%s.out 2>%s.err; echo $? >%s.rc) &")
        :format(b, e:gsub("'", "'\\''"), b, b, b))
      -- the server has rotated the token and holds its answer back
      local seen
      for _ = 1, 200 do
        seen = emu.control("GET", "/refresh_tokens").refreshes > before
        if seen then break end
        auth0.core.sleep(0.02)
      end
      assert.is_true(seen, "no refresh reached the emulator: " .. tostring(read(b .. ".err")))
      local pid = assert(tonumber(read(b .. ".pid")))
      assert.is_true(os.execute("kill -" .. sig .. " " .. pid) == true)
      for _ = 1, 300 do if read(b .. ".rc") then break end; auth0.core.sleep(0.05) end
      local rc, err = tonumber(read(b .. ".rc")), read(b .. ".err") or ""
      assert.equal(STATUS[sig], rc, err)   -- it stopped, as asked, once the token was written
      assert.equal("", read(b .. ".out"))  -- and printed nothing
      assert.is_nil(err:find(old, 1, true))
      local stored = cjson.decode(read(path) or "")
      assert.is_table(stored, "the store was lost")
      assert.is_true(stored.refresh_token ~= old, "the store still holds the retired refresh token")
      -- the stored one works (checked first: presenting the retired one revokes the family)
      local t, terr = c:refresh { refresh_token = stored.refresh_token }
      assert.is_table(t, terr and tostring(terr))
      local t2, terr2 = c:refresh { refresh_token = old }
      assert.is_nil(t2)
      assert.equal("invalid_grant", terr2.code)
    end)
  end
end)
