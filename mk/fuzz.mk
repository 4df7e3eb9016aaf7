# libFuzzer targets (csrc/fuzz/). Included from the Makefile:
#   make fuzz                      build every target into build/fuzz/
#   make fuzz-smoke                run each for FUZZ_SECONDS against its seed corpus
#   make fuzz-smoke FUZZ_SECONDS=300 FUZZ_TARGETS=fuzz_lua
# New inputs found by a run go to build/fuzz/corpus/<target>/ (the committed seeds in
# csrc/fuzz/corpus/ are only read); crashes go to build/fuzz/artifacts/.

FUZZ_CC       ?= clang
FUZZ_SECONDS  ?= 30
FUZZ_DIR      := build/fuzz
FUZZ_TARGETS  ?= fuzz_enc fuzz_body fuzz_header fuzz_codec fuzz_lua fuzz_seal fuzz_listen
FUZZ_SAN      := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                 -fno-omit-frame-pointer
FUZZ_CFLAGS   := $(FUZZ_SAN) -std=c99 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -Icsrc \
                 $(shell pkg-config --cflags libcurl 2>/dev/null)
FUZZ_LUA_INC  := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
FUZZ_LUA_LIB  := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
FUZZ_CURL_LIB := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
FUZZ_ENGINE   := $(filter-out csrc/l_%.c,$(wildcard csrc/*.c))
FUZZ_BIND     := $(wildcard csrc/l_*.c)
FUZZ_HDRS     := $(wildcard csrc/*.h)

# per target: -max_len and extra libFuzzer flags
FUZZ_MAXLEN_fuzz_enc    := 4096
FUZZ_MAXLEN_fuzz_body   := 4096
FUZZ_MAXLEN_fuzz_header := 1024
FUZZ_MAXLEN_fuzz_codec  := 2048
FUZZ_MAXLEN_fuzz_lua    := 4096
FUZZ_MAXLEN_fuzz_seal   := 2048
FUZZ_MAXLEN_fuzz_listen := 9000
FUZZ_OPTS_fuzz_lua      := -dict=csrc/fuzz/fuzz_lua.dict

.PHONY: fuzz fuzz-smoke

fuzz: $(addprefix $(FUZZ_DIR)/,$(FUZZ_TARGETS))

$(FUZZ_DIR)/fuzz_enc: csrc/fuzz/fuzz_enc.c csrc/a0_enc.c csrc/a0_buf.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lcrypto

$(FUZZ_DIR)/fuzz_body: csrc/fuzz/fuzz_body.c csrc/a0_body.c csrc/a0_enc.c csrc/a0_buf.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lcrypto

$(FUZZ_DIR)/fuzz_header: csrc/fuzz/fuzz_header.c csrc/a0_http.c csrc/a0_easy.c csrc/a0_buf.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_CURL_LIB) -lcrypto

$(FUZZ_DIR)/fuzz_codec: csrc/fuzz/fuzz_codec.c csrc/a0_crypto.c csrc/a0_worker.c csrc/a0_sig.c csrc/a0_buf.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lcrypto

$(FUZZ_DIR)/fuzz_seal: csrc/fuzz/fuzz_seal.c csrc/a0_seal.c csrc/a0_buf.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lcrypto

$(FUZZ_DIR)/fuzz_listen: csrc/fuzz/fuzz_listen.c csrc/a0_listen.c csrc/a0_buf.c $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lcrypto

# Embeds Lua 5.4 and links the whole module (instrumented) into the binary: fine for a
# fuzz program, never for the module itself.
$(FUZZ_DIR)/fuzz_lua: csrc/fuzz/fuzz_lua.c $(FUZZ_ENGINE) $(FUZZ_BIND) $(FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_LUA_INC) -DFUZZ_LUA_DIR='"$(CURDIR)/lua"' \
	  -DFUZZ_CPATH='"$(CURDIR)/build/lua5.4/?.so;/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;/usr/lib/lua/5.4/?.so"' \
	  -o $@ $(filter %.c,$^) $(FUZZ_LUA_LIB) $(FUZZ_CURL_LIB) -lcrypto -lqrencode -lm

# One line per target: "<target>: <execs> execs in <s> s, cov: <n> ft: <n> corp: <n>".
fuzz-smoke: fuzz
	@mkdir -p $(FUZZ_DIR)/artifacts
	@fail=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  log=$(FUZZ_DIR)/$$t.log; \
	  opts=""; case $$t in \
	    fuzz_enc) opts="-max_len=$(FUZZ_MAXLEN_fuzz_enc)";; \
	    fuzz_body) opts="-max_len=$(FUZZ_MAXLEN_fuzz_body)";; \
	    fuzz_header) opts="-max_len=$(FUZZ_MAXLEN_fuzz_header)";; \
	    fuzz_codec) opts="-max_len=$(FUZZ_MAXLEN_fuzz_codec)";; \
	    fuzz_seal) opts="-max_len=$(FUZZ_MAXLEN_fuzz_seal)";; \
	    fuzz_listen) opts="-max_len=$(FUZZ_MAXLEN_fuzz_listen)";; \
	    fuzz_lua) opts="-max_len=$(FUZZ_MAXLEN_fuzz_lua) $(FUZZ_OPTS_fuzz_lua)";; \
	  esac; \
	  $(FUZZ_DIR)/$$t $$opts -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- \
	    $(FUZZ_DIR)/corpus/$$t csrc/fuzz/corpus/$$t > $$log 2>&1; rc=$$?; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log | tail -n 1); \
	  cov=$$(grep -E '^#[0-9]+.*cov: ' $$log | tail -n 1 | sed -E 's/^#[0-9]+[[:space:]]+[A-Z]+[[:space:]]+//; s/[[:space:]]+(lim|exec\/s|rss|L|MS):.*//'); \
	  secs=$$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' $$log | tail -n 1); \
	  if [ $$rc -eq 0 ]; then \
	    echo "$$t: $${execs:-?} execs in $${secs:-?} s, $$cov"; \
	  else \
	    echo "$$t: FAILED (exit $$rc), see $$log"; tail -n 30 $$log; fail=1; \
	  fi; \
	done; exit $$fail
