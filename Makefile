# Makefile -- one non-recursive build for crossfade, its tools and its tests.
#   make              bin/crossfade, bin/xfctl, bin/xfbench and bin/xf-upstream, -O2 -g, -Werror
#   make test         unit and integration suites (Criterion)
#   make test SAN=address,undefined   the same suites under ASan and UBSan (alias: make asan)
#   make tsan         the same suites under ThreadSanitizer (the workers and the control thread)
#   make valgrind     the unit tests and most integration suites under valgrind's memcheck (slow)
#   make demo         build, then run the demo (scripts in bench/)
#   make bench        wrk against xf-upstream, crossfade and HAProxy in one run, plain and HTTPS
#   make deps         install the Debian packages the build needs
#   make fuzz         the libFuzzer harnesses (clang), under build/fuzz (docs/fuzzing.md)
#   make fuzz-run SECONDS=60   each harness for SECONDS from its seeds; fuzz-ci: 15 s each
#   make format / format-check, V=1 for full command lines, WERROR=0 for packagers
.DEFAULT_GOAL := all
SHELL := /bin/bash

CC ?= cc
PKG_CONFIG ?= pkg-config
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
PKGS := libevent libevent_openssl libevent_pthreads openssl yaml-0.1 libxxhash
WERROR ?= 1
SAN ?=
FUZZ ?=

ifneq ($(FUZZ),)
# The harnesses' build (make fuzz sets FUZZ=1): everything with clang, coverage for libFuzzer and
# ASan+UBSan; the harnesses link libFuzzer's main.
BUILD := build/fuzz
BIN := build/fuzz/bin
CC := clang
OPT := -O1 -g -fno-omit-frame-pointer
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
else ifeq ($(SAN),)
BUILD := build
BIN := bin
OPT := -O2 -g
SANFLAGS :=
else ifeq ($(SAN),thread)
BUILD := build/tsan
BIN := build/tsan/bin
OPT := -O1 -g -fno-omit-frame-pointer
SANFLAGS := -fsanitize=thread
else
BUILD := build/san
BIN := build/san/bin
OPT := -O1 -g -fno-omit-frame-pointer
SANFLAGS := -fsanitize=$(SAN) -fno-sanitize-recover=undefined
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif
CPPFLAGS += -D_GNU_SOURCE -I. -I$(LLHTTP_INC) -DXF_VERSION='"$(VERSION)"'
CFLAGS ?=
XF_CFLAGS = -std=c11 $(OPT) $(WARN) $(SANFLAGS) -MMD -MP $(CFLAGS)
LLHTTP_CFLAGS = -std=c11 $(OPT) -w $(SANFLAGS) -DLLHTTP_STRICT_MODE=1 -I$(LLHTTP_INC) $(CFLAGS)
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)

ifeq ($(filter deps format format-check clean help,$(MAKECMDGOALS)),)
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CRIT_LIBS := $(shell $(PKG_CONFIG) --libs criterion 2>/dev/null)
endif
LDLIBS = $(PKG_LIBS) -lm
XF_LDFLAGS = $(SANFLAGS) $(LDFLAGS)

ifneq ($(V),1)
Q := @
say = @printf '  %-6s %s\n' $(1) $(2);
else
Q :=
say :=
endif

# Module sources: every .c of a module folder goes into libxf.a except the programs' mains.
MODULES := common config balancer admin proxy fleet
LIB_SRCS := $(filter-out proxy/px_main.c admin/xfctl.c,$(wildcard $(addsuffix /*.c,$(MODULES))))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/adm_page.o
LLHTTP_SRCS := llhttp.c api.c http.c
LLHTTP_OBJS := $(LLHTTP_SRCS:%.c=$(BUILD)/llhttp/%.o)
UPSTREAM_SRCS := $(wildcard bench/bench_upstream*.c)
XFBENCH_SRCS := $(wildcard bench/bench_xfbench*.c)
# xfbench's pure parts (no sockets, no threads): also linked into the unit tests.
XFBENCH_LIB_OBJS := $(addprefix $(BUILD)/bench/bench_xfbench_,hist.o rollout.o gen.o watch.o check.o report.o)
UNIT_SRCS := $(wildcard tests/unit/*.c)
INTEG_SRCS := $(wildcard tests/integration/*.c)

PROGS := $(BIN)/crossfade $(BIN)/xf-upstream $(BIN)/xfctl
PROGS += $(BIN)/xfbench

.PHONY: all test unit integration asan tsan valgrind demo bench bench-decision deps format format-check clean help
.PHONY: fuzz fuzz-build fuzz-run fuzz-ci
all: $(PROGS)

$(BUILD)/%.o: %.c
	$(call say,CC,$<)mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(XF_CFLAGS) -c -o $@ $<

# The status page (admin/status.html) as a byte array in the binary: no file to install.
$(BUILD)/gen/adm_page.c: admin/status.html
	$(call say,GEN,$@)mkdir -p $(@D) && { echo '#include <stddef.h>'; \
	  echo 'extern const unsigned char adm_status_page[];'; \
	  echo 'extern const size_t adm_status_page_len;'; \
	  echo 'const unsigned char adm_status_page[] = {'; \
	  od -An -v -tx1 $< | sed 's/\([0-9a-f][0-9a-f]\)/0x\1,/g'; echo '};'; \
	  echo 'const size_t adm_status_page_len = sizeof(adm_status_page);'; } > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/adm_page.o: $(BUILD)/gen/adm_page.c
	$(call say,CC,$<)$(CC) $(CPPFLAGS) $(XF_CFLAGS) -c -o $@ $<

$(BUILD)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	$(call say,CC,$<)mkdir -p $(@D) && $(CC) $(LLHTTP_CFLAGS) -c -o $@ $<

$(BUILD)/libxf.a: $(LIB_OBJS) $(LLHTTP_OBJS)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(BIN)/crossfade: $(BUILD)/proxy/px_main.o $(BUILD)/libxf.a
	$(call say,LD,$@)mkdir -p $(@D) && $(CC) $(XF_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/xfctl: $(BUILD)/admin/xfctl.o $(BUILD)/libxf.a
	$(call say,LD,$@)mkdir -p $(@D) && $(CC) $(XF_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/xf-upstream: $(UPSTREAM_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/libxf.a
	$(call say,LD,$@)mkdir -p $(@D) && $(CC) $(XF_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BIN)/xfbench: $(XFBENCH_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/libxf.a
	$(call say,LD,$@)mkdir -p $(@D) && $(CC) $(XF_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/unit_tests: $(UNIT_SRCS:%.c=$(BUILD)/%.o) $(XFBENCH_LIB_OBJS) $(BUILD)/libxf.a
	$(call say,LD,$@)mkdir -p $(@D) && $(CC) $(XF_LDFLAGS) -o $@ $^ $(CRIT_LIBS) $(LDLIBS)

# An LD_PRELOAD getaddrinfo for the integration tests: slow and changing DNS answers on demand.
$(BUILD)/tests/libfakedns.so: tests/integration/shim/fake_dns.c
	$(call say,CC,$<)mkdir -p $(@D) && $(CC) -shared -fPIC -O1 -g -Wall -Wextra -o $@ $< -ldl

$(BUILD)/tests/integration_tests: $(INTEG_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/libxf.a
	$(call say,LD,$@)mkdir -p $(@D) && $(CC) $(XF_LDFLAGS) -o $@ $^ $(CRIT_LIBS) $(LDLIBS)

# The sanitizer run makes leaks fail the test that caused them (Criterion 2.4 would pass them).
ifneq ($(SAN),)
TEST_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
endif
TEST_ENV += XF_BIN=$(abspath $(BIN)) XF_SRC=$(abspath .) XF_FAKE_DNS_LIB=$(abspath $(BUILD)/tests/libfakedns.so)
CRIT_OPTS ?= --jobs 2

# Criterion 2.4 may count a test whose process a sanitizer aborted at exit as passing: under SAN
# the output is also searched for sanitizer reports, and any makes the run fail.
SAN_CHECK = $(if $(SAN),&& ! grep -nE 'Sanitizer|runtime error:|crashed during its setup or teardown' $(1))
# A failed run ends with what failed and why: the processes' logs the harness prints can push the
# assertion far above the last lines a CI job shows.
FAIL_SUMMARY = { echo '==== what failed (from $(1)) ===='; grep -nE -A5 'Assertion Failed|Test Crashed|Timed out|\[FAIL\]|Sanitizer|runtime error:' $(1) | grep -vE '^[0-9]+-[0-9T:.-]+Z ' | head -n 80; exit 1; }

unit: deps-check $(BUILD)/tests/unit_tests
	set -o pipefail; { $(TEST_ENV) $(BUILD)/tests/unit_tests $(CRIT_OPTS) 2>&1 | tee $(BUILD)/unit.log $(call SAN_CHECK,$(BUILD)/unit.log); } || $(call FAIL_SUMMARY,$(BUILD)/unit.log)

# The catalogue of hostile input (tests/integration/test_catalogue_*.c) runs apart, more at once:
# its cases spend their time waiting (a refused client's linger, "nothing more arrives"), not
# computing.
CAT_SUITES := catalogue_*
CAT_OPTS ?= --jobs 6
# The other integration tests too mostly wait (a load's run, a timeout, a health interval): three
# at once on two cores took the batch from about 240 s to 150 s, and the TSan one from 320 s to
# 200 s, with every test passing (plain, ASan and TSan).
INTEG_OPTS ?= --jobs 3
integration: deps-check $(PROGS) $(BUILD)/tests/integration_tests $(BUILD)/tests/libfakedns.so
	set -o pipefail; { $(TEST_ENV) $(BUILD)/tests/integration_tests --filter '!($(CAT_SUITES))/*' $(INTEG_OPTS) 2>&1 | tee $(BUILD)/integration.log $(call SAN_CHECK,$(BUILD)/integration.log); } || $(call FAIL_SUMMARY,$(BUILD)/integration.log)
	set -o pipefail; { $(TEST_ENV) $(BUILD)/tests/integration_tests --filter '$(CAT_SUITES)/*' $(CAT_OPTS) 2>&1 | tee $(BUILD)/catalogue.log $(call SAN_CHECK,$(BUILD)/catalogue.log); } || $(call FAIL_SUMMARY,$(BUILD)/catalogue.log)

test: deps
	$(MAKE) --no-print-directory unit integration

asan:
	$(MAKE) --no-print-directory test SAN=address,undefined

# ThreadSanitizer: the programs built with it, driven by the plain integration suite (Criterion's
# runner cannot start under TSan), the catalogue left out (its inputs exercise one thread's
# parsing). A race makes crossfade exit 66, which fails its test, whose log (printed) names it;
# any report anywhere fails the run.
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1 XF_TSAN=1 XF_BIN=$(abspath build/tsan/bin) \
	XF_SRC=$(abspath .) XF_FAKE_DNS_LIB=$(abspath build/tests/libfakedns.so)
tsan: deps
	$(MAKE) --no-print-directory all SAN=thread
	$(MAKE) --no-print-directory build/tests/integration_tests build/tests/libfakedns.so
	set -o pipefail; { $(TSAN_ENV) build/tests/integration_tests --filter '!($(CAT_SUITES))/*' $(INTEG_OPTS) 2>&1 | tee build/tsan/integration.log && ! grep -nE 'ThreadSanitizer' build/tsan/integration.log; } || $(call FAIL_SUMMARY,build/tsan/integration.log)

# valgrind's memcheck, a nightly-style run (about an hour; not in .ci/run): the unit tests, then
# the integration suites of VALGRIND_SUITES with crossfade under memcheck (through the wrapper
# build/valgrind/bin/crossfade; the other programs as built). A leak or a memory error makes
# crossfade exit 99, which fails its test; the report is in the log the failed test prints.
VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
VALGRIND_SUITES ?= request_rejection|http_semantics|routing|split|upstream_pool|tls|streaming|reload|admin_nodes|upstream_faults|connection_lifecycle|tunnels|catalogue_*
valgrind: deps
	$(MAKE) --no-print-directory all build/tests/unit_tests build/tests/integration_tests build/tests/libfakedns.so
	mkdir -p build/valgrind/bin
	for p in xfctl xfbench xf-upstream; do ln -sf $(abspath bin)/$$p build/valgrind/bin/$$p; done
	printf '#!/bin/sh\nexec %s %s "$$@"\n' "$(VALGRIND)" "$(abspath bin/crossfade)" >build/valgrind/bin/crossfade
	chmod +x build/valgrind/bin/crossfade
	set -o pipefail; { XF_BIN=$(abspath bin) XF_SRC=$(abspath .) XF_FAKE_DNS_LIB=$(abspath build/tests/libfakedns.so) \
		$(VALGRIND) --trace-children=yes build/tests/unit_tests $(CRIT_OPTS) 2>&1 | tee build/valgrind/unit.log; } || $(call FAIL_SUMMARY,build/valgrind/unit.log)
	set -o pipefail; { XF_BIN=$(abspath build/valgrind/bin) XF_SRC=$(abspath .) XF_FAKE_DNS_LIB=$(abspath build/tests/libfakedns.so) \
		build/tests/integration_tests --filter '@($(VALGRIND_SUITES))/*' $(CRIT_OPTS) 2>&1 | tee build/valgrind/integration.log; } || $(call FAIL_SUMMARY,build/valgrind/integration.log)

demo: deps
	$(MAKE) --no-print-directory all
	bench/demo.sh

bench: deps
	$(MAKE) --no-print-directory all
	bench/bench.sh
	bench/bench_tls.sh
	bench/bench_tunnels.sh
	bench/bench_tcp.sh
	bench/bench_counters.sh
	bench/bench_memory.sh
	bench/bench_slow.sh

# The split's decision alone: nanoseconds per bal_pick, per key source.
$(BUILD)/bench_decision: $(BUILD)/bench/bench_decision.o $(BUILD)/libxf.a
	$(call say,LD,$@)mkdir -p $(@D) && $(CC) $(XF_LDFLAGS) -o $@ $^ $(LDLIBS)
bench-decision: deps-check $(BUILD)/bench_decision
	$(BUILD)/bench_decision

DEB_PKGS := build-essential pkg-config libevent-dev libssl-dev libyaml-dev libxxhash-dev \
	libcriterion-dev node-llhttp wrk haproxy curl openssl python3 python3-websockets clang-format \
	strace valgrind clang libclang-rt-14-dev slowhttptest etcd-server etcd-client
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "deps: installing $$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
		echo "deps: missing Debian packages; run: sudo apt-get install -y --no-install-recommends" $$missing; exit 1; \
	fi

deps-check:
	@$(PKG_CONFIG) --exists $(PKGS) criterion && test -f $(LLHTTP_DIR)/llhttp.c || { echo "missing libraries: run make deps"; exit 1; }
.PHONY: deps-check

# libFuzzer harnesses (tests/fuzz/fuzz_NAME.c, seeds in tests/fuzz/NAME/; docs/fuzzing.md). What
# they find goes under build/fuzz: the corpus they grow, and the inputs that failed (artifacts).
FUZZ_NAMES := cfg adm state pp sni tls req resp json
FUZZ_BINS := $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
# getaddrinfo is wrapped: a fuzzed host name must not ask the network (fuzz_common.c).
FUZZ_LDFLAGS := -fsanitize=fuzzer,address,undefined -Wl,--wrap=getaddrinfo
SECONDS ?= 60
FUZZ_CI_SECONDS ?= 15
FUZZ_OPTS ?= -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

build/fuzz/fuzz_%: build/fuzz/tests/fuzz/fuzz_%.o build/fuzz/tests/fuzz/fuzz_common.o build/fuzz/libxf.a
	$(call say,LD,$@)$(CC) $(FUZZ_LDFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)
build/fuzz/fuzz_req build/fuzz/fuzz_resp: build/fuzz/tests/fuzz/fuzz_px.o build/fuzz/tests/fuzz/fuzz_http.o
# A state file's ramp catches up with the clock: fuzz_state reads a fixed one while it runs.
build/fuzz/fuzz_state: FUZZ_LDFLAGS += -Wl,--wrap=clock_gettime
# The session tickets' keys follow time(): fuzz_tls reads a fixed one, so that seeds' tickets stay.
build/fuzz/fuzz_tls: FUZZ_LDFLAGS += -Wl,--wrap=time
# Kept: make would delete them as intermediate files and rebuild them each time.
.SECONDARY: $(FUZZ_NAMES:%=build/fuzz/tests/fuzz/fuzz_%.o) build/fuzz/tests/fuzz/fuzz_common.o \
	build/fuzz/tests/fuzz/fuzz_px.o build/fuzz/tests/fuzz/fuzz_http.o

fuzz: deps-check
	$(MAKE) --no-print-directory FUZZ=1 fuzz-build
fuzz-build: $(FUZZ_BINS)

# Runs each harness for $(1) seconds from its seeds; a corpus of $(2) under build/fuzz. Every
# harness runs even when one fails; the run fails when any did (its input is in artifacts/NAME/).
FUZZ_LOOP = failed=; for n in $(FUZZ_NAMES); do \
	  mkdir -p build/fuzz/$(2)/$$n build/fuzz/artifacts/$$n; \
	  echo "==== fuzz_$$n: $(1) s"; \
	  $(FUZZ_ENV) build/fuzz/fuzz_$$n -max_total_time=$(1) $(FUZZ_OPTS) \
	    -artifact_prefix=build/fuzz/artifacts/$$n/ build/fuzz/$(2)/$$n tests/fuzz/$$n \
	    > build/fuzz/$$n.log 2>&1 || failed="$$failed $$n"; \
	  grep -E '^(Done [0-9]+ runs|stat::peak_rss_mb)' build/fuzz/$$n.log; \
	done; \
	if [ -n "$$failed" ]; then for n in $$failed; do echo "==== fuzz_$$n failed (build/fuzz/$$n.log):"; \
	  grep -E -A30 'ERROR|property violated|runtime error' build/fuzz/$$n.log | head -60; done; exit 1; fi

fuzz-run: fuzz
	@$(call FUZZ_LOOP,$(SECONDS),corpus)

# CI: a bounded run (about 15 s a harness) from the seeds alone, so that it is the same each time.
fuzz-ci: fuzz
	@rm -rf build/fuzz/ci-corpus; $(call FUZZ_LOOP,$(FUZZ_CI_SECONDS),ci-corpus)

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRCS)
format-check:
	@clang-format --dry-run --Werror $(FORMAT_SRCS) && echo "format-check: ok"

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
