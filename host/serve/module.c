/* The entry of the internal module serve.so (see modules.h): `smhost serve` with libmicrohttpd. */
#include "core/log.h"
#include "plugin/modules.h"
#include "serve/serve.h"

SHX_MODULE_EXPORT int shx_module_serve(const shx_module_args *a);
SHX_MODULE_EXPORT int shx_module_serve(const shx_module_args *a) {
    shx_log_set_level(a->log_level);
    return shx_serve_main(a->cfg, a->argc, a->argv);
}
