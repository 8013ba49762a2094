/* sagemaker_s3_output: intermediate output synced to S3 during the job (s3sync.c). */
#ifndef SHX_S3SYNC_H
#define SHX_S3SYNC_H
#include <stddef.h>

typedef struct shx_s3_sync shx_s3_sync;
/* url: the sagemaker_s3_output hyperparameter.  Returns 0 with *out NULL when there is nothing to sync (no URL,
 * file://, or dir existing at start: the platform syncs it), 0 with *out set (dir created and watched), or an
 * SHX_EXIT_* code with err (another scheme, a malformed URL, no TRAINING_JOB_NAME, no credentials). */
int shx_s3_sync_prepare(char *const *env, const char *hp_region, const char *url, const char *job_name,
                        const char *dir, shx_s3_sync **out, char *err, size_t errlen);
/* Start the upload thread (in the supervisor, after the job process was forked). */
int shx_s3_sync_start(shx_s3_sync *y);
/* Upload what is left and stop, within bound_seconds.  Returns the number of files that could not be uploaded,
 * or -1 when the bound ran out.  Frees y (except after a timeout). */
int shx_s3_sync_finish(shx_s3_sync *y, int bound_seconds);
void shx_s3_sync_free(shx_s3_sync *y);
#endif
