/* Holding the stop signals (SIGTERM, SIGINT, SIGHUP) across a critical section: a command
 * line refresh whose rotated refresh token must reach the store before the process may stop
 * (the server retired the old token). Pure C. */
#ifndef A0_SIG_H
#define A0_SIG_H

#include <signal.h>

typedef struct {
  sigset_t old;     /* the calling thread's mask before the hold */
  sigset_t added;   /* the stop signals this hold blocked (not blocked before it) */
  int held;
} a0_sig_hold;

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (a signal sent meanwhile stays
 * pending): 0, or pthread_sigmask's error. Threads started before keep their own mask. */
int a0_sig_hold_stop(a0_sig_hold *h);
/* Unblocks the stop signals a0_sig_hold_stop blocked, no other (once; a pending stop signal
 * is delivered then). Returns 1 when it was held, 0 otherwise. */
int a0_sig_release(a0_sig_hold *h);
/* Blocks every signal in the calling thread, saving the mask in *old: a thread created
 * meanwhile inherits it, so a library thread never takes the process's signals. */
int a0_sig_block_all(sigset_t *old);

#endif
