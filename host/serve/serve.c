/* smhost serve: the front process (see serve.h and docs/serving.md).
 *
 * One thread runs one event loop (serve_loop): libmicrohttpd in external epoll mode, the workers' sockets, the
 * zygote's control socket and SIGTERM/SIGINT (signalfd).  /ping, /execution-parameters, 404 and 413 are answered
 * in the loop without touching a worker, so readiness answers stay fast while every worker is busy.  A request
 * for a worker is queued and its connection suspended; dispatch() hands it to an idle worker (a socket to a
 * process forked by the zygote) as an INVOKE frame -- or, when every worker is busy, pipelines up to
 * SMHOST_SERVE_PIPELINE requests per worker -- and the REPLY resumes the connection.  Frames to and from the
 * workers are batched per loop round.  A worker that overruns the request's deadline is killed and replaced
 * (504), one that dies answers 500 and is replaced; requests pipelined behind either were never started and go
 * back to the head of the queue. */
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
#include "serve/pyzygote.h"
#include "serve/inline.h"
#include "core/util.h"

front g;

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

static void fail_queue(int status, const char *msg) {
    req_ctx *r;
    while ((r = list_pop(&g.q))) {
        r->queued = 0;
        job_error(r, status, msg);
    }
}

static int serve_loop(int ctl, pid_t zygote, int sfd) {
    int zygote_ready = 0, exit_code = 0;
    int64_t grace_deadline = 0, close_deadline = 0;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(g.d, MHD_DAEMON_INFO_EPOLL_FD);
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0 || !di || epoll_add(di->epoll_fd, TAG_MHD) || epoll_add(sfd, TAG_SIGNAL) || epoll_add(ctl, TAG_CTL)) {
        shx_error("serve: cannot set up the event loop: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    int64_t next_deadline = INT64_MAX;
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
        for (int k = 0; k < n; k++) {
            uint64_t tag = ev[k].data.u64;
            if (tag == TAG_SIGNAL) {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof si) == sizeof si && !g.stopping) {
                    g.stopping = 1;
                    grace_deadline = shx_now_ms() + (int64_t)g.cfg.grace_s * 1000;
                    MHD_socket ls = MHD_quiesce_daemon(g.d);
                    if (ls != MHD_INVALID_SOCKET) close(ls);
                    shx_info("%s: no new connections; finishing %d request(s) in flight (grace %d s)",
                             strsignal((int)si.ssi_signo), g.in_flight, g.cfg.grace_s);
                }
            } else if (tag == TAG_CTL) {
                int rc = handle_zygote_frame(ctl, &zygote_ready);
                if (rc < 0) {
                    int st = 0;
                    char why[128] = "exited";
                    if (waitpid(zygote, &st, 0) == zygote) describe_status(st, why, sizeof why);
                    shx_error("the serving zygote (which loads the handler%s) %s: %s",
                              g.cfg.preload ? " and model" : "", why,
                              zygote_ready ? "no workers can be replaced, stopping" : "the model could not be loaded");
                    return WIFSIGNALED(st) || !zygote_ready ? SHX_EXIT_SOFTWARE : 1;
                }
                if (rc > 0) return rc;
            } else if (tag >= TAG_SLOT && tag < TAG_SLOT + (uint64_t)g.cfg.workers) {
                int i = (int)(tag - TAG_SLOT);
                if (g.slots[i].fd < 0) continue;
                if (ev[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) slot_readable(i);
                if (g.slots[i].fd >= 0 && (ev[k].events & EPOLLOUT)) slot_flush(i);
            }
        }
        now = shx_now_ms();
        next_deadline = sweep(now);
        MHD_run(g.d); /* new requests are queued, answered ones sent */
        dispatch();
        for (int i = 0; i < g.cfg.workers; i++)
            if (g.slots[i].fd >= 0 && g.slots[i].out.len > g.slots[i].out_off) slot_flush(i);
        for (int i = 0; i < g.cfg.workers && next_deadline != 0; i++)
            if (g.slots[i].jobs.head && g.slots[i].jobs.head->deadline < next_deadline)
                next_deadline = g.slots[i].jobs.head->deadline;
        /* reap anything else that was left to us (PID 1, or orphans of the zygote) */
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0)
            if (p == zygote) {
                shx_error("the serving zygote exited unexpectedly");
                return SHX_EXIT_SOFTWARE;
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
            if (!g.closing && now >= grace_deadline) {
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

    /* Signals are taken synchronously by the main thread; every thread started later inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGTERM);
    sigaddset(&stopset, SIGINT);
    int sfd = signalfd(-1, &stopset, SFD_CLOEXEC);
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
        close(sv[0]);
        close(sfd);
        shx_zygote_exec_python(&spec, sv[1]); /* returns only when it cannot */
        shx_zygote_main(&spec, sv[1]);
    }
    close(sv[1]);
    int ctl = sv[0];

    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_USE_ERROR_LOG, (uint16_t)g.cfg.port, NULL,
        NULL, on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        MHD_OPTION_END);
    if (!d) {
        shx_error("serve: cannot listen on port %d (in use, or not allowed): set SAGEMAKER_BIND_TO_PORT to a free "
                  "port", g.cfg.port);
        kill(zygote, SIGKILL);
        waitpid(zygote, NULL, 0);
        return SHX_EXIT_OSERR;
    }
    shx_info("serving on port %d: %s, %d worker(s), timeout %d s, max payload %d MiB%s%s", g.cfg.port,
             g.cfg.handler_desc, g.cfg.workers, g.cfg.timeout_s, g.cfg.max_payload_mb,
             g.cfg.multi_model ? ", multi-model" : "", g.cfg.preload ? "" : ", model loaded per worker");

    g.d = d;
    int code = serve_loop(ctl, zygote, sfd);

    /* Stop: workers still busy are killed; requests still waiting for an answer get one before MHD stops. */
    g.closing = 1;
    g.stopping = 1;
    for (int i = 0; i < g.cfg.workers; i++)
        if (g.slots[i].state != SLOT_DEAD) slot_down(i, 503, "smhost is shutting down");
    fail_queue(503, "smhost is shutting down");
    MHD_run(d);
    MHD_stop_daemon(d);
    close(ctl);
    for (int t = 0; t < 50; t++) {
        int st;
        if (waitpid(zygote, &st, WNOHANG) != 0) break;
        if (t == 49) {
            kill(zygote, SIGKILL);
            waitpid(zygote, &st, 0);
        }
        usleep(100000);
    }
    if (code == 0) shx_info("stopped");
    return code;
}
