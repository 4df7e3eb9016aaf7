--- Foreground runner for `make emulator`: starts the emulator under nginx over TLS, prints how
-- to reach it and blocks until Ctrl-C (or until nginx exits), then stops nginx.
--   lua5.4 lua/auth0/emulator/cli.lua [--port N]
local server = require "auth0.emulator.server"
local has_socket, socket = pcall(require, "socket")

local args = rawget(_G, "arg") or {}
local port
for i = 1, #args do
  if args[i] == "--port" then port = tonumber(args[i + 1]) end
end

local srv, err = server.start{ port = port, owner_pid = server.self_pid() }
if not srv then
  io.stderr:write("emulator: ", tostring(err), "\n")
  os.exit(1)
end

io.stdout:write(table.concat({
  "lua-auth0 emulator running (nginx pid " .. srv.pid .. ")",
  "  base_url     " .. srv.base_url,
  "  ca_file      " .. srv.ca_file,
  "  control_url  " .. srv.control_url,
  "  issuer       " .. srv.base_url .. "/",
  "  clients      emu-native (public), emu-confidential / emu-confidential-secret",
  "  connections  email, sms     API audience https://api.example.com",
  "  token        " .. srv.control_token .. "  (control API bearer token, also in " .. srv.control_token_file .. ")",
  "  outbox       curl --cacert " .. srv.ca_file .. " -H \"Authorization: Bearer $(cat " .. srv.control_token_file
    .. ")\" " .. srv.control_url .. "/outbox",
  "Ctrl-C to stop.", "" }, "\n"))
io.stdout:flush()

local ok = pcall(function()
  while server.alive(srv.pid) do
    if has_socket then socket.sleep(0.5) else os.execute("sleep 0.5") end
  end
end)
srv:stop()
io.stdout:write(ok and "emulator: nginx exited\n" or "\nemulator: stopped\n")
