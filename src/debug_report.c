/* debug_report.c: the verification layer's reports (debug.c holds the
 * checks).
 *
 * Every report is formatted on the stack and written with write(2), with no
 * lock held: symbolising a site calls dladdr(), which takes the dynamic
 * loader's lock, and a thread holding that lock may be allocating. Nothing
 * here allocates with malloc (the backend may be malloc): growing lists come
 * from zm_os_map, sorting is a heapsort (qsort may call malloc).
 *
 * Kinds of report: a problem found in a block (overflow, underflow, use
 * after free), printed from a sink of problems; the fatal report for a
 * pointer that is not a live block (double free, invalid free, a block whose
 * header alone was overwritten), which searches every record for the block
 * the pointer falls into; zmalloc_verify(); the leak report grouped by site.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "debug_internal.h"
#include "platform.h"
#include "zmalloc.h"

/* ---------------------------------------------------------------------
 * Lines
 * --------------------------------------------------------------------- */

typedef struct line_buf {
    char s[1536];
    size_t len;
} line_buf;

static void put(line_buf *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(line_buf *l, const char *fmt, ...) {
    if (l->len >= sizeof l->s - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->s + l->len, sizeof l->s - l->len, fmt, ap);
    va_end(ap);
    if (n > 0) l->len += (size_t)n;
    if (l->len > sizeof l->s - 1) l->len = sizeof l->s - 1;
}

static void put_site(line_buf *l, const char *file, int line, void *ra) {
    if (file) {
        put(l, "%s:%d", file, line);
        return;
    }
    if (!ra) {
        put(l, "an unknown site");
        return;
    }
    Dl_info info;
    if (dladdr(ra, &info) && info.dli_fname) {
        const char *mod = strrchr(info.dli_fname, '/');
        mod = mod ? mod + 1 : info.dli_fname;
        if (info.dli_sname)
            put(l, "%p (%s+0x%lx in %s)", ra, info.dli_sname,
                (unsigned long)((char *)ra - (char *)info.dli_saddr), mod);
        else
            put(l, "%p (%s+0x%lx)", ra, mod, (unsigned long)((char *)ra - (char *)info.dli_fbase));
    } else {
        put(l, "%p", ra);
    }
}

static void flush_line(line_buf *l) {
    put(l, "\n");
    zm_os_write_all(2, l->s, l->len);
    l->len = 0;
}

static void put_wrong(line_buf *l, const problem *p, unsigned expected) {
    put(l,
        "; %zu byte%s found wrong (offset from the block start=value, expected 0x%02x):", p->nwrong,
        p->nwrong == 1 ? "" : "s", expected);
    size_t shown = p->nwrong < DBG_MAX_WRONG ? p->nwrong : DBG_MAX_WRONG;
    for (size_t i = 0; i < shown; i++)
        put(l, " %ld=0x%02x", p->off[i], p->val[i]);
    if (shown < p->nwrong) put(l, " ...");
}

static void print_problem(const problem *p) {
    line_buf l = {.len = 0};
    const dbg_block *b = &p->b;
    switch (p->kind) {
    case P_OVERFLOW:
    case P_UNDERFLOW:
        put(&l, "zmalloc: heap %s: %sblock %p of %zu bytes allocated at ",
            p->kind == P_OVERFLOW ? "overflow" : "underflow", b->freed ? "freed " : "",
            (void *)b->user, b->size);
        put_site(&l, b->file, b->line, b->alloc_ra);
        put(&l, ", written %s", p->kind == P_OVERFLOW ? "past its end" : "before its start");
        put_wrong(&l, p, DBG_GUARD_BYTE);
        break;
    case P_USE_AFTER_FREE:
        put(&l, "zmalloc: use after free: block %p of %zu bytes allocated at ", (void *)b->user,
            b->size);
        put_site(&l, b->file, b->line, b->alloc_ra);
        put(&l, ", freed at ");
        put_site(&l, NULL, 0, b->free_ra);
        put(&l, ", was written after it was freed");
        put_wrong(&l, p, DBG_FREED_BYTE);
        break;
    }
    flush_line(&l);
}

void zm_dbg_print_sink(const sink *s) {
    for (size_t i = 0; i < s->n; i++)
        print_problem(&s->items[i]);
    if (s->lost) {
        line_buf l = {.len = 0};
        put(&l, "zmalloc: ... and %zu more problems not shown", s->lost);
        flush_line(&l);
    }
}

/* ---------------------------------------------------------------------
 * Pointers that are not a live block (fatal)
 * --------------------------------------------------------------------- */

/* Looks for a block whose backend memory contains p, for the invalid-free
 * report. O(blocks); runs only on the way to abort(). */
typedef struct container_search {
    const unsigned char *p;
    dbg_block found;
    int ok;
} container_search;

static int container_fn(dbg_block *b, void *arg) {
    container_search *cs = arg;
    if (cs->p < DBG_RAW(b) || cs->p >= b->user + b->size + DBG_GUARD) return 0;
    cs->found = *b;
    cs->ok = 1;
    return 1;
}

static int find_container(const void *p, dbg_block *out) {
    container_search cs = {.p = p, .ok = 0};
    zm_dbg_for_each_block(container_fn, &cs);
    if (cs.ok) *out = cs.found;
    return cs.ok;
}

void zm_dbg_die_bad_pointer(const void *ptr, const dbg_block *freed, const char *op) {
    line_buf l = {.len = 0};
    if (freed) {
        put(&l, "zmalloc: double free of %p (%s): block of %zu bytes allocated at ", ptr, op,
            freed->size);
        put_site(&l, freed->file, freed->line, freed->alloc_ra);
        put(&l, ", already freed at ");
        put_site(&l, NULL, 0, freed->free_ra);
        put(&l, ", freed again at ");
        put_site(&l, NULL, 0, zm_dbg_current_caller());
    } else {
        dbg_block c = {0};
        if (find_container(ptr, &c) && c.user == ptr && !c.freed) {
            /* Its header, before the checked guard bytes, was overwritten. */
            put(&l, "zmalloc: heap underflow: block %p of %zu bytes allocated at ", ptr, c.size);
            put_site(&l, c.file, c.line, c.alloc_ra);
            put(&l, ", written before its start: the %d bytes before its guard zone are wrong",
                DBG_HEADER);
            flush_line(&l);
            abort();
        }
        put(&l, "zmalloc: invalid free of %p (%s) at ", ptr, op);
        put_site(&l, NULL, 0, zm_dbg_current_caller());
        put(&l, ": not a block zmalloc returned");
        if (find_container(ptr, &c)) {
            long off = (long)((const unsigned char *)ptr - c.user);
            put(&l, "; it points %ld bytes %s %s block %p of %zu bytes allocated at ",
                off < 0 ? -off : off, off < 0 ? "before" : "into", c.freed ? "freed" : "live",
                (void *)c.user, c.size);
            put_site(&l, c.file, c.line, c.alloc_ra);
        }
    }
    flush_line(&l);
    abort();
}

/* ---------------------------------------------------------------------
 * zmalloc_verify
 * --------------------------------------------------------------------- */

typedef struct verify_state {
    sink s;
    int found;
} verify_state;

static int verify_fn(dbg_block *b, void *arg) {
    verify_state *v = arg;
    v->found += zm_dbg_check_block(b, &v->s);
    return 0;
}

int zmalloc_verify(void) {
    verify_state v;
    zm_dbg_sink_init(&v.s, 1);
    v.found = 0;
    zm_dbg_for_each_block(verify_fn, &v);
    zm_dbg_print_sink(&v.s);
    zm_dbg_sink_free(&v.s);
    return v.found;
}

/* ---------------------------------------------------------------------
 * Leak report
 * --------------------------------------------------------------------- */

typedef struct leak {
    const char *file;
    void *ra;
    int line;
    size_t blocks, bytes;
} leak;

static int site_cmp(const leak *a, const leak *b) {
    if (!a->file != !b->file) return a->file ? -1 : 1;
    if (a->file) {
        int c = a->file == b->file ? 0 : strcmp(a->file, b->file);
        if (c) return c;
        return (a->line > b->line) - (a->line < b->line);
    }
    return (a->ra > b->ra) - (a->ra < b->ra);
}

static int size_cmp(const leak *a, const leak *b) {
    if (a->bytes != b->bytes) return a->bytes > b->bytes ? -1 : 1;
    if (a->blocks != b->blocks) return a->blocks > b->blocks ? -1 : 1;
    return site_cmp(a, b);
}

/* Heapsort: qsort may call malloc, which may be us. */
static void sift(leak *v, size_t i, size_t n, int (*cmp)(const leak *, const leak *)) {
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && cmp(&v[c + 1], &v[c]) > 0) c++;
        if (cmp(&v[c], &v[i]) <= 0) return;
        leak t = v[i];
        v[i] = v[c];
        v[c] = t;
        i = c;
    }
}

static void sort_leaks(leak *v, size_t n, int (*cmp)(const leak *, const leak *)) {
    for (size_t i = n / 2; i-- > 0;)
        sift(v, i, n, cmp);
    for (size_t end = n; end-- > 1;) {
        leak t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift(v, 0, end, cmp);
    }
}

typedef struct leak_list {
    leak *v;
    size_t n, cap, total_bytes, unlisted;
} leak_list;

static int leak_fn(dbg_block *b, void *arg) {
    leak_list *l = arg;
    if (b->freed) return 0;
    l->total_bytes += b->size;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 4096;
        leak *nv = zm_os_map(ncap * sizeof *nv);
        if (!nv) {
            l->unlisted++;
            return 0;
        }
        if (l->v) {
            memcpy(nv, l->v, l->n * sizeof *nv);
            zm_os_unmap(l->v, l->cap * sizeof *nv);
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = (leak){b->file, b->file ? NULL : b->alloc_ra, b->line, 1, b->size};
    return 0;
}

size_t zmalloc_report_leaks(FILE *out) {
    leak_list list = {0};
    zm_dbg_for_each_block(leak_fn, &list);
    leak *v = list.v;
    size_t n = list.n, cap = list.cap, total_bytes = list.total_bytes, unlisted = list.unlisted;
    size_t live = n + unlisted;
    /* Group by site, then order the groups by bytes. */
    sort_leaks(v, n, site_cmp);
    size_t groups = 0;
    for (size_t i = 0; i < n; i++) {
        if (groups && site_cmp(&v[groups - 1], &v[i]) == 0) {
            v[groups - 1].blocks++;
            v[groups - 1].bytes += v[i].bytes;
        } else {
            v[groups++] = v[i];
        }
    }
    sort_leaks(v, groups, size_cmp);
    fprintf(out,
            "zmalloc: leak report: %zu live block%s, %zu bytes, from %zu allocation site%s%s\n",
            live, live == 1 ? "" : "s", total_bytes, groups, groups == 1 ? "" : "s",
            groups ? ", largest first:" : "");
    for (size_t i = 0; i < groups; i++) {
        line_buf l = {.len = 0};
        put_site(&l, v[i].file, v[i].line, v[i].ra);
        fprintf(out, "  %zu bytes in %zu block%s allocated at %.*s\n", v[i].bytes, v[i].blocks,
                v[i].blocks == 1 ? "" : "s", (int)l.len, l.s);
    }
    if (unlisted) fprintf(out, "  (%zu blocks not listed: out of memory)\n", unlisted);
    fflush(out);
    if (v) zm_os_unmap(v, cap * sizeof *v);
    return live;
}

void zm_dbg_leak_report_at_exit(void) {
    zmalloc_report_leaks(stderr);
}
