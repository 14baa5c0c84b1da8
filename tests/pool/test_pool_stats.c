/* test_pool_stats.c: the statistics keep allocated <= active <= resident,
 * move with allocations (frag_smallbins grows by the blocks freed inside
 * pages that stay in use), and zmalloc_print_stats prints a per-class table
 * as text and valid JSON (test.h's json_is_valid: no outside tool). */
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "zmalloc.h"

int main(void) {
    size_t a0, act0, r0, ret0, m0, f0;
    CHECK(zmalloc_get_allocator_info_full(1, &a0, &act0, &r0, &ret0, &m0, &f0) == 1);
    CHECK(a0 <= act0 && act0 <= r0);
    enum { N = 6000 }; /* 48-byte blocks: more than four 64 KiB pages of 1365 */
    static void *v[N];
    for (int i = 0; i < N; i++) v[i] = zmalloc(48);
    void *big = zmalloc(3 << 20);
    size_t a1, act1, r1, ret1, m1, f1;
    zmalloc_get_allocator_info_full(1, &a1, &act1, &r1, &ret1, &m1, &f1);
    CHECK(a1 >= a0 + N * 48 + (3 << 20));
    CHECK(a1 <= act1 && act1 <= r1);
    /* Free carved blocks of class pages only: the huge block's header is
     * in active, not in the fragmentation defrag could win. */
    CHECK(f1 + 16384 <= act1 - a1);
    /* Free every other 48-byte block: their pages stay in use (the other
     * half is live), so the free bytes inside partly used pages grow by at
     * least what was freed outside the class's current page (whose free
     * blocks the next allocations take: not counted, src/pool/defrag.c). */
    for (int i = 0; i < N; i += 2) {
        zfree(v[i]);
        v[i] = NULL;
    }
    size_t a1h, act1h, r1h, ret1h, m1h, f1h;
    zmalloc_get_allocator_info_full(1, &a1h, &act1h, &r1h, &ret1h, &m1h, &f1h);
    CHECK(f1h >= f1 + (N / 2 - 1365) * 48);
    CHECK(f1h <= act1h - a1h);
    CHECK_EQ_SIZE(a1 - a1h, N / 2 * 48);
    /* Text: the 48-byte class row shows our 500 live blocks (or more). */
    char path[] = "/tmp/zm_pool_stats_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    zmalloc_print_stats(f, 0);
    fflush(f);
    rewind(f);
    char line[256];
    int saw_header = 0, saw_48 = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "class") && strstr(line, "blocks") && strstr(line, "waste")) saw_header = 1;
        size_t cls;
        long blocks, pages;
        if (sscanf(line, " %zu %ld %ld", &cls, &blocks, &pages) == 3 && cls == 48 &&
            blocks >= 500 && pages >= 1)
            saw_48 = 1;
    }
    CHECK(saw_header);
    CHECK(saw_48);
    fclose(f);
    unlink(path);
    /* JSON. */
    strcpy(path, "/tmp/zm_pool_stats_XXXXXX");
    fd = mkstemp(path);
    CHECK(fd >= 0);
    f = fdopen(fd, "w+");
    zmalloc_print_stats(f, 1);
    fflush(f);
    rewind(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    CHECK(strstr(buf, "\"classes\":[") != NULL);
    CHECK(strstr(buf, "\"size\":48,") != NULL);
    CHECK(n > 0 && n < sizeof buf - 1);
    CHECK(json_is_valid(buf, n));
    unlink(path);
    for (int i = 0; i < N; i++) zfree(v[i]); /* the freed ones are NULL */
    zfree(big);
    size_t a2, act2, r2, ret2, m2, f2;
    zmalloc_get_allocator_info_full(1, &a2, &act2, &r2, &ret2, &m2, &f2);
    CHECK_EQ_SIZE(a2, a0);
    CHECK(a2 <= act2 && act2 <= r2);
    CHECK(strstr(zmalloc_backend(), "pool") != NULL);
    return test_summary("test_pool_stats");
}
