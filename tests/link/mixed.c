/* mixed.c: a program that uses libc's malloc directly next to zmalloc.
 *
 * Built by tests/link/run.sh against an installed zmalloc. Interleaves
 * malloc/realloc/strdup/free with zmalloc blocks and writes every usable
 * byte of each (a block from one allocator sized by another is overrun and
 * the heap checks fire), then runs the API suite (tests/test_api.c,
 * compiled in as test_api_suite) in the same process. Because the program
 * calls malloc itself, the linker resolves it from the first library that
 * defines it: with the jemalloc, tcmalloc and mimalloc backends that is the
 * backend library (then it replaces malloc for the whole process).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "zmalloc.h"

int test_api_suite(void);

static void libc_next_to_zmalloc(void) {
    size_t base = zmalloc_used_memory();
    for (int round = 0; round < 2000; round++) {
        size_t n = 1 + (size_t)(round * 37 % 5000);
        char *c = malloc(n);
        size_t zu;
        char *z = zmalloc_usable(n, &zu);
        CHECK(c != NULL && z != NULL);
        memset(c, 0x11, malloc_usable_size(c));
        memset(z, 0x22, zu);
        char *s = strdup("from libc");
        c = realloc(c, n * 2);
        memset(c, 0x33, malloc_usable_size(c));
        z = zrealloc(z, n * 2);
        memset(z, 0x44, zmalloc_usable_size(z));
        free(c);
        zlibc_free(s);
        zfree(z);
    }
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

int main(void) {
    libc_next_to_zmalloc();
    int api_failed = test_api_suite();
    int own = test_summary("mixed");
    return own || api_failed;
}
