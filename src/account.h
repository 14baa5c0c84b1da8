/* account.h: per-thread used-memory counters and the one thread registry.
 *
 * Redis keeps 16 atomic slots indexed by thread id, so every allocation is
 * an atomic read-modify-write on a cache line other threads may share. Here
 * each thread owns one slot, written only by that thread (a plain add, no
 * lock prefix), reached through one initial-exec TLS pointer. The reader,
 * zm_account_total(), sums every slot plus the total that exited threads
 * folded in. A block freed by another thread is subtracted from the freeing
 * thread's slot, so a single slot may go negative; only the sum means
 * anything.
 *
 * Slots live in memory mapped for them and never unmapped (account.c), and
 * the list of all slots only ever grows at its head, so the reader walks it
 * with plain atomic loads, takes no lock and is async-signal-safe (Redis
 * calls zmalloc_used_memory() from its crash report). It is exact whenever
 * no thread is between a backend call and its counter update, or exiting.
 *
 * The same registry carries the preload library's per-thread event counts
 * (ZM_ACCOUNT_EXTRA words per slot, summed and folded like `used`): one
 * registry for the process, not one per layer. The front end of the pool
 * backend does not count here at all: the pool's own per-thread counts are
 * the total (backend.h, ZM_BACKEND_COUNTS).
 */
#ifndef ZMALLOC_ACCOUNT_H
#define ZMALLOC_ACCOUNT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define zm_likely(x) __builtin_expect(!!(x), 1)
#define zm_unlikely(x) __builtin_expect(!!(x), 0)

/* Extra per-thread counters a front end keeps in its slot (the preload
 * library's statistics set it; see preload.h). */
#ifndef ZM_ACCOUNT_EXTRA
#define ZM_ACCOUNT_EXTRA 1
#endif

typedef struct zm_account {
    _Atomic(long long) used;                /* written by the owner only   */
    _Atomic(uint64_t) extra[ZM_ACCOUNT_EXTRA]; /* owner only, like used   */
    struct zm_account *next_all;            /* set before publication     */
    struct zm_account *next_free;           /* under the registry lock    */
    _Atomic int in_use;
} __attribute__((aligned(64))) zm_account;

/* The calling thread's slot; NULL until its first count, and again once it
 * has exited (late counts then go to the exited total). */
extern __thread zm_account *zm_thread_slot __attribute__((tls_model("initial-exec")));

/* Out of line: registers the thread on its first use, or, for a thread that
 * is exiting (its slot already folded), adds to the exited total. */
void zm_account_slow(long long delta);

/* Owner-only counter update: one add to memory, no lock prefix. Readers use
 * relaxed atomic loads; a plain aligned 8-byte store is atomic on x86-64.
 * Elsewhere (and under TSan, which cannot see the asm) an atomic load and
 * store. */
static inline void zm_owner_add(_Atomic(long long) *c, long long d) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
    __asm__("addq %1, %0" : "+m"(*(long long *)c) : "er"(d));
#else
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
#endif
}

static inline void zm_account_add(long long delta) {
    zm_account *a = zm_thread_slot;
    if (zm_unlikely(a == NULL)) {
        zm_account_slow(delta);
        return;
    }
    zm_owner_add(&a->used, delta);
}

/* The calling thread's slot, registering it if needed; NULL for a thread
 * that has exited (its counts go to the exited totals then). */
zm_account *zm_account_self(void);

/* Sum of every counter. Lock-free and async-signal-safe. */
long long zm_account_total(void);
/* Sum of extra[i] over every slot and the exited totals, for i < n. */
void zm_account_sum_extra(uint64_t *out, unsigned n);
/* Adds to the exited totals directly (a thread past its exit hook). */
void zm_account_add_exited_extra(unsigned i, uint64_t d);
/* Calls fn for every slot in use (lock-free; only the fork child, which has
 * one thread, may write other slots from fn). */
void zm_account_each(void (*fn)(zm_account *, void *), void *arg);

/* Lifecycle hooks (lifecycle.h). */
void zm_account_thread_exit(void);
void zm_account_fork_prepare(void);
void zm_account_fork_parent(void);
void zm_account_fork_child(void);

#endif
