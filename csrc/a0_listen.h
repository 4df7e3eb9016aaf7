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
