/* prof_workload.c: a program whose live heap is known exactly, for the
 * profiler's end-to-end test (run_pprof.sh). Each function keeps its blocks
 * live until the profile is written:
 *   keep_small_blocks   200000 blocks of 48 bytes     9 600 000 bytes
 *   keep_medium_blocks   20000 blocks of 1000 bytes  20 000 000 bytes
 *   keep_large_blocks       40 blocks of 256 KiB     10 485 760 bytes
 *   churn_and_free      allocates 50 MB and frees it all (no live bytes)
 * Built with frame pointers, so the stacks reach main. Usage:
 *   prof_workload <profile path>      writes the profile with zmalloc_prof_dump
 *                                     (ZMALLOC_PROF_SAMPLE must be set)
 *   prof_workload --libc              the same with malloc, for the preload
 *                                     library: exits with the blocks live,
 *                                     so ZMALLOC_PROF_FILE's exit profile
 *                                     holds them
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmalloc.h"

static int use_libc;

static void *get(size_t n) {
    void *p = use_libc ? malloc(n) : zmalloc(n);
    memset(p, 1, n < 64 ? n : 64);
    return p;
}

static void put(void *p) {
    if (use_libc) free(p);
    else zfree(p);
}

__attribute__((noinline)) void **keep_small_blocks(void) {
    void **v = get(200000 * sizeof(void *));
    for (int i = 0; i < 200000; i++) v[i] = get(48);
    return v;
}

__attribute__((noinline)) void **keep_medium_blocks(void) {
    void **v = get(20000 * sizeof(void *));
    for (int i = 0; i < 20000; i++) v[i] = get(1000);
    return v;
}

__attribute__((noinline)) void **keep_large_blocks(void) {
    void **v = get(40 * sizeof(void *));
    for (int i = 0; i < 40; i++) v[i] = get(256 * 1024);
    return v;
}

__attribute__((noinline)) void churn_and_free(void) {
    for (int i = 0; i < 500000; i++) put(get(100));
}

int main(int argc, char **argv) {
    use_libc = argc > 1 && strcmp(argv[1], "--libc") == 0;
    void **a = keep_small_blocks();
    void **b = keep_medium_blocks();
    void **c = keep_large_blocks();
    churn_and_free();
    int rc = 0;
    if (use_libc) return 0;
    if (argc > 1 && argc > 1 && zmalloc_prof_dump(argv[1]) != 0) {
        perror("zmalloc_prof_dump");
        rc = 1;
    }
    for (int i = 0; i < 200000; i++) put(a[i]);
    for (int i = 0; i < 20000; i++) put(b[i]);
    for (int i = 0; i < 40; i++) put(c[i]);
    put(a);
    put(b);
    put(c);
    return rc;
}
