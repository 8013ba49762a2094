/* The python runner: descriptor, init, and run() -- which program to run and how.
 *
 * Everything here happens in the job process (the supervisor forks it and loads this plugin there).  run() picks
 * the target, installs a package when the code dir is one, records the command, hands the job over and exec()s
 * python3 itself with smhost's pyboot.so preloaded (python/handoff.h): the job process becomes the interpreter.
 * This plugin never links libpython. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pyplugin.h"

#include <smhost/device.h>

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

/* ---- the job as JSON for the smhost module (handoff.h) ---- */
typedef struct jbuf {
    char *p;
    size_t len, cap;
    int oom;
} jbuf;

static void jb_add(jbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2 + 256;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
static void jb_s(jbuf *b, const char *s) { jb_add(b, s, strlen(s)); }

/* A JSON string, or null.  Bytes >= 0x80 pass through: pyboot decodes the document with surrogateescape,
 * so a path that is no UTF-8 arrives as os.fsdecode() would give it. */
static void jb_str(jbuf *b, const char *s) {
    if (s == NULL) {
        jb_s(b, "null");
        return;
    }
    jb_add(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            jb_add(b, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            jb_add(b, esc, 6);
        } else {
            jb_add(b, (const char *)c, 1);
        }
    }
    jb_add(b, "\"", 1);
}
static void jb_key(jbuf *b, const char *k) {
    if (b->len > 1) jb_add(b, ",", 1);
    jb_str(b, k);
    jb_add(b, ":", 1);
}
static void jb_int(jbuf *b, long v) {
    char n[32];
    snprintf(n, sizeof n, "%ld", v);
    jb_s(b, n);
}

static char *job_json(const smh_host_api *host, const smh_job *job, size_t *len, char *err, size_t errlen) {
    static const struct {
        const char *name;
        smh_path which;
    } paths[] = {
        {"model_dir", SMH_PATH_MODEL},
        {"output_data_dir", SMH_PATH_OUTPUT_DATA},
        {"output_dir", SMH_PATH_OUTPUT},
        {"output_intermediate_dir", SMH_PATH_INTERMEDIATE},
        {"input_dir", SMH_PATH_INPUT},
        {"input_config_dir", SMH_PATH_INPUT_CONFIG},
        {"input_data_dir", SMH_PATH_INPUT_DATA},
        {"code_dir", SMH_PATH_CODE},
        {"checkpoint_dir", SMH_PATH_CHECKPOINTS},
    };
    jbuf b = {0};
    jb_add(&b, "{", 1);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        jb_key(&b, paths[i].name);
        jb_str(&b, host->job_path(job, paths[i].which));
    }
    jb_key(&b, "hyperparameters");
    jb_add(&b, "{", 1);
    size_t n = host->hp_count(job);
    for (size_t i = 0; i < n; i++) {
        const char *name = host->hp_name(job, i), *text = NULL;
        smh_status st = host->hp_json(job, name, &text);
        if (st != SMH_OK || text == NULL) {
            snprintf(err, errlen, "the host has no JSON for hyperparameter %s (status %d)", name, st);
            free(b.p);
            return NULL;
        }
        if (i) jb_add(&b, ",", 1);
        jb_str(&b, name);
        jb_add(&b, ":", 1);
        jb_s(&b, text); /* already JSON (compact, sorted) */
    }
    jb_add(&b, "}", 1);
    jb_key(&b, "channels");
    jb_add(&b, "{", 1);
    n = host->channel_count(job);
    for (size_t i = 0; i < n; i++) {
        const char *name = host->channel_name(job, i);
        if (i) jb_add(&b, ",", 1);
        jb_str(&b, name);
        jb_add(&b, ":", 1);
        jb_str(&b, host->channel_dir(job, name));
    }
    jb_add(&b, "}", 1);
    jb_key(&b, "hosts");
    jb_add(&b, "[", 1);
    n = host->host_count(job);
    for (size_t i = 0; i < n; i++) {
        if (i) jb_add(&b, ",", 1);
        jb_str(&b, host->host_name(job, i));
    }
    jb_add(&b, "]", 1);
    jb_key(&b, "current_host");
    jb_str(&b, host->current_host(job));
    jb_key(&b, "master_host");
    jb_str(&b, host->master_host(job));
    jb_key(&b, "is_master");
    jb_s(&b, host->is_master(job) ? "true" : "false");
    jb_key(&b, "num_cpus");
    jb_int(&b, host->num_cpus(job));
    jb_key(&b, "num_gpus");
    jb_int(&b, host->num_gpus(job));
    jb_key(&b, "num_neurons");
    jb_int(&b, host->num_neurons(job));
    /* The job's devices (v1.1): every device the backends found, hidden and unhealthy ones too.  An older host
     * has no device calls: the list is empty. */
    jb_key(&b, "devices");
    jb_add(&b, "[", 1);
    n = SMH_HOST_HAS(host, device_count) && SMH_HOST_HAS(host, device_get) ? host->device_count(job) : 0;
    static const char *const health[] = {"ok", "degraded", "failed"};
    for (size_t i = 0; i < n; i++) {
        const smh_device *d = host->device_get(job, i);
        if (d == NULL) break;
        if (i) jb_add(&b, ",", 1);
        char num[32];
        jb_s(&b, "{\"backend\":");
        jb_str(&b, d->backend);
        jb_s(&b, ",\"index\":");
        jb_int(&b, d->index);
        jb_s(&b, ",\"uuid\":");
        jb_str(&b, d->uuid[0] ? d->uuid : NULL);
        jb_s(&b, ",\"name\":");
        jb_str(&b, d->name[0] ? d->name : NULL);
        jb_s(&b, ",\"memory_total\":");
        snprintf(num, sizeof num, "%llu", (unsigned long long)d->memory_total);
        jb_s(&b, d->memory_total ? num : "null");
        jb_s(&b, ",\"pci_bus_id\":");
        jb_str(&b, d->pci_bus_id[0] ? d->pci_bus_id : NULL);
        jb_s(&b, ",\"health\":");
        jb_str(&b, health[d->health <= SMH_HEALTH_FAILED ? d->health : SMH_HEALTH_FAILED]);
        jb_s(&b, ",\"reason\":");
        jb_str(&b, d->reason[0] ? d->reason : NULL);
        jb_s(&b, ",\"visible\":");
        jb_s(&b, (d->flags & SMH_DEVICE_VISIBLE) ? "true" : "false");
        jb_s(&b, ",\"parent\":");
        if (d->flags & SMH_DEVICE_MIG_CHILD) jb_int(&b, d->parent);
        else jb_s(&b, "null");
        jb_s(&b, ",\"cores\":");
        jb_int(&b, (long)d->cores);
        jb_s(&b, ",\"visible_cores\":");
        jb_int(&b, (long)d->visible_cores);
        jb_add(&b, "}", 1);
    }
    jb_add(&b, "]", 1);
    jb_add(&b, "}", 1);
    if (b.oom) {
        free(b.p);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* The job JSON in a sealed memfd that python3 inherits (no FD_CLOEXEC).  Returns the fd or -1. */
static int job_fd(const char *text, size_t len, char *err, size_t errlen) {
    int fd = memfd_create("smhost-job", MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create the job hand-off for python3 (memfd_create: %s)", strerror(errno));
        return -1;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            snprintf(err, errlen, "cannot write the job hand-off for python3: %s", strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
    return fd;
}

/* pyboot.so in smhost's internal directory (python/handoff.h), beside serve.so, from the smhost binary this job
 * process runs (the supervisor forked it: /proc/self/exe). */
static int pyboot_path(char *out, size_t cap) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL) return -1;
    *slash = '\0';
    return snprintf(out, cap, "%s" SMHPY_PYBOOT_DIR SMHPY_PYBOOT_NAME, self) < (int)cap ? 0 : -1;
}

/* The command output/failure shows: what python3 would have been given. */
static void entry_code(char *out, size_t cap, const smhpy_target *t) {
    snprintf(out, cap, "from %s import %s; %s()", t->module, t->function, t->function);
}

/* The command python3 runs (argv[0] is SMHPY_PYTHON3), which output/failure shows too.  NULL-terminated; the
 * caller frees the array (not the strings).  code: room for the -c string of SAGEMAKER_TRAINING_MODULE. */
static const char **python_argv(const smh_host_api *host, const smh_job *job, const smhpy_target *t, char *code,
                                size_t codecap) {
    const char *const *args = host->job_args(job);
    size_t n = 0;
    while (args != NULL && args[n] != NULL) n++;
    const char **cmd = calloc(n + 5, sizeof(*cmd));
    if (cmd == NULL) return NULL;
    size_t k = 0;
    cmd[k++] = SMHPY_PYTHON3;
    if (t->kind == SMHPY_ENTRY) { /* pyboot runs it with sys.argv ["train"], as the toolkit's train entry does */
        entry_code(code, codecap, t);
        cmd[k++] = "-c";
        cmd[k++] = code;
    } else {
        if (t->kind == SMHPY_MODULE) {
            cmd[k++] = "-m";
            cmd[k++] = t->module;
        } else {
            cmd[k++] = t->script;
        }
        for (size_t i = 0; i < n; i++) cmd[k++] = args[i];
    }
    cmd[k] = NULL;
    return cmd;
}

/* Points python3 at pyboot.so and the hand-off (python/handoff.h): LD_PRELOAD gets pyboot.so in front of what it
 * holds (the user's own preloads, the gethostname library of distributed ranks), which pyboot puts back. */
static int set_handoff(const char *pyboot, int sfd, int jfd, const smhpy_target *t, char *err, size_t errlen) {
    if (strpbrk(pyboot, " :") != NULL) {
        snprintf(err, errlen, "smhost is installed under a path with a space or a colon (%s), which LD_PRELOAD cannot "
                 "name; install smhost elsewhere (make install PREFIX=...)", pyboot);
        return -1;
    }
    char rest[512];
    int n = t->kind == SMHPY_ENTRY ? snprintf(rest, sizeof rest, ",%d,%d,%s:%s", sfd, jfd, t->module, t->function)
                                   : snprintf(rest, sizeof rest, ",%d,%d", sfd, jfd);
    if (n >= (int)sizeof rest) {
        snprintf(err, errlen, "the training module %s:%s is too long to hand over", t->module, t->function);
        return -1;
    }
    int rc = smhpy_handoff_setenv(NULL, pyboot, "job", rest);
    if (rc != 0) snprintf(err, errlen, "cannot set the environment of python3: %s", strerror(errno));
    return rc;
}

static int py_run(void *state, const smh_job *job, char *err, size_t errlen) {
    const smh_host_api *host = ((smhpy_state *)state)->host;
    /* The host runs us with the job's environment as the process environment and clean signal state, as after
     * exec(): python3 inherits both. */
    smhpy_target t;
    int install = 0;
    int code = pick_target(host, job, &t, &install);
    if (code != 0) return code;
    if (access(SMHPY_PYTHON3, X_OK) != 0) {
        snprintf(err, errlen, "the python runner needs %s, which is missing (%s): install Python 3 in the image "
                 "(Debian: apt-get install python3)", SMHPY_PYTHON3, strerror(errno));
        return SMH_E_NOTFOUND;
    }
    char pyboot[PATH_MAX] = SMHPY_PYBOOT_NAME; /* named in the message even when the path cannot be made */
    if (pyboot_path(pyboot, sizeof pyboot) != 0 || access(pyboot, R_OK) != 0) {
        snprintf(err, errlen, "the python runner needs smhost's %s (%s: %s); reinstall smhost (make install puts "
                 "it there)", SMHPY_PYBOOT_NAME, pyboot, strerror(errno));
        return SMH_E_NOTFOUND;
    }
    if (install) {
        code = install_package(host, job, host->job_path(job, SMH_PATH_CODE));
        if (code != 0) return code;
    }
    size_t len = 0;
    char *text = job_json(host, job, &len, err, errlen);
    if (text == NULL) return SMH_E_FAIL;
    int jfd = job_fd(text, len, err, errlen);
    free(text);
    if (jfd < 0) return SMH_E_FAIL;
    /* The status page, without FD_CLOEXEC, so pyboot reports the phase and the failure reason. */
    int sfd = SMH_HOST_HAS(host, status_fd) ? host->status_fd(job) : -1;
    if (sfd >= 0) sfd = fcntl(sfd, F_DUPFD, 3);

    char entry[1024];
    const char **argv = python_argv(host, job, &t, entry, sizeof entry);
    if (argv == NULL) {
        snprintf(err, errlen, "out of memory");
        return SMH_E_NOMEM;
    }
    if (SMH_HOST_HAS(host, set_command)) host->set_command(job, argv);
    if (set_handoff(pyboot, sfd, jfd, &t, err, errlen) != 0) {
        free(argv);
        return SMH_E_FAIL;
    }
    execv(SMHPY_PYTHON3, (char *const *)argv);
    int e = errno;
    free(argv);
    snprintf(err, errlen, "cannot execute %s: %s", SMHPY_PYTHON3, strerror(e));
    return e == ENOENT ? SMH_E_NOTFOUND : SMH_E_EXEC;
}

static const smh_runner_ops py_runner = {
    .struct_size = sizeof(smh_runner_ops),
    .run = py_run,
};

static const char *const py_extensions[] = {".py", NULL};

SMH_PLUGIN_DEFINE(.name = SMHPY_NAME, .version = "1.0.0",
                  .description = "runs Python programs in python3 with the smhost module built in (scripts, packages, "
                                 "modules)",
                  .kind = SMH_KIND_RUNNER, .claims = 0, .extensions = py_extensions, .init = py_init,
                  .fini = py_fini, .runner = &py_runner)
