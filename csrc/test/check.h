/* The tally every C unit test keeps: CHECK(&t, cond) counts, and prints the line of a failure. */
#ifndef A0_TEST_CHECK_H
#define A0_TEST_CHECK_H

#include <stdio.h>

typedef struct {
  int passed, failed;
} tally;

static void check(tally *t, int ok, const char *what, int line) {
  if (ok) {
    t->passed++;
  } else {
    t->failed++;
    printf("FAIL line %d: %s\n", line, what);
  }
}

#define CHECK(t, cond) check((t), (cond) ? 1 : 0, #cond, __LINE__)

#endif
