/* Test plugin: init() fails with SMH_E_FAIL and a message.  Claims ".initfails"; the job must fail with that
 * message, and run() (which writes <model>/init_fails.txt) must never be called. */
#include "marker.h"

static smh_status fail_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    (void)host, (void)state;
    snprintf(err, errlen, "init_fails: the widget service is not configured (set WIDGET_URL)");
    return SMH_E_FAIL;
}
static int never_run(void *state, const smh_job *job, char *err, size_t errlen) {
    (void)state;
    return marker_run("init_fails", job, err, errlen);
}
static const smh_runner_ops ops = {.struct_size = sizeof(smh_runner_ops), .run = never_run};
static const char *const ext[] = {".initfails", NULL};

SMH_PLUGIN_DEFINE(.name = "init_fails", .version = "0.1-test", .description = "test: init() returns SMH_E_FAIL",
                  .kind = SMH_KIND_RUNNER, .extensions = ext, .init = fail_init, .runner = &ops)
