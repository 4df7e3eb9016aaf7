--- `auth0 emulator`: the bundled Auth0 emulator in the foreground (until Ctrl-C), with a
-- profile named "emulator" written for it, so that `auth0 --profile emulator login ...`
-- works in another terminal; `auth0 emulator code EMAIL|PHONE` prints the last code the
-- running emulator sent there (for test scripts).
local cli = require "auth0.cli"
local settings = require "auth0.cli.settings"
local term = require "auth0.cli.term"
local EXIT, fail = cli.EXIT, cli.fail

local _M = {}

local function code(s, args)
  local to = args.action[2]
  if not to or args.action[3] then error(fail(EXIT.usage, "usage: auth0 emulator code EMAIL|PHONE"), 0) end
  if not s.base_url then
    error(fail(EXIT.usage, "no emulator: start `auth0 emulator` (it writes the emulator profile) and use --profile emulator"), 0)
  end
  local control = require("auth0.emulator.client").new { base_url = s.base_url, ca_file = s.ca_file }
  local c, err = control:last_code(to)
  if not c then error(fail(EXIT.failure, "no code for " .. to .. (err and (": " .. tostring(err)) or "")), 0) end
  if args.json then cli.print_json { to = to, code = c } else io.write(c, "\n") end
  return EXIT.ok
end

function _M.run(s, args)
  if args.action[1] == "code" then return code(s, args) end
  if args.action[1] then error(fail(EXIT.usage, "unknown emulator action " .. args.action[1]), 0) end
  local server = require "auth0.emulator.server"
  local srv, err = server.start { port = args.port, owner_pid = server.self_pid() }
  if not srv then error(fail(EXIT.failure, "could not start the emulator: " .. tostring(err)), 0) end
  -- `auth0 login --link` on a terminal comes back through http://127.0.0.1:<any port>/callback
  local control = require("auth0.emulator.client").new { base_url = srv.base_url, ca_file = srv.ca_file }
  control:post("callbacks", { client_id = "emu-native", callbacks = { "http://127.0.0.1/callback" } })
  control:close()
  local path, perr = settings.write_profile(os.getenv, "emulator",
    { base_url = srv.base_url, ca_file = srv.ca_file, client_id = "emu-native" })
  if not path then term.say("auth0: no profile written (", perr, ")\n") end
  local info = { base_url = srv.base_url, ca_file = srv.ca_file, control_url = srv.control_url,
    client_id = "emu-native", profile = "emulator", profile_file = path, pid = srv.pid }
  if args.json then cli.print_json(info) else
    io.write(table.concat({
      "lua-auth0 emulator running (nginx pid " .. srv.pid .. ")",
      "  base_url     " .. srv.base_url,
      "  ca_file      " .. srv.ca_file,
      "  control_url  " .. srv.control_url,
      "  clients      emu-native (public), emu-confidential / secret in the control API",
      "  profile      emulator (" .. tostring(path) .. "): auth0 --profile emulator login --email you@example.com",
      "  codes        auth0 --profile emulator emulator code you@example.com",
      "Ctrl-C to stop.", "" }, "\n"))
  end
  io.stdout:flush()
  local ok = pcall(function()
    while server.alive(srv.pid) do require("auth0.core").sleep(0.5) end
  end)
  srv:stop()
  if path then os.remove(path) end
  if not ok then term.say("\nemulator: stopped\n"); return EXIT.interrupted end
  term.say("emulator: nginx exited\n")
  return EXIT.failure
end

return _M
