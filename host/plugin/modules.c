/* Loading smhost's internal modules on demand (see modules.h). */
#include "plugin/modules.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"

static int call(const char *module, const char *entry, shx_module_args *a, char *err, size_t errlen) {
    char *self = shx_self_dir();
    char *path = shx_xasprintf("%s/../lib/smhost/internal/%s", self, module);
    free(self);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen,
                 "smhost's internal module %s cannot be loaded: %s. Reinstall smhost (make install), or check the "
                 "module's libraries with `ldd %s`.",
                 path, dlerror(), path);
        free(path);
        return SHX_EXIT_SOFTWARE;
    }
    void *sym = dlsym(h, entry);
    if (!sym) {
        snprintf(err, errlen, "smhost's internal module %s has no %s(): it belongs to another smhost build. "
                 "Reinstall smhost.", path, entry);
        free(path);
        dlclose(h);
        return SHX_EXIT_SOFTWARE;
    }
    free(path);
    shx_module_fn fn;
    memcpy(&fn, &sym, sizeof fn);
    a->log_level = shx_log_get_level();
    return fn(a); /* the module stays loaded: what it returns may point into it */
}

int shx_modules_serve(const shx_config *cfg, int argc, char **argv) {
    char err[1024] = ""; /* only call() writes it: when serve.so cannot be loaded */
    shx_module_args a = {.cfg = cfg, .argc = argc, .argv = argv};
    int rc = call("serve.so", "shx_module_serve", &a, err, sizeof err);
    if (err[0]) shx_error("%s", err);
    return rc;
}

int shx_modules_unpack(const char *submit, const char *code_dir, char *err, size_t errlen) {
    shx_module_args a = {.submit = submit, .code_dir = code_dir, .err = err, .errlen = errlen};
    err[0] = 0;
    return call("unpack.so", "shx_module_unpack", &a, err, errlen);
}

int shx_modules_pack(struct shx_pack_spec *spec, char *err, size_t errlen) {
    shx_module_args a = {.pack = spec, .err = err, .errlen = errlen};
    err[0] = 0;
    return call("unpack.so", "shx_module_pack", &a, err, errlen);
}

int shx_modules_http(struct shx_http_req *req, char *err, size_t errlen) {
    shx_module_args a = {.http = req, .err = err, .errlen = errlen};
    err[0] = 0;
    return call("http.so", "shx_module_http", &a, err, errlen);
}

int shx_modules_s3_download(const char *url, char *const *env, const char *region, const char *dest, char *err,
                            size_t errlen) {
    shx_module_args a = {.url = url, .env = env, .region = region, .dest = dest, .err = err, .errlen = errlen};
    err[0] = 0;
    return call("s3.so", "shx_module_s3_download", &a, err, errlen);
}

int shx_modules_s3_sync_prepare(char *const *env, const char *region, const char *url, const char *job_name,
                                const char *dir, void **h, char *err, size_t errlen) {
    shx_module_args a = {.env = env, .region = region, .url = url, .job_name = job_name, .dir = dir,
                         .handle_out = h, .err = err, .errlen = errlen};
    err[0] = 0;
    *h = NULL;
    return call("s3.so", "shx_module_s3_sync_prepare", &a, err, errlen);
}

void shx_modules_s3_sync_start(void *h) {
    char err[1024] = "";
    shx_module_args a = {.handle = h};
    if (call("s3.so", "shx_module_s3_sync_start", &a, err, sizeof err)) shx_error("%s", err);
}

void shx_modules_s3_sync_finish(void *h, int bound_seconds) {
    char err[1024] = "";
    shx_module_args a = {.handle = h, .bound_seconds = bound_seconds};
    call("s3.so", "shx_module_s3_sync_finish", &a, err, sizeof err);
    if (err[0]) shx_error("%s", err); /* only call() writes it: when s3.so cannot be loaded */
}
