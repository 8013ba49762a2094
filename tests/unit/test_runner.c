/* Unit tests for the training-runner policy (host/plugin/runner.c, shx_runner_for): contract section 4's kinds,
 * module names, missing programs and their exit codes, SAGEMAKER_TRAINING_MODULE, [runners] overrides, and the
 * plugins' claims (an extension, ELF shared objects, executables).  The registry searches a temp directory that
 * holds links to the built exec and native plugins and the good_runner test plugin, or nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/exitcodes.h"
#include "core/util.h"
#include "tmpdir.h"
#include "job/job.h"
#include "plugin/registry.h"
#include "plugin/runner.h"

static char g_dir[64];     /* code/ and the plugin directories live here */
static char *g_code, *g_plugins, *g_noplugins, *g_build;

static char *in_code(const char *name) {
    return shx_path_join(g_code, name);
}

static void put_code(const char *name, const char *text, int mode) {
    char *p = in_code(name);
    assert_int_equal(shx_write_file(p, text, strlen(text), 0), 0);
    chmod(p, (mode_t)mode);
    free(p);
}

static void copy_code(const char *name, const char *from) {
    char *text;
    size_t len;
    if (shx_read_file(from, &text, &len)) fail_msg("cannot read %s (build it first: make all test-programs)", from);
    char *p = in_code(name);
    assert_int_equal(shx_write_file(p, text, len, 0), 0);
    free(p);
    free(text);
}

/* The runner for `program` with the registry searching `plugin_dir` only.  training_module and cfg may be NULL. */
static char *runner(const char *program, const char *plugin_dir, const char *training_module, const shx_config *cfg,
                    char *why, size_t whylen, int *exit_code) {
    shx_job job;
    memset(&job, 0, sizeof job);
    job.cfg = cfg;
    job.code_dir = g_code;
    job.program = (char *)program;
    char *path = program[0] == '/' ? shx_xstrdup(program) : shx_path_join(g_code, program);
    job.program_path = path;
    job.training_module = (char *)training_module;
    shx_registry reg;
    shx_registry_init(&reg, NULL);
    shx_strvec_free(&reg.dirs);
    shx_strvec_push(&reg.dirs, plugin_dir);
    why[0] = 0;
    *exit_code = 0;
    char *r = shx_runner_for(&reg, &job, why, whylen, exit_code);
    shx_registry_free(&reg);
    free(path);
    return r;
}

static void expect_runner(const char *program, const char *want) {
    char why[2048];
    int code;
    char *r = runner(program, g_plugins, NULL, NULL, why, sizeof why, &code);
    if (!r || strcmp(r, want)) fail_msg("%s: runner %s, want %s (%s)", program, r ? r : "none", want, why);
    free(r);
}

static void expect_refusal(const char *program, const char *plugin_dir, int want_code, const char *needle) {
    char why[2048];
    int code;
    char *r = runner(program, plugin_dir, NULL, NULL, why, sizeof why, &code);
    if (r) fail_msg("%s: runner %s, want none", program, r);
    if (code != want_code) fail_msg("%s: exit code %d, want %d (%s)", program, code, want_code, why);
    if (!strstr(why, needle)) fail_msg("%s: '%s' does not say '%s'", program, why, needle);
}

/* ---- contract section 4: kinds decided from the name, whether or not the file exists ------------------------ */
static void test_script_kinds_by_name(void **state) {
    (void)state;
    expect_runner("train.sh", "shell");
    expect_runner("train.py", "python");
    expect_runner("/opt/elsewhere/train.py", "python");
    /* module names: run with python -m (no such file needed) */
    expect_runner("pkg.train", "python");
    expect_runner("module:train", "python");
    expect_runner("my_pkg.sub2.entry", "python");
}

static void test_missing_and_unusable_programs(void **state) {
    (void)state;
    expect_refusal("train", g_plugins, SHX_EXIT_NOTFOUND, "was not found");
    expect_refusal("train", g_plugins, SHX_EXIT_NOTFOUND, g_code); /* says where to put it */
    expect_refusal("pkg..train", g_plugins, SHX_EXIT_NOTFOUND, "was not found"); /* not a module name */
    expect_refusal("2pkg.train", g_plugins, SHX_EXIT_NOTFOUND, "was not found");
    char *d = in_code("adir");
    assert_int_equal(shx_mkdirs(d, 0755), 0);
    free(d);
    expect_refusal("adir", g_plugins, SHX_EXIT_NOEXEC, "is not a regular file");
}

static void test_package_with_setup_py_or_pyproject_is_python(void **state) {
    (void)state;
    const char *markers[] = {"setup.py", "pyproject.toml"};
    for (size_t i = 0; i < 2; i++) {
        put_code(markers[i], "", 0644);
        expect_runner("train", "python"); /* whatever the program is called */
        expect_runner("entry.bin", "python");
        char *p = in_code(markers[i]);
        unlink(p);
        free(p);
    }
    expect_refusal("train", g_plugins, SHX_EXIT_NOTFOUND, "was not found");
}

static void test_training_module_always_runs_python(void **state) {
    (void)state;
    char why[1024];
    int code;
    const char *programs[] = {"train.sh", "missing", "model.good"};
    for (size_t i = 0; i < 3; i++) {
        char *r = runner(programs[i], g_noplugins, "pkg.train:main", NULL, why, sizeof why, &code);
        assert_non_null(r);
        assert_string_equal(r, "python");
        free(r);
    }
}

static void test_config_override_by_extension(void **state) {
    (void)state;
    char path[] = "/tmp/smhost-test-runner-ini-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *ini = "[runners]\n.jl = julia\n.sh = myshell\n";
    assert_int_equal(write(fd, ini, strlen(ini)), (ssize_t)strlen(ini));
    close(fd);
    shx_config cfg;
    char err[1024];
    assert_int_equal(shx_config_load_file(&cfg, path, 1, err, sizeof err), 0);
    unlink(path);
    char why[1024];
    int code;
    const char *cases[][2] = {{"train.jl", "julia"}, {"train.sh", "myshell"}, {"train.py", "python"}};
    for (size_t i = 0; i < 3; i++) {
        char *r = runner(cases[i][0], g_noplugins, NULL, &cfg, why, sizeof why, &code);
        if (!r || strcmp(r, cases[i][1])) fail_msg("%s: %s, want %s", cases[i][0], r ? r : why, cases[i][1]);
        free(r);
    }
    /* The training module still wins over an override. */
    char *r = runner("train.jl", g_noplugins, "pkg.mod:main", &cfg, why, sizeof why, &code);
    assert_string_equal(r, "python");
    free(r);
    shx_config_free(&cfg);
}

/* ---- files that exist: the plugins' claims ------------------------------------------------------------------ */
static void test_plugin_claims(void **state) {
    (void)state;
    char *good = shx_path_join(g_build, "tests/plugins/good_runner.so");
    put_code("model.good", "data\n", 0644);
    expect_runner("model.good", "good_runner"); /* claims the extension */
    copy_code("trainer", good);                 /* an ELF shared object without an extension */
    expect_runner("trainer", "native");
    copy_code("trainer.lib", good); /* an extension nobody claims, but a shared object */
    expect_runner("trainer.lib", "native");
    copy_code("libtrain.so", good); /* .so: native claims the extension too */
    expect_runner("libtrain.so", "native");
    put_code("run.jl", "#!/bin/sh\nexit 0\n", 0755); /* anything else is an executable */
    expect_runner("run.jl", "exec");
    put_code("run", "#!/bin/sh\nexit 0\n", 0755);
    expect_runner("run", "exec");
    copy_code("a.out", "/bin/true"); /* a PIE executable has an interpreter: not a shared object */
    expect_runner("a.out", "exec");
    free(good);

    /* Without those plugins: a clear refusal, a config error. */
    expect_refusal("run", g_noplugins, SHX_EXIT_CONFIG, "no runner plugin claims executables (the 'exec' plugin does)");
    expect_refusal("trainer", g_noplugins, SHX_EXIT_CONFIG, "no runner plugin claims shared libraries");
    expect_refusal("model.good", g_noplugins, SHX_EXIT_CONFIG, "the 'exec' plugin does");
}

static void link_plugin(const char *from_rel, const char *name) {
    char *from = shx_path_join(g_build, from_rel), *to = shx_path_join(g_plugins, name);
    if (!shx_is_file(from)) fail_msg("%s is missing: build it first (make all test-programs)", from);
    assert_int_equal(symlink(from, to), 0);
    free(from), free(to);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/smhost-test-runner-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    g_code = shx_path_join(g_dir, "code");
    g_plugins = shx_path_join(g_dir, "plugins");
    g_noplugins = shx_path_join(g_dir, "noplugins");
    if (shx_mkdirs(g_code, 0755) || shx_mkdirs(g_plugins, 0755) || shx_mkdirs(g_noplugins, 0755)) return -1;
    char *self = shx_self_dir(); /* <build>/tests */
    g_build = shx_path_join(self, "..");
    free(self);
    link_plugin("lib/smhost/plugins/exec.so", "exec.so");
    link_plugin("lib/smhost/plugins/native.so", "native.so");
    link_plugin("tests/plugins/good_runner.so", "good_runner.so");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    int rc = tmpdir_remove(g_dir);
    free(g_code), free(g_plugins), free(g_noplugins), free(g_build);
    return rc == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_script_kinds_by_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_unusable_programs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_package_with_setup_py_or_pyproject_is_python, setup, teardown),
        cmocka_unit_test_setup_teardown(test_training_module_always_runs_python, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_override_by_extension, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_claims, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
