/* AES-256-GCM envelopes (see a0_seal.h). */
#include "a0_seal.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

static const char MAGIC[3] = { 'A', '0', 'S' };

int a0_seal_kid(const void *env, size_t len, const char **kid, size_t *kid_len) {
  const unsigned char *p = env;
  size_t k;
  if (len < 5 || memcmp(p, MAGIC, 3) != 0 || p[3] != A0_SEAL_VERSION) return -1;
  k = p[4];
  if (k > A0_SEAL_KID_MAX || len < 5 + k + A0_SEAL_NONCE_LEN + A0_SEAL_TAG_LEN) return -1;
  *kid = (const char *)p + 5;
  *kid_len = k;
  return 0;
}

/* One GCM pass; `enc` 1 seals (writes the tag), 0 opens (checks it). */
static int gcm(int enc, const unsigned char *key, const unsigned char *nonce, const unsigned char *aad,
               size_t aad_len, const unsigned char *in, size_t n, unsigned char *out, unsigned char *tag) {
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int ok = 0, len = 0;
  if (c == NULL) return -1;
  if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1) goto done;
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, A0_SEAL_NONCE_LEN, NULL) != 1) goto done;
  if (EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1) goto done;
  if (EVP_CipherUpdate(c, NULL, &len, aad, (int)aad_len) != 1) goto done;
  if (n > 0 && EVP_CipherUpdate(c, out, &len, in, (int)n) != 1) goto done;
  if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, A0_SEAL_TAG_LEN, tag) != 1) goto done;
  if (EVP_CipherFinal_ex(c, out + (n > 0 ? len : 0), &len) != 1) goto done;
  if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, A0_SEAL_TAG_LEN, tag) != 1) goto done;
  ok = 1;
done:
  EVP_CIPHER_CTX_free(c);
  return ok ? 0 : -1;
}

int a0_seal(const unsigned char key[A0_SEAL_KEY_LEN], const char *kid, size_t kid_len,
            const void *pt, size_t pt_len, a0_buf *out) {
  size_t start = out->len, hdr = 5 + kid_len + A0_SEAL_NONCE_LEN;
  unsigned char *p;
  if (kid_len > A0_SEAL_KID_MAX || pt_len > A0_SEAL_MAX) return -1;
  if (a0_buf_reserve(out, hdr + pt_len + A0_SEAL_TAG_LEN) != 0) return -1;
  p = (unsigned char *)out->data + start;
  memcpy(p, MAGIC, 3);
  p[3] = A0_SEAL_VERSION;
  p[4] = (unsigned char)kid_len;
  if (kid_len > 0) memcpy(p + 5, kid, kid_len);
  if (RAND_bytes(p + 5 + kid_len, A0_SEAL_NONCE_LEN) != 1) return -1;
  if (gcm(1, key, p + 5 + kid_len, p, hdr, pt, pt_len, p + hdr, p + hdr + pt_len) != 0) {
    memset(p, 0, hdr + pt_len + A0_SEAL_TAG_LEN);
    return -1;
  }
  out->len = start + hdr + pt_len + A0_SEAL_TAG_LEN;
  return 0;
}

int a0_open(const unsigned char key[A0_SEAL_KEY_LEN], const void *env, size_t len, a0_buf *out,
            const char **reason) {
  const unsigned char *p = env;
  const char *kid;
  size_t kid_len, hdr, n, start = out->len;
  unsigned char tag[A0_SEAL_TAG_LEN];
  if (a0_seal_kid(env, len, &kid, &kid_len) != 0) {
    *reason = len >= 4 && memcmp(p, MAGIC, 3) == 0 && p[3] != A0_SEAL_VERSION ? "unknown envelope version"
                                                                                : "not an envelope or truncated";
    return -1;
  }
  hdr = 5 + kid_len + A0_SEAL_NONCE_LEN;
  n = len - hdr - A0_SEAL_TAG_LEN;
  if (n > A0_SEAL_MAX) { *reason = "too large"; return -1; }
  if (a0_buf_reserve(out, n + 1) != 0) { *reason = "out of memory"; return -1; }
  memcpy(tag, p + len - A0_SEAL_TAG_LEN, A0_SEAL_TAG_LEN);
  /* decrypted into the buffer's spare room, counted only once the tag checked out */
  if (gcm(0, key, p + 5 + kid_len, p, hdr, p + hdr, n, (unsigned char *)out->data + start, tag) != 0) {
    a0_wipe(out->data + start, n);
    *reason = "authentication failed (wrong key, or tampered)";
    return -1;
  }
  out->len = start + n;
  return 0;
}
