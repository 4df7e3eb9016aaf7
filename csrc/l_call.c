/* Request building for auth0.Client: endpoint lookup (the shipped table, then endpoints a
 * client registered), the checks of fields and options, and filling a transfer. The body
 * encoder and the value checks themselves are pure C (a0_body.c).
 *
 * Contract with the Lua front. C checks the wire invariants of every value: strings where
 * strings go, at most A0_MAX_VALUE bytes, no NUL, valid UTF-8, no CR/LF in header values,
 * timeouts in (0, 86400] seconds. Lua checks meaning only (email shape, "exactly one of").
 * Misuse raises in luaL_argerror's form, naming the public parameter:
 *   bad argument #1 to 'passwordless_start' (field 'email': contains a NUL byte)
 *   bad argument #1 to 'mfa_associate' (missing required field 'authenticator_types')
 * The call's options say how to name things (all optional):
 *   opts.fn      the public function's name (default: the endpoint's name)
 *   opts.arg     the number of its argument that holds the fields (default 1)
 *   opts.params  maps a public name (the endpoint table's `pub` column or the field's own
 *                name; or an option: bearer, language, path_arg, query, body, timeout,
 *                forwarded_for) to
 *                  a number n: the value was positional argument n:
 *                    bad argument #n to 'fn' (contains a NUL byte)
 *                  a string s: the value was field s of argument opts.arg:
 *                    bad argument #1 to 'fn' (field 's': contains a NUL byte)
 *                unmapped names are fields of argument opts.arg under their public name. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "l_call.h"
#include "a0_body.h"
#include "a0_enc.h"

#define CLIENT_MT "auth0.Client"

typedef struct {            /* an endpoint a client registered, anchored in its user value */
  a0_endpoint ep;
  char name[64], method[8], path[192];
} reg_endpoint;

static const a0_endpoint *find_endpoint(lua_State *L, int ci, const char *name) {
  const a0_endpoint *found = NULL;
  for (const a0_endpoint *ep = a0_endpoints; ep->name != NULL; ep++)   /* first byte: a cheap no */
    if (ep->name[0] == name[0] && strcmp(ep->name, name) == 0) return ep;
  a0c_getuservalue(L, ci);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "endpoints");
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, name);
      reg_endpoint *r = lua_touserdata(L, -1);
      if (r != NULL) found = &r->ep;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return found;
}

static const char *pub_name(const a0_field *f) { return f->pub != NULL ? f->pub : f->name; }

/* How opts.params maps name: *n the argument, *as the field name (NULL: positional). */
static void mapping(lua_State *L, const a0l_call *a, const char *name, int *n, const char **as) {
  *n = a->arg;
  *as = name;
  if (a->o == 0 || !lua_istable(L, a->o)) return;
  a0c_rawgetfield(L, a->o, "params");
  if (lua_istable(L, -1)) {
    a0c_rawgetfield(L, -1, name);
    if (lua_type(L, -1) == LUA_TNUMBER) { *n = (int)lua_tointeger(L, -1); *as = NULL; }
    else if (lua_type(L, -1) == LUA_TSTRING) *as = lua_tostring(L, -1);   /* opts holds it */
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* 1 when a chunk's source is one of the library's own Lua files (check.lua's user_level
 * rule: a path with an `auth0` folder followed by [A-Za-z0-9_/\\]* and ".lua" at its end). */
static int library_source(const char *src) {
  size_t n = strlen(src);
  if (src[0] != '@' || n < 4 || strcmp(src + n - 4, ".lua") != 0) return 0;
  for (const char *p = src; (p = strstr(p, "auth0")) != NULL; p++) {
    const char *q = p + 5;
    if (p == src || (p[-1] != '/' && p[-1] != '\\') || (*q != '/' && *q != '\\')) continue;
    while (*q == '_' || *q == '/' || *q == '\\' || (*q >= '0' && *q <= '9') || ((*q | 32) >= 'a' && (*q | 32) <= 'z')) q++;
    if (q == src + n - 4) return 1;
  }
  return 0;
}

/* Raises "where: bad argument ...", where being the first Lua caller outside the library
 * (as check.argerror does): misuse names the user's line, not the library's call of the core. */
static void argerr(lua_State *L, const char *fmt, ...) {
  lua_Debug ar;
  va_list ap;
  int level = 1, found = 0;
  while (!found && lua_getstack(L, level++, &ar)) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0 || library_source(ar.source)) continue;
    lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
    found = 1;
  }
  if (!found) lua_pushliteral(L, "");
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  lua_error(L);
}

/* Raises about the value whose public name is name. */
static void bad_value(lua_State *L, const a0l_call *a, const char *name, const char *problem) {
  int n;
  const char *as;
  mapping(L, a, name, &n, &as);
  if (as != NULL) argerr(L, "bad argument #%d to '%s' (field '%s': %s)", n, a->fn, as, problem);
  argerr(L, "bad argument #%d to '%s' (%s)", n, a->fn, problem);
}

/* Raises about the fields argument as a whole. */
static void bad_call(lua_State *L, const a0l_call *a, const char *problem) {
  argerr(L, "bad argument #%d to '%s' (%s)", a->arg, a->fn, problem);
}

static void bad_type(lua_State *L, const a0l_call *a, const char *name, const char *want, int i) {
  bad_value(L, a, name, lua_pushfstring(L, "%s expected, got %s", want, luaL_typename(L, i)));
}

/* The string at i, checked; its length in *len when len is not NULL; whether it needs no
 * JSON escape in *plain when plain is not NULL. */
static const char *check_string(lua_State *L, const a0l_call *a, const char *name, int i, int header, size_t *len,
                                int *plain) {
  size_t n;
  const char *s;
  int p, pl;
  if (lua_type(L, i) != LUA_TSTRING) bad_type(L, a, name, "string", i);
  s = lua_tolstring(L, i, &n);
  if ((p = a0_value_check(s, n, header, &pl)) != A0_V_OK) bad_value(L, a, name, a0_value_problem_text(p));
  if (len != NULL) *len = n;
  if (plain != NULL) *plain = pl;
  return s;
}

static const a0_field *find_field(const a0_endpoint *ep, const char *k) {
  for (const a0_field *f = ep->fields; f->name != NULL; f++)
    if (f->name[0] == k[0] && strcmp(f->name, k) == 0) return f;
  return NULL;
}

/* A list (integer keys 1..n, no holes) or a table (string keys) of strings at the top. */
static void check_items(lua_State *L, const a0l_call *a, const a0_field *f) {
  int obj = (f->flags & A0_F_OBJ) != 0;
  const char *want = obj ? "table of strings" : "array of strings";
  size_t n = 0, len;
  if (!lua_istable(L, -1)) bad_type(L, a, pub_name(f), "table", -1);
  len = a0c_rawlen(L, -1);
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    int bad = lua_type(L, -1) != LUA_TSTRING;
    if (obj) {
      bad = bad || lua_type(L, -2) != LUA_TSTRING;
      if (!bad) check_string(L, a, pub_name(f), -2, 0, NULL, NULL);
    } else {
      lua_Number k = lua_type(L, -2) == LUA_TNUMBER ? lua_tonumber(L, -2) : 0;
      bad = bad || k < 1 || k > (lua_Number)len || k != (lua_Number)(size_t)k;
    }
    if (bad) bad_value(L, a, pub_name(f), lua_pushfstring(L, "%s expected", want));
    check_string(L, a, pub_name(f), -1, 0, NULL, NULL);
    n++;
    lua_pop(L, 1);
  }
  if (!obj && n != len) bad_value(L, a, pub_name(f), lua_pushfstring(L, "%s expected", want));
}

static void missing(lua_State *L, const a0l_call *a, const a0_field *f) {
  int n;
  const char *as;
  mapping(L, a, pub_name(f), &n, &as);
  if (as == NULL) argerr(L, "bad argument #%d to '%s' (string expected, got no value)", n, a->fn);
  bad_call(L, a, lua_pushfstring(L, "missing required field '%s'", as));
}

/* The index in a->ep->fields of the field named by the string key at k; raises on an unknown one. */
static size_t field_at(lua_State *L, a0l_call *a, int k) {
  const a0_field *f;
  size_t i;
  if (lua_type(L, k) != LUA_TSTRING) bad_call(L, a, "field names must be strings");
  f = find_field(a->ep, lua_tostring(L, k));
  if (f == NULL) bad_call(L, a, lua_pushfstring(L, "unknown field '%s'", lua_tostring(L, k)));
  i = (size_t)(f - a->ep->fields);
  if (i >= A0L_MAX_FIELDS) luaL_error(L, "endpoint '%s' has too many fields", a->ep->name);
  return i;
}

/* Field i's string value at v: checked once, encoded from here (the fields table or the
 * stack anchors it). */
static void take_string(lua_State *L, a0l_call *a, size_t i, int v) {
  int plain;
  a->val[i] = check_string(L, a, pub_name(&a->ep->fields[i]), v, 0, &a->vlen[i], &plain);
  if (plain) a->plain |= 1u << i;
}

static void check_fields(lua_State *L, a0l_call *a) {
  int t = a->t;
  if (!lua_isnoneornil(L, t)) {
    if (!lua_istable(L, t)) bad_call(L, a, lua_pushfstring(L, "table expected, got %s", luaL_typename(L, t)));
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
      size_t i = field_at(L, a, -2);
      a->present |= 1u << i;
      if (a->ep->fields[i].flags & (A0_F_OBJ | A0_F_ARR)) check_items(L, a, &a->ep->fields[i]);
      else take_string(L, a, i, -1);
      lua_pop(L, 1);
    }
  }
  for (int k = a->kv; k < a->kv + a->kvn; k += 2) {   /* key, value pairs: strings only */
    size_t i;
    i = field_at(L, a, k);   /* a nil value too: a misspelt key is misuse, absent or not */
    if (lua_isnil(L, k + 1)) continue;
    if (a->ep->fields[i].flags & (A0_F_OBJ | A0_F_ARR))   /* encode_fields reads those from the table */
      bad_call(L, a, lua_pushfstring(L, "field '%s' must be in the fields table", a->ep->fields[i].name));
    if (a->present & (1u << i)) bad_call(L, a, lua_pushfstring(L, "field '%s' given twice", a->ep->fields[i].name));
    a->present |= 1u << i;
    take_string(L, a, i, k + 1);
  }
  for (const a0_field *f = a->ep->fields; f->name != NULL; f++)
    if ((f->flags & A0_F_REQ) && !(a->present & (1u << (f - a->ep->fields)))) missing(L, a, f);
}

/* The options the checks read; a call's opts usually holds only fn, so one pass over it
 * spares looking up each of the others by name. */
enum { O_FN, O_ARG, O_BEARER, O_LANGUAGE, O_PATH_ARG, O_QUERY, O_BODY, O_TIMEOUT, O_FORWARDED_FOR };
static const char *const known_opts[] = { "fn", "arg", "bearer", "language", "path_arg", "query", "body",
                                          "timeout", "forwarded_for", NULL };

static unsigned opt_bit(const char *k) {
  for (int i = 0; known_opts[i] != NULL; i++)
    if (known_opts[i][0] == k[0] && strcmp(known_opts[i], k) == 0) return 1u << i;
  return 0;
}

static void scan_options(lua_State *L, a0l_call *a) {
  if (lua_isnoneornil(L, a->o)) return;
  lua_pushnil(L);
  while (lua_next(L, a->o) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      unsigned bit = opt_bit(lua_tostring(L, -2));
      a->opts_has |= bit;
      /* fn, read here: a string stays anchored by the options table */
      if (bit == 1u << O_FN && lua_type(L, -1) == LUA_TSTRING) a->fn = lua_tostring(L, -1);
    }
    lua_pop(L, 1);
  }
}

/* Whether opts holds option o (an O_* index into known_opts). */
static int has_opt(const a0l_call *a, int o) { return (a->opts_has & (1u << o)) != 0; }

static const char *opt_string(lua_State *L, const a0l_call *a, int o, size_t *len, int header) {
  const char *s = NULL, *k = known_opts[o];
  if (!has_opt(a, o)) return NULL;   /* also when there is no options table */
  a0c_rawgetfield(L, a->o, k);
  if (!lua_isnil(L, -1)) {
    if (header >= 0) check_string(L, a, k, -1, header, NULL, NULL);
    else if (lua_type(L, -1) != LUA_TSTRING) bad_type(L, a, k, "string", -1);
    s = lua_tolstring(L, -1, len);
  }
  lua_pop(L, 1);   /* the string stays alive: the options table holds it */
  return s;
}

/* After scan_options, which read a string fn. */
static void check_naming(lua_State *L, a0l_call *a) {
  if (a->fn == NULL && has_opt(a, O_FN)) luaL_error(L, "option 'fn' must be a string");
  if (a->fn == NULL) a->fn = a->ep->name;
  a->arg = 1;
  if (!has_opt(a, O_ARG)) return;
  a0c_rawgetfield(L, a->o, "arg");
  if (!lua_isnil(L, -1)) {
    lua_Number v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 1 && v <= 255) || v != (int)v)
      luaL_error(L, "option 'arg' must be an integer in 1..255");
    a->arg = (int)v;
  }
  lua_pop(L, 1);
}

/* 1 when seg is "." or ".." (in a verbatim sub-path also spelt %2e, which is sent as it
 * is): a dot segment that a client or server resolving the URL would remove, moving the
 * request out of its path (issue 11). A verbatim sub-path is checked segment by segment. */
static int dot_seg(const char *s, size_t n, int pct) {
  size_t dots = 0, i = 0;
  while (i < n) {
    if (s[i] == '.') { dots++; i++; }
    else if (pct && i + 2 < n && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E')) { dots++; i += 3; }
    else return 0;
  }
  return dots == 1 || dots == 2;
}

static int has_dot_seg(const char *s, size_t n, int verbatim) {
  size_t start = 0;
  if (!verbatim) return dot_seg(s, n, 0);
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '/') {
      if (dot_seg(s + start, i - start, 1)) return 1;
      start = i + 1;
    }
  }
  return 0;
}

static void check_options(lua_State *L, a0l_call *a) {
  const a0_endpoint *ep = a->ep;
  a->bearer = opt_string(L, a, O_BEARER, &a->blen, 1);
  a->lang = opt_string(L, a, O_LANGUAGE, &a->llen, 1);
  a->seg = opt_string(L, a, O_PATH_ARG, &a->plen, -1);
  a->query = opt_string(L, a, O_QUERY, &a->qlen, 1);
  a->fwd = opt_string(L, a, O_FORWARDED_FOR, &a->flen, 1);
  a->raw = opt_string(L, a, O_BODY, &a->rlen, -1);
  if (a->seg != NULL && (a->plen > A0_MAX_VALUE || memchr(a->seg, '\0', a->plen) != NULL ||
                         (ep->verbatim && (a0_has_ctl(a->seg, a->plen) || strpbrk(a->seg, " ?#") != NULL))))
    bad_value(L, a, "path_arg", "invalid path");
  if (a->seg != NULL && has_dot_seg(a->seg, a->plen, ep->verbatim))
    bad_value(L, a, "path_arg", "must not be a dot segment (. or ..)");
  if (a->raw != NULL && ep->body != A0_BODY_RAW) bad_value(L, a, "body", "not allowed for this endpoint");
  if (a->raw != NULL && (a->rlen > A0_MAX_RAW_BODY ||
                         memchr(a->raw, '\0', a->rlen) != NULL || a0_utf8_invalid_at(a->raw, a->rlen)))
    bad_value(L, a, "body", "not a UTF-8 text of at most 1 MiB");
  if (a->query != NULL && strpbrk(a->query, " #") != NULL) bad_value(L, a, "query", "must be percent-encoded");
  if (ep->auth == A0_AUTH_BEARER && (a->bearer == NULL || a->blen == 0))
    bad_value(L, a, "bearer", "a bearer token is required");
  if (ep->path[strlen(ep->path) - 1] == '/' && (a->seg == NULL || a->plen == 0))
    bad_value(L, a, "path_arg", "a path argument is required");
  if (has_opt(a, O_TIMEOUT)) {
    a0c_rawgetfield(L, a->o, "timeout");
    if (!lua_isnil(L, -1)) {
      double v;
      if (lua_type(L, -1) != LUA_TNUMBER) bad_type(L, a, "timeout", "number", -1);
      v = lua_tonumber(L, -1);
      if (!(v > 0 && v <= 86400)) bad_value(L, a, "timeout", "must be in (0, 86400] seconds");
      a->timeout_ms = (long)(v * 1000);
      if (a->timeout_ms < 1) a->timeout_ms = 1;   /* 0 would mean "no timeout" to libcurl */
    }
    lua_pop(L, 1);
  }
}

void a0l_check_call(lua_State *L, a0l_call *a, int ci, int e, int t, int o) {
  a0l_check_call_kv(L, a, ci, e, t, o, 0, 0);
}

void a0l_check_call_kv(lua_State *L, a0l_call *a, int ci, int e, int t, int o, int kv, int kvn) {
  const char *name = luaL_checkstring(L, e);
  memset(a, 0, sizeof *a);
  if (kvn % 2 != 0) argerr(L, "fields as key, value pairs: a key without its value");
  a->kv = kvn > 0 ? kv : 0;
  a->kvn = kvn > 0 ? kvn : 0;
  a->ep = find_endpoint(L, ci, name);
  if (a->ep == NULL) luaL_argerror(L, e, lua_pushfstring(L, "unknown endpoint '%s'", name));
  a->t = t;
  a->o = o;
  if (!lua_isnoneornil(L, o)) luaL_checktype(L, o, LUA_TTABLE);
  scan_options(L, a);
  check_naming(L, a);
  check_fields(L, a);
  check_options(L, a);
}

/* ---- filling a transfer ---------------------------------------------------------- */

/* The checked fields as key/value arrays, in the endpoint table's order (deterministic
 * bodies), grant_type first; then a0_body_json_checked. Strings stay anchored by the fields table. */
static int encode_fields(lua_State *L, const a0l_call *a, a0_buf *b) {
  const a0_endpoint *ep = a->ep;
  size_t nkv = 0, nitems = 0, used = 0;
  a0_kv *kv, *items, local[24];   /* the usual call needs no allocation */
  int rc, has_t = !lua_isnoneornil(L, a->t);
  for (const a0_field *f = ep->fields; f->name != NULL; f++) nkv++;
  if (has_t)
    for (const a0_field *f = ep->fields; f->name != NULL; f++) {
      if (!(f->flags & (A0_F_OBJ | A0_F_ARR)) || !(a->present & (1u << (f - ep->fields)))) continue;
      a0c_rawgetfield(L, a->t, f->name);
      if (lua_istable(L, -1)) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) { nitems++; lua_pop(L, 1); }
      }
      lua_pop(L, 1);
    }
  if (nkv + 1 + nitems <= sizeof local / sizeof local[0]) kv = memset(local, 0, (nkv + 1 + nitems) * sizeof *kv);
  else if ((kv = calloc(nkv + 1 + nitems, sizeof *kv)) == NULL) return -1;
  items = kv + nkv + 1;
  nkv = 0;
  if (ep->grant_type != NULL) {
    kv[nkv].key = "grant_type";
    kv[nkv].s = ep->grant_type;
    kv[nkv].plain = 1;   /* the endpoint table's grant types are plain ASCII (make ctest) */
    kv[nkv++].n = strlen(ep->grant_type);
  }
  for (const a0_field *f = ep->fields; f->name != NULL && a->present != 0; f++) {   /* table or pairs */
    a0_kv *v = &kv[nkv];
    size_t i = (size_t)(f - ep->fields);
    if (!(a->present & (1u << i))) continue;
    nkv++;
    v->key = f->name;
    if (!(f->flags & (A0_F_OBJ | A0_F_ARR))) {   /* the string check_fields checked */
      v->s = a->val[i];
      v->n = a->vlen[i];
      v->plain = (a->plain >> i) & 1;   /* and the key, a name of the endpoint table */
      continue;
    }
    a0c_rawgetfield(L, a->t, f->name);
    if (f->flags & A0_F_ARR) {
      v->kind = A0_KV_ARRAY;
      v->items = items + used;
      v->n = a0c_rawlen(L, -1);
      for (size_t j = 1; j <= v->n; j++, used++) {
        lua_rawgeti(L, -1, (int)j);
        items[used].s = lua_tolstring(L, -1, &items[used].n);
        lua_pop(L, 1);
      }
    } else if (f->flags & A0_F_OBJ) {
      v->kind = A0_KV_OBJECT;
      v->items = items + used;
      lua_pushnil(L);
      while (lua_next(L, -2) != 0) {
        items[used].key = lua_tostring(L, -2);
        items[used].s = lua_tolstring(L, -1, &items[used].n);
        used++;
        v->n++;
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  rc = a0_body_json_checked(b, kv, nkv);   /* check_fields checked every value once */
  if (kv != local) free(kv);
  return rc == 0 ? 0 : -1;
}

static int header_line(a0_xfer *x, const char *name, const char *v, size_t vl) {
  a0_buf line = {0};
  int rc = a0_buf_adds(&line, name) || a0_buf_add(&line, v, vl) || a0_buf_cstr(&line) ||
           a0_xfer_add_header(x, line.data);
  a0_buf_free(&line);   /* may have held a bearer token */
  return rc ? -1 : 0;
}

int a0l_fill(lua_State *L, a0_xfer *x, const a0l_call *a, const a0_buf *base,
             const struct curl_slist *fixed) {
  const a0_endpoint *ep = a->ep;
  x->method = ep->method;
  x->timeout_ms = a->timeout_ms;
  if (a0_buf_add(&x->url, base->data, base->len) || a0_buf_adds(&x->url, ep->path) ||
      (a->seg != NULL && (ep->verbatim ? a0_buf_add(&x->url, a->seg, a->plen) : a0_pct_escape(&x->url, a->seg, a->plen))) ||
      (a->query != NULL && (a0_buf_addc(&x->url, '?') || a0_buf_add(&x->url, a->query, a->qlen))))
    goto nomem;
  if (!a0_xfer_has_kept_headers(x) && fixed != NULL) {   /* a fresh transfer of this client */
    for (const struct curl_slist *h = fixed; h != NULL; h = h->next)
      if (a0_xfer_add_header(x, h->data) != 0) goto nomem;
    a0_xfer_keep_headers(x);
  }
  if (a->bearer != NULL && header_line(x, "Authorization: Bearer ", a->bearer, a->blen) != 0) goto nomem;
  if (a->lang != NULL && header_line(x, "X-Request-Language: ", a->lang, a->llen) != 0) goto nomem;
  /* the end user's address, for Auth0's per-IP limits (docs/protocol.md, "Rate limits") */
  if (a->fwd != NULL && header_line(x, "Auth0-Forwarded-For: ", a->fwd, a->flen) != 0) goto nomem;
  if (ep->body != A0_BODY_NONE) a0_xfer_add_static_header(x, "Content-Type: application/json");
  if (ep->body == A0_BODY_JSON && encode_fields(L, a, &x->body) != 0) goto nomem;
  if (ep->body == A0_BODY_RAW && a->raw != NULL && a0_buf_add(&x->body, a->raw, a->rlen) != 0) goto nomem;
  return 0;
nomem:
  lua_pushliteral(L, "out of memory");
  return -1;
}

void a0l_push_built(lua_State *L, a0_xfer *x, const a0l_call *a) {
  const char *line;
  lua_createtable(L, 0, 5);
  lua_pushstring(L, a->ep->method);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, x->url.data, x->url.len);
  lua_setfield(L, -2, "url");
  if (x->timeout_ms > 0) {
    lua_pushnumber(L, x->timeout_ms / 1000.0);
    lua_setfield(L, -2, "timeout");
  }
  lua_newtable(L);
  for (int i = 0; (line = a0_xfer_header_line(x, i)) != NULL; i++) {
    const char *colon = strchr(line, ':');
    luaL_Buffer b;
    if (colon == NULL) continue;
    luaL_buffinit(L, &b);
    for (const char *p = line; p < colon; p++) luaL_addchar(&b, (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
    luaL_pushresult(&b);
    while (*++colon == ' ') {}
    lua_pushstring(L, colon);
    lua_settable(L, -3);
  }
  lua_setfield(L, -2, "headers");
  if (a->ep->body != A0_BODY_NONE) {
    lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
    lua_setfield(L, -2, "body");
  }
}

/* ---- endpoints registered at run time ----------------------------------------------- */

static const char *const body_kinds[] = { "none", "json", "raw", NULL };

static void copy_field(lua_State *L, int spec, const char *k, char *dst, size_t cap, const char *def) {
  size_t n;
  const char *s;
  a0c_rawgetfield(L, spec, k);
  s = lua_isnil(L, -1) && def != NULL ? def : luaL_checklstring(L, -1, &n);
  if (s == def) n = strlen(def);
  if (n == 0 || n >= cap || a0_has_ctl(s, n) || strpbrk(s, " ?#") != NULL)
    luaL_argerror(L, 3, lua_pushfstring(L, "field '%s': 1..%d bytes without spaces, '?' or '#' expected", k, (int)cap - 1));
  memcpy(dst, s, n + 1);
  lua_pop(L, 1);
}

/* client:register_endpoint(name, { method = "GET", path = "/x/", body = "none"|"json"|"raw",
 * auth = "none"|"bearer", verbatim = bool }): an endpoint of this client only, beside the
 * shipped table (whose names it cannot take). Fields are not allowed in its calls; "json"
 * and "raw" bodies come whole from opts.body. */
int a0l_client_register(lua_State *L) {
  const char *name;
  reg_endpoint *r;
  static const a0_field none[] = { {NULL, 0, NULL} };
  luaL_checkudata(L, 1, CLIENT_MT);
  name = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  for (const a0_endpoint *ep = a0_endpoints; ep->name != NULL; ep++)
    if (strcmp(ep->name, name) == 0) luaL_argerror(L, 2, "names a shipped endpoint");
  r = a0c_newuserdata(L, sizeof *r);
  memset(r, 0, sizeof *r);
  copy_field(L, 3, "method", r->method, sizeof r->method, "GET");
  copy_field(L, 3, "path", r->path, sizeof r->path, NULL);
  if (r->path[0] != '/') luaL_argerror(L, 3, "field 'path' must start with '/'");
  if (strlen(name) == 0 || strlen(name) >= sizeof r->name) luaL_argerror(L, 2, "1..63 bytes expected");
  strcpy(r->name, name);
  a0c_rawgetfield(L, 3, "body");
  r->ep.body = luaL_checkoption(L, -1, "none", body_kinds);
  if (r->ep.body == A0_BODY_JSON) r->ep.body = A0_BODY_RAW;   /* a JSON text, given whole */
  a0c_rawgetfield(L, 3, "auth");
  r->ep.auth = luaL_checkoption(L, -1, "none", (const char *const[]){ "none", "bearer", NULL });
  a0c_rawgetfield(L, 3, "verbatim");
  r->ep.verbatim = lua_toboolean(L, -1);
  lua_pop(L, 3);
  r->ep.name = r->name;
  r->ep.method = r->method;
  r->ep.path = r->path;
  r->ep.fields = none;
  a0c_getuservalue(L, 1);
  lua_getfield(L, -1, "endpoints");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "endpoints");
  }
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, name);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.limits and core.header_fields: the caps and names the Lua side must not restate. */
void a0l_open_call(lua_State *L) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, A0_MAX_VALUE);
  lua_setfield(L, -2, "max_value");
  lua_pushinteger(L, A0_MAX_RAW_BODY);
  lua_setfield(L, -2, "max_request_body");
  lua_pushinteger(L, 1024 * 1024);
  lua_setfield(L, -2, "max_body");
  lua_pushinteger(L, A0_HDR_MAX - 1);
  lua_setfield(L, -2, "max_header_value");
  lua_pushinteger(L, 86400);
  lua_setfield(L, -2, "max_timeout");
  lua_pushinteger(L, 3600000);
  lua_setfield(L, -2, "max_poll_ms");
  lua_setfield(L, -2, "limits");
  lua_createtable(L, 0, A0_NHDR);
  for (int h = 0; h < A0_NHDR; h++) {
    lua_pushstring(L, a0_header_field(h));
    lua_setfield(L, -2, a0_header_wire(h));
  }
  lua_setfield(L, -2, "header_fields");
}
