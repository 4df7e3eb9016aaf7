/* Crypto engine: encoders (base64, base64url, base32), digests, HMAC, HOTP/TOTP and
 * RSA keys over OpenSSL 3 EVP. Pure C, no Lua: the binding is l_crypto.c. */
#ifndef A0_CRYPTO_H
#define A0_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "a0_buf.h"   /* a0_wipe(), the one wipe helper (explicit_bzero, OPENSSL_cleanse elsewhere) */
#include "a0_worker.h"

#define A0_SHA256_LEN   32
#define A0_HMAC_MAX     64      /* SHA512 output */
#define A0_OTP_MAX      10      /* digits */
#define A0_RANDOM_MAX   4096
#define A0_RSA_MIN_BITS 1024
#define A0_RSA_MAX_BITS 16384
#define A0_RSA_MAX_LEN  (A0_RSA_MAX_BITS / 8)

typedef enum { A0_SHA1, A0_SHA256, A0_SHA512 } a0_hash_alg;

/* Case-insensitive "SHA1" | "SHA256" | "SHA512"; returns 0 on success, -1 otherwise. */
int a0_hash_alg_parse(const char *name, a0_hash_alg *out);

/* 0 on success, -1 if the CSPRNG failed. */
int a0_random_bytes(unsigned char *out, size_t n);

int a0_sha256(const void *data, size_t n, unsigned char out[A0_SHA256_LEN]);
/* Writes the MAC to out (A0_HMAC_MAX bytes of room) and its length to *outlen; 0 or -1. */
int a0_hmac(a0_hash_alg alg, const void *key, size_t keylen, const void *data, size_t n,
            unsigned char *out, size_t *outlen);

/* Encoders write to out, which must hold a0_*_encoded_len(n) bytes (no NUL is added),
 * and return the number of bytes written. */
size_t a0_b64_encoded_len(size_t n, int url);
size_t a0_b64_encode(const unsigned char *in, size_t n, char *out, int url);
size_t a0_base32_encoded_len(size_t n);
size_t a0_base32_encode(const unsigned char *in, size_t n, char *out);

/* Decoders need room for a0_*_decoded_max(n) bytes. On failure they return -1 and write
 * a message to err (errlen bytes) naming the position, never the input. url selects the
 * base64url alphabet; padding is optional for both alphabets. base32 is case-insensitive
 * and ignores spaces and '='. */
size_t a0_b64_decoded_max(size_t n);
int a0_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen, int url,
                  char *err, size_t errlen);
size_t a0_base32_decoded_max(size_t n);
int a0_base32_decode(const char *in, size_t n, unsigned char *out, size_t *outlen,
                     char *err, size_t errlen);

/* RFC 4226 / RFC 6238. out needs digits + 1 bytes (NUL-terminated). digits in 6..10,
 * period >= 1. Return 0 or -1. */
int a0_hotp(a0_hash_alg alg, const unsigned char *key, size_t keylen, uint64_t counter,
            int digits, char *out);
int a0_totp(a0_hash_alg alg, const unsigned char *key, size_t keylen, uint64_t unix_time,
            uint64_t period, int digits, char *out);

/* An RSA key: a private one (generated, from PEM), or public only (from n and e). */
typedef struct a0_key a0_key;

a0_key *a0_key_generate(int bits);
/* NULL on failure with a message in err; encrypted PEMs are rejected, never prompted for. */
a0_key *a0_key_from_pem(const char *pem, size_t n, char *err, size_t errlen);
void a0_key_free(a0_key *k);
int a0_key_bits(const a0_key *k);
/* Signature length (modulus size in bytes). */
size_t a0_key_size(const a0_key *k);
/* RSASSA-PKCS1-v1_5 with SHA-256; sig needs a0_key_size(k) bytes. 0 or -1. */
int a0_key_sign_rs256(const a0_key *k, const void *data, size_t n, unsigned char *sig,
                      size_t *siglen);
/* Big-endian modulus and public exponent, each into a buffer of A0_RSA_MAX_LEN bytes. */
int a0_key_public(const a0_key *k, unsigned char *n, size_t *nlen, unsigned char *e,
                  size_t *elen);
/* PKCS#8 PEM of the private key. Writes at most cap bytes to out (may be NULL) and
 * returns the full length, or 0 on failure: call once to size, once to fill. */
size_t a0_key_pem(const a0_key *k, char *out, size_t cap);

/* 1 if sig is a valid RS256 signature of data under the public key (n, e), 0 if not or
 * if the key is unusable (too small or large, even or tiny exponent). */
/* A public-only key from the big-endian (n, e) of a JWK, or NULL when rs256_verify would
 * refuse it; built once and kept, it saves OpenSSL's key import on every verification. */
a0_key *a0_key_from_rsa_public(const unsigned char *n, size_t nlen, const unsigned char *e,
                               size_t elen);
/* 1 if sig is a valid RS256 signature of data under k's public key, else 0. */
int a0_key_verify_rs256(const a0_key *k, const void *data, size_t dlen, const unsigned char *sig,
                        size_t siglen);
int a0_rs256_verify(const unsigned char *n, size_t nlen, const unsigned char *e, size_t elen,
                    const void *data, size_t dlen, const unsigned char *sig, size_t siglen);

/* a0_rs256_verify on another thread, so that the caller (a game's frame) pays for neither the
 * key's import nor the verification. A worker is one thread, started once (a thread's start
 * costs a frame about as much as the verification), running its jobs in order; without one a
 * job gets a thread of its own. A job owns copies of its inputs (wiped when freed: the data
 * is a token). NULL when there is no memory or no thread. */
typedef struct a0_verify_job a0_verify_job;
typedef a0_worker a0_verify_worker;   /* one thread running its jobs in order */
/* Keeps OpenSSL from tearing its state down in exit()'s handlers, where a verification thread
 * still running would use it after it is freed (a game quitting mid-check crashed); called
 * when the module opens, before this library's first use of OpenSSL. */
void a0_crypto_no_atexit(void);
a0_verify_worker *a0_verify_worker_new(void);
/* Drops the owner's reference without waiting: the thread runs the jobs queued, then ends. */
void a0_verify_worker_release(a0_verify_worker *w);
/* NULL without memory or a thread, or with errno EAGAIN when w's queue is full (a0_worker.h). */
a0_verify_job *a0_verify_job_start(a0_verify_worker *w, const unsigned char *n, size_t nlen, const unsigned char *e,
                                   size_t elen, const void *data, size_t dlen, const unsigned char *sig,
                                   size_t siglen);
/* Never blocks: 0 while the thread works, then 1 with *valid as a0_rs256_verify returned. */
int a0_verify_job_result(a0_verify_job *j, int *valid);
/* Drops the caller's reference without waiting: a queued or running job is freed by its thread. */
void a0_verify_job_release(a0_verify_job *j);

#endif
