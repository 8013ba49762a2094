/* The entries of the internal module s3.so (see plugin/modules.h and s3/s3.h). */
#include <curl/curl.h>
#include <stdio.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "plugin/modules.h"
#include "s3/s3.h"
#include "s3/s3sync.h"

static int init(const shx_module_args *a) {
    static int done;
    shx_log_set_level(a->log_level);
    if (!done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT)) return -1;
        done = 1;
    }
    return 0;
}

SHX_MODULE_EXPORT int shx_module_s3_download(const shx_module_args *a);
SHX_MODULE_EXPORT int shx_module_s3_download(const shx_module_args *a) {
    if (init(a)) return snprintf(a->err, a->errlen, "cannot initialize libcurl"), SHX_EXIT_SOFTWARE;
    shx_s3_url u;
    char e[2048];
    if (shx_s3_url_parse(a->url, 1, &u, e, sizeof e) < 0) {
        snprintf(a->err, a->errlen, "sagemaker_submit_directory: %s", e);
        return SHX_EXIT_DATAERR;
    }
    shx_s3 *s = shx_s3_new(a->env, a->region, u.bucket, e, sizeof e);
    int rc;
    if (!s) {
        snprintf(a->err, a->errlen, "sagemaker_submit_directory %s: %s", a->url, e);
        rc = SHX_EXIT_DATAERR;
    } else {
        shx_s3_stop_on_signals(s); /* StopTrainingJob during the download: stop now, not after it */
        rc = shx_s3_download(s, u.bucket, u.key, a->dest, e, sizeof e);
        if (rc) snprintf(a->err, a->errlen, "sagemaker_submit_directory: %s", e);
    }
    shx_s3_free(s);
    shx_s3_url_free(&u);
    return rc;
}

SHX_MODULE_EXPORT int shx_module_s3_sync_prepare(const shx_module_args *a);
SHX_MODULE_EXPORT int shx_module_s3_sync_prepare(const shx_module_args *a) {
    if (init(a)) return snprintf(a->err, a->errlen, "cannot initialize libcurl"), SHX_EXIT_SOFTWARE;
    shx_s3_sync *y = NULL;
    int rc = shx_s3_sync_prepare(a->env, a->region, a->url, a->job_name, a->dir, &y, a->err, a->errlen);
    *a->handle_out = y;
    return rc;
}

SHX_MODULE_EXPORT int shx_module_s3_sync_start(const shx_module_args *a);
SHX_MODULE_EXPORT int shx_module_s3_sync_start(const shx_module_args *a) {
    shx_s3_sync_start(a->handle);
    return 0;
}

SHX_MODULE_EXPORT int shx_module_s3_sync_finish(const shx_module_args *a);
SHX_MODULE_EXPORT int shx_module_s3_sync_finish(const shx_module_args *a) {
    shx_log_set_level(a->log_level);
    shx_s3_sync_finish(a->handle, a->bound_seconds);
    return 0;
}
