#!/usr/bin/env bash
# run_pprof.sh WORKLOAD OUTDIR ZMRUN [PRELOAD_LIB]: the profile of
# prof_workload.c's known heap, read by google-pprof, must name the
# workload's functions with live bytes within 10% of the truth; the SVG call
# graph must come out. With the preload library: the same for the exit-time
# profile (ZMALLOC_PROF_FILE) of the program's malloc, and zmrun --profile
# must write the profile and the SVG next to its report.
# Exit 77 (skipped) when google-pprof is not installed.
set -u
workload=$1 out=$2 zmrun=$3 preload=${4:-}
command -v google-pprof >/dev/null || { echo "skipped: google-pprof not installed"; exit 77; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# check_site TEXT FUNCTION TRUE_BYTES: the function's cumulative in-use
# megabytes (column 4 of pprof --text) within 10% of the truth.
check_site() {
  local mb
  mb=$(echo "$1" | awk -v f="$2" '$6 == f { print $4; exit }')
  if [ -z "$mb" ]; then fail "$2 not in the profile"; return; fi
  if ! awk -v mb="$mb" -v t="$3" 'BEGIN { b = mb * 1048576; exit !(b > 0.9 * t && b < 1.1 * t) }'; then
    fail "$2: $mb MB in use, truth $(awk -v t="$3" 'BEGIN { printf "%.1f", t / 1048576 }') MB"
  else
    echo "ok: $2 $mb MB (truth $(awk -v t="$3" 'BEGIN { printf "%.2f", t / 1048576 }') MB)"
  fi
}

check_profile() { # label, program, profile
  local text
  text=$(google-pprof --text "$2" "$3" 2>/dev/null)
  [ -n "$text" ] || { fail "$1: google-pprof printed nothing"; return; }
  echo "$text" | head -12 | sed "s/^/  $1: /"
  check_site "$text" keep_small_blocks $((200000 * 48 + 200000 * 8))
  check_site "$text" keep_medium_blocks $((20000 * 1000 + 20000 * 8))
  check_site "$text" keep_large_blocks $((40 * 262144 + 40 * 8))
  # Allocated since start: churn_and_free allocated 500000 x 100 bytes.
  local alloc
  alloc=$(google-pprof --text --alloc_space "$2" "$3" 2>/dev/null)
  check_site "$alloc" churn_and_free 50000000
  if echo "$text" | awk '$6 == "churn_and_free" && $4 + 0 > 0.5 { found = 1 } END { exit !found }'; then
    fail "$1: churn_and_free shows live bytes after freeing all"
  fi
}

rm -f "$out"/prof-*.heap "$out"/prof-*.svg
ZMALLOC_PROF_SAMPLE=4096 "$workload" "$out/prof-api.heap" || fail "workload exit status"
check_profile api "$workload" "$out/prof-api.heap"
if command -v dot >/dev/null; then
  google-pprof --svg "$workload" "$out/prof-api.heap" >"$out/prof-api.svg" 2>/dev/null
  grep -q "<svg" "$out/prof-api.svg" && grep -q keep_medium_blocks "$out/prof-api.svg" ||
    fail "no SVG call graph naming keep_medium_blocks"
else
  echo "skipped SVG: graphviz (dot) not installed"
fi

if [ -n "$preload" ]; then
  LD_PRELOAD=$preload ZMALLOC_PROF_SAMPLE=4096 ZMALLOC_PROF_FILE="$out/prof-preload.%p.heap" \
    "$workload" --libc || fail "workload under the preload library"
  set -- "$out"/prof-preload.*.heap
  if [ -f "$1" ]; then check_profile preload "$workload" "$1"; else fail "no exit-time profile"; fi
  if [ -x "$zmrun" ]; then
    rm -rf "$out/zmrun" && mkdir -p "$out/zmrun"
    "$zmrun" --library "$preload" --profile=4096 -o "$out/zmrun/report.txt" -- "$workload" --libc ||
      fail "zmrun --profile exit status"
    ls "$out"/zmrun/report.txt.*.heap >/dev/null 2>&1 || fail "zmrun --profile wrote no profile"
    if command -v dot >/dev/null; then
      grep -q "<svg" "$out/zmrun/report.txt.svg" 2>/dev/null || fail "zmrun --profile wrote no SVG"
    fi
    grep -q "heap profile" "$out/zmrun/report.txt" || fail "the report does not name the profile"
  fi
fi
echo "prof_pprof: $fails failed"
[ "$fails" -eq 0 ]
