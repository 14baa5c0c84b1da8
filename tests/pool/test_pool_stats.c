/* test_pool_stats.c: the statistics keep allocated <= active <= resident,
 * move with allocations, and zmalloc_print_stats prints a per-class table
 * as text and valid JSON (checked with python3 -m json.tool when it is
 * installed). */
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "zmalloc.h"

static int json_valid(const char *path) {
    if (system("command -v python3 >/dev/null 2>&1") != 0) return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 -m json.tool %s >/dev/null", path);
    return system(cmd) == 0;
}

int main(void) {
    size_t a0, act0, r0, ret0, m0, f0;
    CHECK(zmalloc_get_allocator_info_full(1, &a0, &act0, &r0, &ret0, &m0, &f0) == 1);
    CHECK(a0 <= act0 && act0 <= r0);
    void *v[1000];
    for (int i = 0; i < 1000; i++) v[i] = zmalloc(48);
    void *big = zmalloc(3 << 20);
    size_t a1, act1, r1, ret1, m1, f1;
    zmalloc_get_allocator_info_full(1, &a1, &act1, &r1, &ret1, &m1, &f1);
    CHECK(a1 >= a0 + 1000 * 48 + (3 << 20));
    CHECK(a1 <= act1 && act1 <= r1);
    CHECK(m1 == 0);
    CHECK(f1 == act1 - a1);
    /* Text: the 48-byte class row shows our 1000 blocks (or more). */
    char path[] = "/tmp/zm_pool_stats_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    zmalloc_print_stats(f, 0);
    fflush(f);
    rewind(f);
    char line[256];
    int saw_header = 0, saw_48 = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "class") && strstr(line, "blocks") && strstr(line, "waste")) saw_header = 1;
        size_t cls;
        long blocks, pages;
        if (sscanf(line, " %zu %ld %ld", &cls, &blocks, &pages) == 3 && cls == 48 &&
            blocks >= 1000 && pages >= 1)
            saw_48 = 1;
    }
    CHECK(saw_header);
    CHECK(saw_48);
    fclose(f);
    unlink(path);
    /* JSON. */
    strcpy(path, "/tmp/zm_pool_stats_XXXXXX");
    fd = mkstemp(path);
    CHECK(fd >= 0);
    f = fdopen(fd, "w+");
    zmalloc_print_stats(f, 1);
    fflush(f);
    rewind(f);
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    CHECK(strstr(buf, "\"classes\":[") != NULL);
    CHECK(strstr(buf, "\"size\":48,") != NULL);
    int valid = json_valid(path);
    CHECK(valid != 0);
    if (valid < 0) fprintf(stderr, "python3 missing: JSON syntax not checked\n");
    unlink(path);
    for (int i = 0; i < 1000; i++) zfree(v[i]);
    zfree(big);
    size_t a2, act2, r2, ret2, m2, f2;
    zmalloc_get_allocator_info_full(1, &a2, &act2, &r2, &ret2, &m2, &f2);
    CHECK_EQ_SIZE(a2, a0);
    CHECK(a2 <= act2 && act2 <= r2);
    CHECK(strstr(zmalloc_backend(), "pool") != NULL);
    return test_summary("test_pool_stats");
}
