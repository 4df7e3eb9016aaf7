/* Engine-private: the transfer and engine types shared by a0_http.c (states, queues, the
 * I/O thread) and a0_easy.c (one transfer's libcurl handle). Bindings never include it. */
#ifndef A0_XFER_H
#define A0_XFER_H

#include <pthread.h>
#include <curl/curl.h>
#include "a0_http.h"

/* The transfer lifecycle; a0_http.c documents the transitions and who owns each state. */
enum xfer_state {
  X_IDLE, X_INBOX, X_ADDING, X_RUNNING, X_QUEUED, X_READY,
  X_CANCELLING, X_RELEASED, X_REAPED, X_DONE, X_NSTATES
};

typedef struct xfer xfer;
struct xfer {
  a0_xfer pub;                  /* first member: a0_xfer * and xfer * convert both ways */
  enum xfer_state st;           /* changed only by move() in a0_http.c */
  struct curl_slist *headers;
  struct curl_slist *keep;      /* last header kept across resets (the client's fixed ones) */
  char (*hdr)[A0_HDR_MAX];      /* A0_NHDR captured values, allocated by the first capture */
  unsigned hdr_set;             /* bit h: slot h was written since it was last cleared */
  struct curl_slist stat;       /* the static header line of a0_xfer_add_static_header */
  CURL *easy;
  /* what the handle was last given: a pooled transfer's next request sets only what changed */
  long set_timeout;             /* CURLOPT_TIMEOUT_MS; -1: not yet */
  struct curl_slist *set_headers;   /* CURLOPT_HTTPHEADER */
  int set_custom;               /* CURLOPT_CUSTOMREQUEST is set */
  a0_engine *eng;
  xfer *next;                   /* the list of its state: done, ready, cancels, released, reaped */
  xfer *next_q;                 /* threaded: the inbox stack, then the I/O thread's batch (a
                                   transfer cancelled in the inbox is on both lists a while) */
};

#define XF(x) ((xfer *)(x))
#define CXF(x) ((const xfer *)(x))

struct a0_engine {
  CURLM *multi;
  a0_engine_opts o;
  char *ca_file;
  xfer *done_head, *done_tail;  /* QUEUED */
  int running;                  /* started, neither finished nor cancelled (atomic) */
  long connects;                /* (atomic) */
  int illegal;                  /* transitions refused by move() (atomic) */
  /* threaded mode: guarded by mu, except multi, which only the I/O thread touches
   * (curl_multi_wakeup aside) */
  int threaded, stop, woken, has_thread;
  int failed;                   /* CURLMcode of a multi failure not yet reported (mu) */
  const char *failed_in;        /* the libcurl function that failed */
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;            /* a transfer finished, or a0_engine_wakeup */
  xfer *inbox;                  /* INBOX, newest first: a lock-free stack (atomic) */
  xfer *cancels, *released;     /* CANCELLING, RELEASED */
  /* threaded, the owner's thread only (no lock): READY and REAPED */
  xfer *ready_head, *ready_tail, *reaped;
  char errmsg[160];             /* a0_engine_errmsg */
#ifdef A0_TEST_HOOKS
  int test_paused;              /* io_exchange leaves the inbox and the cancels alone */
  int test_fail;                /* the next multi call "fails" with this CURLMcode */
#endif
};

/* a0_easy.c: the libcurl side of one transfer. */
int a0__prepare(a0_engine *e, xfer *x);
long a0__finish(a0_engine *e, xfer *x, CURLcode rc);
void a0__clear_results(xfer *x);
void a0__wipe_request(xfer *x);

#endif
