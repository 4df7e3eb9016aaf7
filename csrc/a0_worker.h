/* Work on other threads, for the engine files whose work must not run on the caller's
 * thread (a game's frame): the credentials store's file jobs (a0_store.c) and the RS256
 * verifications (a0_crypto.c). A worker is one thread running its queued items in order; an
 * item can also get a detached thread of its own. Nothing here ever waits for a join: a
 * released worker runs what is queued, then frees itself. Pure C. */
#ifndef A0_WORKER_H
#define A0_WORKER_H

typedef struct a0_work a0_work;
/* The first member of a job: run(item) is called once, on the thread; the job's own
 * reference counting decides who frees it. */
struct a0_work {
  a0_work *next;               /* in a worker's queue */
  void (*run)(a0_work *item);
};

typedef struct a0_worker a0_worker;
/* The most items one worker's queue holds (the one running not counted): more is load the
 * thread cannot keep up with, refused rather than queued without end. */
#define A0_WORKER_QUEUE_MAX 1024
/* NULL with *rc = ENOMEM without memory, or pthread_create's error without a thread. */
a0_worker *a0_worker_new(int *rc);
/* Queues item (its run set) behind the worker's others: 0, or EAGAIN (not queued) when
 * A0_WORKER_QUEUE_MAX items wait already. */
int a0_worker_push(a0_worker *w, a0_work *item);
/* Drops the owner's reference without waiting. */
void a0_worker_release(a0_worker *w);
/* item->run(item) on a detached thread of its own: 0, or pthread_create's error. */
int a0_work_detached(a0_work *item);

#endif
