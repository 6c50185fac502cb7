/* The Linux SCSI tape (st) interface of <sys/mtio.h>, declared here because Swift's Glibc
 * module exposes neither `struct mtop`/`struct mtget`/`struct mtpos` nor the MTIOC* ioctl
 * numbers (they are function-like _IOW/_IOR macros), and ioctl(2) is variadic, which Swift
 * cannot call. The layouts and numbers are those of x86_64 Linux; Tests/TapeLibraryTests
 * compiles this header beside <sys/mtio.h> and checks that they agree. */
#ifndef DPM_CTAPE_SHIM_H
#define DPM_CTAPE_SHIM_H

#include <sys/ioctl.h>
#include <stdint.h>

/* struct mtop: MTIOCTOP's argument. */
struct dpm_mtop {
    short mt_op;
    int mt_count;
};

/* struct mtget: MTIOCGET's result. mt_gstat holds the GMT_* bits below; mt_fileno and
 * mt_blkno are -1 when the driver does not know the position (after MTSEEK). */
struct dpm_mtget {
    long mt_type;
    long mt_resid;
    long mt_dsreg;
    long mt_gstat;
    long mt_erreg;
    int mt_fileno;
    int mt_blkno;
};

/* struct mtpos: MTIOCPOS's result, the logical block number (filemarks count as blocks). */
struct dpm_mtpos {
    long mt_blkno;
};

static const unsigned long dpm_mtioctop = 0x40086d01UL; /* _IOW('m', 1, struct mtop) */
static const unsigned long dpm_mtiocget = 0x80306d02UL; /* _IOR('m', 2, struct mtget) */
static const unsigned long dpm_mtiocpos = 0x80086d03UL; /* _IOR('m', 3, struct mtpos) */

/* mt_op values. */
enum {
    DPM_MTFSF = 1, DPM_MTBSF = 2, DPM_MTFSR = 3, DPM_MTBSR = 4, DPM_MTWEOF = 5, DPM_MTREW = 6,
    DPM_MTOFFL = 7, DPM_MTEOM = 12, DPM_MTERASE = 13, DPM_MTSETBLK = 20, DPM_MTSEEK = 22, DPM_MTWEOFI = 35
};

/* mt_gstat bits (GMT_*). */
static const unsigned long dpm_gmt_eof = 0x80000000UL;
static const unsigned long dpm_gmt_bot = 0x40000000UL;
static const unsigned long dpm_gmt_eot = 0x20000000UL;
static const unsigned long dpm_gmt_eod = 0x08000000UL;
static const unsigned long dpm_gmt_wr_prot = 0x04000000UL;
static const unsigned long dpm_gmt_online = 0x01000000UL;
static const unsigned long dpm_gmt_dr_open = 0x00040000UL;

/* The three ioctls, as plain functions Swift can call. Each returns ioctl's result (-1 and
 * errno on failure). */
static inline int dpm_mt_op(int fd, short op, int count) {
    struct dpm_mtop request = { op, count };
    return ioctl(fd, dpm_mtioctop, &request);
}

static inline int dpm_mt_get(int fd, struct dpm_mtget *status) {
    return ioctl(fd, dpm_mtiocget, status);
}

static inline int dpm_mt_pos(int fd, long *block) {
    struct dpm_mtpos position = { 0 };
    int result = ioctl(fd, dpm_mtiocpos, &position);
    *block = position.mt_blkno;
    return result;
}

/* flock(2) without the Glibc module's overlay quirks. */
#include <sys/file.h>
static inline int dpm_flock(int fd, int operation) { return flock(fd, operation); }
static const int dpm_lock_ex = LOCK_EX, dpm_lock_nb = LOCK_NB, dpm_lock_un = LOCK_UN;

#endif
