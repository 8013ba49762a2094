/* Unit tests for host/job/devices.c.  This machine has no GPU or Neuron device, so GPU and Neuron counts are tested
 * against fake /proc, /dev and /sys trees under SMHOST_TEST_SYSROOT (a test double for that hardware). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job/devices.h"
#include "core/util.h"
#include "tmpdir.h"

static char g_root[64];

static int setup(void **state) {
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/smhost-devices-XXXXXX");
    if (!mkdtemp(g_root)) return -1;
    setenv("SMHOST_TEST_SYSROOT", g_root, 1);
    return 0;
}
static int teardown(void **state) {
    (void)state;
    unsetenv("SMHOST_TEST_SYSROOT");
    int rc = tmpdir_remove(g_root);
    return rc == 0 ? 0 : -1;
}

/* Creates <root>/<rel> as a file with text, or as a directory when text is NULL. */
static void make(const char *rel, const char *text) {
    char *p = shx_path_join(g_root, rel);
    if (!text) {
        assert_int_equal(shx_mkdirs(p, 0755), 0);
    } else {
        char *dir = shx_xstrdup(p);
        *strrchr(dir, '/') = 0;
        assert_int_equal(shx_mkdirs(dir, 0755), 0);
        free(dir);
        assert_int_equal(shx_write_file(p, text, strlen(text), 0), 0);
    }
    free(p);
}

static void test_cpus_match_python(void **state) {
    (void)state;
    /* The toolkit's num_cpus is multiprocessing.cpu_count(): ask Debian's Python on this machine. */
    FILE *p = popen("/usr/bin/python3 -c 'import multiprocessing; print(multiprocessing.cpu_count())' 2>/dev/null", "r");
    assert_non_null(p);
    int n = -1;
    int got = fscanf(p, "%d", &n);
    int rc = pclose(p);
    if (got != 1 || rc != 0) skip(); /* no /usr/bin/python3 */
    assert_int_equal(shx_num_cpus(), n);
}

static void test_empty_tree_has_no_devices(void **state) {
    (void)state;
    assert_int_equal(shx_num_gpus(), 0);
    assert_int_equal(shx_num_neurons(), 0);
    make("/dev/null", "");
    make("/proc/driver/nvidia/gpus", NULL); /* driver loaded, no GPU given to the container */
    assert_int_equal(shx_num_gpus(), 0);
}

static void test_gpus_from_proc(void **state) {
    (void)state;
    make("/proc/driver/nvidia/gpus/0000:00:1b.0", NULL);
    make("/proc/driver/nvidia/gpus/0000:00:1c.0", NULL);
    make("/proc/driver/nvidia/gpus/0000:00:1d.0", NULL);
    make("/dev/nvidia0", ""); /* /proc wins over /dev */
    make("/dev/nvidiactl", "");
    assert_int_equal(shx_num_gpus(), 3);
}

static void test_gpus_from_dev_nodes(void **state) {
    (void)state;
    make("/dev/nvidia0", "");
    make("/dev/nvidia1", "");
    make("/dev/nvidia12", "");
    make("/dev/nvidiactl", "");
    make("/dev/nvidia-uvm", "");
    make("/dev/nvidia-uvm-tools", "");
    make("/dev/nvidia-modeset", "");
    make("/dev/nvidia-caps", NULL);
    make("/dev/nvidia", "");
    make("/dev/nvidia1x", "");
    assert_int_equal(shx_num_gpus(), 3);
    make("/proc/driver/nvidia/gpus", NULL); /* empty: fall back to /dev */
    assert_int_equal(shx_num_gpus(), 3);
}

static void test_neurons_from_sysfs_core_count(void **state) {
    (void)state;
    make("/dev/neuron0", "");
    make("/dev/neuron1", "");
    make("/dev/neuron_extra", "");
    make("/sys/class/neuron_device/neuron0/core_count", "2\n");
    make("/sys/class/neuron_device/neuron1/core_count", "2\n");
    /* A device of the host that was not passed to the container: sysfs shows it, /dev does not. */
    make("/sys/class/neuron_device/neuron2/core_count", "2\n");
    assert_int_equal(shx_num_neurons(), 4);
}

static void test_neurons_without_core_count(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        char p[32];
        snprintf(p, sizeof p, "/dev/neuron%d", i);
        make(p, "");
    }
    assert_int_equal(shx_num_neurons(), 8); /* no instance type known: 2 per device */
    make("/sys/devices/virtual/dmi/id/product_name", "inf1.24xlarge\n");
    assert_int_equal(shx_num_neurons(), 16);
    make("/sys/devices/virtual/dmi/id/product_name", "trn1.32xlarge\n");
    assert_int_equal(shx_num_neurons(), 8);
    make("/sys/devices/virtual/dmi/id/product_name", "trn2.48xlarge\n");
    assert_int_equal(shx_num_neurons(), 16);
    /* A readable core_count wins over the instance type; an unreadable one falls back to it. */
    make("/sys/class/neuron_device/neuron0/core_count", "8\n");
    make("/sys/class/neuron_device/neuron1/core_count", "garbage\n");
    assert_int_equal(shx_num_neurons(), 8 + 4 + 4 + 4);
}

/* Discovery asks about /dev once per backend: inside a scan each directory is read once (a node that appears
 * meanwhile is not seen), outside every call reads afresh; a missing directory stays missing inside the scan. */
static void test_scan_reads_each_directory_once(void **state) {
    (void)state;
    char why[256];
    make("dev/nvidia0", "");
    shx_device_scan_begin();
    assert_int_equal(shx_device_signs("nvidia", NULL, why, sizeof why), 1);
    assert_int_equal(shx_device_signs("neuron", NULL, why, sizeof why), 0);
    make("dev/neuron0", "");
    assert_int_equal(shx_device_signs("neuron", NULL, why, sizeof why), 0); /* /dev was read already */
    assert_int_equal(shx_num_gpus(), 1);
    shx_device_scan_end();
    assert_int_equal(shx_device_signs("neuron", NULL, why, sizeof why), 1);
    make("dev/nvidia1", "");
    assert_int_equal(shx_num_gpus(), 2);
    shx_device_scan_end(); /* twice is harmless */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpus_match_python),
        cmocka_unit_test_setup_teardown(test_empty_tree_has_no_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpus_from_proc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpus_from_dev_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_neurons_from_sysfs_core_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_neurons_without_core_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_reads_each_directory_once, setup, teardown),
    };
    return cmocka_run_group_tests_name("devices", tests, NULL, NULL);
}
