/* The HTTP engine: one libcurl multi handle, the transfer lifecycle, and (threaded mode)
 * the I/O thread. a0_easy.c holds the libcurl side of a single transfer. Pure C.
 *
 * Transfer lifecycle. Every transfer is in exactly one state (enum xfer_state), and every
 * change of state goes through move(), which checks it against `legal` below, refuses
 * (and counts) any other, and moves the transfer between the lists that hold each state.
 * "owner" is the thread that uses the engine API (the Lua state); "I/O" is the engine's
 * thread in threaded mode (in caller-driven mode the owner does its part). [mu] marks
 * moves made with the engine's mutex held (threaded mode).
 *
 *   state       held by  list           what it means
 *   IDLE        owner    -              new or reset: no outcome
 *   INBOX       engine   inbox (next_q) started, threaded: waits for the I/O thread
 *   ADDING      engine   I/O's batch    the I/O thread hands it to libcurl, unlocked
 *   RUNNING     engine   multi handle   libcurl has it
 *   QUEUED      engine   done           finished, not yet handed over [mu]
 *   READY       owner    ready          threaded: finished, taken over, not yet popped
 *   CANCELLING  engine   cancels        cancelled while the I/O thread held it [mu]
 *   RELEASED    engine   released       the I/O thread let go of it [mu]
 *   REAPED      owner    reaped         threaded: released, taken over, not yet popped
 *   DONE        owner    -              outcome readable (popped, waited or cancelled)
 *
 *   from        to          by                                   thread
 *   IDLE, DONE  INBOX       a0_xfer_start (threaded; lock-free)   owner
 *   IDLE, DONE  RUNNING     a0_xfer_start (caller-driven)         owner
 *   INBOX       ADDING      io_exchange takes the inbox [mu]      I/O
 *   ADDING      RUNNING     io_exchange, added to libcurl [mu]    I/O
 *   ADDING      QUEUED      io_exchange, could not add it [mu]    I/O
 *   RUNNING     QUEUED      collect: libcurl finished it [mu]     I/O (owner caller-driven)
 *   INBOX, ADDING, RUNNING
 *               CANCELLING  a0_engine_cancel (threaded) [mu]      owner
 *   RUNNING     DONE        a0_engine_cancel (caller-driven)      owner
 *   CANCELLING  RELEASED    io_exchange, out of libcurl [mu]      I/O
 *   QUEUED      READY       take_over (a0_engine_run) [mu]        owner
 *   RELEASED    REAPED      take_over [mu]                        owner
 *   QUEUED, READY
 *               DONE        pop_done, wait, cancel                owner
 *   REAPED      DONE        a0_engine_pop_released                owner
 *   DONE        QUEUED/READY a0_engine_unpop (back at the head)    owner
 *   IDLE, DONE  IDLE        a0_xfer_reset                         owner
 *   IDLE, DONE  DONE        a0_engine_cancel of one not running   owner
 *
 * The owner touches a transfer's fields only in IDLE, READY, REAPED and DONE; the I/O
 * thread only in ADDING and RUNNING (and CANCELLING, to take it out of libcurl). A cancel
 * that finds the transfer with the engine answers "held" (1): the owner gets it back from
 * a0_engine_pop_released, in state DONE. */
#ifdef __linux__
#define _DEFAULT_SOURCE   /* syscall(SYS_gettid) for the I/O thread's priority */
#endif
#include "a0_xfer.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define A0_IO_NICE 10
/* the I/O thread's longest wait while more than one transfer runs (see io_main) */
#define A0_MUX_POLL_MS 10
#define BIT(s) (1u << (s))
#define OWNERS (BIT(X_IDLE) | BIT(X_DONE))

static const unsigned legal[X_NSTATES] = {
  [X_IDLE] = BIT(X_INBOX) | BIT(X_RUNNING) | BIT(X_IDLE) | BIT(X_DONE),
  [X_INBOX] = BIT(X_ADDING) | BIT(X_CANCELLING),
  [X_ADDING] = BIT(X_RUNNING) | BIT(X_QUEUED) | BIT(X_CANCELLING),
  [X_RUNNING] = BIT(X_QUEUED) | BIT(X_CANCELLING) | BIT(X_DONE),
  [X_QUEUED] = BIT(X_READY) | BIT(X_DONE),
  [X_READY] = BIT(X_DONE),
  [X_CANCELLING] = BIT(X_RELEASED),
  [X_RELEASED] = BIT(X_REAPED),
  [X_REAPED] = BIT(X_DONE),
  [X_DONE] = BIT(X_INBOX) | BIT(X_RUNNING) | BIT(X_QUEUED) | BIT(X_READY) | BIT(X_IDLE) | BIT(X_DONE),
};
/* states only an engine with an I/O thread has */
static const unsigned threaded_only = BIT(X_INBOX) | BIT(X_ADDING) | BIT(X_READY) |
  BIT(X_CANCELLING) | BIT(X_RELEASED) | BIT(X_REAPED);
static const char *const state_names[X_NSTATES] = { "idle", "inbox", "adding", "running",
  "queued", "ready", "cancelling", "released", "reaped", "done" };

/* Counters both threads change: atomics, so that reading them never waits for the lock. */
static void count(int *v, int d) { __atomic_fetch_add(v, d, __ATOMIC_RELAXED); }
static int counted(int *v) { return __atomic_load_n(v, __ATOMIC_RELAXED); }

/* Threaded engines lock; the others have nothing to guard. */
static void lock(a0_engine *e) { if (e->threaded) pthread_mutex_lock(&e->mu); }
static void unlock(a0_engine *e) { if (e->threaded) pthread_mutex_unlock(&e->mu); }
static void *io_main(void *arg);

/* Whether a transfer in state s counts as running: started, and neither handed back to
 * the owner nor cancelled (so that running == 0 means everything finished is poppable). */
static int counts(const a0_engine *e, enum xfer_state s) {
  return s == X_INBOX || s == X_ADDING || s == X_RUNNING || (s == X_QUEUED && e != NULL && e->threaded);
}

/* Unlinks x from a list linked by next (tail may be NULL). */
static void unlink_from(xfer **head, xfer **tail, xfer *x) {
  xfer **pp = head, *prev = NULL;
  while (*pp != NULL && *pp != x) { prev = *pp; pp = &(*pp)->next; }
  if (*pp == NULL) return;
  *pp = x->next;
  if (tail != NULL && *tail == x) *tail = prev;
  x->next = NULL;
}

static void append(xfer **head, xfer **tail, xfer *x, int front) {
  if (front) {
    x->next = *head;
    *head = x;
    if (*tail == NULL) *tail = x;
    return;
  }
  x->next = NULL;
  if (*tail) (*tail)->next = x; else *head = x;
  *tail = x;
}

/* The one place a transfer changes state (see the table above): refuses an illegal move
 * with -1 and leaves x as it was; else takes x off its old state's list and onto the new
 * one's. The inbox, the cancels and the I/O thread's batch are drained whole by their
 * readers, so leaving them unlinks nothing. */
static int move(a0_engine *e, xfer *x, enum xfer_state to) {
  enum xfer_state from = __atomic_load_n(&x->st, __ATOMIC_RELAXED);   /* misuse may race */
  if (!(legal[from] & BIT(to)) || (e != NULL && !e->threaded && (threaded_only & BIT(to)))) {
    if (e != NULL) count(&e->illegal, 1);
    return -1;
  }
  if (e != NULL && counts(e, from) != counts(e, to)) count(&e->running, counts(e, to) ? 1 : -1);
  switch (from) {
    case X_QUEUED: unlink_from(&e->done_head, &e->done_tail, x); break;
    case X_READY: unlink_from(&e->ready_head, &e->ready_tail, x); break;
    case X_RELEASED: unlink_from(&e->released, NULL, x); break;
    case X_REAPED: unlink_from(&e->reaped, NULL, x); break;
    default: break;
  }
  __atomic_store_n(&x->st, to, __ATOMIC_RELAXED);   /* a0_xfer_state may read it anywhere */
  switch (to) {
    case X_INBOX: {   /* no lock: the (low priority) I/O thread may hold it */
      xfer *top = __atomic_load_n(&e->inbox, __ATOMIC_RELAXED);
      do x->next_q = top;
      while (!__atomic_compare_exchange_n(&e->inbox, &top, x, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
      break;
    }
    /* an unpop (from DONE) goes back to the head */
    case X_QUEUED: append(&e->done_head, &e->done_tail, x, from == X_DONE); break;
    case X_READY: append(&e->ready_head, &e->ready_tail, x, from == X_DONE); break;
    case X_CANCELLING: x->next = e->cancels; e->cancels = x; break;
    case X_RELEASED: x->next = e->released; e->released = x; break;
    case X_REAPED: x->next = e->reaped; e->reaped = x; break;
    default: break;
  }
  return 0;
}

const char *a0_xfer_state(const a0_xfer *x) {
  return state_names[__atomic_load_n(&((const xfer *)x)->st, __ATOMIC_RELAXED)];
}

static void cancelled(xfer *x) {
  x->pub.err = A0_ECANCELLED;
  snprintf(x->pub.errmsg, sizeof x->pub.errmsg, "request cancelled");
}

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
  /* CANCELLING, RELEASED, REAPED: the engine's to free. The inbox may still point at some
   * cancelled ones (never exchanged): it is not walked. The rest are the caller's. */
  while (e->cancels != NULL) {
    xfer *x = e->cancels;
    e->cancels = x->next;
    if (x->easy != NULL) curl_multi_remove_handle(e->multi, x->easy);   /* no-op if not added */
    a0_xfer_free(&x->pub);
  }
  curl_multi_cleanup(e->multi);
  while (e->released != NULL) {
    xfer *x = e->released;
    e->released = x->next;
    a0_xfer_free(&x->pub);
  }
  while (e->reaped != NULL) {
    xfer *x = e->reaped;
    e->reaped = x->next;
    a0_xfer_free(&x->pub);
  }
  if (e->threaded) {
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
  }
  free(e->ca_file);
  free(e);
}

int a0_xfer_reset(a0_xfer *px) {
  xfer *x = XF(px);
  if (move(x->eng, x, X_IDLE) != 0) return -1;
  a0__wipe_request(x);
  x->next = x->next_q = NULL;
  return 0;
}

int a0_xfer_start(a0_engine *e, a0_xfer *px) {
  xfer *x = XF(px);
  if (!(OWNERS & BIT(__atomic_load_n(&x->st, __ATOMIC_RELAXED)))) { count(&e->illegal, 1); return -1; }
  /* a handle is bound to the engine whose options it carries */
  if (x->easy != NULL && x->eng != e) { curl_easy_cleanup(x->easy); x->easy = NULL; }
  if (a0_buf_cstr(&x->pub.url) != 0) return -1;
  x->eng = e;
  a0__clear_results(x);
  if (e->threaded) {   /* the I/O thread prepares it and adds it to the multi handle */
    move(e, x, X_INBOX);
    curl_multi_wakeup(e->multi);
    return 0;
  }
  if (a0__prepare(e, x) != 0 || curl_multi_add_handle(e->multi, x->easy) != CURLM_OK) return -1;
  move(e, x, X_RUNNING);
  return 0;
}

/* Queues the transfers libcurl has finished. */
static void collect(a0_engine *e) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
    if (m->msg != CURLMSG_DONE) continue;
    xfer *x = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
    long n = a0__finish(e, x, m->data.result);
    lock(e);
    __atomic_fetch_add(&e->connects, n, __ATOMIC_RELAXED);
    if (x->st == X_RUNNING) {   /* a cancelled one is released from the cancels */
      move(e, x, X_QUEUED);
      if (e->threaded) pthread_cond_broadcast(&e->cv);
    }
    unlock(e);
  }
}

/* A multi call, or (tests) the failure they asked for. */
static CURLMcode perform(a0_engine *e, int *still) {
#ifdef A0_TEST_HOOKS
  int f = __atomic_exchange_n(&e->test_fail, 0, __ATOMIC_RELAXED);
  if (f != 0) return (CURLMcode)f;
#endif
  return curl_multi_perform(e->multi, still);
}

static int run_failed(a0_engine *e, const char *fn, int rc) {
  snprintf(e->errmsg, sizeof e->errmsg, "%s failed: %s", fn, curl_multi_strerror((CURLMcode)rc));
  return A0_RUN_FAILED;
}

const char *a0_engine_errmsg(const a0_engine *e) { return e->errmsg; }

/* ---- I/O thread ------------------------------------------------------------------ */

/* Hands new transfers to libcurl and takes cancelled ones back. Called and returns with
 * mu held, but releases it around libcurl calls: adding a burst of transfers takes
 * milliseconds, and the owner's thread must never wait that long for the lock. */
static void io_exchange(a0_engine *e) {
  xfer *adds = NULL, *cancels = e->cancels, *x, *next;
#ifdef A0_TEST_HOOKS
  if (e->test_paused) return;
#endif
  /* the inbox, oldest first; what was cancelled in it is on the cancels taken here */
  for (x = __atomic_exchange_n(&e->inbox, NULL, __ATOMIC_ACQUIRE); x != NULL; x = next) {
    next = x->next_q;
    x->next_q = NULL;
    if (x->st != X_INBOX) continue;
    move(e, x, X_ADDING);
    x->next_q = adds;
    adds = x;
  }
  if (adds == NULL && cancels == NULL) return;
  e->cancels = NULL;
  pthread_mutex_unlock(&e->mu);
  for (x = adds; x != NULL; x = x->next_q) {
    if (a0__prepare(e, x) == 0 && curl_multi_add_handle(e->multi, x->easy) == CURLM_OK) continue;
    snprintf(x->pub.errmsg, sizeof x->pub.errmsg, "could not start the transfer");
    a0_buf_reset(&x->pub.body);
    x->pub.err = A0_ENETWORK;
  }
  for (x = cancels; x != NULL; x = x->next)
    if (x->easy != NULL) {   /* a no-op for one never added (cancelled in the inbox) */
      curl_multi_remove_handle(e->multi, x->easy);
      a0_buf_reset(&x->pub.body);
    }
  pthread_mutex_lock(&e->mu);
  for (x = adds; x != NULL; x = next) {
    next = x->next_q;
    x->next_q = NULL;
    if (x->st != X_ADDING) continue;   /* cancelled meanwhile: goes with the next cancels */
    if (x->pub.err == A0_OK) { move(e, x, X_RUNNING); continue; }
    move(e, x, X_QUEUED);
    pthread_cond_broadcast(&e->cv);
  }
  for (x = cancels; x != NULL; x = next) {
    next = x->next;
    move(e, x, X_RELEASED);
  }
}

/* Records a multi failure for the owner's next a0_engine_run (mu not held). */
static void io_failed(a0_engine *e, const char *fn, CURLMcode rc) {
  struct timespec pause = { 0, 1000000 };   /* a failing multi handle must not spin */
  pthread_mutex_lock(&e->mu);
  e->failed = (int)rc;
  e->failed_in = fn;
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
  nanosleep(&pause, NULL);
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
    rc = perform(e, &still);
    if (rc != CURLM_OK) io_failed(e, "curl_multi_perform", rc);
    collect(e);
    /* libcurl's own timers shorten the wait; a0_xfer_start, cancel and free wake it. With
     * several transfers on one HTTP/2 connection, libcurl (7.88) may read an answer while it
     * serves another stream and arm no timer for it, so the answer would sit unread until the
     * next socket event or timer, often the transfers' own timeouts: the wait stays short. */
    if (rc == CURLM_OK
        && (rc = curl_multi_poll(e->multi, NULL, 0, still > 1 ? A0_MUX_POLL_MS : 1000, NULL)) != CURLM_OK)
      io_failed(e, "curl_multi_poll", rc);
    pthread_mutex_lock(&e->mu);
  }
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

/* Threaded: waits until a transfer is done, wakeup is called, a multi failure is to be
 * reported, or timeout_ms pass. */
static void wait_done(a0_engine *e, int timeout_ms, int idle) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
  while (e->done_head == NULL && !e->woken && !e->failed && (idle || counted(&e->running) > 0))
    if (pthread_cond_timedwait(&e->cv, &e->mu, &until) == ETIMEDOUT) break;
  e->woken = 0;
}

/* Threaded, mu held: the owner takes over every finished and released transfer. */
static void take_over(a0_engine *e) {
  while (e->done_head != NULL) move(e, e->done_head, X_READY);
  while (e->released != NULL) move(e, e->released, X_REAPED);
}

static long ms_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long)(t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A wakeup that came before this wait (e.g. while a blocking call ran): true, and answered
 * now, libcurl's own record of it drained too (else it would end the next wait as well). */
static int woken_before(a0_engine *e) {
  if (!__atomic_exchange_n(&e->woken, 0, __ATOMIC_ACQ_REL)) return 0;
  (void)curl_multi_poll(e->multi, NULL, 0, 0, NULL);
  return 1;
}

/* Caller-driven poll(ms): waits until a socket event, a libcurl timer, a wakeup (also one
 * that came before this wait, e.g. while a blocking call ran) or timeout_ms. While several
 * transfers run, it waits in slices of A0_MUX_POLL_MS and drives libcurl after each quiet
 * slice: libcurl may hold an answer it read for another stream without arming a timer
 * (see io_main), and poll(1000) would otherwise sit on it for the whole second. The time
 * left is counted from the start (whole slices and libcurl's work in between included). */
static CURLMcode run_wait(a0_engine *e, int timeout_ms) {
  struct timespec start;
  long left = timeout_ms;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (left > 0 && !woken_before(e)) {
    struct timespec t0;
    long slice = counted(&e->running) > 1 && left > A0_MUX_POLL_MS ? A0_MUX_POLL_MS : left;
    int still = 0;
    CURLMcode rc;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((rc = curl_multi_poll(e->multi, NULL, 0, (int)slice, NULL)) != CURLM_OK) return rc;
    if (slice == left || ms_since(&t0) < slice) break;   /* the whole wait, or something happened */
    if ((rc = perform(e, &still)) != CURLM_OK) return rc;
    collect(e);
    if (e->done_head != NULL) break;
    left = timeout_ms - ms_since(&start);
  }
  __atomic_store_n(&e->woken, 0, __ATOMIC_RELEASE);   /* this wait answered it */
  return CURLM_OK;
}

int a0_engine_run(a0_engine *e, int timeout_ms) {
  int still = 0, rc;
  if (e->threaded) {
    const char *fn;
    /* poll(0) never waits for the lock: if the I/O thread has it, the next poll goes on */
    if (timeout_ms > 0) {
      pthread_mutex_lock(&e->mu);
      wait_done(e, timeout_ms, 0);
    } else if (pthread_mutex_trylock(&e->mu) != 0) {
      return A0_RUN_BUSY;
    }
    take_over(e);
    rc = e->failed;
    fn = e->failed_in;
    e->failed = 0;
    pthread_mutex_unlock(&e->mu);
    return rc != 0 ? run_failed(e, fn, rc) : counted(&e->running);
  }
  if (timeout_ms > 0 && (rc = run_wait(e, timeout_ms)) != CURLM_OK) return run_failed(e, "curl_multi_poll", rc);
  if ((rc = perform(e, &still)) != CURLM_OK) return run_failed(e, "curl_multi_perform", rc);
  collect(e);
  return counted(&e->running);
}

a0_xfer *a0_engine_pop_done(a0_engine *e) {
  xfer *x = e->threaded ? e->ready_head : e->done_head;   /* the owner's list: no lock */
  if (x == NULL) return NULL;
  move(e, x, X_DONE);
  return &x->pub;
}

int a0_engine_unpop(a0_engine *e, a0_xfer *x) {
  return move(e, XF(x), e->threaded ? X_READY : X_QUEUED);
}

a0_xfer *a0_engine_pop_released(a0_engine *e) {
  xfer *x;
  if (e->threaded && e->reaped == NULL && pthread_mutex_trylock(&e->mu) == 0) {
    take_over(e);
    pthread_mutex_unlock(&e->mu);
  }
  x = e->reaped;
  if (x == NULL) return NULL;
  move(e, x, X_DONE);   /* the owner's again; no other thread sees it now */
  cancelled(x);
  return &x->pub;
}

static int started(const xfer *x) { return x->st == X_INBOX || x->st == X_ADDING || x->st == X_RUNNING; }

void a0_engine_wait(a0_engine *e, a0_xfer *px) {
  xfer *x = XF(px);
  if (e->threaded) {   /* libcurl's timeouts bound the wait: the I/O thread finishes x */
    lock(e);
    while (started(x)) pthread_cond_wait(&e->cv, &e->mu);
    if (x->st == X_QUEUED || x->st == X_READY) move(e, x, X_DONE);
    unlock(e);
    return;
  }
  while (x->st == X_RUNNING) {
    int n = a0_engine_run(e, 0);
    if (n < 0) break;
    if (x->st != X_RUNNING) break;
    /* other transfers beside x may share its HTTP/2 connection: see io_main's short wait */
    if (curl_multi_poll(e->multi, NULL, 0, n > 1 ? A0_MUX_POLL_MS : 1000, NULL) != CURLM_OK) {
      run_failed(e, "curl_multi_poll", CURLM_INTERNAL_ERROR);
      break;
    }
  }
  if (x->st == X_RUNNING) {   /* multi failure: do not leave it half attached */
    a0_engine_cancel(e, px);
    x->pub.err = A0_ENETWORK;
    snprintf(x->pub.errmsg, sizeof x->pub.errmsg, "%s", e->errmsg);
  }
  if (x->st == X_QUEUED) move(e, x, X_DONE);
}

int a0_engine_cancel(a0_engine *e, a0_xfer *px) {
  xfer *x = XF(px);
  int held = 0;
  lock(e);
  switch (x->st) {
    case X_CANCELLING: case X_RELEASED: case X_REAPED:   /* cancelled already, still held */
      unlock(e);
      return 1;
    case X_INBOX: case X_ADDING:   /* the I/O thread has it, or is about to */
      held = move(e, x, X_CANCELLING) == 0;
      break;
    case X_RUNNING:
      if (e->threaded) {   /* libcurl may be writing into it right now */
        held = move(e, x, X_CANCELLING) == 0;
      } else {
        curl_multi_remove_handle(e->multi, x->easy);
        a0_buf_reset(&x->pub.body);
        move(e, x, X_DONE);
      }
      break;
    default:   /* queued, ready, idle, done: the owner's at once */
      move(e, x, X_DONE);
  }
  if (!held) cancelled(x);
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
  /* waits even with no transfer; a wakeup that came before the wait ends it at once */
  if (!woken_before(e)) (void)curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);
  __atomic_store_n(&e->woken, 0, __ATOMIC_RELEASE);
}

void a0_engine_wakeup(a0_engine *e) {
  if (e->threaded) {
    lock(e);
    e->woken = 1;
    pthread_cond_broadcast(&e->cv);
    unlock(e);
    return;
  }
  /* remembered until a poll(ms) or idle wait answers it: a blocking call's wait in between
   * drains libcurl's wakeup but not this */
  __atomic_store_n(&e->woken, 1, __ATOMIC_RELEASE);
  curl_multi_wakeup(e->multi);
}

long a0_engine_connects(a0_engine *e) { return __atomic_load_n(&e->connects, __ATOMIC_RELAXED); }
int a0_engine_running(a0_engine *e) { return counted(&e->running); }

#ifdef A0_TEST_HOOKS   /* csrc/test only */
void a0_test_lock(a0_engine *e) { pthread_mutex_lock(&e->mu); }   /* as the I/O thread would */
void a0_test_unlock(a0_engine *e) { pthread_mutex_unlock(&e->mu); }
void a0_test_pause(a0_engine *e, int on) {
  pthread_mutex_lock(&e->mu);
  e->test_paused = on;
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
}
void a0_test_fail(a0_engine *e, int curlm_code) {
  __atomic_store_n(&e->test_fail, curlm_code, __ATOMIC_RELAXED);
  curl_multi_wakeup(e->multi);
}
int a0_test_illegal(a0_engine *e) { return counted(&e->illegal); }
#endif
