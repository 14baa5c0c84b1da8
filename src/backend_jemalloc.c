/* backend_jemalloc.c: Debian's libjemalloc (unprefixed build).
 *
 * Binding. Every block must come from jemalloc, however the program was
 * linked. The plain names (malloc, free, calloc, malloc_usable_size) do not
 * guarantee that: with `cc app.c $(pkg-config --libs zmalloc)` and Debian's
 * --as-needed the program's NEEDED list is libzmalloc.so and libc.so,
 * libjemalloc comes in only as libzmalloc's own dependency, and the dynamic
 * linker's search order (program, its NEEDED in order, then theirs) finds
 * glibc's malloc first; a plugin loaded with dlopen sees the same. The old
 * backend then took blocks from glibc while asking jemalloc for their size
 * (nallocx(100) = 112, glibc's block holds 104): callers overran blocks and
 * the accounting drifted (alloc charged jemalloc's class, free glibc's size).
 *
 * So: the names only jemalloc defines (mallocx, rallocx, sallocx, nallocx,
 * dallocx, mallctl) are called directly, and the three hot calls whose
 * jemalloc-only form is slower (jemalloc 5.3's malloc and free have fast
 * paths, mallocx and sdallocx do not) go through pointers to the malloc,
 * calloc and free of the very object that defines mallocx, found once with
 * dladdr + dlsym and checked to live in that object; if any check fails the
 * pointers stay on mallocx/dallocx wrappers, which are always right.
 * Measured with callgrind (valgrind --tool=callgrind on a program of 1M
 * zmalloc+zfree pairs of 16-256 bytes, then 1M mixed zmalloc/zrealloc/zfree
 * over 1024 slots, linked with -Wl,--no-as-needed -ljemalloc so that the old
 * plain calls did reach jemalloc): plain malloc/free/realloc/
 * malloc_usable_size 556.8M instructions; mallocx/rallocx/sdallocx/sallocx
 * 699.0M (+26%: mallocx and sdallocx take jemalloc's generic path); these
 * pointers with rallocx/sallocx 539.7M (-3%: rallocx is cheaper than
 * realloc). sdallocx is not used: it measured 77 instructions a call against
 * free's 33.
 *
 * The usable size of a fresh block comes from nallocx (the size class, no
 * lookup), of a moved block from sallocx. Statistics come from mallctl after
 * an "epoch" refresh.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"

/* ---- the always-right forms, on jemalloc-only names ---------------------- */
static void *je_only_malloc(size_t size) {
    return mallocx(size, 0);
}
static void *je_only_calloc(size_t n, size_t size) {
    return mallocx(n * size, MALLOCX_ZERO); /* n is 1 here */
}
static void je_only_free(void *ptr) {
    dallocx(ptr, 0);
}

/* ---- resolution: the first call through each pointer lands here --------- */
static void *resolve_then_malloc(size_t size);
static void *resolve_then_calloc(size_t n, size_t size);
static void resolve_then_free(void *ptr);

static void *(*_Atomic je_malloc)(size_t) = resolve_then_malloc;
static void *(*_Atomic je_calloc)(size_t, size_t) = resolve_then_calloc;
static void (*_Atomic je_free)(void *) = resolve_then_free;

/* The address of `name` in the object `lib` (a dlopen handle or
 * RTLD_DEFAULT), or NULL unless it lies in the object whose base is `base`. */
static void *symbol_in(void *lib, const char *name, const void *base) {
    void *fn = dlsym(lib, name);
    Dl_info info;
    if (!fn || !dladdr(fn, &info) || info.dli_fbase != base) return NULL;
    return fn;
}

static __attribute__((noinline, cold)) void resolve(void) {
    void *m = NULL, *c = NULL, *f = NULL;
    Dl_info info;
    if (dladdr((void *)mallocx, &info) && info.dli_fbase) {
        /* libjemalloc.so itself, or NULL when jemalloc was linked into the
         * executable (then the global scope finds the executable first). */
        void *lib = info.dli_fname ? dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD) : NULL;
        void *scope = lib ? lib : RTLD_DEFAULT;
        m = symbol_in(scope, "malloc", info.dli_fbase);
        c = symbol_in(scope, "calloc", info.dli_fbase);
        f = symbol_in(scope, "free", info.dli_fbase);
        if (lib) dlclose(lib); /* NOLOAD took one more reference */
    }
    if (m && c && f) {
        je_malloc = (void *(*)(size_t))m;
        je_calloc = (void *(*)(size_t, size_t))c;
        je_free = (void (*)(void *))f;
    } else {
        je_malloc = je_only_malloc;
        je_calloc = je_only_calloc;
        je_free = je_only_free;
    }
}

static void *resolve_then_malloc(size_t size) {
    resolve();
    return je_malloc(size);
}
static void *resolve_then_calloc(size_t n, size_t size) {
    resolve();
    return je_calloc(n, size);
}
static void resolve_then_free(void *ptr) {
    resolve();
    je_free(ptr);
}

/* 1 when the hot calls go through jemalloc's plain entry points, 0 when
 * they use the mallocx/dallocx forms (for the tests). */
int zm_be_je_plain_entry_points(void) {
    if (je_malloc == resolve_then_malloc) resolve();
    return je_malloc != je_only_malloc;
}

void *zm_be_malloc(size_t size, size_t *usable) {
    void *p = je_malloc(size);
    if (p) *usable = nallocx(size, 0);
    return p;
}

void *zm_be_calloc(size_t size, size_t *usable) {
    void *p = je_calloc(1, size);
    if (p) *usable = nallocx(size, 0);
    return p;
}

void *zm_be_realloc(void *ptr, size_t size, size_t *usable) {
    void *p = rallocx(ptr, size, 0); /* fewer instructions than realloc */
    if (p) *usable = sallocx(p, 0);
    return p;
}

void *zm_be_aligned_alloc(size_t alignment, size_t size, size_t *usable) {
    void *p = mallocx(size, MALLOCX_ALIGN(alignment));
    if (p) *usable = sallocx(p, 0);
    return p;
}

size_t zm_be_usable_size(const void *ptr) {
    return sallocx(ptr, 0);
}

void zm_be_free(void *ptr, size_t usable) {
    (void)usable; /* sdallocx has no fast path in jemalloc 5.3: free is cheaper */
    je_free(ptr);
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
