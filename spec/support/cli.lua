--- Runs the `auth0` command (bin/auth0) the way a user's shell would, for spec/cli*_spec.lua:
-- a clean environment (`env -i`) whose HOME and XDG folders are the test's own.
local util = require "spec.support.util"
local q, read, write = util.q, util.read, util.write

local _M = {}

--- The `env -i ...` prefix: HOME and the XDG folders under `work`, NO_COLOR, this process's
-- LUA_PATH/LUA_CPATH and PATH, then `extra` (a value of false leaves the variable out).
function _M.env(work, extra)
  local e = { HOME = work, XDG_CONFIG_HOME = work .. "/config", XDG_STATE_HOME = work .. "/state",
    NO_COLOR = "1", LUA_PATH = os.getenv("LUA_PATH"), LUA_CPATH = os.getenv("LUA_CPATH") }
  for k, v in pairs(extra or {}) do e[k] = v end
  local parts = { "env -i PATH=" .. q(os.getenv("PATH")) }
  for k, v in pairs(e) do if v then parts[#parts + 1] = k .. "=" .. q(v) end end
  return table.concat(parts, " ")
end

local n = 0
--- Runs `auth0 args` to the end with `stdin` (a string) on its standard input; returns the
-- exit status, stdout and stderr.
function _M.run(work, args, extra, stdin)
  n = n + 1
  local base = work .. "/run" .. n
  write(base .. ".in", stdin or "")
  os.execute(("%s bin/auth0 %s <%s >%s.out 2>%s.err; echo $? >%s.rc"):format(_M.env(work, extra), args,
    q(base .. ".in"), base, base, base))
  return tonumber(read(base .. ".rc")), read(base .. ".out"), read(base .. ".err")
end

return _M
