/* libFuzzer target for sealed envelopes (a0_seal.c).
 * Checks, per input:
 *  - a0_open on arbitrary bytes never crashes and, when it fails, appends nothing;
 *  - it only succeeds on an input that is a valid seal under the fixed key, which random
 *    bytes never are unless they are one of the seeds: so any success must round-trip
 *    (re-opening gives the same plaintext, and a0_seal_kid agrees on the header);
 *  - sealing the input as plaintext and opening it gives it back exactly, and flipping the
 *    byte picked by the input's first byte makes open fail. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "a0_buf.h"
#include "a0_seal.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static const unsigned char KEY[32] = "fuzz-key-fuzz-key-fuzz-key-fuzz!";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  a0_buf out = { 0 }, env = { 0 }, again = { 0 };
  const char *reason = NULL, *kid;
  size_t kid_len;
  if (a0_open(KEY, data, size, &out, &reason) == 0) {
    CHECK(a0_seal_kid(data, size, &kid, &kid_len) == 0);
    CHECK(a0_open(KEY, data, size, &again, &reason) == 0);
    CHECK(again.len == out.len && (out.len == 0 || memcmp(again.data, out.data, out.len) == 0));
  } else {
    CHECK(out.len == 0 && reason != NULL);
  }
  a0_buf_free(&out);
  a0_buf_free(&again);
  CHECK(a0_seal(KEY, "fz", 2, data, size, &env) == 0);
  CHECK(a0_open(KEY, env.data, env.len, &out, &reason) == 0);
  CHECK(out.len == size && (size == 0 || memcmp(out.data, data, size) == 0));
  a0_buf_free(&out);
  env.data[(size ? data[0] : 0) % env.len] ^= 0x01;
  CHECK(a0_open(KEY, env.data, env.len, &out, &reason) == -1 && out.len == 0);
  a0_buf_free(&out);
  a0_buf_free(&env);
  return 0;
}
