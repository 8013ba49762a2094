/* smhost serve's settings (settings.h). */
#include "serve/settings.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/util.h"
#include "supervisor/oom.h"
#include "job/job.h"

/* ---- environment ------------------------------------------------------------------------------------------ */
static int env_int(const char *name, int def, int lo, int hi, int *out, char *err, size_t errlen) {
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    long x;
    if (shx_parse_long(v, lo, hi, &x) < 0) {
        snprintf(err, errlen, "%s=%s is not a whole number from %d to %d: fix or unset it", name, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int env_true(const char *name) {
    const char *v = getenv(name);
    return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"));
}

int shx_usable_cpus(void) {
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = 1;
    char *text = NULL;
    size_t len;
    long quota = -1, period = 0;
    if (shx_read_file("/sys/fs/cgroup/cpu.max", &text, &len) == 0) {
        if (sscanf(text, "%ld %ld", &quota, &period) != 2) quota = -1; /* "max 100000" */
        free(text);
    } else {
        if (shx_read_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", &text, &len) == 0) {
            quota = strtol(text, NULL, 10);
            free(text);
            if (shx_read_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us", &text, &len) == 0) {
                period = strtol(text, NULL, 10);
                free(text);
            }
        }
    }
    if (quota > 0 && period > 0) {
        long q = (quota + period - 1) / period;
        if (q < n) n = (int)q;
    }
    return n < 1 ? 1 : n;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Which handler serves: SMHOST_SERVE_HANDLER names a handler plugin; a SAGEMAKER_PROGRAM ending in .so (or, with
 * no SAGEMAKER_PROGRAM and no inference.py, the one .so in model/code) is a native handler; else pyhandler. */
static int choose_handler(shx_serve_settings *s, char *err, size_t errlen) {
    const char *forced = getenv("SMHOST_SERVE_HANDLER");
    const char *program = getenv("SAGEMAKER_PROGRAM");
    if (forced && *forced) {
        s->handler_name = forced;
        s->handler_desc = shx_xasprintf("plugin %s (SMHOST_SERVE_HANDLER)", forced);
        s->python = !strcmp(forced, "pyhandler");
        return 0;
    }
    char *native = NULL;
    if (program && *program && ends_with(program, ".so")) {
        native = program[0] == '/' ? shx_xstrdup(program) : shx_path_join(s->code_dir, program);
        if (!shx_is_file(native)) {
            snprintf(err, errlen, "SAGEMAKER_PROGRAM=%s: %s does not exist; put the handler there or fix the variable",
                     program, native);
            free(native);
            return -1;
        }
    } else if (!(program && *program)) {
        char *py = shx_path_join(s->code_dir, "inference.py");
        if (!shx_is_file(py)) {
            shx_strvec found = {0};
            char *cmd_dir = s->code_dir;
            DIR *d = opendir(cmd_dir);
            if (d) {
                struct dirent *e;
                while ((e = readdir(d)))
                    if (ends_with(e->d_name, ".so")) shx_strvec_take(&found, shx_path_join(cmd_dir, e->d_name));
                closedir(d);
            }
            if (found.n == 1) native = shx_xstrdup(found.v[0]);
            if (found.n > 1) {
                snprintf(err, errlen, "%s holds %zu .so files; set SAGEMAKER_PROGRAM to the handler to serve", cmd_dir,
                         found.n);
                shx_strvec_free(&found);
                free(py);
                return -1;
            }
            shx_strvec_free(&found);
        }
        free(py);
    }
    if (native) {
        s->handler_path = native;
        s->handler_desc = shx_xasprintf("native handler %s", native);
        return 0;
    }
    s->handler_name = "pyhandler";
    s->python = 1;
    s->handler_desc = shx_xasprintf("pyhandler (%s/%s)", s->code_dir, program && *program ? program : "inference.py");
    return 0;
}

int shx_serve_settings_load(shx_serve_settings *s, const shx_config *cfg, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    int ncpu = shx_usable_cpus();
    if (env_int("SAGEMAKER_BIND_TO_PORT", 8080, 1, 65535, &s->port, err, errlen) ||
        env_int("SAGEMAKER_MODEL_SERVER_WORKERS", ncpu, 1, MAX_WORKERS, &s->workers, err, errlen) ||
        env_int("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, 1, 86400, &s->timeout_s, err, errlen) ||
        env_int("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, 1, 1000, &s->max_payload_mb, err, errlen) ||
        env_int("SMHOST_SERVE_GRACE_SECONDS", cfg->serve_grace_seconds, 0, 3600, &s->grace_s, err, errlen) ||
        env_int("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 0, 0, 100000, &s->max_concurrent_transforms, err, errlen) ||
        env_int("SMHOST_SERVE_PIPELINE", 16, 1, 256, &s->pipeline, err, errlen))
        return -1;
    /* The front holds at most this much of request bodies: 256 MiB, or a quarter of the cgroup's memory when that
     * is less, but always room for one whole body. */
    unsigned long long mem = shx_memory_limit();
    int queue_def = 256;
    if (mem && mem / 4 / MIB < (unsigned long long)queue_def) queue_def = (int)(mem / 4 / MIB);
    if (queue_def < s->max_payload_mb) queue_def = s->max_payload_mb;
    if (env_int("SMHOST_SERVE_QUEUE_MB", queue_def, 1, 1 << 20, &s->queue_mb, err, errlen) ||
        env_int("SMHOST_SERVE_HEADER_TIMEOUT", 60, 1, 3600, &s->header_timeout_s, err, errlen) ||
        env_int("SMHOST_SERVE_BODY_TIMEOUT", 20, 1, 3600, &s->body_timeout_s, err, errlen) ||
        env_int("SMHOST_SERVE_BODY_MIN_RATE", 65536, 1, 1 << 30, &s->body_min_rate, err, errlen) ||
        env_int("SMHOST_SERVE_MAX_CONNECTIONS", 4096, 16, 1 << 20, &s->max_conns, err, errlen) ||
        env_int("SMHOST_SERVE_MM_MEMORY_MB", 0, 0, 1 << 30, &s->mm_memory_mb, err, errlen) ||
        env_int("SMHOST_SERVE_MAX_REQUESTS", 0, 0, 1 << 30, &s->max_requests, err, errlen))
        return -1;
    if (s->queue_mb < s->max_payload_mb) {
        snprintf(err, errlen, "SMHOST_SERVE_QUEUE_MB=%d is less than SAGEMAKER_MAX_PAYLOAD_IN_MB=%d: no request "
                 "could ever be taken; raise it or unset it", s->queue_mb, s->max_payload_mb);
        return -1;
    }
    s->queue_budget = (size_t)s->queue_mb * MIB;
    if (!s->max_concurrent_transforms) s->max_concurrent_transforms = s->workers;
    const char *listen = getenv("SMHOST_SERVE_LISTEN"); /* `smhost local serve`: loopback only */
    if (listen && *listen) {
        s->listen_set = 1;
        s->listen_addr.sin_family = AF_INET;
        s->listen_addr.sin_port = htons((uint16_t)s->port);
        if (inet_pton(AF_INET, listen, &s->listen_addr.sin_addr) != 1) {
            snprintf(err, errlen, "SMHOST_SERVE_LISTEN=%s: expected an IPv4 address such as 127.0.0.1 (unset: every "
                     "interface)", listen);
            return -1;
        }
    }
    s->max_body = (size_t)s->max_payload_mb * MIB;
    s->multi_model = env_true("SAGEMAKER_MULTI_MODEL");
    s->access_log = env_true("SMHOST_SERVE_ACCESS_LOG");
    const char *mode = getenv("SMHOST_SERVE_INLINE");
    if (mode && *mode && strcmp(mode, "auto") && strcmp(mode, "never")) {
        snprintf(err, errlen, "SMHOST_SERVE_INLINE=%s: use auto (a handler declaring SMH_HANDLER_THREAD_SAFE runs in "
                 "the front process) or never (every handler runs in worker processes)", mode);
        return -1;
    }
    s->inline_never = mode && !strcmp(mode, "never");
    const char *pre = getenv("SMHOST_SERVE_PRELOAD");
    s->preload = !(pre && (!strcasecmp(pre, "false") || !strcmp(pre, "0") || !strcasecmp(pre, "no")));
    s->root = shx_ml_root(getenv("SAGEMAKER_BASE_DIR"));
    s->model_dir = shx_path_join(s->root, "model");
    s->code_dir = shx_path_join(s->model_dir, "code");
    s->models_dir = shx_path_join(s->root, "models");
    return choose_handler(s, err, errlen);
}


void shx_serve_settings_free(shx_serve_settings *s) {
    free(s->root), free(s->model_dir), free(s->code_dir), free(s->models_dir);
    free(s->handler_path), free(s->handler_desc);
    memset(s, 0, sizeof *s);
}
