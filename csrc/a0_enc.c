#include "a0_enc.h"

#include <stdint.h>
#include <string.h>

/* Eight bytes at a time over the common case (printable ASCII): a request's values are
 * mostly that, and a byte loop was a visible share of the C side's cost per login. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGH UINT64_C(0x8080808080808080)

static uint64_t load8(const unsigned char *p) {
  uint64_t w;
  memcpy(&w, p, sizeof w);   /* unaligned and strict-aliasing safe */
  return w;
}

/* Non-zero when some byte of w is below n (n <= 128): exact for "some byte", not which. */
static uint64_t below(uint64_t w, unsigned n) { return (w - ONES * n) & ~w & HIGH; }

/* Non-zero when some byte of w equals c. */
static uint64_t has(uint64_t w, unsigned c) { return below(w ^ (ONES * c), 1); }

size_t a0_utf8_invalid_at(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c;
    size_t k;
    unsigned cp, min;
    if (n - i >= 8 && (load8(s + i) & HIGH) == 0) { i += 8; continue; }
    c = s[i];
    if (c < 0x80) { i++; continue; }
    if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; min = 0x10000; }
    else return i + 1;
    if (n - i <= k) return i + 1;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return i + 1;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i + 1;
    i += k + 1;
  }
  return 0;
}

int a0_json_string(a0_buf *b, const char *s, size_t n) {
  return a0_utf8_invalid_at(s, n) != 0 ? -1 : a0_json_string_valid(b, s, n);
}

/* The length of the leading part of s that JSON takes as it is (no control character,
 * quote or backslash): all of a request's values, usually. */
static size_t plain_run(const char *s, size_t n) {
  size_t i = 0;
  while (n - i >= 8) {
    uint64_t w = load8((const unsigned char *)s + i);
    if (below(w, 0x20) | has(w, '"') | has(w, '\\')) break;
    i += 8;
  }
  while (i < n && (unsigned char)s[i] >= 0x20 && s[i] != '"' && s[i] != '\\') i++;
  return i;
}

size_t a0_json_plain(const char *s, size_t n) { return plain_run(s, n); }

/* Non-zero when some byte of w is not printable ASCII (0x20..0x7f) or is a quote or backslash. */
static uint64_t not_plain(uint64_t w) { return (w & HIGH) | below(w, 0x20) | has(w, '"') | has(w, '\\'); }

/* Whether s is all printable ASCII (0x20..0x7e, DEL too) without a quote or backslash: then
 * it holds no NUL, no CR or LF, is valid UTF-8 and JSON takes it as it is. One pass over
 * what a request's values usually are, instead of one per property; the last bytes are a
 * word that overlaps the one before (a short value is one or two words, no byte loop). */
int a0_plain_ascii(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  if (n >= 8) {
    for (size_t i = 0; n - i > 8; i += 8)
      if (not_plain(load8(s + i))) return 0;
    return not_plain(load8(s + n - 8)) == 0;
  }
  if (n >= 4) {
    uint32_t a, b;
    memcpy(&a, s, sizeof a);
    memcpy(&b, s + n - 4, sizeof b);
    return not_plain(a | (uint64_t)b << 32) == 0;
  }
  for (size_t i = 0; i < n; i++)
    if (s[i] < 0x20 || s[i] >= 0x80 || s[i] == '"' || s[i] == '\\') return 0;
  return 1;
}

int a0_json_string_valid(a0_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i, run = 0;
  if (n > ((size_t)-1) / 8) return -1;
  if (plain_run(s, n) == n) {   /* nothing to escape: one copy */
    if (a0_buf_reserve(b, n + 2) != 0) return -1;
    b->data[b->len++] = '"';
    if (n > 0) memcpy(b->data + b->len, s, n);   /* s may be NULL when n == 0 */
    b->len += n;
    b->data[b->len++] = '"';
    return 0;
  }
  /* worst case 6 bytes per input byte plus quotes; one reservation keeps it to one pass */
  if (a0_buf_reserve(b, n * 6 + 2) != 0) return -1;
  b->data[b->len++] = '"';
  for (i = 0; i < n; i++) {
    unsigned char c;
    char *o;
    if (n - i >= 8) {   /* eight bytes with nothing to escape go to the run at once */
      uint64_t w = load8((const unsigned char *)s + i);
      if (!below(w, 0x20) && !has(w, '"') && !has(w, '\\')) { run += 8; i += 7; continue; }
    }
    c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') { run++; continue; }
    if (run > 0) memcpy(b->data + b->len, s + i - run, run);
    b->len += run;
    run = 0;
    o = b->data + b->len;
    o[0] = '\\';
    switch (c) {
      case '"': o[1] = '"'; b->len += 2; break;
      case '\\': o[1] = '\\'; b->len += 2; break;
      case '\n': o[1] = 'n'; b->len += 2; break;
      case '\r': o[1] = 'r'; b->len += 2; break;
      case '\t': o[1] = 't'; b->len += 2; break;
      case '\b': o[1] = 'b'; b->len += 2; break;
      case '\f': o[1] = 'f'; b->len += 2; break;
      default:
        o[1] = 'u'; o[2] = '0'; o[3] = '0'; o[4] = hex[c >> 4]; o[5] = hex[c & 15];
        b->len += 6;
    }
  }
  if (run > 0) memcpy(b->data + b->len, s + n - run, run);   /* s may be NULL when n == 0 */
  b->len += run;
  b->data[b->len++] = '"';
  return 0;
}

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

static int escape(a0_buf *b, const char *s, size_t n, int space_plus) {
  static const char hex[] = "0123456789ABCDEF";
  if (n > ((size_t)-1) / 4 || a0_buf_reserve(b, n * 3) != 0) return -1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c)) {
      b->data[b->len++] = (char)c;
    } else if (c == ' ' && space_plus) {
      b->data[b->len++] = '+';
    } else {
      b->data[b->len++] = '%';
      b->data[b->len++] = hex[c >> 4];
      b->data[b->len++] = hex[c & 15];
    }
  }
  return 0;
}

int a0_form_escape(a0_buf *b, const char *s, size_t n) { return escape(b, s, n, 1); }
int a0_pct_escape(a0_buf *b, const char *s, size_t n) { return escape(b, s, n, 0); }

int a0_has_ctl(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
  return 0;
}
