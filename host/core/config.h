/* /etc/smhost/smhost.ini (SMHOST_CONFIG overrides), parsed with inih. */
#ifndef SHX_CONFIG_H
#define SHX_CONFIG_H
#include "core/util.h"

typedef struct shx_runner_override {
    char *ext;    /* ".jl" */
    char *runner; /* plugin name */
} shx_runner_override;

#define SHX_HEALTH_FAIL 0
#define SHX_HEALTH_WARN 1
#define SHX_HEALTH_OFF 2

typedef struct shx_config {
    char *path;                 /* the file read, or NULL when none */
    shx_strvec plugin_path;     /* [smhost] plugin_path, colon list */
    int log_level;              /* [smhost] log_level; -1 when unset */
    int stop_grace_seconds;     /* [smhost] stop_grace_seconds: train, default 110 */
    int serve_grace_seconds;    /* [smhost] serve_grace_seconds: default 25 */
    int dns_timeout_seconds;    /* [smhost] dns_timeout_seconds: default 900 */
    int max_run_seconds;        /* [smhost] max_run_seconds: 0 = no limit */
    int pip_break_system_packages; /* [python] break_system_packages: default 1 (container use) */
    int device_health_check;    /* [devices] health_check: SHX_HEALTH_FAIL (default), _WARN or _OFF */
    int device_isolate;         /* [devices] isolate: default 0 (every rank sees every device) */
    shx_strvec device_backends; /* [devices] backends, when device_backends_set (shx_config_device_backends) */
    int device_backends_set;
    int device_probe_timeout_seconds; /* [devices] probe_timeout_seconds: default 60 */
    int dist_failure_grace_seconds; /* [distributed] failure_grace_seconds: default 10 */
    int dist_master_port;       /* [distributed] master_port: default 7777 (MASTER_PORT of torch ranks) */
    int dist_control_port;      /* [distributed] control_port: default 7779 (smhost's own host-to-master link) */
    int dist_start_timeout_seconds; /* [distributed] start_timeout_seconds: barrier and port waits, default 600 */
    shx_runner_override *overrides; /* [runners] .ext = name */
    size_t noverrides;
} shx_config;

/* Load the configuration.  A missing default file is fine (defaults); a missing file named by SMHOST_CONFIG,
 * an unreadable or malformed file is an error written to err ("file:line: ..." with the key, the value, what
 * is expected and the default).  Unknown sections and keys warn with file:line.  Returns 0 or -1; either way
 * cfg is initialised (defaults after an error) and shx_config_free may be called on it. */
int shx_config_load(shx_config *cfg, char *err, size_t errlen);
/* The same for one file: a missing file is an error only when must_exist. */
int shx_config_load_file(shx_config *cfg, const char *path, int must_exist, char *err, size_t errlen);
void shx_config_free(shx_config *cfg);
/* The backend plugins to consider, in order: [devices] backends, default nvidia, neuron, amd.  Appends copies. */
void shx_config_device_backends(const shx_config *cfg, shx_strvec *out);
/* The runner plugin named in [runners] for ext (".jl", compared exactly), or NULL. */
const char *shx_config_runner_for(const shx_config *cfg, const char *ext);
#endif
