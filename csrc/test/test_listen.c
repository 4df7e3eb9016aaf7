/* Unit tests of a0_listen.c, the loopback redirect listener: its request parser on buffers
 * (request line variants, binary bytes, heads split anywhere), then the listener on real
 * sockets against hostile clients (oversize, no CRLF, slow, many connections, binary). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "a0_listen.h"
#include "check.h"

static tally t;

/* a0_listen_parse on a NUL-free literal in an exact-size heap copy (ASan sees overreads). */
static int parse(const char *s, char *target, size_t cap) {
  size_t len = strlen(s), off = 0, n = 0;
  char *buf = malloc(len ? len : 1);
  memcpy(buf, s, len);
  int st = a0_listen_parse(buf, len, &off, &n);
  if (st == 0 && target) {
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(target, buf + off, k);
    target[k] = '\0';
  }
  free(buf);
  return st;
}

static void test_parser(void) {
  char tg[256];
  CHECK(&t, parse("GET /callback?code=a&state=b HTTP/1.1\r\nHost: x\r\n\r\n", tg, sizeof tg) == 0);
  CHECK(&t, strcmp(tg, "/callback?code=a&state=b") == 0);
  CHECK(&t, parse("GET / HTTP/1.0\r\n\r\n", tg, sizeof tg) == 0 && strcmp(tg, "/") == 0);
  /* another method, or the same in another case */
  CHECK(&t, parse("POST /callback HTTP/1.1\r\n\r\n", NULL, 0) == 405);
  CHECK(&t, parse("get /callback HTTP/1.1\r\n\r\n", NULL, 0) == 405);
  CHECK(&t, parse("GETX /callback HTTP/1.1\r\n\r\n", NULL, 0) == 405);
  /* malformed request lines */
  static const char *const bad[] = {
    "GET  /callback HTTP/1.1\r\n\r\n",          /* two spaces: an empty target */
    "GET /callback  HTTP/1.1\r\n\r\n",
    "GET /callback HTTP/2.0\r\n\r\n",
    "GET /callback HTTP/1.10\r\n\r\n",
    "GET /callback HTTP/1.1 x\r\n\r\n",
    "GET /callback\r\n\r\n",                     /* HTTP/0.9 */
    "GET http://127.0.0.1/callback HTTP/1.1\r\n\r\n",  /* absolute form */
    "GET * HTTP/1.1\r\n\r\n",
    "GET /a\tb HTTP/1.1\r\n\r\n",
    "GET /a\x7f HTTP/1.1\r\n\r\n",
    "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",        /* non-ASCII: browsers percent-encode */
    "GET /a\rb HTTP/1.1\r\n\r\n",
    "GET /a HTTP/1.1\rX\n\r\n\r\n",             /* a CR not followed by LF */
    "GET /a HTTP/1.1\n\r\n\r\n",                /* bare LF ends the line */
    " GET /a HTTP/1.1\r\n\r\n",
    "\r\n\r\n",
    "GET",
    "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int st = parse(bad[i], NULL, 0);
    CHECK(&t, st == 400);
    if (st != 400) printf("  case %zu gave %d\n", i, st);
  }
  /* a NUL inside the target (a literal cannot hold it) */
  {
    char buf[] = "GET /a?b HTTP/1.1\r\n\r\n";
    size_t off, n;
    buf[6] = '\0';
    CHECK(&t, a0_listen_parse(buf, sizeof buf - 1, &off, &n) == 400);
    /* the parser reads only the bytes it was given: the line cut before its CRLF */
    CHECK(&t, a0_listen_parse("GET / HTTP/1.1\r\n", 15, &off, &n) == 400);
    CHECK(&t, a0_listen_parse("GET / HTTP/1.1\r\n", 16, &off, &n) == 0 && off == 4 && n == 1);
  }
  /* every byte value in the target: only 0x21..0x7e pass */
  for (int b = 0; b < 256; b++) {
    char buf[32];
    size_t off, n;
    int k = snprintf(buf, sizeof buf, "GET /a%cb HTTP/1.1\r\n\r\n", b == 0 ? 'x' : b);
    if (b == 0) buf[6] = '\0';
    int st = a0_listen_parse(buf, (size_t)k, &off, &n);
    CHECK(&t, (st == 0) == (b > 0x20 && b < 0x7f));
  }
  /* the end of the head, found across split reads */
  const char *h = "GET / HTTP/1.1\r\nA: b\r\n\r\nrest";
  CHECK(&t, a0_listen_head_end(h, strlen(h), 0) == strlen(h) - 4);
  CHECK(&t, a0_listen_head_end(h, strlen(h) - 5, 0) == 0);
  CHECK(&t, a0_listen_head_end(h, strlen(h), 20) == strlen(h) - 4);
  CHECK(&t, a0_listen_head_end("GET / HTTP/1.1\n\n", 16, 0) == 0);   /* bare LF: never a head */
  CHECK(&t, a0_listen_head_end("\r\n\r", 3, 0) == 0);
  CHECK(&t, a0_listen_head_end("", 0, 0) == 0);
}

/* ---- on sockets ---- */

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

static void sleep_ms(int ms) {
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

/* Steps l for up to ms: A0_LISTEN_REQUEST with the target copied, or A0_LISTEN_NONE. */
static int step_for(a0_listener *l, int ms, char *target, size_t cap) {
  for (int i = 0; i < ms / 5 + 1; i++) {
    const char *tg;
    size_t n;
    int rc = a0_listen_step(l, &tg, &n);
    if (rc == A0_LISTEN_REQUEST) {
      size_t k = n < cap - 1 ? n : cap - 1;
      memcpy(target, tg, k);
      target[k] = '\0';
      return rc;
    }
    if (rc != A0_LISTEN_NONE) return rc;
    sleep_ms(5);
  }
  return A0_LISTEN_NONE;
}

/* The status of the answer on fd (0: closed without one, -1: nothing within 2 s). */
static int answer_status(int fd) {
  struct pollfd p = { fd, POLLIN, 0 };
  char buf[64];
  if (poll(&p, 1, 2000) <= 0) return -1;
  ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
  if (r <= 0) return 0;
  buf[r] = '\0';
  int st = 0;
  if (sscanf(buf, "HTTP/1.1 %d", &st) != 1) return -2;
  return st;
}

/* Sends `req` (n bytes) on a new connection; the answer's status. */
static int one(a0_listener *l, const char *req, size_t n) {
  char tg[64];
  int fd = connect_to(l->port);
  CHECK(&t, fd >= 0);
  if (fd < 0) return -1;
  CHECK(&t, send(fd, req, n, MSG_NOSIGNAL) == (ssize_t)n);
  int rc = step_for(l, 200, tg, sizeof tg);
  if (rc == A0_LISTEN_REQUEST) a0_listen_reply(l, 200, "ok", 2);
  int st = answer_status(fd);
  close(fd);
  return st;
}

static int conn_wiped(const a0_listener *l) {
  for (int i = 0; i < A0_LISTEN_CONNS; i++)
    for (size_t k = 0; k < sizeof l->c[i].req; k++)
      if (l->c[i].req[k] != 0) return 0;
  return 1;
}

static void test_sockets(void) {
  a0_listener l;
  char tg[256];
  CHECK(&t, a0_listen_open(&l, 0) == 0);
  CHECK(&t, l.port > 0);

  /* a real redirect, answered and wiped */
  const char *good = "GET /callback?code=c&state=s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  int fd = connect_to(l.port);
  CHECK(&t, send(fd, good, strlen(good), MSG_NOSIGNAL) == (ssize_t)strlen(good));
  CHECK(&t, step_for(&l, 1000, tg, sizeof tg) == A0_LISTEN_REQUEST);
  CHECK(&t, strcmp(tg, "/callback?code=c&state=s") == 0);
  a0_listen_reply(&l, 200, "<p>ok</p>", 9);
  CHECK(&t, answer_status(fd) == 200);
  close(fd);
  CHECK(&t, l.cur == -1);

  /* request line variants and binary */
  CHECK(&t, one(&l, "POST /callback HTTP/1.1\r\n\r\n", 27) == 405);
  CHECK(&t, one(&l, "GET /a\x01 HTTP/1.1\r\n\r\n", 21) == 400);
  CHECK(&t, one(&l, "GET /a\0b HTTP/1.1\r\n\r\n", 21) == 400);
  CHECK(&t, one(&l, "GET /a HTTP/9.9\r\n\r\n", 19) == 400);
  {
    unsigned char bin[512];
    unsigned s = 12345;
    for (size_t i = 0; i < sizeof bin; i++) { s = s * 1103515245u + 12345u; bin[i] = (unsigned char)(s >> 16); }
    memcpy(bin + sizeof bin - 4, "\r\n\r\n", 4);
    int st = one(&l, (const char *)bin, sizeof bin);
    CHECK(&t, st == 400 || st == 405);
  }

  /* oversize: a head that never ends within A0_LISTEN_MAX bytes gets 431 */
  {
    size_t n = A0_LISTEN_MAX + 100;
    char *big = malloc(n);
    memcpy(big, "GET /callback HTTP/1.1\r\nX: ", 27);
    memset(big + 27, 'a', n - 27);
    fd = connect_to(l.port);
    ssize_t sent = send(fd, big, n, MSG_NOSIGNAL);
    CHECK(&t, sent > 0);
    CHECK(&t, step_for(&l, 300, tg, sizeof tg) == A0_LISTEN_NONE);
    CHECK(&t, answer_status(fd) == 431);
    close(fd);
    free(big);
  }

  /* many connections, most silent: the one that speaks is read, whatever came before */
  {
    int idle[3 * A0_LISTEN_CONNS];
    for (int i = 0; i < 3 * A0_LISTEN_CONNS; i++) {
      idle[i] = connect_to(l.port);
      CHECK(&t, idle[i] >= 0);
      (void)step_for(&l, 0, tg, sizeof tg);
    }
    fd = connect_to(l.port);
    CHECK(&t, send(fd, good, strlen(good), MSG_NOSIGNAL) == (ssize_t)strlen(good));
    CHECK(&t, step_for(&l, 1000, tg, sizeof tg) == A0_LISTEN_REQUEST);
    a0_listen_reply(&l, 200, "", 0);
    CHECK(&t, answer_status(fd) == 200);
    close(fd);
    for (int i = 0; i < 3 * A0_LISTEN_CONNS; i++) close(idle[i]);
    (void)step_for(&l, 20, tg, sizeof tg);
  }

  /* slow: a request trickled a byte at a time is still read whole */
  fd = connect_to(l.port);
  int got = A0_LISTEN_NONE;
  for (size_t i = 0; i < strlen(good) && got != A0_LISTEN_REQUEST; i++) {
    CHECK(&t, send(fd, good + i, 1, MSG_NOSIGNAL) == 1);
    got = step_for(&l, 5, tg, sizeof tg);
  }
  if (got != A0_LISTEN_REQUEST) got = step_for(&l, 500, tg, sizeof tg);
  CHECK(&t, got == A0_LISTEN_REQUEST && strcmp(tg, "/callback?code=c&state=s") == 0);
  a0_listen_reply(&l, 404, "", 0);
  CHECK(&t, answer_status(fd) == 404);
  close(fd);

  /* no CRLF (bare LF lines), and a client that stops mid-head: dropped after the idle
   * limit without an answer, and the listener goes on */
  int lf = connect_to(l.port), half = connect_to(l.port);
  CHECK(&t, send(lf, "GET / HTTP/1.1\n\n", 16, MSG_NOSIGNAL) == 16);
  CHECK(&t, send(half, "GET /callback?code=c", 20, MSG_NOSIGNAL) == 20);
  CHECK(&t, step_for(&l, A0_LISTEN_IDLE_MS + 300, tg, sizeof tg) == A0_LISTEN_NONE);
  CHECK(&t, answer_status(lf) == 0);
  CHECK(&t, answer_status(half) == 0);
  close(lf);
  close(half);
  CHECK(&t, one(&l, good, strlen(good)) == 200);

  /* close wipes every request buffer (they held authorization codes) */
  fd = connect_to(l.port);
  CHECK(&t, send(fd, "GET /callback?code=secret", 25, MSG_NOSIGNAL) == 25);
  (void)step_for(&l, 50, tg, sizeof tg);
  a0_listen_close(&l);
  CHECK(&t, conn_wiped(&l));
  CHECK(&t, l.fd == -1);
  const char *tp;
  size_t n;
  CHECK(&t, a0_listen_step(&l, &tp, &n) == A0_LISTEN_ERROR);
  a0_listen_close(&l);   /* idempotent */
  close(fd);
}

int main(void) {
  test_parser();
  test_sockets();
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed != 0;
}
