/* Growable byte buffer. Buffers may hold secrets, so every shrink, reset and free
 * wipes the bytes first. */
#ifndef A0_BUF_H
#define A0_BUF_H

#include <stddef.h>

#define A0_BUF_MAP (128 * 1024)   /* capacities from here on are mapped, not malloc'ed */

typedef struct a0_buf {
  char *data;
  size_t len;
  size_t cap;
} a0_buf;

void a0_wipe(void *p, size_t n);
int a0_buf_reserve(a0_buf *b, size_t extra);
int a0_buf_add(a0_buf *b, const void *p, size_t n);
int a0_buf_addc(a0_buf *b, char c);
int a0_buf_adds(a0_buf *b, const char *s);
/* Ensures data[len] == '\0' without counting it. */
int a0_buf_cstr(a0_buf *b);
void a0_buf_reset(a0_buf *b);   /* wipes, keeps the allocation */
void a0_buf_free(a0_buf *b);    /* wipes and frees */

#endif
