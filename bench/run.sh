#!/usr/bin/env bash
# make bench: build every variant of bench/variants.json the way a user gets
# zmalloc, run every workload of bench/workloads.json on each, interleaved
# and repeated, and write build/bench/results.{json,csv} and the report
# build/bench/benchmarks.md with its charts (bench/run.py runs, bench/report.py
# writes). Never touches a tracked file: `make bench-save` copies the results
# into docs/benchmarks/ and regenerates docs/benchmarks.md from them.
# FULL=1 adds the real-program preload benchmark (bench/preload/bench.sh,
# also `make bench-preload`) and the Redis server benchmark
# (bench/redis/bench.sh, also `make bench-redis`).
#
# Environment (the Makefile exports them from `make bench VAR=...`):
#   QUICK=1            short run (2 repetitions, 0.3 of the work, no callgrind)
#   FULL=1             also the preload and Redis benchmarks (minutes more)
#   BACKENDS="a b"     variants of these backends only (libc's always run)
#   VARIANTS="a b"     these variants only (names as in bench/variants.json)
#   WORKLOADS="a b"    these workloads only (names as in bench/workloads.json)
#   THREADS="1 2 4"    thread counts of the workloads that have several
#   REPS=n             repetitions (default 3, QUICK=1: 2)
#   SCALE=x            work per workload, times each one's default
#   CALLGRIND=0        skip the callgrind instruction counts
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUT=$BUILD/bench
mkdir -p "$OUT"
export BUILD JOBS=${JOBS:-2}

python3 bench/run.py
rc=$?

if [ "${FULL:-0}" = 1 ]; then
  echo "bench: real programs under LD_PRELOAD (bench/preload/bench.sh)"
  if bash bench/preload/bench.sh >"$OUT/preload-bench.log" 2>&1; then
    echo "bench: preload benchmark done: $OUT/preload.md"
  else
    echo "bench: preload benchmark failed (log: $OUT/preload-bench.log)"; tail -5 "$OUT/preload-bench.log"; rc=1
  fi
  echo "bench: Redis server benchmark (bench/redis/bench.sh)"
  if bash bench/redis/bench.sh >"$OUT/redis-bench.log" 2>&1; then
    echo "bench: Redis server benchmark done: $OUT/redis.md"
  else
    echo "bench: Redis server benchmark failed (log: $OUT/redis-bench.log)"; tail -5 "$OUT/redis-bench.log"; rc=1
  fi
  # The report embeds their results: redraw it.
  python3 bench/report.py --results "$OUT/results.json" --docs docs/benchmarks.md \
    --out "$OUT/benchmarks.md" --charts "$OUT/benchmarks" >/dev/null
fi
exit $rc
