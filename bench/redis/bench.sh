#!/usr/bin/env bash
# make bench-redis (and make bench FULL=1): Redis and Valkey on zmalloc's
# pool against the same servers as their sources ship them (issues 7, 11).
#
# Servers (BENCH_SERVERS, default "debian valkey-9.1.0"): Debian's Redis
# 7.0.15 source package and the Valkey 9.1.0 tarball, each built three ways:
#   pool      make MALLOC=libc with zmalloc's shim over the pool backend
#             (tests/redis/check.sh's tree: only src/zmalloc.[ch] and, for
#             Valkey 8.1+, allocator_defrag.[ch] replaced)
#   jemalloc  the unmodified source, `make` with its default MALLOC: the
#             jemalloc it bundles in deps/ (what a user who builds the
#             server gets), in build/redis/stock/<server>-jemalloc
#   libc      the unmodified source, `make MALLOC=libc` (glibc malloc under
#             the server's own zmalloc.c), in build/redis/stock/<server>-libc
#   (Debian's source without its patch 0004, which breaks the bundled
#   jemalloc build: see build_stock.)
#
#   1. Throughput: redis-benchmark / valkey-benchmark (loopback, pipelined)
#      for SET, GET, LPUSH, HSET, ZADD with 3-byte and 1 KiB values. The
#      request count of a cell is calibrated once per (server, size, test)
#      so that the fastest build's run lasts CELL_SECONDS (a short first
#      run on every build, which also warms them up; raised after each
#      round to the fastest rate seen so far); then REPS rounds,
#      each running every build on that cell before the next cell, the
#      build order rotating by round, so a burst of load from elsewhere
#      hits all builds alike. Per run: requests/s, p50 and p99 latency (the
#      tool's CSV), used_memory (INFO) and the process RSS (/proc) after it.
#   2. Fragmentation and active defrag (pool and jemalloc: the servers run
#      active defrag on those only): NKEYS keys of mixed sizes by DEBUG
#      POPULATE, half deleted at random (a Park-Miller generator in Lua,
#      seeded alike on every run: the same keys on every build), a quarter
#      refilled with other sizes; then activedefrag on until the server has
#      reported it idle for 3 s (or DEFRAG_TIMEOUT), then MEMORY PURGE.
#      INFO memory at each step, the defragmenter's counters (hits, misses,
#      total_active_defrag_time) and the server process's CPU time over the
#      defrag phase (user + system of all its threads, /proc/<pid>/stat).
# bench/redis/report.py turns the raw figures into the tables.
#
# Output: build/bench/redis.md (also on stdout) and build/bench/redis.json;
# raw figures in build/bench/redis-raw/. Tracked files are never written
# (make bench-save copies redis.md to docs/benchmarks/).
#
# Environment:
#   QUICK=1           small run (0.5 s cells, 3 rounds, 200k keys)
#   REPS              throughput rounds (default 5; QUICK 3)
#   CELL_SECONDS      target length of one benchmark run (default 2.2; QUICK 0.5)
#   BENCH_REQUESTS    a fixed request count for every cell (no calibration)
#   BENCH_KEYS        keys of the fragmentation run (default 1000000; QUICK 200000)
#   BENCH_PIPELINE    -P (default 16);  BENCH_CLIENTS  -c (default 50)
#   BENCH_KEYSPACE    -r (default 100000)
#   DEFRAG_TIMEOUT    seconds active defrag may run (default 90)
#   BENCH_PIN=0       do not pin server and client to separate cores
#   BENCH_SERVERS     servers (check.sh names: debian, valkey-9.1.0, ...)
#   BENCH_BUILDS      builds compared (default "pool jemalloc libc"; the
#                     first is the one the ratios are of)
#   BENCH_SKIP_THROUGHPUT=1 / BENCH_SKIP_FRAG=1  one part only
#   BENCH_ONLY_BUILD=1  build what is missing and stop
#   JOBS              make jobs for the builds (default 2)
set -euo pipefail
# The whole script is one compound command, read in full before it runs, so
# editing this file during a run cannot change what the running copy does.
{

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RB=$ROOT/build/redis
STOCK=$RB/stock
OUT=$ROOT/build/bench
RAW=$OUT/redis-raw
read -r -a SERVERS <<<"${BENCH_SERVERS:-debian valkey-9.1.0}"
read -r -a BUILDS <<<"${BENCH_BUILDS:-pool jemalloc libc}"
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    REPS=${REPS:-3}
    CELL_SECONDS=${CELL_SECONDS:-0.5}
    NKEYS=${BENCH_KEYS:-200000}
else
    REPS=${REPS:-5}
    CELL_SECONDS=${CELL_SECONDS:-2.2}
    NKEYS=${BENCH_KEYS:-1000000}
fi
FIXED_REQUESTS=${BENCH_REQUESTS:-}
CAL_REQUESTS=100000
PIPELINE=${BENCH_PIPELINE:-16}
CLIENTS=${BENCH_CLIENTS:-50}
KEYSPACE=${BENCH_KEYSPACE:-100000}
DEFRAG_TIMEOUT=${DEFRAG_TIMEOUT:-90}
JOBS=${JOBS:-2}
TESTS="SET GET LPUSH HSET ZADD"
SIZES=(3 1024)
T0=$(date +%s)

log() { printf '[redis-bench %s +%ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - T0))" "$*" >&2; }
die() {
    printf 'redis-bench: FAIL: %s\n' "$*" >&2
    exit 1
}

mkdir -p "$OUT" "$STOCK"
WORK=$(mktemp -d "$OUT/redis-run.XXXXXX")
SERVER_PIDS=()
. "$ROOT/tests/redis/common.sh" # free_port, stop_all_servers
cleanup() {
    stop_all_servers
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- builds
# check.sh's tree for the pool build of a server, and the source it unpacked.
pool_tree() { if [ "$1" = debian ]; then echo "$RB/tree-pool"; else echo "$RB/$1-pool"; fi; }
source_tree() {
    if [ "$1" = debian ]; then
        find "$RB/src-pkg" -mindepth 1 -maxdepth 1 -type d -name 'redis-*' 2>/dev/null | sort | tail -n 1
    else
        echo "$ROOT/build/servers/src/$1"
    fi
}
tree_of() { # server build
    if [ "$2" = pool ]; then pool_tree "$1"; else echo "$STOCK/$1-$2"; fi
}
bin_of() { # tree tool
    if [ -x "$1/src/valkey-$2" ]; then echo "$1/src/valkey-$2"; else echo "$1/src/redis-$2"; fi
}

# The pool trees come from check.sh (which rebuilds one when our library,
# the shims or its make line changed, and fetches the sources). One server
# after the other, so that no more than JOBS compilers run.
case " ${BUILDS[*]} " in *" pool "*)
    log "pool builds: tests/redis/check.sh (build steps only) for ${SERVERS[*]}"
    REDIS_CHECK_SERVERS="${SERVERS[*]}" REDIS_CHECK_ONLY_BUILD=1 REDIS_CHECK_BACKENDS=pool \
        REDIS_CHECK_PARALLEL=0 JOBS="$JOBS" \
        bash "$ROOT/tests/redis/check.sh" >"$WORK/check.log" 2>&1 ||
        { tail -n 30 "$WORK/check.log" >&2; die "building the servers on zmalloc failed"; }
    ;;
esac

DEB_SYSJE=0004-Add-support-for-USE_SYSTEM_JEMALLOC-flag.patch
# A stock build: a fresh copy of the unmodified source, the server's own
# make. Reused while its stamp (source path and make line) is unchanged.
build_stock() { # server malloc
    local s=$1 m=$2 src dst args stamp t
    src=$(source_tree "$s")
    [ -n "$src" ] && [ -d "$src/src" ] || die "no source of $s (check.sh unpacks it)"
    dst=$STOCK/$s-$m
    args=(USE_SYSTEMD=no BUILD_TLS=no)
    [ "$m" = libc ] && args+=(MALLOC=libc)
    stamp="$src ${args[*]}"
    [ "$s" != debian ] || stamp="$stamp -R $DEB_SYSJE"
    if [ -x "$(bin_of "$dst" server)" ] && [ "$(cat "$dst/.bench-stamp" 2>/dev/null)" = "$stamp" ]; then
        log "[$s/$m] reusing $dst"
        return 0
    fi
    log "[$s/$m] building the server's source: make -C src ${args[*]} (default MALLOC for jemalloc: the bundled one)"
    rm -rf "$dst"
    cp -a "$src" "$dst"
    # Debian's patch 0004 (USE_SYSTEM_JEMALLOC) guards its renames with
    # `#if defined(USE_JEMALLOC) && (USE_SYSTEM_JEMALLOC == yes)`, true for
    # any USE_JEMALLOC build (both names are undefined, so 0 == 0): with the
    # bundled jemalloc, je_mallctl becomes mallctl and the link fails. Debian
    # builds only against its system jemalloc, which has no defrag hint (so
    # no active defrag). The stock builds take Debian's source without that
    # one patch: upstream's bundled-jemalloc build, Debian's other patches.
    if [ "$s" = debian ] && [ -f "$dst/debian/patches/$DEB_SYSJE" ]; then
        (cd "$dst" && patch -R -p1 -s <"debian/patches/$DEB_SYSJE") >"$dst.build.log" 2>&1 ||
            die "[$s/$m] reverting debian/patches/$DEB_SYSJE failed (log $dst.build.log)"
    fi
    t=$(date +%s)
    make -C "$dst/src" -j"$JOBS" "${args[@]}" >>"$dst.build.log" 2>&1 ||
        { tail -n 30 "$dst.build.log" >&2; die "[$s/$m] stock build failed (log $dst.build.log)"; }
    echo "$stamp" >"$dst/.bench-stamp"
    log "[$s/$m] built in $(($(date +%s) - t))s"
}
for s in "${SERVERS[@]}"; do
    for b in "${BUILDS[@]}"; do
        [ "$b" = pool ] || build_stock "$s" "$b"
    done
done
[ "${BENCH_ONLY_BUILD:-0}" = 1 ] && { log "built (BENCH_ONLY_BUILD=1)"; exit 0; }

# ---------------------------------------------------------------- servers
# Server on CPU 1, benchmark client on CPU 0: they never take each other's
# core (the other load of the machine still lands on both).
PIN_SERVER=()
PIN_CLIENT=()
if [ "${BENCH_PIN:-1}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c 1)
    PIN_CLIENT=(taskset -c 0)
fi

declare -A PORT PID TREE

start_server() { # key tree base-port [extra args]
    local k=$1 tree=$2 base=$3 port dir=$WORK/${1//\//-} i
    shift 3
    port=$(free_port "$base")
    mkdir -p "$dir"
    # taskset execs the server: $! is the server's pid.
    "${PIN_SERVER[@]}" "$(bin_of "$tree" server)" --port "$port" --bind 127.0.0.1 --save "" \
        --appendonly no --daemonize no --dir "$dir" --logfile "$dir/server.log" \
        --enable-debug-command local --lua-time-limit 60000 "$@" >/dev/null 2>&1 &
    PID[$k]=$!
    SERVER_PIDS+=($!)
    PORT[$k]=$port
    TREE[$k]=$tree
    for i in $(seq 1 100); do
        [ "$(cli "$k" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "${PID[$k]}" 2>/dev/null || die "server $k exited at start: $(tail -n 5 "$dir/server.log")"
        sleep 0.1
    done
    die "server $k did not answer on 127.0.0.1:$port"
}
stop_server() {
    local k=$1 i
    cli "$k" shutdown nosave >/dev/null 2>&1 || true
    for i in $(seq 1 50); do
        kill -0 "${PID[$k]}" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "${PID[$k]}" 2>/dev/null || true
    wait "${PID[$k]}" 2>/dev/null || true
}
cli() { # key args...
    local k=$1
    shift
    timeout 600 "$(bin_of "${TREE[$k]}" cli)" -h 127.0.0.1 -p "${PORT[$k]}" "$@"
}
info_field() { # key field [section]
    cli "$1" info "${3:-memory}" | tr -d '\r' | sed -n "s/^$2://p"
}
# User + system CPU of a process (all threads), in ms.
cpu_ms() {
    awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"
}
rss_bytes() { awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$1/status"; }
LOADS=$RAW/loadavg.txt
sample_load() { cut -d' ' -f1 /proc/loadavg >>"$LOADS"; }

rm -rf "$RAW"
mkdir -p "$RAW"
THR=$RAW/throughput.txt # server build size test round requests rps p50_ms p99_ms used_memory rss
MEM=$RAW/memory.txt     # server build step keys used rss mem_frag alloc_frag alloc_frag_bytes allocated active resident
DEF=$RAW/defrag.txt     # server build status wall_s cpu_ms defrag_time_ms hits misses
CAL=$RAW/calibration.txt
: >"$THR"
: >"$MEM"
: >"$DEF"
: >"$CAL"
: >"$LOADS"
sample_load
declare -A VERSION ALLOC

start_all() { # server base-port [extra args]: one server per build
    local s=$1 base=$2 b
    shift 2
    for b in "${BUILDS[@]}"; do
        start_server "$s/$b" "$(tree_of "$s" "$b")" "$base" "$@"
        base=$((base + 100))
        ALLOC[$s/$b]=$(info_field "$s/$b" mem_allocator)
        VERSION[$s]=$(cli "$s/$b" info server | tr -d '\r' | sed -n 's/^\(valkey\|redis\)_version://p' | tail -n 1)
        log "[$s/$b] ${VERSION[$s]}, mem_allocator '${ALLOC[$s/$b]}', pid ${PID[$s/$b]}"
    done
    case " ${BUILDS[*]} " in *" pool "*)
        case ${ALLOC[$s/pool]} in *"(pool"*) ;; *) die "[$s/pool] reports mem_allocator '${ALLOC[$s/pool]}'" ;; esac ;;
    esac
    case " ${BUILDS[*]} " in *" jemalloc "*)
        case ${ALLOC[$s/jemalloc]} in jemalloc*) ;; *) die "[$s/jemalloc] reports mem_allocator '${ALLOC[$s/jemalloc]}'" ;; esac ;;
    esac
    case " ${BUILDS[*]} " in *" libc "*)
        case ${ALLOC[$s/libc]} in libc*) ;; *) die "[$s/libc] reports mem_allocator '${ALLOC[$s/libc]}'" ;; esac ;;
    esac
}

# One benchmark run on an emptied server; prints "rps p50_ms p99_ms".
run_bench() { # key test size requests
    local k=$1 t=$2 size=$3 n=$4 r
    cli "$k" flushall >/dev/null
    timeout 600 "${PIN_CLIENT[@]}" "$(bin_of "${TREE[$k]}" benchmark)" -h 127.0.0.1 -p "${PORT[$k]}" \
        -q --csv -t "${t,,}" -n "$n" -P "$PIPELINE" -c "$CLIENTS" -r "$KEYSPACE" -d "$size" \
        >"$WORK/rb.csv" 2>"$WORK/rb.err" || die "benchmark ($k, $t, $size B) failed: $(tail -n 3 "$WORK/rb.err")"
    # CSV: "test","rps","avg","min","p50","p95","p99","max" (latencies in ms)
    r=$(awk -F, -v t="$t" '{for (i = 1; i <= NF; i++) gsub(/"/, "", $i); if ($1 == t) {print $2, $5, $7; exit}}' "$WORK/rb.csv")
    [ -n "$r" ] || die "benchmark ($k, $t) printed no $t line: $(head -n 3 "$WORK/rb.csv")"
    echo "$r"
}

# ---------------------------------------------------------------- throughput
declare -A NREQ
if [ "${BENCH_SKIP_THROUGHPUT:-0}" != 1 ]; then
    for s in "${SERVERS[@]}"; do
        start_all "$s" 27300
        nb=${#BUILDS[@]}
        # Calibration (and warm-up): a short run on every build; the cell's
        # request count gives the fastest of them CELL_SECONDS.
        for size in "${SIZES[@]}"; do
            for t in $TESTS; do
                best=0
                for b in "${BUILDS[@]}"; do
                    read -r rps _ <<<"$(run_bench "$s/$b" "$t" "$size" "$CAL_REQUESTS")"
                    [ -n "$rps" ] || die "calibration run ($s/$b, $t, $size B) failed"
                    best=$(awk -v a="$best" -v b="$rps" 'BEGIN {print (b > a) ? b : a}')
                done
                if [ -n "$FIXED_REQUESTS" ]; then
                    n=$FIXED_REQUESTS
                else
                    n=$(awk -v r="$best" -v c="$CELL_SECONDS" -v m="$CAL_REQUESTS" 'BEGIN {n = int(r * c / 10000 + 1) * 10000; print (n < m) ? m : n}')
                fi
                NREQ[$s/$size/$t]=$n
                echo "$s $size $t $best $n" >>"$CAL"
            done
        done
        log "[$s] requests per cell: $(awk -v s="$s" '$1 == s {printf "%s/%s=%s ", $3, $2, $5}' "$CAL")"
        log "[$s] throughput: $REPS rounds x ${#SIZES[@]} sizes x 5 tests x $nb builds, -P $PIPELINE -c $CLIENTS -r $KEYSPACE"
        for rep in $(seq 1 "$REPS"); do
            order=()
            for i in $(seq 0 $((nb - 1))); do order+=("${BUILDS[$(((i + rep) % nb))]}"); done
            for size in "${SIZES[@]}"; do
                line=""
                for t in $TESTS; do
                    n=${NREQ[$s/$size/$t]}
                    for b in "${order[@]}"; do
                        k=$s/$b
                        read -r rps p50 p99 <<<"$(run_bench "$k" "$t" "$size" "$n")"
                        [ -n "$p99" ] || die "benchmark run ($k, $t, $size B) failed"
                        echo "$s $b $size $t $rep $n $rps $p50 $p99 $(info_field "$k" used_memory) $(rss_bytes "${PID[$k]}")" >>"$THR"
                        line="$line $t/$b $(printf '%.0f' "$rps")"
                    done
                done
                sample_load
                log "  [$s] round $rep, ${size} B (load $(cut -d' ' -f1 /proc/loadavg)):$line"
                # The load of the machine changes a cell's rate threefold:
                # the next rounds get the count that makes the fastest run
                # seen so far last CELL_SECONDS (every build of a round
                # runs the same count; the rate does not depend on it).
                [ -n "$FIXED_REQUESTS" ] || for t in $TESTS; do
                    n=$(awk -v s="$s" -v z="$size" -v t="$t" -v c="$CELL_SECONDS" -v m="${NREQ[$s/$size/$t]}" \
                        '$1 == s && $3 == z && $4 == t && $7 > r {r = $7} END {n = int(r * c / 10000 + 1) * 10000; print (n > m) ? n : m}' "$THR")
                    NREQ[$s/$size/$t]=$n
                done
            done
        done
        for b in "${BUILDS[@]}"; do stop_server "$s/$b"; done
    done
fi

# ---------------------------------------------------------------- fragmentation + defrag
# Sizes of the fill, and of the refill (other classes on purpose: the holes
# the deletes left do not fit them exactly).
FILL_MIX="16:40 64:30 256:20 1024:10"
REFILL_MIX="24:40 100:30 400:20 1500:10"
# Defrag at most 75% of the main thread and at least 25% from the start
# (the servers' defaults, 1% to 25% scaled by the fragmentation, would take
# minutes here); the same settings on every build.
DEFRAG_ARGS=(--active-defrag-ignore-bytes 1mb --active-defrag-threshold-lower 5
    --active-defrag-cycle-min 25 --active-defrag-cycle-max 75)
populate() { # key prefix mix divisor
    local k=$1 tag=$2 mix=$3 div=$4 sp sz pct n
    for sp in $mix; do
        sz=${sp%%:*}
        pct=${sp##*:}
        n=$((NKEYS * pct / 100 / div))
        cli "$k" debug populate "$n" "$tag$sz" "$sz" >/dev/null
    done
}
# Deletes about half of the fill's keys. Park-Miller (x * 16807 mod 2^31-1
# is exact in Lua's doubles), seeded by the size: the same keys on every
# build and server, whatever the server does with math.random.
delete_half() { # key
    local k=$1 sp sz pct n
    for sp in $FILL_MIX; do
        sz=${sp%%:*}
        pct=${sp##*:}
        n=$((NKEYS * pct / 100))
        cli "$k" eval "local x = $sz local d = 0 for i = 0, $((n - 1)) do x = (x * 16807) % 2147483647 if x < 1073741823 then d = d + redis.call('del', 'k$sz:' .. i) end end return d" 0 >/dev/null
    done
}
snapshot() { # server build step
    local k=$1/$2 step=$3 info keys
    sleep 1.5 # INFO's allocator and RSS figures refresh in serverCron
    info=$(cli "$k" info memory | tr -d '\r')
    keys=$(cli "$k" dbsize)
    f() { echo "$info" | sed -n "s/^$1://p"; }
    echo "$1 $2 $step $keys $(f used_memory) $(f used_memory_rss) $(f mem_fragmentation_ratio) $(f allocator_frag_ratio) $(f allocator_frag_bytes) $(f allocator_allocated) $(f allocator_active) $(f allocator_resident)" >>"$MEM"
    log "  [$k] $step: keys $keys used $(f used_memory_human) rss $(f used_memory_rss_human) allocator_frag_ratio $(f allocator_frag_ratio) ($(f allocator_frag_bytes) B) mem_frag $(f mem_fragmentation_ratio)"
}
if [ "${BENCH_SKIP_FRAG:-0}" != 1 ]; then
    for s in "${SERVERS[@]}"; do
        for b in "${BUILDS[@]}"; do
            [ "$b" = libc ] && continue # no defragmenter there
            k=$s/$b
            start_server "$k" "$(tree_of "$s" "$b")" 27600 "${DEFRAG_ARGS[@]}"
            ALLOC[$k]=$(info_field "$k" mem_allocator)
            VERSION[$s]=$(cli "$k" info server | tr -d '\r' | sed -n 's/^\(valkey\|redis\)_version://p' | tail -n 1)
            log "[$k] fragmentation: $NKEYS keys ($FILL_MIX), delete half at random, refill a quarter ($REFILL_MIX), active defrag, purge"
            snapshot "$s" "$b" empty
            populate "$k" k "$FILL_MIX" 1
            snapshot "$s" "$b" fill
            delete_half "$k"
            populate "$k" r "$REFILL_MIX" 4
            snapshot "$s" "$b" refill
            sample_load
            c0=$(cpu_ms "${PID[$k]}")
            t0=$(date +%s%N)
            r=$(cli "$k" config set activedefrag yes 2>&1)
            [ "$r" = OK ] || die "[$k] CONFIG SET activedefrag yes answered '$r'"
            # Started (the server decides about once a second; a small pass
            # may be over before the first look, hence the counters), then
            # idle for 3 s in a row (a pass ends, the next cron may start
            # another).
            status="not started"
            for i in $(seq 1 50); do
                st=$(cli "$k" info stats | tr -d '\r')
                if [ "$(info_field "$k" active_defrag_running)" != 0 ] ||
                    [ "$(echo "$st" | sed -n 's/^active_defrag_\(hits\|misses\)://p' | awk '{s += $1} END {print s + 0}')" != 0 ]; then
                    status=running
                    break
                fi
                sleep 0.1
            done
            if [ "$status" = running ]; then
                idle=0
                deadline=$(($(date +%s) + DEFRAG_TIMEOUT))
                while [ "$(date +%s)" -lt "$deadline" ]; do
                    if [ "$(info_field "$k" active_defrag_running)" = 0 ]; then idle=$((idle + 1)); else idle=0; fi
                    [ "$idle" -ge 30 ] && { status=done; break; }
                    sleep 0.1
                done
                [ "$status" = done ] || status=timeout
            fi
            t1=$(date +%s%N)
            c1=$(cpu_ms "${PID[$k]}")
            cli "$k" config set activedefrag no >/dev/null
            sample_load
            st=$(cli "$k" info stats | tr -d '\r')
            g() { v=$(echo "$st" | sed -n "s/^$1://p"); echo "${v:-0}"; }
            echo "$s $b ${status// /_} $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1e9}') $((c1 - c0)) $(g total_active_defrag_time) $(g active_defrag_hits) $(g active_defrag_misses)" >>"$DEF"
            log "  [$k] defrag $status: CPU $((c1 - c0)) ms, total_active_defrag_time $(g total_active_defrag_time) ms, hits $(g active_defrag_hits), misses $(g active_defrag_misses)"
            snapshot "$s" "$b" defrag
            r=$(cli "$k" memory purge)
            [ "$r" = OK ] || die "MEMORY PURGE on $k answered '$r'"
            snapshot "$s" "$b" purge
            stop_server "$k"
        done
    done
fi
sample_load

# ---------------------------------------------------------------- report
{
    echo "{"
    echo "  \"date\": \"$(date -u '+%Y-%m-%d %H:%M UTC')\","
    echo "  \"started\": \"$(date -u -d "@$T0" '+%H:%M')\", \"seconds\": $(($(date +%s) - T0)),"
    echo "  \"commit\": \"$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo '+dirty')\","
    echo "  \"cores\": $(nproc), \"cpu\": \"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)\","
    echo "  \"nice\": $(nice), \"pinned\": $([ ${#PIN_SERVER[@]} -gt 0 ] && echo true || echo false),"
    echo "  \"quick\": $([ "$QUICK" = 1 ] && echo true || echo false), \"reps\": $REPS, \"cell_seconds\": $CELL_SECONDS,"
    echo "  \"fixed_requests\": \"${FIXED_REQUESTS}\", \"pipeline\": $PIPELINE, \"clients\": $CLIENTS, \"keyspace\": $KEYSPACE,"
    echo "  \"nkeys\": $NKEYS, \"fill_mix\": \"$FILL_MIX\", \"refill_mix\": \"$REFILL_MIX\","
    echo "  \"defrag_args\": \"${DEFRAG_ARGS[*]}\", \"defrag_timeout\": $DEFRAG_TIMEOUT,"
    echo "  \"servers\": [$(printf '"%s",' "${SERVERS[@]}" | sed 's/,$//')],"
    echo "  \"builds\": [$(printf '"%s",' "${BUILDS[@]}" | sed 's/,$//')],"
    echo "  \"versions\": {$(for s in "${SERVERS[@]}"; do printf '"%s": "%s",' "$s" "${VERSION[$s]:-?}"; done | sed 's/,$//')},"
    echo "  \"allocators\": {$(for k in "${!ALLOC[@]}"; do printf '"%s": "%s",' "$k" "${ALLOC[$k]}"; done | sed 's/,$//')}"
    echo "}"
} >"$RAW/meta.json"
python3 "$ROOT/bench/redis/report.py" "$RAW" "$OUT/redis.md" "$OUT/redis.json" || die "report failed"
cat "$OUT/redis.md"
log "wrote $OUT/redis.md and $OUT/redis.json in $(($(date +%s) - T0))s"
exit 0
}
