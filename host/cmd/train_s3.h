/* `smhost train` and S3 (contract section 8), through the internal module s3.so: an s3:// submit directory, and
 * sagemaker_s3_output synced while the job runs. */
#ifndef SHX_TRAIN_S3_H
#define SHX_TRAIN_S3_H
#include <stddef.h>

#include "job/job.h"

/* job->submit_dir is s3://...: download it into a temporary directory, unpack it into job->code_dir (unless that
 * is not empty), remove the download.  Returns 0, or an SHX_EXIT_* code with err naming the URL. */
int shx_train_s3_source(const shx_job *job, char *err, size_t errlen);
/* sagemaker_s3_output: 0 with *h NULL (nothing to sync) or set (watching), or an SHX_EXIT_* code with err. */
int shx_train_s3_sync_begin(const shx_job *job, void **h, char *err, size_t errlen);
/* shx_sup_opts.on_started: start uploading (h may be NULL). */
void shx_train_s3_sync_started(void *h);
/* After the job: the last uploads, bounded by SMHOST_S3_FLUSH_SECONDS (default 120).  h may be NULL. */
void shx_train_s3_sync_end(const shx_job *job, void *h);
#endif
