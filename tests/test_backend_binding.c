/* test_backend_binding.c: blocks come from the backend the build names,
 * shown by the backend's own counters rather than by zmalloc's.
 *
 * The jemalloc backend once took its blocks from whatever `malloc` the
 * program bound to (glibc's, with --as-needed) while sizing them with
 * jemalloc's nallocx. Here each backend's independent figure must grow by
 * at least the block's usable size while a block is live: jemalloc's
 * per-thread "thread.allocated" counter, tcmalloc's
 * generic.current_allocated_bytes, mimalloc's mi_is_in_heap_region, glibc's
 * mallinfo2 (when no tool replaced malloc), the pool's own statistics. The
 * link matrix (tests/link/run.sh) checks the same through every way to link.
 */
#include <malloc.h>
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "zmalloc.h"

#if ZMALLOC_BACKEND_JEMALLOC
#include <jemalloc/jemalloc.h>
static uint64_t thread_allocated(void) {
    uint64_t v = 0;
    size_t len = sizeof v;
    mallctl("thread.allocated", &v, &len, NULL, 0);
    return v;
}
#elif ZMALLOC_BACKEND_TCMALLOC
#include <gperftools/malloc_extension_c.h>
#elif ZMALLOC_BACKEND_MIMALLOC
#include <mimalloc.h>
#endif

/* The backend's own count of allocated bytes, or 0 when it has none. */
static size_t backend_allocated(void) {
#if ZMALLOC_BACKEND_JEMALLOC
    return (size_t)thread_allocated();
#elif ZMALLOC_BACKEND_TCMALLOC
    size_t v = 0;
    MallocExtension_GetNumericProperty("generic.current_allocated_bytes", &v);
    return v;
#elif ZMALLOC_BACKEND_LIBC
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    size_t allocated = 0, active, resident;
    zmalloc_get_allocator_info_full(1, &allocated, &active, &resident, NULL, NULL, NULL);
    return allocated;
#endif
}

static void one_size(size_t size) {
    size_t before = backend_allocated();
    size_t usable;
    unsigned char *p = zmalloc_usable(size, &usable);
    memset(p, 0x3c, usable);
    size_t during = backend_allocated();
#if ZMALLOC_BACKEND_MIMALLOC
    CHECK(mi_is_in_heap_region(p));
    (void)before;
    (void)during;
#elif ZMALLOC_BACKEND_LIBC
    if (!malloc_replaced_by_tool()) CHECK(during >= before + usable);
#else
    if (during < before + usable)
        fprintf(stderr, "size %zu: backend count %zu -> %zu, usable %zu\n", size, before, during,
                usable);
    CHECK(during >= before + usable);
#endif
    zfree(p);
}

int main(void) {
    printf("backend: %s\n", zmalloc_backend());
    size_t sizes[] = {1, 100, 777, 4096, 40000, 300000, 3u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) one_size(sizes[i]);
#if ZMALLOC_BACKEND_JEMALLOC
    /* The hot calls found jemalloc's own malloc/calloc/free (not the
     * mallocx fallback): the link here lets them resolve. */
    CHECK(zm_be_je_plain_entry_points() == 1);
    /* calloc and realloc too. */
    uint64_t t0 = thread_allocated();
    void *c = zcalloc(5000);
    CHECK(thread_allocated() >= t0 + 5000);
    c = zrealloc(c, 50000);
    CHECK(thread_allocated() >= t0 + 50000);
    zfree(c);
#endif
    return test_summary("test_backend_binding");
}
