/* zmalloc.c: the front end, written once for every backend.
 *
 * It owns what Redis's zmalloc layer adds on top of malloc: the SIZE_MAX/2
 * guard, 0-byte requests, the size prefix for backends without a size query,
 * exact accounting, the OOM handler, try/usable variants, and the two things
 * Redis never did: reclaim-and-retry and a memory limit.
 *
 * Two funnels: allocate() for every allocating entry point, release() for
 * every freeing one. On a backend with a side-effect-free fast path (the
 * pool) allocate() first tries it with no call and no stack frame (one load
 * of the limit, the pool's pop); anything else tail-calls the slow path,
 * which makes one inlined attempt() at the lower layer (layer.h: the
 * backend, or the verification layer over it) and, when that fails or a
 * limit is set, retries with the reclaim handler's help.
 *
 * Accounting: one counter. The pool counts its live blocks per class and
 * thread anyway, and that is the used-memory total (ZM_LAYER_COUNTS), so
 * the front end adds nothing and zfree looks no size up. Other backends
 * (and the verification layer, whose blocks carry guard zones) use
 * account.h's per-thread slots. Either total is read lock-free.
 *
 * Prefix path (libc with NO_MALLOC_USABLE_SIZE): a 16-byte prefix before
 * each block; its last word holds (size << 1) | aligned. An aligned block
 * starts max(alignment, 16) bytes into its backend block (which is itself
 * aligned), and the word before the size holds that distance. Accounted
 * bytes are what the backend block holds: the size plus the prefix, as in
 * Redis, plus, for an aligned block, the padding in front.
 */
#define _GNU_SOURCE
#include "zmalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "defrag.h"
#include "layer.h"
#include "platform.h"
#include "sample.h"

/* The prefix is 16 bytes, not Redis's 8, so blocks keep malloc's
 * max_align_t alignment; the size is in its last word. */
#define PREFIX_SIZE (ZM_LAYER_HAS_SIZE ? 0 : 2 * sizeof(size_t))
/* The size guard (ZM_TOO_BIG, ZM_MIN_REQUEST) is layer.h's, shared with
 * the preload library. */

/* ---------------------------------------------------------------------
 * Handlers and limit
 * --------------------------------------------------------------------- */

static void default_oom_handler(size_t size) {
    fprintf(stderr, "zmalloc: Out of memory trying to allocate %zu bytes\n", size);
    fflush(stderr);
    abort();
}

static void (*_Atomic oom_handler)(size_t) = default_oom_handler;
static size_t (*_Atomic reclaim_handler)(size_t);
static _Atomic size_t memory_limit;
/* Set while this thread runs the reclaim handler: no nested reclaim. */
static __thread int in_reclaim __attribute__((tls_model("initial-exec")));
/* Per-thread view of the total at the last exact limit check, and the
 * bytes this thread was admitted since. */
static __thread long long total_at_check __attribute__((tls_model("initial-exec")));
static __thread size_t since_limit_check __attribute__((tls_model("initial-exec")));
static __thread unsigned limit_checked __attribute__((tls_model("initial-exec")));
/* Bumped by every zmalloc_set_memory_limit(): allocations made while no
 * limit was set are not counted in since_limit_check, so a thread's
 * reading from before is stale. Starts at 1: limit_checked 0 = never. */
static _Atomic unsigned limit_epoch = 1;

void zmalloc_set_oom_handler(void (*handler)(size_t)) {
    atomic_store(&oom_handler, handler ? handler : default_oom_handler);
}

static void call_oom_handler(size_t size) {
    atomic_load_explicit(&oom_handler, memory_order_relaxed)(size);
}

void zmalloc_set_reclaim_handler(size_t (*handler)(size_t needed)) {
    atomic_store(&reclaim_handler, handler);
}

/* The fast path of allocate() tests no limit: while one is set, every
 * thread is held on the slow path (sample.h), which checks it. This thread
 * at once; the others at their next slow path, within ZM_SMP_POLL
 * requested bytes, which charge at most ZMALLOC_LIMIT_SLACK (sample.c):
 * inside the bound zmalloc.h states. */
void zmalloc_set_memory_limit(size_t bytes) {
    atomic_fetch_add(&limit_epoch, 1);
    atomic_store(&memory_limit, bytes);
    zm_smp_hold(bytes != 0);
    zm_smp_expire();
}

size_t zmalloc_get_memory_limit(void) {
    return atomic_load(&memory_limit);
}

/* Would `extra` more bytes keep the total within the limit? The estimate
 * is the last exact reading plus what this thread was admitted since (its
 * own frees since are ignored, which only errs high and forces an exact
 * re-read). Other threads' allocations since this thread's last exact
 * reading are unknown, and each thread re-reads after ZMALLOC_LIMIT_SLACK
 * admitted bytes, hence the bound in zmalloc.h. in_flight: bytes this
 * thread was admitted that are not charged yet (a fresh block's request,
 * while its size-class rounding is checked): an exact re-read does not see
 * them, so they are added to it (without, a re-read in the rounding check
 * forgot the request and let one block pass the limit by its size). */
static inline long long used_total(void);

static int limit_admits(size_t limit, size_t extra, size_t in_flight) {
    long long estimate = total_at_check + (long long)since_limit_check;
    unsigned epoch = atomic_load_explicit(&limit_epoch, memory_order_relaxed);
    if (limit_checked != epoch || since_limit_check + extra >= ZMALLOC_LIMIT_SLACK ||
        estimate + (long long)extra > (long long)limit) {
        total_at_check = used_total() + (long long)in_flight;
        since_limit_check = 0;
        limit_checked = epoch;
        estimate = total_at_check;
    }
    if (estimate + (long long)extra > (long long)limit) return 0;
    since_limit_check += extra;
    return 1;
}

/* ---------------------------------------------------------------------
 * Accounting: the backend's own count, or ours
 * --------------------------------------------------------------------- */

/* On a backend that counts its live bytes itself (the pool: one per-class,
 * per-thread count it keeps on its fast path anyway) the front end adds no
 * counter: one counter, not two. Elsewhere account.h's per-thread slots.
 * Both readers are lock-free and async-signal-safe. */
static inline void charge(long long delta) {
#if ZM_LAYER_COUNTS
    (void)delta;
#else
    zm_account_add(delta);
#endif
}

static inline long long used_total(void) {
#if ZM_LAYER_COUNTS
    /* Guarded blocks (guard.c) are not the pool's: their bytes are added. */
    return (long long)zm_be_used_memory() + zm_guard_live_bytes();
#else
    return zm_account_total();
#endif
}

/* ---------------------------------------------------------------------
 * Block layout helpers (prefix or not)
 * --------------------------------------------------------------------- */

#if ZM_LAYER_HAS_SIZE
static inline size_t user_size(void *ptr) {
    return zm_lower_usable_size(ptr);
}
/* Bytes the accounting charges for a block. */
static inline size_t block_charge(void *ptr) {
    return user_size(ptr);
}
#else
/* Word i before the user pointer (i = 1: size word, i = 2: back distance).
 * Through uintptr_t so the compiler's object-size tracking does not flag
 * the deliberate access before the block. */
static inline size_t *prefix_word(void *ptr, int i) {
    return (size_t *)((uintptr_t)ptr - (uintptr_t)i * sizeof(size_t));
}
static inline size_t user_size(void *ptr) {
    return *prefix_word(ptr, 1) >> 1;
}
static inline int prefix_is_aligned(void *ptr) {
    return *prefix_word(ptr, 1) & 1;
}
/* Bytes in front of the user pointer in the backend block. */
static inline size_t prefix_front(void *ptr) {
    return prefix_is_aligned(ptr) ? *prefix_word(ptr, 2) : PREFIX_SIZE;
}
static inline void *prefix_base(void *ptr) {
    return (char *)ptr - prefix_front(ptr);
}
static inline void *prefix_install(void *raw, size_t size) {
    void *user = (char *)raw + PREFIX_SIZE;
    *prefix_word(user, 1) = size << 1;
    return user;
}
/* What the backend block holds: the size, the prefix and, for an aligned
 * block, the padding before the prefix. That is what is charged and what
 * zmalloc_size() answers (Redis charges size + prefix). */
static inline size_t block_charge(void *ptr) {
    return user_size(ptr) + prefix_front(ptr);
}
#endif

/* Bytes the accounting charges for a plain block of `usable` user bytes. */
static inline size_t charged(size_t usable) {
    return usable + PREFIX_SIZE;
}

/* ---------------------------------------------------------------------
 * One attempt at the lower layer, and the slow path around it
 * --------------------------------------------------------------------- */

typedef enum { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_ALIGNED, OP_MALLOCX, OP_RALLOCX } zm_op;

/* One try: returns the user pointer (accounted) or NULL. For OP_REALLOC,
 * ptr is the old block (non-NULL) and stays valid on failure. For
 * OP_ALIGNED, arg is the alignment (a power of two); for OP_MALLOCX and
 * OP_RALLOCX (jemalloc's *_with_flags) the flags. size < SIZE_MAX/2. */
static inline __attribute__((always_inline)) void *attempt(zm_op op, void *ptr, size_t size,
                                                           size_t arg, size_t *usable,
                                                           int check_limit) {
    int is_realloc = op == OP_REALLOC || op == OP_RALLOCX;
    size_t want = ZM_MIN_REQUEST(size);
    size_t old_charge = 0;
    if (check_limit) {
        if (is_realloc) old_charge = block_charge(ptr);
        size_t limit = atomic_load_explicit(&memory_limit, memory_order_relaxed);
        size_t need = charged(want);
        if (op == OP_ALIGNED && !ZM_LAYER_HAS_SIZE)
            need = want + (arg > PREFIX_SIZE ? arg : PREFIX_SIZE); /* see below */
        if (limit && need > old_charge && !limit_admits(limit, need - old_charge, 0)) {
            errno = ENOMEM;
            return NULL;
        }
    } else if (is_realloc && !ZM_LAYER_COUNTS) {
        old_charge = block_charge(ptr);
    }
    size_t got;
    void *p;
#if ZM_LAYER_HAS_SIZE
    switch (op) {
    case OP_MALLOC: p = zm_lower_malloc(want, &got); break;
    case OP_CALLOC: p = zm_lower_calloc(want, &got); break;
    case OP_REALLOC: p = zm_lower_realloc(ptr, want, &got); break;
#if ZMALLOC_BACKEND_JEMALLOC && !ZMALLOC_DEBUG_BUILD
    case OP_MALLOCX: p = zm_be_je_mallocx(want, (int)arg, &got); break;
    case OP_RALLOCX: p = zm_be_je_rallocx(ptr, want, (int)arg, &got); break;
#endif
    default: p = zm_lower_aligned_alloc(arg, want, &got); break;
    }
    if (zm_likely(p != NULL)) {
        /* The limit was checked against the requested size; a fresh block's
         * size-class rounding is checked too, so one thread stays exactly
         * within the limit. (A realloc cannot be undone: its rounding may
         * pass the limit, as zmalloc.h says.) */
        if (check_limit && !is_realloc && got > want) {
            size_t limit = atomic_load_explicit(&memory_limit, memory_order_relaxed);
            if (limit && !limit_admits(limit, got - want, want)) {
                zm_lower_free(p, got);
                errno = ENOMEM;
                return NULL;
            }
        }
        charge((long long)got - (long long)old_charge);
        *usable = got;
    }
#else
    switch (op) {
    case OP_MALLOC: p = zm_lower_malloc(want + PREFIX_SIZE, &got); break;
    case OP_CALLOC: p = zm_lower_calloc(want + PREFIX_SIZE, &got); break;
    case OP_REALLOC:
        if (!prefix_is_aligned(ptr)) {
            p = zm_lower_realloc(prefix_base(ptr), want + PREFIX_SIZE, &got);
        } else {
            /* Realloc cannot move an aligned block's offset: copy. */
            p = zm_lower_malloc(want + PREFIX_SIZE, &got);
            if (p) {
                size_t old = user_size(ptr);
                memcpy((char *)p + PREFIX_SIZE, ptr, old < want ? old : want);
                zm_lower_free(prefix_base(ptr), old_charge);
            }
        }
        break;
    default: {
        /* The backend block starts aligned; the user block starts `front`
         * bytes in, where the prefix still fits before it. That is all the
         * block holds, and all it is charged. */
        size_t front = arg > PREFIX_SIZE ? arg : PREFIX_SIZE;
        p = zm_lower_aligned_alloc(arg, want + front, &got);
        if (p) {
            char *user = (char *)p + front;
            *prefix_word(user, 1) = (want << 1) | 1;
            *prefix_word(user, 2) = front;
            charge((long long)(want + front));
            *usable = want;
            return user;
        }
        return NULL;
    }
    }
    if (zm_likely(p != NULL)) {
        p = prefix_install(p, want);
        charge((long long)charged(want) - (long long)old_charge);
        *usable = want;
    }
#endif
    return p;
}

/* A reclaim handler may free the block being reallocated (zmalloc.h says
 * what happens): while it runs for a reallocation, that block is pinned
 * here, and release() of it only marks it; the reallocation then stops and
 * the block is released after the handler returns. The pinned block is
 * entered in the free filter (sample.h) for that time, so its free takes
 * release_sampled(), which looks at the pin: the free fast path pays
 * nothing for pins. */
static __thread void *reclaim_pinned __attribute__((tls_model("initial-exec")));
static __thread int pinned_freed __attribute__((tls_model("initial-exec")));

static inline void release_block(void *ptr);

/* The slow path: the first attempt failed, or a limit is set. Retries with
 * the reclaim handler's help while it frees something. */
static __attribute__((noinline, cold)) void *attempt_with_reclaim(zm_op op, void *ptr,
                                                                  size_t size, size_t arg,
                                                                  size_t *usable) {
    int is_realloc = op == OP_REALLOC || op == OP_RALLOCX;
    for (int round = 0;; round++) {
        void *p = attempt(op, ptr, size, arg, usable, 1);
        if (p) return p;
        size_t (*handler)(size_t) = atomic_load(&reclaim_handler);
        if (!handler || in_reclaim || round >= ZMALLOC_RECLAIM_ROUNDS) break;
        in_reclaim = 1;
        if (is_realloc) {
            reclaim_pinned = ptr;
            pinned_freed = 0;
            zm_smp_filter_add(ptr);
        }
        size_t freed = handler(charged(ZM_MIN_REQUEST(size)));
        in_reclaim = 0;
        if (is_realloc) {
            zm_smp_filter_remove(ptr);
            reclaim_pinned = NULL;
            if (pinned_freed) {
                /* The program gave the block up: nothing left to resize. */
                release_block(ptr);
                errno = ECANCELED;
                return NULL;
            }
        }
        if (!freed) break;
    }
    errno = ENOMEM;
    return NULL;
}

/* Everything but the fast path: the size guard, the limit, the lower
 * layer's own slow path, reclaim and retry, and (oom != 0) the OOM handler.
 * ECANCELED (the reclaim handler freed the block being reallocated) is not
 * an out-of-memory condition. */
static inline __attribute__((always_inline)) void *allocate_generic(zm_op op, void *ptr,
                                                                    size_t size, size_t arg,
                                                                    size_t *usable, int oom) {
    size_t ignored;
    if (!usable) usable = &ignored;
    void *p = NULL;
    if (zm_likely(!ZM_TOO_BIG(size))) {
        if (zm_likely(atomic_load_explicit(&memory_limit, memory_order_relaxed) == 0)) {
            p = attempt(op, ptr, size, arg, usable, 0);
            if (zm_likely(p != NULL)) return p;
        }
        p = attempt_with_reclaim(op, ptr, size, arg, usable);
    } else {
        errno = ENOMEM;
    }
    if (!p) {
        *usable = 0;
        if (oom && errno != ECANCELED) call_oom_handler(size);
    }
    return p;
}

#if ZM_LAYER_HAS_FAST
static __attribute__((noinline)) void *allocate_slow(zm_op op, void *ptr, size_t size,
                                                     size_t arg, size_t *usable, int oom) {
    return allocate_generic(op, ptr, size, arg, usable, oom);
}
#endif

/* Sampled allocations (sample.h: the heap profiler, guarded sampling):
 * the countdown ran out, or a block being reallocated is flagged. */
static __attribute__((noinline, cold)) void *allocate_sampled(zm_op op, void *ptr, size_t size,
                                                              size_t arg, size_t *usable, int oom,
                                                              void *ret, void *frame);

/* The allocation funnel: every allocating entry point comes here.
 *
 * Fast path (pool backend, 1 B to 1 KiB): the sampling countdown, the
 * pool's table-indexed pop and its per-class count, which is also the
 * used-memory total: no call, no stack frame, the slow path is a tail
 * call. No limit test: while a limit is set every thread is held on the
 * slow path through the countdown (sample.h), which is otherwise armed at
 * most ZMALLOC_LIMIT_SLACK / 16 requested bytes ahead so that a new limit
 * is seen in time (zmalloc_set_memory_limit). Counted with callgrind
 * (bench/run.py `callgrind`, 2026-12-03) through the installed
 * libzmalloc.so linked with pkg-config, a loop of zmalloc(16..256) + zfree:
 * 62 instructions per pair with gcc 12, the loop (10) and the accounting
 * included: zmalloc 20 (countdown 3, heap 2, size test 2, table 3, pop 6,
 * counts 2, return 2) plus 1.2 for the countdown's poll every 16 KiB,
 * zfree 31 (NULL 3, zm_smp_any 3 while nothing was ever sampled, page 7,
 * owner 4, push 4, counts 3, "only page of its class" 3 that every pair
 * hits, as each free empties the page, return 1; the free filter adds 7
 * once anything was sampled). It was 79 before the limit test and the
 * reclaim pin's test left the fast paths, the full-list flag became a bit
 * of the owner word and the filter lost its hash. The same loop under
 * LD_PRELOAD: our preload library 66, jemalloc 79, tcmalloc 85, Debian's
 * mimalloc 127, glibc 140. Target 40: not reached; what stands between is
 * each a guarantee of this library (sampling and the limit's hold, the
 * free test of sampled, guarded and pinned blocks, the owner test that
 * makes cross-thread frees safe, exact accounting).
 * What the shared library costs: PIC is free here (no global but the
 * filter, %rip-relative); thread-locals are
 * initial-exec (two instructions, no __tls_get_addr call), which a
 * dlopen'ed libzmalloc.so can still use because its TLS block is small
 * (72 bytes; the preload library's 32), far inside glibc's
 * static TLS reserve for late-loaded libraries. */
static inline __attribute__((always_inline)) void *allocate(zm_op op, void *ptr, size_t size,
                                                            size_t arg, size_t *usable, int oom) {
    /* Sampling: one thread-local subtract and a never-taken branch when
     * off (sample.h); a realloc also asks the free filter about its block. */
    if (zm_smp_tick(size) || ((op == OP_REALLOC || op == OP_RALLOCX) && zm_smp_hit(ptr)))
        return allocate_sampled(op, ptr, size, arg, usable, oom, __builtin_return_address(0),
                                ZM_SMP_FRAME());
#if ZM_LAYER_HAS_FAST
    /* No limit test: while a limit is set the countdown is held at -1 and
     * every allocation is in allocate_sampled() already. */
    if (op == OP_MALLOC) {
        size_t got;
        void *p = zm_lower_malloc_fast(size, &got);
        if (zm_likely(p != NULL)) {
            charge((long long)got);
            if (usable) *usable = got;
            return p;
        }
    }
    return allocate_slow(op, ptr, size, arg, usable, oom);
#else
    return allocate_generic(op, ptr, size, arg, usable, oom);
#endif
}

/* Frees a non-NULL block; the size is looked up only where something needs
 * it (our own counter, the prefix). */
static inline void release_block(void *ptr) {
#if ZM_LAYER_HAS_SIZE
#if ZM_LAYER_COUNTS
    zm_lower_free(ptr, ZM_USABLE_UNKNOWN);
#else
    size_t size = user_size(ptr);
    charge(-(long long)size);
    zm_lower_free(ptr, size);
#endif
#else
    size_t bytes = block_charge(ptr);
    charge(-(long long)bytes);
    zm_lower_free(prefix_base(ptr), bytes);
#endif
}

static inline __attribute__((always_inline)) void release_unsampled(void *ptr, size_t *usable) {
    if (usable) *usable = user_size(ptr);
    release_block(ptr);
}

/* Free of a block the free filter flagged: this thread's pinned block is
 * only marked freed; a guarded block goes back to the guarded area, a
 * profiled one leaves the profile first (a guarded block may be profiled
 * too). */
static __attribute__((noinline, cold)) void release_sampled(void *ptr, size_t *usable, void *ret,
                                                            void *frame) {
    if (ptr == reclaim_pinned) {
        if (usable) *usable = user_size(ptr);
        pinned_freed = 1;
        return;
    }
    zm_prof_forget(ptr);
    if (zm_guard_owns(ptr)) {
        size_t size = zm_guard_size(ptr);
        if (usable) *usable = size;
        zm_smp_stack st;
        zm_smp_capture(&st, ret, frame);
        charge(-(long long)charged(size));
        zm_guard_free(ptr, &st);
        return;
    }
    release_unsampled(ptr, usable);
}

/* The free funnel: every freeing entry point comes here. */
static inline __attribute__((always_inline)) void release(void *ptr, size_t *usable) {
    if (!ptr) {
        if (usable) *usable = 0;
        return;
    }
    /* A sampled or guarded block? One byte of the free filter (sample.h). */
    if (zm_smp_hit(ptr)) {
        release_sampled(ptr, usable, __builtin_return_address(0), ZM_SMP_FRAME());
        return;
    }
    release_unsampled(ptr, usable);
}

static void *allocate_sampled(zm_op op, void *ptr, size_t size, size_t arg, size_t *usable,
                              int oom, void *ret, void *frame) {
    size_t ignored;
    if (!usable) usable = &ignored;
    int is_realloc = op == OP_REALLOC || op == OP_RALLOCX;
    zm_smp_decision d = {0, 0, 0};
    if (zm_smp_countdown < 0) {
        size_t limit = atomic_load_explicit(&memory_limit, memory_order_relaxed);
        /* Two racing zmalloc_set_memory_limit() calls may leave the hold
         * out of step with the limit: mended here, on the slow path. */
        if ((limit != 0) != zm_smp_held()) zm_smp_hold(limit != 0);
        int guard_ok = (op == OP_MALLOC || op == OP_CALLOC || op == OP_REALLOC) && limit == 0;
        zm_smp_decide(size, guard_ok, &d);
    }
    zm_smp_stack st = {.depth = 0};
    if (d.guard || d.profile) zm_smp_capture(&st, ret, frame);
    int old_sampled = is_realloc && zm_smp_hit(ptr);
    int old_guarded = old_sampled && zm_guard_owns(ptr);
    size_t want = ZM_TOO_BIG(size) ? size : ZM_MIN_REQUEST(size);
    void *p = NULL;
    if (d.guard && (p = zm_guard_alloc(want, &st)) != NULL) {
        charge((long long)charged(want));
        *usable = want;
    }
    if (is_realloc && (p || old_guarded)) {
        /* A move into or out of the guarded area: copy, free the old block. */
        size_t old = old_guarded ? zm_guard_size(ptr) : user_size(ptr);
        if (!p) p = allocate_generic(OP_MALLOC, NULL, size, 0, usable, oom);
        if (!p) return NULL;
        memcpy(p, ptr, old < *usable ? old : *usable);
        if (old_sampled) release_sampled(ptr, NULL, ret, frame);
        else release_unsampled(ptr, NULL);
    } else if (!p) {
        /* A profiled block leaves the profile before the lower layer may
         * hand its address to another thread. */
        if (old_sampled) zm_prof_forget(ptr);
        p = allocate_generic(op, ptr, size, arg, usable, oom);
    }
    if (p && d.profile) zm_prof_record(p, want, d.weight, &st);
    return p;
}

/* realloc semantics shared by every variant: NULL ptr allocates, size 0
 * frees. On failure ptr is untouched. */
static inline void *reallocate(void *ptr, size_t size, size_t *usable, int oom) {
    if (!ptr) return allocate(OP_MALLOC, NULL, size, 0, usable, oom);
    if (size == 0) {
        release(ptr, NULL);
        if (usable) *usable = 0;
        return NULL;
    }
    return allocate(OP_REALLOC, ptr, size, 0, usable, oom);
}

/* ---------------------------------------------------------------------
 * Redis API: allocation
 * --------------------------------------------------------------------- */

void *ztrymalloc_usable(size_t size, size_t *usable) {
    ZM_NOTE_CALLER();
    return allocate(OP_MALLOC, NULL, size, 0, usable, 0);
}

void *zmalloc_usable(size_t size, size_t *usable) {
    ZM_NOTE_CALLER();
    return allocate(OP_MALLOC, NULL, size, 0, usable, 1);
}

void *ztrycalloc_usable(size_t size, size_t *usable) {
    ZM_NOTE_CALLER();
    return allocate(OP_CALLOC, NULL, size, 0, usable, 0);
}

void *zcalloc_usable(size_t size, size_t *usable) {
    ZM_NOTE_CALLER();
    return allocate(OP_CALLOC, NULL, size, 0, usable, 1);
}

void *ztryrealloc_usable(void *ptr, size_t size, size_t *usable) {
    ZM_NOTE_CALLER();
    return reallocate(ptr, size, usable, 0);
}

void *zrealloc_usable(void *ptr, size_t size, size_t *usable) {
    ZM_NOTE_CALLER();
    return reallocate(ptr, size, usable, 1);
}

void *zmalloc(size_t size) {
    ZM_NOTE_CALLER();
    return allocate(OP_MALLOC, NULL, size, 0, NULL, 1);
}

void *ztrymalloc(size_t size) {
    ZM_NOTE_CALLER();
    return allocate(OP_MALLOC, NULL, size, 0, NULL, 0);
}

void *zcalloc(size_t size) {
    ZM_NOTE_CALLER();
    return allocate(OP_CALLOC, NULL, size, 0, NULL, 1);
}

void *ztrycalloc(size_t size) {
    ZM_NOTE_CALLER();
    return allocate(OP_CALLOC, NULL, size, 0, NULL, 0);
}

void *zcalloc_num(size_t num, size_t size) {
    ZM_NOTE_CALLER();
    /* As Redis: size 0 (no division possible) or a product that wraps is
     * reported as an attempt to allocate SIZE_MAX. */
    if (size == 0 || num > SIZE_MAX / size) {
        call_oom_handler(SIZE_MAX);
        return NULL;
    }
    return allocate(OP_CALLOC, NULL, num * size, 0, NULL, 1);
}

void *zrealloc(void *ptr, size_t size) {
    ZM_NOTE_CALLER();
    return reallocate(ptr, size, NULL, 1);
}

void *ztryrealloc(void *ptr, size_t size) {
    ZM_NOTE_CALLER();
    return reallocate(ptr, size, NULL, 0);
}

void zfree(void *ptr) {
    ZM_NOTE_CALLER();
    release(ptr, NULL);
}

void zfree_usable(void *ptr, size_t *usable) {
    ZM_NOTE_CALLER();
    release(ptr, usable);
}

char *zstrdup(const char *s) {
    ZM_NOTE_CALLER();
    size_t len = strlen(s) + 1;
    char *p = allocate(OP_MALLOC, NULL, len, 0, NULL, 1);
    if (p) memcpy(p, s, len);
    return p;
}

static inline int valid_alignment(size_t alignment) {
    return alignment && (alignment & (alignment - 1)) == 0;
}

void *ztrymalloc_aligned(size_t alignment, size_t size) {
    ZM_NOTE_CALLER();
    if (!valid_alignment(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    return allocate(OP_ALIGNED, NULL, size, alignment, NULL, 0);
}

void *zmalloc_aligned(size_t alignment, size_t size) {
    ZM_NOTE_CALLER();
    if (!valid_alignment(alignment)) {
        call_oom_handler(size);
        return NULL;
    }
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    return allocate(OP_ALIGNED, NULL, size, alignment, NULL, 1);
}

size_t zmalloc_size(void *ptr) {
    if (zm_smp_hit(ptr) && zm_guard_owns(ptr)) return charged(zm_guard_size(ptr));
    return block_charge(ptr);
}

#if !ZM_LAYER_HAS_SIZE
size_t zmalloc_usable_size(void *ptr) {
    if (zm_smp_hit(ptr) && zm_guard_owns(ptr)) return zm_guard_size(ptr);
    return user_size(ptr);
}
#else
void *extend_to_usable(void *ptr, size_t size) {
    (void)size;
    return ptr;
}
#endif

/* Lock-free and async-signal-safe (Redis calls it from its crash report):
 * see used_total(). */
size_t zmalloc_used_memory(void) {
    long long total = used_total();
    return total > 0 ? (size_t)total : 0;
}

/* ---------------------------------------------------------------------
 * jemalloc-only entries
 * --------------------------------------------------------------------- */

#if ZMALLOC_BACKEND_JEMALLOC && ZMALLOC_DEBUG_BUILD
/* Verification build: the flags (tcache, arena) are ignored so that these
 * blocks too go through the verification layer and mix with zfree. */
void *zmalloc_with_flags(size_t size, int flags) {
    (void)flags;
    ZM_NOTE_CALLER();
    return allocate(OP_MALLOC, NULL, size, 0, NULL, 1);
}

void *zrealloc_with_flags(void *ptr, size_t size, int flags) {
    (void)flags;
    ZM_NOTE_CALLER();
    return reallocate(ptr, size, NULL, 1);
}

void zfree_with_flags(void *ptr, int flags) {
    (void)flags;
    ZM_NOTE_CALLER();
    release(ptr, NULL);
}
#elif ZMALLOC_BACKEND_JEMALLOC
/* Through the same funnels as every other entry point: the memory limit,
 * the reclaim handler and the accounting apply to them too. */
void *zmalloc_with_flags(size_t size, int flags) {
    return allocate(OP_MALLOCX, NULL, size, (size_t)(unsigned)flags, NULL, 1);
}

void *zrealloc_with_flags(void *ptr, size_t size, int flags) {
    if (!ptr) return zmalloc_with_flags(size, flags);
    if (size == 0) {
        zfree_with_flags(ptr, flags);
        return NULL;
    }
    return allocate(OP_RALLOCX, ptr, size, (size_t)(unsigned)flags, NULL, 1);
}

void zfree_with_flags(void *ptr, int flags) {
    if (!ptr) return;
    if (zm_smp_hit(ptr)) { /* sampled or pinned (see reclaim_pinned): the ordinary free */
        release(ptr, NULL);
        return;
    }
    charge(-(long long)zm_be_usable_size(ptr));
    zm_be_je_dallocx(ptr, flags);
}
#endif

#if ZMALLOC_BACKEND_JEMALLOC
/* jemalloc's MALLOCX_TCACHE_NONE, MALLOCX_TCACHE(-1) = ((-1) + 2) << 8,
 * spelt here so that the front end need not include jemalloc.h. */
#define ZM_JE_TCACHE_NONE (1 << 8)

void *zmalloc_no_tcache(size_t size) {
    return zmalloc_with_flags(size, ZM_JE_TCACHE_NONE);
}

void zfree_no_tcache(void *ptr) {
    zfree_with_flags(ptr, ZM_JE_TCACHE_NONE);
}
#endif

/* ---------------------------------------------------------------------
 * Allocator and process information
 * --------------------------------------------------------------------- */

int zmalloc_get_allocator_info_full(int refresh_stats, size_t *allocated, size_t *active,
                                    size_t *resident, size_t *retained, size_t *muzzy,
                                    size_t *frag_smallbins_bytes) {
    zm_be_stats st = {0};
    /* A refreshing call is the servers' cron, between defrag callbacks:
     * the blocks zfree_no_tcache kept intact are freed first (defrag.c). */
    if (refresh_stats) zm_defrag_release_lingering();
    zm_be_get_stats(refresh_stats, &st);
    if (allocated) *allocated = st.allocated;
    if (active) *active = st.active;
    if (resident) *resident = st.resident;
    if (retained) *retained = st.retained;
    if (muzzy) *muzzy = st.muzzy;
    if (frag_smallbins_bytes) *frag_smallbins_bytes = st.frag_smallbins;
    return 1;
}

/* Both Redis forms are exported; the header picks one by ZMALLOC_SERVER_API
 * (src/compat.c has the Valkey forms). */
#undef zmalloc_get_allocator_info
int zmalloc_get_allocator_info(int refresh_stats, size_t *allocated, size_t *active,
                               size_t *resident, size_t *retained, size_t *muzzy,
                               size_t *frag_smallbins_bytes) {
    return zmalloc_get_allocator_info_full(refresh_stats, allocated, active, resident, retained,
                                           muzzy, frag_smallbins_bytes);
}

int zmalloc_get_allocator_info_v70(size_t *allocated, size_t *active, size_t *resident) {
    return zmalloc_get_allocator_info_full(1, allocated, active, resident, NULL, NULL, NULL);
}

int zmalloc_get_allocator_info_by_arena(unsigned int arena, int refresh_stats, size_t *allocated,
                                        size_t *active, size_t *resident,
                                        size_t *frag_smallbins_bytes) {
#if ZMALLOC_BACKEND_JEMALLOC
    return zm_be_je_arena_stats(arena, refresh_stats, allocated, active, resident,
                                frag_smallbins_bytes);
#else
    if (arena != 0) {
        *allocated = *active = *resident = *frag_smallbins_bytes = 0;
        return 0;
    }
    return zmalloc_get_allocator_info_full(refresh_stats, allocated, active, resident, NULL, NULL,
                                           frag_smallbins_bytes);
#endif
}

int zmalloc_purge(void) {
    zm_defrag_release_lingering();
    return zm_be_purge();
}

int jemalloc_purge(void) {
    return zm_be_purge();
}

void set_jemalloc_bg_thread(int enable) {
#if ZMALLOC_BACKEND_JEMALLOC
    zm_be_je_background_thread(enable);
#else
    (void)enable;
#endif
}

const char *zmalloc_backend(void) {
    return zm_be_version();
}

void zmalloc_print_stats(FILE *out, int json) {
    zm_be_print_stats(out, json);
}

void zmadvise_dontneed(void *ptr) {
    if (!ptr) return;
    size_t page = zm_os_page_size();
    size_t size = user_size(ptr);
    uintptr_t start = ((uintptr_t)ptr + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t end = ((uintptr_t)ptr + size) & ~(uintptr_t)(page - 1);
    if (end > start) zm_os_decommit((void *)start, end - start);
}

void zlibc_free(void *ptr) {
    free(ptr);
}

size_t zmalloc_get_rss(void) {
    return zm_os_rss();
}

int get_proc_stat_ll(int i, long long *res) {
    return zm_os_proc_stat_field(i, res) == 0; /* Redis's convention: 1 on success */
}

size_t zmalloc_get_smap_bytes_by_field(char *field, long pid) {
    return zm_os_smaps_field(field, pid);
}

size_t zmalloc_get_private_dirty(long pid) {
    return zm_os_smaps_field("Private_Dirty:", pid);
}

size_t zmalloc_get_memory_size(void) {
    return zm_os_physical_memory();
}

size_t zmalloc_get_cgroup_memory_limit(void) {
    return zm_os_cgroup_memory_limit();
}

#if !ZMALLOC_DEBUG_BUILD
int zmalloc_verify(void) {
    return 0;
}

size_t zmalloc_report_leaks(FILE *out) {
    (void)out;
    return 0;
}
#endif

/* Redis's self-test, kept in the same shape: allocate, check used memory,
 * free, check it is back to the start. Returns 0 on success. */
int zmalloc_test(int argc, char **argv, int flags) {
    (void)argc;
    (void)argv;
    (void)flags;
    size_t before = zmalloc_used_memory();
    void *p = zmalloc(123);
    int ok = zmalloc_used_memory() >= before + 123;
    p = zrealloc(p, 456);
    ok = ok && zmalloc_used_memory() >= before + 456;
    zfree(p);
    ok = ok && zmalloc_used_memory() == before;
    printf("zmalloc_test: %s (used before %zu, after %zu)\n", ok ? "ok" : "FAILED", before,
           zmalloc_used_memory());
    return ok ? 0 : 1;
}
