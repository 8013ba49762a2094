/*
 * smhost device backends (plugin ABI 1.1) -- include this instead of, or after, <smhost/plugin.h>.
 *
 * A device backend is a plugin of kind SMH_KIND_BACKEND whose descriptor points at an smh_backend_ops table
 * (the `backend` member of smh_plugin).  It finds one family of accelerators (NVIDIA GPUs through NVML, AWS
 * Neuron devices through sysfs ...) and reports each device, healthy or not.  The host turns the reports into
 * the job's view: SM_NUM_GPUS / SM_NUM_NEURONS, the device list of `smhost devices`, host->device_get() for
 * trainers, and the health check that runs before the user's program (docs/devices.md).
 *
 * When it runs.  Only when the hardware looks present: the host checks cheap signs itself first (device nodes,
 * /proc/driver/<x>; docs/devices.md lists them per shipped backend) and never loads a backend on a machine without
 * them, so jobs on CPU instances load no GPU library.  A backend named in `[devices] backends` that the host has no
 * signs for is always loaded.  The host loads the backend in a short-lived child process of its own (never in the
 * supervisor, never in the user's program): init(), probe(), list() and, with `[devices] isolate = true`,
 * isolate(), then fini(), and the process exits.  So a backend may dlopen a driver library, start threads or crash:
 * a crash or a hang ([devices] probe_timeout_seconds, 60 s) becomes a warning and the host falls back to its own
 * /proc and /dev scan.  The backend reads the environment with getenv(): it is the environment the job inherits
 * (CUDA_VISIBLE_DEVICES ... as the user and the platform set them).
 *
 * Ownership.  Every struct a backend passes to the host is copied before the call returns.  Strings inside
 * smh_device are fixed arrays, so there is nothing to free.
 */
#ifndef SMHOST_DEVICE_H
#define SMHOST_DEVICE_H

#include <smhost/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Device classes: what the job's counts add up. */
#define SMH_DEVICE_GPU 1    /* counted in SM_NUM_GPUS (top-level devices only, not MIG children) */
#define SMH_DEVICE_NEURON 2 /* counted in SM_NUM_NEURONS (their visible cores) */

/* Health.  FAILED devices that the job can see stop `smhost train` before the user's program starts (with
 * [devices] health_check = fail, the default); DEGRADED ones are only logged. */
typedef enum smh_health {
    SMH_HEALTH_OK = 0,
    SMH_HEALTH_DEGRADED = 1,
    SMH_HEALTH_FAILED = 2
} smh_health;

/* smh_device.flags */
#define SMH_DEVICE_VISIBLE (1u << 0)     /* the job may use it: the visibility variables allow it */
#define SMH_DEVICE_MIG_ENABLED (1u << 1) /* a GPU in MIG mode: its MIG devices follow it in the list */
#define SMH_DEVICE_MIG_CHILD (1u << 2)   /* a MIG device; `parent` is its GPU's index */

/* One device.  Strings are NUL-terminated and truncated to fit; "" means unknown. */
struct smh_device {
    uint32_t struct_size;  /* sizeof(smh_device) as the backend was compiled */
    uint32_t device_class; /* SMH_DEVICE_GPU or SMH_DEVICE_NEURON */
    int32_t index;         /* the backend's own index (NVML index, N of /dev/neuronN ...); MIG: index in its GPU */
    int32_t parent;        /* MIG devices: the index of their GPU; -1 otherwise */
    uint32_t flags;        /* SMH_DEVICE_* */
    uint32_t health;       /* smh_health */
    uint64_t memory_total; /* bytes; 0 when unknown */
    uint32_t cores;        /* compute cores the device has (NeuronCores); 0 when the notion does not apply */
    uint32_t visible_cores; /* of those, how many the job may use (NEURON_RT_VISIBLE_CORES) */
    char uuid[96];         /* "GPU-8d3c...", "MIG-...", a serial number ... */
    char name[96];         /* "NVIDIA H100 80GB HBM3" */
    char pci_bus_id[32];   /* "0000:18:00.0" */
    char reason[256];      /* why the health is not OK: "uncorrected volatile ECC errors: 2"; "" when OK */
    char backend[32];      /* filled in by the host: the backend plugin's name */
};

/* What a backend plugin provides (smh_plugin.backend).  Every function runs in the host's device-probe
 * process, after init().  `host` is the table init() received. */
struct smh_backend_ops {
    uint32_t struct_size;
    uint32_t device_class; /* SMH_DEVICE_GPU or SMH_DEVICE_NEURON: which job count this backend feeds */
    /* Is the hardware there?  SMH_OK: present, list() follows.  SMH_E_NOTFOUND: absent (err may say why; the
     * count is 0 without a warning).  Any other negative status: it cannot tell (a driver library is missing or
     * fails to initialise); err names the library and the reason, the host warns and falls back to its own
     * /proc and /dev scan. */
    smh_status (*probe)(void *state, char *err, size_t errlen);
    /* Report every device with host->device_add(sink, &dev), unhealthy and invisible ones included; facts
     * with host->device_set_info(); job environment defaults with host->device_set_env().  A negative return
     * means the list cannot be trusted: the host warns (with err) and falls back as for probe(). */
    smh_status (*list)(void *state, smh_device_sink *sink, char *err, size_t errlen);
    /* Optional (NULL when the backend has no per-process visibility).  With [devices] isolate = true, the
     * host asks which devices local rank `rank` of `nranks` should see, giving it the list this backend
     * reported.  Write the variable (e.g. "CUDA_VISIBLE_DEVICES") and its value; SMH_E_RANGE when there are
     * fewer devices than ranks. */
    smh_status (*isolate)(void *state, const smh_device *devices, size_t ndevices, int rank, int nranks,
                          char *name, size_t namelen, char *value, size_t valuelen);
};

/* Layout checks (see plugin.h). */
SMH__FIRST(smh_device, struct_size);
SMH__FOLLOWS(smh_device, struct_size, device_class);
SMH__FOLLOWS(smh_device, device_class, index);
SMH__FOLLOWS(smh_device, index, parent);
SMH__FOLLOWS(smh_device, parent, flags);
SMH__FOLLOWS(smh_device, flags, health);
SMH__FOLLOWS(smh_device, health, memory_total);
SMH__FOLLOWS(smh_device, memory_total, cores);
SMH__FOLLOWS(smh_device, cores, visible_cores);
SMH__FOLLOWS(smh_device, visible_cores, uuid);
SMH__FOLLOWS(smh_device, uuid, name);
SMH__FOLLOWS(smh_device, name, pci_bus_id);
SMH__FOLLOWS(smh_device, pci_bus_id, reason);
SMH__FOLLOWS(smh_device, reason, backend);
SMH__FIRST(smh_backend_ops, struct_size);
SMH__FOLLOWS(smh_backend_ops, struct_size, device_class);
SMH__FOLLOWS(smh_backend_ops, device_class, probe);
SMH__FOLLOWS(smh_backend_ops, probe, list);
SMH__FOLLOWS(smh_backend_ops, list, isolate);

/* True when a device struct from the host holds `member` (for fields added after v1.1). */
#define SMH_DEVICE_HAS(dev, member) \
    ((dev) != NULL && (dev)->struct_size >= offsetof(smh_device, member) + sizeof((dev)->member))

#ifdef __cplusplus
}
#endif
#endif /* SMHOST_DEVICE_H */
