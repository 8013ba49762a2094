/* Finding plugins: the search path, lookup by name, the full scan for `smhost plugins`.  Which runner a job uses
 * is policy, in runner.h. */
#ifndef SHX_REGISTRY_H
#define SHX_REGISTRY_H
#include "core/config.h"
#include "plugin/loader.h"

typedef struct shx_registry {
    shx_strvec dirs;      /* SMHOST_PLUGIN_PATH, then config plugin_path, then <exe>/../lib/smhost/plugins */
    shx_plugin *items;    /* every file looked at, usable or refused */
    size_t n, cap;
    int scanned;
} shx_registry;

void shx_registry_init(shx_registry *r, const shx_config *cfg);
void shx_registry_free(shx_registry *r);
/* Free the registry's memory but leave every plugin loaded: after a runner ran in this process, its code, and threads
 * that it or the libraries it loaded started, may still be in use until the process exits. */
void shx_registry_release(shx_registry *r);
/* Load every *.so of every directory (once). */
void shx_registry_scan(shx_registry *r);
/* The first usable plugin called `name`: tries <dir>/<name>.so in order, then a full scan.  NULL when none;
 * then `why` says what was found instead (refusals, with reasons) and where it looked. */
const shx_plugin *shx_registry_find(shx_registry *r, const char *name, char *why, size_t whylen);
#endif
