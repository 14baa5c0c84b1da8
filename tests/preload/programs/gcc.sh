#!/usr/bin/env bash
# gcc.sh DIR [scale]: generate a C program (functions, structs, a switch,
# string tables), compile it with gcc -O2 (the driver, cc1, as and ld all
# run under whatever LD_PRELOAD is set), run it, and print the object's
# checksum and the program's output.
set -eu
dir=$1; scale=${2:-1}
n=$(awk -v s="$scale" 'BEGIN { printf "%d", 400 * s }')
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
awk -v n="$n" 'BEGIN {
  print "#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>";
  for (i = 0; i < n; i++) {
    printf "struct s%d { int a[%d]; double d; const char *name; };\n", i, i % 13 + 1;
    printf "static const char *names%d[] = {\"%d-a\", \"%d-b\", \"%d-c\"};\n", i, i, i, i;
    printf "__attribute__((noinline)) long f%d(long x) {\n  struct s%d v; memset(&v, 0, sizeof v);\n", i, i;
    printf "  for (int k = 0; k < %d; k++) v.a[k] = (int)(x * %d + k);\n", i % 13 + 1, i + 3;
    printf "  v.name = names%d[x %% 3];\n  long r = (long)strlen(v.name);\n", i;
    printf "  switch (x %% 5) { case 0: r += v.a[0]; break; case 1: r -= %d; break; case 2: r *= 3; break; default: r ^= %d; }\n", i, i * 7;
    printf "  return r + (long)v.d;\n}\n";
  }
  print "int main(void) {\n  long acc = 0;";
  for (i = 0; i < n; i++) printf "  acc += f%d(%d);\n", i, i * 17 % 101;
  print "  printf(\"acc %ld\\n\", acc);\n  return 0;\n}";
}' >prog.c
gcc -O2 -c prog.c -o prog.o
gcc prog.o -o prog
md5sum <prog.o
./prog
