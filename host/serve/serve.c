/* smhost serve: the front process (see serve.h and docs/serving.md).
 *
 * One thread runs one event loop (serve_loop): libmicrohttpd in external epoll mode, the workers' sockets, the
 * zygote's control socket and the signals (the supervisor's signalfd).  /ping, /execution-parameters, 404 and 413 are answered
 * in the loop without touching a worker, so readiness answers stay fast while every worker is busy.  A request
 * for a worker is queued and its connection suspended; dispatch() hands it to an idle worker (a socket to a
 * process forked by the zygote) as an INVOKE frame -- or, when every worker is busy, pipelines up to
 * SMHOST_SERVE_PIPELINE requests per worker -- and the REPLY resumes the connection.  Frames to and from the
 * workers are batched per loop round.  A worker that overruns the request's deadline is killed and replaced
 * (504), one that dies answers 500 and is replaced; requests pipelined behind either were never started and go
 * back to the head of the queue.
 *
 * PID-1 duties are the supervisor's (host/supervisor/supervisor.h), as for `smhost train`: the same signals are
 * blocked from main()'s first line and read here from its signalfd, smhost is a subreaper when not PID 1, every
 * child and inherited orphan is reaped in the loop as its SIGCHLD arrives, and on exit whatever a handler left
 * running (a daemon it started) is terminated, then killed, and reaped before serve returns. */
#include "serve/serve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/config.h"
#include "core/exitcodes.h"
#include "core/log.h"
#include "serve/front.h"
#include "serve/worker.h"
#include "supervisor/oom.h"
#include "supervisor/supervisor.h"
#include "serve/pyzygote.h"
#include "serve/inline.h"
#include "core/util.h"

front g;

/* The zygote's end, once reaped (every child is reaped by reap_children, the zygote included). */
static pid_t g_zygote;
static int g_zygote_reaped, g_zygote_status;
/* When the stop signal's grace period ends (0: no stop signal yet). */
static int64_t g_grace_deadline;

static void on_child_exit(pid_t pid, int status, void *arg) {
    (void)arg;
    if (pid == g_zygote) {
        g_zygote_reaped = 1;
        g_zygote_status = status;
    }
    /* anything else: an orphan we inherited (as PID 1 or subreaper), or a worker after the zygote died */
}

static void reap_children(void) {
    shx_sup_reap(on_child_exit, NULL);
}

/* Wait for the zygote to end (it is on its way out) and return its wait status. */
static int wait_zygote(void) {
    while (!g_zygote_reaped) {
        int st;
        pid_t p = waitpid(g_zygote, &st, 0);
        if (p == g_zygote) on_child_exit(p, st, NULL);
        else if (p < 0 && errno != EINTR) break;
    }
    return g_zygote_status;
}

/* ---- the event loop: HTTP, workers, the zygote, signals, shutdown ------------------------------------------- */
static int epoll_add(int fd, uint64_t tag) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev);
}

static int spawn(int ctl, int i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        shx_error("socketpair for worker %d: %s", i, strerror(errno));
        return -1;
    }
    slot *w = &g.slots[i];
    w->gen++;
    w->fd = sv[0];
    w->pid = 0;
    w->state = SLOT_STARTING;
    w->served = 0;
    w->spawned_ms = shx_now_ms();
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    int rc = epoll_add(sv[0], TAG_SLOT + (uint64_t)i);
    if (rc == 0) rc = shx_send_fd(ctl, sv[1], i, w->gen);
    close(sv[1]);
    return rc;
}

static const char *describe_status(int st, char *buf, size_t len) {
    if (WIFSIGNALED(st)) snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else snprintf(buf, len, "exited with code %d", WEXITSTATUS(st));
    return buf;
}

/* A frame from the zygote.  Returns 0, -1 when the zygote is gone, or an exit code when serving cannot go on. */
static int handle_zygote_frame(int ctl, int *zygote_ready) {
    shx_frame f;
    int rc = shx_frame_recv(ctl, &f, shx_now_ms() + 5000);
    if (rc) return -1;
    int ret = 0;
    char why[128];
    switch (f.type) {
    case SHX_FR_READY:
        *zygote_ready = 1;
        shx_info("handler loaded%s; starting %d workers", f.a ? " with the model" : "", g.cfg.workers);
        break;
    case SHX_FR_FAILED:
        shx_error("%s", f.s[0]);
        ret = f.a > 0 ? f.a : 1;
        break;
    case SHX_FR_SPAWNED:
        if (f.a >= 0 && f.a < g.cfg.workers && g.slots[f.a].gen == f.b && g.slots[f.a].state != SLOT_DEAD)
            g.slots[f.a].pid = f.c;
        else
            kill(f.c, SIGKILL); /* its slot was given up before we learned its pid */
        shx_debug("worker %d started (slot %d)", (int)f.c, (int)f.a);
        break;
    case SHX_FR_DIED:
        /* Usually its socket's EOF told us already; not when a child of the worker still holds the socket. */
        for (int i = 0; i < g.cfg.workers; i++)
            if (g.slots[i].pid == f.c && g.slots[i].state != SLOT_DEAD) {
                /* Replies it sent before dying come first: only the request it was running gets the 500. */
                while (g.slots[i].fd >= 0 && slot_readable(i)) continue;
                if (g.slots[i].pid == f.c && g.slots[i].state != SLOT_DEAD)
                    slot_died(i, describe_status(f.a, why, sizeof why));
            }
        if (!(WIFSIGNALED(f.a) && WTERMSIG(f.a) == SIGKILL))
            shx_debug("worker %d %s", (int)f.c, describe_status(f.a, why, sizeof why));
        break;
    default: break;
    }
    shx_frame_free(&f);
    return ret;
}

/* Something from the zygote.  Returns 0, or serve's exit code when the zygote failed or is gone. */
static int zygote_event(int ctl, int *zygote_ready) {
    int rc = handle_zygote_frame(ctl, zygote_ready);
    if (rc >= 0) return rc;
    int st = wait_zygote();
    char why[128];
    describe_status(st, why, sizeof why);
    shx_error("the serving zygote (which loads the handler%s) %s: %s", g.cfg.preload ? " and model" : "", why,
              *zygote_ready ? "no workers can be replaced, stopping" : "the model could not be loaded");
    return WIFSIGNALED(st) || !*zygote_ready ? SHX_EXIT_SOFTWARE : 1;
}

static void fail_queue(int status, const char *msg) {
    req_ctx *r;
    while ((r = list_pop(&g.q))) {
        r->queued = 0;
        job_error(r, status, msg);
    }
}

static int serve_loop(int ctl, int sfd) {
    int zygote_ready = 0, exit_code = 0;
    int64_t close_deadline = 0;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(g.d, MHD_DAEMON_INFO_EPOLL_FD);
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0 || !di || epoll_add(di->epoll_fd, TAG_MHD) || epoll_add(sfd, TAG_SIGNAL) || epoll_add(ctl, TAG_CTL)) {
        shx_error("serve: cannot set up the event loop: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    int64_t next_deadline = INT64_MAX, last_reap = 0;
    int child_ended = 1;
    for (;;) {
        int64_t now = shx_now_ms();
        int timeout = 100;
        MHD_UNSIGNED_LONG_LONG mt;
        if (MHD_get_timeout(g.d, &mt) == MHD_YES && mt < (MHD_UNSIGNED_LONG_LONG)timeout) timeout = (int)mt;
        if (next_deadline != INT64_MAX && next_deadline - now < timeout)
            timeout = next_deadline <= now ? 0 : (int)(next_deadline - now);
        struct epoll_event ev[64];
        int n = epoll_wait(g.ep, ev, 64, timeout);
        if (n < 0 && errno != EINTR) {
            shx_error("epoll_wait: %s", strerror(errno));
            return SHX_EXIT_OSERR;
        }
        /* New HTTP requests before this round's worker replies: /ping (and anything else the loop answers itself)
         * then waits behind reading the other requests that arrived, not behind sending every answer that the
         * replies complete, which is most of a busy round's time. */
        int http = 0, replies = 0;
        for (int k = 0; k < n; k++) {
            http |= ev[k].data.u64 == TAG_MHD;
            replies |= ev[k].data.u64 >= TAG_SLOT && ev[k].data.u64 < TAG_SLOT + (uint64_t)g.cfg.workers;
        }
        if (http && replies) MHD_run(g.d);
        for (int k = 0; k < n; k++) {
            uint64_t tag = ev[k].data.u64;
            if (tag == TAG_SIGNAL) {
                /* SIGCHLD only wakes us: the reaping below takes every child that ended. */
                struct signalfd_siginfo si;
                while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                    int sig = (int)si.ssi_signo;
                    if (sig == SIGCHLD) child_ended = 1;
                    if (!shx_is_stop_signal(sig) || g.stopping) continue;
                    g.stopping = 1;
                    g_grace_deadline = shx_now_ms() + (int64_t)g.cfg.grace_s * 1000;
                    MHD_socket ls = MHD_quiesce_daemon(g.d);
                    if (ls != MHD_INVALID_SOCKET) close(ls);
                    shx_info("%s: no new connections; finishing %d request(s) in flight (grace %d s)",
                             strsignal(sig), g.in_flight, g.cfg.grace_s);
                }
            } else if (tag == TAG_CTL) {
                int rc = zygote_event(ctl, &zygote_ready);
                if (rc) return rc;
            } else if (tag & TAG_LINGER) {
                linger_readable((int)(tag & 0xffffffffu));
            } else if (tag >= TAG_SLOT && tag < TAG_SLOT + (uint64_t)g.cfg.workers) {
                int i = (int)(tag - TAG_SLOT);
                if (g.slots[i].fd < 0) continue;
                if (ev[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) slot_readable(i);
                if (g.slots[i].fd >= 0 && (ev[k].events & EPOLLOUT)) slot_flush(i);
            }
        }
        now = shx_now_ms();
        next_deadline = sweep(now);
        int64_t guard_next = guard_sweep(now);
        if (guard_next < next_deadline) next_deadline = guard_next;
        MHD_run(g.d); /* new requests are queued, answered ones sent */
        dispatch();
        for (int i = 0; i < g.cfg.workers; i++)
            if (g.slots[i].fd >= 0 && g.slots[i].out.len > g.slots[i].out_off) slot_flush(i);
        for (int i = 0; i < g.cfg.workers && next_deadline != 0; i++)
            if (g.slots[i].jobs.head && g.slots[i].jobs.head->deadline < next_deadline)
                next_deadline = g.slots[i].jobs.head->deadline;
        /* Reap every child that ended: the zygote, and the orphans we inherit as PID 1 or subreaper.  Only after a
         * SIGCHLD (signalfd), not a wait4() per round under load; once a second in any case. */
        if (child_ended || now - last_reap >= 1000) {
            child_ended = 0;
            last_reap = now;
            reap_children();
        }
        if (g_zygote_reaped) {
            /* Reaped before its socket was read: its last frames (a failure's reason) and EOF are still there. */
            int rc;
            while (!(rc = zygote_event(ctl, &zygote_ready))) continue;
            return rc;
        }
        if (!g.stopping && zygote_ready) {
            for (int i = 0; i < g.cfg.workers; i++)
                if (g.slots[i].state == SLOT_DEAD && now - g.slots[i].spawned_ms >= 1000 && spawn(ctl, i)) {
                    shx_error("cannot pass a worker socket to the zygote: %s", strerror(errno));
                    return SHX_EXIT_SOFTWARE;
                }
        }
        if (g.stopping) {
            if (g.in_flight == 0) break;
            if (!g.closing && now >= g_grace_deadline) {
                shx_warn("grace period over with %d request(s) still running: stopping their workers", g.in_flight);
                g.closing = 1;
                close_deadline = now + 1000; /* time for their 5xx answers to go out */
                char msg[256];
                for (int i = 0; i < g.cfg.workers; i++)
                    if (g.slots[i].state != SLOT_DEAD) {
                        snprintf(msg, sizeof msg, "smhost is shutting down and its grace period "
                                 "(SMHOST_SERVE_GRACE_SECONDS=%d) is over: worker %d was stopped", g.cfg.grace_s,
                                 (int)g.slots[i].pid);
                        slot_down(i, 500, msg);
                    }
                fail_queue(503, "smhost is shutting down");
                next_deadline = 0;
            } else if (g.closing && now >= close_deadline) {
                break;
            }
        }
    }
    return exit_code;
}

int shx_serve_main(const shx_config *config, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: smhost serve\nServes the model in $SAGEMAKER_BASE_DIR/model (default /opt/ml) over HTTP; "
                   "see docs/serving.md.\n");
            return 0;
        }
        fprintf(stderr, "smhost serve: unexpected argument %s (serve takes none; configure it with SAGEMAKER_* "
                        "variables)\n", argv[i]);
        return SHX_EXIT_USAGE;
    }
    const char *lvl = getenv("SAGEMAKER_CONTAINER_LOG_LEVEL");
    if (lvl && shx_log_parse_level(lvl) >= 0) shx_log_set_level(shx_log_parse_level(lvl));
    char err[2048] = "";
    if (shx_serve_settings_load(&g.cfg, config, err, sizeof err)) {
        shx_error("serve: %s", err);
        return SHX_EXIT_CONFIG;
    }
    setenv("SMHOST_SERVE_CODE_DIR", g.cfg.code_dir, 1); /* pyhandler's fallback for models without code/ */
    int irc = shx_inline_setup(&g.cfg, config, err, sizeof err); /* a handler that runs in this process */
    if (irc) {
        shx_error("serve: %s", err);
        return irc;
    }
    for (int i = 0; i < MAX_WORKERS; i++) g.slots[i].fd = -1;
    g.oom_kills = shx_oom_kill_count(); /* a worker's death is blamed on the OOM killer when this grows */

    /* The supervisor's signals (blocked since main()'s first line), taken synchronously by the loop. */
    int sfd = shx_sup_signalfd();
    int sv[2];
    if (sfd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        shx_error("serve: cannot set up: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    /* The zygote is forked while this process still has one thread. */
    shx_serve_spec spec = {.cfg = config,
                           .handler_name = g.cfg.handler_name,
                           .handler_path = g.cfg.handler_path,
                           .model_dir = g.cfg.model_dir,
                           .code_dir = g.cfg.code_dir,
                           .python = g.cfg.python,
                           .preload = g.cfg.preload,
                           .multi_model = g.cfg.multi_model};
    fflush(NULL);
    if (shx_inline_active()) { /* no zygote, no workers: the handler answers on the front's threads */
        close(sv[0]);
        close(sv[1]);
        return shx_inline_serve(sfd);
    }
    pid_t zygote = fork();
    if (zygote < 0) {
        shx_error("serve: fork: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    if (zygote == 0) {
        /* Its own process group: a terminal's ^C (or a signal to smhost's group) reaches the front, which
         * finishes the requests in flight, and not the workers running them. */
        setpgid(0, 0);
        close(sv[0]);
        close(sfd);
        shx_zygote_exec_python(&spec, sv[1]); /* returns only when it cannot */
        shx_zygote_main(&spec, sv[1]);
    }
    setpgid(zygote, zygote); /* also here, so that no group signal can miss it */
    g_zygote = zygote;
    close(sv[1]);
    int ctl = sv[0];

    struct MHD_Daemon *d = front_daemon(0, 1);
    if (!d) {
        shx_error("serve: cannot listen on port %d (%s): stop what uses it, or set SAGEMAKER_BIND_TO_PORT to a free "
                  "port", g.cfg.port, errno == EADDRINUSE ? "another process is listening on it" : strerror(errno));
        kill(zygote, SIGKILL);
        waitpid(zygote, NULL, 0);
        return SHX_EXIT_OSERR;
    }
    shx_info("serving on port %d: %s, %d worker(s), timeout %d s, max payload %d MiB%s%s", g.cfg.port,
             g.cfg.handler_desc, g.cfg.workers, g.cfg.timeout_s, g.cfg.max_payload_mb,
             g.cfg.multi_model ? ", multi-model" : "", g.cfg.preload ? "" : ", model loaded per worker");

    g.d = d;
    int code = serve_loop(ctl, sfd);

    /* Stop: workers still busy are killed; requests still waiting for an answer get one before MHD stops. */
    g.closing = 1;
    g.stopping = 1;
    pid_t workers[MAX_WORKERS];
    int nworkers = 0;
    for (int i = 0; i < g.cfg.workers; i++) {
        if (g.slots[i].pid > 0) workers[nworkers++] = g.slots[i].pid;
        if (g.slots[i].state != SLOT_DEAD) slot_down(i, 503, "smhost is shutting down");
    }
    fail_queue(503, "smhost is shutting down");
    MHD_run(d);
    MHD_stop_daemon(d);
    close(ctl); /* the zygote exits when it sees this */
    int64_t until = shx_now_ms() + 5000;
    for (;;) {
        reap_children();
        if (g_zygote_reaped) break;
        if (shx_now_ms() >= until) {
            kill(zygote, SIGKILL);
            wait_zygote();
            break;
        }
        usleep(10000);
    }
    /* The workers were killed above and die with the zygote in any case; once they are gone, anything still
     * running below us was started by the handler and outlived it: terminate it within the grace. */
    until = shx_now_ms() + 2000;
    for (int k = 0; k < nworkers && shx_now_ms() < until;) {
        reap_children();
        if (kill(workers[k], 0) < 0 && errno == ESRCH) k++;
        else usleep(2000);
    }
    int leftover_ms = 2000;
    if (g_grace_deadline) {
        int64_t left = g_grace_deadline - shx_now_ms();
        if (left < leftover_ms) leftover_ms = left > 0 ? (int)left : 0;
    }
    shx_sup_end_leftovers(leftover_ms, "the handler");
    close(sfd);
    if (code == 0) shx_info("stopped");
    return code;
}
