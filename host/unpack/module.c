/* The entry of the internal module unpack.so (see modules.h): sagemaker_submit_directory with libarchive. */
#include "core/log.h"
#include "plugin/modules.h"
#include "unpack/source.h"
#include "unpack/pack.h"

SHX_MODULE_EXPORT int shx_module_unpack(const shx_module_args *a);
SHX_MODULE_EXPORT int shx_module_unpack(const shx_module_args *a) {
    shx_log_set_level(a->log_level);
    return shx_source_prepare(a->submit, a->code_dir, a->err, a->errlen);
}

SHX_MODULE_EXPORT int shx_module_pack(const shx_module_args *a);
SHX_MODULE_EXPORT int shx_module_pack(const shx_module_args *a) {
    shx_log_set_level(a->log_level);
    return shx_pack_tgz(a->pack, a->err, a->errlen);
}
