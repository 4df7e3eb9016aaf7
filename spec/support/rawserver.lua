--- A raw HTTP/1.1 server on loopback for specs that need answers no real server gives: a child
-- process (so that blocking calls can be used) that serves canned bytes in order, one answer per
-- request over keep-alive connections, and records what it was sent.
local util = require "spec.support.util"

local _M = {}

-- The interpreter busted runs under (its arg[-n]): the server runs under the same.
local LUA = arg and arg[-1] or "lua5.4"
for i = -1, -10, -1 do if arg[i] == nil then break end LUA = arg[i] end
_M.LUA = LUA

-- The server: serves the answers of `answers` (a Lua file returning a list of raw answers)
-- one per request over keep-alive connections; appends each request (head and body) to `log`.
local SERVER = [=[
local socket = require "socket"
local answers, log, portfile = dofile(arg[1]), arg[2], arg[3]
local s = assert(socket.bind("127.0.0.1", 0))
local _, port = s:getsockname()
local f = io.open(portfile .. ".tmp", "w"); f:write(port); f:close()
os.rename(portfile .. ".tmp", portfile)
s:settimeout(20)
local i = 0
while i < #answers do
  local c = s:accept()
  if not c then break end
  c:settimeout(20)
  while i < #answers do
    local head, line = {}, c:receive("*l")
    if not line then break end
    local len = 0
    while line and line ~= "" do
      head[#head + 1] = line
      local n = line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
      if n then len = tonumber(n) end
      line = c:receive("*l")
    end
    local body = len > 0 and c:receive(len) or ""
    local lf = io.open(log, "a")
    lf:write(table.concat(head, "\n"), "\n\n", body, "\n\0\n")
    lf:close()
    i = i + 1
    c:send(answers[i])
  end
  c:close()
end
]=]

function _M.http(status, headers, body)
  body = body or "{}"
  local t = { "HTTP/1.1 " .. status .. "\r\n" }
  for _, h in ipairs(headers or {}) do t[#t + 1] = h .. "\r\n" end
  t[#t + 1] = "Content-Length: " .. #body .. "\r\n\r\n" .. body
  return table.concat(t)
end

--- Starts a server for `answers` (raw HTTP answers); @return the base URL, and a function giving
-- the requests seen (head and body of each, in order)
function _M.serve(answers, tag)
  local dir = util.tmpdir(tag or "raw")
  local parts = {}
  for i, a in ipairs(answers) do parts[i] = string.format("%q", a) end
  util.write(dir .. "/answers.lua", "return {" .. table.concat(parts, ",") .. "}")
  util.write(dir .. "/server.lua", SERVER)
  os.execute("env -u LD_PRELOAD " .. LUA .. " " .. dir .. "/server.lua " .. dir .. "/answers.lua " .. dir ..
    "/log " .. dir .. "/port >/dev/null 2>&1 &")
  local port
  for _ = 1, 200 do
    port = util.read(dir .. "/port")
    if port then break end
    os.execute("sleep 0.05")
  end
  assert(port, "the raw server did not start")
  local function seen()
    local out = {}
    for req in (util.read(dir .. "/log") or ""):gmatch("(.-)\n%z\n") do out[#out + 1] = req end
    return out
  end
  return "http://127.0.0.1:" .. port, seen
end

return _M
