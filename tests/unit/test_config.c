/* Unit tests for host/core/config.c: smhost.ini parsing, defaults, errors and warnings with file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/util.h"
#include "tmpdir.h"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/smhost-config-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    unsetenv("SMHOST_CONFIG");
    return 0;
}
static int teardown(void **state) {
    (void)state;
    int rc = tmpdir_remove(g_dir);
    unsetenv("SMHOST_CONFIG");
    return rc == 0 ? 0 : -1;
}

/* Writes text to <g_dir>/<name>; returns the path (caller frees). */
static char *write_ini(const char *name, const char *text) {
    char *path = shx_path_join(g_dir, name);
    assert_int_equal(shx_write_file(path, text, strlen(text), 0), 0);
    return path;
}

/* stderr capture: warnings go through shx_log to stderr. */
static int g_saved_fd = -1;
static char *g_capture_path;
static void capture_begin(void) {
    fflush(stderr);
    g_capture_path = shx_path_join(g_dir, "stderr.txt");
    int fd = open(g_capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    g_saved_fd = dup(2);
    dup2(fd, 2);
    close(fd);
}
static char *capture_end(void) {
    fflush(stderr);
    dup2(g_saved_fd, 2);
    close(g_saved_fd);
    char *out = NULL;
    size_t len;
    assert_int_equal(shx_read_file(g_capture_path, &out, &len), 0);
    free(g_capture_path);
    return out;
}

/* Loads text as SMHOST_CONFIG; returns shx_config_load's result, err in errbuf. */
static int load_text(shx_config *cfg, const char *text, char *errbuf, size_t errlen) {
    char *path = write_ini("smhost.ini", text);
    setenv("SMHOST_CONFIG", path, 1);
    free(path);
    errbuf[0] = 0;
    return shx_config_load(cfg, errbuf, errlen);
}

static void test_defaults_when_default_file_missing(void **state) {
    (void)state;
    shx_config cfg;
    char err[512] = "";
    char *missing = shx_path_join(g_dir, "nope.ini");
    assert_int_equal(shx_config_load_file(&cfg, missing, 0, err, sizeof err), 0);
    free(missing);
    assert_null(cfg.path);
    assert_int_equal(cfg.plugin_path.n, 0);
    assert_int_equal(cfg.log_level, -1);
    assert_int_equal(cfg.stop_grace_seconds, 110);
    assert_int_equal(cfg.serve_grace_seconds, 25);
    assert_int_equal(cfg.dns_timeout_seconds, 900);
    assert_int_equal(cfg.max_run_seconds, 0);
    assert_int_equal(cfg.pip_break_system_packages, 1);
    assert_int_equal(cfg.noverrides, 0);
    assert_null(shx_config_runner_for(&cfg, ".jl"));
    shx_config_free(&cfg);
}

static void test_missing_file_named_by_env_is_error(void **state) {
    (void)state;
    char *missing = shx_path_join(g_dir, "nope.ini");
    setenv("SMHOST_CONFIG", missing, 1);
    shx_config cfg;
    char err[512] = "";
    assert_int_equal(shx_config_load(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "does not exist"));
    assert_non_null(strstr(err, "SMHOST_CONFIG"));
    shx_config_free(&cfg);
    free(missing);
}

static void test_full_file(void **state) {
    (void)state;
    shx_config cfg;
    char err[512];
    int rc = load_text(&cfg,
                       "; comment\n"
                       "# another comment\n"
                       "[smhost]\n"
                       "plugin_path = /opt/a:/opt/b::/opt/c  ; inline comment\n"
                       "log_level = debug\n"
                       "stop_grace_seconds = 60\n"
                       "serve_grace_seconds=5\n"
                       "dns_timeout_seconds = 0\n"
                       "max_run_seconds = 3600\n"
                       "\n"
                       "[python]\n"
                       "break_system_packages = no\n"
                       "[runners]\n"
                       ".jl = julia\n"
                       ".R = rscript\n"
                       ".jl = julia2\n",
                       err, sizeof err);
    assert_int_equal(rc, 0);
    assert_non_null(cfg.path);
    assert_int_equal(cfg.plugin_path.n, 3);
    assert_string_equal(cfg.plugin_path.v[0], "/opt/a");
    assert_string_equal(cfg.plugin_path.v[1], "/opt/b");
    assert_string_equal(cfg.plugin_path.v[2], "/opt/c");
    assert_int_equal(cfg.log_level, 10);
    assert_int_equal(cfg.stop_grace_seconds, 60);
    assert_int_equal(cfg.serve_grace_seconds, 5);
    assert_int_equal(cfg.dns_timeout_seconds, 0);
    assert_int_equal(cfg.max_run_seconds, 3600);
    assert_int_equal(cfg.pip_break_system_packages, 0);
    assert_int_equal(cfg.noverrides, 2);
    assert_string_equal(shx_config_runner_for(&cfg, ".jl"), "julia2");
    assert_string_equal(shx_config_runner_for(&cfg, ".R"), "rscript");
    assert_null(shx_config_runner_for(&cfg, ".r"));
    assert_null(shx_config_runner_for(&cfg, ".py"));
    assert_null(shx_config_runner_for(&cfg, NULL));
    shx_config_free(&cfg);
}

static void test_log_level_number_and_bools(void **state) {
    (void)state;
    static const struct {
        const char *v;
        int want;
    } bools[] = {{"true", 1}, {"False", 0}, {"YES", 1}, {"off", 0}, {"1", 1}, {"0", 0}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        shx_config cfg;
        char err[512];
        char *text = shx_xasprintf("[smhost]\nlog_level = 30\n[python]\nbreak_system_packages = %s\n", bools[i].v);
        assert_int_equal(load_text(&cfg, text, err, sizeof err), 0);
        assert_int_equal(cfg.log_level, 30);
        assert_int_equal(cfg.pip_break_system_packages, bools[i].want);
        shx_config_free(&cfg);
        free(text);
    }
}

static void test_plugin_path_continuation_and_repeat(void **state) {
    (void)state;
    shx_config cfg;
    char err[512];
    assert_int_equal(load_text(&cfg, "[smhost]\nplugin_path = /x\nplugin_path = /a:/b\n  /c\n\t/d:/e\n", err, sizeof err),
                     0);
    assert_int_equal(cfg.plugin_path.n, 5);
    assert_string_equal(cfg.plugin_path.v[0], "/a");
    assert_string_equal(cfg.plugin_path.v[2], "/c");
    assert_string_equal(cfg.plugin_path.v[4], "/e");
    shx_config_free(&cfg);
}

/* Every bad value: error names file:line, the key, the value and what is expected; cfg is back to defaults. */
static void expect_error(const char *text, const char *line_tag, const char *const *needles) {
    shx_config cfg;
    char err[1024];
    assert_int_equal(load_text(&cfg, text, err, sizeof err), -1);
    char *where = shx_xasprintf("smhost.ini:%s:", line_tag);
    if (!strstr(err, where)) fail_msg("error \"%s\" does not name %s", err, where);
    free(where);
    for (const char *const *n = needles; *n; n++)
        if (!strstr(err, *n)) fail_msg("error \"%s\" lacks \"%s\"", err, *n);
    assert_null(cfg.path);
    assert_int_equal(cfg.stop_grace_seconds, 110);
    assert_int_equal(cfg.plugin_path.n, 0);
    shx_config_free(&cfg);
}

static void test_bad_values(void **state) {
    (void)state;
    expect_error("[smhost]\nplugin_path=/a\nstop_grace_seconds = abc\n", "3",
                 (const char *[]){"stop_grace_seconds", "\"abc\"", "whole number", "default: 110", NULL});
    expect_error("[smhost]\ndns_timeout_seconds = -5\n", "2",
                 (const char *[]){"dns_timeout_seconds", "\"-5\"", "0 or more", NULL});
    expect_error("[smhost]\nmax_run_seconds = 1.5\n", "2", (const char *[]){"max_run_seconds", "\"1.5\"", NULL});
    expect_error("[smhost]\nserve_grace_seconds = 99999999999\n", "2",
                 (const char *[]){"serve_grace_seconds", "99999999999", NULL});
    expect_error("[smhost]\nserve_grace_seconds =\n", "2", (const char *[]){"serve_grace_seconds", "\"\"", NULL});
    expect_error("[smhost]\nlog_level = loud\n", "2",
                 (const char *[]){"log_level", "\"loud\"", "debug, info, warning, error", NULL});
    expect_error("[python]\nbreak_system_packages = maybe\n", "2",
                 (const char *[]){"break_system_packages", "\"maybe\"", "true or false", NULL});
    expect_error("[runners]\njl = julia\n", "2", (const char *[]){"\"jl\"", "start with '.'", NULL});
    expect_error("[runners]\n. = julia\n", "2", (const char *[]){"\".\"", NULL});
    expect_error("[runners]\n.jl =\n", "2", (const char *[]){".jl", "runner plugin", NULL});
    expect_error("[smhost]\nstop_grace_seconds = 5\n  6\n", "3",
                 (const char *[]){"stop_grace_seconds", "remove the indentation", NULL});
}

static void test_malformed_lines(void **state) {
    (void)state;
    expect_error("[smhost]\nlog_level = info\nthis line has no equals sign\n", "3",
                 (const char *[]){"this line has no equals sign", "key = value", NULL});
    expect_error("[smhost\nlog_level = info\n", "1", (const char *[]){"[smhost", NULL});
    /* inih's 200-byte line buffer would split a longer line silently; smhost refuses it. */
    char *longline = shx_xmalloc(400);
    memset(longline, 'a', 399);
    longline[399] = 0;
    char *text = shx_xasprintf("[smhost]\nplugin_path = /%s\n", longline);
    expect_error(text, "2", (const char *[]){"longer than", NULL});
    free(text);
    free(longline);
}

static void test_unknown_sections_and_keys_warn(void **state) {
    (void)state;
    shx_config cfg;
    char err[512];
    capture_begin();
    int rc = load_text(&cfg,
                       "orphan = 1\n"
                       "[smhost]\n"
                       "colour = blue\n"
                       "[gpu]\n"
                       "count = 8\n"
                       "[python]\n"
                       "pip = 1\n"
                       "[smhost]\n"
                       "stop_grace_seconds = 7\n",
                       err, sizeof err);
    char *out = capture_end();
    assert_int_equal(rc, 0);
    assert_int_equal(cfg.stop_grace_seconds, 7);
    assert_non_null(strstr(out, "smhost.ini:1: key \"orphan\" outside any section"));
    assert_non_null(strstr(out, "smhost.ini:3: unknown key \"colour\" in [smhost]"));
    assert_non_null(strstr(out, "smhost.ini:4: unknown section [gpu]"));
    assert_null(strstr(out, "\"count\"")); /* keys of an unknown section are not warned one by one */
    assert_non_null(strstr(out, "smhost.ini:7: unknown key \"pip\" in [python]"));
    assert_non_null(strstr(out, "WARNING"));
    free(out);
    shx_config_free(&cfg);
}

static void test_unreadable_path(void **state) {
    (void)state;
    /* A directory where the file should be: read fails with EISDIR. */
    shx_config cfg;
    char err[512] = "";
    assert_int_equal(shx_config_load_file(&cfg, g_dir, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read configuration file"));
    assert_non_null(strstr(err, g_dir));
    shx_config_free(&cfg);
}

static void test_sample_file_parses_to_defaults(void **state) {
    (void)state;
    /* sdk/smhost.ini.sample documents every key with its default; loading it must change nothing and warn
     * about nothing.  Unit tests run from the repository root. */
    shx_config cfg;
    char err[512] = "";
    capture_begin();
    int rc = shx_config_load_file(&cfg, "sdk/smhost.ini.sample", 1, err, sizeof err);
    char *out = capture_end();
    if (rc != 0) fail_msg("%s", err);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(cfg.log_level, -1);
    assert_int_equal(cfg.stop_grace_seconds, 110);
    assert_int_equal(cfg.serve_grace_seconds, 25);
    assert_int_equal(cfg.dns_timeout_seconds, 900);
    assert_int_equal(cfg.max_run_seconds, 0);
    assert_int_equal(cfg.pip_break_system_packages, 1);
    assert_int_equal(cfg.noverrides, 0);
    assert_int_equal(cfg.plugin_path.n, 0);
    shx_config_free(&cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_when_default_file_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_named_by_env_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_level_number_and_bools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_path_continuation_and_repeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_sections_and_keys_warn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_file_parses_to_defaults, setup, teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
