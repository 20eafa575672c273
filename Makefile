# postmortembot — build, test, install. `make deps` installs the Debian packages; `make` builds
# bin/postmortembot; `make check` runs every test and ends with "N passed, N failed".
PREFIX  ?= /usr/local
DESTDIR ?=
CC      ?= cc
PKGS    := libwebsockets libuv libcurl lua5.4 lua5.4-cjson libarchive openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.1.0)
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Icore $(PKG_CFLAGS) -DPMB_VERSION='"$(VERSION)"'
LDLIBS  += $(PKG_LIBS) -lm

DEBIAN_PKGS := build-essential pkg-config libwebsockets-dev libwebsockets-evlib-uv libuv1-dev \
  libcurl4-openssl-dev liblua5.4-dev lua5.4 lua-cjson lua-cjson-dev libarchive-dev libssl-dev \
  libcmocka-dev lua-busted cmark python3 tzdata ca-certificates unzip clang-format \
  clang libclang-rt-14-dev nodejs

CORE_SRC := $(wildcard core/*.c core/*/*.c)
CORE_HDR := $(wildcard core/*/*.h)
CORE_OBJ := $(patsubst core/%.c,build/core/%.o,$(CORE_SRC))
LIB_OBJ  := $(filter-out build/core/main.o,$(CORE_OBJ))
ASAN_OBJ := $(patsubst core/%.c,build/asan/%.o,$(CORE_SRC))
TEST_SRC := $(wildcard tests/c/test_*.c)
TEST_BIN := $(patsubst tests/c/%.c,build/tests/%,$(TEST_SRC))

.PHONY: all deps check asan unit fmt fmt-check demo bench install clean fuzz fuzz-build torture
all: bin/postmortembot

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

bin/postmortembot: $(CORE_OBJ)
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/core/%.o: core/%.c $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# AddressSanitizer + UndefinedBehaviorSanitizer build, used by the integration tests in `make check`.
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan: bin/postmortembot-asan
bin/postmortembot-asan: $(ASAN_OBJ)
	@mkdir -p bin
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -o $@ $^ $(LDLIBS)
build/asan/%.o: core/%.c $(CORE_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -c -o $@ $<

build/tests/%: tests/c/%.c $(LIB_OBJ)
	@mkdir -p build/tests
	$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS) -lcmocka

unit: $(TEST_BIN)

check: bin/postmortembot bin/postmortembot-asan $(TEST_BIN)
	@python3 tests/run_all.py

fmt:
	clang-format -i $(CORE_SRC) $(CORE_HDR) tests/c/*.c
fmt-check:
	@clang-format --dry-run -Werror $(CORE_SRC) $(CORE_HDR) tests/c/*.c

demo: deps bin/postmortembot
	@python3 tools/demo.py

# Every bench/*.sh under a header, going on when one fails (bench/run_all.sh); figures only.
bench: bin/postmortembot
	@sh bench/run_all.sh

install: bin/postmortembot
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/postmortembot \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/etc/postmortembot
	install -m 755 bin/postmortembot $(DESTDIR)$(PREFIX)/bin/postmortembot
	cp -R scripts templates $(DESTDIR)$(PREFIX)/share/postmortembot/
	sed -e 's|"\.\./scripts"|"$(PREFIX)/share/postmortembot/scripts"|' \
	    -e 's|"\.\./templates"|"$(PREFIX)/share/postmortembot/templates"|' \
	    -e 's|"\.\./var"|"/var/lib/postmortembot"|' \
	    config/postmortembot.lua > $(DESTDIR)$(PREFIX)/etc/postmortembot/postmortembot.lua
	install -m 644 docs/postmortembot.1 $(DESTDIR)$(PREFIX)/share/man/man1/postmortembot.1

# libFuzzer harnesses (tests/fuzz/*.c, Debian's clang) and the Lua converter fuzz driver.
# `make fuzz` runs each for FUZZ_SECONDS on one core, corpora under build/fuzz/ seeded from
# tests/fuzz/seeds/; `make check` runs them briefly (tests/run_all.py, suite fuzz-short).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 120
FUZZ_FLAGS   := -Wall -Wextra -Werror -g -O1 -std=c11 -D_GNU_SOURCE -Icore $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined
FUZZ_BIN     := build/fuzz/fuzz_http build/fuzz/fuzz_zipnames
fuzz-build: $(FUZZ_BIN)
build/fuzz/fuzz_http: tests/fuzz/fuzz_http.c core/http/http_pure.c core/http/http.h core/http/http_pure.h
	@mkdir -p build/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_http.c core/http/http_pure.c $(PKG_LIBS)
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
build/torture/%: tests/c/%.c tests/torture/failmalloc.c $(filter-out build/asan/main.o,$(ASAN_OBJ))
	@mkdir -p build/torture
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -o $@ $< tests/torture/failmalloc.c \
	  $(filter-out build/asan/main.o,$(ASAN_OBJ)) $(TORTURE_WRAP) $(LDLIBS) -lcmocka

clean:
	rm -rf build bin
