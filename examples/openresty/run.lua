--- Runs the OpenResty example against the Auth0 emulator, in one command from the repo root:
--   make && make luajit && lua5.4 examples/openresty/run.lua
-- Starts the emulator (nginx + TLS, its own CA), then the example API (another nginx, its
-- own prefix, a free loopback port, worker_processes 2) pointed at it, prints how to log in
-- and waits; Ctrl-C (or killing this process) stops both. Plain http on localhost: the
-- cookie drops Secure (`insecure_cookie`, development only), and the sealing key is random per
-- start (set AUTH0_GATEWAY_KEYS to keep logins across restarts).
local here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]+$") or "."
package.path = here .. "/?.lua;" .. here .. "/../../lua/?.lua;" .. here .. "/../../lua/?/init.lua;" .. package.path

local server = require "auth0.emulator.server"
local launch = require "launch"
local socket = require "socket"

local me = server.self_pid()
local emu = assert(server.start { owner_pid = me })
-- nginx verifies names, not addresses: the emulator's certificate also carries DNS:localhost
local base_url = "https://localhost:" .. emu.port
local api, err = launch.start { base_url = base_url, ca_file = emu.ca_file, owner_pid = me,
  port = tonumber(os.getenv("PORT")), workers = 2, options = "insecure_cookie = true,",
  env = { AUTH0_GATEWAY_KEYS = os.getenv("AUTH0_GATEWAY_KEYS") } }
if not api then emu:stop(); error(err, 0) end

print(("example API: %s   (Auth0 emulator: %s, prefix %s)"):format(api.url, emu.base_url, api.prefix))
print("try:")
print(("  curl -s -c jar -b jar %s/login/start -d '{\"email\":\"alice@example.com\"}'"):format(api.url))
print(("  curl -s --cacert %s -H 'Authorization: Bearer %s' '%s/outbox?to=alice@example.com'   # the code")
  :format(emu.ca_file, emu.control_token, emu.control_url))
print(("  curl -s -c jar -b jar %s/login/verify -d '{\"code\":\"<code>\"}'"):format(api.url))
print("Ctrl-C stops both servers.")
io.stdout:flush()

-- Ctrl-C reaches the nginx masters too (same process group); either way, stop what is left.
pcall(function() -- lua5.4 turns SIGINT into an "interrupted!" error: still clean up below
  while launch.alive(api.pid) and launch.alive(emu.pid) do socket.sleep(0.5) end
end)
api:stop()
emu:stop()
