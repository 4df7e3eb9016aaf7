/* core.qr(text, level) -> modules, size | nil, "too_large": the matrix as a string of
 * size * size bytes '1' (dark) / '0' (light), row by row; lua/auth0/qr.lua wraps it. */
#include "a0_lua.h"
#include "a0_qr.h"

static int l_qr(lua_State *L) {
  static const char *const level_names[] = { "L", "M", "Q", "H", NULL };
  size_t n;
  const char *text = luaL_checklstring(L, 1, &n);
  int level = luaL_checkoption(L, 2, "M", level_names);
  a0_qr q;
  luaL_argcheck(L, n > 0, 1, "must not be empty");
  int rc = a0_qr_encode(&q, text, n, level);
  if (rc == A0_QR_TOO_LARGE) {
    lua_pushnil(L);
    lua_pushliteral(L, "too_large");
    return 2;
  }
  if (rc == A0_QR_INVALID) return luaL_argerror(L, 1, "contains a NUL byte");
  if (rc != A0_QR_OK) return luaL_error(L, "out of memory");
  lua_pushlstring(L, (const char *)q.modules, (size_t)q.size * (size_t)q.size);
  lua_pushinteger(L, q.size);
  a0_qr_free(&q);
  return 2;
}

static const luaL_Reg qr_funcs[] = { {"qr", l_qr}, {NULL, NULL} };

void a0l_open_qr(lua_State *L) { a0c_setfuncs(L, qr_funcs); }
