/* The loopback redirect listener (see a0_listen.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "a0_buf.h"
#include "a0_listen.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

static double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL, 0);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int a0_listen_open(a0_listener *l, int port) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  int one = 1;
  memset(l, 0, sizeof *l);
  l->fd = l->conn = -1;
  if (port < 0 || port > 65535) return EINVAL;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return errno;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);   /* never another interface */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || nonblock(fd) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      listen(fd, 8) < 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
    int e = errno;
    close(fd);
    return e;
  }
  l->fd = fd;
  l->port = ntohs(sa.sin_port);
  return 0;
}

static void drop_conn(a0_listener *l) {
  if (l->conn >= 0) close(l->conn);
  l->conn = -1;
  a0_wipe(l->req, sizeof l->req);
  l->len = 0;
}

void a0_listen_reply(a0_listener *l, int status, const char *body, size_t n) {
  char head[256];
  const char *text = status == 200 ? "OK" : status == 404 ? "Not Found" : status == 405 ? "Method Not Allowed"
                   : status == 431 ? "Request Header Fields Too Large" : "Bad Request";
  if (l->conn < 0) return;
  int h = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                   "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n", status, text, n);
  /* a short answer to a local browser: one best-effort send each, never blocking */
  if (h > 0 && send(l->conn, head, (size_t)h, MSG_NOSIGNAL | MSG_DONTWAIT) == h && n > 0)
    (void)send(l->conn, body, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  drop_conn(l);
}

/* A complete head in req: the GET target, or an answer of our own (returns 0). */
static int parse(a0_listener *l, const char **target, size_t *n) {
  char *sp1 = memchr(l->req, ' ', l->len);
  if (sp1 == NULL || (size_t)(sp1 - l->req) != 3 || memcmp(l->req, "GET", 3) != 0) {
    a0_listen_reply(l, sp1 == NULL ? 400 : 405, "", 0);
    return 0;
  }
  char *t = sp1 + 1, *end = memchr(t, ' ', l->len - (size_t)(t - l->req));
  char *eol = memchr(l->req, '\r', l->len);
  if (end == NULL || eol == NULL || end > eol || end == t || *t != '/') {
    a0_listen_reply(l, 400, "", 0);
    return 0;
  }
  *end = '\0';
  *target = t;
  *n = (size_t)(end - t);
  return 1;
}

int a0_listen_step(a0_listener *l, const char **target, size_t *n) {
  if (l->fd < 0) return A0_LISTEN_ERROR;
  if (l->conn >= 0 && mono_ms() - l->conn_since > A0_LISTEN_IDLE_MS) drop_conn(l);
  if (l->conn < 0) {
    int c = accept(l->fd, NULL, NULL);
    if (c < 0) return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                      ? A0_LISTEN_NONE : A0_LISTEN_ERROR;
    if (nonblock(c) < 0 || fcntl(c, F_SETFD, FD_CLOEXEC) < 0) { close(c); return A0_LISTEN_NONE; }
    l->conn = c;
    l->len = 0;
    l->conn_since = mono_ms();
  }
  for (;;) {
    if (l->len >= A0_LISTEN_MAX) { a0_listen_reply(l, 431, "", 0); return A0_LISTEN_NONE; }
    ssize_t r = recv(l->conn, l->req + l->len, A0_LISTEN_MAX - l->len, 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return A0_LISTEN_NONE;
      drop_conn(l);
      return A0_LISTEN_NONE;
    }
    if (r == 0) { drop_conn(l); return A0_LISTEN_NONE; }
    l->len += (size_t)r;
    l->req[l->len] = '\0';
    /* the head ends with an empty line (maybe split across reads); a GET has no body */
    size_t from = l->len > (size_t)r + 3 ? l->len - (size_t)r - 3 : 0;
    for (size_t i = from; i + 4 <= l->len; i++) {
      if (memcmp(l->req + i, "\r\n\r\n", 4) == 0) return parse(l, target, n) ? A0_LISTEN_REQUEST : A0_LISTEN_NONE;
    }
  }
}

void a0_listen_close(a0_listener *l) {
  drop_conn(l);
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
}
