--- Spec helper: one shared emulator under nginx per busted run, started lazily and stopped when
-- the Lua state closes (busted exits with os.exit(code, true)). nginx also watches this
-- process and stops itself if it dies, and stale servers of dead runs are killed on start.
--   local emu = require "spec.support.emulator"
--   local srv = emu.start()                   -- { base_url, ca_file, control_url, pid, ... }
--   local body, status = emu.control("POST", "/clock", { advance = 60 })
--   emu.reset()
local server = require "auth0.emulator.server"
local cjson = require("cjson.safe").new()

local _M = {}

local REGISTRY = "/tmp/lua-auth0-spec-emulators.txt"
-- busted insulates spec files (modules loaded by a file are dropped after it), so the shared
-- server lives in the Lua registry: one per process, finalized when the state closes.
local STASH = "lua-auth0.spec.emulator"
local reg = debug.getregistry()
local shared = reg[STASH] and reg[STASH].server

local function read_lines(path)
  local f = io.open(path, "r")
  if not f then return {} end
  local t = {}
  for line in f:lines() do t[#t + 1] = line end
  f:close()
  return t
end

-- Kills servers whose owning Lua process is gone and rewrites the registry with the rest
-- (minus the entry of nginx `drop`, plus the line `extra`).
local function reap_stale(extra, drop)
  local keep = {}
  for _, line in ipairs(read_lines(REGISTRY)) do
    local owner, pid, prefix = line:match("^(%d+) (%d+) (%S+)$")
    if owner and pid ~= drop then
      if server.alive(owner) then
        keep[#keep + 1] = line
      else
        local cmdline = io.open("/proc/" .. pid .. "/cmdline", "rb")
        local cmd = cmdline and cmdline:read("*a") or ""
        if cmdline then cmdline:close() end
        if cmd:find("nginx", 1, true) then os.execute("kill " .. pid .. " 2>/dev/null") end
        if prefix:match("^/tmp/auth0%-emulator%.") then os.execute("rm -rf '" .. prefix .. "'") end
      end
    end
  end
  if extra then keep[#keep + 1] = extra end
  local f = io.open(REGISTRY, "w")
  if f then
    f:write(table.concat(keep, "\n"), #keep > 0 and "\n" or "")
    f:close()
  end
end

-- Stops `srv` (idempotent) and forgets it if it is the shared one.
local function stop_server(srv)
  if reg[STASH] and reg[STASH].server == srv then reg[STASH] = nil end
  if shared == srv then shared = nil end
  if srv.pid then
    local pid = tostring(srv.pid)
    srv:stop()
    reap_stale(nil, pid)
  end
end

--- Starts the shared server (once per process) and returns it.
-- @tparam[opt] table opts passed to `auth0.emulator.server.start` on the first call only
function _M.start(opts)
  shared = shared or (reg[STASH] and reg[STASH].server)
  if shared then return shared end
  reap_stale()
  opts = opts or {}
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local me = server.self_pid()
  o.owner_pid = o.owner_pid or me
  local srv = assert(server.start(o))
  shared = srv
  reap_stale(string.format("%d %d %s", me or 0, srv.pid, srv.prefix))
  -- A finalizer that runs when the Lua state closes: tables take __gc in 5.2+, LuaJIT needs
  -- a newproxy userdata.
  local function on_close() stop_server(srv) end
  local newproxy = rawget(_G, "newproxy")
  local sentinel
  if newproxy then
    sentinel = newproxy(true)
    getmetatable(sentinel).__gc = on_close
  else
    sentinel = setmetatable({}, { __gc = on_close })
  end
  reg[STASH] = { server = srv, sentinel = sentinel }
  return srv
end

--- Stops the shared server now (a later `start` starts a new one).
function _M.stop()
  local srv = shared or (reg[STASH] and reg[STASH].server)
  if srv then stop_server(srv) end
end

--- Calls the control API over HTTPS (verified against the server's CA).
-- @tparam string method e.g. "GET", "POST"
-- @tparam string path below /__emulator, e.g. "/outbox?to=a@b.c" (a leading "/__emulator" is allowed)
-- @tparam[opt] table body encoded as JSON
-- @return decoded JSON (or the raw text), HTTP status
function _M.control(method, path, body)
  local https = require "ssl.https"
  local ltn12 = require "ltn12"
  local srv = _M.start()
  if path:sub(1, 12) ~= "/__emulator/" then path = "/__emulator" .. path end
  local data = body and assert(cjson.encode(body)) or nil
  local chunks = {}
  local headers = data and { ["content-type"] = "application/json", ["content-length"] = tostring(#data) } or {}
  headers.authorization = "Bearer " .. srv.control_token   -- the control API's token of this start
  local ok, status = https.request{
    url = srv.base_url .. path, method = method, cafile = srv.ca_file, verify = "peer",
    headers = headers,
    source = data and ltn12.source.string(data) or nil,
    sink = ltn12.sink.table(chunks),
  }
  assert(ok, "control API request failed: " .. tostring(status))
  local text = table.concat(chunks)
  local decoded = cjson.decode(text)
  if decoded == nil then decoded = text end
  return decoded, status
end

--- Resets the shared server's state to the defaults. @return true
function _M.reset()
  local _, status = _M.control("POST", "/reset")
  assert(status == 200, "emulator reset failed: " .. tostring(status))
  return true
end

return _M
