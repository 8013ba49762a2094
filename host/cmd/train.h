/* `smhost train` (contract sections 1-5). */
#ifndef SHX_TRAIN_H
#define SHX_TRAIN_H
#include "core/config.h"
#include "job/job.h"
/* Run the training job; returns smhost's exit code. */
int shx_train_main(const shx_config *cfg);
/* The toolkit-style startup log (training env, variables), secrets masked. */
void shx_train_log_startup(const shx_job *job);
#endif
