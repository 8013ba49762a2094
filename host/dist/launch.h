/* The launcher layer (contract section 6, docs/distributed.md): between the job model and the runner plugin.
 *
 * plan.c   which launcher a host uses, and the launch plan it describes through the v1.1 launch_* host functions
 *          (smh_launch below), plus what the host adds to every process (LD_PRELOAD, NCCL/EFA variables).
 * agent.c  runs the plan in the job process: the ranks (each through the ordinary runner), their output with
 *          per-rank prefixes and tails, a failure stopping every sibling, and the control link between hosts (one
 *          text line per message; agent.c's head comment lists them). */
#ifndef SHX_DIST_LAUNCH_H
#define SHX_DIST_LAUNCH_H
#include <smhost/launcher.h>

#include "core/config.h"
#include "job/job.h"

typedef struct shx_lproc {
    uint32_t kind;    /* SMH_PROC_* with its flags */
    int rank;         /* global rank, -1 when none */
    int local_rank;   /* index among this host's rank processes, -1 for commands without a rank */
    shx_strvec argv;  /* SMH_PROC_COMMAND */
    shx_strvec env;   /* "K=V" additions, in the order given; applied only where the job's environment has none */
    char *error_file; /* TORCHELASTIC_ERROR_FILE-style report, or NULL */
} shx_lproc;

struct smh_launch {
    char *launcher;          /* plugin name */
    char *launcher_path;
    const char *flag;        /* the distribution flag that chose it (static string) */
    shx_lproc *procs;
    size_t n, cap;
    int wait_port;           /* 0: none */
    shx_strvec rank_hosts;   /* launch_rank_host: index = rank ("" unknown) */
    /* the info handed to plan(), and what it points at */
    smh_launch_info info;
    shx_strvec nodes, rank_argv;
    char *run_dir, *preload;
    int planning;            /* launch_* calls are accepted only inside plan() */
};
typedef struct smh_launch shx_launch;

/* The distribution flag that makes this host launch a distributed job (contract section 6: the PyTorch toolkit's
 * order), or NULL when it runs the program once: no flag, or the host is outside the distribution groups. */
const char *shx_dist_flag(const shx_job *job);
/* Make the plan: pick the launcher plugin for the flag, call its plan() (in this process), then add the host's
 * own variables.  Returns 0, or an SHX_EXIT_* code with err filled (the flag, the launcher, the next step).
 * `cfg` gives [distributed]; job->env is not changed.  shx_dist_launch_free either way. */
int shx_dist_plan(shx_launch *l, const shx_job *job, const shx_config *cfg, int create_run_dir, char *err,
                  size_t errlen);
void shx_dist_launch_free(shx_launch *l);
/* Remove the plan's run_dir (error files) after the run. */
void shx_dist_cleanup(const shx_launch *l);
/* The plan for people (`smhost env`): one line per process with its rank variables or command line. */
char *shx_dist_describe(const shx_launch *l);
/* The environment of process i: job->env with the process's additions where the job set nothing.  Caller frees
 * the vector. */
void shx_dist_proc_env(const shx_launch *l, size_t i, const shx_job *job, shx_strvec *out);
/* Whether the plan composed variable `name` with the job's own value (LD_PRELOAD; ASAN_OPTIONS in a sanitizer
 * build), so the process gets the plan's value even where the job set one. */
int shx_dist_env_composed(const char *name);
/* ASAN_OPTIONS for a process started with the gethostname library ahead of the ASan runtime: `user` (may be NULL)
 * followed by verify_asan_link_order=0.  Used in sanitizer builds only.  Caller frees. */
char *shx_dist_asan_options(const char *user);
/* The host functions behind smh_host_api's launch_* members. */
int shx_launch_add(smh_launch *l, uint32_t kind, int rank, const char *const argv[]);
smh_status shx_launch_setenv(smh_launch *l, int proc, const char *name, const char *value);
smh_status shx_launch_error_file(smh_launch *l, int proc, const char *path);
smh_status shx_launch_wait_port(smh_launch *l, int port);
smh_status shx_launch_rank_host(smh_launch *l, int rank, const char *host);

/* agent.c: run the plan as this host's part of the job, in the job process.  A program process execs
 * info.rank_argv (`smhost rank`: the job's program through its runner plugin).  Returns the job process's exit
 * code; sets page's reason on failure. */
struct shx_status_page;
int shx_dist_run(shx_launch *l, shx_job *job, const shx_config *cfg, struct shx_status_page *page);
#endif
