/* The supervisor: smhost's PID-1 duties (see supervisor.h).
 *
 * Model: tini and dumb-init.  The signals we care about stay blocked in the supervisor from the first line of
 * main() and are read from a signalfd, so none is lost and none interrupts us half-way.  The job process gets its
 * own process group and a clean signal mask; forwarded signals go to that group.  Every child is reaped; as a
 * subreaper (or PID 1) we also inherit the orphans of double forks and setsid daemons, and when the main program
 * is gone everything left below us is terminated, then killed, and reaped before we return.
 *
 * stdout is inherited by the program as it is.  stderr goes through a pipe (enlarged with F_SETPIPE_SZ) whose
 * bytes we write through unchanged while keeping the last stderr_tail_bytes for the failure report.
 */
#include "supervisor/supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "supervisor/oom.h"
#include "core/util.h"

/* Signals forwarded to the program's process group.  The first four also start the stop grace period. */
static const int forwarded[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH};

static sigset_t sup_set(void) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaddset(&set, forwarded[i]);
    sigaddset(&set, SIGCHLD);
    /* A closed stderr reader must not kill PID 1: writes then fail with EPIPE instead. */
    sigaddset(&set, SIGPIPE);
    return set;
}

/* ---- signals ----------------------------------------------------------------------------------------------- */

void shx_sup_early_init(void) {
    sigset_t set = sup_set();
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        shx_warn("cannot become a child subreaper (%s): orphaned processes of the job may escape", strerror(errno));
    /* A closed stdin/stdout/stderr must not let a pipe or file we open become fd 0..2 of the program. */
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
            if (n >= 0 && n != fd) {
                dup2(n, fd);
                close(n);
            }
        }
    }
}

void shx_sup_child_reset_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        sigaction(s, &sa, NULL); /* fails for the C library's reserved real-time signals: see below */
    }
    /* glibc reserves signals 32 and 33 and its sigaction() refuses them, yet an ignored disposition inherited from
     * our parent (make ignores them) would survive exec into the program.  Reset those with the raw syscall. */
    struct kernel_sigaction {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    };
    for (int s = 32; s < SIGRTMIN; s++) {
        struct kernel_sigaction old, dfl;
        memset(&old, 0, sizeof old);
        memset(&dfl, 0, sizeof dfl); /* SIG_DFL */
        if (syscall(SYS_rt_sigaction, s, NULL, &old, sizeof(uint64_t)) == 0 && old.handler == (void *)SIG_IGN)
            syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof(uint64_t));
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* ---- processes below us ---------------------------------------------------------------------------------- */

typedef struct proc_ent {
    pid_t pid, ppid;
} proc_ent;

/* Send sig to every process that descends from us (by /proc parent links).  Returns how many were signalled. */
static int signal_descendants(int sig) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    proc_ent *ents = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0) continue;
        buf[r] = 0;
        /* pid (comm) state ppid ...: comm may hold spaces and parentheses, so look for the last ')' */
        char *rp = strrchr(buf, ')');
        if (!rp) continue;
        char state;
        int ppid;
        if (sscanf(rp + 1, " %c %d", &state, &ppid) != 2) continue;
        if (state == 'Z') continue; /* already dead; reaping will collect it */
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            ents = shx_xrealloc(ents, cap * sizeof *ents);
        }
        ents[n++] = (proc_ent){(pid_t)pid, (pid_t)ppid};
    }
    closedir(d);
    /* Mark descendants: repeat until nothing changes (the tree is shallow in practice). */
    char *mark = shx_xcalloc(n ? n : 1, 1);
    pid_t self = getpid();
    int changed = 1, count = 0;
    while (changed) {
        changed = 0;
        for (size_t i = 0; i < n; i++) {
            if (mark[i]) continue;
            int desc = ents[i].ppid == self;
            for (size_t j = 0; !desc && j < n; j++) desc = mark[j] && ents[j].pid == ents[i].ppid;
            if (desc) {
                mark[i] = 1;
                changed = 1;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (!mark[i]) continue;
        if (kill(ents[i].pid, sig) == 0) count++;
        if (sig == SIGTERM) kill(ents[i].pid, SIGCONT); /* a stopped process cannot act on SIGTERM */
    }
    free(mark);
    free(ents);
    return count;
}

/* ---- the stderr ring ----------------------------------------------------------------------------------- */

typedef struct ring {
    char *p;
    size_t cap, start, len;
} ring;

static void ring_add(ring *r, const char *d, size_t n) {
    if (!r->cap) return;
    if (n >= r->cap) {
        memcpy(r->p, d + n - r->cap, r->cap);
        r->start = 0;
        r->len = r->cap;
        return;
    }
    size_t end = (r->start + r->len) % r->cap;
    size_t first = r->cap - end < n ? r->cap - end : n;
    memcpy(r->p + end, d, first);
    memcpy(r->p, d + first, n - first);
    r->len += n;
    if (r->len > r->cap) {
        r->start = (r->start + (r->len - r->cap)) % r->cap;
        r->len = r->cap;
    }
}

static char *ring_take(ring *r, size_t *len) {
    *len = r->len;
    if (!r->len) return NULL;
    char *out = shx_xmalloc(r->len + 1);
    size_t first = r->cap - r->start < r->len ? r->cap - r->start : r->len;
    memcpy(out, r->p + r->start, first);
    memcpy(out + first, r->p, r->len - first);
    out[r->len] = 0;
    return out;
}

/* ---- the supervision loop ------------------------------------------------------------------------------ */

#define PASS_BUF (256 * 1024)
#define REST_US 1000 /* at most this much delay for a chatty program's stderr; the 1 MiB pipe holds it */

typedef struct sup {
    const shx_sup_opts *o;
    shx_sup_result *res;
    pid_t pid;           /* the job process; 0 once reaped */
    int errfd;           /* read end of the stderr pipe, -1 when none or at EOF */
    int out_ok;          /* our stderr still accepts writes */
    char *buf;
    size_t keep;         /* bytes of an unfinished line carried to the next read */
    ring tail;
    int64_t grace_deadline, run_deadline, leftover_deadline, kill_again, give_up;
    int grace_fired;
    int64_t last_wake_us, rest_until_us; /* stderr read pacing (see the loop) */
} sup;

static void write_all(sup *s, const char *p, size_t n) {
    while (n && s->out_ok) {
        ssize_t w = write(2, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {.fd = 2, .events = POLLOUT};
                poll(&pf, 1, 100);
                continue;
            }
            s->out_ok = 0; /* nobody reads our stderr any more; keep draining the pipe for the tail */
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Read what the pipe holds and pass it on.  Returns 0 at EOF. */
static int pump_stderr(sup *s, int drain) {
    for (;;) {
        ssize_t r = read(s->errfd, s->buf + s->keep, PASS_BUF - s->keep);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                if (s->keep) write_all(s, s->buf, s->keep);
                s->keep = 0;
                close(s->errfd);
                s->errfd = -1;
                return 0;
            }
            return 1;
        }
        ring_add(&s->tail, s->buf + s->keep, (size_t)r);
        size_t have = s->keep + (size_t)r, upto = have;
        if (have == PASS_BUF && s->buf[have - 1] != '\n') {
            /* The buffer filled mid-line: hold the unfinished line back so that it is never written in two
             * pieces with someone else's output between them (a line longer than the buffer still goes). */
            char *nl = memrchr(s->buf, '\n', have);
            if (nl) upto = (size_t)(nl - s->buf) + 1;
        }
        write_all(s, s->buf, upto);
        s->keep = have - upto;
        if (s->keep) memmove(s->buf, s->buf + upto, s->keep);
        if (!drain && (size_t)r < PASS_BUF / 2) return 1; /* pipe was drained: back to poll */
    }
}

static void forward(sup *s, int sig, pid_t pgid) {
    if (s->pid) {
        if (kill(-pgid, sig) < 0 && errno == ESRCH) kill(s->pid, sig);
        else if (getpgid(s->pid) != pgid) kill(s->pid, sig); /* the program moved to another group */
    } else {
        kill(-pgid, sig);
    }
}

static void start_stop(sup *s) {
    if (s->grace_deadline) return;
    s->grace_deadline = shx_now_ms() + (int64_t)(s->o->grace_seconds > 0 ? s->o->grace_seconds : 0) * 1000;
}

/* Reap every child that has exited.  Returns -1 when no child is left (ECHILD). */
static int reap(sup *s, pid_t pgid) {
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p == 0) return 0;
        if (p < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (p != s->pid || !s->pid) continue; /* an orphan we inherited, or a leftover of the group */
        s->pid = 0;
        s->run_deadline = 0;
        if (WIFSIGNALED(st)) {
            s->res->signo = WTERMSIG(st);
            s->res->exit_code = 128 + WTERMSIG(st);
        } else {
            s->res->exit_code = WEXITSTATUS(st);
        }
        /* The main program is gone: whatever it left behind is terminated now, killed after a short grace.
         * As PID 1 or subreaper every leftover is our child by now or later, so no child means nothing left. */
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD) return -1;
        kill(-pgid, SIGTERM);
        kill(-pgid, SIGCONT);
        int n = signal_descendants(SIGTERM);
        int64_t dl = shx_now_ms() + (s->o->leftover_grace_ms > 0 ? s->o->leftover_grace_ms : 0);
        if (s->grace_deadline && s->grace_deadline < dl) dl = s->grace_deadline;
        s->leftover_deadline = dl;
        if (n) shx_debug("the program left %d process(es) behind: sent SIGTERM", n);
    }
}

int shx_supervise(const shx_sup_opts *o, int (*job_main)(void *), void *arg, shx_sup_result *res) {
    memset(res, 0, sizeof *res);
    sup s = {.o = o, .res = res, .errfd = -1, .out_ok = 1};
    int sfd = shx_sup_signalfd(); /* also blocks the signals, in case early_init was not called */
    if (sfd < 0) return -1;
    int pfd[2] = {-1, -1};
    if (o->stderr_tail_bytes > 0) {
        if (pipe2(pfd, O_CLOEXEC) < 0) {
            int e = errno;
            close(sfd);
            errno = e;
            return -1;
        }
        /* A large pipe lets a chatty program run ahead of us instead of waiting on every write. */
        if (fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20) < 0) {
            char *mx;
            size_t ml;
            if (shx_read_file("/proc/sys/fs/pipe-max-size", &mx, &ml) == 0) {
                fcntl(pfd[1], F_SETPIPE_SZ, atoi(mx));
                free(mx);
            }
        }
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sfd);
        if (pfd[0] >= 0) close(pfd[0]), close(pfd[1]);
        errno = e;
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        close(sfd);
        if (pfd[1] >= 0) {
            /* Host log lines from the job process go to the real stderr, not into the program's tail. */
            int logfd = fcntl(2, F_DUPFD_CLOEXEC, 3);
            if (logfd >= 0) shx_log_set_fd(logfd);
            dup2(pfd[1], 2); /* dup2 clears FD_CLOEXEC on the copy */
            close(pfd[0]);
            close(pfd[1]);
        }
        /* Take the terminal's foreground when there is one, as a shell would for its job. */
        if (isatty(0)) {
            signal(SIGTTOU, SIG_IGN);
            tcsetpgrp(0, getpid());
        }
        shx_sup_child_reset_signals();
        int rc = job_main(arg);
        fflush(NULL);
        _exit(rc & 0xff);
    }
    setpgid(pid, pid); /* also here: no signal may miss the group because the child has not run yet */
    /* The job process first.  After fork() the scheduler keeps the parent on the CPU, and the child, woken on the
     * same CPU, waits until the parent blocks: everything below (the OOM count, on_started, the buffers) would
     * come before the program's start.  Yielding lets the job process run to its exec() (measured: it reached
     * exec() ~0.15 ms sooner, python3 starting 0.07-0.15 ms sooner in the trivial start-up benchmark); what is
     * below is not urgent (signals wait in the signalfd, stderr in the 1 MiB pipe). */
    sched_yield();
    /* The cgroup's OOM kill count before the program, read while the job process sets up or starts (three files,
     * off the job's path to its program): the job process can only be OOM-killed before this read if memory ran
     * out in its first moments, and then the SIGKILL is reported without the OOM explanation. */
    int64_t oom_before = shx_oom_kill_count();
    if (o->on_started) o->on_started(o->on_started_arg);
    pid_t pgid = pid;
    s.pid = pid;
    if (pfd[1] >= 0) {
        close(pfd[1]);
        s.errfd = pfd[0];
        fcntl(s.errfd, F_SETFL, O_NONBLOCK);
        /* Allocated after fork(): the job process would only inherit 320 KiB it never uses. */
        s.tail.cap = o->stderr_tail_bytes;
        s.tail.p = shx_xmalloc(s.tail.cap);
        s.buf = shx_xmalloc(PASS_BUF);
    }
    if (o->max_run_seconds > 0) s.run_deadline = shx_now_ms() + (int64_t)o->max_run_seconds * 1000;

    int children = 1;
    while (children || s.errfd >= 0) {
        int64_t now = shx_now_ms();
        /* Deadlines first. */
        if (s.run_deadline && now >= s.run_deadline && s.pid && !res->timed_out) {
            res->timed_out = 1;
            s.run_deadline = 0;
            shx_warn("the job ran for max_run_seconds = %d s: stopping it with SIGTERM (%d s grace period)",
                     o->max_run_seconds, o->grace_seconds);
            forward(&s, SIGTERM, pgid);
            start_stop(&s);
        }
        if (s.grace_deadline && now >= s.grace_deadline && !s.grace_fired) {
            s.grace_fired = 1;
            if (s.pid) {
                res->killed_after_grace = 1;
                shx_warn("the program did not exit within the %d s grace period: sending SIGKILL", o->grace_seconds);
            }
            kill(-pgid, SIGKILL);
            if (s.pid) kill(s.pid, SIGKILL);
            signal_descendants(SIGKILL);
            s.kill_again = now + 100;
            if (!s.give_up) s.give_up = now + 10000;
        }
        if (s.leftover_deadline && now >= s.leftover_deadline) {
            s.leftover_deadline = 0;
            int n = signal_descendants(SIGKILL);
            kill(-pgid, SIGKILL);
            if (n) shx_info("killed %d leftover process(es) of the program with SIGKILL", n);
            s.kill_again = now + 100;
            if (!s.give_up) s.give_up = now + 10000;
        }
        if (s.kill_again && now >= s.kill_again && children) {
            /* Something forked while we were killing: keep at it until no child is left. */
            signal_descendants(SIGKILL);
            s.kill_again = now + 100;
        }
        if (s.give_up && now >= s.give_up && !s.pid && children) {
            shx_warn("processes of the job survive SIGKILL (uninterruptible sleep?): not waiting for them any longer");
            break;
        }
        if (!children && s.errfd >= 0) {
            /* Everyone who could write stderr is gone: drain what is left and finish. */
            pump_stderr(&s, 1);
            break;
        }
        int64_t next = -1;
        int64_t dls[] = {s.run_deadline, s.grace_fired ? 0 : s.grace_deadline,
                         s.leftover_deadline, s.kill_again, s.give_up};
        for (size_t i = 0; i < sizeof dls / sizeof dls[0]; i++)
            if (dls[i] && (next < 0 || dls[i] < next)) next = dls[i];
        /* A chatty program: while stderr keeps coming (woken again within REST_US), let the big pipe gather
         * data for REST_US between reads instead of waking for every write.  Signals are still taken at once. */
        int64_t now_us = shx_now_us();
        int resting = s.errfd >= 0 && now_us < s.rest_until_us;
        int64_t wait_us = next < 0 ? -1 : (next > now ? next - now : 0) * 1000;
        if (resting && (wait_us < 0 || s.rest_until_us - now_us < wait_us)) wait_us = s.rest_until_us - now_us;
        struct timespec ts = {(time_t)(wait_us / 1000000), (long)(wait_us % 1000000) * 1000};
        struct pollfd pf[2] = {{.fd = sfd, .events = POLLIN}, {.fd = s.errfd, .events = POLLIN}};
        int np = s.errfd >= 0 && !resting ? 2 : 1;
        int pr = ppoll(pf, (nfds_t)np, wait_us < 0 ? NULL : &ts, NULL);
        if (pr < 0 && errno != EINTR) {
            shx_error("poll failed: %s", strerror(errno));
            break;
        }
        if (np == 2 && (pf[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            int64_t t = shx_now_us();
            pump_stderr(&s, 0);
            if (t - s.last_wake_us < REST_US) s.rest_until_us = t + REST_US;
            s.last_wake_us = t;
        }
        if (pf[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                int sig = (int)si.ssi_signo;
                if (sig == SIGCHLD || sig == SIGPIPE) continue;
                if (shx_is_stop_signal(sig) && !res->stop_signal && s.pid) {
                    res->stop_signal = sig;
                    char sigbuf[32];
                    shx_info("received %s: passing it to the program, which has %d s to exit",
                             shx_signal_name(sig, sigbuf, sizeof sigbuf),
                             o->grace_seconds);
                    start_stop(&s);
                }
                forward(&s, sig, pgid);
            }
        }
        if (reap(&s, pgid) < 0) children = 0;
    }
    close(sfd);
    if (s.errfd >= 0) close(s.errfd);
    if (res->signo == SIGKILL || res->exit_code == 137) {
        int64_t oom_after = shx_oom_kill_count();
        if (oom_before >= 0 && oom_after > oom_before && !res->killed_after_grace) res->oom_killed = 1;
    }
    res->stderr_tail = ring_take(&s.tail, &res->stderr_tail_len);
    free(s.tail.p);
    free(s.buf);
    return 0;
}

void shx_sup_result_free(shx_sup_result *r) {
    if (!r) return;
    free(r->stderr_tail);
    r->stderr_tail = NULL;
    r->stderr_tail_len = 0;
}

/* ---- the same duties for a command with its own event loop (smhost serve) ------------------------------------ */

int shx_sup_signalfd(void) {
    sigset_t set = sup_set();
    sigprocmask(SIG_BLOCK, &set, NULL); /* already blocked when shx_sup_early_init ran: harmless */
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

int shx_sup_reap(void (*on_exit)(pid_t pid, int status, void *arg), void *arg) {
    int n = 0;
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p == 0) return n;
        if (p < 0) {
            if (errno == EINTR) continue;
            return errno == ECHILD ? -1 : n;
        }
        n++;
        if (on_exit) on_exit(p, st, arg);
    }
}

int shx_sup_end_leftovers(int term_grace_ms, const char *whose) {
    if (shx_sup_reap(NULL, NULL) < 0) return 0; /* no child left: as PID 1 or subreaper, nothing is left */
    int n = signal_descendants(SIGTERM);
    if (n) shx_info("%s left %d process(es) behind: sent SIGTERM, SIGKILL in %d ms", whose, n,
                    term_grace_ms > 0 ? term_grace_ms : 0);
    int64_t now = shx_now_ms();
    int64_t kill_at = now + (term_grace_ms > 0 ? term_grace_ms : 0), kill_again = 0, give_up = 0;
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    while (shx_sup_reap(NULL, NULL) >= 0) {
        now = shx_now_ms();
        if (!give_up && now >= kill_at) {
            int k = signal_descendants(SIGKILL);
            if (k) shx_info("killed %d leftover process(es) of %s with SIGKILL", k, whose);
            kill_again = now + 100;
            give_up = now + 10000;
        } else if (give_up && now >= give_up) {
            shx_warn("processes left by %s survive SIGKILL (uninterruptible sleep?): not waiting for them any longer",
                     whose);
            return n;
        } else if (give_up && now >= kill_again) {
            signal_descendants(SIGKILL); /* something forked while we were killing */
            kill_again = now + 100;
        }
        int64_t next = give_up ? kill_again : kill_at;
        int64_t wait = next > now ? next - now : 0;
        if (wait > 50) wait = 50; /* a child of a child that is not ours can end without a SIGCHLD for us */
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        sigtimedwait(&chld, NULL, &ts);
    }
    return n;
}
