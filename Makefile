# hostflow - build, test, install. See README.md.
CC ?= cc
PKG_CONFIG ?= pkg-config
PREFIX ?= /usr/local
DESTDIR ?=

BUILD := build
# core/'s folders, each a layer that includes only those after it (core/README.md)
LAYERS := cli hosted api http webhook policy store lib
PKGS := lua5.4 sqlite3 libpq libsodium jansson libcurl
HF_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow \
             -Wstrict-prototypes -Wmissing-prototypes -MMD -MP \
             -Icore $(addprefix -Icore/,$(LAYERS)) \
             $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
# civetweb ships no .pc file
HF_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lcivetweb -lpthread -lm
CFLAGS ?= -O2 -g

# Sources per layer (core/*/README.md: what each owns and may include).
# Objects land flat in $(BUILD): every file name is unique across core/.
CORE_SRCS := main.c config.c
CLI_SRCS := cli.c cli_list.c cli_policy.c cli_events.c admin_client.c
HOSTED_SRCS := hosted.c hosted_pages.c processor.c processor_test.c processor_checkout.c
API_SRCS := api.c webhook_api.c events_api.c ratelimit.c worker.c
HTTP_SRCS := http.c bigstack.c framing.c admin.c
WEBHOOK_SRCS := webhook.c webhook_secret.c httpc.c
# the engine's files (core/policy/README.md), linked together by the tests too
POLICY_ENGINE_SRCS := policy_engine.c policy_state.c policy_limits.c policy_sandbox.c \
                      policy_call.c policy_examples.c
POLICY_SRCS := $(POLICY_ENGINE_SRCS) policy_source.c policy_strlib.c policy_tablib.c policy_charge.c pattern.c \
               policy_watch.c policy_store.c
STORE_SRCS := store.c store_sqlite.c store_pg.c access_cache.c expiry.c session_json.c
LIB_SRCS := url.c netaddr.c token.c json.c buf.c log.c err.c clock.c fdio.c metrics.c periodic.c
SRCS := $(CORE_SRCS) $(CLI_SRCS) $(HOSTED_SRCS) $(API_SRCS) $(HTTP_SRCS) $(WEBHOOK_SRCS) \
        $(POLICY_SRCS) $(STORE_SRCS) $(LIB_SRCS)
vpath %.c core $(LAYERS:%=core/%)
OBJS := $(SRCS:%.c=$(BUILD)/%.o)
# build/hostflow-test: the same objects but these two, compiled with
# -DHOSTFLOW_TEST_CLOCK (a clock tests move, POST /admin/v1/test/clock)
TEST_CLOCK_SRCS := clock.c admin.c
TEST_CLOCK_OBJS := $(TEST_CLOCK_SRCS:%.c=$(BUILD)/%.testclock.o)
TEST_OBJS := $(filter-out $(TEST_CLOCK_SRCS:%.c=$(BUILD)/%.o),$(OBJS)) $(TEST_CLOCK_OBJS)
C_TESTS := test_url test_buf test_json test_log test_pattern test_policy test_webhook test_token test_access_cache test_framing test_periodic
DEB_PACKAGES := build-essential pkg-config liblua5.4-dev lua5.4 lua-cjson \
                libcivetweb-dev libsqlite3-dev sqlite3 libpq-dev postgresql libsodium-dev \
                libjansson-dev libcurl4-openssl-dev lua-busted lua-socket curl wrk clang libclang-rt-14-dev \
                chromium python3 openssl ca-certificates strace prometheus

.PHONY: all test soak test-policies deps sanitize install uninstall clean fuzz

all: $(BUILD)/hostflow $(BUILD)/hostflow-test

$(BUILD)/hostflow: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJS) $(HF_LIBS)

$(BUILD)/hostflow-test: $(TEST_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(TEST_OBJS) $(HF_LIBS)

$(BUILD)/%.o: %.c | $(BUILD)
	$(CC) $(HF_CFLAGS) $(CFLAGS) -c -o $@ $<

$(TEST_CLOCK_OBJS): $(BUILD)/%.testclock.o: %.c | $(BUILD)
	$(CC) $(HF_CFLAGS) $(CFLAGS) -DHOSTFLOW_TEST_CLOCK -c -o $@ $<

# each unit test links only the modules it tests
$(BUILD)/test_url: $(BUILD)/url.o
$(BUILD)/test_buf: $(BUILD)/buf.o
$(BUILD)/test_framing: $(BUILD)/framing.o
$(BUILD)/test_periodic: $(BUILD)/periodic.o $(BUILD)/clock.o
$(BUILD)/test_token: $(BUILD)/token.o
$(BUILD)/test_access_cache: $(BUILD)/access_cache.o $(BUILD)/token.o
$(BUILD)/test_json: $(BUILD)/json.o $(BUILD)/buf.o $(BUILD)/err.o
$(BUILD)/test_log: $(BUILD)/log.o $(BUILD)/json.o $(BUILD)/buf.o
$(BUILD)/test_pattern: $(BUILD)/pattern.o $(BUILD)/policy_strlib.o
$(BUILD)/test_webhook: $(BUILD)/netaddr.o $(BUILD)/webhook_secret.o $(BUILD)/fdio.o $(BUILD)/token.o $(BUILD)/periodic.o \
    $(BUILD)/log.o $(BUILD)/json.o $(BUILD)/buf.o $(BUILD)/webhook.o $(BUILD)/httpc.o $(BUILD)/url.o \
    $(BUILD)/clock.o $(BUILD)/metrics.o $(BUILD)/session_json.o $(BUILD)/err.o \
    $(BUILD)/store.o $(BUILD)/store_sqlite.o $(BUILD)/store_pg.o $(BUILD)/access_cache.o
$(BUILD)/test_policy: $(POLICY_ENGINE_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/clock.o $(BUILD)/policy_source.o $(BUILD)/policy_strlib.o \
    $(BUILD)/policy_tablib.o $(BUILD)/policy_charge.o $(BUILD)/pattern.o $(BUILD)/metrics.o \
    $(BUILD)/url.o $(BUILD)/netaddr.o $(BUILD)/token.o $(BUILD)/log.o $(BUILD)/json.o $(BUILD)/buf.o $(BUILD)/err.o
$(BUILD)/bench_policy: tests/bench/bench_policy.c $(POLICY_ENGINE_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/clock.o $(BUILD)/policy_source.o \
    $(BUILD)/policy_strlib.o $(BUILD)/policy_tablib.o $(BUILD)/policy_charge.o $(BUILD)/pattern.o $(BUILD)/url.o $(BUILD)/netaddr.o \
    $(BUILD)/token.o $(BUILD)/log.o $(BUILD)/metrics.o \
    $(BUILD)/json.o $(BUILD)/buf.o $(BUILD)/err.o
	$(CC) $(HF_CFLAGS) $(CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDFLAGS) $(HF_LIBS)

$(BUILD)/test_%: tests/c/test_%.c | $(BUILD)
	$(CC) $(HF_CFLAGS) $(CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDFLAGS) $(HF_LIBS)

$(BUILD):
	mkdir -p $(BUILD)

# Everything: C units, then the HTTP integration suite against the binary.
# scripts/run-tests prints the closing "N passed, N failed" line.
test: all $(C_TESTS:%=$(BUILD)/%)
	scripts/run-tests $(BUILD)

# The long runs make test leaves out: the specs tagged #soak (30 s of load,
# 20 crash rounds) on SQLite and PostgreSQL, and every fuzzer for
# FUZZ_SECONDS (default 60); the same log scans and closing line.
soak: all
	scripts/run-tests $(BUILD) soak

# The busted specs of the policies alone.
test-policies:
	HOSTFLOW_ROOT=$(CURDIR) busted --lpath='tests/?.lua' tests/lua

# Debian packages, then playwright-core for the browser tests (Node.js 20
# and npm come with the machine; playwright drives Debian's chromium and
# downloads no browser).
deps:
	scripts/install-deps $(DEB_PACKAGES)
	cd tests/browser && npm ci --no-audit --no-fund

# ASan + UBSan build of the binary and the unit tests, then the whole suite.
# A small quarantine keeps freed memory from inflating RSS; HOSTFLOW_SANITIZE
# tells the memory-growth test that ASan's allocator adds its own slack.
sanitize:
	ASAN_OPTIONS=quarantine_size_mb=4:detect_leaks=1 HOSTFLOW_SANITIZE=1 \
	  $(MAKE) BUILD=build-sanitize CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" test

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/hostflow
	install -m 755 $(BUILD)/hostflow $(DESTDIR)$(PREFIX)/bin/hostflow
	install -d $(DESTDIR)$(PREFIX)/share/hostflow/policies/tenants
	install -m 644 policies.example.lua $(DESTDIR)$(PREFIX)/share/hostflow/
	install -m 644 policies/*.lua $(DESTDIR)$(PREFIX)/share/hostflow/policies/
	install -m 644 policies/tenants/README.md $(DESTDIR)$(PREFIX)/share/hostflow/policies/tenants/
	install -m 644 scripts/hostflow.service $(DESTDIR)$(PREFIX)/share/hostflow/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/hostflow
	rm -rf $(DESTDIR)$(PREFIX)/share/hostflow

clean:
	rm -rf build build-sanitize

-include $(OBJS:.o=.d) $(TEST_CLOCK_OBJS:.o=.d) $(C_TESTS:%=$(BUILD)/%.d)

# libFuzzer targets (tests/fuzz/README.md). `make fuzz FUZZ_SECONDS=N` builds
# every target into build-fuzz/ with ASan + UBSan, runs each for N seconds
# over a copy of its seed corpus (plus tests/fuzz/regressions/<target>/),
# then the WHATWG URL differential; non-zero on any crash or disagreement.
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build-fuzz
FUZZ_CC := clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
            -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 $(FUZZ_SAN)
FUZZ_TARGETS := fuzz_url fuzz_json fuzz_pattern fuzz_policy fuzz_log fuzz_bundle
FUZZ_POLICY_OBJS := $(POLICY_ENGINE_SRCS:.c=.o) clock.o policy_source.o policy_strlib.o policy_tablib.o policy_charge.o pattern.o \
                    metrics.o url.o netaddr.o token.o log.o json.o buf.o err.o

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(HF_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_url: $(FUZZ_BUILD)/obj/url.o
$(FUZZ_BUILD)/fuzz_json: $(FUZZ_BUILD)/obj/json.o $(FUZZ_BUILD)/obj/buf.o $(FUZZ_BUILD)/obj/err.o
$(FUZZ_BUILD)/fuzz_pattern: $(FUZZ_BUILD)/obj/pattern.o
$(FUZZ_BUILD)/fuzz_policy: $(FUZZ_POLICY_OBJS:%=$(FUZZ_BUILD)/obj/%)
$(FUZZ_BUILD)/fuzz_log: $(FUZZ_BUILD)/obj/log.o $(FUZZ_BUILD)/obj/json.o $(FUZZ_BUILD)/obj/buf.o
$(FUZZ_BUILD)/fuzz_bundle: $(FUZZ_BUILD)/obj/policy_source.o $(FUZZ_BUILD)/obj/token.o

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c
	$(FUZZ_CC) $(HF_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) $(HF_LIBS)

$(FUZZ_BUILD)/url_cli: tests/fuzz/url_cli.c $(FUZZ_BUILD)/obj/url.o
	$(FUZZ_CC) $(HF_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -o $@ $(filter %.c %.o,$^)

fuzz: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%) $(FUZZ_BUILD)/url_cli
	tests/fuzz/run-fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

-include $(wildcard $(FUZZ_BUILD)/*.d $(FUZZ_BUILD)/obj/*.d)
