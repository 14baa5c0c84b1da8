/* backend_libc.c: glibc malloc.
 *
 * With malloc_usable_size (the default) the front end asks glibc for each
 * block's size; built with NO_MALLOC_USABLE_SIZE=1 (ZM_BACKEND_HAS_SIZE 0)
 * the front end keeps a size prefix instead, which is Redis's path for
 * platforms without a size query, kept buildable and tested on Linux.
 * Statistics come from mallinfo2(); see include/zmalloc.h for the mapping.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <gnu/libc-version.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#if ZM_BACKEND_HAS_SIZE
#define USABLE(p, requested) malloc_usable_size(p)
#else
#define USABLE(p, requested) (requested)
#endif

void *zm_be_malloc(size_t size, size_t *usable) {
    void *p = malloc(size);
    if (p) *usable = USABLE(p, size);
    return p;
}

void *zm_be_calloc(size_t size, size_t *usable) {
    void *p = calloc(1, size);
    if (p) *usable = USABLE(p, size);
    return p;
}

void *zm_be_realloc(void *ptr, size_t size, size_t *usable) {
    void *p = realloc(ptr, size);
    if (p) *usable = USABLE(p, size);
    return p;
}

void *zm_be_aligned_alloc(size_t alignment, size_t size, size_t *usable) {
    void *p;
    int err = posix_memalign(&p, alignment, size);
    if (err) {
        errno = err;
        return NULL;
    }
    *usable = USABLE(p, size);
    return p;
}

#if ZM_BACKEND_HAS_SIZE
size_t zm_be_usable_size(const void *ptr) {
    return malloc_usable_size((void *)ptr);
}
#endif

void zm_be_free(void *ptr, size_t usable) {
    (void)usable;
    free(ptr);
}

void zm_be_get_stats(int refresh, zm_be_stats *out) {
    (void)refresh;
    struct mallinfo2 mi = mallinfo2();
    /* uordblks: bytes of chunks in use in all arenas (8-byte headers
     * included); hblkhd: mmapped chunks; arena: bytes the arenas got from
     * the OS (sbrk/mmap), = uordblks + fordblks; keepcost: the top chunk of
     * the main arena, which free() trims. glibc cannot say which of its
     * pages are resident: free pages malloc_trim released with
     * MADV_DONTNEED still count in arena, so `resident` is what the arenas
     * hold, an upper bound. glibc unmaps what it releases otherwise, so
     * nothing is retained or lazily freed. */
    out->allocated = mi.uordblks + mi.hblkhd;
    out->frag_smallbins = mi.fordblks - mi.keepcost; /* keepcost is part of fordblks */
    out->active = out->allocated + out->frag_smallbins;
    out->resident = mi.arena + mi.hblkhd;
    out->retained = 0;
    out->muzzy = 0;
}

int zm_be_purge(void) {
    malloc_trim(0);
    return 0;
}

void zm_be_print_stats(FILE *out, int json) {
    struct mallinfo2 mi = mallinfo2();
    if (json) {
        fprintf(out,
                "{\"backend\":\"%s\",\"arena\":%zu,\"ordblks\":%zu,\"hblks\":%zu,"
                "\"hblkhd\":%zu,\"uordblks\":%zu,\"fordblks\":%zu,\"keepcost\":%zu}\n",
                zm_be_version(), mi.arena, mi.ordblks, mi.hblks, mi.hblkhd, mi.uordblks,
                mi.fordblks, mi.keepcost);
    } else {
        fprintf(out, "%s\n", zm_be_version());
        malloc_info(0, out);
    }
}

const char *zm_be_version(void) {
    static char version[48];
    if (!version[0]) {
        strcpy(version, "libc-");
        strncat(version, gnu_get_libc_version(), 16);
        if (!ZM_BACKEND_HAS_SIZE) strcat(version, " (size prefix)");
    }
    return version;
}
