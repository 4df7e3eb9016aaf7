/* Binding for the crypto engine (a0_crypto.c): encoders, digests, OTP and auth0.Key. */
#define _GNU_SOURCE   /* dladdr, RTLD_NODELETE */
#include <dlfcn.h>
#include <errno.h>
#include <unistd.h>

#include "a0_crypto.h"
#include "a0_lua.h"

#define KEY_MT "auth0.Key"
#define VJOB_MT "auth0.VerifyJob"

#define VWORKER_MT "auth0.VerifyWorker"

typedef struct {
  a0_verify_job *job;   /* NULL once collected */
  pid_t pid;            /* the process that started it: a forked child has no such thread */
} l_vjob;

typedef struct {
  a0_verify_worker *w;   /* NULL once collected */
  pid_t pid;             /* the process that made it: a forked child has no such thread */
} l_vworker;

typedef struct {
  a0_key *key;   /* NULL once collected or closed */
} l_key;

/* A number >= 0 that fits uint64_t. With `whole`, it must be integral (a counter); else a
 * fraction is floored (a Unix time may carry one). */
static uint64_t check_u64(lua_State *L, int i, int whole) {
  lua_Number x;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, i)) {
    lua_Integer v = lua_tointeger(L, i);
    luaL_argcheck(L, v >= 0, i, whole ? "must be an integer >= 0" : "must be >= 0");
    return (uint64_t)v;
  }
#endif
  x = luaL_checknumber(L, i);
  luaL_argcheck(L, x >= 0 && x < 18446744073709551616.0 && (!whole || (lua_Number)(uint64_t)x == x), i,
                whole ? "must be an integer >= 0" : "must be >= 0");
  return (uint64_t)x;
}

#define check_uint(L, i) check_u64((L), (i), 1)
#define check_time(L, i) check_u64((L), (i), 0)

static int check_digits(lua_State *L, int i) {
  uint64_t d = check_uint(L, i);
  luaL_argcheck(L, d >= 6 && d <= A0_OTP_MAX, i, "digits must be in 6..10");
  return (int)d;
}

static a0_hash_alg check_alg(lua_State *L, int i) {
  a0_hash_alg alg = A0_SHA1;
  if (a0_hash_alg_parse(luaL_checkstring(L, i), &alg) != 0)
    luaL_argerror(L, i, "algorithm must be SHA1, SHA256 or SHA512");
  return alg;
}

/* Scratch memory owned by the Lua GC, so a raised error cannot leak it. */
static unsigned char *scratch(lua_State *L, size_t n) {
  return (unsigned char *)a0c_newuserdata(L, n > 0 ? n : 1);
}

static int l_random_bytes(lua_State *L) {
  uint64_t n = check_uint(L, 1);
  unsigned char *buf;
  luaL_argcheck(L, n >= 1 && n <= A0_RANDOM_MAX, 1, "must be in 1..4096");
  buf = scratch(L, (size_t)n);
  if (a0_random_bytes(buf, (size_t)n) != 0) return luaL_error(L, "random generator failed");
  lua_pushlstring(L, (const char *)buf, (size_t)n);
  return 1;
}

static int push_b64(lua_State *L, int url) {
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  char *out = (char *)scratch(L, a0_b64_encoded_len(n, url));
  lua_pushlstring(L, out, a0_b64_encode(s, n, out, url));
  return 1;
}

static int push_b64_decoded(lua_State *L, int url) {
  size_t n, len = 0;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned char *out = scratch(L, a0_b64_decoded_max(n));
  char err[96];
  if (a0_b64_decode(s, n, out, &len, url, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushlstring(L, (const char *)out, len);
  return 1;
}

static int l_b64url_encode(lua_State *L) { return push_b64(L, 1); }
static int l_b64url_decode(lua_State *L) { return push_b64_decoded(L, 1); }
static int l_b64_encode(lua_State *L) { return push_b64(L, 0); }
static int l_b64_decode(lua_State *L) { return push_b64_decoded(L, 0); }

static int l_base32_encode(lua_State *L) {
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  char *out = (char *)scratch(L, a0_base32_encoded_len(n));
  lua_pushlstring(L, out, a0_base32_encode(s, n, out));
  return 1;
}

static int l_base32_decode(lua_State *L) {
  size_t n, len = 0;
  const char *s = luaL_checklstring(L, 1, &n);
  size_t cap = a0_base32_decoded_max(n);
  unsigned char *out = scratch(L, cap);
  char err[96];
  if (a0_base32_decode(s, n, out, &len, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushlstring(L, (const char *)out, len);
  a0_wipe(out, cap);
  return 1;
}

static int l_sha256(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned char md[A0_SHA256_LEN];
  if (a0_sha256(s, n, md) != 0) return luaL_error(L, "sha256 failed");
  lua_pushlstring(L, (const char *)md, sizeof md);
  return 1;
}

static int l_hmac(lua_State *L) {
  a0_hash_alg alg = check_alg(L, 1);
  size_t klen, n, len = 0;
  const char *key = luaL_checklstring(L, 2, &klen);
  const char *data = luaL_checklstring(L, 3, &n);
  unsigned char mac[A0_HMAC_MAX];
  if (a0_hmac(alg, key, klen, data, n, mac, &len) != 0) return luaL_error(L, "hmac failed");
  lua_pushlstring(L, (const char *)mac, len);
  a0_wipe(mac, sizeof mac);
  return 1;
}

static int push_otp(lua_State *L, int rc, char *code) {
  if (rc != 0) return luaL_error(L, "otp computation failed");
  lua_pushstring(L, code);
  a0_wipe(code, A0_OTP_MAX + 1);
  return 1;
}

static int l_hotp(lua_State *L) {
  size_t klen;
  const unsigned char *key = (const unsigned char *)luaL_checklstring(L, 1, &klen);
  uint64_t counter = check_uint(L, 2);
  int digits = check_digits(L, 3);
  a0_hash_alg alg = check_alg(L, 4);
  char code[A0_OTP_MAX + 1];
  return push_otp(L, a0_hotp(alg, key, klen, counter, digits, code), code);
}

static int l_totp(lua_State *L) {
  size_t klen;
  const unsigned char *key = (const unsigned char *)luaL_checklstring(L, 1, &klen);
  uint64_t t = check_time(L, 2);
  uint64_t period = check_uint(L, 3);
  int digits = check_digits(L, 4);
  a0_hash_alg alg = check_alg(L, 5);
  char code[A0_OTP_MAX + 1];
  luaL_argcheck(L, period >= 1, 3, "period must be >= 1");
  return push_otp(L, a0_totp(alg, key, klen, t, period, digits, code), code);
}

/* Decodes a JWK's base64url n and e (args 1, 2) into a public key, or NULL. */
static a0_key *jwk_public(lua_State *L) {
  size_t nl, el, nlen = 0, elen = 0;
  const char *n64 = luaL_checklstring(L, 1, &nl);
  const char *e64 = luaL_checklstring(L, 2, &el);
  unsigned char *n = scratch(L, a0_b64_decoded_max(nl));
  unsigned char *e = scratch(L, a0_b64_decoded_max(el));
  if (a0_b64_decode(n64, nl, n, &nlen, 1, NULL, 0) != 0 ||
      a0_b64_decode(e64, el, e, &elen, 1, NULL, 0) != 0)
    return NULL;
  return a0_key_from_rsa_public(n, nlen, e, elen);
}

static int l_rs256_verify(lua_State *L) {
  size_t dl, sl;
  const char *data = luaL_checklstring(L, 3, &dl);
  const unsigned char *sig = (const unsigned char *)luaL_checklstring(L, 4, &sl);
  a0_key *k = jwk_public(L);
  lua_pushboolean(L, k != NULL && a0_key_verify_rs256(k, data, dl, sig, sl));
  a0_key_free(k);
  return 1;
}

/* A verification thread runs this module's code: the module must stay loaded after lua_close. */
static void pin_module(void) {
  Dl_info info;
  if (dladdr((void *)pin_module, &info) != 0 && info.dli_fname != NULL)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* A verification job for args i..i+3 (n, e, data, sig) on worker w (NULL: a thread of its
 * own): the job, whose result() is nil while it runs, then true or false; nil, message when
 * it could not start. */
static int start_vjob(lua_State *L, a0_verify_worker *w, int i) {
  size_t nl, el, dl, sl, nlen = 0, elen = 0;
  const char *n64 = luaL_checklstring(L, i, &nl);
  const char *e64 = luaL_checklstring(L, i + 1, &el);
  const char *data = luaL_checklstring(L, i + 2, &dl);
  const unsigned char *sig = (const unsigned char *)luaL_checklstring(L, i + 3, &sl);
  unsigned char *n = scratch(L, a0_b64_decoded_max(nl));
  unsigned char *e = scratch(L, a0_b64_decoded_max(el));
  l_vjob *u;
  if (a0_b64_decode(n64, nl, n, &nlen, 1, NULL, 0) != 0 || a0_b64_decode(e64, el, e, &elen, 1, NULL, 0) != 0)
    nlen = elen = 0;   /* not base64url: a key the thread refuses, as rs256_verify does */
  u = (l_vjob *)a0c_newuserdata(L, sizeof *u);
  u->job = NULL;
  u->pid = getpid();
  luaL_getmetatable(L, VJOB_MT);
  lua_setmetatable(L, -2);
  if (w == NULL) pin_module();
  errno = 0;
  u->job = a0_verify_job_start(w, n, nlen, e, elen, data, dl, sig, sl);
  if (u->job == NULL) {
    lua_pushnil(L);
    if (w != NULL && errno == EAGAIN) lua_pushliteral(L, "the verification queue is full");   /* load, not misuse */
    else lua_pushliteral(L, "could not start a verification");
    return 2;
  }
  return 1;
}

/* core.rs256_verify_start(n, e, data, sig): rs256_verify on a thread of its own. */
static int l_rs256_verify_start(lua_State *L) { return start_vjob(L, NULL, 1); }

static a0_verify_worker *check_vworker(lua_State *L) {
  l_vworker *u = (l_vworker *)luaL_checkudata(L, 1, VWORKER_MT);
  if (u->w == NULL) luaL_argerror(L, 1, "auth0.VerifyWorker is closed");
  if (u->pid != getpid()) {   /* after a fork: a thread of our own (the parent's is not ours to free) */
    a0_verify_worker *w = a0_verify_worker_new();
    if (w == NULL) luaL_error(L, "auth0.VerifyWorker: could not start a verification thread");
    u->w = w;
    u->pid = getpid();
  }
  return u->w;
}

/* worker:verify(n, e, data, sig): the same on the worker's thread. */
static int l_vworker_verify(lua_State *L) { return start_vjob(L, check_vworker(L), 2); }

/* core.rs256_worker(): a thread for RS256 verifications, started now (a loading screen) rather
 * than in the frame of the first one; nil, message when it could not start. */
static int l_rs256_worker(lua_State *L) {
  l_vworker *u = (l_vworker *)a0c_newuserdata(L, sizeof *u);
  u->w = NULL;
  u->pid = getpid();
  luaL_getmetatable(L, VWORKER_MT);
  lua_setmetatable(L, -2);
  pin_module();
  if ((u->w = a0_verify_worker_new()) == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "could not start a verification thread");
    return 2;
  }
  return 1;
}

static int l_vworker_gc(lua_State *L) {
  l_vworker *u = (l_vworker *)luaL_checkudata(L, 1, VWORKER_MT);
  if (u->pid == getpid()) a0_verify_worker_release(u->w);
  u->w = NULL;
  return 0;
}

/* job:result(): nil while the thread works, then true or false; nil, message in a forked
 * child (the parent's thread is not there: check it another way). */
static int l_vjob_result(lua_State *L) {
  l_vjob *u = (l_vjob *)luaL_checkudata(L, 1, VJOB_MT);
  int valid = 0;
  if (u->pid != getpid()) {
    lua_pushnil(L);
    lua_pushliteral(L, "the verification was started before a fork");
    return 2;
  }
  if (u->job == NULL || !a0_verify_job_result(u->job, &valid)) lua_pushnil(L);
  else lua_pushboolean(L, valid);
  return 1;
}

static int l_vjob_gc(lua_State *L) {
  l_vjob *u = (l_vjob *)luaL_checkudata(L, 1, VJOB_MT);
  if (u->pid == getpid()) a0_verify_job_release(u->job);   /* a parent's job: its lock may be held */
  u->job = NULL;
  return 0;
}

/* ---- auth0.Key ------------------------------------------------------------------ */

static a0_key *check_key(lua_State *L, int i) {
  l_key *k = (l_key *)luaL_checkudata(L, i, KEY_MT);
  if (k->key == NULL) luaL_argerror(L, i, "auth0.Key is closed");
  return k->key;
}

static int l_rsa_key(lua_State *L) {
  l_key *k;
  char err[96];
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TSTRING);
  lua_settop(L, 1);
  /* Created closed first, so a failure below leaves a harmless object to collect. */
  k = (l_key *)a0c_newuserdata(L, sizeof *k);
  k->key = NULL;
  luaL_getmetatable(L, KEY_MT);
  lua_setmetatable(L, -2);
  if (lua_isnoneornil(L, 1)) {
    if ((k->key = a0_key_generate(2048)) == NULL) return luaL_error(L, "RSA key generation failed");
  } else {
    size_t n;
    const char *pem = lua_tolstring(L, 1, &n);
    if ((k->key = a0_key_from_pem(pem, n, err, sizeof err)) == NULL) {
      lua_pushnil(L);
      lua_pushstring(L, err);
      return 2;
    }
  }
  return 1;
}

/* core.rsa_public(n, e): a JWK's public key as an auth0.Key, kept to verify many tokens
 * without importing the key each time; nil, message when it is unusable. */
static int l_rsa_public(lua_State *L) {
  l_key *k;
  luaL_checktype(L, 1, LUA_TSTRING);
  luaL_checktype(L, 2, LUA_TSTRING);
  lua_settop(L, 2);
  k = (l_key *)a0c_newuserdata(L, sizeof *k);
  k->key = NULL;
  luaL_getmetatable(L, KEY_MT);
  lua_setmetatable(L, -2);
  k->key = jwk_public(L);
  lua_settop(L, 3);   /* drops jwk_public's scratch buffers */
  if (k->key == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "not a usable RSA public key");
    return 2;
  }
  return 1;
}

static int l_key_verify_rs256(lua_State *L) {
  a0_key *key = check_key(L, 1);
  size_t dl, sl;
  const char *data = luaL_checklstring(L, 2, &dl);
  const unsigned char *sig = (const unsigned char *)luaL_checklstring(L, 3, &sl);
  lua_pushboolean(L, a0_key_verify_rs256(key, data, dl, sig, sl));
  return 1;
}

static int l_key_sign_rs256(lua_State *L) {
  a0_key *key = check_key(L, 1);
  size_t n, len = 0;
  const char *data = luaL_checklstring(L, 2, &n);
  unsigned char *sig = scratch(L, a0_key_size(key));
  if (a0_key_sign_rs256(key, data, n, sig, &len) != 0) return luaL_error(L, "RS256 signing failed");
  lua_pushlstring(L, (const char *)sig, len);
  return 1;
}

static void push_b64url_field(lua_State *L, const char *field, const unsigned char *s, size_t n) {
  char *out = (char *)scratch(L, a0_b64_encoded_len(n, 1));
  lua_pushlstring(L, out, a0_b64_encode(s, n, out, 1));
  lua_setfield(L, -3, field);
  lua_pop(L, 1);
}

static int l_key_jwk(lua_State *L) {
  a0_key *key = check_key(L, 1);
  size_t nlen = 0, elen = 0;
  unsigned char *n = scratch(L, A0_RSA_MAX_LEN);
  unsigned char *e = scratch(L, A0_RSA_MAX_LEN);
  if (a0_key_public(key, n, &nlen, e, &elen) != 0) return luaL_error(L, "could not read RSA key");
  lua_createtable(L, 0, 3);
  lua_pushliteral(L, "RSA");
  lua_setfield(L, -2, "kty");
  push_b64url_field(L, "n", n, nlen);
  push_b64url_field(L, "e", e, elen);
  return 1;
}

static int l_key_pem(lua_State *L) {
  a0_key *key = check_key(L, 1);
  size_t cap = a0_key_pem(key, NULL, 0), len;
  char *buf;
  if (cap == 0) return luaL_error(L, "could not encode RSA key");
  buf = (char *)scratch(L, cap);
  len = a0_key_pem(key, buf, cap);
  if (len != cap) {
    a0_wipe(buf, cap);
    return luaL_error(L, "could not encode RSA key");
  }
  lua_pushlstring(L, buf, len);
  a0_wipe(buf, cap);
  return 1;
}

/* Serves __gc and __close: frees the key once, leaving the object closed. */
static int l_key_gc(lua_State *L) {
  l_key *k = (l_key *)luaL_checkudata(L, 1, KEY_MT);
  a0_key_free(k->key);
  k->key = NULL;
  return 0;
}

static int l_key_tostring(lua_State *L) {
  l_key *k = (l_key *)luaL_checkudata(L, 1, KEY_MT);
  if (k->key == NULL) lua_pushliteral(L, "auth0.Key (closed)");
  else lua_pushfstring(L, "auth0.Key (RSA %d)", a0_key_bits(k->key));
  return 1;
}

static const luaL_Reg key_methods[] = {
  { "sign_rs256", l_key_sign_rs256 },
  { "verify_rs256", l_key_verify_rs256 },
  { "jwk", l_key_jwk },
  { "pem", l_key_pem },
  { NULL, NULL }
};

static const luaL_Reg key_meta[] = {
  { "__gc", l_key_gc },
  { "__close", l_key_gc },
  { "__tostring", l_key_tostring },
  { NULL, NULL }
};

static const luaL_Reg crypto_funcs[] = {
  { "random_bytes", l_random_bytes },
  { "b64url_encode", l_b64url_encode },
  { "b64url_decode", l_b64url_decode },
  { "b64_encode", l_b64_encode },
  { "b64_decode", l_b64_decode },
  { "sha256", l_sha256 },
  { "hmac", l_hmac },
  { "base32_encode", l_base32_encode },
  { "base32_decode", l_base32_decode },
  { "hotp", l_hotp },
  { "totp", l_totp },
  { "rsa_key", l_rsa_key },
  { "rs256_verify", l_rs256_verify },
  { "rsa_public", l_rsa_public },
  { "rs256_verify_start", l_rs256_verify_start },
  { "rs256_worker", l_rs256_worker },
  { NULL, NULL }
};

static const luaL_Reg vworker_meta[] = {
  { "__gc", l_vworker_gc },
  { NULL, NULL }
};

static const luaL_Reg vworker_methods[] = {
  { "verify", l_vworker_verify },
  { NULL, NULL }
};

static const luaL_Reg vjob_meta[] = {
  { "__gc", l_vjob_gc },
  { NULL, NULL }
};

static const luaL_Reg vjob_methods[] = {
  { "result", l_vjob_result },
  { NULL, NULL }
};

void a0l_open_crypto(lua_State *L) {
  a0_crypto_no_atexit();   /* before any OpenSSL use: the verification threads may outlive exit() */
  luaL_newmetatable(L, KEY_MT);
  a0c_setfuncs(L, key_meta);
  lua_newtable(L);
  a0c_setfuncs(L, key_methods);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, KEY_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_newmetatable(L, VJOB_MT);
  a0c_setfuncs(L, vjob_meta);
  lua_newtable(L);
  a0c_setfuncs(L, vjob_methods);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, VJOB_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_newmetatable(L, VWORKER_MT);
  a0c_setfuncs(L, vworker_meta);
  lua_newtable(L);
  a0c_setfuncs(L, vworker_methods);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, VWORKER_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  a0c_setfuncs(L, crypto_funcs);
}
