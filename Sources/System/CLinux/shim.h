/* Linux calls that Swift's Glibc module does not expose (glibc declares them only under
 * _GNU_SOURCE, which the prebuilt Glibc module was not built with). */
#ifndef DPM_CLINUX_SHIM_H
#define DPM_CLINUX_SHIM_H

/* syncfs(2): commits the file system containing `fd` to disk. */
extern int syncfs(int fd);

static inline int dpm_syncfs(int fd) { return syncfs(fd); }

#include <sys/vfs.h>

/* The file-system type (statfs f_type) of `path`, or -1 on error. */
static inline long dpm_filesystem_type(const char *path) {
    struct statfs info;
    return statfs(path, &info) == 0 ? (long)info.f_type : -1;
}

/* The thaw/resume watchdog of running-VM backups (HyperVHost). */
#include "watchdog.h"
#endif
