/* The part of ROCm SMI's C API (rocm_smi/rocm_smi.h) that the amd backend looks up with dlsym, with its
 * values.  tests/doubles/fake-rocm-smi/ implements the same functions for tests. */
#ifndef SMHOST_RSMI_MIN_H
#define SMHOST_RSMI_MIN_H
#include <stddef.h>
#include <stdint.h>

typedef int rsmi_status_t;
#define RSMI_STATUS_SUCCESS 0
#define RSMI_STATUS_NOT_SUPPORTED 2
#define RSMI_STATUS_PERMISSION 4
#define RSMI_STATUS_INIT_ERROR 8
#define RSMI_MEM_TYPE_VRAM 0

typedef rsmi_status_t (*rsmi_init_fn)(uint64_t flags);
typedef rsmi_status_t (*rsmi_shutdown_fn)(void);
typedef rsmi_status_t (*rsmi_count_fn)(uint32_t *num);
typedef rsmi_status_t (*rsmi_u64_fn)(uint32_t dv, uint64_t *out);
typedef rsmi_status_t (*rsmi_name_fn)(uint32_t dv, char *name, size_t len);
typedef rsmi_status_t (*rsmi_mem_fn)(uint32_t dv, int type, uint64_t *total);
typedef rsmi_status_t (*rsmi_errstr_fn)(rsmi_status_t status, const char **text);
#endif
