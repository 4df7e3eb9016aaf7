/* Binding for the credentials store (a0_store.c) and sealed envelopes (a0_seal.c).
 * Expected failures return nil, code, message; misuse raises. */
#define _GNU_SOURCE   /* dladdr, RTLD_NODELETE */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "a0_lua.h"
#include "a0_seal.h"
#include "a0_sig.h"
#include "a0_store.h"

#define LOCK_MT "auth0.StoreLock"
#define JOB_MT "auth0.StoreJob"
#define WORKER_MT "auth0.StoreWorker"
#define HOLD_MT "auth0.SignalHold"

typedef struct {
  int fd;      /* -1 once unlocked */
  pid_t pid;   /* the process that took it: a forked child shares the lock, never releases it */
} l_lock;

static int push_fail(lua_State *L, a0_store_status s, const a0_store_err *e) {
  lua_pushnil(L);
  lua_pushstring(L, a0_store_code(s));
  lua_pushstring(L, e->msg);
  return 3;
}

/* The test-only fault point, from the environment so a spec can arm it in a child process;
 * compiled into the test builds only (-DA0_STORE_FAULTS): a library built for use never lets
 * the environment stall or slow its writes. */
#ifdef A0_STORE_FAULTS
#define FAULTS_ON 1
static a0_store_fault env_fault(void) {
  const char *f = getenv("A0_STORE_FAULT");
  if (f != NULL && strcmp(f, "slow_job") == 0) return A0_FAULT_SLOW_JOB;
  return f != NULL && strcmp(f, "stall_before_rename") == 0 ? A0_FAULT_STALL_BEFORE_RENAME : A0_FAULT_NONE;
}
#else
#define FAULTS_ON 0
static a0_store_fault env_fault(void) { return A0_FAULT_NONE; }
#endif

/* store_read(path[, "config"]): "config" reads a settings file (a0_store_read_config). */
static int l_store_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int config = lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "config") == 0;
  a0_buf b = { 0 };
  a0_store_err e;
  a0_store_status s;
  luaL_argcheck(L, config || lua_isnoneornil(L, 2), 2, "\"config\" or nil expected");
  s = config ? a0_store_read_config(path, &b, &e) : a0_store_read(path, &b, &e);
  if (s != A0_STORE_OK) { a0_buf_free(&b); return push_fail(L, s, &e); }
  lua_pushlstring(L, b.data ? b.data : "", b.len);
  a0_buf_free(&b);
  return 1;
}

static int l_store_write(lua_State *L) {
  size_t n;
  const char *path = luaL_checkstring(L, 1);
  const char *data = luaL_checklstring(L, 2, &n);
  a0_store_err e;
  a0_store_status s = a0_store_write(path, data, n, env_fault(), &e);
  if (s != A0_STORE_OK) return push_fail(L, s, &e);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_store_remove(lua_State *L) {
  a0_store_err e;
  a0_store_status s = a0_store_remove(luaL_checkstring(L, 1), &e);
  if (s != A0_STORE_OK) return push_fail(L, s, &e);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_store_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Number wait = luaL_optnumber(L, 2, 0);
  l_lock *k;
  a0_store_err e;
  a0_store_status s;
  luaL_argcheck(L, wait >= 0 && wait <= 3600, 2, "wait must be seconds in 0..3600");
  k = (l_lock *)a0c_newuserdata(L, sizeof *k);   /* before the lock: a raise cannot leak the fd */
  k->fd = -1;
  k->pid = getpid();
  luaL_getmetatable(L, LOCK_MT);
  lua_setmetatable(L, -2);
  s = a0_store_lock(path, (long)(wait * 1000), &k->fd, &e);
  if (s != A0_STORE_OK) return push_fail(L, s, &e);
  return 1;
}

typedef struct {
  a0_store_job *job;   /* NULL once its result was taken */
  a0_store_op op;
  pid_t pid;           /* the process that started it: a forked child has no such thread */
} l_job;

typedef struct {
  a0_store_worker *w;
  pid_t pid;           /* the process that made it: a forked child has no such thread */
} l_worker;

/* Store jobs run on detached threads that may outlive the Lua state: this module must then
 * stay mapped after lua_close (which unloads C modules), or a thread still finishing a write
 * would run unmapped code. Called before the first thread starts; repeated calls only add a
 * reference to a module that is never unloaded anyway. */
static void pin_module(void) {
  Dl_info info;
  if (dladdr((void *)pin_module, &info) != 0 && info.dli_fname != NULL)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* Starts a job on `w` (NULL: a thread of its own); the userdata exists first, so that a
 * raise cannot leak the job. */
static int start_job(lua_State *L, a0_store_worker *w, a0_store_req *r) {
  a0_store_err e;
  l_job *u = (l_job *)a0c_newuserdata(L, sizeof *u);
  u->job = NULL;
  u->op = r->op;
  u->pid = getpid();
  luaL_getmetatable(L, JOB_MT);
  lua_setmetatable(L, -2);
  r->fault = env_fault();
  if (w == NULL) pin_module();
  u->job = a0_store_job_start(w, r, &e);
  if (u->job == NULL) return push_fail(L, e.status, &e);   /* busy: the worker's queue is full */
  return 1;
}

/* The request of a job from the arguments at `i` on: (op, path[, data | wait]). */
static int job_args(lua_State *L, a0_store_worker *w, a0_store_op op, int i) {
  a0_store_req r = { op, luaL_checkstring(L, i), NULL, 0, 0, A0_FAULT_NONE };
  if (op == A0_JOB_WRITE) r.data = luaL_checklstring(L, i + 1, &r.len);
  if (op == A0_JOB_LOCK) {
    lua_Number wait = luaL_optnumber(L, i + 1, 0);
    luaL_argcheck(L, wait >= 0 && wait <= 3600, i + 1, "wait must be seconds in 0..3600");
    r.lock_ms = (long)(wait * 1000);
  }
  return start_job(L, w, &r);
}

static int l_store_write_async(lua_State *L) { return job_args(L, NULL, A0_JOB_WRITE, 1); }
static int l_store_remove_async(lua_State *L) { return job_args(L, NULL, A0_JOB_REMOVE, 1); }
static int l_store_read_async(lua_State *L) { return job_args(L, NULL, A0_JOB_READ, 1); }
static int l_store_lock_async(lua_State *L) { return job_args(L, NULL, A0_JOB_LOCK, 1); }

static a0_store_worker *check_worker(lua_State *L) {
  l_worker *u = (l_worker *)luaL_checkudata(L, 1, WORKER_MT);
  if (u->w == NULL) luaL_error(L, "auth0.StoreWorker is closed");
  if (u->pid != getpid()) {   /* after a fork: a thread of our own (the parent's is not ours to free) */
    a0_store_err e;
    a0_store_worker *w = a0_store_worker_new(&e);
    if (w == NULL) luaL_error(L, "auth0.StoreWorker: %s", e.msg);
    u->w = w;
    u->pid = getpid();
  }
  return u->w;
}

static int l_worker_write(lua_State *L) { return job_args(L, check_worker(L), A0_JOB_WRITE, 2); }
static int l_worker_remove(lua_State *L) { return job_args(L, check_worker(L), A0_JOB_REMOVE, 2); }
static int l_worker_read(lua_State *L) { return job_args(L, check_worker(L), A0_JOB_READ, 2); }
static int l_worker_lock(lua_State *L) { return job_args(L, check_worker(L), A0_JOB_LOCK, 2); }

/* store_worker(): one thread for a store's jobs, in order (nil, "io", msg when it cannot start). */
static int l_store_worker(lua_State *L) {
  a0_store_err e;
  l_worker *u = (l_worker *)a0c_newuserdata(L, sizeof *u);
  u->w = NULL;
  luaL_getmetatable(L, WORKER_MT);
  lua_setmetatable(L, -2);
  pin_module();
  u->pid = getpid();
  u->w = a0_store_worker_new(&e);
  if (u->w == NULL) return push_fail(L, A0_STORE_IO, &e);
  return 1;
}

static int l_worker_gc(lua_State *L) {
  l_worker *u = (l_worker *)luaL_checkudata(L, 1, WORKER_MT);
  /* never waits: the thread runs what is queued, then ends; a parent's worker in a forked
   * child is left alone (its thread may have held its mutex at the fork) */
  if (u->pid == getpid()) a0_store_worker_release(u->w);
  u->w = NULL;
  return 0;
}

static l_lock *new_lock(lua_State *L) {
  l_lock *k = (l_lock *)a0c_newuserdata(L, sizeof *k);
  k->fd = -1;
  k->pid = getpid();
  luaL_getmetatable(L, LOCK_MT);
  lua_setmetatable(L, -2);
  return k;
}

/* A job started before a fork: its thread is not in this process (the job would never end
 * here) and may have held the job's mutex at the fork, so the child never touches it (its
 * memory is left to the child's exit); true when it was such a job, now dropped. */
static int drop_foreign(l_job *u) {
  if (u->job == NULL || u->pid == getpid()) return 0;
  u->job = NULL;
  return 1;
}

/* job:result(): nothing while the thread works, then what the blocking function returns
 * (taken once: a second call raises). */
static int l_job_result(lua_State *L) {
  l_job *u = (l_job *)luaL_checkudata(L, 1, JOB_MT);
  a0_buf b = { 0 };
  a0_store_err e;
  a0_store_status s;
  l_lock *k = NULL;
  int fd = -1;
  if (u->job == NULL) return luaL_error(L, "auth0.StoreJob: the result was taken already");
  if (drop_foreign(u)) {
    strcpy(e.msg, "the store job was started before a fork: it runs in the parent process");
    return push_fail(L, A0_STORE_IO, &e);
  }
  if (u->op == A0_JOB_LOCK) k = new_lock(L);   /* before the fd is ours: a raise cannot leak it */
  if (!a0_store_job_result(u->job, &s, &b, &fd, &e)) return 0;
  a0_store_job_release(u->job);
  u->job = NULL;
  if (s != A0_STORE_OK) { a0_buf_free(&b); return push_fail(L, s, &e); }
  if (k != NULL) k->fd = fd;
  else if (u->op == A0_JOB_READ) lua_pushlstring(L, b.data ? b.data : "", b.len);
  else lua_pushboolean(L, 1);
  a0_buf_free(&b);
  return 1;
}

/* job:wait(): blocks until the thread is done (the blocking forms, before touching the file). */
static int l_job_wait(lua_State *L) {
  l_job *u = (l_job *)luaL_checkudata(L, 1, JOB_MT);
  if (u->job != NULL && u->pid == getpid()) a0_store_job_wait(u->job);   /* a parent's job: result() says so */
  lua_settop(L, 1);
  return 1;
}

/* job:release() (and __gc): the result is not wanted; never waits: a running thread frees
 * the job when it ends, releasing a lock it took. */
static int l_job_gc(lua_State *L) {
  l_job *u = (l_job *)luaL_checkudata(L, 1, JOB_MT);
  if (!drop_foreign(u)) a0_store_job_release(u->job);
  u->job = NULL;
  return 0;
}

static int l_job_tostring(lua_State *L) {
  l_job *u = (l_job *)luaL_checkudata(L, 1, JOB_MT);
  a0_store_status s;
  a0_store_err e;
  int done = u->job == NULL || u->pid != getpid() || a0_store_job_result(u->job, &s, NULL, NULL, &e);
  lua_pushstring(L, done ? "auth0.StoreJob (done)" : "auth0.StoreJob (running)");
  return 1;
}

static int l_lock_unlock(lua_State *L) {
  l_lock *k = (l_lock *)luaL_checkudata(L, 1, LOCK_MT);
  int held = k->fd >= 0;
  /* a forked child's copy of the descriptor shares the parent's lock: unlocking it there (or
   * its exit closing the Lua state) would release the parent's lock mid-refresh */
  if (held && k->pid != getpid()) close(k->fd);
  else a0_store_unlock(k->fd);
  k->fd = -1;
  lua_pushboolean(L, held);
  return 1;
}

static int l_lock_tostring(lua_State *L) {
  l_lock *k = (l_lock *)luaL_checkudata(L, 1, LOCK_MT);
  lua_pushstring(L, k->fd >= 0 ? "auth0.StoreLock (held)" : "auth0.StoreLock (released)");
  return 1;
}

static const unsigned char *check_key(lua_State *L, int i) {
  size_t n;
  const char *k = luaL_checklstring(L, i, &n);
  luaL_argcheck(L, n == A0_SEAL_KEY_LEN, i, "key must be 32 bytes");
  return (const unsigned char *)k;
}

static int l_seal(lua_State *L) {
  const unsigned char *key = check_key(L, 1);
  size_t kid_len, n;
  const char *kid = luaL_optlstring(L, 2, "", &kid_len);
  const char *pt = luaL_checklstring(L, 3, &n);
  a0_buf out = { 0 };
  luaL_argcheck(L, kid_len <= A0_SEAL_KID_MAX, 2, "key_id must be at most 64 bytes");
  luaL_argcheck(L, n <= A0_SEAL_MAX, 3, "plaintext must be at most 1 MiB");
  if (a0_seal(key, kid, kid_len, pt, n, &out) != 0) { a0_buf_free(&out); return luaL_error(L, "seal failed"); }
  lua_pushlstring(L, out.data, out.len);
  a0_buf_free(&out);
  return 1;
}

/* open(key | {[key_id] = key}, envelope): a table picks the key by the envelope's key id. */
static int l_open(lua_State *L) {
  size_t n, kid_len;
  const char *env = luaL_checklstring(L, 2, &n), *kid, *reason = NULL;
  const unsigned char *key;
  a0_buf out = { 0 };
  if (!lua_istable(L, 1)) key = check_key(L, 1);
  else {
    if (a0_seal_kid(env, n, &kid, &kid_len) != 0) { lua_pushnil(L); lua_pushliteral(L, "not an envelope or truncated"); return 2; }
    lua_pushlstring(L, kid, kid_len);
    lua_rawget(L, 1);
    if (lua_isnil(L, -1)) { lua_pushnil(L); lua_pushliteral(L, "unknown key id"); return 2; }
    key = check_key(L, -1);
  }
  if (a0_open(key, env, n, &out, &reason) != 0) { a0_buf_free(&out); lua_pushnil(L); lua_pushstring(L, reason); return 2; }
  lua_pushlstring(L, out.data ? out.data : "", out.len);
  a0_buf_free(&out);
  return 1;
}

static int l_seal_key_id(lua_State *L) {
  size_t n, kid_len;
  const char *env = luaL_checklstring(L, 1, &n), *kid;
  if (a0_seal_kid(env, n, &kid, &kid_len) != 0) { lua_pushnil(L); return 1; }
  lua_pushlstring(L, kid, kid_len);
  return 1;
}

/* hold_signals(): SIGTERM, SIGINT and SIGHUP held (pending) until :release() (or collection):
 * a command line refresh writes its rotated token first. nil, "io", message on failure. */
static int l_hold_signals(lua_State *L) {
  a0_sig_hold *h = (a0_sig_hold *)lua_newuserdata(L, sizeof *h);
  h->held = 0;
  luaL_setmetatable(L, HOLD_MT);
  if (a0_sig_hold_stop(h) != 0) { lua_pushnil(L); lua_pushliteral(L, "io"); lua_pushliteral(L, "cannot block signals"); return 3; }
  return 1;
}

static int l_hold_release(lua_State *L) {
  lua_pushboolean(L, a0_sig_release((a0_sig_hold *)luaL_checkudata(L, 1, HOLD_MT)));
  return 1;
}

static const luaL_Reg hold_meta[] = {
  { "release", l_hold_release }, { "__gc", l_hold_release }, { "__close", l_hold_release }, { NULL, NULL },
};

static const luaL_Reg lock_meta[] = {
  { "unlock", l_lock_unlock }, { "__gc", l_lock_unlock }, { "__close", l_lock_unlock },
  { "__tostring", l_lock_tostring }, { NULL, NULL },
};

static const luaL_Reg job_meta[] = {
  { "result", l_job_result }, { "wait", l_job_wait }, { "release", l_job_gc }, { "__gc", l_job_gc },
  { "__tostring", l_job_tostring },
  { NULL, NULL },
};

static const luaL_Reg worker_meta[] = {
  { "write", l_worker_write }, { "remove", l_worker_remove }, { "read", l_worker_read }, { "lock", l_worker_lock },
  { "__gc", l_worker_gc }, { NULL, NULL },
};

static const luaL_Reg store_funcs[] = {
  { "store_read", l_store_read }, { "store_write", l_store_write }, { "store_remove", l_store_remove },
  { "store_lock", l_store_lock }, { "seal", l_seal }, { "open", l_open }, { "seal_key_id", l_seal_key_id },
  { "store_write_async", l_store_write_async }, { "store_remove_async", l_store_remove_async },
  { "store_read_async", l_store_read_async }, { "store_lock_async", l_store_lock_async },
  { "store_worker", l_store_worker }, { "hold_signals", l_hold_signals }, { NULL, NULL },
};

/* A metatable named `name` with `methods`, that is its own __index. */
static void new_class(lua_State *L, const char *name, const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  a0c_setfuncs(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

void a0l_open_store(lua_State *L) {
  new_class(L, LOCK_MT, lock_meta);
  new_class(L, WORKER_MT, worker_meta);
  new_class(L, JOB_MT, job_meta);
  new_class(L, HOLD_MT, hold_meta);
  a0c_setfuncs(L, store_funcs);
  lua_pushboolean(L, FAULTS_ON);   /* core.store_faults: true in a test build only */
  lua_setfield(L, -2, "store_faults");
}
