/* Inline handlers (inline.h). */
#include "serve/inline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "plugin/registry.h"

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
    const char *mode = getenv("SMHOST_SERVE_INLINE");
    if (mode && *mode && strcmp(mode, "auto") && strcmp(mode, "never")) {
        snprintf(err, errlen, "SMHOST_SERVE_INLINE=%s: use auto (a handler declaring SMH_HANDLER_THREAD_SAFE runs in "
                 "the front process) or never (every handler runs in worker processes)", mode);
        return SHX_EXIT_CONFIG;
    }
    if ((mode && !strcmp(mode, "never")) || s->python || s->multi_model) return 0;
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
