/* fuzz_api.c: libFuzzer harness over the public API.
 *
 * The input is read as a program of operations on 64 slots: malloc, calloc,
 * realloc (grow and shrink), aligned, try-variants with impossible sizes,
 * free. Every live block carries a byte pattern derived from its slot and
 * generation, checked before each realloc/free; calloc'd blocks are checked
 * for zeros; the usable size must cover the request; at the end every slot
 * is freed and zmalloc_used_memory() must be back to where it started.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zmalloc.h"

enum { SLOTS = 64 };
typedef struct {
    unsigned char *p;
    size_t size;
    unsigned char tag;
} slot_t;

static void paint(slot_t *s) {
    for (size_t i = 0; i < s->size; i++) s->p[i] = (unsigned char)(s->tag + i);
}

static void check(const slot_t *s) {
    for (size_t i = 0; i < s->size; i++)
        if (s->p[i] != (unsigned char)(s->tag + i)) abort();
}

static size_t pick_size(const uint8_t *d) {
    /* Mostly small, sometimes page-sized, rarely large. */
    size_t v = (size_t)d[0] | (size_t)d[1] << 8;
    switch (d[2] & 7) {
    case 0: return v % 4096 + 4096;
    case 1: return (v << 4) % (1u << 20);
    default: return v % 512;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
    slot_t slots[SLOTS] = {{0}};
    size_t base = zmalloc_used_memory();
    unsigned char gen = 1;
    for (size_t off = 0; off + 4 <= len; off += 4) {
        const uint8_t *d = data + off;
        slot_t *s = &slots[d[3] % SLOTS];
        unsigned op = d[2] >> 3;
        size_t size = pick_size(d);
        if (s->p) check(s);
        switch (op % 6) {
        case 0: case 1: { /* malloc / calloc */
            zfree(s->p);
            size_t usable;
            int zero = op % 6 == 1;
            s->p = zero ? zcalloc_usable(size, &usable) : zmalloc_usable(size, &usable);
            if (!s->p || usable < size) abort();
            if (zero)
                for (size_t i = 0; i < usable; i++)
                    if (s->p[i]) abort();
            break;
        }
        case 2: { /* realloc keeps the common prefix */
            size_t keep = s->size < size ? s->size : size;
            unsigned char *q = zrealloc(s->p, size ? size : 1);
            if (!q) abort();
            for (size_t i = 0; i < keep; i++)
                if (q[i] != (unsigned char)(s->tag + i)) abort();
            s->p = q;
            break;
        }
        case 3: { /* aligned */
            zfree(s->p);
            size_t align = (size_t)16 << (d[0] % 12);
            s->p = zmalloc_aligned(align, size);
            if (!s->p || ((uintptr_t)s->p & (align - 1))) abort();
            break;
        }
        case 4: /* impossible sizes leave everything intact */
            if (ztrymalloc(SIZE_MAX - size) || ztrycalloc(SIZE_MAX / 2 + size)) abort();
            if (s->p && ztryrealloc(s->p, SIZE_MAX / 2 + size)) abort();
            continue;
        default:
            zfree(s->p);
            s->p = NULL;
            s->size = 0;
            continue;
        }
        s->size = size ? size : 1;
        if (zmalloc_usable_size(s->p) < s->size) abort();
        s->tag = gen++;
        paint(s);
    }
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p) check(&slots[i]);
        zfree(slots[i].p);
    }
    if (zmalloc_used_memory() != base) abort();
    return 0;
}
