# zmalloc front door. CMake does the building; this file picks backends.
#   make                 build the default backend (pool) into build/pool
#   make test            install missing packages (root + apt), build and test
#                        every available backend, plus ASan/UBSan, TSan,
#                        verification-mode and fuzz builds
#   make bench           the benchmark (QUICK=1 for a short run)
#   make install PREFIX=/usr/local MALLOC=pool
#   make redis-check     a real Redis on zmalloc, with Redis's own tests
MALLOC ?= pool
PREFIX ?= /usr/local
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# Benchmark and test knobs given on the command line reach the scripts;
# only those that are set (an exported empty value would read as "set").
KNOBS := QUICK FULL BACKENDS WORKLOADS THREADS BENCH_REDIS BENCH_PRELOAD ZMALLOC_NO_INSTALL \
         REPS SCALE CALLGRIND BENCH_DOCS
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

.PHONY: all lib test bench install redis-check deps clean
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

install: lib
	cmake --install $(BUILD)/$(VARIANT) --prefix $(PREFIX)

redis-check: deps
	@bash tests/redis/check.sh

clean:
	rm -rf $(BUILD)
