#!/usr/bin/env bash
# make redis-check: build the Redis that Debian ships on zmalloc and prove it
# works, with Redis's own test suite (issue 7).
#
#   1. Debian's redis source package (apt-get source, deb-src enabled in a
#      private apt configuration under build/apt/; the system's sources lists
#      are never touched) into build/redis/src-pkg/ (reused when present).
#   2. Two builds of it, MALLOC=libc with src/zmalloc.c and src/zmalloc.h
#      replaced by the thin shim in tests/redis/: one on our pool backend, one
#      on our jemalloc backend. Only Redis make variables differ between the
#      two: REDIS_CFLAGS (our include dir) and FINAL_LIBS (our library).
#   3. INFO memory / MEMORY checks of a running server of each build.
#   4. Redis's own ./runtest on the pool build, units from tests/redis/units.txt.
#
# Environment knobs:
#   ZMALLOC_NO_INSTALL=1    never apt-get install missing tools (dpkg-dev, tcl)
#   REDIS_CHECK_BACKENDS    backends to build (default "pool jemalloc")
#   REDIS_CHECK_RUNTEST     backend that runs ./runtest (default pool; "none" skips)
#   REDIS_CHECK_UNITS       file with the unit list (default tests/redis/units.txt)
#   REDIS_CHECK_CLIENTS     runtest --clients (default 2)
#   REDIS_CHECK_SKIP_INSTALL=1  reuse build/redis/install-<backend> (no make install)
#   REDIS_CHECK_SKIP_BUILD=1  reuse build/redis/tree-<backend> as built before
#   REDIS_CHECK_ONLY_BUILD=1  stop after the builds (bench/redis/bench.sh uses it)
#   REDIS_CHECK_STRICT=0    allocator figures that cannot be true (allocator_resident
#                           above the process RSS) only warn instead of failing the
#                           check (default 1: they fail)
#   JOBS                    parallel make jobs (default nproc)
#
# Output: progress lines on stdout; logs in build/redis/logs/. Exits non-zero
# with "redis-check: FAIL: ..." on the first failed step.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/redis
BUILD=$ROOT/build
RB=$BUILD/redis
LOGS=$RB/logs
APTDIR=$BUILD/apt
BACKENDS=${REDIS_CHECK_BACKENDS:-"pool jemalloc"}
RUNTEST_BACKEND=${REDIS_CHECK_RUNTEST:-pool}
UNITS_FILE=${REDIS_CHECK_UNITS:-$HERE/units.txt}
SKIP_FILE=$HERE/skiptests.txt
CLIENTS=${REDIS_CHECK_CLIENTS:-2}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
T0=$(date +%s)

log() { printf '[redis-check %s +%ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - T0))" "$*"; }
die() {
    printf 'redis-check: FAIL: %s\n' "$*" >&2
    exit 1
}
# Show the end of a log file, then fail.
die_log() {
    local file=$1
    shift
    echo "---- last 40 lines of $file ----" >&2
    tail -n 40 "$file" >&2 || true
    die "$*"
}

mkdir -p "$RB" "$LOGS"

WARNINGS=()
# Servers we start; killed on any exit.
SERVER_PIDS=()
. "$ROOT/tests/redis/common.sh" # free_port, stop_all_servers
trap stop_all_servers EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- apt
# A private apt configuration: our own sources (the system's deb entries,
# plus deb-src), lists and cache under build/apt/. The system's sources,
# lists and caches stay as they are.
private_apt_config() {
    mkdir -p "$APTDIR/sources.list.d" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
    : >"$APTDIR/sources.list"
    local f n=0
    # deb822 files: add deb-src to every Types: line that has deb.
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        grep -qiE '^Types:.*\bdeb\b' "$f" || continue
        sed -E '/^Types:/{s/\bdeb-src\b//g; s/\bdeb\b/deb deb-src/; s/[[:space:]]+/ /g}' "$f" \
            >"$APTDIR/sources.list.d/$(basename "$f")"
        n=$((n + 1))
    done
    # One-line format: add a deb-src twin of every deb line.
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        grep -E '^[[:space:]]*deb[[:space:]]' "$f" >/dev/null || continue
        sed -nE 's/^[[:space:]]*deb([[:space:]].*)$/deb\1\ndeb-src\1/p' "$f" \
            >>"$APTDIR/sources.list"
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] || die "no apt sources found under /etc/apt to derive deb-src entries from"
    cat >"$APTDIR/apt.conf" <<EOF
// Private apt configuration of make redis-check (tests/redis/check.sh).
Dir::Etc::sourcelist "$APTDIR/sources.list";
Dir::Etc::sourceparts "$APTDIR/sources.list.d";
Dir::State::Lists "$APTDIR/lists";
Dir::Cache "$APTDIR/cache";
EOF
}

APT_UPDATED=0
private_apt_update() {
    [ "$APT_UPDATED" = 1 ] && return 0
    private_apt_config
    log "apt-get update (private configuration $APTDIR/apt.conf)"
    # A source the machine cannot reach (a third-party repository, say) makes
    # apt-get update fail as a whole; Debian's lists may still have come in,
    # and apt-get source/install below fail clearly if they did not.
    if ! APT_CONFIG=$APTDIR/apt.conf timeout 600 apt-get -q update >"$LOGS/apt-update.log" 2>&1; then
        echo "  WARNING: apt-get update reported errors (see $LOGS/apt-update.log):" >&2
        grep -E '^(E|W):' "$LOGS/apt-update.log" | head -n 5 >&2 || true
    fi
    APT_UPDATED=1
}

ensure_tools() {
    local need=() pkgs=()
    command -v dpkg-source >/dev/null || need+=(dpkg-dev)
    command -v tclsh >/dev/null || need+=(tcl)
    command -v pkg-config >/dev/null || need+=(pkg-config)
    command -v gcc >/dev/null || need+=(gcc)
    command -v make >/dev/null || need+=(make)
    # Our jemalloc backend builds against Debian's libjemalloc.
    case " $BACKENDS " in *" jemalloc "*)
        [ -f /usr/include/jemalloc/jemalloc.h ] || need+=(libjemalloc-dev) ;;
    esac
    [ "${#need[@]}" -eq 0 ] && return 0
    pkgs=("${need[@]}")
    if [ "${ZMALLOC_NO_INSTALL:-0}" = 1 ]; then
        die "missing tools (packages: ${pkgs[*]}) and ZMALLOC_NO_INSTALL=1"
    fi
    [ "$(id -u)" = 0 ] || die "missing packages ${pkgs[*]}: run as root or install them"
    private_apt_update
    log "apt-get install ${pkgs[*]}"
    APT_CONFIG=$APTDIR/apt.conf DEBIAN_FRONTEND=noninteractive timeout 900 \
        apt-get -q install -y --no-install-recommends "${pkgs[@]}" >"$LOGS/apt-install.log" 2>&1 ||
        die_log "$LOGS/apt-install.log" "apt-get install ${pkgs[*]} failed"
}

# ---------------------------------------------------------------- source
SRC=""
fetch_source() {
    local d
    for d in "$RB"/src-pkg/redis-*/; do
        if [ -f "$d/src/server.c" ] && [ -f "$d/debian/changelog" ] && [ -f "$d/runtest" ]; then
            SRC=${d%/}
        fi
    done
    if [ -n "$SRC" ]; then
        log "reusing Redis source $SRC"
        return 0
    fi
    private_apt_update
    rm -rf "$RB/src-pkg.tmp"
    mkdir -p "$RB/src-pkg.tmp"
    log "apt-get source redis (deb-src of $(awk '/^URIs:|^deb /{print $2; exit}' "$APTDIR"/sources.list.d/* "$APTDIR/sources.list" 2>/dev/null))"
    (cd "$RB/src-pkg.tmp" && APT_CONFIG=$APTDIR/apt.conf timeout 600 apt-get -q source redis) \
        >"$LOGS/apt-source.log" 2>&1 || die_log "$LOGS/apt-source.log" "apt-get source redis failed"
    rm -rf "$RB/src-pkg"
    mv "$RB/src-pkg.tmp" "$RB/src-pkg"
    for d in "$RB"/src-pkg/redis-*/; do
        [ -f "$d/src/server.c" ] && SRC=${d%/}
    done
    [ -n "$SRC" ] || die "apt-get source redis produced no source tree in $RB/src-pkg"
    log "Redis source: $SRC (Debian's quilt patches applied by dpkg-source)"
}

redis_version() {
    sed -n 's/^#define REDIS_VERSION "\(.*\)"/\1/p' "$1/src/version.h"
}

# ---------------------------------------------------------------- zmalloc
install_zmalloc() {
    local b=$1 prefix=$RB/install-$1
    if [ "${REDIS_CHECK_SKIP_INSTALL:-0}" = 1 ] && [ -f "$prefix/lib/libzmalloc.a" ]; then
        log "reusing our library installed in $prefix"
        return 0
    fi
    log "make install PREFIX=$prefix MALLOC=$b (our library)"
    rm -rf "$prefix"
    make -C "$ROOT" install PREFIX="$prefix" MALLOC="$b" >"$LOGS/zmalloc-install-$b.log" 2>&1 ||
        die_log "$LOGS/zmalloc-install-$b.log" "make install MALLOC=$b of zmalloc failed"
    local f
    for f in include/zmalloc.h include/zmalloc_config.h lib/libzmalloc.a; do
        [ -f "$prefix/$f" ] || die "make install MALLOC=$b did not install $prefix/$f"
    done
}

# The libraries our static library needs, from its pkg-config file (the
# -lzmalloc itself replaced by the .a, so the build never picks the .so).
zmalloc_link_libs() {
    local prefix=$1 libs=""
    if [ -f "$prefix/lib/pkgconfig/zmalloc.pc" ]; then
        libs=$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --static --libs zmalloc)
    fi
    local out="$prefix/lib/libzmalloc.a" w
    for w in $libs; do
        case $w in
            -lzmalloc | -L*) ;;
            *) out="$out $w" ;;
        esac
    done
    echo "$out"
}

# ---------------------------------------------------------------- Redis build
# Redis's own FINAL_LIBS for this platform (-lm -ldl -pthread -lrt on Linux).
# A FINAL_LIBS on the make command line replaces the Makefile's, so ours is
# that list with our library in front.
redis_default_libs() {
    make -s -C "$1/src" -pn MALLOC=libc USE_SYSTEMD=no BUILD_TLS=no redis-server 2>/dev/null |
        sed -n 's/^FINAL_LIBS = //p' | tail -n 1
}

REDIS_MAKE_ARGS=()
build_redis() {
    local b=$1 prefix=$RB/install-$1 tree=$RB/tree-$1
    local ver api deflibs
    ver=$(redis_version "$SRC")
    # Redis 7.0/7.2 (and Valkey) use the 7.0 API, 7.4+ the newest.
    case $ver in
        [0-6].* | 7.[0-3].*) api=70 ;;
        *) api=74 ;;
    esac
    deflibs=$(redis_default_libs "$SRC")
    [ -n "$deflibs" ] || deflibs="-lm -ldl -pthread -lrt"
    REDIS_MAKE_ARGS=(
        MALLOC=libc USE_SYSTEMD=no BUILD_TLS=no
        "REDIS_CFLAGS=-I$prefix/include -DZMALLOC_REDIS_API=$api"
        "FINAL_LIBS=$(zmalloc_link_libs "$prefix") $deflibs"
    )
    if [ "${REDIS_CHECK_SKIP_BUILD:-0}" = 1 ] && [ -x "$tree/src/redis-server" ]; then
        log "reusing Redis build $tree"
        return 0
    fi
    log "building Redis $ver on zmalloc/$b in $tree (ZMALLOC_REDIS_API=$api)"
    rm -rf "$tree"
    cp -a "$SRC" "$tree"
    rm -rf "$tree/debian" "$tree/.pc"
    cp "$HERE/zmalloc.c" "$HERE/zmalloc.h" "$tree/src/"
    printf '  make -C %s/src' "$tree"
    printf ' %q' "${REDIS_MAKE_ARGS[@]}"
    printf '\n'
    local t=$(date +%s)
    timeout 1200 make -C "$tree/src" -j"$JOBS" "${REDIS_MAKE_ARGS[@]}" \
        >"$LOGS/redis-build-$b.log" 2>&1 ||
        die_log "$LOGS/redis-build-$b.log" "Redis build on zmalloc/$b failed"
    local bin
    for bin in redis-server redis-cli redis-benchmark redis-check-aof redis-check-rdb; do
        [ -x "$tree/src/$bin" ] || die "Redis build on $b made no src/$bin"
    done
    # The server must carry our library, not a libc allocator of its own.
    nm "$tree/src/redis-server" >"$LOGS/redis-server-$b.nm" 2>/dev/null || true
    grep -q ' T zmalloc_backend$' "$LOGS/redis-server-$b.nm" ||
        die "redis-server of the $b build does not contain libzmalloc (no zmalloc_backend symbol)"
    log "built Redis on zmalloc/$b in $(($(date +%s) - t))s"
}

# ---------------------------------------------------------------- server checks
CLI=()

start_server() { # tree port dir
    local tree=$1 port=$2 dir=$3
    mkdir -p "$dir"
    "$tree/src/redis-server" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --dir "$dir" --logfile "$dir/redis.log" --enable-debug-command local \
        --protected-mode yes >/dev/null 2>&1 &
    SERVER_PIDS+=($!)
    CLI=(timeout 60 "$tree/src/redis-cli" -h 127.0.0.1 -p "$port")
    local i
    for i in $(seq 1 100); do
        [ "$("${CLI[@]}" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "${SERVER_PIDS[-1]}" 2>/dev/null || die_log "$dir/redis.log" "redis-server exited at start"
        sleep 0.1
    done
    die_log "$dir/redis.log" "redis-server did not answer PING on 127.0.0.1:$port within 10s"
}

stop_server() {
    "${CLI[@]}" shutdown nosave >/dev/null 2>&1 || true
    local pid=${SERVER_PIDS[-1]} i
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

info_field() { # field -> value from INFO memory
    "${CLI[@]}" info memory | tr -d '\r' | sed -n "s/^$1://p"
}

check_server() {
    local b=$1 tree=$RB/tree-$1 port dir=$RB/run-$1
    port=$(free_port 27100)
    rm -rf "$dir"
    log "[$b] starting redis-server on 127.0.0.1:$port"
    start_server "$tree" "$port" "$dir"
    local alloc
    alloc=$(info_field mem_allocator)
    echo "  mem_allocator: $alloc"
    case $alloc in
        "zmalloc-"*" ($b"*")") ;;
        *) die "[$b] mem_allocator is '$alloc', expected 'zmalloc-<version> ($b...)'" ;;
    esac

    local u0 u1 u2 n=200000
    u0=$(info_field used_memory)
    # Keys through the normal write path (a pipe of SETs) and through DEBUG
    # POPULATE, of mixed sizes.
    local i
    {
        for i in $(seq 1 20000); do
            printf 'SET str:%d %s\n' "$i" "value-$i-0123456789012345678901234567890123456789"
        done
    } | "${CLI[@]}" --pipe >"$dir/pipe.out" 2>&1 || die_log "$dir/pipe.out" "[$b] redis-cli --pipe failed"
    "${CLI[@]}" debug populate "$n" pop 100 >/dev/null
    "${CLI[@]}" rpush biglist $(seq 1 500) >/dev/null
    u1=$(info_field used_memory)
    local keys
    keys=$("${CLI[@]}" dbsize)
    echo "  used_memory: empty $u0, with $keys keys $u1"
    [ "$keys" -eq $((n + 20001)) ] || die "[$b] DBSIZE is $keys, expected $((n + 20001))"
    # 200k keys of 100-byte values: at least 100 bytes each must show.
    [ "$u1" -gt $((u0 + n * 100)) ] ||
        die "[$b] used_memory did not grow with the keys: $u0 -> $u1 (expected > $((u0 + n * 100)))"

    local aa ac ar
    aa=$(info_field allocator_allocated)
    ac=$(info_field allocator_active)
    ar=$(info_field allocator_resident)
    echo "  allocator_allocated $aa, allocator_active $ac, allocator_resident $ar"
    echo "  allocator_frag_ratio $(info_field allocator_frag_ratio), mem_fragmentation_ratio $(info_field mem_fragmentation_ratio), used_memory_rss $(info_field used_memory_rss)"
    for v in "allocator_allocated=$aa" "allocator_active=$ac" "allocator_resident=$ar"; do
        [ "${v#*=}" -gt 0 ] 2>/dev/null || die "[$b] ${v%%=*} is '${v#*=}', expected non-zero"
    done
    # Figures that cannot be true: resident memory of the allocator above the
    # RSS of the whole process (measured by the kernel), or active above
    # resident. Redis's MEMORY DOCTOR and allocator_frag_ratio build on them.
    local rss
    rss=$(info_field used_memory_rss)
    if [ "$ar" -gt $((rss + rss / 20)) ] || [ "$ac" -gt "$ar" ]; then
        local msg="[$b] allocator figures exceed what the kernel sees: allocator_resident $ar, allocator_active $ac, used_memory_rss $rss (expected active <= resident <= rss + 5%)"
        [ "${REDIS_CHECK_STRICT:-1}" = 1 ] && die "$msg"
        echo "  WARNING: $msg" >&2
        WARNINGS+=("$msg")
    fi
    # The allocator's view covers at least what zmalloc accounts for.
    [ "$aa" -ge $((u1 / 2)) ] || die "[$b] allocator_allocated $aa is far below used_memory $u1"
    [ "$ac" -ge "$aa" ] || die "[$b] allocator_active $ac < allocator_allocated $aa"

    # Removing half the keys must show; removing all must come back near the start.
    "${CLI[@]}" eval "for i=1,$n,2 do redis.call('del','pop:'..i) end return 1" 0 >/dev/null
    local uh
    uh=$(info_field used_memory)
    echo "  used_memory after deleting half of the populated keys: $uh"
    [ "$uh" -lt $((u1 - n / 2 * 100)) ] ||
        die "[$b] used_memory did not drop when keys were deleted: $u1 -> $uh"
    "${CLI[@]}" flushall sync >/dev/null
    u2=$(info_field used_memory)
    echo "  used_memory after FLUSHALL: $u2"
    [ "$u2" -lt $((u0 + 2 * 1024 * 1024)) ] ||
        die "[$b] used_memory after FLUSHALL is $u2, more than 2 MiB above the empty server's $u0"

    local r
    r=$("${CLI[@]}" memory purge)
    [ "$r" = OK ] || die "[$b] MEMORY PURGE answered '$r', expected OK"
    echo "  MEMORY PURGE: $r"
    r=$("${CLI[@]}" memory stats | tr '\n' ' ')
    case $r in *peak.allocated*total.allocated*) ;; *) die "[$b] MEMORY STATS answered '$r'" ;; esac
    echo "  MEMORY STATS: $(echo "$r" | cut -c1-100)..."
    r=$("${CLI[@]}" memory doctor)
    [ -n "$r" ] || die "[$b] MEMORY DOCTOR gave no answer"
    echo "  MEMORY DOCTOR: $(echo "$r" | head -n 1 | cut -c1-100)"
    r=$("${CLI[@]}" memory malloc-stats | head -n 1)
    echo "  MEMORY MALLOC-STATS: $(echo "$r" | cut -c1-100)"
    stop_server
    log "[$b] INFO memory checks passed"
}

# ---------------------------------------------------------------- runtest
# After a runtest that was cut short, end the servers it left behind: only
# processes running this tree's own redis-server binary, by pid.
kill_tree_servers() {
    local tree=$1 d exe
    for d in /proc/[0-9]*; do
        exe=$(readlink "$d/exe" 2>/dev/null) || continue
        [ "$exe" = "$tree/src/redis-server" ] && kill -9 "${d#/proc/}" 2>/dev/null || true
    done
}

run_tests() {
    local b=$1 tree=$RB/tree-$1
    local units=() u
    while read -r u; do
        u=${u%%#*}
        u=$(echo "$u" | tr -d '[:space:]')
        [ -n "$u" ] && units+=("$u")
    done <"$UNITS_FILE"
    [ "${#units[@]}" -gt 0 ] || die "no units in $UNITS_FILE"
    local args=()
    for u in "${units[@]}"; do
        [ -f "$tree/tests/$u.tcl" ] || die "unit $u (from $UNITS_FILE) does not exist in Redis $(redis_version "$tree")"
        args+=(--single "$u")
    done
    # Tests that fail on Debian's unmodified Redis as well (see the file).
    local skips=0 line
    if [ -f "$SKIP_FILE" ]; then
        while IFS= read -r line; do
            line=${line%%#*}
            line=$(echo "$line" | sed -E 's/^[[:space:]]+|[[:space:]]+$//g')
            [ -n "$line" ] || continue
            args+=(--skiptest "$line")
            skips=$((skips + 1))
        done <"$SKIP_FILE"
    fi
    local logf=$LOGS/runtest-$b.log t=$(date +%s) rc=0
    log "[$b] ./runtest --clients $CLIENTS on ${#units[@]} units, $skips test(s) skipped by name from $SKIP_FILE (log: $logf)"
    (cd "$tree" && timeout --kill-after=30 900 ./runtest --clients "$CLIENTS" --timeout 600 \
        --dump-logs "${args[@]}" </dev/null >"$logf" 2>&1) || rc=$?
    kill_tree_servers "$tree"
    local dt=$(($(date +%s) - t))
    # Counts from runtest's own result lines.
    local ok err exc
    ok=$(grep -c '^\[.*ok.*\]: ' "$logf" || true)
    err=$(grep -c '^\[.*err.*\]: ' "$logf" || true)
    exc=$(grep -c '^\[.*exception.*\]' "$logf" || true)
    sed -n '/Execution time of different units/,/^$/p' "$logf" | sed 's/^/  /' || true
    if [ "$rc" -ne 0 ] || [ "$err" -ne 0 ] || [ "$exc" -ne 0 ] ||
        ! grep -q 'All tests passed without errors' "$logf"; then
        echo "---- failed tests ----" >&2
        grep -E '^\[.*(err|exception).*\]|^\*\*\* |WARNING The following tests failed' -A 3 "$logf" |
            head -n 60 >&2 || true
        echo "redis-runtest: $ok passed, $((err + exc)) failed"
        [ "$rc" = 124 ] && die "[$b] ./runtest timed out after 900s"
        die "[$b] ./runtest failed (exit $rc) after ${dt}s: see $logf"
    fi
    log "[$b] ./runtest: ${#units[@]} units, $ok tests passed, 0 failed, in ${dt}s"
    echo "redis-runtest: $ok passed, 0 failed"
}

# ---------------------------------------------------------------- main
# The whole run is one function, read in full before it starts: editing this
# file while it runs cannot change what the running copy does.
main() {
    log "zmalloc redis-check: backends '$BACKENDS', runtest on '$RUNTEST_BACKEND'"
    ensure_tools
    fetch_source
    log "Redis $(redis_version "$SRC") from Debian's package"
    for b in $BACKENDS; do
        install_zmalloc "$b"
        build_redis "$b"
    done
    if [ "${REDIS_CHECK_ONLY_BUILD:-0}" = 1 ]; then
        log "builds done (REDIS_CHECK_ONLY_BUILD=1): $(for b in $BACKENDS; do printf '%s ' "$RB/tree-$b/src/redis-server"; done)"
        exit 0
    fi
    for b in $BACKENDS; do
        check_server "$b"
    done
    if [ "$RUNTEST_BACKEND" != none ]; then
        case " $BACKENDS " in *" $RUNTEST_BACKEND "*) ;; *) die "runtest backend $RUNTEST_BACKEND was not built" ;; esac
        run_tests "$RUNTEST_BACKEND"
    fi
    for w in "${WARNINGS[@]:-}"; do
        [ -n "$w" ] && echo "redis-check: WARNING (REDIS_CHECK_STRICT=0 let it pass): $w" >&2
    done
    log "redis-check passed"
}

main "$@"; exit $?
