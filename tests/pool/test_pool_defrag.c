/* test_pool_defrag.c: active defragmentation on the pool, as Redis does it.
 *
 * A size class is fragmented (most pages left a quarter used, a few nearly
 * full); the hint must pick the sparse pages and spare the dense ones and
 * the page allocations come from; moving every hinted block with
 * zmalloc_no_tcache / copy / zfree_no_tcache (Redis's activeDefragAlloc)
 * must never put a block back into the page it leaves, keep every byte and
 * the accounting exact, and bring frag_smallbins, the class's pages and the
 * RSS down. Another thread's blocks, huge blocks and abandoned pages get 0,
 * from any thread (run under TSan by make test). The cost of one hint is
 * printed (a figure, not a check). zfree_no_tcache keeps its last 8 blocks
 * intact before freeing them (servers read what they just moved): checked
 * by test_lingering.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "pool/pool.h"
#include "test.h"
#include "zmalloc.h"

#define SZ 200 /* class 208: 315 blocks in a 64 KiB page */
#define N 40000

static void *blk[N];
static unsigned char keep[N];

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static zp_page *page_of(const void *p) {
    return zp_page_of(zp_segment_of(p), p);
}

static void fill_block(void *p, uint32_t id) {
    memset(p, (int)(id & 0xff), SZ);
    memcpy(p, &id, sizeof id);
}

static int block_intact(const void *p, uint32_t id) {
    uint32_t got;
    memcpy(&got, p, sizeof got);
    if (got != id) return 0;
    const unsigned char *c = p;
    for (size_t i = sizeof id; i < SZ; i++)
        if (c[i] != (unsigned char)(id & 0xff)) return 0;
    return 1;
}

static size_t frag_now(size_t *allocated) {
    size_t a, act, res, ret, muz, frag;
    zmalloc_get_allocator_info_full(1, &a, &act, &res, &ret, &muz, &frag);
    if (allocated) *allocated = a;
    return frag;
}

static long class_pages(unsigned cls) {
    return atomic_load(&zp_stat.class_pages[cls]);
}

/* Live blocks of ours per page, to judge the hint's answers. */
typedef struct page_use {
    zp_page *page;
    unsigned live;
    int hint; /* -1 unknown, else the answer for its blocks (all the same) */
    int mixed;
} page_use;
static page_use pages[4096];
static unsigned npages;

static page_use *use_of(zp_page *pg) {
    for (unsigned i = 0; i < npages; i++)
        if (pages[i].page == pg) return &pages[i];
    if (npages == 4096) return NULL;
    pages[npages] = (page_use){pg, 0, -1, 0};
    return &pages[npages++];
}

static void test_fragment_and_defrag(void) {
    unsigned cls = zp_class_of(SZ);
    for (uint32_t i = 0; i < N; i++) {
        blk[i] = zmalloc(SZ);
        fill_block(blk[i], i);
    }
    /* Pages of the first three quarters keep 1 block in 4, the last quarter
     * 9 in 10. */
    for (uint32_t i = 0; i < N; i++) {
        uint64_t r = next_rand() % 100;
        keep[i] = i < N * 3 / 4 ? r < 25 : r < 90;
        if (!keep[i]) {
            zfree(blk[i]);
            blk[i] = NULL;
        }
    }
    size_t alloc0;
    size_t frag0 = frag_now(&alloc0);
    long pages0 = class_pages(cls);
    size_t used0 = zmalloc_used_memory();
    zmalloc_purge();
    size_t rss0 = zmalloc_get_rss();

    /* The hint's answers before anything moves: one answer per page. */
    npages = 0;
    zp_page *current = zp_tl_heap->direct[cls];
    for (uint32_t i = 0; i < N; i++) {
        if (!blk[i]) continue;
        page_use *u = use_of(page_of(blk[i]));
        if (!u) continue;
        u->live++;
        int h = zmalloc_defrag_hint(blk[i]);
        if (u->hint >= 0 && u->hint != h) u->mixed = 1;
        u->hint = h;
    }
    unsigned sparse = 0, sparse_hinted = 0, dense = 0, dense_hinted = 0, mixed = 0;
    for (unsigned i = 0; i < npages; i++) {
        page_use *u = &pages[i];
        mixed += u->mixed;
        if (u->page == current) {
            CHECK(u->hint == 0);
            continue;
        }
        if (u->live * 100 <= 35 * u->page->reserved) {
            sparse++;
            sparse_hinted += u->hint == 1;
        } else if (u->live * 100 >= 80 * u->page->reserved) {
            dense++;
            dense_hinted += u->hint == 1;
        }
    }
    CHECK(mixed == 0);
    CHECK(sparse > 50 && dense > 10);
    CHECK_EQ_SIZE(sparse_hinted, sparse);
    CHECK_EQ_SIZE(dense_hinted, 0);
    printf("  before: %u pages of ours (%u sparse, %u dense), class pages %ld, frag %zu of %zu "
           "allocated, rss %zu\n",
           npages, sparse, dense, pages0, frag0, alloc0, rss0);
    CHECK(frag0 > alloc0 / 2);

    /* Redis's activeDefragAlloc over every live block, pass after pass. */
    unsigned long moves = 0, into_same_page = 0, into_sparse = 0, bad_usable = 0;
    int passes = 0, pass_moves;
    do {
        pass_moves = 0;
        for (uint32_t i = 0; i < N; i++) {
            if (!blk[i] || !zmalloc_defrag_hint(blk[i])) continue;
            zp_page *from = page_of(blk[i]);
            size_t size = zmalloc_usable_size(blk[i]);
            void *n = zmalloc_no_tcache(size);
            if (zmalloc_usable_size(n) != size) bad_usable++;
            if (page_of(n) == from) into_same_page++;
            zp_page *to = page_of(n);
            if (to != zp_tl_heap->direct[cls] && to->used * 8 < to->reserved) into_sparse++;
            memcpy(n, blk[i], size);
            zfree_no_tcache(blk[i]);
            blk[i] = n;
            moves++;
            pass_moves++;
        }
        passes++;
    } while (pass_moves && passes < 20);
    CHECK(pass_moves == 0); /* it settles */
    CHECK(moves > 0);
    CHECK(into_same_page == 0);
    CHECK(into_sparse == 0);
    CHECK(bad_usable == 0);
    unsigned bad = 0;
    for (uint32_t i = 0; i < N; i++)
        if (blk[i] && !block_intact(blk[i], i)) bad++;
    CHECK(bad == 0);
    /* Accounting: a move is neutral, to the byte, once the last 8 blocks
     * zfree_no_tcache keeps intact are freed (by the refreshing stats call,
     * as the servers' cron makes one); until then they still count. */
    CHECK(moves >= 8);
    CHECK_EQ_SIZE(zmalloc_used_memory(), used0 + 8 * zp_class_size(cls));
    size_t alloc1;
    size_t frag1 = frag_now(&alloc1);
    CHECK_EQ_SIZE(zmalloc_used_memory(), used0);
    CHECK_EQ_SIZE(alloc1, alloc0);
    long pages1 = class_pages(cls);
    zmalloc_purge();
    size_t rss1 = zmalloc_get_rss();
    printf("  after %d passes, %lu moves: class pages %ld, frag %zu of %zu allocated, rss %zu\n",
           passes, moves, pages1, frag1, alloc1, rss1);
    CHECK(frag1 < frag0 / 4);
    CHECK(frag1 < alloc1 / 8);
    /* live blocks / 315 per page, plus a few partly used ones. */
    size_t live = 0;
    for (uint32_t i = 0; i < N; i++) live += blk[i] != NULL;
    CHECK(pages1 <= (long)(live / 315) + 4);
    CHECK(pages1 < pages0 / 2);
#ifndef UNDER_SANITIZER
    /* The pages given back leave RSS (purged with MADV_DONTNEED). */
    size_t won = (size_t)(pages0 - pages1) << 16;
    CHECK(rss1 + won / 2 < rss0);
#endif
    for (uint32_t i = 0; i < N; i++) zfree(blk[i]);
    CHECK_EQ_SIZE(zmalloc_used_memory(), used0 - live * zp_class_size(cls));
}

static void test_edges(void) {
    CHECK(zmalloc_defrag_hint(NULL) == 0);
    void *huge = zmalloc((size_t)1 << 20);
    CHECK(zmalloc_defrag_hint(huge) == 0);
    zfree(huge);
    /* The page allocations come from: never. */
    void *p = zmalloc(1000);
    CHECK(page_of(p) == zp_tl_heap->direct[zp_class_of(1000)]);
    CHECK(zmalloc_defrag_hint(p) == 0);
    zfree(p);
    /* An emptied current page (kept for the next allocation) is not
     * fragmentation: nothing in it to move. */
    size_t f0 = frag_now(NULL), act0, act1, al;
    zmalloc_get_allocator_info_full(1, &al, &act0, NULL, NULL, NULL, NULL);
    void *lone = zmalloc(200000);
    zfree(lone);
    CHECK_EQ_SIZE(frag_now(NULL), f0);
    /* Nor active memory (Redis 7.x reads active - allocated as its
     * fragmentation): held for reuse, resident, not active. */
    zmalloc_get_allocator_info_full(1, &al, &act1, NULL, NULL, NULL, NULL);
    CHECK_EQ_SIZE(act1, act0);
    /* zmalloc_no_tcache is an accounted allocation of any size. */
    size_t u0 = zmalloc_used_memory();
    void *a = zmalloc_no_tcache(0), *b = zmalloc_no_tcache((size_t)1 << 20);
    void *c = zmalloc_no_tcache(100);
    CHECK(a && b && c);
    CHECK_EQ_SIZE(zmalloc_used_memory(),
                  u0 + zmalloc_usable_size(a) + zmalloc_usable_size(b) + zmalloc_usable_size(c));
    memset(b, 1, (size_t)1 << 20);
    size_t u3 = zmalloc_used_memory();
    zfree_no_tcache(a);
    zfree_no_tcache(b);
    zfree_no_tcache(c);
    zfree_no_tcache(NULL);
    /* They linger (counted) until zmalloc_purge or a refreshing stats call. */
    CHECK_EQ_SIZE(zmalloc_used_memory(), u3);
    zmalloc_purge();
    CHECK_EQ_SIZE(zmalloc_used_memory(), u0);
    /* With a memory limit it is plain zmalloc, limit included. */
    zmalloc_set_memory_limit(zmalloc_used_memory() + (1 << 20));
    void *d = zmalloc_no_tcache(100);
    CHECK(d != NULL);
    zfree_no_tcache(d);
    zmalloc_set_memory_limit(0);
    frag_now(NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), u0);
}

/* ---- lingering frees -------------------------------------------------- */

/* Redis 7.4's pubsub defrag frees the channel object it moved, then reads
 * it (a dict lookup whose stored key is still the old pointer). The pool
 * writes a free-list link into a freed block, so zfree_no_tcache keeps the
 * last 8 blocks intact before freeing them. Checked: content kept, the 9th
 * free frees the 1st, the ring emptied by zmalloc_purge, a refreshing
 * stats call, and the thread's exit. */
#define LINGER 8
static int robj_like_intact(const unsigned char *p, unsigned char v) {
    for (int i = 0; i < 48; i++)
        if (p[i] != v) return 0;
    return 1;
}

static void *lingering_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 3; i++) zfree_no_tcache(zmalloc_no_tcache(48));
    return NULL; /* three blocks still lingering: freed by the exit hook */
}

static void test_lingering(void) {
    frag_now(NULL);
    size_t u0 = zmalloc_used_memory();
    unsigned char *b[LINGER + 1];
    for (int i = 0; i <= LINGER; i++) {
        b[i] = zmalloc_no_tcache(48);
        memset(b[i], 0x40 + i, 48);
    }
    size_t one = zmalloc_usable_size(b[0]);
    for (int i = 0; i < LINGER; i++) zfree_no_tcache(b[i]);
    CHECK_EQ_SIZE(zmalloc_used_memory(), u0 + (LINGER + 1) * one);
    int intact = 0;
    for (int i = 0; i < LINGER; i++) intact += robj_like_intact(b[i], (unsigned char)(0x40 + i));
    CHECK(intact == LINGER); /* every freed block still readable as it was */
    zfree_no_tcache(b[LINGER]); /* frees b[0] */
    CHECK_EQ_SIZE(zmalloc_used_memory(), u0 + LINGER * one);
    CHECK(robj_like_intact(b[LINGER], 0x40 + LINGER));
    CHECK(robj_like_intact(b[1], 0x41));
    frag_now(NULL); /* refreshing stats call */
    CHECK_EQ_SIZE(zmalloc_used_memory(), u0);
    /* A thread that exits with blocks lingering gives them back. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, lingering_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), u0);
}

/* ---- other threads' blocks -------------------------------------------- */

#define TN 20000
static void *theirs[TN];
static _Atomic int phase; /* 1: their blocks ready; 2: stop churning */

static void *owner_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < TN; i++) theirs[i] = zmalloc(SZ);
    for (int i = 0; i < TN; i += 2) {
        zfree(theirs[i]);
        theirs[i] = NULL;
    }
    atomic_store(&phase, 1);
    /* Churn in the same class while the main thread asks about our pages:
     * our owner fields change under its questions. */
    void *churn[64] = {0};
    unsigned long k = 0;
    while (atomic_load(&phase) == 1) {
        unsigned j = (unsigned)(k++ % 64);
        zfree(churn[j]);
        churn[j] = zmalloc(SZ);
    }
    for (unsigned j = 0; j < 64; j++) zfree(churn[j]);
    return NULL; /* the odd blocks stay: their pages are abandoned */
}

static void test_other_threads(void) {
    pthread_t t;
    pthread_create(&t, NULL, owner_thread, NULL);
    while (atomic_load(&phase) != 1) sched_yield();
    unsigned long yes = 0;
    for (int round = 0; round < 20; round++)
        for (int i = 1; i < TN; i += 2) yes += zmalloc_defrag_hint(theirs[i]) != 0;
    CHECK(yes == 0);
    atomic_store(&phase, 2);
    pthread_join(t, NULL);
    /* Abandoned pages (their owner has exited): no either. */
    yes = 0;
    for (int i = 1; i < TN; i += 2) yes += zmalloc_defrag_hint(theirs[i]) != 0;
    CHECK(yes == 0);
    for (int i = 1; i < TN; i += 2) zfree(theirs[i]);
}

/* Several threads defragment their own fragmented blocks at once. */
static void *self_defrag_thread(void *arg) {
    unsigned long *bad = arg;
    enum { M = 8000 };
    static __thread void *mine[M];
    for (int i = 0; i < M; i++) {
        mine[i] = zmalloc(SZ);
        memset(mine[i], i & 0xff, SZ);
    }
    for (int i = 0; i < M; i++)
        if (i % 4) {
            zfree(mine[i]);
            mine[i] = NULL;
        }
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < M; i++) {
            if (!mine[i] || !zmalloc_defrag_hint(mine[i])) continue;
            void *n = zmalloc_no_tcache(SZ);
            if (page_of(n) == page_of(mine[i])) (*bad)++;
            memcpy(n, mine[i], SZ);
            zfree_no_tcache(mine[i]);
            mine[i] = n;
        }
    for (int i = 0; i < M; i++) {
        if (!mine[i]) continue;
        if (((unsigned char *)mine[i])[SZ - 1] != (unsigned char)(i & 0xff)) (*bad)++;
        zfree(mine[i]);
    }
    return NULL;
}

static void test_threads_defrag_own(void) {
    enum { T = 3 };
    pthread_t t[T];
    unsigned long bad[T] = {0};
    size_t u0 = zmalloc_used_memory();
    for (int i = 0; i < T; i++) pthread_create(&t[i], NULL, self_defrag_thread, &bad[i]);
    for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < T; i++) CHECK(bad[i] == 0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), u0);
}

/* Pages whose blocks another thread freed (Redis's lazy free) go back on
 * the owner's next refreshing stats call, not only when it allocates. */
#define RN 30000
static void *remote_blocks[RN];
static void *remote_freer(void *arg) {
    (void)arg;
    for (int i = 0; i < RN; i++) zfree(remote_blocks[i]);
    return NULL;
}

static void test_sweep_remote_frees(void) {
    const size_t size = 1200; /* a class nothing else here uses */
    unsigned cls = zp_class_of(size);
    long pages_before = class_pages(cls);
    for (int i = 0; i < RN; i++) remote_blocks[i] = zmalloc(size);
    long pages_full = class_pages(cls);
    pthread_t t;
    pthread_create(&t, NULL, remote_freer, NULL);
    pthread_join(t, NULL);
    size_t a, act, res, ret, muz, frag_stale, frag_swept;
    zmalloc_get_allocator_info_full(0, &a, &act, &res, &ret, &muz, &frag_stale);
    CHECK(class_pages(cls) == pages_full); /* nobody collected yet */
    /* A refresh visits at most 1024 pages; a few calls cover the heap. */
    for (int i = 0; i < 8; i++)
        zmalloc_get_allocator_info_full(1, &a, &act, &res, &ret, &muz, &frag_swept);
    long pages_after = class_pages(cls);
    printf("  remote frees: %ld pages of %zu-byte blocks, %ld after refresh; frag %zu -> %zu\n",
           pages_full - pages_before, size, pages_after - pages_before, frag_stale, frag_swept);
    CHECK(pages_full - pages_before > 500);
    CHECK(pages_after <= pages_before + 1); /* the current page may stay */
    CHECK(frag_swept + (size_t)(pages_full - pages_after - 1) * 60000 < frag_stale);
}

/* ---- cost of one hint ------------------------------------------------- */

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void measure_hint(void) {
    enum { M = 200000 };
    void **v = zmalloc(sizeof(void *) * M);
    for (int i = 0; i < M; i++) v[i] = zmalloc(64 + (i % 4) * 48);
    for (int i = 0; i < M; i++)
        if (next_rand() % 2) {
            zfree(v[i]);
            v[i] = NULL;
        }
    unsigned long calls = 0, yes = 0;
    double t0 = now_ns();
    for (int round = 0; round < 10; round++)
        for (int i = 0; i < M; i++)
            if (v[i]) {
                yes += zmalloc_defrag_hint(v[i]);
                calls++;
            }
    double dt = now_ns() - t0;
    printf("  hint: %.1f ns per call (%lu calls over %d blocks of 4 classes, %lu said move)\n",
           dt / (double)calls, calls, M / 2, yes);
    CHECK(calls > 0);
    for (int i = 0; i < M; i++) zfree(v[i]);
    zfree(v);
}

int main(void) {
    test_edges();
    test_lingering();
    test_fragment_and_defrag();
    test_other_threads();
    test_threads_defrag_own();
    test_sweep_remote_frees();
    measure_hint();
    return test_summary("test_pool_defrag");
}
