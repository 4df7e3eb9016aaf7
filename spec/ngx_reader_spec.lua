-- The cosocket transport's reader against a hostile upstream inside a real nginx: endless
-- lines stop at the caps while the worker's memory stays bounded, ambiguous framing is
-- refused, and a connection goes back to the pool only after a complete, well-formed answer.
-- (spec/http1_spec.lua covers the same reader over a fake socket, byte by byte.)
local http = require "socket.http"
local cjson = require("cjson.safe").new()
local server = require "auth0.emulator.server"
local launch = dofile("examples/openresty/launch.lua")

-- The upstream: the path picks the misbehaviour. Endless answers send up to 48 MiB, 64 KiB at
-- a time, and stop as soon as the client has gone.
local HOSTILE = [[
local mode = ngx.var.uri:sub(2)
if mode == "conn" then   -- which request on this connection: 1, 2, ... while it is kept alive
  ngx.header["content-type"] = "application/json"
  return ngx.print(ngx.var.connection_requests)
end
local sock = assert(ngx.req.socket(true))
local function raw(s) return sock:send(s) end
local function endless(head, piece)
  if not raw(head) then return end
  local block = piece:rep(math.floor(65536 / #piece))
  for _ = 1, 48 * 1024 * 1024 / #block do
    if not raw(block) then return end
  end
end
local CHUNKED = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
if mode == "trailer" then endless(CHUNKED .. "2\r\n{}\r\n0\r\nX-Trailer: ", "a")
elseif mode == "chunkline" then endless(CHUNKED, "0")
elseif mode == "header" then endless("HTTP/1.1 200 OK\r\nX-Long: ", "h")
elseif mode == "interim" then endless("", "HTTP/1.1 100 Continue\r\n\r\n")
elseif mode == "te_cl" then
  raw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    .. "Content-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
  ngx.sleep(3)   -- holds the connection open: a client that pooled it would wait here
elseif mode == "hex" then raw(CHUNKED .. "0x2\r\n{}\r\n0\r\n\r\n")
end
ngx.exit(ngx.OK)
]]

-- The client: one transport call, with the worker's resident memory before and after.
local CALL = [[
local cjson = require("cjson.safe").new()
local function rss_kb()
  collectgarbage()
  collectgarbage()
  local f = io.open("/proc/self/status", "rb")
  local kb = f:read("*a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb)
end
local base = "http://localhost:" .. ngx.var.arg_port
local transport = require("auth0.transport.ngx").new({ base_url = base, host = "localhost", timeout = 20,
  connect_timeout = 2 }, { pool = "hostile" })
local before = rss_kb()
local resp, code, msg = transport { method = "GET", url = base .. "/" .. ngx.var.arg_mode, headers = {} }
local peak = rss_kb()
ngx.header["content-type"] = "application/json"
ngx.print(cjson.encode { body = resp and resp.body, code = code, message = msg, grew_kb = peak - before })
]]

local api, work, up_port

local function call(mode)
  local text, status = http.request(("%s/__test/call?mode=%s&port=%d"):format(api.url, mode, up_port))
  assert.equal(200, status, text)
  return assert(cjson.decode(text))
end

describe("the cosocket reader against a hostile upstream in nginx", function()
  setup(function()
    work = io.popen("mktemp -d /tmp/auth0-ngx-reader.XXXXXX"):read("*l")
    for name, text in pairs { ["hostile.lua"] = HOSTILE, ["call.lua"] = CALL } do
      local f = assert(io.open(work .. "/" .. name, "wb"))
      f:write(text)
      f:close()
    end
    up_port = launch.free_port()
    local err
    api, err = launch.start {
      base_url = "http://localhost:" .. up_port, owner_pid = server.self_pid(),
      http = ("  server {\n    listen 127.0.0.1:%d;\n    location / { content_by_lua_file %s/hostile.lua; }\n  }\n")
        :format(up_port, work),
      server = ("    location = /__test/call { content_by_lua_file %s/call.lua; }\n"):format(work),
    }
    assert(api, err)
  end)

  teardown(function()
    if api then api:stop() end
    if work then os.execute("rm -rf '" .. work .. "'") end
  end)

  it("stops endless lines at the caps with the worker's memory bounded", function()
    for mode, msg in pairs {
      trailer = "response trailers larger than the header cap",
      chunkline = "malformed chunk size",
      header = "response headers larger than 65536 bytes",
      interim = "response headers larger than 65536 bytes",
    } do
      local r = call(mode)
      assert.same({ "bad_response", msg }, { r.code, r.message }, mode)
      -- 48 MiB were offered; the reader holds at most its caps (64 KiB + 1 MiB)
      assert.is_true(r.grew_kb < 8 * 1024, mode .. " grew the worker by " .. r.grew_kb .. " KiB")
    end
  end)

  it("refuses ambiguous framing", function()
    local r = call("te_cl")
    assert.same({ "bad_response", "response has both Transfer-Encoding and Content-Length" }, { r.code, r.message })
    r = call("hex")
    assert.same({ "bad_response", "malformed chunk size" }, { r.code, r.message })
  end)

  it("pools a connection only after a complete, well-formed answer", function()
    assert.equal("1", call("conn").body)
    assert.equal("2", call("conn").body)       -- the same connection, from the pool
    assert.equal("bad_response", call("te_cl").code)   -- sent on it, then closed
    assert.equal("1", call("conn").body)       -- so this one needed a new connection
  end)
end)
