/* backend_jemalloc.c: Debian's libjemalloc (unprefixed build).
 *
 * Debian's jemalloc replaces malloc for the whole process, so libc's own
 * allocations and ours share one heap and nothing is mixed. The hot calls
 * are the plain malloc/free, which have jemalloc's fast paths; measured here
 * (bench/zmbench -w fastpath), mallocx/sallocx/sdallocx are each slower
 * than malloc/malloc_usable_size/free. nallocx() gives the usable size of a
 * fresh block from its size class without a lookup. Statistics come from
 * mallctl after an "epoch" refresh.
 */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"

void *zm_be_malloc(size_t size, size_t *usable) {
    void *p = malloc(size);
    if (p) *usable = nallocx(size, 0);
    return p;
}

void *zm_be_calloc(size_t size, size_t *usable) {
    void *p = calloc(1, size);
    if (p) *usable = nallocx(size, 0);
    return p;
}

void *zm_be_realloc(void *ptr, size_t size, size_t *usable) {
    void *p = realloc(ptr, size);
    if (p) *usable = malloc_usable_size(p);
    return p;
}

void *zm_be_aligned_alloc(size_t alignment, size_t size, size_t *usable) {
    void *p = mallocx(size, MALLOCX_ALIGN(alignment));
    if (p) *usable = malloc_usable_size(p);
    return p;
}

size_t zm_be_usable_size(const void *ptr) {
    return malloc_usable_size((void *)ptr);
}

void zm_be_free(void *ptr, size_t usable) {
    (void)usable; /* sdallocx was slower than free here */
    free(ptr);
}

void *zm_be_je_mallocx(size_t size, int flags, size_t *usable) {
    void *p = mallocx(size, flags);
    if (p) *usable = sallocx(p, 0);
    return p;
}

void *zm_be_je_rallocx(void *ptr, size_t size, int flags, size_t *usable) {
    void *p = rallocx(ptr, size, flags);
    if (p) *usable = sallocx(p, 0);
    return p;
}

void zm_be_je_dallocx(void *ptr, int flags) {
    dallocx(ptr, flags);
}

void zm_be_je_background_thread(int enable) {
    bool val = !!enable;
    mallctl("background_thread", NULL, 0, &val, sizeof val);
}

static size_t ctl_size(const char *name) {
    size_t v = 0, len = sizeof v;
    if (mallctl(name, &v, &len, NULL, 0)) return 0;
    return v;
}

static void refresh_epoch(void) {
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);
}

/* Free bytes inside slabs that hold at least one live region, over the
 * small bins of one arena (or MALLCTL_ARENAS_ALL). */
static size_t frag_smallbins(unsigned arena) {
    unsigned nbins = 0;
    size_t len = sizeof nbins;
    if (mallctl("arenas.nbins", &nbins, &len, NULL, 0)) return 0;
    size_t total = 0;
    char name[128];
    for (unsigned j = 0; j < nbins; j++) {
        uint32_t nregs = 0;
        size_t reg_size = 0, curslabs = 0, curregs = 0, l;
        snprintf(name, sizeof name, "arenas.bin.%u.nregs", j);
        l = sizeof nregs;
        mallctl(name, &nregs, &l, NULL, 0);
        snprintf(name, sizeof name, "arenas.bin.%u.size", j);
        reg_size = ctl_size(name);
        snprintf(name, sizeof name, "stats.arenas.%u.bins.%u.curslabs", arena, j);
        curslabs = ctl_size(name);
        snprintf(name, sizeof name, "stats.arenas.%u.bins.%u.curregs", arena, j);
        curregs = ctl_size(name);
        if (curslabs * nregs > curregs) total += (curslabs * nregs - curregs) * reg_size;
    }
    return total;
}

void zm_be_get_stats(int refresh, zm_be_stats *out) {
    if (refresh) refresh_epoch();
    char name[64];
    out->allocated = ctl_size("stats.allocated");
    out->active = ctl_size("stats.active");
    out->resident = ctl_size("stats.resident");
    out->retained = ctl_size("stats.retained");
    snprintf(name, sizeof name, "stats.arenas.%u.pmuzzy", (unsigned)MALLCTL_ARENAS_ALL);
    out->muzzy = ctl_size(name) * (size_t)ctl_size("arenas.page");
    out->frag_smallbins = frag_smallbins(MALLCTL_ARENAS_ALL);
}

int zm_be_je_arena_stats(unsigned arena, int refresh, size_t *allocated, size_t *active,
                         size_t *resident, size_t *frag) {
    if (refresh) refresh_epoch();
    char name[96];
    size_t page = ctl_size("arenas.page");
    snprintf(name, sizeof name, "stats.arenas.%u.small.allocated", arena);
    size_t small = ctl_size(name);
    snprintf(name, sizeof name, "stats.arenas.%u.large.allocated", arena);
    *allocated = small + ctl_size(name);
    snprintf(name, sizeof name, "stats.arenas.%u.pactive", arena);
    *active = ctl_size(name) * page;
    snprintf(name, sizeof name, "stats.arenas.%u.resident", arena);
    *resident = ctl_size(name);
    *frag = frag_smallbins(arena);
    return 1;
}

int zm_be_purge(void) {
    char name[64];
    snprintf(name, sizeof name, "arena.%u.purge", (unsigned)MALLCTL_ARENAS_ALL);
    return mallctl(name, NULL, NULL, NULL, 0) ? -1 : 0;
}

static void write_cb(void *opaque, const char *s) {
    fputs(s, (FILE *)opaque);
}

void zm_be_print_stats(FILE *out, int json) {
    malloc_stats_print(write_cb, out, json ? "J" : NULL);
}

const char *zm_be_version(void) {
#define ZM_STR2(x) #x
#define ZM_STR(x) ZM_STR2(x)
    return "jemalloc-" ZM_STR(JEMALLOC_VERSION_MAJOR) "." ZM_STR(JEMALLOC_VERSION_MINOR) "." ZM_STR(
        JEMALLOC_VERSION_BUGFIX);
}
