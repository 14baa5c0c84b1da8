/* test_api.c: the Redis zmalloc API on whichever backend this build uses.
 *
 * Every function of include/zmalloc.h part 1, the try/usable variants, the
 * SIZE_MAX/2 guard and calloc overflow (NULL + ENOMEM, heap and accounting
 * unchanged), the OOM handler (caught in a handler and in forked children),
 * and allocator figures. Accounting is checked back to the exact baseline
 * after each scenario.
 */
#include <errno.h>
#include <stdint.h>

#include "test.h"
#include "zmalloc.h"

static size_t oom_seen;
static int oom_calls;
static void counting_oom(size_t size) {
    oom_seen = size;
    oom_calls++;
}

static int all_bytes(const unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

static void test_basic(void) {
    size_t base = zmalloc_used_memory();
    for (size_t size = 0; size <= 5000; size += (size < 300 ? 1 : 97)) {
        size_t usable = 0;
        unsigned char *p = zmalloc_usable(size, &usable);
        CHECK(p != NULL);
        CHECK(usable >= size);
        CHECK(usable >= 1); /* a 0-byte request still gets a block */
        /* zmalloc.h: 16-aligned, or 8-aligned when the block's usable size
         * is not a multiple of 16 (the pool's 8-, 24-, 40- and 56-byte
         * classes, as Redis's jemalloc with its 8-byte quantum). */
        CHECK(((uintptr_t)p & ((usable & 15) ? 7 : 15)) == 0);
        memset(p, 0xAB, usable); /* all of it writable */
        CHECK_EQ_SIZE(zmalloc_usable_size(p), usable);
        CHECK_EQ_SIZE(zmalloc_size(p), usable + ZMALLOC_PREFIX_SIZE);
        CHECK_EQ_SIZE(zmalloc_used_memory(), base + usable + ZMALLOC_PREFIX_SIZE);
        size_t freed = 0;
        zfree_usable(p, &freed);
        CHECK_EQ_SIZE(freed, usable);
        CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    }
    zfree(NULL);
    size_t u = 99;
    zfree_usable(NULL, &u);
    CHECK_EQ_SIZE(u, 0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void test_calloc_zeroes_recycled(void) {
    size_t base = zmalloc_used_memory();
    for (int round = 0; round < 50; round++) {
        size_t size = 16 + (size_t)round * 37;
        unsigned char *dirty = zmalloc(size);
        memset(dirty, 0xFF, zmalloc_usable_size(dirty));
        zfree(dirty);
        size_t usable;
        unsigned char *z = (round & 1) ? zcalloc_usable(size, &usable) : ztrycalloc_usable(size, &usable);
        CHECK(z && all_bytes(z, usable, 0));
        zfree(z);
        z = (round & 1) ? zcalloc(size) : ztrycalloc(size);
        CHECK(z && all_bytes(z, size, 0));
        zfree(z);
        z = zcalloc_num(3, size);
        CHECK(z && all_bytes(z, 3 * size, 0));
        zfree(z);
    }
    /* Large blocks too: a dirty freed mapping may come back larger than
     * asked for, and every usable byte must be zero. */
    for (size_t big = 300000; big <= 3000000; big *= 3) {
        unsigned char *dirty = zmalloc(big * 2);
        memset(dirty, 0xEE, zmalloc_usable_size(dirty));
        zfree(dirty);
        size_t usable;
        unsigned char *z = zcalloc_usable(big, &usable);
        CHECK(z && usable >= big && all_bytes(z, usable, 0));
        zfree(z);
    }
    void *z0 = zcalloc_num(0, 8); /* num 0 still returns a block */
    CHECK(z0 != NULL);
    zfree(z0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}
static int filled(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7)) return 0;
    return 1;
}

static void test_realloc(void) {
    size_t base = zmalloc_used_memory();
    size_t sizes[] = {1, 8, 24, 100, 1000, 4096, 70000, 300000, 3000000, 500, 7, 65536, 1 << 22, 3};
    size_t prev = 10;
    unsigned char *p = zmalloc(prev);
    fill(p, prev, 1);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t usable;
        unsigned char *q = (i & 1) ? zrealloc(p, sizes[i]) : zrealloc_usable(p, sizes[i], &usable);
        CHECK(q != NULL);
        size_t keep = prev < sizes[i] ? prev : sizes[i];
        CHECK(filled(q, keep, 1));
        if (!(i & 1)) CHECK_EQ_SIZE(usable, zmalloc_usable_size(q));
        CHECK_EQ_SIZE(zmalloc_used_memory(), base + zmalloc_size(q));
        fill(q, sizes[i], 1);
        p = q;
        prev = sizes[i];
    }
    /* size 0 frees and returns NULL. */
    CHECK(zrealloc(p, 0) == NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    /* NULL allocates. */
    p = zrealloc(NULL, 33);
    CHECK(p != NULL);
    size_t u = 5;
    CHECK(zrealloc_usable(p, 0, &u) == NULL);
    CHECK_EQ_SIZE(u, 0);
    p = ztryrealloc(NULL, 10);
    CHECK(p != NULL);
    p = ztryrealloc_usable(p, 100, &u);
    CHECK(p != NULL && u >= 100);
    zfree(p);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void test_try_failures(void) {
    size_t base = zmalloc_used_memory();
    size_t huge[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / 2 + 1, SIZE_MAX - 4096};
    for (size_t i = 0; i < 4; i++) {
        size_t usable = 123;
        errno = 0;
        CHECK(ztrymalloc(huge[i]) == NULL);
        CHECK(errno == ENOMEM);
        CHECK(ztrymalloc_usable(huge[i], &usable) == NULL);
        CHECK_EQ_SIZE(usable, 0);
        CHECK(ztrycalloc(huge[i]) == NULL);
        usable = 7;
        CHECK(ztrycalloc_usable(huge[i], &usable) == NULL);
        CHECK_EQ_SIZE(usable, 0);
        /* Deliberate difference from Redis: the old block survives. */
        unsigned char *keep = zmalloc(64);
        fill(keep, 64, 9);
        CHECK(ztryrealloc(keep, huge[i]) == NULL);
        CHECK(ztryrealloc_usable(keep, huge[i], &usable) == NULL);
        CHECK(filled(keep, 64, 9));
        CHECK_EQ_SIZE(zmalloc_used_memory(), base + zmalloc_size(keep));
        zfree(keep);
        CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    }
    /* Below the guard but far beyond the machine: the backend says no. */
    errno = 0;
    CHECK(ztrymalloc(SIZE_MAX / 2 - 4096) == NULL);
    CHECK(errno == ENOMEM);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    /* The heap still works. */
    void *p = zmalloc(100);
    CHECK(p != NULL);
    zfree(p);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void test_oom_handler(void) {
    size_t base = zmalloc_used_memory();
    zmalloc_set_oom_handler(counting_oom);
    oom_calls = 0;
    CHECK(zmalloc(SIZE_MAX) == NULL);
    CHECK(oom_calls == 1 && oom_seen == SIZE_MAX);
    CHECK(zcalloc(SIZE_MAX / 2) == NULL);
    CHECK(oom_calls == 2 && oom_seen == SIZE_MAX / 2);
    size_t usable;
    CHECK(zmalloc_usable(SIZE_MAX / 2 + 5, &usable) == NULL);
    CHECK(oom_calls == 3 && oom_seen == SIZE_MAX / 2 + 5);
    CHECK(zcalloc_usable(SIZE_MAX - 1, &usable) == NULL);
    CHECK(oom_calls == 4 && oom_seen == SIZE_MAX - 1);
    /* calloc_num: overflow and size 0 both report SIZE_MAX, as Redis. */
    CHECK(zcalloc_num(SIZE_MAX / 8, 16) == NULL);
    CHECK(oom_calls == 5 && oom_seen == SIZE_MAX);
    CHECK(zcalloc_num(10, 0) == NULL);
    CHECK(oom_calls == 6 && oom_seen == SIZE_MAX);
    void *p = zmalloc(10);
    CHECK(zrealloc(p, SIZE_MAX) == NULL);
    CHECK(oom_calls == 7 && oom_seen == SIZE_MAX);
    CHECK(zrealloc_usable(p, SIZE_MAX / 2, &usable) == NULL);
    CHECK(oom_calls == 8);
    zfree(p); /* still ours after the failed zrealloc */
    CHECK(zmalloc_aligned(3, 16) == NULL);
    CHECK(oom_calls == 9);
    zmalloc_set_oom_handler(NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void die_zmalloc(void *arg) {
    (void)arg;
    zmalloc(SIZE_MAX);
}
static void die_calloc_num(void *arg) {
    (void)arg;
    zcalloc_num(SIZE_MAX / 2, 4);
}
static void die_realloc(void *arg) {
    (void)arg;
    zrealloc(zmalloc(8), SIZE_MAX / 2);
}

static void test_default_oom_dies(void) {
    char msg[96];
    snprintf(msg, sizeof msg, "zmalloc: Out of memory trying to allocate %zu bytes", SIZE_MAX);
    CHECK(expect_death(die_zmalloc, NULL, msg, 1));
    CHECK(expect_death(die_calloc_num, NULL, msg, 1));
    snprintf(msg, sizeof msg, "zmalloc: Out of memory trying to allocate %zu bytes", SIZE_MAX / 2);
    CHECK(expect_death(die_realloc, NULL, msg, 1));
}

static void test_strdup_and_aligned(void) {
    size_t base = zmalloc_used_memory();
    char *s = zstrdup("hello, zmalloc");
    CHECK(s && strcmp(s, "hello, zmalloc") == 0);
    zfree(s);
    for (size_t align = 1; align <= (1u << 21); align <<= 1) {
        unsigned char *p = zmalloc_aligned(align, 100);
        CHECK(p != NULL && ((uintptr_t)p & (align - 1)) == 0);
        CHECK(zmalloc_usable_size(p) >= 100);
        memset(p, 1, 100);
        zfree(p);
    }
    errno = 0;
    CHECK(ztrymalloc_aligned(3, 10) == NULL && errno == EINVAL);
    CHECK(ztrymalloc_aligned(0, 10) == NULL && errno == EINVAL);
    CHECK(ztrymalloc_aligned(64, SIZE_MAX) == NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void test_extend_to_usable(void) {
#ifdef HAVE_MALLOC_SIZE
    size_t usable;
    char *p = zmalloc_usable(20, &usable);
    char *q = extend_to_usable(p, zmalloc_usable_size(p));
    CHECK(p == q);
    memset(q, 'x', usable);
    zfree(q);
#else
    /* The size prefix: every usable byte is the caller's, and writing them
     * all leaves the block's recorded size, its charge and its free intact. */
    size_t base = zmalloc_used_memory();
    for (size_t size = 1; size <= 4096; size = size * 3 + 1) {
        size_t usable;
        unsigned char *p = zmalloc_usable(size, &usable);
        memset(p, 0xff, usable);
        CHECK_EQ_SIZE(zmalloc_usable_size(p), usable);
        CHECK_EQ_SIZE(zmalloc_used_memory(), base + usable + ZMALLOC_PREFIX_SIZE);
        unsigned char *q = zmalloc_aligned(64, size);
        memset(q, 0xff, zmalloc_usable_size(q));
        CHECK_EQ_SIZE(zmalloc_usable_size(q), size);
        zfree(q);
        zfree(p);
    }
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
#endif
}

static void test_allocator_info(void) {
    enum { N = 2000 };
    void *blocks[N];
    for (int i = 0; i < N; i++) blocks[i] = zmalloc(100 + (size_t)(i % 50) * 10);
    size_t allocated = 0, active = 0, resident = 0, retained = 99, muzzy = 99, frag = 99;
    CHECK(zmalloc_get_allocator_info(1, &allocated, &active, &resident, &retained, &muzzy, &frag) == 1);
    printf("  allocator %s: allocated %zu active %zu resident %zu retained %zu muzzy %zu frag %zu\n",
           zmalloc_backend(), allocated, active, resident, retained, muzzy, frag);
    /* Under a sanitizer or valgrind, glibc's mallinfo2 sees nothing. */
    int real_figures = !(ZMALLOC_BACKEND_LIBC && malloc_replaced_by_tool());
    if (real_figures) {
        CHECK(allocated >= 100 * N);
        CHECK(active >= allocated);
        CHECK(resident >= active);
    }
    CHECK(zmalloc_get_allocator_info(0, &allocated, &active, &resident, NULL, NULL, &frag) == 1);
    size_t a2, ac2, r2, f2;
    CHECK(zmalloc_get_allocator_info_by_arena(0, 1, &a2, &ac2, &r2, &f2) == 1);
    CHECK(!real_figures || (a2 > 0 && r2 > 0));
    for (int i = 0; i < N; i++) zfree(blocks[i]);
    /* The return values; what a purge gives back to the OS is measured in
     * test_stats.c. */
    CHECK(zmalloc_purge() == 0);
    CHECK(jemalloc_purge() == 0);
    set_jemalloc_bg_thread(0);
    CHECK(strlen(ZMALLOC_LIB) > 8 && strncmp(ZMALLOC_LIB, "zmalloc-", 8) == 0);
    CHECK(zmalloc_backend() != NULL && zmalloc_backend()[0] != '\0');
    /* Text is non-empty; JSON parses (every backend). */
    for (int json = 0; json <= 1; json++) {
        char *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        zmalloc_print_stats(out, json);
        fclose(out);
        CHECK(len > 0);
        if (json && !json_is_valid(text, len))
            fprintf(stderr, "zmalloc_print_stats JSON does not parse:\n%.2000s\n", text);
        if (json) CHECK(json_is_valid(text, len));
        free(text); /* open_memstream's buffer is libc's */
    }
    CHECK(zmalloc_test(0, NULL, 0) == 0);
}

static void test_zmadvise_dontneed(void) {
    size_t size = 1 << 20;
    char *p = zmalloc(size);
    memset(p, 7, size);
    zmadvise_dontneed(p);
    zmadvise_dontneed(NULL);
    /* Whole pages inside the block were dropped and read back as zero;
     * the partial pages at the edges keep their bytes. */
    size_t mid = size / 2;
    CHECK(p[mid] == 0);
    p[mid] = 1; /* still writable */
    zfree(p);
    char *small = zmalloc(16);
    strcpy(small, "kept");
    zmadvise_dontneed(small); /* less than a page: nothing happens */
    CHECK(strcmp(small, "kept") == 0);
    zfree(small);
    zlibc_free(NULL);
    char *libc_block = strdup("from libc");
    zlibc_free(libc_block);
}

#ifdef ZMALLOC_BACKEND_JEMALLOC
#if ZMALLOC_BACKEND_JEMALLOC
static void test_jemalloc_extras(void) {
    size_t base = zmalloc_used_memory();
    void *p = zmalloc_with_flags(100, 0);
    CHECK(p != NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + zmalloc_size(p));
    p = zrealloc_with_flags(p, 5000, 0);
    CHECK(p != NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + zmalloc_size(p));
    zfree_with_flags(p, 0);
    void *q = zmalloc_no_tcache(64);
    CHECK(q != NULL);
    zfree_no_tcache(q);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}
#endif
#endif

/* tests/link/ builds this file into programs and a dlopen'ed plugin linked
 * every way a user links zmalloc; there the suite is a function by another
 * name. */
#ifndef TEST_API_ENTRY
#define TEST_API_ENTRY main
#endif
int TEST_API_ENTRY(void) {
    printf("backend: %s (%s)\n", zmalloc_backend(), ZMALLOC_LIB);
    test_basic();
    test_calloc_zeroes_recycled();
    test_realloc();
    test_try_failures();
    test_oom_handler();
    test_default_oom_dies();
    test_strdup_and_aligned();
    test_extend_to_usable();
    test_allocator_info();
    test_zmadvise_dontneed();
#if ZMALLOC_BACKEND_JEMALLOC
    test_jemalloc_extras();
#endif
    return test_summary("test_api");
}
