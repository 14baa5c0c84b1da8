/* test_debug_detect.c: verification mode catches what issue 5 lists.
 *
 * Each fatal detection (heap overflow and underflow, double free, invalid
 * free, on zfree and on zrealloc, plain and aligned blocks) runs in a forked
 * child whose stderr and SIGABRT are checked; the non-fatal ones (use after
 * free, zmalloc_verify counting) run in a child that exits with the count.
 * Sites: this file defines ZMALLOC_DEBUG_SITES, so reports name file:line;
 * a call spelt (zmalloc)(n) bypasses the macro and reports the return
 * address, symbolised with dladdr.
 */
#define ZMALLOC_DEBUG_SITES 1
#include <stdint.h>

#include "test.h"
#include "zmalloc.h"

/* Writes p[off] = v where the compiler cannot see the bounds (the writes
 * out of bounds are the point). */
static void poke(char *p, long off, int v) {
    __asm__ volatile("" : "+r"(p));
    p[off] = (char)v;
}

static int contains(const char *hay, const char *needle) {
    if (strstr(hay, needle)) return 1;
    fprintf(stderr, "  expected \"%s\" in:\n%s\n", needle, hay);
    return 0;
}

/* ---- fatal detections ---- */

static void overflow_one_byte(void *arg) {
    (void)arg;
    char *p = zmalloc(24);
    poke(p, 24, 'A'); /* one byte past the end */
    zfree(p);
}

static void overflow_on_realloc(void *arg) {
    (void)arg;
    char *p = zmalloc(13);
    poke(p, 15, 'B');
    p = zrealloc(p, 100);
    zfree(p);
}

static void overflow_usable(void *arg) {
    (void)arg;
    size_t usable;
    char *p = zmalloc_usable(10, &usable);
    memset(p, 'u', usable + 1); /* usable is exact: one more byte overflows */
    zfree(p);
}

static void overflow_aligned(void *arg) {
    size_t align = (size_t)(uintptr_t)arg;
    char *p = zmalloc_aligned(align, 100);
    if (((uintptr_t)p & (align - 1)) != 0) _exit(3);
    poke(p, 100, 'C');
    zfree(p);
}

static void underflow(void *arg) {
    (void)arg;
    char *p = zmalloc(40);
    poke(p, -1, 'D');
    zfree(p);
}

static void underflow_aligned_on_realloc(void *arg) {
    (void)arg;
    char *p = zmalloc_aligned(64, 40);
    poke(p, -3, 'E');
    zrealloc(p, 10);
}

static void double_free(void *arg) {
    (void)arg;
    char *p = zmalloc(50);
    zfree(p);
    zfree(p);
}

static void realloc_after_free(void *arg) {
    (void)arg;
    char *p = zmalloc(50);
    zfree(p);
    zrealloc(p, 60);
}

static void invalid_free_middle(void *arg) {
    (void)arg;
    char *p = zmalloc(64);
    zfree(p + 8);
}

static char not_from_zmalloc[64];
static void invalid_free_static(void *arg) {
    (void)arg;
    zfree(not_from_zmalloc + 16);
}

static void invalid_realloc(void *arg) {
    (void)arg;
    char local[32];
    zrealloc(local + 16, 10);
}

static void overflow_no_site_macro(void *arg) {
    (void)arg;
    char *p = (zmalloc)(24); /* no file:line: the return address is the site */
    poke(p, 25, 'F');
    zfree(p);
}

static void test_fatal(void) {
    CHECK(expect_death(overflow_one_byte, NULL, "zmalloc: heap overflow", 1));
    char buf[8192];
    /* The report names address, size, the wrong byte (offset=value) and the site. */
    CHECK(run_child(overflow_one_byte, NULL, buf, sizeof buf) == -SIGABRT);
    CHECK(contains(buf, "of 24 bytes allocated at "));
    CHECK(contains(buf, "test_debug_detect.c:"));
    CHECK(contains(buf, "24=0x41"));
    CHECK(contains(buf, "1 byte found wrong"));
    CHECK(contains(buf, "block 0x"));

    CHECK(expect_death(overflow_on_realloc, NULL, "zmalloc: heap overflow", 1));
    CHECK(run_child(overflow_on_realloc, NULL, buf, sizeof buf) == -SIGABRT);
    CHECK(contains(buf, "of 13 bytes") && contains(buf, "15=0x42"));
    CHECK(expect_death(overflow_usable, NULL, "zmalloc: heap overflow", 1));
    CHECK(expect_death(overflow_aligned, (void *)(uintptr_t)64, "zmalloc: heap overflow", 1));
    CHECK(expect_death(overflow_aligned, (void *)(uintptr_t)4096, "zmalloc: heap overflow", 1));
    CHECK(
        expect_death(overflow_aligned, (void *)(uintptr_t)(2u << 20), "zmalloc: heap overflow", 1));

    CHECK(expect_death(underflow, NULL, "zmalloc: heap underflow", 1));
    CHECK(run_child(underflow, NULL, buf, sizeof buf) == -SIGABRT);
    CHECK(contains(buf, "of 40 bytes") && contains(buf, "-1=0x44"));
    CHECK(expect_death(underflow_aligned_on_realloc, NULL, "zmalloc: heap underflow", 1));

    CHECK(expect_death(double_free, NULL, "zmalloc: double free", 1));
    CHECK(run_child(double_free, NULL, buf, sizeof buf) == -SIGABRT);
    CHECK(contains(buf, "block of 50 bytes allocated at ") && contains(buf, "already freed at"));
    CHECK(expect_death(realloc_after_free, NULL, "zmalloc: double free", 1));

    CHECK(expect_death(invalid_free_middle, NULL, "zmalloc: invalid free", 1));
    CHECK(run_child(invalid_free_middle, NULL, buf, sizeof buf) == -SIGABRT);
    CHECK(contains(buf, "8 bytes into live block") && contains(buf, "of 64 bytes"));
    CHECK(expect_death(invalid_free_static, NULL, "zmalloc: invalid free", 1));
    CHECK(expect_death(invalid_realloc, NULL, "zmalloc: invalid free", 1));

    CHECK(run_child(overflow_no_site_macro, NULL, buf, sizeof buf) == -SIGABRT);
    CHECK(contains(buf, "zmalloc: heap overflow") && contains(buf, "allocated at 0x"));
    printf("  site without macros: %s",
           strstr(buf, "allocated at") ? strstr(buf, "allocated at") : buf);
}

/* ---- non-fatal detections ---- */

static void verify_counts(void *arg) {
    (void)arg;
    char *freed = zmalloc(32);
    char *live = zmalloc(16);
    char *clean = zmalloc(100);
    zfree(freed);
    poke(freed, 3, 'G'); /* use after free, block still in quarantine */
    poke(live, 16, 'H'); /* overflow of a live block */
    int n = zmalloc_verify();
    int again = zmalloc_verify(); /* verify changes nothing: same count */
    poke(freed, 3, 0xDF);         /* repair, and all is quiet again */
    poke(live, 16, 0xFD);
    int after = zmalloc_verify();
    zfree(live);
    zfree(clean);
    _exit(n == 2 && again == 2 && after == 0 ? 42 : n);
}

/* A write into a freed block is also reported when the block leaves the
 * quarantine, without aborting. */
static void uaf_on_eviction(void *arg) {
    (void)arg;
    char *p = zmalloc(48);
    zfree(p);
    poke(p, 47, 'I');
    /* Many distinct addresses, so that every shard's quarantine turns over
     * (one block reused again and again would stay in one shard). */
    enum { N = 20000 };
    char **v = zmalloc(N * sizeof *v);
    for (int i = 0; i < N; i++)
        v[i] = zmalloc(16 + (size_t)i % 200);
    for (int i = 0; i < N; i++)
        zfree(v[i]);
    zfree(v);
    _exit(zmalloc_verify() == 0 ? 7 : 8);
}

static void test_non_fatal(void) {
    char buf[8192];
    CHECK_EQ_SIZE(run_child(verify_counts, NULL, buf, sizeof buf), 42);
    CHECK(contains(buf, "zmalloc: use after free: block 0x"));
    CHECK(contains(buf, "of 32 bytes allocated at ") && contains(buf, "freed at"));
    CHECK(contains(buf, "3=0x47"));
    CHECK(contains(buf, "zmalloc: heap overflow: block 0x") && contains(buf, "16=0x48"));

    CHECK_EQ_SIZE(run_child(uaf_on_eviction, NULL, buf, sizeof buf), 7);
    CHECK(contains(buf, "zmalloc: use after free") && contains(buf, "47=0x49"));

    CHECK_EQ_SIZE(zmalloc_verify(), 0);
}

/* ---- block contents and sizes ---- */

static void test_contents(void) {
    size_t base = zmalloc_used_memory();
    static const size_t sizes[] = {0, 1, 7, 8, 15, 16, 17, 100, 4095, 4096, 70000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i], want = n ? n : sizeof(long), usable = 0;
        unsigned char *p = zmalloc_usable(n, &usable);
        CHECK_EQ_SIZE(usable, want);
        CHECK_EQ_SIZE(zmalloc_usable_size(p), want);
        CHECK_EQ_SIZE(zmalloc_size(p), want);
        CHECK_EQ_SIZE(zmalloc_used_memory(), base + want);
        CHECK(((uintptr_t)p & 15) == 0);
        size_t nonzero = 0;
        for (size_t j = 0; j < want; j++)
            nonzero += p[j] != 0;
        CHECK_EQ_SIZE(nonzero, want); /* new blocks carry a non-zero fill */
        unsigned char *z = zcalloc(n);
        size_t zeros = 0;
        for (size_t j = 0; j < want; j++)
            zeros += z[j] == 0;
        CHECK_EQ_SIZE(zeros, want);
        CHECK_EQ_SIZE(zmalloc_usable_size(z), want);
        unsigned char *a = zmalloc_aligned(256, n);
        CHECK(((uintptr_t)a & 255) == 0);
        CHECK_EQ_SIZE(zmalloc_usable_size(a), want);
        zfree(p);
        zfree(z);
        zfree(a);
        CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    }
    /* zrealloc always moves and keeps the content. */
    char *p = zmalloc(10);
    memcpy(p, "abcdefghij", 10);
    char *q = zrealloc(p, 5);
    CHECK(q != p && memcmp(q, "abcde", 5) == 0);
    CHECK_EQ_SIZE(zmalloc_usable_size(q), 5);
    char *r = zrealloc(q, 3000);
    CHECK(r != q && memcmp(r, "abcde", 5) == 0);
    CHECK_EQ_SIZE(zmalloc_usable_size(r), 3000);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + 3000);
    zfree(r);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    CHECK_EQ_SIZE(zmalloc_verify(), 0);
    CHECK(strstr(ZMALLOC_LIB, "verification mode") != NULL);
}

int main(void) {
    test_contents();
    test_fatal();
    test_non_fatal();
    return test_summary("test_debug_detect");
}
