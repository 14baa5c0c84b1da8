#!/usr/bin/env bash
# make soak: tests/soak/soak.c at full length on every backend that can be
# built here (BACKENDS="pool jemalloc" to choose; SOAK_ARGS to pass other
# arguments, e.g. "--ops 1000000"). Not part of make test or CI: a full run
# is 8 threads x 50M operations per backend. Logs: build/soak-NAME.log.
set -u
cd "$(dirname "$0")/../.."
. scripts/backends.sh
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
read -r -a backends <<<"${BACKENDS:-$(available_backends)}"
passed=0
failed=0
for b in "${backends[@]}"; do
  read -r -a flags <<<"$(backend_flags "$b")"
  dir=$BUILD/soak-$b
  log=$BUILD/soak-$b.log
  echo "== soak $b"
  if ! cmake -S . -B "$dir" -DZMALLOC_BENCH=OFF "${flags[@]}" >"$log" 2>&1 ||
     ! cmake --build "$dir" -j "$JOBS" --target soak >>"$log" 2>&1; then
    echo "   BUILD FAILED (log: $log)"; failed=$((failed + 1)); continue
  fi
  timer=()
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "soak-time: %e s elapsed, %U s user, %S s sys, max RSS %M KiB")
  # shellcheck disable=SC2086
  if (cd "$dir" && "${timer[@]}" ./tests/soak ${SOAK_ARGS:-}) >>"$log" 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "   FAILED (log: $log)"
  fi
  grep -E "^soak|^FAIL|soak-time" "$log" | sed 's/^/   /'
done
echo "soak: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
