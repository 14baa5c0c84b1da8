/* test_pool_leaks.c: after allocating ~200 MiB in many sizes and freeing it
 * all, the accounting and the backend's allocated bytes are back at the
 * baseline, and zmalloc_purge() brings RSS and resident back near the start:
 * empty pages really go back to the OS. */
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "zmalloc.h"

int main(void) {
    /* Warm up the heap so the baseline includes its fixed structures. */
    zfree(zmalloc(10));
    zmalloc_purge();
    size_t base_used = zmalloc_used_memory();
    size_t rss0 = zmalloc_get_rss();
    zm_be_stats s0;
    zm_be_get_stats(1, &s0);

    enum { N = 400000 };
    void **v = zmalloc(N * sizeof *v);
    size_t total = 0;
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)((i * 2654435761u) % 1000) + 1;
        if (i % 1000 == 0) n = 100000 + (size_t)i;
        v[i] = zmalloc(n);
        memset(v[i], 1, n);
        total += n;
    }
    zm_be_stats s1;
    zm_be_get_stats(1, &s1);
    CHECK(s1.allocated >= s0.allocated + total);
    CHECK(s1.allocated <= s1.active && s1.active <= s1.resident);
    size_t rss1 = zmalloc_get_rss();
    CHECK(rss1 > rss0 + total / 2);
    /* Free in an order that leaves pages partly used for a while. */
    for (int i = 0; i < N; i += 2) zfree(v[i]);
    for (int i = 1; i < N; i += 2) zfree(v[i]);
    zfree(v);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base_used);
    zm_be_stats s2;
    zm_be_get_stats(1, &s2);
    CHECK_EQ_SIZE(s2.allocated, s0.allocated);
    CHECK(zmalloc_purge() == 0);
    size_t rss3 = zmalloc_get_rss();
    zm_be_stats s3;
    zm_be_get_stats(1, &s3);
    fprintf(stderr, "rss start %zu KiB, peak %zu KiB, after purge %zu KiB; resident %zu -> %zu\n",
            rss0 >> 10, rss1 >> 10, rss3 >> 10, s0.resident, s3.resident);
    CHECK(rss3 < rss0 + ((size_t)4 << 20));
    CHECK(s3.resident < s0.resident + ((size_t)1 << 20));
    CHECK(s3.allocated <= s3.active && s3.active <= s3.resident);
    return test_summary("test_pool_leaks");
}
