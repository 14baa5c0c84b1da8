#!/usr/bin/env bash
# Prints the backends that can be built on this machine, one a line
# ("libc-prefix" is libc with NO_MALLOC_USABLE_SIZE=1); reasons for the
# others go to stderr. Sourced by test.sh and bench/run.sh.
available_backends() {
  local out=()
  [ -d src/pool ] && ls src/pool/*.c >/dev/null 2>&1 && out+=(pool) || echo "skipped backend pool: src/pool has no sources" >&2
  out+=(libc libc-prefix)
  if pkg-config --exists jemalloc 2>/dev/null; then out+=(jemalloc); else echo "skipped backend jemalloc: libjemalloc-dev not installed" >&2; fi
  if pkg-config --exists libtcmalloc 2>/dev/null; then out+=(tcmalloc); else echo "skipped backend tcmalloc: libgoogle-perftools-dev not installed" >&2; fi
  if [ -f /usr/lib/x86_64-linux-gnu/cmake/mimalloc/mimalloc-config.cmake ] || ls /usr/lib/*/cmake/mimalloc*/mimalloc-config.cmake >/dev/null 2>&1; then
    out+=(mimalloc); else echo "skipped backend mimalloc: libmimalloc-dev not installed" >&2; fi
  echo "${out[@]}"
}

# cmake flags for a backend name as printed above.
backend_flags() {
  case "$1" in
    libc-prefix) echo "-DZMALLOC_MALLOC=libc -DNO_MALLOC_USABLE_SIZE=ON" ;;
    *) echo "-DZMALLOC_MALLOC=$1" ;;
  esac
}
