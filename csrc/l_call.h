/* Request building for the client binding (l_call.c): endpoint lookup, argument checks
 * that raise in luaL_argerror's form, and filling a transfer. Binding files only. */
#ifndef L_CALL_H
#define L_CALL_H

#include "a0_lua.h"
#include "a0_http.h"
#include "a0_endpoints.h"

struct curl_slist;

#define A0L_MAX_FIELDS 16   /* fields of one endpoint (the shipped table has at most 7) */

typedef struct {
  const a0_endpoint *ep;
  int t;                    /* stack index of the fields table (may be nil) */
  int o;                    /* stack index of the options table (may be nil) */
  int kv, kvn;              /* fields also given as kvn stack slots of key, value pairs from kv
                               (client:fetch's hot calls: no table to make); 0, 0: none */
  const char *fn;           /* public function name for errors (opts.fn, else the endpoint's) */
  int arg;                  /* its argument holding the fields (opts.arg, else 1) */
  const char *bearer, *lang, *seg, *query, *raw, *fwd;
  size_t blen, llen, plen, qlen, rlen, flen;
  long timeout_ms;
  unsigned opts_has;        /* which known options opts holds (checks read only those) */
  unsigned present;         /* bit i: the fields table holds ep->fields[i] */
  unsigned plain;           /* bit i: its string value needs no JSON escape */
  const char *val[A0L_MAX_FIELDS];   /* string fields as checked, anchored by the table */
  size_t vlen[A0L_MAX_FIELDS];
} a0l_call;

/* Checks (endpoint at e, fields at t, opts at o) of the client at ci; raises on misuse and
 * allocates nothing that a raise could leak. */
void a0l_check_call(lua_State *L, a0l_call *a, int ci, int e, int t, int o);
/* The same with fields also as key, value pairs in the kvn stack slots from kv: string keys,
 * string values (nil: absent); a field given twice is misuse. */
void a0l_check_call_kv(lua_State *L, a0l_call *a, int ci, int e, int t, int o, int kv, int kvn);
/* Fills x (idle) from checked arguments. Returns 0, or -1 with a message on the stack. */
int a0l_fill(lua_State *L, a0_xfer *x, const a0l_call *a, const a0_buf *base,
             const struct curl_slist *fixed_headers);
/* Pushes { method, url, headers = {lowercase}, body, timeout } of a filled x. */
void a0l_push_built(lua_State *L, a0_xfer *x, const a0l_call *a);
/* l_json.c: whether the value at i is a checker of core.kinds; the fused decode of a flat
 * JSON object that fits such a checker (at spec): 1 and the table pushed, or 0. */
int a0l_is_kinds(lua_State *L, int i);
int a0l_flat_fit(lua_State *L, int spec, const char *s, size_t n);
/* client:register_endpoint(name, { method=, path=, body=, verbatim= }) */
int a0l_client_register(lua_State *L);

#endif
