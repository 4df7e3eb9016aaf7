#ifdef __linux__
#define _DEFAULT_SOURCE   /* syscall(SYS_gettid) for the I/O thread's priority */
#endif
#include "a0_http.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define A0_IO_NICE 10

struct a0_engine {
  CURLM *multi;
  a0_engine_opts o;
  char *ca_file;
  a0_xfer *done_head, *done_tail;
  int running;              /* started and neither finished nor cancelled (atomic) */
  long connects;            /* (atomic) */
  /* threaded mode: everything below and above is guarded by mu, except multi, which
   * only the I/O thread touches (curl_multi_wakeup aside) */
  int threaded, stop, woken, has_thread;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;        /* a transfer finished, or a0_engine_wakeup */
  a0_xfer *inbox;           /* started transfers, newest first: a lock-free stack (atomic) */
  a0_xfer *cancels, *released;
  /* threaded, the owner's thread only (no lock): finished and released transfers it has
   * taken over, so that popping them one by one never touches the lock */
  a0_xfer *ready_head, *ready_tail, *reaped;
#ifdef A0_TEST_HOOKS
  int test_paused;          /* io_exchange leaves the inbox and the cancels alone */
#endif
};

enum { NOT_QUEUED, IN_DONE, IN_READY };   /* a0_xfer.in_done */

/* Counters both threads change: atomics, so that reading them never waits for the lock. */
static void count(int *v, int d) { __atomic_fetch_add(v, d, __ATOMIC_RELAXED); }
static int counted(int *v) { return __atomic_load_n(v, __ATOMIC_RELAXED); }

/* Threaded engines lock; the others have nothing to guard. */
static void lock(a0_engine *e) { if (e->threaded) pthread_mutex_lock(&e->mu); }
static void unlock(a0_engine *e) { if (e->threaded) pthread_mutex_unlock(&e->mu); }
static void *io_main(void *arg);

#define A0_NAME(id, name) name,
static const char *const err_names[] = { A0_ERRORS(A0_NAME) };
#undef A0_NAME
const char *a0_err_name(int err) {
  return (err >= 0 && err < A0_NERR) ? err_names[err] : "unknown";
}

#define A0_WIRE(id, wire, field) wire,
static const char *const hdr_wire[] = { A0_HEADERS(A0_WIRE) };
#undef A0_WIRE
#define A0_FIELD(id, wire, field) field,
static const char *const hdr_field[] = { A0_HEADERS(A0_FIELD) };
#undef A0_FIELD
const char *a0_header_field(int h) { return hdr_field[h]; }

static void global_init(void) {
  /* once per process; curl_global_init is reference counted and thread safe in 7.84+ */
  static int done = 0;
  if (!done) { curl_global_init(CURL_GLOBAL_DEFAULT); done = 1; }
}

a0_engine *a0_engine_new(const a0_engine_opts *o, char *err, size_t errlen) {
  a0_engine *e;
  global_init();
  e = calloc(1, sizeof *e);
  if (e == NULL) { snprintf(err, errlen, "out of memory"); return NULL; }
  e->o = *o;
  if (o->ca_file != NULL) {
    e->ca_file = strdup(o->ca_file);
    if (e->ca_file == NULL) { free(e); snprintf(err, errlen, "out of memory"); return NULL; }
  }
  e->o.ca_file = e->ca_file;
  e->multi = curl_multi_init();
  if (e->multi == NULL) {
    free(e->ca_file); free(e);
    snprintf(err, errlen, "curl_multi_init failed");
    return NULL;
  }
  curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
  if (o->threaded) {
    pthread_condattr_t ca;
    sigset_t all, old;
    int rc;
    e->threaded = 1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* poll(ms) waits survive clock jumps */
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* the host's signal handlers (lua.c's SIGINT hook) must run on the host's thread */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&e->thread, NULL, io_main, e);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
      snprintf(err, errlen, "could not start the I/O thread: %s", strerror(rc));
      a0_engine_free(e);
      return NULL;
    }
    e->has_thread = 1;
  }
  return e;
}

void a0_engine_free(a0_engine *e) {
  if (e == NULL) return;
  if (e->has_thread) {
    lock(e);
    e->stop = 1;
    unlock(e);
    curl_multi_wakeup(e->multi);
    pthread_join(e->thread, NULL);
  }
  /* cancelled while the thread's last exchange had the lock released: ours to finish. The
   * inbox may still point at some of them (cancelled before any exchange took them): it is
   * not walked here. Transfers started and never cancelled are the caller's. */
  while (e->cancels != NULL) {
    a0_xfer *x = e->cancels;
    e->cancels = x->next_c;
    if (x->attached) curl_multi_remove_handle(e->multi, x->easy);
    a0_xfer_free(x);
  }
  curl_multi_cleanup(e->multi);
  while (e->released != NULL) {
    a0_xfer *x = e->released;
    e->released = x->next_done;
    a0_xfer_free(x);
  }
  while (e->reaped != NULL) a0_xfer_free(a0_engine_pop_released(e));
  if (e->threaded) {
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
  }
  free(e->ca_file);
  free(e);
}

a0_xfer *a0_xfer_new(void) { return calloc(1, sizeof(a0_xfer)); }

void a0_xfer_reset(a0_xfer *x) {
  a0_buf_reset(&x->url);
  a0_buf_reset(&x->body);
  a0_buf_reset(&x->resp);
  {
    /* per-request header lines can carry a bearer token */
    struct curl_slist *rest = x->keep ? x->keep->next : x->headers;
    for (struct curl_slist *h = rest; h != NULL; h = h->next) a0_wipe(h->data, strlen(h->data));
    curl_slist_free_all(rest);
    if (x->keep) x->keep->next = NULL; else x->headers = NULL;
  }
  if (x->hdr != NULL) memset(x->hdr, 0, (size_t)A0_NHDR * A0_HDR_MAX);
  x->errmsg[0] = '\0';
  x->state = A0_X_IDLE;
  x->err = A0_OK;
  x->status = 0;
  x->timeout_ms = 0;
  x->method = NULL;
  x->next_done = x->next_q = x->next_c = NULL;
  x->in_done = x->cancel_req = 0;
  x->ud = NULL;
}

void a0_xfer_free(a0_xfer *x) {
  if (x == NULL) return;
  a0_xfer_reset(x);
  curl_slist_free_all(x->headers);
  x->headers = x->keep = NULL;
  a0_buf_free(&x->url);
  a0_buf_free(&x->body);
  a0_buf_free(&x->resp);
  if (x->easy != NULL) curl_easy_cleanup(x->easy);
  free(x->hdr);
  free(x);
}

void a0_xfer_keep_headers(a0_xfer *x) {
  struct curl_slist *h = x->headers;
  while (h != NULL && h->next != NULL) h = h->next;
  x->keep = h;
}

int a0_xfer_add_header(a0_xfer *x, const char *line) {
  struct curl_slist *h = curl_slist_append(x->headers, line);
  if (h == NULL) return -1;
  x->headers = h;
  return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  a0_xfer *x = ud;
  size_t len = size * n;
  if (x->resp.len + len > x->eng->o.max_body) {
    x->err = A0_ETOOLARGE;
    return 0;   /* makes curl abort with CURLE_WRITE_ERROR */
  }
  if (a0_buf_add(&x->resp, p, len) != 0) { x->err = A0_ENOMEM; return 0; }
  return len;
}

const char *a0_xfer_header(const a0_xfer *x, int h) {
  return x->hdr != NULL && h >= 0 && h < A0_NHDR ? x->hdr[h] : "";
}

void a0_capture_header(a0_xfer *x, const char *p, size_t len) {
  /* 1.8 KB: allocated here, on the thread that runs libcurl, not with the transfer; so
   * starting one allocates nothing of 1 KB or more on the caller's thread (glibc
   * consolidates its fast bins, for a millisecond or more, on such a request) */
  if (x->hdr == NULL && (x->hdr = calloc(A0_NHDR, A0_HDR_MAX)) == NULL) return;
  /* a new status line (e.g. after 100 Continue) starts a fresh header set */
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { memset(x->hdr, 0, (size_t)A0_NHDR * A0_HDR_MAX); return; }
  for (int h = 0; h < A0_NHDR; h++) {
    size_t wl = strlen(hdr_wire[h]);
    if (len > wl && p[wl] == ':' && strncasecmp(p, hdr_wire[h], wl) == 0) {
      const char *v = p + wl + 1, *end = p + len;
      while (v < end && (*v == ' ' || *v == '\t')) v++;
      while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
      size_t vl = (size_t)(end - v);
      if (vl >= A0_HDR_MAX) vl = A0_HDR_MAX - 1;
      memcpy(x->hdr[h], v, vl);
      x->hdr[h][vl] = '\0';
      break;
    }
  }
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  a0_capture_header(ud, p, size * n);
  return size * n;
}

static void set_error(a0_xfer *x, CURLcode rc, const char *curl_msg) {
  if (x->err == A0_OK) {
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT: x->err = A0_ETIMEOUT; break;
      case CURLE_COULDNT_CONNECT: x->err = A0_ECONNECT; break;
      case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY: x->err = A0_ERESOLVE; break;
      case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER: case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH: case CURLE_SSL_INVALIDCERTSTATUS:
      case CURLE_SSL_ENGINE_INITFAILED: case CURLE_USE_SSL_FAILED:
        x->err = A0_ETLS; break;
      case CURLE_WEIRD_SERVER_REPLY: case CURLE_PARTIAL_FILE: case CURLE_GOT_NOTHING:
      case CURLE_BAD_CONTENT_ENCODING: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
      case CURLE_RECV_ERROR: case CURLE_UNSUPPORTED_PROTOCOL:
        x->err = A0_EBADRESP; break;
      case CURLE_OUT_OF_MEMORY: x->err = A0_ENOMEM; break;
      default: x->err = A0_ENETWORK;
    }
  }
  if (x->err == A0_ETOOLARGE)
    snprintf(x->errmsg, sizeof x->errmsg, "response larger than %zu bytes", x->eng->o.max_body);
  else if (curl_msg[0] == '\0')   /* curl_msg is x->errmsg, curl's error buffer */
    snprintf(x->errmsg, sizeof x->errmsg, "%s", curl_easy_strerror(rc));
}

/* Options that never change for a handle are set once, when it is created: a pooled
 * transfer then costs only the per-request options (URL, headers, method, body). */
static CURL *new_easy(a0_engine *e, a0_xfer *x) {
  const a0_engine_opts *o = &e->o;
  CURL *c = curl_easy_init();
  if (c == NULL) return NULL;
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
  /* auth bodies are small: libcurl's 64 KiB default upload buffer per handle would cost
   * 64 MB with 1,000 requests in flight */
  curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 16384L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
  if (o->ca_file != NULL) curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(c, CURLOPT_PRIVATE, x);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errmsg);
  return c;
}

/* The handle and its per-request options. Threaded engines run it on the I/O thread, so
 * that the caller's thread never runs libcurl code (creating a handle can cost 0.5 ms). */
static int prepare(a0_engine *e, a0_xfer *x) {
  CURL *c = x->easy;
  if (c == NULL && (c = x->easy = new_easy(e, x)) == NULL) return -1;
  curl_easy_setopt(c, CURLOPT_URL, x->url.data);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, x->timeout_ms > 0 ? x->timeout_ms : e->o.timeout_ms);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->headers);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, (char *)NULL);
  if (x->method == NULL || strcmp(x->method, "GET") == 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(x->method, "POST") == 0) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body.data ? x->body.data : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)x->body.len);
  } else {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, x->method);
    if (x->body.len > 0) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body.data);
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)x->body.len);
    }
  }
  return 0;
}

int a0_xfer_start(a0_engine *e, a0_xfer *x) {
  /* a handle is bound to the engine whose options it carries */
  if (x->easy != NULL && x->eng != e) { curl_easy_cleanup(x->easy); x->easy = NULL; }
  if (a0_buf_cstr(&x->url) != 0) return -1;
  x->eng = e;
  x->err = A0_OK;
  x->status = 0;
  x->errmsg[0] = '\0';
  a0_buf_reset(&x->resp);
  if (x->hdr != NULL) memset(x->hdr, 0, (size_t)A0_NHDR * A0_HDR_MAX);
  if (e->threaded) {   /* the I/O thread prepares it and adds it to the multi handle */
    a0_xfer *top;
    x->state = A0_X_RUNNING;
    count(&e->running, 1);
    /* no lock: the (low priority) I/O thread may hold it while the OS runs something else,
     * and a start must not wait for that */
    top = __atomic_load_n(&e->inbox, __ATOMIC_RELAXED);
    do x->next_q = top;
    while (!__atomic_compare_exchange_n(&e->inbox, &top, x, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
    curl_multi_wakeup(e->multi);
    return 0;
  }
  if (prepare(e, x) != 0) return -1;
  if (curl_multi_add_handle(e->multi, x->easy) != CURLM_OK) return -1;
  x->state = A0_X_RUNNING;
  count(&e->running, 1);
  return 0;
}

static void push_done(a0_engine *e, a0_xfer *x) {
  x->next_done = NULL;
  x->in_done = IN_DONE;
  if (e->done_tail) e->done_tail->next_done = x; else e->done_head = x;
  e->done_tail = x;
}

/* Reads the outcome of a transfer libcurl has finished and detaches it. Touches only x
 * and the multi handle: in threaded mode it runs on the I/O thread, unlocked. */
static long finish(a0_engine *e, a0_xfer *x, CURLcode rc) {
  long n = 0;
  CURL *c = x->easy;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &x->status);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &n);
  if (rc != CURLE_OK) set_error(x, rc, x->errmsg);
  else if (x->status < 100) { x->err = A0_EBADRESP; snprintf(x->errmsg, sizeof x->errmsg, "no HTTP status"); }
  curl_multi_remove_handle(e->multi, c);
  x->attached = 0;
  /* the request body may hold a code or a secret: gone as soon as it was sent */
  a0_buf_reset(&x->body);
  return n;
}

static void collect(a0_engine *e) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    a0_xfer *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    long n = finish(e, x, m->data.result);
    lock(e);
    __atomic_fetch_add(&e->connects, n, __ATOMIC_RELAXED);
    if (!x->cancel_req) {   /* a cancelled one is released from the cancel queue */
      count(&e->running, -1);
      x->state = A0_X_DONE;
      push_done(e, x);
      if (e->threaded) pthread_cond_broadcast(&e->cv);
    }
    unlock(e);
  }
}

/* ---- I/O thread ------------------------------------------------------------------ */

/* Hands new transfers to libcurl and takes cancelled ones back. Called and returns with
 * mu held, but releases it around libcurl calls: adding a burst of transfers takes
 * milliseconds, and the caller's thread must never wait that long for the lock. */
static void io_exchange(a0_engine *e) {
  a0_xfer *adds = NULL, *cancels = e->cancels, *x, *next;
#ifdef A0_TEST_HOOKS
  if (e->test_paused) return;
#endif
  /* the inbox, oldest first; what was cancelled before this point is only released (it is
   * on cancels too), what is cancelled after it goes through cancels at the next exchange */
  for (x = __atomic_exchange_n(&e->inbox, NULL, __ATOMIC_ACQUIRE); x != NULL; x = next) {
    next = x->next_q;
    if (x->cancel_req) { x->next_q = NULL; continue; }
    x->next_q = adds;
    adds = x;
  }
  if (adds == NULL && cancels == NULL) return;
  e->cancels = NULL;
  pthread_mutex_unlock(&e->mu);
  for (x = adds; x != NULL; x = next) {
    next = x->next_q;
    x->next_q = NULL;
    if (prepare(e, x) == 0 && curl_multi_add_handle(e->multi, x->easy) == CURLM_OK) {
      x->attached = 1;
      continue;
    }
    snprintf(x->errmsg, sizeof x->errmsg, "could not start the transfer");
    a0_buf_reset(&x->body);
    pthread_mutex_lock(&e->mu);
    x->err = A0_ENETWORK;
    if (!x->cancel_req) {
      count(&e->running, -1);
      x->state = A0_X_DONE;
      push_done(e, x);
      pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
  }
  for (x = cancels; x != NULL; x = x->next_c) {
    if (x->attached) curl_multi_remove_handle(e->multi, x->easy);
    x->attached = 0;
    a0_buf_reset(&x->body);
  }
  pthread_mutex_lock(&e->mu);
  for (x = cancels; x != NULL; x = next) {
    next = x->next_c;
    x->next_c = NULL;
    x->cancel_req = 2;        /* released: a repeated cancel still says "held" until popped */
    x->state = A0_X_DONE;
    x->next_done = e->released;
    e->released = x;
  }
}

static void *io_main(void *arg) {
  a0_engine *e = arg;
#ifdef __linux__
  /* below the host's threads (a game's main and render threads): network I/O needs little
   * CPU, and when cores are short a frame must not wait for a TLS handshake */
  (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), A0_IO_NICE);
#endif
  pthread_mutex_lock(&e->mu);
  for (;;) {
    int still = 0;
    CURLMcode rc;
    io_exchange(e);
    if (e->stop) break;
    pthread_mutex_unlock(&e->mu);
    rc = curl_multi_perform(e->multi, &still);
    collect(e);
    /* libcurl's own timers shorten the wait; a0_xfer_start, cancel and free wake it */
    if (rc != CURLM_OK || curl_multi_poll(e->multi, NULL, 0, 1000, NULL) != CURLM_OK) {
      struct timespec pause = { 0, 1000000 };   /* a failing multi handle must not spin */
      nanosleep(&pause, NULL);
    }
    pthread_mutex_lock(&e->mu);
  }
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

/* Threaded: waits until a transfer is done, wakeup is called, or timeout_ms pass. */
static void wait_done(a0_engine *e, int timeout_ms, int idle) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
  while (e->done_head == NULL && !e->woken && (idle || counted(&e->running) > 0))
    if (pthread_cond_timedwait(&e->cv, &e->mu, &until) == ETIMEDOUT) break;
  e->woken = 0;
}

/* Threaded, mu held: the owner takes over every finished and released transfer. */
static void take_over(a0_engine *e) {
  for (a0_xfer *x = e->done_head; x != NULL; x = x->next_done) x->in_done = IN_READY;
  if (e->done_head != NULL) {
    if (e->ready_tail) e->ready_tail->next_done = e->done_head; else e->ready_head = e->done_head;
    e->ready_tail = e->done_tail;
    e->done_head = e->done_tail = NULL;
  }
  while (e->released != NULL) {
    a0_xfer *x = e->released;
    e->released = x->next_done;
    x->next_done = e->reaped;
    e->reaped = x;
  }
}

int a0_engine_run(a0_engine *e, int timeout_ms) {
  int still = 0;
  if (e->threaded) {
    /* poll(0) never waits for the lock: if the I/O thread has it, the next poll goes on */
    if (timeout_ms > 0) {
      pthread_mutex_lock(&e->mu);
      wait_done(e, timeout_ms, 0);
    } else if (pthread_mutex_trylock(&e->mu) != 0) {
      return -2;
    }
    take_over(e);
    pthread_mutex_unlock(&e->mu);
    return counted(&e->running);
  }
  if (timeout_ms > 0 && curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL) != CURLM_OK) return -1;
  if (curl_multi_perform(e->multi, &still) != CURLM_OK) return -1;
  collect(e);
  return counted(&e->running);
}

/* Unlinks x from the list head/tail (linked by next_done). */
static void unlink_from(a0_xfer **head, a0_xfer **tail, a0_xfer *x) {
  a0_xfer **pp = head, *prev = NULL;
  while (*pp != NULL && *pp != x) { prev = *pp; pp = &(*pp)->next_done; }
  if (*pp == NULL) return;
  *pp = x->next_done;
  if (*tail == x) *tail = prev;
  x->next_done = NULL;
  x->in_done = NOT_QUEUED;
}

a0_xfer *a0_engine_pop_done(a0_engine *e) {
  a0_xfer *x;
  if (e->threaded) {   /* owner's list: no lock */
    x = e->ready_head;
    if (x != NULL) unlink_from(&e->ready_head, &e->ready_tail, x);
    return x;
  }
  x = e->done_head;
  if (x != NULL) unlink_from(&e->done_head, &e->done_tail, x);
  return x;
}

void a0_engine_unpop(a0_engine *e, a0_xfer *x) {
  a0_xfer **head = e->threaded ? &e->ready_head : &e->done_head;
  a0_xfer **tail = e->threaded ? &e->ready_tail : &e->done_tail;
  x->next_done = *head;
  *head = x;
  if (*tail == NULL) *tail = x;
  x->in_done = e->threaded ? IN_READY : IN_DONE;
}

a0_xfer *a0_engine_pop_released(a0_engine *e) {
  a0_xfer *x;
  if (e->threaded && e->reaped == NULL && pthread_mutex_trylock(&e->mu) == 0) {
    take_over(e);
    pthread_mutex_unlock(&e->mu);
  }
  x = e->reaped;
  if (x != NULL) {
    e->reaped = x->next_done;
    x->next_done = NULL;
    x->cancel_req = 0;        /* the caller's again; no other thread sees it now */
  }
  return x;
}

/* With mu held when threaded. */
static void unlink_done(a0_engine *e, a0_xfer *x) {
  if (x->in_done == IN_DONE) unlink_from(&e->done_head, &e->done_tail, x);
  else if (x->in_done == IN_READY) unlink_from(&e->ready_head, &e->ready_tail, x);
}

void a0_engine_wait(a0_engine *e, a0_xfer *x) {
  if (e->threaded) {   /* libcurl's timeouts bound the wait: the I/O thread finishes x */
    lock(e);
    while (x->state == A0_X_RUNNING) pthread_cond_wait(&e->cv, &e->mu);
    if (x->in_done) unlink_done(e, x);
    unlock(e);
    return;
  }
  while (x->state == A0_X_RUNNING) {
    if (a0_engine_run(e, 0) < 0) break;
    if (x->state != A0_X_RUNNING) break;
    if (curl_multi_poll(e->multi, NULL, 0, 1000, NULL) != CURLM_OK) break;
  }
  if (x->state == A0_X_RUNNING) {   /* multi failure: do not leave it half attached */
    a0_engine_cancel(e, x);
    x->err = A0_ENETWORK;
    snprintf(x->errmsg, sizeof x->errmsg, "curl multi interface failed");
  }
  if (x->in_done) unlink_done(e, x);
}

int a0_engine_cancel(a0_engine *e, a0_xfer *x) {
  int held = 0;
  lock(e);
  if (x->cancel_req) { unlock(e); return 1; }   /* cancelled already, still held */
  if (x->state == A0_X_RUNNING) {
    count(&e->running, -1);
    if (!e->threaded) {
      curl_multi_remove_handle(e->multi, x->easy);
      a0_buf_reset(&x->body);
    } else {   /* in the inbox, or the I/O thread may be writing into it right now */
      x->cancel_req = 1;
      x->next_c = e->cancels;
      e->cancels = x;
      held = 1;
    }
  }
  if (x->in_done) unlink_done(e, x);
  if (!held) {
    x->state = A0_X_DONE;
    x->err = A0_ECANCELLED;
    snprintf(x->errmsg, sizeof x->errmsg, "request cancelled");
  }
  unlock(e);
  if (held) curl_multi_wakeup(e->multi);
  return held;
}

void a0_engine_idle(a0_engine *e, int timeout_ms) {
  if (timeout_ms <= 0) return;
  if (e->threaded) {
    lock(e);
    wait_done(e, timeout_ms, 1);
    pthread_mutex_unlock(&e->mu);
    return;
  }
  (void)curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);   /* waits even with no transfer */
}

void a0_engine_wakeup(a0_engine *e) {
  if (e->threaded) {
    lock(e);
    e->woken = 1;
    pthread_cond_broadcast(&e->cv);
    unlock(e);
    return;
  }
  curl_multi_wakeup(e->multi);
}

long a0_engine_connects(a0_engine *e) { return __atomic_load_n(&e->connects, __ATOMIC_RELAXED); }
int a0_engine_running(a0_engine *e) { return counted(&e->running); }

#ifdef A0_TEST_HOOKS   /* csrc/test only: hold the lock as the I/O thread would */
void a0_test_lock(a0_engine *e) { pthread_mutex_lock(&e->mu); }
void a0_test_unlock(a0_engine *e) { pthread_mutex_unlock(&e->mu); }
void a0_test_pause(a0_engine *e, int on) {
  pthread_mutex_lock(&e->mu);
  e->test_paused = on;
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
}
#endif
