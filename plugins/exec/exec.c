/* The `exec` runner: any other program is executed directly, argv[0] being its path. */
#include <smhost/plugin.h>
#include <stdlib.h>

static const smh_host_api *g_host;

static smh_status exec_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    (void)state;
    (void)err;
    (void)errlen;
    g_host = host;
    return SMH_OK;
}

static int exec_run(void *state, const smh_job *job, char *err, size_t errlen) {
    (void)state;
    const char *const *args = g_host->job_args(job);
    size_t n = 0;
    while (args[n]) n++;
    const char **argv = calloc(n + 2, sizeof *argv);
    if (!argv) return SMH_E_NOMEM;
    argv[0] = g_host->job_program(job);
    for (size_t i = 0; i < n; i++) argv[i + 1] = args[i];
    smh_status s = g_host->exec(job, argv, NULL, err, errlen); /* returns only on failure */
    free(argv);
    return s;
}

static const smh_runner_ops exec_ops = {.struct_size = sizeof(smh_runner_ops), .run = exec_run};

SMH_PLUGIN_DEFINE(.name = "exec", .version = SMHOST_VERSION,
                  .description = "executes any other program directly", .kind = SMH_KIND_RUNNER,
                  .claims = SMH_CLAIM_EXECUTABLE, .init = exec_init, .runner = &exec_ops)
