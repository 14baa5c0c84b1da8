#!/usr/bin/env bash
# runtest-hook.sh TREE SERVER BACKEND: run by tests/redis/check.sh in each
# server tree just before its ./runtest (every shim directory's hook runs).
#
# On the pool backend the servers' active defragmenter runs (HAVE_DEFRAG,
# src/pool/defrag.c), but their own defrag tests in unit/memefficiency.tcl
# are gated on mem_allocator containing "jemalloc": open-gate.sh edits the
# tree's copy of that file so the gate also opens for "(pool)". Every other
# backend has no defragmenter, so its tree is left as the server ships it
# (the tests skip by the server's own condition).
#
# check.sh builds every server in a fresh copy of its source, so the edit
# never reaches a source tree kept for reuse. The hook runs on each
# ./runtest; open-gate.sh is not idempotent, so a tree whose gate is
# already open (a runtest rerun on a reused tree) is left as it is.
set -euo pipefail
tree=${1:?usage: runtest-hook.sh TREE SERVER BACKEND}
server=${2:?}
backend=${3:?}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ "$backend" = pool ] || exit 0
f=$tree/tests/unit/memefficiency.tcl
if grep -qF '[string match {*(pool)*} [s mem_allocator]] ||' "$f"; then
    echo "runtest-hook[$server]: active-defrag gate of $f already open for the pool"
    exit 0
fi
n=$(bash "$here/open-gate.sh" "$tree")
echo "runtest-hook[$server]: opened the active-defrag gate of $f for the pool ($n edits)"
