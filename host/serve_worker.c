/* The serving zygote and its workers (see serve_worker.h), and the host API's resp_* functions. */
#include "serve_worker.h"

#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitcodes.h"
#include "log.h"
#include "serve.h"
#include "serve_proto.h"
#include "util.h"

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

smh_status shx_resp_write(smh_response *resp, const void *data, size_t len) {
    if (!resp || (!data && len)) return SMH_E_INVAL;
    if (resp->body.len + len > SHX_FRAME_MAX_BODY) return SMH_E_RANGE;
    shx_buf_add(&resp->body, data, len);
    return SMH_OK;
}

smh_status shx_resp_set_status(smh_response *resp, int http_status) {
    if (!resp || http_status < 200 || http_status > 599) return SMH_E_INVAL;
    resp->status = http_status;
    return SMH_OK;
}

smh_status shx_resp_set_content_type(smh_response *resp, const char *content_type) {
    if (!resp || !content_type || !header_value_ok(content_type)) return SMH_E_INVAL;
    free(resp->content_type);
    resp->content_type = shx_xstrdup(content_type);
    return SMH_OK;
}

smh_status shx_resp_set_custom_attributes(smh_response *resp, const char *value) {
    if (!resp || !value || !header_value_ok(value)) return SMH_E_INVAL;
    free(resp->custom_attributes);
    resp->custom_attributes = shx_xstrdup(value);
    return SMH_OK;
}

static void resp_reset(smh_response *r) {
    shx_buf_free(&r->body);
    free(r->content_type);
    free(r->custom_attributes);
    memset(r, 0, sizeof *r);
}

/* ---- the handler plugin ---------------------------------------------------------------------------------- */
static void host_log(const char *plugin, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    shx_vlog(level, plugin, fmt, ap);
    va_end(ap);
}

/* Serving needs only logging and the resp_* functions; job functions are absent (NULL) in a serving process. */
static const smh_host_api g_api = {
    .struct_size = sizeof(smh_host_api),
    .abi_major = SMH_ABI_MAJOR,
    .abi_minor = SMH_ABI_MINOR,
    .log = host_log,
    .resp_write = shx_resp_write,
    .resp_set_status = shx_resp_set_status,
    .resp_set_content_type = shx_resp_set_content_type,
    .resp_set_custom_attributes = shx_resp_set_custom_attributes,
};

typedef struct handler {
    const smh_plugin *pl;
    smh_handler_ops ops; /* zero-filled copy */
    void *state;
} handler;

static int handler_open(const char *path, handler *h, char *err, size_t errlen) {
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, errlen, "cannot load handler plugin %s: %s (check it with ldd(1))", path, dlerror());
        return SHX_EXIT_CONFIG;
    }
    smh_plugin_entry_fn entry;
    *(void **)&entry = dlsym(dl, SMH_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(err, errlen, "%s is not an smhost plugin: it exports no %s (build it with SMH_PLUGIN_DEFINE)", path,
                 SMH_ENTRY_SYMBOL);
        return SHX_EXIT_CONFIG;
    }
    const smh_plugin *pl = entry();
    if (!pl || pl->abi_major != SMH_ABI_MAJOR || pl->abi_minor > SMH_ABI_MINOR) {
        snprintf(err, errlen, "handler plugin %s was built for SDK ABI %d.%d; this smhost has ABI %d.%d: rebuild it",
                 path, pl ? pl->abi_major : -1, pl ? pl->abi_minor : -1, SMH_ABI_MAJOR, SMH_ABI_MINOR);
        return SHX_EXIT_CONFIG;
    }
    if (pl->struct_size > sizeof(smh_plugin) || pl->struct_size < offsetof(smh_plugin, handler) + sizeof pl->handler) {
        snprintf(err, errlen, "handler plugin %s has a descriptor of %u bytes, this smhost knows %zu: rebuild it", path,
                 pl->struct_size, sizeof(smh_plugin));
        return SHX_EXIT_CONFIG;
    }
    if (pl->kind != SMH_KIND_HANDLER || !pl->handler) {
        snprintf(err, errlen, "plugin %s (%s) is not a handler plugin (kind %u): serving needs SMH_KIND_HANDLER",
                 pl->name ? pl->name : "?", path, pl->kind);
        return SHX_EXIT_CONFIG;
    }
    if (pl->handler->struct_size > sizeof(smh_handler_ops)) {
        snprintf(err, errlen, "handler plugin %s has handler ops of %u bytes, this smhost knows %zu: rebuild it", path,
                 pl->handler->struct_size, sizeof(smh_handler_ops));
        return SHX_EXIT_CONFIG;
    }
    memset(&h->ops, 0, sizeof h->ops);
    memcpy(&h->ops, pl->handler, pl->handler->struct_size);
    if (!h->ops.load || !h->ops.invoke) {
        snprintf(err, errlen, "handler plugin %s lacks load() or invoke()", path);
        return SHX_EXIT_CONFIG;
    }
    h->pl = pl;
    if (pl->init) {
        char perr[2048] = "";
        smh_status st = pl->init(&g_api, &h->state, perr, sizeof perr);
        if (st != SMH_OK) {
            snprintf(err, errlen, "handler plugin %s failed to start: %s", pl->name, perr[0] ? perr : "init() failed");
            return SHX_EXIT_SOFTWARE;
        }
    }
    return 0;
}

/* ---- requirements.txt ------------------------------------------------------------------------------------ */
/* The Python handler's requirements.txt (contract 7) is installed before the handler module is imported. */
static int install_requirements(const char *code_dir, char *err, size_t errlen) {
    char *req = shx_path_join(code_dir, "requirements.txt");
    if (!shx_is_file(req)) {
        free(req);
        return 0;
    }
    shx_info("installing %s", req);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("PIP_BREAK_SYSTEM_PACKAGES", "1", 0);
        dup2(2, 1);
        execl("/usr/bin/python3", "python3", "-m", "pip", "install", "--no-input", "-r", req, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    int ok = pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (!ok)
        snprintf(err, errlen, "InstallRequirementsError: pip could not install %s (its output is above); fix the file "
                 "or remove it", req);
    free(req);
    return ok ? 0 : 1;
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
    smh_response resp = {0};
    char err[4096] = "";
    smh_status st = h->ops.invoke(h->state, m->model, &req, &resp, err, sizeof err);
    if (st < 0) {
        int status = resp.status >= 400 ? resp.status : 500;
        if (!err[0]) snprintf(err, sizeof err, "the %s handler failed with status %d", h->pl->name, st);
        shx_log(status >= 500 ? SHX_ERROR : SHX_DEBUG, "invoke failed (%d): %s", status, err);
        reply_error(fd, status, err);
    } else {
        const char *s[SHX_FRAME_NSTR] = {resp.content_type, resp.custom_attributes, "", ""};
        shx_frame_send(fd, SHX_FR_REPLY, resp.status ? resp.status : 200, 0, 0, s, resp.body.p, resp.body.len);
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
    for (;;) {
        shx_frame f;
        if (shx_frame_recv(fd, &f, -1)) _exit(0); /* the front closed our socket: shutdown */
        switch (f.type) {
        case SHX_FR_INVOKE: do_invoke(h, fd, &f); break;
        case SHX_FR_LOAD: do_load(h, fd, &f); break;
        case SHX_FR_UNLOAD: do_unload(h, fd, &f); break;
        default: shx_log(SHX_ERROR, "worker: unexpected frame type %u", f.type); _exit(SHX_EXIT_SOFTWARE);
        }
        shx_frame_free(&f);
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
    /* Shutdown is the front's business: it closes our sockets when in-flight requests are done. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    char err[4096] = "";
    int rc;
    if (spec->python && (rc = install_requirements(spec->code_dir, err, sizeof err))) fail(ctl, rc, err);
    handler h = {0};
    if ((rc = handler_open(spec->handler_path, &h, err, sizeof err))) fail(ctl, rc, err);
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
