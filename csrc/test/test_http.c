/* Unit test of the HTTP engine (a0_http.c), no Lua: header capture, error names, and
 * real transfers against a loopback HTTP/1.1 server that runs in a thread of this test
 * (plain HTTP on 127.0.0.1, port chosen by the kernel). Built and run by `make ctest`:
 *   gcc -std=c99 -Icsrc -fsanitize=address,undefined -pthread -o build/ctest/test_http \
 *       csrc/test/test_http.c csrc/a0_http.c csrc/a0_buf.c -lcurl -lcrypto
 * Last line: "N passed, N failed"; exit status 1 on any failure. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <curl/curl.h>
#include "a0_http.h"

#include "check.h"

void a0_test_lock(a0_engine *e);     /* a0_http.c, built with A0_TEST_HOOKS */
void a0_test_unlock(a0_engine *e);
void a0_test_pause(a0_engine *e, int on);   /* the I/O thread leaves its inbox alone */
void a0_test_fail(a0_engine *e, int curlm_code);   /* the next multi call fails so */
int a0_test_illegal(a0_engine *e);               /* transitions refused so far */

/* ---- header capture ---------------------------------------------------------------- */

static void cap(a0_xfer *x, const char *line) { a0_capture_header(x, line, strlen(line)); }

static void test_capture(tally *t) {
  a0_xfer *x = a0_xfer_new();
  char line[600];
  cap(x, "HTTP/1.1 429 Too Many Requests\r\n");
  cap(x, "Retry-After: 120\r\n");
  cap(x, "X-RateLimit-Limit: 50\r\n");
  cap(x, "x-ratelimit-remaining:0\r\n");          /* no space after the colon */
  cap(x, "X-RATELIMIT-RESET: \t1700000000 \t\r\n");  /* both ends trimmed */
  cap(x, "X-Auth0-RequestId: abc-123\n");         /* bare LF */
  cap(x, "content-type: application/json; charset=utf-8");   /* no line end */
  cap(x, "Location:   /a b  \r\n");               /* inner spaces kept */
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RETRY_AFTER), "120") == 0);
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RL_LIMIT), "50") == 0);
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RL_REMAINING), "0") == 0);
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RL_RESET), "1700000000") == 0);
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_REQUEST_ID), "abc-123") == 0);
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_CONTENT_TYPE), "application/json; charset=utf-8") == 0);
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_LOCATION), "/a b") == 0);
  /* a later line replaces the value */
  cap(x, "retry-after: Wed, 21 Oct 2015 07:28:00 GMT\r\n");
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RETRY_AFTER), "Wed, 21 Oct 2015 07:28:00 GMT") == 0);
  /* lines that must not match */
  cap(x, "Retry-After-Extra: 1\r\n");             /* longer name */
  cap(x, "Retry-After : 2\r\n");                  /* space before the colon */
  cap(x, "Retry-After\r\n");                      /* no colon */
  cap(x, " Retry-After: 3\r\n");                  /* leading space (folded line) */
  cap(x, "X-Retry-After: 4\r\n");
  a0_capture_header(x, "Retry-After: 5", 12);     /* len ends right after the colon */
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RETRY_AFTER), "") == 0);
  cap(x, "Retry-After: 6\r\n");
  a0_capture_header(x, "Retry-After", 11);        /* name only: len == name length */
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RETRY_AFTER), "6") == 0);
  /* empty and blank values */
  cap(x, "Location:\r\n");
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_LOCATION), "") == 0);
  cap(x, "Location: \t \r\n");
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_LOCATION), "") == 0);
  /* truncation at A0_HDR_MAX - 1 bytes, always NUL-terminated */
  memcpy(line, "x-auth0-requestid: ", 19);
  for (int i = 0; i < 400; i++) line[19 + i] = (char)('a' + i % 26);
  memcpy(line + 419, "\r\n", 3);
  cap(x, line);
  CHECK(t, strlen(a0_xfer_header(x, A0_H_REQUEST_ID)) == A0_HDR_MAX - 1);
  CHECK(t, memcmp(a0_xfer_header(x, A0_H_REQUEST_ID), line + 19, A0_HDR_MAX - 1) == 0);
  line[19 + A0_HDR_MAX - 1] = '\r';                /* exactly 255 value bytes fit */
  line[19 + A0_HDR_MAX] = '\n';
  a0_capture_header(x, line, 19 + A0_HDR_MAX + 1);
  CHECK(t, strlen(a0_xfer_header(x, A0_H_REQUEST_ID)) == A0_HDR_MAX - 1);
  a0_capture_header(x, line, 19 + A0_HDR_MAX - 2);   /* 254 bytes */
  CHECK(t, strlen(a0_xfer_header(x, A0_H_REQUEST_ID)) == A0_HDR_MAX - 2);
  /* a second status line (after 100 Continue, or a redirect) starts over */
  cap(x, "HTTP/1.1 100 Continue\r\n");
  int empty = 1;
  for (int h = 0; h < A0_NHDR; h++) empty = empty && a0_xfer_header(x, h)[0] == '\0';
  CHECK(t, empty);
  cap(x, "HTTP/2 200\r\n");
  cap(x, "retry-after: 7\r\n");
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RETRY_AFTER), "7") == 0);
  cap(x, "HTTP/");                                 /* exactly the prefix */
  CHECK(t, a0_xfer_header(x, A0_H_RETRY_AFTER)[0] == '\0');
  cap(x, "http/1.1 200 OK\r\n");                   /* not a status line: nothing happens */
  a0_capture_header(x, "", 0);
  a0_capture_header(x, "\r\n", 2);
  a0_xfer_free(x);
}

static void test_names(tally *t) {
  static const char *const want[] = { "ok", "timeout", "couldnt_connect", "couldnt_resolve",
    "tls", "bad_response", "too_large", "cancelled", "network", "out_of_memory" };
  CHECK(t, A0_NERR == (int)(sizeof want / sizeof want[0]));
  for (int i = 0; i < A0_NERR; i++) CHECK(t, strcmp(a0_err_name(i), want[i]) == 0);
  CHECK(t, strcmp(a0_err_name(A0_NERR), "unknown") == 0);
  CHECK(t, strcmp(a0_err_name(-1), "unknown") == 0);
  CHECK(t, strcmp(a0_err_name(1 << 30), "unknown") == 0);
  CHECK(t, strcmp(a0_header_field(A0_H_RETRY_AFTER), "retry_after") == 0);
  CHECK(t, strcmp(a0_header_field(A0_H_RL_RESET), "ratelimit_reset") == 0);
  CHECK(t, strcmp(a0_header_field(A0_H_REQUEST_ID), "request_id") == 0);
}

/* ---- loopback server --------------------------------------------------------------- */

#define MAX_HELD 16

typedef struct {
  int lfd, port;
  int stop;                 /* atomic */
  int accepted;             /* atomic: connections accepted so far */
  int held[MAX_HELD];       /* connections left unanswered on purpose */
  int nheld;
  pthread_t th;
} server;

static void send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
}

static void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

/* Reads one request (headers, then Content-Length bytes of body) into req; 0 or -1. */
static int read_request(int fd, char *req, size_t cap, size_t *body_off, size_t *len) {
  size_t n = 0, want = 0;
  char *end = NULL;
  for (;;) {
    struct pollfd p = { fd, POLLIN, 0 };
    if (poll(&p, 1, 3000) <= 0) return -1;
    ssize_t r = recv(fd, req + n, cap - 1 - n, 0);
    if (r <= 0) return -1;
    n += (size_t)r;
    req[n] = '\0';
    if (end == NULL && (end = strstr(req, "\r\n\r\n")) != NULL) {
      const char *cl = strstr(req, "Content-Length:");
      *body_off = (size_t)(end - req) + 4;
      want = *body_off + (cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0);
    }
    if (end != NULL && n >= want) { *len = n; return 0; }
    if (n >= cap - 1) return -1;
  }
}

static void serve(server *s, int fd) {
  char req[8192], resp[8192];
  size_t off = 0, len = 0;
  if (read_request(fd, req, sizeof req, &off, &len) != 0) { close(fd); return; }
  const char *path = strchr(req, ' ');
  path = path ? path + 1 : "";
#define IS(p) (strncmp(path, p " ", strlen(p) + 1) == 0)
  if (IS("/ok")) {
    send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-RateLimit-Limit: 50\r\n"
                 "x-ratelimit-remaining: 7\r\nRetry-After:  12 \r\nConnection: close\r\n"
                 "Content-Length: 5\r\n\r\nhello");
  } else if (IS("/echo")) {
    snprintf(resp, sizeof resp, "HTTP/1.1 201 Created\r\nConnection: close\r\n"
             "Content-Length: %zu\r\n\r\n", len - off);
    send_str(fd, resp);
    send_all(fd, req + off, len - off);
  } else if (IS("/big")) {
    send_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5000\r\n\r\n");
    memset(resp, 'b', 5000);
    send_all(fd, resp, 5000);
  } else if (IS("/exact")) {                         /* exactly max_body bytes: fine */
    send_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1000\r\n\r\n");
    memset(resp, 'e', 1000);
    send_all(fd, resp, 1000);
  } else if (IS("/close")) {                         /* promises 100 bytes, sends 10 */
    send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
  } else if (IS("/continue")) {
    send_str(fd, "HTTP/1.1 100 Continue\r\nRetry-After: 9\r\n\r\n"
                 "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                 "X-RateLimit-Reset: 1700000000\r\nContent-Length: 2\r\n\r\nno");
  } else if (IS("/garbage")) {
    send_str(fd, "this is not http\r\n\r\n");
  } else if (IS("/hang")) {                          /* read the request, never answer */
    if (s->nheld < MAX_HELD) { s->held[s->nheld++] = fd; return; }
  } else {
    send_str(fd, "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  }
#undef IS
  close(fd);
}

static void *server_main(void *ud) {
  server *s = ud;
  while (!__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST)) {
    struct pollfd p = { s->lfd, POLLIN, 0 };
    if (poll(&p, 1, 50) <= 0) continue;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) continue;
    __atomic_add_fetch(&s->accepted, 1, __ATOMIC_SEQ_CST);
    serve(s, fd);
  }
  return NULL;
}

/* Binds 127.0.0.1:0; returns the socket and its port, or -1. */
static int listen_any(int *port) {
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

static int server_start(server *s) {
  memset(s, 0, sizeof *s);
  s->lfd = listen_any(&s->port);
  if (s->lfd < 0) return -1;
  return pthread_create(&s->th, NULL, server_main, s) == 0 ? 0 : -1;
}

static void server_stop(server *s) {
  __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
  pthread_join(s->th, NULL);
  for (int i = 0; i < s->nheld; i++) close(s->held[i]);
  close(s->lfd);
}

/* ---- transfers --------------------------------------------------------------------- */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void set_url(a0_xfer *x, int port, const char *path) {
  char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  a0_buf_reset(&x->url);
  a0_buf_adds(&x->url, url);
}

/* Runs one GET to path and waits for it. */
static a0_xfer *get(a0_engine *e, int port, const char *path) {
  a0_xfer *x = a0_xfer_new();
  set_url(x, port, path);
  x->method = "GET";
  if (a0_xfer_start(e, x) == 0) a0_engine_wait(e, x);
  return x;
}

static int is(const a0_xfer *x, const char *state) { return strcmp(a0_xfer_state(x), state) == 0; }

static int resp_is(const a0_xfer *x, const char *s) {
  return x->resp.len == strlen(s) && memcmp(x->resp.data, s, x->resp.len) == 0;
}

static void test_transfers(tally *t, a0_engine *e, server *s, int threaded) {
  a0_xfer *x;
  double t0;

  /* 200 with a body and captured headers */
  x = get(e, s->port, "/ok");
  CHECK(t, is(x, "done") && x->err == A0_OK && x->status == 200);
  CHECK(t, resp_is(x, "hello"));
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RL_LIMIT), "50") == 0);
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RL_REMAINING), "7") == 0);
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RETRY_AFTER), "12") == 0);
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_CONTENT_TYPE), "text/plain") == 0);
  CHECK(t, a0_engine_pop_done(e) == NULL);       /* wait leaves nothing queued */
  CHECK(t, a0_engine_running(e) == 0);
  a0_xfer_free(x);

  /* POST: the body arrives, and is wiped once sent */
  x = a0_xfer_new();
  set_url(x, s->port, "/echo");
  x->method = "POST";
  a0_buf_adds(&x->body, "otp=123456&client_secret=s");
  size_t blen = x->body.len;
  CHECK(t, a0_xfer_start(e, x) == 0);
  a0_engine_wait(e, x);
  CHECK(t, x->err == A0_OK && x->status == 201 && resp_is(x, "otp=123456&client_secret=s"));
  CHECK(t, x->body.len == 0 && x->body.data != NULL);
  int wiped = 1;
  for (size_t i = 0; i < blen; i++) wiped = wiped && x->body.data[i] == 0;
  CHECK(t, wiped);
  a0_xfer_free(x);

  /* a 1xx interim response: its headers are dropped, the final ones kept */
  x = get(e, s->port, "/continue");
  CHECK(t, x->err == A0_OK && x->status == 503 && resp_is(x, "no"));
  CHECK(t, a0_xfer_header(x, A0_H_RETRY_AFTER)[0] == '\0');
  CHECK(t, strcmp(a0_xfer_header(x, A0_H_RL_RESET), "1700000000") == 0);
  a0_xfer_free(x);

  /* body limit: max_body bytes pass, one more does not */
  x = get(e, s->port, "/exact");
  CHECK(t, x->err == A0_OK && x->resp.len == 1000);
  a0_xfer_free(x);
  x = get(e, s->port, "/big");
  CHECK(t, is(x, "done") && x->err == A0_ETOOLARGE);
  CHECK(t, x->resp.len <= 1000);
  CHECK(t, strcmp(x->errmsg, "response larger than 1000 bytes") == 0);
  CHECK(t, strcmp(a0_err_name(x->err), "too_large") == 0);
  a0_xfer_free(x);

  /* the server closes before the promised body is complete */
  x = get(e, s->port, "/close");
  CHECK(t, x->err == A0_EBADRESP);
  CHECK(t, x->errmsg[0] != '\0');
  a0_xfer_free(x);

  /* not HTTP at all */
  x = get(e, s->port, "/garbage");
  CHECK(t, x->err == A0_EBADRESP);
  a0_xfer_free(x);

  /* a server that never answers: timeout after 300 ms */
  x = a0_xfer_new();
  set_url(x, s->port, "/hang");
  x->timeout_ms = 300;
  t0 = now_ms();
  CHECK(t, a0_xfer_start(e, x) == 0);
  a0_engine_wait(e, x);
  double took = now_ms() - t0;
  CHECK(t, x->err == A0_ETIMEOUT && is(x, "done"));
  CHECK(t, took >= 250 && took < 3000);
  if (!(took >= 250 && took < 3000)) printf("  timeout took %.0f ms\n", took);
  a0_xfer_free(x);

  /* a refused port */
  int port = 0, fd = listen_any(&port);
  CHECK(t, fd >= 0);
  close(fd);                                     /* nothing listens there any more */
  x = get(e, port, "/ok");
  CHECK(t, x->err == A0_ECONNECT);
  CHECK(t, strcmp(a0_err_name(x->err), "couldnt_connect") == 0);
  a0_xfer_free(x);

  /* cancel a running transfer, then reuse the same xfer */
  x = a0_xfer_new();
  set_url(x, s->port, "/hang");
  x->method = "POST";
  a0_buf_adds(&x->body, "code=987654");
  int before = __atomic_load_n(&s->accepted, __ATOMIC_SEQ_CST);
  CHECK(t, a0_xfer_start(e, x) == 0);
  CHECK(t, a0_engine_running(e) == 1);
  t0 = now_ms();
  while (__atomic_load_n(&s->accepted, __ATOMIC_SEQ_CST) == before && now_ms() - t0 < 3000)
    a0_engine_run(e, 20);
  for (int i = 0; i < 5; i++) a0_engine_run(e, 10);   /* the request is sent, no answer */
  if (threaded) {   /* the I/O thread holds it: handed back through the released list */
    CHECK(t, a0_engine_cancel(e, x) == 1);
    CHECK(t, a0_engine_running(e) == 0);
    a0_xfer *back = NULL;
    t0 = now_ms();
    while ((back = a0_engine_pop_released(e)) == NULL && now_ms() - t0 < 3000) a0_engine_run(e, 10);
    CHECK(t, back == x);
    CHECK(t, a0_engine_pop_released(e) == NULL);
    CHECK(t, is(x, "done") && x->body.len == 0 && x->err == A0_ECANCELLED);
  } else {
    CHECK(t, is(x, "running"));
    CHECK(t, a0_engine_cancel(e, x) == 0);
    CHECK(t, is(x, "done") && x->err == A0_ECANCELLED);
    CHECK(t, strcmp(x->errmsg, "request cancelled") == 0);
    CHECK(t, x->body.len == 0);
  }
  CHECK(t, a0_engine_running(e) == 0);
  CHECK(t, a0_engine_run(e, 10) == 0);
  CHECK(t, a0_engine_pop_done(e) == NULL);
  CHECK(t, a0_engine_cancel(e, x) == 0);         /* cancelling twice is harmless */
  CHECK(t, a0_engine_running(e) == 0 && is(x, "done"));
  a0_xfer_reset(x);
  set_url(x, s->port, "/ok");
  x->method = "GET";
  CHECK(t, a0_xfer_start(e, x) == 0);
  a0_engine_wait(e, x);
  CHECK(t, x->err == A0_OK && x->status == 200 && resp_is(x, "hello"));
  a0_xfer_free(x);

  /* cancel after it finished but before it was popped: dropped from the done queue */
  x = a0_xfer_new();
  set_url(x, s->port, "/ok");
  CHECK(t, a0_xfer_start(e, x) == 0);
  t0 = now_ms();
  while (a0_engine_running(e) > 0 && now_ms() - t0 < 3000) a0_engine_run(e, 20);
  CHECK(t, is(x, threaded ? "ready" : "queued"));   /* running 0: all of them taken over */
  CHECK(t, a0_engine_cancel(e, x) == 0);
  CHECK(t, x->err == A0_ECANCELLED && is(x, "done"));
  CHECK(t, a0_engine_pop_done(e) == NULL);
  a0_xfer_free(x);

  /* two at once through the non-blocking interface, both come out of the done queue */
  a0_xfer *a = a0_xfer_new(), *b = a0_xfer_new();
  set_url(a, s->port, "/ok");
  set_url(b, s->port, "/echo");
  b->method = "POST";
  a0_buf_adds(&b->body, "x");
  CHECK(t, a0_xfer_start(e, a) == 0 && a0_xfer_start(e, b) == 0);
  t0 = now_ms();
  while (a0_engine_running(e) > 0 && now_ms() - t0 < 3000) a0_engine_run(e, 20);
  a0_xfer *d1 = a0_engine_pop_done(e), *d2 = a0_engine_pop_done(e);
  CHECK(t, d1 != NULL && d2 != NULL && d1 != d2 && a0_engine_pop_done(e) == NULL);
  CHECK(t, (d1 == a || d1 == b) && (d2 == a || d2 == b));
  CHECK(t, a->err == A0_OK && resp_is(a, "hello") && b->err == A0_OK && resp_is(b, "x"));
  a0_xfer_free(a);
  a0_xfer_free(b);

  /* illegal moves are refused, counted, and leave the transfer as it was */
  int ill = a0_test_illegal(e);
  x = a0_xfer_new();
  set_url(x, s->port, "/ok");
  CHECK(t, a0_engine_unpop(e, x) == -1 && is(x, "idle"));          /* never popped */
  CHECK(t, a0_xfer_start(e, x) == 0);
  CHECK(t, a0_xfer_start(e, x) == -1);                             /* started twice */
  CHECK(t, a0_xfer_reset(x) == -1);                                /* libcurl may be using it */
  CHECK(t, a0_engine_running(e) == 1 && a0_test_illegal(e) == ill + 3);
  a0_engine_wait(e, x);
  CHECK(t, is(x, "done") && x->err == A0_OK && resp_is(x, "hello"));
  CHECK(t, a0_engine_unpop(e, x) == 0 && is(x, threaded ? "ready" : "queued"));
  CHECK(t, a0_engine_pop_done(e) == x && is(x, "done") && a0_engine_pop_done(e) == NULL);
  CHECK(t, a0_xfer_reset(x) == 0 && is(x, "idle") && x->resp.len == 0);
  CHECK(t, a0_test_illegal(e) == ill + 3);
  a0_xfer_free(x);

  /* a failing multi handle reaches the caller of a0_engine_run, once, with its reason */
  int rc = 0;
  a0_test_fail(e, CURLM_INTERNAL_ERROR);
  t0 = now_ms();
  while ((rc = a0_engine_run(e, 20)) != A0_RUN_FAILED && now_ms() - t0 < 3000) {}
  CHECK(t, rc == A0_RUN_FAILED);
  char want[160];
  snprintf(want, sizeof want, "curl_multi_perform failed: %s", curl_multi_strerror(CURLM_INTERNAL_ERROR));
  CHECK(t, strcmp(a0_engine_errmsg(e), want) == 0);
  rc = a0_engine_run(e, 20);
  CHECK(t, rc == 0);                                               /* reported once */
  x = get(e, s->port, "/ok");                                      /* and the engine goes on */
  CHECK(t, x->err == A0_OK && resp_is(x, "hello"));
  a0_xfer_free(x);
}

static void *wake_later(void *e) {
  struct timespec nap = { 0, 50000000L };
  nanosleep(&nap, NULL);
  a0_engine_wakeup(e);
  return NULL;
}

/* Both engines: a wakeup is sticky (the next wait, run or idle, returns at once) and answered
 * once (the wait after it waits), also one from another thread during a wait. */
static void test_wake(tally *t, a0_engine *e, server *s) {
  a0_xfer *x = a0_xfer_new();
  pthread_t th;
  double t0;
  set_url(x, s->port, "/hang");
  x->timeout_ms = 5000;
  CHECK(t, a0_xfer_start(e, x) == 0);
  for (int i = 0; i < 25; i++) a0_engine_run(e, 20);   /* sent, and libcurl's early timers past */
  for (int idle = 0; idle <= 1; idle++) {
    a0_engine_wakeup(e);
    t0 = now_ms();
    if (idle) a0_engine_idle(e, 3000); else CHECK(t, a0_engine_run(e, 3000) == 1);
    CHECK(t, now_ms() - t0 < 1000);
    t0 = now_ms();
    if (idle) a0_engine_idle(e, 100); else a0_engine_run(e, 100);   /* consumed: this one waits */
    CHECK(t, now_ms() - t0 >= 80);
  }
  CHECK(t, pthread_create(&th, NULL, wake_later, e) == 0);
  t0 = now_ms();
  CHECK(t, a0_engine_run(e, 3000) == 1);
  CHECK(t, now_ms() - t0 < 1000);
  pthread_join(th, NULL);
  if (a0_engine_cancel(e, x) == 1) {
    while (a0_engine_pop_released(e) == NULL) a0_engine_run(e, 10);
  }
  a0_xfer_free(x);
}

/* Only the threaded engine: waits that end early, a burst with random cancels
 * where every transfer comes back exactly once, and freeing with transfers held. */
static void test_threaded(tally *t, a0_engine *e, server *s) {
  enum { N = 120 };
  a0_xfer *xs[N];
  int seen[N] = { 0 };
  double t0;
  a0_xfer *x = a0_xfer_new();
  set_url(x, s->port, "/ok");
  CHECK(t, a0_xfer_start(e, x) == 0);
  t0 = now_ms();
  a0_engine_run(e, 3000);                        /* returns as soon as it is done */
  CHECK(t, now_ms() - t0 < 1500);
  CHECK(t, a0_engine_pop_done(e) == x && x->err == A0_OK && resp_is(x, "hello"));
  a0_xfer_reset(x);

  /* started while the I/O thread "has the lock": the start does not wait for it, and the
   * thread takes the transfer as soon as it has the lock, with no further call from us */
  int before = __atomic_load_n(&s->accepted, __ATOMIC_SEQ_CST);
  a0_test_lock(e);
  set_url(x, s->port, "/ok");
  CHECK(t, a0_xfer_start(e, x) == 0);
  a0_xfer *y = a0_xfer_new();
  set_url(y, s->port, "/hang");
  CHECK(t, a0_xfer_start(e, y) == 0);
  CHECK(t, a0_engine_run(e, 0) == A0_RUN_BUSY);           /* poll(0) does not wait for the lock either */
  a0_test_unlock(e);
  t0 = now_ms();                                  /* no engine call: the server sees both */
  while (__atomic_load_n(&s->accepted, __ATOMIC_SEQ_CST) < before + 2 && now_ms() - t0 < 5000) {
    struct timespec nap = { 0, 10000000L };
    nanosleep(&nap, NULL);
  }
  CHECK(t, __atomic_load_n(&s->accepted, __ATOMIC_SEQ_CST) >= before + 2);
  a0_xfer *got = NULL;
  while (got == NULL && now_ms() - t0 < 5000) { a0_engine_run(e, 20); got = a0_engine_pop_done(e); }
  CHECK(t, got == x && x->err == A0_OK && resp_is(x, "hello"));
  CHECK(t, a0_engine_cancel(e, y) == 1);         /* libcurl has it: handed back later */
  CHECK(t, a0_engine_cancel(e, y) == 1);         /* twice: still held, counted once */
  CHECK(t, a0_engine_running(e) == 0);
  t0 = now_ms();
  got = NULL;
  int still_held = 1;
  while (got == NULL && now_ms() - t0 < 3000) {
    a0_engine_run(e, 1);
    still_held = still_held && a0_engine_cancel(e, y) == 1;   /* released or not: until popped */
    got = a0_engine_pop_released(e);
  }
  CHECK(t, still_held);
  CHECK(t, got == y && a0_engine_pop_released(e) == NULL && a0_engine_pop_done(e) == NULL);
  CHECK(t, a0_engine_cancel(e, y) == 0);         /* popped: ours, DONE, a no-op cancel */
  CHECK(t, a0_engine_running(e) == 0);

  /* cancelled while still in the inbox: never reaches libcurl, comes back released */
  int seen_before = __atomic_load_n(&s->accepted, __ATOMIC_SEQ_CST);
  a0_xfer_reset(y);
  set_url(y, s->port, "/ok");
  a0_test_pause(e, 1);
  CHECK(t, a0_xfer_start(e, y) == 0);
  CHECK(t, a0_engine_cancel(e, y) == 1);
  CHECK(t, a0_engine_running(e) == 0);
  a0_test_pause(e, 0);
  t0 = now_ms();
  got = NULL;
  while (got == NULL && now_ms() - t0 < 3000) { a0_engine_run(e, 20); got = a0_engine_pop_released(e); }
  CHECK(t, got == y && a0_engine_pop_done(e) == NULL);
  a0_engine_run(e, 100);
  CHECK(t, __atomic_load_n(&s->accepted, __ATOMIC_SEQ_CST) == seen_before);
  a0_xfer_free(y);
  a0_xfer_reset(x);

  /* a burst, every third cancelled at once, every fifth after a while */
  a0_test_lock(e);                               /* none can finish before all are started */
  for (int i = 0; i < N; i++) {
    xs[i] = a0_xfer_new();
    set_url(xs[i], s->port, i % 2 ? "/ok" : "/echo");
    if (i % 2 == 0) { xs[i]->method = "POST"; a0_buf_adds(&xs[i]->body, "code=424242"); }
    CHECK(t, a0_xfer_start(e, xs[i]) == 0);
  }
  CHECK(t, a0_engine_running(e) == N);
  a0_test_unlock(e);
  for (int i = 0; i < N; i += 3)
    if (a0_engine_cancel(e, xs[i]) == 0) seen[i]++;
  a0_engine_run(e, 5);
  for (int i = 0; i < N; i += 5)
    if (i % 3 != 0 && a0_engine_cancel(e, xs[i]) == 0) seen[i]++;
  t0 = now_ms();
  int back = 0;
  for (int i = 0; i < N; i++) back += seen[i];
  while (back < N && now_ms() - t0 < 10000) {
    a0_xfer *d;
    a0_engine_run(e, 20);
    while ((d = a0_engine_pop_done(e)) != NULL || (d = a0_engine_pop_released(e)) != NULL) {
      for (int i = 0; i < N; i++) if (xs[i] == d) { seen[i]++; back++; }
    }
  }
  int once = 1, ok = 1;
  for (int i = 0; i < N; i++) {
    once = once && seen[i] == 1;
    if (i % 3 != 0 && i % 5 != 0) ok = ok && xs[i]->err == A0_OK && xs[i]->status / 100 == 2;
  }
  CHECK(t, once);
  CHECK(t, ok);
  CHECK(t, a0_engine_running(e) == 0);
  for (int i = 0; i < N; i++) a0_xfer_free(xs[i]);

  /* cancelled while held, then the engine is freed: the engine frees it (ASan: no leak) */
  set_url(x, s->port, "/hang");
  CHECK(t, a0_xfer_start(e, x) == 0);
  a0_engine_run(e, 50);
  if (a0_engine_cancel(e, x) == 0) a0_xfer_free(x);
}

/* The I/O thread releases the lock while it adds a batch of transfers to libcurl: a
 * cancel in that window must neither lose the rest of the batch nor leak what it cancels,
 * also when the engine is freed right after. Each round cancels at another moment. */
static void test_races(tally *t, server *s) {
  enum { N = 300, ROUNDS = 6 };
  int once = 1, ok = 1, idle = 1;
  for (int r = 0; r < ROUNDS; r++) {
    a0_engine_opts o = { 5000, 2000, NULL, 0, 1000, 1 };
    char err[128] = "";
    a0_engine *e = a0_engine_new(&o, err, sizeof err);
    a0_xfer *xs[N];
    int seen[N] = { 0 }, back = 0, k = N / 2;
    double t0;
    if (e == NULL) { CHECK(t, !"engine"); return; }
    for (int i = 0; i < N; i++) { xs[i] = a0_xfer_new(); set_url(xs[i], s->port, "/ok"); }
    a0_test_lock(e);                               /* the whole batch goes over in one go */
    for (int i = 0; i < N; i++) a0_xfer_start(e, xs[i]);
    a0_test_unlock(e);
    a0_engine_run(e, 0);
    t0 = now_ms();
    while (now_ms() - t0 < r * 0.4) {}
    if (a0_engine_cancel(e, xs[k]) == 0) { seen[k]++; back++; }
    t0 = now_ms();
    while (back < N && now_ms() - t0 < 15000) {
      a0_xfer *d;
      a0_engine_run(e, 20);
      while ((d = a0_engine_pop_done(e)) != NULL || (d = a0_engine_pop_released(e)) != NULL)
        for (int i = 0; i < N; i++) if (xs[i] == d) { seen[i]++; back++; }
    }
    for (int i = 0; i < N; i++) {
      once = once && seen[i] == 1;
      if (i != k) ok = ok && xs[i]->err == A0_OK && xs[i]->status == 200;
    }
    idle = idle && a0_engine_running(e) == 0;
    a0_engine_free(e);
    for (int i = 0; i < N; i++) a0_xfer_free(xs[i]);
  }
  CHECK(t, once);
  CHECK(t, ok);
  CHECK(t, idle);

  /* a transfer libcurl holds, cancelled during a batch's hand-over, then the engine freed
   * at once: the engine frees it (LeakSanitizer fails the test otherwise) */
  for (int r = 0; r < ROUNDS; r++) {
    a0_engine_opts o = { 5000, 2000, NULL, 0, 1000, 1 };
    char err[128] = "";
    a0_engine *e = a0_engine_new(&o, err, sizeof err);
    a0_xfer *h = a0_xfer_new(), *xs[N];
    double t0;
    if (e == NULL) { CHECK(t, !"engine"); return; }
    set_url(h, s->port, "/hang");
    CHECK(t, a0_xfer_start(e, h) == 0);
    a0_engine_run(e, 100);
    for (int i = 0; i < N; i++) { xs[i] = a0_xfer_new(); set_url(xs[i], s->port, "/ok"); }
    a0_test_lock(e);
    for (int i = 0; i < N; i++) a0_xfer_start(e, xs[i]);
    a0_test_unlock(e);
    a0_engine_run(e, 0);
    t0 = now_ms();
    while (now_ms() - t0 < r * 0.4) {}
    if (a0_engine_cancel(e, h) == 0) a0_xfer_free(h);
    a0_engine_free(e);
    for (int i = 0; i < N; i++) a0_xfer_free(xs[i]);   /* never cancelled: still ours */
  }
}

int main(void) {
  tally t = { 0, 0 };
  server s;
  char err[128] = "";
  signal(SIGPIPE, SIG_IGN);
  test_capture(&t);
  test_names(&t);
  for (int threaded = 0; threaded <= 1; threaded++) {
    a0_engine_opts o = { 5000, 2000, NULL, 0, 1000, threaded };
    a0_engine *e = a0_engine_new(&o, err, sizeof err);
    CHECK(&t, e != NULL);
    if (e != NULL && server_start(&s) == 0) {
      test_transfers(&t, e, &s, threaded);
      test_wake(&t, e, &s);
      if (threaded) test_threaded(&t, e, &s);
      if (threaded) test_races(&t, &s);
      a0_engine_free(e);
      server_stop(&s);
    } else {
      CHECK(&t, !"loopback server started");
      a0_engine_free(e);
    }
  }
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}
