/* lifecycle.h: the one owner of thread exit and fork.
 *
 * Every layer that keeps per-thread or process-wide state exposes hook
 * functions; lifecycle.c registers ONE pthread key (whose destructor runs
 * the thread-exit hooks) and ONE pthread_atfork set, and calls the layers in
 * layer order:
 *
 *   thread exit, fork prepare:  front end (accounting, or the preload
 *                               library's statistics), debug layer, backend
 *   fork parent, fork child:    backend, debug layer, front end
 *
 * so a layer's prepare runs while the layers below it are still unlocked
 * (it may call them), and each lower layer is locked last and released
 * first. No layer calls pthread_key_create or pthread_atfork itself.
 *
 * The hooks, by layer (declared in each layer's header):
 *   front end  zm_defrag_thread_exit (defrag.h; not in the preload library,
 *              which has no zfree_no_tcache), zm_account_thread_exit,
 *              zm_account_fork_{prepare,parent,child}
 *              (account.h); in the preload library also
 *              zm_preload_stats_thread_exit, zm_preload_stats_fork_child
 *              (preload.h)
 *   debug      zm_dbg_thread_exit, zm_dbg_fork_{prepare,parent,child} (debug.h)
 *   backend    zm_be_thread_exit, zm_be_fork_{prepare,parent,child}
 *              (backend.h, when ZM_BACKEND_HAS_LIFECYCLE)
 * Each thread-exit hook reads its own thread-local state and must be safe
 * to call for a thread that never used its layer, and again after a later
 * destructor made the thread use it once more (glibc reruns destructors).
 */
#ifndef ZMALLOC_LIFECYCLE_H
#define ZMALLOC_LIFECYCLE_H

/* Called by a layer the first time a thread needs its exit hook (the pool
 * when it creates the thread's heap, the accounting when it registers the
 * thread's counter). Creates the key and the fork handlers on the first
 * call in the process. Returns 0 when the thread-exit hooks will run for
 * this thread, -1 when they cannot (pthread_key_create failed, or this is
 * a call made from inside that first registration): the layer must then
 * stay correct without its exit hook (keep the thread's state, never reuse
 * it). Async-signal-safe it is not; never called on a fast path. */
int zm_lifecycle_thread_attach(void);

/* 1 once the key and the fork handlers exist, 0 before or after a failed
 * pthread_key_create (tests read it). */
int zm_lifecycle_ready(void);

#endif
