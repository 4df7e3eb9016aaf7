-- `auth0 token` as cron jobs of the same minute run it: no terminal (setsid, stdin from
-- /dev/null, no TERM), HOME unset and XDG_STATE_HOME set, four at once with an expired access
-- token. Exactly one refresh, all print the same new token, status 0, no secret on stderr.
local emu = require "spec.support.emulator"
local auth0 = require "auth0"
local cjson = require("cjson.safe").new()
local util = require "spec.support.util"
local cli = require "spec.support.cli"
local q, read = util.q, util.read

if not util.first_pass() then
  describe("auth0 token from cron", function() pending("runs once, in the Lua 5.4 pass") end)
  return
end

describe("auth0 token from cron", function()
  local srv, work
  local function env(extra)
    local e = { AUTH0_BASE_URL = srv.base_url, AUTH0_CA_FILE = srv.ca_file, AUTH0_CLIENT_ID = "emu-native" }
    for k, v in pairs(extra or {}) do e[k] = v end
    return e
  end
  local function codes(to)
    local out = {}
    for _, m in ipairs(emu.control("GET", "/outbox?to=" .. auth0.core.pct_escape(to)).messages) do
      if m.code then out[#out + 1] = m.code end
    end
    return out
  end

  setup(function()
    srv = emu.start()
    work = io.popen("mktemp -d /tmp/auth0-cron-spec.XXXXXX"):read("l")
  end)
  teardown(function() if work then os.execute("rm -rf " .. q(work)) end end)

  it("four jobs at once with an expired token: one refresh, all print it", function()
    emu.reset()
    -- log in through a FIFO, as cli_spec does
    local base = work .. "/login"
    os.execute("mkfifo " .. q(base .. ".fifo"))
    os.execute(("(%s bin/auth0 login --email cron@example.com <%s >%s.out 2>%s.err; echo $? >%s.rc) &")
      :format(cli.env(work, env()), q(base .. ".fifo"), base, base, base))
    local fifo = assert(io.open(base .. ".fifo", "w"))
    local code
    for _ = 1, 400 do code = codes("cron@example.com")[1]; if code then break end; auth0.core.sleep(0.05) end
    assert.is_string(code)
    fifo:write(code, "\n"); fifo:close()
    for _ = 1, 400 do if read(base .. ".rc") then break end; auth0.core.sleep(0.05) end
    assert.equal(0, tonumber(read(base .. ".rc")), read(base .. ".err"))
    local rt = cjson.decode(read(work .. "/state/lua-auth0/default/credentials")).refresh_token
    assert.is_string(rt)

    -- the access token expired a minute ago (the command's own clock)
    local path = work .. "/state/lua-auth0/default/credentials"
    local text = read(path)
    local n
    text, n = text:gsub('"expires_at":%s*%d+', '"expires_at":' .. (os.time() - 60))
    assert.equal(1, n, text:gsub('"[%w_-]+%.[%w_.-]+"', '"..."'))
    util.write(path, text)
    local before = emu.control("GET", "/refresh_tokens").refreshes
    -- cron's environment: no HOME, no TERM, a new session, nothing on stdin
    local e = cli.env(work, env({ HOME = false, NO_COLOR = false }))
    local jobs = {}
    for i = 1, 4 do
      local b = work .. "/cron" .. i
      jobs[i] = b
      os.execute(("(setsid %s bin/auth0 token </dev/null >%s.out 2>%s.err; echo $? >%s.rc) &")
        :format(e, b, b, b))
    end
    for _, b in ipairs(jobs) do
      for _ = 1, 600 do if read(b .. ".rc") then break end; auth0.core.sleep(0.05) end
    end
    local outs = {}
    for i, b in ipairs(jobs) do
      local rc, out, err = tonumber(read(b .. ".rc")), read(b .. ".out"), read(b .. ".err")
      assert.same({ 0, "" }, { rc, err }, "job " .. i)
      assert.matches("^[%w_-]+%.[%w_-]+%.[%w_-]+\n$", out)
      assert.is_nil(err:find(rt, 1, true))
      outs[i] = out
    end
    for i = 2, #outs do assert.equal(outs[1], outs[i]) end
    assert.equal(before + 1, emu.control("GET", "/refresh_tokens").refreshes)
    assert.not_equal(rt, cjson.decode(read(work .. "/state/lua-auth0/default/credentials")).refresh_token)
  end)
end)
