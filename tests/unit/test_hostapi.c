/* Unit tests for the host API table (host/plugin/hostapi.c): its layout numbers, that every member is set (the
 * training table's resp_* answer SMH_E_UNSUPPORTED), and what each call returns for a small job loaded from a temp
 * ML root: paths, program, args, environment, hyperparameters (hp_*), framework parameters, channels, hosts,
 * exec and spawn_wait, the status page calls, cancel, pip_environ. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config.h"
#include "core/util.h"
#include "tmpdir.h"
#include "job/job.h"
#include "plugin/hostapi.h"
#include "supervisor/status.h"

static char g_root[64];
static shx_config g_cfg;
static shx_job g_job;
static struct smh_job g_hj;
static const smh_host_api *H;
#define JOB ((const smh_job *)&g_hj)

static void put(const char *rel, const char *text) {
    tmpdir_put(g_root, rel, text);
}

/* ---- the table ---------------------------------------------------------------------------------------------- */
static void test_table_layout_and_every_member_set(void **state) {
    (void)state;
    assert_int_equal(H->struct_size, sizeof(smh_host_api));
    assert_int_equal(H->abi_major, SMH_ABI_MAJOR);
    assert_int_equal(H->abi_minor, SMH_ABI_MINOR);
    /* After the version fields the table is function pointers only: every one must be set. */
    size_t first = offsetof(smh_host_api, log);
    assert_int_equal((sizeof(smh_host_api) - first) % sizeof(void (*)(void)), 0);
    for (size_t off = first; off < sizeof(smh_host_api); off += sizeof(void (*)(void))) {
        void (*fn)(void);
        memcpy(&fn, (const char *)H + off, sizeof fn);
        if (!fn) fail_msg("the host API member at offset %zu is NULL", off);
    }
    /* shx_host_api_copy gives the same table, for the serve module to fill in resp_*. */
    smh_host_api copy;
    shx_host_api_copy(&copy);
    assert_memory_equal(&copy, H, sizeof copy);
    /* No response exists in a training job. */
    assert_int_equal(H->resp_write(NULL, "x", 1), SMH_E_UNSUPPORTED);
    assert_int_equal(H->resp_set_status(NULL, 200), SMH_E_UNSUPPORTED);
    assert_int_equal(H->resp_set_content_type(NULL, "text/plain"), SMH_E_UNSUPPORTED);
    assert_int_equal(H->resp_set_custom_attributes(NULL, "a"), SMH_E_UNSUPPORTED);
}

/* ---- the job ------------------------------------------------------------------------------------------------ */
static void test_paths_program_args_environment(void **state) {
    (void)state;
    const struct {
        smh_path which;
        const char *rel;
    } paths[] = {{SMH_PATH_ROOT, ""},
                 {SMH_PATH_INPUT, "/input"},
                 {SMH_PATH_INPUT_CONFIG, "/input/config"},
                 {SMH_PATH_INPUT_DATA, "/input/data"},
                 {SMH_PATH_CODE, "/code"},
                 {SMH_PATH_MODEL, "/model"},
                 {SMH_PATH_OUTPUT, "/output"},
                 {SMH_PATH_OUTPUT_DATA, "/output/data"},
                 {SMH_PATH_INTERMEDIATE, "/output/intermediate"},
                 {SMH_PATH_CHECKPOINTS, "/checkpoints"}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char *want = shx_xasprintf("%s%s", g_root, paths[i].rel);
        assert_string_equal(H->job_path(JOB, paths[i].which), want);
        free(want);
    }
    assert_null(H->job_path(JOB, (smh_path)999));

    /* The program: a name with no such file is passed as given (a module name); an existing file by its path. */
    assert_string_equal(H->job_program(JOB), "train.py");
    put("code/train.py", "print('hi')\n");
    char *path = shx_path_join(g_root, "code/train.py");
    assert_string_equal(H->job_program(JOB), path);
    free(path);

    const char *const *args = H->job_args(JOB);
    size_t n = 0;
    while (args[n]) n++;
    assert_int_equal(n, g_job.user_args.n);
    for (size_t i = 0; i < n; i++) assert_string_equal(args[i], g_job.user_args.v[i]);
    int saw_flag = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (!strcmp(args[i], "--flag")) saw_flag = !strcmp(args[i + 1], "True"); /* Python's str() */
    assert_true(saw_flag);

    assert_string_equal(H->job_getenv(JOB, "SM_CURRENT_HOST"), "algo-2");
    assert_string_equal(H->job_getenv(JOB, "SMHOST_TEST_INHERITED"), "kept"); /* the inherited environment too */
    assert_null(H->job_getenv(JOB, "SMHOST_TEST_NOT_SET"));
    int found = 0;
    for (const char *const *e = H->job_environ(JOB); *e; e++) found += !strcmp(*e, "SM_CURRENT_HOST=algo-2");
    assert_int_equal(found, 1);
}

static void test_hyperparameters(void **state) {
    (void)state;
    /* user hyperparameters only (sagemaker_* are framework parameters), sorted by name */
    const char *names[] = {"big", "epochs", "flag", "layers", "lr", "name", "nothing", "opts"};
    assert_int_equal(H->hp_count(JOB), 8);
    for (size_t i = 0; i < 8; i++) assert_string_equal(H->hp_name(JOB, i), names[i]);
    assert_null(H->hp_name(JOB, 8));

    assert_int_equal(H->hp_type(JOB, "big"), SMH_TYPE_INT);
    assert_int_equal(H->hp_type(JOB, "epochs"), SMH_TYPE_INT);
    assert_int_equal(H->hp_type(JOB, "flag"), SMH_TYPE_BOOL);
    assert_int_equal(H->hp_type(JOB, "layers"), SMH_TYPE_LIST);
    assert_int_equal(H->hp_type(JOB, "lr"), SMH_TYPE_FLOAT);
    assert_int_equal(H->hp_type(JOB, "name"), SMH_TYPE_STRING);
    assert_int_equal(H->hp_type(JOB, "nothing"), SMH_TYPE_NULL);
    assert_int_equal(H->hp_type(JOB, "opts"), SMH_TYPE_DICT);
    assert_int_equal(H->hp_type(JOB, "missing"), SMH_TYPE_NONE);
    assert_int_equal(H->hp_type(JOB, "sagemaker_program"), SMH_TYPE_NONE);

    /* hp_str is Python's str() (as on the command line), hp_json compact JSON with sorted keys */
    const char *strs[][3] = {{"epochs", "10", "10"},
                             {"flag", "True", "true"},
                             {"layers", "[1, 2]", "[1,2]"},
                             {"lr", "0.1", "0.1"},
                             {"name", "resnet", "\"resnet\""},
                             {"nothing", "", "null"},
                             {"opts", "{'b': 1, 'a': 'x'}", "{\"a\":\"x\",\"b\":1}"}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const char *s = NULL, *j = NULL;
        assert_int_equal(H->hp_str(JOB, strs[i][0], &s), SMH_OK);
        assert_int_equal(H->hp_json(JOB, strs[i][0], &j), SMH_OK);
        if (strcmp(s, strs[i][1]) || strcmp(j, strs[i][2]))
            fail_msg("%s: str '%s' json '%s', want '%s' and '%s'", strs[i][0], s, j, strs[i][1], strs[i][2]);
    }
    const char *s;
    assert_int_equal(H->hp_str(JOB, "missing", &s), SMH_E_NOTFOUND);
    assert_int_equal(H->hp_json(JOB, "sagemaker_program", &s), SMH_E_NOTFOUND);

    int64_t i64 = 0;
    assert_int_equal(H->hp_int64(JOB, "epochs", &i64), SMH_OK);
    assert_int_equal(i64, 10);
    assert_int_equal(H->hp_int64(JOB, "big", &i64), SMH_E_RANGE);
    assert_int_equal(H->hp_int64(JOB, "lr", &i64), SMH_E_TYPE);
    assert_int_equal(H->hp_int64(JOB, "missing", &i64), SMH_E_NOTFOUND);
    double d = 0;
    assert_int_equal(H->hp_double(JOB, "lr", &d), SMH_OK);
    assert_true(d == 0.1);
    assert_int_equal(H->hp_double(JOB, "epochs", &d), SMH_OK); /* ints are numbers too */
    assert_true(d == 10.0);
    assert_int_equal(H->hp_double(JOB, "name", &d), SMH_E_TYPE);
    assert_int_equal(H->hp_double(JOB, "missing", &d), SMH_E_NOTFOUND);
    int b = 0;
    assert_int_equal(H->hp_bool(JOB, "flag", &b), SMH_OK);
    assert_int_equal(b, 1);
    assert_int_equal(H->hp_bool(JOB, "epochs", &b), SMH_E_TYPE);
    assert_int_equal(H->hp_bool(JOB, "missing", &b), SMH_E_NOTFOUND);

    /* framework parameters: str() of the decoded value, rendered once (the same pointer every time) */
    const char *fp1 = NULL, *fp2 = NULL;
    assert_int_equal(H->framework_param(JOB, "sagemaker_program", &fp1), SMH_OK);
    assert_string_equal(fp1, "train.py");
    assert_int_equal(H->framework_param(JOB, "sagemaker_program", &fp2), SMH_OK);
    assert_ptr_equal(fp1, fp2);
    assert_int_equal(H->framework_param(JOB, "sagemaker_mpi_num_of_processes_per_host", &fp1), SMH_OK);
    assert_string_equal(fp1, "2");
    assert_int_equal(H->framework_param(JOB, "sagemaker_not_given", &fp1), SMH_E_NOTFOUND);
    assert_int_equal(H->framework_param(JOB, "lr", &fp1), SMH_E_NOTFOUND); /* a user hyperparameter */
}

static void test_channels_hosts_devices(void **state) {
    (void)state;
    assert_int_equal(H->channel_count(JOB), 2);
    assert_string_equal(H->channel_name(JOB, 0), "eval");
    assert_string_equal(H->channel_name(JOB, 1), "train");
    assert_null(H->channel_name(JOB, 2));
    char *dir = shx_path_join(g_root, "input/data/train");
    assert_string_equal(H->channel_dir(JOB, "train"), dir);
    free(dir);
    assert_null(H->channel_dir(JOB, "test"));

    assert_int_equal(H->host_count(JOB), 2);
    assert_string_equal(H->host_name(JOB, 0), "algo-2"); /* resourceconfig order */
    assert_string_equal(H->host_name(JOB, 1), "algo-1");
    assert_null(H->host_name(JOB, 2));
    assert_string_equal(H->current_host(JOB), "algo-2");
    assert_string_equal(H->master_host(JOB), "algo-1");
    assert_int_equal(H->is_master(JOB), 0);
    assert_int_equal(H->num_cpus(JOB), g_job.num_cpus);
    assert_true(H->num_cpus(JOB) >= 1);
    assert_int_equal(H->num_gpus(JOB), 0); /* no device backend configured */
    assert_int_equal(H->num_neurons(JOB), 0);
    assert_int_equal(H->device_count(JOB), 0);
    assert_null(H->device_get(JOB, 0));
}

static void test_pip_environ(void **state) {
    (void)state;
    const char *const *env = H->pip_environ(JOB);
    assert_ptr_equal(env, H->pip_environ(JOB)); /* made once */
    int brk = 0, ver = 0, host = 0;
    for (const char *const *e = env; *e; e++) {
        brk += !strcmp(*e, "PIP_BREAK_SYSTEM_PACKAGES=1"); /* [python] break_system_packages defaults to on */
        ver += !strcmp(*e, "PIP_DISABLE_PIP_VERSION_CHECK=1");
        host += !strcmp(*e, "SM_CURRENT_HOST=algo-2"); /* the job's environment underneath */
    }
    assert_int_equal(brk, 1);
    assert_int_equal(ver, 1);
    assert_int_equal(host, 1);
}

/* ---- processes and the status page -------------------------------------------------------------------------- */
static void test_spawn_wait(void **state) {
    (void)state;
    char err[512];
    int code = -1;
    const char *exit3[] = {"/bin/sh", "-c", "exit 3", NULL};
    assert_int_equal(H->spawn_wait(JOB, exit3, NULL, NULL, &code, err, sizeof err), SMH_OK);
    assert_int_equal(code, 3);
    /* no envp: the job's environment; cwd honoured; PATH searched for a bare name */
    const char *check[] = {"sh", "-c", "test \"$SM_CURRENT_HOST\" = algo-2 && test \"$(pwd)\" = \"$1\"", "sh",
                           g_root, NULL};
    assert_int_equal(H->spawn_wait(JOB, check, NULL, g_root, &code, err, sizeof err), SMH_OK);
    assert_int_equal(code, 0);
    const char *envp[] = {"ONLY=this", NULL};
    const char *only[] = {"/bin/sh", "-c", "test \"$ONLY\" = this && test -z \"$SM_CURRENT_HOST\"", NULL};
    assert_int_equal(H->spawn_wait(JOB, only, envp, NULL, &code, err, sizeof err), SMH_OK);
    assert_int_equal(code, 0);
    const char *missing[] = {"/nonexistent/program", NULL};
    assert_int_equal(H->spawn_wait(JOB, missing, NULL, NULL, &code, err, sizeof err), SMH_OK);
    assert_int_equal(code, 127);
    const char *killed[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
    assert_int_equal(H->spawn_wait(JOB, killed, NULL, NULL, &code, err, sizeof err), SMH_OK);
    assert_int_equal(code, 128 + SIGKILL);
}

static void test_exec_and_the_status_page(void **state) {
    (void)state;
    shx_status_page *page = shx_status_page_create();
    assert_non_null(page);
    struct smh_job hj;
    shx_hostapi_job_init(&hj, &g_job, page);
    const smh_job *job = (const smh_job *)&hj;

    const char *argv[] = {"python3", "train.py", "--name", "a b", NULL};
    H->set_command(job, argv);
    assert_string_equal(page->command, "python3 train.py --name 'a b'");
    H->program_starting(job);
    assert_int_equal(page->phase, SHX_PHASE_PROGRAM);
    H->set_failure(job, "ValueError: bad input");
    assert_int_equal(page->reason_set, 1);
    assert_string_equal(page->reason_kind, "ExecuteUserScriptError");
    assert_string_equal(page->reason, "ValueError: bad input");

    /* exec replaces the process (in a child here), with the job's environment and the command on the page */
    page->phase = SHX_PHASE_RUNNER;
    pid_t pid = fork();
    if (pid == 0) {
        char err[256];
        const char *sh[] = {"/bin/sh", "-c", "test \"$SM_CURRENT_HOST\" = algo-2 && exit 7", NULL};
        H->exec(job, sh, NULL, err, sizeof err);
        _exit(99);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 7);
    assert_string_equal(page->command, "/bin/sh -c 'test \"$SM_CURRENT_HOST\" = algo-2 && exit 7'");
    assert_int_equal(page->phase, SHX_PHASE_PROGRAM);

    /* a failed exec returns, says why, and puts the phase back (the runner is in charge again) */
    char err[256] = "";
    const char *bad[] = {"/nonexistent/program", NULL};
    assert_int_equal(H->exec(job, bad, NULL, err, sizeof err), SMH_E_EXEC);
    assert_non_null(strstr(err, "cannot execute /nonexistent/program"));
    assert_int_equal(page->phase, SHX_PHASE_RUNNER);
    assert_int_equal(H->exec(job, (const char *[]){NULL}, NULL, err, sizeof err), SMH_E_INVAL);

    /* without a page (outside a supervised job process) these calls do nothing, and do not crash */
    H->set_command(JOB, argv);
    H->program_starting(JOB);
    H->set_failure(JOB, "x");

    shx_strvec_free(&hj.hp_names);
    for (size_t i = 0; hj.hp_str && hj.hp_str[i]; i++) free(hj.hp_str[i]);
    for (size_t i = 0; hj.hp_json && hj.hp_json[i]; i++) free(hj.hp_json[i]);
    free(hj.hp_str);
    free(hj.hp_json);
    munmap(page, sizeof *page);
}

static void test_cancel(void **state) {
    (void)state;
    pid_t pid = fork();
    if (pid == 0) {
        if (H->cancel_requested(JOB)) _exit(2);
        H->watch_cancel(JOB);
        kill(getpid(), SIGTERM); /* would kill us without watch_cancel */
        _exit(H->cancel_requested(JOB) ? 0 : 3);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* ---- the small job ------------------------------------------------------------------------------------------ */
static int setup_job(void **state) {
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/smhost-test-hostapi-XXXXXX");
    if (!mkdtemp(g_root)) return -1;
    put("input/config/hyperparameters.json",
        "{\"lr\": \"0.1\", \"epochs\": \"10\", \"name\": \"\\\"resnet\\\"\", \"flag\": \"true\", \"nothing\": \"null\","
        " \"layers\": \"[1, 2]\", \"opts\": \"{\\\"b\\\": 1, \\\"a\\\": \\\"x\\\"}\","
        " \"big\": \"123456789012345678901234567890\", \"sagemaker_program\": \"\\\"train.py\\\"\","
        " \"sagemaker_mpi_num_of_processes_per_host\": \"2\"}");
    put("input/config/inputdataconfig.json", "{\"train\": {}, \"eval\": {}}");
    put("input/config/resourceconfig.json", "{\"current_host\": \"algo-2\", \"hosts\": [\"algo-2\", \"algo-1\"]}");
    setenv("SAGEMAKER_BASE_DIR", g_root, 1);
    setenv("SMHOST_TEST_INHERITED", "kept", 1);
    unsetenv("SAGEMAKER_PROGRAM");
    unsetenv("SAGEMAKER_TRAINING_MODULE");
    unsetenv("SMHOST_TEST_NOT_SET");

    if (tmpdir_load_config(&g_cfg, "[devices]\nbackends =\nhealth_check = off\n")) return -1;
    char err[1024];
    memset(&g_job, 0, sizeof g_job);
    if (shx_job_load(&g_job, &g_cfg, err, sizeof err)) {
        fprintf(stderr, "job: %s\n", err);
        return -1;
    }
    shx_hostapi_job_init(&g_hj, &g_job, NULL);
    H = shx_host_api();
    return 0;
}

static int teardown_job(void **state) {
    (void)state;
    shx_strvec_free(&g_hj.hp_names);
    for (size_t i = 0; i < g_job.user_hps->u.dict.n; i++) free(g_hj.hp_str[i]), free(g_hj.hp_json[i]);
    free(g_hj.hp_str);
    free(g_hj.hp_json);
    shx_strvec_free(&g_hj.fp_cache);
    free(g_hj.pip_env);
    shx_job_free(&g_job);
    shx_config_free(&g_cfg);
    int rc = tmpdir_remove(g_root);
    return rc == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_layout_and_every_member_set),
        cmocka_unit_test(test_paths_program_args_environment),
        cmocka_unit_test(test_hyperparameters),
        cmocka_unit_test(test_channels_hosts_devices),
        cmocka_unit_test(test_pip_environ),
        cmocka_unit_test(test_spawn_wait),
        cmocka_unit_test(test_exec_and_the_status_page),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, setup_job, teardown_job);
}
