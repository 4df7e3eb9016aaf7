#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE   /* MAP_ANONYMOUS */
#endif
#include "a0_buf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <openssl/crypto.h>

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

/* Blocks this large are mapped and unmapped directly: glibc raises its mmap threshold after
 * the first large free, and later ones then grow and fragment the heap (RSS that sways by
 * megabytes after each too-large response); an unmapped block is back to the OS at once. */
static void *block_alloc(size_t cap) {
  void *p;
  if (cap < A0_BUF_MAP) return malloc(cap);
  p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void block_free(void *p, size_t cap) {
  if (p == NULL) return;
  if (cap < A0_BUF_MAP) free(p);
  else munmap(p, cap);
}

/* glibc's explicit_bzero is a memset the compiler may not drop, as OPENSSL_cleanse is, but
 * at memset's speed: wiping every response and request body is a visible part of a login. */
void a0_wipe(void *p, size_t n) {
  if (p == NULL || n == 0) return;
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 25))
  explicit_bzero(p, n);
#else
  OPENSSL_cleanse(p, n);
#endif
}

int a0_buf_reserve(a0_buf *b, size_t extra) {
  size_t need, cap;
  char *p;
  if (extra > ((size_t)-1) / 2 - b->len) return -1;
  need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  /* no realloc: the old block may hold a secret and must be wiped before release */
  p = block_alloc(cap);
  if (p == NULL) return -1;
  if (b->data != NULL) {
    memcpy(p, b->data, b->len);
    a0_wipe(b->data, b->cap);
    block_free(b->data, b->cap);
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

int a0_buf_add(a0_buf *b, const void *p, size_t n) {
  if (n == 0) return 0;
  if (a0_buf_reserve(b, n) != 0) return -1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int a0_buf_addc(a0_buf *b, char c) {
  if (b->len + 1 >= b->cap && a0_buf_reserve(b, 1) != 0) return -1;
  b->data[b->len++] = c;
  return 0;
}

int a0_buf_adds(a0_buf *b, const char *s) { return a0_buf_add(b, s, strlen(s)); }

int a0_buf_cstr(a0_buf *b) {
  if (a0_buf_reserve(b, 0) != 0) return -1;
  b->data[b->len] = '\0';
  return 0;
}

void a0_buf_reset(a0_buf *b) {
  a0_wipe(b->data, b->len);
  b->len = 0;
}

void a0_buf_free(a0_buf *b) {
  a0_wipe(b->data, b->cap);
  block_free(b->data, b->cap);
  b->data = NULL;
  b->len = b->cap = 0;
}
