#!/usr/bin/env bash
# Installs what the build, tests and benchmarks use, from Debian's archive,
# when running as root with apt-get and ZMALLOC_NO_INSTALL is not 1.
# Everything optional: a missing backend library is reported and skipped
# by scripts/backends.sh, never fatal here.
set -u
want=(cmake pkg-config make gcc clang libclang-rt-14-dev libjemalloc-dev
      libgoogle-perftools-dev libmimalloc-dev valgrind gnuplot-nox python3
      sqlite3 tcl perl git g++ libpython3.11-testsuite dpkg-dev
      google-perftools graphviz libunwind-dev liblzma-dev)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "${ZMALLOC_NO_INSTALL:-0}" = 1 ]; then
  echo "deps: not installing (ZMALLOC_NO_INSTALL=1); missing: ${missing[*]}"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "deps: not root or no apt-get; missing: ${missing[*]} (those backends/tools are skipped)"
  exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
stamp=/var/lib/apt/lists/partial/.zmalloc-updated
if [ ! -e "$stamp" ]; then apt-get update -q >/dev/null && touch "$stamp"; fi
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/zmalloc-apt.log 2>&1; then
  echo "deps: apt-get could not install all of: ${missing[*]} (see /tmp/zmalloc-apt.log); installing one by one"
  for p in "${missing[@]}"; do apt-get install -y -q --no-install-recommends "$p" >>/tmp/zmalloc-apt.log 2>&1 || echo "deps: skipped $p"; done
fi
exit 0
