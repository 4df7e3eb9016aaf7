/* libFuzzer target for the base64 / base64url / base32 codecs of a0_crypto.h.
 * The first byte picks the codec; the rest is used twice:
 *  - as bytes: encode into an exact a0_*_encoded_len() allocation, check the alphabet
 *    and the length, decode into an exact a0_*_decoded_max() allocation, compare;
 *  - as text: decode into an exact a0_*_decoded_max() allocation. On success the output
 *    fits, re-encoding and decoding again gives the same bytes; on failure the message is
 *    a NUL-terminated printable string inside errlen.
 * Exact-size heap buffers make any overrun an ASan report. Non-canonical texts that
 * decode fine (non-zero trailing bits, e.g. "QR==" == "QQ==") are accepted by design of
 * RFC 4648 section 3.5 ("MAY"); set FUZZ_CODEC_CANONICAL=1 in the environment to treat
 * them as findings. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "a0_crypto.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

enum { B64, B64URL, B32, NCODEC };

static int canonical_strict;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  const char *v = getenv("FUZZ_CODEC_CANONICAL");
  (void)argc; (void)argv;
  canonical_strict = v != NULL && v[0] == '1';
  return 0;
}

static size_t enc_len(int k, size_t n) {
  return k == B32 ? a0_base32_encoded_len(n) : a0_b64_encoded_len(n, k == B64URL);
}

static size_t enc(int k, const unsigned char *in, size_t n, char *out) {
  return k == B32 ? a0_base32_encode(in, n, out) : a0_b64_encode(in, n, out, k == B64URL);
}

static size_t dec_max(int k, size_t n) {
  return k == B32 ? a0_base32_decoded_max(n) : a0_b64_decoded_max(n);
}

static int dec(int k, const char *in, size_t n, unsigned char *out, size_t *outlen,
               char *err, size_t errlen) {
  return k == B32 ? a0_base32_decode(in, n, out, outlen, err, errlen)
                  : a0_b64_decode(in, n, out, outlen, k == B64URL, err, errlen);
}

static int in_alphabet(int k, char c) {
  if ((c >= 'A' && c <= 'Z')) return 1;
  if (k == B32) return c >= '2' && c <= '7';
  if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return 1;
  return k == B64URL ? (c == '-' || c == '_') : (c == '+' || c == '/');
}

/* malloc(0) may return NULL; keep every buffer a real allocation */
static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  CHECK(p != NULL);
  return p;
}

/* Encodes in/n, checks the text, decodes it back; returns the text (caller frees). */
static char *round_trip(int k, const unsigned char *in, size_t n, size_t *tlen) {
  size_t el = enc_len(k, n), ol = 0, pad = 0;
  char *text = xmalloc(el), err[64];
  size_t w = enc(k, in, n, text);
  CHECK(w == el);
  while (pad < w && text[w - 1 - pad] == '=') pad++;
  CHECK(k == B64 ? pad <= 2 && w % 4 == 0 : pad == 0);
  for (size_t i = 0; i < w - pad; i++) CHECK(in_alphabet(k, text[i]));
  unsigned char *back = xmalloc(dec_max(k, w));
  CHECK(dec(k, text, w, back, &ol, err, sizeof err) == 0);
  CHECK(ol == n && memcmp(back, in, n) == 0);
  free(back);
  *tlen = w;
  return text;
}

static void check_err(const char *err, size_t errlen) {
  const char *z = memchr(err, '\0', errlen);
  CHECK(z != NULL && z > err);
  for (const char *p = err; p < z; p++) CHECK(*p >= 0x20 && *p < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int k;
  const unsigned char *in;
  size_t n, tl, ol = 0;
  char err[80], small[8];
  if (size < 1) return 0;
  k = data[0] % NCODEC;
  in = data + 1;
  n = size - 1;

  free(round_trip(k, in, n, &tl));

  /* arbitrary text */
  unsigned char *out = xmalloc(dec_max(k, n));
  memset(err, 0x55, sizeof err);
  if (dec(k, (const char *)in, n, out, &ol, err, sizeof err) == 0) {
    CHECK(ol <= dec_max(k, n));
    char *text = round_trip(k, out, ol, &tl);
    if (canonical_strict && k != B32) {
      /* canonical: the input minus optional padding equals the re-encoding */
      size_t a = n, b = tl;
      while (a > 0 && in[a - 1] == '=') a--;
      while (b > 0 && text[b - 1] == '=') b--;
      CHECK(a == b && memcmp(in, text, a) == 0);
    }
    free(text);
  } else {
    check_err(err, sizeof err);
    /* a tiny error buffer is filled and terminated, never overrun */
    memset(small, 0x55, sizeof small);
    CHECK(dec(k, (const char *)in, n, out, &ol, small, sizeof small) == -1);
    CHECK(memchr(small, '\0', sizeof small) != NULL);
  }
  free(out);
  return 0;
}
