/* N simulated hosts on one machine (docs/local.md): each host runs in its own network, UTS, mount, PID and IPC
 * namespaces, with hostname algo-<i>, an eth0 on a private /24 joined by a bridge that lives in a namespace of
 * its own, its own /etc/hosts listing every host, and the bind mounts the caller asks for (e.g. a per-host ML
 * root on /opt/ml).  Nothing is created outside these namespaces but the caller's run directory: the namespaces
 * (bridge, veth pairs, mounts) die with their processes, and every process here dies with the supervisor
 * (PR_SET_PDEATHSIG), so a killed run leaves nothing behind in the kernel.
 *
 * As root the namespaces are created directly; as a normal user (or when root lacks CAP_SYS_ADMIN) inside a new
 * user namespace where the caller's uid is 0.  Where the kernel refuses both, shx_cluster_run() says why and
 * what to do. */
#ifndef SHX_CLUSTER_H
#define SHX_CLUSTER_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SHX_CLUSTER_MAX_HOSTS 200
#define SHX_CLUSTER_SUBNET "10.213.47" /* <subnet>.<10+i> is algo-i; exists only inside the namespaces */

typedef struct shx_cluster_bind {
    char *src, *dst; /* dst in the host's view; created when it lies under an earlier bind or a shadowed /opt */
    int ro;
} shx_cluster_bind;

typedef struct shx_cluster_host {
    /* set by shx_cluster_init() */
    int index;     /* 1-based */
    char name[24]; /* algo-<index> */
    char ip[32];
    /* set by the caller */
    char **argv;   /* the program run in the host (argv[0] searched in PATH) */
    char **envp;   /* its environment */
    shx_cluster_bind *binds;
    size_t nbinds;
    /* results */
    pid_t pid;
    int running, exit_code; /* exit_code: the program's code, or 128+N when signal N ended it */
    int64_t start_ms, end_ms;
} shx_cluster_host;

typedef struct shx_cluster {
    int n;
    shx_cluster_host *hosts;
    const char *rundir;   /* the caller's private directory (the hosts file goes there) */
    int grace_s;          /* SIGTERM, then SIGKILL after this long (Ctrl-C, a failed host) */
    int stop_on_failure;  /* a host that fails stops the others, as SageMaker does */
    int namespaces;       /* 0: run the hosts as plain processes (one host only, no namespaces available) */
    /* results */
    int stop_signal;      /* SIGINT/SIGTERM that stopped the run, or 0 */
    int first_failed;     /* index of the first host that exited non-zero (in time), or 0 */
    int userns;           /* 1 when a user namespace was used */
} shx_cluster;

void shx_cluster_init(shx_cluster *c, int n, const char *rundir);
void shx_cluster_free(shx_cluster *c);
/* 0 when namespaces can be used here, else an SHX_EXIT_* code with err saying why and what to do. */
int shx_cluster_probe(char *err, size_t errlen);
/* Start every host, relay its output line by line prefixed "algo-i | " (stdout to stdout, stderr to stderr), wait
 * for all of them.  SIGINT/SIGTERM (and a failing host when stop_on_failure) send SIGTERM to every host, SIGKILL
 * after grace_s; a second SIGINT kills at once.  Returns 0 when the hosts ran (see their exit codes), else an
 * SHX_EXIT_* code with err filled (nothing was left running). */
int shx_cluster_run(shx_cluster *c, char *err, size_t errlen);
/* The job's exit code: 128+stop_signal when stopped by a signal, else the first failed host's code, else 0. */
int shx_cluster_exit_code(const shx_cluster *c);

/* A private run directory ${TMPDIR:-/tmp}/smhost-local-<pid>-XXXXXX, held by a lock while this process lives.
 * Directories with that prefix whose lock nobody holds (a run that was killed) are removed first. */
char *shx_local_rundir_create(char *err, size_t errlen);
void shx_local_rundir_remove(char *dir);
#endif
