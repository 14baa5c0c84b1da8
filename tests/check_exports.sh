#!/usr/bin/env bash
# check_exports.sh LIB EXPECTED [STATIC]: the dynamic symbols LIB defines
# (nm -D --defined-only) must be exactly the list in EXPECTED, which CMake
# wrote from src/exports.txt for this build. With STATIC (the same build's
# libzmalloc.a) also: every global symbol it defines whose name is not an
# internal zm_*/zp_* one must be in the list, so a new public function
# that was not added to src/exports.txt (and is therefore hidden) fails
# here instead of at a user's link. Prints the differences.
set -u
lib=$1 expected=$2 static=${3:-}
if [ -n "$static" ]; then
  missing=$(nm --defined-only -g "$static" 2>/dev/null | awk 'NF >= 3 && $2 ~ /[TDBRVW]/ {print $3}' |
            grep -v '^zm_\|^zp_' | sort -u | comm -23 - <(sort -u "$expected"))
  if [ -n "$missing" ]; then
    echo "check_exports: public-looking functions that src/exports.txt does not list (so hidden):"
    echo "$missing" | sed 's/^/  /'
    echo "(add each to src/exports.txt, or name it zm_*/zp_* if it is internal)"
    exit 1
  fi
fi
got=$(nm -D --defined-only "$lib" | awk 'NF >= 3 {print $NF}' | sed 's/@.*//' | sort -u)
want=$(sort -u "$expected")
if [ "$got" = "$want" ]; then
  echo "check_exports: $(basename "$lib"): $(echo "$got" | wc -l) symbols, as src/exports.txt says"
  exit 0
fi
echo "check_exports: $(basename "$lib") does not export what src/exports.txt lists for this build"
diff <(echo "$want") <(echo "$got") | sed -n 's/^< /  listed but not exported: /p; s/^> /  exported but not listed: /p'
echo "(a new public function goes into src/exports.txt; anything else must stay hidden)"
exit 1
