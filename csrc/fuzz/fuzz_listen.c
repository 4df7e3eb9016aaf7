/* libFuzzer target for the loopback listener's request parser (a0_listen.c):
 * a0_listen_head_end and a0_listen_parse over the input, copied into an exact-size
 * allocation so that any read past it is caught by ASan. Checked on every input:
 *  - the head end found by the incremental search read_conn does (the input cut into reads
 *    whose sizes come from the first byte) equals a plain search of the whole buffer;
 *  - a parse that succeeds returns a target inside the buffer, starting with '/', made of
 *    bytes 0x21..0x7e only, after "GET " and followed by " HTTP/1.0" or " HTTP/1.1" CRLF;
 *  - a parse that fails answers 400 or 405, and 405 only for a CRLF-ended first line whose
 *    first token (before its first space) is not GET. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "a0_listen.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static size_t plain_end(const char *b, size_t len) {
  for (size_t i = 0; i + 4 <= len; i++)
    if (b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '\r' && b[i + 3] == '\n') return i + 4;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t step = (size_t)(data[0] % 16) + 1;
  data++;
  size--;
  char *buf = malloc(size ? size : 1);
  memcpy(buf, data, size);

  /* the reads of read_conn: search only from 3 bytes before each new chunk */
  size_t len = 0, inc = 0;
  while (len < size && inc == 0) {
    size_t r = size - len < step ? size - len : step;
    len += r;
    size_t from = len > r + 3 ? len - r - 3 : 0;
    inc = a0_listen_head_end(buf, len, from);
  }
  CHECK(inc == plain_end(buf, len));
  CHECK(inc <= len);

  size_t off = (size_t)-1, n = (size_t)-1;
  int st = a0_listen_parse(buf, size, &off, &n);
  if (st == 0) {
    CHECK(size >= 4 && memcmp(buf, "GET ", 4) == 0);
    CHECK(off == 4 && n >= 1 && off + n + 11 <= size);
    CHECK(buf[off] == '/');
    for (size_t i = 0; i < n; i++) CHECK((unsigned char)buf[off + i] > 0x20 && (unsigned char)buf[off + i] < 0x7f);
    CHECK(memcmp(buf + off + n, " HTTP/1.", 8) == 0);
    CHECK(buf[off + n + 8] == '0' || buf[off + n + 8] == '1');
    CHECK(buf[off + n + 9] == '\r' && buf[off + n + 10] == '\n');
  } else {
    CHECK(st == 400 || st == 405);
    if (st == 405) {
      const char *eol = memchr(buf, '\r', size);
      CHECK(eol != NULL && eol + 1 < buf + size && eol[1] == '\n');
      const char *sp = memchr(buf, ' ', (size_t)(eol - buf));
      CHECK(sp != NULL && sp > buf && !(sp - buf == 3 && memcmp(buf, "GET", 3) == 0));
    }
  }
  free(buf);
  return 0;
}
