#!/usr/bin/env bash
# libFuzzer (clang) over random operation sequences: tests/fuzz_*.c on the
# libc backend and, in the pool build, tests/pool/fuzz_*.c too; ASan+UBSan
# on. A fixed number of runs each (FUZZ_RUNS, default 20000), so make test
# stays bounded. Exit status non-zero on the first crash.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
mkdir -p "$BUILD"
RUNS=${FUZZ_RUNS:-20000}
. scripts/backends.sh
read -r -a backends <<<"$(selected_backends 2>/dev/null)"
status=0
for b in libc pool; do
  [[ " ${backends[*]} " == *" $b "* ]] || continue
  dir=$BUILD/fuzz-$b
  if ! CC=clang cmake -S . -B "$dir" -DZMALLOC_MALLOC=$b -DZMALLOC_SANITIZE=address,undefined \
       -DZMALLOC_FUZZ=ON -DZMALLOC_BENCH=OFF >"$dir.log" 2>&1 ||
     ! cmake --build "$dir" -j "$(nproc)" >>"$dir.log" 2>&1; then
    echo "   fuzz build failed for $b (log: $dir.log)"; tail -20 "$dir.log"; status=1; continue
  fi
  for f in "$dir"/tests/fuzz_*; do
    [ -x "$f" ] || continue
    if ASAN_OPTIONS=allocator_may_return_null=1 "$f" -runs="$RUNS" -max_len=4096 -seed=1 -artifact_prefix="$dir/" >"$f.log" 2>&1; then
      echo "   $b $(basename "$f"): $(grep -Eo 'Done [0-9]+ runs' "$f.log" || echo 'done')"
    else
      echo "   $b $(basename "$f"): CRASH"; tail -30 "$f.log"; status=1
    fi
  done
done
exit $status
