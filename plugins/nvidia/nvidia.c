/* nvidia: the device backend for NVIDIA GPUs, through NVML.
 *
 * NVML is dlopen()ed (libnvidia-ml.so.1, or $SMHOST_NVML_LIBRARY) and every function is looked up by name:
 * smhost has no link-time dependency on the driver, and a function the library lacks turns the feature off
 * (no PCI bus id, no MIG, no ECC check) instead of failing.  Only nvmlInit_v2, nvmlDeviceGetCount_v2 and
 * nvmlDeviceGetHandleByIndex_v2 are required; without them probe() reports an error naming the symbol and the
 * host falls back to its /proc scan.
 *
 * Health: a GPU whose handle or queries answer GPU_IS_LOST or NO_PERMISSION, or that counts uncorrected
 * volatile ECC errors, is FAILED; any other query error makes it DEGRADED (the reason names the call).
 * Visibility: NVIDIA_VISIBLE_DEVICES, then CUDA_VISIBLE_DEVICES (plugins/common/devvis.h).  Index entries of
 * NVIDIA_VISIBLE_DEVICES are applied only when NVML sees more GPUs than the list names: inside a container the
 * runtime has already applied them and NVML numbers the GPUs it was given from 0.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <smhost/device.h>

#include "../common/devvis.h"
#include "nvml_min.h"

#define MAX_GPUS 64
#define MAX_MIG 16

typedef struct nv {
    const smh_host_api *host;
    void *lib;
    char libname[512];
    int inited;
    nvml_init_fn init_v2;
    nvml_init_fn shutdown;
    nvml_count_fn count_v2;
    nvml_handle_fn handle_v2;
    nvml_pci_fn pci_v3;
    nvml_str_fn uuid, name;
    nvml_mem_fn memory;
    nvml_migmode_fn mig_mode;
    nvml_migcount_fn mig_count;
    nvml_mighandle_fn mig_handle;
    nvml_driver_fn driver_version;
    nvml_cuda_fn cuda_version;
    nvml_ecc_fn ecc;
    nvml_errstr_fn errstr;
} nv;

static void *sym(nv *s, const char *name) {
    return s->lib ? dlsym(s->lib, name) : NULL;
}
#define LOOKUP(s, field, type, name)                \
    do {                                            \
        void *p_ = sym((s), (name));                \
        memcpy(&(s)->field, &p_, sizeof(type));     \
    } while (0)

static const char *nv_err(const nv *s, nvmlReturn_t r) {
    const char *t = s->errstr ? s->errstr(r) : NULL;
    if (t && *t) return t;
    switch (r) {
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    default: return "Unknown Error";
    }
}
/* The NVML name of an error for reasons: "NVML_ERROR_GPU_IS_LOST". */
static const char *nv_code(nvmlReturn_t r) {
    switch (r) {
    case NVML_ERROR_NO_PERMISSION: return "NVML_ERROR_NO_PERMISSION";
    case NVML_ERROR_GPU_IS_LOST: return "NVML_ERROR_GPU_IS_LOST";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "NVML_ERROR_DRIVER_NOT_LOADED";
    case NVML_ERROR_RESET_REQUIRED: return "NVML_ERROR_RESET_REQUIRED";
    case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "NVML_ERROR_LIB_RM_VERSION_MISMATCH";
    case NVML_ERROR_TIMEOUT: return "NVML_ERROR_TIMEOUT";
    default: return "NVML error";
    }
}

static smh_status nv_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    if (!SMH_HOST_HAS(host, device_add)) {
        snprintf(err, errlen, "nvidia: this smhost's host table has no device_add (plugin ABI %u.%u); the "
                 "nvidia backend needs ABI 1.1", host->abi_major, host->abi_minor);
        return SMH_E_UNSUPPORTED;
    }
    nv *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "nvidia: out of memory");
        return SMH_E_NOMEM;
    }
    s->host = host;
    *state = s;
    return SMH_OK;
}

static void nv_fini(void *state) {
    nv *s = state;
    if (!s) return;
    if (s->inited && s->shutdown) s->shutdown();
    if (s->lib) dlclose(s->lib);
    free(s);
}

static smh_status nv_probe(void *state, char *err, size_t errlen) {
    nv *s = state;
    const char *over = getenv("SMHOST_NVML_LIBRARY");
    snprintf(s->libname, sizeof s->libname, "%s", over && *over ? over : "libnvidia-ml.so.1");
    dlerror();
    s->lib = dlopen(s->libname, RTLD_NOW | RTLD_LOCAL);
    if (!s->lib) {
        const char *e = dlerror();
        snprintf(err, errlen,
                 "NVML (%s) cannot be loaded: %s. The NVIDIA driver's user-space libraries are not in this "
                 "container: run it with the NVIDIA container runtime (NVIDIA_DRIVER_CAPABILITIES must include "
                 "utility)%s",
                 s->libname, e ? e : "unknown error", over && *over ? ", or fix SMHOST_NVML_LIBRARY" : "");
        return SMH_E_UNSUPPORTED;
    }
    LOOKUP(s, init_v2, nvml_init_fn, "nvmlInit_v2");
    LOOKUP(s, shutdown, nvml_init_fn, "nvmlShutdown");
    LOOKUP(s, count_v2, nvml_count_fn, "nvmlDeviceGetCount_v2");
    LOOKUP(s, handle_v2, nvml_handle_fn, "nvmlDeviceGetHandleByIndex_v2");
    LOOKUP(s, pci_v3, nvml_pci_fn, "nvmlDeviceGetPciInfo_v3");
    LOOKUP(s, uuid, nvml_str_fn, "nvmlDeviceGetUUID");
    LOOKUP(s, name, nvml_str_fn, "nvmlDeviceGetName");
    LOOKUP(s, memory, nvml_mem_fn, "nvmlDeviceGetMemoryInfo");
    LOOKUP(s, mig_mode, nvml_migmode_fn, "nvmlDeviceGetMigMode");
    LOOKUP(s, mig_count, nvml_migcount_fn, "nvmlDeviceGetMaxMigDeviceCount");
    LOOKUP(s, mig_handle, nvml_mighandle_fn, "nvmlDeviceGetMigDeviceHandleByIndex");
    LOOKUP(s, driver_version, nvml_driver_fn, "nvmlSystemGetDriverVersion");
    LOOKUP(s, cuda_version, nvml_cuda_fn, "nvmlSystemGetCudaDriverVersion");
    LOOKUP(s, ecc, nvml_ecc_fn, "nvmlDeviceGetTotalEccErrors");
    LOOKUP(s, errstr, nvml_errstr_fn, "nvmlErrorString");
    const char *missing = !s->init_v2 ? "nvmlInit_v2"
                          : !s->count_v2 ? "nvmlDeviceGetCount_v2"
                          : !s->handle_v2 ? "nvmlDeviceGetHandleByIndex_v2"
                                          : NULL;
    if (missing) {
        snprintf(err, errlen, "NVML (%s) has no %s: the NVIDIA driver is too old for smhost's nvidia backend "
                 "(it needs the _v2 functions of drivers since 2013)", s->libname, missing);
        return SMH_E_UNSUPPORTED;
    }
    nvmlReturn_t r = s->init_v2();
    if (r != NVML_SUCCESS) {
        snprintf(err, errlen, "NVML (%s): nvmlInit_v2 failed: %s (%s, %d)%s", s->libname, nv_err(s, r), nv_code(r),
                 r, r == NVML_ERROR_DRIVER_NOT_LOADED ? "; the NVIDIA kernel driver is not loaded on this host" : "");
        return SMH_E_FAIL;
    }
    s->inited = 1;
    return SMH_OK;
}

typedef struct gpu {
    smh_device dev;
    nvmlDevice_t handle;
    int nmig;
    smh_device mig[MAX_MIG];
} gpu;

static void dev_init(smh_device *d, int index, int parent) {
    memset(d, 0, sizeof *d);
    d->struct_size = sizeof *d;
    d->device_class = SMH_DEVICE_GPU;
    d->index = index;
    d->parent = parent;
    d->health = SMH_HEALTH_OK;
}

/* Record a failed query: FAILED for a lost GPU or missing permission, DEGRADED otherwise.  The first, worst
 * reason is kept. */
static void note(nv *s, smh_device *d, const char *call, nvmlReturn_t r) {
    uint32_t h = (r == NVML_ERROR_GPU_IS_LOST || r == NVML_ERROR_NO_PERMISSION) ? SMH_HEALTH_FAILED
                                                                                  : SMH_HEALTH_DEGRADED;
    if (h <= d->health && d->reason[0]) return;
    if (h < d->health) return;
    d->health = h;
    snprintf(d->reason, sizeof d->reason, "%s: %s (%s)", call, nv_err(s, r),
             r == NVML_ERROR_GPU_IS_LOST || r == NVML_ERROR_NO_PERMISSION ? nv_code(r) : "query failed");
}

/* Fill what NVML tells about a device (GPU or MIG device). */
static void describe(nv *s, nvmlDevice_t h, smh_device *d, int is_mig) {
    nvmlReturn_t r;
    if (s->uuid && (r = s->uuid(h, d->uuid, sizeof d->uuid)) != NVML_SUCCESS) {
        d->uuid[0] = '\0';
        note(s, d, "nvmlDeviceGetUUID", r);
    }
    if (s->name && (r = s->name(h, d->name, sizeof d->name)) != NVML_SUCCESS) {
        d->name[0] = '\0';
        note(s, d, "nvmlDeviceGetName", r);
    }
    nvmlMemory_t mem;
    if (s->memory) {
        if ((r = s->memory(h, &mem)) == NVML_SUCCESS) d->memory_total = mem.total;
        else if (r != NVML_ERROR_NOT_SUPPORTED) note(s, d, "nvmlDeviceGetMemoryInfo", r);
    }
    if (is_mig) return;
    if (s->pci_v3) {
        nvmlPciInfo_t pci;
        memset(&pci, 0, sizeof pci);
        if ((r = s->pci_v3(h, &pci)) == NVML_SUCCESS) {
            pci.busId[sizeof pci.busId - 1] = '\0';
            /* NVML writes 8 hex digits of domain ("00000000:18:00.0"); lspci and sysfs use 4. */
            const char *b = pci.busId;
            if (strlen(b) == 16 && !strncmp(b, "0000", 4)) b += 4;
            snprintf(d->pci_bus_id, sizeof d->pci_bus_id, "%s", b);
            for (char *c = d->pci_bus_id; *c; c++)
                if (*c >= 'A' && *c <= 'F') *c = (char)(*c - 'A' + 'a');
        } else if (r != NVML_ERROR_NOT_SUPPORTED) {
            note(s, d, "nvmlDeviceGetPciInfo_v3", r);
        }
    }
    if (s->ecc) {
        unsigned long long n = 0;
        r = s->ecc(h, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC, &n);
        if (r == NVML_SUCCESS && n > 0) {
            d->health = SMH_HEALTH_FAILED;
            snprintf(d->reason, sizeof d->reason, "uncorrected volatile ECC errors: %llu (reset the GPU or use "
                     "another instance)", n);
        } else if (r == NVML_ERROR_GPU_IS_LOST || r == NVML_ERROR_NO_PERMISSION) {
            note(s, d, "nvmlDeviceGetTotalEccErrors", r);
        }
        /* NOT_SUPPORTED: no ECC on this GPU (or ECC off), nothing to check */
    }
}

static int gpu_visible(const gpu *g, const dv_list *l, int position) {
    if (dv_visible(l, position, g->dev.uuid)) return 1;
    for (int j = 0; j < g->nmig; j++) /* a listed MIG device makes its GPU usable */
        for (int i = 0; i < l->n; i++)
            if (!dv_is_index(l->item[i]) && dv_item_matches(l->item[i], -1, g->mig[j].uuid)) return 1;
    return 0;
}

static smh_status nv_list(void *state, smh_device_sink *sink, char *err, size_t errlen) {
    nv *s = state;
    const smh_host_api *H = s->host;
    char buf[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE];
    if (s->driver_version && s->driver_version(buf, sizeof buf) == NVML_SUCCESS) {
        buf[sizeof buf - 1] = '\0';
        H->device_set_info(sink, "driver_version", buf);
    }
    int cv = 0;
    if (s->cuda_version && s->cuda_version(&cv) == NVML_SUCCESS && cv > 0) {
        snprintf(buf, sizeof buf, "%d.%d", cv / 1000, (cv % 1000) / 10);
        H->device_set_info(sink, "cuda_version", buf);
    }
    H->device_set_info(sink, "library", s->libname);

    unsigned int count = 0;
    nvmlReturn_t r = s->count_v2(&count);
    if (r != NVML_SUCCESS) {
        snprintf(err, errlen, "NVML: nvmlDeviceGetCount_v2 failed: %s (%s)", nv_err(s, r), nv_code(r));
        return SMH_E_FAIL;
    }
    if (count > MAX_GPUS) count = MAX_GPUS;
    gpu *g = calloc(count ? count : 1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "nvidia: out of memory");
        return SMH_E_NOMEM;
    }
    for (unsigned int i = 0; i < count; i++) {
        dev_init(&g[i].dev, (int)i, -1);
        r = s->handle_v2(i, &g[i].handle);
        if (r != NVML_SUCCESS) {
            g[i].handle = NULL;
            note(s, &g[i].dev, "nvmlDeviceGetHandleByIndex_v2", r);
            continue;
        }
        describe(s, g[i].handle, &g[i].dev, 0);
        unsigned int cur = 0, pend = 0, max = 0;
        if (s->mig_mode && s->mig_handle && s->mig_mode(g[i].handle, &cur, &pend) == NVML_SUCCESS &&
            cur == NVML_DEVICE_MIG_ENABLE) {
            g[i].dev.flags |= SMH_DEVICE_MIG_ENABLED;
            if (!s->mig_count || s->mig_count(g[i].handle, &max) != NVML_SUCCESS) max = 7;
            if (max > MAX_MIG) max = MAX_MIG;
            for (unsigned int j = 0; j < max; j++) {
                nvmlDevice_t mh;
                if (s->mig_handle(g[i].handle, j, &mh) != NVML_SUCCESS) continue; /* NOT_FOUND: empty slot */
                smh_device *m = &g[i].mig[g[i].nmig++];
                dev_init(m, (int)j, (int)i);
                m->flags |= SMH_DEVICE_MIG_CHILD;
                describe(s, mh, m, 1);
                snprintf(m->pci_bus_id, sizeof m->pci_bus_id, "%s", g[i].dev.pci_bus_id);
            }
        }
    }

    /* Visibility: the container runtime's list over NVML's numbering, then CUDA's over what remains. */
    dv_list nvl, cul;
    dv_parse_nvidia(getenv("NVIDIA_VISIBLE_DEVICES"), &nvl);
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    dv_parse_cuda(cvd, &cul);
    if (cvd && *cvd) { /* CUDA ignores everything from the first entry it cannot read: say so */
        dv_list all;
        if (dv_split(cvd, &all, 0) > cul.n)
            H->log("nvidia", SMH_LOG_WARNING,
                   "CUDA_VISIBLE_DEVICES=%s: CUDA reads only the first %d entr%s (it stops at \"%s\", which is "
                   "neither a device index nor a GPU-/MIG- UUID, or repeats one), so the job sees %d GPU%s",
                   cvd, cul.n, cul.n == 1 ? "y" : "ies", all.item[cul.n], cul.n, cul.n == 1 ? "" : "s");
    }
    int apply_nv_index = !nvl.all && (int)count > dv_index_entries(&nvl);
    int pos = 0;
    for (unsigned int i = 0; i < count; i++) {
        int vis = 1;
        if (!nvl.all) {
            vis = 0;
            for (int k = 0; k < nvl.n && !vis; k++) {
                const char *it = nvl.item[k];
                if (dv_is_index(it)) {
                    vis = apply_nv_index ? dv_item_matches(it, (int)i, NULL) : 1;
                    continue;
                }
                vis = dv_item_matches(it, -1, g[i].dev.uuid);
                for (int j = 0; j < g[i].nmig && !vis; j++) /* a MIG device of this GPU */
                    vis = dv_item_matches(it, -1, g[i].mig[j].uuid);
            }
        }
        if (vis) vis = gpu_visible(&g[i], &cul, pos++);
        if (vis) g[i].dev.flags |= SMH_DEVICE_VISIBLE;
        for (int j = 0; j < g[i].nmig; j++) {
            if (!vis) continue;
            /* a MIG device is visible when its GPU is and no UUID entry picks other MIG devices of it */
            int picked = 0, named = 0;
            for (int k = 0; k < cul.n; k++)
                if (!strncmp(cul.item[k], "MIG-", 4)) {
                    picked = 1;
                    named |= dv_item_matches(cul.item[k], -1, g[i].mig[j].uuid);
                }
            if (!picked || named) g[i].mig[j].flags |= SMH_DEVICE_VISIBLE;
        }
    }
    for (unsigned int i = 0; i < count; i++) {
        H->device_add(sink, &g[i].dev);
        for (int j = 0; j < g[i].nmig; j++) H->device_add(sink, &g[i].mig[j]);
    }
    free(g);
    /* CUDA numbers GPUs fastest first unless told otherwise; PCI order makes LOCAL_RANK n the GPU that
     * `smhost devices` lists as n.  Only a default: the host never overrides a value the user set. */
    H->device_set_env(sink, "CUDA_DEVICE_ORDER", "PCI_BUS_ID");
    return SMH_OK;
}

/* [devices] isolate: rank r of n sees an equal share of the visible GPUs, named by UUID (the user's own
 * CUDA_VISIBLE_DEVICES indices would otherwise shift the numbering). */
static smh_status nv_isolate(void *state, const smh_device *devs, size_t ndev, int rank, int nranks, char *name,
                             size_t namelen, char *value, size_t valuelen) {
    (void)state;
    const smh_device *vis[MAX_GPUS];
    int n = 0;
    for (size_t i = 0; i < ndev && n < MAX_GPUS; i++)
        if ((devs[i].flags & SMH_DEVICE_VISIBLE) && !(devs[i].flags & SMH_DEVICE_MIG_CHILD)) vis[n++] = &devs[i];
    int first, per;
    if (dv_share(n, rank, nranks, &first, &per) < 0) return SMH_E_RANGE;
    snprintf(name, namelen, "CUDA_VISIBLE_DEVICES");
    value[0] = '\0';
    size_t used = 0;
    for (int k = first; k < first + per; k++) {
        /* CUDA stops at an entry it cannot parse: a GPU without a UUID cannot be named, so no isolation (the host
         * warns that every rank sees every device) rather than a rank seeing none. */
        if (!vis[k]->uuid[0] || dv_append(value, valuelen, &used, vis[k]->uuid) < 0) return SMH_E_RANGE;
    }
    return SMH_OK;
}

static const smh_backend_ops nv_ops = {.struct_size = sizeof(smh_backend_ops),
                                       .device_class = SMH_DEVICE_GPU,
                                       .probe = nv_probe,
                                       .list = nv_list,
                                       .isolate = nv_isolate};

SMH_PLUGIN_DEFINE(.name = "nvidia", .version = "1.0", .description = "NVIDIA GPUs through NVML (libnvidia-ml.so.1)",
                  .kind = SMH_KIND_BACKEND, .init = nv_init, .fini = nv_fini, .backend = &nv_ops)
