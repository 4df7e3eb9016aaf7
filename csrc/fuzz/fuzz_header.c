/* libFuzzer target for a0_capture_header (a0_easy.c), the parser of response header
 * lines. The input is split into lines after each '\n' (as libcurl hands them over);
 * each line is copied into its own exact-size allocation so that any read past the line
 * is caught by ASan. A small model of the documented behaviour runs alongside:
 *  - a line starting "HTTP/" (a new status line) clears every captured value;
 *  - "<name>:" with a captured name, in any case, stores the value with leading SP/HT and
 *    trailing CR/LF/SP/HT removed, cut to A0_HDR_MAX - 1 bytes;
 *  - anything else changes nothing.
 * After every line each slot must be NUL-terminated inside its A0_HDR_MAX bytes and equal
 * the model. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "a0_http.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

#define A0_WIRE(id, wire, field) wire,
static const char *const wire[] = { A0_HEADERS(A0_WIRE) };
#undef A0_WIRE

static a0_xfer *x;

static struct { size_t len; char v[A0_HDR_MAX]; } model[A0_NHDR];

static void model_line(const char *p, size_t len) {
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { memset(model, 0, sizeof model); return; }
  for (int h = 0; h < A0_NHDR; h++) {
    size_t wl = strlen(wire[h]);
    if (len <= wl || p[wl] != ':' || strncasecmp(p, wire[h], wl) != 0) continue;
    size_t a = wl + 1, e = len;
    while (a < e && (p[a] == ' ' || p[a] == '\t')) a++;
    while (e > a && strchr("\r\n \t", p[e - 1]) != NULL && p[e - 1] != '\0') e--;
    size_t vl = e - a;
    if (vl > A0_HDR_MAX - 1) vl = A0_HDR_MAX - 1;
    memcpy(model[h].v, p + a, vl);
    model[h].len = vl;
    return;
  }
}

static void check_slots(void) {
  for (int h = 0; h < A0_NHDR; h++) {
    CHECK(memchr(a0_xfer_header(x, h), '\0', A0_HDR_MAX) != NULL);
    /* a value may hold a NUL of its own: compare the bytes, then the terminator */
    CHECK(memcmp(a0_xfer_header(x, h), model[h].v, model[h].len) == 0);
    CHECK(a0_xfer_header(x, h)[model[h].len] == '\0');
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data, *end = p + size;
  if (x == NULL) { x = a0_xfer_new(); CHECK(x != NULL); }
  a0_xfer_reset(x);
  memset(model, 0, sizeof model);
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
    char *line = malloc(len ? len : 1);
    CHECK(line != NULL);
    memcpy(line, p, len);
    a0_capture_header(x, line, len);
    model_line(line, len);
    free(line);
    check_slots();
    p += len;
  }
  return 0;
}
