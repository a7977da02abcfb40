# bench.mk - the bench's own C programs (bench/run.sh runs `make -f bench/bench.mk`
# from the repository root). Variables are BENCH_-prefixed so the top-level Makefile may
# `include bench/bench.mk` as well.
BENCH_BUILD  ?= build/bench
BENCH_TOOLS  := $(BENCH_BUILD)/tools
BENCH_CC     ?= cc
BENCH_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -O2 -g

.PHONY: bench-tools
bench-tools: $(BENCH_TOOLS)/ws_load $(BENCH_TOOLS)/json_ceiling $(BENCH_TOOLS)/write_floor $(BENCH_TOOLS)/lws_floor

$(BENCH_TOOLS)/ws_load: bench/ws_load.c bench/bench.mk
	@mkdir -p $(dir $@)
	$(BENCH_CC) $(BENCH_CFLAGS) $(shell pkg-config --cflags libwebsockets) $< -o $@ $(shell pkg-config --libs libwebsockets)

$(BENCH_TOOLS)/lws_floor: bench/lws_floor.c bench/bench.mk
	@mkdir -p $(dir $@)
	$(BENCH_CC) $(BENCH_CFLAGS) $(shell pkg-config --cflags libwebsockets) $< -o $@ $(shell pkg-config --libs libwebsockets) -lev

$(BENCH_TOOLS)/json_ceiling: bench/json_ceiling.c bench/bench.mk
	@mkdir -p $(dir $@)
	$(BENCH_CC) $(BENCH_CFLAGS) $(shell pkg-config --cflags jansson) $< -o $@ $(shell pkg-config --libs jansson)

$(BENCH_TOOLS)/write_floor: bench/write_floor.c bench/bench.mk
	@mkdir -p $(dir $@)
	$(BENCH_CC) $(BENCH_CFLAGS) $< -o $@
