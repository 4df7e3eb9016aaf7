/* Request bodies (JSON, form) from key/value arrays, and the wire invariants of values. */
#include "a0_body.h"

#include <string.h>
#include "a0_enc.h"

static const char *const problems[] = { "ok", "longer than 65536 bytes", "contains a NUL byte",
  "not valid UTF-8", "contains CR or LF", "not allowed here" };

int a0_value_check(const char *s, size_t n, int header, int *plain) {
  *plain = 0;
  if (n > A0_MAX_VALUE) return A0_V_TOO_LONG;
  if (a0_plain_ascii(s, n)) { *plain = 1; return A0_V_OK; }   /* none of the problems below */
  if (n > 0 && memchr(s, '\0', n) != NULL) return A0_V_NUL;
  if (a0_utf8_invalid_at(s, n) != 0) return A0_V_UTF8;
  if (header && a0_has_ctl(s, n)) return A0_V_CTL;
  *plain = a0_json_plain(s, n) == n;
  return A0_V_OK;
}

int a0_value_problem(const char *s, size_t n, int header) {
  int plain;
  return a0_value_check(s, n, header, &plain);
}

const char *a0_value_problem_text(int problem) {
  return problem >= 0 && problem <= A0_V_KIND ? problems[problem] : "invalid";
}

/* The first problem of kv's string values, A0_V_OK if none. */
static int kv_problem(const a0_kv *kv, int allow_raw) {
  int p = A0_V_OK;
  switch (kv->kind) {
    case A0_KV_STRING: return a0_value_problem(kv->s, kv->n, 0);
    case A0_KV_RAW: return allow_raw ? A0_V_OK : A0_V_KIND;
    case A0_KV_ARRAY: case A0_KV_OBJECT:
      for (size_t i = 0; i < kv->n && p == A0_V_OK; i++) {
        if (kv->items[i].kind != A0_KV_STRING) return A0_V_KIND;
        p = a0_value_problem(kv->items[i].s, kv->items[i].n, 0);
        if (p == A0_V_OK && kv->kind == A0_KV_OBJECT)
          p = a0_value_problem(kv->items[i].key, strlen(kv->items[i].key), 0);
      }
      return p;
    default: return A0_V_KIND;
  }
}

/* Checks every value first, so that a bad one leaves b as it was. */
static int check_all(const a0_kv *kv, size_t n, size_t *bad, int allow_raw) {
  for (size_t i = 0; i < n; i++) {
    int p = a0_value_problem(kv[i].key, strlen(kv[i].key), 0);
    if (p == A0_V_OK) p = kv_problem(&kv[i], allow_raw);
    if (p != A0_V_OK) { if (bad) *bad = i; return p; }
  }
  return A0_V_OK;
}

static int jstr(a0_buf *b, const char *s, size_t n) { return a0_json_string_valid(b, s, n); }

int a0_body_json(a0_buf *b, const a0_kv *kv, size_t n, size_t *bad) {
  int p = check_all(kv, n, bad, 1);
  return p != A0_V_OK ? p : a0_body_json_checked(b, kv, n);
}

/* Writes ,"key":"value" (no comma first) at once when neither needs an escape (known: the
 * caller said so) and the room reserved holds it: 1; else 0, with b unchanged. */
static int plain_pair(a0_buf *b, int first, const char *k, size_t kn, const char *s, size_t n, int known) {
  char *o;
  if (b->len + kn + n + 7 > b->cap || (!known && (a0_json_plain(k, kn) != kn || a0_json_plain(s, n) != n)))
    return 0;
  o = b->data + b->len;
  if (!first) *o++ = ',';
  *o++ = '"';
  memcpy(o, k, kn);
  o += kn;
  memcpy(o, "\":\"", 3);
  o += 3;
  if (n > 0) memcpy(o, s, n);   /* s may be NULL when n == 0 */
  o += n;
  *o++ = '"';
  b->len = (size_t)(o - b->data);
  return 1;
}

int a0_body_json_checked(a0_buf *b, const a0_kv *kv, size_t n) {
  size_t need = 2;
  for (size_t i = 0; i < n; i++) need += strlen(kv[i].key) + kv[i].n + 6;
  /* the usual body (nothing to escape, no lists) in one allocation; a0_buf grows past it */
  if (a0_buf_reserve(b, need) != 0 || a0_buf_addc(b, '{')) return -1;
  for (size_t i = 0; i < n; i++) {
    const a0_kv *v = &kv[i];
    size_t kn = strlen(v->key);
    if (v->kind == A0_KV_STRING && plain_pair(b, i == 0, v->key, kn, v->s, v->n, v->plain)) continue;
    if ((i > 0 && a0_buf_addc(b, ',')) || jstr(b, v->key, kn) || a0_buf_addc(b, ':'))
      return -1;
    if (v->kind == A0_KV_STRING) {
      if (jstr(b, v->s, v->n)) return -1;
    } else if (v->kind == A0_KV_RAW) {
      if (a0_buf_add(b, v->s, v->n)) return -1;
    } else {
      int obj = v->kind == A0_KV_OBJECT;
      if (a0_buf_addc(b, obj ? '{' : '[')) return -1;
      for (size_t j = 0; j < v->n; j++) {
        const a0_kv *it = &v->items[j];
        if (j > 0 && a0_buf_addc(b, ',')) return -1;
        if (obj && (jstr(b, it->key, strlen(it->key)) || a0_buf_addc(b, ':'))) return -1;
        if (jstr(b, it->s, it->n)) return -1;
      }
      if (a0_buf_addc(b, obj ? '}' : ']')) return -1;
    }
  }
  return a0_buf_addc(b, '}') ? -1 : 0;
}

static int form_pair(a0_buf *b, int *first, const char *k, const char *sub, const char *s, size_t n) {
  if ((!*first && a0_buf_addc(b, '&')) || a0_form_escape(b, k, strlen(k))) return -1;
  *first = 0;
  if (sub != NULL && (a0_buf_adds(b, "%5B") || a0_form_escape(b, sub, strlen(sub)) || a0_buf_adds(b, "%5D")))
    return -1;
  return a0_buf_addc(b, '=') || a0_form_escape(b, s, n) ? -1 : 0;
}

int a0_body_form(a0_buf *b, const a0_kv *kv, size_t n, size_t *bad) {
  int first = 1, p = check_all(kv, n, bad, 0);
  if (p != A0_V_OK) return p;
  for (size_t i = 0; i < n; i++) {
    const a0_kv *v = &kv[i];
    if (v->kind == A0_KV_STRING) {
      if (form_pair(b, &first, v->key, NULL, v->s, v->n)) return -1;
      continue;
    }
    for (size_t j = 0; j < v->n; j++) {
      const a0_kv *it = &v->items[j];
      if (form_pair(b, &first, v->key, v->kind == A0_KV_OBJECT ? it->key : NULL, it->s, it->n)) return -1;
    }
  }
  return 0;
}
