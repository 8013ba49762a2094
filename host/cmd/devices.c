/* `smhost devices [--json]`: what the device backends see, for people (a table) and for tools (JSON on stdout,
 * logs on stderr); and the health gate that runs before a job or a server starts. */
#include "cmd/devices.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "plugin/backends.h"

extern char **environ;

static const char *health_word(uint32_t h) {
    return h == SMH_HEALTH_OK ? "ok" : h == SMH_HEALTH_DEGRADED ? "degraded" : "FAILED";
}

static void print_table(const shx_devview *v) {
    printf("%-8s %-6s %-28s %-10s %-13s %-42s %s\n", "BACKEND", "INDEX", "NAME", "MEMORY", "BUS ID", "UUID",
           "HEALTH");
    for (size_t i = 0; i < v->n; i++) {
        const smh_device *d = &v->devs[i];
        char idx[24], mem[24];
        if (d->flags & SMH_DEVICE_MIG_CHILD) snprintf(idx, sizeof idx, "%d.%d", d->parent, d->index);
        else snprintf(idx, sizeof idx, "%d", d->index);
        if (d->memory_total) snprintf(mem, sizeof mem, "%.1f GiB", (double)d->memory_total / (double)(1ULL << 30));
        else snprintf(mem, sizeof mem, "-");
        printf("%-8s %-6s %-28.28s %-10s %-13s %-42s %s%s%s%s\n", d->backend, idx, d->name[0] ? d->name : "-", mem,
               d->pci_bus_id[0] ? d->pci_bus_id : "-", d->uuid[0] ? d->uuid : "-", health_word(d->health),
               d->reason[0] ? ": " : "", d->reason, (d->flags & SMH_DEVICE_VISIBLE) ? "" : " (not visible to jobs)");
        if (d->device_class == SMH_DEVICE_NEURON)
            printf("%-8s %-6s   %u NeuronCores, %u visible\n", "", "", d->cores, d->visible_cores);
    }
    if (!v->n) printf("(no devices)\n");
    printf("\n");
    static const char *const states[] = {"not loaded", "ok", "no devices", "fell back to the /proc and /dev scan"};
    for (size_t b = 0; b < v->nbackends; b++) {
        const shx_backend_report *r = &v->backends[b];
        printf("backend %s: %s", r->name, states[r->state]);
        if (r->state == SHX_BK_FALLBACK) printf(" (counted %d)", r->fallback_count);
        for (size_t k = 0; k < r->info.n; k++) printf("%s %s", k ? "," : ";", r->info.v[k]);
        if (r->message[0]) printf("\n    %s", r->message);
        printf("\n");
    }
    printf("backend cpu: built in; SM_NUM_CPUS counts online CPUs\n");
    printf("\nSM_NUM_GPUS=%d SM_NUM_NEURONS=%d\n", v->num_gpus, v->num_neurons);
}

int shx_devices_main(const shx_config *cfg, int json) {
    shx_devview v = {0};
    shx_backends_discover(&v, cfg, environ, 0);
    shx_devview_log(&v);
    fflush(stderr);
    if (json) {
        pyj_value *o = shx_devview_json(&v);
        char *s = pyj_dumps(o, 1);
        puts(s);
        free(s);
        pyj_free(o);
    } else {
        print_table(&v);
    }
    shx_devview_free(&v);
    return 0;
}

int shx_devices_gate(const shx_config *cfg, const shx_devview *v, const char *what, char **text) {
    *text = NULL;
    shx_devview_log(v);
    char *lines = NULL;
    int n = shx_devview_failed(v, &lines);
    if (!n || cfg->device_health_check == SHX_HEALTH_OFF) {
        free(lines);
        return 0;
    }
    if (cfg->device_health_check == SHX_HEALTH_WARN) {
        shx_warn("devices: %d device%s failed the health check; [devices] health_check = warn, so %s goes on:\n%s", n,
                 n == 1 ? "" : "s", what, lines);
        free(lines);
        return 0;
    }
    *text = shx_xasprintf("%s\n%d device%s failed the health check before %s started, so it did not start. Move the "
                          "job to another instance, or hide the device (CUDA_VISIBLE_DEVICES ...), or set "
                          "[devices] health_check = warn in smhost.ini to run anyway.",
                          lines, n, n == 1 ? "" : "s", what);
    free(lines);
    return SHX_EXIT_DEVICE;
}

int shx_devices_serve_gate(const shx_config *cfg) {
    shx_devview v = {0};
    shx_backends_discover(&v, cfg, environ, 0);
    char *text = NULL;
    int rc = shx_devices_gate(cfg, &v, "the model server", &text);
    if (rc) shx_error("DeviceHealthError: %s", text);
    free(text);
    shx_devview_free(&v);
    return rc;
}
