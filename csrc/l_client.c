/* Binding of the HTTP engine: the core client (one engine, one connection pool) and its
 * transfer handles. C hands over completions and nothing else: client:start returns a
 * handle, client:poll drives the engine without running Lua, client:take hands over one
 * finished transfer; lua/auth0/sched.lua owns callbacks, budgets and timers. Request
 * building and its argument checks (the contract with the Lua front) are in l_call.c. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "a0_lua.h"
#include "a0_http.h"
#include "a0_enc.h"
#include "l_call.h"

#define CLIENT_MT "auth0.Client"
#define HANDLE_MT "auth0.core.Transfer"
#define POOL_MAX 64

typedef struct l_req l_req;

typedef struct {
  a0_engine *eng;
  a0_buf base;              /* "https://host:port", no trailing slash */
  struct curl_slist *static_headers;
  a0_xfer *pool[POOL_MAX];
  int npool;
  l_req *inflight;          /* doubly linked */
  int ninflight;
  int closed;
  int fail_run, fail_start; /* test hooks: the next poll sees a multi failure, the next
                               start fails to start */
  long requests;
  /* the captured headers of the last 2xx answer of client:fetch, for client:last_headers */
  char last_hdr[A0_NHDR][A0_HDR_MAX];
  int has_last;
  struct timespec t0;       /* when the last client:fetch began (client:started) */
} l_client;

struct l_req {
  a0_xfer *x;
  l_client *c;
  l_req *prev, *next;
  int self_ref;             /* anchors the handle while in flight, until taken */
  const char *what;         /* endpoint name, for tostring */
  int done;
  int held;                 /* filled, not started yet: client:launch starts it */
};

/* The methods have the client metatable as upvalue 1 (createmeta): comparing with it spares
 * luaL_checkudata's registry lookup by name on each call; anything else takes that path,
 * which also raises the usual error. */
static l_client *check_client(lua_State *L, int i) {
  l_client *c = lua_touserdata(L, i);
  int same = c != NULL && lua_getmetatable(L, i);
  if (same) {
    same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
  }
  if (!same) c = luaL_checkudata(L, i, CLIENT_MT);
  if (c->closed) luaL_error(L, "attempt to use a closed auth0.Client");
  return c;
}

/* ---- request building: l_call.c ------------------------------------------------- */

typedef a0l_call call_args;

static void check_call(lua_State *L, call_args *a, int e, int t, int o) {
  a0l_check_call(L, a, 1, e, t, o);
}

static void check_call_kv(lua_State *L, call_args *a, int e, int t, int o, int kv, int kvn) {
  a0l_check_call_kv(L, a, 1, e, t, o, kv, kvn);
}

static int fill(lua_State *L, l_client *c, a0_xfer *x, const call_args *a) {
  return a0l_fill(L, x, a, &c->base, c->static_headers);
}

static void give_xfer(l_client *c, a0_xfer *x) {
  a0_xfer_reset(x);
  if (c->npool < POOL_MAX && !c->closed) c->pool[c->npool++] = x;
  else a0_xfer_free(x);
}

/* Transfers cancelled while the I/O thread held them come back here. */
static void reap(l_client *c) {
  a0_xfer *x;
  while ((x = a0_engine_pop_released(c->eng)) != NULL) give_xfer(c, x);
}

static a0_xfer *take_xfer(l_client *c) {
  reap(c);
  return c->npool > 0 ? c->pool[--c->npool] : a0_xfer_new();
}

/* Pushes the table of the captured headers (x's, or the client's last when x is NULL). */
static void push_headers(lua_State *L, a0_xfer *x, const l_client *c) {
  lua_createtable(L, 0, 4);   /* content type and the three rate-limit headers: no rehash */
  for (int h = 0; h < A0_NHDR; h++) {
    const char *v = x != NULL ? a0_xfer_header(x, h) : c->last_hdr[h];
    if (v[0] == '\0') continue;
    lua_pushstring(L, v);
    lua_setfield(L, -2, a0_header_field(h));
  }
}

/* Pushes status, body, headers (success) or nil, code, message; returns the count. */
static int push_result(lua_State *L, a0_xfer *x) {
  if (x->err != A0_OK) {
    lua_pushnil(L);
    lua_pushstring(L, a0_err_name(x->err));
    lua_pushstring(L, x->errmsg);
    return 3;
  }
  lua_pushinteger(L, x->status);
  lua_pushlstring(L, x->resp.data ? x->resp.data : "", x->resp.len);
  push_headers(L, x, NULL);
  return 3;
}

/* client:fetch's result: a 2xx answer without its header table (the call path needs the
 * headers only for an error, from client:last_headers), and with a checker of core.kinds at
 * spec, decoded when a0l_flat_fit takes it (status, false, table); anything else as push_result. */
static int push_lazy(lua_State *L, l_client *c, a0_xfer *x, int spec) {
  if (x->err != A0_OK || x->status < 200 || x->status > 299) return push_result(L, x);
  for (int h = 0; h < A0_NHDR; h++) {
    const char *v = a0_xfer_header(x, h);
    if (v[0] == '\0') { c->last_hdr[h][0] = '\0'; continue; }   /* most are absent */
    memcpy(c->last_hdr[h], v, strlen(v) + 1);   /* under A0_HDR_MAX: the capture bounds it */
  }
  c->has_last = 1;
  lua_pushinteger(L, x->status);
  if (spec != 0 && x->resp.len > 0 && a0l_flat_fit(L, spec, x->resp.data, x->resp.len)) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 3;
  }
  lua_pushlstring(L, x->resp.data ? x->resp.data : "", x->resp.len);
  return 2;
}

/* ---- client ------------------------------------------------------------------ */

static long opt_ms(lua_State *L, int t, const char *k, double def) {
  double v;
  a0c_rawgetfield(L, t, k);
  v = luaL_optnumber(L, -1, def);
  lua_pop(L, 1);
  if (!(v > 0 && v <= 86400)) luaL_error(L, "option '%s' must be a number of seconds in (0, 86400]", k);
  return v * 1000 < 1 ? 1 : (long)(v * 1000);   /* 0 would mean "no timeout" to libcurl */
}

/* core.client{ base_url=, timeout=, connect_timeout=, ca_file=, insecure=, max_body=, threaded=,
 *              headers={...} } */
static int l_client_new(lua_State *L) {
  a0_engine_opts o;
  l_client *c;
  size_t blen;
  const char *base, *ca;
  char err[256];
  luaL_checktype(L, 1, LUA_TTABLE);
  a0c_rawgetfield(L, 1, "base_url");
  base = luaL_checklstring(L, -1, &blen);
  lua_pop(L, 1);
  memset(&o, 0, sizeof o);
  o.timeout_ms = opt_ms(L, 1, "timeout", 10);
  o.connect_timeout_ms = opt_ms(L, 1, "connect_timeout", 5);
  a0c_rawgetfield(L, 1, "ca_file");
  ca = luaL_optstring(L, -1, NULL);
  a0c_rawgetfield(L, 1, "insecure");
  o.insecure = lua_toboolean(L, -1);
  a0c_rawgetfield(L, 1, "max_body");
  o.max_body = (size_t)luaL_optinteger(L, -1, 1024 * 1024);
  a0c_rawgetfield(L, 1, "threaded");
  o.threaded = lua_toboolean(L, -1);
  lua_pop(L, 3);   /* ca string stays referenced by the options table */
  o.ca_file = ca;
  /* a safe closed state first, so __gc after a raise below frees nothing twice */
  c = a0c_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->closed = 1;
  luaL_setmetatable(L, CLIENT_MT);
  while (blen > 0 && base[blen - 1] == '/') blen--;
  if (a0_buf_add(&c->base, base, blen) != 0) return luaL_error(L, "out of memory");
  a0c_rawgetfield(L, 1, "headers");
  if (!lua_isnil(L, -1)) {
    luaL_checktype(L, -1, LUA_TTABLE);
    for (int i = 1; i <= (int)a0c_rawlen(L, -1); i++) {
      size_t hl;
      const char *h;
      lua_rawgeti(L, -1, i);
      h = luaL_checklstring(L, -1, &hl);
      if (a0_has_ctl(h, hl)) return luaL_error(L, "header %d contains CR, LF or NUL", i);
      struct curl_slist *n = curl_slist_append(c->static_headers, h);
      if (n == NULL) return luaL_error(L, "out of memory");
      c->static_headers = n;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  c->eng = a0_engine_new(&o, err, sizeof err);
  if (c->eng == NULL) return luaL_error(L, "could not create the HTTP engine: %s", err);
  c->closed = 0;
  lua_newtable(L);   /* user value: what registers on the client (register_endpoint) */
  a0c_setuservalue(L, -2);
  return 1;
}

static void link_req(l_client *c, l_req *r) {
  r->next = c->inflight;
  if (c->inflight) c->inflight->prev = r;
  c->inflight = r;
  if (!r->held) c->ninflight++;
}

static void unlink_req(l_client *c, l_req *r) {
  if (r->prev) r->prev->next = r->next; else c->inflight = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
  if (!r->held) c->ninflight--;
}

/* Ends r's life as an in-flight handle: unlinked, unanchored, its transfer back in the
 * pool (or, when the I/O thread still holds it, handed back later through reap). */
static void retire(lua_State *L, l_req *r, int cancel) {
  l_client *c = r->c;
  if (cancel && !r->held && a0_engine_cancel(c->eng, r->x)) r->x = NULL;
  unlink_req(c, r);
  r->done = 1;
  if (r->x != NULL) give_xfer(c, r->x);
  r->x = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, r->self_ref);
  r->self_ref = LUA_NOREF;
}

static void release_engine(l_client *c) {   /* also frees a half-built client */
  for (int i = 0; i < c->npool; i++) a0_xfer_free(c->pool[i]);
  c->npool = 0;
  a0_engine_free(c->eng);
  c->eng = NULL;
  curl_slist_free_all(c->static_headers);
  c->static_headers = NULL;
  a0_buf_free(&c->base);
}

/* client:close() -> true: drops every transfer in flight (their owner reports them). */
static int l_client_close(lua_State *L) {
  l_client *c = luaL_checkudata(L, 1, CLIENT_MT);
  if (!c->closed) {
    c->closed = 1;
    while (c->inflight != NULL) retire(L, c->inflight, 1);
    release_engine(c);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_client_tostring(lua_State *L) {
  l_client *c = luaL_checkudata(L, 1, CLIENT_MT);
  if (c->closed) lua_pushliteral(L, "auth0.Client (closed)");
  else lua_pushfstring(L, "auth0.Client (%p)", (void *)c);
  return 1;
}

/* client:request(endpoint, fields, opts) -> status, body, headers | nil, code, message */
static int request(lua_State *L, int lazy) {
  l_client *c = check_client(L, 1);
  call_args a;
  a0_xfer *x;
  int n, spec = 0, kvn = lazy && lua_gettop(L) > 5 ? lua_gettop(L) - 5 : 0;
  c->has_last = 0;
  if (lazy) clock_gettime(CLOCK_MONOTONIC, &c->t0);
  if (kvn == 0) lua_settop(L, lazy ? 5 : 4);
  if (lazy && !lua_isnil(L, 5)) {
    luaL_argcheck(L, a0l_is_kinds(L, 5), 5, "a checker of core.kinds expected");
    spec = 5;
  }
  check_call_kv(L, &a, 2, 3, 4, 6, kvn);
  x = take_xfer(c);
  if (x == NULL) return luaL_error(L, "out of memory");
  if (fill(L, c, x, &a) != 0) {
    give_xfer(c, x);
    return luaL_error(L, "%s", lua_tostring(L, -1));
  }
  c->requests++;
  if (a0_xfer_start(c->eng, x) != 0) {
    give_xfer(c, x);
    lua_pushnil(L);
    lua_pushliteral(L, "network");
    lua_pushliteral(L, "could not start the transfer");
    return 3;
  }
  a0_engine_wait(c->eng, x);
  n = lazy ? push_lazy(L, c, x, spec) : push_result(L, x);
  give_xfer(c, x);
  return n;
}

static int l_client_request(lua_State *L) { return request(L, 0); }

/* client:fetch(endpoint, fields, opts[, checker[, key, value, ...]]) -> status, body (2xx) |
 * status, false, table (2xx decoded: a0l_flat_fit) | as client:request. Fields are the table's
 * (nil: none) and the string pairs after the checker (a nil value: absent), so that a hot
 * call makes no table. */
static int l_client_fetch(lua_State *L) { return request(L, 1); }

/* client:started() -> when the last client:fetch began, on core.now's clock: the call path
 * needs it only when an answer does not end the call (a retry's deadline), so it does not
 * read the clock itself before each request. */
static int l_client_started(lua_State *L) {
  l_client *c = check_client(L, 1);
  lua_pushnumber(L, (lua_Number)c->t0.tv_sec + c->t0.tv_nsec / 1e9);
  return 1;
}

/* client:last_headers() -> the headers of the last 2xx answer of client:fetch | nil (another
 * call of this client began since) */
static int l_client_last_headers(lua_State *L) {
  l_client *c = check_client(L, 1);
  if (!c->has_last) return 0;
  push_headers(L, NULL, c);
  return 1;
}

/* client:build(endpoint, fields, opts) -> { method, url, headers = {lowercase}, body } */
static int l_client_build(lua_State *L) {
  l_client *c = check_client(L, 1);
  call_args a;
  a0_xfer *x;
  lua_settop(L, 4);
  check_call(L, &a, 2, 3, 4);
  x = take_xfer(c);
  if (x == NULL) return luaL_error(L, "out of memory");
  if (fill(L, c, x, &a) != 0) {
    give_xfer(c, x);
    return luaL_error(L, "%s", lua_tostring(L, -1));
  }
  a0l_push_built(L, x, &a);   /* (a memory error in it loses x: one transfer, as before) */
  give_xfer(c, x);
  return 1;
}

/* Starts the filled transfer of r: 0, or -1 with r retired and nil, "network", message pushed. */
static int launch(lua_State *L, l_client *c, l_req *r) {
  c->requests++;
  if (c->fail_start || a0_xfer_start(c->eng, r->x) != 0) {
    c->fail_start = 0;
    retire(L, r, 0);
    lua_pushnil(L);
    lua_pushliteral(L, "network");
    lua_pushliteral(L, "could not start the transfer");
    return -1;
  }
  r->held = 0;
  c->ninflight++;
  return 0;
}

/* A new handle for a transfer to `what`, on the stack and anchored (unreachable from Lua
 * until client:take hands it over): the only allocations of a start that can raise. */
static l_req *new_handle(lua_State *L, l_client *c, const char *what) {
  l_req *r = a0c_newuserdata(L, sizeof *r);
  memset(r, 0, sizeof *r);
  r->self_ref = LUA_NOREF;
  r->done = 1;
  r->c = c;
  r->what = what;
  luaL_setmetatable(L, HANDLE_MT);
  lua_pushvalue(L, -1);
  r->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return r;
}

/* client:start(endpoint, fields, opts[, hold]) -> handle | nil, "network", message
 * With hold, the request is checked and filled now and sent by client:launch later. */
static int l_client_start(lua_State *L) {
  l_client *c = check_client(L, 1);
  call_args a;
  l_req *r;
  a0_xfer *x;
  c->has_last = 0;
  lua_settop(L, 5);
  check_call(L, &a, 2, 3, 4);
  r = new_handle(L, c, a.ep->name);
  x = take_xfer(c);
  if (x == NULL || fill(L, c, x, &a) != 0) {
    if (x != NULL) give_xfer(c, x);
    luaL_unref(L, LUA_REGISTRYINDEX, r->self_ref);
    r->self_ref = LUA_NOREF;
    return luaL_error(L, "%s", x == NULL ? "out of memory" : lua_tostring(L, -1));
  }
  r->x = x;
  x->ud = r;
  r->done = 0;
  r->held = 1;
  link_req(c, r);
  if (lua_toboolean(L, 5)) return 1;
  return launch(L, c, r) == 0 ? 1 : 3;
}

/* client:launch(handle) -> true | nil, "network", message: sends a held request. */
static int l_client_launch(lua_State *L) {
  l_client *c = check_client(L, 1);
  l_req *r = luaL_checkudata(L, 2, HANDLE_MT);
  luaL_argcheck(L, r->c == c && !r->done && r->held, 2, "not a held request of this client");
  if (launch(L, c, r) != 0) return 3;
  lua_pushboolean(L, 1);
  return 1;
}

/* client:poll(ms) -> number in flight | nil, "network", message. Runs no Lua: finished
 * transfers wait for client:take. */
static int l_client_poll(lua_State *L) {
  l_client *c = check_client(L, 1);
  lua_Integer ms = luaL_optinteger(L, 2, 0);
  a0_xfer *x;
  int rc;
  luaL_argcheck(L, ms >= 0 && ms <= 3600000, 2, "must be 0..3600000 milliseconds");
  reap(c);
  /* a transfer finished during a blocking call is already waiting: do not sleep */
  if (ms > 0 && ((x = a0_engine_pop_done(c->eng)) != NULL || a0_engine_running(c->eng) == 0)) {
    if (x != NULL) a0_engine_unpop(c->eng, x);
    ms = 0;
  }
  rc = c->fail_run ? A0_RUN_FAILED : a0_engine_run(c->eng, (int)ms);
  if (rc == A0_RUN_FAILED) {   /* A0_RUN_BUSY (the I/O thread held the lock) is no failure */
    lua_pushnil(L);
    lua_pushliteral(L, "network");
    lua_pushstring(L, c->fail_run ? "curl_multi_perform failed (test hook)" : a0_engine_errmsg(c->eng));
    c->fail_run = 0;
    return 3;
  }
  lua_pushinteger(L, c->ninflight);
  return 1;
}

/* client:take() -> handle, status, body, headers | handle, nil, code, message | nil */
static int l_client_take(lua_State *L) {
  l_client *c = check_client(L, 1);
  a0_xfer *x = a0_engine_pop_done(c->eng);
  l_req *r;
  if (x == NULL) return 0;
  r = x->ud;
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->self_ref);
  push_result(L, x);
  retire(L, r, 0);
  return 4;
}

/* client:_fail_next("poll" | "start"): test hook, the next one fails as a libcurl failure would. */
static int l_client_fail_next(lua_State *L) {
  static const char *const what[] = { "poll", "start", NULL };
  l_client *c = check_client(L, 1);
  if (luaL_checkoption(L, 2, NULL, what) == 0) c->fail_run = 1; else c->fail_start = 1;
  return 0;
}

/* client:idle(ms): waits for a timer of the Lua side; wakeup() ends it early */
static int l_client_idle(lua_State *L) {
  l_client *c = check_client(L, 1);
  lua_Integer ms = luaL_checkinteger(L, 2);
  luaL_argcheck(L, ms >= 0 && ms <= 3600000, 2, "must be 0..3600000 milliseconds");
  a0_engine_idle(c->eng, (int)ms);
  return 0;
}

static int l_client_wakeup(lua_State *L) {
  l_client *c = check_client(L, 1);
  a0_engine_wakeup(c->eng);
  return 0;
}

static int l_client_stats(lua_State *L) {
  l_client *c = check_client(L, 1);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, a0_engine_connects(c->eng));
  lua_setfield(L, -2, "connects");
  lua_pushinteger(L, c->requests);
  lua_setfield(L, -2, "requests");
  lua_pushinteger(L, c->ninflight);
  lua_setfield(L, -2, "inflight");
  return 1;
}

/* ---- transfer handle --------------------------------------------------------- */

/* handle:cancel() -> true if it was in flight (nothing is reported: the owner does that) */
static int l_req_cancel(lua_State *L) {
  l_req *r = luaL_checkudata(L, 1, HANDLE_MT);
  int live = !r->done && !r->c->closed;   /* done once its client closed */
  if (live) retire(L, r, 1);
  lua_pushboolean(L, live);
  return 1;
}

static int l_req_tostring(lua_State *L) {
  l_req *r = luaL_checkudata(L, 1, HANDLE_MT);
  lua_pushfstring(L, HANDLE_MT " (%s, %s)", r->what ? r->what : "?", r->done ? "done" : "in flight");
  return 1;
}

/* Only reached at lua_close for a handle still in flight (its registry reference anchors
 * it otherwise): the client's memory is still there while finalizers run. */
static int l_req_gc(lua_State *L) {
  l_req *r = luaL_checkudata(L, 1, HANDLE_MT);
  if (!r->done && !r->c->closed) retire(L, r, 1);
  return 0;
}

static int l_client_gc(lua_State *L) {
  l_client *c = luaL_checkudata(L, 1, CLIENT_MT);
  if (!c->closed) return l_client_close(L);
  release_engine(c);   /* idempotent; frees a client whose creation raised */
  return 0;
}

static const luaL_Reg client_methods[] = {
  {"request", l_client_request}, {"fetch", l_client_fetch}, {"last_headers", l_client_last_headers},
  {"started", l_client_started},
  {"start", l_client_start}, {"build", l_client_build},
  {"poll", l_client_poll}, {"take", l_client_take}, {"launch", l_client_launch}, {"idle", l_client_idle},
  {"wakeup", l_client_wakeup}, {"stats", l_client_stats}, {"close", l_client_close},
  {"register_endpoint", a0l_client_register}, {"_fail_next", l_client_fail_next}, {NULL, NULL}
};
static const luaL_Reg client_meta[] = {
  {"__gc", l_client_gc}, {"__close", l_client_gc}, {"__tostring", l_client_tostring}, {NULL, NULL}
};
static const luaL_Reg handle_methods[] = { {"cancel", l_req_cancel}, {NULL, NULL} };
static const luaL_Reg handle_meta[] = {
  {"__gc", l_req_gc}, {"__tostring", l_req_tostring}, {NULL, NULL}
};
static const luaL_Reg core_funcs[] = { {"client", l_client_new}, {NULL, NULL} };

/* A metatable name with its metamethods, and methods that hold it as upvalue 1. */
static void createmeta(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  a0c_setfuncs(L, meta);
  lua_newtable(L);
  for (; methods->name != NULL; methods++) {
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, methods->func, 1);
    lua_setfield(L, -2, methods->name);
  }
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void a0l_open_client(lua_State *L) {
  createmeta(L, CLIENT_MT, client_meta, client_methods);
  createmeta(L, HANDLE_MT, handle_meta, handle_methods);
  a0c_setfuncs(L, core_funcs);
  lua_newtable(L);
  for (const a0_endpoint *ep = a0_endpoints; ep->name != NULL; ep++) {
    lua_pushstring(L, ep->method);
    lua_setfield(L, -2, ep->name);
  }
  lua_setfield(L, -2, "endpoints");
}
