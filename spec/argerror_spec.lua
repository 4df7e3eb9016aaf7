-- Misuse raises in luaL_argerror's form (issue 11, item 9): `bad argument #N to 'fn' (...)`,
-- and for a field of a table argument `(field 'x': ...)`, at the caller's line.
local auth0 = require "auth0"
local jwt = require "auth0.jwt"
local flow = require "auth0.flow"

local c = auth0.new { base_url = "https://127.0.0.1:9", client_id = "c", client_secret = "s" }

-- fn name, expected message (after "bad argument "), call
local CASES = {
  { "#1 to 'new' (options table expected, got nil)", function() local r = auth0.new(); return r end },
  { "#1 to 'passwordless_start' (table expected, got nil)", function() local r = c:passwordless_start(); return r end },
  { "#1 to 'passwordless_start' (field 'email': string expected, got number)",
    function() local r = c:passwordless_start { connection = "email", email = 42 }; return r end },
  { "#1 to 'passwordless_login' (table expected, got string)", function() local r = c:passwordless_login("x"); return r end },
  { "#1 to 'passwordless_login' (field 'otp': string expected, got nil)",
    function() local r = c:passwordless_login { realm = "email", username = "a@b.co" }; return r end },
  { "#1 to 'refresh' (field 'refresh_token': string expected, got boolean)",
    function() local r = c:refresh { refresh_token = true }; return r end },
  { "#1 to 'mfa_associate' (table expected, got nil)", function() local r = c:mfa_associate(); return r end },
  { "#1 to 'mfa_challenge' (field 'mfa_token': string expected, got nil)", function() local r = c:mfa_challenge {}; return r end },
  { "#1 to 'mfa_verify' (field 'mfa_token': string expected, got number)",
    function() local r = c:mfa_verify { mfa_token = 1, otp = "1" }; return r end },
  { "#1 to 'mfa_poll' (table expected, got nil)", function() local r = c:mfa_poll(); return r end },
  { "#2 to 'verify_id_token' (table expected, got string)", function() local r = c:verify_id_token("a.b.c", "x"); return r end },
  { "#1 to 'poll' (", function() local r = c:poll("x"); return r end },
  { "#1 to 'verify_id_token' (", function() local r = jwt.verify_id_token(42, {}); return r end },
  { "#2 to 'verify_id_token' (", function() local r = jwt.verify_id_token("a.b.c", { issuer = 1, client_id = "c" }); return r end },
  { "#1 to 'totp' (", function() local r = auth0.totp(42); return r end },
  { "#2 to 'totp' (", function() local r = auth0.totp("JBSWY3DPEHPK3PXP", { digits = 5 }); return r end },
  { "#2 to 'hotp' (", function() local r = auth0.hotp("JBSWY3DPEHPK3PXP", -1); return r end },
  { "#1 to 'decode' (", function() local r = jwt.decode(42); return r end },
  { "#2 to 'login' (max_wait must be a number of seconds in (0, 86400])",
    function() local r = flow.login(c, { connection = "email", email = "a@b.co", max_wait = -1 }); return r end },
  -- every entry point of auth0.flow (issue 11: it raised "auth0.flow: ..." before)
  { "#1 to 'login' (auth0.Client expected, got nil)", function() local r = flow.login(nil, {}); return r end },
  { "#2 to 'login' (table expected, got nil)", function() local r = flow.login(c); return r end },
  { "#2 to 'login' (field 'email': string expected, got number)",
    function() local r = flow.login(c, { connection = "email", email = 1 }); return r end },
  { "#2 to 'login' (unknown option 'x')",
    function() local r = flow.login(c, { connection = "email", email = "a@b.co", x = 1 }); return r end },
  { "#1 to 'mfa' (auth0.Client expected, got string)", function() local r = flow.mfa("c", {}); return r end },
  { "#2 to 'mfa' (table expected, got nil)", function() local r = flow.mfa(c); return r end },
  { "#2 to 'mfa' (field 'mfa_token': string expected, got boolean)",
    function() local r = flow.mfa(c, { mfa_token = true }); return r end },
  { "#3 to 'mfa' (field 'scope': string expected, got number)",
    function() local r = flow.mfa(c, { mfa_token = "t" }, { scope = 1 }); return r end },
  { "#1 to 'run' (auth0.Client expected, got nil)", function() local r = flow.run(nil, {}, {}); return r end },
  { "#2 to 'run' (table expected, got nil)", function() local r = flow.run(c, nil, {}); return r end },
  { "#3 to 'run' (table expected, got nil)",
    function() local r = flow.run(c, { connection = "email", email = "a@b.co" }); return r end },
  { "#3 to 'run' (field 'on_wait': function expected, got string)",
    function() local r = flow.run(c, { mfa_token = "t" }, { on_wait = "x" }); return r end },
  { "#1 to 'resume' (auth0.Client expected, got nil)", function() local r = flow.resume(nil, {}); return r end },
  { "#2 to 'resume' (the table from f:serialize() expected, got string)",
    function() local r = flow.resume(c, "x"); return r end },
  -- the magic-link completion names the argument a field or a callback belongs to
  { "#2 to 'passwordless_complete_link' (field 'state': string expected, got nil)",
    function() local r = c:passwordless_complete_link("https://x/cb?code=1", { nonce = "n" }); return r end },
  { "#2 to 'passwordless_complete_link' (field 'nonce': string expected, got number)",
    function() local r = c:passwordless_complete_link("https://x/cb?code=1", { state = "s", nonce = 1 }); return r end },
  { "#3 to 'passwordless_complete_link' (callback must be a function)",
    function() local r = c:passwordless_complete_link("https://x/cb", { state = "s", nonce = "n" }, 1); return r end },
  { "#3 to 'passwordless_login_link' (callback must be a function)",
    function() local r = c:passwordless_login_link("https://x/", {}, 1); return r end },
  -- the wire checks are the C core's (NUL, UTF-8, CR/LF, caps): its raise names this line too
  { "#1 to 'passwordless_login' (field 'username': contains a NUL byte)",
    function() local r = c:passwordless_login { realm = "email", username = "a\0b@x.io", otp = "1" }; return r end },
  { "#1 to 'passwordless_login' (field 'otp': not valid UTF-8)",
    function() local r = c:passwordless_login({ realm = "email", username = "a@x.io", otp = "\255" }, function() end); return r end },
  { "#1 to 'passwordless_start' (field 'language': contains CR or LF)",
    function() local r = c:passwordless_start { connection = "email", email = "a@x.io", language = "en\r\nX: 1" }; return r end },
  { "#2 to 'resume' (attempts_left must be a finite number >= 0)",
    function() local r = flow.resume(c, { version = 1, state = "awaiting_code", attempts_left = 0 / 0 }); return r end },
}

describe("argument errors in Lua's form", function()
  for _, case in ipairs(CASES) do
    it(case[1], function()
      local ok, err = pcall(case[2])
      assert.is_false(ok)
      assert.equal("string", type(err))
      -- the position is the caller's: this file
      assert.matches("^spec/argerror_spec%.lua:%d+: bad argument ", err)
      local msg = err:gsub("^[^:]+:%d+: bad argument ", "")
      assert.equal(case[1], msg:sub(1, #case[1]))
    end)
  end
end)
