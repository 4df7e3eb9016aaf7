-- The emulator's control API needs the bearer token of its start, and its nginx worker never
-- runs as root (issue 11, item 8). Against the shared emulator under nginx.
local emu = require "spec.support.emulator"
local https = require "ssl.https"

local function get(srv, path, auth)
  local chunks = {}
  local _, status = https.request {
    url = srv.base_url .. path, cafile = srv.ca_file, verify = "peer",
    headers = auth and { authorization = auth } or {},
    sink = function(c) if c then chunks[#chunks + 1] = c end return 1 end,
  }
  return status, table.concat(chunks)
end

local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

describe("emulator control API", function()
  local srv
  setup(function() srv = emu.start() end)

  it("answers 401 without the bearer token, whatever the path's spelling", function()
    for _, path in ipairs({ "/__emulator/clock", "/__emulator/state", "/__emulator/outbox", "//__emulator/state",
      "/%5F%5Femulator/state", "/x/../__emulator/state", "/__emulator" }) do
      local status, body = get(srv, path)
      assert.equal(401, status, path)
      assert.is_nil(body:find("emu-confidential-secret", 1, true))
      assert.equal(401, (get(srv, path, "Bearer " .. ("0"):rep(48))), path)
      assert.equal(401, (get(srv, path, srv.control_token)), path)   -- no "Bearer "
    end
    assert.equal(200, (get(srv, "/__emulator/state", "Bearer " .. srv.control_token)))
    assert.equal(200, (get(srv, "/.well-known/jwks.json")))       -- the tenant's API needs none
  end)

  it("writes the token 0600 beside the CA file; the control client picks it up", function()
    local dir = srv.ca_file:match("^(.*)/[^/]*$")
    assert.equal(dir .. "/control-token", srv.control_token_file)
    assert.matches("^%x+$", srv.control_token)
    assert.is_true(#srv.control_token >= 32)
    assert.equal(srv.control_token .. "\n", read(srv.control_token_file))
    local mode = io.popen("stat -c %a " .. srv.control_token_file):read("*l")
    assert.equal("600", mode)
    local ctl = require("auth0.emulator.client").new { base_url = srv.base_url, ca_file = srv.ca_file }
    assert.is_table(assert(ctl:get("clock")))
    ctl:close()
    local bad = require("auth0.emulator.client").new { base_url = srv.base_url, ca_file = srv.ca_file, token = "00" }
    local r, err = bad:get("clock")
    assert.is_nil(r)
    assert.truthy(err:find("401", 1, true))
    bad:close()
  end)

  it("never runs the nginx worker as root", function()
    local workers = 0
    for pid in io.popen("ls /proc"):lines() do
      if pid:match("^%d+$") then
        local stat = read("/proc/" .. pid .. "/stat")
        local ppid = stat and stat:match("^%d+ %b() %a (%d+)")
        if ppid == tostring(srv.pid) then
          workers = workers + 1
          local uid = read("/proc/" .. pid .. "/status"):match("\nUid:%s+(%d+)")
          assert.are_not.equal("0", uid)
        end
      end
    end
    assert.is_true(workers >= 1)
  end)
end)
