/* debug.h: the verification layer (ZMALLOC_DEBUG=1), between the front end
 * and the backend.
 *
 * layer.h maps the front end's zm_lower_* calls onto these in a
 * verification build. They keep the backend.h contract with one change:
 * *usable is always exactly the size requested, and zm_dbg_usable_size()
 * answers that size, so the front end accounts requested bytes and code
 * that uses its "usable" space stays inside the guarded block. The
 * design (block layout, records, homes, quarantine, locking) is described
 * at the top of debug.c; debug_report.c formats the reports.
 */
#ifndef ZMALLOC_DEBUG_H
#define ZMALLOC_DEBUG_H

#include <stddef.h>

void *zm_dbg_malloc(size_t size, size_t *usable);
void *zm_dbg_calloc(size_t size, size_t *usable);
/* Always moves: allocates a new block, copies, frees the old one into the
 * quarantine, so stale pointers to the old block are caught. On failure
 * returns NULL and leaves ptr untouched. */
void *zm_dbg_realloc(void *ptr, size_t size, size_t *usable);
void *zm_dbg_aligned_alloc(size_t alignment, size_t size, size_t *usable);
/* The requested size of a live block; 0 for a pointer that is not one (the
 * free or realloc that follows reports it). */
size_t zm_dbg_usable_size(const void *ptr);
/* Checks the guards, then quarantines the block. Aborts with a report on a
 * guard overwrite, a double free or a pointer zmalloc never returned. */
void zm_dbg_free(void *ptr, size_t usable);
/* Called first by every public entry point with its return address: the
 * allocation site used when the caller's macros gave no file:line. */
void zm_dbg_note_caller(void *return_address);

/* Lifecycle hooks (src/lifecycle.c calls them in layer order). A thread's
 * exit hands its home (records, quarantine) to the next new thread; fork
 * holds every home's lock across the fork. */
void zm_dbg_thread_exit(void);
void zm_dbg_fork_prepare(void);
void zm_dbg_fork_parent(void);
void zm_dbg_fork_child(void);

#endif
