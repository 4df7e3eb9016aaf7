/* Unit test of the request-body encoder and value checks (a0_body.c), no Lua.
 * Last line: "N passed, N failed"; exit status 1 on any failure. */
#include <stdlib.h>
#include <string.h>

#include "a0_body.h"
#include "a0_enc.h"
#include "a0_endpoints.h"

#include "check.h"

static int json_is(tally *t, const a0_kv *kv, size_t n, const char *want) {
  a0_buf b = {0};
  size_t bad = 99;
  int rc = a0_body_json(&b, kv, n, &bad);
  int ok = rc == 0 && b.len == strlen(want) && memcmp(b.data, want, b.len) == 0;
  if (!ok) printf("  got %d: %.*s\n", rc, (int)b.len, b.data ? b.data : "");
  CHECK(t, bad == 99);   /* untouched on success */
  a0_buf_free(&b);
  return ok;
}

static int form_is(const a0_kv *kv, size_t n, const char *want) {
  a0_buf b = {0};
  int rc = a0_body_form(&b, kv, n, NULL);
  int ok = rc == 0 && b.len == strlen(want) && (b.len == 0 || memcmp(b.data, want, b.len) == 0);
  if (!ok) printf("  got %d: %.*s\n", rc, (int)b.len, b.data ? b.data : "");
  a0_buf_free(&b);
  return ok;
}

#define STR(k, v) { k, A0_KV_STRING, v, sizeof(v) - 1, NULL, 0 }

static void test_json(tally *t) {
  a0_kv scopes[] = { { "scope", A0_KV_STRING, "openid email", 12, NULL, 0 }, { "state", A0_KV_STRING, "a\"b", 3, NULL, 0 } };
  a0_kv types[] = { { NULL, A0_KV_STRING, "otp", 3, NULL, 0 }, { NULL, A0_KV_STRING, "oob", 3, NULL, 0 } };
  a0_kv kv[] = {
    STR("grant_type", "http://auth0.com/oauth/grant-type/passwordless/otp"),
    STR("email", "\xc3\xa9@b.co\n\t\\"),
    { "authParams", A0_KV_OBJECT, NULL, 2, scopes, 0 },
    { "authenticator_types", A0_KV_ARRAY, NULL, 2, types, 0 },
    { "raw", A0_KV_RAW, "{\"x\":[1]}", 9, NULL, 0 },
    { "empty", A0_KV_ARRAY, NULL, 0, NULL, 0 },
  };
  CHECK(t, json_is(t, kv, 6, "{\"grant_type\":\"http://auth0.com/oauth/grant-type/passwordless/otp\","
                             "\"email\":\"\xc3\xa9@b.co\\n\\t\\\\\","
                             "\"authParams\":{\"scope\":\"openid email\",\"state\":\"a\\\"b\"},"
                             "\"authenticator_types\":[\"otp\",\"oob\"],\"raw\":{\"x\":[1]},\"empty\":[]}"));
  CHECK(t, json_is(t, kv, 0, "{}"));
  a0_kv ctl[] = { { "c", A0_KV_STRING, "\x01\x1f", 2, NULL, 0 } };
  CHECK(t, json_is(t, ctl, 1, "{\"c\":\"\\u0001\\u001f\"}"));
}

static void test_problems(tally *t) {
  static char big[A0_MAX_VALUE + 1];
  a0_buf b = {0};
  size_t bad = 99;
  memset(big, 'a', sizeof big);
  CHECK(t, a0_value_problem("abc", 3, 1) == A0_V_OK);
  CHECK(t, a0_value_problem(big, A0_MAX_VALUE, 0) == A0_V_OK);
  CHECK(t, a0_value_problem(big, A0_MAX_VALUE + 1, 0) == A0_V_TOO_LONG);
  CHECK(t, a0_value_problem("a\0b", 3, 0) == A0_V_NUL);
  CHECK(t, a0_value_problem("a\0\r", 3, 1) == A0_V_NUL);       /* NUL is named first */
  CHECK(t, a0_value_problem("\xff", 1, 0) == A0_V_UTF8);
  CHECK(t, a0_value_problem("\xed\xa0\x80", 3, 0) == A0_V_UTF8); /* a surrogate */
  CHECK(t, a0_value_problem("a\r\nX: y", 7, 0) == A0_V_OK);     /* fine in a body */
  CHECK(t, a0_value_problem("a\r\nX: y", 7, 1) == A0_V_CTL);    /* not in a header */
  CHECK(t, a0_value_problem("a\n", 2, 1) == A0_V_CTL);
  CHECK(t, strcmp(a0_value_problem_text(A0_V_NUL), "contains a NUL byte") == 0);
  CHECK(t, strcmp(a0_value_problem_text(A0_V_TOO_LONG), "longer than 65536 bytes") == 0);
  CHECK(t, strcmp(a0_value_problem_text(A0_V_UTF8), "not valid UTF-8") == 0);
  CHECK(t, strcmp(a0_value_problem_text(A0_V_CTL), "contains CR or LF") == 0);
  CHECK(t, strcmp(a0_value_problem_text(-1), "invalid") == 0);
  /* the first bad pair is named and nothing is written */
  a0_kv items[] = { { NULL, A0_KV_STRING, "ok", 2, NULL, 0 }, { NULL, A0_KV_STRING, "\xc0\xaf", 2, NULL, 0 } };
  a0_kv kv[] = { STR("a", "fine"), { "list", A0_KV_ARRAY, NULL, 2, items, 0 }, STR("z", "x\0y") };
  CHECK(t, a0_body_json(&b, kv, 3, &bad) == A0_V_UTF8 && bad == 1 && b.len == 0);
  CHECK(t, a0_body_json(&b, kv + 2, 1, &bad) == A0_V_NUL && bad == 0 && b.len == 0);
  a0_kv badkey[] = { STR("a", "1"), { "k\xff", A0_KV_STRING, "v", 1, NULL, 0 } };
  CHECK(t, a0_body_json(&b, badkey, 2, &bad) == A0_V_UTF8 && bad == 1 && b.len == 0);
  a0_kv objkey[] = { { "\xff", A0_KV_STRING, "v", 1, NULL, 0 } };
  a0_kv obj[] = { { "o", A0_KV_OBJECT, NULL, 1, objkey, 0 } };
  CHECK(t, a0_body_json(&b, obj, 1, &bad) == A0_V_UTF8 && bad == 0 && b.len == 0);
  a0_kv nested[] = { { "o", A0_KV_ARRAY, NULL, 1, obj, 0 } };       /* only strings inside */
  CHECK(t, a0_body_json(&b, nested, 1, &bad) == A0_V_KIND && bad == 0 && b.len == 0);
  a0_kv raw[] = { { "r", A0_KV_RAW, "1", 1, NULL, 0 } };
  CHECK(t, a0_body_form(&b, raw, 1, &bad) == A0_V_KIND && bad == 0 && b.len == 0);
  a0_buf_free(&b);
}

static void test_form(tally *t) {
  a0_kv items[] = { { NULL, A0_KV_STRING, "a b", 3, NULL, 0 }, { NULL, A0_KV_STRING, "c&d", 3, NULL, 0 } };
  a0_kv sub[] = { { "scope", A0_KV_STRING, "openid", 6, NULL, 0 } };
  a0_kv kv[] = { STR("otp", "123 456"), STR("e-mail", "\xc3\xa9=~"), { "t", A0_KV_ARRAY, NULL, 2, items, 0 },
                 { "p", A0_KV_OBJECT, NULL, 1, sub, 0 } };
  CHECK(t, form_is(kv, 4, "otp=123+456&e-mail=%C3%A9%3D~&t=a+b&t=c%26d&p%5Bscope%5D=openid"));
  CHECK(t, form_is(kv, 0, ""));
}

/* a0_value_check: the same problems in one pass, and whether JSON takes the value as it is;
 * the request builder relies on every field name and grant type of the endpoint table
 * needing no escape. */
static void test_check(tally *t) {
  static const char *const vals[] = { "", "abc", "bench-00000001@example.com", "a\"b", "a\\b", "caf\xc3\xa9",
    "tab\there", "\x7f", "a\0b", "\xff", "\xed\xa0\x80", "a\r\nX: y", "12345678\n", "1234567\"9", NULL };
  for (int i = 0; vals[i] != NULL; i++) {
    size_t n = i == 8 ? 3 : strlen(vals[i]);
    for (int h = 0; h <= 1; h++) {
      int plain = -1, p = a0_value_check(vals[i], n, h, &plain);
      CHECK(t, p == a0_value_problem(vals[i], n, h));
      CHECK(t, plain == (p == A0_V_OK && a0_json_plain(vals[i], n) == n));
    }
  }
  for (const a0_endpoint *ep = a0_endpoints; ep->name != NULL; ep++) {
    for (const a0_field *f = ep->fields; f->name != NULL; f++) CHECK(t, a0_plain_ascii(f->name, strlen(f->name)));
    if (ep->grant_type != NULL) CHECK(t, a0_plain_ascii(ep->grant_type, strlen(ep->grant_type)));
  }
}

int main(void) {
  tally t = { 0, 0 };
  test_json(&t);
  test_problems(&t);
  test_check(&t);
  test_form(&t);
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}
