/* The serving zygote and its workers: the only processes of smhost serve that run plugin code. */
#ifndef SHX_SERVE_WORKER_H
#define SHX_SERVE_WORKER_H

#include <smhost/plugin.h>

#include "core/config.h"
#include "plugin/loader.h"

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

/* A handler plugin, opened and initialised (init() with the serving host table). */
typedef struct shx_handler {
    const shx_plugin *pl;
    smh_handler_ops ops; /* the loader's zero-filled copy */
    void *state;
} shx_handler;
int shx_handler_open(const shx_serve_spec *spec, shx_handler *h, char *err, size_t errlen);
/* One invoke(): the answer (status, content type, custom attributes, body) goes to answer(); a failed invoke() is
 * answered with the JSON error body, as workers and the front's inline mode both send it. */
typedef void (*shx_answer_fn)(void *ctx, int status, const char *ctype, const char *attrs, const void *body,
                              size_t len);
void shx_handler_invoke(shx_handler *h, void *model, const smh_request *req, shx_answer_fn answer, void *ctx);
/* The host API table of a serving process (the resp_* functions answer). */
const smh_host_api *shx_serving_api(void);

/* Runs in the forked zygote: loads the plugin (and model), reports READY or FAILED on ctl, then forks a worker
 * for every socket the front passes (shx_send_fd) and reports SPAWNED/DIED.  Exits when ctl closes. */
void shx_zygote_main(const shx_serve_spec *spec, int ctl) __attribute__((noreturn));
#endif
