/* HTTP engine over one libcurl multi handle: blocking waits and non-blocking polls
 * drive the same handle, so connections are shared and reused. Pure C.
 *
 * Two modes. By default the caller's thread drives libcurl: a0_engine_run performs the
 * transfers. With opts.threaded, an I/O thread owned by the engine drives libcurl and
 * everything else is a hand-over: a0_xfer_start pushes the transfer on a lock-free inbox,
 * a0_engine_run only takes the finished ones over (under one mutex, never waiting for it
 * with timeout 0), a0_engine_pop_done pops them. The caller
 * never runs libcurl code then, so TLS handshakes and bursts of answers never cost its
 * thread anything. Either way the engine API is used from one thread only (except
 * a0_engine_wakeup, callable from any thread). A transfer's lifecycle (its states, who owns
 * it in each, which thread moves it) is documented at the top of a0_http.c. */
#ifndef A0_HTTP_H
#define A0_HTTP_H

#include <stddef.h>
#include "a0_buf.h"

/* Our own error codes; the Lua names come from a0_err_name(). */
#define A0_ERRORS(X) \
  X(A0_OK, "ok") \
  X(A0_ETIMEOUT, "timeout") \
  X(A0_ECONNECT, "couldnt_connect") \
  X(A0_ERESOLVE, "couldnt_resolve") \
  X(A0_ETLS, "tls") \
  X(A0_EBADRESP, "bad_response") \
  X(A0_ETOOLARGE, "too_large") \
  X(A0_ECANCELLED, "cancelled") \
  X(A0_ENETWORK, "network") \
  X(A0_ENOMEM, "out_of_memory")

#define A0_ENUM(id, name) id,
typedef enum { A0_ERRORS(A0_ENUM) A0_NERR } a0_err;
#undef A0_ENUM
const char *a0_err_name(int err);

/* Response headers the client acts on, captured case-insensitively. */
#define A0_HEADERS(X) \
  X(A0_H_RETRY_AFTER, "retry-after", "retry_after") \
  X(A0_H_RL_LIMIT, "x-ratelimit-limit", "ratelimit_limit") \
  X(A0_H_RL_REMAINING, "x-ratelimit-remaining", "ratelimit_remaining") \
  X(A0_H_RL_RESET, "x-ratelimit-reset", "ratelimit_reset") \
  X(A0_H_REQUEST_ID, "x-auth0-requestid", "request_id") \
  X(A0_H_CONTENT_TYPE, "content-type", "content_type") \
  X(A0_H_LOCATION, "location", "location")

#define A0_ENUM(id, wire, field) id,
enum { A0_HEADERS(A0_ENUM) A0_NHDR };
#undef A0_ENUM
#define A0_HDR_MAX 256
/* The Lua field name and the wire name (lowercase) of header h; NULL out of range. */
const char *a0_header_field(int h);
const char *a0_header_wire(int h);

typedef struct {
  long timeout_ms;          /* whole transfer */
  long connect_timeout_ms;
  const char *ca_file;      /* NULL: system store */
  int insecure;             /* skip peer+host verification (named option, loopback tests) */
  size_t max_body;          /* response cap */
  int threaded;             /* drive libcurl from an I/O thread of the engine */
} a0_engine_opts;

typedef struct a0_engine a0_engine;
typedef struct a0_xfer a0_xfer;

/* The owner's view of a transfer: the request it fills in and the outcome it reads. The
 * engine's own fields (state, queues, libcurl handle, header lists) are private to it and
 * follow this part in memory; a transfer only ever comes from a0_xfer_new. */
struct a0_xfer {
  /* the request, filled by the owner while the transfer is its own (idle or done) */
  a0_buf url;
  a0_buf body;              /* wiped as soon as it was sent */
  const char *method;       /* static string; NULL is GET */
  long timeout_ms;          /* 0: engine default */
  /* the outcome, read once the transfer is the owner's again (popped, waited, cancelled) */
  int err;                  /* a0_err */
  long status;
  a0_buf resp;              /* response body; wiped by a0_xfer_reset */
  char errmsg[256];
  void *ud;                 /* the owner's back pointer, never touched by the engine */
};

/* Records one raw header line ("Name: value\r\n") if it is one we capture. */
void a0_capture_header(a0_xfer *x, const char *line, size_t len);
/* The captured value of header h (A0_H_*), "" if none. */
const char *a0_xfer_header(const a0_xfer *x, int h);

a0_engine *a0_engine_new(const a0_engine_opts *o, char *err, size_t errlen);
/* Frees what the engine holds (cancelled transfers not yet handed back). Transfers started
 * and never cancelled stay the caller's, to free with a0_xfer_free. */
void a0_engine_free(a0_engine *e);
/* Transfers that can be reused keep their easy handle and buffers. */
a0_xfer *a0_xfer_new(void);
/* Wipes the request and outcome for reuse. -1 (nothing done) unless x is the owner's. */
int a0_xfer_reset(a0_xfer *x);
void a0_xfer_free(a0_xfer *x);
int a0_xfer_add_header(a0_xfer *x, const char *line);
/* Appends line, a string that outlives x (a literal), without copying it: one per request
 * (e.g. Content-Type), dropped with the other per-request headers; never wiped. */
void a0_xfer_add_static_header(a0_xfer *x, const char *line);
/* The headers added so far survive a0_xfer_reset (they hold no secret). */
void a0_xfer_keep_headers(a0_xfer *x);
/* Whether x holds kept headers (a transfer reused from a pool holds them already). */
int a0_xfer_has_kept_headers(const a0_xfer *x);
/* The i-th request header line (0-based), or NULL past the last. */
const char *a0_xfer_header_line(const a0_xfer *x, int i);
/* The lifecycle state's name (see a0_http.c): "idle", "inbox", "adding", "running",
 * "queued", "ready", "cancelling", "released", "reaped", "done". For tests and logs. */
const char *a0_xfer_state(const a0_xfer *x);
/* Starts x (idle or done). -1 when x is not the owner's or cannot be started. */
int a0_xfer_start(a0_engine *e, a0_xfer *x);

/* Negative results of a0_engine_run. */
enum {
  A0_RUN_FAILED = -1,       /* libcurl's multi interface failed: a0_engine_errmsg says how.
                               Transfers may never finish: report it, then close the engine */
  A0_RUN_BUSY = -2          /* threaded, timeout 0: the I/O thread held the lock; nothing was
                               taken over, not an error (the next call takes them) */
};
/* Drives transfers, waiting up to timeout_ms for activity. Finished transfers go to the
 * done queue. Returns the number still running (>= 0), or A0_RUN_FAILED / A0_RUN_BUSY.
 * Caller-driven: A0_RUN_FAILED when curl_multi_poll or curl_multi_perform fails.
 * Threaded: waits up to timeout_ms for a finished transfer (or a wakeup) and takes the
 * finished ones over; A0_RUN_FAILED reports, once, a multi failure of the I/O thread. */
int a0_engine_run(a0_engine *e, int timeout_ms);
/* The last A0_RUN_FAILED's reason, e.g. "curl_multi_perform failed: out of memory". */
const char *a0_engine_errmsg(const a0_engine *e);
a0_xfer *a0_engine_pop_done(a0_engine *e);
/* Puts x, just popped, back at the head of the done queue. -1 when x is not done. */
int a0_engine_unpop(a0_engine *e, a0_xfer *x);
/* Drives everything until x (started, not cancelled) is finished; x is not left queued. */
void a0_engine_wait(a0_engine *e, a0_xfer *x);
/* Stops x; it finishes with A0_ECANCELLED and is not queued. Returns 0 when x is the
 * caller's again at once; 1 (threaded engines, x still running) when the I/O thread holds
 * x: the caller must not touch it until a0_engine_pop_released hands it back (cancelling
 * it again meanwhile returns 1 and does nothing). */
int a0_engine_cancel(a0_engine *e, a0_xfer *x);
/* Threaded: a transfer cancelled while the I/O thread held it, now released; or NULL. */
a0_xfer *a0_engine_pop_released(a0_engine *e);
/* Waits up to timeout_ms even with nothing running (timers of the owner); a0_engine_wakeup
 * or, threaded, a finished transfer ends it early. Runs no transfer. */
void a0_engine_idle(a0_engine *e, int timeout_ms);
/* Ends a current or the next wait (a0_engine_run, a0_engine_idle) early. */
void a0_engine_wakeup(a0_engine *e);
long a0_engine_connects(a0_engine *e);
/* Transfers started and not yet finished, cancelled or (threaded) taken over by a0_engine_run:
 * 0 means every finished transfer can be popped. */
int a0_engine_running(a0_engine *e);

#endif
