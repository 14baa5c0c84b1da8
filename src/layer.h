/* layer.h: what the front end allocates from.
 *
 * Normally the backend itself (backend.h). In a verification build
 * (ZMALLOC_DEBUG=1) the debug layer (debug.h) sits in between: it wraps each
 * backend block in guard zones and reports usable size == requested size, so
 * the front end never needs the size prefix there.
 */
#ifndef ZMALLOC_LAYER_H
#define ZMALLOC_LAYER_H

#include <stdint.h>

#include "backend.h"

/* The size guard of both front ends (zmalloc.c and the preload library),
 * written once: requests from SIZE_MAX/2 up fail with ENOMEM before the
 * lower layer sees them, and a 0-byte request becomes a minimal one (Redis's
 * sizeof(long)), so it still gets a unique block. */
#define ZM_TOO_BIG(n) ((n) >= SIZE_MAX / 2)
#define ZM_MIN_REQUEST(n) ((n) ? (n) : sizeof(long))

#if ZMALLOC_DEBUG_BUILD
#include "debug.h"
#define ZM_LAYER_HAS_SIZE 1
/* The backend's count includes the guard zones: the front end counts. */
#define ZM_LAYER_COUNTS 0
#define ZM_LAYER_HAS_FAST 0
#define zm_lower_malloc zm_dbg_malloc
#define zm_lower_calloc zm_dbg_calloc
#define zm_lower_realloc zm_dbg_realloc
#define zm_lower_aligned_alloc zm_dbg_aligned_alloc
#define zm_lower_usable_size zm_dbg_usable_size
#define zm_lower_free zm_dbg_free
/* Records the caller of a public entry point as the allocation site. */
#define ZM_NOTE_CALLER() zm_dbg_note_caller(__builtin_return_address(0))
#else
#define ZM_LAYER_HAS_SIZE ZM_BACKEND_HAS_SIZE
#define ZM_LAYER_COUNTS ZM_BACKEND_COUNTS
#define ZM_LAYER_HAS_FAST ZM_BACKEND_HAS_FAST
#define zm_lower_malloc_fast zm_be_malloc_fast
#define zm_lower_malloc zm_be_malloc
#define zm_lower_calloc zm_be_calloc
#define zm_lower_realloc zm_be_realloc
#define zm_lower_aligned_alloc zm_be_aligned_alloc
#define zm_lower_usable_size zm_be_usable_size
#define zm_lower_free zm_be_free
#define ZM_NOTE_CALLER() ((void)0)
#endif

#endif
