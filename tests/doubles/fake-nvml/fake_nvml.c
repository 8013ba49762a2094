/* TEST DOUBLE -- not NVIDIA's library.  A fake libnvidia-ml.so.1 for tests on machines without NVIDIA GPUs.
 *
 * It implements the NVML functions smhost's nvidia backend looks up, answering from a spec file named by
 * $FAKE_NVML_SPEC (no file: zero GPUs).  Built twice (Makefile): build/tests/doubles/fake-nvml/ with the
 * versioned names (nvmlInit_v2, nvmlDeviceGetCount_v2, nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetPciInfo_v3),
 * and build/tests/doubles/fake-nvml-legacy/ with -DFAKE_NVML_LEGACY, which exports only the old unversioned
 * names, like a driver from before 2013.  When $FAKE_NVML_LOG names a file, every nvmlInit* call appends a line
 * to it, so a test can tell whether the library was used at all.
 *
 * Spec lines (# starts a comment; values may be "double quoted"):
 *   init ok | init DRIVER_NOT_LOADED | init <any error name below>
 *   driver 550.54.15
 *   cuda 12040
 *   gpu  name=".." mem=<bytes> uuid=GPU-.. bus=00000000:18:00.0 ecc=<uncorrected count>|unsupported
 *        handle_error=<error> query_error=<error> mig=on
 *   gpus <n> <same keys as gpu>            n GPUs with generated UUIDs and bus ids
 *   mig  name=".." mem=<bytes> uuid=MIG-.. slot=<n>   a MIG device of the last gpu (which needs mig=on)
 * Error names: NO_PERMISSION, GPU_IS_LOST, DRIVER_NOT_LOADED, NOT_SUPPORTED, UNKNOWN, TIMEOUT.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../plugins/nvidia/nvml_min.h"

#define API __attribute__((visibility("default")))
#define MAXG 64
#define MAXM 8

struct nvmlDevice_st {
    char name[96], uuid[96], bus[32];
    unsigned long long mem, ecc;
    int ecc_unsupported, handle_error, query_error, mig_on, is_mig;
    int nmig;
    int slot[MAXM];
    struct nvmlDevice_st *mig[MAXM];
};

static struct nvmlDevice_st gpus[MAXG], migs[MAXG * MAXM];
static int ngpus, nmigs, loaded, inited, init_error;
static char driver[80] = "550.54.15";
static int cuda = 12040;

static int err_code(const char *n) {
    static const struct { const char *name; int code; } t[] = {
        {"ok", NVML_SUCCESS}, {"NO_PERMISSION", NVML_ERROR_NO_PERMISSION}, {"GPU_IS_LOST", NVML_ERROR_GPU_IS_LOST},
        {"DRIVER_NOT_LOADED", NVML_ERROR_DRIVER_NOT_LOADED}, {"NOT_SUPPORTED", NVML_ERROR_NOT_SUPPORTED},
        {"UNKNOWN", NVML_ERROR_UNKNOWN}, {"TIMEOUT", NVML_ERROR_TIMEOUT}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(n, t[i].name)) return t[i].code;
    fprintf(stderr, "fake-nvml: unknown error name '%s' in $FAKE_NVML_SPEC\n", n);
    return NVML_ERROR_UNKNOWN;
}

/* Next token of line at *p: a word, key=value or key="value with blanks".  Returns 0 at the end. */
static int token(char **p, char *key, size_t klen, char *val, size_t vlen) {
    char *s = *p;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s || *s == '\n' || *s == '#') return 0;
    size_t k = 0, v = 0;
    while (*s && *s != '=' && *s != ' ' && *s != '\t' && *s != '\n') {
        if (k + 1 < klen) key[k++] = *s;
        s++;
    }
    key[k] = '\0';
    val[0] = '\0';
    if (*s == '=') {
        s++;
        int q = *s == '"';
        if (q) s++;
        while (*s && *s != '\n' && (q ? *s != '"' : (*s != ' ' && *s != '\t'))) {
            if (v + 1 < vlen) val[v++] = *s;
            s++;
        }
        if (q && *s == '"') s++;
        val[v] = '\0';
    }
    *p = s;
    return 1;
}

static void scpy(char *dst, size_t size, const char *src) {
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void set_keys(struct nvmlDevice_st *d, char *p) {
    char k[64], v[128];
    while (token(&p, k, sizeof k, v, sizeof v)) {
        if (!strcmp(k, "name")) scpy(d->name, sizeof d->name, v);
        else if (!strcmp(k, "uuid")) scpy(d->uuid, sizeof d->uuid, v);
        else if (!strcmp(k, "bus")) scpy(d->bus, sizeof d->bus, v);
        else if (!strcmp(k, "mem")) d->mem = strtoull(v, NULL, 10);
        else if (!strcmp(k, "ecc")) {
            if (!strcmp(v, "unsupported")) d->ecc_unsupported = 1;
            else d->ecc = strtoull(v, NULL, 10);
        } else if (!strcmp(k, "handle_error")) d->handle_error = err_code(v);
        else if (!strcmp(k, "query_error")) d->query_error = err_code(v);
        else if (!strcmp(k, "mig")) d->mig_on = !strcmp(v, "on");
        else if (!strcmp(k, "slot")) { /* handled by the caller */
        } else fprintf(stderr, "fake-nvml: unknown key '%s' in $FAKE_NVML_SPEC\n", k);
    }
}

static void new_gpu(char *rest) {
    if (ngpus >= MAXG) return;
    struct nvmlDevice_st *d = &gpus[ngpus];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "Fake NVIDIA GPU");
    snprintf(d->uuid, sizeof d->uuid, "GPU-fa4e0000-0000-0000-0000-%012x", ngpus);
    snprintf(d->bus, sizeof d->bus, "00000000:%02X:00.0", 0x10 + ngpus * 0x10);
    d->mem = 16ULL << 30;
    set_keys(d, rest);
    ngpus++;
}

static void load(void) {
    if (loaded) return;
    loaded = 1;
    const char *path = getenv("FAKE_NVML_SPEC");
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    if (!f) {
        if (path && *path) fprintf(stderr, "fake-nvml: cannot open FAKE_NVML_SPEC=%s\n", path);
        return;
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *p = line, k[64], v[128];
        if (!token(&p, k, sizeof k, v, sizeof v)) continue;
        if (!strcmp(k, "init") || !strcmp(k, "driver") || !strcmp(k, "cuda") || !strcmp(k, "gpus")) {
            char arg[128];
            char kk[64];
            if (!token(&p, kk, sizeof kk, arg, sizeof arg)) continue;
            if (!strcmp(k, "init")) init_error = err_code(kk);
            else if (!strcmp(k, "driver")) scpy(driver, sizeof driver, kk);
            else if (!strcmp(k, "cuda")) cuda = atoi(kk);
            else
                for (int n = atoi(kk); n > 0; n--) new_gpu(p);
        } else if (!strcmp(k, "gpu")) {
            new_gpu(p);
        } else if (!strcmp(k, "mig") && ngpus > 0 && nmigs < MAXG * MAXM) {
            struct nvmlDevice_st *g = &gpus[ngpus - 1], *m = &migs[nmigs];
            if (g->nmig >= MAXM) continue;
            memset(m, 0, sizeof *m);
            m->is_mig = 1;
            snprintf(m->name, sizeof m->name, "%s MIG 1g.10gb", g->name);
            snprintf(m->uuid, sizeof m->uuid, "MIG-fa4e%04x-0000-0000-0000-%012x", ngpus - 1, g->nmig);
            m->mem = 10ULL << 30;
            int slot = g->nmig;
            char *q = p, kk[64], vv[128];
            while (token(&q, kk, sizeof kk, vv, sizeof vv))
                if (!strcmp(kk, "slot")) slot = atoi(vv);
            set_keys(m, p);
            g->slot[g->nmig] = slot;
            g->mig[g->nmig++] = m;
            nmigs++;
        } else {
            fprintf(stderr, "fake-nvml: unknown line '%s' in $FAKE_NVML_SPEC\n", k);
        }
    }
    fclose(f);
}

static void log_call(const char *fn) {
    const char *p = getenv("FAKE_NVML_LOG");
    if (!p || !*p) return;
    FILE *f = fopen(p, "a");
    if (f) {
        fprintf(f, "%s\n", fn);
        fclose(f);
    }
}

static nvmlReturn_t do_init(const char *fn) {
    log_call(fn);
    load();
    if (init_error) return init_error;
    inited = 1;
    return NVML_SUCCESS;
}

static nvmlReturn_t do_count(unsigned int *c) {
    if (!inited) return NVML_ERROR_UNINITIALIZED;
    if (!c) return NVML_ERROR_INVALID_ARGUMENT;
    *c = (unsigned)ngpus;
    return NVML_SUCCESS;
}

static nvmlReturn_t do_handle(unsigned int i, nvmlDevice_t *d) {
    if (!inited) return NVML_ERROR_UNINITIALIZED;
    if (i >= (unsigned)ngpus || !d) return NVML_ERROR_INVALID_ARGUMENT;
    if (gpus[i].handle_error) return gpus[i].handle_error;
    *d = &gpus[i];
    return NVML_SUCCESS;
}

static nvmlReturn_t check(nvmlDevice_t d) {
    if (!inited) return NVML_ERROR_UNINITIALIZED;
    if (!d) return NVML_ERROR_INVALID_ARGUMENT;
    return d->query_error;
}

static nvmlReturn_t do_pci(nvmlDevice_t d, nvmlPciInfo_t *p) {
    nvmlReturn_t r = check(d);
    if (r) return r;
    memset(p, 0, sizeof *p);
    snprintf(p->busId, sizeof p->busId, "%s", d->bus);
    snprintf(p->busIdLegacy, sizeof p->busIdLegacy, "%s", d->bus + (strlen(d->bus) == 16 ? 4 : 0));
    unsigned dom = 0, bus = 0, dev = 0;
    sscanf(d->bus, "%x:%x:%x", &dom, &bus, &dev);
    p->domain = dom;
    p->bus = bus;
    p->device = dev;
    p->pciDeviceId = 0x233010de;
    return NVML_SUCCESS;
}

static nvmlReturn_t copy_str(nvmlDevice_t d, const char *s, char *buf, unsigned int len) {
    nvmlReturn_t r = check(d);
    if (r) return r;
    if (!buf || strlen(s) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, s, strlen(s) + 1);
    return NVML_SUCCESS;
}

#ifndef FAKE_NVML_LEGACY
API nvmlReturn_t nvmlInit_v2(void) { return do_init("nvmlInit_v2"); }
API nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *c) { return do_count(c); }
API nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) { return do_handle(i, d); }
API nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, nvmlPciInfo_t *p) { return do_pci(d, p); }
#else
API nvmlReturn_t nvmlInit(void) { return do_init("nvmlInit"); }
API nvmlReturn_t nvmlDeviceGetCount(unsigned int *c) { return do_count(c); }
API nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int i, nvmlDevice_t *d) { return do_handle(i, d); }
API nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t d, nvmlPciInfo_t *p) { return do_pci(d, p); }
#endif

API nvmlReturn_t nvmlShutdown(void) {
    if (!inited) return NVML_ERROR_UNINITIALIZED;
    inited = 0;
    log_call("nvmlShutdown");
    return NVML_SUCCESS;
}

API const char *nvmlErrorString(nvmlReturn_t r) {
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

API nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned int len) { return copy_str(d, d ? d->uuid : "", buf, len); }
API nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *buf, unsigned int len) { return copy_str(d, d ? d->name : "", buf, len); }

API nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
    nvmlReturn_t r = check(d);
    if (r) return r;
    m->total = d->mem;
    m->used = d->mem / 100;
    m->free = m->total - m->used;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int type, int counter, unsigned long long *n) {
    nvmlReturn_t r = check(d);
    if (r) return r;
    if (d->ecc_unsupported || d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    *n = (type == NVML_MEMORY_ERROR_TYPE_UNCORRECTED && counter == NVML_VOLATILE_ECC) ? d->ecc : 0;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *cur, unsigned int *pend) {
    nvmlReturn_t r = check(d);
    if (r) return r;
    if (d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    *cur = *pend = d->mig_on ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *c) {
    nvmlReturn_t r = check(d);
    if (r) return r;
    *c = d->mig_on ? 7 : 0;
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int i, nvmlDevice_t *m) {
    nvmlReturn_t r = check(d);
    if (r) return r;
    if (!d->mig_on) return NVML_ERROR_INVALID_ARGUMENT;
    for (int k = 0; k < d->nmig; k++)
        if ((unsigned)d->slot[k] == i) {
            *m = d->mig[k];
            return NVML_SUCCESS;
        }
    return NVML_ERROR_NOT_FOUND;
}

API nvmlReturn_t nvmlSystemGetDriverVersion(char *buf, unsigned int len) {
    if (!inited) return NVML_ERROR_UNINITIALIZED;
    if (strlen(driver) + 1 > len) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, driver, strlen(driver) + 1);
    return NVML_SUCCESS;
}

API nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
    if (!inited) return NVML_ERROR_UNINITIALIZED;
    *v = cuda;
    return NVML_SUCCESS;
}
