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
#include "l_call.h"

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

/* The value of the number [p, q) that number_end delimited (at most 63 bytes): strtod's;
 * an integer of at most 15 digits (the usual expires_in) is summed at once, exactly as strtod
 * rounds it (every partial sum is an integer below 2^53). */
static double number(const char *p, const char *q) {
  char buf[64];   /* strtod needs a terminator that the text may not have */
  const char *d = p + (*p == '-'), *r = d;
  if (q - d <= 15) {
    double v = 0;
    while (r < q && *r >= '0' && *r <= '9') v = v * 10 + (*r++ - '0');
    if (r == q) return *p == '-' ? -v : v;
  }
  memcpy(buf, p, (size_t)(q - p));
  buf[q - p] = '\0';
  return strtod(buf, NULL);
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
      lua_pushnumber(L, (lua_Number)number(p, q));
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

/* ---- the call path's fused decode (client:fetch's 4th argument) -------------------- */

/* What core.kinds compiled, for the fused decode: each name's bytes (the names table of the
 * checker anchors them) and kind. */
typedef struct {
  int n;
  struct { const char *s; size_t len; char kind; } f[64];
} kinds_index;

static int l_kinds_check(lua_State *L);

int a0l_is_kinds(lua_State *L, int i) { return lua_tocfunction(L, i) == l_kinds_check; }

/* Whether the scalar at p (a token's first byte) fits kind k; a number is decoded into *num. */
static int fits(char k, const char *p, const char *q, double *num) {
  switch (k) {
    case 's': return *p == '"';
    case 'b': return *p == 't' || *p == 'f';
    default:
      if (*p == '"' || *p == 't' || *p == 'f' || *p == 'n') return 0;
      *num = number(p, q);
      return *num == *num && *num - *num == 0;   /* inf - inf is NaN */
  }
}

/* The end of the scalar at p (no push), or NULL: json_flat's grammar. */
static const char *scalar_end(const char *p, const char *end, int clean) {
  const char *q;
  if (p >= end) return NULL;
  switch (*p) {
    case '"': return (q = plain_string(p + 1, end, clean)) == NULL ? NULL : q + 1;
    case 't': return word(p, end, "true", 4) ? p + 4 : NULL;
    case 'f': return word(p, end, "false", 5) ? p + 5 : NULL;
    case 'n': return NULL;   /* a null: the caller's path strips it */
    default: return (q = number_end(p, end)) == NULL || q - p > 63 ? NULL : q;
  }
}

/* Pushes the scalar [p, q) (a number already decoded into num when kind is 'n'). */
static void push_scalar(lua_State *L, const char *p, const char *q, char kind, double num) {
  if (*p == '"') lua_pushlstring(L, p + 1, (size_t)(q - p - 2));
  else if (*p == 't' || *p == 'f') lua_pushboolean(L, *p == 't');
  else if (kind == 'n') lua_pushnumber(L, (lua_Number)num);
  else lua_pushnumber(L, (lua_Number)number(p, q));
}

/* Pushes the object json_flat would decode from s when it holds no null, no member named
 * "error", and each field core.kinds' checker at spec lists is of its kind; returns 1.
 * Otherwise returns 0 with the stack as it was: the caller takes the general path, which
 * decides everything (this only spares the work when it would agree). Listed keys are
 * pushed from the checker's names table, without hashing them again. */
int a0l_flat_fit(lua_State *L, int spec, const char *s, size_t n) {
  const char *end = s + n, *p = ws(s, end), *q, *v;
  const kinds_index *ki;
  int top = lua_gettop(L), clean;
  if (p >= end || *p != '{') return 0;
  lua_getupvalue(L, spec, 3);
  ki = lua_touserdata(L, -1);
  lua_getupvalue(L, spec, 1);   /* the names, at top + 2 */
  clean = memchr(s, '\\', n) == NULL && memchr(s, '\0', n) == NULL;
  lua_createtable(L, 0, 8);
  p = ws(p + 1, end);
  if (p < end && *p == '}') goto close;
  for (;;) {
    int i;
    size_t kl;
    double num = 0;
    char kind = 0;
    if (p >= end || *p != '"' || (q = plain_string(p + 1, end, clean)) == NULL) goto fail;
    kl = (size_t)(q - p - 1);
    if (kl == 5 && memcmp(p + 1, "error", 5) == 0) goto fail;
    for (i = 0; i < ki->n; i++)
      if (ki->f[i].len == kl && memcmp(ki->f[i].s, p + 1, kl) == 0) break;
    if (i < ki->n) { lua_rawgeti(L, top + 2, i + 1); kind = ki->f[i].kind; }
    else lua_pushlstring(L, p + 1, kl);
    p = ws(q + 1, end);
    if (p >= end || *p != ':') goto fail;
    p = ws(p + 1, end);
    if ((v = scalar_end(p, end, clean)) == NULL || (kind != 0 && !fits(kind, p, v, &num))) goto fail;
    push_scalar(L, p, v, kind, num);
    lua_rawset(L, -3);
    p = ws(v, end);
    if (p < end && *p == ',') { p = ws(p + 1, end); continue; }
    if (p < end && *p == '}') goto close;
    goto fail;
  }
close:
  if (ws(p + 1, end) != end) goto fail;
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 1;
fail:
  lua_settop(L, top);
  return 0;
}

/* core.flat_fit(s, checker) -> table | nothing: a0l_flat_fit on a string, for the specs that
 * compare it with json_flat and the checker on any text (the call path decodes from the
 * transfer's buffer instead). */
static int l_flat_fit(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  luaL_argcheck(L, a0l_is_kinds(L, 2), 2, "a checker of core.kinds expected");
  return a0l_flat_fit(L, 2, s, n);
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

/* Pushes a copy of the n names at 1 (the caller's list may change), each a string listed
 * once: a name listed twice would be checked by its first kind in a0l_flat_fit, by both in
 * the checker. */
static void copy_names(lua_State *L, int n) {
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 1, "field names must be strings");
    for (int j = 1; j < i; j++) {
      lua_rawgeti(L, -2, j);
      luaL_argcheck(L, !lua_rawequal(L, -1, -2), 1, "a field name is listed twice");
      lua_pop(L, 1);
    }
    lua_rawseti(L, -2, i);
  }
}

/* core.kinds(names, kinds) -> checker: names a list of field names, kinds the list of
 * their kinds ("string", "boolean" or "number"); raises on any other kind. */
static int l_kinds(lua_State *L) {
  static const char *const names[] = { "string", "boolean", "number", NULL };
  char codes[64];
  int n;
  kinds_index *ki;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  n = (int)a0c_rawlen(L, 1);
  luaL_argcheck(L, (int)a0c_rawlen(L, 2) == n, 2, "one kind per name expected");
  luaL_argcheck(L, n <= (int)sizeof codes, 1, "at most 64 fields");
  copy_names(L, n);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    codes[i - 1] = "sbn"[luaL_checkoption(L, -1, NULL, names)];
    lua_pop(L, 1);
  }
  lua_pushlstring(L, codes, (size_t)n);
  ki = a0c_newuserdata(L, sizeof *ki);
  ki->n = n;
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, -3, i);   /* anchored by the copied names table, upvalue 1 */
    ki->f[i - 1].s = lua_tolstring(L, -1, &ki->f[i - 1].len);
    ki->f[i - 1].kind = codes[i - 1];
    lua_pop(L, 1);
  }
  lua_pushcclosure(L, l_kinds_check, 3);
  return 1;
}

void a0l_open_json(lua_State *L) {
  lua_pushcfunction(L, l_json_flat);
  lua_setfield(L, -2, "json_flat");
  lua_pushcfunction(L, l_kinds);
  lua_setfield(L, -2, "kinds");
  lua_pushcfunction(L, l_flat_fit);
  lua_setfield(L, -2, "flat_fit");
}
