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
dependencies = { "lua >= 5.1", "lua-cjson" }
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { library = "crypto" },
  QRENCODE = { library = "qrencode" },
}
build = {
  type = "make",
  build_variables = {
    CFLAGS = "$(CFLAGS)", LIBFLAG = "$(LIBFLAG)", LUA_INCDIR = "$(LUA_INCDIR)",
    BUILD = "build/rock",
  },
  install_variables = {
    BUILD = "build/rock", INST_LIBDIR = "$(LIBDIR)", INST_LUADIR = "$(LUADIR)",
  },
}
test = { type = "command", command = "make test" }
