#!/usr/bin/env bash
# check_exports.sh LIB EXPECTED: the dynamic symbols LIB defines
# (nm -D --defined-only) must be exactly the list in EXPECTED, which CMake
# wrote from src/exports.txt for this build. Prints the difference.
set -u
lib=$1 expected=$2
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
