/* The Lua C module `auth0.core`: one table assembled from the binding files. */
#include "a0_lua.h"

int luaopen_auth0_core(lua_State *L);

int luaopen_auth0_core(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, A0_VERSION);
  lua_setfield(L, -2, "version");
  a0l_open_qr(L);
  a0l_open_codec(L);
  a0l_open_crypto(L);
  a0l_open_client(L);
  a0l_open_store(L);
  a0l_open_call(L);
  a0l_open_listen(L);
  a0l_open_json(L);
  return 1;
}
