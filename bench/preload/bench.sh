#!/usr/bin/env bash
# bench/preload/bench.sh: real programs (python3, sqlite3, perl, tclsh, gcc,
# git, a C++ program) timed under glibc, Debian's jemalloc and mimalloc (by
# LD_PRELOAD of libjemalloc.so.2 / libmimalloc.so.2) and zmalloc's
# libzmalloc-preload.so, in one run, interleaved; medians of repeats.
# Writes $BUILD/bench/preload.{md,json}. bench/run.sh calls it from
# `make bench`; it runs alone too.
#
# Environment: QUICK=1 (3 repetitions of half-size programs instead of 5 of
# full size), REPS=n, PRELOAD_ONLY="python3,sqlite3" (program name prefixes),
# PRELOAD_LIB=path (time that library instead of building one).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
OUT=$BUILD/bench
mkdir -p "$OUT"
lib=${PRELOAD_LIB:-}
if [ -z "$lib" ]; then
  # A Release pool build of its own, so the library is built like the
  # other benchmarked code.
  dir=$BUILD/bench-preload
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DZMALLOC_MALLOC=pool -DZMALLOC_TESTS=OFF \
         -DZMALLOC_BENCH=OFF >"$dir.log" 2>&1 ||
     ! cmake --build "$dir" -j "$JOBS" --target zmalloc_preload >>"$dir.log" 2>&1; then
    echo "bench-preload: build failed (log: $dir.log)"; tail -20 "$dir.log"
    exit 1
  fi
  lib=$dir/libzmalloc-preload.so
fi
args=(--lib "$lib" --out "$OUT")
[ "${QUICK:-0}" = 1 ] && args+=(--quick)
[ -n "${REPS:-}" ] && args+=(--reps "$REPS")
[ -n "${PRELOAD_ONLY:-}" ] && args+=(--only "$PRELOAD_ONLY")
python3 bench/preload/bench.py "${args[@]}"
