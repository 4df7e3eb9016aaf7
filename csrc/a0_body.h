/* Request bodies from key/value arrays, and the wire invariants every value must meet.
 * Pure C: the binding turns Lua tables into these arrays; tests and fuzzers call it too. */
#ifndef A0_BODY_H
#define A0_BODY_H

#include <stddef.h>
#include "a0_buf.h"

#define A0_MAX_VALUE 65536    /* one field, option or header value; no protocol value comes near */
#define A0_MAX_RAW_BODY (1024 * 1024)   /* a request body given whole (opts.body) */

/* What a value is. Items of an array have no key; items of an object are strings. */
enum { A0_KV_STRING, A0_KV_ARRAY, A0_KV_OBJECT, A0_KV_RAW /* JSON text, verbatim */ };

typedef struct a0_kv {
  const char *key;             /* NUL-terminated; ignored for array items */
  int kind;
  const char *s;               /* A0_KV_STRING, A0_KV_RAW: the value */
  size_t n;                    /*   its length in bytes */
  const struct a0_kv *items;   /* A0_KV_ARRAY, A0_KV_OBJECT: n items (kind STRING) */
  int plain;                   /* A0_KV_STRING in a0_body_json_checked: 1 when neither key
                                * nor value needs a JSON escape (the caller checked) */
} a0_kv;

/* Problems a value can have, in the order a0_value_problem checks them. */
enum { A0_V_OK, A0_V_TOO_LONG, A0_V_NUL, A0_V_UTF8, A0_V_CTL, A0_V_KIND };
/* Checks a string value: at most A0_MAX_VALUE bytes, no NUL, valid UTF-8 and, when
 * header is set, no CR or LF. Returns A0_V_OK or the first problem. */
int a0_value_problem(const char *s, size_t n, int header);
/* a0_value_problem in the same pass as a JSON check: *plain is 1 when the value is fine and
 * needs no JSON escape, else 0. */
int a0_value_check(const char *s, size_t n, int header, int *plain);
/* The problem in words, as a message ends: "contains a NUL byte". */
const char *a0_value_problem_text(int problem);

/* Appends {"k":v,...} in array order. Returns 0; A0_V_* of the first bad string value with
 * *bad its pair's index; or -1 out of memory (b is then left partly written). */
int a0_body_json(a0_buf *b, const a0_kv *kv, size_t n, size_t *bad);
/* a0_body_json for pairs whose keys and string values all passed a0_value_problem already
 * (the request builder checks each field once): 0, or -1 out of memory. */
int a0_body_json_checked(a0_buf *b, const a0_kv *kv, size_t n);
/* Appends k=v&... (application/x-www-form-urlencoded): an array repeats its key, an object
 * item is key[name]=value. Same results as a0_body_json; a RAW value is A0_V_KIND. */
int a0_body_form(a0_buf *b, const a0_kv *kv, size_t n, size_t *bad);

#endif
