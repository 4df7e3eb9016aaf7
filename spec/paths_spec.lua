-- Values placed in a URL path stay inside their segment (issue 11, item 5): the exact
-- request line is read by a tiny loopback HTTP server in this process.
local auth0 = require "auth0"
local socket = require "socket"

local server, port
local function new_client()
  return auth0.new { base_url = "http://127.0.0.1:" .. port, client_id = "c", retries = 0 }
end

-- Runs `start(cb)` (a non-blocking call) and serves it: returns the request line received.
local function request_line(c, start)
  local line, done
  start(function() done = true end)
  local deadline = socket.gettime() + 10
  while not done and socket.gettime() < deadline do
    c:poll(5)
    local conn = server:accept()
    if conn then
      -- the client sends from its polls: read without blocking, polling in between
      conn:settimeout(0)
      local buf = ""
      while not buf:find("\r\n\r\n", 1, true) and socket.gettime() < deadline do
        local data, err, partial = conn:receive(4096)
        buf = buf .. (data or partial or "")
        if err == "closed" then break end
        c:poll(5)
      end
      line = buf:match("^([^\r\n]*)")
      conn:send("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
      conn:close()
    end
  end
  assert.is_true(done)
  return line
end

describe("values in URL paths", function()
  setup(function()
    server = assert(socket.bind("127.0.0.1", 0))
    server:settimeout(0)
    port = select(2, server:getsockname())
  end)
  teardown(function() server:close() end)

  local CASES = {
    { "abc", "abc" },
    { "sms|dev_1", "sms%7Cdev_1" },
    { "a/b", "a%2Fb" },
    { "a b?c#d", "a%20b%3Fc%23d" },
    { "../x", "..%2Fx" },
    { "%2e%2e", "%252e%252e" },
    { "...", "..." },
    { "\195\169", "%C3%A9" },
    { "a;b=c&d", "a%3Bb%3Dc%26d" },
  }
  for _, case in ipairs(CASES) do
    it("mfa_delete_authenticator(" .. ("%q"):format(case[1]) .. ") sends " .. case[2], function()
      local c = new_client()
      local line = request_line(c, function(cb) return c:mfa_delete_authenticator("tok", case[1], cb) end)
      assert.equal("DELETE /mfa/authenticators/" .. case[2] .. " HTTP/1.1", line)
      c:close()
    end)
  end

  it("\".\" and \"..\" are misuse and send nothing", function()
    local c = new_client()
    for _, id in ipairs({ ".", ".." }) do
      local ok, err = pcall(c.mfa_delete_authenticator, c, "tok", id)
      assert.is_false(ok)
      assert.equal("bad argument #2 to 'mfa_delete_authenticator' (authenticator_id must not be . or ..)",
        err:gsub("^[^:]+:%d+: ", ""))
      assert.equal(0, c:stats().requests)
    end
    c:close()
  end)

  it("the engine refuses dot segments for any path argument", function()
    local core = require "auth0.core"
    local cc = core.client { base_url = "http://127.0.0.1:" .. port }
    for _, seg in ipairs({ ".", ".." }) do
      local ok, err = pcall(cc.start, cc, "mfa_delete_authenticator", nil, { bearer = "t", path_arg = seg })
      assert.is_false(ok)
      assert.truthy(err:find("must not be a dot segment", 1, true))
    end
    cc:register_endpoint("sub", { method = "GET", path = "/x/", verbatim = true })
    for _, seg in ipairs({ "a/../b", "..", "a/.", "%2e%2E/b", "a/.%2e" }) do
      local ok = pcall(cc.start, cc, "sub", nil, { path_arg = seg })
      assert.is_false(ok, seg)
    end
    cc:close()
  end)
end)
