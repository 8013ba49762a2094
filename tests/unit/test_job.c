/* Unit tests for the job model (host/job/job.c): the ML root's paths and defaults, instance groups, the
 * distribution groups and hosts, master election, the program, and the errors of malformed config files
 * (contract sections 1-3 and 6; the vectors follow tests/blackbox/test_train.py). */
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
#include "core/exitcodes.h"
#include "core/util.h"
#include "tmpdir.h"
#include "job/job.h"

static char g_root[64];
static shx_config g_cfg;

/* Write <root>/<rel> (creating directories). */
static void put(const char *rel, const char *text) {
    tmpdir_put(g_root, rel, text);
}

/* A fresh, empty ML root for every test, and an environment with none of the variables the job reads. */
static int setup(void **state) {
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/smhost-test-job-XXXXXX");
    if (!mkdtemp(g_root)) return -1;
    setenv("SAGEMAKER_BASE_DIR", g_root, 1);
    unsetenv("SAGEMAKER_PROGRAM");
    unsetenv("SAGEMAKER_TRAINING_MODULE");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = tmpdir_remove(g_root);
    return rc == 0 ? 0 : -1;
}

static int load(shx_job *job, char *err, size_t errlen) {
    memset(job, 0, sizeof *job);
    err[0] = 0;
    return shx_job_load(job, &g_cfg, err, errlen);
}

static void assert_strvec(const shx_strvec *sv, const char *const *want, size_t n) {
    assert_int_equal(sv->n, n);
    for (size_t i = 0; i < n; i++) assert_string_equal(sv->v[i], want[i]);
}

/* The value of K in the job's SM_* variables. */
static const char *sm(const shx_job *job, const char *name) {
    const char *v = shx_env_lookup(job->sm_env.v, name);
    if (!v) fail_msg("%s is not set", name);
    return v;
}

/* ---- section 1: the ML root, and what missing files mean ------------------------------------------------- */
static void test_missing_files_mean_one_host_named_after_the_machine(void **state) {
    (void)state;
    shx_job job;
    char err[1024];
    assert_int_equal(load(&job, err, sizeof err), 0);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    assert_string_equal(job.root, g_root);
    char *model = shx_path_join(g_root, "model"), *inter = shx_path_join(g_root, "output/intermediate");
    assert_string_equal(job.model_dir, model);
    assert_string_equal(job.intermediate_dir, inter);
    assert_string_equal(job.module_dir, job.code_dir); /* no sagemaker_submit_directory */
    free(model), free(inter);
    assert_string_equal(job.current_host, host);
    assert_strvec(&job.hosts, (const char *[]){host}, 1);
    assert_strvec(&job.distribution_hosts, (const char *[]){host}, 1);
    assert_string_equal(job.master, host);
    assert_true(job.is_master);
    assert_false(job.is_hetero);
    assert_string_equal(job.instance_type, "local");
    assert_string_equal(job.group_name, "homogeneousCluster");
    assert_string_equal(job.network_interface_name, "eth0");
    assert_int_equal(job.group_names.n, 0);
    assert_int_equal(job.current_group_hosts.n, 0);
    assert_int_equal(job.distribution_groups->u.list.n, 0);
    assert_int_equal(job.channels.n, 0);
    assert_int_equal(job.hyperparameters->u.dict.n, 0);
    assert_int_equal(job.log_level_int, 20);
    assert_null(job.program);
    assert_null(job.training_module);
    assert_string_equal(sm(&job, "SM_HPS"), "{}");
    assert_string_equal(sm(&job, "SM_CURRENT_INSTANCE_GROUP_HOSTS"), "[]");
    assert_string_equal(sm(&job, "SM_DISTRIBUTION_INSTANCE_GROUPS"), "[]");
    assert_string_equal(sm(&job, "SM_IS_HETERO"), "false");
    shx_job_free(&job);
}

static void test_base_dir_trailing_slashes_and_default(void **state) {
    (void)state;
    char *slashed = shx_xasprintf("%s//", g_root);
    setenv("SAGEMAKER_BASE_DIR", slashed, 1);
    shx_job job;
    char err[1024];
    assert_int_equal(load(&job, err, sizeof err), 0);
    assert_string_equal(job.root, g_root);
    shx_job_free(&job);
    free(slashed);
    const char *in[] = {NULL, "", "/data/ml/", "/data/ml", "/"}, *want[] = {"/opt/ml", "/opt/ml", "/data/ml", "/data/ml", "/"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        char *r = shx_ml_root(in[i]);
        assert_string_equal(r, want[i]);
        free(r);
    }
}

static void test_channels_sorted_and_program(void **state) {
    (void)state;
    put("input/config/inputdataconfig.json", "{\"train\": {}, \"eval-data\": {}, \"a\": {}}");
    put("input/config/hyperparameters.json",
        "{\"sagemaker_program\": \"\\\"from_hp.py\\\"\", \"sagemaker_submit_directory\": \"\\\"s3://b/k.tar.gz\\\"\","
        " \"sagemaker_container_log_level\": \"10\", \"lr\": \"0.1\"}");
    shx_job job;
    char err[1024];
    assert_int_equal(load(&job, err, sizeof err), 0);
    assert_strvec(&job.channels, (const char *[]){"a", "eval-data", "train"}, 3);
    assert_string_equal(job.program, "from_hp.py");
    assert_string_equal(job.module_name, "from_hp");
    char *path = shx_path_join(job.code_dir, "from_hp.py");
    assert_string_equal(job.program_path, path);
    free(path);
    assert_string_equal(job.module_dir, "s3://b/k.tar.gz");
    assert_int_equal(job.log_level_int, 10);
    assert_int_equal(job.user_hps->u.dict.n, 1); /* sagemaker_* are framework parameters */
    shx_job_free(&job);

    /* SAGEMAKER_PROGRAM wins over the hyperparameter; an absolute path is kept as it is. */
    setenv("SAGEMAKER_PROGRAM", "/opt/prog/train.sh", 1);
    setenv("SAGEMAKER_TRAINING_MODULE", "pkg.train:main", 1);
    assert_int_equal(load(&job, err, sizeof err), 0);
    assert_string_equal(job.program, "/opt/prog/train.sh");
    assert_string_equal(job.program_path, "/opt/prog/train.sh");
    assert_string_equal(job.module_name, "/opt/prog/train.sh");
    assert_string_equal(job.training_module, "pkg.train:main");
    assert_string_equal(shx_job_inherited(&job, "SAGEMAKER_TRAINING_MODULE"), "pkg.train:main");
    shx_job_free(&job);
    unsetenv("SAGEMAKER_PROGRAM");
    unsetenv("SAGEMAKER_TRAINING_MODULE");
}

/* ---- sections 3 and 6: hosts, groups, distribution, master ------------------------------------------------ */
static void test_homogeneous_master_is_first_sorted_host(void **state) {
    (void)state;
    put("input/config/resourceconfig.json",
        "{\"current_host\": \"algo-2\", \"hosts\": [\"algo-3\", \"algo-2\", \"algo-1\"]}");
    shx_job job;
    char err[1024];
    assert_int_equal(load(&job, err, sizeof err), 0);
    assert_strvec(&job.hosts, (const char *[]){"algo-3", "algo-2", "algo-1"}, 3);
    /* no instance_groups: the distribution hosts are all hosts, file order */
    assert_strvec(&job.distribution_hosts, (const char *[]){"algo-3", "algo-2", "algo-1"}, 3);
    assert_string_equal(job.master, "algo-1");
    assert_false(job.is_master);
    shx_job_free(&job);
    put("input/config/resourceconfig.json",
        "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-3\", \"algo-2\", \"algo-1\"]}");
    assert_int_equal(load(&job, err, sizeof err), 0);
    assert_string_equal(job.master, "algo-1");
    assert_true(job.is_master);
    shx_job_free(&job);
}

static const char *HETERO_FMT =
    "{\"current_host\": \"%s\", \"current_instance_type\": \"ml.p4d.24xlarge\", \"current_group_name\": \"gpu\","
    " \"hosts\": [\"algo-1\", \"algo-2\", \"algo-3\", \"algo-4\"],"
    " \"instance_groups\": ["
    "  {\"instance_group_name\": \"cpu\", \"instance_type\": \"ml.c5.xlarge\", \"hosts\": [\"algo-2\", \"algo-1\"]},"
    "  {\"instance_group_name\": \"gpu\", \"instance_type\": \"ml.p4d.24xlarge\", \"hosts\": [%s]}],"
    " \"network_interface_name\": \"ethwe\"}";

static void test_heterogeneous_groups_and_deterministic_master(void **state) {
    (void)state;
    char *rc = shx_xasprintf(HETERO_FMT, "algo-3", "\"algo-4\", \"algo-3\"");
    put("input/config/resourceconfig.json", rc);
    free(rc);
    put("input/config/hyperparameters.json", "{\"sagemaker_distribution_instance_groups\": \"[\\\"gpu\\\"]\"}");
    shx_job job;
    char err[1024];
    assert_int_equal(load(&job, err, sizeof err), 0);
    assert_true(job.is_hetero);
    assert_strvec(&job.group_names, (const char *[]){"cpu", "gpu"}, 2);
    assert_string_equal(job.group_name, "gpu");
    assert_string_equal(job.instance_type, "ml.p4d.24xlarge");
    assert_string_equal(job.network_interface_name, "ethwe");
    assert_strvec(&job.current_group_hosts, (const char *[]){"algo-4", "algo-3"}, 2);
    const pyj_value *cpu = pyj_dict_get(job.groups_dict, "cpu");
    assert_non_null(cpu);
    assert_string_equal(pyj_as_string(pyj_dict_get(cpu, "instance_type")), "ml.c5.xlarge");
    assert_int_equal(job.distribution_groups->u.list.n, 1);
    assert_string_equal(pyj_as_string(job.distribution_groups->u.list.items[0]), "gpu");
    assert_strvec(&job.distribution_hosts, (const char *[]){"algo-4", "algo-3"}, 2);
    /* The toolkit would take algo-4 (listed first); smhost takes the first sorted distribution host. */
    assert_string_equal(job.master, "algo-3");
    assert_true(job.is_master);
    assert_string_equal(sm(&job, "SM_INSTANCE_GROUPS"), "[\"cpu\",\"gpu\"]");
    assert_string_equal(sm(&job, "SM_CURRENT_INSTANCE_GROUP_HOSTS"), "[\"algo-4\",\"algo-3\"]");
    assert_string_equal(sm(&job, "SM_DISTRIBUTION_INSTANCE_GROUPS"), "[\"gpu\"]");
    assert_string_equal(sm(&job, "SM_IS_HETERO"), "true");
    shx_job_free(&job);

    /* Another host's view lists the group's hosts in another order: it agrees on the master. */
    rc = shx_xasprintf(HETERO_FMT, "algo-4", "\"algo-3\", \"algo-4\"");
    put("input/config/resourceconfig.json", rc);
    free(rc);
    assert_int_equal(load(&job, err, sizeof err), 0);
    assert_strvec(&job.distribution_hosts, (const char *[]){"algo-3", "algo-4"}, 2);
    assert_string_equal(job.master, "algo-3");
    assert_false(job.is_master);
    shx_job_free(&job);

    /* A host of the cpu group, outside the distribution groups, agrees too. */
    rc = shx_xasprintf(HETERO_FMT, "algo-1", "\"algo-4\", \"algo-3\"");
    put("input/config/resourceconfig.json", rc);
    free(rc);
    assert_int_equal(load(&job, err, sizeof err), 0);
    assert_string_equal(job.master, "algo-3");
    assert_false(job.is_master);
    shx_job_free(&job);

    /* No distribution group at all: no distribution host, and the master is the first sorted host. */
    put("input/config/hyperparameters.json", "{}");
    assert_int_equal(load(&job, err, sizeof err), 0);
    assert_int_equal(job.distribution_hosts.n, 0);
    assert_string_equal(job.master, "algo-1");
    assert_true(job.is_master);
    shx_job_free(&job);
}

static void test_every_distribution_flag_makes_the_current_group_a_distribution_group(void **state) {
    (void)state;
    static const char *flags[] = {"sagemaker_mpi_enabled", "sagemaker_parameter_server_enabled",
                                  "sagemaker_distributed_dataparallel_enabled", "sagemaker_pytorch_ddp_enabled",
                                  "sagemaker_pytorch_xla_multi_worker_enabled",
                                  "sagemaker_multi_worker_mirrored_strategy_enabled",
                                  "sagemaker_torch_distributed_enabled"};
    shx_job job;
    char err[1024];
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        char *hp = shx_xasprintf("{\"%s\": \"true\"}", flags[i]);
        put("input/config/hyperparameters.json", hp);
        free(hp);
        assert_int_equal(load(&job, err, sizeof err), 0);
        if (job.distribution_groups->u.list.n != 1) fail_msg("%s does not make a distribution group", flags[i]);
        assert_string_equal(pyj_as_string(job.distribution_groups->u.list.items[0]), "homogeneousCluster");
        assert_string_equal(sm(&job, "SM_DISTRIBUTION_INSTANCE_GROUPS"), "[\"homogeneousCluster\"]");
        shx_job_free(&job);
    }
    /* A false flag (JSON false, and Python-falsy values) is no flag. */
    const char *off[] = {"{\"sagemaker_mpi_enabled\": \"false\"}", "{\"sagemaker_pytorch_ddp_enabled\": \"0\"}",
                         "{\"sagemaker_torch_distributed_enabled\": \"\\\"\\\"\"}"};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        put("input/config/hyperparameters.json", off[i]);
        assert_int_equal(load(&job, err, sizeof err), 0);
        if (job.distribution_groups->u.list.n != 0) fail_msg("%s made a distribution group", off[i]);
        shx_job_free(&job);
    }
}

/* ---- malformed files: a data error naming the file and the fix --------------------------------------------- */
static void expect_error(const char *rel, const char *text, const char *needle) {
    put(rel, text);
    shx_job job;
    char err[1024];
    int rc = load(&job, err, sizeof err);
    shx_job_free(&job);
    if (rc != SHX_EXIT_DATAERR) fail_msg("%s = %s: rc %d, want %d (%s)", rel, text, rc, SHX_EXIT_DATAERR, err);
    if (!strstr(err, needle)) fail_msg("%s = %s: error '%s' does not say '%s'", rel, text, err, needle);
    if (!strstr(err, strrchr(rel, '/') + 1)) fail_msg("error '%s' does not name %s", err, rel);
    char *p = shx_path_join(g_root, rel);
    unlink(p);
    free(p);
}

static void test_malformed_config_files_are_data_errors(void **state) {
    (void)state;
    const char *rc = "input/config/resourceconfig.json", *hp = "input/config/hyperparameters.json";
    expect_error(hp, "{\"lr\": ", "is not valid JSON");
    expect_error(hp, "[1, 2]", "must hold a JSON object ({...}), not a list");
    expect_error("input/config/inputdataconfig.json", "\"train\"", "not a single value");
    expect_error(hp, "{\"bad\": \"\\\"a\\\\u0000b\\\"\"}", "NUL character");
    expect_error(rc, "{\"hosts\": [\"algo-1\"]}", "\"current_host\" is missing");
    expect_error(rc, "{\"current_host\": 3, \"hosts\": [\"algo-1\"]}", "\"current_host\" is not a string");
    expect_error(rc, "{\"current_host\": \"algo-1\", \"hosts\": []}", "must list at least one host");
    expect_error(rc, "{\"current_host\": \"algo-1\"}", "\"hosts\" must be a list of host names");
    expect_error(rc, "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\", 2]}", "item 1 is not a string");
    expect_error(rc, "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\"], \"instance_groups\": {}}",
                 "\"instance_groups\" must be a list");
    expect_error(rc, "{\"current_host\": \"algo-1\", \"hosts\": [\"algo-1\"], \"instance_groups\": [{\"hosts\": []}]}",
                 "instance_groups[0] has no \"instance_group_name\"");
}

static int load_cfg(void) {
    /* No device backend: the job model is what is tested here, not the probes. */
    return tmpdir_load_config(&g_cfg, "[devices]\nbackends =\nhealth_check = off\n");
}

int main(void) {
    if (load_cfg()) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_missing_files_mean_one_host_named_after_the_machine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_base_dir_trailing_slashes_and_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channels_sorted_and_program, setup, teardown),
        cmocka_unit_test_setup_teardown(test_homogeneous_master_is_first_sorted_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heterogeneous_groups_and_deterministic_master, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_distribution_flag_makes_the_current_group_a_distribution_group,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_config_files_are_data_errors, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    shx_config_free(&g_cfg);
    return rc;
}
