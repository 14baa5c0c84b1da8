#!/usr/bin/env bash
# make test: the same suite on every backend that can be built here, then
# the correctness builds (ASan+UBSan, TSan, verification mode, libFuzzer).
# BACKENDS="pool libc" (make test BACKENDS=...) tests just those backends:
# their suites, link matrix, verification builds, and the sanitizer,
# valgrind, fuzz and preload runs that are built on one of them.
# Prints which backends were skipped and why, and a final
# "N passed, M failed" line counting test programs.
set -u
cd "$(dirname "$0")/.."
. scripts/backends.sh
BUILD=${BUILD:-build}
mkdir -p "$BUILD"
JOBS=${JOBS:-$(nproc)}
passed=0
failed=0
failures=()

run_suite() { # name, cmake flags..., [-- ctest args]
  local name=$1; shift
  local flags=() ctest_args=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do flags+=("$1"); shift; done
  [ "${1:-}" = "--" ] && { shift; ctest_args=("$@"); }
  local dir=$BUILD/test-$name
  echo "== $name: configure and build"
  if ! cmake -S . -B "$dir" -DZMALLOC_BENCH=OFF "${flags[@]}" >"$dir.log" 2>&1 ||
     ! cmake --build "$dir" -j "$JOBS" >>"$dir.log" 2>&1; then
    echo "   BUILD FAILED (log: $dir.log)"; tail -30 "$dir.log"
    failed=$((failed + 1)); failures+=("$name:build"); return
  fi
  echo "== $name: ctest"
  local out; out=$(cd "$dir" && ctest --output-on-failure "${ctest_args[@]}" 2>&1)
  local rc=$?
  echo "$out" | grep -E "tests passed|Test +#|passed, .* failed" | sed 's/^/   /'
  local p f
  p=$(echo "$out" | grep -cE "Test +#.*Passed")
  f=$(echo "$out" | grep -cE "Test +#.*(\*\*\*|Failed|Timeout|Exception)")
  passed=$((passed + p)); failed=$((failed + f))
  if [ $rc -ne 0 ]; then
    [ "$f" -eq 0 ] && failed=$((failed + 1))
    failures+=("$name"); echo "$out" | grep -vE "^ *[0-9]+/[0-9]+ Test" | tail -60
  fi
}

selected=$(selected_backends) || exit 1
read -r -a backends <<<"$selected"
echo "backends to test: ${backends[*]}"
testing() { [[ " ${backends[*]} " == *" $1 "* ]]; }
for b in "${backends[@]}"; do
  read -r -a f <<<"$(backend_flags "$b")"
  run_suite "$b" "${f[@]}"
done

# Link matrix (tests/link/run.sh): each backend built above, installed with
# cmake --install and linked every way a user links it; its
# "link-NAME: N passed, M failed" line adds to the totals.
for b in "${backends[@]}"; do
  [ -f "$BUILD/test-$b/libzmalloc.a" ] || continue
  out=$(bash tests/link/run.sh "$BUILD/test-$b" "$b" 2>&1); rc=$?
  echo "== link-$b"; echo "$out" | sed 's/^/   /'
  line=$(echo "$out" | grep -E "^link-$b: [0-9]+ passed, [0-9]+ failed" | tail -1)
  p=$(echo "$line" | sed -nE 's/.*: ([0-9]+) passed.*/\1/p'); f=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ $rc -ne 0 ] && { [ "${f:-0}" -eq 0 ] && failed=$((failed + 1)); failures+=("link-$b"); }
done

# Sanitizer builds: ASan+UBSan on libc (and pool when built), TSan on the
# threaded tests of the default backend.
if testing libc; then
  run_suite asan-libc -DZMALLOC_MALLOC=libc -DZMALLOC_SANITIZE=address,undefined
  run_suite tsan-libc -DZMALLOC_MALLOC=libc -DZMALLOC_SANITIZE=thread -- -R "account|limits|soak"
fi
if testing pool; then
  run_suite tsan-pool -DZMALLOC_MALLOC=pool -DZMALLOC_SANITIZE=thread -- -R "account|limits|thread|remote|fork|churn|soak|defrag"
fi
# The pool's checked build: its invariants verified on every slow path.
if [[ " ${backends[*]} " == *" pool "* ]]; then
  run_suite pool-check -DZMALLOC_MALLOC=pool -DZMALLOC_POOL_CHECK=ON -- -R pool
fi
# valgrind memcheck over the libc build's tests (it replaces glibc malloc
# and checks every access of the front end and the tests).
if ! testing libc; then
  :
elif command -v valgrind >/dev/null; then
  echo "== valgrind-libc"
  for t in "$BUILD"/test-libc/tests/test_*; do
    [ -x "$t" ] || continue
    if timeout 600 valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
         "$t" >"$t.valgrind.log" 2>&1; then
      passed=$((passed + 1)); echo "   $(basename "$t"): clean"
    else
      failed=$((failed + 1)); failures+=("valgrind:$(basename "$t")")
      echo "   $(basename "$t"): FAILED under valgrind"; tail -30 "$t.valgrind.log"
    fi
  done
else
  echo "skipped valgrind: not installed"
fi
# Verification mode on the backends the issue names.
for b in pool libc jemalloc; do
  if testing $b; then run_suite "debug-$b" -DZMALLOC_MALLOC=$b -DZMALLOC_DEBUG=ON; fi
done
# libFuzzer harnesses: a fixed number of runs each.
if ! testing libc && ! testing pool; then
  :
elif command -v clang >/dev/null; then
  echo "== fuzz"
  if bash scripts/fuzz.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("fuzz"); fi
else
  echo "skipped fuzz: clang not installed"
fi

# Real programs under the preload library of the pool build (tests/preload):
# its "preload: N passed, M failed" line adds to the totals.
if testing pool; then
  echo "== preload"
  bash tests/preload/run.sh "$BUILD/test-pool" >"$BUILD/test-preload.log" 2>&1
  rc=$?
  sed 's/^/   /' "$BUILD/test-preload.log"
  line=$(grep -E '^preload: [0-9]+ passed, [0-9]+ failed' "$BUILD/test-preload.log" | tail -1)
  p=$(echo "$line" | sed -nE 's/^preload: ([0-9]+) passed.*/\1/p')
  f=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ $rc -ne 0 ]; then
    [ "${f:-0}" -eq 0 ] && failed=$((failed + 1))
    failures+=("preload")
  fi
fi

[ ${#failures[@]} -gt 0 ] && echo "failed suites: ${failures[*]}"
echo "make-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
