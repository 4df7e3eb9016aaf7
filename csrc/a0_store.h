/* The credentials file store: private files replaced atomically, and an advisory lock so that
 * several processes sharing one file refresh one at a time. Pure C, POSIX. */
#ifndef A0_STORE_H
#define A0_STORE_H

#include <stddef.h>

#include "a0_buf.h"
#include "a0_worker.h"

#define A0_STORE_MAX (1024 * 1024)   /* a credentials file is a few KB; more is not ours */

typedef enum {
  A0_STORE_OK = 0,
  A0_STORE_NOT_FOUND,   /* no file yet */
  A0_STORE_INSECURE,    /* readable/writable by others, foreign owner, not a regular file */
  A0_STORE_TOO_BIG,
  A0_STORE_BUSY,        /* the lock is held by someone else (after the wait) */
  A0_STORE_IO           /* any other system error; the message has errno's text */
} a0_store_status;

/* Test-only fault points, chosen by the caller (the binding reads A0_STORE_FAULT). */
typedef enum {
  A0_FAULT_NONE = 0,
  A0_FAULT_STALL_BEFORE_RENAME,  /* temp file written and synced, then sleep up to 60 s */
  A0_FAULT_SLOW_JOB              /* a job's thread sleeps 300 ms before its work */
} a0_store_fault;

typedef struct {
  char msg[256];
  a0_store_status status;   /* set by a0_store_job_start when it fails */
} a0_store_err;

/* The status as a lowercase code: "ok", "not_found", "insecure_store", "too_big", "busy", "io". */
const char *a0_store_code(a0_store_status s);

/* Creates every missing directory of `dir` with mode 0700. */
a0_store_status a0_store_mkdirs(const char *dir, a0_store_err *e);

/* Reads the whole file into `out` (appended) after checking it is a regular file of ours
 * with no group/other permission bits. */
a0_store_status a0_store_read(const char *path, a0_buf *out, a0_store_err *e);

/* Reads a settings file the user may share (a profile, a secret file): a regular file, owned
 * by us or root, that nobody else can write, in a directory nobody else controls; it may be a
 * symbolic link (dotfile managers), checked where it points. */
a0_store_status a0_store_read_config(const char *path, a0_buf *out, a0_store_err *e);

/* Replaces the file atomically: temp file (0600, O_EXCL) in the same directory, write, fsync,
 * rename, fsync of the directory. Creates the directory (0700) if it is missing. */
a0_store_status a0_store_write(const char *path, const void *data, size_t len, a0_store_fault fault,
                               a0_store_err *e);

/* Removes the file (not found is fine) and syncs the directory. */
a0_store_status a0_store_remove(const char *path, a0_store_err *e);

/* Takes an exclusive flock on `lock_path` (created 0600), waiting up to timeout_ms
 * (0: one try). On success *fd holds the lock; a0_store_unlock releases it. */
a0_store_status a0_store_lock(const char *lock_path, long timeout_ms, int *fd, a0_store_err *e);
void a0_store_unlock(int fd);

/* Store operations on a thread, so that a game's frame never waits for the disk (write:
 * temp file, fsync, rename, fsync of the directory) nor for a lock. A job owns a copy of the
 * path and of the data (in a wiping buffer: it holds tokens). A worker is one thread running
 * its jobs one after the other, in the order they were started; without one a job gets a
 * thread of its own. */
typedef enum { A0_JOB_WRITE, A0_JOB_REMOVE, A0_JOB_READ, A0_JOB_LOCK } a0_store_op;
typedef struct a0_store_job a0_store_job;
typedef a0_worker a0_store_worker;   /* one thread running its jobs in order (a0_worker.h) */

typedef struct {
  a0_store_op op;
  const char *path;        /* for A0_JOB_LOCK: the lock file */
  const void *data;        /* A0_JOB_WRITE */
  size_t len;
  long lock_ms;            /* A0_JOB_LOCK: a0_store_lock's timeout, waited on the thread */
  a0_store_fault fault;
} a0_store_req;

/* NULL when the thread could not start, with the reason in `e`. */
a0_store_worker *a0_store_worker_new(a0_store_err *e);

/* Drops the owner's reference without waiting: the thread runs the jobs still queued, then
 * ends and frees the worker. */
void a0_store_worker_release(a0_store_worker *w);

/* Starts `r` on worker `w` (NULL: a thread of its own). NULL when it could not start (out of
 * memory, no thread: A0_STORE_IO; too much data: A0_STORE_TOO_BIG; the worker's queue holds
 * A0_WORKER_QUEUE_MAX jobs already: A0_STORE_BUSY), with the reason and status in `e`. */
a0_store_job *a0_store_job_start(a0_store_worker *w, const a0_store_req *r, a0_store_err *e);

/* Never blocks: 0 while the thread works; then 1, with the status, `e` filled on failure, for
 * a read the content moved into `out` (appended, once), for a lock the descriptor moved into
 * `*fd` (once; a0_store_unlock releases it; a lock never taken is released with the job). */
int a0_store_job_result(a0_store_job *j, a0_store_status *s, a0_buf *out, int *fd, a0_store_err *e);

/* Waits until the thread has done the job's work. */
void a0_store_job_wait(a0_store_job *j);

/* Drops the caller's reference without waiting: a job still queued or running is freed
 * (wiped) by its thread when it ends. */
void a0_store_job_release(a0_store_job *j);

#ifdef A0_TEST_HOOKS
const void *a0_store_job_data(a0_store_job *j);   /* the data block, to watch its wipe */
#endif

#endif
