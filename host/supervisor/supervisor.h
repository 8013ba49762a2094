/*
 * The supervisor: smhost's PID-1 duties.  It runs no plugin code.  It forks the job process, which loads the
 * runner plugin and usually execs the user's program, and watches it: signals are blocked in the supervisor and
 * taken synchronously, forwarded to the job's process group, zombies are reaped whether or not smhost is PID 1
 * (PR_SET_CHILD_SUBREAPER otherwise), stderr passes through while its tail is kept for the failure report.
 */
#ifndef SHX_SUPERVISOR_H
#define SHX_SUPERVISOR_H
#include <stddef.h>
#include <sys/types.h>

#include "supervisor/status.h"

typedef struct shx_sup_opts {
    int grace_seconds;       /* after a forwarded SIGTERM, SIGKILL the group after this long (train 110, serve 25) */
    int leftover_grace_ms;   /* main program gone: leftovers in its group get SIGTERM, then SIGKILL after this */
    int max_run_seconds;     /* 0: no limit; else the job is stopped like a StopTrainingJob when it runs out */
    size_t stderr_tail_bytes;/* how much of stderr to keep for the failure reason (0: don't capture) */
    void (*on_started)(void *arg); /* if set: called in the supervisor right after the job process was forked */
    void *on_started_arg;
} shx_sup_opts;

typedef struct shx_sup_result {
    int exit_code;          /* what smhost should exit with: the program's code, or 128+N */
    int signo;              /* the signal that ended the job process, 0 when it exited */
    int stop_signal;        /* the first of SIGTERM/SIGINT/... the supervisor received and forwarded, 0 if none */
    int killed_after_grace; /* the group got SIGKILL because the grace period ran out */
    int oom_killed;         /* the kernel's OOM killer ended it (cgroup memory.events oom_kill grew) */
    int timed_out;          /* max_run_seconds ran out */
    char *stderr_tail;      /* the last stderr bytes (owned), may be NULL */
    size_t stderr_tail_len;
} shx_sup_result;

/* Call first thing in main(): block the forwarded signals (so none is lost during startup) and become a
 * subreaper when not PID 1. */
void shx_sup_early_init(void);
/* In a child that is about to exec (or run user code in-process): clean signal mask and default dispositions. */
void shx_sup_child_reset_signals(void);
/* Fork the job process (own process group, clean signals), run job_main(arg) there and _exit with its return value;
 * supervise until it and everything it left behind are gone.  Returns 0, or -1 when the job process could not be
 * started (errno set). */
int shx_supervise(const shx_sup_opts *o, int (*job_main)(void *), void *arg, shx_sup_result *res);
void shx_sup_result_free(shx_sup_result *r);

/* The same duties for a command that runs its own event loop instead of shx_supervise (smhost serve): */
/* The signals smhost takes synchronously (the stop signals, SIGUSR1/2, SIGWINCH, SIGCHLD, SIGPIPE): blocks them,
 * as shx_sup_early_init did already, and returns a non-blocking signalfd that reads them, or -1 (errno set). */
int shx_sup_signalfd(void);
/* Reap every child that has exited (our own, and the orphans a subreaper or PID 1 inherits), calling
 * on_exit(pid, wait status, arg) for each when on_exit is not NULL.  Returns how many were reaped, or -1 when no
 * child is left. */
int shx_sup_reap(void (*on_exit)(pid_t pid, int status, void *arg), void *arg);
/* Call when the main work is over: every process still running below this one (daemons, double-forked orphans)
 * gets SIGTERM (and SIGCONT), then SIGKILL after term_grace_ms, and is reaped before this returns (at most 10 s
 * after the SIGKILL for processes that survive it).  `whose` names them in the log ("the handler").  Returns how
 * many processes got the SIGTERM. */
int shx_sup_end_leftovers(int term_grace_ms, const char *whose);
#endif
