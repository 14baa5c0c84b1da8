/* test_platform.c: process information (RSS, /proc/self/stat, smaps,
 * physical memory, cgroup limit). RSS growth for a touched block is checked
 * both ways: the block's own pages with mincore (exact, whatever tool runs
 * the test) and the whole process with a bound that allows for the
 * running tool's shadow memory. */
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "platform.h"
#include "test.h"
#include "zmalloc.h"

static size_t page_size(void) {
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* Pages that [p, p+n) touches, and how many of them mincore says are in
 * RAM. */
static size_t pages_spanned(const void *p, size_t n) {
    uintptr_t first = (uintptr_t)p & ~(page_size() - 1);
    return ((uintptr_t)p + n - first + page_size() - 1) / page_size();
}

static size_t resident_pages(const void *p, size_t n) {
    uintptr_t first = (uintptr_t)p & ~(page_size() - 1);
    size_t pages = pages_spanned(p, n), resident = 0;
    unsigned char vec[4096];
    for (size_t done = 0; done < pages; done += sizeof vec) {
        size_t chunk = pages - done < sizeof vec ? pages - done : sizeof vec;
        if (mincore((void *)(first + done * page_size()), chunk * page_size(), vec) != 0) return 0;
        for (size_t i = 0; i < chunk; i++) resident += vec[i] & 1;
    }
    return resident;
}

/* zm_os_thread_id caches the id per thread: it must still be each
 * thread's own, and a forked child's (the fork handler forgets it). */
static long kernel_tid(void) {
    return (long)syscall(SYS_gettid);
}

static void *thread_id_matches(void *arg) {
    (void)arg;
    return (void *)(uintptr_t)(zm_os_thread_id() == kernel_tid() && zm_os_thread_id() == kernel_tid());
}

static void check_thread_ids(void) {
    CHECK(zm_os_thread_id() == kernel_tid());
    CHECK(zm_os_thread_id() == kernel_tid()); /* cached */
    pthread_t t;
    void *same = NULL;
    CHECK(pthread_create(&t, NULL, thread_id_matches, NULL) == 0);
    CHECK(pthread_join(t, &same) == 0);
    CHECK(same == (void *)1);
    zfree(zmalloc(16)); /* the library's fork handlers are registered */
    pid_t pid = fork();
    if (pid == 0) _exit(zm_os_thread_id() == kernel_tid() ? 0 : 1);
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
    check_thread_ids();
    size_t rss0 = zmalloc_get_rss();
    CHECK(rss0 > 0);
    size_t size = 64u << 20;
    char *p = zmalloc(size);
    memset(p, 1, size);
    size_t rss1 = zmalloc_get_rss();
    printf("  rss before %zu after touching 64 MiB %zu (+%zu)\n", rss0, rss1, rss1 - rss0);
    CHECK(rss1 >= rss0 + size - (4u << 20));
    /* The kernel's page-by-page answer for the block itself: every page
     * was written, so every page is resident (whatever tool runs us). */
    CHECK_EQ_SIZE(resident_pages(p, size), pages_spanned(p, size));
    /* The whole process may not grow by much more than the block. A tool's
     * own memory grows with what we touch: valgrind's memcheck keeps about
     * a quarter of a byte of shadow per byte (it once grew by 84 MB for
     * these 64 MiB), a sanitizer's shadow more, so the bound depends on
     * who runs the program. */
#ifndef UNDER_SANITIZER
    size_t tool_slack = RUNNING_ON_VALGRIND ? size / 2 : 0;
    CHECK(rss1 <= rss0 + size + tool_slack + (16u << 20));
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
