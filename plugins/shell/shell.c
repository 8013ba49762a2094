/* The `shell` runner: a .sh program runs as `/bin/sh script args...` (no -c command string, ever). */
#include <smhost/plugin.h>

#include "../common/exec_program.h"

static const smh_host_api *g_host;

static smh_status shell_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    g_host = host;
    return SMH_OK;
}

static int shell_run(void *state, const smh_job *job, char *err, size_t errlen) {
    return smh_exec_program(g_host, job, "/bin/sh", err, errlen);
}

static const char *const shell_ext[] = {".sh", NULL};
static const smh_runner_ops shell_ops = {.struct_size = sizeof(smh_runner_ops), .run = shell_run};

SMH_PLUGIN_DEFINE(.name = "shell", .version = SMHOST_VERSION,
                  .description = "runs .sh programs as /bin/sh SCRIPT ARGS...", .kind = SMH_KIND_RUNNER,
                  .extensions = shell_ext, .init = shell_init, .runner = &shell_ops)
