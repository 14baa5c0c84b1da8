/* debug_internal.h: what the two halves of the verification layer share.
 *
 * debug.c holds the checks: block layout, records, per-thread homes, the
 * quarantine and the allocation and free paths. debug_report.c holds the
 * reports: formatting a problem, the fatal bad-pointer report,
 * zmalloc_verify() and the leak report. The reports see the records only
 * through zm_dbg_for_each_block(), which takes each home's lock in turn.
 */
#ifndef ZMALLOC_DEBUG_INTERNAL_H
#define ZMALLOC_DEBUG_INTERNAL_H

#include <stddef.h>

#define DBG_GUARD 16                      /* guard bytes checked on each side  */
#define DBG_HEADER 32                     /* size, record, home, check word    */
#define DBG_FRONT (DBG_HEADER + DBG_GUARD) /* front region of a plain block     */
#define DBG_NEW_BYTE 0xBE                 /* fresh block (not zcalloc)         */
#define DBG_GUARD_BYTE 0xFD               /* front and tail guards             */
#define DBG_FREED_BYTE 0xDF               /* freed block in quarantine         */
#define DBG_MAX_WRONG 8                   /* wrong bytes quoted per report     */

struct dbg_home;

/* One live or quarantined block, kept outside the block so that stray
 * writes cannot corrupt what the checks rely on. One cache line: a free
 * reads it once. */
typedef struct dbg_block {
    unsigned char *user;   /* what the caller got                       */
    size_t size;           /* bytes requested                           */
    size_t raw_size;       /* the backend block's usable size           */
    struct dbg_home *home; /* the home that owns the record             */
    const char *file;      /* allocation site: file:line if known,      */
    void *alloc_ra;        /* else the caller's return address          */
    union {
        void *free_ra;                /* who freed it (quarantined)     */
        struct dbg_block *spare_next; /* free list of spare records     */
    };
    int line;
    unsigned front : 30; /* user - front is the backend's block         */
    unsigned freed : 1;  /* 1 while in quarantine                       */
    unsigned in_use : 1; /* 0: a spare record                           */
} __attribute__((aligned(64))) dbg_block;

#define DBG_RAW(b) ((b)->user - (b)->front)

/* What was found wrong with one block, collected under a lock and printed
 * after it is released. */
enum { P_OVERFLOW, P_UNDERFLOW, P_USE_AFTER_FREE };

typedef struct problem {
    int kind;
    dbg_block b;             /* copy of the record                   */
    size_t nwrong;           /* bytes found wrong in total           */
    long off[DBG_MAX_WRONG]; /* offsets from the user pointer        */
    unsigned char val[DBG_MAX_WRONG];
} problem;

/* A list of problems. The fixed part serves the free path; verify grows it
 * with zm_os_map. Problems beyond capacity are counted only. */
typedef struct sink {
    problem *items;
    size_t n, cap, lost;
    int growable;
    problem local[4];
} sink;

void zm_dbg_sink_init(sink *s, int growable);
void zm_dbg_sink_free(sink *s);

/* Checks a block's guards (and, when freed, its freed fill). Records each
 * kind of damage as one problem in s; returns how many. */
int zm_dbg_check_block(const dbg_block *b, sink *s);

/* Calls fn(b, arg) for every record in use, each home under its lock (no
 * other lock held, no backend call: fn must not allocate). fn returns
 * non-zero to stop. */
void zm_dbg_for_each_block(int (*fn)(dbg_block *, void *), void *arg);

/* The return address of the public entry point this thread is in. */
void *zm_dbg_current_caller(void);

/* debug_report.c */
void zm_dbg_print_sink(const sink *s);
/* The report for a pointer that is not a live block (freed: a copy of its
 * record when it is a quarantined block, else NULL), then abort(). Called
 * with no lock held. */
__attribute__((noreturn)) void zm_dbg_die_bad_pointer(const void *ptr, const dbg_block *freed,
                                                      const char *op);
/* ZMALLOC_LEAK_REPORT: the leak report to stderr (at exit). */
void zm_dbg_leak_report_at_exit(void);

#endif
