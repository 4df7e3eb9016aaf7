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

void a0_listen_init(a0_listener *l) {
  memset(l, 0, sizeof *l);
  l->fd = -1;
  l->cur = -1;
  for (int i = 0; i < A0_LISTEN_CONNS; i++) l->c[i].fd = -1;
}

int a0_listen_open(a0_listener *l, int port) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  int one = 1;
  a0_listen_init(l);
  if (port < 0 || port > 65535) return EINVAL;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return errno;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);   /* never another interface */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || nonblock(fd) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      listen(fd, 64) < 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
    int e = errno;
    close(fd);
    return e;
  }
  l->fd = fd;
  l->port = ntohs(sa.sin_port);
  return 0;
}

static void drop_conn(a0_listener *l, a0_listen_conn *c) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  a0_wipe(c->req, sizeof c->req);   /* may hold an authorization code */
  c->len = 0;
  if (l->cur >= 0 && &l->c[l->cur] == c) l->cur = -1;
}

static void answer(a0_listener *l, a0_listen_conn *c, int status, const char *body, size_t n) {
  char head[256];
  const char *text = status == 200 ? "OK" : status == 404 ? "Not Found" : status == 405 ? "Method Not Allowed"
                   : status == 431 ? "Request Header Fields Too Large" : "Bad Request";
  if (c->fd < 0) return;
  int h = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                   "Content-Length: %zu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n", status, text, n);
  /* a short answer to a local browser: one best-effort send each, never blocking */
  if (h > 0 && send(c->fd, head, (size_t)h, MSG_NOSIGNAL | MSG_DONTWAIT) == h && n > 0)
    (void)send(c->fd, body, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  drop_conn(l, c);
}

void a0_listen_reply(a0_listener *l, int status, const char *body, size_t n) {
  if (l->cur >= 0) answer(l, &l->c[l->cur], status, body, n);
}

size_t a0_listen_head_end(const char *buf, size_t len, size_t from) {
  for (size_t i = from; i + 4 <= len; i++)
    if (memcmp(buf + i, "\r\n\r\n", 4) == 0) return i + 4;
  return 0;
}

int a0_listen_parse(const char *buf, size_t len, size_t *off, size_t *n) {
  const char *eol = memchr(buf, '\r', len);
  if (eol == NULL || (size_t)(eol - buf) + 1 >= len || eol[1] != '\n') return 400;
  size_t line = (size_t)(eol - buf);
  const char *sp1 = memchr(buf, ' ', line);
  if (sp1 == NULL || sp1 == buf) return 400;
  if ((size_t)(sp1 - buf) != 3 || memcmp(buf, "GET", 3) != 0) return 405;
  size_t t = (size_t)(sp1 - buf) + 1, e = t;
  /* the target: printable ASCII only, so no control or binary byte reaches the application */
  while (e < line && (unsigned char)buf[e] > 0x20 && (unsigned char)buf[e] < 0x7f) e++;
  if (e == t || buf[t] != '/' || e >= line || buf[e] != ' ') return 400;
  if (line - e - 1 != 8 || memcmp(buf + e + 1, "HTTP/1.", 7) != 0 || (buf[e + 8] != '0' && buf[e + 8] != '1'))
    return 400;
  *off = t;
  *n = e - t;
  return 0;
}

/* A complete head in c->req: the GET target, or an answer of our own (returns 0). */
static int parse(a0_listener *l, a0_listen_conn *c, const char **target, size_t *n) {
  size_t off;
  int status = a0_listen_parse(c->req, c->len, &off, n);
  if (status != 0) {
    answer(l, c, status, "", 0);
    return 0;
  }
  *target = c->req + off;
  return 1;
}

/* Reads what c has; 1 when it holds a complete GET (target set), else 0. */
static int read_conn(a0_listener *l, a0_listen_conn *c, const char **target, size_t *n) {
  while (c->fd >= 0) {
    if (c->len >= A0_LISTEN_MAX) { answer(l, c, 431, "", 0); return 0; }
    ssize_t r = recv(c->fd, c->req + c->len, A0_LISTEN_MAX - c->len, 0);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    if (r <= 0) { drop_conn(l, c); return 0; }
    c->len += (size_t)r;
    c->req[c->len] = '\0';
    /* the head ends with an empty line (maybe split across reads); a GET has no body */
    size_t from = c->len > (size_t)r + 3 ? c->len - (size_t)r - 3 : 0;
    if (a0_listen_head_end(c->req, c->len, from) > 0) return parse(l, c, target, n);
  }
  return 0;
}

/* A slot for a new connection: a free one, else the oldest silent one, else the oldest
 * (a preconnect that never speaks gives way to the browser that does). */
static a0_listen_conn *free_slot(a0_listener *l) {
  a0_listen_conn *slot = NULL;
  for (int i = 0; i < A0_LISTEN_CONNS; i++) {
    a0_listen_conn *c = &l->c[i];
    if (c->fd < 0) return c;
    if (slot == NULL || (c->len == 0 && slot->len > 0) ||
        ((c->len == 0) == (slot->len == 0) && c->since < slot->since)) slot = c;
  }
  drop_conn(l, slot);
  return slot;
}

static int found(a0_listener *l, a0_listen_conn *c) {
  l->cur = (int)(c - l->c);
  return A0_LISTEN_REQUEST;
}

int a0_listen_step(a0_listener *l, const char **target, size_t *n) {
  if (l->fd < 0) return A0_LISTEN_ERROR;
  double t = mono_ms();
  for (int i = 0; i < A0_LISTEN_CONNS; i++) {
    a0_listen_conn *c = &l->c[i];
    if (c->fd >= 0 && t - c->since > A0_LISTEN_IDLE_MS) drop_conn(l, c);
    if (c->fd >= 0 && read_conn(l, c, target, n)) return found(l, c);
  }
  /* each new connection is read as soon as it is accepted, before another can evict it */
  for (int k = 0; k < 4 * A0_LISTEN_CONNS; k++) {
    int fd = accept(l->fd, NULL, NULL);
    if (fd < 0) break;
    if (nonblock(fd) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) { close(fd); continue; }
    a0_listen_conn *c = free_slot(l);
    c->fd = fd;
    c->len = 0;
    c->since = t;
    if (read_conn(l, c, target, n)) return found(l, c);
  }
  return A0_LISTEN_NONE;
}

void a0_listen_close(a0_listener *l) {
  for (int i = 0; i < A0_LISTEN_CONNS; i++) drop_conn(l, &l->c[i]);
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
}
