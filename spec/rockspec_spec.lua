-- The rockspec builds and installs offline, and the installed module loads: Lua 5.4 from the 5.4
-- tree, LuaJIT (and nginx's content_by_lua) from a 5.1 tree built with LuaJIT's headers; PUC
-- Lua 5.1 is refused in one line.
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  return out:match("rc=(%d+)%s*$") == "0", out
end

local ROCKSPEC = "rockspec/lua-auth0-scm-1.rockspec"
local OFFLINE = "LUAROCKS_CONFIG=rockspec/luarocks-offline.lua "

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/auth0-rock.XXXXXX")
  local dir = p:read("*l")
  p:close()
  return dir
end

local function strip(out) return (out:gsub("\n?rc=0%s*$", "")) end

describe("rockspec", function()
  local only_lua54 = function()
    if os.getenv("A0_PASS") ~= "lua54" then
      pending("runs once, in the Lua 5.4 pass")
      return true
    end
  end

  it("builds with luarocks make offline and loads from the tree", function()
    if only_lua54() then return end
    local tree = tmpdir()
    local ok, out = run(OFFLINE .. "luarocks --lua-version 5.4 --tree " .. tree .. " make " .. ROCKSPEC)
    assert(ok, out)
    assert.matches("lua%-auth0 scm%-1 is now installed", out)
    local check = [[local a = require 'auth0'; local c = a.new{domain='t.example.com', client_id='x'};
      io.write(a._VERSION, ' ', tostring(c), ' ', package.searchpath('auth0.core', package.cpath))]]
    ok, out = run(("LUA_PATH='%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;;' LUA_CPATH='%s/lib/lua/5.4/?.so;;' " ..
      "lua5.4 -e %q"):format(tree, tree, tree, check))
    assert(ok, out)
    assert.equal("0.1.0 auth0.Client (https://t.example.com) " .. tree .. "/lib/lua/5.4/auth0/core.so", strip(out))
    os.execute("rm -rf '" .. tree .. "'")
  end)

  it("builds a LuaJIT rock after a 5.4 one from clean objects, loads it in luajit and nginx", function()
    if only_lua54() then return end
    local tree, prefix = tmpdir(), tmpdir()
    -- the 5.4 build first: the 5.1 build must not reuse its objects (issue: "Nothing to be done")
    local ok, out = run(OFFLINE .. "luarocks --lua-version 5.4 --tree " .. tree .. " make " .. ROCKSPEC)
    assert(ok, out)
    ok, out = run(OFFLINE .. "luarocks --lua-version 5.1 --tree " .. tree .. " make " .. ROCKSPEC
      .. " LUA_INCDIR=/usr/include/luajit-2.1")
    assert(ok, out)
    assert.matches("-I/usr/include/luajit%-2%.1 ", out)
    assert.matches("lua%-auth0 scm%-1 is now installed", out)
    assert.is_nil(out:find("implicit declaration", 1, true))
    -- the installed module is LuaJIT's: it references no 5.4-only symbol
    local _, syms = run("nm -D --undefined-only " .. tree .. "/lib/lua/5.1/auth0/core.so | grep -c ' lua_rotate$'")
    assert.equal("0", strip(syms):match("%d+"))
    local check = [[local a = require 'auth0'; local c = a.new{domain='t.example.com', client_id='x'};
      io.write(a._VERSION, ' ', tostring(c), ' ', package.searchpath('auth0.core', package.cpath), ' ',
        a.core.b64url_encode(a.core.open(('k'):rep(32), a.core.seal(('k'):rep(32), 'id', 'hi'))))]]
    ok, out = run(("LUA_PATH='%s/share/lua/5.1/?.lua;%s/share/lua/5.1/?/init.lua;;' LUA_CPATH='%s/lib/lua/5.1/?.so;;' " ..
      "luajit -e %q"):format(tree, tree, tree, check))
    assert(ok, out)
    assert.equal("0.1.0 auth0.Client (https://t.example.com) " .. tree .. "/lib/lua/5.1/auth0/core.so aGk", strip(out))

    -- nginx with only lua_package_path / lua_package_cpath pointing at the tree
    local launch = dofile("examples/openresty/launch.lua")
    local port = launch.free_port()
    os.execute("mkdir -p " .. prefix .. "/conf " .. prefix .. "/logs " .. prefix .. "/tmp")
    local f = assert(io.open(prefix .. "/conf/nginx.conf", "wb"))
    f:write(([[
%s
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off; master_process on; worker_processes 1;
pid logs/nginx.pid; error_log logs/error.log notice;
events { worker_connections 64; }
http {
  access_log off; client_body_temp_path tmp/body; proxy_temp_path tmp/proxy; fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi; scgi_temp_path tmp/scgi;
  lua_package_path "%s/share/lua/5.1/?.lua;%s/share/lua/5.1/?/init.lua;;";
  lua_package_cpath "%s/lib/lua/5.1/?.so;;";
  server { listen 127.0.0.1:%d; location / { content_by_lua_block {
    local a = require "auth0"
    ngx.print(a._VERSION, " ", package.searchpath("auth0.core", package.cpath), " ", jit and jit.version or "no jit")
  } } }
}
]]):format(io.popen("id -u"):read("*l") == "0" and "user root;" or "", tree, tree, tree, port))
    f:close()
    local pid = io.popen(("nginx -p %s -c conf/nginx.conf -e stderr >%s/logs/stderr 2>&1 </dev/null & echo $!")
      :format(prefix, prefix)):read("*l")
    local socket = require "socket"
    local http = require "socket.http"
    local body
    for _ = 1, 250 do
      body = http.request("http://127.0.0.1:" .. port .. "/")
      if body then break end
      socket.sleep(0.02)
    end
    os.execute("kill " .. pid .. " 2>/dev/null")
    assert.is_string(body, "nginx did not answer")
    assert.matches("^0%.1%.0 " .. tree:gsub("%p", "%%%0") .. "/lib/lua/5%.1/auth0/core%.so LuaJIT 2%.1", body)
    os.execute("rm -rf '" .. tree .. "' '" .. prefix .. "'")
  end)

  it("refuses PUC Lua 5.1's headers in one line", function()
    if only_lua54() then return end
    local tree = tmpdir()
    local ok, out = run(OFFLINE .. "luarocks --lua-version 5.1 --tree " .. tree .. " make " .. ROCKSPEC
      .. " LUA_INCDIR=/usr/include/lua5.1")
    assert.is_false(ok)
    assert.matches("\nlua%-auth0 needs Lua 5%.2%-5%.4 or LuaJIT 2%.1; PUC Lua 5%.1 is not supported %(/usr/include/lua5%.1%)\n", out)
    assert.is_nil(out:find("gcc ", 1, true))
    assert.is_nil(out:find("implicit declaration", 1, true))
    local f = io.open(tree .. "/lib/lua/5.1/auth0/core.so")
    assert.is_nil(f)
    os.execute("rm -rf '" .. tree .. "' build/rock")
  end)
end)
