/* account.c: the thread registry behind the per-thread counters (account.h).
 *
 * A thread registers on its first count: under the registry mutex it takes
 * a slot from the free list, or carves a new one from a chunk mapped with
 * zm_os_map (never from malloc: the backend may be malloc) and pushes it on
 * the list of all slots with a release store. Slots are never unmapped and
 * never leave that list, so zm_account_total() walks it with no lock.
 *
 * At thread exit (lifecycle.c calls zm_account_thread_exit) the slot's
 * counts are folded into the exited totals, zeroed, and the slot goes on
 * the free list for the next new thread. A thread whose exit hook cannot
 * run (lifecycle attach failed: pthread_key_create failed) keeps its slot
 * for good: the slot is never reused, so it cannot be linked twice, and its
 * counts stay in the sum, where they belong. A count made after the exit
 * hook (another key's destructor allocating) goes to the exited totals.
 *
 * fork: the child has one thread; every other thread's slot is folded and
 * freed there, its counts kept (their blocks are still in the child's copy
 * of the heap).
 */
#include "account.h"

#include <pthread.h>

#include "lifecycle.h"
#include "platform.h"

__thread zm_account *zm_thread_slot __attribute__((tls_model("initial-exec")));
static __thread int thread_exited __attribute__((tls_model("initial-exec")));

#define SLOT_CHUNK ((size_t)64 << 10)

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static zm_account *_Atomic all_slots; /* every slot ever made, newest first */
static zm_account *free_slots;        /* under registry_lock */
static char *chunk_cursor, *chunk_end;
static _Atomic(long long) exited_used;
static _Atomic(uint64_t) exited_extra[ZM_ACCOUNT_EXTRA];

/* Under registry_lock. */
static zm_account *slot_take(void) {
    zm_account *a = free_slots;
    if (a) {
        free_slots = a->next_free;
        return a;
    }
    if (!chunk_cursor || (size_t)(chunk_end - chunk_cursor) < sizeof *a) {
        char *m = zm_os_map(SLOT_CHUNK);
        if (!m) return NULL;
        chunk_cursor = m;
        chunk_end = m + SLOT_CHUNK;
    }
    a = (zm_account *)chunk_cursor;
    chunk_cursor += sizeof *a;
    a->next_all = atomic_load_explicit(&all_slots, memory_order_relaxed);
    atomic_store_explicit(&all_slots, a, memory_order_release);
    return a;
}

/* Folds a slot's counts into the exited totals and frees it. Under
 * registry_lock (or in the fork child). */
static void slot_retire(zm_account *a) {
    atomic_fetch_add_explicit(&exited_used, atomic_load_explicit(&a->used, memory_order_relaxed),
                              memory_order_relaxed);
    atomic_store_explicit(&a->used, 0, memory_order_relaxed);
    for (unsigned i = 0; i < ZM_ACCOUNT_EXTRA; i++) {
        atomic_fetch_add_explicit(&exited_extra[i],
                                  atomic_load_explicit(&a->extra[i], memory_order_relaxed),
                                  memory_order_relaxed);
        atomic_store_explicit(&a->extra[i], 0, memory_order_relaxed);
    }
    atomic_store_explicit(&a->in_use, 0, memory_order_relaxed);
    a->next_free = free_slots;
    free_slots = a;
}

__attribute__((noinline, cold)) zm_account *zm_account_self(void) {
    zm_account *a = zm_thread_slot;
    if (a || thread_exited) return a;
    pthread_mutex_lock(&registry_lock);
    a = slot_take();
    if (a) atomic_store_explicit(&a->in_use, 1, memory_order_relaxed);
    pthread_mutex_unlock(&registry_lock);
    if (!a) return NULL;
    zm_thread_slot = a;
    /* Without an exit hook the slot is simply kept (see the note above). */
    (void)zm_lifecycle_thread_attach();
    return a;
}

__attribute__((noinline, cold)) void zm_account_slow(long long delta) {
    zm_account *a = zm_account_self();
    if (a)
        zm_owner_add(&a->used, delta);
    else /* exited, or no memory for a slot */
        atomic_fetch_add_explicit(&exited_used, delta, memory_order_relaxed);
}

void zm_account_add_exited_extra(unsigned i, uint64_t d) {
    atomic_fetch_add_explicit(&exited_extra[i], d, memory_order_relaxed);
}

long long zm_account_total(void) {
    long long sum = atomic_load_explicit(&exited_used, memory_order_relaxed);
    for (zm_account *a = atomic_load_explicit(&all_slots, memory_order_acquire); a;
         a = a->next_all)
        sum += atomic_load_explicit(&a->used, memory_order_relaxed);
    return sum;
}

void zm_account_sum_extra(uint64_t *out, unsigned n) {
    for (unsigned i = 0; i < n; i++)
        out[i] = atomic_load_explicit(&exited_extra[i], memory_order_relaxed);
    for (zm_account *a = atomic_load_explicit(&all_slots, memory_order_acquire); a;
         a = a->next_all)
        for (unsigned i = 0; i < n; i++)
            out[i] += atomic_load_explicit(&a->extra[i], memory_order_relaxed);
}

void zm_account_each(void (*fn)(zm_account *, void *), void *arg) {
    for (zm_account *a = atomic_load_explicit(&all_slots, memory_order_acquire); a;
         a = a->next_all)
        if (atomic_load_explicit(&a->in_use, memory_order_relaxed)) fn(a, arg);
}

void zm_account_thread_exit(void) {
    zm_account *a = zm_thread_slot;
    thread_exited = 1;
    if (!a) return;
    zm_thread_slot = NULL;
    pthread_mutex_lock(&registry_lock);
    slot_retire(a);
    pthread_mutex_unlock(&registry_lock);
}

void zm_account_fork_prepare(void) {
    pthread_mutex_lock(&registry_lock);
}

void zm_account_fork_parent(void) {
    pthread_mutex_unlock(&registry_lock);
}

void zm_account_fork_child(void) {
    pthread_mutex_init(&registry_lock, NULL);
    zm_account *self = zm_thread_slot;
    for (zm_account *a = atomic_load_explicit(&all_slots, memory_order_relaxed); a;
         a = a->next_all)
        if (a != self && atomic_load_explicit(&a->in_use, memory_order_relaxed)) slot_retire(a);
}
