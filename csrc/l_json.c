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
 * or NULL (an escape, a NUL byte or no closing quote: cjson's business). */
static const char *plain_string(const char *p, const char *end) {
  const char *q = memchr(p, '"', (size_t)(end - p));
  if (q == NULL || memchr(p, '\\', (size_t)(q - p)) != NULL || memchr(p, '\0', (size_t)(q - p)) != NULL)
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
static const char *value(lua_State *L, const char *p, const char *end, int *nul) {
  const char *q;
  if (p >= end) return NULL;
  switch (*p) {
    case '"':
      if ((q = plain_string(p + 1, end)) == NULL) return NULL;
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
  int nul = 0;
  if (p >= end || *p != '{') return 0;
  lua_createtable(L, 0, 8);
  p = ws(p + 1, end);
  if (p < end && *p == '}') return done(L, p, end, 0);
  for (;;) {
    if (p >= end || *p != '"' || (q = plain_string(p + 1, end)) == NULL) return 0;
    lua_pushlstring(L, p + 1, (size_t)(q - p - 1));
    p = ws(q + 1, end);
    if (p >= end || *p != ':') return 0;
    if ((p = value(L, ws(p + 1, end), end, &nul)) == NULL) return 0;
    lua_rawset(L, -3);
    p = ws(p, end);
    if (p < end && *p == ',') { p = ws(p + 1, end); continue; }
    if (p < end && *p == '}') return done(L, p, end, nul);
    return 0;
  }
}

void a0l_open_json(lua_State *L) {
  lua_pushcfunction(L, l_json_flat);
  lua_setfield(L, -2, "json_flat");
}
