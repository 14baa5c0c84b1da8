/* zmalloc.h: a drop-in replacement for Redis's src/zmalloc.h.
 *
 * Part 1 declares every function and macro of Redis's zmalloc.h with the
 * same signature and behaviour, so Redis sources (sds.c, dict.c, object.c,
 * server.c, ...) compile against it unchanged. Part 2 holds extensions; each
 * is marked "Extension" and carries the zmalloc_/z prefix.
 *
 * The backend is chosen when the library is built (make MALLOC=pool|libc|
 * jemalloc|tcmalloc|mimalloc) and recorded in zmalloc_config.h, which is
 * installed next to this header.
 *
 * Server API versions: ZMALLOC_SERVER_API. Redis and Valkey changed a few
 * declarations between releases, in ways that cannot coexist in one header
 * (zmalloc_get_allocator_info has 3, 5, 6 or 7 arguments; zmadvise_dontneed
 * 1 or 2). One macro picks the form; define it before including this header
 * (or pass -DZMALLOC_SERVER_API=<value>). Its values, one per server family
 * and version whose header differs (Redis: 10 * major + minor; Valkey: 100 +
 * 10 * major + minor):
 *
 *   ZMALLOC_API_REDIS_70   70   Redis 7.0-7.2 and Valkey 7.2: three-argument
 *                               zmalloc_get_allocator_info(&allocated,
 *                               &active, &resident)
 *   ZMALLOC_API_REDIS_74   74   Redis 7.4: the seven-argument form (refresh,
 *                               ..., frag_smallbins_bytes), *_with_flags on
 *                               the jemalloc backend
 *   ZMALLOC_API_REDIS_8    80   Redis 8.x (the default): 7.4's forms; 8.x's
 *                               additions zrealloc_usable2,
 *                               ztryrealloc_usable2, zstrdup_usable and
 *                               zfree_with_size are declared for every value
 *   ZMALLOC_API_VALKEY_80  180  Valkey 8.0: six-argument form (no refresh
 *                               flag); zfree_with_size, zlibc_trim
 *   ZMALLOC_API_VALKEY_91  191  Valkey 9.1: five-argument form (allocated,
 *                               active, resident, retained, muzzy);
 *                               zmadvise_dontneed(ptr, size_hint),
 *                               zmadvise_dontneed_range,
 *                               zmalloc_cache_aligned. Valkey 8.1 and 9.0
 *                               are between 8.0 and 9.1; neither is built
 *                               here, so take the value whose declarations
 *                               match their src/zmalloc.h.
 *
 * Why the default is Redis 8.x and not Valkey 9.1, the newest release of
 * the two: the families' newest forms conflict (seven against five
 * arguments, one against two), so only one family can be served without the
 * macro. Redis 8.x's header is a superset of Redis 7.4's, the form this
 * header has always served by default, so no code written against this
 * header breaks; Valkey builds already need a build flag of their own
 * (tests/redis/check.sh passes the value for each server it builds).
 * ZMALLOC_REDIS_API=70/74, the older name of this macro, is still read when
 * ZMALLOC_SERVER_API is not defined (the values are the same).
 *
 * The library exports every form whatever the value: the non-default ones
 * under a name of their own (zmalloc_get_allocator_info_v70, _valkey80,
 * _valkey91; zmadvise_dontneed_hint) that the header maps the server's name
 * to. Names that do not conflict (zfree_with_size, zlibc_trim, zstrdup_usable,
 * zmalloc_cache_aligned, ...) are declared for every value.
 *
 * Exported names never clash with other libraries': zlib defines its own
 * zcalloc, so the library exports zcalloc as zmalloc_calloc and this header
 * maps the name (#define zcalloc zmalloc_calloc); code calls zcalloc as
 * before. Valkey 8.1+ names the four allocation calls valkey_malloc,
 * valkey_calloc, valkey_realloc and valkey_free (its deps/hdr_histogram
 * declares them itself): the library exports them too.
 *
 * Deliberate difference from Redis: a ztryrealloc()/ztryrealloc_usable()
 * that fails (including the SIZE_MAX/2 guard) leaves the original block
 * untouched and still accounted, as C's realloc() does. Redis frees it and
 * so loses the caller's data.
 */
#ifndef ZMALLOC_H
#define ZMALLOC_H

#include <stddef.h>
#include <stdio.h>

#include "zmalloc_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The server API values (see the head of this file) and the one in force. */
#define ZMALLOC_API_REDIS_70 70
#define ZMALLOC_API_REDIS_74 74
#define ZMALLOC_API_REDIS_8 80
#define ZMALLOC_API_VALKEY_80 180
#define ZMALLOC_API_VALKEY_91 191
#ifndef ZMALLOC_SERVER_API
#if defined(ZMALLOC_REDIS_API) && ZMALLOC_REDIS_API < 74
#define ZMALLOC_SERVER_API ZMALLOC_API_REDIS_70
#elif defined(ZMALLOC_REDIS_API) && ZMALLOC_REDIS_API < 80
#define ZMALLOC_SERVER_API ZMALLOC_API_REDIS_74
#else
#define ZMALLOC_SERVER_API ZMALLOC_API_REDIS_8
#endif
#endif
#if ZMALLOC_SERVER_API != ZMALLOC_API_REDIS_70 && ZMALLOC_SERVER_API != ZMALLOC_API_REDIS_74 && \
    ZMALLOC_SERVER_API != ZMALLOC_API_REDIS_8 && ZMALLOC_SERVER_API != ZMALLOC_API_VALKEY_80 &&   \
    ZMALLOC_SERVER_API != ZMALLOC_API_VALKEY_91
#error "ZMALLOC_SERVER_API: use 70, 74, 80 (Redis 7.0, 7.4, 8.x), 180 or 191 (Valkey 8.0, 9.1)"
#endif
/* 1 for the Valkey values, whose forms differ from Redis's. */
#define ZMALLOC_API_IS_VALKEY (ZMALLOC_SERVER_API >= 100)

/* zlib defines a zcalloc of its own (static zlib in the same link fails
 * with a duplicate symbol): the library exports ours as zmalloc_calloc. */
#define zcalloc zmalloc_calloc

/* Two-step stringification; Redis's header defines these and other Redis
 * files use them. */
#define __xstr(s) __str(s)
#define __str(s) #s

/* ZMALLOC_LIB names our library, its version and the backend, e.g.
 * "zmalloc-0.1.0 (pool)" or "zmalloc-0.1.0 (jemalloc-5.3.0)". Redis prints
 * it as mem_allocator in INFO memory. */
#define ZMALLOC_LIB ("zmalloc-" ZMALLOC_VERSION " (" ZMALLOC_BACKEND_VERSION ")")

/* HAVE_MALLOC_SIZE: the backend can tell a block's usable size from its
 * pointer, so no size prefix is stored. Every backend but libc built with
 * NO_MALLOC_USABLE_SIZE=1 has it. */
#if ZMALLOC_HAVE_MALLOC_SIZE
#define HAVE_MALLOC_SIZE 1
#endif

/* HAVE_DEFRAG: the servers' active defragmenter can run. Defined on the
 * pool backend (not in a verification build), which answers the per-block
 * hint (je_get_defrag_hint, zmalloc_defrag_hint) and moves blocks with
 * zmalloc_no_tcache()/zfree_no_tcache(). Undefined elsewhere, jemalloc
 * included: the hint is in Redis's patched jemalloc only, not Debian's
 * libjemalloc (zmalloc_no_tcache()/zfree_no_tcache() are still provided
 * there, see below). */
#if ZMALLOC_BACKEND_POOL && !ZMALLOC_DEBUG_BUILD
#define HAVE_DEFRAG
#endif

/* Extension: bytes of size prefix before each block (0 with
 * HAVE_MALLOC_SIZE). 16, not Redis's 8, so blocks keep malloc's 16-byte
 * (max_align_t) alignment; zmalloc_size() counts it, as in Redis. */
#define ZMALLOC_PREFIX_SIZE (ZMALLOC_HAVE_MALLOC_SIZE ? 0 : 2 * sizeof(size_t))

/* ======================================================================
 * Part 1: Redis's zmalloc API
 * ====================================================================== */

/* Allocation. A 0-byte request still returns a valid block. A request of
 * SIZE_MAX/2 bytes or more fails without asking the backend. Blocks are
 * 16-byte aligned, except on the pool backend those whose usable size is 8,
 * 24, 40 or 56 bytes: 8-aligned, as with the jemalloc Redis and Valkey
 * bundle (8-byte quantum), which is all an object of that size can need
 * (its size is a multiple of its alignment). zmalloc_aligned() gives more;
 * the preload library's malloc is 16-aligned for every size. On failure the
 * z* functions call the OOM handler with the requested size (the default
 * handler aborts); the ztry* functions return NULL with errno = ENOMEM.
 * 'noinline' keeps gcc 12 with LTO from losing the alloc_size attribute
 * (gcc bug 96503), as in Redis. */
/* The hottest entry points are called through the GOT directly (gcc's
 * noplt, x86-64): a call from a program skips the PLT stub's jump. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ZMALLOC_NOPLT noplt,
#else
#define ZMALLOC_NOPLT
#endif
__attribute__((ZMALLOC_NOPLT malloc, alloc_size(1), noinline)) void *zmalloc(size_t size);
__attribute__((ZMALLOC_NOPLT malloc, alloc_size(1), noinline)) void *zcalloc(size_t size);
/* Zeroed array of num elements of size bytes. size == 0 or num*size
 * overflowing calls the OOM handler with SIZE_MAX. */
__attribute__((malloc, alloc_size(1, 2), noinline)) void *zcalloc_num(size_t num, size_t size);
/* ptr == NULL allocates; size == 0 with a non-NULL ptr frees it and returns
 * NULL. Content is kept up to the smaller of the two sizes. */
__attribute__((ZMALLOC_NOPLT alloc_size(2), noinline)) void *zrealloc(void *ptr, size_t size);
__attribute__((ZMALLOC_NOPLT malloc, alloc_size(1), noinline)) void *ztrymalloc(size_t size);
__attribute__((malloc, alloc_size(1), noinline)) void *ztrycalloc(size_t size);
/* On failure returns NULL and leaves ptr allocated (see the note above). */
__attribute__((alloc_size(2), noinline)) void *ztryrealloc(void *ptr, size_t size);
/* NULL is a no-op. A real function, so it can be passed as a pointer. */
__attribute__((ZMALLOC_NOPLT)) void zfree(void *ptr);

/* As their plain twins; *usable (when non-NULL) receives the usable size of
 * the returned block, all of which the caller may use; 0 on failure. */
void *zmalloc_usable(size_t size, size_t *usable);
void *zcalloc_usable(size_t size, size_t *usable);
void *zrealloc_usable(void *ptr, size_t size, size_t *usable);
void *ztrymalloc_usable(size_t size, size_t *usable);
void *ztrycalloc_usable(size_t size, size_t *usable);
void *ztryrealloc_usable(void *ptr, size_t size, size_t *usable);
/* Free, storing the usable size that was freed in *usable (when non-NULL). */
void zfree_usable(void *ptr, size_t *usable);

__attribute__((malloc)) char *zstrdup(const char *s);

/* Redis 8.x and Valkey 8.0+. zfree_with_size frees a block whose usable
 * size the caller knows (size == zmalloc_usable_size(ptr)); the size is
 * only a hint, the block is freed as zfree would. The *_usable2 forms of
 * realloc also store the usable size of the old block in *old_usable (when
 * non-NULL; 0 when ptr is NULL), so the caller can account for the
 * difference without asking twice. zstrdup_usable stores the usable size
 * of the copy in *usable. */
void zfree_with_size(void *ptr, size_t size);
__attribute__((alloc_size(2), noinline)) void *zrealloc_usable2(void *ptr, size_t size,
                                                                size_t *usable,
                                                                size_t *old_usable);
__attribute__((alloc_size(2), noinline)) void *ztryrealloc_usable2(void *ptr, size_t size,
                                                                   size_t *usable,
                                                                   size_t *old_usable);
__attribute__((malloc)) char *zstrdup_usable(const char *s, size_t *usable);
/* Valkey 9.1: a block aligned to a cache line (64 bytes), freed with zfree. */
__attribute__((malloc, alloc_size(1), noinline)) void *zmalloc_cache_aligned(size_t size);
/* Valkey 8.1+'s names of zmalloc, zcalloc, zrealloc and zfree. */
__attribute__((malloc, alloc_size(1), noinline)) void *valkey_malloc(size_t size);
__attribute__((malloc, alloc_size(1), noinline)) void *valkey_calloc(size_t size);
__attribute__((alloc_size(2), noinline)) void *valkey_realloc(void *ptr, size_t size);
void valkey_free(void *ptr);

/* Accounting. Bytes currently allocated through zmalloc: the sum of the
 * usable sizes of live blocks (plus the prefix on the prefix path). Exact at
 * any quiet moment: each thread keeps its own counter on its own cache line,
 * written only by that thread; the reader sums them. */
size_t zmalloc_used_memory(void);
/* Replace the OOM handler (NULL restores the default, which prints
 * "zmalloc: Out of memory trying to allocate N bytes" and aborts). */
void zmalloc_set_oom_handler(void (*oom_handler)(size_t));

/* Process information (Linux /proc). Not for hot loops. */
size_t zmalloc_get_rss(void);
/* i-th (1-based, as in man proc) field of /proc/self/stat; 1 on success. */
int get_proc_stat_ll(int i, long long *res);
/* Private_Dirty bytes of pid (-1 = self). Reads /proc/<pid>/smaps_rollup when
 * the kernel has it (one line, microseconds), else sums /proc/<pid>/smaps. */
size_t zmalloc_get_private_dirty(long pid);
/* Sum of an smaps field such as "Rss:" over /proc/<pid>/smaps (pid -1 =
 * self), in bytes; 0 if unreadable. Uses smaps_rollup when it has the field. */
size_t zmalloc_get_smap_bytes_by_field(char *field, long pid);
/* Physical RAM in bytes. Ignores containers: see
 * zmalloc_get_cgroup_memory_limit(). */
size_t zmalloc_get_memory_size(void);

/* The allocator's own view of the process heap, in bytes, on every backend
 * (Redis fills it only on jemalloc). Returns 1.
 *   allocated  bytes in live blocks of the whole process (not only zmalloc's)
 *   active     bytes in pages holding live blocks
 *   resident   bytes of allocator memory resident in RAM
 *   retained   bytes mapped but returned to the OS (may be NULL)
 *   muzzy      bytes released lazily, still counted in RSS (may be NULL)
 *   frag_smallbins_bytes  free bytes inside partly used small-object slabs
 * No figure is clamped to fit the others: where a backend cannot measure
 * one exactly, the text below says what it is instead. Per backend:
 *   pool      all six from its own counters (src/pool/stats.c says which).
 *   jemalloc  stats.allocated/active/resident/retained, arena muzzy pages,
 *             small-bin free regions; refreshed through "epoch".
 *   tcmalloc  allocated = generic.current_allocated_bytes; resident =
 *             heap_size - pageheap_unmapped (mapped and not released: pages
 *             never touched count too); active = resident - pageheap free
 *             (spans handed out: live blocks plus cache free lists);
 *             retained = pageheap_unmapped_bytes; muzzy 0 (tcmalloc releases
 *             with MADV_DONTNEED, nothing is lazy); frag_smallbins = central
 *             + transfer + thread cache free bytes.
 *   mimalloc  mimalloc 2.0 release builds count no allocated bytes for the
 *             process, and a heap can be walked only by its own thread, so
 *             allocated (live blocks x block size), active (the initialised
 *             part of pages holding a live block) and frag_smallbins
 *             (active - allocated) are those of the CALLING THREAD's heap
 *             (mi_heap_visit_blocks: exact there; blocks owned by other
 *             threads are not seen). resident is mimalloc's process-wide
 *             committed bytes (its own RSS figure is the same number; pages
 *             committed but never touched count). retained 0 (mimalloc 2.0
 *             does not report its reserve), muzzy 0.
 *   libc      mallinfo2: allocated = uordblks + hblkhd (chunks in use, with
 *             their 8-byte headers), active = allocated + fordblks - keepcost
 *             (everything below the trimmable top), resident = arena +
 *             hblkhd: what the arenas hold, an upper bound (glibc cannot
 *             tell which pages are resident: pages malloc_trim released
 *             inside an arena still count), retained 0 (glibc unmaps what
 *             it releases), muzzy 0, frag_smallbins = fordblks - keepcost.
 * refresh_stats asks to refresh cached statistics first (jemalloc epoch). */
#if ZMALLOC_SERVER_API == ZMALLOC_API_REDIS_70
/* Redis 7.0-7.2: exported as zmalloc_get_allocator_info_v70. */
#define zmalloc_get_allocator_info zmalloc_get_allocator_info_v70
#elif ZMALLOC_SERVER_API == ZMALLOC_API_VALKEY_80
/* Valkey 8.0: no refresh flag (statistics are always refreshed). */
#define zmalloc_get_allocator_info zmalloc_get_allocator_info_valkey80
#elif ZMALLOC_SERVER_API == ZMALLOC_API_VALKEY_91
/* Valkey 8.1+: no refresh flag, no frag_smallbins_bytes (Valkey's
 * allocator_defrag.c asks for that figure itself). */
#define zmalloc_get_allocator_info zmalloc_get_allocator_info_valkey91
#else
int zmalloc_get_allocator_info(int refresh_stats, size_t *allocated, size_t *active,
                               size_t *resident, size_t *retained, size_t *muzzy,
                               size_t *frag_smallbins_bytes);
#endif
/* Every form, under names that do not depend on ZMALLOC_SERVER_API. */
int zmalloc_get_allocator_info_v70(size_t *allocated, size_t *active, size_t *resident);
int zmalloc_get_allocator_info_valkey80(size_t *allocated, size_t *active, size_t *resident,
                                        size_t *retained, size_t *muzzy,
                                        size_t *frag_smallbins_bytes);
int zmalloc_get_allocator_info_valkey91(size_t *allocated, size_t *active, size_t *resident,
                                        size_t *retained, size_t *muzzy);
/* Extension: the seven-argument form under a name that never changes, for
 * code that must work whatever ZMALLOC_REDIS_API it is built with. */
int zmalloc_get_allocator_info_full(int refresh_stats, size_t *allocated, size_t *active,
                                    size_t *resident, size_t *retained, size_t *muzzy,
                                    size_t *frag_smallbins_bytes);

/* Per-arena figures. Meaningful on jemalloc; every other backend has one
 * heap and reports the whole-process figures for arena 0 (and zeros with a
 * return of 0 for any other arena). */
int zmalloc_get_allocator_info_by_arena(unsigned int arena, int refresh_stats, size_t *allocated,
                                        size_t *active, size_t *resident,
                                        size_t *frag_smallbins_bytes);
/* Return all unused pages to the OS; 0 on success. Works on every backend
 * (its Redis name is kept); see also zmalloc_purge(). */
int jemalloc_purge(void);
/* Let jemalloc purge in a background thread; a no-op elsewhere. */
void set_jemalloc_bg_thread(int enable);
/* Tell the OS the whole pages inside block ptr are not needed (used in
 * fork children to avoid copy-on-write). NULL is a no-op. Valkey 9.1's form
 * takes a size hint: the caller's idea of the block's size (0 = unknown);
 * a hint below two pages (too small to hold a whole page wherever it
 * starts) returns at once without asking the allocator.
 * Exported as zmadvise_dontneed_hint. */
#if ZMALLOC_SERVER_API == ZMALLOC_API_VALKEY_91
#define zmadvise_dontneed zmadvise_dontneed_hint
#else
void zmadvise_dontneed(void *ptr);
#endif
void zmadvise_dontneed_hint(void *ptr, size_t size_hint);
/* MADV_DONTNEED on exactly [ptr, ptr + size), which the caller has made
 * page-aligned, inside a block it owns (Valkey 9.1 drops the pages of a
 * big table it no longer needs, in a fork child). The pages read back as
 * zeros. NULL or size 0 is a no-op. */
void zmadvise_dontneed_range(void *ptr, size_t size);
/* glibc's malloc_trim(0): give libc's own free heap memory back to the OS
 * (Valkey calls it after freeing a Lua interpreter, which allocates with
 * libc's malloc). A no-op without glibc. */
void zlibc_trim(void);
/* The C library's own free(), for memory libc allocated. */
void zlibc_free(void *ptr);

/* Usable size of a zmalloc block. With HAVE_MALLOC_SIZE, zmalloc_size and
 * zmalloc_usable_size are the same; on the prefix path zmalloc_size also
 * counts the prefix. In a verification build (ZMALLOC_DEBUG) both return
 * exactly the requested size. */
size_t zmalloc_size(void *ptr);
#ifndef HAVE_MALLOC_SIZE
size_t zmalloc_usable_size(void *ptr);
#else
#define zmalloc_usable_size(p) zmalloc_size(p)
/* Returns ptr unchanged. After code learns a block's usable size with
 * zmalloc_usable_size(), passing the pointer through this function tells the
 * compiler's object-size tracking (_FORTIFY_SOURCE, alloc_size) that size
 * bytes are usable. Not static inline: gcc would drop the attribute. */
__attribute__((alloc_size(2), noinline)) void *extend_to_usable(void *ptr, size_t size);
#endif

/* jemalloc-only entries: jemalloc MALLOCX_* flags pass through. Declared on
 * the jemalloc backend only, as in Redis (7.4+ API). */
#if ZMALLOC_BACKEND_JEMALLOC && ZMALLOC_SERVER_API >= ZMALLOC_API_REDIS_74 && !ZMALLOC_API_IS_VALKEY
__attribute__((malloc, alloc_size(1), noinline)) void *zmalloc_with_flags(size_t size, int flags);
__attribute__((alloc_size(2), noinline)) void *zrealloc_with_flags(void *ptr, size_t size, int flags);
void zfree_with_flags(void *ptr, int flags);
#endif
#if ZMALLOC_BACKEND_JEMALLOC || ZMALLOC_BACKEND_POOL
/* Allocate and free for a defragmenter moving a block, accounted like
 * zmalloc/zfree (both sides). jemalloc: bypassing its thread cache. pool:
 * the block comes from a well-filled page of its class, never from the page
 * the last defrag hint chose to empty (plain zmalloc when there is none, or
 * when a memory limit is set, or in a verification build). Redis declares
 * these under HAVE_DEFRAG.
 * pool: zfree_no_tcache keeps the last 8 blocks it was given intact (and
 * counted in zmalloc_used_memory()) before it frees them, because Redis 7.4
 * and Valkey 8.0 read a channel object they have just moved and freed
 * (jemalloc leaves freed bytes alone). They are freed as later ones arrive,
 * by the thread's next zmalloc_get_allocator_info*() with refresh_stats, by
 * zmalloc_purge(), and when the thread exits. */
__attribute__((malloc)) void *zmalloc_no_tcache(size_t size);
void zfree_no_tcache(void *ptr);
#endif
#ifdef HAVE_DEFRAG
/* Redis <= 7.4 and Valkey 8.0 ask this per block in defrag.c (their own
 * declaration, matching this one): the same answer as zmalloc_defrag_hint. */
int je_get_defrag_hint(void *ptr);
#endif

/* Self-test (allocate, check used memory, free, check it is back). The
 * library always exports it; Redis declares it under REDIS_TEST. */
int zmalloc_test(int argc, char **argv, int flags);

/* ======================================================================
 * Part 2: extensions
 * ====================================================================== */

/* Extension: the value of a run-time option, by its name in ZMALLOC_CONF
 * (docs/options.md lists them all, with their defaults), as the library
 * read it from the environment: ZMALLOC_CONF=name:value,... and one
 * variable per option, ZMALLOC_<NAME> in upper case, which wins. For a
 * string option: 1 when it is set to a non-empty value, else 0. An unknown
 * name returns -1 with errno = EINVAL. Tests use it to read the policy
 * values they depend on instead of copying them. */
long long zmalloc_get_option(const char *name);

/* Extension: the backend's name and version at run time, e.g. "pool",
 * "jemalloc-5.3.0", "libc-2.36 (size prefix)". */
const char *zmalloc_backend(void);

/* Extension: return free memory to the OS on any backend; 0 on success.
 * One limit measured (tests/test_stats.c): on mimalloc 2.0 free pages inside
 * a segment that still holds a live block are given back only on
 * mimalloc's own decommit schedule, not by the forced collect this does
 * (whole free segments do go back). */
int zmalloc_purge(void);

/* Extension: active defragmentation hint. 1 when moving the block at ptr
 * (zmalloc_no_tcache, copy, zfree_no_tcache) would help give memory back,
 * else 0. On the pool backend: the block's page belongs to the calling
 * thread, is not the page its class allocates from, and is used less than
 * 1/8 or no more than 12.5% above the average of the thread's partly used
 * pages of that class (src/pool/defrag.c). Cheap (no lock, no system call)
 * and safe from any thread: a block in another thread's page gets 0. Always
 * 0 on other backends and in a verification build. */
int zmalloc_defrag_hint(void *ptr);

/* Extension: the memory limit of the cgroup this process runs in (v2
 * memory.max, else v1 memory.limit_in_bytes), in bytes; 0 when unlimited or
 * there is no cgroup. A server in a container sizes itself by this. */
size_t zmalloc_get_cgroup_memory_limit(void);

/* Extension: print the backend's statistics to out, as text (json == 0) or
 * JSON (json != 0). The pool backend prints its per-size-class table. */
void zmalloc_print_stats(FILE *out, int json);

/* Extension: aligned allocation. alignment must be a power of two (any
 * size up to at least 1 MiB); a bad alignment fails with errno = EINVAL
 * (ztry) or calls the OOM handler (z). Free with zfree(). */
__attribute__((malloc, alloc_size(2))) void *zmalloc_aligned(size_t alignment, size_t size);
__attribute__((malloc, alloc_size(2))) void *ztrymalloc_aligned(size_t alignment, size_t size);

/* Extension: reclaim and retry. When the backend cannot satisfy a request,
 * or a memory limit would be exceeded, handler(needed) is called; it frees
 * what it can (it may call zfree) and returns the bytes it freed. The
 * allocation is retried while the handler frees something, at most
 * ZMALLOC_RECLAIM_ROUNDS times; only then does ztry* return NULL or z* call
 * the OOM handler. An allocation made from inside the handler does not call
 * the handler again. NULL removes the handler.
 * The handler may free the very block a zrealloc/ztryrealloc (or
 * zrealloc_with_flags) is resizing: that block is held back while the
 * handler runs and released when it returns; the reallocation then stops
 * and returns NULL with errno ECANCELED, without calling the OOM handler,
 * and the caller must treat the old pointer as freed (it was, by the
 * program's own handler). The handler must not reallocate that block. */
#define ZMALLOC_RECLAIM_ROUNDS 16
void zmalloc_set_reclaim_handler(size_t (*handler)(size_t needed));

/* Extension: memory limit (0 = none). An allocation that would take
 * zmalloc_used_memory() past the limit first goes through reclaim, then
 * fails cleanly. Strictness: with one thread allocating, the limit is exact
 * (except that a zrealloc may pass it by its block's size-class rounding).
 * With T threads allocating at once it can be exceeded by at most
 * T * ZMALLOC_LIMIT_SLACK bytes: each thread re-reads the exact total only
 * after it has allocated ZMALLOC_LIMIT_SLACK bytes since its last reading,
 * and sees a limit set by another thread within as many bytes. */
#define ZMALLOC_LIMIT_SLACK ((size_t)256 * 1024)
void zmalloc_set_memory_limit(size_t bytes);
size_t zmalloc_get_memory_limit(void);

/* Extension: verification mode (build with ZMALLOC_DEBUG=1; in other builds
 * both functions do nothing and return 0). Every block then carries guard
 * zones; a write past its end or before its start, a double free or a free
 * of a pointer zmalloc never returned is reported on stderr ("zmalloc: heap
 * overflow|heap underflow|double free|invalid free ...": address, requested
 * size, the wrong bytes, the allocation site) and aborts, at the latest when
 * the block is freed or reallocated. Freed blocks are filled with 0xdf and
 * kept in a bounded quarantine (per allocating thread: the last 512 blocks
 * and 1 MiB, options quarantine_blocks and quarantine_bytes), so a write
 * into one is reported
 * ("zmalloc: use after free ...") by zmalloc_verify() or when it leaves the
 * quarantine. New blocks are filled with 0xbe (zcalloc: zeros);
 * zmalloc_usable_size() is exactly the requested size; zrealloc always
 * moves the block.
 * zmalloc_verify() checks every live and quarantined block's guard zones
 * and fill patterns, reports each problem on stderr and returns how many it
 * found; it never aborts. zmalloc_report_leaks() prints live blocks grouped
 * by allocation site, largest first, and returns the number of live blocks.
 * ZMALLOC_LEAK_REPORT=1 in the environment runs it (to stderr) at exit. */
int zmalloc_verify(void);
size_t zmalloc_report_leaks(FILE *out);

/* Extension: sampled heap profiler, in every build, on every backend and in
 * the preload library. It samples allocations at exponentially distributed
 * intervals of requested bytes with mean `bytes` (tcmalloc's and jemalloc's
 * scheme: an allocation of s bytes is sampled with probability
 * 1 - exp(-s/bytes)), records the sample's stack (frame pointers: complete
 * in code built with -fno-omit-frame-pointer, else at least the allocating
 * function) and weights it by the inverse of that probability, so every
 * figure of the profile is an unbiased estimate. 0 turns it off. The
 * environment sets it at start: ZMALLOC_PROF_SAMPLE=<bytes> (512k, 1m also
 * accepted). The calling thread follows a change at once, other threads
 * within their next 64 MiB of allocations.
 * Cost: off, one never-taken branch on allocation and a 5-instruction
 * filter test on free (shared with guarded sampling); at a 512 KiB mean a
 * sample (PRNG draw, stack walk, two lock-free table inserts) every 512 KiB
 * of allocations, and a profiled block's free looks it up (lock-free). */
void zmalloc_prof_set_sample(size_t bytes);
size_t zmalloc_prof_get_sample(void);
/* Extension: write the live heap profile to path ("%p" becomes the process
 * id; NULL: the ZMALLOC_PROF_FILE path) in gperftools' heap profile format,
 * which `google-pprof --text program path` (and --svg, with graphviz) reads
 * as it is: in-use figures by default, allocated-since-start with
 * --alloc_space/--alloc_objects. Allocates nothing (safe at exit, in the
 * preload library). 0 on success, -1 with errno on failure.
 * ZMALLOC_PROF_FILE=<path> writes it when the process exits normally. */
int zmalloc_prof_dump(const char *path);
/* Extension: samples lost because the profiler's fixed tables were full
 * (8192 distinct stacks, about 100000 live samples); 0 normally. */
size_t zmalloc_prof_dropped(void);

/* Extension: guarded sampling. About one allocation in n of at most 8 KiB
 * (0: off) is placed in a small reserved area of 256 slots, its end against
 * an inaccessible guard page (or, every other use of a slot, its start just
 * after one), and its pages made inaccessible when it is freed; freed slots
 * are recycled first in, first out. A write past the end, before the start
 * or into the freed block raises SIGSEGV, and the handler prints
 * "zmalloc: guarded sample: heap overflow" (or "heap underflow", "use after
 * free") with the address, the block's size and its allocation and free
 * stacks, then aborts; a fault outside the area goes to the SIGSEGV handler
 * the program had installed before. An overflow into the few bytes a
 * block's alignment leaves before the guard page is found when the block
 * is freed, and so is a write before the start of a block placed against
 * its end's guard page (the bytes before it are the slot's fill: found
 * unless the value written is the fill byte 0xa7, and only if the block is
 * freed); before a block placed at its page's start it faults at once.
 * Which allocations are picked is proportional to their size (the
 * sampler counts bytes; n is turned into bytes with the thread's mean
 * request size). ZMALLOC_GUARD_SAMPLE=<n> sets it at start.
 * Cost: two mprotect calls per guarded block. */
void zmalloc_guard_set_sample(size_t n);

/* Extension: allocation sites as file:line in verification reports. Define
 * ZMALLOC_DEBUG_SITES before including this header (in a verification
 * build; elsewhere it changes nothing) and the allocating calls below
 * become macros that record __FILE__ and __LINE__ before calling the real
 * function; without it a site is the caller's return address, symbolised
 * with dladdr(). zfree and the function names themselves (taking their
 * address) are untouched. */
#if ZMALLOC_DEBUG_BUILD
void zmalloc_debug_site(const char *file, int line);
#if defined(ZMALLOC_DEBUG_SITES)
#define ZMALLOC_AT_SITE_(call) (zmalloc_debug_site(__FILE__, __LINE__), call)
#define zmalloc(...) ZMALLOC_AT_SITE_(zmalloc(__VA_ARGS__))
#undef zcalloc
#define zcalloc(...) ZMALLOC_AT_SITE_(zmalloc_calloc(__VA_ARGS__))
#define zcalloc_num(...) ZMALLOC_AT_SITE_(zcalloc_num(__VA_ARGS__))
#define zrealloc(...) ZMALLOC_AT_SITE_(zrealloc(__VA_ARGS__))
#define ztrymalloc(...) ZMALLOC_AT_SITE_(ztrymalloc(__VA_ARGS__))
#define ztrycalloc(...) ZMALLOC_AT_SITE_(ztrycalloc(__VA_ARGS__))
#define ztryrealloc(...) ZMALLOC_AT_SITE_(ztryrealloc(__VA_ARGS__))
#define zmalloc_usable(...) ZMALLOC_AT_SITE_(zmalloc_usable(__VA_ARGS__))
#define zcalloc_usable(...) ZMALLOC_AT_SITE_(zcalloc_usable(__VA_ARGS__))
#define zrealloc_usable(...) ZMALLOC_AT_SITE_(zrealloc_usable(__VA_ARGS__))
#define ztrymalloc_usable(...) ZMALLOC_AT_SITE_(ztrymalloc_usable(__VA_ARGS__))
#define ztrycalloc_usable(...) ZMALLOC_AT_SITE_(ztrycalloc_usable(__VA_ARGS__))
#define ztryrealloc_usable(...) ZMALLOC_AT_SITE_(ztryrealloc_usable(__VA_ARGS__))
#define zstrdup(...) ZMALLOC_AT_SITE_(zstrdup(__VA_ARGS__))
#define zmalloc_aligned(...) ZMALLOC_AT_SITE_(zmalloc_aligned(__VA_ARGS__))
#define ztrymalloc_aligned(...) ZMALLOC_AT_SITE_(ztrymalloc_aligned(__VA_ARGS__))
#endif
#endif

#ifdef __cplusplus
}
#endif

#endif /* ZMALLOC_H */
