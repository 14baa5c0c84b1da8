/* fuzz_pool.c: libFuzzer harness for the pool backend.
 *
 * The input is a program: each op byte picks malloc, calloc, realloc, free,
 * aligned allocation or a usable-size check on one of 64 slots, with sizes
 * and alignments read from the following bytes. Every live block is filled
 * with a pattern derived from its slot and generation and checked before it
 * is touched again, so overlapping blocks, lost bytes in realloc or a wrong
 * usable size show up as a crash (abort). At the end of each input every
 * block is freed, and zmalloc's accounting and the backend's allocated
 * bytes must be back at their values from before the input.
 *
 *   clang -fsanitize=fuzzer,address -Iinclude -Ibuild/include -Isrc \
 *         tests/pool/fuzz_pool.c libzmalloc.a -lpthread
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "zmalloc.h"

#define SLOTS 64

typedef struct slot {
    unsigned char *p;
    size_t size;
    unsigned char tag;
} slot;

typedef struct reader {
    const uint8_t *data;
    size_t len, pos;
} reader;

static unsigned byte(reader *r) {
    return r->pos < r->len ? r->data[r->pos++] : 0;
}

static size_t read_size(reader *r) {
    unsigned sel = byte(r);
    size_t v = byte(r) | (size_t)byte(r) << 8;
    switch (sel % 8) {
    case 0: return v % 129;                    /* tiny, including 0 */
    case 1: case 2: case 3: return v % 1025;   /* small classes */
    case 4: case 5: return v;                  /* up to 64 KiB */
    case 6: return v * 4;                      /* up to 256 KiB, class edge */
    default: return 262144 + (v % 8) * 32768 + (v >> 8); /* huge, up to ~512 KiB */
    }
}

static void die(const char *what, size_t i) {
    fprintf(stderr, "fuzz_pool: %s (slot %zu)\n", what, i);
    abort();
}

/* Byte positions that carry the pattern: all of a block up to 64 KiB; of a
 * bigger one its first and last 4 KiB and every 4093rd byte (whole-block
 * loops under ASan would make each input take milliseconds). */
static size_t next_pos(size_t k, size_t size) {
    if (size <= 65536 || k < 4096 || k + 4096 >= size) return k + 1;
    size_t n = k + 4093;
    return n + 4096 >= size ? size - 4096 : n;
}

static void fill(slot *s) {
    for (size_t k = 0; k < s->size; k = next_pos(k, s->size))
        s->p[k] = (unsigned char)(s->tag + k * 7);
}

static int intact(const slot *s, size_t upto) {
    for (size_t k = 0; k < upto; k = next_pos(k, s->size))
        if (s->p[k] != (unsigned char)(s->tag + k * 7)) return 0;
    return 1;
}

static void check(slot *s, size_t i) {
    if (!s->p) return;
    if (zmalloc_size(s->p) < s->size) die("usable size below request", i);
    if (!intact(s, s->size)) die("content changed", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    slot slots[SLOTS] = {{0}};
    reader r = {data, len, 0};
    size_t used0 = zmalloc_used_memory();
    zm_be_stats st0;
    zm_be_get_stats(1, &st0);
    unsigned char gen = 0;
    while (r.pos < r.len) {
        unsigned op = byte(&r);
        size_t i = byte(&r) % SLOTS;
        slot *s = &slots[i];
        check(s, i);
        switch (op % 7) {
        case 0:
        case 1: { /* malloc / calloc */
            size_t n = read_size(&r);
            zfree(s->p);
            s->p = op % 7 ? zcalloc(n) : zmalloc(n);
            if (op % 7) {
                for (size_t k = 0; k < n; k++)
                    if (s->p[k]) die("calloc not zero", i);
            }
            s->size = n;
            s->tag = ++gen;
            fill(s);
            break;
        }
        case 2: { /* realloc keeps the common prefix */
            size_t n = read_size(&r);
            if (n == 0) n = 1;
            size_t keep = s->size < n ? s->size : n;
            s->p = zrealloc(s->p, n);
            if (!intact(s, keep)) die("realloc lost content", i);
            s->size = n;
            fill(s);
            break;
        }
        case 3: /* free */
            zfree(s->p);
            s->p = NULL;
            s->size = 0;
            break;
        case 4: { /* aligned */
            size_t a = (size_t)16 << (byte(&r) % 17); /* 16 B .. 1 MiB */
            size_t n = read_size(&r);
            zfree(s->p);
            s->p = zmalloc_aligned(a, n);
            if ((uintptr_t)s->p % a) die("misaligned", i);
            s->size = n;
            s->tag = ++gen;
            fill(s);
            break;
        }
        case 5: /* usable size: the whole of it is writable */
            if (s->p) {
                size_t u = zmalloc_size(s->p);
                memset(s->p + s->size, 0xee, u - s->size);
            }
            break;
        default: /* purge now and then: must not disturb live blocks */
            if (byte(&r) == 0x42) zmalloc_purge();
            break;
        }
    }
    for (size_t i = 0; i < SLOTS; i++) {
        check(&slots[i], i);
        zfree(slots[i].p);
    }
    if (zmalloc_used_memory() != used0) die("accounting not back to baseline", 0);
    zm_be_stats st;
    zm_be_get_stats(1, &st);
    if (st.allocated != st0.allocated) die("backend allocated not back to baseline", 0);
    if (st.allocated > st.active || st.active > st.resident) die("stats invariant", 0);
    return 0;
}
