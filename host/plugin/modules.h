/*
 * Internal modules: the parts of smhost with heavy library dependencies live in shared objects under
 * <dir of smhost>/../lib/smhost/internal/ and are loaded only when used, so `smhost train` does not map
 * libmicrohttpd (GnuTLS ...) or libarchive (libxml2, ICU ...) on every start:
 *   serve.so   `smhost serve` (libmicrohttpd)
 *   unpack.so  unpacking sagemaker_submit_directory, packing model.tar.gz/output.tar.gz (libarchive)
 *   http.so    the HTTP client of `smhost local invoke/serve/transform` (libcurl)
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
#endif
