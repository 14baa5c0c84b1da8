/* test_platform.c: process information (RSS, /proc/self/stat, smaps,
 * physical memory, cgroup limit). */
#include <stdint.h>
#include <sys/mman.h>

#include "platform.h"
#include "test.h"
#include "zmalloc.h"

int main(void) {
    size_t rss0 = zmalloc_get_rss();
    CHECK(rss0 > 0);
    size_t size = 64u << 20;
    char *p = zmalloc(size);
    memset(p, 1, size);
    size_t rss1 = zmalloc_get_rss();
    printf("  rss before %zu after touching 64 MiB %zu (+%zu)\n", rss0, rss1, rss1 - rss0);
    CHECK(rss1 >= rss0 + size - (4u << 20));
#ifndef UNDER_SANITIZER
    CHECK(rss1 <= rss0 + size + (16u << 20)); /* shadow memory inflates RSS */
#endif

    long long vsize = 0, rss_pages = 0;
    CHECK(get_proc_stat_ll(23, &vsize) == 1 && vsize > (long long)size);
    CHECK(get_proc_stat_ll(24, &rss_pages) == 1 && rss_pages > 0);
    CHECK(get_proc_stat_ll(0, &vsize) == 0);
    CHECK(get_proc_stat_ll(1000, &vsize) == 0);

    size_t dirty = zmalloc_get_private_dirty(-1);
    CHECK(dirty >= size - (4u << 20));
    size_t smaps_rss = zmalloc_get_smap_bytes_by_field("Rss:", -1);
    CHECK(smaps_rss >= size);
    CHECK(zmalloc_get_smap_bytes_by_field("Private_Dirty:", (long)getpid()) >= size - (4u << 20));
    CHECK(zmalloc_get_smap_bytes_by_field("NoSuchField:", -1) == 0);
    /* smaps_rollup and the full smaps scan agree. */
    size_t rollup = zm_os_smaps_field("Private_Dirty:", -1);
    size_t scan = zm_os_smaps_field_full_scan("Private_Dirty:", -1);
    printf("  Private_Dirty: rollup %zu, full scan %zu\n", rollup, scan);
    CHECK(scan > 0 && rollup > scan - scan / 10 && rollup < scan + scan / 10);
    CHECK(zmalloc_get_private_dirty(999999999) == 0);
    zfree(p);

    size_t mem = zmalloc_get_memory_size();
    CHECK(mem >= (256u << 20));
    size_t cg = zmalloc_get_cgroup_memory_limit();
    printf("  physical memory %zu, cgroup limit %zu (0 = none)\n", mem, cg);
    CHECK(cg == 0 || cg >= 4096);
    return test_summary("test_platform");
}
