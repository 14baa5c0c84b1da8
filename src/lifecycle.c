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
 * A fork can land in the middle of set-up (another thread is inside
 * pthread_key_create when one forks): the child then inherits "running"
 * from a thread it does not have, and would wait for it for ever (seen:
 * test_debug_heavy's child spinning here, 1 run in 20). So the state word
 * carries the pid of the process whose thread runs set-up, and a thread
 * that finds set-up running for another process starts it again. The fork
 * handlers are registered at most once per process image: any of them
 * running marks them registered (the prepare handler runs before memory is
 * copied, so a child forked after pthread_atfork returned knows), and
 * registration is atomic with respect to fork (glibc holds one lock for
 * both). A key created by the vanished thread is simply left unused.
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
#include <stdint.h>
#include <unistd.h>

#include "account.h"
#include "backend.h"
#include "defrag.h"
#include "platform.h"
#if ZMALLOC_DEBUG_BUILD
#include "debug.h"
#endif
#if ZM_PRELOAD_BUILD
#include "preload.h"
#endif

/* init_word: the state in its low 2 bits; while INIT_RUNNING, the pid of
 * the process whose thread runs set-up above them. */
enum { INIT_NONE = 0, INIT_RUNNING = 1, INIT_DONE = 2, INIT_FAILED = 3 };
#define INIT_STATE(w) ((int)((w) & 3u))
#define INIT_PID(w) ((uint64_t)(w) >> 2)

static _Atomic uint64_t init_word;
static _Atomic int atfork_registered;
static pthread_key_t exit_key;
static __thread int initialising __attribute__((tls_model("initial-exec")));
static __thread int attached __attribute__((tls_model("initial-exec")));

/* ---- the hooks, in layer order ------------------------------------------ */

static void on_thread_exit(void *value) {
    (void)value;
    attached = 0;
#if ZM_PRELOAD_BUILD
    zm_preload_stats_thread_exit();
#else
    zm_defrag_thread_exit(); /* frees: before the accounting goes */
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
    atomic_store_explicit(&atfork_registered, 1, memory_order_relaxed);
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
    zm_os_thread_id_fork_child();
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

static int lifecycle_run(uint64_t running) {
    initialising = 1;
    if (!atomic_load_explicit(&atfork_registered, memory_order_relaxed)) {
        pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
        atomic_store_explicit(&atfork_registered, 1, memory_order_relaxed);
    }
    int ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
    initialising = 0;
    uint64_t expected = running; /* a fork child may have restarted it */
    atomic_compare_exchange_strong_explicit(&init_word, &expected,
                                            (uint64_t)(ok ? INIT_DONE : INIT_FAILED),
                                            memory_order_release, memory_order_relaxed);
    return ok;
}

static int lifecycle_init(void) {
    for (;;) {
        uint64_t w = atomic_load_explicit(&init_word, memory_order_acquire);
        int state = INIT_STATE(w);
        if (state == INIT_DONE) return 1;
        if (state == INIT_FAILED) return 0;
        if (state == INIT_NONE) {
            uint64_t running = ((uint64_t)getpid() << 2) | INIT_RUNNING;
            if (atomic_compare_exchange_strong(&init_word, &w, running)) return lifecycle_run(running);
            continue;
        }
        if (initialising) return 0; /* re-entered from pthread_atfork's malloc */
        if (INIT_PID(w) != (uint64_t)getpid()) {
            /* Set-up was running in the parent when this process forked. */
            atomic_compare_exchange_strong(&init_word, &w, (uint64_t)INIT_NONE);
            continue;
        }
        sched_yield();
    }
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
    return INIT_STATE(atomic_load_explicit(&init_word, memory_order_acquire)) == INIT_DONE;
}
