/* The launch plan: which launcher, what it describes, what the host adds (launch.h). */
#include "dist/launch.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "plugin/hostapi.h"
#include "plugin/registry.h"

/* The distribution flags in the PyTorch toolkit's order (contract section 6), with the launcher plugin smhost looks
 * for first and what a missing one would be. */
static const struct {
    const char *flag;
    const char *plugin;
    const char *what;
} flags[] = {
    {"sagemaker_mpi_enabled", "mpi", "an 'mpi' launcher (OpenMPI's mpirun; smhost ships one)"},
    {"sagemaker_pytorch_ddp_enabled", "smddp",
     "an 'smddp' launcher (smddprun under mpirun, from SageMaker's distributed data parallel library)"},
    {"sagemaker_distributed_dataparallel_enabled", "smddp",
     "an 'smddp' launcher (smddprun under mpirun, from SageMaker's distributed data parallel library)"},
    {"sagemaker_torch_distributed_enabled", "torch", "a 'torch' launcher (torchrun's agent; smhost ships one)"},
    {"sagemaker_pytorch_xla_multi_worker_enabled", "xla", "an 'xla' launcher (torch_xla.distributed.xla_spawn)"},
    {"sagemaker_parameter_server_enabled", "tensorflow", "a 'tensorflow' launcher (TF_CONFIG for parameter servers)"},
    {"sagemaker_multi_worker_mirrored_strategy_enabled", "tensorflow",
     "a 'tensorflow' launcher (TF_CONFIG for MultiWorkerMirroredStrategy)"},
};

const char *shx_dist_flag(const shx_job *job) {
    int in = 0;
    for (size_t i = 0; i < job->distribution_hosts.n; i++)
        if (!strcmp(job->distribution_hosts.v[i], job->current_host)) in = 1;
    if (!in) return NULL;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (shx_truthy(pyj_dict_get(job->framework_params, flags[i].flag))) return flags[i].flag;
    return NULL;
}

/* ---- the launch_* host functions ---------------------------------------------------------------------------- */
static int valid_proc(const shx_launch *l, int proc) {
    return proc >= 0 && (size_t)proc < l->n;
}

int shx_launch_add(smh_launch *l, uint32_t kind, int rank, const char *const argv[]) {
    if (!l || !l->planning) return SMH_E_UNSUPPORTED;
    uint32_t base = kind & 0xffu;
    if (base > SMH_PROC_COMMAND || (kind & ~(0xffu | SMH_PROC_SERVICE | SMH_PROC_MPI_TAGS))) return SMH_E_INVAL;
    if (base == SMH_PROC_COMMAND && (!argv || !argv[0] || !*argv[0])) return SMH_E_INVAL;
    if (base == SMH_PROC_PROGRAM && argv) return SMH_E_INVAL;
    if (rank < -1) return SMH_E_INVAL;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->procs = shx_xrealloc(l->procs, l->cap * sizeof *l->procs);
    }
    shx_lproc *p = &l->procs[l->n];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->rank = rank;
    p->local_rank = -1;
    if (base == SMH_PROC_PROGRAM) {
        int k = 0;
        for (size_t i = 0; i < l->n; i++)
            if ((l->procs[i].kind & 0xffu) == SMH_PROC_PROGRAM) k++;
        p->local_rank = k;
    }
    for (size_t i = 0; argv && argv[i]; i++) shx_strvec_push(&p->argv, argv[i]);
    return (int)l->n++;
}

static void env_put(shx_strvec *env, const char *name, const char *value) {
    size_t nl = strlen(name);
    for (size_t i = 0; i < env->n; i++)
        if (!strncmp(env->v[i], name, nl) && env->v[i][nl] == '=') {
            free(env->v[i]);
            env->v[i] = shx_xasprintf("%s=%s", name, value);
            return;
        }
    shx_strvec_take(env, shx_xasprintf("%s=%s", name, value));
}

static int valid_env_name(const char *n) {
    if (!n || !*n || strchr(n, '=')) return 0;
    return 1;
}

smh_status shx_launch_setenv(smh_launch *l, int proc, const char *name, const char *value) {
    if (!l || !l->planning) return SMH_E_UNSUPPORTED;
    if (!valid_env_name(name) || !value) return SMH_E_INVAL;
    if (proc == -1) {
        for (size_t i = 0; i < l->n; i++) env_put(&l->procs[i].env, name, value);
        return SMH_OK;
    }
    if (!valid_proc(l, proc)) return SMH_E_INVAL;
    env_put(&l->procs[proc].env, name, value);
    return SMH_OK;
}

smh_status shx_launch_error_file(smh_launch *l, int proc, const char *path) {
    if (!l || !l->planning) return SMH_E_UNSUPPORTED;
    if (!valid_proc(l, proc) || !path || path[0] != '/') return SMH_E_INVAL;
    free(l->procs[proc].error_file);
    l->procs[proc].error_file = shx_xstrdup(path);
    return SMH_OK;
}

smh_status shx_launch_wait_port(smh_launch *l, int port) {
    if (!l || !l->planning) return SMH_E_UNSUPPORTED;
    if (port < 1 || port > 65535) return SMH_E_INVAL;
    l->wait_port = port;
    return SMH_OK;
}

smh_status shx_launch_rank_host(smh_launch *l, int rank, const char *host) {
    if (!l || !l->planning) return SMH_E_UNSUPPORTED;
    if (rank < 0 || rank > 1000000 || !host) return SMH_E_INVAL;
    while (l->rank_hosts.n <= (size_t)rank) shx_strvec_push(&l->rank_hosts, "");
    free(l->rank_hosts.v[rank]);
    l->rank_hosts.v[rank] = shx_xstrdup(host);
    return SMH_OK;
}

/* ---- choosing the launcher --------------------------------------------------------------------------------- */
static int lists_flag(const shx_plugin *p, const char *flag) {
    if (!p || p->status != SHX_LOAD_OK || !p->has_launcher) return 0;
    for (const char *const *f = p->launcher.flags; *f; f++)
        if (!strcmp(*f, flag)) return 1;
    return 0;
}

static const shx_plugin *find_launcher(shx_registry *reg, const char *flag, const char *preferred) {
    const shx_plugin *p = shx_registry_find(reg, preferred, NULL, 0);
    if (lists_flag(p, flag)) return p;
    shx_registry_scan(reg);
    for (size_t i = 0; i < reg->n; i++)
        if (lists_flag(&reg->items[i], flag)) return &reg->items[i];
    return NULL;
}

static int efa_present(const shx_job *job) {
    /* SMHOST_TEST_SYSROOT: the device tests' fake tree (job/devices.h), a test double for hardware */
    const char *root = shx_job_inherited(job, "SMHOST_TEST_SYSROOT");
    char *dir = shx_xasprintf("%s/dev/infiniband", root && *root ? root : "");
    DIR *d = opendir(dir);
    free(dir);
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "uverbs", 6)) found = 1;
    closedir(d);
    return found;
}

static int interface_exists(const char *ifname) {
    if (!ifname || !*ifname || strchr(ifname, '/')) return 0;
    char *p = shx_xasprintf("/sys/class/net/%s", ifname);
    int ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

static void host_additions(shx_launch *l, const shx_job *job) {
    const char *user_preload = shx_env_lookup(job->env.v, "LD_PRELOAD");
    int have_if = interface_exists(job->network_interface_name);
    if (!have_if)
        shx_warn("network interface %s (resourceconfig network_interface_name) does not exist here: "
                 "NCCL_SOCKET_IFNAME is left unset, so NCCL picks an interface itself",
                 job->network_interface_name);
    for (size_t i = 0; i < l->n; i++) {
        shx_lproc *p = &l->procs[i];
        if ((p->kind & 0xffu) != SMH_PROC_PROGRAM) continue;
        /* The gethostname library first; the user's own LD_PRELOAD stays, after it. */
        if (l->preload && *l->preload) {
            char *v = user_preload && *user_preload ? shx_xasprintf("%s:%s", l->preload, user_preload)
                                                    : shx_xstrdup(l->preload);
            env_put(&p->env, "LD_PRELOAD", v);
            free(v);
#if defined(__SANITIZE_ADDRESS__)
            /* A sanitizer build only: the rank is this instrumented smhost (`smhost rank`), and ASan refuses to
             * start when a library comes before its runtime in LD_PRELOAD.  The gethostname library is not
             * instrumented and defines nothing ASan intercepts, so the check is turned off for these processes;
             * the user's ASAN_OPTIONS stay, in front. */
            v = shx_dist_asan_options(shx_env_lookup(job->env.v, "ASAN_OPTIONS"));
            env_put(&p->env, "ASAN_OPTIONS", v);
            free(v);
#endif
        }
        if (have_if) env_put(&p->env, "NCCL_SOCKET_IFNAME", job->network_interface_name);
        if (l->info.efa) {
            env_put(&p->env, "FI_PROVIDER", "efa");
            env_put(&p->env, "FI_EFA_USE_DEVICE_RDMA", "1");
            env_put(&p->env, "RDMAV_FORK_SAFE", "1");
            env_put(&p->env, "NCCL_PROTO", "simple");
        }
        /* [devices] isolate: the backends' share of the devices for this local rank ("<rank> K=V"). */
        char prefix[32];
        int pl = snprintf(prefix, sizeof prefix, "%d ", p->local_rank);
        for (size_t k = 0; k < job->devices.isolation.n; k++) {
            const char *s = job->devices.isolation.v[k];
            if (strncmp(s, prefix, (size_t)pl)) continue;
            const char *eq = strchr(s + pl, '=');
            if (!eq) continue;
            char *name = shx_xstrndup(s + pl, (size_t)(eq - s - pl));
            env_put(&p->env, name, eq + 1);
            free(name);
        }
    }
}

int shx_dist_plan(shx_launch *l, const shx_job *job, const shx_config *cfg, int create_run_dir, char *err,
                  size_t errlen) {
    memset(l, 0, sizeof *l);
    const char *flag = shx_dist_flag(job);
    if (!flag) {
        snprintf(err, errlen, "this host runs no distributed launch");
        return SHX_EXIT_SOFTWARE;
    }
    l->flag = flag;
    size_t fi = 0;
    while (strcmp(flags[fi].flag, flag)) fi++;

    /* The info: sorted distribution hosts, this host's index, the processes per host. */
    for (size_t i = 0; i < job->distribution_hosts.n; i++) {
        int dup = 0;
        for (size_t k = 0; k < l->nodes.n; k++) dup |= !strcmp(l->nodes.v[k], job->distribution_hosts.v[i]);
        if (!dup) shx_strvec_push(&l->nodes, job->distribution_hosts.v[i]);
    }
    shx_strvec_sort(&l->nodes);
    int node_rank = -1;
    for (size_t i = 0; i < l->nodes.n; i++)
        if (!strcmp(l->nodes.v[i], job->current_host)) node_rank = (int)i;
    char *self = shx_self_dir();
    char *pre = shx_xasprintf("%s/../lib/smhost/gethostname.so", self);
    l->preload = realpath(pre, NULL);
    if (!l->preload) l->preload = pre;
    else free(pre);
    if (access(l->preload, R_OK) < 0) {
        shx_warn("the gethostname library %s is missing: gethostname() in the ranks returns the machine's name, not "
                 "the SageMaker host name (reinstall smhost)",
                 l->preload);
        free(l->preload);
        l->preload = shx_xstrdup("");
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    shx_strvec_push(&l->rank_argv, n > 0 ? exe : "smhost");
    shx_strvec_push(&l->rank_argv, "rank");
    free(self);
    const char *tmp = shx_job_inherited(job, "TMPDIR");
    /* mkdtemp: hosts simulated on one machine (smhost local) share /tmp and may share PIDs too. */
    l->run_dir = shx_xasprintf("%s/smhost-launch-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp");
    if (create_run_dir && !mkdtemp(l->run_dir)) {
        snprintf(err, errlen, "cannot create %s for the launch: %s. Make /tmp (or TMPDIR) writable.", l->run_dir,
                 strerror(errno));
        return SHX_EXIT_CANTCREAT;
    }
    l->info = (smh_launch_info){
        .struct_size = sizeof(smh_launch_info),
        .node_rank = node_rank,
        .num_nodes = (int32_t)l->nodes.n,
        .procs_per_host = shx_job_procs_per_host(job),
        .nodes = (const char *const *)l->nodes.v,
        .master_addr = l->nodes.v[0],
        .master_port = cfg->dist_master_port,
        .efa = efa_present(job),
        .interface = job->network_interface_name,
        .preload = l->preload,
        .rank_argv = (const char *const *)l->rank_argv.v,
        .run_dir = l->run_dir,
    };

    shx_registry reg;
    shx_registry_init(&reg, cfg);
    const shx_plugin *p = find_launcher(&reg, flag, flags[fi].plugin);
    if (!p) {
        snprintf(err, errlen,
                 "the job sets %s, which needs %s, and no installed launcher plugin handles that flag (looked for "
                 "'%s.so' and every launcher on the plugin path; `smhost plugins` lists them). Install that launcher "
                 "plugin, or remove the flag. Nothing was started: smhost never runs a distributed job as one "
                 "process.",
                 flag, flags[fi].what, flags[fi].plugin);
        shx_registry_free(&reg);
        return SHX_EXIT_CONFIG;
    }
    l->launcher = shx_xstrdup(p->desc.name);
    l->launcher_path = shx_xstrdup(p->path);
    struct smh_job hj;
    shx_hostapi_job_init(&hj, (shx_job *)job, NULL);
    void *state = NULL;
    int rc = 0;
    if (p->desc.init) {
        err[0] = 0;
        smh_status s = p->desc.init(shx_host_api(), &state, err, errlen);
        if (s < 0) {
            char e2[1024];
            snprintf(e2, sizeof e2, "%s", err[0] ? err : "no message");
            snprintf(err, errlen, "launcher plugin '%s' (%s) failed to initialize (status %d): %s", l->launcher,
                     l->launcher_path, s, e2);
            shx_hostapi_job_free(&hj);
            shx_registry_free(&reg);
            return SHX_EXIT_CONFIG;
        }
    }
    l->planning = 1;
    err[0] = 0;
    smh_status s = p->launcher.plan(state, (const smh_job *)&hj, &l->info, l, err, errlen);
    l->planning = 0;
    if (p->desc.fini) p->desc.fini(state);
    if (s < 0) {
        char e2[2048];
        snprintf(e2, sizeof e2, "%s", err[0] ? err : "no message");
        snprintf(err, errlen, "the '%s' launcher cannot start this job (%s): %s", l->launcher, flag, e2);
        rc = s == SMH_E_NOTFOUND ? SHX_EXIT_CONFIG : s == SMH_E_INVAL ? SHX_EXIT_DATAERR : SHX_EXIT_CONFIG;
    } else {
        int ranks = 0;
        for (size_t i = 0; i < l->n; i++)
            if (!(l->procs[i].kind & SMH_PROC_SERVICE)) ranks++;
        if (!ranks && node_rank == 0) {
            snprintf(err, errlen, "the '%s' launcher planned no process on the master host: nothing would run",
                     l->launcher);
            rc = SHX_EXIT_SOFTWARE;
        } else {
            host_additions(l, job);
        }
    }
    shx_hostapi_job_free(&hj);
    shx_registry_free(&reg);
    return rc;
}

void shx_dist_launch_free(shx_launch *l) {
    for (size_t i = 0; i < l->n; i++) {
        shx_strvec_free(&l->procs[i].argv);
        shx_strvec_free(&l->procs[i].env);
        free(l->procs[i].error_file);
    }
    free(l->procs);
    free(l->launcher);
    free(l->launcher_path);
    shx_strvec_free(&l->rank_hosts);
    shx_strvec_free(&l->nodes);
    shx_strvec_free(&l->rank_argv);
    free(l->run_dir);
    free(l->preload);
    memset(l, 0, sizeof *l);
}

int shx_dist_env_composed(const char *name) {
#if defined(__SANITIZE_ADDRESS__)
    if (!strcmp(name, "ASAN_OPTIONS")) return 1;
#endif
    return !strcmp(name, "LD_PRELOAD");
}

char *shx_dist_asan_options(const char *user) {
    return user && *user ? shx_xasprintf("%s:verify_asan_link_order=0", user) : shx_xstrdup("verify_asan_link_order=0");
}

void shx_dist_proc_env(const shx_launch *l, size_t i, const shx_job *job, shx_strvec *out) {
    for (size_t k = 0; k < job->env.n; k++) shx_strvec_push(out, job->env.v[k]);
    const shx_lproc *p = &l->procs[i];
    for (size_t k = 0; k < p->env.n; k++) {
        const char *eq = strchr(p->env.v[k], '=');
        char *name = shx_xstrndup(p->env.v[k], (size_t)(eq - p->env.v[k]));
        /* Never overwrite what the user or the platform set; LD_PRELOAD (and ASAN_OPTIONS in a sanitizer build)
         * was composed with theirs already. */
        if (!shx_env_lookup(job->env.v, name) || shx_dist_env_composed(name)) env_put(out, name, eq + 1);
        free(name);
    }
}

char *shx_dist_describe(const shx_launch *l) {
    shx_buf b = {0};
    shx_buf_printf(&b, "launcher %s (%s) for %s: host %d of %d (%s), %d process(es) per host\n", l->launcher,
                   l->launcher_path, l->flag, l->info.node_rank, l->info.num_nodes, l->info.master_addr,
                   l->info.procs_per_host);
    if (l->wait_port) shx_buf_printf(&b, "before starting: wait for port %d on every other host\n", l->wait_port);
    for (size_t i = 0; i < l->n; i++) {
        const shx_lproc *p = &l->procs[i];
        const char *what = (p->kind & 0xffu) == SMH_PROC_PROGRAM ? "program" : "command";
        shx_buf_printf(&b, "process %zu: %s%s", i, what, p->kind & SMH_PROC_SERVICE ? " (service)" : "");
        if (p->rank >= 0) shx_buf_printf(&b, ", rank %d", p->rank);
        if (p->local_rank >= 0) shx_buf_printf(&b, ", local rank %d", p->local_rank);
        shx_buf_adds(&b, "\n");
        if (p->argv.n) {
            char *line = shx_command_line((const char *const *)p->argv.v);
            shx_buf_printf(&b, "  command: %s\n", line);
            free(line);
        }
        for (size_t k = 0; k < p->env.n; k++) shx_buf_printf(&b, "  %s\n", p->env.v[k]);
        if (p->error_file) shx_buf_printf(&b, "  error file: %s\n", p->error_file);
    }
    return shx_buf_steal(&b);
}

void shx_dist_cleanup(const shx_launch *l) {
    if (l->run_dir && strstr(l->run_dir, "/smhost-launch-")) shx_rmtree(l->run_dir, 0);
}
