/*
 * Test plugin built against the frozen v1.0 header (tests/plugins/abi-v1.0/smhost/plugin.h), never the current one.
 * It calls every v1.0 host function and writes what it got to <model>/v1_0_frozen.txt, then ends in
 * host->exec() like a real runner.  If the current header moves, removes or changes a v1.0 member, this plugin
 * calls the wrong function or reads the wrong field and tests/blackbox/test_abi.py fails.  Claims ".v10frozen".
 */
#include <stdio.h>
#include <string.h>

#include "abi-v1.0/smhost/plugin.h"

#if SMH_ABI_MAJOR != 1 || SMH_ABI_MINOR != 0
#error "v1_0_frozen must be compiled against the frozen v1.0 header"
#endif

static const smh_host_api *H;

static smh_status frozen_init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    if (host->abi_major != 1 || host->struct_size < sizeof(smh_host_api)) {
        snprintf(err, errlen, "v1_0_frozen: host table is ABI %u.%u, %u bytes; a 1.x host gives at least %zu",
                 host->abi_major, host->abi_minor, host->struct_size, sizeof(smh_host_api));
        return SMH_E_UNSUPPORTED;
    }
    H = host;
    *state = (void *)&H; /* any non-NULL value: checked in run() */
    return SMH_OK;
}

static const char *type_name(smh_type t) {
    static const char *const names[] = {"none", "null", "bool", "int", "float", "string", "list", "dict"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static int frozen_run(void *state, const smh_job *job, char *err, size_t errlen) {
    if (state != (void *)&H) {
        snprintf(err, errlen, "v1_0_frozen: run() got state %p, not what init() set", state);
        return SMH_E_FAIL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/v1_0_frozen.txt", H->job_path(job, SMH_PATH_MODEL));
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        snprintf(err, errlen, "v1_0_frozen: cannot write %s", path);
        return SMH_E_FAIL;
    }
    H->log("v1_0_frozen", SMH_LOG_INFO, "v1.0 plugin running on a %u.%u host", H->abi_major, H->abi_minor);
    fprintf(f, "host_abi=%u.%u\n", H->abi_major, H->abi_minor);
    fprintf(f, "root=%s\nmodel=%s\noutput_data=%s\ncode=%s\n", H->job_path(job, SMH_PATH_ROOT),
            H->job_path(job, SMH_PATH_MODEL), H->job_path(job, SMH_PATH_OUTPUT_DATA), H->job_path(job, SMH_PATH_CODE));
    fprintf(f, "program=%s\n", H->job_program(job));
    for (const char *const *a = H->job_args(job); a && *a; a++)
        fprintf(f, "arg=%s\n", *a);
    size_t nenv = 0;
    for (const char *const *e = H->job_environ(job); e && *e; e++)
        nenv++;
    fprintf(f, "environ_nonempty=%d\n", nenv > 0);
    const char *v = H->job_getenv(job, "V10_PROBE");
    fprintf(f, "getenv=%s\n", v ? v : "(null)");

    size_t n = H->hp_count(job);
    for (size_t i = 0; i < n; i++) {
        const char *name = H->hp_name(job, i), *s = NULL, *js = NULL;
        H->hp_str(job, name, &s);
        H->hp_json(job, name, &js);
        fprintf(f, "hp %s type=%s str=%s json=%s\n", name, type_name(H->hp_type(job, name)), s ? s : "?",
                js ? js : "?");
    }
    int64_t i64 = 0;
    double d = 0;
    int b = -1;
    int st = H->hp_int64(job, "epochs", &i64);
    fprintf(f, "hp_int64(epochs)=%d %lld\n", st, (long long)i64);
    st = H->hp_double(job, "lr", &d);
    fprintf(f, "hp_double(lr)=%d %g\n", st, d);
    st = H->hp_bool(job, "flag", &b);
    fprintf(f, "hp_bool(flag)=%d %d\n", st, b);
    fprintf(f, "hp_int64(missing)=%d\n", H->hp_int64(job, "missing", &i64));
    fprintf(f, "hp_int64(lr)=%d\n", H->hp_int64(job, "lr", &i64));
    const char *fw = NULL;
    st = H->framework_param(job, "sagemaker_probe", &fw);
    fprintf(f, "framework_param(sagemaker_probe)=%d %s\n", st, st == SMH_OK && fw ? fw : "");

    for (size_t i = 0; i < H->channel_count(job); i++) {
        const char *c = H->channel_name(job, i);
        fprintf(f, "channel %s %s\n", c, H->channel_dir(job, c));
    }
    fprintf(f, "channel_dir(nope)=%s\n", H->channel_dir(job, "nope") ? "set" : "(null)");
    for (size_t i = 0; i < H->host_count(job); i++)
        fprintf(f, "host %s\n", H->host_name(job, i));
    fprintf(f, "current_host=%s\nmaster_host=%s\nis_master=%d\n", H->current_host(job), H->master_host(job),
            H->is_master(job));
    fprintf(f, "cpus_positive=%d\ngpus=%d\nneurons=%d\n", H->num_cpus(job) > 0, H->num_gpus(job),
            H->num_neurons(job));
    H->watch_cancel(job);
    fprintf(f, "cancel_requested=%d\n", H->cancel_requested(job));

    const char *const true_argv[] = {"true", NULL};
    int code = -1;
    st = H->spawn_wait(job, true_argv, NULL, NULL, &code, err, errlen);
    fprintf(f, "spawn_wait(true)=%d %d\n", st, code);
    const char *const false_argv[] = {"false", NULL};
    st = H->spawn_wait(job, false_argv, NULL, NULL, &code, err, errlen);
    fprintf(f, "spawn_wait(false)=%d %d\n", st, code);
    /* No response exists in a training job: the resp_* members answer SMH_E_UNSUPPORTED (-5). */
    fprintf(f, "resp_write=%d\n", H->resp_write(NULL, "x", 1));
    fprintf(f, "resp_set_status=%d\n", H->resp_set_status(NULL, 200));
    fprintf(f, "resp_set_content_type=%d\n", H->resp_set_content_type(NULL, "text/plain"));
    fprintf(f, "resp_set_custom_attributes=%d\n", H->resp_set_custom_attributes(NULL, "a=b"));
    fclose(f);

    /* Reporting: a failure reason and a command line (replaced by exec()'s own below when exec succeeds; the test
     * makes exec fail on request to see them in output/failure), then user code starts. */
    const char *const cmd_argv[] = {"frozen-command", "--probe", NULL};
    H->set_command(job, cmd_argv);
    H->set_failure(job, "v1_0_frozen set_failure reason");
    H->program_starting(job);
    const char *bad = H->job_getenv(job, "V10_EXEC_MISSING");
    const char *const echo_argv[] = {"echo", "v1_0_frozen exec ok", NULL};
    const char *const missing_argv[] = {bad ? bad : "", NULL};
    H->exec(job, bad ? missing_argv : echo_argv, NULL, err, errlen);
    return SMH_E_EXEC; /* exec() returned: it failed, err says why */
}

static const smh_runner_ops frozen_ops = {.struct_size = sizeof(smh_runner_ops), .run = frozen_run};
static const char *const frozen_ext[] = {".v10frozen", NULL};

SMH_PLUGIN_DEFINE(.name = "v1_0_frozen", .version = "1.0-frozen",
                  .description = "test: built against the frozen v1.0 header", .kind = SMH_KIND_RUNNER,
                  .extensions = frozen_ext, .init = frozen_init, .runner = &frozen_ops)
