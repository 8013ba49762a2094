/* `smhost train`: read the job, prepare the code, start the job process under the supervisor, report. */
#include "cmd/train.h"
#include "job/envsize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job/dns.h"
#include "core/exitcodes.h"
#include "supervisor/failure.h"
#include "plugin/hostapi.h"
#include "core/log.h"
#include "plugin/registry.h"
#include "plugin/runner.h"
#include "job/requirements.h"
#include "plugin/modules.h"
#include "cmd/devices.h"
#include "cmd/train_s3.h"
#include "dist/launch.h"

/* ---- secrets in the startup log ------------------------------------------------------------------------ */
static int secret_name(const char *name) {
    return shx_secret_name(name, strlen(name));
}

/* Does v hold a key that looks secret, at any depth? */
static int has_secret_key(const pyj_value *v) {
    if (v->type == PYJ_DICT) {
        for (size_t i = 0; i < v->u.dict.n; i++)
            if (secret_name(v->u.dict.keys[i].s) || has_secret_key(v->u.dict.vals[i])) return 1;
    } else if (v->type == PYJ_LIST) {
        for (size_t i = 0; i < v->u.list.n; i++)
            if (has_secret_key(v->u.list.items[i])) return 1;
    }
    return 0;
}

/* A copy of v with the values of secret-looking keys replaced by "****". */
static pyj_value *masked(const pyj_value *v) {
    pyj_value *c = pyj_copy(v);
    if (c->type == PYJ_DICT) {
        for (size_t i = 0; i < c->u.dict.n; i++) {
            pyj_value *old = c->u.dict.vals[i];
            c->u.dict.vals[i] = secret_name(c->u.dict.keys[i].s) ? pyj_string("****") : masked(old);
            pyj_free(old);
        }
    } else if (c->type == PYJ_LIST) {
        for (size_t i = 0; i < c->u.list.n; i++) {
            pyj_value *old = c->u.list.items[i];
            c->u.list.items[i] = masked(old);
            pyj_free(old);
        }
    }
    return c;
}

void shx_train_log_startup(const shx_job *job) {
    if (shx_log_get_level() > SHX_INFO) return;
    /* The usual job has nothing to mask: the text is then SM_TRAINING_ENV's value (the same json.dumps, made by
     * shx_env_build), not a second dump of a copy. */
    pyj_value *te = has_secret_key(job->training_env) ? masked(job->training_env) : NULL;
    const char *same = te ? NULL : shx_env_lookup(job->sm_env.v, "SM_TRAINING_ENV");
    char *s = same ? shx_xstrdup(same) : pyj_dumps(te ? te : job->training_env, 1);
    shx_redact(s);
    shx_info("Training Env: %s", s);
    free(s);
    if (te) pyj_free(te);
    shx_buf b = {0};
    for (size_t i = 0; i < job->sm_env.n; i++) {
        const char *kv = job->sm_env.v[i];
        const char *eq = strchr(kv, '=');
        char *name = shx_xstrndup(kv, (size_t)(eq - kv));
        if (!strcmp(name, "SM_TRAINING_ENV")) {
            /* logged above */
        } else if (secret_name(name)) {
            shx_buf_printf(&b, "\n%s=****", name);
        } else if (!strcmp(name, "SM_HPS") && has_secret_key(job->user_hps)) { /* else as it is, below */
            pyj_value *m = masked(job->user_hps);
            char *js = pyj_dumps(m, 1);
            shx_buf_printf(&b, "\n%s=%s", name, js);
            free(js);
            pyj_free(m);
        } else if (!strcmp(name, "SM_USER_ARGS")) {
            shx_buf_printf(&b, "\n%s=[", name);
            for (size_t k = 0; k < job->user_args.n; k++) {
                int hide = k > 0 && secret_name(job->user_args.v[k - 1]) && job->user_args.v[k - 1][0] == '-';
                pyj_value *w = pyj_string(hide ? "****" : job->user_args.v[k]);
                char *js = pyj_dumps(w, 0);
                shx_buf_printf(&b, "%s%s", k ? "," : "", js);
                free(js);
                pyj_free(w);
            }
            shx_buf_adds(&b, "]");
        } else {
            shx_buf_printf(&b, "\n%s", kv);
        }
        free(name);
    }
    char *vars = shx_buf_steal(&b);
    shx_redact(vars);
    shx_info("Environment variables:%s", vars);
    free(vars);
}

/* ---- the job process ------------------------------------------------------------------------------------- */
typedef struct train_ctx {
    shx_job *job;
    shx_status_page *page;
} train_ctx;

static int job_fail(shx_status_page *page, const char *kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int job_fail(shx_status_page *page, const char *kind, int code, const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    shx_error("%s", msg);
    shx_status_set_reason(page, kind, msg);
    return code;
}

/* The job's program through its runner plugin, in this process (which it usually execs).  Every process of a
 * distributed job gets here too (dist/agent.c, `smhost rank`). */
int shx_train_run_program(shx_job *job, shx_status_page *page) {
    char err[4096] = "";
    int rc;
    shx_registry reg;
    shx_registry_init(&reg, job->cfg);
    int code = SHX_EXIT_CONFIG;
    char *name = shx_runner_for(&reg, job, err, sizeof err, &code);
    if (!name) {
        shx_registry_release(&reg);
        return job_fail(page, "UserError", code, "%s", err);
    }

    snprintf(page->plugin, sizeof page->plugin, "%s", name);
    page->phase = SHX_PHASE_PLUGIN_LOAD;
    char why[2048];
    const shx_plugin *p = shx_registry_find(&reg, name, why, sizeof why);
    if (!p || !p->has_runner) {
        rc = job_fail(page, "PluginError", SHX_EXIT_CONFIG,
                      "the program %s needs the runner plugin '%s', but %s.", job->program ? job->program : "(none)", name,
                      p ? "that plugin is not a runner" : why);
        free(name);
        shx_registry_release(&reg);
        return rc;
    }
    snprintf(page->plugin_path, sizeof page->plugin_path, "%s", p->path);

    struct smh_job hj;
    shx_hostapi_job_init(&hj, job, page);
    void *state = NULL;
    page->phase = SHX_PHASE_PLUGIN_INIT;
    if (p->desc.init) {
        err[0] = 0;
        smh_status s = p->desc.init(shx_host_api(), &state, err, sizeof err);
        if (s < 0) {
            rc = job_fail(page, "PluginError", SHX_EXIT_CONFIG,
                          "plugin '%s' (%s) failed to initialize (status %d): %s", name, p->path, s,
                          err[0] ? err : "no message");
            free(name);
            shx_hostapi_job_free(&hj);
            shx_registry_release(&reg);
            return rc;
        }
    }
    shx_info("Invoking the '%s' runner for %s", name, job->program ? job->program : "the training module");
    page->phase = SHX_PHASE_RUNNER;
    err[0] = 0;
    rc = p->runner.run(state, (const smh_job *)&hj, err, sizeof err);
    if (rc < 0) {
        int exitc = hj.exec_errno ? (hj.exec_errno == ENOENT ? SHX_EXIT_NOTFOUND : SHX_EXIT_NOEXEC)
                    : rc == SMH_E_NOTFOUND ? SHX_EXIT_NOTFOUND
                                           : SHX_EXIT_SOFTWARE;
        shx_error("%s", err[0] ? err : "the runner failed");
        if (!page->reason_set)
            shx_status_set_reason(page, hj.exec_errno ? "ExecuteUserScriptError" : "PluginError",
                                  err[0] ? err : "the runner failed without a message");
        rc = exitc;
    } else if (rc > 255) {
        rc = 255;
    }
    if (p->desc.fini) p->desc.fini(state);
    fflush(stdout);
    fflush(stderr);
    free(name);
    /* Back here only when the runner ran in this process (a native trainer in `smhost rank`) or failed: what was
     * allocated for it is freed (LeakSanitizer found it left behind at exit). */
    shx_hostapi_job_free(&hj);
    shx_registry_release(&reg);
    return rc;
}

static int job_main(void *arg) {
    train_ctx *ctx = arg;
    shx_job *job = ctx->job;
    shx_status_page *page = ctx->page;
    page->phase = SHX_PHASE_HOST;
    if (chdir(job->code_dir) < 0)
        return job_fail(page, "UserError", SHX_EXIT_NOINPUT, "cannot enter the code directory %s: %s", job->code_dir,
                        strerror(errno));

    /* In-process runners (Python, native) read the job's environment through getenv().  The environment is set
     * whole (it has no repeated names): putenv() per variable scans environ each time, quadratic in the number
     * of hyperparameters. */
    clearenv();
    environ = job->env.v;

    char err[4096] = "";
    int rc = shx_requirements_install(job->code_dir, (const char *const *)job->env.v,
                                      job->cfg->pip_break_system_packages, err, sizeof err);
    if (rc) return job_fail(page, "InstallRequirementsError", rc, "%s", err);

    /* A host of a distributed job starts the launcher's processes instead (contract section 6). */
    if (shx_dist_flag(job)) {
        shx_launch l;
        rc = shx_dist_plan(&l, job, job->cfg, 1, err, sizeof err);
        if (rc) {
            shx_dist_cleanup(&l); /* the launch directory may exist already */
            shx_dist_launch_free(&l);
            return job_fail(page, rc == SHX_EXIT_CONFIG ? "PluginError" : "ClientError", rc, "%s", err);
        }
        snprintf(page->plugin, sizeof page->plugin, "%s", l.launcher);
        snprintf(page->plugin_path, sizeof page->plugin_path, "%s", l.launcher_path);
        rc = shx_dist_run(&l, job, job->cfg, page);
        shx_dist_cleanup(&l);
        shx_dist_launch_free(&l);
        return rc;
    }
    return shx_train_run_program(job, page);
}

/* `smhost rank`: one process of a distributed job started by another program (mpirun's orted): the job as this
 * host sees it, with what that program passed (the environment) and no supervisor of its own. */
int shx_rank_main(const shx_config *cfg) {
    shx_job job = {0};
    char err[4096];
    int rc = shx_job_load(&job, cfg, err, sizeof err);
    if (rc) {
        fprintf(stderr, "smhost rank: %s\n", err);
        shx_job_free(&job);
        return rc;
    }
    if (pyj_dict_get(job.hyperparameters, "sagemaker_container_log_level")) shx_log_set_level(job.log_level_int);
    if (chdir(job.code_dir) < 0) {
        fprintf(stderr, "smhost rank: cannot enter the code directory %s: %s\n", job.code_dir, strerror(errno));
        shx_job_free(&job);
        return SHX_EXIT_NOINPUT;
    }
    clearenv();
    environ = job.env.v; /* whole, as job_main does */
    shx_status_page *page = shx_status_page_create();
    rc = shx_train_run_program(&job, page);
    if (rc && page && page->reason_set) fprintf(stderr, "%s\n", page->reason);
    /* An in-process runner (a native trainer) returns here: the job is freed (LeakSanitizer found it left behind at
     * exit), all but its environment, which is environ and may still be read by the program's exit handlers. */
    memset(&job.env, 0, sizeof job.env);
    shx_job_free(&job);
    return rc;
}

/* ---- the supervisor side ------------------------------------------------------------------------------------ */
static int host_failure(const shx_job *job, const char *kind, int code, const char *msg) {
    shx_error("%s", msg);
    const char *out = job->output_dir;
    if (out && shx_mkdirs(out, 0755) == 0) {
        shx_write_failure_reason(out, kind, msg);
    }
    return code;
}

/* A new run starts without the outcome of the previous one: a failure left in output/ would be taken as written
 * by this run's program, and its old reason reported. */
static void clear_previous_outcome(const shx_job *job) {
    const char *names[] = {"success", "failure"};
    for (size_t i = 0; job->output_dir && i < 2; i++) {
        char *p = shx_path_join(job->output_dir, names[i]);
        if (unlink(p) == 0) shx_info("removed %s, left by a previous run", p);
        else if (errno != ENOENT) shx_warn("cannot remove %s, left by a previous run: %s", p, strerror(errno));
        free(p);
    }
}

/* shx_sup_opts.on_started: right after fork, while the job process sets up and runs. */
typedef struct started_ctx {
    const shx_job *job;
    void *s3sync;
    int success_fd; /* the success file made ahead (shx_success_prepare), or -1 */
} started_ctx;

static void on_job_started(void *arg) {
    started_ctx *sc = arg;
    shx_train_s3_sync_started(sc->s3sync);
    sc->success_fd = shx_success_prepare(sc->job->output_dir);
}

int shx_train_main(const shx_config *cfg) {
    shx_job job = {0};
    char err[4096];
    int rc = shx_job_load(&job, cfg, err, sizeof err);
    clear_previous_outcome(&job);
    if (rc) {
        rc = host_failure(&job, "ClientError", rc, err);
        shx_job_free(&job);
        return rc;
    }
    if (pyj_dict_get(job.hyperparameters, "sagemaker_container_log_level")) shx_log_set_level(job.log_level_int);

    if (!job.program && !job.training_module) {
        rc = host_failure(&job, "UserError", SHX_EXIT_NOINPUT,
                          "no program to run: set SAGEMAKER_PROGRAM (e.g. ENV SAGEMAKER_PROGRAM=train.py in the "
                          "image) or the sagemaker_program hyperparameter, and put the program under the code "
                          "directory.");
        shx_job_free(&job);
        return rc;
    }
    /* Devices: one log line each, then the health check, before anything slow or the user's program. */
    char *devfail = NULL;
    if ((rc = shx_devices_gate(cfg, &job.devices, "the training job", &devfail))) {
        rc = host_failure(&job, "DeviceHealthError", rc, devfail);
        free(devfail);
        shx_job_free(&job);
        return rc;
    }
    if (job.submit_dir && strcmp(job.submit_dir, job.code_dir)) {
        rc = !strncmp(job.submit_dir, "s3://", 5) ? shx_train_s3_source(&job, err, sizeof err)
                                                    : shx_modules_unpack(job.submit_dir, job.code_dir, err, sizeof err);
        if (rc) {
            rc = host_failure(&job, "UserError", rc, err);
            shx_job_free(&job);
            return rc;
        }
    }
    /* A missing program file is 127 whatever runs it (/bin/sh said 2, python 1).  Only names that must be files:
     * a .sh or .py script, or a name without '.' or ':' (an executable); "pkg.mod" and "module:pkg.mod" are
     * Python modules. */
    const char *prog = job.program ? job.program : "";
    size_t plen = strlen(prog);
    int file_kind = (plen > 3 && (!strcmp(prog + plen - 3, ".sh") || !strcmp(prog + plen - 3, ".py"))) ||
                    !strpbrk(strrchr(prog, '/') ? strrchr(prog, '/') : prog, ".:");
    if (job.program_path && !job.training_module && file_kind && access(job.program_path, F_OK) != 0) {
        snprintf(err, sizeof err, "the program %s was not found (%s): check SAGEMAKER_PROGRAM or the "
                 "sagemaker_program hyperparameter, and that the code directory %s holds it", job.program_path,
                 strerror(errno), job.code_dir);
        rc = host_failure(&job, "UserError", SHX_EXIT_NOTFOUND, err);
        shx_job_free(&job);
        return rc;
    }
    const char *dirs[] = {job.code_dir, job.model_dir, job.output_data_dir};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        int e = shx_mkdirs(dirs[i], 0755);
        if (e) {
            snprintf(err, sizeof err, "cannot create %s: %s. Check that the ML root %s is writable.", dirs[i],
                     strerror(-e), job.root);
            rc = host_failure(&job, "ClientError", SHX_EXIT_CANTCREAT, err);
            shx_job_free(&job);
            return rc;
        }
    }
    /* Multi-host jobs need every peer's name; a single host need not resolve its own name. */
    if (job.hosts.n > 1) {
        if ((rc = shx_dns_wait((const char *const *)job.hosts.v, job.hosts.n, cfg->dns_timeout_seconds, err,
                               sizeof err))) {
            rc = host_failure(&job, "ClientError", rc, err);
            shx_job_free(&job);
            return rc;
        }
    }
    /* The runner adds its own arguments, but an environment that cannot fit already fails here, before the
     * startup log copies it. */
    if (shx_exec_size_check((const char *const *)job.user_args.v, (const char *const *)job.env.v, err, sizeof err)) {
        rc = host_failure(&job, "UserError", SHX_EXIT_NOEXEC, err);
        shx_job_free(&job);
        return rc;
    }
    shx_train_log_startup(&job);
    void *s3sync = NULL;
    if ((rc = shx_train_s3_sync_begin(&job, &s3sync, err, sizeof err))) {
        rc = host_failure(&job, "ClientError", rc, err);
        shx_job_free(&job);
        return rc;
    }

    shx_status_page *page = shx_status_page_create();
    if (!page) {
        shx_train_s3_sync_end(&job, s3sync);
        rc = host_failure(&job, "InternalError", SHX_EXIT_OSERR, "cannot create the status page (out of memory?)");
        shx_job_free(&job);
        return rc;
    }
    /* The command until a runner records the real one (exec() and set_command() do). */
    shx_strvec cmd = {0};
    shx_strvec_push(&cmd, job.program_path ? job.program_path : job.training_module);
    for (size_t i = 0; i < job.user_args.n; i++) shx_strvec_push(&cmd, job.user_args.v[i]);
    char *line = shx_command_line((const char *const *)cmd.v);
    snprintf(page->command, sizeof page->command, "%s", line);
    free(line);
    shx_strvec_free(&cmd);

    train_ctx ctx = {&job, page};
    started_ctx sc = {&job, s3sync, -1};
    shx_sup_opts opts = {
        .grace_seconds = cfg->stop_grace_seconds,
        .leftover_grace_ms = 2000,
        .max_run_seconds = cfg->max_run_seconds,
        .stderr_tail_bytes = 64 * 1024,
        .on_started = on_job_started,
        .on_started_arg = &sc,
    };
    shx_sup_result res = {0};
    free(shx_self_dir()); /* read here, inherited by the job process, which finds its runner plugin with it */
    if (shx_supervise(&opts, job_main, &ctx, &res) < 0) {
        shx_train_s3_sync_end(&job, s3sync);
        snprintf(err, sizeof err, "cannot start the job process: %s", strerror(errno));
        rc = host_failure(&job, "InternalError", SHX_EXIT_OSERR, err);
        shx_job_free(&job);
        return rc;
    }
    shx_train_s3_sync_end(&job, s3sync); /* before success/failure: they tell the platform the job is over */
    rc = res.exit_code;
    if (rc == 0 && !res.stop_signal && !res.timed_out) {
        if (shx_write_success_prepared(job.output_dir, sc.success_fd) < 0)
            shx_warn("cannot write %s/success", job.output_dir);
        shx_info("Reporting training SUCCESS");
    } else {
        shx_success_discard(sc.success_fd);
        char *text = shx_failure_text(&res, page, opts.grace_seconds);
        shx_write_failure(job.output_dir, text);
        free(text);
        if (rc == 0) shx_info("Training stopped (exit code 0)");
        else shx_error("Reporting training FAILURE (exit code %d)", rc);
    }
    shx_sup_result_free(&res);
    shx_job_free(&job);
    return rc;
}
