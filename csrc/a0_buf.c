#include "a0_buf.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

void a0_wipe(void *p, size_t n) {
  if (p != NULL && n > 0) OPENSSL_cleanse(p, n);
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
  p = malloc(cap);
  if (p == NULL) return -1;
  if (b->data != NULL) {
    memcpy(p, b->data, b->len);
    a0_wipe(b->data, b->cap);
    free(b->data);
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
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}
