/* Test plugin: a runner for ".crash" programs whose init() dies with SIGSEGV, as a broken native plugin would.
 * The supervisor must survive it and blame the plugin in output/failure. */
#include <signal.h>
#include <smhost/plugin.h>

static smh_status crash_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    (void)host;
    (void)state;
    (void)err;
    (void)errlen;
    raise(SIGSEGV);
    return SMH_OK;
}

static int crash_run(void *state, const smh_job *job, char *err, size_t errlen) {
    (void)state;
    (void)job;
    (void)err;
    (void)errlen;
    return 0;
}

static const char *const crash_ext[] = {".crash", NULL};
static const smh_runner_ops crash_ops = {.struct_size = sizeof(smh_runner_ops), .run = crash_run};

SMH_PLUGIN_DEFINE(.name = "sup_crash_init", .version = "1.0", .description = "test: init() crashes with SIGSEGV",
                  .kind = SMH_KIND_RUNNER, .extensions = crash_ext, .init = crash_init, .runner = &crash_ops)
