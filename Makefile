# postmortembot — build, test, install. `make demo` and `make check` work as the first command on
# a fresh Debian 12: they install what is missing (`make deps`), then build in a sub-make whose
# flags are computed after the install. `make` builds bin/postmortembot; `make check` runs every
# test and ends with "N passed, N failed, N skipped". CFLAGS is yours (`make CFLAGS=-O0`).
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PKGS    := libwebsockets libuv libcurl lua5.4 lua5.4-cjson libarchive openssl libpq
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.1.0)
CFLAGS  ?= -O2 -g
# The project's own flags, kept apart from CFLAGS so that overriding CFLAGS never drops them.
# pkg-config runs when this Makefile is read: the targets that install first re-run make.
PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
PMB_CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Icore -Ibuild/gen $(PKG_CFLAGS) \
               -DPMB_VERSION='"$(VERSION)"' -DPMB_PREFIX='"$(PREFIX)"'
PMB_LDLIBS  := $(PKG_LIBS) -lm
ALL_CFLAGS   = $(PMB_CFLAGS) $(CFLAGS)

DEBIAN_PKGS := build-essential pkg-config libwebsockets-dev libwebsockets-evlib-uv libuv1-dev \
  libcurl4-openssl-dev liblua5.4-dev lua5.4 lua-cjson lua-cjson-dev libarchive-dev libssl-dev libjemalloc-dev \
  libcmocka-dev lua-busted lua-check cmark python3 tzdata ca-certificates unzip clang-format \
  git librsvg2-bin chromium lighttpd python3-aiosmtpd postgresql libpq-dev clang libclang-rt-14-dev \
  nodejs

CORE_SRC := $(wildcard core/*.c core/*/*.c)
CORE_HDR := $(wildcard core/*.h core/*/*.h)
CORE_OBJ := $(patsubst core/%.c,build/core/%.o,$(CORE_SRC))
LIB_OBJ  := $(filter-out build/core/main.o,$(CORE_OBJ))
ASAN_OBJ := $(patsubst core/%.c,build/asan/%.o,$(CORE_SRC))
TEST_SRC := $(wildcard tests/c/test_*.c)
TEST_BIN := $(patsubst tests/c/%.c,build/tests/%,$(TEST_SRC))
# Lua compiled into the binary (host_gen.c includes them): the boot chunk and the config schema.
BOOT_LUA := core/host/boot.lua scripts/lib/config_schema.lua
BOOT_INC := build/gen/boot.lua.inc build/gen/config_schema.lua.inc
# The schema's migrations, compiled in too (core/db/migrate.c includes them).
MIGRATIONS := $(sort $(wildcard db/migrations/*.sql))
BOOT_INC += build/gen/migrations.inc
.SECONDARY: $(BOOT_INC)

.PHONY: all deps need-deps check check-run asan unit fmt fmt-check lint readme demo dev bench install \
  clean fuzz fuzz-build torture
all: need-deps bin/postmortembot

# Installs only the packages that are missing; runs apt-get update only when something must be
# installed (sudo when not root).
deps:
	@missing=""; \
	for p in $(DEBIAN_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all $(words $(DEBIAN_PKGS)) packages present"; exit 0; fi; \
	echo "deps: installing$$missing"; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing

# A build without the libraries would fail on the first #include: say what to do instead.
need-deps:
	@if [ -z "$(PKG_LIBS)" ]; then \
	  echo "postmortembot: the build libraries are missing (pkg-config knows none of: $(PKGS))."; \
	  echo "Run 'make deps' (or 'make demo' / 'make check', which install them first)."; exit 1; fi

# The bot's malloc is jemalloc (as Redis's): the Lua heap makes millions of small allocations, and
# glibc's malloc took a fifth of a big report's time (issue 18: the 20,000-message render ~20%
# faster, peak RSS +1 MB). Only the release binary: the sanitizer and torture builds keep glibc's,
# which their tools wrap.
MALLOC_LIBS := -ljemalloc
bin/postmortembot: $(CORE_OBJ)
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(PMB_LDLIBS) $(MALLOC_LIBS) $(LDLIBS)

build/core/%.o: core/%.c $(CORE_HDR) $(BOOT_INC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/gen/%.lua.inc: core/host/%.lua tools/lua2inc.py
	@mkdir -p build/gen
	python3 tools/lua2inc.py $< $@
build/gen/%.lua.inc: scripts/lib/%.lua tools/lua2inc.py
	@mkdir -p build/gen
	python3 tools/lua2inc.py $< $@

build/gen/migrations.inc: $(MIGRATIONS) tools/sql2inc.py
	@mkdir -p build/gen
	python3 tools/sql2inc.py $@ $(MIGRATIONS)

# AddressSanitizer + UndefinedBehaviorSanitizer build, used by the integration tests in `make check`.
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan: need-deps bin/postmortembot-asan
bin/postmortembot-asan: $(ASAN_OBJ)
	@mkdir -p bin
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) $(LDFLAGS) -o $@ $^ $(PMB_LDLIBS) $(LDLIBS)
build/asan/%.o: core/%.c $(CORE_HDR) $(BOOT_INC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -c -o $@ $<

build/tests/%: tests/c/%.c $(LIB_OBJ)
	@mkdir -p build/tests
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(PMB_LDLIBS) $(TEST_MALLOC_LIBS) $(LDLIBS) -lcmocka
# The other unit tests keep glibc's malloc; the render's arena (core/host/batch_arena.c) is jemalloc's.
build/tests/test_batch_arena: TEST_MALLOC_LIBS := $(MALLOC_LIBS)

unit: need-deps $(TEST_BIN)

# deps first, then a sub-make that reads this Makefile again with the libraries installed.
check: deps
	@$(MAKE) --no-print-directory check-run
check-run: need-deps bin/postmortembot bin/postmortembot-asan $(TEST_BIN)
	@python3 tests/run_all.py

fmt:
	clang-format -i $(CORE_SRC) $(CORE_HDR) tests/c/*.c
fmt-check:
	@clang-format --dry-run -Werror $(CORE_SRC) $(CORE_HDR) tests/c/*.c
lint:
	@luacheck -q scripts tests/lua tools core/host/boot.lua
# README's config reference, regenerated from scripts/lib/config_schema.lua (make check compares).
readme:
	@mkdir -p build
	lua5.4 tools/config-doc.lua README.md > build/README.md && mv build/README.md README.md

demo: deps
	@$(MAKE) --no-print-directory need-deps bin/postmortembot
	@python3 tools/demo.py

# The fake Slack and the bot in the foreground, for trying a script or a template by hand.
dev: deps
	@$(MAKE) --no-print-directory need-deps bin/postmortembot
	@python3 tools/dev.py

# Every bench/*.sh under a header, going on when one fails (bench/run_all.sh); figures only.
bench: need-deps bin/postmortembot
	@sh bench/run_all.sh

# Like Debian's conffiles: an existing config, script or template the operator may have edited is
# never overwritten; the new one goes beside it as FILE.dist, and the install says so.
SHARE := $(DESTDIR)$(PREFIX)/share/postmortembot
ETC   := $(DESTDIR)$(PREFIX)/etc/postmortembot
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE) $(DESTDIR)$(PREFIX)/share/man/man1 $(ETC)
	install -m 755 bin/postmortembot $(DESTDIR)$(PREFIX)/bin/postmortembot
	install -m 644 docs/postmortembot.1 $(DESTDIR)$(PREFIX)/share/man/man1/postmortembot.1
	@mkdir -p build
	@sed -e 's|"\.\./scripts"|"$(PREFIX)/share/postmortembot/scripts"|' \
	    -e 's|"\.\./templates"|"$(PREFIX)/share/postmortembot/templates"|' \
	    -e 's|"\.\./var"|"/var/lib/postmortembot"|' \
	    config/postmortembot.lua > build/postmortembot.lua.install
	@rm -f $(SHARE)/.installed.new
	@sh tools/install-conffile.sh build/postmortembot.lua.install $(ETC)/postmortembot.lua \
	  $(SHARE)/.installed
	@for f in $$(find scripts templates -type f | sort); do \
	  sh tools/install-conffile.sh $$f $(SHARE)/$$f $(SHARE)/.installed || exit 1; done
	@mv $(SHARE)/.installed.new $(SHARE)/.installed

# libFuzzer harnesses (tests/fuzz/*.c, Debian's clang) and the Lua converter fuzz driver.
# `make fuzz` runs each for FUZZ_SECONDS on one core, corpora under build/fuzz/ seeded from
# tests/fuzz/seeds/; `make check` runs them briefly (tests/run_all.py, suite fuzz-short).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 120
FUZZ_FLAGS   := -Wall -Wextra -Werror -g -O1 -std=c11 -D_GNU_SOURCE -Icore $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined
FUZZ_BIN     := build/fuzz/fuzz_http build/fuzz/fuzz_zipnames build/fuzz/fuzz_envelope
fuzz-build: $(FUZZ_BIN)
build/fuzz/fuzz_http: tests/fuzz/fuzz_http.c core/http/http_pure.c core/http/http.h core/http/http_pure.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_http.c core/http/http_pure.c $(PKG_LIBS)
build/fuzz/fuzz_envelope: tests/fuzz/fuzz_envelope.c core/net/envelope.c core/base/json.c core/net/envelope.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_envelope.c core/net/envelope.c core/base/json.c $(PKG_LIBS)
build/fuzz/fuzz_zipnames: tests/fuzz/fuzz_zipnames.c core/base/zipbundle.c core/base/zipbundle.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_zipnames.c core/base/zipbundle.c $(PKG_LIBS)
fuzz: fuzz-build
	@for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
	  echo "== $$n ($(FUZZ_SECONDS) s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/corpus-$$n tests/fuzz/seeds/$$n \
	    2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY|Done" || exit 1; done
	@lua5.4 tests/fuzz/converters.lua --seconds $(FUZZ_SECONDS)

# Allocation-failure torture (tests/torture/): the Nth malloc fails, for every N in range.
TORTURE_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup
torture:
	@python3 tests/torture/run_torture.py
	@PMB_TORTURE_E2E_C=$${PMB_TORTURE_E2E_C:-all} PMB_TORTURE_E2E_RUNS=$${PMB_TORTURE_E2E_RUNS:-400} \
	  python3 tests/torture/e2e_autopsy.py
build/torture/%: tests/c/%.c tests/torture/failmalloc.c $(filter-out build/asan/main.o,$(ASAN_OBJ))
	@mkdir -p build/torture
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -o $@ $< tests/torture/failmalloc.c \
	  $(filter-out build/asan/main.o,$(ASAN_OBJ)) $(TORTURE_WRAP) $(PMB_LDLIBS) $(LDLIBS) -lcmocka

# The whole bot with the same allocator shim, for the e2e autopsy under allocation failures. Its
# Lua allocator (budget.c) calls failmalloc_lua_realloc instead of realloc: the Lua heap is counted
# apart from the C code's allocations (tests/torture/failmalloc.c).
TORTURE_BOT_OBJ := $(filter-out build/asan/host/budget.o,$(ASAN_OBJ)) build/torture/budget.o
build/torture/budget.o: core/host/budget.c $(CORE_HDR)
	@mkdir -p build/torture
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -Drealloc=failmalloc_lua_realloc -c -o $@ $<
build/torture/postmortembot: tests/torture/failmalloc.c $(TORTURE_BOT_OBJ)
	@mkdir -p build/torture
	$(CC) $(ALL_CFLAGS) $(ASAN_FLAGS) -o $@ tests/torture/failmalloc.c $(TORTURE_BOT_OBJ) $(TORTURE_WRAP) \
	  $(PMB_LDLIBS) $(LDLIBS)

clean:
	rm -rf build bin
