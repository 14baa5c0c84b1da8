/* account.h: per-thread used-memory counters, the fast half.
 *
 * Redis keeps 16 atomic slots indexed by thread id, so every allocation is
 * an atomic read-modify-write on a cache line other threads may share. Here
 * each thread owns one counter in its own thread-local storage, written only
 * by that thread with relaxed load + store (a plain add, no lock prefix).
 * zmalloc_used_memory() sums the registered threads' counters plus a global
 * one into which an exiting thread folds its own (account.c). A block freed
 * by another thread is subtracted from the freeing thread's counter, so a
 * single counter may go negative; only the sum means anything.
 */
#ifndef ZMALLOC_ACCOUNT_H
#define ZMALLOC_ACCOUNT_H

#include <stdatomic.h>
#include <stddef.h>

#define zm_likely(x) __builtin_expect(!!(x), 1)
#define zm_unlikely(x) __builtin_expect(!!(x), 0)

enum { ZM_ACCT_UNREGISTERED = 0, ZM_ACCT_LIVE = 1, ZM_ACCT_EXITED = 2 };

typedef struct zm_account {
    _Atomic(long long) used; /* written by the owner only */
    int state;               /* ZM_ACCT_*; owner-only */
    size_t since_limit_check; /* bytes allocated since the last exact limit check */
    struct zm_account *prev, *next; /* registry links, under the registry lock */
} __attribute__((aligned(64))) zm_account;

extern __thread zm_account zm_thread_account __attribute__((tls_model("initial-exec")));

/* Out of line: registers the thread on its first use, or, for a thread that
 * is exiting (its counter already folded), adds to the global counter. */
void zm_account_slow(long long delta);

static inline void zm_account_add(long long delta) {
    zm_account *a = &zm_thread_account;
    if (zm_unlikely(a->state != ZM_ACCT_LIVE)) {
        zm_account_slow(delta);
        return;
    }
    long long v = atomic_load_explicit(&a->used, memory_order_relaxed);
    atomic_store_explicit(&a->used, v + delta, memory_order_relaxed);
}

/* Sum of every counter: exact when no thread is between a backend call and
 * its counter update. */
long long zm_account_total(void);

#endif
