/* Unit test of the workers (a0_worker.c) and the signal holds (a0_sig.c), no Lua. Built and
 * run by `make ctest`. Last line: "N passed, N failed"; exit status 1 on any failure. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "a0_sig.h"
#include "a0_worker.h"

#include "check.h"

/* Items counting their runs; the first one holds the worker's thread until `go`. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int go, ran, blocked_term;
} shared;

typedef struct {
  a0_work work;
  shared *s;
  int gate;
} item;

static void run(a0_work *w) {
  item *it = (item *)w;
  sigset_t now;
  pthread_sigmask(SIG_BLOCK, NULL, &now);
  pthread_mutex_lock(&it->s->mu);
  if (sigismember(&now, SIGTERM)) it->s->blocked_term++;
  while (it->gate && !it->s->go) pthread_cond_wait(&it->s->cv, &it->s->mu);
  it->s->ran++;
  pthread_cond_broadcast(&it->s->cv);
  pthread_mutex_unlock(&it->s->mu);
}

#define N (A0_WORKER_QUEUE_MAX + 2)
static item items[N + 1];

/* One running (held) and A0_WORKER_QUEUE_MAX queued: the next push is refused with EAGAIN
 * and not run; once the thread moves on, pushing works again and every queued item runs. */
static void test_queue_cap(tally *t) {
  shared s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0 };
  int rc, i, refused = 0;
  a0_worker *w = a0_worker_new(&rc);
  CHECK(t, w != NULL);
  if (w == NULL) return;
  for (i = 0; i <= N; i++) { items[i].work.run = run; items[i].s = &s; items[i].gate = i == 0; }
  CHECK(t, a0_worker_push(w, &items[0].work) == 0);
  pthread_mutex_lock(&s.mu);   /* wait until the gate item runs (it is out of the queue) */
  while (s.blocked_term == 0) {
    struct timespec ms = { 0, 1000000 };
    pthread_mutex_unlock(&s.mu);
    nanosleep(&ms, NULL);
    pthread_mutex_lock(&s.mu);
  }
  pthread_mutex_unlock(&s.mu);
  for (i = 1; i <= A0_WORKER_QUEUE_MAX; i++) if (a0_worker_push(w, &items[i].work) != 0) refused++;
  CHECK(t, refused == 0);
  CHECK(t, a0_worker_push(w, &items[N - 1].work) == EAGAIN);
  pthread_mutex_lock(&s.mu);
  s.go = 1;
  pthread_cond_broadcast(&s.cv);
  while (s.ran < A0_WORKER_QUEUE_MAX + 1) pthread_cond_wait(&s.cv, &s.mu);
  pthread_mutex_unlock(&s.mu);
  CHECK(t, a0_worker_push(w, &items[N].work) == 0);   /* room again */
  pthread_mutex_lock(&s.mu);
  while (s.ran < A0_WORKER_QUEUE_MAX + 2) pthread_cond_wait(&s.cv, &s.mu);
  pthread_mutex_unlock(&s.mu);
  CHECK(t, s.ran == A0_WORKER_QUEUE_MAX + 2);   /* the refused one never ran */
  CHECK(t, s.blocked_term == s.ran);            /* the worker's thread blocks every signal */
  a0_worker_release(w);
}

/* A SIGTERM sent while held stays pending, then is delivered at the release. */
static volatile sig_atomic_t got;
static void on_term(int sig) { (void)sig; got = 1; }

static void test_hold(tally *t) {
  a0_sig_hold h;
  struct sigaction sa, old;
  sigset_t pending;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, &old);
  got = 0;
  CHECK(t, a0_sig_hold_stop(&h) == 0);
  kill(getpid(), SIGTERM);
  sigpending(&pending);
  CHECK(t, sigismember(&pending, SIGTERM));
  CHECK(t, got == 0);
  CHECK(t, a0_sig_release(&h) == 1);
  CHECK(t, got == 1);
  CHECK(t, a0_sig_release(&h) == 0);   /* once */
  sigaction(SIGTERM, &old, NULL);
}

/* A release unblocks only what its hold blocked: the host's SIGINT stays blocked, and two holds
 * released out of order leave none of the stop signals blocked. */
static void test_hold_mask(tally *t) {
  a0_sig_hold h1, h2;
  sigset_t host, now;
  sigemptyset(&host);
  sigaddset(&host, SIGINT);
  pthread_sigmask(SIG_BLOCK, &host, NULL);
  CHECK(t, a0_sig_hold_stop(&h1) == 0);
  CHECK(t, a0_sig_release(&h1) == 1);
  pthread_sigmask(SIG_SETMASK, NULL, &now);
  CHECK(t, sigismember(&now, SIGINT) && !sigismember(&now, SIGTERM) && !sigismember(&now, SIGHUP));
  pthread_sigmask(SIG_UNBLOCK, &host, NULL);
  CHECK(t, a0_sig_hold_stop(&h1) == 0);
  CHECK(t, a0_sig_hold_stop(&h2) == 0);
  a0_sig_release(&h1);
  a0_sig_release(&h2);
  pthread_sigmask(SIG_SETMASK, NULL, &now);
  CHECK(t, !sigismember(&now, SIGINT) && !sigismember(&now, SIGTERM) && !sigismember(&now, SIGHUP));
}

int main(void) {
  tally t = { 0, 0 };
  test_queue_cap(&t);
  test_hold(&t);
  test_hold_mask(&t);
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}
