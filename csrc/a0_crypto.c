/* Crypto engine over OpenSSL 3 EVP: see a0_crypto.h. No Lua, no globals. */
#include "a0_crypto.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

struct a0_key {
  EVP_PKEY *pkey;
};

static void set_err(char *err, size_t errlen, const char *msg) {
  if (err != NULL && errlen > 0) snprintf(err, errlen, "%s", msg);
}

/* ---- names, random, digests ---------------------------------------------------- */

static int ascii_upper(int c) {
  return (c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c;
}

static int name_eq(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (ascii_upper((unsigned char)*a) != *b) return 0;
  return *a == *b;
}

int a0_hash_alg_parse(const char *name, a0_hash_alg *out) {
  if (name == NULL) return -1;
  if (name_eq(name, "SHA1")) *out = A0_SHA1;
  else if (name_eq(name, "SHA256")) *out = A0_SHA256;
  else if (name_eq(name, "SHA512")) *out = A0_SHA512;
  else return -1;
  return 0;
}

static const char *alg_digest_name(a0_hash_alg alg) {
  switch (alg) {
    case A0_SHA1: return "SHA1";
    case A0_SHA256: return "SHA256";
    case A0_SHA512: return "SHA512";
  }
  return NULL;
}

int a0_random_bytes(unsigned char *out, size_t n) {
  if (n > INT_MAX) return -1;
  if (n == 0) return 0;
  if (RAND_bytes(out, (int)n) != 1) {
    ERR_clear_error();
    return -1;
  }
  return 0;
}

int a0_sha256(const void *data, size_t n, unsigned char out[A0_SHA256_LEN]) {
  unsigned int len = 0;
  if (EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) != 1 || len != A0_SHA256_LEN) {
    ERR_clear_error();
    return -1;
  }
  return 0;
}

int a0_hmac(a0_hash_alg alg, const void *key, size_t keylen, const void *data, size_t n,
            unsigned char *out, size_t *outlen) {
  /* EVP_MAC_init treats a NULL key as "keep the previous key": give an empty key a
   * real address so HMAC with a zero-length key works. */
  unsigned char empty = 0;
  char digest[16];
  const char *dname = alg_digest_name(alg);
  EVP_MAC *mac = NULL;
  EVP_MAC_CTX *ctx = NULL;
  OSSL_PARAM params[2];
  int rc = -1;

  if (dname == NULL) return -1;
  snprintf(digest, sizeof digest, "%s", dname);
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
  params[1] = OSSL_PARAM_construct_end();
  mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  if (mac == NULL) goto done;
  ctx = EVP_MAC_CTX_new(mac);
  if (ctx == NULL) goto done;
  if (EVP_MAC_init(ctx, keylen > 0 ? key : &empty, keylen, params) != 1) goto done;
  if (EVP_MAC_update(ctx, data, n) != 1) goto done;
  if (EVP_MAC_final(ctx, out, outlen, A0_HMAC_MAX) != 1) goto done;
  rc = 0;
done:
  if (rc != 0) ERR_clear_error();
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  return rc;
}

/* ---- base64 / base64url --------------------------------------------------------- */

static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t a0_b64_encoded_len(size_t n, int url) {
  return url ? (n / 3) * 4 + (n % 3 == 0 ? 0 : n % 3 + 1) : ((n + 2) / 3) * 4;
}

size_t a0_b64_encode(const unsigned char *in, size_t n, char *out, int url) {
  const char *abc = url ? B64_URL : B64_STD;
  size_t i = 0, o = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8) | in[i + 2];
    out[o++] = abc[(v >> 18) & 63];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = abc[(v >> 6) & 63];
    out[o++] = abc[v & 63];
  }
  if (n - i == 1) {
    unsigned long v = (unsigned long)in[i] << 16;
    out[o++] = abc[(v >> 18) & 63];
    out[o++] = abc[(v >> 12) & 63];
    if (!url) { out[o++] = '='; out[o++] = '='; }
  } else if (n - i == 2) {
    unsigned long v = ((unsigned long)in[i] << 16) | ((unsigned long)in[i + 1] << 8);
    out[o++] = abc[(v >> 18) & 63];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = abc[(v >> 6) & 63];
    if (!url) out[o++] = '=';
  }
  return o;
}

static int b64_value(int c, int url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (url ? '-' : '+')) return 62;
  if (c == (url ? '_' : '/')) return 63;
  return -1;
}

size_t a0_b64_decoded_max(size_t n) {
  return (n / 4) * 3 + 3;
}

int a0_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen, int url,
                  char *err, size_t errlen) {
  const char *name = url ? "base64url" : "base64";
  char msg[96];
  size_t len = n, i, o = 0;
  unsigned long acc = 0;
  int bits = 0;

  while (len > 0 && in[len - 1] == '=' && n - len < 2) len--;
  if (len < n && n % 4 != 0) {
    snprintf(msg, sizeof msg, "invalid %s padding", name);
    set_err(err, errlen, msg);
    return -1;
  }
  for (i = 0; i < len; i++) {
    int v = b64_value((unsigned char)in[i], url);
    if (v < 0) {
      snprintf(msg, sizeof msg, "invalid %s character at position %lu", name,
               (unsigned long)(i + 1));
      set_err(err, errlen, msg);
      return -1;
    }
    acc = ((acc << 6) | (unsigned long)v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)((acc >> bits) & 0xff);
    }
  }
  if (len % 4 == 1) {
    snprintf(msg, sizeof msg, "invalid %s length", name);
    set_err(err, errlen, msg);
    return -1;
  }
  *outlen = o;
  return 0;
}

/* ---- base32 (RFC 4648) ------------------------------------------------------------ */

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

size_t a0_base32_encoded_len(size_t n) {
  return (n * 8 + 4) / 5;
}

size_t a0_base32_encode(const unsigned char *in, size_t n, char *out) {
  size_t i, o = 0;
  unsigned long acc = 0;
  int bits = 0;
  for (i = 0; i < n; i++) {
    acc = ((acc << 8) | in[i]) & 0xfff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out[o++] = B32[(acc >> bits) & 31];
    }
  }
  if (bits > 0) out[o++] = B32[(acc << (5 - bits)) & 31];
  return o;
}

size_t a0_base32_decoded_max(size_t n) {
  return (n * 5) / 8 + 1;
}

static int b32_value(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}

int a0_base32_decode(const char *in, size_t n, unsigned char *out, size_t *outlen,
                     char *err, size_t errlen) {
  char msg[96];
  size_t i, o = 0, count = 0;
  unsigned long acc = 0;
  int bits = 0;
  for (i = 0; i < n; i++) {
    int v;
    if (in[i] == ' ' || in[i] == '=') continue;
    v = b32_value((unsigned char)in[i]);
    if (v < 0) {
      snprintf(msg, sizeof msg, "invalid base32 character at position %lu",
               (unsigned long)(i + 1));
      set_err(err, errlen, msg);
      a0_wipe(out, o);
      acc = 0;
      return -1;
    }
    count++;
    acc = ((acc << 5) | (unsigned long)v) & 0x1fff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)((acc >> bits) & 0xff);
    }
  }
  acc = 0;
  /* 1, 3 or 6 characters in the last group cannot come from whole bytes. */
  if (count % 8 == 1 || count % 8 == 3 || count % 8 == 6) {
    set_err(err, errlen, "invalid base32 length");
    a0_wipe(out, o);
    return -1;
  }
  *outlen = o;
  return 0;
}

/* ---- HOTP / TOTP ------------------------------------------------------------------ */

int a0_hotp(a0_hash_alg alg, const unsigned char *key, size_t keylen, uint64_t counter,
            int digits, char *out) {
  static const uint64_t mod10[] = { 1000000ULL, 10000000ULL, 100000000ULL, 1000000000ULL,
                                    10000000000ULL };
  unsigned char msg[8], mac[A0_HMAC_MAX];
  size_t maclen = 0, off;
  uint64_t bin;
  int i;

  if (digits < 6 || digits > A0_OTP_MAX) return -1;
  for (i = 7; i >= 0; i--) {
    msg[i] = (unsigned char)(counter & 0xff);
    counter >>= 8;
  }
  if (a0_hmac(alg, key, keylen, msg, sizeof msg, mac, &maclen) != 0 || maclen < 20) {
    a0_wipe(mac, sizeof mac);
    return -1;
  }
  off = mac[maclen - 1] & 0x0f;
  bin = ((uint64_t)(mac[off] & 0x7f) << 24) | ((uint64_t)mac[off + 1] << 16) |
        ((uint64_t)mac[off + 2] << 8) | (uint64_t)mac[off + 3];
  a0_wipe(mac, sizeof mac);
  snprintf(out, (size_t)digits + 1, "%0*llu", digits,
           (unsigned long long)(bin % mod10[digits - 6]));
  return 0;
}

int a0_totp(a0_hash_alg alg, const unsigned char *key, size_t keylen, uint64_t unix_time,
            uint64_t period, int digits, char *out) {
  if (period == 0) return -1;
  return a0_hotp(alg, key, keylen, unix_time / period, digits, out);
}

/* ---- RSA keys --------------------------------------------------------------------- */

static a0_key *key_wrap(EVP_PKEY *pkey) {
  a0_key *k;
  if (pkey == NULL) return NULL;
  k = malloc(sizeof *k);
  if (k == NULL) {
    EVP_PKEY_free(pkey);
    return NULL;
  }
  k->pkey = pkey;
  return k;
}

a0_key *a0_key_generate(int bits) {
  EVP_PKEY *pkey = NULL;
  EVP_PKEY_CTX *ctx;
  if (bits < A0_RSA_MIN_BITS || bits > A0_RSA_MAX_BITS) return NULL;
  ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
  if (ctx == NULL || EVP_PKEY_keygen_init(ctx) != 1 ||
      EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) != 1 || EVP_PKEY_generate(ctx, &pkey) != 1) {
    EVP_PKEY_free(pkey);
    pkey = NULL;
    ERR_clear_error();
  }
  EVP_PKEY_CTX_free(ctx);
  return key_wrap(pkey);
}

/* Refuses to decrypt: a library must never prompt on the terminal for a passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf; (void)size; (void)rwflag;
  *(int *)u = 1;
  return -1;
}

a0_key *a0_key_from_pem(const char *pem, size_t n, char *err, size_t errlen) {
  BIO *bio;
  EVP_PKEY *pkey;
  int asked = 0, bits;

  if (n > INT_MAX || (bio = BIO_new_mem_buf(pem, (int)n)) == NULL) {
    set_err(err, errlen, "could not read private key");
    return NULL;
  }
  pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
  BIO_free(bio);
  ERR_clear_error();
  if (pkey == NULL) {
    set_err(err, errlen, asked ? "encrypted private keys are not supported"
                               : "invalid PEM private key");
    return NULL;
  }
  if (!EVP_PKEY_is_a(pkey, "RSA")) {
    EVP_PKEY_free(pkey);
    set_err(err, errlen, "not an RSA private key");
    return NULL;
  }
  bits = EVP_PKEY_get_bits(pkey);
  if (bits < A0_RSA_MIN_BITS || bits > A0_RSA_MAX_BITS) {
    EVP_PKEY_free(pkey);
    set_err(err, errlen, "unsupported RSA key size");
    return NULL;
  }
  return key_wrap(pkey);
}

void a0_key_free(a0_key *k) {
  if (k == NULL) return;
  EVP_PKEY_free(k->pkey);
  free(k);
}

int a0_key_bits(const a0_key *k) {
  return EVP_PKEY_get_bits(k->pkey);
}

size_t a0_key_size(const a0_key *k) {
  int size = EVP_PKEY_get_size(k->pkey);
  return size > 0 ? (size_t)size : 0;
}

int a0_key_sign_rs256(const a0_key *k, const void *data, size_t n, unsigned char *sig,
                      size_t *siglen) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int rc = -1;
  *siglen = a0_key_size(k);
  if (ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
      EVP_DigestSign(ctx, sig, siglen, data, n) == 1)
    rc = 0;
  if (rc != 0) ERR_clear_error();
  EVP_MD_CTX_free(ctx);
  return rc;
}

static int bn_param(const a0_key *k, const char *name, unsigned char *out, size_t *len) {
  BIGNUM *bn = NULL;
  int rc = -1;
  if (EVP_PKEY_get_bn_param(k->pkey, name, &bn) == 1 && BN_num_bytes(bn) <= A0_RSA_MAX_LEN) {
    *len = (size_t)BN_bn2bin(bn, out);
    rc = 0;
  }
  if (rc != 0) ERR_clear_error();
  BN_free(bn);
  return rc;
}

int a0_key_public(const a0_key *k, unsigned char *n, size_t *nlen, unsigned char *e,
                  size_t *elen) {
  if (bn_param(k, OSSL_PKEY_PARAM_RSA_N, n, nlen) != 0) return -1;
  return bn_param(k, OSSL_PKEY_PARAM_RSA_E, e, elen);
}

size_t a0_key_pem(const a0_key *k, char *out, size_t cap) {
  /* A secure-memory BIO wipes its buffer when freed. */
  BIO *bio = BIO_new(BIO_s_secmem());
  char *data = NULL;
  long len;
  size_t total = 0;
  if (bio == NULL) return 0;
  if (PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) == 1 &&
      (len = BIO_get_mem_data(bio, &data)) > 0) {
    total = (size_t)len;
    if (out != NULL) memcpy(out, data, total < cap ? total : cap);
  }
  if (total == 0) ERR_clear_error();
  BIO_free(bio);
  return total;
}

static EVP_PKEY *rsa_public(const unsigned char *n, size_t nlen, const unsigned char *e,
                            size_t elen) {
  BIGNUM *bn_n = NULL, *bn_e = NULL;
  OSSL_PARAM_BLD *bld = NULL;
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = NULL;
  EVP_PKEY *pkey = NULL;
  int nbits;

  if (nlen > A0_RSA_MAX_LEN + 1 || elen > A0_RSA_MAX_LEN || nlen > INT_MAX || elen > INT_MAX)
    return NULL;
  bn_n = BN_bin2bn(n, (int)nlen, NULL);
  bn_e = BN_bin2bn(e, (int)elen, NULL);
  if (bn_n == NULL || bn_e == NULL) goto done;
  nbits = BN_num_bits(bn_n);
  /* e = 1 (or even) would make any "signature" verify or the key meaningless. */
  if (nbits < A0_RSA_MIN_BITS || nbits > A0_RSA_MAX_BITS || BN_num_bits(bn_e) < 2 ||
      !BN_is_odd(bn_e) || BN_cmp(bn_e, bn_n) >= 0)
    goto done;
  if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1 ||
      (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
    goto done;
  ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
  if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    EVP_PKEY_free(pkey);
    pkey = NULL;
  }
done:
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn_n);
  BN_free(bn_e);
  return pkey;
}

/* A public-only key from (n, e), checked as rsa_public checks it; NULL if unusable. */
a0_key *a0_key_from_rsa_public(const unsigned char *n, size_t nlen, const unsigned char *e,
                               size_t elen) {
  EVP_PKEY *pkey = rsa_public(n, nlen, e, elen);
  ERR_clear_error();
  return key_wrap(pkey);
}

int a0_key_verify_rs256(const a0_key *k, const void *data, size_t dlen, const unsigned char *sig,
                        size_t siglen) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = 0;
  if (ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1)
    ok = EVP_DigestVerify(ctx, sig, siglen, data, dlen) == 1;
  ERR_clear_error();
  EVP_MD_CTX_free(ctx);
  return ok;
}

int a0_rs256_verify(const unsigned char *n, size_t nlen, const unsigned char *e, size_t elen,
                    const void *data, size_t dlen, const unsigned char *sig, size_t siglen) {
  a0_key *k = a0_key_from_rsa_public(n, nlen, e, elen);
  int ok = k != NULL && a0_key_verify_rs256(k, data, dlen, sig, siglen);
  a0_key_free(k);
  return ok;
}

void a0_crypto_no_atexit(void) { (void)OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL); }

struct a0_verify_job {
  a0_work work;                   /* first: a worker's queue item (a0_worker.h) */
  pthread_mutex_t mu;
  int refs, done, valid;          /* refs: the caller's and the thread's */
  size_t nlen, elen, dlen, slen;
  unsigned char *mem;             /* n, e, data, sig in one block */
};

static void verify_job_unref(a0_verify_job *j) {
  int last;
  pthread_mutex_lock(&j->mu);
  last = --j->refs == 0;
  pthread_mutex_unlock(&j->mu);
  if (!last) return;
  a0_wipe(j->mem, j->nlen + j->elen + j->dlen + j->slen);
  free(j->mem);
  pthread_mutex_destroy(&j->mu);
  free(j);
}

static void verify_job_run(a0_work *item) {
  a0_verify_job *j = (a0_verify_job *)item;
  const unsigned char *n = j->mem, *e = n + j->nlen, *d = e + j->elen, *s = d + j->dlen;
  int ok = a0_rs256_verify(n, j->nlen, e, j->elen, d, j->dlen, s, j->slen);
  pthread_mutex_lock(&j->mu);
  j->valid = ok;
  j->done = 1;
  pthread_mutex_unlock(&j->mu);
  verify_job_unref(j);
}

a0_verify_worker *a0_verify_worker_new(void) {
  int rc;
  return a0_worker_new(&rc);
}

void a0_verify_worker_release(a0_verify_worker *w) { a0_worker_release(w); }

a0_verify_job *a0_verify_job_start(a0_verify_worker *w, const unsigned char *n, size_t nlen, const unsigned char *e,
                                   size_t elen, const void *data, size_t dlen, const unsigned char *sig,
                                   size_t siglen) {
  a0_verify_job *j = (a0_verify_job *)calloc(1, sizeof *j);
  if (j == NULL) return NULL;
  j->mem = (unsigned char *)malloc(nlen + elen + dlen + siglen + 1);
  if (j->mem == NULL) { free(j); return NULL; }
  if (nlen > 0) memcpy(j->mem, n, nlen);
  if (elen > 0) memcpy(j->mem + nlen, e, elen);
  if (dlen > 0) memcpy(j->mem + nlen + elen, data, dlen);
  if (siglen > 0) memcpy(j->mem + nlen + elen + dlen, sig, siglen);
  j->nlen = nlen; j->elen = elen; j->dlen = dlen; j->slen = siglen;
  j->refs = 2;
  j->work.run = verify_job_run;
  pthread_mutex_init(&j->mu, NULL);
  if (w != NULL) {
    if (a0_worker_push(w, &j->work) == 0) return j;
    j->refs = 1;
    verify_job_unref(j);
    errno = EAGAIN;   /* the worker's queue is full */
    return NULL;
  }
  if (a0_work_detached(&j->work) != 0) {
    j->refs = 1;
    verify_job_unref(j);
    return NULL;
  }
  return j;
}

int a0_verify_job_result(a0_verify_job *j, int *valid) {
  int done;
  pthread_mutex_lock(&j->mu);
  done = j->done;
  *valid = j->valid;
  pthread_mutex_unlock(&j->mu);
  return done;
}

void a0_verify_job_release(a0_verify_job *j) {
  if (j != NULL) verify_job_unref(j);
}
