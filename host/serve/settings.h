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
    /* hostile-client limits (docs/serving.md "Limits") */
    int queue_mb;          /* SMHOST_SERVE_QUEUE_MB: request bodies the front holds at once, MiB */
    size_t queue_budget;   /* the same in bytes */
    int header_timeout_s;  /* SMHOST_SERVE_HEADER_TIMEOUT: a request's headers must be complete by then */
    int body_timeout_s;    /* SMHOST_SERVE_BODY_TIMEOUT: and its body within this ... */
    int body_min_rate;     /* SMHOST_SERVE_BODY_MIN_RATE: ... plus one second per this many bytes */
    int max_conns;         /* SMHOST_SERVE_MAX_CONNECTIONS */
    int mm_memory_mb;      /* SMHOST_SERVE_MM_MEMORY_MB: a worker over it evicts models before loading one (0: none) */
    int max_requests;      /* SMHOST_SERVE_MAX_REQUESTS: a worker is replaced after this many (0: never) */
    int access_log;        /* SMHOST_SERVE_ACCESS_LOG: every request at INFO (else DEBUG; 5xx always WARNING) */
    int inline_never;      /* SMHOST_SERVE_INLINE=never: a thread-safe handler too runs in worker processes */
    int listen_set;               /* SMHOST_SERVE_LISTEN: listen on this IPv4 address only */
    struct sockaddr_in listen_addr;
} shx_serve_settings;


/* Reads the process environment and cfg into *s.  Returns 0, or -1 with err naming the variable and the fix. */
int shx_serve_settings_load(shx_serve_settings *s, const shx_config *cfg, char *err, size_t errlen);
void shx_serve_settings_free(shx_serve_settings *s);
/* CPUs this container may use: the affinity mask, capped by a cgroup CPU quota (v2 cpu.max, v1 cfs quota). */
int shx_usable_cpus(void);
#endif
