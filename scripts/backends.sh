#!/usr/bin/env bash
# Backend names: pool libc libc-prefix jemalloc tcmalloc mimalloc
# ("libc-prefix" is libc with NO_MALLOC_USABLE_SIZE=1). Sourced by test.sh,
# fuzz.sh and bench/run.sh.
ALL_BACKENDS="pool libc libc-prefix jemalloc tcmalloc mimalloc"

# Prints the backends that can be built on this machine, space-separated;
# reasons for the others go to stderr.
available_backends() {
  local out=(pool libc libc-prefix)
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

# The backends make test runs: the available ones, or with BACKENDS="a b"
# just those of them (a named backend that is not available here is said on
# stderr and skipped; a name that is no backend at all is an error, status 1).
selected_backends() {
  local avail out=() b
  avail=" $(available_backends) "
  if [ -z "${BACKENDS:-}" ]; then echo $avail; return 0; fi
  for b in $BACKENDS; do
    if [[ " $ALL_BACKENDS " != *" $b "* ]]; then
      echo "BACKENDS: no backend called '$b' (backends: $ALL_BACKENDS)" >&2; return 1
    fi
    if [[ "$avail" == *" $b "* ]]; then out+=("$b"); else echo "skipped backend $b: not available here" >&2; fi
  done
  echo "${out[@]}"
}
