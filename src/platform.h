/* platform.h: the only interface to the operating system (Linux).
 *
 * Everything that maps memory, advises the kernel, asks for the time or the
 * page size, or reads /proc and /sys/fs/cgroup goes through here, so the
 * rest of the library is plain C with no system call of its own. None of
 * these functions allocates with malloc: the pool backend calls them while
 * it is itself replacing malloc, and the verification layer and the options
 * reader call them before libc is fully set up.
 *
 * Return convention (one for the whole file):
 *   - a function that returns memory returns NULL on failure, errno set;
 *   - every other function that can fail returns int: 0 on success, -1 on
 *     failure with errno set (as system calls do); results go through
 *     pointer arguments;
 *   - a reader of a figure that has no failure worth reporting (page size,
 *     clock, RSS, memory sizes) returns the figure, 0 when it is unknown.
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
/* NULL addr is a no-op returning 0. */
int zm_os_unmap(void *addr, size_t size);
/* Give the pages back to the OS but keep the range mapped; next touch
 * faults in zero pages (MADV_DONTNEED). 0 on success. */
int zm_os_decommit(void *addr, size_t size);
/* 0 when every page of [addr, addr + size) is mapped, -1 (errno ENOMEM)
 * when one is not (mincore): lets the verification layer read memory in
 * front of a pointer it was handed without faulting. */
int zm_os_probe_mapped(const void *addr, size_t size);
/* Resize the mapping [addr, addr + old_size) to new_size (both page
 * multiples), keeping its pages (mremap, no copy). With dst NULL in place:
 * returns addr, or NULL when the range after it is taken (growth). With dst
 * (a mapping of new_size bytes the caller owns) the pages move there,
 * replacing it, and [addr, addr + old_size) is unmapped: returns dst, or
 * NULL on failure (both mappings then unchanged). */
void *zm_os_remap(void *addr, size_t old_size, size_t new_size, void *dst);

/* Milliseconds of a monotonic clock (CLOCK_MONOTONIC_COARSE: a few ms of
 * resolution, no system call through the vDSO), for ageing policies. */
unsigned long long zm_os_clock_ms(void);

/* Writes all len bytes to fd (retrying short writes and EINTR). */
int zm_os_write_all(int fd, const void *buf, size_t len);

/* Calls fn(entry, arg) for each "NAME=value" entry of the environment the
 * process started with (/proc/self/environ), usable before libc has set up
 * environ. Entries longer than 4 KiB are skipped. */
int zm_os_environ_each(void (*fn)(const char *entry, void *arg), void *arg);

/* Reserve size bytes of address space with no access (PROT_NONE): the
 * guarded-sampling area. NULL on failure. */
void *zm_os_reserve(size_t size);
/* Make [addr, addr + size) (page-aligned) readable and writable (rw != 0)
 * or inaccessible (rw == 0). 0 on success. */
int zm_os_protect(void *addr, size_t size, int rw);
/* Install fn as the SIGSEGV handler (with SA_SIGINFO and SA_ONSTACK),
 * keeping the handler that was there for zm_os_segv_chain(). 0 on success.
 * fn receives the fault address. */
int zm_os_segv_install(void (*fn)(int sig, void *fault_addr, void *info, void *ctx));
/* Pass a fault that is not ours to the handler installed before ours (or
 * the default action, which re-raises it when the handler returns). */
void zm_os_segv_chain(int sig, void *info, void *ctx);
/* The kernel's thread id (for reports), asked of the kernel once per
 * thread: guarded sampling records it at each sampled allocation and free,
 * where a gettid call apiece was half of the syscalls. */
long zm_os_thread_id(void);
/* A forked child's thread has a new id: the fork handler forgets the
 * cached one (lifecycle.c). */
void zm_os_thread_id_fork_child(void);

/* /proc readers used by the Redis API (zmalloc.h documents each). */
size_t zm_os_rss(void);
/* Field number field (1-based, as in proc(5)) of /proc/self/stat. */
int zm_os_proc_stat_field(int field, long long *res);
size_t zm_os_smaps_field(const char *field, long pid);
size_t zm_os_smaps_field_full_scan(const char *field, long pid);
size_t zm_os_physical_memory(void);
size_t zm_os_cgroup_memory_limit(void);

/* For the preload library's exit report (no stdio, no malloc: it runs
 * after other exit handlers). /proc/self/<name> (e.g. "cmdline") into buf,
 * NUL-terminated, *len bytes. */
int zm_os_read_self(const char *name, char *buf, size_t cap, size_t *len);
/* A "Field:   N kB" line of /proc/self/status, in kB; 0 when absent. */
size_t zm_os_self_status_kb(const char *field);
/* Path of the running executable, *len bytes, not NUL-terminated. */
int zm_os_self_exe(char *buf, size_t cap, size_t *len);
/* Appends len bytes to path (created 0600) in one write. */
int zm_os_append_file(const char *path, const void *buf, size_t len);

#endif
