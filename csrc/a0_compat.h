/* Lua 5.1/LuaJIT <-> 5.4 differences, every helper prefixed a0c_ so that nothing
 * collides with the luaL_* symbols LuaJIT 2.1 already exports. */
#ifndef A0_COMPAT_H
#define A0_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

/* LuaJIT's lauxlib.h has the 5.2 functions the bindings use (luaL_setmetatable, luaL_traceback),
 * PUC Lua 5.1's has not: refuse it in one line rather than build with implicit declarations. */
#if LUA_VERSION_NUM < 502 && !defined(luaL_newlib)
#error "lua-auth0 needs Lua 5.2-5.4 or LuaJIT 2.1; PUC Lua 5.1 is not supported"
#endif

#if LUA_VERSION_NUM >= 502
#define a0c_rawlen(L, i)            lua_rawlen(L, (i))
#define a0c_setuservalue(L, i)      lua_setuservalue(L, (i))
#define a0c_getuservalue(L, i)      ((void)lua_getuservalue(L, (i)))
#define a0c_setfuncs(L, l)          luaL_setfuncs(L, (l), 0)
#define a0c_newuserdata(L, sz)      lua_newuserdata(L, (sz))
#else
#define a0c_rawlen(L, i)            lua_objlen(L, (i))
/* 5.1 userdata environments must be tables, which is all we ever store there. */
#define a0c_setuservalue(L, i)      ((void)lua_setfenv(L, (i)))
#define a0c_getuservalue(L, i)      lua_getfenv(L, (i))
#define a0c_newuserdata(L, sz)      lua_newuserdata(L, (sz))
static inline void a0c_setfuncs(lua_State *L, const luaL_Reg *l) {
  for (; l->name != NULL; l++) {
    lua_pushcfunction(L, l->func);
    lua_setfield(L, -2, l->name);
  }
}
#endif

static inline int a0c_absindex(lua_State *L, int i) {
  return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}

/* lua_getfield without metamethods: C keeps pointers into user tables (option strings),
 * so reading them must never run Lua code (an __index could free or change them). */
static inline int a0c_rawgetfield(lua_State *L, int t, const char *k) {
  t = a0c_absindex(L, t);
  lua_pushstring(L, k);
  lua_rawget(L, t);
  return lua_type(L, -1);
}

/* luaL_testudata exists in 5.2+ and in LuaJIT 2.1, but not in plain 5.1. */
static inline void *a0c_testudata(lua_State *L, int ud, const char *tname) {
  void *p = lua_touserdata(L, ud);
  if (p == NULL || !lua_getmetatable(L, ud)) return NULL;
  luaL_getmetatable(L, tname);
  if (!lua_rawequal(L, -1, -2)) p = NULL;
  lua_pop(L, 2);
  return p;
}

#endif
