--- Spec helpers shared by the specs that drive processes and files: shell quoting and
-- capture, whole-file reads and writes, temporary folders, the emulator-backed client of the
-- credentials specs, and a clock that follows the emulator's virtual one.
local _M = {}

--- False in the passes after the first one (luajit, asan, iothread...): for specs of things
-- that are the same in every pass (a Lua 5.4 program, an install), which run once.
function _M.first_pass()
  local pass = os.getenv("A0_PASS")
  return pass == nil or pass == "lua54"
end

--- `s` quoted for the shell.
function _M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- Runs `cmd` (stderr too); returns its output.
function _M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("*a")
  p:close()
  return out
end

--- Runs a system tool (`cmd`) without the ASan pass's LD_PRELOAD: tools run under ASan report
-- their own leaks, and some (pgrep) hang in its leak check. Returns its output.
function _M.tool(cmd) return _M.sh("env -u LD_PRELOAD sh -c " .. _M.q(cmd)) end

local sys = require "auth0.emulator.sys"

--- A file's bytes, or nil.
_M.read = sys.read_file

--- Writes `s` to `path` (raises on failure).
function _M.write(path, s) assert(sys.write_file(path, s)) end

--- A new folder under /tmp named after `tag`; `rm_tmp()` removes the last ones made.
local made = {}
function _M.tmpdir(tag)
  local d = _M.sh("mktemp -d /tmp/" .. (tag or "a0-spec") .. ".XXXXXX"):match("%S+")
  made[#made + 1] = d
  return d
end
function _M.rm_tmp()
  for _, d in ipairs(made) do os.execute("rm -rf " .. _M.q(d)) end
  made = {}
end

--- A clock for the client's side that follows the emulator's virtual one:
-- `clock.now()`, `clock.advance(s)` (both clocks), `clock.offset()`, `clock.reset()`.
function _M.clock(emu)
  local offset = 0
  return {
    now = function() return os.time() + offset end,
    advance = function(s)
      offset = offset + s
      emu.control("POST", "/clock", { advance = s })
    end,
    offset = function() return offset end,
    reset = function() offset = 0 end,
  }
end

--- A client of the emulator `server` (the public client), with `opts` on top.
function _M.client(server, opts)
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 10 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return require("auth0").new(o)
end

--- An e-mail login through the emulator's outbox; tokens for https://api.example.com with a
-- refresh token.
function _M.login(emu, c, email)
  local auth0 = require "auth0"
  assert(c:passwordless_start { connection = "email", email = email })
  local out = emu.control("GET", "/outbox?to=" .. auth0.core.pct_escape(email)).messages
  return assert(c:passwordless_login { realm = "email", username = email, otp = out[#out].code,
    scope = "openid profile email offline_access", audience = "https://api.example.com" })
end

--- Two logins on either side of a key rotation, for the credentials manager's ordering specs:
-- a client (`opts` merged, JWKS refetch allowed at once) and a manager on a file store under
-- tmpdir(tag); `old` signed with the kid the client holds, `new` with one it does not, whose
-- check fetches the JWKS again, `delay_ms` slowly. @return c, cm, path, old, new
function _M.rotated_logins(emu, server, clock, o)
  local copts = { jwks_min_refetch = 0.001 }
  for k, v in pairs(o.client or {}) do copts[k] = v end
  local c = _M.client(server, copts)
  local path = _M.tmpdir(o.tag) .. "/credentials"
  local credentials = require "auth0.credentials"
  local cm = credentials.new(c, { store = credentials.file_store { path = path }, now = clock.now })
  local old = _M.login(emu, c, o.old)
  assert(c:jwks())   -- the keys held: the old kid only
  require("socket").sleep(0.01)   -- past jwks_min_refetch: an unknown kid may fetch again
  assert(emu.control("POST", "/keys", { rotate = true, keep_old = true }))
  local new = _M.login(emu, c, o.new)   -- signed with a kid the client does not hold yet
  assert(emu.control("POST", "/faults", { rules = { { kind = "delay", ms = o.delay_ms, path = "/.well-known/jwks.json" } } }))
  return c, cm, path, old, new
end

--- Polls `c` until `pred()`; false after `secs` (20) seconds.
function _M.poll_until(c, pred, secs)
  local deadline = os.time() + (secs or 20)
  while not pred() do
    if os.time() >= deadline then return false end
    c:poll(20)
  end
  return true
end

--- package.cpath for a child process that arms A0_STORE_FAULT: this pass's build swapped for
-- its twin compiled with the fault points (`make test-build`, run here once per process so it
-- is never older than the sources; the ASan build has them itself).
local test_build_made
function _M.fault_cpath()
  local cp = package.cpath:gsub("build/lua5%.4/", "build/test/lua5.4/"):gsub("build/luajit/", "build/test/luajit/")
  local dir = cp:match("(build/test/[%w.]+)/")
  if dir and not test_build_made then
    test_build_made = true
    _M.tool("make -s test-build >/dev/null")
  end
  local f = dir and io.open(dir .. "/auth0/core.so", "rb")
  assert(not dir or f, dir and (dir .. " is missing: run make test-build"))
  if f then f:close() end
  return cp
end

return _M
