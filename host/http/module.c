/* The entry of the internal module http.so (see plugin/modules.h): one HTTP request with libcurl. */
#include "core/log.h"
#include "http/http.h"
#include "plugin/modules.h"

SHX_MODULE_EXPORT int shx_module_http(const shx_module_args *a);
SHX_MODULE_EXPORT int shx_module_http(const shx_module_args *a) {
    shx_log_set_level(a->log_level);
    return shx_http(a->http, a->err, a->errlen);
}
