/* Unit test of the AES-256-GCM envelopes (a0_seal.c), no Lua. Built and run by `make ctest`.
 * Every byte of an envelope is flipped, every truncation tried: open must fail and append
 * nothing each time. Last line: "N passed, N failed"; exit status 1 on any failure. */
#define _DEFAULT_SOURCE   /* memmem */
#include <stdio.h>
#include <string.h>

#include "a0_seal.h"

#include "check.h"

static const unsigned char KEY[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char KEY2[32] = "fedcba9876543210fedcba9876543210";

static void test_round_trip(tally *t) {
  const char *pt = "{\"refresh_token\":\"secret\"}";
  a0_buf env = { 0 }, out = { 0 }, env2 = { 0 };
  const char *kid, *reason = NULL;
  size_t kid_len;
  CHECK(t, a0_seal(KEY, "k1", 2, pt, strlen(pt), &env) == 0);
  CHECK(t, env.len == 5 + 2 + 12 + strlen(pt) + 16);
  CHECK(t, memcmp(env.data, "A0S\x01\x02k1", 7) == 0);
  CHECK(t, memmem(env.data, env.len, "secret", 6) == NULL);
  CHECK(t, a0_seal_kid(env.data, env.len, &kid, &kid_len) == 0 && kid_len == 2 && memcmp(kid, "k1", 2) == 0);
  CHECK(t, a0_open(KEY, env.data, env.len, &out, &reason) == 0);
  CHECK(t, out.len == strlen(pt) && memcmp(out.data, pt, out.len) == 0);
  CHECK(t, a0_seal(KEY, "k1", 2, pt, strlen(pt), &env2) == 0);
  CHECK(t, memcmp(env.data + 7, env2.data + 7, 12) != 0);   /* fresh nonce each time */
  a0_buf_reset(&out);
  CHECK(t, a0_open(KEY2, env.data, env.len, &out, &reason) == -1 && out.len == 0);
  CHECK(t, reason != NULL && strstr(reason, "authentication failed") != NULL);
  a0_buf_free(&env); a0_buf_free(&env2); a0_buf_free(&out);
  /* empty plaintext and empty key id */
  CHECK(t, a0_seal(KEY, "", 0, "", 0, &env) == 0);
  CHECK(t, env.len == 5 + 12 + 16);
  CHECK(t, a0_open(KEY, env.data, env.len, &out, &reason) == 0 && out.len == 0);
  a0_buf_free(&env); a0_buf_free(&out);
  /* limits */
  {
    char kid65[65];
    memset(kid65, 'k', sizeof kid65);
    CHECK(t, a0_seal(KEY, kid65, 65, "x", 1, &env) == -1 && env.len == 0);
    CHECK(t, a0_seal(KEY, kid65, 64, "x", 1, &env) == 0);
    a0_buf_free(&env);
  }
}

static void test_tamper_every_byte(tally *t) {
  const char *pt = "access and refresh tokens";
  a0_buf env = { 0 }, out = { 0 };
  const char *reason;
  int flips_ok = 1, cuts_ok = 1;
  CHECK(t, a0_seal(KEY, "key-2026", 8, pt, strlen(pt), &env) == 0);
  for (size_t i = 0; i < env.len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      env.data[i] ^= (char)(1 << bit);
      if (a0_open(KEY, env.data, env.len, &out, &reason) != -1 || out.len != 0) flips_ok = 0;
      env.data[i] ^= (char)(1 << bit);
    }
  }
  CHECK(t, flips_ok);
  for (size_t n = 0; n < env.len; n++)
    if (a0_open(KEY, env.data, n, &out, &reason) != -1 || out.len != 0) cuts_ok = 0;
  CHECK(t, cuts_ok);
  /* one extra byte at the end moves the tag: fails too */
  {
    a0_buf longer = { 0 };
    a0_buf_add(&longer, env.data, env.len);
    a0_buf_addc(&longer, 0);
    CHECK(t, a0_open(KEY, longer.data, longer.len, &out, &reason) == -1 && out.len == 0);
    a0_buf_free(&longer);
  }
  /* another version byte is named as such */
  env.data[3] = 2;
  CHECK(t, a0_open(KEY, env.data, env.len, &out, &reason) == -1 && strstr(reason, "version") != NULL);
  CHECK(t, a0_open(KEY, env.data, env.len, &out, &reason) == -1);
  env.data[3] = 1;
  CHECK(t, a0_open(KEY, env.data, env.len, &out, &reason) == 0);
  a0_buf_free(&env); a0_buf_free(&out);
}

int main(void) {
  tally t = { 0, 0 };
  test_round_trip(&t);
  test_tamper_every_byte(&t);
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}
