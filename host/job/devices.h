/* Device counts for SM_NUM_CPUS / SM_NUM_GPUS / SM_NUM_NEURONS. */
#ifndef SHX_DEVICES_H
#define SHX_DEVICES_H
#include <stddef.h>

int shx_num_cpus(void);    /* like Python's multiprocessing.cpu_count(): online CPUs */
int shx_num_gpus(void);    /* NVIDIA GPUs visible to the container: /proc/driver/nvidia/gpus/ entries, else
                              /dev/nvidia<n> nodes */
int shx_num_neurons(void); /* AWS Neuron cores: core_count in sysfs of each /dev/neuron<n> (devices.c says why) */
/* SMHOST_TEST_SYSROOT=<dir> makes the GPU and Neuron counts and the hardware signs read /proc, /dev and /sys under
 * <dir>: a test double for hardware this machine lacks, used by the unit and black-box tests (the neuron backend
 * plugin reads the same variable). */
/* Signs of a shipped backend's hardware (nvidia: /proc/driver/nvidia/gpus, /dev/nvidia<n> or SMHOST_NVML_LIBRARY;
 * neuron: /dev/neuron<n>; amd: /dev/kfd or SMHOST_ROCM_SMI_LIBRARY), without loading anything: 1 present, 0 absent
 * (why says so), -1 a backend it has no signs for (load it).  env: the environment smhost started with. */
int shx_device_signs(const char *backend, char *const *env, char *why, size_t whylen);
/* Between begin and end, the counts and signs above read each directory once (discovery asks about /dev for
 * several backends); outside, every call reads afresh. */
void shx_device_scan_begin(void);
void shx_device_scan_end(void);
#endif
