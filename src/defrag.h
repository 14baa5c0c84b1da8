/* defrag.h: the front end's defragmentation state (src/defrag.c).
 *
 * On the pool, zfree_no_tcache lets the last few blocks it was given linger
 * intact before they are freed (see defrag.c for why: servers that read a
 * block they have just moved). These empty the calling thread's ring; no-ops
 * on other backends and in verification builds.
 */
#ifndef ZMALLOC_DEFRAG_H
#define ZMALLOC_DEFRAG_H

/* Free the calling thread's lingering blocks now (refreshing stats calls,
 * zmalloc_purge). */
void zm_defrag_release_lingering(void);
/* Thread-exit hook of the front end (lifecycle.c). */
void zm_defrag_thread_exit(void);

#endif
