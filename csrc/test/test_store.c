/* Unit test of the credentials file store (a0_store.c), no Lua. Built and run by `make ctest`.
 * Runs as any user; the foreign-owner case needs root (chown) and is skipped otherwise.
 * Last line: "N passed, N failed"; exit status 1 on any failure. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>
#include <signal.h>
#include <time.h>

#include "a0_store.h"

#include "check.h"

static char root[256];

#ifdef A0_WATCH_FREE
/* free() watch (this test is linked with -Wl,--wrap=free under ASan; not under TSan):
 * a job's data block must be all zeros when it is released. */
void __real_free(void *p);
void __wrap_free(void *p);
static struct {
  const void *ptr;
  size_t size;
  int seen, zero;
} watch;
void __wrap_free(void *p) {
  if (p != NULL && p == watch.ptr) {
    const unsigned char *q = p;
    size_t i = 0;
    while (i < watch.size && q[i] == 0) i++;
    watch.seen = 1;
    watch.zero = i == watch.size;
    watch.ptr = NULL;
  }
  __real_free(p);
}
#endif

static int mode_of(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static void path(char *out, size_t n, const char *rel) { snprintf(out, n, "%s/%s", root, rel); }

static int read_eq(const char *p, const char *want) {
  a0_buf b = { 0 };
  a0_store_err e;
  int ok = a0_store_read(p, &b, &e) == A0_STORE_OK && b.len == strlen(want) && memcmp(b.data, want, b.len) == 0;
  a0_buf_free(&b);
  return ok;
}

static int count_tmp(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  int n = 0;
  if (!d) return -1;
  while ((de = readdir(d)) != NULL) if (strstr(de->d_name, ".tmp-")) n++;
  closedir(d);
  return n;
}

static void test_create_modes(tally *t) {
  char f[512], d1[512], d2[512];
  a0_store_err e;
  path(f, sizeof f, "a/b/creds.json");
  path(d1, sizeof d1, "a");
  path(d2, sizeof d2, "a/b");
  umask(0);   /* even with the widest umask the modes must be private */
  CHECK(t, a0_store_write(f, "one", 3, A0_FAULT_NONE, &e) == A0_STORE_OK);
  umask(022);
  CHECK(t, mode_of(d1) == 0700);
  CHECK(t, mode_of(d2) == 0700);
  CHECK(t, mode_of(f) == 0600);
  CHECK(t, read_eq(f, "one"));
  CHECK(t, a0_store_write(f, "two!", 4, A0_FAULT_NONE, &e) == A0_STORE_OK);
  CHECK(t, read_eq(f, "two!"));
  CHECK(t, mode_of(f) == 0600);
  CHECK(t, count_tmp(d2) == 0);
  CHECK(t, a0_store_remove(f, &e) == A0_STORE_OK);
  CHECK(t, a0_store_remove(f, &e) == A0_STORE_OK);   /* already gone is fine */
  {
    a0_buf b = { 0 };
    CHECK(t, a0_store_read(f, &b, &e) == A0_STORE_NOT_FOUND);
    CHECK(t, b.len == 0);
    a0_buf_free(&b);
  }
}

static void test_refusals(tally *t) {
  char f[512], link[512], big[512], d[512];
  a0_store_err e;
  a0_buf b = { 0 };
  int fd;
  path(f, sizeof f, "r/creds.json");
  CHECK(t, a0_store_write(f, "x", 1, A0_FAULT_NONE, &e) == A0_STORE_OK);
  chmod(f, 0640);
  CHECK(t, a0_store_read(f, &b, &e) == A0_STORE_INSECURE);
  CHECK(t, strstr(e.msg, "mode 640") != NULL);
  chmod(f, 0604);
  CHECK(t, a0_store_read(f, &b, &e) == A0_STORE_INSECURE);
  chmod(f, 0620);
  CHECK(t, a0_store_read(f, &b, &e) == A0_STORE_INSECURE);
  CHECK(t, b.len == 0);
  chmod(f, 0600);
  CHECK(t, read_eq(f, "x"));
  if (geteuid() == 0) {
    CHECK(t, chown(f, 65534, 65534) == 0);
    CHECK(t, a0_store_read(f, &b, &e) == A0_STORE_INSECURE);
    CHECK(t, strstr(e.msg, "another user") != NULL);
    CHECK(t, chown(f, 0, 0) == 0);
  }
  path(link, sizeof link, "r/link.json");
  CHECK(t, symlink(f, link) == 0);
  CHECK(t, a0_store_read(link, &b, &e) == A0_STORE_INSECURE);
  path(d, sizeof d, "r/dir.json");
  mkdir(d, 0700);
  CHECK(t, a0_store_read(d, &b, &e) == A0_STORE_INSECURE);
  path(big, sizeof big, "r/big.json");
  fd = open(big, O_WRONLY | O_CREAT, 0600);
  CHECK(t, fd >= 0 && ftruncate(fd, A0_STORE_MAX + 1) == 0);
  close(fd);
  CHECK(t, a0_store_read(big, &b, &e) == A0_STORE_TOO_BIG);
  CHECK(t, b.len == 0);
  /* a directory others may write into (no sticky bit) */
  path(d, sizeof d, "open");
  mkdir(d, 0777);
  chmod(d, 0777);
  path(f, sizeof f, "open/creds.json");
  CHECK(t, a0_store_write(f, "x", 1, A0_FAULT_NONE, &e) == A0_STORE_INSECURE);
  CHECK(t, mode_of(f) == -1);
  chmod(d, 01777);   /* /tmp-like: sticky, so others cannot replace our file */
  CHECK(t, a0_store_write(f, "x", 1, A0_FAULT_NONE, &e) == A0_STORE_OK);
  a0_buf_free(&b);
}

static void test_lock(tally *t) {
  char l[512];
  a0_store_err e;
  int fd1 = -1, fd2 = -1;
  struct timespec t0, t1;
  path(l, sizeof l, "l/creds.lock");
  CHECK(t, a0_store_lock(l, 0, &fd1, &e) == A0_STORE_OK);
  CHECK(t, mode_of(l) == 0600);
  CHECK(t, a0_store_lock(l, 0, &fd2, &e) == A0_STORE_BUSY);   /* flock conflicts across fds */
  clock_gettime(CLOCK_MONOTONIC, &t0);
  CHECK(t, a0_store_lock(l, 150, &fd2, &e) == A0_STORE_BUSY);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  CHECK(t, (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 150);
  {
    pid_t pid = fork();
    if (pid == 0) {   /* another process waits for the lock, which we release after 100 ms */
      int fd = -1;
      a0_store_err ce;
      _exit(a0_store_lock(l, 5000, &fd, &ce) == A0_STORE_OK ? 0 : 1);
    }
    usleep(100000);
    a0_store_unlock(fd1);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(t, WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  CHECK(t, a0_store_lock(l, 0, &fd2, &e) == A0_STORE_OK);
  a0_store_unlock(fd2);
}

/* A process killed between the write of the temp file and the rename leaves the old file. */
static void test_killed_before_rename(tally *t) {
  char f[512], d[512];
  a0_store_err e;
  pid_t pid;
  int st = 0, tries = 0;
  path(f, sizeof f, "k/creds.json");
  path(d, sizeof d, "k");
  CHECK(t, a0_store_write(f, "old", 3, A0_FAULT_NONE, &e) == A0_STORE_OK);
  pid = fork();
  if (pid == 0) {
    a0_store_err ce;
    a0_store_write(f, "new-new", 7, A0_FAULT_STALL_BEFORE_RENAME, &ce);
    _exit(0);
  }
  while (count_tmp(d) < 1 && tries++ < 500) usleep(10000);
  CHECK(t, count_tmp(d) == 1);
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
  CHECK(t, WIFSIGNALED(st));
  CHECK(t, read_eq(f, "old"));
  CHECK(t, count_tmp(d) == 1);   /* the dead writer's temp file */
  CHECK(t, a0_store_write(f, "next", 4, A0_FAULT_NONE, &e) == A0_STORE_OK);
  CHECK(t, read_eq(f, "next"));
  CHECK(t, count_tmp(d) == 0);   /* swept by the next write */
}

static a0_store_job *job(a0_store_worker *w, a0_store_op op, const char *p, const char *data, size_t len,
                         a0_store_fault fault, a0_store_err *e) {
  a0_store_req r = { op, p, data, len, 0, fault };
  return a0_store_job_start(w, &r, e);
}

static long ms_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* A write job: nothing on disk while its thread works (slowed down by the fault point), the
 * result taken without blocking, the data block wiped when the thread lets go of it. */
static void test_job_write(tally *t) {
  char f[512];
  a0_store_err e;
  a0_store_status s = A0_STORE_IO;
  a0_store_job *j;
  struct timespec t0;
  const char *secret = "refresh-token-secret";
  path(f, sizeof f, "j/creds.json");
  clock_gettime(CLOCK_MONOTONIC, &t0);
  j = job(NULL, A0_JOB_WRITE, f, secret, strlen(secret), A0_FAULT_SLOW_JOB, &e);
  CHECK(t, j != NULL);
  if (j == NULL) return;
#ifdef A0_WATCH_FREE
  watch.ptr = a0_store_job_data(j);
  watch.size = 256;   /* a0_buf's smallest block */
  watch.seen = watch.zero = 0;
#endif
  CHECK(t, a0_store_job_result(j, &s, NULL, NULL, &e) == 0);   /* pending: returns at once */
  CHECK(t, ms_since(&t0) < 100);
  CHECK(t, mode_of(f) == -1);
  a0_store_job_wait(j);
  CHECK(t, ms_since(&t0) >= 300);
  CHECK(t, a0_store_job_result(j, &s, NULL, NULL, &e) == 1 && s == A0_STORE_OK);
  CHECK(t, read_eq(f, secret));
  CHECK(t, mode_of(f) == 0600);
#ifdef A0_WATCH_FREE
  CHECK(t, watch.seen && watch.zero);
#endif
  a0_store_job_release(j);
}

static void test_job_read_remove(tally *t) {
  char f[512], bad[512];
  a0_store_err e;
  a0_store_status s = A0_STORE_IO;
  a0_buf b = { 0 };
  a0_store_job *j;
  path(f, sizeof f, "j/creds.json");
  j = job(NULL, A0_JOB_READ, f, NULL, 0, A0_FAULT_NONE, &e);
  CHECK(t, j != NULL);
  if (j != NULL) {
    a0_store_job_wait(j);
    CHECK(t, a0_store_job_result(j, &s, &b, NULL, &e) == 1 && s == A0_STORE_OK);
    CHECK(t, b.len == 20 && memcmp(b.data, "refresh-token-secret", 20) == 0);
    a0_store_job_release(j);
  }
  a0_buf_free(&b);
  j = job(NULL, A0_JOB_REMOVE, f, NULL, 0, A0_FAULT_NONE, &e);
  CHECK(t, j != NULL);
  if (j != NULL) {
    a0_store_job_wait(j);
    CHECK(t, a0_store_job_result(j, &s, NULL, NULL, &e) == 1 && s == A0_STORE_OK);
    CHECK(t, mode_of(f) == -1);
    a0_store_job_release(j);
  }
  j = job(NULL, A0_JOB_READ, f, NULL, 0, A0_FAULT_NONE, &e);
  CHECK(t, j != NULL);
  if (j != NULL) {
    a0_store_job_wait(j);
    CHECK(t, a0_store_job_result(j, &s, &b, NULL, &e) == 1 && s == A0_STORE_NOT_FOUND && b.len == 0);
    a0_store_job_release(j);
  }
  /* a failure comes back as the result: a path under a regular file (even root cannot) */
  path(bad, sizeof bad, "j/creds.json.d");
  CHECK(t, a0_store_write(bad, "x", 1, A0_FAULT_NONE, &e) == A0_STORE_OK);
  path(bad, sizeof bad, "j/creds.json.d/sub/creds.json");
  j = job(NULL, A0_JOB_WRITE, bad, "tok", 3, A0_FAULT_NONE, &e);
  CHECK(t, j != NULL);
  if (j != NULL) {
    a0_store_job_wait(j);
    CHECK(t, a0_store_job_result(j, &s, NULL, NULL, &e) == 1 && s == A0_STORE_IO);
    CHECK(t, strstr(e.msg, "cannot create directory") != NULL && strstr(e.msg, "tok") == NULL);
    a0_store_job_release(j);
  }
  CHECK(t, job(NULL, A0_JOB_WRITE, f, "x", A0_STORE_MAX + 1, A0_FAULT_NONE, &e) == NULL);
}

/* Released while the thread still works: the release returns at once, the thread finishes
 * the write and frees the job (ASan's leak check at exit, TSan's race check). */
static void test_job_release_running(tally *t) {
  char f[512];
  a0_store_err e;
  a0_store_job *jobs[8];
  struct timespec t0;
  int tries = 0;
  path(f, sizeof f, "j/released.json");
  for (int i = 0; i < 8; i++)
    jobs[i] = job(NULL, A0_JOB_WRITE, f, "released", 8, i == 0 ? A0_FAULT_SLOW_JOB : A0_FAULT_NONE, &e);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < 8; i++) {
    CHECK(t, jobs[i] != NULL);
    a0_store_job_release(jobs[i]);
  }
  CHECK(t, ms_since(&t0) < 100);   /* the slow one was not waited for */
  while (mode_of(f) == -1 && tries++ < 300) usleep(10000);
  CHECK(t, read_eq(f, "released"));
  usleep(500000);   /* the slow thread ends and frees its job before the leak check */
}

/* A worker runs its jobs in order (the last write wins, whatever the threads' timing); released
 * with jobs still queued, it returns at once and they are still done. */
static void test_worker(tally *t) {
  char f[512], name[32];
  a0_store_err e;
  a0_store_status s = A0_STORE_IO;
  a0_store_job *jobs[20];
  struct timespec t0;
  a0_store_worker *w = a0_store_worker_new(&e);
  int tries = 0;
  CHECK(t, w != NULL);
  if (w == NULL) return;
  path(f, sizeof f, "w/creds.json");
  for (int i = 0; i < 20; i++) {
    snprintf(name, sizeof name, "v%02d", i);
    jobs[i] = i == 10 ? job(w, A0_JOB_REMOVE, f, NULL, 0, A0_FAULT_NONE, &e)
                      : job(w, A0_JOB_WRITE, f, name, strlen(name), i == 0 ? A0_FAULT_SLOW_JOB : A0_FAULT_NONE, &e);
  }
  a0_store_job_wait(jobs[19]);
  for (int i = 0; i < 20; i++) {   /* in order: every earlier job was done before the last one */
    CHECK(t, jobs[i] != NULL && a0_store_job_result(jobs[i], &s, NULL, NULL, &e) == 1 && s == A0_STORE_OK);
    a0_store_job_release(jobs[i]);
  }
  CHECK(t, read_eq(f, "v19"));
  /* released with a slow job running and more queued: no wait, and the queue is still done */
  a0_store_job_release(job(w, A0_JOB_WRITE, f, "slow", 4, A0_FAULT_SLOW_JOB, &e));
  a0_store_job_release(job(w, A0_JOB_WRITE, f, "after", 5, A0_FAULT_NONE, &e));
  clock_gettime(CLOCK_MONOTONIC, &t0);
  a0_store_worker_release(w);
  CHECK(t, ms_since(&t0) < 100);
  while (!read_eq(f, "after") && tries++ < 300) usleep(10000);
  CHECK(t, read_eq(f, "after"));
  usleep(100000);   /* the thread ends and frees the worker before the leak check */
}

/* A lock taken on the job's thread: busy while held elsewhere, then handed over once. */
static void test_job_lock(tally *t) {
  char l[512];
  a0_store_err e;
  a0_store_status s = A0_STORE_IO;
  a0_store_req r = { A0_JOB_LOCK, NULL, NULL, 0, 0, A0_FAULT_NONE };
  a0_store_job *j;
  int held = -1, fd = -1;
  path(l, sizeof l, "jl/creds.lock");
  r.path = l;
  CHECK(t, a0_store_lock(l, 0, &held, &e) == A0_STORE_OK);
  j = a0_store_job_start(NULL, &r, &e);
  CHECK(t, j != NULL);
  if (j == NULL) return;
  a0_store_job_wait(j);
  CHECK(t, a0_store_job_result(j, &s, NULL, &fd, &e) == 1 && s == A0_STORE_BUSY && fd == -1);
  a0_store_job_release(j);
  r.lock_ms = 5000;   /* waits on its thread, not ours */
  j = a0_store_job_start(NULL, &r, &e);
  usleep(50000);
  CHECK(t, a0_store_job_result(j, &s, NULL, &fd, &e) == 0);
  a0_store_unlock(held);
  a0_store_job_wait(j);
  CHECK(t, a0_store_job_result(j, &s, NULL, &fd, &e) == 1 && s == A0_STORE_OK && fd >= 0);
  a0_store_job_release(j);
  CHECK(t, a0_store_lock(l, 0, &held, &e) == A0_STORE_BUSY);   /* ours now */
  a0_store_unlock(fd);
  /* a lock nobody took is released with its job (when the thread lets go of it too) */
  r.lock_ms = 0;
  j = a0_store_job_start(NULL, &r, &e);
  a0_store_job_wait(j);
  a0_store_job_release(j);
  {
    int tries = 0;
    while (a0_store_lock(l, 0, &held, &e) != A0_STORE_OK && tries++ < 100) usleep(10000);
    CHECK(t, tries <= 100);
    a0_store_unlock(held);
  }
}

int main(void) {
  tally t = { 0, 0 };
  char cmd[300];
  snprintf(root, sizeof root, "/tmp/a0-test-store-%ld", (long)getpid());
  test_create_modes(&t);
  test_refusals(&t);
  test_lock(&t);
  test_killed_before_rename(&t);
  test_job_write(&t);
  test_job_read_remove(&t);
  test_job_release_running(&t);
  test_worker(&t);
  test_job_lock(&t);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) printf("could not remove %s\n", root);
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}
