/* The zygote of a Python handler runs in smhost-python (see pyzygote.h). */
#include "serve/pyzygote.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"
#include "plugin/modules.h"
#include "serve/proto.h"

#define PYEXE "smhost-python"

void shx_zygote_exec_python(const shx_serve_spec *spec, int ctl) {
#if defined(__SANITIZE_ADDRESS__)
    /* A sanitized serve.so needs the ASan runtime loaded first, which smhost-python (never sanitized) does not
     * do: sanitized builds keep the zygote in this process. */
    (void)spec, (void)ctl;
    return;
#else
    if (!spec->python || !spec->handler_name) return;
    char *self = shx_self_dir();
    char *exe = shx_xasprintf("%s/%s", self, PYEXE);
    free(self);
    if (access(exe, X_OK) != 0) {
        shx_warn("%s is missing (%s): Python handlers run on the shared libpython, about 10%% slower; reinstall "
                 "smhost (make install puts it beside smhost)", exe, strerror(errno));
        free(exe);
        return;
    }
    int fd = fcntl(ctl, F_DUPFD, 3); /* without FD_CLOEXEC: smhost-python inherits it */
    if (fd < 0) {
        shx_warn("serve: cannot pass the zygote's socket to %s: %s", exe, strerror(errno));
        free(exe);
        return;
    }
    char fd_s[16], lvl_s[16];
    snprintf(fd_s, sizeof fd_s, "%d", fd);
    snprintf(lvl_s, sizeof lvl_s, "%d", shx_log_get_level());
    const char *argv[] = {exe, "--serve-zygote", "--ctl", fd_s, "--log-level", lvl_s,
                          "--handler", spec->handler_name,
                          "--model-dir", spec->model_dir ? spec->model_dir : "",
                          "--code-dir", spec->code_dir ? spec->code_dir : "",
                          spec->preload ? "--preload" : "--no-preload",
                          spec->multi_model ? "--multi-model" : "--single-model", NULL};
    fflush(NULL);
    execv(exe, (char *const *)argv);
    shx_warn("serve: cannot execute %s (%s): the Python handler runs on the shared libpython, about 10%% slower",
             exe, strerror(errno));
    close(fd);
    free(exe);
#endif
}

static void __attribute__((noreturn)) zygote_failed(int ctl, int code, const char *msg) {
    shx_error("%s", msg);
    const char *s[SHX_FRAME_NSTR] = {msg};
    if (ctl >= 0) shx_frame_send(ctl, SHX_FR_FAILED, code, 0, 0, s, NULL, 0);
    _exit(code);
}

SHX_MODULE_EXPORT int shx_module_serve_zygote(const shx_module_args *a);
SHX_MODULE_EXPORT int shx_module_serve_zygote(const shx_module_args *a) {
    shx_log_set_level(a->log_level);
    shx_serve_spec spec = {.python = 1, .preload = 1};
    int ctl = -1;
    for (int i = 1; i < a->argc; i++) {
        const char *o = a->argv[i], *v = i + 1 < a->argc ? a->argv[i + 1] : NULL;
        if (!strcmp(o, "--preload")) spec.preload = 1;
        else if (!strcmp(o, "--no-preload")) spec.preload = 0;
        else if (!strcmp(o, "--multi-model")) spec.multi_model = 1;
        else if (!strcmp(o, "--single-model")) spec.multi_model = 0;
        else if (!strcmp(o, "--serve-zygote")) continue;
        else if (v && !strcmp(o, "--ctl")) ctl = atoi(a->argv[++i]);
        else if (v && !strcmp(o, "--log-level")) shx_log_set_level(atoi(a->argv[++i]));
        else if (v && !strcmp(o, "--handler")) spec.handler_name = a->argv[++i];
        else if (v && !strcmp(o, "--model-dir")) spec.model_dir = a->argv[++i];
        else if (v && !strcmp(o, "--code-dir")) spec.code_dir = a->argv[++i];
        else zygote_failed(ctl, SHX_EXIT_USAGE, "smhost-python --serve-zygote: bad arguments (smhost serve starts it)");
    }
    if (ctl < 0 || fcntl(ctl, F_SETFD, FD_CLOEXEC) < 0 || !spec.handler_name)
        zygote_failed(ctl, SHX_EXIT_USAGE, "smhost-python --serve-zygote: no control socket or handler (smhost serve "
                                           "starts it)");
    /* The configuration as the front read it: the same environment and smhost.ini. */
    static shx_config cfg;
    char err[2048];
    if (shx_config_load(&cfg, err, sizeof err) < 0) zygote_failed(ctl, SHX_EXIT_CONFIG, err);
    spec.cfg = &cfg;
    shx_zygote_main(&spec, ctl);
}
