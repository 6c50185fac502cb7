/* Linux calls that Swift's Glibc module does not expose (glibc declares them only under
 * _GNU_SOURCE, which the prebuilt Glibc module was not built with). */
#ifndef DPM_CLINUX_SHIM_H
#define DPM_CLINUX_SHIM_H

/* syncfs(2): commits the file system containing `fd` to disk. */
extern int syncfs(int fd);

static inline int dpm_syncfs(int fd) { return syncfs(fd); }

/* sync_file_range(2) with SYNC_FILE_RANGE_WRITE: start writing a file's dirty pages back
 * without waiting, so a later fsync/syncfs finds most of the work done. */
extern int sync_file_range(int fd, long long offset, long long nbytes, unsigned int flags);

static inline int dpm_start_writeback(int fd, long long offset, long long length) {
    return sync_file_range(fd, offset, length, 2 /* SYNC_FILE_RANGE_WRITE */);
}

/* O_DIRECT (040000 on x86-64 and arm64 Linux), hidden behind _GNU_SOURCE in <fcntl.h>. */
static const int dpm_o_direct = 040000;

#include <sys/vfs.h>
#include <linux/stat.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Whether O_DIRECT on the open file `fd` really bypasses the page cache, from statx
 * STATX_DIOALIGN (Linux 6.1+; glibc declares statx only under _GNU_SOURCE, hence the raw
 * system call). Returns 1 and the required file-offset alignment in *offset_align when the
 * file system reports it; an alignment of 0 means it would serve O_DIRECT through the page
 * cache for this file (ext4 with data=journal, inline data or fs-verity). Returns 0 when the
 * kernel or file system does not report it, -1 on error (errno set). */
static inline int dpm_direct_io_alignment(int fd, unsigned int *offset_align) {
    struct statx info;
    memset(&info, 0, sizeof info);
    if (syscall(SYS_statx, fd, "", 0x1000 /* AT_EMPTY_PATH */, STATX_DIOALIGN, &info) != 0) return -1;
    if (!(info.stx_mask & STATX_DIOALIGN)) return 0;
    *offset_align = info.stx_dio_offset_align;
    return 1;
}

/* The file-system type (statfs f_type) of `path`, or -1 on error. */
static inline long dpm_filesystem_type(const char *path) {
    struct statfs info;
    return statfs(path, &info) == 0 ? (long)info.f_type : -1;
}

/* The thaw/resume watchdog of running-VM backups (HyperVHost). */
#include "watchdog.h"
#endif
