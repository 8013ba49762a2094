/* TEST DOUBLE -- not AMD's library.  A fake librocm_smi64.so.7 for tests on machines without AMD GPUs: the
 * ROCm SMI functions smhost's amd backend looks up, answering from $FAKE_ROCM_SMI_SPEC, one GPU a line:
 *   gpu name=<word> uid=<hex> bdf=<domain:bus:dev.fn, hex> mem=<bytes> [error=PERMISSION]
 * (no file: zero GPUs; `init fail` makes rsmi_init fail). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../plugins/amd/rsmi_min.h"

#define API __attribute__((visibility("default")))

static struct { char name[64]; uint64_t uid, bdf, mem; int err; } g[16];
static int n, loaded, init_fails;

static void load(void) {
    if (loaded) return;
    loaded = 1;
    const char *p = getenv("FAKE_ROCM_SMI_SPEC");
    FILE *f = p ? fopen(p, "r") : NULL;
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "init fail", 9)) init_fails = 1;
        if (strncmp(line, "gpu ", 4) || n >= 16) continue;
        char *tok = strtok(line + 4, " \n");
        for (; tok; tok = strtok(NULL, " \n")) {
            if (!strncmp(tok, "name=", 5)) snprintf(g[n].name, sizeof g[n].name, "%s", tok + 5);
            else if (!strncmp(tok, "uid=", 4)) g[n].uid = strtoull(tok + 4, NULL, 16);
            else if (!strncmp(tok, "mem=", 4)) g[n].mem = strtoull(tok + 4, NULL, 10);
            else if (!strncmp(tok, "error=PERMISSION", 16)) g[n].err = RSMI_STATUS_PERMISSION;
            else if (!strncmp(tok, "bdf=", 4)) {
                unsigned d = 0, b = 0, dv = 0, fn = 0;
                sscanf(tok + 4, "%x:%x:%x.%x", &d, &b, &dv, &fn);
                g[n].bdf = ((uint64_t)d << 32) | (b << 8) | ((dv & 0x1f) << 3) | (fn & 7);
            }
        }
        n++;
    }
    fclose(f);
}

API rsmi_status_t rsmi_init(uint64_t flags) {
    (void)flags;
    load();
    return init_fails ? RSMI_STATUS_INIT_ERROR : RSMI_STATUS_SUCCESS;
}
API rsmi_status_t rsmi_shut_down(void) { return RSMI_STATUS_SUCCESS; }
API rsmi_status_t rsmi_num_monitor_devices(uint32_t *c) {
    *c = (uint32_t)n;
    return RSMI_STATUS_SUCCESS;
}
#define DEV(i) if ((int)(i) >= n) return 1; if (g[i].err) return g[i].err
API rsmi_status_t rsmi_dev_unique_id_get(uint32_t i, uint64_t *v) { DEV(i); *v = g[i].uid; return 0; }
API rsmi_status_t rsmi_dev_pci_id_get(uint32_t i, uint64_t *v) { DEV(i); *v = g[i].bdf; return 0; }
API rsmi_status_t rsmi_dev_name_get(uint32_t i, char *b, size_t len) { DEV(i); snprintf(b, len, "%s", g[i].name); return 0; }
API rsmi_status_t rsmi_dev_memory_total_get(uint32_t i, int type, uint64_t *v) {
    DEV(i);
    *v = type == RSMI_MEM_TYPE_VRAM ? g[i].mem : 0;
    return 0;
}
API rsmi_status_t rsmi_status_string(rsmi_status_t s, const char **t) {
    *t = s == RSMI_STATUS_PERMISSION ? "RSMI_STATUS_PERMISSION: The user ID of the calling process does not have "
                                       "sufficient permission to execute a command"
                                     : "RSMI_STATUS_INIT_ERROR: An error occurred during initialization";
    return 0;
}
