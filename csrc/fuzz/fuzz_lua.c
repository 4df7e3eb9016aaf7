/* libFuzzer target for the pure-Lua parsers that see bytes from the network or from a
 * user: auth0.error.from_response / parse_retry_after, auth0.jwt.decode and
 * auth0.otp.parse_otpauth (and, through them, lua-cjson and the codec bindings).
 * A raised Lua error is a finding: these functions must return a value or nil, err.
 *
 * Input layout: byte 0 selects the function (mod 5). For from_response, bytes 1-2 give
 * the status (100..599), byte 3 says which captured headers exist (bit i = i-th field of
 * A0_HEADERS; bit 7 = no header table at all), and the rest is the body followed by the
 * header values, separated by NUL bytes. Selector 4 builds a well-formed JSON error body
 * (with cjson) around arbitrary code / message / mfa_token strings, since mutations of raw
 * JSON rarely stay valid. For the others, the rest is the argument.
 *
 * One Lua state per process. auth0.core is linked in (compiled with the sanitizers, so
 * the binding's decoders are fuzzed too) and preloaded; cjson comes from the system.
 * The uninstrumented Lua VM gives libFuzzer no feedback about Lua code, so a line hook
 * feeds (previous line, current line) edges of Lua functions into libFuzzer's extra
 * counters. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_auth0_core(lua_State *L);

#ifndef FUZZ_LUA_DIR
#define FUZZ_LUA_DIR "lua"
#endif
#ifndef FUZZ_CPATH
#define FUZZ_CPATH "build/lua5.4/?.so;/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;/usr/lib/lua/5.4/?.so"
#endif

#define NEDGES (1u << 16)
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t lua_edges[NEDGES];
static uintptr_t prev_loc;

static lua_State *L;
static int harness_ref;

/* Runs in Lua so that the shape checks read like the API they check. Any failed assert
 * is reported the same way as an error raised by the code under test. */
static const char HARNESS[] =
  "local errors = require 'auth0.error'\n"
  "local jwt = require 'auth0.jwt'\n"
  "local otp = require 'auth0.otp'\n"
  "local type, tostring, select = type, tostring, select\n"
  "local FIELDS = { 'retry_after', 'ratelimit_limit', 'ratelimit_remaining',\n"
  "  'ratelimit_reset', 'request_id', 'content_type', 'location' }\n"
  "local ALGS = { SHA1 = true, SHA256 = true, SHA512 = true }\n"
  "-- FUZZ_LUA_SKIP_KNOWN=1 tolerates the findings already reported, to look for others\n"
  "local skip_known = os.getenv('FUZZ_LUA_SKIP_KNOWN') == '1'\n"
  "if skip_known then\n"
  "  local parse = errors.parse_retry_after\n"
  "  errors.parse_retry_after = function(...)\n"
  "    local ok, r = pcall(parse, ...)\n"
  "    if ok then return r end\n"
  "    assert(tostring(r):find('time result cannot be represented', 1, true), r)\n"
  "    return nil\n"
  "  end\n"
  "end\n"
  "local function wait_ok(w)\n"
  "  return w == nil or (type(w) == 'number' and w == w and w >= 0)\n"
  "end\n"
  "local function from_response(status, mask, body, ...)\n"
  "  local hdrs\n"
  "  if mask < 128 then\n"
  "    hdrs = {}\n"
  "    local k = 1\n"
  "    for i = 1, #FIELDS do\n"
  "      if mask & (1 << (i - 1)) ~= 0 then\n"
  "        local v = select(k, ...)\n"
  "        k = k + 1\n"
  "        if v and v ~= '' then hdrs[FIELDS[i]] = v end\n"
  "      end\n"
  "    end\n"
  "  end\n"
  "  local e = errors.from_response(status, body, hdrs, (mask & 64 ~= 0) and 'ctx' or nil)\n"
  "  assert(errors.is(e), 'not an error object')\n"
  "  assert(type(e.code) == 'string', 'bad code')\n"
  "  assert(skip_known or e.code ~= '', 'empty code')\n"
  "  assert(skip_known or not e.code:find('%c'), 'control character in code')\n"
  "  assert(type(e.message) == 'string', 'bad message')\n"
  "  assert(not e.message:find('%c'), 'control character in message')\n"
  "  assert(e.status == status, 'bad status')\n"
  "  assert(wait_ok(e.retry_after), 'bad retry_after')\n"
  "  assert(e.mfa_token == nil or type(e.mfa_token) == 'string', 'bad mfa_token')\n"
  "  local s = tostring(e)\n"
  "  assert(type(s) == 'string', 'bad tostring')\n"
  "  assert(skip_known or not s:find('[\\r\\n]'), 'line break in tostring')\n"
  "end\n"
  "local cjson = require('cjson').new()\n"
  "-- arbitrary strings in the fields of a well-formed error body\n"
  "local function structured(status, code, message, token, retry)\n"
  "  local t = { mfa_token = token }\n"
  "  if #code % 3 == 0 then t.error, t.error_description = code, message\n"
  "  elseif #code % 3 == 1 then t.code, t.description = code, message\n"
  "  else t.name, t.message = code, message end\n"
  "  local body = cjson.encode(t)\n"
  "  return from_response(status, 1, body, retry)\n"
  "end\n"
  "return function(sel, ...)\n"
  "  if sel == 0 then return from_response(...) end\n"
  "  if sel == 4 then return structured(...) end\n"
  "  local arg = ...\n"
  "  if sel == 1 then\n"
  "    assert(wait_ok(errors.parse_retry_after(arg)), 'bad wait')\n"
  "    assert(wait_ok(errors.parse_retry_after(arg, 1700000000)), 'bad wait (now)')\n"
  "  elseif sel == 2 then\n"
  "    local t, err = jwt.decode(arg)\n"
  "    if t then\n"
  "      assert(type(t.header) == 'table' and type(t.payload) == 'table', 'bad parts')\n"
  "      assert(type(t.signing_input) == 'string' and type(t.signature) == 'string')\n"
  "    else\n"
  "      assert(errors.is(err) and err.code == 'invalid_jwt' and type(err.message) == 'string', 'no error')\n"
  "    end\n"
  "  else\n"
  "    local r, err = otp.parse_otpauth(arg)\n"
  "    if r then\n"
  "      assert(r.type == 'totp' or r.type == 'hotp', 'bad type')\n"
  "      assert(math.type(r.digits) == 'integer' and r.digits >= 6 and r.digits <= 10)\n"
  "      assert(math.type(r.period) == 'integer' and r.period >= 1, 'bad period')\n"
  "      assert(ALGS[r.algorithm], 'bad algorithm')\n"
  "      assert(type(r.label) == 'string' and type(r.params) == 'table', 'bad label')\n"
  "      assert(r.secret == nil or type(r.secret) == 'string', 'bad secret')\n"
  "      assert(r.type ~= 'hotp' or math.type(r.counter) == 'integer', 'bad counter')\n"
  "    else\n"
  "      assert(errors.is(err) and err.code == 'invalid_otpauth' and type(err.message) == 'string', 'no error')\n"
  "    end\n"
  "  end\n"
  "end\n";

static void line_hook(lua_State *l, lua_Debug *ar) {
  uintptr_t cur;
  if (!lua_getinfo(l, "S", ar)) return;
  cur = ((uintptr_t)ar->source * 2654435761u) ^ ((uintptr_t)ar->currentline * 40503u);
  lua_edges[(cur ^ prev_loc) & (NEDGES - 1)]++;
  prev_loc = cur >> 1;
}

static int traceback(lua_State *l) {
  const char *msg = lua_tostring(l, 1);
  luaL_traceback(l, l, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

static void die(const char *what) {
  fprintf(stderr, "fuzz_lua: %s: %s\n", what, lua_tostring(L, -1));
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc; (void)argv;
  L = luaL_newstate();
  if (L == NULL) abort();
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, FUZZ_LUA_DIR "/?.lua;" FUZZ_LUA_DIR "/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pushstring(L, FUZZ_CPATH);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  luaL_requiref(L, "auth0.core", luaopen_auth0_core, 0);
  lua_pop(L, 1);
  lua_pushcfunction(L, traceback);
  if (luaL_loadbuffer(L, HARNESS, sizeof HARNESS - 1, "=harness") != LUA_OK) die("load");
  if (lua_pcall(L, 0, 1, 1) != LUA_OK) die("init");
  harness_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int sel, nargs;
  const char *p, *end;
  if (size < 1) return 0;
  sel = data[0] % 5;
  lua_settop(L, 0);
  prev_loc = 0;
  lua_pushcfunction(L, traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, harness_ref);
  lua_pushinteger(L, sel);
  if (sel == 4) {
    /* status, then error code, message, mfa_token, retry-after separated by NUL */
    if (size < 2) return 0;
    lua_pushinteger(L, 400 + data[1] % 200);
    p = (const char *)data + 2;
    end = (const char *)data + size;
    nargs = 2;
    for (int part = 0; part < 4; part++) {
      const char *z = p < end ? memchr(p, '\0', (size_t)(end - p)) : NULL;
      size_t len = z ? (size_t)(z - p) : (size_t)(end - p);
      lua_pushlstring(L, p, len);
      nargs++;
      p = z ? z + 1 : end;
    }
  } else if (sel == 0) {
    if (size < 4) return 0;
    lua_pushinteger(L, 100 + ((data[1] << 8) | data[2]) % 500);
    lua_pushinteger(L, data[3]);
    p = (const char *)data + 4;
    end = (const char *)data + size;
    nargs = 3;
    /* body, then header values; a captured value is at most A0_HDR_MAX - 1 = 255 bytes */
    for (int part = 0; part < 8; part++) {
      const char *z = memchr(p, '\0', (size_t)(end - p));
      size_t len = z ? (size_t)(z - p) : (size_t)(end - p);
      lua_pushlstring(L, p, part > 0 && len > 255 ? 255 : len);
      nargs++;
      if (z == NULL) break;
      p = z + 1;
    }
  } else {
    lua_pushlstring(L, (const char *)data + 1, size - 1);
    nargs = 2;
  }
  if (lua_pcall(L, nargs, 0, 1) != LUA_OK) die("raised");
  lua_settop(L, 0);
  /* short runs collect garbage often enough; keep memory flat on long ones */
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
