# lua-auth0. `make` builds the Lua 5.4 module, `make LUA=luajit` (or `make luajit`) the
# LuaJIT one, each into its own folder. Variable names follow LuaRocks' so that
# `luarocks make` can drive this file.

LUA        ?= lua5.4
CC         ?= cc
PKGS       := lua5.4 liblua5.4-dev libcurl4-openssl-dev libssl-dev lua-cjson lua-busted \
              luarocks lua-check nginx libnginx-mod-http-lua lua-resty-core luajit2 \
              libluajit2-5.1-dev oathtool openssl lua-socket lua-sec valgrind clang libclang-rt-14-dev gcc make wrk stress

ifeq ($(LUA),luajit)
LUA_INCDIR ?= /usr/include/luajit-2.1
BUILD      ?= build/luajit
else
LUA_INCDIR ?= /usr/include/lua5.4
BUILD      ?= build/lua5.4
endif

CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
WARN        := -std=c99 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
               -Wpointer-arith -Wcast-qual
CFLAGS      ?= -O2 -g
LIBFLAG     ?= -shared
ALL_CFLAGS  := $(CFLAGS) $(WARN) -pthread -fPIC -D_POSIX_C_SOURCE=200809L -I$(LUA_INCDIR) $(CURL_CFLAGS)
# Never -llua: the host program (lua5.4, luajit, nginx, a game) provides the Lua symbols.
LIBS        := $(CURL_LIBS) -lcrypto -lqrencode -pthread

ENGINE_SRC  := $(filter-out csrc/l_%.c,$(wildcard csrc/*.c))
BIND_SRC    := $(wildcard csrc/l_*.c)
HDRS        := $(wildcard csrc/*.h)
MODULE      := $(BUILD)/auth0/core.so

# QR codes (libqrencode; zbarimg and ImageMagick decode them in spec/qr_spec.lua), LÖVE
# and Xvfb for examples/love
PKGS += libqrencode-dev zbar-tools imagemagick love xvfb
PKGS += lua-argparse bsdutils

INST_PREFIX ?= /usr/local
# LuaJIT (LÖVE, OpenResty) loads modules from the Lua 5.1 directories
INST_LIBDIR ?= $(INST_PREFIX)/lib/lua/$(if $(filter luajit,$(LUA)),5.1,5.4)
INST_LUADIR ?= $(INST_PREFIX)/share/lua/$(if $(filter luajit,$(LUA)),5.1,5.4)
# the `auth0` command runs on Lua 5.4: installed with the Lua 5.4 module only
INSTALL_CLI ?= $(if $(filter luajit,$(LUA)),no,yes)
INST_BINDIR ?= $(INST_PREFIX)/bin
INST_COMPDIR ?= $(INST_PREFIX)/share/bash-completion/completions

.PHONY: all luajit asan-build deps test demo emulator lint asan valgrind install clean bench fuzz ctest

all: $(MODULE)

$(MODULE): $(ENGINE_SRC) $(BIND_SRC) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) -o $@ $(ENGINE_SRC) $(BIND_SRC) $(LIBS)

luajit:
	$(MAKE) LUA=luajit

# ASan+UBSan build of the Lua 5.4 module, loaded by the stock lua5.4 with the runtime preloaded.
asan-build:
	$(MAKE) BUILD=build/asan CC=gcc \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -DA0_STORE_FAULTS"
	@mkdir -p build/asan
	@printf 'int dlclose(void *h){(void)h;return 0;}\n' > build/asan/nodlclose.c
	$(CC) -shared -fPIC -o build/asan/nodlclose.so build/asan/nodlclose.c

# Installs what is missing (as root), or prints the apt line and fails.
deps:
	@missing=$$(for p in $(PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
	  echo "missing packages; run as root:"; \
	  echo "  apt-get update && apt-get install -y $$missing"; exit 1; \
	fi

test: deps
	$(MAKE) all
	$(MAKE) luajit
	$(MAKE) asan-build
	$(MAKE) test-build
	bash spec/run.sh

lint: deps
	luacheck -q lua spec examples bench

asan: deps asan-build
	A0_PASSES=asan bash spec/run.sh

valgrind: deps all luajit
	A0_PASSES=valgrind bash spec/run.sh

# Lua 5.4 with this checkout's modules first on the paths
RUN_LUA := LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" LUA_CPATH="$(CURDIR)/build/lua5.4/?.so;;" lua5.4

emulator: deps all luajit
	$(RUN_LUA) lua/auth0/emulator/cli.lua

demo: deps all luajit
	$(RUN_LUA) examples/passwordless.lua
	@if [ -f examples/mfa.lua ]; then $(RUN_LUA) examples/mfa.lua; fi

bench: deps all luajit
	$(RUN_LUA) bench/passwordless.lua

install: all
	install -d $(DESTDIR)$(INST_LIBDIR)/auth0 $(DESTDIR)$(INST_LUADIR)/auth0
	install -m 0755 $(MODULE) $(DESTDIR)$(INST_LIBDIR)/auth0/core.so
	cd lua && find auth0 -name '*.lua' -exec install -D -m 0644 {} $(DESTDIR)$(INST_LUADIR)/{} \;
ifeq ($(INSTALL_CLI),yes)
	install -d $(DESTDIR)$(INST_BINDIR) $(DESTDIR)$(INST_COMPDIR)
	install -m 0755 bin/auth0 $(DESTDIR)$(INST_BINDIR)/auth0
	LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;" lua5.4 -e 'io.write(require("auth0.cli").parser():get_bash_complete())' \
	  > $(DESTDIR)$(INST_COMPDIR)/auth0
endif

.PHONY: install-luajit
install-luajit:
	$(MAKE) install LUA=luajit

# The LÖVE login screen (examples/love) against the bundled emulator: with a display you play
# it; without one (or with AUTOPILOT=1) its autopilot plays it under Xvfb (examples/love/drive.lua:
# a login, then a restart that must skip it thanks to the stored credentials, then the logout).
.PHONY: love-demo
love-demo: deps all luajit
	@if [ -n "$$DISPLAY" ] && [ -z "$(AUTOPILOT)" ]; then A0_ROOT=$(CURDIR) love examples/love; \
	else A0_ROOT=$(CURDIR) lua5.4 examples/love/drive.lua; fi

clean:
	rm -rf build

# C unit tests and fuzzing (mk/ctest.mk, mk/fuzz.mk)
-include $(wildcard mk/*.mk)

# API reference (LDoc; Debian strips its markdown formatter into lua-markdown) into build/docs/.
# Any LDoc warning fails the target; spec/run.sh runs the same check in `make test`.
PKGS += lua-ldoc lua-markdown
.PHONY: docs
docs: deps
	rm -rf build/docs
	ldoc -q --fatalwarnings -c config.ld .

# luarocks make (rockspec/): one build folder per Lua header set (lua5.4, luajit-2.1, ...), emptied
# before every build, so a rock never ships a module compiled against another Lua.
ROCK_BUILD = build/rock/$(notdir $(patsubst %/,%,$(LUA_INCDIR)))
.PHONY: rock rock-install
rock:
	@! grep -qs 'define LUA_VERSION_NUM.*501' $(LUA_INCDIR)/lua.h || test -f $(LUA_INCDIR)/luajit.h || \
	  { echo "lua-auth0 needs Lua 5.2-5.4 or LuaJIT 2.1; PUC Lua 5.1 is not supported ($(LUA_INCDIR))" >&2; exit 1; }
	rm -rf $(ROCK_BUILD)
	$(MAKE) all BUILD=$(ROCK_BUILD)
rock-install:
	$(MAKE) install BUILD=$(ROCK_BUILD) \
	  INSTALL_CLI=$(if $(shell grep -qs 'define LUA_VERSION_NUM.*504' $(LUA_INCDIR)/lua.h && echo y),yes,no)

# The Lua 5.4 and LuaJIT modules again with the store's test-only fault points (A0_STORE_FAULT,
# csrc/l_store.c), for the specs' child processes (spec/support/util.lua fault_cpath); `all`
# and `luajit` never have them.
.PHONY: test-build
test-build:
	$(MAKE) BUILD=build/test/lua5.4 CFLAGS="-O2 -g -DA0_STORE_FAULTS"
	$(MAKE) LUA=luajit BUILD=build/test/luajit CFLAGS="-O2 -g -DA0_STORE_FAULTS"
