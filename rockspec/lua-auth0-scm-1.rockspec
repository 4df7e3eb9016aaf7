rockspec_format = "3.0"
package = "lua-auth0"
version = "scm-1"
source = { url = "git+https://github.com/lua-auth0/lua-auth0.git" }
description = {
  summary = "Auth0 embedded login (passwordless, MFA) for Lua: a libcurl/OpenSSL C core",
  detailed = [[
Passwordless (email/SMS codes, magic links) and multi-factor authentication (TOTP, SMS,
email, push, recovery codes) against the Auth0 Authentication API, blocking or
non-blocking, for Lua 5.4, LuaJIT and OpenResty. Ships a local Auth0 emulator.]],
  license = "MIT",
}
-- Lua 5.2-5.4, or LuaJIT 2.1 as "5.1" (luarocks --lua-version 5.1 with LUA_INCDIR set to
-- LuaJIT's headers, e.g. /usr/include/luajit-2.1): the C build refuses PUC Lua 5.1's headers.
dependencies = { "lua >= 5.1, < 5.5", "lua-cjson" }
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { library = "crypto" },
  QRENCODE = { library = "qrencode" },
}
build = {
  type = "make",
  -- `make rock` builds from scratch into build/rock/<headers folder>: never another Lua's objects
  build_target = "rock",
  build_variables = {
    CFLAGS = "$(CFLAGS)", LIBFLAG = "$(LIBFLAG)", LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install_target = "rock-install",
  install_variables = {
    LUA_INCDIR = "$(LUA_INCDIR)", INST_LIBDIR = "$(LIBDIR)", INST_LUADIR = "$(LUADIR)",
    -- the auth0 command (Lua 5.4 rocks only) and its bash completion, inside the rock
    INST_BINDIR = "$(BINDIR)", INST_COMPDIR = "$(PREFIX)/completions",
  },
}
test = { type = "command", command = "make test" }
