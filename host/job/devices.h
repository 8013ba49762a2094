/* Device counts for SM_NUM_CPUS / SM_NUM_GPUS / SM_NUM_NEURONS. */
#ifndef SHX_DEVICES_H
#define SHX_DEVICES_H
int shx_num_cpus(void);    /* like Python's multiprocessing.cpu_count(): online CPUs */
int shx_num_gpus(void);    /* NVIDIA GPUs visible to the container: /proc/driver/nvidia/gpus/ entries, else
                              /dev/nvidia<n> nodes */
int shx_num_neurons(void); /* AWS Neuron cores: core_count in sysfs of each /dev/neuron<n> (devices.c says why) */
/* SMHOST_TEST_SYSROOT=<dir> makes the GPU and Neuron counts read /proc, /dev and /sys under <dir>: a test
 * double for hardware this machine lacks, used by the unit tests. */
#endif
