/* The `torch` launcher: smhost does what torchrun's agent does (contract section 6).  Each of the P processes of
 * this host runs the job's program through its ordinary runner (no torchrun, no Python needed) with the variables
 * Debian's torch 1.13 `torchrun --nnodes N --nproc_per_node P --master_addr M --master_port 7777 --node_rank R` sets,
 * with its values (docs/distributed.md records a real run), except TORCHELASTIC_USE_AGENT_STORE: smhost hosts no
 * torch store, so rank 0 hosts it, as plain env:// does. */
#include <smhost/launcher.h>

#include <stdio.h>
#include <sys/stat.h>

static const smh_host_api *g_host;

static smh_status torch_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    g_host = host;
    if (!SMH_HOST_HAS(host, launch_rank_host)) {
        snprintf(err, errlen, "this smhost is older than plugin ABI 1.1 and cannot run launchers");
        return SMH_E_UNSUPPORTED;
    }
    return SMH_OK;
}

#define SETI(proc, name, v)                                                         \
    do {                                                                             \
        char b_[32];                                                                 \
        snprintf(b_, sizeof b_, "%d", (int)(v));                                     \
        if ((s = g_host->launch_setenv(launch, proc, name, b_)) < 0) goto failed;    \
    } while (0)
#define SETS(proc, name, v)                                                         \
    do {                                                                             \
        if ((s = g_host->launch_setenv(launch, proc, name, v)) < 0) goto failed;     \
    } while (0)

static smh_status torch_plan(void *state, const smh_job *job, const smh_launch_info *info, smh_launch *launch,
                             char *err, size_t errlen) {
    int p = info->procs_per_host, n = info->num_nodes, node = info->node_rank;
    smh_status s = SMH_OK;
    if (p < 1 || n < 1 || node < 0) {
        snprintf(err, errlen, "bad launch info: %d node(s), %d process(es) per host, node rank %d", n, p, node);
        return SMH_E_INVAL;
    }
    const char *omp = g_host->job_getenv(job, "OMP_NUM_THREADS");
    for (int lr = 0; lr < p; lr++) {
        int rank = node * p + lr;
        int i = g_host->launch_add(launch, SMH_PROC_PROGRAM, rank, NULL);
        if (i < 0) {
            s = i;
            goto failed;
        }
        SETI(i, "RANK", rank);
        SETI(i, "LOCAL_RANK", lr);
        SETI(i, "WORLD_SIZE", n * p);
        SETI(i, "LOCAL_WORLD_SIZE", p);
        SETI(i, "GROUP_RANK", node);
        SETI(i, "GROUP_WORLD_SIZE", n);
        SETI(i, "ROLE_RANK", rank);
        SETI(i, "ROLE_WORLD_SIZE", n * p);
        SETS(i, "ROLE_NAME", "default");
        SETS(i, "MASTER_ADDR", info->master_addr);
        SETI(i, "MASTER_PORT", info->master_port);
        SETS(i, "TORCHELASTIC_RESTART_COUNT", "0");
        SETS(i, "TORCHELASTIC_MAX_RESTARTS", "0");
        SETS(i, "TORCHELASTIC_RUN_ID", "none");
        SETS(i, "NCCL_ASYNC_ERROR_HANDLING", "1");
        if (p > 1 && !omp) SETS(i, "OMP_NUM_THREADS", "1");
        /* torchrun: <tmp>/torchelastic_XXX/none_XXX/attempt_0/<local rank>/error.json */
        char dir[4096], file[4200];
        snprintf(dir, sizeof dir, "%s/attempt_0/%d", info->run_dir, lr);
        snprintf(file, sizeof file, "%s/error.json", dir);
        char parent[4096];
        snprintf(parent, sizeof parent, "%s/attempt_0", info->run_dir);
        mkdir(parent, 0700); /* fails harmlessly for `smhost env`, which makes no run_dir */
        mkdir(dir, 0700);
        SETS(i, "TORCHELASTIC_ERROR_FILE", file);
        if ((s = g_host->launch_error_file(launch, i, file)) < 0) goto failed;
    }
    return SMH_OK;
failed:
    snprintf(err, errlen, "the host refused the plan (status %d)", s);
    return s;
}

static const char *const torch_flags[] = {"sagemaker_torch_distributed_enabled", NULL};
static const smh_launcher_ops torch_ops = {
    .struct_size = sizeof(smh_launcher_ops), .flags = torch_flags, .plan = torch_plan};

SMH_PLUGIN_DEFINE(.name = "torch", .version = SMHOST_VERSION,
                  .description = "launcher for sagemaker_torch_distributed_enabled: torchrun's agent, built in",
                  .kind = SMH_KIND_LAUNCHER, .init = torch_init, .launcher = &torch_ops)
