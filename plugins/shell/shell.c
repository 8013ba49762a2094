/* The `shell` runner: a .sh program runs as `/bin/sh script args...` (no -c command string, ever). */
#include <smhost/plugin.h>
#include <stdlib.h>

static int shell_run(void *state, const smh_job *job, char *err, size_t errlen);

static const smh_host_api *g_host;

static smh_status shell_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    (void)state;
    (void)err;
    (void)errlen;
    g_host = host;
    return SMH_OK;
}

static int shell_run(void *state, const smh_job *job, char *err, size_t errlen) {
    (void)state;
    const char *const *args = g_host->job_args(job);
    size_t n = 0;
    while (args[n]) n++;
    const char **argv = calloc(n + 3, sizeof *argv);
    if (!argv) return SMH_E_NOMEM;
    argv[0] = "/bin/sh";
    argv[1] = g_host->job_program(job);
    for (size_t i = 0; i < n; i++) argv[i + 2] = args[i];
    smh_status s = g_host->exec(job, argv, NULL, err, errlen); /* returns only on failure */
    free(argv);
    return s;
}

static const char *const shell_ext[] = {".sh", NULL};
static const smh_runner_ops shell_ops = {.struct_size = sizeof(smh_runner_ops), .run = shell_run};

SMH_PLUGIN_DEFINE(.name = "shell", .version = SMHOST_VERSION,
                  .description = "runs .sh programs as /bin/sh SCRIPT ARGS...", .kind = SMH_KIND_RUNNER,
                  .extensions = shell_ext, .init = shell_init, .runner = &shell_ops)
