/* lifecycle.c: thread exit and fork for every layer (see lifecycle.h).
 *
 * Set-up is lazy: the first thread that needs an exit hook creates the key
 * and registers the fork handlers. pthread_atfork may itself allocate
 * (glibc grows its handler list with malloc, which in the preload library
 * is ours), so set-up must survive being re-entered by the thread running
 * it: that thread sees INIT_RUNNING and its own `initialising` flag and
 * returns at once; other threads wait for the outcome. A failed
 * pthread_key_create is final (INIT_FAILED): no thread gets exit hooks,
 * and the layers keep every exited thread's state instead of reusing it.
 * The fork handlers are registered even then: they do not depend on the
 * key.
 *
 * The key's value for an attached thread is the address of its `attached`
 * flag (any non-NULL value makes glibc call the destructor). The
 * destructor clears the flag first, so a later destructor of another key
 * that allocates again re-attaches the thread and glibc calls us once
 * more (up to PTHREAD_DESTRUCTOR_ITERATIONS rounds).
 */
#include "lifecycle.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "account.h"
#include "backend.h"
#if ZMALLOC_DEBUG_BUILD
#include "debug.h"
#endif
#if ZM_PRELOAD_BUILD
#include "preload.h"
#endif

enum { INIT_NONE = 0, INIT_RUNNING = 1, INIT_DONE = 2, INIT_FAILED = 3 };

static _Atomic int init_state;
static pthread_key_t exit_key;
static __thread int initialising __attribute__((tls_model("initial-exec")));
static __thread int attached __attribute__((tls_model("initial-exec")));

/* ---- the hooks, in layer order ------------------------------------------ */

static void on_thread_exit(void *value) {
    (void)value;
    attached = 0;
#if ZM_PRELOAD_BUILD
    zm_preload_stats_thread_exit();
#endif
    zm_account_thread_exit();
#if ZMALLOC_DEBUG_BUILD
    zm_dbg_thread_exit();
#endif
#if ZM_BACKEND_HAS_LIFECYCLE
    zm_be_thread_exit();
#endif
}

static void on_fork_prepare(void) {
    zm_account_fork_prepare();
#if ZMALLOC_DEBUG_BUILD
    zm_dbg_fork_prepare();
#endif
#if ZM_BACKEND_HAS_LIFECYCLE
    zm_be_fork_prepare();
#endif
}

static void on_fork_parent(void) {
#if ZM_BACKEND_HAS_LIFECYCLE
    zm_be_fork_parent();
#endif
#if ZMALLOC_DEBUG_BUILD
    zm_dbg_fork_parent();
#endif
    zm_account_fork_parent();
}

static void on_fork_child(void) {
#if ZM_BACKEND_HAS_LIFECYCLE
    zm_be_fork_child();
#endif
#if ZMALLOC_DEBUG_BUILD
    zm_dbg_fork_child();
#endif
#if ZM_PRELOAD_BUILD
    /* Before the registry folds the vanished threads: the statistics read
     * their counters first. */
    zm_preload_stats_fork_child();
#endif
    zm_account_fork_child();
}

/* ---- set-up ----------------------------------------------------------------- */

static int lifecycle_init(void) {
    int state = atomic_load_explicit(&init_state, memory_order_acquire);
    if (state == INIT_DONE) return 1;
    if (state == INIT_FAILED) return 0;
    int expected = INIT_NONE;
    if (atomic_compare_exchange_strong(&init_state, &expected, INIT_RUNNING)) {
        initialising = 1;
        int ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
        pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
        initialising = 0;
        atomic_store_explicit(&init_state, ok ? INIT_DONE : INIT_FAILED, memory_order_release);
        return ok;
    }
    if (initialising) return 0; /* re-entered from pthread_atfork's malloc */
    while ((state = atomic_load_explicit(&init_state, memory_order_acquire)) == INIT_RUNNING)
        sched_yield();
    return state == INIT_DONE;
}

int zm_lifecycle_thread_attach(void) {
    if (attached) return 0;
    if (!lifecycle_init()) return -1;
    /* The key is among the first a process creates, so glibc keeps its
     * value in the thread's static first-level array: no allocation. */
    if (pthread_setspecific(exit_key, &attached) != 0) return -1;
    attached = 1;
    return 0;
}

int zm_lifecycle_ready(void) {
    return atomic_load_explicit(&init_state, memory_order_acquire) == INIT_DONE;
}
