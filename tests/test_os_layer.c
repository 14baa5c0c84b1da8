/* test_os_layer.c: the platform functions other layers build on (the
 * clock, the mapped-page probe, write_all, the early environment reader)
 * and platform.h's return convention: 0 / -1 with errno. */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "platform.h"
#include "test.h"

static void test_clock(void) {
    unsigned long long a = zm_os_clock_ms();
    struct timespec pause = {0, 30 * 1000 * 1000};
    nanosleep(&pause, NULL);
    unsigned long long b = zm_os_clock_ms();
    CHECK(a > 0);
    CHECK(b >= a + 20); /* coarse clock: a few ms of resolution */
}

static void test_probe_mapped(void) {
    size_t page = zm_os_page_size();
    char *m = zm_os_map(3 * page);
    CHECK(m != NULL);
    CHECK(zm_os_unmap(m + page, page) == 0); /* a hole in the middle */
    CHECK(zm_os_probe_mapped(m, page) == 0);
    CHECK(zm_os_probe_mapped(m + page - 16, 16) == 0);
    errno = 0;
    CHECK(zm_os_probe_mapped(m + page, 1) == -1 && errno == ENOMEM);
    CHECK(zm_os_probe_mapped(m + page - 16, 32) == -1);
    CHECK(zm_os_probe_mapped(m + 2 * page, page) == 0);
    CHECK(zm_os_unmap(m, page) == 0 && zm_os_unmap(m + 2 * page, page) == 0);
    CHECK(zm_os_unmap(NULL, page) == 0);
}

typedef struct seen {
    int mine, other;
} seen;

static void note_entry(const char *entry, void *arg) {
    seen *s = arg;
    if (strcmp(entry, "ZM_OS_LAYER_TEST=present") == 0) s->mine++;
    if (strncmp(entry, "PATH=", 5) == 0) s->other++;
}

static void test_environ_each(void) {
    if (!getenv("ZM_OS_LAYER_TEST")) {
        /* /proc/self/environ is the environment at exec: re-exec with it. */
        setenv("ZM_OS_LAYER_TEST", "present", 1);
        char *argv[] = {"test_os_layer", NULL};
        fflush(NULL);
        /* The path, not /proc/self/exe itself: under valgrind that would
         * name valgrind, while readlink is answered with our own path. */
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
        execv(self, argv);
        CHECK(!"re-exec failed");
        return;
    }
    seen s = {0, 0};
    CHECK(zm_os_environ_each(note_entry, &s) == 0);
    CHECK(s.mine == 1);
    CHECK(s.other == (getenv("PATH") != NULL));
}

static void test_write_all(void) {
    int fd[2];
    CHECK(pipe(fd) == 0);
    CHECK(zm_os_write_all(fd[1], "hello", 5) == 0);
    char buf[8] = {0};
    CHECK(read(fd[0], buf, sizeof buf) == 5 && memcmp(buf, "hello", 5) == 0);
    close(fd[0]);
    signal(SIGPIPE, SIG_IGN);
    errno = 0;
    CHECK(zm_os_write_all(fd[1], "x", 1) == -1 && errno == EPIPE);
    close(fd[1]);
}

static void test_proc_stat_field(void) {
    long long v;
    CHECK(zm_os_proc_stat_field(24, &v) == 0 && v > 0);
    errno = 0;
    CHECK(zm_os_proc_stat_field(2, &v) == -1 && errno == EINVAL);
    CHECK(zm_os_proc_stat_field(1000, &v) == -1);
}

int main(void) {
    test_environ_each(); /* first: it may re-exec */
    test_clock();
    test_probe_mapped();
    test_write_all();
    test_proc_stat_field();
    return test_summary("test_os_layer");
}
