--- Process and file helpers shared by the emulator's launcher and the OpenResty example's:
-- plain Lua 5.1-5.4, LuaSocket optional.
local has_socket, socket = pcall(require, "socket")

local type, tostring = type, tostring

local _M = {}

--- A string quoted for /bin/sh.
function _M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs a shell command; true when it exited 0. (os.execute returns a number in Lua
-- 5.1/LuaJIT and (true|nil, how, code) in 5.2+.)
function _M.execute(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end

--- A shell command's standard output, or nil.
function _M.capture(cmd)
  local p = io.popen(cmd, "r")
  if not p then return nil end
  local out = p:read("*a")
  p:close()
  return out
end

--- A file's bytes, or nil.
function _M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes a file. @return true | nil, err
function _M.write_file(path, data)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:write(data)
  f:close()
  return true
end

function _M.sleep(seconds)
  if has_socket then socket.sleep(seconds) else _M.execute("sleep " .. seconds) end
end

return _M
