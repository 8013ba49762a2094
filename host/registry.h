/* Finding plugins: the search path, lookup by name, the full scan for `smhost plugins`, and choosing the
 * runner for a program (contract section 4's kind rules, then claims). */
#ifndef SHX_REGISTRY_H
#define SHX_REGISTRY_H
#include "config.h"
#include "job.h"
#include "loader.h"

typedef struct shx_registry {
    shx_strvec dirs;      /* SMHOST_PLUGIN_PATH, then config plugin_path, then <exe>/../lib/smhost/plugins */
    shx_plugin *items;    /* every file looked at, usable or refused */
    size_t n, cap;
    int scanned;
} shx_registry;

void shx_registry_init(shx_registry *r, const shx_config *cfg);
void shx_registry_free(shx_registry *r);
/* Load every *.so of every directory (once). */
void shx_registry_scan(shx_registry *r);
/* The first usable plugin called `name`: tries <dir>/<name>.so in order, then a full scan.  NULL when none;
 * then `why` says what was found instead (refusals, with reasons) and where it looked. */
const shx_plugin *shx_registry_find(shx_registry *r, const char *name, char *why, size_t whylen);
/* The runner plugin's name for the job's program: python when SAGEMAKER_TRAINING_MODULE is set, config override by
 * extension, then the contract's kinds
 * (.sh -> shell; setup.py or pyproject.toml -> python; .py -> python; a module name -> python), then a plugin
 * claiming the extension or the ELF type, then exec.  Returns NULL (with `why`) when the program is missing.
 * Caller frees. */
char *shx_registry_runner_for(shx_registry *r, const shx_config *cfg, const shx_job *job, char *why, size_t whylen,
                              int *exit_code);
#endif
