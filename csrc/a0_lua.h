/* Shared by the binding files (l_*.c) only; engine files never include lua.h. */
#ifndef A0_LUA_H
#define A0_LUA_H

#include "a0_compat.h"

#define A0_VERSION "0.1.0"

/* Each binding file adds its functions to the module table on top of the stack. */
void a0l_open_qr(lua_State *L);
void a0l_open_crypto(lua_State *L);
void a0l_open_client(lua_State *L);
void a0l_open_codec(lua_State *L);
void a0l_open_store(lua_State *L);
void a0l_open_call(lua_State *L);
void a0l_open_listen(lua_State *L);
void a0l_open_json(lua_State *L);

#endif
