/* Unit tests for the distributed-training parts of the job model (contract section 6) and of host/dist/plan.c:
 * every one of the toolkit's seven distribution flags makes the current group a distribution group, also with
 * instance groups (the torch_distributed conformance vector), and the launcher is picked in the PyTorch toolkit's
 * order on distribution hosts only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/util.h"
#include "tmpdir.h"
#include "dist/launch.h"
#include "job/job.h"

static char g_root[256];

static void write_file(const char *rel, const char *text) {
    char *p = shx_path_join(g_root, rel);
    assert_int_equal(shx_write_file(p, text, strlen(text), 0), 0);
    free(p);
}

static void load(shx_job *job, shx_config *cfg, const char *hps, const char *rc) {
    write_file("input/config/hyperparameters.json", hps);
    write_file("input/config/resourceconfig.json", rc);
    memset(job, 0, sizeof *job);
    char err[1024] = "";
    int r = shx_job_load(job, cfg, err, sizeof err);
    if (r) fprintf(stderr, "%s\n", err);
    assert_int_equal(r, 0);
}

static char *json_of(const pyj_value *v) {
    return pyj_dumps(v, 0);
}

/* The toolkit's vectors: {flag: true} on a cluster with instance groups -> ["homogeneousCluster"] and its hosts. */
static const char *const seven[] = {"sagemaker_mpi_enabled", "sagemaker_parameter_server_enabled",
                                    "sagemaker_distributed_dataparallel_enabled", "sagemaker_pytorch_ddp_enabled",
                                    "sagemaker_pytorch_xla_multi_worker_enabled",
                                    "sagemaker_multi_worker_mirrored_strategy_enabled",
                                    "sagemaker_torch_distributed_enabled"};
static const char *const GROUPED_RC =
    "{\"current_host\":\"algo-2\",\"hosts\":[\"algo-1\",\"algo-2\"],\"current_group_name\":\"homogeneousCluster\","
    "\"instance_groups\":[{\"instance_group_name\":\"homogeneousCluster\",\"instance_type\":\"ml.p4d.24xlarge\","
    "\"hosts\":[\"algo-2\",\"algo-1\"]}]}";

static void test_every_flag_makes_the_current_group_a_distribution_group(void **state) {
    (void)state;
    shx_config cfg;
    char err[256];
    shx_config_load_file(&cfg, "/nonexistent/smhost.ini", 0, err, sizeof err);
    for (size_t i = 0; i < sizeof seven / sizeof seven[0]; i++) {
        char hps[256];
        snprintf(hps, sizeof hps, "{\"%s\":\"true\"}", seven[i]);
        shx_job job;
        load(&job, &cfg, hps, GROUPED_RC);
        char *dg = json_of(job.distribution_groups);
        if (strcmp(dg, "[\"homogeneousCluster\"]")) fail_msg("%s: distribution groups %s", seven[i], dg);
        assert_int_equal(job.distribution_hosts.n, 2);
        assert_string_equal(job.distribution_hosts.v[0], "algo-2"); /* the group's order */
        assert_string_equal(job.master, "algo-1");                  /* smhost: first sorted distribution host */
        assert_int_equal(job.is_master, 0);
        const char *sm = shx_env_lookup(job.sm_env.v, "SM_DISTRIBUTION_INSTANCE_GROUPS");
        assert_non_null(sm);
        assert_string_equal(sm, "[\"homogeneousCluster\"]");
        free(dg);
        shx_job_free(&job);
    }
    shx_config_free(&cfg);
}

static void test_false_flag_is_no_distribution(void **state) {
    (void)state;
    shx_config cfg;
    char err[256];
    shx_config_load_file(&cfg, "/nonexistent/smhost.ini", 0, err, sizeof err);
    shx_job job;
    load(&job, &cfg, "{\"sagemaker_torch_distributed_enabled\":\"false\"}", GROUPED_RC);
    char *dg = json_of(job.distribution_groups);
    assert_string_equal(dg, "[]");
    assert_int_equal(job.distribution_hosts.n, 0);
    assert_null(shx_dist_flag(&job));
    free(dg);
    shx_job_free(&job);
    shx_config_free(&cfg);
}

static void test_launcher_flag_follows_the_pytorch_toolkit_order(void **state) {
    (void)state;
    shx_config cfg;
    char err[256];
    shx_config_load_file(&cfg, "/nonexistent/smhost.ini", 0, err, sizeof err);
    static const struct {
        const char *hps, *flag;
    } v[] = {
        {"{\"sagemaker_torch_distributed_enabled\":\"true\"}", "sagemaker_torch_distributed_enabled"},
        {"{\"sagemaker_torch_distributed_enabled\":\"true\",\"sagemaker_mpi_enabled\":\"true\"}",
         "sagemaker_mpi_enabled"},
        {"{\"sagemaker_torch_distributed_enabled\":\"true\",\"sagemaker_pytorch_ddp_enabled\":\"true\"}",
         "sagemaker_pytorch_ddp_enabled"},
        {"{\"sagemaker_pytorch_xla_multi_worker_enabled\":\"true\",\"sagemaker_torch_distributed_enabled\":\"true\"}",
         "sagemaker_torch_distributed_enabled"},
        {"{\"sagemaker_parameter_server_enabled\":\"true\"}", "sagemaker_parameter_server_enabled"},
        {"{\"sagemaker_mpi_num_of_processes_per_host\":\"4\"}", NULL},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        shx_job job;
        load(&job, &cfg, v[i].hps, GROUPED_RC);
        const char *f = shx_dist_flag(&job);
        if (v[i].flag) {
            assert_non_null(f);
            assert_string_equal(f, v[i].flag);
        } else {
            assert_null(f);
        }
        shx_job_free(&job);
    }
    shx_config_free(&cfg);
}

static void test_hosts_outside_the_distribution_groups_launch_nothing(void **state) {
    (void)state;
    shx_config cfg;
    char err[256];
    shx_config_load_file(&cfg, "/nonexistent/smhost.ini", 0, err, sizeof err);
    const char *hetero =
        "{\"current_host\":\"algo-1\",\"hosts\":[\"algo-1\",\"algo-2\"],\"current_group_name\":\"cpu\","
        "\"instance_groups\":[{\"instance_group_name\":\"cpu\",\"hosts\":[\"algo-1\"]},"
        "{\"instance_group_name\":\"gpu\",\"hosts\":[\"algo-2\"]}]}";
    shx_job job;
    load(&job, &cfg,
         "{\"sagemaker_torch_distributed_enabled\":\"true\","
         "\"sagemaker_distribution_instance_groups\":\"[\\\"gpu\\\"]\"}",
         hetero);
    assert_int_equal(job.distribution_hosts.n, 1);
    assert_string_equal(job.master, "algo-2");
    assert_null(shx_dist_flag(&job)); /* algo-1 is in the cpu group: it runs the program once */
    shx_job_free(&job);
    shx_config_free(&cfg);
}

static void test_distributed_config_defaults_and_errors(void **state) {
    (void)state;
    shx_config cfg;
    char err[512];
    shx_config_load_file(&cfg, "/nonexistent/smhost.ini", 0, err, sizeof err);
    assert_int_equal(cfg.dist_failure_grace_seconds, 10);
    assert_int_equal(cfg.dist_master_port, 7777);
    shx_config_free(&cfg);
    char *ini = shx_path_join(g_root, "smhost.ini");
    const char *text = "[distributed]\nmaster_port = 29500\nfailure_grace_seconds = 3\n";
    assert_int_equal(shx_write_file(ini, text, strlen(text), 0), 0);
    assert_int_equal(shx_config_load_file(&cfg, ini, 1, err, sizeof err), 0);
    assert_int_equal(cfg.dist_master_port, 29500);
    assert_int_equal(cfg.dist_failure_grace_seconds, 3);
    shx_config_free(&cfg);
    text = "[distributed]\nmaster_port = 70000\n";
    assert_int_equal(shx_write_file(ini, text, strlen(text), 0), 0);
    assert_int_equal(shx_config_load_file(&cfg, ini, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "master_port"));
    assert_non_null(strstr(err, "7777"));
    shx_config_free(&cfg);
    free(ini);
}

/* The launch_* host functions: only inside plan(), only valid arguments, setenv for one process or all. */
static void test_launch_calls_validate_their_arguments(void **state) {
    (void)state;
    shx_launch l;
    memset(&l, 0, sizeof l);
    const char *const argv[] = {"/usr/sbin/sshd", "-D", NULL};
    assert_int_equal(shx_launch_add(&l, SMH_PROC_PROGRAM, 0, NULL), SMH_E_UNSUPPORTED); /* not planning */
    l.planning = 1;
    assert_int_equal(shx_launch_add(&l, 77, 0, NULL), SMH_E_INVAL);
    assert_int_equal(shx_launch_add(&l, SMH_PROC_PROGRAM, 0, argv), SMH_E_INVAL);  /* a program takes no argv */
    assert_int_equal(shx_launch_add(&l, SMH_PROC_COMMAND, -1, NULL), SMH_E_INVAL); /* a command needs one */
    assert_int_equal(shx_launch_add(&l, SMH_PROC_PROGRAM, -2, NULL), SMH_E_INVAL);
    assert_int_equal(shx_launch_add(&l, SMH_PROC_COMMAND | SMH_PROC_SERVICE, -1, argv), 0);
    assert_int_equal(shx_launch_add(&l, SMH_PROC_PROGRAM, 4, NULL), 1);
    assert_int_equal(shx_launch_add(&l, SMH_PROC_PROGRAM, 5, NULL), 2);
    assert_int_equal(l.procs[0].local_rank, -1);
    assert_int_equal(l.procs[1].local_rank, 0);
    assert_int_equal(l.procs[2].local_rank, 1);
    assert_int_equal(shx_launch_setenv(&l, 1, "A=B", "x"), SMH_E_INVAL);
    assert_int_equal(shx_launch_setenv(&l, 9, "A", "x"), SMH_E_INVAL);
    assert_int_equal(shx_launch_setenv(&l, -1, "ALL", "1"), SMH_OK);
    assert_int_equal(shx_launch_setenv(&l, 2, "RANK", "5"), SMH_OK);
    assert_int_equal(shx_launch_setenv(&l, 2, "RANK", "6"), SMH_OK); /* the later call wins */
    assert_string_equal(shx_env_lookup(l.procs[2].env.v, "RANK"), "6");
    assert_string_equal(shx_env_lookup(l.procs[0].env.v, "ALL"), "1");
    assert_null(shx_env_lookup(l.procs[1].env.v, "RANK"));
    assert_int_equal(shx_launch_error_file(&l, 1, "relative/error.json"), SMH_E_INVAL);
    assert_int_equal(shx_launch_error_file(&l, 1, "/tmp/e.json"), SMH_OK);
    assert_int_equal(shx_launch_wait_port(&l, 0), SMH_E_INVAL);
    assert_int_equal(shx_launch_wait_port(&l, 22), SMH_OK);
    assert_int_equal(shx_launch_rank_host(&l, 3, "algo-2"), SMH_OK);
    assert_int_equal(l.rank_hosts.n, 4);
    assert_string_equal(l.rank_hosts.v[0], "");
    assert_string_equal(l.rank_hosts.v[3], "algo-2");
    l.planning = 0;
    assert_int_equal(shx_launch_setenv(&l, 1, "LATE", "1"), SMH_E_UNSUPPORTED);
    shx_dist_launch_free(&l);
}

/* What a process gets: the job's environment, the launcher's additions only where the job has none (LD_PRELOAD was
 * composed with the user's value already). */
static void test_process_environment_never_overwrites_the_job(void **state) {
    (void)state;
    shx_job job;
    memset(&job, 0, sizeof job);
    shx_strvec_push(&job.env, "OMP_NUM_THREADS=8");
    shx_strvec_push(&job.env, "LD_PRELOAD=/mine.so");
    shx_launch l;
    memset(&l, 0, sizeof l);
    l.planning = 1;
    assert_int_equal(shx_launch_add(&l, SMH_PROC_PROGRAM, 0, NULL), 0);
    shx_launch_setenv(&l, 0, "OMP_NUM_THREADS", "1");
    shx_launch_setenv(&l, 0, "RANK", "0");
    shx_launch_setenv(&l, 0, "LD_PRELOAD", "/lib/gethostname.so:/mine.so");
    shx_strvec env = {0};
    shx_dist_proc_env(&l, 0, &job, &env);
    assert_string_equal(shx_env_lookup(env.v, "OMP_NUM_THREADS"), "8");
    assert_string_equal(shx_env_lookup(env.v, "RANK"), "0");
    assert_string_equal(shx_env_lookup(env.v, "LD_PRELOAD"), "/lib/gethostname.so:/mine.so");
    shx_strvec_free(&env);
    shx_strvec_free(&job.env);
    shx_dist_launch_free(&l);
}

/* A sanitizer build composes ASAN_OPTIONS for ranks that get the gethostname library (the user's options first); a
 * release build adds nothing, so the job's own ASAN_OPTIONS wins there as every other variable does. */
static void test_asan_options_of_ranks(void **state) {
    (void)state;
    char *v = shx_dist_asan_options(NULL);
    assert_string_equal(v, "verify_asan_link_order=0");
    free(v);
    v = shx_dist_asan_options("");
    assert_string_equal(v, "verify_asan_link_order=0");
    free(v);
    v = shx_dist_asan_options("detect_leaks=1");
    assert_string_equal(v, "detect_leaks=1:verify_asan_link_order=0");
    free(v);
    assert_true(shx_dist_env_composed("LD_PRELOAD"));
    assert_false(shx_dist_env_composed("OMP_NUM_THREADS"));
#if defined(__SANITIZE_ADDRESS__)
    assert_true(shx_dist_env_composed("ASAN_OPTIONS"));
#else
    assert_false(shx_dist_env_composed("ASAN_OPTIONS"));
#endif
    shx_job job;
    memset(&job, 0, sizeof job);
    shx_strvec_push(&job.env, "ASAN_OPTIONS=detect_leaks=1");
    shx_launch l;
    memset(&l, 0, sizeof l);
    l.planning = 1;
    assert_int_equal(shx_launch_add(&l, SMH_PROC_PROGRAM, 0, NULL), 0);
    shx_launch_setenv(&l, 0, "ASAN_OPTIONS", "detect_leaks=1:verify_asan_link_order=0");
    shx_strvec env = {0};
    shx_dist_proc_env(&l, 0, &job, &env);
#if defined(__SANITIZE_ADDRESS__)
    assert_string_equal(shx_env_lookup(env.v, "ASAN_OPTIONS"), "detect_leaks=1:verify_asan_link_order=0");
#else
    assert_string_equal(shx_env_lookup(env.v, "ASAN_OPTIONS"), "detect_leaks=1");
#endif
    shx_strvec_free(&env);
    shx_strvec_free(&job.env);
    shx_dist_launch_free(&l);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/smhost-unit-dist-XXXXXX");
    if (!mkdtemp(g_root)) return -1;
    char *d = shx_path_join(g_root, "input/config");
    shx_mkdirs(d, 0755);
    free(d);
    setenv("SAGEMAKER_BASE_DIR", g_root, 1);
    setenv("SAGEMAKER_PROGRAM", "train.sh", 1);
    setenv("SMHOST_DEVICE_BACKENDS", "", 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = tmpdir_remove(g_root);
    return rc == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_flag_makes_the_current_group_a_distribution_group),
        cmocka_unit_test(test_false_flag_is_no_distribution),
        cmocka_unit_test(test_launcher_flag_follows_the_pytorch_toolkit_order),
        cmocka_unit_test(test_hosts_outside_the_distribution_groups_launch_nothing),
        cmocka_unit_test(test_distributed_config_defaults_and_errors),
        cmocka_unit_test(test_launch_calls_validate_their_arguments),
        cmocka_unit_test(test_process_environment_never_overwrites_the_job),
        cmocka_unit_test(test_asan_options_of_ranks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
