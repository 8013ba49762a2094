/* Device counts for SM_NUM_CPUS / SM_NUM_GPUS / SM_NUM_NEURONS. */
#ifndef SHX_DEVICES_H
#define SHX_DEVICES_H
int shx_num_cpus(void);    /* like Python's multiprocessing.cpu_count(): online CPUs */
int shx_num_gpus(void);    /* NVIDIA GPUs visible to the container */
int shx_num_neurons(void); /* AWS Neuron cores */
#endif
