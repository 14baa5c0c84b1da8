/* test.h: the tiny harness every test program uses.
 *
 * CHECK() records a pass or a failure (with file:line and the expression)
 * and goes on; TEST_MAIN_END prints "N passed, M failed" and exits non-zero
 * on any failure. expect_death() runs a function in a forked child and
 * checks that it aborts (or exits non-zero) and that its stderr holds a
 * given text: the way death tests are done here.
 */
#ifndef ZMALLOC_TEST_H
#define ZMALLOC_TEST_H

#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* UNDER_SANITIZER: ASan/TSan replace malloc and shadow every byte, so
 * tests skip what only a real allocator can show (RSS bounds, RLIMIT_AS). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* 1 when a tool (sanitizer or valgrind) has replaced the process's malloc:
 * glibc's own statistics then see nothing, and address-space limits
 * measure the tool, not us. */
static inline int malloc_replaced_by_tool(void) {
#ifdef UNDER_SANITIZER
    return 1;
#else
    return RUNNING_ON_VALGRIND ? 1 : 0;
#endif
}

static int test_passed, test_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            test_passed++;                                                           \
        } else {                                                                     \
            if (test_failed++ < 30)                                                  \
                fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
        }                                                                            \
    } while (0)

#define CHECK_EQ_SIZE(a, b)                                                          \
    do {                                                                             \
        size_t _a = (size_t)(a), _b = (size_t)(b);                                   \
        if (_a == _b) {                                                              \
            test_passed++;                                                           \
        } else {                                                                     \
            if (test_failed++ < 30)                                                  \
                fprintf(stderr, "FAIL %s:%d: %s == %s (%zu != %zu)\n", __FILE__,     \
                        __LINE__, #a, #b, _a, _b);                                   \
        }                                                                            \
    } while (0)

static inline int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, test_passed, test_failed);
    return test_failed ? 1 : 0;
}

/* Reads a child's output from fd into buf (NUL-terminated) until EOF, then
 * reaps it. Returns its exit code, or -signal if a signal killed it. */
static inline int collect_child(pid_t pid, int fd, char *buf, size_t cap) {
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fd);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/* Runs fn(arg) in a forked child with its stderr captured into buf
 * (NUL-terminated). Returns the child's exit code, or -signal if a signal
 * killed it. */
static inline int run_child(void (*fn)(void *), void *arg, char *buf, size_t cap) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return -1000;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], 2);
        fn(arg);
        _exit(0);
    }
    close(pipefd[1]);
    return collect_child(pid, pipefd[0], buf, cap);
}

/* A death test: 1 when fn(arg) in a child died by SIGABRT (or, with
 * want_abort == 0, died or exited non-zero) and its stderr contains
 * `needle` (NULL: anything). */
static inline int expect_death(void (*fn)(void *), void *arg, const char *needle, int want_abort) {
    char buf[8192];
    int rc = run_child(fn, arg, buf, sizeof buf);
    int died = want_abort ? rc == -SIGABRT : rc != 0;
    int matched = !needle || strstr(buf, needle) != NULL;
    if (!died || !matched)
        fprintf(stderr, "  death test: status %d matched=%d (wanted \"%s\"), child stderr:\n%s\n",
                rc, matched, needle ? needle : "", buf);
    return died && matched;
}

/* A strict JSON syntax check (RFC 8259: one value, optional surrounding
 * whitespace), so tests of JSON output need no outside tool. Returns 1 when
 * s[0..n) is exactly one valid JSON value. */
typedef struct json_cursor {
    const char *p, *end;
    int depth;
} json_cursor;
static inline void json_ws(json_cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}
static inline int json_lit(json_cursor *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return 0;
    c->p += n;
    return 1;
}
static inline int json_digits(json_cursor *c) {
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
    return c->p > start;
}
static inline int json_string(json_cursor *c) {
    if (c->p >= c->end || *c->p != '"') return 0;
    for (c->p++; c->p < c->end; c->p++) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            return 1;
        }
        if (ch < 0x20) return 0;
        if (ch == '\\') {
            if (++c->p >= c->end) return 0;
            if (*c->p == 'u') {
                for (int i = 0; i < 4; i++) {
                    if (++c->p >= c->end) return 0;
                    char h = *c->p;
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
                        return 0;
                }
            } else if (!strchr("\"\\/bfnrt", *c->p)) {
                return 0;
            }
        }
    }
    return 0;
}
static inline int json_value(json_cursor *c) {
    json_ws(c);
    if (c->p >= c->end || ++c->depth > 64) return 0;
    int ok = 0;
    char ch = *c->p;
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        json_ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            ok = 1;
        } else {
            for (;;) {
                if (ch == '{') {
                    json_ws(c);
                    if (!json_string(c)) break;
                    json_ws(c);
                    if (c->p >= c->end || *c->p++ != ':') break;
                }
                if (!json_value(c)) break;
                json_ws(c);
                if (c->p < c->end && *c->p == ',') {
                    c->p++;
                    continue;
                }
                if (c->p < c->end && *c->p == close) {
                    c->p++;
                    ok = 1;
                }
                break;
            }
        }
    } else if (ch == '"') {
        ok = json_string(c);
    } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
        if (*c->p == '-') c->p++;
        if (c->p < c->end && *c->p == '0') c->p++;
        else if (!json_digits(c)) return 0;
        ok = 1;
        if (c->p < c->end && *c->p == '.') {
            c->p++;
            ok = json_digits(c);
        }
        if (ok && c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
            c->p++;
            if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
            ok = json_digits(c);
        }
    } else {
        ok = json_lit(c, "true") || json_lit(c, "false") || json_lit(c, "null");
    }
    c->depth--;
    return ok;
}
static inline int json_is_valid(const char *s, size_t n) {
    json_cursor c = {s, s + n, 0};
    if (!json_value(&c)) return 0;
    json_ws(&c);
    return c.p == c.end;
}

#endif
