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
