/* core.json_flat(s): a fast decoder for the answers the hot path gets (a token set, a
 * passwordless start): one JSON object whose values are strings without escapes, numbers,
 * true, false or null. It yields exactly what lua-cjson's decode yields for such a text
 * (numbers as lua_Number through strtod, null as the NULL light userdata that is cjson.null,
 * the last of duplicate keys), and a second result: whether the object held a null (a caller
 * that strips nulls can skip the walk); for any other text it returns nothing and the caller decodes
 * with cjson, which then also reports the errors. cjson copies strings byte by byte: on a
 * 1.8 KB token answer this is most of the Lua side's CPU per login. */
#include <stdlib.h>
#include <string.h>

#include "a0_lua.h"

static const char *ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* A string without escapes starting after its opening quote: its end (the closing quote),
 * or NULL (an escape, a NUL byte or no closing quote: cjson's business). `clean` says the
 * whole text holds neither a backslash nor a NUL (two scans of the text instead of two per
 * string: a token answer has a dozen strings). */
static const char *plain_string(const char *p, const char *end, int clean) {
  const char *q = memchr(p, '"', (size_t)(end - p));
  if (q == NULL) return NULL;
  if (!clean && (memchr(p, '\\', (size_t)(q - p)) != NULL || memchr(p, '\0', (size_t)(q - p)) != NULL))
    return NULL;
  return q;
}

static int digit(const char *p, const char *end) { return p < end && *p >= '0' && *p <= '9'; }

/* A number in strict JSON grammar: its end, or NULL. */
static const char *number_end(const char *p, const char *end) {
  if (p < end && *p == '-') p++;
  if (!digit(p, end)) return NULL;
  if (*p == '0') p++;
  else while (digit(p, end)) p++;
  if (p < end && *p == '.') {
    if (!digit(++p, end)) return NULL;
    while (digit(p, end)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (!digit(p, end)) return NULL;
    while (digit(p, end)) p++;
  }
  return p;
}

static int word(const char *p, const char *end, const char *w, size_t n) {
  return (size_t)(end - p) >= n && memcmp(p, w, n) == 0;
}

/* Pushes the value at p and returns its end, or NULL (nothing pushed); a null sets *nul. */
static const char *value(lua_State *L, const char *p, const char *end, int *nul, int clean) {
  const char *q;
  if (p >= end) return NULL;
  switch (*p) {
    case '"':
      if ((q = plain_string(p + 1, end, clean)) == NULL) return NULL;
      lua_pushlstring(L, p + 1, (size_t)(q - p - 1));
      return q + 1;
    case 't': if (!word(p, end, "true", 4)) return NULL; lua_pushboolean(L, 1); return p + 4;
    case 'f': if (!word(p, end, "false", 5)) return NULL; lua_pushboolean(L, 0); return p + 5;
    case 'n':
      if (!word(p, end, "null", 4)) return NULL;
      lua_pushlightuserdata(L, NULL);
      *nul = 1;
      return p + 4;
    default:
      if ((q = number_end(p, end)) == NULL || q - p > 63) return NULL;
      {
        char num[64];   /* strtod needs a terminator that end may not have */
        memcpy(num, p, (size_t)(q - p));
        num[q - p] = '\0';
        lua_pushnumber(L, (lua_Number)strtod(num, NULL));
      }
      return q;
  }
}

/* The decoded object and whether it held a null, when nothing follows the closing brace at p. */
static int done(lua_State *L, const char *p, const char *end, int nul) {
  if (ws(p + 1, end) != end) return 0;
  lua_pushboolean(L, nul);
  return 2;
}

/* core.json_flat(s) -> table, had_null | nothing */
static int l_json_flat(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n), *end = s + n, *p = ws(s, end), *q;
  int nul = 0, clean;
  if (p >= end || *p != '{') return 0;
  clean = memchr(s, '\\', n) == NULL && memchr(s, '\0', n) == NULL;
  lua_createtable(L, 0, 8);
  p = ws(p + 1, end);
  if (p < end && *p == '}') return done(L, p, end, 0);
  for (;;) {
    if (p >= end || *p != '"' || (q = plain_string(p + 1, end, clean)) == NULL) return 0;
    lua_pushlstring(L, p + 1, (size_t)(q - p - 1));
    p = ws(q + 1, end);
    if (p >= end || *p != ':') return 0;
    if ((p = value(L, ws(p + 1, end), end, &nul, clean)) == NULL) return 0;
    lua_rawset(L, -3);
    p = ws(p, end);
    if (p < end && *p == ',') { p = ws(p + 1, end); continue; }
    if (p < end && *p == '}') return done(L, p, end, nul);
    return 0;
  }
}

/* checker(t) -> name, kind | nothing: the first field, in the order of the names given to
 * core.kinds, whose value is present and not of its kind. The kinds are JSON scalars:
 * "string", "boolean", "number" (finite: NaN and +-inf are not JSON numbers). */
static int l_kinds_check(lua_State *L) {
  size_t n;
  const char *kinds = lua_tolstring(L, lua_upvalueindex(2), &n);
  luaL_checktype(L, 1, LUA_TTABLE);
  for (size_t i = 0; i < n; i++) {
    int ok;
    lua_rawgeti(L, lua_upvalueindex(1), (int)i + 1);
    lua_pushvalue(L, -1);
    lua_rawget(L, 1);
    switch (kinds[i]) {
      case 's': ok = lua_type(L, -1) == LUA_TSTRING; break;
      case 'b': ok = lua_type(L, -1) == LUA_TBOOLEAN; break;
      default:
        ok = lua_type(L, -1) == LUA_TNUMBER;
        if (ok) {
          lua_Number v = lua_tonumber(L, -1);
          ok = v == v && v - v == 0;   /* inf - inf is NaN */
        }
    }
    if (!ok && !lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushstring(L, kinds[i] == 's' ? "string" : kinds[i] == 'b' ? "boolean" : "number");
      return 2;
    }
    lua_pop(L, 2);
  }
  return 0;
}

/* core.kinds(names, kinds) -> checker: names a list of field names, kinds the list of
 * their kinds ("string", "boolean" or "number"); raises on any other kind. */
static int l_kinds(lua_State *L) {
  static const char *const names[] = { "string", "boolean", "number", NULL };
  char codes[64];
  int n;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  n = (int)a0c_rawlen(L, 1);
  luaL_argcheck(L, (int)a0c_rawlen(L, 2) == n, 2, "one kind per name expected");
  luaL_argcheck(L, n <= (int)sizeof codes, 1, "at most 64 fields");
  lua_createtable(L, n, 0);   /* the names, copied: the caller's list may change */
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "field names must be strings");
    lua_rawseti(L, -2, i);
  }
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    codes[i - 1] = "sbn"[luaL_checkoption(L, -1, NULL, names)];
    lua_pop(L, 1);
  }
  lua_pushlstring(L, codes, (size_t)n);
  lua_pushcclosure(L, l_kinds_check, 2);
  return 1;
}

void a0l_open_json(lua_State *L) {
  lua_pushcfunction(L, l_json_flat);
  lua_setfield(L, -2, "json_flat");
  lua_pushcfunction(L, l_kinds);
  lua_setfield(L, -2, "kinds");
}
