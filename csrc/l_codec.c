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

/* core.email_shape(v) -> boolean: v is a string of the shape check.email accepts, `^L@D$`
 * where L and D are runs of bytes other than @, a control character, a space or DEL, D has a
 * dot that is neither its first nor its last byte, at most 254 bytes in all. One byte scan:
 * every passwordless start checks an address, and a pattern costs ten times more. */
static int l_email_shape(lua_State *L) {
  size_t n, at = 0, dot = 0;   /* 1-based: the @, the last dot after it */
  const unsigned char *s;
  int ok;
  if (lua_type(L, 1) != LUA_TSTRING) { lua_pushboolean(L, 0); return 1; }
  s = (const unsigned char *)lua_tolstring(L, 1, &n);
  ok = n <= 254;
  for (size_t i = 0; ok && i < n; i++) {
    unsigned char c = s[i];
    if (c <= ' ' || c == 0x7f) ok = 0;
    else if (c == '@') { if (at != 0) ok = 0; else at = i + 1; }
    else if (c == '.' && at != 0) dot = i + 1;
  }
  lua_pushboolean(L, ok && at > 1 && at < n && s[n - 1] != '.' && dot >= at + 2);
  return 1;
}

/* core.strings(...) -> boolean: every argument is a non-empty string (the common case of a
 * call's checks in one C call; the caller finds which one failed only when one did) */
static int l_strings(lua_State *L) {
  int n = lua_gettop(L), ok = n > 0;
  for (int i = 1; ok && i <= n; i++) ok = lua_type(L, i) == LUA_TSTRING && a0c_rawlen(L, i) > 0;
  lua_pushboolean(L, ok);
  return 1;
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
  {"utf8_valid", l_utf8_valid}, {"email_shape", l_email_shape}, {"strings", l_strings}, {"now", l_now}, {"thread_cpu", l_thread_cpu}, {"sleep", l_sleep}, {NULL, NULL}
};

void a0l_open_codec(lua_State *L) { a0c_setfuncs(L, codec_funcs); }
