/* test_debug_leaks.c: zmalloc_report_leaks() and ZMALLOC_LEAK_REPORT.
 *
 * Blocks allocated at known sites (file:line through ZMALLOC_DEBUG_SITES,
 * or a return address for calls spelt (zmalloc)(n)) must be grouped by
 * site, with counts and bytes, largest first, and the return value must be
 * the number of live blocks. The environment path runs this program again
 * as a child with ZMALLOC_LEAK_REPORT=1 and a mode argument; the child
 * leaks on purpose and its stderr must carry the report at exit.
 */
#define ZMALLOC_DEBUG_SITES 1
#include <stdint.h>

#include "test.h"
#include "zmalloc.h"

/* The report of out as a string (in memory from libc's malloc, which the
 * layer never uses itself). */
static size_t report_to_string(char *buf, size_t cap) {
    FILE *f = fmemopen(buf, cap, "w");
    size_t n = zmalloc_report_leaks(f);
    fclose(f);
    return n;
}

static void *site_small(void) {
    return zmalloc(100); /* SITE_SMALL */
}

static const char *line_of(const char *report, const char *needle) {
    const char *p = strstr(report, needle);
    return p ? p : "";
}

/* Does the line starting at line contain needle? */
static int on_same_line(const char *line, const char *needle) {
    const char *p = strstr(line, needle), *end = strchr(line, '\n');
    return p && (!end || p < end);
}

static void test_report(void) {
    static char buf[1 << 16];
    size_t base = report_to_string(buf, sizeof buf);
    void *small[3], *big, *anon[2], *gone;
    for (int i = 0; i < 3; i++)
        small[i] = site_small();
    big = zcalloc(1000);
    anon[0] = (zmalloc)(7);
    anon[1] = (zmalloc)(7);
    gone = zmalloc(5);
    zfree(gone); /* freed blocks (even in quarantine) are not leaks */

    size_t live = report_to_string(buf, sizeof buf);
    printf("%s", buf);
    CHECK_EQ_SIZE(live, base + 6);
    /* Grouped by site with counts and bytes ... */
    const char *b = line_of(buf, "  1000 bytes in 1 block allocated at ");
    const char *s = line_of(buf, "  300 bytes in 3 blocks allocated at ");
    const char *a = line_of(buf, "bytes in 1 block allocated at 0x");
    CHECK(*b && *s);
    CHECK(on_same_line(b, "test_debug_leaks.c:"));
    CHECK(on_same_line(s, "test_debug_leaks.c:"));
    /* ... the two unnamed calls are two sites (two return addresses) ... */
    CHECK(*a);
    CHECK(strstr(buf, "  7 bytes in 1 block allocated at 0x") != NULL);
    /* ... largest first. */
    CHECK(b < s);
    CHECK(s < a);
    char head[128];
    snprintf(head, sizeof head, "zmalloc: leak report: %zu live blocks", base + 6);
    CHECK(strstr(buf, head) == buf);

    for (int i = 0; i < 3; i++)
        zfree(small[i]);
    zfree(big);
    zfree(anon[0]);
    zfree(anon[1]);
    CHECK_EQ_SIZE(report_to_string(buf, sizeof buf), base);
}

/* The child mode: leak two blocks at one line, one at another, exit. */
static int leaky_child(void) {
    for (int i = 0; i < 2; i++)
        (void)zmalloc(77);
    (void)zstrdup("leaked string"); /* 14 bytes */
    return 0;
}

/* Re-executes this test binary in a child (via run_child) with one mode
 * argument and a one-variable environment. */
typedef struct self_exec {
    const char *mode, *env;
} self_exec;

static void exec_self(void *arg) {
    const self_exec *x = arg;
    char *argv[] = {"test_debug_leaks", (char *)x->mode, NULL};
    char *envp[] = {(char *)x->env, NULL};
    execve("/proc/self/exe", argv, envp);
    _exit(127);
}

static int run_self(const char *mode, const char *env, char *buf, size_t cap) {
    self_exec x = {mode, env};
    return run_child(exec_self, &x, buf, cap);
}

static void test_env(void) {
    static char buf[1 << 16];
    CHECK_EQ_SIZE(run_self("leak-child", "ZMALLOC_LEAK_REPORT=1", buf, sizeof buf), 0);
    printf("child stderr:\n%s", buf);
    CHECK(strstr(buf, "zmalloc: leak report: 3 live blocks, 168 bytes, from 2 allocation sites") !=
          NULL);
    const char *a = strstr(buf, "  154 bytes in 2 blocks allocated at ");
    const char *b = strstr(buf, "  14 bytes in 1 block allocated at ");
    CHECK(a && b && a < b);
    CHECK(a && on_same_line(a, "test_debug_leaks.c:"));
    CHECK(b && on_same_line(b, "test_debug_leaks.c:"));
    /* Without the variable (or with 0) nothing is printed. */
    CHECK_EQ_SIZE(run_self("leak-child", "ZMALLOC_LEAK_REPORT=0", buf, sizeof buf), 0);
    CHECK(strstr(buf, "leak report") == NULL);
    CHECK_EQ_SIZE(run_self("leak-child", "X=1", buf, sizeof buf), 0);
    CHECK(strstr(buf, "leak report") == NULL);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "leak-child") == 0) return leaky_child();
    test_report();
    test_env();
    return test_summary("test_debug_leaks");
}
