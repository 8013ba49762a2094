/* smhost serve's settings: the SAGEMAKER_* / SMHOST_SERVE_* environment and smhost.ini read once, and the choice
 * of handler (a handler plugin, a native handler .so, or pyhandler).  Pure: no sockets, no processes; unit-tested. */
#ifndef SHX_SERVE_SETTINGS_H
#define SHX_SERVE_SETTINGS_H
#include <netinet/in.h>
#include <stddef.h>

#include "core/config.h"

#define MAX_WORKERS 256
#define MIB (1024u * 1024u)

typedef struct shx_serve_settings {
    int port;
    int workers;
    int timeout_s;
    size_t max_body;
    int max_payload_mb;
    int grace_s;
    int multi_model;
    int max_concurrent_transforms;
    char *root, *model_dir, *code_dir, *models_dir;
    const char *handler_name; /* a plugin found by the zygote through the registry, or */
    char *handler_path;       /* a native handler's .so */
    char *handler_desc; /* for logs: "pyhandler (inference.py)" */
    int python, preload;
    int pipeline; /* requests sent ahead to a busy worker (single model) */
    int listen_set;               /* SMHOST_SERVE_LISTEN: listen on this IPv4 address only */
    struct sockaddr_in listen_addr;
} shx_serve_settings;


/* Reads the process environment and cfg into *s.  Returns 0, or -1 with err naming the variable and the fix. */
int shx_serve_settings_load(shx_serve_settings *s, const shx_config *cfg, char *err, size_t errlen);
void shx_serve_settings_free(shx_serve_settings *s);
/* CPUs this container may use: the affinity mask, capped by a cgroup CPU quota (v2 cpu.max, v1 cfs quota). */
int shx_usable_cpus(void);
#endif
