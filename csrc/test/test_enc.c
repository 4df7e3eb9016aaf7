/* Unit test of the request encoders (a0_enc.c), no Lua. Built and run by `make ctest`:
 *   gcc -std=c99 -Icsrc -fsanitize=address,undefined -o build/ctest/test_enc \
 *       csrc/test/test_enc.c csrc/a0_enc.c csrc/a0_buf.c -lcrypto
 * Last line: "N passed, N failed"; exit status 1 on any failure. */
#include <stdio.h>
#include <string.h>

#include "a0_buf.h"
#include "a0_enc.h"

#include "check.h"

/* Encodes s (n bytes) with f into a fresh buffer; compares with the expected text. */
static int enc_is(int (*f)(a0_buf *, const char *, size_t), const char *s, size_t n,
                  const char *want) {
  a0_buf b = { 0 };
  int ok = f(&b, s, n) == 0 && b.len == strlen(want) && memcmp(b.data, want, b.len) == 0;
  if (!ok) printf("  got \"%.*s\", want \"%s\"\n", (int)b.len, b.data ? b.data : "", want);
  a0_buf_free(&b);
  return ok;
}

#define JSON_IS(t, lit, want) CHECK(t, enc_is(a0_json_string, lit, sizeof(lit) - 1, want))
#define FORM_IS(t, lit, want) CHECK(t, enc_is(a0_form_escape, lit, sizeof(lit) - 1, want))
#define PCT_IS(t, lit, want) CHECK(t, enc_is(a0_pct_escape, lit, sizeof(lit) - 1, want))

/* JSON rejects s: returns -1 and leaves the buffer as it was */
static int json_rejects(const char *s, size_t n) {
  a0_buf b = { 0 };
  int ok = a0_buf_adds(&b, "{\"k\":") == 0 && a0_json_string(&b, s, n) == -1 && b.len == 5 &&
           memcmp(b.data, "{\"k\":", 5) == 0;
  a0_buf_free(&b);
  return ok;
}
#define JSON_REJECTS(t, lit) CHECK(t, json_rejects(lit, sizeof(lit) - 1))

static void test_json_basic(tally *t) {
  JSON_IS(t, "", "\"\"");
  JSON_IS(t, "abc", "\"abc\"");
  JSON_IS(t, "a\"b", "\"a\\\"b\"");
  JSON_IS(t, "a\\b", "\"a\\\\b\"");
  JSON_IS(t, "\"\\\"", "\"\\\"\\\\\\\"\"");
  JSON_IS(t, "/", "\"/\"");                 /* no need to escape the solidus */
  JSON_IS(t, "\x7f", "\"\x7f\"");           /* DEL is not a JSON control character */
  JSON_IS(t, "\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
  JSON_IS(t, "x\0y", "\"x\\u0000y\"");
  JSON_IS(t, "push|dev_x", "\"push|dev_x\"");
}

/* every control character has exactly one spelling */
static void test_json_controls(tally *t) {
  for (int c = 0; c < 0x20; c++) {
    char in[3] = { 'a', (char)c, 'z' }, want[16];
    const char *esc;
    char u[8];
    switch (c) {
      case '\b': esc = "\\b"; break;
      case '\t': esc = "\\t"; break;
      case '\n': esc = "\\n"; break;
      case '\f': esc = "\\f"; break;
      case '\r': esc = "\\r"; break;
      default: snprintf(u, sizeof u, "\\u%04x", c); esc = u;
    }
    snprintf(want, sizeof want, "\"a%sz\"", esc);
    if (!enc_is(a0_json_string, in, 3, want)) printf("  control 0x%02x\n", c);
    CHECK(t, enc_is(a0_json_string, in, 3, want));
  }
}

static void test_json_utf8(tally *t) {
  /* valid UTF-8 passes through byte for byte, at every length and at both ends */
  JSON_IS(t, "\xc3\xa9", "\"\xc3\xa9\"");                          /* U+00E9 */
  JSON_IS(t, "\xc2\x80", "\"\xc2\x80\"");                          /* U+0080, smallest 2 */
  JSON_IS(t, "\xdf\xbf", "\"\xdf\xbf\"");                          /* U+07FF */
  JSON_IS(t, "\xe0\xa0\x80", "\"\xe0\xa0\x80\"");                  /* U+0800 */
  JSON_IS(t, "\xe2\x82\xac", "\"\xe2\x82\xac\"");                  /* U+20AC */
  JSON_IS(t, "\xed\x9f\xbf", "\"\xed\x9f\xbf\"");                  /* U+D7FF */
  JSON_IS(t, "\xee\x80\x80", "\"\xee\x80\x80\"");                  /* U+E000 */
  JSON_IS(t, "\xef\xbf\xbf", "\"\xef\xbf\xbf\"");                  /* U+FFFF */
  JSON_IS(t, "\xf0\x90\x80\x80", "\"\xf0\x90\x80\x80\"");          /* U+10000 */
  JSON_IS(t, "\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");          /* U+1F600 */
  JSON_IS(t, "\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"");          /* U+10FFFF */
  JSON_IS(t, "\xe2\x82\xac\n\"", "\"\xe2\x82\xac\\n\\\"\"");
  /* invalid: rejected, with the 1-based offset of the bad sequence */
  JSON_REJECTS(t, "\x80");                      /* lone continuation */
  JSON_REJECTS(t, "\xbf");
  JSON_REJECTS(t, "\xc0\xaf");                  /* overlong '/' */
  JSON_REJECTS(t, "\xc1\xbf");                  /* overlong */
  JSON_REJECTS(t, "\xe0\x80\xaf");              /* overlong 3-byte */
  JSON_REJECTS(t, "\xe0\x9f\xbf");              /* overlong U+07FF */
  JSON_REJECTS(t, "\xf0\x80\x80\xaf");          /* overlong 4-byte */
  JSON_REJECTS(t, "\xf0\x8f\xbf\xbf");          /* overlong U+FFFF */
  JSON_REJECTS(t, "\xed\xa0\x80");              /* U+D800 high surrogate */
  JSON_REJECTS(t, "\xed\xbf\xbf");              /* U+DFFF low surrogate */
  JSON_REJECTS(t, "\xed\xa0\xbd\xed\xb8\x80");  /* CESU-8 surrogate pair */
  JSON_REJECTS(t, "\xf4\x90\x80\x80");          /* U+110000 */
  JSON_REJECTS(t, "\xf5\x80\x80\x80");
  JSON_REJECTS(t, "\xf8\x88\x80\x80\x80");      /* 5-byte form */
  JSON_REJECTS(t, "\xfe");
  JSON_REJECTS(t, "\xff");
  JSON_REJECTS(t, "\xc3");                      /* truncated 2-byte */
  JSON_REJECTS(t, "\xe2\x82");                  /* truncated 3-byte */
  JSON_REJECTS(t, "\xf0\x9f\x98");              /* truncated 4-byte */
  JSON_REJECTS(t, "abc\xe2\x82");               /* truncated at the end */
  JSON_REJECTS(t, "\xe2\x82x");                 /* bad continuation */
  JSON_REJECTS(t, "\xc3\xc3\xa9");
  CHECK(t, a0_utf8_invalid_at("abc", 3) == 0);
  CHECK(t, a0_utf8_invalid_at("", 0) == 0);
  CHECK(t, a0_utf8_invalid_at("ab\x80", 3) == 3);
  CHECK(t, a0_utf8_invalid_at("\xc3\xa9\xe2\x82", 4) == 3);
  CHECK(t, a0_utf8_invalid_at("\xe2\x82\xac\xed\xa0\x80", 6) == 4);
  /* the length bounds the scan: a valid char cut by n is truncated */
  CHECK(t, a0_utf8_invalid_at("\xc3\xa9", 1) == 1);
}

static void test_json_append(tally *t) {
  /* appends after existing content and across the first 256-byte allocation */
  a0_buf b = { 0 };
  char big[300];
  memset(big, 'q', sizeof big);
  CHECK(t, a0_buf_adds(&b, "[") == 0);
  CHECK(t, a0_json_string(&b, "a\nb", 3) == 0);
  CHECK(t, a0_buf_addc(&b, ',') == 0);
  CHECK(t, a0_json_string(&b, big, sizeof big) == 0);
  CHECK(t, b.len == 1 + 6 + 1 + 302);
  CHECK(t, memcmp(b.data, "[\"a\\nb\",\"qqq", 12) == 0 && b.data[b.len - 1] == '"');
  a0_buf_free(&b);
}

static void test_form(tally *t) {
  FORM_IS(t, "push|dev_x", "push%7Cdev_x");
  FORM_IS(t, "a b", "a+b");
  FORM_IS(t, "a+b", "a%2Bb");
  FORM_IS(t, "100%", "100%25");
  FORM_IS(t, "AZaz09-._~", "AZaz09-._~");
  FORM_IS(t, "a=b&c", "a%3Db%26c");
  FORM_IS(t, "test-email@example.com", "test-email%40example.com");
  FORM_IS(t, "+123456789", "%2B123456789");
  FORM_IS(t, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer");
  FORM_IS(t, "http://auth0.com/oauth/grant-type/passwordless/otp",
          "http%3A%2F%2Fauth0.com%2Foauth%2Fgrant-type%2Fpasswordless%2Fotp");
  FORM_IS(t, "\xc3\xa9\n\r\0\xff", "%C3%A9%0A%0D%00%FF");
  FORM_IS(t, "", "");
}

static void test_pct(tally *t) {
  PCT_IS(t, "push|dev_BBTKYpxKHOXVBnql", "push%7Cdev_BBTKYpxKHOXVBnql");
  PCT_IS(t, "a b", "a%20b");                    /* path: space is %20, never '+' */
  PCT_IS(t, "a+b", "a%2Bb");
  PCT_IS(t, "100%", "100%25");
  PCT_IS(t, "a/b?c#d", "a%2Fb%3Fc%23d");
  PCT_IS(t, "AZaz09-._~", "AZaz09-._~");
  PCT_IS(t, "\xe2\x82\xac", "%E2%82%AC");
  PCT_IS(t, "", "");
}

static void test_has_ctl(tally *t) {
  CHECK(t, a0_has_ctl("Bearer abc", 10) == 0);
  CHECK(t, a0_has_ctl("", 0) == 0);
  CHECK(t, a0_has_ctl("a\rb", 3) != 0);
  CHECK(t, a0_has_ctl("a\nb", 3) != 0);
  CHECK(t, a0_has_ctl("a\0b", 3) != 0);
  CHECK(t, a0_has_ctl("abc\n", 4) != 0);        /* at the end */
  CHECK(t, a0_has_ctl("abc\n", 3) == 0);        /* outside n */
  CHECK(t, a0_has_ctl("a\tb\x7f\x01", 5) == 0); /* other controls are allowed in headers */
}

/* a0_plain_ascii at every length up to 24 (byte loop, two half words, overlapping words),
 * with a byte it refuses at each position; bytes are read only within n. */
static void test_plain_ascii(tally *t) {
  static const char bad[] = { '"', '\\', 0x1f, '\0', '\n', '\r', (char)0x80, (char)0xc3, (char)0xff };
  char s[32];
  int ok = 1;
  for (size_t n = 0; n <= 24; n++) {
    memset(s, 'a', sizeof s);
    s[n] = '"';   /* just past the end: never looked at */
    if (n > 0) { s[0] = ' '; s[n - 1] = 0x7f; }
    ok = ok && a0_plain_ascii(s, n) == 1;
    for (size_t i = 0; i < n; i++)
      for (size_t b = 0; b < sizeof bad; b++) {
        char keep = s[i];
        s[i] = bad[b];
        if (a0_plain_ascii(s, n) != 0) { printf("  n=%zu i=%zu b=%zu\n", n, i, b); ok = 0; }
        s[i] = keep;
      }
  }
  CHECK(t, ok);
  CHECK(t, a0_plain_ascii(NULL, 0) == 1);
}

int main(void) {
  tally t = { 0, 0 };
  test_plain_ascii(&t);
  test_json_basic(&t);
  test_json_controls(&t);
  test_json_utf8(&t);
  test_json_append(&t);
  test_form(&t);
  test_pct(&t);
  test_has_ctl(&t);
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}
