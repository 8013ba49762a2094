/* The part of NVML's C API (nvml.h, NVIDIA's CUDA toolkit / GPU deployment kit) that the nvidia backend uses,
 * with the values and layouts of nvml.h.  smhost never links against NVML: the backend dlopens
 * libnvidia-ml.so.1 and looks each function up by name, so these declarations are only the types of those
 * lookups.  tests/doubles/fake-nvml/ implements the same functions for tests. */
#ifndef SMHOST_NVML_MIN_H
#define SMHOST_NVML_MIN_H

typedef struct nvmlDevice_st *nvmlDevice_t;
typedef int nvmlReturn_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_TIMEOUT 10
#define NVML_ERROR_LIBRARY_NOT_FOUND 12
#define NVML_ERROR_FUNCTION_NOT_FOUND 13
#define NVML_ERROR_GPU_IS_LOST 15
#define NVML_ERROR_RESET_REQUIRED 16
#define NVML_ERROR_LIB_RM_VERSION_MISMATCH 18
#define NVML_ERROR_UNKNOWN 999

#define NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE 32
#define NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE 16
#define NVML_DEVICE_UUID_V2_BUFFER_SIZE 96
#define NVML_DEVICE_NAME_V2_BUFFER_SIZE 96
#define NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE 80

typedef struct nvmlPciInfo_st { /* the v3 layout (nvmlDeviceGetPciInfo_v3) */
    char busIdLegacy[NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
} nvmlPciInfo_t;

typedef struct nvmlMemory_st {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

#define NVML_MEMORY_ERROR_TYPE_CORRECTED 0
#define NVML_MEMORY_ERROR_TYPE_UNCORRECTED 1
#define NVML_VOLATILE_ECC 0
#define NVML_AGGREGATE_ECC 1
#define NVML_DEVICE_MIG_DISABLE 0
#define NVML_DEVICE_MIG_ENABLE 1

typedef nvmlReturn_t (*nvml_init_fn)(void);
typedef nvmlReturn_t (*nvml_count_fn)(unsigned int *count);
typedef nvmlReturn_t (*nvml_handle_fn)(unsigned int index, nvmlDevice_t *device);
typedef nvmlReturn_t (*nvml_pci_fn)(nvmlDevice_t device, nvmlPciInfo_t *pci);
typedef nvmlReturn_t (*nvml_str_fn)(nvmlDevice_t device, char *buf, unsigned int length);
typedef nvmlReturn_t (*nvml_mem_fn)(nvmlDevice_t device, nvmlMemory_t *memory);
typedef nvmlReturn_t (*nvml_migmode_fn)(nvmlDevice_t device, unsigned int *current, unsigned int *pending);
typedef nvmlReturn_t (*nvml_migcount_fn)(nvmlDevice_t device, unsigned int *count);
typedef nvmlReturn_t (*nvml_mighandle_fn)(nvmlDevice_t device, unsigned int index, nvmlDevice_t *mig);
typedef nvmlReturn_t (*nvml_driver_fn)(char *version, unsigned int length);
typedef nvmlReturn_t (*nvml_cuda_fn)(int *version);
typedef nvmlReturn_t (*nvml_ecc_fn)(nvmlDevice_t device, int error_type, int counter_type,
                                    unsigned long long *count);
typedef const char *(*nvml_errstr_fn)(nvmlReturn_t result);

#endif
