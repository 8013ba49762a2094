/* Test plugin: init() dies of SIGSEGV.  Claims ".initcrashes"; the supervisor must survive and blame the plugin.
 * The handler is reset first so that sanitizer builds (whose SEGV handler would turn the crash into an exit)
 * see the same death as normal builds. */
#include <signal.h>
#include "marker.h"

static smh_status crash_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    (void)host, (void)state, (void)err, (void)errlen;
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
    return SMH_E_FAIL;
}
static int never_run(void *state, const smh_job *job, char *err, size_t errlen) {
    (void)state;
    return marker_run("init_crashes", job, err, errlen);
}
static const smh_runner_ops ops = {.struct_size = sizeof(smh_runner_ops), .run = never_run};
static const char *const ext[] = {".initcrashes", NULL};

SMH_PLUGIN_DEFINE(.name = "init_crashes", .version = "0.1-test", .description = "test: init() crashes (SIGSEGV)",
                  .kind = SMH_KIND_RUNNER, .extensions = ext, .init = crash_init, .runner = &ops)
