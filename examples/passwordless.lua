-- Passwordless login with an email code, an SMS code and an e-mail magic link (finished by
-- a loopback listener on 127.0.0.1; with the emulator, curl "clicks" the link).
--   make demo                                   -- against the bundled emulator (nginx, TLS)
--   AUTH0_DOMAIN=tenant.eu.auth0.com AUTH0_CLIENT_ID=... lua5.4 examples/passwordless.lua
--       -- against a real tenant; asks for the codes on the terminal
--       -- (AUTH0_EMAIL and AUTH0_PHONE choose the recipients)
local auth0 = require "auth0"
local jwt = require "auth0.jwt"

local function short(s)
  if type(s) ~= "string" then return tostring(s) end
  return #s > 16 and (s:sub(1, 8) .. "..." .. s:sub(-4) .. " (" .. #s .. " chars)") or "***"
end

local function show_tokens(client, tokens)
  print(("  token_type=%s expires_in=%s scope=%q"):format(tokens.token_type, tokens.expires_in, tokens.scope))
  print("  access_token  " .. short(tokens.access_token))
  print("  id_token      " .. short(tokens.id_token))
  if tokens.refresh_token then print("  refresh_token " .. short(tokens.refresh_token)) end
  if tokens.id_token then
    local claims, err = client:verify_id_token(tokens.id_token)
    if not claims then
      print("  ID token check FAILED: " .. tostring(err))
      claims = assert(jwt.decode(tokens.id_token)).payload
    else
      print("  ID token signature and claims verified against the tenant's JWKS")
    end
    local keys = {}
    for k in pairs(claims) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
      print(("    %-15s %s"):format(k, k == "nonce" and short(claims[k]) or tostring(claims[k])))
    end
  end
end

local domain, client_id = os.getenv("AUTH0_DOMAIN"), os.getenv("AUTH0_CLIENT_ID")
local server, control, client
if domain and client_id then
  client = auth0.new { domain = domain, client_id = client_id, client_secret = os.getenv("AUTH0_CLIENT_SECRET") }
  print("talking to the real tenant " .. domain)
else
  server = assert(require("auth0.emulator.server").start {})
  control = require("auth0.emulator.client").new { base_url = server.base_url, ca_file = server.ca_file }
  client = auth0.new { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native" }
  print("emulator running at " .. server.base_url .. " (CA " .. server.ca_file .. ")")
end

local function read_code(to)
  if control then
    local code = assert(control:last_code(to))
    print("  the emulator delivered the code " .. code .. " to " .. to)
    return code
  end
  io.write("  code received at " .. to .. ": ")
  io.flush()
  return (io.read("l") or ""):match("%d+")
end

local function login(connection, to)
  print(("\n== %s code login for %s"):format(connection, to))
  local field = connection == "sms" and "phone_number" or "email"
  local sent, err = client:passwordless_start { connection = connection, [field] = to, send = "code" }
  if not sent then error("could not send the code: " .. tostring(err), 0) end
  print("  code sent to " .. to)
  local tokens
  tokens, err = client:passwordless_login { realm = connection, username = to, otp = read_code(to),
    scope = "openid profile email phone offline_access" }
  if not tokens then error("login failed: " .. tostring(err), 0) end
  print("  logged in")
  show_tokens(client, tokens)
  return tokens
end

-- A magic link opened in the browser of this computer: the redirect comes back to a
-- loopback listener (the application must allow http://127.0.0.1/callback as a callback URL).
local function login_link(to)
  print("\n== magic link login for " .. to)
  local lb = assert(auth0.loopback { port = 0, timeout = 120 })
  local sent, link = client:passwordless_start { connection = "email", email = to, send = "link",
    redirect_uri = lb.redirect_uri }
  if not sent then error("could not send the link: " .. tostring(link), 0) end
  lb.state = link.state
  if control then
    local url = control:outbox(to)
    url = url[#url].link
    print("  the emulator delivered a link to " .. to .. "; curl clicks it (following the redirect)")
    os.execute(("curl -s -L -o /dev/null --cacert '%s' '%s' &"):format(server.ca_file, url))
  else
    print("  open the link sent to " .. to .. " in a browser on this computer")
  end
  local tokens, done
  lb:attach(client, function(url, lerr)
    if not url then done = lerr; return end
    print("  the browser came back to " .. lb.redirect_uri)
    client:passwordless_complete_link(url, link, function(t, cerr) tokens, done = t, cerr or true end)
  end)
  while not done do client:poll(100) end
  lb:close()
  if not tokens then error("link login failed: " .. tostring(done), 0) end
  print("  logged in (state, PKCE and nonce checked)")
  show_tokens(client, tokens)
end

local ok, err = pcall(function()
  login("email", os.getenv("AUTH0_EMAIL") or "alice@example.com")
  login("sms", os.getenv("AUTH0_PHONE") or "+15551234567")
  if control then assert(control:post("callbacks", { client_id = "emu-native", callbacks = { "http://127.0.0.1/callback" } })) end
  login_link(os.getenv("AUTH0_EMAIL") or "alice@example.com")
  print(("\n%d requests over %d TLS connection(s)"):format(client:stats().requests, client:stats().connects))
end)
client:close()
if control then control:close() end
if server then server:stop() end
if not ok then
  io.stderr:write("demo failed: ", tostring(err), "\n")
  os.exit(1)
end
