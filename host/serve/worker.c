/* The serving zygote and its workers (see serve_worker.h), and the host API's resp_* functions. */
#include "serve/worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "plugin/hostapi.h"
#include "supervisor/supervisor.h"
#include "plugin/loader.h"
#include "core/log.h"
#include "plugin/registry.h"
#include "job/requirements.h"
#include "serve/serve.h"
#include "serve/proto.h"
#include "core/util.h"

/* ---- responses ----------------------------------------------------------------------------------------- */
struct smh_response {
    shx_buf body;
    int status;
    char *content_type;
    char *custom_attributes;
};

static int header_value_ok(const char *v) {
    for (; *v; v++)
        if (*v == '\r' || *v == '\n') return 0;
    return 1;
}

static smh_status shx_resp_write(smh_response *resp, const void *data, size_t len) {
    if (!resp || (!data && len)) return SMH_E_INVAL;
    if (resp->body.len + len > SHX_FRAME_MAX_BODY) return SMH_E_RANGE;
    shx_buf_add(&resp->body, data, len);
    return SMH_OK;
}

static smh_status shx_resp_set_status(smh_response *resp, int http_status) {
    if (!resp || http_status < 200 || http_status > 599) return SMH_E_INVAL;
    resp->status = http_status;
    return SMH_OK;
}

static smh_status shx_resp_set_content_type(smh_response *resp, const char *content_type) {
    if (!resp || !content_type || !header_value_ok(content_type)) return SMH_E_INVAL;
    free(resp->content_type);
    resp->content_type = shx_xstrdup(content_type);
    return SMH_OK;
}

static smh_status shx_resp_set_custom_attributes(smh_response *resp, const char *value) {
    if (!resp || !value || !header_value_ok(value)) return SMH_E_INVAL;
    free(resp->custom_attributes);
    resp->custom_attributes = shx_xstrdup(value);
    return SMH_OK;
}

/* The host API table of a serving process: the training table plus the response functions above. */
const smh_host_api *shx_serving_api(void) {
    static smh_host_api api;
    if (!api.struct_size) {
        shx_host_api_copy(&api);
        api.resp_write = shx_resp_write;
        api.resp_set_status = shx_resp_set_status;
        api.resp_set_content_type = shx_resp_set_content_type;
        api.resp_set_custom_attributes = shx_resp_set_custom_attributes;
    }
    return &api;
}

static void resp_reset(smh_response *r) {
    shx_buf_free(&r->body);
    free(r->content_type);
    free(r->custom_attributes);
    memset(r, 0, sizeof *r);
}

/* ---- the handler plugin ---------------------------------------------------------------------------------- */

typedef shx_handler handler;

int shx_handler_open(const shx_serve_spec *spec, handler *h, char *err, size_t errlen) {
    static shx_registry reg;
    static shx_plugin own;
    const shx_plugin *p;
    if (spec->handler_path) {
        if (shx_plugin_load(spec->handler_path, &own)) {
            snprintf(err, errlen, "cannot use the native handler %s: %s", spec->handler_path, own.reason);
            return SHX_EXIT_CONFIG;
        }
        p = &own;
    } else {
        char why[2048] = "";
        shx_registry_init(&reg, spec->cfg);
        p = shx_registry_find(&reg, spec->handler_name, why, sizeof why);
        if (!p) {
            snprintf(err, errlen, "serving needs the handler plugin '%s', but %s", spec->handler_name, why);
            return SHX_EXIT_CONFIG;
        }
    }
    if (p->desc.kind != SMH_KIND_HANDLER || !p->has_handler || !p->handler.load) {
        snprintf(err, errlen, "plugin '%s' (%s) is a %s plugin, not a handler with load() and invoke(): serving "
                 "needs SMH_KIND_HANDLER", p->desc.name, p->path, shx_kind_str(p->desc.kind));
        return SHX_EXIT_CONFIG;
    }
    h->pl = p;
    h->ops = p->handler;
    if (p->desc.init) {
        char perr[2048] = "";
        smh_status st = p->desc.init(shx_serving_api(), &h->state, perr, sizeof perr);
        if (st != SMH_OK) {
            snprintf(err, errlen, "handler plugin %s failed to start: %s", p->desc.name,
                     perr[0] ? perr : "init() failed");
            return SHX_EXIT_SOFTWARE;
        }
    }
    return 0;
}

/* The Python handler's requirements.txt (contract 7) is installed before the handler module is imported. */
static int install_requirements(const shx_serve_spec *spec, char *err, size_t errlen) {
    char pip[3000] = "";
    extern char **environ;
    int rc = shx_requirements_install(spec->code_dir, (const char *const *)environ,
                                      spec->cfg->pip_break_system_packages, pip, sizeof pip);
    if (rc) snprintf(err, errlen, "InstallRequirementsError: %s", pip);
    return rc;
}

/* ---- workers ---------------------------------------------------------------------------------------------- */
typedef struct loaded {
    char *name; /* "" for the single model */
    void *model;
} loaded;

static loaded *g_models;
static size_t g_nmodels;

static loaded *find_model(const char *name) {
    for (size_t i = 0; i < g_nmodels; i++)
        if (!strcmp(g_models[i].name, name)) return &g_models[i];
    return NULL;
}

static int status_for(smh_status st) {
    return st == SMH_E_NOMEM ? 507 : 500;
}

static smh_status load_model(handler *h, const char *name, const char *dir, char *err, size_t errlen) {
    void *model = NULL;
    err[0] = 0;
    smh_status st = h->ops.load(h->state, dir, &model, err, errlen);
    if (st != SMH_OK) {
        if (!err[0]) snprintf(err, errlen, "load() of %s failed with status %d", dir, st);
        return st;
    }
    g_models = shx_xrealloc(g_models, (g_nmodels + 1) * sizeof *g_models);
    g_models[g_nmodels++] = (loaded){shx_xstrdup(name), model};
    return SMH_OK;
}

static void reply_error(int fd, int status, const char *msg) {
    char *body = shx_json_error(status, msg);
    const char *s[SHX_FRAME_NSTR] = {"application/json", "", "", ""};
    shx_frame_send(fd, SHX_FR_REPLY, status, 0, 0, s, body, strlen(body));
    free(body);
}

static void frame_answer(void *ctx, int status, const char *ctype, const char *attrs, const void *body, size_t len) {
    const char *s[SHX_FRAME_NSTR] = {ctype, attrs, "", ""};
    shx_frame_send(*(int *)ctx, SHX_FR_REPLY, status, 0, 0, s, body, len);
}

static void do_invoke(handler *h, int fd, const shx_frame *f) {
    loaded *m = find_model(f->s[3]);
    if (!m) {
        char msg[512];
        snprintf(msg, sizeof msg, "model %s is not loaded", f->s[3]);
        reply_error(fd, 404, msg);
        return;
    }
    smh_request req = {.struct_size = sizeof req,
                       .body = f->body,
                       .body_len = f->body_len,
                       .content_type = f->s[0],
                       .accept = f->s[1],
                       .custom_attributes = f->s[2],
                       .model_name = f->s[3]};
    shx_handler_invoke(h, m->model, &req, frame_answer, &fd);
}

void shx_handler_invoke(handler *h, void *model, const smh_request *req, shx_answer_fn answer, void *ctx) {
    smh_response resp = {0};
    char err[4096] = "";
    smh_status st = h->ops.invoke(h->state, model, req, &resp, err, sizeof err);
    if (st < 0) {
        int status = resp.status >= 400 ? resp.status : 500;
        if (!err[0]) snprintf(err, sizeof err, "the %s handler failed with status %d", h->pl->desc.name, st);
        shx_log(status >= 500 ? SHX_ERROR : SHX_DEBUG, "invoke failed (%d): %s", status, err);
        char *body = shx_json_error(status, err);
        answer(ctx, status, "application/json", NULL, body, strlen(body));
        free(body);
    } else {
        answer(ctx, resp.status ? resp.status : 200, resp.content_type, resp.custom_attributes, resp.body.p,
               resp.body.len);
    }
    resp_reset(&resp);
}

static void do_load(handler *h, int fd, const shx_frame *f) {
    char err[4096] = "";
    if (find_model(f->s[0])) {
        reply_error(fd, 409, "already loaded");
        return;
    }
    smh_status st = load_model(h, f->s[0], f->s[1], err, sizeof err);
    if (st != SMH_OK) {
        shx_log(SHX_ERROR, "loading model %s from %s failed: %s", f->s[0], f->s[1], err);
        reply_error(fd, status_for(st), err);
        return;
    }
    shx_frame_send(fd, SHX_FR_REPLY, 200, 0, 0, NULL, NULL, 0);
}

static void do_unload(handler *h, int fd, const shx_frame *f) {
    loaded *m = find_model(f->s[0]);
    if (m) {
        if (h->ops.unload) h->ops.unload(h->state, m->model);
        free(m->name);
        *m = g_models[--g_nmodels];
    }
    shx_frame_send(fd, SHX_FR_REPLY, 200, 0, 0, NULL, NULL, 0);
}

static void __attribute__((noreturn)) worker_main(const shx_serve_spec *spec, handler *h, int fd, int loaded_before) {
    char err[4096] = "";
    if (!spec->multi_model && !loaded_before) {
        smh_status st = load_model(h, "", spec->model_dir, err, sizeof err);
        if (st != SMH_OK) {
            const char *s[SHX_FRAME_NSTR] = {err};
            shx_frame_send(fd, SHX_FR_FAILED, 1, 0, 0, s, NULL, 0);
            _exit(1);
        }
    }
    shx_frame_send(fd, SHX_FR_READY, 0, 0, 0, NULL, NULL, 0);
    /* The front may send several requests at once (it pipelines): one recv() takes them all, and they are
     * answered in order, each reply sent before the next request starts, so the front always knows which
     * request a worker that dies or hangs was running. */
    shx_frame_reader in = {0};
    for (;;) {
        shx_frame f;
        int got = shx_frame_reader_next(&in, &f);
        if (got < 0) {
            shx_log(SHX_ERROR, "worker: garbage from the front: %s", strerror(errno));
            _exit(SHX_EXIT_SOFTWARE);
        }
        if (!got) {
            if (shx_frame_reader_fill(&in, fd, 0) > 0) continue;
            _exit(0); /* the front closed our socket: shutdown */
        }
        switch (f.type) {
        case SHX_FR_INVOKE: do_invoke(h, fd, &f); break;
        case SHX_FR_LOAD: do_load(h, fd, &f); break;
        case SHX_FR_UNLOAD: do_unload(h, fd, &f); break;
        default: shx_log(SHX_ERROR, "worker: unexpected frame type %u", f.type); _exit(SHX_EXIT_SOFTWARE);
        }
    }
}

/* ---- the zygote ------------------------------------------------------------------------------------------- */
static void __attribute__((noreturn)) fail(int ctl, int code, const char *msg) {
    const char *s[SHX_FRAME_NSTR] = {msg};
    shx_frame_send(ctl, SHX_FR_FAILED, code, 0, 0, s, NULL, 0);
    _exit(code);
}

void shx_zygote_main(const shx_serve_spec *spec, int ctl) {
    pid_t front = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != front) _exit(SHX_EXIT_SOFTWARE);
    /* The handler and the workers forked from here get what a program gets from `smhost train`: a clean signal
     * mask and default dispositions, which the processes a handler starts inherit.  Shutdown is the front's
     * business (it closes our sockets when in-flight requests are done), and signals meant for smhost do not
     * reach us: the zygote has its own process group. */
    shx_sup_child_reset_signals();

    char err[4096] = "";
    int rc;
    if (spec->python && (rc = install_requirements(spec, err, sizeof err))) fail(ctl, rc, err);
    handler h = {0};
    if ((rc = shx_handler_open(spec, &h, err, sizeof err))) fail(ctl, rc, err);
    int preloaded = 0;
    if (spec->preload && !spec->multi_model) {
        if (load_model(&h, "", spec->model_dir, err, sizeof err) != SMH_OK) fail(ctl, 1, err);
        preloaded = 1;
    }
    shx_frame_send(ctl, SHX_FR_READY, preloaded, 0, 0, NULL, NULL, 0);

    for (;;) {
        struct pollfd pfd = {.fd = ctl, .events = POLLIN};
        int r = poll(&pfd, 1, 100);
        int st;
        pid_t dead;
        while ((dead = waitpid(-1, &st, WNOHANG)) > 0) shx_frame_send(ctl, SHX_FR_DIED, st, 0, dead, NULL, NULL, 0);
        if (r <= 0) continue;
        int fd;
        int32_t slot, gen;
        if (shx_recv_fd(ctl, &fd, &slot, &gen)) _exit(0); /* the front is gone or done */
        pid_t pid = fork();
        if (pid == 0) {
            close(ctl);
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            worker_main(spec, &h, fd, preloaded);
        }
        close(fd);
        if (pid < 0) {
            shx_log(SHX_ERROR, "cannot fork a serving worker: %s", strerror(errno));
            continue; /* the front sees the socket close and tries again */
        }
        shx_frame_send(ctl, SHX_FR_SPAWNED, slot, gen, pid, NULL, NULL, 0);
    }
}
