#!/usr/bin/env bash
# tests/preload/run.sh [BUILD_DIR]: real programs under libzmalloc-preload.so.
#
# BUILD_DIR is a pool build that holds libzmalloc-preload.so and zmrun
# (default: $PRELOAD_BUILD, else build/test-pool, else build/pool). Each
# program runs once without and once with LD_PRELOAD of the library, and its
# output (and exit status) must be identical: python3 (a dict/string script
# and standard-library test modules), sqlite3, perl, tclsh, gcc compiling a
# generated program, git commit/gc/fsck on a generated repository, a C++
# program. Then the threaded stress test (tests/preload/stress.c) under the
# library, and zmrun's report checked field by field. A program that is not
# installed is skipped and said so (scripts/deps.sh installs them).
# Last line: "preload: N passed, M failed"; exits non-zero on a failure.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
BDIR=${1:-${PRELOAD_BUILD:-}}
if [ -z "$BDIR" ]; then
  for d in build/test-pool build/pool; do [ -f "$d/libzmalloc-preload.so" ] && { BDIR=$d; break; }; done
fi
BDIR=$(cd "${BDIR:-build/test-pool}" 2>/dev/null && pwd || echo "${BDIR:-build/test-pool}")
LIB=$BDIR/libzmalloc-preload.so
ZMRUN=$BDIR/zmrun
WORK=$BDIR/preload-tests
P=$ROOT/tests/preload/programs
PY=/usr/bin/python3
passed=0
failed=0
skipped=()
fails=()

if [ ! -f "$LIB" ]; then
  echo "preload: $LIB not built (build the pool backend first)"
  echo "preload: 0 passed, 1 failed"
  exit 1
fi
rm -rf "$WORK"; mkdir -p "$WORK"
export PYTHONHASHSEED=0 LC_ALL=C
unset LD_PRELOAD ZMALLOC_STATS ZMALLOC_STATS_FILE

ok() { passed=$((passed + 1)); echo "ok     $1"; }
bad() {
  failed=$((failed + 1)); fails+=("$1"); echo "FAILED $1"
  [ -n "${2:-}" ] && [ -f "$2" ] && tail -20 "$2" | sed 's/^/       /'
  return 0
}
have() { command -v "$1" >/dev/null 2>&1; }

# same NAME FILTER -- command...: run without and with the library (each in
# a fresh directory $WORK/NAME.{plain,zm}, passed to the command as $RUNDIR)
# and compare stdout (through FILTER, a shell command) and exit status.
same() {
  local name=$1 filter=$2; shift 3
  local mode rc_plain=0 rc_zm=0
  for mode in plain zm; do
    local dir=$WORK/$name.$mode
    mkdir -p "$dir"
    if [ $mode = plain ]; then
      (cd "$dir" && RUNDIR=$dir timeout 600 "$@") >"$dir.raw" 2>"$dir.err"; rc_plain=$?
    else
      (cd "$dir" && RUNDIR=$dir LD_PRELOAD=$LIB timeout 600 "$@") >"$dir.raw" 2>"$dir.err"; rc_zm=$?
    fi
    eval "$filter" <"$dir.raw" >"$dir.out"
  done
  if [ $rc_plain -ne $rc_zm ]; then
    bad "$name: exit status $rc_plain without, $rc_zm with the library" "$WORK/$name.zm.err"
  elif ! cmp -s "$WORK/$name.plain.out" "$WORK/$name.zm.out"; then
    bad "$name: output differs" && diff "$WORK/$name.plain.out" "$WORK/$name.zm.out" | head -20
  elif [ ! -s "$WORK/$name.plain.out" ]; then
    bad "$name: no output (status $rc_plain)" "$WORK/$name.plain.err"
  else
    ok "$name (status $rc_plain, $(wc -l <"$WORK/$name.zm.out") lines identical)"
  fi
}

# --- real programs -------------------------------------------------------------
if [ -x $PY ]; then
  same python-dicts cat -- $PY "$P/dicts.py" 1
  # The regression tests print timings: compare each module's verdict.
  if $PY -c 'import test.libregrtest' 2>/dev/null; then
    mods="test_dict test_string test_list test_sort test_set test_re test_json test_collections
          test_bytes test_unicode test_heapq test_memoryview test_deque test_ordered_dict"
    # shellcheck disable=SC2086
    same python-regrtest "grep -E '^(== )?Tests? result|tests? (OK|failed)|^[0-9]+ tests? (OK|failed)'" -- \
      $PY -m test $mods
  else
    skipped+=("python-regrtest: libpython3-testsuite not installed")
  fi
else
  skipped+=("python3: /usr/bin/python3 not installed")
fi

if have sqlite3; then
  sed 's/ROWS/100000/g' "$P/workload.sql" >"$WORK/workload.sql"
  same sqlite3 cat -- sh -c "sqlite3 \"\$RUNDIR/db.sqlite\" <'$WORK/workload.sql'"
else
  skipped+=("sqlite3: not installed")
fi

if have perl; then same perl cat -- perl "$P/words.pl" 1; else skipped+=("perl: not installed"); fi
if have tclsh; then same tclsh cat -- tclsh "$P/lists.tcl" 1; else skipped+=("tclsh: not installed"); fi
if have gcc; then same gcc cat -- sh -c "bash '$P/gcc.sh' \"\$RUNDIR/c\" 1"; else skipped+=("gcc: not installed"); fi
if have git; then same git cat -- sh -c "bash '$P/gitrepo.sh' \"\$RUNDIR/g\" 1"; else skipped+=("git: not installed"); fi
if have g++; then
  if g++ -O2 -o "$WORK/churn" "$P/churn.cc" 2>"$WORK/churn.build.log"; then
    same c++ cat -- "$WORK/churn" 1
  else
    bad "c++: build" "$WORK/churn.build.log"
  fi
else
  skipped+=("c++: g++ not installed")
fi

# --- the stress test -------------------------------------------------------------
if cc -O2 -g -Wall -Wno-alloc-size-larger-than -Wno-use-after-free -pthread \
     -o "$WORK/stress" tests/preload/stress.c -ldl 2>"$WORK/stress.build.log"; then
  if LD_PRELOAD=$LIB timeout 600 "$WORK/stress" --expect-preload 1 >"$WORK/stress.out" 2>"$WORK/stress.err"; then
    ok "stress: $(tail -1 "$WORK/stress.err") ($(tail -1 "$WORK/stress.out"))"
  else
    bad "stress" "$WORK/stress.err"; cat "$WORK/stress.out"
  fi
  # The same with statistics on: the counting path under threads and fork.
  if ZMALLOC_STATS=1 LD_PRELOAD=$LIB timeout 600 "$WORK/stress" --expect-preload 0.5 \
       >"$WORK/stress-stats.out" 2>"$WORK/stress-stats.err" &&
     grep -q "zmalloc preload report" "$WORK/stress-stats.err"; then
    ok "stress with ZMALLOC_STATS=1 (report on stderr)"
  else
    bad "stress with ZMALLOC_STATS=1" "$WORK/stress-stats.err"
  fi
else
  bad "stress: build" "$WORK/stress.build.log"
fi

# --- guarded sampling under the library (tests/preload/guard.c) -------------------
# Its death tests in forked children, with every small block guarded; and
# without the variable, no block is.
if cc -O2 -g -fno-omit-frame-pointer -rdynamic -Wall -Wno-use-after-free \
     -o "$WORK/guard" tests/preload/guard.c 2>"$WORK/guard.build.log"; then
  ZMALLOC_GUARD_SAMPLE=1 LD_PRELOAD=$LIB timeout 600 "$WORK/guard" >"$WORK/guard.out" 2>&1
  rc=$?
  while IFS= read -r line; do
    case $line in
      "ok     "*) ok "${line#ok     }" ;;
      "FAILED "*) bad "${line#FAILED }" "$WORK/guard.out" ;;
    esac
  done <"$WORK/guard.out"
  grep -qE "^(ok|FAILED) " "$WORK/guard.out" || bad "guard: no result (status $rc)" "$WORK/guard.out"
  LD_PRELOAD=$LIB timeout 600 "$WORK/guard" --expect-none >"$WORK/guard-none.out" 2>&1 &&
    ok "guard: $(sed 's/^ok *//' "$WORK/guard-none.out")" || bad "guard --expect-none" "$WORK/guard-none.out"
else
  bad "guard: build" "$WORK/guard.build.log"
fi

# --- the verification-mode library (ZMALLOC_DEBUG=1), when built ---------------------
DLIB=${PRELOAD_DEBUG_LIB:-}
for d in "$BDIR/../test-debug-pool" "$BDIR/../pool-debug"; do
  [ -z "$DLIB" ] && [ -f "$d/libzmalloc-preload-debug.so" ] && DLIB=$(cd "$d" && pwd)/libzmalloc-preload-debug.so
done
if [ -n "$DLIB" ]; then
  if [ -x "$WORK/stress" ] &&
     LD_PRELOAD=$DLIB timeout 600 "$WORK/stress" --expect-preload 0.3 >"$WORK/stress-debug.out" 2>"$WORK/stress-debug.err"; then
    ok "stress under the verification-mode library: $(tail -1 "$WORK/stress-debug.err")"
  else
    bad "stress under the verification-mode library" "$WORK/stress-debug.err"
  fi
  if [ -x $PY ] && (cd "$WORK" && LD_PRELOAD=$DLIB timeout 600 $PY "$P/dicts.py" 0.3) >"$WORK/dicts-debug.out" 2>"$WORK/dicts-debug.err" &&
     (cd "$WORK" && timeout 600 $PY "$P/dicts.py" 0.3) | cmp -s - "$WORK/dicts-debug.out"; then
    ok "python-dicts under the verification-mode library: same output"
  else
    bad "python-dicts under the verification-mode library" "$WORK/dicts-debug.err"
  fi
  printf '#include <stdlib.h>\n#include <string.h>\nint main(int c, char **v) { (void)v; char *p = malloc(10); memset(p, 1, 10 + c); free(p); return 0; }\n' >"$WORK/overflow.c"
  if cc -O0 -o "$WORK/overflow" "$WORK/overflow.c" 2>/dev/null; then
    rc=$( (LD_PRELOAD=$DLIB "$WORK/overflow" >/dev/null 2>"$WORK/overflow.err"; echo $?) 2>/dev/null)
    if [ $rc -ne 0 ] && grep -q "overflow" "$WORK/overflow.err"; then
      ok "verification-mode library reports a heap overflow (status $rc)"
    else
      bad "verification-mode library missed a heap overflow (status $rc)" "$WORK/overflow.err"
    fi
  fi
else
  skipped+=("verification-mode library: libzmalloc-preload-debug.so not built (make test builds it in test-debug-pool)")
fi

# --- zmrun ------------------------------------------------------------------------
if [ -x "$ZMRUN" ] && [ -x $PY ]; then
  cat >"$WORK/mem.py" <<'EOF'
import os, sys
keep = [bytearray(1 << 20) for _ in range(64)]          # 64 MiB, counted and resident
for b in keep: b[::4096] = b"x" * len(b[::4096])
small = [str(i) * 3 for i in range(200000)]
del keep
print("hello from the program")
EOF
  out=$("$ZMRUN" --json -o "$WORK/report.json" -- $PY "$WORK/mem.py" 2>"$WORK/zmrun.err"); rc=$?
  if [ $rc -eq 0 ] && [ "$out" = "hello from the program" ] &&
     $PY - "$WORK/report.json" >"$WORK/zmrun.check" 2>&1 <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
need = ["peak_used", "peak_rss", "allocs", "reallocs", "frees", "hist", "fragmentation_ratio",
        "peak_rss_per_peak_used", "processes_reported", "main_process", "processes", "backend"]
missing = [k for k in need if k not in r]
assert not missing, "missing fields %s" % missing
assert r["processes_reported"] == 1, r["processes_reported"]
assert r["backend"] == "pool", r["backend"]
assert 64 << 20 <= r["peak_used"] < 1 << 30, r["peak_used"]
assert r["peak_rss"] >= 64 << 20, r["peak_rss"]
assert r["allocs"] > 1000 and 0 < r["frees"] <= r["allocs"] + r["reallocs"], (r["allocs"], r["frees"])
assert sum(c for _, c in r["hist"]) == r["allocs"] + r["reallocs"], "histogram does not add up"
assert r["hist"][-1][0] == 0 and r["hist"][0][0] == 16, r["hist"]
big = [c for u, c in r["hist"] if u == 1 << 21 or u == 0]
assert sum(c for u, c in r["hist"] if u == 0 or u > 1 << 20) >= 64, "64 blocks of 1 MiB + header"
m = r["main_process"]
assert m["used_at_exit"] >= 0 and m["rss_at_exit"] > 0
assert r["fragmentation_ratio"] is None or r["fragmentation_ratio"] > 0
assert 0.5 < r["peak_rss_per_peak_used"] < 10, r["peak_rss_per_peak_used"]
print("report ok: peak used %d, peak RSS %d, %d allocations" % (r["peak_used"], r["peak_rss"], r["allocs"]))
EOF
  then
    ok "zmrun --json: $(cat "$WORK/zmrun.check")"
  else
    bad "zmrun --json (status $rc, stdout '$out')" "$WORK/zmrun.check"; cat "$WORK/zmrun.err"
  fi
  # Text report on stderr, stdout untouched, the exit status passed on, and
  # the records of exec'd children aggregated (the two pythons; dash's own
  # `exit` ends with _exit, so sh itself may write no record).
  out=$("$ZMRUN" -- sh -c "$PY -c 'print(1)'; $PY -c 'print(2)'; exit 3" 2>"$WORK/zmrun-text.err"); rc=$?
  if [ $rc -eq 3 ] && [ "$out" = "$(printf '1\n2')" ] &&
     grep -q "^peak used:" "$WORK/zmrun-text.err" && grep -q "^peak RSS:" "$WORK/zmrun-text.err" &&
     grep -q "^fragmentation ratio:" "$WORK/zmrun-text.err" &&
     grep -qE "^processes reported: +[23]$" "$WORK/zmrun-text.err" &&
     grep -q "allocations by block size" "$WORK/zmrun-text.err"; then
    ok "zmrun text report: $(grep -E "^processes reported" "$WORK/zmrun-text.err" | tr -s ' '), exit status 3 passed on"
  else
    bad "zmrun text report (status $rc, stdout '$out')" "$WORK/zmrun-text.err"
  fi
  out=$("$ZMRUN" --debug -- true 2>&1); rc=$?
  if [ $rc -eq 0 ] && echo "$out" | grep -qE "debug|verification"; then
    ok "zmrun --debug says which library it ran"
  else
    bad "zmrun --debug (status $rc)"; echo "$out" | tail -5
  fi
else
  bad "zmrun: $ZMRUN missing"
fi

for s in "${skipped[@]}"; do echo "skipped $s"; done
[ ${#fails[@]} -gt 0 ] && echo "preload failures: ${fails[*]}"
echo "preload: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
