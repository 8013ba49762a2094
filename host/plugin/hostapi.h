/* The host API table handed to plugins (smh_host_api), and the job handle behind smh_job. */
#ifndef SHX_HOSTAPI_H
#define SHX_HOSTAPI_H
#include <smhost/plugin.h>

#include "job/job.h"
#include "supervisor/status.h"

struct smh_job {
    shx_job *job;
    shx_status_page *page;   /* may be NULL outside a supervised job process */
    shx_strvec hp_names;     /* sorted user hyperparameter names */
    char **hp_str, **hp_json;/* per sorted name */
    int exec_errno;          /* errno of the last failed exec(), 0 if none */
    shx_strvec fp_cache;     /* framework_param() answers, "name\0value" */
    const char **pip_env;    /* pip_environ(), made on first use */
};

void shx_hostapi_job_init(struct smh_job *hj, shx_job *job, shx_status_page *page);
/* Free what init and the calls made (for handles that do not live until the process exits: `smhost env`). */
void shx_hostapi_job_free(struct smh_job *hj);
/* The table for training jobs and `smhost plugins`: the resp_* members return SMH_E_UNSUPPORTED, as no response
 * exists there. */
const smh_host_api *shx_host_api(void);
/* A copy of that table, for the serve module to fill in resp_* with its own functions. */
void shx_host_api_copy(smh_host_api *out);
/* Render argv for humans (and the failure file): words with spaces or quotes are quoted. */
char *shx_command_line(const char *const argv[]);
#endif
