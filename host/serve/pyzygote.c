/* The zygote of a Python handler runs in python3 with pyboot.so preloaded (see pyzygote.h). */
#include "serve/pyzygote.h"

#include <dlfcn.h>
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
/* the hand-off to pyboot.so, shared with the python runner (relative: host modules are built without -I.) */
#include "../../python/handoff.h"

#if defined(__SANITIZE_ADDRESS__)
/* A sanitized serve.so needs the ASan runtime loaded before everything else in python3 (which is not sanitized):
 * it goes first in LD_PRELOAD, found where this process has it, and python3 runs without leak detection (the
 * interpreter keeps its memory until exit on purpose). */
extern void __asan_init(void);
static const char *asan_runtime(void) {
    Dl_info info;
    return dladdr((void *)__asan_init, &info) && info.dli_fname ? info.dli_fname : NULL;
}
#endif

void shx_zygote_exec_python(const shx_serve_spec *spec, int ctl) {
    if (!spec->python || !spec->handler_name) return;
    char *self = shx_self_dir();
    char *boot = shx_xasprintf("%s" SMHPY_PYBOOT_DIR SMHPY_PYBOOT_NAME, self);
    const char *lost = access(boot, R_OK) != 0 ? boot : access(SMHPY_PYTHON3, X_OK) != 0 ? SMHPY_PYTHON3 : NULL;
    if (lost || strpbrk(boot, " :")) {
        shx_warn("serve: %s: %s; Python handlers run on the shared libpython in smhost, about 10%% slower; reinstall "
                 "smhost (make install puts pyboot.so in lib/smhost/internal)", lost ? lost : boot,
                 lost ? strerror(errno) : "cannot be named in LD_PRELOAD (a space or colon in the path)");
        free(boot);
        free(self);
        return;
    }
    int fd = fcntl(ctl, F_DUPFD, 3); /* without FD_CLOEXEC: python3 inherits it */
    if (fd < 0) {
        shx_warn("serve: cannot pass the zygote's socket to python3: %s", strerror(errno));
        free(boot);
        free(self);
        return;
    }
    const char *first = NULL;
#if defined(__SANITIZE_ADDRESS__)
    first = asan_runtime();
    const char *ao = getenv("ASAN_OPTIONS");
    char *opts = shx_xasprintf("%s%sdetect_leaks=0", ao ? ao : "", ao && *ao ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    free(opts);
#endif
    const char *old = getenv("LD_PRELOAD");
    char *saved = old ? shx_xstrdup(old) : NULL; /* put back if the exec fails */
    char fd_s[16], lvl_s[16];
    snprintf(fd_s, sizeof fd_s, "%d", fd);
    snprintf(lvl_s, sizeof lvl_s, "%d", shx_log_get_level());
    const char *argv[] = {SMHPY_PYTHON3, "--serve-zygote", "--smhost-dir", self,
                          "--ctl", fd_s, "--log-level", lvl_s, "--handler", spec->handler_name,
                          "--model-dir", spec->model_dir ? spec->model_dir : "",
                          "--code-dir", spec->code_dir ? spec->code_dir : "",
                          spec->preload ? "--preload" : "--no-preload",
                          spec->multi_model ? "--multi-model" : "--single-model", NULL};
    fflush(NULL);
    if (smhpy_handoff_setenv(first, boot, "zygote", "") == 0) execv(SMHPY_PYTHON3, (char *const *)argv);
    shx_warn("serve: cannot execute %s (%s): the Python handler runs on the shared libpython, about 10%% slower",
             SMHPY_PYTHON3, strerror(errno));
    if (saved) setenv("LD_PRELOAD", saved, 1);
    else unsetenv("LD_PRELOAD");
    unsetenv(SMHPY_HANDOFF_ENV);
    free(saved);
    close(fd);
    free(boot);
    free(self);
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
        else if (v && !strcmp(o, "--smhost-dir")) shx_self_dir_set(a->argv[++i]); /* not python3's */
        else if (v && !strcmp(o, "--log-level")) shx_log_set_level(atoi(a->argv[++i]));
        else if (v && !strcmp(o, "--handler")) spec.handler_name = a->argv[++i];
        else if (v && !strcmp(o, "--model-dir")) spec.model_dir = a->argv[++i];
        else if (v && !strcmp(o, "--code-dir")) spec.code_dir = a->argv[++i];
        else zygote_failed(ctl, SHX_EXIT_USAGE, "python3 --serve-zygote: bad arguments (smhost serve starts it)");
    }
    if (ctl < 0 || fcntl(ctl, F_SETFD, FD_CLOEXEC) < 0 || !spec.handler_name)
        zygote_failed(ctl, SHX_EXIT_USAGE, "python3 --serve-zygote: no control socket or handler (smhost serve "
                                           "starts it)");
    /* The configuration as the front read it: the same environment and smhost.ini. */
    static shx_config cfg;
    char err[2048];
    if (shx_config_load(&cfg, err, sizeof err) < 0) zygote_failed(ctl, SHX_EXIT_CONFIG, err);
    spec.cfg = &cfg;
    shx_zygote_main(&spec, ctl);
}
