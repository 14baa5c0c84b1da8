# common.sh: shell functions shared by tests/redis/check.sh and
# bench/redis/bench.sh (sourced; each defines its own log/die first).

# Prints the first free loopback port at or above $1 (within 200).
free_port() {
    local p=$1
    while [ "$p" -lt $(($1 + 200)) ]; do
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
            echo "$p"
            return 0
        fi
        p=$((p + 1))
    done
    die "no free loopback port near $1"
}

# Stops every server whose pid is in SERVER_PIDS: TERM, up to 2 s to exit,
# then KILL.
stop_all_servers() {
    local p
    for p in "${SERVER_PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${SERVER_PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$p" 2>/dev/null || true
    done
}
