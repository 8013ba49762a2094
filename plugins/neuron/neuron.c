/* neuron: the device backend for AWS Neuron devices (Inferentia, Trainium), from /dev and sysfs alone -- no
 * library, no neuron-ls.
 *
 * Devices: the /dev/neuron<N> nodes the container was given (sysfs lists every device of the host, also those
 * not passed in).  For each, the sysfs directory of the current driver layout,
 * /sys/devices/virtual/neuron_device/neuron<N>/, else the one older drivers (before 2.31) showed,
 * /sys/class/neuron_device/neuron<N>/.  Cores: its core_count file, else its neuron_core<M>/ directories, else
 * what neuron-ls reports for the instance type (inf1 and trn2 4, others 2: /sys/devices/virtual/dmi/id/
 * product_name).  Name: info/architecture/device_name (else arch_type); serial number: info/serial_number.
 * Health: FAILED when the device node cannot be opened for reading and writing (no permission), DEGRADED when
 * it has no sysfs directory (the core count is then a guess).
 * Visibility: NEURON_RT_VISIBLE_CORES, core numbers counted across the devices in /dev order.
 *
 * SMHOST_TEST_SYSROOT=<dir> reads /dev and /sys under <dir> (a test double for hardware this machine lacks,
 * the same variable the host's own scan uses).
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <smhost/device.h>

#include "../common/devvis.h"

#define MAX_DEV 64
#define MAX_CORES 1024

typedef struct ne {
    const smh_host_api *host;
    int ndev;
    int num[MAX_DEV]; /* N of /dev/neuronN, sorted */
} ne;

static void path_of(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void path_of(char *out, size_t len, const char *fmt, ...) {
    const char *root = getenv("SMHOST_TEST_SYSROOT");
    char rel[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(out, len, "%s%s", root && *root ? root : "", rel);
}

/* First line of a small file, trimmed; 0, or -1 when it cannot be read. */
static int read_line(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    if (!fgets(buf, (int)len, f)) buf[0] = '\0';
    fclose(f);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r')) buf[--n] = '\0';
    return 0;
}

static int is_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    closedir(d);
    return 1;
}

static int cmp_int(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

static smh_status ne_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    if (!SMH_HOST_HAS(host, device_add)) {
        snprintf(err, errlen, "neuron: this smhost's host table has no device_add (ABI %u.%u); the neuron backend "
                 "needs ABI 1.1", host->abi_major, host->abi_minor);
        return SMH_E_UNSUPPORTED;
    }
    ne *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "neuron: out of memory");
        return SMH_E_NOMEM;
    }
    s->host = host;
    *state = s;
    return SMH_OK;
}

static void ne_fini(void *state) {
    free(state);
}

static smh_status ne_probe(void *state, char *err, size_t errlen) {
    ne *s = state;
    char dev[600];
    path_of(dev, sizeof dev, "/dev");
    DIR *d = opendir(dev);
    if (!d) {
        snprintf(err, errlen, "neuron: cannot list %s", dev);
        return SMH_E_NOTFOUND;
    }
    struct dirent *e;
    while ((e = readdir(d)) && s->ndev < MAX_DEV) {
        const char *n = e->d_name;
        if (strncmp(n, "neuron", 6) || !dv_is_index(n + 6) || strlen(n + 6) > 4) continue;
        s->num[s->ndev++] = atoi(n + 6);
    }
    closedir(d);
    if (!s->ndev) {
        snprintf(err, errlen, "neuron: no /dev/neuron* device nodes");
        return SMH_E_NOTFOUND;
    }
    qsort(s->num, (size_t)s->ndev, sizeof s->num[0], cmp_int);
    return SMH_OK;
}

static int default_cores(void) {
    char p[600], name[128];
    path_of(p, sizeof p, "/sys/devices/virtual/dmi/id/product_name");
    if (read_line(p, name, sizeof name) < 0) return 2;
    const char *t = name;
    if (!strncmp(t, "ml.", 3)) t += 3;
    if (!strncmp(t, "inf1.", 5) || !strncmp(t, "trn2.", 5) || !strncmp(t, "trn2u.", 6)) return 4;
    return 2;
}

/* Cores of the device whose sysfs directory is dir: core_count, else neuron_core<M>/ entries; -1 if neither. */
static int sysfs_cores(const char *dir) {
    char p[700], buf[64];
    snprintf(p, sizeof p, "%s/core_count", dir);
    if (read_line(p, buf, sizeof buf) == 0) {
        char *end;
        long v = strtol(buf, &end, 10);
        if (end != buf && !*end && v > 0 && v <= 128) return (int)v;
    }
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "neuron_core", 11) && dv_is_index(e->d_name + 11)) n++;
    closedir(d);
    return n > 0 ? n : -1;
}

static smh_status ne_list(void *state, smh_device_sink *sink, char *err, size_t errlen) {
    ne *s = state;
    const smh_host_api *H = s->host;
    static unsigned char set[MAX_CORES];
    const char *vis = getenv("NEURON_RT_VISIBLE_CORES");
    if (dv_parse_cores(vis, set, MAX_CORES) < 0) {
        snprintf(err, errlen, "NEURON_RT_VISIBLE_CORES='%s' is not a list of core numbers and ranges (\"0-3,6\", "
                 "below %d): fix or unset it", vis, MAX_CORES);
        return SMH_E_INVAL;
    }
    int core = 0, dflt = 0, layout_new = 0, layout_old = 0;
    for (int i = 0; i < s->ndev; i++) {
        int n = s->num[i];
        smh_device d;
        memset(&d, 0, sizeof d);
        d.struct_size = sizeof d;
        d.device_class = SMH_DEVICE_NEURON;
        d.index = n;
        d.parent = -1;
        char dir[600], p[700], buf[128];
        path_of(dir, sizeof dir, "/sys/devices/virtual/neuron_device/neuron%d", n);
        if (is_dir(dir)) layout_new = 1;
        else {
            path_of(dir, sizeof dir, "/sys/class/neuron_device/neuron%d", n);
            if (is_dir(dir)) layout_old = 1;
            else dir[0] = '\0';
        }
        int cores = dir[0] ? sysfs_cores(dir) : -1;
        if (cores < 0) {
            if (!dflt) dflt = default_cores();
            cores = dflt;
            d.health = SMH_HEALTH_DEGRADED;
            snprintf(d.reason, sizeof d.reason, "no core count in sysfs for neuron%d (%s): assuming %d cores, what "
                     "neuron-ls reports for this instance type", n, dir[0] ? "no core_count" : "no sysfs directory",
                     cores);
        }
        d.cores = (uint32_t)cores;
        for (int c = 0; c < cores; c++)
            if (core + c < MAX_CORES && set[core + c]) d.visible_cores++;
        core += cores;
        if (d.visible_cores) d.flags |= SMH_DEVICE_VISIBLE;
        if (dir[0]) {
            snprintf(p, sizeof p, "%s/info/architecture/device_name", dir);
            if (read_line(p, buf, sizeof buf) < 0 || !buf[0]) {
                snprintf(p, sizeof p, "%s/info/architecture/arch_type", dir);
                if (read_line(p, buf, sizeof buf) < 0) buf[0] = '\0';
            }
            snprintf(d.name, sizeof d.name, "%.95s", buf[0] ? buf : "AWS Neuron device");
            snprintf(p, sizeof p, "%s/info/serial_number", dir);
            if (read_line(p, buf, sizeof buf) == 0 && buf[0]) snprintf(d.uuid, sizeof d.uuid, "%.95s", buf);
        } else {
            snprintf(d.name, sizeof d.name, "AWS Neuron device");
        }
        char node[600];
        path_of(node, sizeof node, "/dev/neuron%d", n);
        if (access(node, R_OK | W_OK) != 0) {
            d.health = SMH_HEALTH_FAILED;
            snprintf(d.reason, sizeof d.reason, "no permission to open /dev/neuron%d for reading and writing: run "
                     "the container with the device passed in (--device=/dev/neuron%d) and as a user allowed to use "
                     "it", n, n);
        }
        H->device_add(sink, &d);
    }
    const char *layout = layout_new && layout_old ? "mixed"
                         : layout_new             ? "/sys/devices/virtual/neuron_device"
                         : layout_old             ? "/sys/class/neuron_device (before driver 2.31)"
                                                  : "none";
    H->device_set_info(sink, "sysfs_layout", layout);
    return SMH_OK;
}

/* [devices] isolate: rank r of n gets an equal, contiguous share of the visible cores. */
static smh_status ne_isolate(void *state, const smh_device *devs, size_t ndev, int rank, int nranks, char *name,
                             size_t namelen, char *value, size_t valuelen) {
    (void)state;
    static unsigned char set[MAX_CORES];
    if (dv_parse_cores(getenv("NEURON_RT_VISIBLE_CORES"), set, MAX_CORES) < 0) return SMH_E_INVAL;
    int cores[MAX_CORES], n = 0, base = 0;
    for (size_t i = 0; i < ndev; i++) {
        for (uint32_t c = 0; c < devs[i].cores && base + (int)c < MAX_CORES; c++)
            if (set[base + (int)c]) cores[n++] = base + (int)c;
        base += (int)devs[i].cores;
    }
    int first, per;
    if (dv_share(n, rank, nranks, &first, &per) < 0) return SMH_E_RANGE;
    snprintf(name, namelen, "NEURON_RT_VISIBLE_CORES");
    size_t used = 0;
    value[0] = '\0';
    for (int k = first; k < first + per; k++) {
        char core[16];
        snprintf(core, sizeof core, "%d", cores[k]);
        if (dv_append(value, valuelen, &used, core) < 0) return SMH_E_RANGE;
    }
    return SMH_OK;
}

static const smh_backend_ops ne_ops = {.struct_size = sizeof(smh_backend_ops),
                                       .device_class = SMH_DEVICE_NEURON,
                                       .probe = ne_probe,
                                       .list = ne_list,
                                       .isolate = ne_isolate};

SMH_PLUGIN_DEFINE(.name = "neuron", .version = "1.0", .description = "AWS Neuron devices (/dev/neuron*, sysfs)",
                  .kind = SMH_KIND_BACKEND, .init = ne_init, .fini = ne_fini, .backend = &ne_ops)
