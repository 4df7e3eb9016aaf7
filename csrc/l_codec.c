/* Small helpers the Lua side needs: encoders (shared with the request builder),
 * a monotonic clock and a sleep for blocking helpers such as push polling. */
#include <string.h>
#include <time.h>
#include <errno.h>

#include "a0_lua.h"
#include "a0_enc.h"

typedef int (*encoder)(a0_buf *, const char *, size_t);

static int encode_with(lua_State *L, encoder fn) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  a0_buf b = {0};
  if (fn(&b, s, n) != 0) {
    a0_buf_free(&b);
    size_t at = a0_utf8_invalid_at(s, n);
    if (at) return luaL_argerror(L, 1, lua_pushfstring(L, "invalid UTF-8 at byte %d", (int)at));
    return luaL_error(L, "out of memory");
  }
  lua_pushlstring(L, b.data ? b.data : "", b.len);
  a0_buf_free(&b);
  return 1;
}

static int l_json_string(lua_State *L) { return encode_with(L, a0_json_string); }
static int l_form_escape(lua_State *L) { return encode_with(L, a0_form_escape); }
static int l_pct_escape(lua_State *L) { return encode_with(L, a0_pct_escape); }

static int l_utf8_valid(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  size_t at = a0_utf8_invalid_at(s, n);
  if (at == 0) { lua_pushboolean(L, 1); return 1; }
  lua_pushboolean(L, 0);
  lua_pushinteger(L, (lua_Integer)at);
  return 2;
}

/* core.now() -> seconds on a monotonic clock (for deadlines, not wall time) */
static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9);
  return 1;
}

/* CPU seconds used by the calling thread (benchmarks: a frame's own work, without the
 * time the thread was not running) */
static int l_thread_cpu(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + ts.tv_nsec / 1e9);
  return 1;
}

static int l_sleep(lua_State *L) {
  double s = luaL_checknumber(L, 1);
  struct timespec ts;
  luaL_argcheck(L, s >= 0 && s <= 86400, 1, "must be 0..86400 seconds");
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
  return 0;
}

static const luaL_Reg codec_funcs[] = {
  {"json_string", l_json_string}, {"form_escape", l_form_escape}, {"pct_escape", l_pct_escape},
  {"utf8_valid", l_utf8_valid}, {"now", l_now}, {"thread_cpu", l_thread_cpu}, {"sleep", l_sleep}, {NULL, NULL}
};

void a0l_open_codec(lua_State *L) { a0c_setfuncs(L, codec_funcs); }
