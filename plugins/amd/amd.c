/* amd: the device backend for AMD GPUs, through ROCm SMI (librocm_smi64), dlopen()ed when it exists:
 * $SMHOST_ROCM_SMI_LIBRARY, else librocm_smi64.so.7, .so.6, .so.5, .so.1, else /opt/rocm/lib/librocm_smi64.so.
 * Functions are looked up by name: rsmi_init, rsmi_num_monitor_devices, rsmi_dev_unique_id_get,
 * rsmi_dev_name_get, rsmi_dev_pci_id_get, rsmi_dev_memory_total_get (and rsmi_shut_down, rsmi_status_string
 * when present).  UUIDs are "GPU-<unique id in hex>", the form ROCR_VISIBLE_DEVICES accepts.
 * Health: a query answering RSMI_STATUS_PERMISSION is FAILED; other query errors DEGRADED.
 * Visibility: ROCR_VISIBLE_DEVICES (read like CUDA_VISIBLE_DEVICES, plugins/common/devvis.h). */
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <smhost/device.h>

#include "../common/devvis.h"
#include "rsmi_min.h"

#define MAX_GPUS 64

typedef struct amd {
    const smh_host_api *host;
    void *lib;
    char libname[512];
    int inited;
    rsmi_init_fn init;
    rsmi_shutdown_fn shutdown;
    rsmi_count_fn count;
    rsmi_u64_fn unique_id, pci_id;
    rsmi_name_fn name;
    rsmi_mem_fn mem_total;
    rsmi_errstr_fn errstr;
} amd;

#define LOOKUP(s, field, type, nm)               \
    do {                                         \
        void *p_ = dlsym((s)->lib, (nm));        \
        memcpy(&(s)->field, &p_, sizeof(type));  \
    } while (0)

static const char *amd_err(const amd *s, rsmi_status_t r) {
    const char *t = NULL;
    if (s->errstr && s->errstr(r, &t) == RSMI_STATUS_SUCCESS && t) return t;
    return r == RSMI_STATUS_PERMISSION ? "RSMI_STATUS_PERMISSION" : "rocm_smi error";
}

static smh_status amd_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    if (!SMH_HOST_HAS(host, device_add)) {
        snprintf(err, errlen, "amd: this smhost's host table has no device_add (ABI %u.%u); the amd backend needs "
                 "ABI 1.1", host->abi_major, host->abi_minor);
        return SMH_E_UNSUPPORTED;
    }
    amd *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "amd: out of memory");
        return SMH_E_NOMEM;
    }
    s->host = host;
    *state = s;
    return SMH_OK;
}

static void amd_fini(void *state) {
    amd *s = state;
    if (!s) return;
    if (s->inited && s->shutdown) s->shutdown();
    if (s->lib) dlclose(s->lib);
    free(s);
}

static smh_status amd_probe(void *state, char *err, size_t errlen) {
    amd *s = state;
    const char *over = getenv("SMHOST_ROCM_SMI_LIBRARY");
    static const char *const names[] = {"librocm_smi64.so.7", "librocm_smi64.so.6", "librocm_smi64.so.5",
                                        "librocm_smi64.so.1", "/opt/rocm/lib/librocm_smi64.so", NULL};
    const char *last = NULL;
    if (over && *over) {
        s->lib = dlopen(over, RTLD_NOW | RTLD_LOCAL);
        snprintf(s->libname, sizeof s->libname, "%s", over);
        if (!s->lib) last = dlerror();
    } else {
        for (int i = 0; names[i] && !s->lib; i++) {
            s->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
            snprintf(s->libname, sizeof s->libname, "%s", names[i]);
            if (!s->lib) last = dlerror();
        }
    }
    if (!s->lib) {
        snprintf(err, errlen, "ROCm SMI (%s) cannot be loaded: %s. Install rocm-smi-lib in the image%s",
                 over && *over ? over : "librocm_smi64.so", last ? last : "not found",
                 over && *over ? ", or fix SMHOST_ROCM_SMI_LIBRARY" : "");
        return SMH_E_UNSUPPORTED;
    }
    LOOKUP(s, init, rsmi_init_fn, "rsmi_init");
    LOOKUP(s, shutdown, rsmi_shutdown_fn, "rsmi_shut_down");
    LOOKUP(s, count, rsmi_count_fn, "rsmi_num_monitor_devices");
    LOOKUP(s, unique_id, rsmi_u64_fn, "rsmi_dev_unique_id_get");
    LOOKUP(s, pci_id, rsmi_u64_fn, "rsmi_dev_pci_id_get");
    LOOKUP(s, name, rsmi_name_fn, "rsmi_dev_name_get");
    LOOKUP(s, mem_total, rsmi_mem_fn, "rsmi_dev_memory_total_get");
    LOOKUP(s, errstr, rsmi_errstr_fn, "rsmi_status_string");
    if (!s->init || !s->count) {
        snprintf(err, errlen, "ROCm SMI (%s) has no %s", s->libname,
                 !s->init ? "rsmi_init" : "rsmi_num_monitor_devices");
        return SMH_E_UNSUPPORTED;
    }
    rsmi_status_t r = s->init(0);
    if (r != RSMI_STATUS_SUCCESS) {
        snprintf(err, errlen, "ROCm SMI (%s): rsmi_init failed: %s (%d)", s->libname, amd_err(s, r), r);
        return SMH_E_FAIL;
    }
    s->inited = 1;
    return SMH_OK;
}

static void note(const amd *s, smh_device *d, const char *call, rsmi_status_t r) {
    uint32_t h = r == RSMI_STATUS_PERMISSION ? SMH_HEALTH_FAILED : SMH_HEALTH_DEGRADED;
    if (h < d->health || (h == d->health && d->reason[0])) return;
    d->health = h;
    snprintf(d->reason, sizeof d->reason, "%s: %s", call, amd_err(s, r));
}

static smh_status amd_list(void *state, smh_device_sink *sink, char *err, size_t errlen) {
    amd *s = state;
    const smh_host_api *H = s->host;
    H->device_set_info(sink, "library", s->libname);
    uint32_t n = 0;
    rsmi_status_t r = s->count(&n);
    if (r != RSMI_STATUS_SUCCESS) {
        snprintf(err, errlen, "ROCm SMI: rsmi_num_monitor_devices failed: %s", amd_err(s, r));
        return SMH_E_FAIL;
    }
    if (n > MAX_GPUS) n = MAX_GPUS;
    dv_list vis;
    dv_parse_cuda(getenv("ROCR_VISIBLE_DEVICES"), &vis);
    for (uint32_t i = 0; i < n; i++) {
        smh_device d;
        memset(&d, 0, sizeof d);
        d.struct_size = sizeof d;
        d.device_class = SMH_DEVICE_GPU;
        d.index = (int32_t)i;
        d.parent = -1;
        uint64_t v = 0;
        if (s->unique_id) {
            if ((r = s->unique_id(i, &v)) == RSMI_STATUS_SUCCESS) snprintf(d.uuid, sizeof d.uuid, "GPU-%016" PRIx64, v);
            else if (r != RSMI_STATUS_NOT_SUPPORTED) note(s, &d, "rsmi_dev_unique_id_get", r);
        }
        if (s->name && (r = s->name(i, d.name, sizeof d.name)) != RSMI_STATUS_SUCCESS) {
            d.name[0] = '\0';
            if (r != RSMI_STATUS_NOT_SUPPORTED) note(s, &d, "rsmi_dev_name_get", r);
        }
        if (s->pci_id) {
            if ((r = s->pci_id(i, &v)) == RSMI_STATUS_SUCCESS)
                snprintf(d.pci_bus_id, sizeof d.pci_bus_id, "%04x:%02x:%02x.%x", (unsigned)((v >> 32) & 0xffff),
                         (unsigned)((v >> 8) & 0xff), (unsigned)((v >> 3) & 0x1f), (unsigned)(v & 0x7));
            else if (r != RSMI_STATUS_NOT_SUPPORTED) note(s, &d, "rsmi_dev_pci_id_get", r);
        }
        if (s->mem_total) {
            if ((r = s->mem_total(i, RSMI_MEM_TYPE_VRAM, &v)) == RSMI_STATUS_SUCCESS) d.memory_total = v;
            else if (r != RSMI_STATUS_NOT_SUPPORTED) note(s, &d, "rsmi_dev_memory_total_get", r);
        }
        if (dv_visible(&vis, (int)i, d.uuid)) d.flags |= SMH_DEVICE_VISIBLE;
        H->device_add(sink, &d);
    }
    return SMH_OK;
}

static smh_status amd_isolate(void *state, const smh_device *devs, size_t ndev, int rank, int nranks, char *name,
                              size_t namelen, char *value, size_t valuelen) {
    (void)state;
    const smh_device *v[MAX_GPUS];
    int n = 0;
    for (size_t i = 0; i < ndev && n < MAX_GPUS; i++)
        if (devs[i].flags & SMH_DEVICE_VISIBLE) v[n++] = &devs[i];
    int first, per;
    if (dv_share(n, rank, nranks, &first, &per) < 0) return SMH_E_RANGE;
    snprintf(name, namelen, "ROCR_VISIBLE_DEVICES");
    size_t used = 0;
    value[0] = '\0';
    for (int k = first; k < first + per; k++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", v[k]->index);
        if (dv_append(value, valuelen, &used, v[k]->uuid[0] ? v[k]->uuid : idx) < 0) return SMH_E_RANGE;
    }
    return SMH_OK;
}

static const smh_backend_ops amd_ops = {.struct_size = sizeof(smh_backend_ops),
                                        .device_class = SMH_DEVICE_GPU,
                                        .probe = amd_probe,
                                        .list = amd_list,
                                        .isolate = amd_isolate};

SMH_PLUGIN_DEFINE(.name = "amd", .version = "1.0", .description = "AMD GPUs through ROCm SMI (librocm_smi64)",
                  .kind = SMH_KIND_BACKEND, .init = amd_init, .fini = amd_fini, .backend = &amd_ops)
