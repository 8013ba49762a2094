/* Inline handlers (inline.h). */
#include "serve/inline.h"

#include <errno.h>
#include <microhttpd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "plugin/registry.h"
#include "serve/front.h"
#include "supervisor/supervisor.h"

static shx_handler g_h;
static void *g_model;
static int g_active;

int shx_inline_active(void) {
    return g_active;
}

void shx_inline_invoke(const smh_request *req, shx_answer_fn answer, void *ctx) {
    shx_handler_invoke(&g_h, g_model, req, answer, ctx);
}

/* The handler's flags, read in a throwaway child: a handler that did not opt in never runs code in the front (not
 * even its constructors).  Returns the flags, or 0 when the plugin cannot be read (the zygote reports why). */
static uint32_t probe_flags(const shx_serve_spec *spec) {
    int pfd[2];
    if (pipe(pfd)) return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        uint32_t flags = 0;
        static shx_plugin p;
        static shx_registry reg;
        const shx_plugin *pl = NULL;
        if (spec->handler_path) {
            if (!shx_plugin_load(spec->handler_path, &p)) pl = &p;
        } else {
            char why[1024];
            shx_registry_init(&reg, spec->cfg);
            pl = shx_registry_find(&reg, spec->handler_name, why, sizeof why);
        }
        if (pl && pl->has_handler) flags = pl->handler.flags;
        if (write(pfd[1], &flags, sizeof flags) != (ssize_t)sizeof flags) _exit(1);
        _exit(0);
    }
    close(pfd[1]);
    uint32_t flags = 0;
    if (pid > 0) {
        ssize_t r;
        while ((r = read(pfd[0], &flags, sizeof flags)) < 0 && errno == EINTR) continue;
        if (r != (ssize_t)sizeof flags) flags = 0;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) continue;
    }
    close(pfd[0]);
    return flags;
}

int shx_inline_setup(const shx_serve_settings *s, const shx_config *cfg, char *err, size_t errlen) {
    if (s->inline_never || s->python || s->multi_model) return 0;
    shx_serve_spec spec = {.cfg = cfg, .handler_name = s->handler_name, .handler_path = s->handler_path,
                           .model_dir = s->model_dir, .code_dir = s->code_dir};
    if (!(probe_flags(&spec) & SMH_HANDLER_THREAD_SAFE)) return 0;
    int rc = shx_handler_open(&spec, &g_h, err, errlen);
    if (rc) return rc;
    char lerr[4096] = "";
    smh_status st = g_h.ops.load(g_h.state, s->model_dir, &g_model, lerr, sizeof lerr);
    if (st != SMH_OK) {
        snprintf(err, errlen, "loading the model from %s failed: %s", s->model_dir,
                 lerr[0] ? lerr : "load() returned an error without a message");
        return 1;
    }
    g_active = 1;
    shx_info("%s declares SMH_HANDLER_THREAD_SAFE: it runs in this process, without workers "
             "(SMHOST_SERVE_INLINE=never keeps it in worker processes)", g_h.pl->desc.name);
    return 0;
}

int shx_inline_serve(int sfd) {
    g.ever_ready = 1;
    g.threaded = 1;
    unsigned threads = g.cfg.workers > 0 ? (unsigned)g.cfg.workers : 1;
    struct MHD_Daemon *d = front_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC, threads);
    if (!d) {
        shx_error("serve: cannot listen on port %d (in use, or not allowed): set SAGEMAKER_BIND_TO_PORT to a free "
                  "port", g.cfg.port);
        return SHX_EXIT_OSERR;
    }
    g.d = d;
    shx_info("serving on port %d: %s inline on %u thread(s), max payload %d MiB (no per-request timeout inline)",
             g.cfg.port, g.cfg.handler_desc, threads, g.cfg.max_payload_mb);
    /* The supervisor's signals, as in the event loop: stop signals end serving, SIGCHLD reaps (an inline handler's
     * own children, and the orphans smhost inherits as PID 1 or subreaper). */
    int stop_sig = 0;
    while (!stop_sig) {
        struct pollfd pfd = {.fd = sfd, .events = POLLIN};
        if (poll(&pfd, 1, 1000) < 0 && errno != EINTR) {
            shx_error("serve: poll: %s", strerror(errno));
            break;
        }
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
            if (shx_is_stop_signal((int)si.ssi_signo)) stop_sig = (int)si.ssi_signo;
        shx_sup_reap(NULL, NULL);
    }
    __atomic_store_n(&g.stopping, 1, __ATOMIC_RELAXED);
    MHD_socket ls = MHD_quiesce_daemon(d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    shx_info("%s: no new connections; finishing %d request(s) in flight (grace %d s)",
             stop_sig ? strsignal(stop_sig) : "stopping", __atomic_load_n(&g.in_flight, __ATOMIC_RELAXED),
             g.cfg.grace_s);
    int64_t deadline = shx_now_ms() + (int64_t)g.cfg.grace_s * 1000;
    while (__atomic_load_n(&g.in_flight, __ATOMIC_RELAXED) > 0 && shx_now_ms() < deadline) {
        usleep(10000);
        shx_sup_reap(NULL, NULL);
    }
    int left = __atomic_load_n(&g.in_flight, __ATOMIC_RELAXED);
    if (left > 0) shx_warn("grace period over with %d request(s) still running: stopping", left);
    MHD_stop_daemon(d);
    int64_t rest = deadline - shx_now_ms();
    shx_sup_end_leftovers(rest < 2000 ? (rest > 0 ? (int)rest : 0) : 2000, "the handler");
    close(sfd);
    shx_info("stopped");
    return 0;
}
