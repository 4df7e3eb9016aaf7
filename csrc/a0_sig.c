/* Signal masks (a0_sig.h). Pure C. */
#include "a0_sig.h"

#include <pthread.h>

int a0_sig_hold_stop(a0_sig_hold *h) {
  sigset_t stop;
  int rc;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  rc = pthread_sigmask(SIG_BLOCK, &stop, &h->old);
  h->held = rc == 0;
  /* only what this hold blocked is released: a signal blocked before it (by the host, or by an
   * outer hold) stays blocked, and a release out of order never blocks them again for good */
  sigemptyset(&h->added);
  if (rc == 0) {
    if (!sigismember(&h->old, SIGTERM)) sigaddset(&h->added, SIGTERM);
    if (!sigismember(&h->old, SIGINT)) sigaddset(&h->added, SIGINT);
    if (!sigismember(&h->old, SIGHUP)) sigaddset(&h->added, SIGHUP);
  }
  return rc;
}

int a0_sig_release(a0_sig_hold *h) {
  if (!h->held) return 0;
  h->held = 0;
  pthread_sigmask(SIG_UNBLOCK, &h->added, NULL);
  return 1;
}

int a0_sig_block_all(sigset_t *old) {
  sigset_t all;
  sigfillset(&all);
  return pthread_sigmask(SIG_BLOCK, &all, old);
}
