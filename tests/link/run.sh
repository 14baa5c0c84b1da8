#!/usr/bin/env bash
# tests/link/run.sh BUILD_DIR [NAME]: the link matrix for the backend built
# in BUILD_DIR. Installs it with `cmake --install` into BUILD_DIR/link/prefix,
# then builds and runs the API suite (tests/test_api.c) linked every way a
# user links zmalloc:
#   pkgconfig-shared  cc app.c $(pkg-config --cflags --libs zmalloc)
#   pkgconfig-static  the same with `pkg-config --static` and libzmalloc.a
#   cmake-static      find_package(zmalloc) + zmalloc::zmalloc
#   cmake-shared      find_package(zmalloc) + zmalloc::zmalloc_shared
#   plugin            a plugin linked with zmalloc, dlopen'ed by a host that
#                     has no zmalloc (the suite runs inside the plugin)
#   mixed             a program that also uses libc's malloc directly
#   handover          LINK_THREADS (10000) threads that allocate, free half
#                     and hand half to the main thread (exact accounting),
#                     linked as pkgconfig-shared
#   static-exe        a fully static executable: cc -static with
#                     `pkg-config --static` (on jemalloc this is the path
#                     where the backend cannot find jemalloc's plain entry
#                     points and uses mallocx/dallocx; static_exe.c checks
#                     that). Only where every archive of the static link
#                     exists: Debian ships no libmimalloc.a, so mimalloc
#                     reports "skipped" with the missing archive, not a pass.
# Prints one line per mode and "link-NAME: N passed, M failed" (modes).
set -u
here=$(cd "$(dirname "$0")" && pwd)
tests=$(dirname "$here")
build=$(cd "$1" && pwd)
name=${2:-$(basename "$build")}
threads=${LINK_THREADS:-10000}
out=$build/link
prefix=$out/prefix
rm -rf "$out"
mkdir -p "$out"
passed=0
failed=0
CC=${CC:-cc}
cflags=(-O1 -g -I"$tests")
# The suite asks for impossible sizes on purpose.
$CC -dM -E - </dev/null 2>/dev/null | grep -q __clang__ || cflags+=(-Wno-alloc-size-larger-than)

fail() { # mode, message, log
  failed=$((failed + 1))
  echo "   $1: FAILED ($2)"
  [ -f "$3" ] && tail -25 "$3" | sed 's/^/     /'
}

# check MODE LOG CMD...: runs CMD, passes when it exits 0.
check() {
  local mode=$1 log=$2; shift 2
  if "$@" >>"$log" 2>&1; then
    passed=$((passed + 1))
    echo "   $mode: ok ($(grep -E '^[a-z_]+: [0-9]+ passed' "$log" | tr '\n' ' ' | sed 's/ $//'))"
  else
    fail "$mode" "exit $?" "$log"
  fi
}

# needs BINARY yes|no: whether BINARY must list libzmalloc.so in NEEDED.
needs_libzmalloc() {
  local has=no
  readelf -d "$1" 2>/dev/null | grep -q 'NEEDED.*libzmalloc\.so' && has=yes
  [ "$has" = "$2" ] || { echo "$1: NEEDED libzmalloc.so is '$has', wanted '$2'"; return 1; }
}

if ! cmake --install "$build" --prefix "$prefix" >"$out/install.log" 2>&1; then
  fail install "cmake --install" "$out/install.log"
  echo "link-$name: $passed passed, $failed failed"
  exit 1
fi
pc=$(find "$prefix" -name zmalloc.pc | head -1)
libdir=$(cd "$(dirname "$pc")/.." && pwd)
export PKG_CONFIG_PATH=$(dirname "$pc")
zm_cflags=$(pkg-config --cflags zmalloc)
zm_libs=$(pkg-config --libs zmalloc)
# The static archive by name, so the linker cannot pick the .so.
zm_static_libs=$(pkg-config --static --libs zmalloc | sed -E 's/(^| )-lzmalloc( |$)/\1-l:libzmalloc.a\2/')
rpath=-Wl,-rpath,$libdir

# pkg-config, shared and static
log=$out/pkgconfig-shared.log
if $CC "${cflags[@]}" "$tests/test_api.c" $zm_cflags $zm_libs $rpath -o "$out/api-pc-shared" >"$log" 2>&1 &&
   needs_libzmalloc "$out/api-pc-shared" yes >>"$log"; then
  check pkgconfig-shared "$log" "$out/api-pc-shared"
else fail pkgconfig-shared build "$log"; fi
log=$out/pkgconfig-static.log
if $CC "${cflags[@]}" "$tests/test_api.c" $zm_cflags $zm_static_libs -o "$out/api-pc-static" >"$log" 2>&1 &&
   needs_libzmalloc "$out/api-pc-static" no >>"$log"; then
  check pkgconfig-static "$log" "$out/api-pc-static"
else fail pkgconfig-static build "$log"; fi

# CMake package, both targets
log=$out/cmake.log
if cmake -S "$here" -B "$out/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     -DCMAKE_BUILD_RPATH="$libdir" >"$log" 2>&1 && cmake --build "$out/cmake" >>"$log" 2>&1; then
  cp "$log" "$out/cmake-static.log"
  needs_libzmalloc "$out/cmake/api-cmake-static" no >>"$out/cmake-static.log" &&
    check cmake-static "$out/cmake-static.log" "$out/cmake/api-cmake-static" ||
    { [ $? -ne 0 ] && grep -q "wanted" "$out/cmake-static.log" && fail cmake-static NEEDED "$out/cmake-static.log"; }
  cp "$log" "$out/cmake-shared.log"
  needs_libzmalloc "$out/cmake/api-cmake-shared" yes >>"$out/cmake-shared.log" &&
    check cmake-shared "$out/cmake-shared.log" "$out/cmake/api-cmake-shared" ||
    { [ $? -ne 0 ] && grep -q "wanted" "$out/cmake-shared.log" && fail cmake-shared NEEDED "$out/cmake-shared.log"; }
else
  fail cmake-static "configure/build" "$log"
  fail cmake-shared "configure/build" "$log"
fi

# A plugin linked with zmalloc, loaded by a host without it
log=$out/plugin.log
if $CC "${cflags[@]}" -shared -fPIC -DTEST_API_ENTRY=zm_plugin_api_suite "$tests/test_api.c" \
     $zm_cflags $zm_libs $rpath -o "$out/plugin.so" >"$log" 2>&1 &&
   $CC "${cflags[@]}" "$here/plugin_host.c" -ldl -o "$out/plugin-host" >>"$log" 2>&1 &&
   needs_libzmalloc "$out/plugin-host" no >>"$log"; then
  # Debian's libjemalloc has 2.6 KiB of initial-exec TLS, more than glibc's
  # default static TLS surplus, so dlopen of anything that needs it fails
  # ("cannot allocate memory in static TLS block") unless the surplus is
  # raised (or jemalloc is loaded at start); README "Linking" says so.
  tunables=
  grep -q '^#define ZMALLOC_BACKEND_JEMALLOC 1' "$prefix/include/zmalloc_config.h" &&
    tunables=glibc.rtld.optional_static_tls=4096
  check plugin "$log" env ${tunables:+GLIBC_TUNABLES=$tunables} "$out/plugin-host" "$out/plugin.so"
else fail plugin build "$log"; fi

# libc's malloc next to zmalloc; the hand-over threads
for prog in mixed handover; do
  log=$out/$prog.log
  if $CC "${cflags[@]}" -pthread -DTEST_API_ENTRY=test_api_suite "$here/$prog.c" "$tests/test_api.c" \
       $zm_cflags $zm_libs $rpath -o "$out/$prog" >"$log" 2>&1; then
    check $prog "$log" "$out/$prog" "$threads"
  else fail $prog build "$log"; fi
done

# A fully static executable
log=$out/static-exe.log
# Every -lNAME of the static link must exist as libNAME.a, or the mode is
# reported skipped with the missing archives (Debian ships no libmimalloc.a).
missing=
for l in $zm_static_libs; do
  case $l in -l:*) ;; -l*) a=lib${l#-l}.a
    [ "$($CC -print-file-name="$a")" = "$a" ] && missing="$missing $a";; esac
done
if [ -n "$missing" ]; then
  echo "   static-exe: skipped (no static archive:$missing)"
elif $CC "${cflags[@]}" -static -pthread -DTEST_API_ENTRY=test_api_suite "$here/static_exe.c" \
       "$tests/test_api.c" $zm_cflags $zm_static_libs -o "$out/static-exe" >"$log" 2>&1 &&
     ! readelf -d "$out/static-exe" 2>/dev/null | grep -q NEEDED; then
  check static-exe "$log" "$out/static-exe"
else fail static-exe "build, or the executable is not static" "$log"; fi

echo "link-$name: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
