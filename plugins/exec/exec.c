/* The `exec` runner: any other program is executed directly, argv[0] being its path. */
#include <smhost/plugin.h>

#include "../common/exec_program.h"

static const smh_host_api *g_host;

static smh_status exec_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    g_host = host;
    return SMH_OK;
}

static int exec_run(void *state, const smh_job *job, char *err, size_t errlen) {
    return smh_exec_program(g_host, job, NULL, err, errlen);
}

static const smh_runner_ops exec_ops = {.struct_size = sizeof(smh_runner_ops), .run = exec_run};

SMH_PLUGIN_DEFINE(.name = "exec", .version = SMHOST_VERSION,
                  .description = "executes any other program directly", .kind = SMH_KIND_RUNNER,
                  .claims = SMH_CLAIM_EXECUTABLE, .init = exec_init, .runner = &exec_ops)
