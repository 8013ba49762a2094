/* `smhost train` (contract sections 1-5). */
#ifndef SHX_TRAIN_H
#define SHX_TRAIN_H
#include "core/config.h"
#include "job/job.h"
/* Run the training job; returns smhost's exit code. */
int shx_train_main(const shx_config *cfg);
/* The toolkit-style startup log (training env, variables), secrets masked. */
void shx_train_log_startup(const shx_job *job);
/* The job's program through its runner plugin, in this process (usually ends in exec).  Returns the exit code. */
struct shx_status_page;
int shx_train_run_program(shx_job *job, struct shx_status_page *page);
/* `smhost rank`: run the job's program as one rank started by another program (mpirun). */
int shx_rank_main(const shx_config *cfg);
#endif
