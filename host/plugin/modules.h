/*
 * Internal modules: the parts of smhost with heavy library dependencies live in shared objects under
 * <dir of smhost>/../lib/smhost/internal/ and are loaded only when used, so `smhost train` does not map
 * libmicrohttpd (GnuTLS ...) or libarchive (libxml2, ICU ...) on every start:
 *   serve.so   `smhost serve` (libmicrohttpd)
 *   unpack.so  unpacking sagemaker_submit_directory, packing model.tar.gz/output.tar.gz (libarchive)
 *   s3.so      s3:// submit directories and sagemaker_s3_output (libcurl), host/s3/
 *   http.so    the HTTP client of `smhost local invoke/serve/transform` (libcurl), host/http/
 * A module is built from the same sources as the host (statically, hidden visibility) and exports one entry.
 */
#ifndef SHX_MODULES_H
#define SHX_MODULES_H
#include <stddef.h>

#include "core/config.h"

#define SHX_MODULE_EXPORT __attribute__((visibility("default")))

/* What the host passes to a module entry: the module has its own copy of the host's state (log level ...). */
typedef struct shx_module_args {
    int log_level;
    const shx_config *cfg;
    int argc;
    char **argv;
    const char *submit, *code_dir; /* unpack */
    struct shx_pack_spec *pack;    /* pack (unpack/pack.h) */
    struct shx_http_req *http;     /* http (http/http.h) */
    char *const *env;              /* s3: the job's environment (credentials, region, endpoint) */
    const char *url, *dest, *region, *job_name, *dir;
    int bound_seconds;
    void *handle;                  /* s3 sync: the handle to start/finish */
    void **handle_out;             /* s3 sync: where prepare puts it */
    char *err;
    size_t errlen;
} shx_module_args;
typedef int (*shx_module_fn)(const shx_module_args *a);

/* `smhost serve` through serve.so.  Returns the exit code. */
int shx_modules_serve(const shx_config *cfg, int argc, char **argv);
/* shx_source_prepare() through unpack.so.  Same contract as source.h. */
int shx_modules_unpack(const char *submit, const char *code_dir, char *err, size_t errlen);
/* shx_pack_tgz() through unpack.so (unpack/pack.h). */
struct shx_pack_spec;
int shx_modules_pack(struct shx_pack_spec *spec, char *err, size_t errlen);
/* shx_http() through http.so (http/http.h). */
struct shx_http_req;
int shx_modules_http(struct shx_http_req *req, char *err, size_t errlen);
/* s3.so: download s3://bucket/key into dest (s3/s3.h shx_s3_download).  Returns 0 or an SHX_EXIT_* code with err. */
int shx_modules_s3_download(const char *url, char *const *env, const char *region, const char *dest, char *err,
                            size_t errlen);
/* s3.so: sagemaker_s3_output (s3/s3sync.h).  prepare: 0 with *h NULL (nothing to sync) or set, or an SHX_EXIT_*
 * code with err; start: after the job process was forked; finish: flush within bound_seconds (logs the outcome). */
int shx_modules_s3_sync_prepare(char *const *env, const char *region, const char *url, const char *job_name,
                                const char *dir, void **h, char *err, size_t errlen);
void shx_modules_s3_sync_start(void *h);
void shx_modules_s3_sync_finish(void *h, int bound_seconds);
#endif
