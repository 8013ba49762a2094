/* The serving zygote and its workers: the only processes of smhost serve that run plugin code. */
#ifndef SHX_SERVE_WORKER_H
#define SHX_SERVE_WORKER_H

#include "core/config.h"

typedef struct shx_serve_spec {
    const shx_config *cfg;    /* plugin_path, pip_break_system_packages */
    const char *handler_name; /* a handler plugin found through the registry ("pyhandler") ... */
    const char *handler_path; /* ... or a native handler's .so (then handler_name is NULL) */
    const char *model_dir;    /* <root>/model (single model); in multi-model mode models come with LOAD frames */
    const char *code_dir;     /* <root>/model/code: its requirements.txt is installed first */
    int python;               /* the handler is pyhandler: install requirements.txt */
    int preload;              /* load the model once in the zygote, before forking the workers */
    int multi_model;
} shx_serve_spec;

/* Runs in the forked zygote: loads the plugin (and model), reports READY or FAILED on ctl, then forks a worker
 * for every socket the front passes (shx_send_fd) and reports SPAWNED/DIED.  Exits when ctl closes. */
void shx_zygote_main(const shx_serve_spec *spec, int ctl) __attribute__((noreturn));
#endif
