/* Checks Sources/System/CTape/shim.h against the C library's <sys/mtio.h>: same struct
 * layouts, ioctl numbers, operation codes and status bits. Compiling is the test. */
#include <stddef.h>
#include <sys/mtio.h>
#include "shim.h"

#define SAME(a, b) _Static_assert((a) == (b), #a " != " #b)
SAME(sizeof(struct mtop), sizeof(struct dpm_mtop));
SAME(offsetof(struct mtop, mt_count), offsetof(struct dpm_mtop, mt_count));
SAME(sizeof(struct mtget), sizeof(struct dpm_mtget));
SAME(offsetof(struct mtget, mt_gstat), offsetof(struct dpm_mtget, mt_gstat));
SAME(offsetof(struct mtget, mt_fileno), offsetof(struct dpm_mtget, mt_fileno));
SAME(offsetof(struct mtget, mt_blkno), offsetof(struct dpm_mtget, mt_blkno));
SAME(sizeof(struct mtpos), sizeof(struct dpm_mtpos));
SAME(MTIOCTOP, 0x40086d01UL);
SAME(MTIOCGET, 0x80306d02UL);
SAME(MTIOCPOS, 0x80086d03UL);
SAME(MTFSF, DPM_MTFSF); SAME(MTBSF, DPM_MTBSF); SAME(MTFSR, DPM_MTFSR); SAME(MTBSR, DPM_MTBSR);
SAME(MTWEOF, DPM_MTWEOF); SAME(MTREW, DPM_MTREW); SAME(MTOFFL, DPM_MTOFFL); SAME(MTEOM, DPM_MTEOM);
SAME(MTERASE, DPM_MTERASE); SAME(MTSETBLK, DPM_MTSETBLK); SAME(MTSEEK, DPM_MTSEEK);
#ifdef MTWEOFI
SAME(MTWEOFI, DPM_MTWEOFI);
#else
SAME(DPM_MTWEOFI, 35); /* linux/mtio.h; glibc's sys/mtio.h predates it */
#endif

SAME(GMT_EOF(~0UL), 0x80000000UL); SAME(GMT_BOT(~0UL), 0x40000000UL); SAME(GMT_EOT(~0UL), 0x20000000UL);
SAME(GMT_EOD(~0UL), 0x08000000UL); SAME(GMT_WR_PROT(~0UL), 0x04000000UL); SAME(GMT_ONLINE(~0UL), 0x01000000UL);
SAME(GMT_DR_OPEN(~0UL), 0x00040000UL);
int main(void) { return dpm_mtioctop == MTIOCTOP && dpm_mtiocget == MTIOCGET && dpm_mtiocpos == MTIOCPOS ? 0 : 1; }
