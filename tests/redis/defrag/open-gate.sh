#!/usr/bin/env bash
# open-gate.sh TREE: let a Redis/Valkey tree's own active-defrag tests run on
# zmalloc's pool backend. Run on the tree's copy of the tests (check.sh
# builds each server in a fresh copy of its source), never on a source
# tree kept for reuse.
#
# tests/unit/memefficiency.tcl runs its defrag tests only when
#     [string match {*jemalloc*} [s mem_allocator]] && [r debug mallctl arenas.page] <= 8192
# and flushes jemalloc's thread cache with DEBUG MALLCTL-STR (jemalloc-only
# DEBUG subcommands). The copy is edited so that
#   - the gate also opens when mem_allocator names the pool
#     ("zmalloc-<version> (pool)"), and stays as it was otherwise;
#   - the thread-cache flush runs only when the allocator is not the pool
#     (the pool has no thread cache: a freed block is at once back in its
#     page's free list, which is what the flush is for).
# Nothing else changes: every threshold and check of the tests stays.
# Prints the number of edits; fails when the file has none of the expected
# lines (a server whose tests moved on).
set -euo pipefail
tree=${1:?usage: open-gate.sh TREE}
f=$tree/tests/unit/memefficiency.tcl
[ -f "$f" ] || { echo "open-gate.sh: no $f" >&2; exit 1; }
gate='[string match {*jemalloc*} [s mem_allocator]] && [r debug mallctl arenas.page] <= 8192'
flush='r debug mallctl-str thread.tcache.flush VOID'
n_gate=$(grep -cF "$gate" "$f" || true)
n_flush=$(grep -cF "$flush" "$f" || true)
[ "$n_gate" -gt 0 ] || { echo "open-gate.sh: the jemalloc gate is not in $f" >&2; exit 1; }
GATE=$gate FLUSH=$flush perl -0pi -e '
    my ($g, $fl) = ($ENV{GATE}, $ENV{FLUSH});
    s/\Q$g\E/[string match {*(pool)*} [s mem_allocator]] || ($g)/g;
    s/\Q$fl\E/if {![string match {*(pool)*} [s mem_allocator]]} { $fl }/g;
' "$f"
echo "$((n_gate + n_flush))"
