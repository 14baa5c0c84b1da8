/* backend_mimalloc.c: Debian's libmimalloc.
 *
 * mi_good_size() gives the usable size from the size class without a
 * lookup; mi_free_size() frees. mimalloc 2.0 keeps no process-wide count of
 * allocated bytes in release builds, so `allocated` is zmalloc's own exact
 * accounting (blocks allocated through zmalloc) and the page-level figures
 * come from mi_process_info (committed memory, RSS); see include/zmalloc.h.
 */
#include <errno.h>
#include <mimalloc.h>

#include "account.h"
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

void zm_be_get_stats(int refresh, zm_be_stats *out) {
    size_t elapsed, user, sys, rss, peak_rss, commit, peak_commit, faults;
    if (refresh) mi_collect(false);
    mi_process_info(&elapsed, &user, &sys, &rss, &peak_rss, &commit, &peak_commit, &faults);
    long long used = zm_account_total();
    out->allocated = used > 0 ? (size_t)used : 0;
    out->active = commit > out->allocated ? commit : out->allocated;
    out->resident = rss > out->active ? out->active : rss;
    if (out->resident < out->allocated) out->resident = out->allocated;
    out->retained = 0;
    out->muzzy = 0;
    out->frag_smallbins = out->active - out->allocated;
}

int zm_be_purge(void) {
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
