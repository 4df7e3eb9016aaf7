-- Driver of bench/instructions.sh: N passwordless logins (start + login) one way, against the
-- canned nginx the script started.
-- Usage: [USERS=M] lua5.4 bench/instr_drive.lua ours|core N BASE_URL CA_FILE
local root = (arg and arg[0] or ""):match("^(.*)/bench/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/lua5.4/?.so;" .. package.cpath

local auth0 = require "auth0"
local way, n, base, ca = arg[1], tonumber(arg[2]), arg[3], arg[4]
assert((way == "ours" or way == "core") and n and base and ca,
  "usage: lua5.4 bench/instr_drive.lua ours|core N BASE_URL CA_FILE")
local CLIENT_ID = "emu-native"
local client = auth0.new { base_url = base, ca_file = ca, client_id = CLIENT_ID }
local format = string.format
-- the same addresses, widths and calls as bench/passwordless.lua's ways. The addresses are
-- made first, as there, and as many in every run (USERS, at least N): the difference of two
-- runs is then the logins alone.
local EMAILS = {}
for i = 1, math.max(n, tonumber(os.getenv("USERS")) or 0) do EMAILS[i] = format("bench-%08d@example.com", i) end
if way == "ours" then
  for i = 1, n do
    assert(client:passwordless_start { connection = "email", email = EMAILS[i] })
  end
  for i = 1, n do
    assert(client:passwordless_login { realm = "email", username = EMAILS[i], otp = "123456" })
  end
else
  local core = client._core
  for i = 1, n do
    assert(core:request("passwordless_start", { client_id = CLIENT_ID, connection = "email",
      email = EMAILS[i], send = "code" }) == 200)
  end
  for i = 1, n do
    assert(core:request("passwordless_login", { client_id = CLIENT_ID, username = EMAILS[i],
      realm = "email", otp = "123456", scope = "openid profile email" }) == 200)
  end
end
client:close()
