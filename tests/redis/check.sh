#!/usr/bin/env bash
# make redis-check: build Redis and Valkey servers on zmalloc and prove they
# work, each with its own test suite (issues 7 and 11).
#
# Servers (REDIS_CHECK_SERVERS, or ALL=1 for every one):
#   debian          the Redis Debian ships (bookworm: 7.0.15), from its source
#                   package (apt-get source through a private apt
#                   configuration under build/apt/; the system's sources
#                   lists are never touched), into build/redis/src-pkg/
#   redis-7.4.1, valkey-8.0.1, valkey-9.1.0 (any <name>-<version>): the
#                   release tarball <name>.tar.gz from the directory
#                   ZMALLOC_SERVER_SOURCES names (default ../shared/sources
#                   next to this checkout, when it exists), unpacked into
#                   build/servers/src/
# For each server:
#   1. Builds with MALLOC=libc, src/zmalloc.c and src/zmalloc.h replaced by
#      the thin shim in tests/redis/ (and any file of REDIS_CHECK_SHIM_DIRS
#      that has the name of one of the server's src/ files: see
#      apply_shims), one per backend of REDIS_CHECK_BACKENDS. Only make
#      variables differ between builds: REDIS_CFLAGS (our include dir and
#      the server's ZMALLOC_SERVER_API value) and FINAL_LIBS (our library).
#   2. INFO memory / MEMORY checks of a running server of each build.
#   3. The server's own ./runtest on the pool build, units from
#      tests/redis/units.txt, tests skipped by name from skiptests.txt.
# Every server runs to the end even when one fails; the script fails if any
# did, after a summary line per server.
#
# Environment knobs:
#   REDIS_CHECK_SERVERS     servers to check (default: the CI set below)
#   ALL=1                   every server (debian redis-7.4.1 valkey-8.0.1 valkey-9.1.0)
#   ZMALLOC_SERVER_SOURCES  directory of server tarballs
#   ZMALLOC_NO_INSTALL=1    never apt-get install missing tools (dpkg-dev, tcl)
#   REDIS_CHECK_BACKENDS    backends to build (default "pool jemalloc" for the
#                           first server, "pool" for the others)
#   REDIS_CHECK_RUNTEST     backend that runs ./runtest (default pool; "none" skips)
#   REDIS_CHECK_UNITS       file with the unit list (default tests/redis/units.txt)
#   REDIS_CHECK_SKIPS       file with the skipped tests (default tests/redis/skiptests.txt)
#   REDIS_CHECK_SHIM_DIRS   extra shim directories (default tests/redis/defrag)
#   REDIS_CHECK_CLIENTS     runtest --clients (default 2)
#   REDIS_CHECK_PARALLEL=0  one server after the other (default 1: side by
#                           side, each with its own port range)
#   REDIS_CHECK_PORT_SLOT   first port range (default 0; another number lets
#                           two runs of this script share the machine)
#   REDIS_CHECK_SKIP_INSTALL=1  reuse build/redis/install-<backend> (no make install)
#   REDIS_CHECK_SKIP_BUILD=1  reuse every server tree as built before (by
#                           default a tree is reused only when its stamp, a
#                           hash of our library, the shims and the make
#                           command, is unchanged)
#   REDIS_CHECK_ONLY_BUILD=1  stop after the builds (bench/redis/bench.sh uses it)
#   REDIS_CHECK_STRICT=0    allocator figures that cannot be true (allocator_resident
#                           above the process RSS) only warn instead of failing the
#                           check (default 1: they fail)
#   JOBS                    parallel make jobs (default nproc)
#
# Trees: build/redis/tree-<backend> for debian (bench/redis/bench.sh reads
# them), build/redis/<server>-<backend> for the others; sources of the
# tarballs in build/servers/src/. Output:
# progress lines on stdout; logs in build/redis/logs/. Each server ends with
# "redis-runtest[<server>]: N passed, M failed"; failures print
# "redis-check: FAIL: ..." and the script exits non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/redis
BUILD=$ROOT/build
RB=$BUILD/redis
SB=$BUILD/servers
LOGS=$RB/logs
APTDIR=$BUILD/apt
# Servers CI checks (.ci/run: make redis-check); ALL=1 adds the others.
CI_SERVERS="debian valkey-9.1.0"
ALL_SERVERS="debian redis-7.4.1 valkey-8.0.1 valkey-9.1.0"
if [ -n "${REDIS_CHECK_SERVERS:-}" ]; then
    SERVERS=$REDIS_CHECK_SERVERS
elif [ "${ALL:-0}" = 1 ]; then
    SERVERS=$ALL_SERVERS
else
    SERVERS=$CI_SERVERS
fi
if [ -n "${ZMALLOC_SERVER_SOURCES:-}" ]; then
    SOURCES_DIR=$ZMALLOC_SERVER_SOURCES
elif [ -d "$ROOT/../shared/sources" ]; then
    SOURCES_DIR=$(cd "$ROOT/../shared/sources" && pwd)
else
    SOURCES_DIR=""
fi
# The default list skips (and says so) a tarball server whose tarball is not
# there: a machine without the tarballs still checks Debian's Redis. A server
# asked for by name (REDIS_CHECK_SERVERS, ALL=1) must be there.
if [ -z "${REDIS_CHECK_SERVERS:-}" ] && [ "${ALL:-0}" != 1 ]; then
    kept=""
    for s in $SERVERS; do
        if [ "$s" != debian ] && { [ -z "$SOURCES_DIR" ] || [ ! -f "$SOURCES_DIR/$s.tar.gz" ]; }; then
            echo "redis-check: skipped $s: no $s.tar.gz (set ZMALLOC_SERVER_SOURCES to a directory holding it)"
            continue
        fi
        kept="$kept $s"
    done
    SERVERS=${kept# }
fi
RUNTEST_BACKEND=${REDIS_CHECK_RUNTEST:-pool}
UNITS_FILE=${REDIS_CHECK_UNITS:-$HERE/units.txt}
SKIP_FILE=${REDIS_CHECK_SKIPS:-$HERE/skiptests.txt}
SHIM_DIRS=${REDIS_CHECK_SHIM_DIRS:-$HERE/defrag}
CLIENTS=${REDIS_CHECK_CLIENTS:-2}
PARALLEL=${REDIS_CHECK_PARALLEL:-1}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
T0=$(date +%s)

# Backends built for a server: the knob, else pool and jemalloc for the
# first server (the INFO checks of our jemalloc backend need one server
# only) and pool for the others.
backends_for() { # server index
    if [ -n "${REDIS_CHECK_BACKENDS:-}" ]; then
        echo "$REDIS_CHECK_BACKENDS"
    elif [ "$1" = 0 ]; then
        echo "pool jemalloc"
    else
        echo "pool"
    fi
}
ALL_BACKENDS=""
i=0
for s in $SERVERS; do
    for b in $(backends_for $i); do
        case " $ALL_BACKENDS " in *" $b "*) ;; *) ALL_BACKENDS="$ALL_BACKENDS $b" ;; esac
    done
    i=$((i + 1))
done
BACKENDS=${ALL_BACKENDS# }

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
# Servers checked side by side (REDIS_CHECK_PARALLEL): their subshells,
# stopped with the script.
BG_PIDS=()
stop_background() {
    local p
    for p in "${BG_PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    stop_all_servers
}
trap stop_background EXIT
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
fetch_debian_source() {
    SRC=""
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

# A release tarball <server>.tar.gz from SOURCES_DIR, unpacked once into
# build/servers/src/<server> (it unpacks into a folder named like the file).
fetch_tarball_source() { # server
    local name=$1 dir=$SB/src/$1
    SRC=$dir
    if [ -f "$dir/src/server.c" ] && [ -f "$dir/runtest" ]; then
        log "[$name] reusing source $dir"
        return 0
    fi
    [ -n "$SOURCES_DIR" ] ||
        die "[$name] no source directory: set ZMALLOC_SERVER_SOURCES to a directory holding $name.tar.gz (no ../shared/sources next to $ROOT)"
    local tgz=$SOURCES_DIR/$name.tar.gz
    [ -f "$tgz" ] || die "[$name] $tgz not found (ZMALLOC_SERVER_SOURCES=$SOURCES_DIR)"
    log "[$name] unpacking $tgz"
    # A temporary folder per server: servers are prepared side by side, and
    # a shared one was removed under another server's tar (seen with
    # REDIS_CHECK_SERVERS="redis-7.4.1 valkey-8.0.1").
    local tmp=$SB/src.tmp-$name
    rm -rf "$tmp" "$dir"
    mkdir -p "$tmp" "$SB/src"
    tar -xzf "$tgz" -C "$tmp" || die "[$name] cannot unpack $tgz"
    [ -d "$tmp/$name" ] || die "[$name] $tgz did not unpack into a folder $name/"
    mv "$tmp/$name" "$dir"
    rm -rf "$tmp"
    [ -f "$dir/src/server.c" ] || die "[$name] $tgz holds no src/server.c"
}

# Family and version from the tree itself: Valkey defines VALKEY_VERSION
# (its REDIS_VERSION stays at the 7.2.4 it forked from).
server_family() {
    if grep -q '^#define VALKEY_VERSION ' "$1/src/version.h"; then echo valkey; else echo redis; fi
}
server_version() {
    local v
    v=$(sed -n 's/^#define VALKEY_VERSION "\(.*\)"/\1/p' "$1/src/version.h")
    [ -n "$v" ] || v=$(sed -n 's/^#define REDIS_VERSION "\(.*\)"/\1/p' "$1/src/version.h")
    echo "$v"
}
# include/zmalloc.h's ZMALLOC_SERVER_API value for a family and version.
server_api() { # family version
    case $1:$2 in
        redis:[0-6].* | redis:7.[0-3].* | valkey:7.*) echo 70 ;;
        redis:7.*) echo 74 ;;
        redis:*) echo 80 ;;
        valkey:8.0.*) echo 180 ;;
        valkey:*) echo 191 ;;
    esac
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

# ---------------------------------------------------------------- server build
# The server's own FINAL_LIBS for this platform (-lm -ldl -pthread -lrt on
# Linux). A FINAL_LIBS on the make command line replaces the Makefile's, so
# ours is that list with our library in front. make -p prints its database
# even for a target that does not exist, which serves Redis and Valkey alike.
server_default_libs() {
    make -s -C "$1/src" -pn MALLOC=libc USE_SYSTEMD=no BUILD_TLS=no zmalloc-print-database 2>/dev/null |
        sed -n 's/^FINAL_LIBS = //p' | tail -n 1
}

# The shims: src/zmalloc.c and src/zmalloc.h from tests/redis/, then every
# file of the REDIS_CHECK_SHIM_DIRS directories whose name is that of a file
# in the server's src/ (tests/redis/defrag/allocator_defrag.[ch] replace
# Valkey 8.1+'s; servers without such a file are left as they are). A shim
# only ever replaces a server file; nothing else in the tree changes.
apply_shims() { # tree -> prints the replaced files
    local tree=$1 dir f n out="zmalloc.c zmalloc.h"
    cp "$HERE/zmalloc.c" "$HERE/zmalloc.h" "$tree/src/"
    for dir in $SHIM_DIRS; do
        [ -d "$dir" ] || continue
        for f in "$dir"/*; do
            [ -f "$f" ] || continue
            n=$(basename "$f")
            case $n in zmalloc.c | zmalloc.h | *.md | *.txt | *.sh) continue ;; esac
            if [ -f "$tree/src/$n" ]; then
                cp "$f" "$tree/src/$n"
                out="$out $n"
            fi
        done
    done
    echo "$out"
}

# CPU seconds (user + system) of this shell's waited-for children so far,
# in CPU_NOW: the build and test figures that do not depend on how loaded
# the machine is (wall time on an idle 2-core machine is about CPU / 2 for
# a build). `times` must run in this shell, not in a $(...) subshell.
CPU_NOW=0
cpu_now() {
    local f=$LOGS/.times.$BASHPID
    times >"$f"
    CPU_NOW=$(tail -n 1 "$f" | awk '{ n = 0; for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); n += t[1] * 60 + t[2] } printf "%d", n }')
    rm -f "$f"
}

# Binaries by what the tree built: valkey-* or redis-*.
server_bin() { # tree tool (server, cli, benchmark)
    if [ -x "$1/src/valkey-$2" ]; then echo "$1/src/valkey-$2"; else echo "$1/src/redis-$2"; fi
}

# Sets TREE to the server's tree for backend b and builds it there (or
# reuses it).
TREE=""
build_server() { # server backend
    local name=$1 b=$2 prefix=$RB/install-$2
    local family ver api deflibs
    family=$(server_family "$SRC")
    ver=$(server_version "$SRC")
    api=$(server_api "$family" "$ver")
    [ -n "$api" ] || die "[$name] no ZMALLOC_SERVER_API value for $family $ver"
    # Short paths: the servers' setproctitle caps a title at 255 bytes and
    # unit/other's title test puts the tree's path into it three times.
    if [ "$name" = debian ]; then TREE=$RB/tree-$b; else TREE=$RB/$name-$b; fi
    deflibs=$(server_default_libs "$SRC")
    [ -n "$deflibs" ] || deflibs="-lm -ldl -pthread -lrt"
    local args=(
        MALLOC=libc USE_SYSTEMD=no BUILD_TLS=no
        "REDIS_CFLAGS=-I$prefix/include -DZMALLOC_SERVER_API=$api"
        "FINAL_LIBS=$(zmalloc_link_libs "$prefix") $deflibs"
    )
    local stamp
    stamp=$( (
        printf '%s\n' "${args[@]}"
        sha256sum "$prefix/lib/libzmalloc.a" "$prefix/include/zmalloc.h" | cut -d' ' -f1
        cat "$HERE/zmalloc.c" "$HERE/zmalloc.h"
        for dir in $SHIM_DIRS; do
            [ -d "$dir" ] || continue
            for f in "$dir"/*; do
                [ -f "$f" ] && [ -f "$SRC/src/$(basename "$f")" ] && cat "$f"
            done
        done
    ) | sha256sum | cut -d' ' -f1)
    if [ -x "$(server_bin "$TREE" server)" ]; then
        if [ "${REDIS_CHECK_SKIP_BUILD:-0}" = 1 ]; then
            log "[$name] reusing build $TREE (REDIS_CHECK_SKIP_BUILD=1)"
            return 0
        fi
        if [ "$(cat "$TREE/.zmalloc-stamp" 2>/dev/null)" = "$stamp" ]; then
            log "[$name] reusing build $TREE (same library, shims and make command)"
            return 0
        fi
    fi
    log "[$name] building $family $ver on zmalloc/$b in $TREE (ZMALLOC_SERVER_API=$api)"
    rm -rf "$TREE"
    mkdir -p "$(dirname "$TREE")"
    cp -a "$SRC" "$TREE"
    rm -rf "$TREE/debian" "$TREE/.pc"
    echo "  shims: $(apply_shims "$TREE")"
    printf '  make -C %s/src' "$TREE"
    printf ' %q' "${args[@]}"
    printf '\n'
    local t=$(date +%s) c0 logf=$LOGS/build-$name-$b.log
    cpu_now
    c0=$CPU_NOW
    timeout 1800 nice -n 5 make -C "$TREE/src" -j"$JOBS" "${args[@]}" >"$logf" 2>&1 ||
        die_log "$logf" "[$name] build on zmalloc/$b failed"
    local tool bin
    for tool in server cli benchmark check-aof check-rdb; do
        bin=$(server_bin "$TREE" "$tool")
        [ -x "$bin" ] || die "[$name] the $b build made no $bin"
    done
    # The server must carry our library, not an allocator of its own.
    bin=$(server_bin "$TREE" server)
    nm "$bin" >"$LOGS/nm-$name-$b.txt" 2>/dev/null || true
    grep -q ' T zmalloc_backend$' "$LOGS/nm-$name-$b.txt" ||
        die "[$name] $bin of the $b build does not contain libzmalloc (no zmalloc_backend symbol)"
    echo "$stamp" >"$TREE/.zmalloc-stamp"
    cpu_now
    log "[$name] built on zmalloc/$b in $(($(date +%s) - t))s (CPU $((CPU_NOW - c0))s): $bin"
}

# ---------------------------------------------------------------- server checks
CLI=()

start_server() { # tree port dir
    local tree=$1 port=$2 dir=$3
    mkdir -p "$dir"
    "$(server_bin "$tree" server)" --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --dir "$dir" --logfile "$dir/redis.log" --enable-debug-command local \
        --protected-mode yes >/dev/null 2>&1 &
    SERVER_PIDS+=($!)
    CLI=(timeout 60 "$(server_bin "$tree" cli)" -h 127.0.0.1 -p "$port")
    local i
    for i in $(seq 1 100); do
        [ "$("${CLI[@]}" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "${SERVER_PIDS[-1]}" 2>/dev/null || die_log "$dir/redis.log" "the server exited at start"
        sleep 0.1
    done
    die_log "$dir/redis.log" "the server did not answer PING on 127.0.0.1:$port within 10s"
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

check_server() { # server backend tree
    local name=$1 b=$2 tree=$3 port dir=$SB/run-$1-$2
    port=$(free_port $((45000 + SERVER_IDX * 100)))
    rm -rf "$dir"
    log "[$name/$b] starting $(basename "$(server_bin "$tree" server)") on 127.0.0.1:$port"
    start_server "$tree" "$port" "$dir"
    local alloc
    alloc=$(info_field mem_allocator)
    echo "  mem_allocator: $alloc"
    case $alloc in
        "zmalloc-"*" ($b"*")") ;;
        *) die "[$name/$b] mem_allocator is '$alloc', expected 'zmalloc-<version> ($b...)'" ;;
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
    } | "${CLI[@]}" --pipe >"$dir/pipe.out" 2>&1 || die_log "$dir/pipe.out" "[$name/$b] redis-cli --pipe failed"
    "${CLI[@]}" debug populate "$n" pop 100 >/dev/null
    "${CLI[@]}" rpush biglist $(seq 1 500) >/dev/null
    u1=$(info_field used_memory)
    local keys
    keys=$("${CLI[@]}" dbsize)
    echo "  used_memory: empty $u0, with $keys keys $u1"
    [ "$keys" -eq $((n + 20001)) ] || die "[$name/$b] DBSIZE is $keys, expected $((n + 20001))"
    # 200k keys of 100-byte values: at least 100 bytes each must show.
    [ "$u1" -gt $((u0 + n * 100)) ] ||
        die "[$name/$b] used_memory did not grow with the keys: $u0 -> $u1 (expected > $((u0 + n * 100)))"

    local aa ac ar
    aa=$(info_field allocator_allocated)
    ac=$(info_field allocator_active)
    ar=$(info_field allocator_resident)
    echo "  allocator_allocated $aa, allocator_active $ac, allocator_resident $ar"
    echo "  allocator_frag_ratio $(info_field allocator_frag_ratio), mem_fragmentation_ratio $(info_field mem_fragmentation_ratio), used_memory_rss $(info_field used_memory_rss)"
    for v in "allocator_allocated=$aa" "allocator_active=$ac" "allocator_resident=$ar"; do
        [ "${v#*=}" -gt 0 ] 2>/dev/null || die "[$name/$b] ${v%%=*} is '${v#*=}', expected non-zero"
    done
    # Figures that cannot be true: resident memory of the allocator above the
    # RSS of the whole process (measured by the kernel), or active above
    # resident. Redis's MEMORY DOCTOR and allocator_frag_ratio build on them.
    local rss
    rss=$(info_field used_memory_rss)
    if [ "$ar" -gt $((rss + rss / 20)) ] || [ "$ac" -gt "$ar" ]; then
        local msg="[$name/$b] allocator figures exceed what the kernel sees: allocator_resident $ar, allocator_active $ac, used_memory_rss $rss (expected active <= resident <= rss + 5%)"
        [ "${REDIS_CHECK_STRICT:-1}" = 1 ] && die "$msg"
        echo "  WARNING: $msg" >&2
        WARNINGS+=("$msg")
    fi
    # The allocator's view covers at least what zmalloc accounts for.
    [ "$aa" -ge $((u1 / 2)) ] || die "[$name/$b] allocator_allocated $aa is far below used_memory $u1"
    [ "$ac" -ge "$aa" ] || die "[$name/$b] allocator_active $ac < allocator_allocated $aa"

    # Removing half the keys must show; removing all must come back near the start.
    "${CLI[@]}" eval "for i=1,$n,2 do redis.call('del','pop:'..i) end return 1" 0 >/dev/null
    local uh
    uh=$(info_field used_memory)
    echo "  used_memory after deleting half of the populated keys: $uh"
    [ "$uh" -lt $((u1 - n / 2 * 100)) ] ||
        die "[$name/$b] used_memory did not drop when keys were deleted: $u1 -> $uh"
    "${CLI[@]}" flushall sync >/dev/null
    u2=$(info_field used_memory)
    echo "  used_memory after FLUSHALL: $u2"
    [ "$u2" -lt $((u0 + 2 * 1024 * 1024)) ] ||
        die "[$name/$b] used_memory after FLUSHALL is $u2, more than 2 MiB above the empty server's $u0"

    local r
    r=$("${CLI[@]}" memory purge)
    [ "$r" = OK ] || die "[$name/$b] MEMORY PURGE answered '$r', expected OK"
    echo "  MEMORY PURGE: $r"
    r=$("${CLI[@]}" memory stats | tr '\n' ' ')
    case $r in *peak.allocated*total.allocated*) ;; *) die "[$name/$b] MEMORY STATS answered '$r'" ;; esac
    echo "  MEMORY STATS: $(echo "$r" | cut -c1-100)..."
    r=$("${CLI[@]}" memory doctor)
    [ -n "$r" ] || die "[$name/$b] MEMORY DOCTOR gave no answer"
    echo "  MEMORY DOCTOR: $(echo "$r" | head -n 1 | cut -c1-100)"
    r=$("${CLI[@]}" memory malloc-stats | head -n 1)
    echo "  MEMORY MALLOC-STATS: $(echo "$r" | cut -c1-100)"
    stop_server
    log "[$name/$b] INFO memory checks passed"
}

# ---------------------------------------------------------------- runtest
# After a runtest that was cut short, end the servers it left behind: only
# processes running this tree's own server binary, by pid.
kill_tree_servers() {
    local bin d exe
    bin=$(server_bin "$1" server)
    for d in /proc/[0-9]*; do
        exe=$(readlink "$d/exe" 2>/dev/null) || continue
        [ "$exe" = "$bin" ] && kill -9 "${d#/proc/}" 2>/dev/null || true
    done
}

# Lines of a list file (units.txt, skiptests.txt) that apply to a server:
# '#' starts a comment; a line may start with "[glob ...]", the servers it
# is for (e.g. "[debian] ...", "[valkey-*] ...", "[!debian] ..." for all
# but those); lines without one apply to every server.
list_for_server() { # file server
    local file=$1 name=$2 line sel g hit neg
    [ -f "$file" ] || return 0
    while IFS= read -r line; do
        line=${line%%#*}
        line=$(echo "$line" | sed -E 's/^[[:space:]]+|[[:space:]]+$//g')
        [ -n "$line" ] || continue
        if [[ $line == \[*\]* ]]; then
            sel=${line%%]*}
            sel=${sel#[}
            line=$(echo "${line#*]}" | sed -E 's/^[[:space:]]+//')
            hit=0 neg=0
            for g in $sel; do
                if [[ $g == !* ]]; then
                    neg=1
                    # shellcheck disable=SC2053
                    [[ $name == ${g#!} ]] && { hit=0; break; }
                    hit=1
                else
                    # shellcheck disable=SC2053
                    [[ $name == $g ]] && hit=1
                fi
            done
            [ "$hit" = 1 ] || continue
        fi
        printf '%s\n' "$line"
    done <"$file"
}

run_tests() { # server backend tree
    local name=$1 b=$2 tree=$3
    local units=() u missing=()
    while IFS= read -r u; do
        if [ -f "$tree/tests/$u.tcl" ]; then units+=("$u"); else missing+=("$u"); fi
    done < <(list_for_server "$UNITS_FILE" "$name")
    [ "${#units[@]}" -gt 0 ] || die "[$name] no units of $UNITS_FILE exist in $tree/tests"
    # A unit of the list this server does not have is a mistake in the list
    # (units.txt marks server-specific units with [server]).
    [ "${#missing[@]}" -eq 0 ] || die "[$name] units of $UNITS_FILE missing in $tree/tests: ${missing[*]}"
    local args=()
    for u in "${units[@]}"; do args+=(--single "$u"); done
    # Tests skipped by name (see the file for each one's reason).
    local skips=0 line
    while IFS= read -r line; do
        args+=(--skiptest "$line")
        skips=$((skips + 1))
    done < <(list_for_server "$SKIP_FILE" "$name")
    # unit/other's "Process title set as expected" sets a title holding the
    # tree's path three times (binary, socket, config file); the servers'
    # setproctitle cuts titles at 255 bytes, so past a path of about 40
    # bytes the config file's path is cut and the test fails, on the stock
    # server too. It is skipped only then (a property of where the checkout
    # lives, not of the allocator).
    if [ $((3 * ${#tree} + 130)) -gt 255 ]; then
        args+=(--skiptest "Process title set as expected")
        skips=$((skips + 1))
        log "[$name/$b] skipping 'Process title set as expected': the tree's path ($tree, ${#tree} bytes) does not fit the 255-byte title three times"
    fi
    # A shim directory may carry runtest-hook.sh, run in the tree before
    # runtest (arguments: tree, server, backend), e.g. to open a test gate.
    local dir
    for dir in $SHIM_DIRS; do
        if [ -f "$dir/runtest-hook.sh" ]; then
            log "[$name/$b] $dir/runtest-hook.sh"
            (cd "$tree" && bash "$dir/runtest-hook.sh" "$tree" "$name" "$b") ||
                die "[$name/$b] $dir/runtest-hook.sh failed"
        fi
    done
    local logf=$LOGS/runtest-$name-$b.log t=$(date +%s) rc=0
    log "[$name/$b] ./runtest --clients $CLIENTS on ${#units[@]} units, $skips test(s) skipped by name (log: $logf)"
    # Each server's runtest gets a port range of its own (servers may run
    # side by side): 2000 ports from 21111 + 2000 * index; cluster bus ports
    # (+10000) stay below the 45000+ of the INFO checks.
    # --no-latency: the servers' own switch that skips their latency
    # assertions (e.g. the active-defrag tests' "max latency <= 30 ms" of a
    # defrag cycle): wall-clock limits that a loaded 2-core machine breaks
    # whatever the allocator (a cycle preempted by other processes), and
    # the project keeps timing out of tests; every other check stays.
    (cd "$tree" && timeout --kill-after=30 1500 ./runtest --clients "$CLIENTS" --timeout 600 \
        --no-latency --baseport $((21111 + 2000 * SERVER_IDX)) --portcount 2000 \
        --dump-logs "${args[@]}" </dev/null >"$logf" 2>&1) || rc=$?
    kill_tree_servers "$tree"
    # No CPU figure here: runtest does not wait for the servers it starts,
    # so their CPU time never reaches this shell.
    local dt=$(($(date +%s) - t))
    # Counts from runtest's own result lines (Valkey colours them: the
    # escapes are taken out of the log first).
    sed -i 's/\x1b\[[0-9;]*m//g' "$logf"
    local ok err exc
    ok=$(grep -c '^\[ok\]: ' "$logf" || true)
    err=$(grep -c '^\[err\]: ' "$logf" || true)
    exc=$(grep -c '^\[exception\]' "$logf" || true)
    sed -n '/Execution time of different units/,/^$/p' "$logf" | sed 's/^/  /' || true
    if [ "$rc" -ne 0 ] || [ "$err" -ne 0 ] || [ "$exc" -ne 0 ] ||
        ! grep -q 'All tests passed without errors' "$logf"; then
        echo "---- failed tests ----" >&2
        grep -E '^\[(err|exception)\]|^\*\*\* |WARNING The following tests failed' -A 3 "$logf" |
            head -n 60 >&2 || true
        echo "redis-runtest[$name]: $ok passed, $((err + exc)) failed"
        [ "$rc" = 124 ] && die "[$name/$b] ./runtest timed out after 1500s"
        die "[$name/$b] ./runtest failed (exit $rc) after ${dt}s: see $logf"
    fi
    log "[$name/$b] ./runtest: ${#units[@]} units, $ok tests passed, 0 failed, in ${dt}s"
    echo "redis-runtest[$name]: $ok passed, 0 failed"
}

# ---------------------------------------------------------------- main
# One server from source to runtest. Runs in a subshell of its own (die
# ends only this server), servers it started stopped on its exit.
SERVER_IDX=0
check_one_server() { # server index
    local name=$1 idx=$2 b
    SERVER_IDX=$((idx + ${REDIS_CHECK_PORT_SLOT:-0}))
    SERVER_PIDS=()
    trap stop_all_servers EXIT
    if [ "$name" = debian ]; then fetch_debian_source; else fetch_tarball_source "$name"; fi
    log "[$name] $(server_family "$SRC") $(server_version "$SRC") from $SRC"
    local backends
    backends=$(backends_for "$idx")
    local trees=()
    for b in $backends; do
        build_server "$name" "$b"
        trees+=("$b=$TREE")
    done
    if [ "${REDIS_CHECK_ONLY_BUILD:-0}" = 1 ]; then
        log "[$name] built (REDIS_CHECK_ONLY_BUILD=1): ${trees[*]}"
        return 0
    fi
    local tb
    for tb in "${trees[@]}"; do
        check_server "$name" "${tb%%=*}" "${tb#*=}"
    done
    if [ "$RUNTEST_BACKEND" != none ]; then
        for tb in "${trees[@]}"; do
            [ "${tb%%=*}" = "$RUNTEST_BACKEND" ] && run_tests "$name" "$RUNTEST_BACKEND" "${tb#*=}"
        done
        case " $backends " in *" $RUNTEST_BACKEND "*) ;; *)
            die "[$name] runtest backend $RUNTEST_BACKEND was not built" ;;
        esac
    fi
    for w in "${WARNINGS[@]:-}"; do
        [ -n "$w" ] && echo "redis-check: WARNING (REDIS_CHECK_STRICT=0 let it pass): $w" >&2
    done
    return 0
}

# The whole run is one function, read in full before it starts: editing this
# file while it runs cannot change what the running copy does.
main() {
    log "zmalloc redis-check: servers '$SERVERS', backends '$BACKENDS', runtest on '$RUNTEST_BACKEND'"
    [ -n "$SOURCES_DIR" ] && log "server tarballs from $SOURCES_DIR"
    ensure_tools
    for b in $BACKENDS; do
        install_zmalloc "$b"
    done
    local name idx=0 failed=() times=() t pids=() names=()
    if [ "$PARALLEL" = 1 ]; then
        # Side by side: a server's tests spend much of their time waiting
        # (replication, expiry, timeouts), so two suites share 2 cores well.
        # Each server's output goes to its own file, shown whole at the end.
        for name in $SERVERS; do
            # A result file left by an earlier run would be read as this
            # run's if the subshell were killed before writing its own.
            rm -f "$LOGS/check-$name.rc"
            (
                t=$(date +%s)
                rc=0
                (check_one_server "$name" "$idx") || rc=$?
                echo "$rc $(($(date +%s) - t))" >"$LOGS/check-$name.rc"
            ) >"$LOGS/check-$name.log" 2>&1 &
            pids+=($!)
            BG_PIDS+=($!)
            names+=("$name")
            log "[$name] started (output: $LOGS/check-$name.log)"
            idx=$((idx + 1))
        done
        local k rc dt
        for k in "${!pids[@]}"; do
            wait "${pids[$k]}" || true
            name=${names[$k]}
            echo "================ $name ================"
            cat "$LOGS/check-$name.log"
            read -r rc dt <"$LOGS/check-$name.rc" || { rc=1 dt=?; }
            if [ "$rc" = 0 ]; then times+=("$name ok ${dt}s"); else failed+=("$name"); times+=("$name FAILED ${dt}s"); fi
        done
    else
        for name in $SERVERS; do
            t=$(date +%s)
            if (check_one_server "$name" "$idx"); then
                times+=("$name ok $(($(date +%s) - t))s")
            else
                failed+=("$name")
                times+=("$name FAILED $(($(date +%s) - t))s")
            fi
            idx=$((idx + 1))
        done
    fi
    log "servers: ${times[*]}"
    [ "${#failed[@]}" -eq 0 ] || die "servers failed: ${failed[*]} (logs in $LOGS)"
    log "redis-check passed"
}

main "$@"; exit $?
