/* Unit test of the QR matrix engine (a0_qr.c), no Lua. Built and run by `make ctest`.
 * Last line: "N passed, N failed"; exit status 1 on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a0_qr.h"

#include "check.h"

/* A text of n copies of c, NUL-terminated (libqrencode needs the terminator). */
static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  if (s == NULL) exit(2);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

/* The 7x7 finder pattern with its top left module at column x0, row y0 (0-based). */
static int finder_at(const a0_qr *q, int x0, int y0) {
  for (int dy = 0; dy < 7; dy++) {
    for (int dx = 0; dx < 7; dx++) {
      int ring = dx == 0 || dx == 6 || dy == 0 || dy == 6;
      int centre = dx >= 2 && dx <= 4 && dy >= 2 && dy <= 4;
      if (q->modules[(size_t)(y0 + dy) * (size_t)q->size + (size_t)(x0 + dx)] != ((ring || centre) ? '1' : '0')) return 0;
    }
  }
  return 1;
}

static void test_encode(tally *t) {
  a0_qr q;
  const char *uri = "otpauth://totp/Acme:alice%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Acme";
  CHECK(t, a0_qr_encode(&q, uri, strlen(uri), A0_QR_ECC_M) == A0_QR_OK);
  CHECK(t, q.size == 37);
  int only01 = 1;
  for (size_t i = 0; i < (size_t)q.size * (size_t)q.size; i++) only01 &= q.modules[i] == '0' || q.modules[i] == '1';
  CHECK(t, only01);
  CHECK(t, finder_at(&q, 0, 0) && finder_at(&q, q.size - 7, 0) && finder_at(&q, 0, q.size - 7));
  CHECK(t, !finder_at(&q, q.size - 7, q.size - 7));
  a0_qr_free(&q);
  CHECK(t, q.modules == NULL && q.size == 0);
  a0_qr_free(&q);   /* twice is harmless */
  CHECK(t, a0_qr_encode(&q, uri, strlen(uri), A0_QR_ECC_H) == A0_QR_OK && q.size == 49);
  a0_qr_free(&q);
}

static void test_limits(tally *t) {
  a0_qr q;
  char *s = repeat('a', 2954);
  CHECK(t, a0_qr_encode(&q, s, 2953, A0_QR_ECC_L) == A0_QR_OK && q.size == 177);
  a0_qr_free(&q);
  CHECK(t, a0_qr_encode(&q, s, 2954, A0_QR_ECC_L) == A0_QR_TOO_LARGE && q.modules == NULL);
  CHECK(t, a0_qr_encode(&q, s, 1274, A0_QR_ECC_H) == A0_QR_TOO_LARGE);
  free(s);
  s = repeat('7', 7090);
  CHECK(t, a0_qr_encode(&q, s, 7089, A0_QR_ECC_L) == A0_QR_OK && q.size == 177);
  a0_qr_free(&q);
  CHECK(t, a0_qr_encode(&q, s, 7090, A0_QR_ECC_L) == A0_QR_TOO_LARGE);
  free(s);
  CHECK(t, a0_qr_encode(&q, "", 0, A0_QR_ECC_M) == A0_QR_INVALID);
  CHECK(t, a0_qr_encode(&q, "a\0b", 3, A0_QR_ECC_M) == A0_QR_INVALID);
  CHECK(t, a0_qr_encode(&q, "abc", 3, 4) == A0_QR_INVALID);
  CHECK(t, a0_qr_encode(&q, "abc", 3, -1) == A0_QR_INVALID && q.modules == NULL);
}

int main(void) {
  tally t = { 0, 0 };
  test_encode(&t);
  test_limits(&t);
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}
