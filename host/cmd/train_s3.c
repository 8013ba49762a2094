/* `smhost train` and S3: see train_s3.h. */
#include "cmd/train_s3.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"
#include "job/job.h"
#include "plugin/modules.h"

static const char *hp_string(const shx_job *job, const char *name) {
    return pyj_as_string(pyj_dict_get(job->hyperparameters, name));
}

int shx_train_s3_source(const shx_job *job, char *err, size_t errlen) {
    if (!shx_dir_is_empty(job->code_dir)) {
        shx_info("%s is not empty: using the code there, not sagemaker_submit_directory %s", job->code_dir,
                 job->submit_dir);
        return 0;
    }
    const char *tmpdir = shx_job_inherited(job, "TMPDIR");
    char *dir = shx_xasprintf("%s/smhost-s3-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "sagemaker_submit_directory %s: cannot create a temporary directory %s: %s; check "
                 "TMPDIR", job->submit_dir, dir, strerror(errno));
        free(dir);
        return SHX_EXIT_CANTCREAT;
    }
    const char *base = strrchr(job->submit_dir, '/');
    base = base && base[1] ? base + 1 : "sourcedir.tar.gz";
    char *dest = shx_path_join(dir, base);
    shx_info("downloading sagemaker_submit_directory %s", job->submit_dir);
    int rc = shx_modules_s3_download(job->submit_dir, job->inherited.v, hp_string(job, "sagemaker_region"), dest, err,
                                     errlen);
    if (!rc) {
        char e[3072];
        rc = shx_modules_unpack(dest, job->code_dir, e, sizeof e);
        if (rc) snprintf(err, errlen, "sagemaker_submit_directory %s was downloaded, but it cannot be unpacked "
                         "(it must be a tar archive, optionally gzip-compressed): %s", job->submit_dir, e);
    }
    unlink(dest);
    rmdir(dir);
    free(dest);
    free(dir);
    return rc;
}

int shx_train_s3_sync_begin(const shx_job *job, void **h, char *err, size_t errlen) {
    *h = NULL;
    const pyj_value *v = pyj_dict_get(job->hyperparameters, "sagemaker_s3_output");
    if (!v || v->type == PYJ_NULL) return 0;
    const char *url = pyj_as_string(v);
    if (!url) {
        snprintf(err, errlen, "sagemaker_s3_output must be a string URL (s3://BUCKET/PREFIX or file://...)");
        return SHX_EXIT_DATAERR;
    }
    if (!*url) return 0;
    return shx_modules_s3_sync_prepare(job->inherited.v, hp_string(job, "sagemaker_region"), url,
                                       shx_job_inherited(job, "TRAINING_JOB_NAME"), job->intermediate_dir, h, err,
                                       errlen);
}

void shx_train_s3_sync_started(void *h) {
    if (h) shx_modules_s3_sync_start(h);
}

void shx_train_s3_sync_end(const shx_job *job, void *h) {
    if (!h) return;
    const char *b = shx_job_inherited(job, "SMHOST_S3_FLUSH_SECONDS");
    int bound = 120;
    if (b && *b) {
        long n;
        if (shx_parse_long(b, 0, 86400, &n) < 0) shx_warn("SMHOST_S3_FLUSH_SECONDS=%s is not a number of seconds; using 120", b);
        else bound = (int)n;
    }
    shx_modules_s3_sync_finish(h, bound);
}
