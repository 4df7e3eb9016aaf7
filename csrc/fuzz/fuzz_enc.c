/* libFuzzer target for the request encoders (a0_enc.c).
 * Checks, per input:
 *  - a0_utf8_invalid_at agrees, offset for offset, with an independent validator written
 *    from the Unicode well-formed byte sequence table (Unicode 15, table 3-7);
 *  - a0_json_string fails exactly on invalid UTF-8, leaves the buffer untouched then, and
 *    otherwise appends one strict JSON string that decodes back to the input bytes;
 *  - a0_form_escape / a0_pct_escape map every byte to exactly one token (the byte itself
 *    when unreserved, '+' for a space in form mode, '%XX' with upper-case hex otherwise);
 *  - a0_has_ctl is non-zero exactly when CR, LF or NUL occurs.
 * The first input byte picks how much text already sits in the buffer, so appends across
 * the 256-byte first allocation and later doublings are exercised. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "a0_buf.h"
#include "a0_enc.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* 1-based offset of the first ill-formed sequence, 0 when well formed. */
static size_t ref_utf8_invalid_at(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    unsigned lo = 0x80, hi = 0xBF;   /* range of the second byte */
    size_t k;
    if (c <= 0x7F) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) k = 1;
    else if (c == 0xE0) { k = 2; lo = 0xA0; }
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) k = 2;
    else if (c == 0xED) { k = 2; hi = 0x9F; }
    else if (c == 0xF0) { k = 3; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) k = 3;
    else if (c == 0xF4) { k = 3; hi = 0x8F; }
    else return i + 1;
    if (i + k >= n) return i + 1;
    if (s[i + 1] < lo || s[i + 1] > hi) return i + 1;
    for (size_t j = 2; j <= k; j++)
      if (s[i + j] < 0x80 || s[i + j] > 0xBF) return i + 1;
    i += k + 1;
  }
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static size_t put_utf8(unsigned char *o, unsigned long cp) {
  if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
  if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 63)); return 2; }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | (cp >> 12)); o[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
    o[2] = (unsigned char)(0x80 | (cp & 63)); return 3;
  }
  o[0] = (unsigned char)(0xF0 | (cp >> 18)); o[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 63)); o[3] = (unsigned char)(0x80 | (cp & 63));
  return 4;
}

static int read_u4(const char *p, const char *end, unsigned long *cp) {
  unsigned long v = 0;
  if (end - p < 4) return -1;
  for (int i = 0; i < 4; i++) {
    int h = hexval((unsigned char)p[i]);
    if (h < 0) return -1;
    v = (v << 4) | (unsigned long)h;
  }
  *cp = v;
  return 0;
}

/* Strict RFC 8259 string grammar: decodes s[0..n) (quotes included) into out, returns the
 * decoded length or (size_t)-1 when s is not exactly one JSON string. */
static size_t json_string_decode(const char *s, size_t n, unsigned char *out) {
  const char *p = s, *end = s + n;
  size_t o = 0;
  if (n < 2 || s[0] != '"' || s[n - 1] != '"') return (size_t)-1;
  p++; end--;
  while (p < end) {
    unsigned char c = (unsigned char)*p;
    if (c < 0x20 || c == '"') return (size_t)-1;
    if (c != '\\') { out[o++] = c; p++; continue; }
    if (end - p < 2) return (size_t)-1;
    switch (p[1]) {
      case '"': out[o++] = '"'; p += 2; break;
      case '\\': out[o++] = '\\'; p += 2; break;
      case '/': out[o++] = '/'; p += 2; break;
      case 'b': out[o++] = '\b'; p += 2; break;
      case 'f': out[o++] = '\f'; p += 2; break;
      case 'n': out[o++] = '\n'; p += 2; break;
      case 'r': out[o++] = '\r'; p += 2; break;
      case 't': out[o++] = '\t'; p += 2; break;
      case 'u': {
        unsigned long cp, lo;
        if (read_u4(p + 2, end, &cp) != 0) return (size_t)-1;
        p += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return (size_t)-1;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || read_u4(p + 2, end, &lo) != 0 ||
              lo < 0xDC00 || lo > 0xDFFF) return (size_t)-1;
          p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        o += put_utf8(out + o, cp);
        break;
      }
      default: return (size_t)-1;
    }
  }
  return o;
}

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

/* out/olen is the escaper's output for in/n: one token per input byte. */
static void check_escaped(const unsigned char *in, size_t n, const char *out, size_t olen,
                          int form) {
  static const char HEX[] = "0123456789ABCDEF";
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = in[i];
    if (unreserved(c)) {
      CHECK(o < olen && (unsigned char)out[o] == c);
      o++;
    } else if (c == ' ' && form) {
      CHECK(o < olen && out[o] == '+');
      o++;
    } else {
      CHECK(olen - o >= 3 && o < olen);
      CHECK(out[o] == '%' && out[o + 1] == HEX[c >> 4] && out[o + 2] == HEX[c & 15]);
      o += 3;
    }
  }
  CHECK(o == olen);
}

static void fill_prefix(a0_buf *b, size_t k) {
  for (size_t i = 0; i < k; i++) CHECK(a0_buf_addc(b, (char)('a' + i % 26)) == 0);
}

static void check_prefix(const a0_buf *b, size_t k) {
  for (size_t i = 0; i < k; i++) CHECK(b->data[i] == (char)('a' + i % 26));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t pre, n, bad, ref;
  const char *s;
  a0_buf b = { 0 };
  if (size < 1) return 0;
  pre = (size_t)data[0] * 2;           /* 0..510 bytes already in the buffer */
  s = (const char *)data + 1;
  n = size - 1;

  /* UTF-8 validator against the reference */
  bad = a0_utf8_invalid_at(s, n);
  ref = ref_utf8_invalid_at((const unsigned char *)s, n);
  CHECK(bad == ref);

  /* JSON string */
  fill_prefix(&b, pre);
  int rc = a0_json_string(&b, s, n);
  if (bad != 0) {
    CHECK(rc == -1);
    CHECK(b.len == pre);
  } else {
    CHECK(rc == 0);
    CHECK(b.len >= pre + n + 2 && b.len <= b.cap);
    check_prefix(&b, pre);
    unsigned char *dec = malloc(b.len - pre);   /* decoding never grows the text */
    CHECK(dec != NULL);
    size_t dl = json_string_decode(b.data + pre, b.len - pre, dec);
    CHECK(dl == n && memcmp(dec, s, n) == 0);
    free(dec);
    /* the JSON text must itself be valid UTF-8 */
    CHECK(ref_utf8_invalid_at((const unsigned char *)b.data + pre, b.len - pre) == 0);
  }
  a0_buf_free(&b);

  /* form and path encoding */
  for (int form = 0; form <= 1; form++) {
    fill_prefix(&b, pre);
    CHECK((form ? a0_form_escape(&b, s, n) : a0_pct_escape(&b, s, n)) == 0);
    CHECK(b.len <= b.cap);
    check_prefix(&b, pre);
    check_escaped((const unsigned char *)s, n, b.data + pre, b.len - pre, form);
    a0_buf_free(&b);
  }

  /* header control characters */
  int ctl = memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL || memchr(s, 0, n) != NULL;
  CHECK((a0_has_ctl(s, n) != 0) == ctl);
  return 0;
}
