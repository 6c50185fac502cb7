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

/* The file-system type (statfs f_type) of `path`, or -1 on error. */
static inline long dpm_filesystem_type(const char *path) {
    struct statfs info;
    return statfs(path, &info) == 0 ? (long)info.f_type : -1;
}

/* The thaw/resume watchdog of running-VM backups (HyperVHost). */
#include "watchdog.h"
#endif
