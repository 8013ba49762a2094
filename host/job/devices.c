/* Device counts (see devices.h), without running nvidia-smi or neuron-ls (which the toolkit runs, and which
 * are often missing from containers).
 *
 * CPUs: sysconf(_SC_NPROCESSORS_ONLN), which is what CPython's os.cpu_count() returns on Linux and so what
 *   the toolkit's multiprocessing.cpu_count() reports (online CPUs, not the affinity mask or cgroup quota).
 * GPUs: the toolkit counts the "GPU n:" lines of `nvidia-smi --list-gpus`, i.e. the GPUs visible in the
 *   container.  The NVIDIA container runtime exposes exactly those as /proc/driver/nvidia/gpus/<pci-id>/ and
 *   /dev/nvidia<n>, so smhost counts the first, else the second (nvidiactl, nvidia-uvm ... do not match).
 * Neuron cores: the toolkit sums "nc_count" over `neuron-ls -j`.  The devices a container can use are its
 *   /dev/neuron<n> nodes (sysfs shows every device of the host, also those not passed in), so smhost sums
 *   /sys/class/neuron_device/neuron<n>/core_count over those nodes.  Where a core_count cannot be read it
 *   uses what neuron-ls reports per device for the instance type (/sys/devices/virtual/dmi/id/product_name):
 *   inf1 4, trn2 4 (logical cores at the default LNC=2), others (inf2, trn1) 2.
 *
 * SMHOST_TEST_SYSROOT: a TEST DOUBLE for hardware this machine lacks.  When set, the /proc, /dev and /sys
 * paths above are read under that directory instead, so unit tests can build a fake tree of GPUs and Neuron
 * devices.  Never set it in a real container: the counts would be the fake ones (smhost warns once). */
#include "job/devices.h"

#include "core/log.h"
#include "core/util.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int shx_num_cpus(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

static char *sys_path(const char *path) {
    const char *root = getenv("SMHOST_TEST_SYSROOT");
    if (!root || !*root) return shx_xstrdup(path);
    static int warned;
    if (!warned) {
        shx_warn("SMHOST_TEST_SYSROOT=%s: device counts come from that fake tree (a test double); unset it in "
                 "real containers", root);
        warned = 1;
    }
    return shx_path_join(root, path);
}

/* prefix followed by one or more digits; the number in *num. */
static int numbered(const char *name, const char *prefix, int *num) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) || !name[n]) return 0;
    for (const char *c = name + n; *c; c++)
        if (!isdigit((unsigned char)*c)) return 0;
    if (num) *num = atoi(name + n);
    return 1;
}

/* Between shx_device_scan_begin() and shx_device_scan_end() each directory is read once: the nvidia and neuron
 * signs both look through /dev (~110 entries).  Otherwise every call reads it afresh. */
typedef struct scanned {
    char *path;
    int ok;           /* 0, or -1 when it could not be opened */
    shx_strvec names; /* every name but "." and ".." */
} scanned;
static struct {
    int active;
    scanned *dirs;
    size_t n;
} g_scan;

void shx_device_scan_end(void) {
    for (size_t i = 0; i < g_scan.n; i++) {
        free(g_scan.dirs[i].path);
        shx_strvec_free(&g_scan.dirs[i].names);
    }
    free(g_scan.dirs);
    memset(&g_scan, 0, sizeof g_scan);
}

void shx_device_scan_begin(void) {
    shx_device_scan_end();
    g_scan.active = 1;
}

/* getdents64() into a buffer on the stack rather than opendir(), whose 32 KiB buffer is a fresh allocation: this
 * runs on every job's start (the device signs read /dev), where the first touch of new memory is what costs. */
static int read_names(const char *path, shx_strvec *out) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    char buf[8192] __attribute__((aligned(8)));
    ssize_t n;
    while ((n = getdents64(fd, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            const struct dirent64 *e = (const struct dirent64 *)(buf + off);
            off += e->d_reclen;
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) shx_strvec_push(out, e->d_name);
        }
    }
    close(fd);
    return 0; /* as readdir() did: a read error ends the list */
}

/* Names in dir (relative to the system root) that are "<prefix><digits>", or with prefix NULL any name but
 * "." and "..".  Their numbers go to nums (up to max) when nums is not NULL.  -1 when dir cannot be opened. */
static int list_dir(const char *dir, const char *prefix, int *nums, int max) {
    char *p = sys_path(dir);
    scanned fresh = {0}, *sc = NULL;
    for (size_t i = 0; g_scan.active && i < g_scan.n && !sc; i++)
        if (!strcmp(g_scan.dirs[i].path, p)) sc = &g_scan.dirs[i];
    if (!sc) {
        if (g_scan.active) {
            g_scan.dirs = shx_xrealloc(g_scan.dirs, (g_scan.n + 1) * sizeof *g_scan.dirs);
            sc = &g_scan.dirs[g_scan.n++];
            memset(sc, 0, sizeof *sc);
            sc->path = shx_xstrdup(p);
        } else {
            sc = &fresh;
        }
        sc->ok = read_names(p, &sc->names);
    }
    free(p);
    int count = sc->ok;
    for (size_t i = 0; sc->ok == 0 && i < sc->names.n; i++) {
        int num = 0;
        if (prefix && !numbered(sc->names.v[i], prefix, &num)) continue;
        if (nums && count < max) nums[count] = num;
        count++;
    }
    shx_strvec_free(&fresh.names);
    return count;
}

int shx_num_gpus(void) {
    int n = list_dir("/proc/driver/nvidia/gpus", NULL, NULL, 0);
    if (n > 0) return n;
    n = list_dir("/dev", "nvidia", NULL, 0);
    return n > 0 ? n : 0;
}

/* A small positive number from a one-line file, or -1. */
static int read_count(const char *path) {
    char *p = sys_path(path), *text = NULL;
    size_t len;
    int rc = shx_read_file(p, &text, &len);
    free(p);
    if (rc < 0) return -1;
    char *end;
    long v = strtol(text, &end, 10);
    while (*end == '\n' || *end == ' ') end++;
    int ok = end != text && !*end && v > 0 && v <= 1024;
    free(text);
    return ok ? (int)v : -1;
}

static int default_cores_per_device(void) {
    char *p = sys_path("/sys/devices/virtual/dmi/id/product_name"), *name = NULL;
    size_t len;
    int rc = shx_read_file(p, &name, &len);
    free(p);
    int cores = 2;
    if (rc == 0) {
        const char *t = name;
        if (!strncmp(t, "ml.", 3)) t += 3;
        if (!strncmp(t, "inf1.", 5)) cores = 4;
        else if (!strncmp(t, "trn2.", 5) || !strncmp(t, "trn2u.", 6)) cores = 4;
    }
    free(name);
    return cores;
}

int shx_num_neurons(void) {
    int nums[256];
    int n = list_dir("/dev", "neuron", nums, 256);
    if (n <= 0) return 0;
    if (n > 256) n = 256;
    int total = 0, dflt = 0;
    for (int i = 0; i < n; i++) {
        char path[96];
        snprintf(path, sizeof path, "/sys/class/neuron_device/neuron%d/core_count", nums[i]);
        int c = read_count(path);
        if (c < 0) {
            if (!dflt) dflt = default_cores_per_device();
            c = dflt;
            shx_debug("no %s: counting %d NeuronCores for /dev/neuron%d", path, c, nums[i]);
        }
        total += c;
    }
    return total;
}

/* Cheap signs of a backend's hardware, checked before its plugin is loaded (plugin/backends.c), so that a
 * machine without accelerators loads no GPU library: a few stat()/readdir() calls, no dlopen.  env is the
 * environment smhost was started with. */
int shx_device_signs(const char *backend, char *const *env, char *why, size_t whylen) {
    if (!strcmp(backend, "nvidia")) {
        const char *lib = shx_env_lookup(env, "SMHOST_NVML_LIBRARY");
        if (lib && *lib) return snprintf(why, whylen, "SMHOST_NVML_LIBRARY is set"), 1;
        if (list_dir("/proc/driver/nvidia/gpus", NULL, NULL, 0) > 0)
            return snprintf(why, whylen, "/proc/driver/nvidia/gpus lists GPUs"), 1;
        if (list_dir("/dev", "nvidia", NULL, 0) > 0) return snprintf(why, whylen, "/dev/nvidia<n> exists"), 1;
        snprintf(why, whylen, "no /proc/driver/nvidia/gpus entries, no /dev/nvidia<n> and no SMHOST_NVML_LIBRARY: "
                 "no NVIDIA GPU here, NVML not loaded");
        return 0;
    }
    if (!strcmp(backend, "neuron")) {
        if (list_dir("/dev", "neuron", NULL, 0) > 0) return snprintf(why, whylen, "/dev/neuron<n> exists"), 1;
        snprintf(why, whylen, "no /dev/neuron<n>: no Neuron device here");
        return 0;
    }
    if (!strcmp(backend, "amd")) {
        const char *lib = shx_env_lookup(env, "SMHOST_ROCM_SMI_LIBRARY");
        if (lib && *lib) return snprintf(why, whylen, "SMHOST_ROCM_SMI_LIBRARY is set"), 1;
        char *p = sys_path("/dev/kfd");
        int kfd = access(p, F_OK) == 0;
        free(p);
        if (kfd) return snprintf(why, whylen, "/dev/kfd exists"), 1;
        snprintf(why, whylen, "no /dev/kfd and no SMHOST_ROCM_SMI_LIBRARY: no AMD GPU here, ROCm SMI not loaded");
        return 0;
    }
    snprintf(why, whylen, "named in [devices] backends, and smhost knows no cheaper sign of its hardware");
    return -1;
}
