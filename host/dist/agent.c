/* Running the launch plan in the job process (launch.h): smhost as torchrun's agent, for any launcher.
 *
 * The supervisor (PID 1) forked this job process; the ranks are its children, in its process group, so a SIGTERM
 * the supervisor forwards reaches every rank at once and its grace period covers them.  Here:
 *   - services start first (sshd), then the start barrier between hosts, then the optional port wait, then ranks;
 *   - every rank's stdout and stderr come through pipes and leave with a "[host rank N] " prefix; the last
 *     RANK_TAIL bytes of each rank's stderr are kept, so the failure report quotes the rank that failed;
 *   - the first failing process (non-zero exit, signal, OOM) stops its siblings: SIGTERM, then SIGKILL after
 *     [distributed] failure_grace_seconds;
 *   - hosts talk over the control link: each worker's smhost holds one TCP connection to the master's smhost
 *     ([distributed] control_port).  One text line per message:
 *         HELLO <host>                      worker -> master, once connected
 *         GO                                master -> workers, when every worker said HELLO (the start barrier)
 *         FAIL <host> <rank> <code> <line>  the first failure: worker -> master, master -> every worker
 *         TERM <host>                       a SIGTERM on <host>: worker -> master, master -> every worker
 *         DONE <host>                       worker -> master: its processes all ended with 0
 *         END <code>                        master -> workers: the job is over; 0 or the failing code
 *     so a host busy in a local step learns of a failure elsewhere within a round trip, and every host reports
 *     the same first failure and the job's real outcome. */
#include "dist/launch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/pyjson.h"
#include "plugin/hostapi.h"
#include "supervisor/failure.h"
#include "supervisor/oom.h"
#include "supervisor/status.h"
#include "supervisor/supervisor.h"

#define RANK_TAIL (16 * 1024)
#define LINE_MAX_BYTES (64 * 1024)
#define SERVICE_STOP_MS 2000

typedef struct stream {
    int fd;      /* -1 at EOF */
    int out;     /* 1 or 2 */
    shx_buf part;/* an unfinished line */
} stream;

typedef struct rproc {
    shx_lproc *lp;
    pid_t pid;
    int started, exited, code, signo, expected; /* expected: we stopped it */
    stream so, se;
    shx_buf tail;          /* last stderr bytes */
    char prefix[160];
} rproc;

typedef struct peer {
    char *host;
    int fd;
    shx_buf in;
    int hello, done, gone;
} peer;

typedef struct agent {
    shx_launch *l;
    shx_job *job;
    const shx_config *cfg;
    shx_status_page *page;
    rproc *p;
    size_t n;
    int sfd;
    int multi, is_master;
    const char *me;
    /* master */
    int lfd;
    peer *peers;
    size_t npeers;
    /* worker */
    int mfd;
    shx_buf min;
    int sent_done, go, end_received, end_code, master_lost;
    /* outcome */
    int failed, fail_local, fail_rank, fail_code;
    char *fail_host, *fail_line, *fail_msg;
    int term;
    char *term_host;
    int self_term;
    int64_t kill_at;
    int64_t oom_before;
} agent;

/* ---- small helpers ------------------------------------------------------------------------------------------ */
static void write_full(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                poll(&pf, 1, 100);
                continue;
            }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void send_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_line(int fd, const char *fmt, ...) {
    if (fd < 0) return;
    char buf[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
    for (int i = 0; i < n; i++)
        if (buf[i] == '\n' || buf[i] == '\r') buf[i] = ' ';
    buf[n++] = '\n';
    const char *p = buf;
    size_t left = (size_t)n;
    while (left) {
        ssize_t w = send(fd, p, left, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd pf = {.fd = fd, .events = POLLOUT};
                if (poll(&pf, 1, 1000) <= 0) return;
                continue;
            }
            return;
        }
        p += w;
        left -= (size_t)w;
    }
}

/* Read what a socket holds into `in`.  Returns 0 at EOF or error. */
static int sock_read(int fd, shx_buf *in) {
    char buf[4096];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            shx_buf_add(in, buf, (size_t)r);
            if (in->len > 1 << 20) return 0; /* nobody sends this much: a confused peer */
            continue;
        }
        if (r < 0 && (errno == EINTR)) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        return 0;
    }
}

/* Take the next complete line out of `in` (caller frees), or NULL. */
static char *take_line(shx_buf *in) {
    if (!in->len) return NULL;
    char *nl = memchr(in->p, '\n', in->len);
    if (!nl) return NULL;
    size_t n = (size_t)(nl - in->p);
    char *line = shx_xstrndup(in->p, n);
    memmove(in->p, nl + 1, in->len - n - 1);
    in->len -= n + 1;
    return line;
}

/* ---- output ----------------------------------------------------------------------------------------------- */
static void emit(agent *a, rproc *r, stream *s, const char *line, size_t n) {
    (void)a;
    shx_buf b = {0};
    shx_buf_adds(&b, r->prefix);
    shx_buf_add(&b, line, n);
    shx_buf_addc(&b, '\n');
    write_full(s->out, b.p, b.len);
    shx_buf_free(&b);
}

static void tail_add(rproc *r, const char *d, size_t n) {
    shx_buf_add(&r->tail, d, n);
    if (r->tail.len > 2 * RANK_TAIL) {
        memmove(r->tail.p, r->tail.p + r->tail.len - RANK_TAIL, RANK_TAIL);
        r->tail.len = RANK_TAIL;
    }
}

/* Pass on what a rank's pipe holds, line by line with its prefix.  eof: flush the unfinished line. */
static void pump(agent *a, rproc *r, stream *s) {
    char buf[65536];
    for (;;) {
        ssize_t got = read(s->fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (got <= 0) {
            if (s->part.len) emit(a, r, s, s->part.p, s->part.len);
            s->part.len = 0;
            close(s->fd);
            s->fd = -1;
            return;
        }
        if (s->out == 2) tail_add(r, buf, (size_t)got);
        shx_buf_add(&s->part, buf, (size_t)got);
        size_t start = 0;
        for (size_t i = 0; i < s->part.len; i++) {
            if (s->part.p[i] != '\n') continue;
            emit(a, r, s, s->part.p + start, i - start);
            start = i + 1;
        }
        if (start) {
            memmove(s->part.p, s->part.p + start, s->part.len - start);
            s->part.len -= start;
        }
        if (s->part.len > LINE_MAX_BYTES) {
            emit(a, r, s, s->part.p, s->part.len);
            s->part.len = 0;
        }
        if ((size_t)got < sizeof buf) return;
    }
}

/* ---- failures ------------------------------------------------------------------------------------------------ */
/* The uncaught error a rank reported through TORCHELASTIC_ERROR_FILE (torch's @record), or NULL. */
static char *error_file_message(const char *path) {
    if (!path) return NULL;
    char *data;
    size_t len;
    if (shx_read_file(path, &data, &len) < 0) return NULL;
    pyj_error pe;
    pyj_value *v = pyj_parse(data, len, &pe);
    free(data);
    if (!v) return NULL;
    const pyj_value *m = pyj_dict_get(v, "message");
    const char *s = NULL;
    if (m && m->type == PYJ_DICT) s = pyj_as_string(pyj_dict_get(m, "message"));
    else if (m) s = pyj_as_string(m);
    char *out = s && *s ? shx_xstrdup(s) : NULL;
    pyj_free(v);
    return out;
}

/* For mpirun: OpenMPI names the first failing process ("Process name: [[63411,1],3]" ... "Exit code: 1"); its
 * stderr lines carry the tag "[1,3]<stderr>:".  Returns the rank or -1; *code gets the exit code when given. */
static int mpi_failed_rank(const char *tail, int *code) {
    const char *p = strstr(tail, "Process name: [[");
    if (!p) return -1;
    const char *c = strstr(p, "],");
    if (!c) return -1;
    int rank = atoi(c + 2);
    const char *ec = strstr(p, "Exit code:");
    if (ec) *code = atoi(ec + 10);
    return rank;
}

/* The stderr lines of MPI rank `rank` from a --tag-output tail, tags removed. */
static char *mpi_rank_lines(const char *tail, int rank) {
    shx_buf b = {0};
    char tag[32];
    int tl = snprintf(tag, sizeof tag, ",%d]<stderr>:", rank);
    for (const char *line = tail; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        /* lines look like "[algo-1 mpirun] [1,3]<stderr>:text" after our prefix, or "[1,3]<stderr>:text" */
        const char *t = memmem(line, n, tag, (size_t)tl);
        if (t) {
            const char *text = t + tl;
            shx_buf_add(&b, text, n - (size_t)(text - line));
            shx_buf_addc(&b, '\n');
        }
        line = nl ? nl + 1 : line + n;
    }
    return shx_buf_steal(&b);
}

static char *first_line(const char *s) {
    while (*s == '\n' || *s == ' ') s++;
    const char *nl = strchr(s, '\n');
    size_t n = nl ? (size_t)(nl - s) : strlen(s);
    if (n > 400) n = 400;
    char *o = shx_xstrndup(s, n);
    shx_utf8_clean(o, n);
    return o;
}

static void stop_local(agent *a, int grace_seconds, const char *why) {
    int any = 0;
    for (size_t i = 0; i < a->n; i++) {
        rproc *r = &a->p[i];
        if (!r->started || r->exited || (r->lp->kind & SMH_PROC_SERVICE)) continue;
        r->expected = 1;
        kill(r->pid, SIGTERM);
        kill(r->pid, SIGCONT);
        any = 1;
    }
    if (any) {
        int64_t at = shx_now_ms() + (int64_t)grace_seconds * 1000;
        if (!a->kill_at || at < a->kill_at) a->kill_at = at;
        shx_info("%s: sent SIGTERM to this host's remaining processes (SIGKILL in %d s)", why, grace_seconds);
    }
}

static void broadcast(agent *a, const char *fmt, const char *x1, int i1, int i2, const char *x2) {
    for (size_t i = 0; i < a->npeers; i++) {
        peer *pe = &a->peers[i];
        if (pe->fd < 0) continue;
        if (x2) send_line(pe->fd, fmt, x1, i1, i2, x2);
        else send_line(pe->fd, fmt, x1);
    }
}

/* Record the job's first failure; on the master tell every worker, on a worker tell the master. */
static void record_failure(agent *a, const char *host, int rank, int code, const char *line, const char *msg,
                           int local) {
    if (a->failed) return;
    a->failed = 1;
    a->fail_local = local;
    a->fail_host = shx_xstrdup(host);
    a->fail_rank = rank;
    a->fail_code = code;
    a->fail_line = shx_xstrdup(line && *line ? line : "(no error message)");
    a->fail_msg = shx_xstrdup(msg && *msg ? msg : a->fail_line);
    if (rank >= 0)
        shx_error("distributed job failed: host %s, rank %d, exit code %d: %s", host, rank, code, a->fail_line);
    else
        shx_error("distributed job failed: host %s, exit code %d: %s", host, code, a->fail_line);
    if (a->multi) {
        if (a->is_master) broadcast(a, "FAIL %s %d %d %s", host, rank, code, a->fail_line);
        else if (local) send_line(a->mfd, "FAIL %s %d %d %s", host, rank, code, a->fail_line);
    }
    stop_local(a, a->cfg->dist_failure_grace_seconds, local ? "a process of this host failed" : "another host failed");
}

static void local_failure(agent *a, rproc *r) {
    char sn[32];
    char *msg = NULL;
    int rank = r->lp->rank, code = r->code;
    if (r->lp->kind & SMH_PROC_MPI_TAGS) {
        char *tail = shx_xstrndup(r->tail.p ? r->tail.p : "", r->tail.len);
        int mcode = code;
        int mr = mpi_failed_rank(tail, &mcode);
        if (mr >= 0) {
            rank = mr;
            if (mcode) code = code ? code : mcode;
            char *lines = mpi_rank_lines(tail, mr);
            msg = shx_error_message_from_tail(lines, strlen(lines), 700);
            free(lines);
        }
        free(tail);
    }
    if (!msg) msg = error_file_message(r->lp->error_file);
    if (!msg && r->tail.len) msg = shx_error_message_from_tail(r->tail.p, r->tail.len, 700);
    if (msg && !*msg) {
        free(msg);
        msg = NULL;
    }
    if (r->signo) {
        /* A signal is the news; the stderr tail (if any) follows it. */
        int oom = r->signo == SIGKILL && a->oom_before >= 0 && shx_oom_kill_count() > a->oom_before;
        const char *by = oom ? "the kernel's out-of-memory killer (SIGKILL)" : shx_signal_name(r->signo, sn, sizeof sn);
        char *m2 = shx_xasprintf("killed by %s%s%s", by, msg ? ": " : "", msg ? msg : "");
        free(msg);
        msg = m2;
    } else if (!msg) {
        msg = shx_xasprintf("exited with code %d", r->code);
    }
    const char *host = a->me;
    if ((r->lp->kind & SMH_PROC_MPI_TAGS) && rank >= 0 && (size_t)rank < a->l->rank_hosts.n &&
        a->l->rank_hosts.v[rank][0])
        host = a->l->rank_hosts.v[rank];
    char *line = first_line(msg);
    if (r->lp->kind & SMH_PROC_SERVICE) {
        char *m2 = shx_xasprintf("%s (a service of the '%s' launcher) ended before the job did: %s",
                                 r->lp->argv.n ? r->lp->argv.v[0] : "service", a->l->launcher, msg);
        free(msg);
        msg = m2;
        free(line);
        line = first_line(msg);
    }
    record_failure(a, host, rank, code ? code : 1, line, msg, 1);
    free(line);
    free(msg);
}

/* ---- processes ---------------------------------------------------------------------------------------------- */
static void close_agent_fds(agent *a, int keep1, int keep2) {
    if (a->sfd >= 0) close(a->sfd);
    if (a->lfd >= 0) close(a->lfd);
    if (a->mfd >= 0) close(a->mfd);
    for (size_t i = 0; i < a->npeers; i++)
        if (a->peers[i].fd >= 0) close(a->peers[i].fd);
    for (size_t i = 0; i < a->n; i++) {
        if (a->p[i].so.fd >= 0 && a->p[i].so.fd != keep1 && a->p[i].so.fd != keep2) close(a->p[i].so.fd);
        if (a->p[i].se.fd >= 0 && a->p[i].se.fd != keep1 && a->p[i].se.fd != keep2) close(a->p[i].se.fd);
    }
}

static int start_proc(agent *a, size_t i) {
    rproc *r = &a->p[i];
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) < 0) return -1;
    if (pipe2(pe, O_CLOEXEC) < 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return -1;
    }
    if (pid == 0) {
        close_agent_fds(a, -1, -1);
        close(po[0]);
        close(pe[0]);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[1]);
        close(pe[1]);
        shx_sup_child_reset_signals();
        shx_strvec env = {0};
        shx_dist_proc_env(a->l, i, a->job, &env);
        /* A program rank runs `smhost rank`, exactly as mpirun's ranks do: a fresh exec, so LD_PRELOAD (the
         * gethostname library) applies to in-process runners (Python, native .so) too. */
        char *const *argv = (r->lp->kind & 0xffu) == SMH_PROC_COMMAND ? r->lp->argv.v : a->l->rank_argv.v;
        execvpe(argv[0], argv, env.v);
        int e = errno;
        fprintf(stderr, "smhost: cannot run %s: %s\n", argv[0], strerror(e));
        _exit(e == ENOENT ? SHX_EXIT_NOTFOUND : SHX_EXIT_NOEXEC);
    }
    close(po[1]);
    close(pe[1]);
    r->pid = pid;
    r->started = 1;
    r->so = (stream){.fd = po[0], .out = 1};
    r->se = (stream){.fd = pe[0], .out = 2};
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    return 0;
}

static void reap_children(agent *a) {
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) return;
        for (size_t i = 0; i < a->n; i++) {
            rproc *r = &a->p[i];
            if (r->pid != pid || r->exited) continue;
            r->exited = 1;
            if (WIFSIGNALED(st)) {
                r->signo = WTERMSIG(st);
                r->code = 128 + r->signo;
            } else {
                r->code = WEXITSTATUS(st);
            }
            /* Drain its output before judging it, so the tail holds its last words. */
            if (r->so.fd >= 0) pump(a, r, &r->so);
            if (r->se.fd >= 0) pump(a, r, &r->se);
            int service = (r->lp->kind & SMH_PROC_SERVICE) != 0;
            if (service && !r->expected) {
                if (!r->code) r->code = 1;
                local_failure(a, r);
            } else if (!service && r->code && !r->expected && !a->failed && !a->term) {
                local_failure(a, r);
            } else {
                shx_debug("%s process %d ended with code %d", r->prefix, (int)pid, r->code);
            }
        }
    }
}

static int ranks_running(const agent *a) {
    for (size_t i = 0; i < a->n; i++)
        if (a->p[i].started && !a->p[i].exited && !(a->p[i].lp->kind & SMH_PROC_SERVICE)) return 1;
    return 0;
}

static int outputs_open(const agent *a) {
    for (size_t i = 0; i < a->n; i++)
        if (!(a->p[i].lp->kind & SMH_PROC_SERVICE) && (a->p[i].so.fd >= 0 || a->p[i].se.fd >= 0)) return 1;
    return 0;
}

/* ---- the control link ------------------------------------------------------------------------------------- */
static int listen_on(int port, char *err, size_t errlen) {
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int v6 = fd >= 0;
    if (fd < 0) fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create the control socket: %s", strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc;
    if (v6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                  .sin6_addr = in6addr_any};
        rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    } else {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_ANY);
        rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    }
    if (rc < 0 || listen(fd, 64) < 0) {
        snprintf(err, errlen,
                 "cannot listen on the control port %d: %s. Another program uses it: set [distributed] control_port "
                 "in smhost.ini to a free port (the same on every host).",
                 port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* One non-blocking connect attempt to host:port; returns a connected fd or -1. */
static int try_connect(const char *host, int port, int wait_ms) {
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, ps, &hints, &res) != 0) return -1;
    int out = -1;
    for (struct addrinfo *ai = res; ai && out < 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) continue;
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int err = 0;
            socklen_t el = sizeof err;
            if (poll(&pf, 1, wait_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && !err) rc = 0;
        }
        if (rc == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            out = fd;
        } else {
            close(fd);
        }
    }
    freeaddrinfo(res);
    return out;
}

/* A stop signal while waiting: returns the signal, or 0. */
static int take_signal(agent *a, int wait_ms) {
    struct pollfd pf = {.fd = a->sfd, .events = POLLIN};
    if (poll(&pf, 1, wait_ms) <= 0) return 0;
    struct signalfd_siginfo si;
    int stop = 0;
    while (read(a->sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        int s = (int)si.ssi_signo;
        if (shx_is_stop_signal(s)) stop = s;
        if (s == SIGCHLD) reap_children(a);
    }
    return stop;
}

static void handle_peer_line(agent *a, peer *pe, char *line);
static void handle_master_line(agent *a, char *line);

/* The start barrier.  Returns 0, or an exit code with the page's reason set. */
static int barrier(agent *a) {
    int64_t deadline = shx_now_ms() + (int64_t)a->cfg->dist_start_timeout_seconds * 1000;
    char err[1024];
    if (a->is_master) {
        a->lfd = listen_on(a->cfg->dist_control_port, err, sizeof err);
        if (a->lfd < 0) {
            shx_status_set_reason(a->page, "ClientError", err);
            shx_error("%s", err);
            return SHX_EXIT_OSERR;
        }
        shx_info("waiting for %zu worker host(s) to join on control port %d", a->npeers, a->cfg->dist_control_port);
        for (;;) {
            size_t joined = 0;
            for (size_t i = 0; i < a->npeers; i++) joined += a->peers[i].hello;
            if (joined == a->npeers) break;
            if (a->failed) return -1;
            if (shx_now_ms() >= deadline) {
                shx_buf b = {0};
                for (size_t i = 0; i < a->npeers; i++)
                    if (!a->peers[i].hello) shx_buf_printf(&b, "%s%s", b.len ? ", " : "", a->peers[i].host);
                char *missing = shx_buf_steal(&b);
                snprintf(err, sizeof err,
                         "the distributed job could not start: host(s) %s never joined within %d s (their smhost did "
                         "not start, or cannot reach %s:%d). Raise [distributed] start_timeout_seconds or check the "
                         "network.",
                         missing, a->cfg->dist_start_timeout_seconds, a->me, a->cfg->dist_control_port);
                free(missing);
                shx_error("%s", err);
                shx_status_set_reason(a->page, "ClientError", err);
                broadcast(a, "END %s", "1", 0, 0, NULL);
                return SHX_EXIT_UNAVAILABLE;
            }
            struct pollfd *pf = shx_xcalloc(2 + a->npeers, sizeof *pf);
            nfds_t np = 0;
            pf[np++] = (struct pollfd){.fd = a->sfd, .events = POLLIN};
            pf[np++] = (struct pollfd){.fd = a->lfd, .events = POLLIN};
            for (size_t i = 0; i < a->npeers; i++)
                if (a->peers[i].fd >= 0) pf[np++] = (struct pollfd){.fd = a->peers[i].fd, .events = POLLIN};
            poll(pf, np, 200);
            free(pf);
            int s = take_signal(a, 0);
            if (s) {
                char sn[32];
                snprintf(err, sizeof err, "received %s while waiting for the other hosts to join: nothing started",
                         shx_signal_name(s, sn, sizeof sn));
                shx_status_set_reason(a->page, "JobStopped", err);
                broadcast(a, "TERM %s", a->me, 0, 0, NULL);
                return 128 + s;
            }
            for (;;) {
                int fd = accept4(a->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0) break;
                /* unknown until HELLO: park it in a free slot of a peer without a connection, matched by name */
                shx_buf in = {0};
                int64_t hdl = shx_now_ms() + 5000;
                char *line = NULL;
                while (!line && shx_now_ms() < hdl) {
                    struct pollfd one = {.fd = fd, .events = POLLIN};
                    poll(&one, 1, 100);
                    if (!sock_read(fd, &in)) break;
                    line = take_line(&in);
                }
                peer *match = NULL;
                if (line && !strncmp(line, "HELLO ", 6))
                    for (size_t i = 0; i < a->npeers; i++)
                        if (!strcmp(a->peers[i].host, line + 6)) match = &a->peers[i];
                if (!match) {
                    shx_warn("control port: ignoring a connection that did not introduce itself as a worker host "
                             "(%s)", line ? line : "nothing received");
                    close(fd);
                } else {
                    if (match->fd >= 0) close(match->fd);
                    match->fd = fd;
                    match->hello = 1;
                    match->in = in;
                    in = (shx_buf){0};
                    shx_info("host %s joined", match->host);
                }
                shx_buf_free(&in);
                free(line);
            }
            for (size_t i = 0; i < a->npeers; i++) {
                peer *pe = &a->peers[i];
                if (pe->fd < 0) continue;
                if (!sock_read(pe->fd, &pe->in)) {
                    close(pe->fd);
                    pe->fd = -1;
                    pe->hello = 0;
                    continue;
                }
                char *line;
                while ((line = take_line(&pe->in))) {
                    handle_peer_line(a, pe, line);
                    free(line);
                }
            }
        }
        for (size_t i = 0; i < a->npeers; i++) send_line(a->peers[i].fd, "GO");
        shx_info("every host joined: starting the processes");
        return 0;
    }
    /* worker */
    shx_info("joining the master %s on control port %d", a->l->info.master_addr, a->cfg->dist_control_port);
    while (a->mfd < 0) {
        a->mfd = try_connect(a->l->info.master_addr, a->cfg->dist_control_port, 500);
        if (a->mfd >= 0) break;
        int s = take_signal(a, 200);
        if (s) {
            char sn[32];
            snprintf(err, sizeof err, "received %s while waiting for the master host to start: nothing started",
                     shx_signal_name(s, sn, sizeof sn));
            shx_status_set_reason(a->page, "JobStopped", err);
            return 128 + s;
        }
        if (a->failed) return -1;
        if (shx_now_ms() >= deadline) {
            snprintf(err, sizeof err,
                     "the distributed job could not start: the master host %s did not accept the control connection "
                     "on port %d within %d s. Check that smhost runs there and the port is open, or raise "
                     "[distributed] start_timeout_seconds.",
                     a->l->info.master_addr, a->cfg->dist_control_port, a->cfg->dist_start_timeout_seconds);
            shx_error("%s", err);
            shx_status_set_reason(a->page, "ClientError", err);
            return SHX_EXIT_UNAVAILABLE;
        }
    }
    send_line(a->mfd, "HELLO %s", a->me);
    while (!a->go) {
        struct pollfd pf[2] = {{.fd = a->sfd, .events = POLLIN}, {.fd = a->mfd, .events = POLLIN}};
        poll(pf, 2, 200);
        int s = take_signal(a, 0);
        if (s) {
            char sn[32];
            send_line(a->mfd, "TERM %s", a->me);
            snprintf(err, sizeof err, "received %s while waiting for every host to join: nothing started",
                     shx_signal_name(s, sn, sizeof sn));
            shx_status_set_reason(a->page, "JobStopped", err);
            return 128 + s;
        }
        if (!sock_read(a->mfd, &a->min)) {
            snprintf(err, sizeof err, "the master host %s closed the control connection before the job started",
                     a->l->info.master_addr);
            shx_error("%s", err);
            shx_status_set_reason(a->page, "ClientError", err);
            return SHX_EXIT_PEER;
        }
        char *line;
        while ((line = take_line(&a->min))) {
            handle_master_line(a, line);
            free(line);
        }
        if (a->failed) return -1;
        if (a->term || a->end_received) {
            char msg[600];
            snprintf(msg, sizeof msg, "the job ended on the master host %s before it started here%s%s",
                     a->l->info.master_addr, a->fail_line ? ": " : "", a->fail_line ? a->fail_line : "");
            shx_status_set_reason(a->page, a->term ? "JobStopped" : "ClientError", msg);
            return a->term ? 128 + SIGTERM : SHX_EXIT_PEER;
        }
        if (shx_now_ms() >= deadline) {
            snprintf(err, sizeof err, "the master host %s never started the job (waited %d s for every host to join)",
                     a->l->info.master_addr, a->cfg->dist_start_timeout_seconds);
            shx_error("%s", err);
            shx_status_set_reason(a->page, "ClientError", err);
            return SHX_EXIT_UNAVAILABLE;
        }
    }
    return 0;
}

/* "<word> <host> <rank> <code> <line>" */
static int parse_fail(char *rest, char **host, int *rank, int *code, char **line) {
    char *sp1 = strchr(rest, ' ');
    if (!sp1) return -1;
    *sp1 = 0;
    *host = rest;
    char *end;
    *rank = (int)strtol(sp1 + 1, &end, 10);
    if (*end != ' ') return -1;
    *code = (int)strtol(end + 1, &end, 10);
    *line = *end == ' ' ? end + 1 : end;
    return 0;
}

static void peer_term(agent *a, const char *host) {
    if (a->term) return;
    a->term = 1;
    a->term_host = shx_xstrdup(host);
    shx_warn("SIGTERM on host %s: stopping every process of the job on every host", host);
    if (a->is_master) broadcast(a, "TERM %s", host, 0, 0, NULL);
    if (strcmp(host, a->me)) stop_local(a, a->cfg->stop_grace_seconds, "the job is being stopped");
}

/* The lines both directions carry: a failure somewhere, a stop from somewhere.  1 when `line` was one. */
static int handle_shared_line(agent *a, char *line) {
    if (!strncmp(line, "FAIL ", 5)) {
        char *host, *text;
        int rank, code;
        if (parse_fail(line + 5, &host, &rank, &code, &text) == 0)
            record_failure(a, host, rank, code, text, NULL, 0);
        return 1;
    }
    if (!strncmp(line, "TERM ", 5)) {
        peer_term(a, line + 5);
        return 1;
    }
    return 0;
}

static void handle_peer_line(agent *a, peer *pe, char *line) {
    if (handle_shared_line(a, line)) {
        /* done */
    } else if (!strncmp(line, "DONE ", 5)) {
        pe->done = 1;
    } else if (!strncmp(line, "HELLO ", 6)) {
        pe->hello = 1;
    }
}

static void handle_master_line(agent *a, char *line) {
    if (!strcmp(line, "GO")) {
        a->go = 1;
    } else if (handle_shared_line(a, line)) {
        /* done */
    } else if (!strncmp(line, "END ", 4)) {
        a->end_received = 1;
        a->end_code = atoi(line + 4);
    }
}

/* Wait until every other distribution host accepts on `port` (sshd for mpirun).  0, or an exit code. */
static int wait_ports(agent *a, int port) {
    int64_t deadline = shx_now_ms() + (int64_t)a->cfg->dist_start_timeout_seconds * 1000;
    for (size_t i = 0; i < a->l->nodes.n; i++) {
        const char *h = a->l->nodes.v[i];
        if (!strcmp(h, a->me)) continue;
        shx_info("waiting for %s:%d", h, port);
        for (;;) {
            int fd = try_connect(h, port, 500);
            if (fd >= 0) {
                close(fd);
                break;
            }
            char sn[32], err[600];
            int s = take_signal(a, 200);
            if (s) {
                snprintf(err, sizeof err, "received %s while waiting for %s:%d: nothing started",
                         shx_signal_name(s, sn, sizeof sn), h, port);
                shx_status_set_reason(a->page, "JobStopped", err);
                broadcast(a, "TERM %s", a->me, 0, 0, NULL);
                return 128 + s;
            }
            if (shx_now_ms() >= deadline) {
                snprintf(err, sizeof err,
                         "host %s never accepted connections on port %d within %d s (the '%s' launcher needs it: is "
                         "sshd running there?). Raise [distributed] start_timeout_seconds or check that host.",
                         h, port, a->cfg->dist_start_timeout_seconds, a->l->launcher);
                shx_error("%s", err);
                shx_status_set_reason(a->page, "ClientError", err);
                broadcast(a, "FAIL %s %d %d %s", h, -1, SHX_EXIT_UNAVAILABLE, err);
                return SHX_EXIT_UNAVAILABLE;
            }
        }
    }
    return 0;
}

/* ---- the run ---------------------------------------------------------------------------------------------------- */
static void stop_services(agent *a) {
    int any = 0;
    for (size_t i = 0; i < a->n; i++) {
        rproc *r = &a->p[i];
        if (!(r->lp->kind & SMH_PROC_SERVICE) || !r->started || r->exited) continue;
        r->expected = 1;
        kill(r->pid, SIGTERM);
        any = 1;
    }
    int64_t dl = shx_now_ms() + SERVICE_STOP_MS;
    while (any && shx_now_ms() < dl) {
        take_signal(a, 50);
        reap_children(a);
        any = 0;
        for (size_t i = 0; i < a->n; i++)
            if ((a->p[i].lp->kind & SMH_PROC_SERVICE) && a->p[i].started && !a->p[i].exited) any = 1;
    }
    for (size_t i = 0; i < a->n; i++)
        if ((a->p[i].lp->kind & SMH_PROC_SERVICE) && a->p[i].started && !a->p[i].exited) kill(a->p[i].pid, SIGKILL);
    for (size_t i = 0; i < a->n; i++) {
        rproc *r = &a->p[i];
        if (!(r->lp->kind & SMH_PROC_SERVICE)) continue;
        if (r->so.fd >= 0) close(r->so.fd), r->so.fd = -1;
        if (r->se.fd >= 0) close(r->se.fd), r->se.fd = -1;
    }
}

static void set_reason_from_failure(agent *a) {
    char buf[4096];
    if (!strcmp(a->fail_host, a->me)) { /* this host's process (an MPI rank under orted counts too) */
        if (a->fail_rank >= 0)
            snprintf(buf, sizeof buf, "host %s, rank %d failed (exit code %d): %s", a->fail_host, a->fail_rank,
                     a->fail_code, a->fail_msg);
        else
            snprintf(buf, sizeof buf, "host %s failed (exit code %d): %s", a->fail_host, a->fail_code, a->fail_msg);
        shx_status_set_reason(a->page, "ExecuteUserScriptError", buf);
    } else {
        if (a->fail_rank >= 0)
            snprintf(buf, sizeof buf, "another host failed first: host %s, rank %d (exit code %d): %s", a->fail_host,
                     a->fail_rank, a->fail_code, a->fail_line);
        else
            snprintf(buf, sizeof buf, "another host failed first: host %s (exit code %d): %s", a->fail_host,
                     a->fail_code, a->fail_line);
        shx_status_set_reason(a->page, "ExecuteUserScriptError", buf);
    }
}

static int outcome(agent *a) {
    int worst = 0;
    for (size_t i = 0; i < a->n; i++)
        if (!(a->p[i].lp->kind & SMH_PROC_SERVICE) && a->p[i].code && !worst) worst = a->p[i].code;
    if (a->failed) {
        set_reason_from_failure(a);
        if (!strcmp(a->fail_host, a->me)) return a->fail_code ? a->fail_code : 1;
        return SHX_EXIT_PEER;
    }
    if (a->term) {
        if (a->self_term) return worst; /* the supervisor reports its own stop */
        char buf[600];
        snprintf(buf, sizeof buf,
                 "Stopped by SIGTERM on host %s (StopTrainingJob, spot interruption or MaxRuntime): every host "
                 "stopped its processes",
                 a->term_host);
        shx_status_set_reason(a->page, "JobStopped", buf);
        return worst ? worst : 128 + SIGTERM;
    }
    if (a->master_lost) {
        char buf[600];
        snprintf(buf, sizeof buf,
                 "the master host %s closed the control connection before the job ended (its smhost died or the "
                 "network failed): the job's outcome is unknown",
                 a->l->info.master_addr);
        shx_status_set_reason(a->page, "ClientError", buf);
        return SHX_EXIT_PEER;
    }
    if (a->end_received && a->end_code) {
        char buf[600];
        snprintf(buf, sizeof buf, "the master host %s reported that the job failed (exit code %d)",
                 a->l->info.master_addr, a->end_code);
        shx_status_set_reason(a->page, "ExecuteUserScriptError", buf);
        return SHX_EXIT_PEER;
    }
    return worst;
}

int shx_dist_run(shx_launch *l, shx_job *job, const shx_config *cfg, shx_status_page *page) {
    agent a = {.l = l, .job = job, .cfg = cfg, .page = page, .lfd = -1, .mfd = -1, .sfd = -1, .fail_rank = -1};
    a.me = job->current_host;
    a.multi = l->nodes.n > 1;
    a.is_master = l->info.node_rank == 0;
    a.oom_before = shx_oom_kill_count();
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD, SIGPIPE, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    a.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (a.sfd < 0) {
        shx_status_set_reason(page, "InternalError", "cannot create a signalfd for the launch");
        return SHX_EXIT_OSERR;
    }
    a.n = l->n;
    a.p = shx_xcalloc(a.n ? a.n : 1, sizeof *a.p);
    for (size_t i = 0; i < a.n; i++) {
        rproc *r = &a.p[i];
        r->lp = &l->procs[i];
        r->so.fd = r->se.fd = -1;
        if (r->lp->rank >= 0 && (r->lp->kind & 0xffu) == SMH_PROC_PROGRAM)
            snprintf(r->prefix, sizeof r->prefix, "[%s rank %d] ", a.me, r->lp->rank);
        else {
            const char *b = r->lp->argv.n ? strrchr(r->lp->argv.v[0], '/') : NULL;
            b = b ? b + 1 : r->lp->argv.n ? r->lp->argv.v[0] : "program";
            snprintf(r->prefix, sizeof r->prefix, "[%s %s] ", a.me, b);
        }
    }
    if (a.multi && a.is_master) {
        for (size_t i = 1; i < l->nodes.n; i++) {
            a.peers = shx_xrealloc(a.peers, (a.npeers + 1) * sizeof *a.peers);
            a.peers[a.npeers++] = (peer){.host = l->nodes.v[i], .fd = -1};
        }
    }
    int rc = 0;
    /* 1. services (sshd) */
    for (size_t i = 0; i < a.n && !rc; i++) {
        if (!(l->procs[i].kind & SMH_PROC_SERVICE)) continue;
        if (start_proc(&a, i) < 0) {
            char err[600];
            snprintf(err, sizeof err, "cannot start %s: %s", l->procs[i].argv.v[0], strerror(errno));
            shx_status_set_reason(page, "InternalError", err);
            rc = SHX_EXIT_OSERR;
        }
    }
    /* 2. the barrier, 3. the port wait */
    if (!rc && a.multi) rc = barrier(&a);
    if (!rc && l->wait_port && a.is_master) rc = wait_ports(&a, l->wait_port);
    if (rc < 0) rc = outcome(&a); /* a failure (a service died, another host failed) before the start */
    if (rc) {
        stop_services(&a);
        goto done;
    }
    /* 4. the ranks */
    shx_info("starting %zu process(es) on %s (launcher '%s', host %d of %d)", a.n, a.me, l->launcher,
             l->info.node_rank, l->info.num_nodes);
    page->phase = SHX_PHASE_PROGRAM;
    for (size_t i = 0; i < a.n; i++) {
        if (l->procs[i].kind & SMH_PROC_SERVICE) continue;
        if (a.failed || a.term) break;
        if (start_proc(&a, i) < 0) {
            char err[600];
            snprintf(err, sizeof err, "cannot start process %zu: %s", i, strerror(errno));
            record_failure(&a, a.me, l->procs[i].rank, SHX_EXIT_OSERR, err, err, 1);
        }
    }
    /* 5. supervise */
    int64_t outputs_deadline = 0;
    for (;;) {
        reap_children(&a);
        int running = ranks_running(&a);
        if (!running && outputs_open(&a)) {
            /* A rank's leftover child (a data loader, `cmd &`) may hold its pipes: wait a little, then stop
             * reading them; the supervisor ends such leftovers when the job ends. */
            if (!outputs_deadline) outputs_deadline = shx_now_ms() + 2000;
            else if (shx_now_ms() >= outputs_deadline)
                for (size_t i = 0; i < a.n; i++) {
                    if (a.p[i].lp->kind & SMH_PROC_SERVICE) continue;
                    if (a.p[i].so.fd >= 0) pump(&a, &a.p[i], &a.p[i].so);
                    if (a.p[i].se.fd >= 0) pump(&a, &a.p[i], &a.p[i].se);
                    if (a.p[i].so.fd >= 0) close(a.p[i].so.fd), a.p[i].so.fd = -1;
                    if (a.p[i].se.fd >= 0) close(a.p[i].se.fd), a.p[i].se.fd = -1;
                }
        }
        if (!running && !outputs_open(&a)) {
            if (!a.multi) break;
            if (a.is_master) {
                int all = 1;
                for (size_t i = 0; i < a.npeers; i++)
                    if (!a.peers[i].done && !a.peers[i].gone) all = 0;
                if (a.failed || a.term || all) break;
            } else {
                if (!a.failed && !a.term && !a.sent_done) {
                    send_line(a.mfd, "DONE %s", a.me);
                    a.sent_done = 1;
                }
                if (a.failed || a.term || a.end_received || a.master_lost) break;
            }
        }
        int64_t now = shx_now_ms();
        if (a.kill_at && now >= a.kill_at) {
            int any = 0;
            for (size_t i = 0; i < a.n; i++)
                if (a.p[i].started && !a.p[i].exited && !(a.p[i].lp->kind & SMH_PROC_SERVICE)) {
                    kill(a.p[i].pid, SIGKILL);
                    any = 1;
                }
            if (any) shx_warn("processes still running after the grace period: sent SIGKILL");
            a.kill_at = 0;
        }
        /* the poll set: signals, every rank's two pipes, every worker's link (master) or the master's (worker) */
        size_t cap = 2 + 2 * a.n + a.npeers;
        struct pollfd *pf = shx_xcalloc(cap, sizeof *pf);
        void **who = shx_xcalloc(cap, sizeof *who);
        int *what = shx_xcalloc(cap, sizeof *what);
        nfds_t np = 0;
#define ADD_FD(f, w, k) (pf[np] = (struct pollfd){.fd = (f), .events = POLLIN}, who[np] = (w), what[np++] = (k))
        ADD_FD(a.sfd, NULL, 0);
        for (size_t i = 0; i < a.n; i++) {
            if (a.p[i].so.fd >= 0) ADD_FD(a.p[i].so.fd, &a.p[i], 1);
            if (a.p[i].se.fd >= 0) ADD_FD(a.p[i].se.fd, &a.p[i], 2);
        }
        for (size_t i = 0; i < a.npeers; i++)
            if (a.peers[i].fd >= 0) ADD_FD(a.peers[i].fd, &a.peers[i], 3);
        if (a.mfd >= 0) ADD_FD(a.mfd, NULL, 4);
#undef ADD_FD
        int timeout = outputs_deadline ? 100 : 500;
        if (a.kill_at) {
            int64_t d = a.kill_at - now;
            if (d < timeout) timeout = d > 0 ? (int)d : 0;
        }
        if (poll(pf, np, timeout) < 0 && errno != EINTR) {
            free(pf), free(who), free(what);
            break;
        }
        for (nfds_t k = 0; k < np; k++) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (what[k] == 0) {
                struct signalfd_siginfo si;
                while (read(a.sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    int s = (int)si.ssi_signo;
                    if (shx_is_stop_signal(s)) {
                        /* The supervisor forwarded it to our group: the ranks have it too and its grace period
                         * runs.  Tell the other hosts. */
                        if (!a.term) {
                            a.self_term = 1;
                            if (a.multi && !a.is_master) send_line(a.mfd, "TERM %s", a.me);
                            peer_term(&a, a.me);
                            for (size_t i = 0; i < a.n; i++) a.p[i].expected = 1;
                        }
                    }
                }
            } else if (what[k] == 1 || what[k] == 2) {
                rproc *r = who[k];
                stream *s = what[k] == 1 ? &r->so : &r->se;
                if (s->fd >= 0) pump(&a, r, s);
            } else if (what[k] == 3) {
                peer *pe = who[k];
                if (!sock_read(pe->fd, &pe->in)) {
                    close(pe->fd);
                    pe->fd = -1;
                    char *line;
                    while ((line = take_line(&pe->in))) handle_peer_line(&a, pe, line), free(line);
                    if (!pe->done && !a.failed && !a.term) {
                        char msg[300];
                        snprintf(msg, sizeof msg, "host %s lost its control connection to the master (its smhost "
                                                  "ended or the network failed)", pe->host);
                        record_failure(&a, pe->host, -1, SHX_EXIT_PEER, msg, msg, 0);
                    }
                    pe->gone = 1;
                    continue;
                }
                char *line;
                while ((line = take_line(&pe->in))) handle_peer_line(&a, pe, line), free(line);
            } else if (what[k] == 4) {
                int alive = sock_read(a.mfd, &a.min);
                char *line;
                while ((line = take_line(&a.min))) handle_master_line(&a, line), free(line);
                if (!alive) {
                    close(a.mfd);
                    a.mfd = -1;
                    if (!a.end_received && !a.failed && !a.term) {
                        a.master_lost = 1;
                        if (ranks_running(&a)) {
                            char msg[300];
                            snprintf(msg, sizeof msg, "the master host %s closed the control connection (its smhost "
                                                      "ended or the network failed)", l->info.master_addr);
                            record_failure(&a, l->info.master_addr, -1, SHX_EXIT_PEER, msg, msg, 0);
                        }
                    }
                }
            }
        }
        free(pf), free(who), free(what);
    }
    rc = outcome(&a);
    if (a.multi && a.is_master) {
        int code = a.failed ? (a.fail_code ? a.fail_code : 1) : rc;
        for (size_t i = 0; i < a.npeers; i++)
            if (a.peers[i].fd >= 0) send_line(a.peers[i].fd, "END %d", code);
    }
    stop_services(&a);
done:
    for (size_t i = 0; i < a.npeers; i++)
        if (a.peers[i].fd >= 0) close(a.peers[i].fd);
    if (a.mfd >= 0) close(a.mfd);
    if (a.lfd >= 0) close(a.lfd);
    for (size_t i = 0; i < a.n; i++) {
        shx_buf_free(&a.p[i].tail);
        shx_buf_free(&a.p[i].so.part);
        shx_buf_free(&a.p[i].se.part);
    }
    free(a.p);
    free(a.peers);
    shx_buf_free(&a.min);
    free(a.fail_host);
    free(a.fail_line);
    free(a.fail_msg);
    free(a.term_host);
    close(a.sfd);
    return rc;
}
