/* backend_tcmalloc.c: gperftools tcmalloc (Debian's libgoogle-perftools).
 *
 * Linking libtcmalloc may or may not replace malloc for the whole process
 * (with --as-needed a program that links only libzmalloc keeps glibc's
 * malloc); we call its tc_* entry points, which only tcmalloc defines, so
 * every block is tcmalloc's however the program links (tests/link/run.sh). tcmalloc
 * 2.10 has no nallocx, so the usable size is asked with tc_malloc_size.
 * Frees use tc_free: tc_free_sized measured slower (bench fastpath). Statistics come from
 * MallocExtension_GetNumericProperty; see include/zmalloc.h for the mapping.
 */
#include <errno.h>
#include <gperftools/malloc_extension_c.h>
#include <gperftools/tcmalloc.h>

#include "backend.h"

void *zm_be_malloc(size_t size, size_t *usable) {
    void *p = tc_malloc(size);
    if (p) *usable = tc_malloc_size(p);
    return p;
}

void *zm_be_calloc(size_t size, size_t *usable) {
    void *p = tc_calloc(1, size);
    if (p) *usable = tc_malloc_size(p);
    return p;
}

void *zm_be_realloc(void *ptr, size_t size, size_t *usable) {
    void *p = tc_realloc(ptr, size);
    if (p) *usable = tc_malloc_size(p);
    return p;
}

void *zm_be_aligned_alloc(size_t alignment, size_t size, size_t *usable) {
    void *p = NULL;
    int err = tc_posix_memalign(&p, alignment, size);
    if (err) {
        errno = err;
        return NULL;
    }
    *usable = tc_malloc_size(p);
    return p;
}

size_t zm_be_usable_size(const void *ptr) {
    return tc_malloc_size((void *)ptr);
}

void zm_be_free(void *ptr, size_t usable) {
    (void)usable;
    tc_free(ptr);
}

static size_t property(const char *name) {
    size_t v = 0;
    MallocExtension_GetNumericProperty(name, &v);
    return v;
}

void zm_be_get_stats(int refresh, zm_be_stats *out) {
    (void)refresh;
    size_t heap = property("generic.heap_size");
    size_t page_free = property("tcmalloc.pageheap_free_bytes");
    size_t unmapped = property("tcmalloc.pageheap_unmapped_bytes");
    out->allocated = property("generic.current_allocated_bytes");
    out->resident = heap - unmapped;
    out->active = out->resident - page_free;
    out->retained = unmapped;
    out->muzzy = 0; /* tcmalloc releases with MADV_DONTNEED: nothing lazy */
    out->frag_smallbins = property("tcmalloc.central_cache_free_bytes") +
                          property("tcmalloc.transfer_cache_free_bytes") +
                          property("tcmalloc.thread_cache_free_bytes");
}

int zm_be_purge(void) {
    MallocExtension_ReleaseFreeMemory();
    return 0;
}

void zm_be_print_stats(FILE *out, int json) {
    if (json) {
        zm_be_stats st;
        zm_be_get_stats(1, &st);
        fprintf(out,
                "{\"backend\":\"%s\",\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,"
                "\"retained\":%zu,\"frag_smallbins\":%zu}\n",
                zm_be_version(), st.allocated, st.active, st.resident, st.retained,
                st.frag_smallbins);
        return;
    }
    char buf[16384];
    MallocExtension_GetStats(buf, sizeof buf);
    fputs(buf, out);
}

const char *zm_be_version(void) {
    return "tcmalloc-" TC_VERSION_STRING;
}
