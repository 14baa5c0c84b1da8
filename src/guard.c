/* guard.c: guarded sampling (ZMALLOC_GUARD_SAMPLE=N).
 *
 * About one allocation in N of at most ZM_GUARD_MAX bytes (sample.c picks
 * them) is placed in a small reserved area instead of the backend:
 *
 *   | guard | data data | guard | data data | guard | ...   ZM_GUARD_SLOTS slots
 *           '- slot 0 -'        '- slot 1 -'
 *
 * Only the pages a live block covers are accessible; everything else in the
 * area is PROT_NONE. A block is placed either with its end at the end of its
 * slot, against the guard page (a write past the end faults at once), or with
 * its start at the start of its accessible pages, after an inaccessible page
 * (a write before the start faults at once); the side is chosen by the
 * slot's use count, so both happen. A right-placed block keeps the alignment
 * its size needs (the largest power of two <= size, at most 16), so up to 15
 * bytes may separate its end from the guard page: those bytes, and the
 * unused part of its pages, hold a pattern that free checks, so an overflow
 * into them is reported too, at free. A freed block's pages are made
 * inaccessible, so a use after free faults (and it stays in the free filter
 * of sample.h, so a second free is reported); slots are reused round robin,
 * which makes the recycling a FIFO of ZM_GUARD_SLOTS blocks. When the slot
 * that comes next is still live, a few more are tried, and then the
 * allocation simply goes to the backend.
 *
 * The SIGSEGV handler (installed when the area is first used, through
 * platform.c, keeping the previous handler) classifies a fault inside the
 * area as heap overflow, underflow or use after free, prints it with the
 * block's address and size and its allocation and free stacks, and aborts.
 * Any other fault goes to the handler that was there before.
 *
 * Nothing here locks or allocates: slots are claimed by compare-and-swap of
 * their state, so guarded allocation and free work in signal handlers, in
 * fork children (the area and its protections are inherited) and from
 * exiting threads. Cost per guarded block: two mprotect calls (one at
 * allocation, one at free) and clearing up to 8 KiB.
 */
#define _GNU_SOURCE
#include <execinfo.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "platform.h"
#include "sample.h"

#define ZM_GUARD_SLOTS 256
#define ZM_GUARD_TRIES 8
#define FILL 0xa7

enum { SLOT_UNUSED = 0, SLOT_CLAIMED = 1, SLOT_LIVE = 2, SLOT_FREEING = 3, SLOT_FREED = 4 };

typedef struct guard_slot {
    _Atomic int state;
    size_t size;
    uintptr_t user;     /* the block */
    uintptr_t open_lo;  /* accessible pages [open_lo, slot data end) */
    long alloc_tid, free_tid;
    zm_smp_stack alloc_stack, free_stack;
} guard_slot;

typedef struct guard_area {
    uintptr_t base, end; /* the reserved range */
    size_t page;
    guard_slot slots[ZM_GUARD_SLOTS];
} guard_area;

static _Atomic(guard_area *) area;
static _Atomic uint64_t next_slot;
/* Read by the inline zm_guard_owns() on every sampled free. */
static _Atomic uintptr_t area_base, area_end;
/* Requested bytes of live guarded blocks: the front end adds them to the
 * used-memory total where the backend counts its own blocks (the pool). */
static _Atomic long long live_bytes;

long long zm_guard_live_bytes(void) {
    return atomic_load_explicit(&live_bytes, memory_order_relaxed);
}

static void on_segv(int sig, void *addr, void *info, void *ctx);

static guard_area *get_area(void) {
    guard_area *a = atomic_load_explicit(&area, memory_order_acquire);
    if (a) return a;
    size_t page = zm_os_page_size();
    size_t span = page * (1 + 3 * (size_t)ZM_GUARD_SLOTS);
    guard_area *fresh = zm_os_map(sizeof(guard_area));
    if (!fresh) return NULL;
    void *range = zm_os_reserve(span);
    if (!range) {
        zm_os_unmap(fresh, sizeof(guard_area));
        return NULL;
    }
    fresh->base = (uintptr_t)range;
    fresh->end = fresh->base + span;
    fresh->page = page;
    guard_area *expected = NULL;
    if (!atomic_compare_exchange_strong(&area, &expected, fresh)) {
        zm_os_unmap(range, span);
        zm_os_unmap(fresh, sizeof(guard_area));
        return expected;
    }
    atomic_store(&area_base, fresh->base);
    atomic_store(&area_end, fresh->end);
    zm_os_segv_install(on_segv);
    return fresh;
}

static inline uintptr_t slot_data(guard_area *a, size_t i) {
    return a->base + a->page * (1 + 3 * i);
}

static inline uintptr_t slot_data_end(guard_area *a, size_t i) {
    return slot_data(a, i) + 2 * a->page;
}

int zm_guard_owns(const void *p) {
    uintptr_t u = (uintptr_t)p;
    return u >= atomic_load_explicit(&area_base, memory_order_relaxed) &&
           u < atomic_load_explicit(&area_end, memory_order_relaxed);
}

static size_t slot_index(guard_area *a, uintptr_t u) {
    if (u < a->base + a->page) return 0;
    return (u - a->base - a->page) / (3 * a->page);
}

void *zm_guard_alloc(size_t size, const zm_smp_stack *s) {
    guard_area *a = get_area();
    if (!a || size == 0 || size > ZM_GUARD_MAX) return NULL;
    for (int tries = 0; tries < ZM_GUARD_TRIES; tries++) {
        uint64_t ticket = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed);
        size_t i = (size_t)(ticket % ZM_GUARD_SLOTS);
        guard_slot *g = &a->slots[i];
        int st = atomic_load_explicit(&g->state, memory_order_acquire);
        if ((st != SLOT_UNUSED && st != SLOT_FREED) ||
            !atomic_compare_exchange_strong(&g->state, &st, SLOT_CLAIMED))
            continue;
        /* A freed block stays in the free filter until its slot is reused,
         * so that a second free of it reaches zm_guard_free (double free). */
        if (st == SLOT_FREED) zm_smp_filter_remove((void *)g->user);
        uintptr_t end = slot_data_end(a, i);
        size_t pages = (size + a->page - 1) / a->page;
        uintptr_t lo = end - pages * a->page;
        if (zm_os_protect((void *)lo, pages * a->page, 1) != 0) {
            atomic_store(&g->state, st);
            return NULL;
        }
        uintptr_t user;
        if ((ticket / ZM_GUARD_SLOTS) & 1) {
            user = lo; /* against the inaccessible page before */
        } else {
            size_t align = 16;
            while (align > size) align >>= 1;
            user = (end - size) & ~(uintptr_t)(align - 1); /* against the guard page */
        }
        memset((void *)lo, FILL, user - lo);
        memset((void *)user, 0, size);
        memset((void *)(user + size), FILL, end - (user + size));
        g->size = size;
        g->user = user;
        g->open_lo = lo;
        g->alloc_tid = zm_os_thread_id();
        g->alloc_stack = *s;
        g->free_stack.depth = 0;
        g->free_tid = 0;
        zm_smp_filter_add((void *)user);
        atomic_fetch_add_explicit(&live_bytes, (long long)size, memory_order_relaxed);
        atomic_store_explicit(&g->state, SLOT_LIVE, memory_order_release);
        return (void *)user;
    }
    return NULL;
}

size_t zm_guard_size(const void *p) {
    guard_area *a = atomic_load_explicit(&area, memory_order_acquire);
    guard_slot *g = &a->slots[slot_index(a, (uintptr_t)p)];
    return g->size;
}

/* ---------------------------------------------------------------------
 * Reports
 * --------------------------------------------------------------------- */

static void say(const char *s) {
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void print_stack(const char *what, long tid, const zm_smp_stack *s) {
    char line[128];
    snprintf(line, sizeof line, "  %s by thread %ld:\n", what, tid);
    say(line);
    if (s->depth > 0) backtrace_symbols_fd(s->pc, s->depth, 2);
    else say("    (no stack)\n");
}

static __attribute__((noreturn)) void report(const char *kind, uintptr_t addr, guard_slot *g,
                                             const char *detail) {
    char line[320];
    snprintf(line, sizeof line,
             "zmalloc: guarded sample: %s at address %p: %s %zu-byte block at %p\n", kind,
             (void *)addr, detail, g->size, (void *)g->user);
    say(line);
    print_stack("allocated", g->alloc_tid, &g->alloc_stack);
    if (g->free_stack.depth > 0 || g->free_tid) print_stack("freed", g->free_tid, &g->free_stack);
    /* Default SIGABRT even if the program handles it: this is the end. */
    abort();
}

/* The fill pattern, for memcmp: a byte loop over a block's page was most
 * of a guarded free's user time (up to 4 KiB compared a byte at a time). */
static const unsigned char fill_chunk[256] = {[0 ... 255] = FILL};

/* First byte of [lo, hi) that is not the fill pattern, or 0. */
static uintptr_t first_unfilled(uintptr_t lo, uintptr_t hi) {
    while (lo < hi) {
        size_t n = hi - lo < sizeof fill_chunk ? hi - lo : sizeof fill_chunk;
        if (memcmp((const void *)lo, fill_chunk, n) != 0)
            for (size_t k = 0; k < n; k++)
                if (((const unsigned char *)lo)[k] != FILL) return lo + k;
        lo += n;
    }
    return 0;
}

/* Bytes of the fill pattern around a live block that were overwritten:
 * 1 after its end, -1 before its start (where says the first). */
static int check_fill(guard_slot *g, uintptr_t end, uintptr_t *where) {
    if ((*where = first_unfilled(g->user + g->size, end)) != 0) return 1;
    if ((*where = first_unfilled(g->open_lo, g->user)) != 0) return -1;
    return 0;
}

void zm_guard_free(void *p, const zm_smp_stack *s) {
    guard_area *a = atomic_load_explicit(&area, memory_order_acquire);
    uintptr_t u = (uintptr_t)p;
    size_t i = slot_index(a, u);
    guard_slot *g = &a->slots[i];
    int st = SLOT_LIVE;
    if (g->user != u || !atomic_compare_exchange_strong(&g->state, &st, SLOT_FREEING)) {
        report(st == SLOT_FREED || st == SLOT_FREEING ? "double free" : "invalid free", u, g,
               "of the");
    }
    uintptr_t end = slot_data_end(a, i), where;
    int bad = check_fill(g, end, &where);
    if (bad) {
        g->free_tid = zm_os_thread_id();
        g->free_stack = *s;
        report(bad > 0 ? "heap overflow" : "heap underflow", where, g,
               "(found when freed) next to the");
    }
    g->free_tid = zm_os_thread_id();
    g->free_stack = *s;
    zm_os_protect((void *)g->open_lo, end - g->open_lo, 0);
    atomic_fetch_sub_explicit(&live_bytes, (long long)g->size, memory_order_relaxed);
    atomic_store_explicit(&g->state, SLOT_FREED, memory_order_release);
}

/* ---------------------------------------------------------------------
 * The SIGSEGV handler
 * --------------------------------------------------------------------- */

static void on_segv(int sig, void *addr, void *info, void *ctx) {
    guard_area *a = atomic_load_explicit(&area, memory_order_acquire);
    uintptr_t u = (uintptr_t)addr;
    if (!a || u < a->base || u >= a->end) {
        zm_os_segv_chain(sig, info, ctx);
        return;
    }
    size_t i = slot_index(a, u);
    if (i >= ZM_GUARD_SLOTS) i = ZM_GUARD_SLOTS - 1;
    uintptr_t data = slot_data(a, i), end = slot_data_end(a, i);
    guard_slot *g = &a->slots[i];
    int st = atomic_load(&g->state);
    if (u >= end || u < data) {
        /* A guard page: past the end of slot i's block, or (when slot i+1's
         * block starts at its first page) before the start of that one.
         * The nearer live block is the one. */
        guard_slot *next = i + 1 < ZM_GUARD_SLOTS && u >= end ? &a->slots[i + 1] : NULL;
        int next_live = next && atomic_load(&next->state) == SLOT_LIVE;
        if (u < data) { /* the area's first guard page: slot 0's underflow */
            if (st == SLOT_LIVE) report("heap underflow", u, g, "before the");
        } else if (st == SLOT_LIVE && (!next_live || u - (g->user + g->size) <= next->user - u)) {
            report("heap overflow", u, g, "past the end of the");
        } else if (next_live) {
            report("heap underflow", u, next, "before the");
        } else if (st == SLOT_FREED || st == SLOT_FREEING) {
            report("use after free", u, g, "past the end of the freed");
        }
    } else if (st == SLOT_FREED || st == SLOT_FREEING) {
        report("use after free", u, g, "inside the freed");
    } else if (st == SLOT_LIVE) {
        report(u < g->user ? "heap underflow" : "heap overflow", u, g,
               u < g->user ? "before the" : "past the end of the");
    }
    say("zmalloc: guarded sample: invalid access to the guarded area\n");
    abort();
}
