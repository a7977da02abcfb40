# tlm - one entry point: build, run, test, bench, fuzz, images.
# `make` builds the optimised daemons; `make run` starts the service locally;
# `make test` runs every suite. See README.md.

CC       ?= cc
BUILD    ?= build
PKGS     := libwebsockets jansson libcurl zlib libpcre2-8
OPT      ?= -O2 -g
SAN      ?=
CFLAGS_BASE := -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread $(OPT) $(SAN)
HAVE_SYSTEMD := $(shell pkg-config --exists libsystemd 2>/dev/null && echo 1)
ifeq ($(HAVE_SYSTEMD),1)
  SYSTEMD_CFLAGS := -DTLM_HAVE_SYSTEMD $(shell pkg-config --cflags libsystemd)
  SYSTEMD_LIBS   := $(shell pkg-config --libs libsystemd)
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# libev: the ingest's event loop (ingest/event_loop.c; no pkg-config file in Debian)
EV_LIBS    := -lev
ALL_CFLAGS := $(CFLAGS_BASE) $(PKG_CFLAGS) $(SYSTEMD_CFLAGS) $(CFLAGS)
LIBS       := $(PKG_LIBS) $(SYSTEMD_LIBS) -lm -pthread $(LDLIBS)

COMMON_SRC  := $(wildcard common/*.c) proto/tlm_proto.c
INGEST_SRC  := $(filter-out ingest/main.c,$(wildcard ingest/*.c))
SHIPPER_SRC := $(filter-out logshipper/main.c,$(wildcard logshipper/*.c))
UNIT_SRC    := $(wildcard tests/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIB_COMMON  := $(BUILD)/libtlmcommon.a
LIB_INGEST  := $(BUILD)/libtlmingest.a
LIB_SHIPPER := $(BUILD)/libtlmshipper.a
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps run test unit e2e asan memcheck fuzz fuzz-build bench images clean config-table
all: $(BUILD)/tlm-ingest $(BUILD)/tlm-logshipper

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(LIB_COMMON): $(call obj,$(COMMON_SRC))
	@rm -f $@; ar rcs $@ $^
$(LIB_INGEST): $(call obj,$(INGEST_SRC))
	@rm -f $@; ar rcs $@ $^
$(LIB_SHIPPER): $(call obj,$(SHIPPER_SRC))
	@rm -f $@; ar rcs $@ $^

$(BUILD)/tlm-ingest: $(call obj,ingest/main.c) $(LIB_INGEST) $(LIB_COMMON)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LIBS) $(EV_LIBS)
$(BUILD)/tlm-logshipper: $(call obj,logshipper/main.c) $(LIB_SHIPPER) $(LIB_COMMON)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LIBS)

$(BUILD)/tests/%: $(call obj,tests/unit/%.c) $(LIB_INGEST) $(LIB_SHIPPER) $(LIB_COMMON)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $^ -o $@ $(LIBS) $(EV_LIBS)

# Debian packages the build and the tests need; installed when missing (as root).
deps:
	@scripts/deps.sh build test

run: 
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory all
	@scripts/run-local.sh

unit: $(UNIT_BINS)

# One suite of tests/run-all.sh, e.g. `make e2e` (the end-to-end suites with real processes).
e2e: all
	@TLM_TEST_ONLY='^e2e$$' tests/run-all.sh

test:
	@scripts/deps.sh build test
	@$(MAKE) --no-print-directory all unit
	@tests/run-all.sh

# Sanitizer build in its own folder (ASan + UBSan), used by the memory-safety suites.
asan:
	@$(MAKE) --no-print-directory BUILD=build/asan CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" all unit

# libFuzzer targets (clang): each <folder>/fuzz_X.c has its corpus in <folder>/fuzz_corpus_X/.
# `make fuzz` runs each for FUZZ_SECONDS; tests/fuzz-smoke.sh (in `make test`) replays the
# corpora and runs each briefly. New inputs go to build/fuzz/out-X, never into the corpus.
FUZZ_SECONDS ?= 60
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -pthread $(FUZZ_SAN) $(PKG_CFLAGS)
FUZZ_SRCS   := $(wildcard */fuzz_*.c)
FUZZ_TARGETS := $(patsubst %.c,build/fuzz/%,$(notdir $(FUZZ_SRCS)))
FUZZ_LIB_OBJ := $(patsubst %.c,build/fuzz/obj/%.o,$(COMMON_SRC) $(INGEST_SRC) $(SHIPPER_SRC))
# -MMD: an object is rebuilt when a header it includes changes, and every object when the
# Makefile (their flags) does. A stale object in the archive once linked against functions
# a header had made inline.
build/fuzz/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
build/fuzz/libtlm.a: $(FUZZ_LIB_OBJ)
	@rm -f $@; ar rcs $@ $^
.SECONDEXPANSION:
build/fuzz/fuzz_%: build/fuzz/libtlm.a $$(filter %/fuzz_$$*.c,$(FUZZ_SRCS))
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $(filter %/fuzz_$*.c,$(FUZZ_SRCS)) build/fuzz/libtlm.a -o $@ $(PKG_LIBS) -lm
fuzz-build: $(FUZZ_TARGETS)
fuzz: fuzz-build
	@for src in $(FUZZ_SRCS); do n=$$(basename $$src .c); c=$$(dirname $$src)/fuzz_corpus_$${n#fuzz_}; \
	  mkdir -p build/fuzz/out-$$n; echo "== $$n ($(FUZZ_SECONDS) s, corpus $$c)"; \
	  build/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=70000 build/fuzz/out-$$n $$c || exit 1; done

# Unit and end-to-end suites under ASan+UBSan, and the smoke suite under valgrind memcheck.
memcheck: all
	@tests/memcheck.sh

config-table: $(BUILD)/tlm-ingest
	@$(BUILD)/tlm-ingest --print-config

# Benchmarks: figures printed and written to bench/results/ (BENCH_QUICK=1 for a short run).
bench:
	@scripts/deps.sh build bench
	@bench/run.sh

# Container images (podman by default; TLM_IMAGE_TOOL=docker, TLM_IMAGE_PREFIX, TLM_IMAGE_TAG).
images:
	@deploy/images/build.sh

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj build/fuzz -name '*.d' 2>/dev/null)
