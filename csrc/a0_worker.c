/* Workers and detached threads (a0_worker.h). Pure C. */
#include "a0_worker.h"
#include "a0_sig.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct a0_worker {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;                 /* the owner's and the thread's; the last one out frees */
  int closing;
  int queued;               /* items in the queue (A0_WORKER_QUEUE_MAX at most) */
  a0_work *head, *tail;
};

static void worker_unref(a0_worker *w) {
  int left;
  pthread_mutex_lock(&w->mu);
  left = --w->refs;
  pthread_mutex_unlock(&w->mu);
  if (left == 0) {
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
  }
}

/* The worker's thread: the queued items one after the other, in order, until it is released
 * and its queue is empty. */
static void *worker_main(void *arg) {
  a0_worker *w = (a0_worker *)arg;
  for (;;) {
    a0_work *it;
    pthread_mutex_lock(&w->mu);
    while (w->head == NULL && !w->closing) pthread_cond_wait(&w->cv, &w->mu);
    it = w->head;
    if (it != NULL) {
      w->head = it->next;
      if (w->head == NULL) w->tail = NULL;
      w->queued--;
    }
    pthread_mutex_unlock(&w->mu);
    if (it == NULL) break;
    it->run(it);
  }
  worker_unref(w);
  return NULL;
}

/* A detached thread: releasing must never wait for a join. It starts with every signal
 * blocked: a process-directed SIGTERM held by the caller (a0_sig_hold_stop) must not end the
 * process through it. */
static int start_detached(void *(*fn)(void *), void *arg) {
  pthread_attr_t attr;
  pthread_t th;
  sigset_t old;
  int rc, masked;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  masked = a0_sig_block_all(&old) == 0;
  rc = pthread_create(&th, &attr, fn, arg);
  if (masked) pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  return rc;
}

a0_worker *a0_worker_new(int *rc) {
  a0_worker *w = (a0_worker *)calloc(1, sizeof *w);
  if (w == NULL) { *rc = ENOMEM; return NULL; }
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->refs = 2;
  if ((*rc = start_detached(worker_main, w)) != 0) {
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    return NULL;
  }
  return w;
}

int a0_worker_push(a0_worker *w, a0_work *item) {
  item->next = NULL;
  pthread_mutex_lock(&w->mu);
  if (w->queued >= A0_WORKER_QUEUE_MAX) { pthread_mutex_unlock(&w->mu); return EAGAIN; }
  if (w->tail != NULL) w->tail->next = item; else w->head = item;
  w->tail = item;
  w->queued++;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

void a0_worker_release(a0_worker *w) {
  if (w == NULL) return;
  pthread_mutex_lock(&w->mu);
  w->closing = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  worker_unref(w);
}

static void *work_main(void *arg) {
  a0_work *it = (a0_work *)arg;
  it->run(it);
  return NULL;
}

int a0_work_detached(a0_work *item) { return start_detached(work_main, item); }
