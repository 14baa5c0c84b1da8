/* options.c: reads the options table of options.h from the environment.
 *
 * One pass over the environment fills every value. Each value remembers the
 * rank of the source that set it (default 0, ZMALLOC_CONF 1, its own
 * ZMALLOC_<NAME> variable 2) and only a source of equal or higher rank
 * replaces it, so the order of the variables in the environment does not
 * matter and the per-option variable always wins.
 *
 * No malloc anywhere: string values are copied into a static buffer,
 * messages are built on the stack and written with write(2), and when libc's
 * environ is not set up yet the platform layer reads /proc/self/environ with
 * system calls. The first caller reads the table; a caller that arrives
 * while it is being read waits for it (a few microseconds, once).
 */
#include "options.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include "platform.h"
#include "zmalloc.h"

extern char **environ;

/* A string literal default makes a string option. The unselected branch of
 * each _Generic must still be a valid expression, hence the casts to 0. */
#define ZM_IS_STRING_(def) _Generic((def), char *: 1, const char *: 1, void *: 1, default: 0)
#define ZM_NUM_DEFAULT_(def)                                                                     \
    _Generic((def), char *: 0LL, const char *: 0LL, void *: 0LL, default: (def))
#define ZM_STR_DEFAULT_(def)                                                                     \
    _Generic((def), char *: (def), const char *: (def), void *: "", default: (const char *)0)

static const zm_option_desc table[ZM_OPT_COUNT] = {
#define ZM_OPTION_ROW_(id, name_, default_, doc_)                                                \
    [ZM_OPT_##id] = {.name = name_,                                                              \
                     .doc = doc_,                                                                \
                     .def = ZM_NUM_DEFAULT_(default_),                                           \
                     .def_str = ZM_STR_DEFAULT_(default_),                                       \
                     .is_string = ZM_IS_STRING_(default_)},
    ZM_OPTIONS(ZM_OPTION_ROW_)
#undef ZM_OPTION_ROW_
};

enum { RANK_DEFAULT, RANK_CONF, RANK_OWN_VARIABLE };
enum { UNREAD, READING, READY };

static struct {
    long long num[ZM_OPT_COUNT];
    const char *str[ZM_OPT_COUNT];
    unsigned char rank[ZM_OPT_COUNT];
    char strings[4096]; /* copies of string values */
    size_t strings_used;
} values;

static _Atomic int state = UNREAD;

/* ---------------------------------------------------------------------
 * Messages (stack buffer, write(2))
 * --------------------------------------------------------------------- */

typedef struct msg {
    char s[512];
    size_t len;
} msg;

static void msg_put(msg *m, const char *text, size_t n) {
    if (n > sizeof m->s - 1 - m->len) n = sizeof m->s - 1 - m->len;
    memcpy(m->s + m->len, text, n);
    m->len += n;
}

static void msg_str(msg *m, const char *text) {
    msg_put(m, text, strlen(text));
}

static void msg_num(msg *m, long long v) {
    char digits[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) digits[sizeof digits - 1 - n++] = '-';
    msg_put(m, digits + sizeof digits - n, n);
}

/* "zmalloc: option <source>: <what>; using the default <default>" */
static void complain(const char *source, size_t source_len, const char *what, int id) {
    msg m = {.len = 0};
    msg_str(&m, "zmalloc: option ");
    msg_put(&m, source, source_len);
    msg_str(&m, ": ");
    msg_str(&m, what);
    if (id >= 0) {
        msg_str(&m, "; using the default ");
        if (table[id].is_string) {
            msg_str(&m, "\"");
            msg_str(&m, table[id].def_str);
            msg_str(&m, "\"");
        } else {
            msg_num(&m, table[id].def);
        }
    }
    msg_str(&m, "\n");
    zm_os_write_all(2, m.s, m.len);
}

/* ---------------------------------------------------------------------
 * Parsing
 * --------------------------------------------------------------------- */

static int lower(int c) {
    return c >= 'A' && c <= 'Z' ? c + 'a' - 'A' : c;
}

/* Case-insensitive: does s[0..n) equal word? */
static int word_is(const char *s, size_t n, const char *word) {
    size_t i = 0;
    for (; i < n && word[i]; i++)
        if (lower((unsigned char)s[i]) != word[i]) return 0;
    return i == n && word[i] == '\0';
}

/* Parses s[0..n) as a number option's value into *out; 0 on success. */
static int parse_number(const char *s, size_t n, long long *out) {
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (word_is(s, n, yes[i])) return *out = 1, 0;
        if (word_is(s, n, no[i])) return *out = 0, 0;
    }
    size_t i = 0;
    int negative = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) negative = s[i++] == '-';
    if (i == n || s[i] < '0' || s[i] > '9') return -1;
    unsigned long long v = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned digit = (unsigned)(s[i] - '0');
        if (v > (0x7fffffffffffffffull - digit) / 10) return -1;
        v = v * 10 + digit;
    }
    int shift = 0;
    if (i < n) {
        const char *suffix = s + i;
        size_t len = n - i;
        int unit = lower((unsigned char)suffix[0]);
        shift = unit == 'k' ? 10 : unit == 'm' ? 20 : unit == 'g' ? 30 : -1;
        if (shift < 0) return -1;
        if (len > 1 && !word_is(suffix + 1, len - 1, "b") && !word_is(suffix + 1, len - 1, "ib"))
            return -1;
    }
    if (v > (0x7fffffffffffffffull >> shift)) return -1;
    v <<= shift;
    *out = negative ? -(long long)v : (long long)v;
    return 0;
}

/* Sets option id from value[0..n) if rank allows; source names the variable
 * for messages. */
static void set_value(int id, const char *value, size_t n, int rank, const char *source,
                      size_t source_len) {
    if (rank < values.rank[id]) return;
    if (table[id].is_string) {
        if (n + 1 > sizeof values.strings - values.strings_used) {
            complain(source, source_len, "no room left for string values", id);
            return;
        }
        char *copy = values.strings + values.strings_used;
        memcpy(copy, value, n);
        copy[n] = '\0';
        values.strings_used += n + 1;
        values.str[id] = copy;
        values.num[id] = n != 0;
    } else {
        long long v;
        if (parse_number(value, n, &v) != 0) {
            complain(source, source_len,
                     "not a number (decimal, optional k/m/g suffix, or true/false)", id);
            return;
        }
        values.num[id] = v;
    }
    values.rank[id] = (unsigned char)rank;
}

static int find_n(const char *name, size_t n) {
    for (int id = 0; id < ZM_OPT_COUNT; id++)
        if (strncmp(table[id].name, name, n) == 0 && table[id].name[n] == '\0') return id;
    return -1;
}

int zm_option_find(const char *name) {
    return name ? find_n(name, strlen(name)) : -1;
}

/* ZMALLOC_CONF=name:value,name:value (name=value is accepted too). */
static void parse_conf(const char *conf) {
    const char *p = conf;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        if (end > p) {
            const char *sep = p;
            while (sep < end && *sep != ':' && *sep != '=') sep++;
            int id = sep < end ? find_n(p, (size_t)(sep - p)) : -1;
            if (sep == end)
                complain(p, (size_t)(end - p), "in ZMALLOC_CONF: expected name:value", -1);
            else if (id < 0)
                complain(p, (size_t)(sep - p), "in ZMALLOC_CONF: no option of that name", -1);
            else
                set_value(id, sep + 1, (size_t)(end - sep - 1), RANK_CONF, p, (size_t)(end - p));
        }
        p = *end ? end + 1 : end;
    }
}

/* Does the variable name v[0..n) (after "ZMALLOC_") spell option id's name
 * in upper case? */
static int is_own_variable(const char *v, size_t n, int id) {
    const char *name = table[id].name;
    size_t i = 0;
    for (; i < n && name[i]; i++) {
        int c = (unsigned char)name[i];
        if (v[i] != (c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c)) return 0;
    }
    return i == n && name[i] == '\0';
}

/* One "NAME=value" entry of the environment. */
static void take_entry(const char *entry, void *arg) {
    (void)arg;
    if (strncmp(entry, "ZMALLOC_", 8) != 0) return;
    const char *name = entry + 8, *eq = strchr(name, '=');
    if (!eq) return;
    size_t n = (size_t)(eq - name);
    if (n == 4 && memcmp(name, "CONF", 4) == 0) {
        parse_conf(eq + 1);
        return;
    }
    /* Other ZMALLOC_* variables (build knobs such as ZMALLOC_NO_INSTALL)
     * are not ours to judge: ignored silently. */
    for (int id = 0; id < ZM_OPT_COUNT; id++) {
        if (is_own_variable(name, n, id)) {
            set_value(id, eq + 1, strlen(eq + 1), RANK_OWN_VARIABLE, entry, (size_t)(eq - entry));
            return;
        }
    }
}

static void set_defaults(void) {
    values.strings_used = 0;
    for (int id = 0; id < ZM_OPT_COUNT; id++) {
        values.num[id] = table[id].is_string ? table[id].def_str[0] != '\0' : table[id].def;
        values.str[id] = table[id].is_string ? table[id].def_str : NULL;
        values.rank[id] = RANK_DEFAULT;
    }
}

static void read_environment(char *const *env) {
    set_defaults();
    if (env) {
        for (char *const *e = env; *e; e++)
            take_entry(*e, NULL);
    } else {
        /* libc's environ is not set up yet: the environment the process
         * started with. Unreadable /proc leaves the defaults. */
        zm_os_environ_each(take_entry, NULL);
    }
}

__attribute__((noinline, cold)) static void load(void) {
    int expected = UNREAD;
    if (atomic_compare_exchange_strong_explicit(&state, &expected, READING, memory_order_acquire,
                                                memory_order_acquire)) {
        int saved = errno;
        read_environment(environ);
        errno = saved;
        atomic_store_explicit(&state, READY, memory_order_release);
        return;
    }
    while (atomic_load_explicit(&state, memory_order_acquire) != READY)
        sched_yield();
}

static inline void ensure_loaded(void) {
    if (__builtin_expect(atomic_load_explicit(&state, memory_order_acquire) != READY, 0)) load();
}

long long zm_option(zm_option_id id) {
    if ((unsigned)id >= ZM_OPT_COUNT) return 0;
    ensure_loaded();
    return values.num[id];
}

const char *zm_option_str(zm_option_id id) {
    if ((unsigned)id >= ZM_OPT_COUNT) return NULL;
    ensure_loaded();
    return values.str[id];
}

const zm_option_desc *zm_option_info(zm_option_id id) {
    return (unsigned)id < ZM_OPT_COUNT ? &table[id] : NULL;
}

void zm_options_reload_from(char *const *env) {
    atomic_store_explicit(&state, READING, memory_order_relaxed);
    read_environment(env);
    atomic_store_explicit(&state, READY, memory_order_release);
}

long long zmalloc_get_option(const char *name) {
    int id = zm_option_find(name);
    if (id < 0) {
        errno = EINVAL;
        return -1;
    }
    return zm_option((zm_option_id)id);
}
