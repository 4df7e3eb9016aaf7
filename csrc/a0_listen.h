/* A loopback HTTP listener for one OAuth redirect (RFC 8252 section 7.3): 127.0.0.1 only,
 * non-blocking, a few connections read side by side, requests capped; pure C, no Lua. */
#ifndef A0_LISTEN_H
#define A0_LISTEN_H

#include <stddef.h>

#define A0_LISTEN_MAX 8192      /* request line + headers; more is refused with 431 */
#define A0_LISTEN_IDLE_MS 3000  /* a connection silent this long is dropped (browser preconnects) */

enum { A0_LISTEN_NONE = 0, A0_LISTEN_REQUEST = 1, A0_LISTEN_ERROR = -1 };

#define A0_LISTEN_CONNS 8       /* connections read at once; a new one evicts the oldest */

typedef struct a0_listen_conn {
  int fd;            /* -1 when the slot is free */
  double since;      /* monotonic ms when it was accepted */
  size_t len;
  char req[A0_LISTEN_MAX + 1];
} a0_listen_conn;

typedef struct a0_listener {
  int fd;            /* listening socket, -1 when closed */
  int port;
  int cur;           /* the slot of the request being answered, -1 when none */
  a0_listen_conn c[A0_LISTEN_CONNS];
} a0_listener;

/* The request parser, pure (no I/O, reads only buf[0..len)), for the tests and the fuzz
 * target too. a0_listen_head_end: the length of the head (through the empty line CRLF CRLF)
 * when buf holds a complete one, else 0; `from` is where a new CRLF CRLF may start (bytes
 * before it were searched already). a0_listen_parse: 0 when the head is
 * "GET <target> HTTP/1.0|1.1" CRLF ..., the target starting with '/' and made of printable
 * ASCII (0x21..0x7e) only, its offset and length in *off, *n; else the status to answer
 * (405: another method, 400: anything else malformed). */
size_t a0_listen_head_end(const char *buf, size_t len, size_t from);
int a0_listen_parse(const char *buf, size_t len, size_t *off, size_t *n);

/* Marks everything closed (nothing to close yet): before a0_listen_open, or after a raise. */
void a0_listen_init(a0_listener *l);

/* Binds 127.0.0.1:port (0: any free port). Returns 0, or an errno value. */
int a0_listen_open(a0_listener *l, int port);

/* Accepts and reads what is ready without blocking. A0_LISTEN_REQUEST: a GET arrived and
 * the target (length n) is its request target (valid until the next call); answer it with
 * a0_listen_reply. Malformed requests are answered here and reading goes on. */
int a0_listen_step(a0_listener *l, const char **target, size_t *n);

/* Answers the current request (text/html) and closes its connection. */
void a0_listen_reply(a0_listener *l, int status, const char *body, size_t n);

/* Closes everything and wipes the request bytes (they hold an authorization code). */
void a0_listen_close(a0_listener *l);

#endif
