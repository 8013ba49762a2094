/* The job's device view: what the device backends (plugin kind SMH_KIND_BACKEND, <smhost/device.h>) reported
 * before the job started, or what the /proc and /dev scan (devices.c) found where a backend could not say.
 * Filled by shx_backends_discover (plugin/backends.c); read by the job model (SM_NUM_GPUS, SM_NUM_NEURONS), the
 * host API (device_count/device_get), `smhost devices`, the startup log and the health check. */
#ifndef SHX_DEVVIEW_H
#define SHX_DEVVIEW_H
#include <smhost/device.h>

#include "core/pyjson.h"
#include "core/util.h"

typedef enum shx_backend_state {
    SHX_BK_SKIPPED = 0, /* no sign of its hardware: not loaded at all */
    SHX_BK_OK,          /* probed and listed its devices */
    SHX_BK_ABSENT,      /* loaded, and its probe found no hardware */
    SHX_BK_FALLBACK     /* missing plugin, probe or list error, crash or hang: the count came from the scan */
} shx_backend_state;

typedef struct shx_backend_report {
    char name[32];
    uint32_t device_class;   /* SMH_DEVICE_GPU / SMH_DEVICE_NEURON; 0 when the plugin never said */
    shx_backend_state state;
    char message[1024];      /* why skipped, absent or fallen back */
    shx_strvec info;         /* "key=value": driver_version, cuda_version, library ... */
    int fallback_count;      /* SHX_BK_FALLBACK: what the scan counted (GPUs or Neuron cores) */
    int reported;            /* the probe process sent this backend's final status */
} shx_backend_report;

typedef struct shx_devview {
    smh_device *devs;        /* backend order, then the backend's order */
    size_t n, cap;
    shx_backend_report *backends;
    size_t nbackends;
    shx_strvec env_defaults; /* "K=V" the backends asked for, set only when the job's environment lacks K */
    shx_strvec isolation;    /* [devices] isolate: "<rank> K=V" per local rank and backend */
    int num_gpus;            /* visible top-level GPUs (MIG devices not counted), or the fallback count */
    int num_neurons;         /* visible NeuronCores, or the fallback count */
} shx_devview;

void shx_devview_free(shx_devview *v);
/* Append a device (copied and normalized to this host's smh_device; `backend` set). */
void shx_devview_add(shx_devview *v, const smh_device *d, size_t size, const char *backend);
/* Compute num_gpus and num_neurons from the devices and the fallbacks. */
void shx_devview_count(shx_devview *v);
/* Visible devices whose health is FAILED: their number, and one line each in *msg (caller frees) of the form
 * "nvidia GPU 3 (GPU-8d3c...): uncorrected volatile ECC errors: 2". */
int shx_devview_failed(const shx_devview *v, char **msg);
/* One log line per device (name, memory, bus id, health) and a warning per fallen-back backend. */
void shx_devview_log(const shx_devview *v);
/* `smhost devices --json`: {"backends": [...], "devices": [...], "num_gpus", "num_neurons", ...}. */
pyj_value *shx_devview_json(const shx_devview *v);
/* "GPU" / "Neuron device" for messages. */
const char *shx_devview_class_word(uint32_t device_class);
/* The value of variable `name` for local rank `rank` under [devices] isolate (NULL when none): for the launcher. */
const char *shx_devview_rank_env(const shx_devview *v, int rank, const char *name);
#endif
