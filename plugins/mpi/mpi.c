/* The `mpi` launcher: Debian's OpenMPI, as the toolkit runs it (contract section 6).  Every host runs
 * `/usr/sbin/sshd -D` as a service; the master waits for every worker's port 22, then runs the contract's exact
 * mpirun command, whose ranks start `smhost rank` (the job's program through its ordinary runner) on each host.
 * Workers only serve ssh and learn the job's outcome from the master's smhost.  Nothing is written to
 * /etc/environment: the ranks get the SM_* variables through mpirun's -x. */
#include <smhost/launcher.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SSHD "/usr/sbin/sshd"

static const smh_host_api *g_host;

static smh_status mpi_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    g_host = host;
    if (!SMH_HOST_HAS(host, launch_rank_host)) {
        snprintf(err, errlen, "this smhost is older than plugin ABI 1.1 and cannot run launchers");
        return SMH_E_UNSUPPORTED;
    }
    return SMH_OK;
}

typedef struct argv_b {
    char **v;
    size_t n, cap;
} argv_b;

static void add(argv_b *a, const char *s) {
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) abort();
    }
    a->v[a->n++] = strdup(s);
    a->v[a->n] = NULL;
}

static void addf(argv_b *a, const char *fmt, const char *x) {
    char buf[8192];
    snprintf(buf, sizeof buf, fmt, x);
    add(a, buf);
}

static void free_argv(argv_b *a) {
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
}

static smh_status mpi_plan(void *state, const smh_job *job, const smh_launch_info *info, smh_launch *launch, char *err,
                           size_t errlen) {
    if (access(SSHD, X_OK) < 0) {
        snprintf(err, errlen,
                 "%s is missing (%s): the mpi launcher runs OpenSSH's server on every host so that mpirun can start "
                 "the ranks. Install the openssh-server package in the image (apt-get install openssh-server).",
                 SSHD, strerror(errno));
        return SMH_E_NOTFOUND;
    }
    /* sshd's privilege separation directory (Debian's service unit makes it; a container has none).  Only for a
     * real run: the host creates run_dir then, and `smhost env`, which plans without running, writes nothing. */
    if (access(info->run_dir, F_OK) == 0) mkdir("/run/sshd", 0755);
    const char *const sshd[] = {SSHD, "-D", NULL};
    int svc = g_host->launch_add(launch, SMH_PROC_COMMAND | SMH_PROC_SERVICE, -1, sshd);
    if (svc < 0) {
        snprintf(err, errlen, "the host refused the sshd service (status %d)", svc);
        return svc;
    }
    if (info->node_rank != 0) return SMH_OK; /* a worker: sshd until the master's job ends */

    int p = info->procs_per_host, n = info->num_nodes;
    long total = (long)p * n;
    const char *np_param = NULL;
    if (g_host->framework_param(job, "sagemaker_mpi_num_processes", &np_param) == SMH_OK && np_param) {
        char *end;
        long v = strtol(np_param, &end, 10);
        if (end == np_param || *end || v < 1 || v > 1000000) {
            snprintf(err, errlen, "sagemaker_mpi_num_processes = \"%s\" is not a positive whole number", np_param);
            return SMH_E_INVAL;
        }
        total = v;
    }
    const char *iface = info->interface && *info->interface ? info->interface : "eth0";
    argv_b a = {0};
    char buf[8192];
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        if (p > 1) off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s:%d", i ? "," : "", info->nodes[i], p);
        else off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s", i ? "," : "", info->nodes[i]);
        if (off >= sizeof buf) {
            snprintf(err, errlen, "too many hosts for the mpirun --host list");
            return SMH_E_RANGE;
        }
    }
    char tot[32];
    snprintf(tot, sizeof tot, "%ld", total);
    add(&a, "mpirun");
    add(&a, "--host"), add(&a, buf);
    add(&a, "-np"), add(&a, tot);
    add(&a, "--allow-run-as-root"), add(&a, "--display-map"), add(&a, "--tag-output");
    add(&a, "-mca"), add(&a, "btl_tcp_if_include"), add(&a, iface);
    add(&a, "-mca"), add(&a, "oob_tcp_if_include"), add(&a, iface);
    add(&a, "-mca"), add(&a, "plm_rsh_no_tree_spawn"), add(&a, "1");
    add(&a, "-bind-to"), add(&a, "none"), add(&a, "-map-by"), add(&a, "slot");
    add(&a, "-mca"), add(&a, "pml"), add(&a, "ob1");
    add(&a, "-mca"), add(&a, "btl"), add(&a, "^openib");
    add(&a, "-mca"), add(&a, "orte_abort_on_non_zero_status"), add(&a, "1");
    add(&a, "-mca"), add(&a, "btl_vader_single_copy_mechanism"), add(&a, "none");
    add(&a, "-x"), add(&a, "NCCL_MIN_NRINGS=4");
    add(&a, "-x"), addf(&a, "NCCL_SOCKET_IFNAME=%s", iface);
    add(&a, "-x"), add(&a, "NCCL_DEBUG=INFO");
    add(&a, "-x"), add(&a, "LD_LIBRARY_PATH");
    add(&a, "-x"), add(&a, "PATH");
    if (info->preload && *info->preload) {
        const char *user = g_host->job_getenv(job, "LD_PRELOAD");
        char pre[8192];
        if (user && *user) snprintf(pre, sizeof pre, "LD_PRELOAD=%s:%s", info->preload, user);
        else snprintf(pre, sizeof pre, "LD_PRELOAD=%s", info->preload);
        add(&a, "-x"), add(&a, pre);
#if defined(__SANITIZE_ADDRESS__)
        /* A sanitizer build only: the ranks are the instrumented smhost (`smhost rank`), and ASan refuses to start
         * when a library comes before its runtime in LD_PRELOAD; the gethostname library is not instrumented and
         * defines nothing ASan intercepts, so the check is off for the ranks (the user's ASAN_OPTIONS in front). */
        const char *ao = g_host->job_getenv(job, "ASAN_OPTIONS");
        if (ao && *ao) snprintf(pre, sizeof pre, "ASAN_OPTIONS=%s:verify_asan_link_order=0", ao);
        else snprintf(pre, sizeof pre, "ASAN_OPTIONS=verify_asan_link_order=0");
        add(&a, "-x"), add(&a, pre);
#endif
    }
    /* sagemaker_mpi_custom_mpi_options, split on blanks */
    const char *custom = NULL;
    if (g_host->framework_param(job, "sagemaker_mpi_custom_mpi_options", &custom) == SMH_OK && custom) {
        const char *c = custom;
        while (*c) {
            while (isspace((unsigned char)*c)) c++;
            const char *st = c;
            while (*c && !isspace((unsigned char)*c)) c++;
            if (c > st) {
                char w[4096];
                snprintf(w, sizeof w, "%.*s", (int)(c - st), st);
                add(&a, w);
            }
        }
    }
    /* every SM_* variable and PYTHONPATH by name (values travel in mpirun's environment, never on argv); also
     * what `smhost rank` needs to find the same job on the other hosts */
    static const char *const extra[] = {"PYTHONPATH", "SAGEMAKER_BASE_DIR", "SAGEMAKER_PROGRAM",
                                        "SAGEMAKER_TRAINING_MODULE", "SMHOST_CONFIG", "SMHOST_PLUGIN_PATH", NULL};
    for (const char *const *e = g_host->job_environ(job); *e; e++) {
        if (strncmp(*e, "SM_", 3)) continue;
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        char name[512];
        snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
        add(&a, "-x"), add(&a, name);
    }
    for (const char *const *x = extra; *x; x++)
        if (g_host->job_getenv(job, *x)) add(&a, "-x"), add(&a, *x);
    for (const char *const *r = info->rank_argv; *r; r++) add(&a, *r);

    int i = g_host->launch_add(launch, SMH_PROC_COMMAND | SMH_PROC_MPI_TAGS, -1, (const char *const *)a.v);
    free_argv(&a);
    if (i < 0) {
        snprintf(err, errlen, "the host refused the mpirun command (status %d)", i);
        return i;
    }
    for (long r = 0; r < total; r++) {
        long node = p > 0 ? r / p : 0;
        if (node >= n) node = n - 1;
        g_host->launch_rank_host(launch, (int)r, info->nodes[node]);
    }
    return g_host->launch_wait_port(launch, 22);
}

static const char *const mpi_flags[] = {"sagemaker_mpi_enabled", NULL};
static const smh_launcher_ops mpi_ops = {.struct_size = sizeof(smh_launcher_ops), .flags = mpi_flags, .plan = mpi_plan};

SMH_PLUGIN_DEFINE(.name = "mpi", .version = SMHOST_VERSION,
                  .description =
                      "launcher for sagemaker_mpi_enabled: OpenMPI's mpirun over sshd, as the toolkit runs it",
                  .kind = SMH_KIND_LAUNCHER, .init = mpi_init, .launcher = &mpi_ops)
