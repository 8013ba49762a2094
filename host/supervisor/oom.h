/* The kernel's OOM killer as seen from smhost's memory cgroup (v2 memory.events, v1 memory.oom_control). */
#ifndef SHX_OOM_H
#define SHX_OOM_H
#include <stdint.h>

/* How many processes the OOM killer has killed in smhost's memory cgroup (and below it); -1 when unknown
 * (no memory controller, or a kernel older than 4.13 for v1). */
int64_t shx_oom_kill_count(void);
/* The memory limit of smhost's cgroup in bytes; 0 when there is none ("max" or the v1 "unlimited" value) or it
 * cannot be read. */
uint64_t shx_memory_limit(void);
#endif
