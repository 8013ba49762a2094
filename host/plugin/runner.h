/* The training-runner policy: contract section 4's kind rules, the config's overrides and the plugins' claims,
 * decided by the host from the program file alone (no plugin code runs to pick a runner). */
#ifndef SHX_RUNNER_H
#define SHX_RUNNER_H
#include "core/config.h"
#include "job/job.h"
#include "plugin/registry.h"

/* The runner plugin's name for the job's program: python when SAGEMAKER_TRAINING_MODULE is set, config override by
 * extension, then the contract's kinds
 * (.sh -> shell; setup.py or pyproject.toml -> python; .py -> python; a module name -> python), then a plugin
 * claiming the extension or the ELF type, then the runner claiming executables (exec).  Returns NULL (with `why`) when the program is missing.
 * Caller frees. */
char *shx_runner_for(shx_registry *r, const shx_job *job, char *why, size_t whylen,
                     int *exit_code);
#endif
