/* allocator_defrag.h: zmalloc's replacement for Valkey 8.1+'s
 * src/allocator_defrag.h (tests/redis/check.sh copies it into the Valkey
 * tree with allocator_defrag.c). Same six functions, same signatures; over
 * zmalloc's defrag API instead of jemalloc's mallctl. HAVE_DEFRAG comes from
 * zmalloc.h: defined on the pool backend, so the server turns active
 * defragmentation on there. */
#ifndef __ALLOCATOR_DEFRAG_H
#define __ALLOCATOR_DEFRAG_H

#include <stddef.h>

#include "zmalloc.h"

int allocatorDefragInit(void);
void allocatorDefragFree(void *ptr, size_t size);
__attribute__((malloc)) void *allocatorDefragAlloc(size_t size);
unsigned long allocatorDefragGetFragSmallbins(void);
int allocatorShouldDefrag(void *ptr);
float getAllocatorFragmentation(size_t *out_frag_bytes);

#endif /* __ALLOCATOR_DEFRAG_H */
