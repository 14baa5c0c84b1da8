/* tests/preload/guard.c: guarded sampling's death tests under the preload
 * library (tests/preload/run.sh runs it with LD_PRELOAD and
 * ZMALLOC_GUARD_SAMPLE=1). A plain-malloc program: it knows nothing of
 * zmalloc, so it tells a guarded block by the kernel's answer, not by
 * asking the library: write(2) from an address the guard made inaccessible
 * fails with EFAULT instead of raising SIGSEGV. Each bad access runs in a
 * forked child, which must die by SIGABRT with the report's message and
 * the allocating function's name in the allocation stack (built with frame
 * pointers and -rdynamic).
 *
 * Underflow, both placements: a block placed at the start of its page (just
 * after an inaccessible page) faults on the first byte written before it;
 * a block placed against the guard page after it has the slot's fill
 * before it, so the write is found when the block is freed.
 *
 * Usage: guard [--expect-none]; --expect-none: no guarded block may be
 * found (the library is not there, or sampling is off), exit 0 if so.
 * Prints one "ok"/"FAILED" line per case; exit status 1 on a failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096u

static int probe[2]; /* a pipe: probing writes into [1], drained from [0] */

/* 1 when the byte at address u cannot be read (the kernel says EFAULT). */
__attribute__((noinline)) static int inaccessible(uintptr_t u) {
    if (write(probe[1], (const void *)u, 1) == 1) {
        char c;
        (void)!read(probe[0], &c, 1);
        return 0;
    }
    return errno == EFAULT;
}

enum { RIGHT, LEFT };

/* A guarded block of size bytes, placed against the guard page after it
 * (RIGHT) or at the start of its page after an inaccessible one (LEFT);
 * NULL if none turns up. */
__attribute__((noinline)) char *guard_alloc_site(size_t size, int where) {
    for (int i = 0; i < 4096; i++) {
        char *p = malloc(size);
        uintptr_t u = (uintptr_t)p;
        uintptr_t end = (u + size + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
        int hit = where == LEFT ? (u % PAGE == 0 && inaccessible(u - 1))
                                : (end - (u + size) < 16 && inaccessible(end));
        if (hit) return p;
        free(p);
    }
    return NULL;
}

__attribute__((noinline)) void guard_free_site(char *p) {
    free(p);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
}

static void overflow(void) {
    char *p = guard_alloc_site(64, RIGHT);
    if (!p) _exit(3);
    ((volatile char *)p)[64] = 1;
}

static void underflow_left(void) {
    char *p = guard_alloc_site(100, LEFT);
    if (!p) _exit(3);
    ((volatile char *)p)[-1] = 1;
}

static void underflow_right(void) {
    char *p = guard_alloc_site(100, RIGHT);
    if (!p) _exit(3);
    ((volatile char *)p)[-1] = 1; /* lands in the slot's fill */
    guard_free_site(p);
}

static void use_after_free(void) {
    char *p = guard_alloc_site(200, RIGHT);
    if (!p) _exit(3);
    guard_free_site(p);
    ((volatile char *)p)[10] = 1;
}

static void double_free(void) {
    char *p = guard_alloc_site(32, RIGHT);
    if (!p) _exit(3);
    free(p);
    free(p);
}

/* Runs fn in a child with its stderr in buf; returns its wait status. */
static int run_child(void (*fn)(void), char *buf, size_t cap) {
    char path[] = "/tmp/zm-guard-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    unlink(path);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        fn();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    ssize_t n = pread(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
    return st;
}

static int failures;

static void expect(const char *name, void (*fn)(void), const char *msg, const char *site) {
    char buf[16384];
    int st = run_child(fn, buf, sizeof buf);
    int ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(buf, msg) &&
             strstr(buf, "guard_alloc_site") && (!site || strstr(buf, site));
    if (ok) {
        printf("ok     guard under preload: %s\n", name);
        return;
    }
    failures++;
    printf("FAILED guard under preload: %s (%s %d)\n%s\n", name,
           WIFSIGNALED(st) ? "signal" : "exit status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
           buf);
}

int main(int argc, char **argv) {
    if (pipe(probe) != 0) return 2;
    if (argc > 1 && strcmp(argv[1], "--expect-none") == 0) {
        char *p = guard_alloc_site(64, RIGHT);
        printf("%s guard under preload: no guarded block without sampling\n", p ? "FAILED" : "ok    ");
        return p ? 1 : 0;
    }
    expect("heap overflow faults", overflow, "zmalloc: guarded sample: heap overflow", NULL);
    expect("underflow of a block at its page's start faults", underflow_left,
           "zmalloc: guarded sample: heap underflow at address", "before the");
    expect("underflow of a block against its end's guard page is found at free", underflow_right,
           "zmalloc: guarded sample: heap underflow", "found when freed");
    expect("use after free faults", use_after_free, "zmalloc: guarded sample: use after free",
           "guard_free_site");
    expect("double free", double_free, "zmalloc: guarded sample: double free", NULL);
    return failures ? 1 : 0;
}
