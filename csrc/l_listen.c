/* core.listen(port) -> listener, port | nil, message: the loopback redirect listener of
 * lua/auth0/loopback.lua (a0_listen.c). listener:step() -> target | nil [, "closed"];
 * listener:reply(status, body); listener:close(). */
#include <string.h>

#include "a0_lua.h"
#include "a0_listen.h"

#define LISTEN_MT "auth0.core.listener"

static a0_listener *check_listener(lua_State *L) { return (a0_listener *)luaL_checkudata(L, 1, LISTEN_MT); }

static int l_listen(lua_State *L) {
  lua_Integer port = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, port >= 0 && port <= 65535, 1, "port must be in 0..65535");
  a0_listener *l = (a0_listener *)a0c_newuserdata(L, sizeof *l);
  a0_listen_init(l);                  /* a raise below must find nothing to close */
  luaL_setmetatable(L, LISTEN_MT);
  int e = a0_listen_open(l, (int)port);
  if (e != 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(e));
    return 2;
  }
  lua_pushinteger(L, l->port);
  return 2;
}

static int l_step(lua_State *L) {
  a0_listener *l = check_listener(L);
  const char *target;
  size_t n;
  int rc = a0_listen_step(l, &target, &n);
  if (rc == A0_LISTEN_REQUEST) {
    lua_pushlstring(L, target, n);
    return 1;
  }
  lua_pushnil(L);
  if (rc == A0_LISTEN_ERROR) {
    lua_pushliteral(L, "closed");
    return 2;
  }
  return 1;
}

static int l_reply(lua_State *L) {
  a0_listener *l = check_listener(L);
  int status = (int)luaL_checkinteger(L, 2);
  size_t n;
  const char *body = luaL_optlstring(L, 3, "", &n);
  a0_listen_reply(l, status, body, n);
  return 0;
}

static int l_close(lua_State *L) {
  a0_listen_close(check_listener(L));
  return 0;
}

static const luaL_Reg listener_meta[] = {
  {"step", l_step}, {"reply", l_reply}, {"close", l_close}, {"__gc", l_close}, {NULL, NULL} };
static const luaL_Reg listen_funcs[] = { {"listen", l_listen}, {NULL, NULL} };

void a0l_open_listen(lua_State *L) {
  luaL_newmetatable(L, LISTEN_MT);
  a0c_setfuncs(L, listener_meta);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  a0c_setfuncs(L, listen_funcs);
}
