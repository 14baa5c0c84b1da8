#!/usr/bin/env bash
# make bench: build bench/zmbench.c on every available backend (Release),
# run every workload on every backend, interleaved and repeated, and write
# build/bench/results.{json,csv}, build/bench/*.svg and docs/benchmarks.md
# (bench/run.py does the running, bench/report.py the write-up). Then, in
# full runs, the real-program preload benchmark (bench/preload/bench.sh) and
# the Redis server benchmark (bench/redis/bench.sh) when they exist.
#
# Environment (the Makefile exports them from `make bench VAR=...`):
#   QUICK=1            short run (fewer repetitions, smaller workloads)
#   BACKENDS="a b"     backends to run (default: every available one; libc is
#                      always added, every figure is also a ratio to it)
#   WORKLOADS="a b"    churn meta large prodcon redis realloc account
#                      fastpath smaps (default: all)
#   THREADS="1 2 4 8"  thread counts of churn (prodcon uses the even ones
#                      >= 2, account 1 and the largest <= 4)
#   REPS=n             repetitions (default 3, QUICK=1: 2)
#   SCALE=x            work per workload (default 1, QUICK=1: 0.2)
#   CALLGRIND=0        skip the callgrind instruction counts (full run only)
#   BENCH_REDIS=0      skip the Redis server benchmark (bench/redis)
#   BENCH_PRELOAD=0    skip the real-program preload benchmark (bench/preload)
#   BENCH_DOCS=0       do not rewrite docs/benchmarks.md (QUICK=1 runs never do
#                      unless BENCH_DOCS=1)
set -u
cd "$(dirname "$0")/.."
. scripts/backends.sh
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
OUT=$BUILD/bench
mkdir -p "$OUT"

read -r -a avail <<<"$(available_backends)"
if [ -n "${BACKENDS:-}" ]; then
  want=()
  for b in $BACKENDS; do
    if [[ " ${avail[*]} " == *" $b "* ]]; then want+=("$b"); else echo "bench: backend $b is not available here, skipped"; fi
  done
  [[ " ${want[*]} " == *" libc "* ]] || want=(libc "${want[@]}")
else
  want=("${avail[@]}")
fi

# One Release build per backend; a backend that does not build (the pool
# backend while it is being written) is skipped with its log named.
build_one() { # name, cmake flags...
  local name=$1; shift
  local dir=$BUILD/bench-$name
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DZMALLOC_TESTS=OFF -DZMALLOC_BENCH=ON "$@" \
         >"$dir.log" 2>&1 ||
     ! cmake --build "$dir" -j "$JOBS" --target zmbench >>"$dir.log" 2>&1; then
    [ -t 1 ] && printf '\r\033[K'
    echo "bench: skipped $name: build failed (log: $dir.log)"
    return 1
  fi
  return 0
}

# Progress: one line rewritten on a terminal, one line per build otherwise.
if [ -t 1 ]; then say() { printf '\r\033[Kbench: building %s' "$1"; }; else say() { echo "bench: building $1"; }; fi
built=()
for b in "${want[@]}"; do
  say "$b"
  read -r -a f <<<"$(backend_flags "$b")"
  build_one "$b" "${f[@]}" && built+=("$b")
done
# Verification mode (issue 5) on the churn workload: pool and libc.
debug_built=()
wl=" ${WORKLOADS:-churn} "
if [ -f src/debug.c ] && [[ "$wl" == *" churn "* ]]; then
  for b in pool libc; do
    [[ " ${built[*]} " == *" $b "* ]] || continue
    say "$b-debug"
    build_one "$b-debug" -DZMALLOC_MALLOC=$b -DZMALLOC_DEBUG=ON && debug_built+=("$b-debug")
  done
elif [ ! -f src/debug.c ]; then
  echo "bench: no verification-mode build (src/debug.c does not exist yet)"
fi
[ -t 1 ] && printf '\r\033[K'
[[ " ${built[*]} " == *" pool "* ]] || echo "bench: the pool backend is not in this run (not built or not asked for)"
if [ ${#built[@]} -eq 0 ]; then echo "bench: nothing built"; exit 1; fi
echo "bench: backends ${built[*]}${debug_built:+ + ${debug_built[*]}}"

python3 bench/run.py --build "$BUILD" --out "$OUT" --backends "${built[*]}" \
  --debug-backends "${debug_built[*]:-}"
rc=$?

# Real programs under the preload library (bench/preload/bench.sh, issue 6)
# and the Redis server benchmark (bench/redis/bench.sh, issue 7). Their full
# versions take minutes each: the default run uses their short versions so
# that `make bench` stays within 5 minutes; FULL=1 runs them in full.
# QUICK=1 skips them.
SUB_QUICK=1
[ "${FULL:-0}" = 1 ] && SUB_QUICK=0
regen_docs() {
  [ "${BENCH_DOCS:-1}" = 1 ] && python3 bench/report.py --results "$OUT/results.json" --docs docs/benchmarks.md >/dev/null
}
if [ ! -f bench/preload/bench.sh ]; then
  :
elif [ "${BENCH_PRELOAD:-1}" = 0 ]; then
  echo "bench: preload benchmark skipped (BENCH_PRELOAD=0)"
elif [ "${QUICK:-0}" = 1 ]; then
  echo "bench: preload benchmark skipped in QUICK=1 (run make bench for it, BENCH_PRELOAD=0 to skip)"
elif [[ " ${built[*]} " != *" pool "* ]]; then
  echo "bench: preload benchmark skipped (needs the pool backend)"
else
  echo "bench: real programs under LD_PRELOAD (bench/preload/bench.sh$([ $SUB_QUICK = 1 ] && echo ', short version; FULL=1 for the full one'))"
  if QUICK=$SUB_QUICK bash bench/preload/bench.sh >"$OUT/preload-bench.log" 2>&1; then
    echo "bench: preload benchmark done: $OUT/preload.md"; regen_docs
  else
    echo "bench: preload benchmark failed (log: $OUT/preload-bench.log)"; tail -5 "$OUT/preload-bench.log"
  fi
fi

# The Redis server benchmark: pool against jemalloc inside a real Redis.
if [ ! -f bench/redis/bench.sh ]; then
  :
elif [ "${BENCH_REDIS:-1}" = 0 ]; then
  echo "bench: Redis server benchmark skipped (BENCH_REDIS=0)"
elif [ "${QUICK:-0}" = 1 ]; then
  echo "bench: Redis server benchmark skipped in QUICK=1 (run make bench for it, BENCH_REDIS=0 to skip)"
elif [ ! -f tests/redis/check.sh ] || [[ " ${built[*]} " != *" pool "* ]] || [[ " ${built[*]} " != *" jemalloc "* ]]; then
  echo "bench: Redis server benchmark skipped (needs tests/redis/check.sh and the pool and jemalloc backends)"
else
  echo "bench: Redis server benchmark (bench/redis/bench.sh$([ $SUB_QUICK = 1 ] && echo ', short version; FULL=1 for the full one'))"
  if QUICK=$SUB_QUICK bash bench/redis/bench.sh >"$OUT/redis-bench.log" 2>&1; then
    echo "bench: Redis server benchmark done: $OUT/redis.md"; regen_docs
  else
    echo "bench: Redis server benchmark failed (log: $OUT/redis-bench.log)"; tail -5 "$OUT/redis-bench.log"
  fi
fi
exit $rc
