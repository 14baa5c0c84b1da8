# zmalloc front door. CMake does the building; this file picks backends.
#   make                 build the default backend (pool) into build/pool
#   make test            install missing packages (root + apt), build and test
#                        every available backend, plus ASan/UBSan, TSan,
#                        verification-mode and fuzz builds
#   make bench           the benchmark, results in build/bench (QUICK=1 short,
#                        FULL=1 adds the real-program and Redis benchmarks)
#   make bench-save      copy build/bench's results into docs/benchmarks/ + bench-docs
#   make bench-docs      regenerate docs/benchmarks.md and its charts from
#                        docs/benchmarks/results.json
#   make bench-preload   real programs under LD_PRELOAD; make bench-redis: Redis
#   make install PREFIX=/usr/local MALLOC=pool
#   make redis-check     Redis and Valkey on zmalloc, with their own tests (ALL=1: every server)
#   make soak            long randomised run on every backend (not in CI)
MALLOC ?= pool
PREFIX ?= /usr/local
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# Benchmark and test knobs given on the command line reach the scripts;
# only those that are set (an exported empty value would read as "set").
KNOBS := SOAK_ARGS QUICK FULL BACKENDS VARIANTS WORKLOADS THREADS ZMALLOC_NO_INSTALL \
         REPS SCALE CALLGRIND ALL ZMALLOC_SERVER_SOURCES REDIS_CHECK_SERVERS ZMALLOC_DEFRAG_GATE
$(foreach v,$(KNOBS),$(if $(filter command line environment,$(origin $v)),$(eval export $v)))

ifeq ($(NO_MALLOC_USABLE_SIZE),1)
  VARIANT := $(MALLOC)-prefix
  CMAKE_FLAGS += -DNO_MALLOC_USABLE_SIZE=ON
else
  VARIANT := $(MALLOC)
endif
ifeq ($(ZMALLOC_DEBUG),1)
  VARIANT := $(VARIANT)-debug
  CMAKE_FLAGS += -DZMALLOC_DEBUG=ON
endif

.PHONY: all lib test bench bench-docs bench-save bench-preload bench-redis install redis-check deps clean
all: lib

lib:
	cmake -S . -B $(BUILD)/$(VARIANT) -DZMALLOC_MALLOC=$(MALLOC) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD)/$(VARIANT) -j $(JOBS)

deps:
	@bash scripts/deps.sh

test: deps
	@bash scripts/test.sh

bench: deps
	@bash bench/run.sh

# The committed results are the data of docs/benchmarks.md: redraw it from them.
BENCH_DATA := docs/benchmarks
bench-docs:
	@test -f $(BENCH_DATA)/results.json || { echo "bench-docs: no $(BENCH_DATA)/results.json (make bench, then make bench-save)"; exit 1; }
	python3 bench/report.py --results $(BENCH_DATA)/results.json --docs docs/benchmarks.md --charts $(BENCH_DATA)

bench-save:
	@test -f $(BUILD)/bench/results.json || { echo "bench-save: no $(BUILD)/bench/results.json (make bench first)"; exit 1; }
	mkdir -p $(BENCH_DATA)
	cp $(BUILD)/bench/results.json $(BUILD)/bench/results.csv $(BENCH_DATA)/
	for f in preload.md preload.json redis.md; do [ ! -f $(BUILD)/bench/$$f ] || cp $(BUILD)/bench/$$f $(BENCH_DATA)/; done
	$(MAKE) --no-print-directory bench-docs

bench-preload: deps
	@bash bench/preload/bench.sh

bench-redis: deps
	@bash bench/redis/bench.sh

install: lib
	cmake --install $(BUILD)/$(VARIANT) --prefix $(PREFIX)

soak: deps
	@bash tests/soak/run.sh

redis-check: deps
	@bash tests/redis/check.sh

clean:
	rm -rf $(BUILD)
