/* shx_requirements_install: runs the real /usr/bin/python3 -m pip, offline (PIP_NO_INDEX). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job/requirements.h"
#include "core/util.h"

static char *make_dir(const char *requirements) {
    char tmpl[] = "/tmp/smhost-req-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    if (requirements != NULL) {
        char *p = shx_path_join(d, "requirements.txt");
        assert_int_equal(shx_write_file(p, requirements, strlen(requirements), 0), 0);
        free(p);
    }
    return shx_xstrdup(d);
}

static void remove_dir(char *d) {
    char *p = shx_path_join(d, "requirements.txt");
    unlink(p);
    free(p);
    rmdir(d);
    free(d);
}

static const char *offline_env[] = {"PATH=/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8", "PIP_NO_INDEX=1", NULL};

static void test_no_requirements_is_nothing(void **state) {
    char *d = make_dir(NULL);
    char err[256] = "untouched";
    assert_int_equal(shx_requirements_install(d, offline_env, 1, err, sizeof(err)), 0);
    assert_string_equal(err, "untouched");
    remove_dir(d);
}

static void test_missing_package_fails_with_pips_last_lines(void **state) {
    char *d = make_dir("smhost-no-such-package-xyz==1.0\n");
    char err[1024] = "";
    int code = shx_requirements_install(d, offline_env, 1, err, sizeof(err));
    assert_int_not_equal(code, 0);
    assert_non_null(strstr(err, "pip install -r requirements.txt"));
    assert_non_null(strstr(err, "exited with code"));
    assert_non_null(strstr(err, "smhost-no-such-package-xyz"));
    remove_dir(d);
}

static void test_error_fits_a_small_buffer(void **state) {
    char *d = make_dir("smhost-no-such-package-xyz==1.0\n");
    char err[120];
    memset(err, 'x', sizeof(err));
    int code = shx_requirements_install(d, offline_env, 1, err, sizeof(err));
    assert_int_not_equal(code, 0);
    assert_true(memchr(err, '\0', sizeof(err)) != NULL);
    assert_true(strncmp(err, "`/usr/bin/python3 -m pip install", 32) == 0);
    remove_dir(d);
}

/* Debian marks its Python externally managed: pip refuses any install unless told to break system packages. */
static void test_break_system_packages_option(void **state) {
    if (access("/usr/lib/python3.11/EXTERNALLY-MANAGED", F_OK) != 0) skip();
    char *d = make_dir("pip\n"); /* already installed: "Requirement already satisfied", nothing changes */
    char err[1024] = "";
    assert_int_equal(shx_requirements_install(d, offline_env, 1, err, sizeof(err)), 0);
    err[0] = '\0';
    assert_int_not_equal(shx_requirements_install(d, offline_env, 0, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "externally-managed-environment"));
    /* the job's own PIP_BREAK_SYSTEM_PACKAGES wins over the configured default */
    const char *env_no[] = {"PATH=/usr/bin:/bin", "HOME=/tmp", "PIP_NO_INDEX=1", "PIP_BREAK_SYSTEM_PACKAGES=0", NULL};
    err[0] = '\0';
    assert_int_not_equal(shx_requirements_install(d, env_no, 1, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "externally-managed-environment"));
    remove_dir(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_requirements_is_nothing),
        cmocka_unit_test(test_missing_package_fails_with_pips_last_lines),
        cmocka_unit_test(test_error_fits_a_small_buffer),
        cmocka_unit_test(test_break_system_packages_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
