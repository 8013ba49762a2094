/* Unit tests for host/job/devview.c (counting, the health verdict, JSON), the cheap hardware signs of
 * host/job/devices.c, and the [devices] section of smhost.ini. */
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
#include "job/devices.h"
#include "job/devview.h"
#include "job/job.h"

static smh_device dev(uint32_t cls, int index, uint32_t flags, uint32_t health, const char *uuid) {
    smh_device d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.device_class = cls;
    d.index = index;
    d.parent = -1;
    d.flags = flags;
    d.health = health;
    snprintf(d.uuid, sizeof d.uuid, "%s", uuid);
    return d;
}

static void test_counts_visible_top_level_gpus_and_cores(void **state) {
    (void)state;
    shx_devview v = {0};
    smh_device d = dev(SMH_DEVICE_GPU, 0, SMH_DEVICE_VISIBLE | SMH_DEVICE_MIG_ENABLED, 0, "GPU-a");
    shx_devview_add(&v, &d, sizeof d, "nvidia");
    d = dev(SMH_DEVICE_GPU, 0, SMH_DEVICE_VISIBLE | SMH_DEVICE_MIG_CHILD, 0, "MIG-a0");
    d.parent = 0;
    shx_devview_add(&v, &d, sizeof d, "nvidia");
    d = dev(SMH_DEVICE_GPU, 1, 0, 0, "GPU-b"); /* hidden by CUDA_VISIBLE_DEVICES */
    shx_devview_add(&v, &d, sizeof d, "nvidia");
    d = dev(SMH_DEVICE_GPU, 2, SMH_DEVICE_VISIBLE, SMH_HEALTH_FAILED, "GPU-c");
    shx_devview_add(&v, &d, sizeof d, "nvidia");
    d = dev(SMH_DEVICE_NEURON, 0, SMH_DEVICE_VISIBLE, 0, "");
    d.cores = 8;
    d.visible_cores = 4;
    shx_devview_add(&v, &d, sizeof d, "neuron");
    shx_devview_count(&v);
    assert_int_equal(v.num_gpus, 2);
    assert_int_equal(v.num_neurons, 4);
    assert_string_equal(v.devs[4].backend, "neuron");
    shx_devview_free(&v);
}

static void test_fallback_counts_add_up(void **state) {
    (void)state;
    shx_devview v = {0};
    v.backends = shx_xcalloc(2, sizeof *v.backends);
    v.nbackends = 2;
    v.backends[0].state = SHX_BK_FALLBACK;
    v.backends[0].device_class = SMH_DEVICE_GPU;
    v.backends[0].fallback_count = 8;
    v.backends[1].state = SHX_BK_FALLBACK;
    v.backends[1].device_class = SMH_DEVICE_NEURON;
    v.backends[1].fallback_count = 32;
    shx_devview_count(&v);
    assert_int_equal(v.num_gpus, 8);
    assert_int_equal(v.num_neurons, 32);
    shx_devview_free(&v);
}

static void test_failed_names_index_uuid_reason_of_visible_only(void **state) {
    (void)state;
    shx_devview v = {0};
    smh_device d = dev(SMH_DEVICE_GPU, 3, SMH_DEVICE_VISIBLE, SMH_HEALTH_FAILED, "GPU-dead");
    snprintf(d.reason, sizeof d.reason, "uncorrected volatile ECC errors: 2");
    shx_devview_add(&v, &d, sizeof d, "nvidia");
    d = dev(SMH_DEVICE_GPU, 4, 0, SMH_HEALTH_FAILED, "GPU-hidden"); /* not visible: the job never uses it */
    shx_devview_add(&v, &d, sizeof d, "nvidia");
    d = dev(SMH_DEVICE_GPU, 5, SMH_DEVICE_VISIBLE, SMH_HEALTH_DEGRADED, "GPU-slow");
    shx_devview_add(&v, &d, sizeof d, "nvidia");
    char *msg = NULL;
    assert_int_equal(shx_devview_failed(&v, &msg), 1);
    assert_string_equal(msg, "nvidia GPU 3 (GPU-dead): uncorrected volatile ECC errors: 2");
    free(msg);
    shx_devview_free(&v);
}

static void test_smaller_struct_is_zero_filled(void **state) {
    (void)state;
    shx_devview v = {0};
    smh_device d = dev(SMH_DEVICE_GPU, 1, SMH_DEVICE_VISIBLE, 0, "GPU-x");
    snprintf(d.reason, sizeof d.reason, "must not be copied");
    shx_devview_add(&v, &d, offsetof(smh_device, reason), "old");
    assert_string_equal(v.devs[0].uuid, "GPU-x");
    assert_string_equal(v.devs[0].reason, "");
    assert_int_equal(v.devs[0].struct_size, sizeof(smh_device));
    shx_devview_free(&v);
}

static void test_json_fields_and_rank_env(void **state) {
    (void)state;
    shx_devview v = {0};
    smh_device d = dev(SMH_DEVICE_GPU, 0, SMH_DEVICE_VISIBLE, 0, "GPU-a");
    d.memory_total = 85520809984ULL;
    snprintf(d.pci_bus_id, sizeof d.pci_bus_id, "0000:18:00.0");
    snprintf(d.name, sizeof d.name, "NVIDIA H100 80GB HBM3");
    shx_devview_add(&v, &d, sizeof d, "nvidia");
    v.backends = shx_xcalloc(1, sizeof *v.backends);
    v.nbackends = 1;
    snprintf(v.backends[0].name, sizeof v.backends[0].name, "nvidia");
    v.backends[0].state = SHX_BK_OK;
    shx_strvec_push(&v.backends[0].info, "driver_version=550.54.15");
    shx_strvec_push(&v.backends[0].info, "cuda_version=12.4");
    shx_strvec_push(&v.isolation, "0 CUDA_VISIBLE_DEVICES=GPU-a");
    shx_strvec_push(&v.isolation, "1 CUDA_VISIBLE_DEVICES=GPU-b");
    shx_devview_count(&v);
    pyj_value *j = shx_devview_json(&v);
    char *s = pyj_dumps(j, 1);
    assert_non_null(strstr(s, "\"devices\":[{\"backend\":\"nvidia\",\"class\":\"gpu\",\"health\":\"ok\",\"index\":0,"
                              "\"memory_total\":85520809984,\"mig\":false,\"name\":\"NVIDIA H100 80GB HBM3\","
                              "\"parent\":null,\"pci_bus_id\":\"0000:18:00.0\",\"reason\":null,\"uuid\":\"GPU-a\","
                              "\"visible\":true}]"));
    assert_non_null(strstr(s, "\"driver_version\":\"550.54.15\",\"isolation\""));
    assert_non_null(strstr(s, "\"cuda_version\":\"12.4\",\"devices\""));
    assert_non_null(strstr(s, "\"isolation\":{\"0\":{\"CUDA_VISIBLE_DEVICES\":\"GPU-a\"},\"1\":{\"CUDA_VISIBLE_DEVICES\":\"GPU-b\"}}"));
    free(s);
    pyj_free(j);
    assert_string_equal(shx_devview_rank_env(&v, 1, "CUDA_VISIBLE_DEVICES"), "GPU-b");
    assert_null(shx_devview_rank_env(&v, 2, "CUDA_VISIBLE_DEVICES"));
    assert_null(shx_devview_rank_env(&v, 0, "CUDA"));
    shx_devview_free(&v);
}

/* The launcher's processes per host (contract section 6) from the device counts. */
static void test_procs_per_host(void **state) {
    (void)state;
    shx_job job;
    memset(&job, 0, sizeof job);
    job.hyperparameters = pyj_dict();
    assert_int_equal(shx_job_procs_per_host(&job), 1);
    job.num_neurons = 32;
    assert_int_equal(shx_job_procs_per_host(&job), 32);
    job.num_gpus = 8;
    assert_int_equal(shx_job_procs_per_host(&job), 8);
    pyj_dict_set(job.hyperparameters, "sagemaker_mpi_num_of_processes_per_host", pyj_int_ll(3));
    assert_int_equal(shx_job_procs_per_host(&job), 3);
    pyj_dict_set(job.hyperparameters, "sagemaker_mpi_num_of_processes_per_host", pyj_string("x"));
    assert_int_equal(shx_job_procs_per_host(&job), 8); /* not a number: the device count */
    pyj_free(job.hyperparameters);
}

/* ---- hardware signs ---------------------------------------------------------------------------------------- */
static char g_root[64];

static void mk(const char *rel, const char *text) {
    char *p = shx_path_join(g_root, rel), *dir = shx_xstrdup(p);
    *strrchr(dir, '/') = 0;
    assert_int_equal(shx_mkdirs(dir, 0755), 0);
    free(dir);
    if (text) assert_int_equal(shx_write_file(p, text, strlen(text), 0), 0);
    else assert_int_equal(shx_mkdirs(p, 0755), 0);
    free(p);
}

static void test_signs(void **state) {
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/smhost-devview-XXXXXX");
    assert_non_null(mkdtemp(g_root));
    setenv("SMHOST_TEST_SYSROOT", g_root, 1);
    char why[512];
    char *empty[] = {NULL};
    char *withlib[] = {"SMHOST_NVML_LIBRARY=/x/libnvidia-ml.so.1", NULL};
    assert_int_equal(shx_device_signs("nvidia", empty, why, sizeof why), 0);
    assert_non_null(strstr(why, "NVML not loaded"));
    assert_int_equal(shx_device_signs("nvidia", withlib, why, sizeof why), 1);
    assert_int_equal(shx_device_signs("neuron", empty, why, sizeof why), 0);
    assert_int_equal(shx_device_signs("amd", empty, why, sizeof why), 0);
    assert_int_equal(shx_device_signs("mybackend", empty, why, sizeof why), -1);
    mk("/dev/nvidiactl", ""); /* control nodes are no GPU */
    assert_int_equal(shx_device_signs("nvidia", empty, why, sizeof why), 0);
    mk("/dev/nvidia0", "");
    assert_int_equal(shx_device_signs("nvidia", empty, why, sizeof why), 1);
    mk("/dev/neuron3", "");
    assert_int_equal(shx_device_signs("neuron", empty, why, sizeof why), 1);
    mk("/dev/kfd", "");
    assert_int_equal(shx_device_signs("amd", empty, why, sizeof why), 1);
    unsetenv("SMHOST_TEST_SYSROOT");
    assert_int_equal(tmpdir_remove(g_root), 0);
}

/* ---- [devices] in smhost.ini -------------------------------------------------------------------------------- */
static int load_ini(const char *text, shx_config *cfg, char *err, size_t errlen) {
    char path[] = "/tmp/smhost-devini-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = shx_config_load_file(cfg, path, 1, err, errlen);
    unlink(path);
    return rc;
}

static void test_config_devices(void **state) {
    (void)state;
    shx_config cfg;
    char err[1024];
    shx_strvec names = {0};
    assert_int_equal(load_ini("", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.device_health_check, SHX_HEALTH_FAIL);
    assert_int_equal(cfg.device_isolate, 0);
    shx_config_device_backends(&cfg, &names);
    assert_int_equal(names.n, 3);
    assert_string_equal(names.v[0], "nvidia");
    shx_strvec_free(&names);
    shx_config_free(&cfg);

    assert_int_equal(load_ini("[devices]\nhealth_check = warn\nisolate = yes\nbackends = neuron, mydev\n", &cfg, err,
                              sizeof err), 0);
    assert_int_equal(cfg.device_health_check, SHX_HEALTH_WARN);
    assert_int_equal(cfg.device_isolate, 1);
    shx_config_device_backends(&cfg, &names);
    assert_int_equal(names.n, 2);
    assert_string_equal(names.v[1], "mydev");
    shx_strvec_free(&names);
    shx_config_free(&cfg);

    assert_int_equal(load_ini("[devices]\nbackends =\nhealth_check = OFF\n", &cfg, err, sizeof err), 0);
    shx_config_device_backends(&cfg, &names);
    assert_int_equal(names.n, 0); /* empty: no backend at all */
    assert_int_equal(cfg.device_health_check, SHX_HEALTH_OFF);
    shx_config_free(&cfg);

    assert_int_equal(load_ini("[devices]\nhealth_check = maybe\n", &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, ":2:"));
    assert_non_null(strstr(err, "expected fail, warn or off"));
    shx_config_free(&cfg);
    assert_int_equal(cfg.device_probe_timeout_seconds, 60);
    assert_int_equal(load_ini("[devices]\nprobe_timeout_seconds = 0\n", &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "1 or more"));
    shx_config_free(&cfg);
    assert_int_equal(load_ini("[devices]\nprobe_timeout_seconds = 5\n", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.device_probe_timeout_seconds, 5);
    shx_config_free(&cfg);
    assert_int_equal(load_ini("[devices]\nisolate = sometimes\n", &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "isolate"));
    shx_config_free(&cfg);
    assert_int_equal(load_ini("[devices]\nbackends = nvidia, ../evil\n", &cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "../evil"));
    shx_config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_visible_top_level_gpus_and_cores),
        cmocka_unit_test(test_fallback_counts_add_up),
        cmocka_unit_test(test_failed_names_index_uuid_reason_of_visible_only),
        cmocka_unit_test(test_smaller_struct_is_zero_filled),
        cmocka_unit_test(test_json_fields_and_rank_env),
        cmocka_unit_test(test_procs_per_host),
        cmocka_unit_test(test_signs),
        cmocka_unit_test(test_config_devices),
    };
    return cmocka_run_group_tests_name("devview", tests, NULL, NULL);
}
