/* Test plugin: a 1.1 runner that reads the job's device list through the v1.1 host API (device_count, device_get)
 * and writes it to <model>/devices_runner.txt.  Claims ".devrunner". */
#include <stdio.h>

#include <smhost/device.h>

static const smh_host_api *H;

static smh_status dr_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    (void)err, (void)errlen;
    H = host;
    *state = NULL;
    return SMH_OK;
}

static int dr_run(void *state, const smh_job *job, char *err, size_t errlen) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/devices_runner.txt", H->job_path(job, SMH_PATH_MODEL));
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "devices_runner: cannot write %s", path);
        return SMH_E_FAIL;
    }
    if (!SMH_HOST_HAS(H, device_count) || !SMH_HOST_HAS(H, device_get)) {
        fprintf(f, "no device API\n");
    } else {
        size_t n = H->device_count(job);
        fprintf(f, "count=%zu num_gpus=%d\n", n, H->num_gpus(job));
        for (size_t i = 0; i < n; i++) {
            const smh_device *d = H->device_get(job, i);
            fprintf(f, "%s %d %s %s health=%u visible=%d mem=%llu\n", d->backend, d->index, d->uuid, d->pci_bus_id,
                    d->health, (d->flags & SMH_DEVICE_VISIBLE) != 0, (unsigned long long)d->memory_total);
        }
        fprintf(f, "past_end=%s\n", H->device_get(job, n) == NULL ? "NULL" : "device");
    }
    fclose(f);
    return 0;
}

static const smh_runner_ops dr_ops = {.struct_size = sizeof(smh_runner_ops), .run = dr_run};
static const char *const dr_ext[] = {".devrunner", NULL};

SMH_PLUGIN_DEFINE(.name = "devices_runner", .version = "0.1-test", .description = "test: lists the job's devices (ABI 1.1)",
                  .kind = SMH_KIND_RUNNER, .extensions = dr_ext, .init = dr_init, .runner = &dr_ops)
