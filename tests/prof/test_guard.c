/* test_guard.c: guarded sampling. Each bad access runs in a forked child
 * (test.h's run_child) and must die by SIGABRT with the report's message and
 * the allocating function's name in the allocation stack (the test is built
 * with frame pointers and exported symbols, tests/prof/CMakeLists.txt).
 * Also: the guarded block is a normal block to the program (size, realloc,
 * accounting), faults outside the area reach the program's own SIGSEGV
 * handler, and guarded blocks survive fork and thread exit. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "sample.h"
#include "test.h"
#include "zmalloc.h"

#define PAGE 4096u

/* A guarded block of `size` bytes, right-placed (against the guard page
 * after it) or left-placed (just after an inaccessible page). */
__attribute__((noinline)) char *guard_alloc_site(size_t size, int right) {
    zmalloc_guard_set_sample(1);
    for (int i = 0; i < 100000; i++) {
        char *p = zmalloc(size);
        uintptr_t u = (uintptr_t)p;
        /* Right-placed: the end at the page's end (sizes that are multiples
         * of 16) or up to 15 bytes before it; left-placed: page-aligned. */
        if (zm_guard_owns(p) && (right ? u % PAGE != 0 : u % PAGE == 0)) {
            zmalloc_guard_set_sample(0);
            return p;
        }
        zfree(p);
    }
    return NULL;
}

static void overflow(void *arg) {
    (void)arg;
    char *p = guard_alloc_site(64, 1);
    ((volatile char *)p)[64] = 1;
}

static void underflow(void *arg) {
    (void)arg;
    char *p = guard_alloc_site(100, 0);
    ((volatile char *)p)[-1] = 1;
}

/* Before the start of a block placed against the guard page after it: the
 * byte is the slot's fill, accessible, and the free finds it changed. */
static void underflow_at_free(void *arg) {
    (void)arg;
    char *p = guard_alloc_site(100, 1);
    ((volatile char *)p)[-1] = 1;
    zfree(p);
}

__attribute__((noinline)) void guard_free_site(char *p) {
    zfree(p);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
}

static void use_after_free(void *arg) {
    (void)arg;
    char *p = guard_alloc_site(200, 1);
    guard_free_site(p);
    ((volatile char *)p)[10] = 1;
}

static void slack_overflow(void *arg) {
    (void)arg;
    /* 13 bytes keep 8-byte alignment: 3 bytes before the guard page. */
    char *p = guard_alloc_site(13, 1);
    if (!p) return;
    ((volatile char *)p)[13] = 1;
    zfree(p);
}

static void double_free(void *arg) {
    (void)arg;
    char *p = guard_alloc_site(32, 1);
    zfree(p);
    zfree(p);
}

static char *fork_block;
static void overflow_in_child(void *arg) {
    (void)arg;
    ((volatile char *)fork_block)[64] = 1;
}

static char *thread_block;
void *thread_body(void *arg);
void *thread_body(void *arg) {
    (void)arg;
    thread_block = guard_alloc_site(64, 1);
    __asm__ volatile("" ::: "memory");
    return NULL;
}
static void uaf_after_thread_exit(void *arg) {
    (void)arg;
    zfree(thread_block);
    ((volatile char *)thread_block)[0] = 1;
}

static void program_handler(int sig) {
    (void)sig;
    static const char msg[] = "program's own SIGSEGV handler\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(43);
    _exit(42);
}
static void wild_access_chains(void *arg) {
    (void)arg;
    signal(SIGSEGV, program_handler);
    char *p = guard_alloc_site(64, 1); /* installs the guard's handler */
    (void)p;
    volatile int *volatile wild = (int *)(uintptr_t)16;
    *wild = 1;
}

int main(void) {
    char buf[8192];
    /* Before anything is guarded the free filter is empty. */
    char *plain = zmalloc(64);
    CHECK(!zm_guard_owns(plain));
    zfree(plain);

    /* A guarded block behaves like any other. */
    size_t before = zmalloc_used_memory();
    char *g = guard_alloc_site(64, 1);
    CHECK(g != NULL);
    CHECK_EQ_SIZE(zmalloc_size(g), 64 + ZMALLOC_PREFIX_SIZE);
    CHECK(zmalloc_used_memory() == before + 64 + ZMALLOC_PREFIX_SIZE);
    for (int i = 0; i < 64; i++) CHECK(g[i] == 0);
    memset(g, 'x', 64);
    g = zrealloc(g, 5000); /* moves out of the guarded area */
    CHECK(g && g[0] == 'x' && g[63] == 'x');
    zfree(g);
    CHECK(zmalloc_used_memory() == before);

    int rc = run_child(overflow, NULL, buf, sizeof buf);
    CHECK(rc == -SIGABRT);
    CHECK(strstr(buf, "zmalloc: guarded sample: heap overflow") != NULL);
    CHECK(strstr(buf, "64-byte block") != NULL);
    CHECK(strstr(buf, "guard_alloc_site") != NULL);
    if (rc != -SIGABRT || !strstr(buf, "guard_alloc_site")) fprintf(stderr, "%s\n", buf);

    rc = run_child(underflow, NULL, buf, sizeof buf);
    CHECK(rc == -SIGABRT);
    CHECK(strstr(buf, "zmalloc: guarded sample: heap underflow") != NULL);
    CHECK(strstr(buf, "100-byte block") != NULL);
    CHECK(strstr(buf, "guard_alloc_site") != NULL);

    /* Underflow is deterministic either way a block is placed: at the start
     * of its page it faults on the first byte before it (above); against
     * the guard page after it, the write lands in the slot's fill and the
     * free reports it. */
    rc = run_child(underflow_at_free, NULL, buf, sizeof buf);
    CHECK(rc == -SIGABRT);
    CHECK(strstr(buf, "zmalloc: guarded sample: heap underflow") != NULL);
    CHECK(strstr(buf, "found when freed") != NULL);
    CHECK(strstr(buf, "100-byte block") != NULL);
    CHECK(strstr(buf, "guard_alloc_site") != NULL);

    rc = run_child(use_after_free, NULL, buf, sizeof buf);
    CHECK(rc == -SIGABRT);
    CHECK(strstr(buf, "zmalloc: guarded sample: use after free") != NULL);
    CHECK(strstr(buf, "guard_alloc_site") != NULL);
    CHECK(strstr(buf, "freed by thread") != NULL);
    CHECK(strstr(buf, "guard_free_site") != NULL);

    rc = run_child(slack_overflow, NULL, buf, sizeof buf);
    CHECK(rc == -SIGABRT);
    CHECK(strstr(buf, "zmalloc: guarded sample: heap overflow") != NULL);
    CHECK(strstr(buf, "found when freed") != NULL);

    rc = run_child(double_free, NULL, buf, sizeof buf);
    CHECK(rc == -SIGABRT);
    CHECK(strstr(buf, "zmalloc: guarded sample: double free") != NULL);

    /* Across fork: the parent's guarded block is guarded in the child. */
    fork_block = guard_alloc_site(64, 1);
    rc = run_child(overflow_in_child, NULL, buf, sizeof buf);
    CHECK(rc == -SIGABRT);
    CHECK(strstr(buf, "heap overflow") != NULL);
    CHECK(strstr(buf, "guard_alloc_site") != NULL);
    zfree(fork_block);

    /* A block of a thread that has exited. */
    pthread_t th;
    pthread_create(&th, NULL, thread_body, NULL);
    pthread_join(th, NULL);
    CHECK(thread_block != NULL);
    rc = run_child(uaf_after_thread_exit, NULL, buf, sizeof buf);
    CHECK(rc == -SIGABRT);
    CHECK(strstr(buf, "use after free") != NULL);
    CHECK(strstr(buf, "thread_body") != NULL);
    if (!strstr(buf, "thread_body")) fprintf(stderr, "%s\n", buf);
    zfree(thread_block);

    /* A fault elsewhere reaches the handler the program had. */
    rc = run_child(wild_access_chains, NULL, buf, sizeof buf);
    CHECK(rc == 42);
    CHECK(strstr(buf, "program's own SIGSEGV handler") != NULL);
    CHECK(strstr(buf, "guarded sample") == NULL);

    /* About one in N: fixed sizes, the guarded share at N = 50. */
    zm_smp_seed(7);
    zmalloc_guard_set_sample(50);
    int guarded = 0;
    for (int i = 0; i < 20000; i++) {
        char *p = zmalloc(64);
        guarded += zm_guard_owns(p);
        zfree(p);
    }
    zmalloc_guard_set_sample(0);
    /* Expected 400; the slots are recycled, so none runs out. Binomial
     * sd 20; the mean-size estimate starts at 256 bytes and converges
     * within the first few guarded blocks. */
    printf("guarded %d of 20000 at N = 50 (expected about 400)\n", guarded);
    CHECK(guarded > 300 && guarded < 500);
    return test_summary("test_guard");
}
