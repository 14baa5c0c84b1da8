/* backend_mimalloc.c: Debian's libmimalloc.
 *
 * Every call uses mimalloc's own mi_* names, so blocks come from mimalloc
 * however the program links (libmimalloc also defines malloc, which a
 * program may or may not bind to). The usable size is mi_usable_size.
 *
 * Statistics are mimalloc's own, never zmalloc's accounting. mimalloc 2.0
 * release builds keep no process-wide count of allocated bytes, and a heap
 * can be walked only by the thread that owns it, so the block figures are
 * those of the calling thread's heap (mi_heap_visit_blocks over its pages:
 * exact there, blocks other threads own are not seen); the memory figure
 * is mimalloc's process-wide committed count (mi_process_info). See
 * include/zmalloc.h for the mapping.
 */
#include <errno.h>
#include <mimalloc.h>

#include "backend.h"

void *zm_be_malloc(size_t size, size_t *usable) {
    void *p = mi_malloc(size);
    if (p) *usable = mi_usable_size(p);
    return p;
}

void *zm_be_calloc(size_t size, size_t *usable) {
    void *p = mi_zalloc(size);
    if (p) *usable = mi_usable_size(p);
    return p;
}

void *zm_be_realloc(void *ptr, size_t size, size_t *usable) {
    void *p = mi_realloc(ptr, size);
    if (p) *usable = mi_usable_size(p);
    return p;
}

void *zm_be_aligned_alloc(size_t alignment, size_t size, size_t *usable) {
    void *p = mi_malloc_aligned(size, alignment);
    if (p) *usable = mi_usable_size(p);
    return p;
}

size_t zm_be_usable_size(const void *ptr) {
    return mi_usable_size(ptr);
}

void zm_be_free(void *ptr, size_t usable) {
    (void)usable;
    mi_free(ptr);
}

typedef struct heap_sums {
    size_t allocated; /* live blocks x block size                        */
    size_t active;    /* initialised part of pages with a live block     */
} heap_sums;

/* Called once per page of the heap (visit_all_blocks false: block NULL). */
static bool add_area(const mi_heap_t *heap, const mi_heap_area_t *area, void *block,
                     size_t block_size, void *arg) {
    (void)heap, (void)block, (void)block_size;
    heap_sums *s = arg;
    if (area->used) {
        s->allocated += area->used * area->block_size;
        s->active += area->committed;
    }
    return true;
}

void zm_be_get_stats(int refresh, zm_be_stats *out) {
    size_t elapsed, user, sys, rss, peak_rss, commit, peak_commit, faults;
    /* Collect first so blocks other threads freed into our pages are seen
     * as free. */
    if (refresh) mi_collect(false);
    heap_sums s = {0, 0};
    mi_heap_visit_blocks(mi_heap_get_default(), false, add_area, &s);
    mi_process_info(&elapsed, &user, &sys, &rss, &peak_rss, &commit, &peak_commit, &faults);
    out->allocated = s.allocated;
    out->active = s.active;
    out->resident = commit;
    out->retained = 0;
    out->muzzy = 0;
    out->frag_smallbins = s.active - s.allocated;
}

int zm_be_purge(void) {
    /* Gives back whole free segments; free pages inside a segment that
     * still holds a live block follow mimalloc's own decommit schedule
     * (zmalloc.h, zmalloc_purge). */
    mi_collect(true);
    return 0;
}

static void write_cb(const char *msg, void *arg) {
    fputs(msg, (FILE *)arg);
}

void zm_be_print_stats(FILE *out, int json) {
    if (json) {
        zm_be_stats st;
        zm_be_get_stats(1, &st);
        fprintf(out,
                "{\"backend\":\"%s\",\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,"
                "\"frag_smallbins\":%zu}\n",
                zm_be_version(), st.allocated, st.active, st.resident, st.frag_smallbins);
        return;
    }
    mi_stats_print_out(write_cb, out);
}

const char *zm_be_version(void) {
    static char version[32];
    if (!version[0]) {
        int v = mi_version(); /* major*100 + minor*10 + patch, e.g. 209 */
        snprintf(version, sizeof version, "mimalloc-%d.%d.%d", v / 100, v / 10 % 10, v % 10);
    }
    return version;
}
