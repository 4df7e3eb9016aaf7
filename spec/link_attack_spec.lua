-- Hostile inputs to the magic-link completion and the loopback listener (second attack
-- review of issue #16): forged callbacks, hostile HTTP requests, connections that hold the
-- listener. Real HTTPS to the emulator; real sockets to the listener.
local auth0 = require "auth0"
local emu = require "spec.support.emulator"

local server

local function client(opts)
  local o = { base_url = server.base_url, ca_file = server.ca_file, client_id = "emu-native", timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return auth0.new(o)
end

describe("passwordless_complete_link against forged callbacks", function()
  setup(function() server = emu.start() end)
  before_each(function() emu.reset() end)

  local link = { state = "the-state-of-this-login", nonce = "n", code_verifier = "v",
                 redirect_uri = "http://127.0.0.1:1/callback" }

  -- RFC 6749 4.1.2.1: an error answer carries the state too; one without this login's state
  -- was not sent by the server for this login (login CSRF, or an app told to give up).
  it("checks the state of an error callback before believing the error", function()
    local c = client()
    for _, url in ipairs({
      "http://127.0.0.1:1/callback?error=access_denied&error_description=forged",
      "http://127.0.0.1:1/callback?error=mfa_required&state=another",
    }) do
      local t, err = c:passwordless_complete_link(url, link)
      assert.is_nil(t)
      assert.equal("invalid_state", err.code)
      local got
      c:passwordless_complete_link(url, link, function(tt, e) got = { tt, e } end)
      c:poll(0)
      assert.is_nil(got[1])
      assert.equal("invalid_state", got[2].code)
    end
    -- the server's own error, with the state, still comes through
    local _, err = c:passwordless_complete_link(
      "http://127.0.0.1:1/callback?error=access_denied&error_description=no&state=" .. link.state, link)
    assert.equal("access_denied", err.code)
    c:close()
  end)
end)
