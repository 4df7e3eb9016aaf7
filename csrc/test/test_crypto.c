/* Unit test of the crypto engine, no Lua:
 *   cc -std=c99 -Wall -Wextra -Icsrc -o build/test_crypto csrc/test/test_crypto.c \
 *      csrc/a0_crypto.c csrc/a0_buf.c -lcrypto && build/test_crypto
 * Last line: "N passed, N failed"; exit status 1 on any failure. */
#define _DEFAULT_SOURCE   /* usleep */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "a0_crypto.h"

#include "check.h"

static int streq_n(const char *a, size_t n, const char *b) {
  return n == strlen(b) && memcmp(a, b, n) == 0;
}

static void test_hotp_rfc4226(tally *t) {
  static const char *const expect[] = { "755224", "287082", "359152", "969429", "338314",
                                        "254676", "287922", "162583", "399871", "520489" };
  const unsigned char *key = (const unsigned char *)"12345678901234567890";
  char code[A0_OTP_MAX + 1];
  unsigned i;
  for (i = 0; i < 10; i++) {
    int rc = a0_hotp(A0_SHA1, key, 20, i, 6, code);
    CHECK(t, rc == 0 && strcmp(code, expect[i]) == 0);
  }
  /* digits out of range */
  CHECK(t, a0_hotp(A0_SHA1, key, 20, 0, 5, code) == -1);
  CHECK(t, a0_hotp(A0_SHA1, key, 20, 0, 11, code) == -1);
  /* 10 digits: the 31-bit value, zero padded */
  CHECK(t, a0_hotp(A0_SHA1, key, 20, 0, 10, code) == 0 && strlen(code) == 10 &&
           strcmp(code + 4, "755224") == 0);
}

static void test_totp_rfc6238(tally *t) {
  static const struct {
    uint64_t time;
    const char *sha1, *sha256, *sha512;
  } v[] = {
    { 59ULL, "94287082", "46119246", "90693936" },
    { 1111111109ULL, "07081804", "68084774", "25091201" },
    { 1111111111ULL, "14050471", "67062674", "99943326" },
    { 1234567890ULL, "89005924", "91819424", "93441116" },
    { 2000000000ULL, "69279037", "90698825", "38618901" },
    { 20000000000ULL, "65353130", "77737706", "47863826" },
  };
  const unsigned char *k1 = (const unsigned char *)"12345678901234567890";
  const unsigned char *k256 = (const unsigned char *)"12345678901234567890123456789012";
  const unsigned char *k512 = (const unsigned char *)
      "1234567890123456789012345678901234567890123456789012345678901234";
  char code[A0_OTP_MAX + 1];
  size_t i;
  for (i = 0; i < sizeof v / sizeof v[0]; i++) {
    CHECK(t, a0_totp(A0_SHA1, k1, 20, v[i].time, 30, 8, code) == 0 && !strcmp(code, v[i].sha1));
    CHECK(t, a0_totp(A0_SHA256, k256, 32, v[i].time, 30, 8, code) == 0 &&
             !strcmp(code, v[i].sha256));
    CHECK(t, a0_totp(A0_SHA512, k512, 64, v[i].time, 30, 8, code) == 0 &&
             !strcmp(code, v[i].sha512));
  }
  CHECK(t, a0_totp(A0_SHA1, k1, 20, 59, 0, 8, code) == -1);
}

static void test_alg_names(tally *t) {
  a0_hash_alg alg = A0_SHA1;
  CHECK(t, a0_hash_alg_parse("sha256", &alg) == 0 && alg == A0_SHA256);
  CHECK(t, a0_hash_alg_parse("Sha512", &alg) == 0 && alg == A0_SHA512);
  CHECK(t, a0_hash_alg_parse("SHA1", &alg) == 0 && alg == A0_SHA1);
  CHECK(t, a0_hash_alg_parse("SHA", &alg) == -1);
  CHECK(t, a0_hash_alg_parse("SHA2566", &alg) == -1);
  CHECK(t, a0_hash_alg_parse("MD5", &alg) == -1);
  CHECK(t, a0_hash_alg_parse(NULL, &alg) == -1);
}

static void test_base32(tally *t) {
  /* RFC 4648 section 10, without padding */
  static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
  static const char *const enc[] = { "", "MY", "MZXQ", "MZXW6", "MZXW6YQ", "MZXW6YTB",
                                     "MZXW6YTBOI" };
  char out[64], err[96];
  unsigned char dec[64], bytes[256];
  size_t i, n, len = 0;
  for (i = 0; i < 7; i++) {
    n = a0_base32_encode((const unsigned char *)plain[i], strlen(plain[i]), out);
    CHECK(t, streq_n(out, n, enc[i]) && n == a0_base32_encoded_len(strlen(plain[i])));
    CHECK(t, a0_base32_decode(enc[i], strlen(enc[i]), dec, &len, err, sizeof err) == 0 &&
             streq_n((const char *)dec, len, plain[i]));
  }
  /* padding, lower case and spaces are accepted */
  CHECK(t, a0_base32_decode("mzxw 6ytb oi======", 18, dec, &len, err, sizeof err) == 0 &&
           streq_n((const char *)dec, len, "foobar"));
  /* round trip of every byte value */
  for (i = 0; i < sizeof bytes; i++) bytes[i] = (unsigned char)i;
  {
    char big[512];
    unsigned char back[512];
    size_t m = a0_base32_encode(bytes, sizeof bytes, big);
    CHECK(t, m <= sizeof big && a0_base32_decoded_max(m) <= sizeof back);
    CHECK(t, a0_base32_decode(big, m, back, &len, err, sizeof err) == 0 && len == sizeof bytes &&
             memcmp(back, bytes, len) == 0);
  }
  /* errors name the position and never echo the input */
  CHECK(t, a0_base32_decode("ABC1EFGH", 8, dec, &len, err, sizeof err) == -1 &&
           strcmp(err, "invalid base32 character at position 4") == 0);
  CHECK(t, a0_base32_decode("SECRET8X", 8, dec, &len, err, sizeof err) == -1 &&
           strcmp(err, "invalid base32 character at position 7") == 0 && !strstr(err, "SECRET"));
  CHECK(t, a0_base32_decode("A", 1, dec, &len, err, sizeof err) == -1 &&
           strcmp(err, "invalid base32 length") == 0);
  CHECK(t, a0_base32_decode("MZX", 3, dec, &len, err, sizeof err) == -1);
  CHECK(t, a0_base32_decode("MZXW6Y", 6, dec, &len, err, sizeof err) == -1);
}

static void test_b64(tally *t) {
  static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
  static const char *const std[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
                                     "Zm9vYmFy" };
  static const char *const url[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };
  const unsigned char odd[] = { 0xfb, 0xff, 0xbf };
  char out[64], err[96];
  unsigned char dec[64];
  size_t i, n, len = 0;
  for (i = 0; i < 7; i++) {
    size_t pl = strlen(plain[i]);
    n = a0_b64_encode((const unsigned char *)plain[i], pl, out, 0);
    CHECK(t, streq_n(out, n, std[i]) && n == a0_b64_encoded_len(pl, 0));
    n = a0_b64_encode((const unsigned char *)plain[i], pl, out, 1);
    CHECK(t, streq_n(out, n, url[i]) && n == a0_b64_encoded_len(pl, 1));
    CHECK(t, a0_b64_decode(std[i], strlen(std[i]), dec, &len, 0, err, sizeof err) == 0 &&
             streq_n((const char *)dec, len, plain[i]));
    /* url decoding accepts both padded and unpadded input */
    CHECK(t, a0_b64_decode(url[i], strlen(url[i]), dec, &len, 1, err, sizeof err) == 0 &&
             streq_n((const char *)dec, len, plain[i]));
    CHECK(t, a0_b64_decode(std[i], strlen(std[i]), dec, &len, 1, err, sizeof err) == 0 &&
             streq_n((const char *)dec, len, plain[i]));
  }
  n = a0_b64_encode(odd, 3, out, 0);
  CHECK(t, streq_n(out, n, "+/+/"));
  n = a0_b64_encode(odd, 3, out, 1);
  CHECK(t, streq_n(out, n, "-_-_"));
  CHECK(t, a0_b64_decode("-_-_", 4, dec, &len, 1, err, sizeof err) == 0 && len == 3 &&
           memcmp(dec, odd, 3) == 0);
  CHECK(t, a0_b64_decode("+/+/", 4, dec, &len, 1, err, sizeof err) == -1 &&
           strcmp(err, "invalid base64url character at position 1") == 0);
  CHECK(t, a0_b64_decode("-_-_", 4, dec, &len, 0, err, sizeof err) == -1 &&
           strcmp(err, "invalid base64 character at position 1") == 0);
  CHECK(t, a0_b64_decode("Zm9v.", 5, dec, &len, 1, err, sizeof err) == -1 &&
           strcmp(err, "invalid base64url character at position 5") == 0);
  CHECK(t, a0_b64_decode("Zm9vY", 5, dec, &len, 1, err, sizeof err) == -1 &&
           strcmp(err, "invalid base64url length") == 0);
  CHECK(t, a0_b64_decode("Zg=", 3, dec, &len, 1, err, sizeof err) == -1 &&
           strcmp(err, "invalid base64url padding") == 0);
  CHECK(t, a0_b64_decode("Z===", 4, dec, &len, 0, err, sizeof err) == -1);
  CHECK(t, a0_b64_decode("Zg==Zg==", 8, dec, &len, 0, err, sizeof err) == -1);
}

static void test_digests(tally *t) {
  static const unsigned char abc256[] = {
    0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };
  /* RFC 4231 test case 2 */
  static const unsigned char jefe256[] = {
    0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
    0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43 };
  unsigned char md[A0_HMAC_MAX];
  size_t len = 0;
  const char *msg = "what do ya want for nothing?";
  CHECK(t, a0_sha256("abc", 3, md) == 0 && memcmp(md, abc256, 32) == 0);
  CHECK(t, a0_hmac(A0_SHA256, "Jefe", 4, msg, strlen(msg), md, &len) == 0 && len == 32 &&
           memcmp(md, jefe256, 32) == 0);
  CHECK(t, a0_hmac(A0_SHA1, "Jefe", 4, msg, strlen(msg), md, &len) == 0 && len == 20 &&
           md[0] == 0xef && md[19] == 0x79);
  CHECK(t, a0_hmac(A0_SHA512, "Jefe", 4, msg, strlen(msg), md, &len) == 0 && len == 64 &&
           md[0] == 0x16 && md[63] == 0x37);
  /* zero-length key: HMAC-SHA256("", "") = b613679a...c6c712c7ad */
  CHECK(t, a0_hmac(A0_SHA256, "", 0, "", 0, md, &len) == 0 && len == 32 && md[0] == 0xb6 &&
           md[31] == 0xad);
}

static void test_random_and_wipe(tally *t) {
  unsigned char a[32], b[32], zero[32];
  memset(zero, 0, sizeof zero);
  CHECK(t, a0_random_bytes(a, sizeof a) == 0 && a0_random_bytes(b, sizeof b) == 0);
  CHECK(t, memcmp(a, b, sizeof a) != 0);
  memset(a, 0xA5, sizeof a);
  a0_wipe(a, sizeof a);
  CHECK(t, memcmp(a, zero, sizeof a) == 0);
  a0_wipe(NULL, 10); /* tolerated */
  CHECK(t, 1);
}

static void test_rsa(tally *t) {
  a0_key *k = a0_key_generate(2048), *k2;
  unsigned char sig[A0_RSA_MAX_LEN], n[A0_RSA_MAX_LEN], e[A0_RSA_MAX_LEN], n2[A0_RSA_MAX_LEN];
  size_t siglen = 0, nlen = 0, elen = 0, n2len = 0, pemlen;
  char err[96], pem[4096];
  const unsigned char one = 1;
  CHECK(t, k != NULL);
  if (k == NULL) return;
  CHECK(t, a0_key_bits(k) == 2048 && a0_key_size(k) == 256);
  CHECK(t, a0_key_sign_rs256(k, "hello", 5, sig, &siglen) == 0 && siglen == 256);
  CHECK(t, a0_key_public(k, n, &nlen, e, &elen) == 0 && nlen == 256 && elen == 3);
  CHECK(t, a0_rs256_verify(n, nlen, e, elen, "hello", 5, sig, siglen) == 1);
  CHECK(t, a0_rs256_verify(n, nlen, e, elen, "hellp", 5, sig, siglen) == 0);
  CHECK(t, a0_rs256_verify(n, nlen, e, elen, "hello", 5, sig, siglen - 1) == 0);
  CHECK(t, a0_rs256_verify(n, nlen, &one, 1, "hello", 5, sig, siglen) == 0);
  CHECK(t, a0_rs256_verify(n, 64, e, elen, "hello", 5, sig, siglen) == 0);
  {
    a0_key *pub = a0_key_from_rsa_public(n, nlen, e, elen);
    unsigned char sig2[A0_RSA_MAX_LEN];
    size_t sig2len = 0;
    CHECK(t, pub != NULL && a0_key_bits(pub) == 2048);
    if (pub != NULL) {
      CHECK(t, a0_key_verify_rs256(pub, "hello", 5, sig, siglen) == 1);
      CHECK(t, a0_key_verify_rs256(pub, "hello", 5, sig, siglen) == 1);   /* reusable */
      CHECK(t, a0_key_verify_rs256(pub, "hellp", 5, sig, siglen) == 0);
      CHECK(t, a0_key_verify_rs256(pub, "hello", 5, sig, 0) == 0);
      CHECK(t, a0_key_sign_rs256(pub, "hello", 5, sig2, &sig2len) != 0);   /* public only */
      CHECK(t, a0_key_pem(pub, NULL, 0) == 0);
    }
    a0_key_free(pub);
    CHECK(t, a0_key_from_rsa_public(n, nlen, &one, 1) == NULL);
    CHECK(t, a0_key_from_rsa_public(n, 64, e, elen) == NULL);
  }
  sig[10] ^= 1;
  CHECK(t, a0_rs256_verify(n, nlen, e, elen, "hello", 5, sig, siglen) == 0);
  pemlen = a0_key_pem(k, NULL, 0);
  CHECK(t, pemlen > 0 && pemlen < sizeof pem && a0_key_pem(k, pem, sizeof pem) == pemlen);
  CHECK(t, strncmp(pem, "-----BEGIN PRIVATE KEY-----", 27) == 0);
  k2 = a0_key_from_pem(pem, pemlen, err, sizeof err);
  CHECK(t, k2 != NULL && a0_key_public(k2, n2, &n2len, e, &elen) == 0 && n2len == nlen &&
           memcmp(n, n2, nlen) == 0);
  a0_key_free(k2);
  a0_wipe(pem, sizeof pem);
  CHECK(t, a0_key_from_pem("garbage", 7, err, sizeof err) == NULL &&
           strcmp(err, "invalid PEM private key") == 0);
  a0_key_free(k);
  a0_key_free(NULL);
}

/* Polls a verification job until its thread is done (a few ms at most): its result. */
static int job_outcome(a0_verify_job *j) {
  int valid = -1, i;
  for (i = 0; i < 200000; i++) {
    if (a0_verify_job_result(j, &valid)) break;
    usleep(50);
  }
  a0_verify_job_release(j);
  return valid;
}

static void test_verify_job(tally *t) {
  a0_key *k = a0_key_generate(2048);
  unsigned char sig[A0_RSA_MAX_LEN], n[A0_RSA_MAX_LEN], e[A0_RSA_MAX_LEN];
  size_t siglen = 0, nlen = 0, elen = 0;
  int i;
  CHECK(t, k != NULL && a0_key_sign_rs256(k, "hello", 5, sig, &siglen) == 0);
  CHECK(t, a0_key_public(k, n, &nlen, e, &elen) == 0);
  CHECK(t, job_outcome(a0_verify_job_start(NULL, n, nlen, e, elen, "hello", 5, sig, siglen)) == 1);
  CHECK(t, job_outcome(a0_verify_job_start(NULL, n, nlen, e, elen, "hellp", 5, sig, siglen)) == 0);
  CHECK(t, job_outcome(a0_verify_job_start(NULL, n, nlen, e, elen, "hello", 5, sig, siglen - 1)) == 0);
  CHECK(t, job_outcome(a0_verify_job_start(NULL, n, 0, e, elen, "hello", 5, sig, siglen)) == 0);
  CHECK(t, job_outcome(a0_verify_job_start(NULL, n, nlen, e, elen, "", 0, sig, 0)) == 0);
  /* released while the thread runs: the thread frees it (ASan: no leak, no use after free) */
  for (i = 0; i < 8; i++) a0_verify_job_release(a0_verify_job_start(NULL, n, nlen, e, elen, "hello", 5, sig, siglen));
  CHECK(t, job_outcome(a0_verify_job_start(NULL, n, nlen, e, elen, "hello", 5, sig, siglen)) == 1);
  {   /* a worker: its jobs in order on one thread; released with jobs queued, it runs them */
    a0_verify_worker *w = a0_verify_worker_new();
    a0_verify_job *a, *b, *c;
    CHECK(t, w != NULL);
    a = a0_verify_job_start(w, n, nlen, e, elen, "hello", 5, sig, siglen);
    b = a0_verify_job_start(w, n, nlen, e, elen, "hellp", 5, sig, siglen);
    c = a0_verify_job_start(w, n, nlen, e, elen, "hello", 5, sig, siglen);
    a0_verify_job_release(a0_verify_job_start(w, n, nlen, e, elen, "hello", 5, sig, siglen));
    a0_verify_worker_release(w);
    CHECK(t, job_outcome(a) == 1 && job_outcome(b) == 0 && job_outcome(c) == 1);
    a0_verify_worker_release(NULL);
  }
  usleep(200000);   /* the released jobs' threads end before the process does */
  a0_verify_job_release(NULL);
  a0_key_free(k);
}

int main(void) {
  tally t = { 0, 0 };
  test_hotp_rfc4226(&t);
  test_totp_rfc6238(&t);
  test_alg_names(&t);
  test_base32(&t);
  test_b64(&t);
  test_digests(&t);
  test_random_and_wipe(&t);
  test_rsa(&t);
  test_verify_job(&t);
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed == 0 ? 0 : 1;
}
