/* account.c: the registry behind the per-thread counters (see account.h).
 *
 * A thread registers on its first allocation or free: it links its counter
 * into a list under a mutex and sets a pthread key whose destructor, at
 * thread exit, folds the counter into `exited_total` and unlinks it. After
 * that the thread is marked EXITED and any late allocation (other key
 * destructors run after ours) goes straight to the global atomic counter.
 * The reader takes the same mutex and sums. fork() is made safe with
 * pthread_atfork: the child keeps the other threads' counters, which is right,
 * since their blocks are still in the child's copy of the heap.
 */
#include "account.h"

#include <pthread.h>

__thread zm_account zm_thread_account __attribute__((tls_model("initial-exec")));

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static zm_account registry_head = {.prev = &registry_head, .next = &registry_head};
static _Atomic(long long) exited_total;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void account_thread_exit(void *arg) {
    zm_account *a = arg;
    pthread_mutex_lock(&registry_lock);
    atomic_fetch_add_explicit(&exited_total, atomic_load_explicit(&a->used, memory_order_relaxed),
                              memory_order_relaxed);
    atomic_store_explicit(&a->used, 0, memory_order_relaxed);
    a->prev->next = a->next;
    a->next->prev = a->prev;
    a->state = ZM_ACCT_EXITED;
    pthread_mutex_unlock(&registry_lock);
}

static void atfork_prepare(void) { pthread_mutex_lock(&registry_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&registry_lock); }
static void atfork_child(void) { pthread_mutex_init(&registry_lock, NULL); }

static void create_exit_key(void) {
    pthread_key_create(&exit_key, account_thread_exit);
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

__attribute__((noinline, cold)) void zm_account_slow(long long delta) {
    zm_account *a = &zm_thread_account;
    if (a->state == ZM_ACCT_EXITED) {
        atomic_fetch_add_explicit(&exited_total, delta, memory_order_relaxed);
        return;
    }
    pthread_once(&exit_key_once, create_exit_key);
    pthread_mutex_lock(&registry_lock);
    a->next = registry_head.next;
    a->prev = &registry_head;
    registry_head.next->prev = a;
    registry_head.next = a;
    atomic_store_explicit(&a->used, delta, memory_order_relaxed);
    a->state = ZM_ACCT_LIVE;
    pthread_mutex_unlock(&registry_lock);
    /* Our key is created first thing, so glibc stores it in the static
     * first-level array: pthread_setspecific does not allocate. */
    pthread_setspecific(exit_key, a);
}

long long zm_account_total(void) {
    pthread_mutex_lock(&registry_lock);
    long long sum = atomic_load_explicit(&exited_total, memory_order_relaxed);
    for (zm_account *a = registry_head.next; a != &registry_head; a = a->next)
        sum += atomic_load_explicit(&a->used, memory_order_relaxed);
    pthread_mutex_unlock(&registry_lock);
    return sum;
}
