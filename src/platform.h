/* platform.h: the only interface to the operating system (Linux).
 *
 * Everything that maps memory, advises the kernel or reads /proc and
 * /sys/fs/cgroup goes through here, so the rest of the library is plain C.
 * None of these functions allocates with malloc: the pool backend calls them
 * while it is itself replacing malloc.
 */
#ifndef ZMALLOC_PLATFORM_H
#define ZMALLOC_PLATFORM_H

#include <stddef.h>

/* System page size, cached after the first call. */
size_t zm_os_page_size(void);

/* Map size bytes of fresh zeroed read/write memory; NULL (errno set) on
 * failure. size need not be page-aligned. */
void *zm_os_map(size_t size);
/* Map size bytes whose start is aligned to alignment (a power of two,
 * any size): over-maps and trims. NULL on failure. */
void *zm_os_map_aligned(size_t size, size_t alignment);
void zm_os_unmap(void *addr, size_t size);
/* Give the pages back to the OS but keep the range mapped; next touch
 * faults in zero pages (MADV_DONTNEED). 0 on success. */
int zm_os_decommit(void *addr, size_t size);
/* As zm_os_decommit but lazy (MADV_FREE where the kernel has it, else
 * MADV_DONTNEED): the pages stay resident until the kernel needs them. */
int zm_os_decommit_lazy(void *addr, size_t size);
/* Resize the mapping [addr, addr + old_size) to new_size (both page
 * multiples), keeping its pages (mremap, no copy). With dst NULL in place:
 * returns addr, or NULL when the range after it is taken (growth). With dst
 * (a mapping of new_size bytes the caller owns) the pages move there,
 * replacing it, and [addr, addr + old_size) is unmapped: returns dst, or
 * NULL on failure (both mappings then unchanged). */
void *zm_os_remap(void *addr, size_t old_size, size_t new_size, void *dst);

/* Milliseconds of a monotonic clock (CLOCK_MONOTONIC_COARSE: a few ms of
 * resolution, no syscall through the vDSO); for policy timers. */
unsigned long long zm_os_clock_ms(void);

/* /proc readers used by the Redis API (zmalloc.h documents each). */
size_t zm_os_rss(void);
int zm_os_proc_stat_field(int field, long long *res);
size_t zm_os_smaps_field(const char *field, long pid);
size_t zm_os_smaps_field_full_scan(const char *field, long pid);
size_t zm_os_physical_memory(void);
size_t zm_os_cgroup_memory_limit(void);

#endif
