/* test_compat.c: the server-version forms of include/zmalloc.h.
 *
 * Built once per ZMALLOC_SERVER_API value (tests/CMakeLists.txt: this file
 * with the default, Redis 8.x, and as test_compat_api<value> with -D of
 * each other value), so every form compiles as the server that uses it
 * calls it, and does what that server expects:
 *   - zmalloc_get_allocator_info in the 3-, 5-, 6- or 7-argument form gives
 *     the same figures as the full form, in the right order;
 *   - zmadvise_dontneed in the 1- or 2-argument form (the size hint),
 *     zmadvise_dontneed_range;
 *   - zfree_with_size, z[try]realloc_usable2, zstrdup_usable,
 *     zmalloc_cache_aligned and valkey_* keep used memory exact;
 *   - zlibc_trim gives libc's free heap back to the OS;
 *   - the library exports no zcalloc: this file defines zlib's zcalloc
 *     itself, and links only while the names do not clash.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>

#include "test.h"
#include "zmalloc.h"

/* zlib's internal allocator hook (zutil.c), as a static zlib in the same
 * link brings it. A libzmalloc that exported zcalloc would make this
 * program fail to link (duplicate definition). */
#undef zcalloc
void *zcalloc(void *opaque, unsigned items, unsigned size);
void *zcalloc(void *opaque, unsigned items, unsigned size) {
    (void)opaque;
    return calloc(items, size);
}
static void *zcalloc_zlib_probe(void) {
    return zcalloc(NULL, 1, 64);
}
#define zcalloc zmalloc_calloc

static size_t far_apart(size_t a, size_t b) {
    return a > b ? a - b : b - a;
}

/* The server's form of zmalloc_get_allocator_info against the full form,
 * with 8 MiB live so the figures are well above noise. */
static void test_allocator_info_form(void) {
    size_t big = (size_t)8 << 20;
    char *p = zmalloc(big);
    memset(p, 1, big);
    size_t fa = 0, fc = 0, fr = 0, fret = 0, fm = 0, ff = 0;
    size_t a = 0, c = 0, r = 0, ret = 0, m = 0, f = 0;
    CHECK(zmalloc_get_allocator_info_full(1, &fa, &fc, &fr, &fret, &fm, &ff) == 1);
#if ZMALLOC_SERVER_API == ZMALLOC_API_REDIS_70
    CHECK(zmalloc_get_allocator_info(&a, &c, &r) == 1);
    ret = fret, m = fm, f = ff;
#elif ZMALLOC_SERVER_API == ZMALLOC_API_VALKEY_80
    CHECK(zmalloc_get_allocator_info(&a, &c, &r, &ret, &m, &f) == 1);
#elif ZMALLOC_SERVER_API == ZMALLOC_API_VALKEY_91
    CHECK(zmalloc_get_allocator_info(&a, &c, &r, &ret, &m) == 1);
    f = ff;
#else
    CHECK(zmalloc_get_allocator_info(1, &a, &c, &r, &ret, &m, &f) == 1);
#endif
    /* Nothing allocates between the two calls; 1 MiB leaves room for a
     * backend's own bookkeeping, far below the 8 MiB that would show if
     * two figures traded places. */
    size_t slack = (size_t)1 << 20;
    /* Under a sanitizer or valgrind, glibc's mallinfo2 sees nothing: the
     * libc backend's figures are zeros there (still the same in every form). */
    size_t want = (ZMALLOC_BACKEND_LIBC && malloc_replaced_by_tool()) ? 0 : big;
    CHECK(a >= want);
    CHECK(far_apart(a, fa) < slack);
    CHECK(far_apart(c, fc) < slack);
    CHECK(far_apart(r, fr) < slack);
    CHECK(far_apart(ret, fret) < slack);
    CHECK(far_apart(m, fm) < slack);
    CHECK(far_apart(f, ff) < slack);
    CHECK(c >= a && r >= want);
    /* The named forms answer whatever the value. */
    CHECK(zmalloc_get_allocator_info_v70(&a, &c, &r) == 1 && a >= want);
    CHECK(zmalloc_get_allocator_info_valkey80(&a, &c, &r, NULL, NULL, &f) == 1 && a >= want);
    CHECK(zmalloc_get_allocator_info_valkey91(&a, &c, &r, NULL, NULL) == 1 && a >= want);
    zfree(p);
}

static int page_is(const unsigned char *p, size_t n, unsigned char v) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

static void test_dontneed_forms(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = 64 * page;
    unsigned char *p = zmalloc(size);
    size_t mid = size / 2;
    memset(p, 7, size);
#if ZMALLOC_SERVER_API == ZMALLOC_API_VALKEY_91
    /* A hint below two pages says "small": nothing is asked or dropped. */
    zmadvise_dontneed(p, page);
    CHECK(p[mid] == 7);
    zmadvise_dontneed(p, size);
    CHECK(p[mid] == 0);
    memset(p, 7, size);
    zmadvise_dontneed(p, 0); /* no hint: the block's own size decides */
    CHECK(p[mid] == 0);
    zmadvise_dontneed(NULL, 0);
#else
    zmadvise_dontneed(p);
    CHECK(p[mid] == 0);
    zmadvise_dontneed(NULL);
#endif
    /* The named two-argument form, whatever the value. */
    memset(p, 7, size);
    zmadvise_dontneed_hint(p, 100);
    CHECK(p[mid] == 7);
    zmadvise_dontneed_hint(p, size);
    CHECK(p[mid] == 0);
    zfree(p);

    /* The range form drops exactly the pages it is given. */
    unsigned char *q = zmalloc_aligned(page, 8 * page);
    memset(q, 9, 8 * page);
    zmadvise_dontneed_range(q + 2 * page, 3 * page);
    CHECK(page_is(q, 2 * page, 9));
    CHECK(page_is(q + 2 * page, 3 * page, 0));
    CHECK(page_is(q + 5 * page, 3 * page, 9));
    zmadvise_dontneed_range(NULL, page);
    zmadvise_dontneed_range(q, 0);
    CHECK(page_is(q, 2 * page, 9));
    zfree(q);
}

static void test_sized_calls(void) {
    size_t base = zmalloc_used_memory();
    for (size_t n = 1; n < 70000; n = n * 3 + 1) {
        size_t usable = 0;
        void *p = zmalloc_usable(n, &usable);
        zfree_with_size(p, usable);
        CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    }
    zfree_with_size(NULL, 0);

    /* realloc_usable2: the old usable size comes back with the new one. */
    size_t u1 = 0, u2 = 0, old = 99;
    char *p = zrealloc_usable2(NULL, 100, &u1, &old);
    CHECK(p != NULL && u1 >= 100 && old == 0);
    CHECK_EQ_SIZE(zmalloc_usable_size(p), u1);
    memset(p, 'a', 100);
    p = zrealloc_usable2(p, 5000, &u2, &old);
    CHECK_EQ_SIZE(old, u1);
    CHECK(u2 >= 5000 && page_is((unsigned char *)p, 100, 'a'));
    CHECK_EQ_SIZE(zmalloc_usable_size(p), u2);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + u2 + ZMALLOC_PREFIX_SIZE);
    size_t u3 = 0;
    p = ztryrealloc_usable2(p, 300, &u3, &old);
    CHECK(p != NULL && u3 >= 300);
    CHECK_EQ_SIZE(old, u2);
    /* A failed try keeps the block (see zmalloc.h) and still reports it. */
    size_t u4 = 1;
    CHECK(ztryrealloc_usable2(p, SIZE_MAX / 2, &u4, &old) == NULL);
    CHECK_EQ_SIZE(old, u3);
    CHECK_EQ_SIZE(u4, 0);
    CHECK(page_is((unsigned char *)p, 100, 'a'));
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + u3 + ZMALLOC_PREFIX_SIZE);
    /* Size 0 frees, as zrealloc does: old usable still reported. */
    CHECK(zrealloc_usable2(p, 0, &u4, &old) == NULL);
    CHECK_EQ_SIZE(old, u3);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);

    size_t su = 0;
    char *s = zstrdup_usable("server compat", &su);
    CHECK(s != NULL && strcmp(s, "server compat") == 0);
    CHECK_EQ_SIZE(su, zmalloc_usable_size(s));
    CHECK(su >= sizeof "server compat");
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + su + ZMALLOC_PREFIX_SIZE);
    zfree(s);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void test_cache_aligned_and_valkey_names(void) {
    size_t base = zmalloc_used_memory();
    void *blocks[40];
    for (int i = 0; i < 40; i++) {
        size_t n = 1 + (size_t)i * 97;
        blocks[i] = zmalloc_cache_aligned(n);
        CHECK(blocks[i] != NULL && ((uintptr_t)blocks[i] & 63) == 0);
        CHECK(zmalloc_usable_size(blocks[i]) >= n);
        memset(blocks[i], 3, n);
    }
    for (int i = 0; i < 40; i++) zfree(blocks[i]);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);

    unsigned char *a = valkey_malloc(200);
    memset(a, 0xEE, 200);
    a = valkey_realloc(a, 4000);
    CHECK(a != NULL && page_is(a, 200, 0xEE));
    unsigned char *z = valkey_calloc(3000);
    CHECK(z != NULL && page_is(z, 3000, 0));
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + zmalloc_size(a) + zmalloc_size(z));
    valkey_free(a);
    valkey_free(z);
    valkey_free(NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    /* zcalloc is the header's name for zmalloc_calloc: zeroed, accounted. */
    unsigned char *c = zcalloc(500);
    CHECK(page_is(c, 500, 0));
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + zmalloc_size(c));
    zfree(c);
    /* And zlib's zcalloc, defined above, is not ours. */
    unsigned char *zl = zcalloc_zlib_probe();
    CHECK(zl != NULL && page_is(zl, 64, 0));
    free(zl);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

/* libc's free heap between a pinned block and the blocks freed below it is
 * not at the top of the heap, so free() cannot trim it: only
 * malloc_trim(0) gives it back. Measured where malloc() is glibc's: the
 * jemalloc, tcmalloc and mimalloc libraries replace malloc in the whole
 * process (and so do sanitizers and valgrind). */
static void test_zlibc_trim(void) {
    zlibc_trim(); /* callable everywhere */
    if (malloc_replaced_by_tool()) return;
#if defined(__GLIBC__) && (ZMALLOC_BACKEND_POOL || ZMALLOC_BACKEND_LIBC)
    enum { N = 2048, SZ = 8192 };
    static char *blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = malloc(SZ);
        memset(blocks[i], 5, SZ);
    }
    char *pin = malloc(SZ);
    memset(pin, 5, SZ);
    for (int i = 0; i < N; i++) free(blocks[i]);
    size_t before = zmalloc_get_rss();
    zlibc_trim();
    size_t after = zmalloc_get_rss();
    printf("zlibc_trim: rss %zu -> %zu KiB\n", before >> 10, after >> 10);
    CHECK(after + (size_t)8 * 1024 * 1024 <= before); /* 16 MiB were freed */
    free(pin);
#endif
}

int main(void) {
    printf("backend: %s, ZMALLOC_SERVER_API %d\n", zmalloc_backend(), ZMALLOC_SERVER_API);
    test_allocator_info_form();
    test_dontneed_forms();
    test_sized_calls();
    test_cache_aligned_and_valkey_names();
    test_zlibc_trim();
    return test_summary("test_compat");
}
