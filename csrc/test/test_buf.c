/* Unit test of the growable buffer (a0_buf.c), no Lua. Built and run by `make ctest`,
 * linked with -Wl,--wrap=free (see below):
 *   gcc -std=c99 -Icsrc -fsanitize=address,undefined -Wl,--wrap=free \
 *       -o build/ctest/test_buf csrc/test/test_buf.c csrc/a0_buf.c -lcrypto
 * Last line: "N passed, N failed"; exit status 1 on any failure.
 *
 * What is and is not checked about wiping:
 *  - a0_buf_reset keeps the allocation, so the old bytes are read back directly from
 *    b.data: every byte that held data must now be zero.
 *  - a reserve that moves the data, and a0_buf_free, release the old block. Reading a
 *    block after free() is undefined behaviour (and an ASan report), so the test never
 *    does. Instead the link wraps free(): __wrap_free looks at a block the test has put
 *    on watch *before* handing it to the real free, and records whether all its bytes
 *    were zero. That checks that a0_buf wipes the whole old allocation (cap bytes, not
 *    just len) before freeing it, and that the new block got a copy of the content.
 *  - Not checked: whether the compiler or libc leave other copies (registers, the stack
 *    of memcpy, pages swapped out); OPENSSL_cleanse is trusted not to be optimised out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a0_buf.h"

#include "check.h"

/* ---- free() watch (link with -Wl,--wrap=free) ---- */
void __real_free(void *p);
void __wrap_free(void *p);

static struct {
  const void *ptr;      /* block to inspect, NULL: none */
  size_t size;
  int seen;             /* free() was called on it */
  int zero;             /* all size bytes were zero at that moment */
} watch;

void __wrap_free(void *p) {
  if (p != NULL && p == watch.ptr) {
    const unsigned char *q = p;
    size_t i = 0;
    while (i < watch.size && q[i] == 0) i++;
    watch.seen = 1;
    watch.zero = i == watch.size;
    watch.ptr = NULL;
  }
  __real_free(p);
}

static void watch_block(const void *p, size_t size) {
  watch.ptr = p;
  watch.size = size;
  watch.seen = watch.zero = 0;
}

static int all_zero(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0) return 0;
  return 1;
}

static int is_pattern(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (char)('A' + i % 23)) return 0;
  return 1;
}

static void fill_pattern(a0_buf *b, size_t n) {
  for (size_t i = 0; i < n; i++) a0_buf_addc(b, (char)('A' + i % 23));
}

static void test_growth(tally *t) {
  a0_buf b = { 0 };
  CHECK(t, a0_buf_reserve(&b, 0) == 0 && b.cap == 256 && b.len == 0 && b.data != NULL);
  CHECK(t, a0_buf_adds(&b, "hello") == 0 && b.len == 5);
  CHECK(t, a0_buf_add(&b, NULL, 0) == 0 && b.len == 5);   /* empty add is a no-op */
  CHECK(t, a0_buf_cstr(&b) == 0 && strcmp(b.data, "hello") == 0 && b.len == 5);
  /* one byte short of the capacity, then across it: the terminator always has room */
  a0_buf_reset(&b);
  fill_pattern(&b, 255);
  CHECK(t, b.cap == 256 && b.len == 255);
  CHECK(t, a0_buf_cstr(&b) == 0 && b.data[255] == '\0');
  CHECK(t, a0_buf_addc(&b, 'x') == 0 && b.len == 256 && b.cap == 512);
  CHECK(t, a0_buf_cstr(&b) == 0 && b.data[256] == '\0');
  CHECK(t, is_pattern(b.data, 255) && b.data[255] == 'x');
  /* doubling until it fits */
  CHECK(t, a0_buf_reserve(&b, 5000) == 0 && b.cap == 8192 && b.len == 256);
  CHECK(t, is_pattern(b.data, 255));
  /* a reserve that fits changes nothing */
  const char *d = b.data;
  CHECK(t, a0_buf_reserve(&b, 100) == 0 && b.data == d && b.cap == 8192);
  /* overflowing requests fail and leave the buffer alone */
  CHECK(t, a0_buf_reserve(&b, (size_t)-1) == -1 && b.data == d && b.len == 256);
  CHECK(t, a0_buf_reserve(&b, ((size_t)-1) / 2) == -1 && b.len == 256);
  CHECK(t, a0_buf_add(&b, "x", (size_t)-1) == -1 && b.len == 256);
  a0_buf_free(&b);
  CHECK(t, b.data == NULL && b.len == 0 && b.cap == 0);
  a0_buf_free(&b);   /* freeing twice is harmless */
  CHECK(t, b.data == NULL);
  /* big single add on an empty buffer */
  char big[1000];
  memset(big, 'z', sizeof big);
  CHECK(t, a0_buf_add(&b, big, sizeof big) == 0 && b.len == 1000 && b.cap == 1024);
  CHECK(t, memcmp(b.data, big, sizeof big) == 0);
  a0_buf_free(&b);
}

static void test_reset_wipes(tally *t) {
  a0_buf b = { 0 };
  CHECK(t, a0_buf_adds(&b, "client_secret=s3cr3t&otp=123456") == 0);
  char *d = b.data;
  size_t cap = b.cap, n = b.len;
  a0_buf_reset(&b);
  CHECK(t, b.len == 0 && b.data == d && b.cap == cap);   /* allocation kept */
  CHECK(t, all_zero(b.data, n));                         /* old bytes gone */
  CHECK(t, a0_buf_adds(&b, "ok") == 0 && b.data == d && memcmp(b.data, "ok", 2) == 0);
  a0_buf_reset(&b);
  a0_buf_reset(&b);   /* reset of an empty buffer */
  CHECK(t, b.len == 0);
  a0_buf_free(&b);
  a0_buf_reset(&b);   /* reset of a freed buffer */
  CHECK(t, b.data == NULL && b.len == 0);
}

static void test_move_wipes(tally *t) {
  a0_buf b = { 0 };
  fill_pattern(&b, 200);
  CHECK(t, b.cap == 256);
  const char *old = b.data;
  watch_block(old, 256);
  /* grow past the capacity: a new block, the content copied, the old block wiped */
  CHECK(t, a0_buf_reserve(&b, 1000) == 0);
  CHECK(t, b.data != old && b.cap == 2048 && b.len == 200);
  CHECK(t, is_pattern(b.data, 200));
  CHECK(t, watch.seen);          /* the old block was freed ... */
  CHECK(t, watch.zero);          /* ... all 256 bytes zero at that moment */
  /* the same through a0_buf_add */
  old = b.data;
  watch_block(old, b.cap);
  char chunk[3000];
  memset(chunk, '#', sizeof chunk);
  CHECK(t, a0_buf_add(&b, chunk, sizeof chunk) == 0 && b.data != old && b.len == 3200);
  CHECK(t, is_pattern(b.data, 200) && memcmp(b.data + 200, chunk, sizeof chunk) == 0);
  CHECK(t, watch.seen && watch.zero);
  /* a0_buf_free wipes the whole allocation, including bytes past len */
  watch_block(b.data, b.cap);
  a0_buf_free(&b);
  CHECK(t, watch.seen && watch.zero);
  watch_block(NULL, 0);
}

/* Capacities from A0_BUF_MAP on are mapped: growing across it keeps the bytes, and the
 * mapped block is wiped and unmapped (never handed to free) on the next growth and at free. */
static void test_mapped(tally *t) {
  a0_buf b = {0};
  char chunk[4096];
  int same = 1;
  memset(chunk, 'q', sizeof chunk);
  for (int i = 0; i < 40; i++) a0_buf_add(&b, chunk, sizeof chunk);   /* 160 KiB */
  CHECK(t, b.len == 40 * sizeof chunk && b.cap == 2 * A0_BUF_MAP);
  for (size_t i = 0; i < b.len; i++) same = same && b.data[i] == 'q';
  CHECK(t, same);
  for (int i = 0; i < 40; i++) a0_buf_add(&b, chunk, sizeof chunk);   /* 320 KiB: mapped to mapped */
  CHECK(t, b.len == 80 * sizeof chunk && b.cap == 4 * A0_BUF_MAP && b.data[b.len - 1] == 'q');
  a0_buf_reset(&b);
  CHECK(t, b.len == 0 && b.cap == 4 * A0_BUF_MAP && b.data[0] == 0);
  a0_buf_free(&b);
  CHECK(t, b.data == NULL && b.cap == 0 && b.len == 0);
}

int main(void) {
  tally t = { 0, 0 };
  test_growth(&t);
  test_reset_wipes(&t);
  test_move_wipes(&t);
  test_mapped(&t);
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}
