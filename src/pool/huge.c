/* huge.c: blocks above the largest class, each its own mapping.
 *
 * One mapping: the header at a segment boundary H, the block at H + offset
 * (offset in (0, ZP_SEG_SIZE]), so masking (p - 1) finds the header like
 * any block's. The header is a zp_segment of kind ZP_KIND_HUGE whose one
 * page has block_size 0; map_size and huge_usable say how big it is.
 *
 * Freed huge mappings (without over-alignment) wait a while in a small cache
 * instead of being unmapped: a program that allocates and frees big buffers
 * in turn would otherwise pay a mmap, munmap and a page fault per 4 KiB each
 * time. The cache holds at most zp_pol.huge_cache_bytes in mappings of up
 * to zp_pol.huge_cache_entry_max. Entries older than
 * zp_pol.huge_cache_age_ms are unmapped on the next huge operation or
 * periodic purge check of any heap, all of them on zm_be_purge(). A reused
 * mapping is trimmed to within 1/8 of the request; one of at least half the
 * request is grown with mremap (only the new tail faults in, and it is
 * already zero for calloc). The cache has its own lock, taken only here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "platform.h"
#include "pool.h"

#define ZP_HUGE_CACHE_SLOTS 32
/* A remainder worth keeping as an entry of its own. */
#define ZP_HUGE_PIECE_MIN ((size_t)1 << 20)
/* Most pieces one take assembles (a remap each). */
#define ZP_HUGE_GATHER_MAX 4

/* A cached range: resident pages that held freed huge blocks. While cached
 * a range needs no header and no alignment: the entry says where it is. */
typedef struct huge_entry {
    char *at;
    size_t len;
    uint64_t since;
} huge_entry;
static zp_lock huge_lock;
static huge_entry huge_cache[ZP_HUGE_CACHE_SLOTS];
static unsigned huge_cache_n;
static size_t huge_cache_bytes;
/* huge_cache_n as of the last change, readable without the lock. */
static _Atomic unsigned huge_cache_hint;

static void huge_unmap(void *at, size_t total) {
    zp_stat_sub(&zp_stat.committed, total);
    zp_stat_sub(&zp_stat.mapped, total);
    zm_os_unmap(at, total);
}

/* Under huge_lock: entry i leaves the cache. */
static huge_entry huge_cache_remove(unsigned i) {
    huge_entry e = huge_cache[i];
    huge_cache_bytes -= e.len;
    huge_cache[i] = huge_cache[--huge_cache_n];
    return e;
}

/* Under huge_lock: move entries older than max_age (all with 0) to out. */
static unsigned huge_cache_expire(uint64_t now, uint64_t max_age, huge_entry *out) {
    unsigned n = 0;
    for (unsigned i = 0; i < huge_cache_n;) {
        if (now - huge_cache[i].since >= max_age)
            out[n++] = huge_cache_remove(i);
        else
            i++;
    }
    return n;
}

static void huge_unmap_all(const huge_entry *e, unsigned n) {
    for (unsigned i = 0; i < n; i++) huge_unmap(e[i].at, e[i].len);
}

/* Under huge_lock: the last `want` bytes of entry i (all of it when it has
 * no more, or when what would stay is too small to be worth an entry). */
static huge_entry huge_cache_cut(unsigned i, size_t want) {
    huge_entry *e = &huge_cache[i];
    if (e->len <= want || e->len - want < ZP_HUGE_PIECE_MIN) return huge_cache_remove(i);
    e->len -= want;
    huge_cache_bytes -= want;
    return (huge_entry){e->at + e->len, want, e->since};
}

/* A segment-aligned mapping of `need` bytes built from cached pages, or
 * NULL when the cache has none to give. *dirty: bytes from its start that
 * may hold old data (beyond, fresh zero pages).
 *
 * Resident pages are what the cache is for, so a take gives up none
 * (decided 2026-12-04, malloc-large: 5-25 MiB blocks, four live, took
 * 38.6k page faults against tcmalloc's 24.4k, at 1.97x its time): the
 * smallest range that holds the request serves it, and what is left of
 * the range stays cached when it is worth an entry; when no range is big
 * enough, the largest ranges (up to ZP_HUGE_GATHER_MAX, the largest of at
 * least half the request) are put together. Either way the pages reach
 * their place with mremap, which moves page tables: no fault, no zeroing;
 * a range that starts on a segment boundary and holds just the request is
 * used where it is. Only what no range can give is faulted in. */
static zp_segment *huge_cache_take(size_t need, size_t *dirty) {
    huge_entry expired[ZP_HUGE_CACHE_SLOTS], got[ZP_HUGE_GATHER_MAX];
    unsigned ngot = 0;
    size_t have = 0;
    uint64_t now = zm_os_clock_ms();
    zp_lock_acquire(&huge_lock);
    unsigned nexp = huge_cache_expire(now, zp_pol.huge_cache_age_ms, expired);
    unsigned best = ZP_HUGE_CACHE_SLOTS;
    for (unsigned i = 0; i < huge_cache_n; i++)
        if (huge_cache[i].len >= need &&
            (best == ZP_HUGE_CACHE_SLOTS || huge_cache[i].len < huge_cache[best].len))
            best = i;
    if (best != ZP_HUGE_CACHE_SLOTS) {
        huge_entry *e = &huge_cache[best];
        if (((uintptr_t)e->at & ZP_SEG_MASK) == 0 && e->len - need < ZP_HUGE_PIECE_MIN &&
            e->len - need <= need / 8) {
            got[ngot++] = huge_cache_remove(best); /* in place, slack and all */
        } else if (((uintptr_t)e->at & ZP_SEG_MASK) == 0 && e->len - need >= ZP_HUGE_PIECE_MIN) {
            /* The front in place; the rest stays cached. */
            got[ngot++] = (huge_entry){e->at, need, e->since};
            e->at += need;
            e->len -= need;
            huge_cache_bytes -= need;
        } else {
            got[ngot++] = huge_cache_cut(best, need);
        }
        have = got[0].len;
    } else {
        while (ngot < ZP_HUGE_GATHER_MAX && have < need && huge_cache_n) {
            unsigned big = 0;
            for (unsigned i = 1; i < huge_cache_n; i++)
                if (huge_cache[i].len > huge_cache[big].len) big = i;
            if (ngot == 0 && huge_cache[big].len < need / 2) break;
            got[ngot] = huge_cache_cut(big, need - have);
            have += got[ngot++].len;
        }
    }
    atomic_store_explicit(&huge_cache_hint, huge_cache_n, memory_order_relaxed);
    zp_lock_release(&huge_lock);
    huge_unmap_all(expired, nexp);
    if (ngot == 0) return NULL;
    /* One range, on a segment boundary, at least the request: as it is. */
    if (ngot == 1 && ((uintptr_t)got[0].at & ZP_SEG_MASK) == 0 && got[0].len >= need) {
        zp_segment *seg = (zp_segment *)got[0].at;
        seg->map_size = got[0].len;
        *dirty = got[0].len;
        return seg;
    }
    char *dst = zm_os_map_aligned(need, ZP_SEG_SIZE);
    if (!dst) {
        huge_unmap_all(got, ngot);
        return NULL;
    }
    /* Each range moved in replaces fresh pages the new mapping counted. */
    zp_stat_add(&zp_stat.mapped, need);
    zp_stat_add(&zp_stat.committed, need);
    size_t off = 0;
    for (unsigned i = 0; i < ngot; i++) {
        size_t len = got[i].len < need - off ? got[i].len : need - off;
        if (len && zm_os_remap(got[i].at, len, len, dst + off) != NULL) {
            zp_stat_sub(&zp_stat.mapped, len);
            zp_stat_sub(&zp_stat.committed, len);
            off += len;
            if (len < got[i].len) huge_unmap(got[i].at + len, got[i].len - len);
        } else {
            huge_unmap(got[i].at, got[i].len);
        }
    }
    zp_segment *seg = (zp_segment *)dst;
    seg->map_size = need;
    *dirty = off;
    return seg;
}

void *zp_huge_alloc(size_t size, size_t alignment, size_t *usable, int zero) {
    size_t os_page = zm_os_page_size();
    size_t offset = alignment <= ZP_HDR_SIZE ? ZP_HDR_SIZE : alignment;
    char *hdr, *user;
    size_t total, dirty = 0;
    int cached = 0;
    if (alignment <= ZP_SEG_SIZE) {
        if (size > SIZE_MAX / 2 - offset - os_page) goto oom;
        total = (offset + size + os_page - 1) & ~(os_page - 1);
        hdr = offset == ZP_HDR_SIZE ? (char *)huge_cache_take(total, &dirty) : NULL;
        if (hdr) {
            cached = 1;
            total = ((zp_segment *)hdr)->map_size;
        } else {
            hdr = zm_os_map_aligned(total, ZP_SEG_SIZE);
            if (!hdr) goto oom;
        }
        user = hdr + offset;
    } else {
        if (size > SIZE_MAX / 2 - alignment - os_page) goto oom;
        total = (alignment + size + os_page - 1) & ~(os_page - 1);
        char *base = zm_os_map_aligned(total, alignment);
        if (!base) goto oom;
        user = base + alignment;
        hdr = user - ZP_SEG_SIZE;
        zm_os_unmap(base, (size_t)(hdr - base));
        total -= (size_t)(hdr - base);
    }
    zp_segment *seg = (zp_segment *)hdr;
    seg->kind = ZP_KIND_HUGE;
    seg->page_shift = ZP_HUGE_PAGE_SHIFT;
    seg->npages = 1;
    seg->map_size = total;
    seg->huge_usable = total - (size_t)(user - hdr);
    seg->pages[0].block_size = 0;
    atomic_store_explicit(&seg->pages[0].xheap, 0, memory_order_relaxed);
    if (!cached) {
        zp_stat_add(&zp_stat.mapped, total);
        zp_stat_add(&zp_stat.committed, total);
    } else if (zero && dirty > ZP_HDR_SIZE) {
        /* A fresh mapping is zero already; a cached one may be larger than
         * asked for, and calloc's caller may use all of the usable size. */
        memset(user, 0, dirty - ZP_HDR_SIZE); /* the rest is fresh */
    }
    zp_stat_add(&zp_stat.active, total);
    zp_stat_add(&zp_stat.huge_live, seg->huge_usable);
    zp_stat_add(&zp_stat.huge_count, 1);
    *usable = seg->huge_usable;
    return user;
oom:
    errno = ENOMEM;
    return NULL;
}

/* Resize a huge block to `size` usable bytes without copying: mremap in
 * place when the range after the mapping is free (or when shrinking), else
 * move its pages onto a fresh segment-aligned reservation (the start must
 * stay aligned, so the pointer-to-segment mask still finds the header).
 * Only plain mappings (block right after the header). NULL when it cannot:
 * the caller copies. The pages keep their state, so mapped, committed and
 * active move by the size difference; huge_live by the usable difference. */
void *zp_huge_remap(zp_segment *seg, void *p, size_t size, size_t *usable) {
    size_t os_page = zm_os_page_size();
    if ((char *)p - (char *)seg != (ptrdiff_t)ZP_HDR_SIZE || size > SIZE_MAX / 2) return NULL;
    size_t total = (ZP_HDR_SIZE + size + os_page - 1) & ~(os_page - 1);
    size_t old = seg->map_size, old_usable = seg->huge_usable;
    if (total == old) {
        *usable = old_usable;
        return p;
    }
    zp_segment *n = zm_os_remap(seg, old, total, NULL);
    if (!n) {
        void *dst = zm_os_map_aligned(total, ZP_SEG_SIZE);
        if (!dst) return NULL;
        n = zm_os_remap(seg, old, total, dst);
        if (!n) {
            zm_os_unmap(dst, total);
            return NULL;
        }
    }
    n->map_size = total;
    n->huge_usable = total - ZP_HDR_SIZE;
    if (total > old) {
        zp_stat_add(&zp_stat.mapped, total - old);
        zp_stat_add(&zp_stat.committed, total - old);
        zp_stat_add(&zp_stat.active, total - old);
        zp_stat_add(&zp_stat.huge_live, n->huge_usable - old_usable);
    } else {
        zp_stat_sub(&zp_stat.mapped, old - total);
        zp_stat_sub(&zp_stat.committed, old - total);
        zp_stat_sub(&zp_stat.active, old - total);
        zp_stat_sub(&zp_stat.huge_live, old_usable - n->huge_usable);
    }
    *usable = n->huge_usable;
    return (char *)n + ZP_HDR_SIZE;
}

void zp_huge_free(zp_segment *seg) {
    size_t total = seg->map_size;
    zp_stat_sub(&zp_stat.huge_live, seg->huge_usable);
    zp_stat_sub(&zp_stat.huge_count, 1);
    zp_stat_sub(&zp_stat.active, total);
    /* Only plain mappings (block right after the header) are cached. */
    if (seg->huge_usable + ZP_HDR_SIZE == total && total <= zp_pol.huge_cache_entry_max) {
        huge_entry expired[ZP_HUGE_CACHE_SLOTS + 1];
        uint64_t now = zm_os_clock_ms();
        zp_lock_acquire(&huge_lock);
        unsigned nexp = huge_cache_expire(now, zp_pol.huge_cache_age_ms, expired);
        /* Make room: evict the oldest until it fits. */
        while (huge_cache_n &&
               (huge_cache_n == ZP_HUGE_CACHE_SLOTS ||
                huge_cache_bytes + total > zp_pol.huge_cache_bytes)) {
            unsigned old = 0;
            for (unsigned i = 1; i < huge_cache_n; i++)
                if (huge_cache[i].since < huge_cache[old].since) old = i;
            expired[nexp++] = huge_cache_remove(old);
        }
        huge_cache[huge_cache_n++] = (huge_entry){(char *)seg, total, now};
        huge_cache_bytes += total;
        atomic_store_explicit(&huge_cache_hint, huge_cache_n, memory_order_relaxed);
        zp_lock_release(&huge_lock);
        huge_unmap_all(expired, nexp);
        return;
    }
    huge_unmap(seg, total);
}

static void huge_cache_drop(uint64_t max_age) {
    huge_entry expired[ZP_HUGE_CACHE_SLOTS];
    zp_lock_acquire(&huge_lock);
    unsigned n = huge_cache_expire(max_age ? zm_os_clock_ms() : 0, max_age, expired);
    atomic_store_explicit(&huge_cache_hint, huge_cache_n, memory_order_relaxed);
    zp_lock_release(&huge_lock);
    huge_unmap_all(expired, n);
}

void zp_huge_cache_expire_aged(void) {
    if (atomic_load_explicit(&huge_cache_hint, memory_order_relaxed))
        huge_cache_drop(zp_pol.huge_cache_age_ms);
}

void zp_huge_cache_release(void) {
    huge_cache_drop(0);
}

void zp_huge_fork_prepare(void) {
    zp_lock_acquire(&huge_lock);
}

void zp_huge_fork_parent(void) {
    zp_lock_release(&huge_lock);
}

void zp_huge_fork_child(void) {
    atomic_flag_clear(&huge_lock.flag);
}
