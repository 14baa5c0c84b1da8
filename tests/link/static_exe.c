/* static_exe.c: the API suite in a fully static executable (cc -static).
 *
 * Built by tests/link/run.sh against an installed zmalloc, for backends
 * whose static archives exist. A static executable has no dynamic symbol
 * table to search, so the jemalloc backend cannot find jemalloc's plain
 * malloc/calloc/free with dladdr + dlsym and falls back to its
 * mallocx/dallocx forms (src/backend_jemalloc.c, "resolution"). This is the
 * one way users link that takes that path, so here it is asserted to be the
 * path taken, that the blocks come from jemalloc (its own per-thread
 * counter grows by each block's usable size), and then the whole API suite
 * runs on it.
 */
#include <stdint.h>
#include <string.h>

#include "test.h"
#include "zmalloc.h"
#include "zmalloc_config.h"

int test_api_suite(void);

#if ZMALLOC_BACKEND_JEMALLOC
#include <jemalloc/jemalloc.h>
/* Internal to libzmalloc; reachable here because a static link joins the
 * archive's objects into this executable. */
int zm_be_je_plain_entry_points(void);

static uint64_t je_thread_allocated(void) {
    uint64_t v = 0;
    size_t len = sizeof v;
    mallctl("thread.allocated", &v, &len, NULL, 0);
    return v;
}

static void fallback_binding(void) {
    CHECK(zm_be_je_plain_entry_points() == 0);
    size_t base = zmalloc_used_memory();
    for (size_t n = 1; n <= 70000; n = n * 3 + 1) {
        uint64_t before = je_thread_allocated();
        size_t usable = 0;
        char *p = zmalloc_usable(n, &usable);
        CHECK(p != NULL && usable >= n);
        CHECK(je_thread_allocated() - before >= usable);
        memset(p, 0x5a, usable);
        char *z = zcalloc(n);
        CHECK(z != NULL && z[n - 1] == 0);
        zfree(z);
        zfree(p);
    }
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}
#endif

int main(void) {
#if ZMALLOC_BACKEND_JEMALLOC
    fallback_binding();
#endif
    int api_failed = test_api_suite();
    int own = test_summary("static_exe");
    return own || api_failed;
}
