/* The embedded Python runner: descriptor, init, and run() -- which program to run and how.
 *
 * Everything here happens in the job process (the supervisor forks it and loads this plugin there); the
 * interpreter is started in run(), never earlier, so listing plugins or supervising never touches Python. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pyplugin.h"

typedef struct smhpy_state {
    const smh_host_api *host;
} smhpy_state;

static smh_status py_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    if (host == NULL || host->struct_size < sizeof(smh_host_api)) {
        snprintf(err, errlen, "the host's API table is older than SDK %d.%d; rebuild the python plugin with the "
                 "host's SDK", SMH_ABI_MAJOR, SMH_ABI_MINOR);
        return SMH_E_UNSUPPORTED;
    }
    smhpy_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return SMH_E_NOMEM;
    }
    s->host = host;
    *state = s;
    return SMH_OK;
}

static void py_fini(void *state) { free(state); }

static int is_file(const char *dir, const char *name) {
    char p[4096];
    struct stat st;
    if (snprintf(p, sizeof(p), "%s/%s", dir, name) >= (int)sizeof(p)) return 0;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* A code dir with setup.py or pyproject.toml is a package: `python3 -m pip install .` there, as the toolkit
 * does, then `python3 -m <module>`.  Returns 0, or the exit code with the failure reported. */
static int install_package(const smh_host_api *host, const smh_job *job, const char *code_dir) {
    if (!SMH_HOST_HAS(host, pip_environ)) {
        host->set_failure(job, "InstallModuleError: this smhost is older than the python plugin (no pip_environ); "
                               "install matching versions");
        return 70;
    }
    const char *const *envp = host->pip_environ(job);

    const char *argv[] = {SMHPY_PYTHON3, "-m", "pip", "install", ".", NULL};
    host->log(SMHPY_NAME, SMH_LOG_INFO, "Installing the package in %s: %s -m pip install .", code_dir,
              SMHPY_PYTHON3);
    char err[512] = "";
    int code = 0;
    smh_status st = host->spawn_wait(job, argv, envp, code_dir, &code, err, sizeof(err));
    char msg[1024];
    if (st != SMH_OK) {
        snprintf(msg, sizeof(msg), "InstallModuleError: cannot run %s -m pip install . in %s: %s", SMHPY_PYTHON3,
                 code_dir, err);
        host->set_failure(job, msg);
        return st == SMH_E_EXEC ? 127 : 1;
    }
    if (code != 0) {
        snprintf(msg, sizeof(msg),
                 "InstallModuleError: `%s -m pip install .` in %s exited with code %d; pip's output is in the "
                 "job log above this message", SMHPY_PYTHON3, code_dir, code);
        host->set_failure(job, msg);
        return code;
    }
    return 0;
}

static int copy_name(char *dst, size_t cap, const char *src, size_t len) {
    if (len == 0 || len >= cap) return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* Decide what to run.  Returns 0, or an exit code with the failure reported (a user error). */
static int pick_target(const smh_host_api *host, const smh_job *job, smhpy_target *t, int *install) {
    char msg[1024];
    const char *code_dir = host->job_path(job, SMH_PATH_CODE);
    const char *program = host->job_program(job);
    const char *fm = host->job_getenv(job, "SAGEMAKER_TRAINING_MODULE");
    memset(t, 0, sizeof(*t));
    *install = 0;
    t->sys_path0 = code_dir;

    /* Framework images: the toolkit's train() imports module and calls function() instead of the program. */
    if (fm != NULL && *fm != '\0') {
        const char *colon = strchr(fm, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL ||
            copy_name(t->module, sizeof(t->module), fm, (size_t)(colon - fm)) != 0 ||
            copy_name(t->function, sizeof(t->function), colon + 1, strlen(colon + 1)) != 0) {
            snprintf(msg, sizeof(msg),
                     "SAGEMAKER_TRAINING_MODULE=%.200s is not of the form module:function "
                     "(for example sagemaker_pytorch_container.training:main); fix the image's environment",
                     fm);
            host->set_failure(job, msg);
            host->log(SMHPY_NAME, SMH_LOG_ERROR, "%s", msg);
            return 1;
        }
        t->kind = SMHPY_ENTRY;
        return 0;
    }
    if (program == NULL || *program == '\0') {
        host->set_failure(job, "no Python program was given: set SAGEMAKER_PROGRAM or the sagemaker_program "
                               "hyperparameter");
        return 2;
    }
    const char *modname = NULL;
    if (strncmp(program, "module:", 7) == 0)
        modname = program + 7;
    else if (program[0] != '/')
        modname = program; /* a dotted module name that is no file */
    int package = code_dir != NULL && (is_file(code_dir, "setup.py") || is_file(code_dir, "pyproject.toml"));

    if (modname == NULL && !package) {
        t->kind = SMHPY_SCRIPT;
        t->script = program;
        t->sys_path0 = NULL; /* the script's own directory, computed in interp.c */
        return 0;
    }
    t->kind = SMHPY_MODULE;
    *install = package;
    if (modname == NULL) { /* a package: the program's name without .py, as SM_MODULE_NAME */
        const char *base = strrchr(program, '/') + 1;
        size_t len = strlen(base);
        if (len > 3 && strcmp(base + len - 3, ".py") == 0) len -= 3;
        modname = base;
        if (copy_name(t->module, sizeof(t->module), base, len) != 0) modname = NULL;
    } else if (copy_name(t->module, sizeof(t->module), modname, strlen(modname)) != 0) {
        modname = NULL;
    }
    if (modname == NULL) {
        snprintf(msg, sizeof(msg), "the Python module name in %.200s is empty or too long", program);
        host->set_failure(job, msg);
        return 2;
    }
    return 0;
}

static int py_run(void *state, const smh_job *job, char *err, size_t errlen) {
    const smh_host_api *host = ((smhpy_state *)state)->host;
    /* The host runs us with the job's environment as the process environment and clean signal state, as after
     * exec(): Python's own handlers (SIGINT -> KeyboardInterrupt) and the user's work as with python3. */
    smhpy_target t;
    int install = 0;
    int code = pick_target(host, job, &t, &install);
    if (code != 0) return code;
    if (install) {
        code = install_package(host, job, host->job_path(job, SMH_PATH_CODE));
        if (code != 0) return code;
    }
    int rc = smhpy_promote_libpython(err, errlen);
    if (rc != SMH_OK) return rc;
    rc = smhpy_module_register(host, job);
    if (rc != SMH_OK) {
        snprintf(err, errlen, "cannot register the built-in smhost module with the interpreter");
        return rc;
    }
    return smhpy_interp_run(host, job, &t, err, errlen);
}

static const smh_runner_ops py_runner = {
    .struct_size = sizeof(smh_runner_ops),
    .run = py_run,
};

static const char *const py_extensions[] = {".py", NULL};

SMH_PLUGIN_DEFINE(.name = SMHPY_NAME, .version = "1.0.0",
                  .description = "runs Python programs in an embedded interpreter (scripts, packages, modules)",
                  .kind = SMH_KIND_RUNNER, .claims = 0, .extensions = py_extensions, .init = py_init,
                  .fini = py_fini, .runner = &py_runner)
