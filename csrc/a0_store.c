/* The credentials file store (see a0_store.h). Files are created with their final mode from
 * the start, so there is no moment where a token sits in a file others may read. */
#define _DEFAULT_SOURCE   /* flock() */
#include "a0_store.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


static a0_store_status fail(a0_store_err *e, a0_store_status s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return s;
}

static a0_store_status sys_fail(a0_store_err *e, const char *what, const char *path) {
  int err = errno;
  if (err == ENOENT) return fail(e, A0_STORE_NOT_FOUND, "%s %s: %s", what, path, strerror(err));
  if (err == ELOOP) return fail(e, A0_STORE_INSECURE, "%s %s: is a symbolic link", what, path);
  return fail(e, A0_STORE_IO, "%s %s: %s", what, path, strerror(err));
}

const char *a0_store_code(a0_store_status s) {
  switch (s) {
  case A0_STORE_OK: return "ok";
  case A0_STORE_NOT_FOUND: return "not_found";
  case A0_STORE_INSECURE: return "insecure_store";
  case A0_STORE_TOO_BIG: return "too_big";
  case A0_STORE_BUSY: return "busy";
  default: return "io";
  }
}

static void sleep_ms(long ms) {
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The directory part of `path` ("." when there is none), in `dir` of size n. */
static int dir_of(const char *path, char *dir, size_t n) {
  const char *slash = strrchr(path, '/');
  size_t len;
  if (slash == NULL) { if (n < 2) return -1; strcpy(dir, "."); return 0; }
  len = slash == path ? 1 : (size_t)(slash - path);
  if (len + 1 > n) return -1;
  memcpy(dir, path, len);
  dir[len] = '\0';
  return 0;
}

/* A file of ours that only we can read and write. */
static a0_store_status check_private(int fd, const char *path, a0_store_err *e) {
  struct stat st;
  if (fstat(fd, &st) != 0) return sys_fail(e, "cannot stat", path);
  if (!S_ISREG(st.st_mode)) return fail(e, A0_STORE_INSECURE, "%s is not a regular file", path);
  if (st.st_uid != geteuid()) return fail(e, A0_STORE_INSECURE, "%s is owned by another user", path);
  if (st.st_mode & 077)
    return fail(e, A0_STORE_INSECURE, "%s is accessible by group or others (mode %03o, want 600)", path,
                (unsigned)(st.st_mode & 0777));
  return A0_STORE_OK;
}

/* A directory others could write into (without the sticky bit), or that another user owns
 * (and may chmod at will), lets them swap our file or roll it back to a rotated-out token. */
static a0_store_status check_dir(const char *dir, a0_store_err *e) {
  struct stat st;
  if (stat(dir, &st) != 0) return sys_fail(e, "cannot stat", dir);
  if (!S_ISDIR(st.st_mode)) return fail(e, A0_STORE_IO, "%s is not a directory", dir);
  if (st.st_uid != geteuid() && st.st_uid != 0)
    return fail(e, A0_STORE_INSECURE, "directory %s is owned by another user", dir);
  if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))
    return fail(e, A0_STORE_INSECURE, "directory %s is writable by group or others", dir);
  return A0_STORE_OK;
}

a0_store_status a0_store_mkdirs(const char *dir, a0_store_err *e) {
  char buf[4096];
  size_t len = strlen(dir);
  if (len == 0) return A0_STORE_OK;
  if (len >= sizeof buf) return fail(e, A0_STORE_IO, "directory path too long");
  memcpy(buf, dir, len + 1);
  for (size_t i = 1; i <= len; i++) {
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      /* the mode is set, not left to the umask: a restrictive one (0377) would leave a
       * directory we cannot write into */
      if (mkdir(buf, 0700) == 0) {
        if (chmod(buf, 0700) != 0) return sys_fail(e, "cannot set the mode of", buf);
      } else if (errno != EEXIST) {
        return sys_fail(e, "cannot create directory", buf);
      }
      buf[i] = c;
    }
  }
  return A0_STORE_OK;
}

/* A settings file nobody else can change. */
static a0_store_status check_config(int fd, const char *path, a0_store_err *e) {
  struct stat st;
  if (fstat(fd, &st) != 0) return sys_fail(e, "cannot stat", path);
  if (!S_ISREG(st.st_mode)) return fail(e, A0_STORE_INSECURE, "%s is not a regular file", path);
  if (st.st_uid != geteuid() && st.st_uid != 0)
    return fail(e, A0_STORE_INSECURE, "%s is owned by another user", path);
  if (st.st_mode & 022)
    return fail(e, A0_STORE_INSECURE, "%s is writable by group or others (mode %03o)", path,
                (unsigned)(st.st_mode & 0777));
  return A0_STORE_OK;
}

static a0_store_status read_checked(const char *path, int config, a0_buf *out, a0_store_err *e) {
  a0_store_status s;
  char chunk[4096];
  size_t start = out->len;
  char dir[4096];
  int fd;
  if (dir_of(path, dir, sizeof dir) != 0) return fail(e, A0_STORE_IO, "path too long");
  if ((s = check_dir(dir, e)) != A0_STORE_OK) return s;
  fd = open(path, O_RDONLY | (config ? 0 : O_NOFOLLOW) | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return sys_fail(e, "cannot open", path);
  s = config ? check_config(fd, path, e) : check_private(fd, path, e);
  while (s == A0_STORE_OK) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { s = sys_fail(e, "cannot read", path); break; }
    if (n == 0) break;
    if (out->len + (size_t)n > A0_STORE_MAX) { s = fail(e, A0_STORE_TOO_BIG, "%s is over 1 MiB", path); break; }
    if (a0_buf_add(out, chunk, (size_t)n) != 0) { s = fail(e, A0_STORE_IO, "out of memory"); break; }
  }
  a0_wipe(chunk, sizeof chunk);
  close(fd);
  if (s != A0_STORE_OK && out->len > start) {   /* never hand back part of a file */
    a0_wipe(out->data + start, out->len - start);
    out->len = start;
  }
  return s;
}

a0_store_status a0_store_read(const char *path, a0_buf *out, a0_store_err *e) {
  return read_checked(path, 0, out, e);
}

a0_store_status a0_store_read_config(const char *path, a0_buf *out, a0_store_err *e) {
  return read_checked(path, 1, out, e);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static a0_store_status sync_dir(const char *dir, a0_store_err *e) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_fail(e, "cannot open directory", dir);
  if (fsync(fd) != 0 && errno != EINVAL) { close(fd); return sys_fail(e, "cannot sync directory", dir); }
  close(fd);
  return A0_STORE_OK;
}

/* Removes the temp files of `path` left by processes that died before their rename (they
 * may hold tokens); a live writer's file is left alone. */
static void sweep_stale(const char *dir, const char *path) {
  const char *base = strrchr(path, '/');
  size_t blen;
  DIR *d;
  struct dirent *de;
  base = base ? base + 1 : path;
  blen = strlen(base);
  if ((d = opendir(dir)) == NULL) return;
  while ((de = readdir(d)) != NULL) {
    const char *n = de->d_name;
    char *end;
    long pid;
    char full[4200];
    if (strncmp(n, base, blen) != 0 || strncmp(n + blen, ".tmp-", 5) != 0) continue;
    pid = strtol(n + blen + 5, &end, 10);
    if (end == n + blen + 5 || *end != '-' || pid <= 0) continue;
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
    if (snprintf(full, sizeof full, "%s/%s", dir, n) < (int)sizeof full) unlink(full);
  }
  closedir(d);
}

a0_store_status a0_store_write(const char *path, const void *data, size_t len, a0_store_fault fault,
                               a0_store_err *e) {
  char dir[4096], tmp[4200];
  unsigned char r[6];
  a0_store_status s;
  int fd;
  if (len > A0_STORE_MAX) return fail(e, A0_STORE_TOO_BIG, "data is over 1 MiB");
  if (dir_of(path, dir, sizeof dir) != 0 || strlen(path) + 40 > sizeof tmp)
    return fail(e, A0_STORE_IO, "path too long");
  if ((s = a0_store_mkdirs(dir, e)) != A0_STORE_OK) return s;
  if ((s = check_dir(dir, e)) != A0_STORE_OK) return s;
  sweep_stale(dir, path);
  /* the kernel's generator, not OpenSSL's: a store job's thread then holds no per-thread
   * OpenSSL state (still allocated if the process exits while the thread waits for work) */
  if (getentropy(r, sizeof r) != 0) return fail(e, A0_STORE_IO, "random generator failed");
  snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%02x%02x%02x%02x%02x%02x", path, (long)getpid(),
           r[0], r[1], r[2], r[3], r[4], r[5]);
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return sys_fail(e, "cannot create", tmp);
  if (fchmod(fd, 0600) != 0) { s = sys_fail(e, "cannot set the mode of", tmp); close(fd); unlink(tmp); return s; }
  if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
    s = sys_fail(e, "cannot write", tmp);
    close(fd);
    unlink(tmp);
    return s;
  }
  if (close(fd) != 0) { s = sys_fail(e, "cannot write", tmp); unlink(tmp); return s; }
  if (fault == A0_FAULT_STALL_BEFORE_RENAME) sleep_ms(60000);   /* a test kills us here */
  if (rename(tmp, path) != 0) { s = sys_fail(e, "cannot replace", path); unlink(tmp); return s; }
  return sync_dir(dir, e);
}

a0_store_status a0_store_remove(const char *path, a0_store_err *e) {
  char dir[4096];
  if (dir_of(path, dir, sizeof dir) != 0) return fail(e, A0_STORE_IO, "path too long");
  if (unlink(path) != 0) {
    if (errno == ENOENT) return A0_STORE_OK;
    return sys_fail(e, "cannot remove", path);
  }
  return sync_dir(dir, e);
}

a0_store_status a0_store_lock(const char *lock_path, long timeout_ms, int *fd, a0_store_err *e) {
  char dir[4096];
  a0_store_status s;
  long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0), wait = 1;
  int f;
  if (dir_of(lock_path, dir, sizeof dir) != 0) return fail(e, A0_STORE_IO, "path too long");
  if ((s = a0_store_mkdirs(dir, e)) != A0_STORE_OK) return s;
  if ((s = check_dir(dir, e)) != A0_STORE_OK) return s;
  f = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (f < 0) return sys_fail(e, "cannot open lock", lock_path);
  if ((s = check_private(f, lock_path, e)) != A0_STORE_OK) { close(f); return s; }
  if (fchmod(f, 0600) != 0) { s = sys_fail(e, "cannot set the mode of", lock_path); close(f); return s; }
  for (;;) {
    if (flock(f, LOCK_EX | LOCK_NB) == 0) { *fd = f; return A0_STORE_OK; }
    if (errno != EWOULDBLOCK && errno != EINTR) { s = sys_fail(e, "cannot lock", lock_path); break; }
    if (now_ms() >= deadline) { s = fail(e, A0_STORE_BUSY, "%s is locked by another process", lock_path); break; }
    sleep_ms(wait);
    if (wait < 20) wait *= 2;   /* short first waits: a refresh usually takes tens of ms */
  }
  close(f);
  return s;
}

void a0_store_unlock(int fd) {
  if (fd >= 0) {
    flock(fd, LOCK_UN);
    close(fd);
  }
}

/* ---- jobs: store operations on a thread of their own ---- */

struct a0_store_job {
  a0_work work;             /* first: a worker's queue item (a0_worker.h) */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;                 /* the caller's and the thread's; the last one out frees */
  int done;
  a0_store_op op;
  a0_store_fault fault;
  long lock_ms;             /* A0_JOB_LOCK: how long the thread may wait for the lock */
  a0_store_status status;
  a0_store_err err;
  int fd;                   /* A0_JOB_LOCK: the lock taken, until the result hands it over */
  char *path;
  a0_buf data;              /* what to write, or what was read: wiped when freed */
};

static void job_free(a0_store_job *j) {
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
  if (j->fd >= 0) a0_store_unlock(j->fd);   /* a lock nobody took: released */
  a0_buf_free(&j->data);
  free(j->path);
  free(j);
}

/* Drops one reference; the last one frees (outside the lock). */
static void job_unref(a0_store_job *j) {
  int left;
  pthread_mutex_lock(&j->mu);
  left = --j->refs;
  pthread_mutex_unlock(&j->mu);
  if (left == 0) job_free(j);
}

/* Does the job's work (on its thread), publishes the result, drops the thread's reference. */
static void job_run(a0_work *item) {
  a0_store_job *j = (a0_store_job *)item;
  a0_store_err e = { { 0 }, A0_STORE_OK };
  a0_buf got = { 0 };
  a0_store_status s;
  int fd = -1;
  if (j->fault == A0_FAULT_SLOW_JOB) sleep_ms(300);
  if (j->op == A0_JOB_WRITE) {
    s = a0_store_write(j->path, j->data.data ? j->data.data : "", j->data.len, j->fault, &e);
  } else if (j->op == A0_JOB_REMOVE) {
    s = a0_store_remove(j->path, &e);
  } else if (j->op == A0_JOB_LOCK) {
    s = a0_store_lock(j->path, j->lock_ms, &fd, &e);
  } else {
    s = a0_store_read(j->path, &got, &e);
  }
  pthread_mutex_lock(&j->mu);
  if (j->op == A0_JOB_WRITE) a0_buf_free(&j->data);   /* the tokens go as soon as they are on disk */
  j->status = s;
  j->err = e;
  j->fd = fd;
  if (j->op == A0_JOB_READ) j->data = got;   /* the buffer moves: nothing to wipe twice */
  j->done = 1;
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
  job_unref(j);
}

a0_store_worker *a0_store_worker_new(a0_store_err *e) {
  int rc;
  a0_worker *w = a0_worker_new(&rc);
  if (w == NULL) fail(e, A0_STORE_IO, "cannot start the store thread: %s", strerror(rc));
  return w;
}

void a0_store_worker_release(a0_store_worker *w) { a0_worker_release(w); }

a0_store_job *a0_store_job_start(a0_store_worker *w, const a0_store_req *r, a0_store_err *e) {
  a0_store_job *j;
  int rc;
  e->status = A0_STORE_IO;
  if (r->op == A0_JOB_WRITE && r->len > A0_STORE_MAX) {
    e->status = fail(e, A0_STORE_TOO_BIG, "data is over 1 MiB");
    return NULL;
  }
  j = (a0_store_job *)calloc(1, sizeof *j);
  if (j == NULL || (j->path = strdup(r->path)) == NULL ||
      (r->op == A0_JOB_WRITE && a0_buf_add(&j->data, r->data, r->len) != 0)) {
    if (j != NULL) { a0_buf_free(&j->data); free(j->path); free(j); }
    fail(e, A0_STORE_IO, "out of memory");
    return NULL;
  }
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  j->op = r->op;
  j->fault = r->fault;
  j->lock_ms = r->lock_ms;
  j->fd = -1;
  j->refs = 2;
  j->work.run = job_run;
  if (w != NULL) {
    if (a0_worker_push(w, &j->work) == 0) return j;
    job_free(j);
    e->status = fail(e, A0_STORE_BUSY, "the store's queue is full (%d jobs waiting)", A0_WORKER_QUEUE_MAX);
    return NULL;
  }
  if ((rc = a0_work_detached(&j->work)) != 0) {
    job_free(j);
    fail(e, A0_STORE_IO, "cannot start the store thread: %s", strerror(rc));
    return NULL;
  }
  return j;
}

int a0_store_job_result(a0_store_job *j, a0_store_status *s, a0_buf *out, int *fd, a0_store_err *e) {
  int done;
  pthread_mutex_lock(&j->mu);
  done = j->done;
  if (done) {
    *s = j->status;
    if (j->status != A0_STORE_OK) *e = j->err;
    if (out != NULL && j->op == A0_JOB_READ && j->data.len > 0) {
      if (a0_buf_add(out, j->data.data, j->data.len) != 0) { *s = fail(e, A0_STORE_IO, "out of memory"); }
      a0_buf_free(&j->data);
    }
    if (fd != NULL && j->op == A0_JOB_LOCK) { *fd = j->fd; j->fd = -1; }   /* handed over once */
  }
  pthread_mutex_unlock(&j->mu);
  return done;
}

void a0_store_job_wait(a0_store_job *j) {
  pthread_mutex_lock(&j->mu);
  while (!j->done) pthread_cond_wait(&j->cv, &j->mu);
  pthread_mutex_unlock(&j->mu);
}

void a0_store_job_release(a0_store_job *j) {
  if (j != NULL) job_unref(j);
}

#ifdef A0_TEST_HOOKS
const void *a0_store_job_data(a0_store_job *j) {
  const void *p;
  pthread_mutex_lock(&j->mu);
  p = j->data.data;
  pthread_mutex_unlock(&j->mu);
  return p;
}
#endif
