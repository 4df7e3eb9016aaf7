# C unit tests (csrc/test/test_*.c), no Lua. Included from the Makefile:
#   make ctest                     build and run every test with ASan+UBSan
#   make ctest CTESTS=test_http    only some of them
# tsan_test_http is test_http again under ThreadSanitizer (clang): the engine's I/O thread.
# tsan_test_crypto: test_crypto under it too (the RS256 verification worker and its jobs).
# Each test prints a last line "N passed, N failed"; ctest adds them up into
# "ctest: N passed, N failed" and fails if any test failed, crashed or printed no summary.

CTEST_CC     ?= gcc
CTEST_DIR    := build/ctest
CTEST_SRCS   := $(wildcard csrc/test/test_*.c)
CTESTS       ?= $(basename $(notdir $(CTEST_SRCS))) tsan_test_http
CTESTS       += tsan_test_store
CTESTS       += tsan_test_crypto
CTESTS       += tsan_test_worker
CTEST_CFLAGS := -std=c99 -Wall -Wextra -g -O1 -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
                -D_POSIX_C_SOURCE=200809L -DA0_TEST_HOOKS -Icsrc $(shell pkg-config --cflags libcurl 2>/dev/null)
# Every test links the whole engine (never the Lua binding).
CTEST_ENGINE := $(filter-out csrc/l_%.c,$(wildcard csrc/*.c))
CTEST_LIBS   := -pthread $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl) -lcrypto -lqrencode
# test_buf watches free() to check that released blocks were wiped first
CTEST_LDFLAGS_test_buf := -Wl,--wrap=free
# test_store watches the wipe of a store job's data block the same way (not under TSan)
CTEST_LDFLAGS_test_store := -DA0_WATCH_FREE -Wl,--wrap=free

.PHONY: ctest

$(CTEST_DIR)/tsan_test_%: csrc/test/test_%.c $(CTEST_ENGINE) $(wildcard csrc/*.h)
	@mkdir -p $(dir $@)
	clang -std=c99 -Wall -Wextra -g -O1 -fsanitize=thread -D_POSIX_C_SOURCE=200809L -DA0_TEST_HOOKS -Icsrc \
	  $(shell pkg-config --cflags libcurl 2>/dev/null) -o $@ $< $(CTEST_ENGINE) $(CTEST_LIBS)

$(CTEST_DIR)/test_%: csrc/test/test_%.c $(CTEST_ENGINE) $(wildcard csrc/*.h)
	@mkdir -p $(dir $@)
	$(CTEST_CC) $(CTEST_CFLAGS) -o $@ $< $(CTEST_ENGINE) $(CTEST_LDFLAGS_$(notdir $@)) $(CTEST_LIBS)

ctest: $(addprefix $(CTEST_DIR)/,$(CTESTS))
	@p=0; f=0; for t in $(CTESTS); do \
	  echo "== $$t"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 $(CTEST_DIR)/$$t > $(CTEST_DIR)/$$t.log 2>&1; rc=$$?; \
	  cat $(CTEST_DIR)/$$t.log; \
	  last=$$(tail -n 1 $(CTEST_DIR)/$$t.log); \
	  np=$$(echo "$$last" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\1/p'); \
	  nf=$$(echo "$$last" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\2/p'); \
	  if [ -z "$$np" ]; then np=0; nf=1; echo "$$t: no summary line (exit $$rc)"; \
	  elif [ $$rc -ne 0 ] && [ "$$nf" = 0 ]; then nf=1; echo "$$t: exit $$rc"; fi; \
	  p=$$((p + np)); f=$$((f + nf)); \
	done; \
	echo "ctest: $$p passed, $$f failed"; [ $$f -eq 0 ]
