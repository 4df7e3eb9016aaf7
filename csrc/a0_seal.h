/* Authenticated encryption of small secrets (credentials at rest, session cookies):
 * AES-256-GCM over OpenSSL. Envelope, all binary:
 *   "A0S" | version (1) | key id length (1, 0..64) | key id | nonce (12) | ciphertext | tag (16)
 * The header (everything before the ciphertext) is the AAD, so the version and key id cannot
 * be changed without the tag failing. */
#ifndef A0_SEAL_H
#define A0_SEAL_H

#include <stddef.h>

#include "a0_buf.h"

#define A0_SEAL_KEY_LEN   32
#define A0_SEAL_KID_MAX   64
#define A0_SEAL_NONCE_LEN 12
#define A0_SEAL_TAG_LEN   16
#define A0_SEAL_VERSION   1
#define A0_SEAL_MAX       (1024 * 1024)   /* plaintext limit */

/* Appends the envelope of `pt` to `out`. @return 0, or -1 (bad sizes, OpenSSL failure). */
int a0_seal(const unsigned char key[A0_SEAL_KEY_LEN], const char *kid, size_t kid_len,
            const void *pt, size_t pt_len, a0_buf *out);

/* Parses the header only: points *kid into `env`. @return 0, or -1 when it is not an envelope. */
int a0_seal_kid(const void *env, size_t len, const char **kid, size_t *kid_len);

/* Checks and decrypts: on success appends the plaintext to `out`; on any failure (truncated,
 * wrong version, wrong key, tampered) appends nothing and returns -1 with a reason. */
int a0_open(const unsigned char key[A0_SEAL_KEY_LEN], const void *env, size_t len, a0_buf *out,
            const char **reason);

#endif
