/* Request encoders: JSON strings, form bodies, path segments. Pure C. */
#ifndef A0_ENC_H
#define A0_ENC_H

#include <stddef.h>
#include "a0_buf.h"

/* Returns 0, or the 1-based byte offset of the first invalid UTF-8 sequence. */
size_t a0_utf8_invalid_at(const char *s, size_t n);
/* Appends s as a quoted JSON string. -1 on invalid UTF-8 or no memory (A0_ENC_*). */
int a0_json_string(a0_buf *b, const char *s, size_t n);
/* The same for an s already known to be valid UTF-8 (checked by a0_value_problem). */
int a0_json_string_valid(a0_buf *b, const char *s, size_t n);
/* The length of the leading part of s that a JSON string takes as it is (no control
 * character, quote or backslash): n when s needs no escape. */
size_t a0_json_plain(const char *s, size_t n);
/* 1 when s is printable ASCII without a quote or backslash (so valid UTF-8, without NUL,
 * CR or LF, and a JSON string as it is), else 0. */
int a0_plain_ascii(const char *s, size_t n);
/* application/x-www-form-urlencoded value (space as '+'). */
int a0_form_escape(a0_buf *b, const char *s, size_t n);
/* RFC 3986 percent-encoding of everything but unreserved characters. */
int a0_pct_escape(a0_buf *b, const char *s, size_t n);
/* Non-zero when s contains CR, LF or NUL (unusable in a header). */
int a0_has_ctl(const char *s, size_t n);

#endif
