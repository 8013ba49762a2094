/*
 * smhost launchers (plugin ABI 1.1) -- include this instead of, or after, <smhost/plugin.h>.
 *
 * A launcher is a plugin of kind SMH_KIND_LAUNCHER whose descriptor points at an smh_launcher_ops table (the
 * `launcher` member of smh_plugin).  It sits between the job model and the runner plugin: for a distributed job
 * (contract section 6) it says which processes this host starts and what each one gets, and the host starts and
 * supervises them.  smhost ships two: `torch` (what torchrun's agent does) and `mpi` (OpenMPI's mpirun over sshd).
 * docs/distributed.md walks through both.
 *
 * Which launcher.  A launcher lists the distribution flags it handles in `flags` (framework parameters such as
 * "sagemaker_torch_distributed_enabled").  On a host of a distribution group the host takes the truthy flag that
 * comes first in the PyTorch toolkit's order (mpi, SMDDP, torch_distributed, XLA, parameter server / multi-worker
 * mirrored) and the first usable launcher plugin that lists it.  When none does, the job fails before anything
 * starts, naming the flag and the kind of launcher that would handle it.
 *
 * When it runs.  plan() runs once, in the job process (never in the supervisor), before any process of the job
 * starts; `smhost env` also calls it to show the plan without running anything.  It must only describe: start
 * nothing, write nothing but what a process will need (a directory, a file under info->run_dir).
 *
 * What it describes, through the host functions of smh_host_api v1.1 (check SMH_HOST_HAS(host, launch_add)):
 *   launch_add(launch, kind, rank, argv)   one process: SMH_PROC_PROGRAM (the job's program through its ordinary
 *                                          runner plugin: .py, .sh, executables and native .so trainers all work)
 *                                          or SMH_PROC_COMMAND (argv as given: mpirun, sshd), with flags below.
 *                                          `rank` is the global rank the host shows in log prefixes and failure
 *                                          reports, or -1.  Returns the process's index (>= 0) or an smh_status.
 *   launch_setenv(launch, proc, name, value)  a variable for one process (proc >= 0) or all (-1).  The host never
 *                                          overwrites what the user or the platform set: such a call is a no-op.
 *   launch_error_file(launch, proc, path)  where the process writes its uncaught error as torch's @record does
 *                                          ({"message": {"message": ...}}); the host reads it for the failure report.
 *   launch_wait_port(launch, port)         before starting anything, wait until every other distribution host
 *                                          accepts TCP connections on `port` ([distributed] start_timeout_seconds;
 *                                          a SIGTERM ends the wait).
 *   launch_rank_host(launch, rank, host)   for processes that start ranks elsewhere (mpirun): where `rank` runs, so
 *                                          a failure of a tagged line ("[1,3]<stderr>:") names its host.
 *
 * What the host adds to every process of a distributed job, never overwriting a value already set:
 * LD_PRELOAD with the gethostname library first (info->preload; the user's LD_PRELOAD is kept after it),
 * NCCL_SOCKET_IFNAME (when the interface exists), and on EFA hardware FI_PROVIDER=efa, FI_EFA_USE_DEVICE_RDMA=1,
 * RDMAV_FORK_SAFE=1, NCCL_PROTO=simple; with [devices] isolate, the device backends' per-rank visibility.
 *
 * How it ends.  The host supervises the processes as one job and coordinates the hosts over a control connection
 * to the master's smhost: a start barrier before any process starts, the first failure (host, rank, error line)
 * broadcast to every host, a SIGTERM on any host passed to all, and the job's real outcome on every host.
 * A SMH_PROC_SERVICE process (sshd) is stopped when the job ends; its exit before then is a failure.
 *
 * Ownership.  Strings and argv are copied before each call returns.  `info` and its strings belong to the host
 * and live for the job process.
 */
#ifndef SMHOST_LAUNCHER_H
#define SMHOST_LAUNCHER_H

#include <smhost/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* launch_add() kinds, and flags or-ed into them. */
#define SMH_PROC_PROGRAM 0u        /* the job's program through its runner plugin; argv must be NULL */
#define SMH_PROC_COMMAND 1u        /* argv[0] (searched on PATH without a '/') with argv, exec'd as given */
#define SMH_PROC_SERVICE (1u << 8) /* a helper the job needs (sshd): started first, stopped when the job ends */
#define SMH_PROC_MPI_TAGS (1u << 9) /* its output lines carry OpenMPI --tag-output tags: "[jobid,rank]<stream>:" */

/* What the host knows about this host's place in the distributed job.  Read fields added after v1.1 only when
 * info->struct_size covers them. */
typedef struct smh_launch_info {
    uint32_t struct_size;
    int32_t node_rank;          /* this host's index in `nodes` */
    int32_t num_nodes;          /* number of distribution hosts */
    int32_t procs_per_host;     /* contract section 6: sagemaker_mpi_num_of_processes_per_host, GPUs, cores, 1 */
    const char *const *nodes;   /* the distribution hosts, sorted (so nodes[0] is the master), NULL-terminated */
    const char *master_addr;    /* nodes[0] */
    int32_t master_port;        /* [distributed] master_port, default 7777 */
    int32_t efa;                /* 1 when EFA hardware is present (/dev/infiniband/uverbs*) */
    const char *interface;      /* network_interface_name (resourceconfig), default "eth0" */
    const char *preload;        /* the gethostname library ("" when not installed) */
    const char *const *rank_argv; /* runs the job's program through its runner in a process another program
                                   * started (an MPI rank): {"<smhost>", "rank", NULL} */
    const char *run_dir;        /* a directory for this job's launch files, created by the host */
} smh_launch_info;

typedef struct smh_launcher_ops {
    uint32_t struct_size;
    const char *const *flags; /* the distribution flags it handles, NULL-terminated */
    /* Describe this host's processes (see above).  A negative status fails the job before anything starts;
     * `err` says why and what to do (for example which package to install). */
    smh_status (*plan)(void *state, const smh_job *job, const smh_launch_info *info, smh_launch *launch, char *err,
                       size_t errlen);
} smh_launcher_ops;

SMH__FIRST(smh_launcher_ops, struct_size);
SMH__ASSERT(offsetof(smh_launcher_ops, flags) >= sizeof(uint32_t), "smh_launcher_ops.flags follows struct_size");
SMH__FOLLOWS(smh_launcher_ops, flags, plan);
SMH__FIRST(smh_launch_info, struct_size);
SMH__FOLLOWS(smh_launch_info, struct_size, node_rank);
SMH__FOLLOWS(smh_launch_info, node_rank, num_nodes);
SMH__FOLLOWS(smh_launch_info, num_nodes, procs_per_host);
SMH__ASSERT(offsetof(smh_launch_info, nodes) >= offsetof(smh_launch_info, procs_per_host) + sizeof(int32_t),
            "smh_launch_info.nodes follows procs_per_host");
SMH__FOLLOWS(smh_launch_info, nodes, master_addr);
SMH__FOLLOWS(smh_launch_info, master_addr, master_port);
SMH__FOLLOWS(smh_launch_info, master_port, efa);
SMH__FOLLOWS(smh_launch_info, efa, interface);
SMH__FOLLOWS(smh_launch_info, interface, preload);
SMH__FOLLOWS(smh_launch_info, preload, rank_argv);
SMH__FOLLOWS(smh_launch_info, rank_argv, run_dir);

#ifdef __cplusplus
}
#endif
#endif /* SMHOST_LAUNCHER_H */
