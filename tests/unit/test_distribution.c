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
        {"{\"sagemaker_torch_distributed_enabled\":\"true\",\"sagemaker_mpi_enabled\":\"true\"}", "sagemaker_mpi_enabled"},
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
         "{\"sagemaker_torch_distributed_enabled\":\"true\",\"sagemaker_distribution_instance_groups\":\"[\\\"gpu\\\"]\"}",
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
    char *cmd = shx_xasprintf("rm -rf '%s'", g_root);
    int rc = system(cmd);
    free(cmd);
    return rc == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_flag_makes_the_current_group_a_distribution_group),
        cmocka_unit_test(test_false_flag_is_no_distribution),
        cmocka_unit_test(test_launcher_flag_follows_the_pytorch_toolkit_order),
        cmocka_unit_test(test_hosts_outside_the_distribution_groups_launch_nothing),
        cmocka_unit_test(test_distributed_config_defaults_and_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
