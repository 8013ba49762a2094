/* Test plugin: a third-party launcher built against the current (1.1) header, named "testxla", handling
 * sagemaker_pytorch_xla_multi_worker_enabled (which smhost ships no launcher for).  It plans procs_per_host program
 * processes, each with TESTXLA_RANK and TESTXLA_WORLD, plus XLA_TEST_USER=from-launcher, a variable the host must
 * not set when the user already did.  Not an XLA launcher: it exercises the launcher ABI. */
#include <stdio.h>

#include <smhost/launcher.h>

static const smh_host_api *H;

static smh_status tx_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    if (!SMH_HOST_HAS(host, launch_add)) {
        snprintf(err, errlen, "testxla: the host table has no launch_add");
        return SMH_E_UNSUPPORTED;
    }
    H = host;
    return SMH_OK;
}

static smh_status tx_plan(void *state, const smh_job *job, const smh_launch_info *info, smh_launch *launch, char *err,
                          size_t errlen) {
    for (int r = 0; r < info->procs_per_host; r++) {
        int i = H->launch_add(launch, SMH_PROC_PROGRAM, info->node_rank * info->procs_per_host + r, NULL);
        if (i < 0) return i;
        char v[32];
        snprintf(v, sizeof v, "%d", r);
        H->launch_setenv(launch, i, "TESTXLA_RANK", v);
        snprintf(v, sizeof v, "%d", info->procs_per_host * info->num_nodes);
        H->launch_setenv(launch, i, "TESTXLA_WORLD", v);
    }
    H->launch_setenv(launch, -1, "XLA_TEST_USER", "from-launcher");
    /* Outside plan() nothing may be added; inside, a bad kind is refused. */
    if (H->launch_add(launch, 77, 0, NULL) != SMH_E_INVAL) {
        snprintf(err, errlen, "the host accepted a bad process kind");
        return SMH_E_FAIL;
    }
    return SMH_OK;
}

static const char *const tx_flags[] = {"sagemaker_pytorch_xla_multi_worker_enabled", NULL};
static const smh_launcher_ops tx_ops = {.struct_size = sizeof(smh_launcher_ops), .flags = tx_flags, .plan = tx_plan};

SMH_PLUGIN_DEFINE(.name = "testxla", .version = "1.1-test",
                  .description = "test: a third-party launcher for the XLA flag (not XLA)", .kind = SMH_KIND_LAUNCHER,
                  .init = tx_init, .launcher = &tx_ops)
