/* The host API table (smh_host_api v1.1).  Everything here runs in the job process (or a serving worker). */
#include "plugin/hostapi.h"
#include "dist/launch.h"
#include "job/envsize.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job/hyperparameters.h"
#include "plugin/backends.h"
#include "core/log.h"
#include "job/requirements.h"
#include "supervisor/supervisor.h"

#define J(job) ((struct smh_job *)(job))

static void api_log(const char *plugin, int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    shx_vlog(level, plugin ? plugin : "plugin", fmt, ap);
    va_end(ap);
}

static const char *api_job_path(const smh_job *job, smh_path which) {
    const shx_job *j = J(job)->job;
    switch (which) {
    case SMH_PATH_ROOT: return j->root;
    case SMH_PATH_INPUT: return j->input_dir;
    case SMH_PATH_INPUT_CONFIG: return j->input_config_dir;
    case SMH_PATH_INPUT_DATA: return j->input_data_dir;
    case SMH_PATH_CODE: return j->code_dir;
    case SMH_PATH_MODEL: return j->model_dir;
    case SMH_PATH_OUTPUT: return j->output_dir;
    case SMH_PATH_OUTPUT_DATA: return j->output_data_dir;
    case SMH_PATH_INTERMEDIATE: return j->intermediate_dir;
    case SMH_PATH_CHECKPOINTS: return j->checkpoints_dir;
    }
    return NULL;
}

static const char *api_job_program(const smh_job *job) {
    const shx_job *j = J(job)->job;
    if (!j->program) return NULL;
    /* A module name ("module:pkg.mod" or "pkg.mod" with no such file) is passed as given. */
    if (!strncmp(j->program, "module:", 7)) return j->program + 7;
    if (access(j->program_path, F_OK) != 0 && !strchr(j->program, '/')) return j->program;
    return j->program_path;
}

static const char *const *api_job_args(const smh_job *job) {
    static const char *const empty[] = {NULL};
    const shx_job *j = J(job)->job;
    return j->user_args.v ? (const char *const *)j->user_args.v : empty;
}
static const char *const *api_job_environ(const smh_job *job) {
    return (const char *const *)J(job)->job->env.v;
}
static const char *api_job_getenv(const smh_job *job, const char *name) {
    return shx_env_lookup(J(job)->job->env.v, name);
}

static long hp_index(const smh_job *job, const char *name) {
    const struct smh_job *h = J(job);
    for (size_t i = 0; i < h->hp_names.n; i++)
        if (!strcmp(h->hp_names.v[i], name)) return (long)i;
    return -1;
}
static size_t api_hp_count(const smh_job *job) {
    return J(job)->hp_names.n;
}
static const char *api_hp_name(const smh_job *job, size_t i) {
    return i < J(job)->hp_names.n ? J(job)->hp_names.v[i] : NULL;
}
static smh_type api_hp_type(const smh_job *job, const char *name) {
    const pyj_value *v = pyj_dict_get(J(job)->job->user_hps, name);
    if (!v) return SMH_TYPE_NONE;
    switch (v->type) {
    case PYJ_NULL: return SMH_TYPE_NULL;
    case PYJ_BOOL: return SMH_TYPE_BOOL;
    case PYJ_INT: return SMH_TYPE_INT;
    case PYJ_FLOAT: return SMH_TYPE_FLOAT;
    case PYJ_STR: return SMH_TYPE_STRING;
    case PYJ_LIST: return SMH_TYPE_LIST;
    case PYJ_DICT: return SMH_TYPE_DICT;
    }
    return SMH_TYPE_NONE;
}
static smh_status api_hp_str(const smh_job *job, const char *name, const char **out) {
    long i = hp_index(job, name);
    if (i < 0) return SMH_E_NOTFOUND;
    *out = J(job)->hp_str[i];
    return SMH_OK;
}
static smh_status api_hp_json(const smh_job *job, const char *name, const char **out) {
    long i = hp_index(job, name);
    if (i < 0) return SMH_E_NOTFOUND;
    *out = J(job)->hp_json[i];
    return SMH_OK;
}
static smh_status api_hp_int64(const smh_job *job, const char *name, int64_t *out) {
    const pyj_value *v = pyj_dict_get(J(job)->job->user_hps, name);
    if (!v) return SMH_E_NOTFOUND;
    if (v->type != PYJ_INT) return SMH_E_TYPE;
    errno = 0;
    char *end;
    long long x = strtoll(v->u.i, &end, 10);
    if (errno == ERANGE || *end) return SMH_E_RANGE;
    *out = (int64_t)x;
    return SMH_OK;
}
static smh_status api_hp_double(const smh_job *job, const char *name, double *out) {
    const pyj_value *v = pyj_dict_get(J(job)->job->user_hps, name);
    if (!v) return SMH_E_NOTFOUND;
    if (v->type == PYJ_FLOAT) *out = v->u.f;
    else if (v->type == PYJ_INT) *out = strtod(v->u.i, NULL);
    else return SMH_E_TYPE;
    return SMH_OK;
}
static smh_status api_hp_bool(const smh_job *job, const char *name, int *out) {
    const pyj_value *v = pyj_dict_get(J(job)->job->user_hps, name);
    if (!v) return SMH_E_NOTFOUND;
    if (v->type != PYJ_BOOL) return SMH_E_TYPE;
    *out = v->u.b;
    return SMH_OK;
}
/* The cache is filled on first use, from any thread (plugin.h: host functions may be called from any thread). */
static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER;

static smh_status framework_param_locked(const smh_job *job, const char *name, const char **out);
static smh_status api_framework_param(const smh_job *job, const char *name, const char **out) {
    pthread_mutex_lock(&fp_lock);
    smh_status st = framework_param_locked(job, name, out);
    pthread_mutex_unlock(&fp_lock);
    return st;
}

static smh_status framework_param_locked(const smh_job *job, const char *name, const char **out) {
    struct smh_job *h = J(job);
    /* Rendered once per name and kept for the job's life ("name\0value" entries). */
    size_t nl = strlen(name);
    for (size_t i = 0; i < h->fp_cache.n; i++)
        if (!strcmp(h->fp_cache.v[i], name)) {
            *out = h->fp_cache.v[i] + nl + 1;
            return SMH_OK;
        }
    const pyj_value *v = pyj_dict_get(h->job->framework_params, name);
    if (!v && !strncmp(name, "sagemaker_", 10)) v = pyj_dict_get(h->job->hyperparameters, name); /* fixed list */
    if (!v) return SMH_E_NOTFOUND;
    char *val = pyj_str_of(v);
    size_t vl = strlen(val);
    char *entry = shx_xmalloc(nl + vl + 2);
    memcpy(entry, name, nl + 1);
    memcpy(entry + nl + 1, val, vl + 1);
    free(val);
    shx_strvec_take(&h->fp_cache, entry);
    *out = entry + nl + 1;
    return SMH_OK;
}

static size_t api_channel_count(const smh_job *job) {
    return J(job)->job->channels.n;
}
static const char *api_channel_name(const smh_job *job, size_t i) {
    return i < J(job)->job->channels.n ? J(job)->job->channels.v[i] : NULL;
}
static const char *api_channel_dir(const smh_job *job, const char *name) {
    const pyj_value *cid = pyj_dict_get(J(job)->job->training_env, "channel_input_dirs");
    const pyj_value *v = pyj_dict_get(cid, name);
    return v ? pyj_as_string(v) : NULL;
}
static size_t api_host_count(const smh_job *job) {
    return J(job)->job->hosts.n;
}
static const char *api_host_name(const smh_job *job, size_t i) {
    return i < J(job)->job->hosts.n ? J(job)->job->hosts.v[i] : NULL;
}
static const char *api_current_host(const smh_job *job) {
    return J(job)->job->current_host;
}
static const char *api_master_host(const smh_job *job) {
    return J(job)->job->master;
}
static int api_is_master(const smh_job *job) {
    return J(job)->job->is_master;
}
static int api_num_cpus(const smh_job *job) {
    return J(job)->job->num_cpus;
}
static int api_num_gpus(const smh_job *job) {
    return J(job)->job->num_gpus;
}
static int api_num_neurons(const smh_job *job) {
    return J(job)->job->num_neurons;
}

char *shx_command_line(const char *const argv[]) {
    shx_buf b = {0};
    for (size_t i = 0; argv && argv[i]; i++) {
        const char *a = argv[i];
        if (i) shx_buf_addc(&b, ' ');
        if (*a && !strpbrk(a, " \t\n'\"\\$`")) {
            shx_buf_adds(&b, a);
            continue;
        }
        shx_buf_addc(&b, '\'');
        for (const char *c = a; *c; c++) {
            if (*c == '\'') shx_buf_adds(&b, "'\\''");
            else shx_buf_addc(&b, *c);
        }
        shx_buf_addc(&b, '\'');
    }
    return shx_buf_steal(&b);
}

static void api_set_command(const smh_job *job, const char *const argv[]) {
    shx_status_page *p = J(job)->page;
    if (!p) return;
    char *cmd = shx_command_line(argv);
    snprintf(p->command, sizeof p->command, "%s", cmd);
    free(cmd);
}

static void api_program_starting(const smh_job *job) {
    if (J(job)->page) J(job)->page->phase = SHX_PHASE_PROGRAM;
}

static void api_set_failure(const smh_job *job, const char *reason) {
    if (J(job)->page) shx_status_set_reason(J(job)->page, "ExecuteUserScriptError", reason);
}

static smh_status api_exec(const smh_job *job, const char *const argv[], const char *const envp[], char *err,
                           size_t errlen) {
    if (!argv || !argv[0]) {
        snprintf(err, errlen, "exec() needs argv[0]");
        return SMH_E_INVAL;
    }
    char *const *env = (char *const *)(envp ? envp : api_job_environ(job));
    if (shx_exec_size_check(argv, (const char *const *)env, err, errlen)) { /* E2BIG, said before trying */
        J(job)->exec_errno = E2BIG;
        return SMH_E_EXEC;
    }
    api_set_command(job, argv);
    api_program_starting(job);
    shx_sup_child_reset_signals();
    /* execvpe searches PATH as the child's environment would have it; with no '/' only. */
    const char *path = shx_env_lookup(env, "PATH");
    if (path) setenv("PATH", path, 1);
    execvpe(argv[0], (char *const *)argv, env);
    int e = errno;
    J(job)->exec_errno = e;
    if (J(job)->page) J(job)->page->phase = SHX_PHASE_RUNNER;
    snprintf(err, errlen, "cannot execute %s: %s%s", argv[0], strerror(e),
             e == ENOENT ? " (check the path, and the interpreter named on its #! line)"
             : e == EACCES ? " (is it executable? chmod +x it, or use a .sh/.py name so a runner picks it up)"
                           : "");
    return SMH_E_EXEC;
}

static smh_status api_spawn_wait(const smh_job *job, const char *const argv[], const char *const envp[],
                                 const char *cwd, int *exit_code, char *err, size_t errlen) {
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(errno));
        return SMH_E_FAIL;
    }
    if (pid == 0) {
        if (cwd && chdir(cwd) < 0) {
            fprintf(stderr, "smhost: cannot change to %s: %s\n", cwd, strerror(errno));
            _exit(126);
        }
        char *const *env = (char *const *)(envp ? envp : api_job_environ(job));
        char why[1024];
        if (shx_exec_size_check(argv, (const char *const *)env, why, sizeof why)) {
            fprintf(stderr, "smhost: %s\n", why);
            _exit(126);
        }
        const char *path = shx_env_lookup(env, "PATH");
        if (path) setenv("PATH", path, 1);
        execvpe(argv[0], (char *const *)argv, env);
        fprintf(stderr, "smhost: cannot execute %s: %s\n", argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "waiting for %s: %s", argv[0], strerror(errno));
            return SMH_E_FAIL;
        }
    }
    *exit_code = shx_exit_code_of(st);
    return SMH_OK;
}

static volatile sig_atomic_t g_cancel;
static void on_cancel(int sig) {
    (void)sig;
    g_cancel = 1;
}
static void api_watch_cancel(const smh_job *job) {
    (void)job;
    struct sigaction sa = {0};
    sa.sa_handler = on_cancel;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}
static int api_cancel_requested(const smh_job *job) {
    (void)job;
    return g_cancel != 0;
}

/* No response exists outside a handler's invoke(): the serve module's table replaces these (shx_host_api_copy). */
static smh_status api_no_resp_write(smh_response *resp, const void *data, size_t len) {
    (void)resp, (void)data, (void)len;
    return SMH_E_UNSUPPORTED;
}
static smh_status api_no_resp_set_status(smh_response *resp, int http_status) {
    (void)resp, (void)http_status;
    return SMH_E_UNSUPPORTED;
}
static smh_status api_no_resp_set_str(smh_response *resp, const char *value) {
    (void)resp, (void)value;
    return SMH_E_UNSUPPORTED;
}

static const char *const *api_pip_environ(const smh_job *job) {
    struct smh_job *h = J(job);
    pthread_mutex_lock(&fp_lock);
    if (!h->pip_env) {
        const shx_config *cfg = h->job->cfg;
        h->pip_env = shx_pip_environ((const char *const *)h->job->env.v, cfg ? cfg->pip_break_system_packages : 1);
    }
    pthread_mutex_unlock(&fp_lock);
    return h->pip_env;
}

/* v1.1: the job's devices (job/devview.h); the backend-side calls live in plugin/backends.c. */
static size_t api_device_count(const smh_job *job) {
    return J(job)->job->devices.n;
}
static const smh_device *api_device_get(const smh_job *job, size_t i) {
    const shx_devview *v = &J(job)->job->devices;
    return i < v->n ? &v->devs[i] : NULL;
}

static int api_status_fd(const smh_job *job) {
    shx_status_page *p = J(job)->page;
    return p ? p->fd : -1;
}

static const smh_host_api g_api = {
    .struct_size = sizeof(smh_host_api),
    .abi_major = SMH_ABI_MAJOR,
    .abi_minor = SMH_ABI_MINOR,
    .log = api_log,
    .job_path = api_job_path,
    .job_program = api_job_program,
    .job_args = api_job_args,
    .job_environ = api_job_environ,
    .job_getenv = api_job_getenv,
    .hp_count = api_hp_count,
    .hp_name = api_hp_name,
    .hp_type = api_hp_type,
    .hp_str = api_hp_str,
    .hp_json = api_hp_json,
    .hp_int64 = api_hp_int64,
    .hp_double = api_hp_double,
    .hp_bool = api_hp_bool,
    .framework_param = api_framework_param,
    .channel_count = api_channel_count,
    .channel_name = api_channel_name,
    .channel_dir = api_channel_dir,
    .host_count = api_host_count,
    .host_name = api_host_name,
    .current_host = api_current_host,
    .master_host = api_master_host,
    .is_master = api_is_master,
    .num_cpus = api_num_cpus,
    .num_gpus = api_num_gpus,
    .num_neurons = api_num_neurons,
    .exec = api_exec,
    .spawn_wait = api_spawn_wait,
    .program_starting = api_program_starting,
    .set_failure = api_set_failure,
    .watch_cancel = api_watch_cancel,
    .cancel_requested = api_cancel_requested,
    .resp_write = api_no_resp_write,
    .resp_set_status = api_no_resp_set_status,
    .resp_set_content_type = api_no_resp_set_str,
    .resp_set_custom_attributes = api_no_resp_set_str,
    .set_command = api_set_command,
    /* v1.1 */
    .pip_environ = api_pip_environ,
    .device_count = api_device_count,
    .device_get = api_device_get,
    .device_add = shx_sink_device_add,
    .device_set_info = shx_sink_set_info,
    .device_set_env = shx_sink_set_env,
    .launch_add = shx_launch_add,
    .launch_setenv = shx_launch_setenv,
    .launch_error_file = shx_launch_error_file,
    .launch_wait_port = shx_launch_wait_port,
    .launch_rank_host = shx_launch_rank_host,
    .status_fd = api_status_fd,
};

const smh_host_api *shx_host_api(void) {
    return &g_api;
}

void shx_host_api_copy(smh_host_api *out) {
    *out = g_api;
}

void shx_hostapi_job_init(struct smh_job *hj, shx_job *job, shx_status_page *page) {
    memset(hj, 0, sizeof *hj);
    hj->job = job;
    hj->page = page;
    const pyj_value *h = job->user_hps;
    for (size_t i = 0; h && i < h->u.dict.n; i++) shx_strvec_push(&hj->hp_names, h->u.dict.keys[i].s);
    shx_strvec_sort(&hj->hp_names);
    hj->hp_str = shx_xcalloc(hj->hp_names.n + 1, sizeof(char *));
    hj->hp_json = shx_xcalloc(hj->hp_names.n + 1, sizeof(char *));
    for (size_t i = 0; i < hj->hp_names.n; i++) {
        const pyj_value *v = pyj_dict_get(h, hj->hp_names.v[i]);
        hj->hp_str[i] = v->type == PYJ_NULL ? shx_xstrdup("") : pyj_str_of(v);
        hj->hp_json[i] = pyj_dumps(v, 1);
    }
}

void shx_hostapi_job_free(struct smh_job *hj) {
    for (size_t i = 0; i < hj->hp_names.n; i++) {
        free(hj->hp_str[i]);
        free(hj->hp_json[i]);
    }
    free(hj->hp_str);
    free(hj->hp_json);
    shx_strvec_free(&hj->hp_names);
    shx_strvec_free(&hj->fp_cache);
    free((void *)hj->pip_env);
    memset(hj, 0, sizeof *hj);
}
