/* Unit tests for smhost serve's settings (host/serve/settings.c, shx_serve_settings_load): the defaults, each
 * variable's bounds and error text, the flags, the paths, and the choice of handler (docs/serving.md). */
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
#include "serve/settings.h"

static char g_root[64];
static shx_config g_cfg;

static const char *const VARS[] = {"SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MODEL_SERVER_WORKERS",
                                   "SAGEMAKER_MODEL_SERVER_TIMEOUT", "SAGEMAKER_MAX_PAYLOAD_IN_MB",
                                   "SMHOST_SERVE_GRACE_SECONDS", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS",
                                   "SMHOST_SERVE_PIPELINE", "SAGEMAKER_MULTI_MODEL", "SMHOST_SERVE_PRELOAD",
                                   "SMHOST_SERVE_HANDLER", "SAGEMAKER_PROGRAM", "SMHOST_SERVE_INLINE"};

static int setup(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof VARS / sizeof VARS[0]; i++) unsetenv(VARS[i]);
    snprintf(g_root, sizeof g_root, "/tmp/smhost-test-serveset-XXXXXX");
    if (!mkdtemp(g_root)) return -1;
    setenv("SAGEMAKER_BASE_DIR", g_root, 1);
    char *code = shx_path_join(g_root, "model/code");
    int rc = shx_mkdirs(code, 0755);
    free(code);
    return rc;
}

static int teardown(void **state) {
    (void)state;
    int rc = tmpdir_remove(g_root);
    return rc == 0 ? 0 : -1;
}

static void put_code(const char *name) {
    char *p = shx_path_join(g_root, "model/code"), *f = shx_path_join(p, name);
    assert_int_equal(shx_write_file(f, "x", 1, 0), 0);
    free(p), free(f);
}

static int load(shx_serve_settings *s, char *err, size_t errlen) {
    err[0] = 0;
    return shx_serve_settings_load(s, &g_cfg, err, errlen);
}

/* ---- defaults and paths ------------------------------------------------------------------------------------- */
static void test_defaults(void **state) {
    (void)state;
    shx_serve_settings s;
    char err[1024];
    assert_int_equal(load(&s, err, sizeof err), 0);
    assert_int_equal(s.port, 8080);
    assert_int_equal(s.workers, shx_usable_cpus());
    assert_true(s.workers >= 1);
    assert_int_equal(s.timeout_s, 60);
    assert_int_equal(s.max_payload_mb, 6);
    assert_int_equal(s.max_body, 6291456); /* the contract's 6 MiB */
    assert_int_equal(s.grace_s, 25);       /* serve_grace_seconds' default */
    assert_int_equal(s.max_concurrent_transforms, s.workers);
    assert_int_equal(s.pipeline, 16);
    assert_int_equal(s.multi_model, 0);
    assert_int_equal(s.preload, 1);
    assert_string_equal(s.root, g_root);
    char *model = shx_path_join(g_root, "model"), *code = shx_path_join(g_root, "model/code"),
         *models = shx_path_join(g_root, "models");
    assert_string_equal(s.model_dir, model);
    assert_string_equal(s.code_dir, code);
    assert_string_equal(s.models_dir, models);
    free(model), free(code), free(models);
    /* an empty code dir: the Python handler with inference.py */
    assert_string_equal(s.handler_name, "pyhandler");
    assert_null(s.handler_path);
    assert_int_equal(s.python, 1);
    assert_non_null(strstr(s.handler_desc, "inference.py"));
    shx_serve_settings_free(&s);

    /* the grace period's default comes from smhost.ini */
    shx_config cfg = g_cfg;
    cfg.serve_grace_seconds = 7;
    assert_int_equal(shx_serve_settings_load(&s, &cfg, err, sizeof err), 0);
    assert_int_equal(s.grace_s, 7);
    shx_serve_settings_free(&s);
}

/* ---- every number: its bounds, and the message for a bad value ---------------------------------------------- */
static void test_each_variable_bounds_and_error_text(void **state) {
    (void)state;
    const struct {
        const char *name;
        int lo, hi;
        size_t off;
    } vars[] = {{"SAGEMAKER_BIND_TO_PORT", 1, 65535, offsetof(shx_serve_settings, port)},
                {"SAGEMAKER_MODEL_SERVER_WORKERS", 1, MAX_WORKERS, offsetof(shx_serve_settings, workers)},
                {"SAGEMAKER_MODEL_SERVER_TIMEOUT", 1, 86400, offsetof(shx_serve_settings, timeout_s)},
                {"SAGEMAKER_MAX_PAYLOAD_IN_MB", 1, 1000, offsetof(shx_serve_settings, max_payload_mb)},
                {"SMHOST_SERVE_GRACE_SECONDS", 0, 3600, offsetof(shx_serve_settings, grace_s)},
                {"SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 0, 100000,
                 offsetof(shx_serve_settings, max_concurrent_transforms)},
                {"SMHOST_SERVE_PIPELINE", 1, 256, offsetof(shx_serve_settings, pipeline)}};
    shx_serve_settings s;
    char err[1024], val[64];
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        /* the bounds themselves are accepted (0 transforms means one per worker) */
        int ok[] = {vars[i].lo, vars[i].hi};
        for (int k = 0; k < 2; k++) {
            snprintf(val, sizeof val, "%d", ok[k]);
            setenv(vars[i].name, val, 1);
            if (load(&s, err, sizeof err)) fail_msg("%s=%s refused: %s", vars[i].name, val, err);
            int got;
            memcpy(&got, (const char *)&s + vars[i].off, sizeof got);
            int want = ok[k] == 0 && !strcmp(vars[i].name, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS") ? s.workers : ok[k];
            if (got != want) fail_msg("%s=%s gave %d", vars[i].name, val, got);
            shx_serve_settings_free(&s);
        }
        /* out of bounds, not a number, trailing junk, overflow: refused, naming the variable, value and range */
        char lo[32], hi[32];
        snprintf(lo, sizeof lo, "%d", vars[i].lo - 1);
        snprintf(hi, sizeof hi, "%d", vars[i].hi + 1);
        const char *bad[] = {lo, hi, "lots", "12abc", "1.5", "99999999999999999999"};
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            setenv(vars[i].name, bad[k], 1);
            memset(&s, 0, sizeof s);
            if (load(&s, err, sizeof err) != -1) fail_msg("%s=%s was accepted", vars[i].name, bad[k]);
            char want[256];
            snprintf(want, sizeof want, "%s=%s is not a whole number from %d to %d: fix or unset it", vars[i].name,
                     bad[k], vars[i].lo, vars[i].hi);
            assert_string_equal(err, want);
            shx_serve_settings_free(&s);
        }
        /* empty means unset: the default */
        setenv(vars[i].name, "", 1);
        assert_int_equal(load(&s, err, sizeof err), 0);
        shx_serve_settings_free(&s);
        unsetenv(vars[i].name);
    }
    /* trailing spaces are forgiven; the payload limit is MiB */
    setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "2 ", 1);
    setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "3", 1);
    setenv("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "5", 1);
    assert_int_equal(load(&s, err, sizeof err), 0);
    assert_int_equal(s.max_body, 2 * 1024 * 1024);
    assert_int_equal(s.workers, 3);
    assert_int_equal(s.max_concurrent_transforms, 5);
    shx_serve_settings_free(&s);
}

static void test_flags(void **state) {
    (void)state;
    shx_serve_settings s;
    char err[1024];
    const char *yes[] = {"true", "TRUE", "1", "yes", "Yes"}, *no[] = {"false", "0", "no", "anything", ""};
    for (size_t i = 0; i < 5; i++) {
        setenv("SAGEMAKER_MULTI_MODEL", yes[i], 1);
        setenv("SMHOST_SERVE_PRELOAD", yes[i], 1);
        assert_int_equal(load(&s, err, sizeof err), 0);
        if (!s.multi_model || !s.preload) fail_msg("'%s' is not true", yes[i]);
        shx_serve_settings_free(&s);
        setenv("SAGEMAKER_MULTI_MODEL", no[i], 1);
        assert_int_equal(load(&s, err, sizeof err), 0);
        if (s.multi_model) fail_msg("SAGEMAKER_MULTI_MODEL=%s made a multi-model endpoint", no[i]);
        shx_serve_settings_free(&s);
    }
    /* preloading is on unless turned off explicitly */
    const char *off[] = {"false", "FALSE", "0", "no"};
    for (size_t i = 0; i < 4; i++) {
        setenv("SMHOST_SERVE_PRELOAD", off[i], 1);
        assert_int_equal(load(&s, err, sizeof err), 0);
        if (s.preload) fail_msg("SMHOST_SERVE_PRELOAD=%s left preloading on", off[i]);
        shx_serve_settings_free(&s);
    }
    /* SMHOST_SERVE_INLINE: auto (the default, also when empty) or never; anything else is refused, naming both */
    const char *inl[] = {"auto", "", "never"};
    for (size_t i = 0; i < 3; i++) {
        setenv("SMHOST_SERVE_INLINE", inl[i], 1);
        assert_int_equal(load(&s, err, sizeof err), 0);
        assert_int_equal(s.inline_never, i == 2);
        shx_serve_settings_free(&s);
    }
    setenv("SMHOST_SERVE_INLINE", "sometimes", 1);
    memset(&s, 0, sizeof s);
    assert_int_equal(load(&s, err, sizeof err), -1);
    if (!strstr(err, "SMHOST_SERVE_INLINE=sometimes") || !strstr(err, "auto") || !strstr(err, "never"))
        fail_msg("unclear error: %s", err);
    shx_serve_settings_free(&s);
}

/* ---- the handler (docs/serving.md, "Choosing the handler") -------------------------------------------------- */
static void test_handler_choice(void **state) {
    (void)state;
    shx_serve_settings s;
    char err[1024];
    char *code = shx_path_join(g_root, "model/code");

    /* 3. no SAGEMAKER_PROGRAM, no inference.py, exactly one .so: that native handler */
    put_code("handler.so");
    assert_int_equal(load(&s, err, sizeof err), 0);
    char *so = shx_path_join(code, "handler.so");
    assert_string_equal(s.handler_path, so);
    assert_null(s.handler_name);
    assert_int_equal(s.python, 0);
    assert_non_null(strstr(s.handler_desc, "native handler"));
    shx_serve_settings_free(&s);

    /* ... two .so files: which one is for SAGEMAKER_PROGRAM to say */
    put_code("other.so");
    assert_int_equal(load(&s, err, sizeof err), -1);
    assert_non_null(strstr(err, "holds 2 .so files; set SAGEMAKER_PROGRAM"));
    shx_serve_settings_free(&s);

    /* 2. SAGEMAKER_PROGRAM ending in .so, relative to model/code or absolute */
    setenv("SAGEMAKER_PROGRAM", "handler.so", 1);
    assert_int_equal(load(&s, err, sizeof err), 0);
    assert_string_equal(s.handler_path, so);
    shx_serve_settings_free(&s);
    setenv("SAGEMAKER_PROGRAM", so, 1);
    assert_int_equal(load(&s, err, sizeof err), 0);
    assert_string_equal(s.handler_path, so);
    shx_serve_settings_free(&s);
    setenv("SAGEMAKER_PROGRAM", "missing.so", 1);
    assert_int_equal(load(&s, err, sizeof err), -1);
    assert_non_null(strstr(err, "SAGEMAKER_PROGRAM=missing.so"));
    assert_non_null(strstr(err, "does not exist"));
    shx_serve_settings_free(&s);

    /* 4. any other SAGEMAKER_PROGRAM: pyhandler with that file, even with .so files around */
    setenv("SAGEMAKER_PROGRAM", "serve.py", 1);
    assert_int_equal(load(&s, err, sizeof err), 0);
    assert_string_equal(s.handler_name, "pyhandler");
    assert_int_equal(s.python, 1);
    assert_null(s.handler_path);
    assert_non_null(strstr(s.handler_desc, "serve.py"));
    shx_serve_settings_free(&s);
    unsetenv("SAGEMAKER_PROGRAM");

    /* an inference.py wins over the .so files */
    put_code("inference.py");
    assert_int_equal(load(&s, err, sizeof err), 0);
    assert_string_equal(s.handler_name, "pyhandler");
    assert_non_null(strstr(s.handler_desc, "inference.py"));
    shx_serve_settings_free(&s);

    /* 1. SMHOST_SERVE_HANDLER names a plugin, over everything */
    setenv("SAGEMAKER_PROGRAM", "missing.so", 1);
    setenv("SMHOST_SERVE_HANDLER", "myhandler", 1);
    assert_int_equal(load(&s, err, sizeof err), 0);
    assert_string_equal(s.handler_name, "myhandler");
    assert_null(s.handler_path);
    assert_int_equal(s.python, 0);
    assert_non_null(strstr(s.handler_desc, "SMHOST_SERVE_HANDLER"));
    shx_serve_settings_free(&s);
    setenv("SMHOST_SERVE_HANDLER", "pyhandler", 1);
    assert_int_equal(load(&s, err, sizeof err), 0);
    assert_int_equal(s.python, 1); /* its requirements.txt is installed first */
    shx_serve_settings_free(&s);
    unsetenv("SMHOST_SERVE_HANDLER");
    unsetenv("SAGEMAKER_PROGRAM");
    free(so);
    free(code);
}

int main(void) {
    char err[1024];
    /* smhost.ini's defaults (no file) */
    if (shx_config_load_file(&g_cfg, "/nonexistent/smhost.ini", 0, err, sizeof err)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_variable_bounds_and_error_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_choice, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    shx_config_free(&g_cfg);
    return rc;
}
