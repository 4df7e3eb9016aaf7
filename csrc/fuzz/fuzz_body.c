/* libFuzzer target for the request-body encoder (a0_body.c).
 * The input describes key/value pairs (tokens split by 0x01; a token's first byte picks the
 * pair's kind: string, array, object, raw). Checks, per input:
 *  - a0_body_json reports a problem exactly when a0_value_problem finds one in a key or
 *    value (the first such pair's index), and then leaves the buffer untouched;
 *  - otherwise its output is one strict JSON object that decodes back to exactly the pairs,
 *    in order, with the same kinds and bytes (raw values verbatim);
 *  - a0_body_form refuses raw values, and otherwise writes only unreserved bytes, '%XX',
 *    '+', '=', '&' that decode back to the same keys and values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "a0_body.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)
#define MAXKV 16
#define MAXITEMS 64

static const char *const raws[] = { "null", "true", "{}", "[1,2]", "-0.5e3", "\"x\"" };

/* ---- a strict decoder of exactly what the encoder may write ---- */
typedef struct { const char *p, *end; } cur;

static int hexv(int c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes a JSON string into out (cap bytes); returns its length or -1. */
static long jstring(cur *c, char *out, size_t cap) {
  size_t n = 0;
  if (c->p >= c->end || *c->p++ != '"') return -1;
  while (c->p < c->end && *c->p != '"') {
    unsigned char ch = (unsigned char)*c->p++;
    if (ch < 0x20) return -1;
    if (ch == '\\') {
      if (c->p >= c->end) return -1;
      switch (*c->p++) {
        case '"': ch = '"'; break;
        case '\\': ch = '\\'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'u': {
          int v = 0;
          if (c->end - c->p < 4) return -1;
          for (int i = 0; i < 4; i++) { int h = hexv(c->p[i]); if (h < 0) return -1; v = v * 16 + h; }
          c->p += 4;
          if (v >= 0x20) return -1;   /* the encoder escapes only control characters so */
          ch = (unsigned char)v;
          break;
        }
        default: return -1;
      }
    }
    if (n >= cap) return -1;
    out[n++] = (char)ch;
  }
  if (c->p >= c->end) return -1;
  c->p++;
  return (long)n;
}

static int eat(cur *c, char ch) { if (c->p < c->end && *c->p == ch) { c->p++; return 1; } return 0; }

static int same(const char *a, size_t an, const char *b, size_t bn) { return an == bn && memcmp(a, b, an) == 0; }

static char tmp[70000];

static int check_json(const a0_buf *b, const a0_kv *kv, size_t n) {
  cur c = { b->data ? b->data : "", b->data ? b->data + b->len : "" };
  long l;
  if (!eat(&c, '{')) return 0;
  for (size_t i = 0; i < n; i++) {
    const a0_kv *v = &kv[i];
    if (i > 0 && !eat(&c, ',')) return 0;
    if ((l = jstring(&c, tmp, sizeof tmp)) < 0 || !same(tmp, (size_t)l, v->key, strlen(v->key))) return 0;
    if (!eat(&c, ':')) return 0;
    if (v->kind == A0_KV_STRING) {
      if ((l = jstring(&c, tmp, sizeof tmp)) < 0 || !same(tmp, (size_t)l, v->s, v->n)) return 0;
    } else if (v->kind == A0_KV_RAW) {
      if ((size_t)(c.end - c.p) < v->n || memcmp(c.p, v->s, v->n) != 0) return 0;
      c.p += v->n;
    } else {
      int obj = v->kind == A0_KV_OBJECT;
      if (!eat(&c, obj ? '{' : '[')) return 0;
      for (size_t j = 0; j < v->n; j++) {
        const a0_kv *it = &v->items[j];
        if (j > 0 && !eat(&c, ',')) return 0;
        if (obj && ((l = jstring(&c, tmp, sizeof tmp)) < 0 || !same(tmp, (size_t)l, it->key, strlen(it->key)) || !eat(&c, ':')))
          return 0;
        if ((l = jstring(&c, tmp, sizeof tmp)) < 0 || !same(tmp, (size_t)l, it->s, it->n)) return 0;
      }
      if (!eat(&c, obj ? '}' : ']')) return 0;
    }
  }
  return eat(&c, '}') && c.p == c.end;
}

/* Decodes one form token up to stop (or the end); returns its length or -1. */
static long ftoken(cur *c, char stop, char *out) {
  size_t n = 0;
  while (c->p < c->end && *c->p != stop && *c->p != '&') {
    unsigned char ch = (unsigned char)*c->p++;
    if (ch == '%') {
      int h, l2;
      if (c->end - c->p < 2 || (h = hexv(c->p[0])) < 0 || (l2 = hexv(c->p[1])) < 0) return -1;
      if ((c->p[0] >= 'a' && c->p[0] <= 'f') || (c->p[1] >= 'a' && c->p[1] <= 'f')) return -1;
      ch = (unsigned char)(h * 16 + l2);
      c->p += 2;
    } else if (ch == '+') {
      ch = ' ';
    } else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '.' || ch == '_' || ch == '~')) {
      return -1;
    }
    out[n++] = (char)ch;
  }
  return (long)n;
}

static int form_pair(cur *c, int *first, const char *k, const char *sub, const char *s, size_t n) {
  static char want[16400];   /* a key and an item key, each shorter than an input */
  long l;
  if (!*first && !eat(c, '&')) return 0;
  *first = 0;
  if (sub != NULL) {
    size_t kl = strlen(k), sl = strlen(sub);
    if (kl + sl + 2 > sizeof want) return 0;
    memcpy(want, k, kl); want[kl] = '['; memcpy(want + kl + 1, sub, sl); want[kl + sl + 1] = ']';
    if ((l = ftoken(c, '=', tmp)) < 0 || !same(tmp, (size_t)l, want, kl + sl + 2)) return 0;
  } else if ((l = ftoken(c, '=', tmp)) < 0 || !same(tmp, (size_t)l, k, strlen(k))) {
    return 0;
  }
  return eat(c, '=') && (l = ftoken(c, '&', tmp)) >= 0 && same(tmp, (size_t)l, s, n);
}

static int check_form(const a0_buf *b, const a0_kv *kv, size_t n) {
  cur c = { b->data ? b->data : "", b->data ? b->data + b->len : "" };
  int first = 1;
  for (size_t i = 0; i < n; i++) {
    const a0_kv *v = &kv[i];
    if (v->kind == A0_KV_STRING) { if (!form_pair(&c, &first, v->key, NULL, v->s, v->n)) return 0; continue; }
    for (size_t j = 0; j < v->n; j++)
      if (!form_pair(&c, &first, v->key, v->kind == A0_KV_OBJECT ? v->items[j].key : NULL, v->items[j].s, v->items[j].n))
        return 0;
  }
  return c.p == c.end;
}

/* The first problem of pair kv, as a0_body_json must see it. */
static int ref_problem(const a0_kv *v, int form) {
  int p = a0_value_problem(v->key, strlen(v->key), 0);
  if (p != A0_V_OK) return p;
  if (v->kind == A0_KV_STRING) return a0_value_problem(v->s, v->n, 0);
  if (v->kind == A0_KV_RAW) return form ? A0_V_KIND : A0_V_OK;
  for (size_t j = 0; j < v->n; j++) {
    p = a0_value_problem(v->items[j].s, v->items[j].n, 0);
    if (p == A0_V_OK && v->kind == A0_KV_OBJECT) p = a0_value_problem(v->items[j].key, strlen(v->items[j].key), 0);
    if (p != A0_V_OK) return p;
  }
  return A0_V_OK;
}

static void run(const a0_kv *kv, size_t n, int form) {
  a0_buf b = {0};
  size_t bad = (size_t)-1, want_bad = n;
  int want = A0_V_OK, rc;
  /* "untouched" means len stays 0 */
  for (size_t i = 0; i < n && want == A0_V_OK; i++)
    if ((want = ref_problem(&kv[i], form)) != A0_V_OK) want_bad = i;
  rc = form ? a0_body_form(&b, kv, n, &bad) : a0_body_json(&b, kv, n, &bad);
  CHECK(rc != -1);   /* the inputs are small: memory never runs out */
  CHECK(rc == want);
  if (rc != A0_V_OK) CHECK(bad == want_bad && b.len == 0);
  else CHECK(form ? check_form(&b, kv, n) : check_json(&b, kv, n));
  a0_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char text[8192];
  a0_kv kv[MAXKV], items[MAXITEMS];
  char *tok[MAXKV + MAXITEMS * 2 + 1];
  size_t ntok = 0, nkv = 0, nit = 0, len[MAXKV + MAXITEMS * 2 + 1];
  if (size == 0 || size >= sizeof text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  /* tokens split by 0x01; each keeps its length (it may hold NUL bytes) */
  for (size_t i = 0, start = 0; i <= size && ntok < sizeof tok / sizeof tok[0]; i++)
    if (i == size || text[i] == 1) { tok[ntok] = text + start; len[ntok++] = i - start; text[i] = '\0'; start = i + 1; }
  for (size_t t = 0; t < ntok && nkv < MAXKV; ) {
    a0_kv *v = &kv[nkv++];
    int kind = len[t] > 0 ? (unsigned char)tok[t][0] % 4 : 0;
    size_t count = len[t] > 1 ? (unsigned char)tok[t][1] % 4 : 1;
    memset(v, 0, sizeof *v);
    v->key = len[t] > 2 ? tok[t] + 2 : "k";   /* a key ends at its first NUL */
    v->kind = kind;
    t++;
    if (kind == A0_KV_STRING) {
      v->s = t < ntok ? tok[t] : "";
      v->n = t < ntok ? len[t] : 0;
      t++;
    } else if (kind == A0_KV_RAW) {
      const char *r = raws[count % (sizeof raws / sizeof raws[0])];
      v->s = r;
      v->n = strlen(r);
    } else {
      v->items = items + nit;
      for (size_t j = 0; j < count && nit < MAXITEMS; j++, nit++) {
        items[nit].kind = A0_KV_STRING;
        items[nit].key = kind == A0_KV_OBJECT && t < ntok ? tok[t++] : "";
        items[nit].s = t < ntok ? tok[t] : "";
        items[nit].n = t < ntok ? len[t] : 0;
        t++;
        v->n++;
      }
    }
  }
  run(kv, nkv, 0);
  run(kv, nkv, 1);
  return 0;
}
