/* platform.c: mmap/madvise/mincore, the clock, and /proc, /sys/fs/cgroup
 * readers (Linux). platform.h states the return convention.
 *
 * The /proc readers use open/read on a stack buffer, never stdio, because
 * stdio's FILE allocates with malloc and the pool backend may be malloc.
 * smaps is read line by line through a small hand-rolled reader for the
 * same reason.
 */
#define _GNU_SOURCE
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Atomic: any thread may be first to ask (a plain variable is a data race
 * under TSan, though every writer stores the same value). */
static _Atomic size_t cached_page_size;

size_t zm_os_page_size(void) {
    size_t page = atomic_load_explicit(&cached_page_size, memory_order_relaxed);
    if (!page) {
        page = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&cached_page_size, page, memory_order_relaxed);
    }
    return page;
}

void *zm_os_map(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *zm_os_map_aligned(size_t size, size_t alignment) {
    size_t page = zm_os_page_size();
    if (alignment <= page) return zm_os_map(size);
    size_t span = size + alignment - page;
    if (span < size) {
        errno = ENOMEM;
        return NULL;
    }
    char *raw = zm_os_map(span);
    if (!raw) return NULL;
    uintptr_t start = ((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
    size_t head = start - (uintptr_t)raw;
    size_t mapped_size = (size + page - 1) & ~(page - 1);
    size_t tail = span - head - mapped_size;
    if (head) munmap(raw, head);
    if (tail) munmap((char *)start + mapped_size, tail);
    return (void *)start;
}

int zm_os_unmap(void *addr, size_t size) {
    return addr ? munmap(addr, size) : 0;
}

int zm_os_decommit(void *addr, size_t size) {
    return madvise(addr, size, MADV_DONTNEED);
}

int zm_os_probe_mapped(const void *addr, size_t size) {
    size_t page = zm_os_page_size();
    uintptr_t start = (uintptr_t)addr & ~(uintptr_t)(page - 1);
    size_t span = ((uintptr_t)addr + size - start + page - 1) & ~(page - 1);
    unsigned char vec[16];
    if (span / page > sizeof vec) {
        errno = EINVAL;
        return -1;
    }
    return mincore((void *)start, span, vec);
}

unsigned long long zm_os_clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
}

int zm_os_write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int zm_os_environ_each(void (*fn)(const char *entry, void *arg), void *arg) {
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[4096], entry[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\0') {
                if (len < sizeof entry) entry[len] = buf[i];
                len++;
                continue;
            }
            if (len < sizeof entry) {
                entry[len] = '\0';
                fn(entry, arg);
            }
            len = 0;
        }
    }
    close(fd);
    return 0;
}

void *zm_os_remap(void *addr, size_t old_size, size_t new_size, void *dst) {
    void *n = dst ? mremap(addr, old_size, new_size, MREMAP_MAYMOVE | MREMAP_FIXED, dst)
                  : mremap(addr, old_size, new_size, 0);
    return n == MAP_FAILED ? NULL : n;
}

void *zm_os_reserve(size_t size) {
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int zm_os_protect(void *addr, size_t size, int rw) {
    return mprotect(addr, size, rw ? PROT_READ | PROT_WRITE : PROT_NONE);
}

/* The handler that was installed before ours; read in the handler only. */
static struct sigaction previous_segv;
static void (*segv_fn)(int, void *, void *, void *);

static void segv_trampoline(int sig, siginfo_t *info, void *ctx) {
    segv_fn(sig, info->si_addr, info, ctx);
}

int zm_os_segv_install(void (*fn)(int sig, void *fault_addr, void *info, void *ctx)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_trampoline;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    segv_fn = fn;
    return sigaction(SIGSEGV, &sa, &previous_segv);
}

void zm_os_segv_chain(int sig, void *info, void *ctx) {
    struct sigaction prev = previous_segv;
    if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) {
        prev.sa_sigaction(sig, info, ctx);
    } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
        prev.sa_handler(sig);
    } else {
        /* Default action: returning re-executes the faulting access, which
         * then kills the process as it would have without us. */
        signal(SIGSEGV, SIG_DFL);
    }
}

static __thread long os_thread_id_cache __attribute__((tls_model("initial-exec")));

long zm_os_thread_id(void) {
    long tid = os_thread_id_cache;
    if (!tid) tid = os_thread_id_cache = (long)syscall(SYS_gettid);
    return tid;
}

void zm_os_thread_id_fork_child(void) {
    os_thread_id_cache = 0;
}

/* Read a whole small file into buf (NUL-terminated); returns bytes or -1. */
static ssize_t read_small_file(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

int zm_os_proc_stat_field(int field, long long *res) {
    char buf[4096];
    /* pid and comm (fields 1, 2) are not numbers we report. */
    if (field <= 2) return errno = EINVAL, -1;
    if (read_small_file("/proc/self/stat", buf, sizeof buf) <= 0) return -1;
    /* Field 2 (comm) is in parentheses and may hold spaces: count fields
     * after its closing parenthesis, which is field 2's end. */
    char *p = strrchr(buf, ')');
    if (!p) return errno = EINVAL, -1;
    int current = 2;
    while (*p && current < field) {
        if (*p == ' ') current++;
        p++;
    }
    if (current != field || !*p) return errno = EINVAL, -1;
    char *end;
    errno = 0;
    long long value = strtoll(p, &end, 10);
    if (errno || end == p) return errno = EINVAL, -1;
    *res = value;
    return 0;
}

size_t zm_os_rss(void) {
    long long pages;
    if (zm_os_proc_stat_field(24, &pages) != 0) return 0;
    return (size_t)pages * zm_os_page_size();
}

/* Line reader over a file descriptor with a fixed buffer: smaps can be
 * megabytes, so it is streamed. */
typedef struct line_reader {
    int fd;
    size_t start, end;
    char buf[8192];
} line_reader;

static char *next_line(line_reader *r) {
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl) {
            *nl = '\0';
            char *line = r->buf + r->start;
            r->start = (size_t)(nl - r->buf) + 1;
            return line;
        }
        /* Move the partial line to the front and refill. */
        size_t partial = r->end - r->start;
        if (partial == sizeof r->buf) partial = 0; /* overlong line: drop it */
        memmove(r->buf, r->buf + r->start, partial);
        r->start = 0;
        r->end = partial;
        ssize_t n = read(r->fd, r->buf + r->end, sizeof r->buf - r->end);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (r->end == 0) return NULL;
            r->buf[r->end < sizeof r->buf ? r->end : sizeof r->buf - 1] = '\0';
            r->end = r->start = 0;
            return r->buf;
        }
        r->end += (size_t)n;
    }
}

/* Sum "field  N kB" lines of one /proc file; *found reports any match. */
static size_t sum_field_in(const char *path, const char *field, int *found) {
    line_reader r = {.fd = open(path, O_RDONLY | O_CLOEXEC)};
    *found = 0;
    if (r.fd < 0) return 0;
    size_t flen = strlen(field), total = 0;
    char *line;
    while ((line = next_line(&r)) != NULL) {
        if (strncmp(line, field, flen) != 0) continue;
        *found = 1;
        total += (size_t)strtoull(line + flen, NULL, 10) * 1024;
    }
    close(r.fd);
    return total;
}

static void proc_path(char *out, size_t cap, long pid, const char *file) {
    if (pid == -1)
        snprintf(out, cap, "/proc/self/%s", file);
    else
        snprintf(out, cap, "/proc/%ld/%s", pid, file);
}

size_t zm_os_smaps_field_full_scan(const char *field, long pid) {
    char path[64];
    int found;
    proc_path(path, sizeof path, pid, "smaps");
    return sum_field_in(path, field, &found);
}

size_t zm_os_smaps_field(const char *field, long pid) {
    char path[64];
    int found;
    /* smaps_rollup (Linux 4.14+) holds the sums the kernel computed while
     * walking the page tables once, without formatting one record per
     * mapping: far cheaper than smaps on a large heap. */
    proc_path(path, sizeof path, pid, "smaps_rollup");
    size_t total = sum_field_in(path, field, &found);
    if (found) return total;
    return zm_os_smaps_field_full_scan(field, pid);
}

size_t zm_os_physical_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    return (size_t)pages * (size_t)page;
}

/* Parse a cgroup limit file: a number, or "max" (v2) / a huge number (v1)
 * meaning unlimited. */
static size_t read_limit_file(const char *path, int *present) {
    char buf[64];
    *present = read_small_file(path, buf, sizeof buf) > 0;
    if (!*present || strncmp(buf, "max", 3) == 0) return 0;
    unsigned long long v = strtoull(buf, NULL, 10);
    /* cgroup v1 reports "no limit" as PAGE_COUNTER_MAX pages, about 2^63. */
    if (v >= (1ULL << 62)) return 0;
    return (size_t)v;
}

/* This process's cgroup path for a v2 ("0::/path") or v1 memory controller
 * ("N:memory:/path") line of /proc/self/cgroup. */
static int own_cgroup_path(int v2, char *out, size_t cap) {
    char buf[4096];
    if (read_small_file("/proc/self/cgroup", buf, sizeof buf) <= 0) return 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2) continue;
        int is_v2 = (c2 == c1 + 1) && strncmp(line, "0:", 2) == 0;
        int is_mem = !is_v2 && strstr(c1, "memory") && strstr(c1, "memory") < c2;
        if ((v2 && is_v2) || (!v2 && is_mem)) {
            snprintf(out, cap, "%s", c2 + 1);
            return 1;
        }
    }
    return 0;
}

size_t zm_os_cgroup_memory_limit(void) {
    char rel[1024], path[1200];
    int present;
    size_t limit;
    /* v2: our own cgroup's memory.max, else the namespace root's. */
    if (own_cgroup_path(1, rel, sizeof rel)) {
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", rel);
        limit = read_limit_file(path, &present);
        if (present) return limit;
    }
    limit = read_limit_file("/sys/fs/cgroup/memory.max", &present);
    if (present) return limit;
    /* v1 memory controller. */
    if (own_cgroup_path(0, rel, sizeof rel)) {
        snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", rel);
        limit = read_limit_file(path, &present);
        if (present) return limit;
    }
    limit = read_limit_file("/sys/fs/cgroup/memory/memory.limit_in_bytes", &present);
    return present ? limit : 0;
}

/* ---- the preload library's exit report ------------------------------------ */

int zm_os_read_self(const char *name, char *buf, size_t cap, size_t *len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/%s", name);
    ssize_t n = read_small_file(path, buf, cap);
    if (n < 0) return -1;
    *len = (size_t)n;
    return 0;
}

size_t zm_os_self_status_kb(const char *field) {
    char buf[4096];
    if (read_small_file("/proc/self/status", buf, sizeof buf) <= 0) return 0;
    char *p = strstr(buf, field);
    return p ? (size_t)strtoull(p + strlen(field), NULL, 10) : 0;
}

int zm_os_self_exe(char *buf, size_t cap, size_t *len) {
    ssize_t n = readlink("/proc/self/exe", buf, cap);
    if (n < 0) return -1;
    *len = (size_t)n;
    return 0;
}

int zm_os_append_file(const char *path, const void *buf, size_t len) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    int rc = zm_os_write_all(fd, buf, len);
    close(fd);
    return rc;
}
