/* Hyperparameter decoding, split, argv and SM_HP_* values against the toolkit's Python code (expected bytes in
 * pyjson_vectors.h, made by tools/gen_pyjson_vectors.py with /usr/bin/python3; the first six files are the
 * contract's section 2 vectors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "job/hyperparameters.h"
#include "pyjson_vectors.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static pyj_value *parse_file(const char *text) {
    pyj_error err;
    pyj_value *v = pyj_parse(text, strlen(text), &err);
    if (!v) {
        print_error("%s: %s\n", text, err.msg);
        fail();
    }
    return v;
}

static void test_hp_vectors(void **state) {
    (void)state;
    for (size_t i = 0; i < N_OF(hp_vecs); i++) {
        const struct hp_vec *t = &hp_vecs[i];
        pyj_value *file = parse_file(t->file);
        pyj_value *dec = shx_hp_decode(file), *user, *fw;
        shx_hp_split(dec, &user, &fw);

        shx_strvec argv = {0};
        shx_hp_to_argv(user, &argv);
        size_t n = 0;
        while (t->argv[n]) n++;
        if (argv.n != n) {
            print_error("%s: %zu args, want %zu\n", t->file, argv.n, n);
            fail();
        }
        for (size_t k = 0; k < n; k++) assert_string_equal(argv.v[k], t->argv[k]);
        assert_null(argv.v ? argv.v[argv.n] : NULL);

        size_t e = 0;
        for (size_t k = 0; k < user->u.dict.n; k++, e += 2) {
            char *name = shx_env_name("SM_HP_", user->u.dict.keys[k].s);
            char *val = shx_env_value(user->u.dict.vals[k]);
            assert_non_null(t->env[e]);
            assert_string_equal(name, t->env[e]);
            assert_string_equal(val, t->env[e + 1]);
            free(name), free(val);
        }
        assert_null(t->env[e]);

        char *hps = pyj_dumps(user, 1), *fwj = pyj_dumps(fw, 1);
        assert_string_equal(hps, t->hps);
        assert_string_equal(fwj, t->framework);
        free(hps), free(fwj);
        shx_strvec_free(&argv);
        pyj_free(file), pyj_free(dec), pyj_free(user), pyj_free(fw);
    }
}

static void test_decode(void **state) {
    (void)state;
    /* the decoded dict keeps file order; a value that is not JSON stays the raw string, bytes for bytes */
    pyj_value *file = parse_file("{\"z\":\"adam\",\"a\":\"[1, \",\"m\":\"\\\"q\\\"\",\"n\":7,\"s\":\" \\u00e9 \"}");
    pyj_value *dec = shx_hp_decode(file);
    assert_int_equal(dec->u.dict.n, 5);
    assert_string_equal(dec->u.dict.keys[0].s, "z");
    assert_string_equal(pyj_as_string(pyj_dict_get(dec, "z")), "adam");
    assert_string_equal(pyj_as_string(pyj_dict_get(dec, "a")), "[1, ");
    assert_string_equal(pyj_as_string(pyj_dict_get(dec, "m")), "q");
    assert_string_equal(pyj_as_string(pyj_dict_get(dec, "s")), " \xc3\xa9 ");
    assert_string_equal(pyj_dict_get(dec, "n")->u.i, "7");
    pyj_free(dec);
    pyj_free(file);

    /* not a dict: nothing */
    pyj_value *l = pyj_list();
    dec = shx_hp_decode(l);
    assert_int_equal(dec->type, PYJ_DICT);
    assert_int_equal(dec->u.dict.n, 0);
    pyj_free(dec);
    dec = shx_hp_decode(NULL);
    assert_int_equal(dec->u.dict.n, 0);
    pyj_value *u, *f;
    shx_hp_split(l, &u, &f);
    assert_int_equal(u->u.dict.n + f->u.dict.n, 0);
    shx_strvec argv = {0};
    shx_hp_to_argv(l, &argv);
    assert_int_equal(argv.n, 0);
    pyj_free(u), pyj_free(f), pyj_free(dec), pyj_free(l);
}

static void test_split_lists(void **state) {
    (void)state;
    pyj_value *d = parse_file("{\"sagemaker_program\":1,\"sagemaker_submit_directory\":1,"
                              "\"sagemaker_enable_cloudwatch_metrics\":1,\"sagemaker_region\":1,"
                              "\"sagemaker_container_log_level\":1,\"sagemaker_job_name\":1,"
                              "\"default_user_module_name\":1,\"_tuning_objective_metric\":1,"
                              "\"sagemaker_s3_output\":1,\"sagemaker_\":2,\"sagemaker_mpi_enabled\":3,"
                              "\"Sagemaker_x\":4,\"sagemaker\":5,\"_tuning_objective_metric2\":6}");
    pyj_value *u, *f;
    shx_hp_split(d, &u, &f);
    char *us = pyj_dumps(u, 0), *fs = pyj_dumps(f, 0);
    assert_string_equal(us, "{\"Sagemaker_x\":4,\"sagemaker\":5,\"_tuning_objective_metric2\":6}");
    assert_string_equal(fs, "{\"sagemaker_\":2,\"sagemaker_mpi_enabled\":3}");
    free(us), free(fs), pyj_free(u), pyj_free(f), pyj_free(d);
}

static void test_argv_appends(void **state) {
    (void)state;
    shx_strvec argv = {0};
    shx_strvec_push(&argv, "train.py");
    pyj_value *d = parse_file("{\"b\":{},\"a\":{\"\\u00e9\":\"x\",\"z\":null,\"y\":\"\"}}");
    shx_hp_to_argv(d, &argv);
    assert_int_equal(argv.n, 5);
    assert_string_equal(argv.v[0], "train.py");
    assert_string_equal(argv.v[1], "-a");
    assert_string_equal(argv.v[2], "y=,z=None,\xc3\xa9=x"); /* Python: "%s=%s" % (k, v) over sorted items */
    assert_string_equal(argv.v[3], "-b");
    assert_string_equal(argv.v[4], "");
    shx_strvec_free(&argv);
    pyj_free(d);
}

static void test_sort_order(void **state) {
    (void)state;
    /* sorted() compares code points: U+FFFF < U+10000 < U+10FFFF, and a lone surrogate sorts before U+E000 */
    pyj_value *d = parse_file("{\"\\ud83d\\ude00\":1,\"\\uffff\":2,\"\\ue000\":3,\"\\ud800\":4,\"~\":5,\"\\u00e9\":6}");
    shx_strvec argv = {0};
    shx_hp_to_argv(d, &argv);
    assert_int_equal(argv.n, 12);
    static const char *want[] = {"-~", "-\xc3\xa9", "-\xed\xa0\x80", "-\xee\x80\x80", "-\xef\xbf\xbf",
                                 "-\xf0\x9f\x98\x80"};
    for (size_t i = 0; i < N_OF(want); i++) assert_string_equal(argv.v[2 * i], want[i]);
    shx_strvec_free(&argv);
    pyj_free(d);
}

static void test_env_helpers(void **state) {
    (void)state;
    char *s = shx_env_value(NULL);
    assert_string_equal(s, "");
    free(s);
    pyj_value *v = pyj_null();
    s = shx_env_value(v);
    assert_string_equal(s, "");
    free(s), pyj_free(v);
    v = pyj_string("a b \"c\" \xc3\xa9");
    s = shx_env_value(v); /* strings pass as they are */
    assert_string_equal(s, "a b \"c\" \xc3\xa9");
    free(s), pyj_free(v);
    v = pyj_bool(0);
    s = shx_env_value(v);
    assert_string_equal(s, "false");
    free(s), pyj_free(v);
    s = shx_env_name("SM_CHANNEL_", "train-data");
    assert_string_equal(s, "SM_CHANNEL_TRAIN-DATA");
    free(s);
    s = shx_env_name("SM_HP_", "stra\xc3\x9f" "e.x");
    assert_string_equal(s, "SM_HP_STRASSE.X");
    free(s);
}

static void test_find_nul(void **state) {
    (void)state;
    static const struct {
        const char *file;
        const char *key; /* NULL: none */
    } cases[] = {
        {"{\"a\":\"x\",\"b\":\"[\\\"\\\\u0000\\\"]\"}", NULL}, /* nested: repr escapes it */
        {"{\"a\":\"x\",\"b\":\"\\\"\\\\u0000\\\"\"}", "'b'"},   /* top-level string */
        {"{\"a\\u0000b\":\"1\"}", "'a\\x00b'"},                  /* the key */
        {"{\"d\":{\"k\":\"v\\u0000\"}}", "'d'"},                 /* a string inside a top-level dict */
        {"{\"d\":{\"k\\u0000\":1}}", "'d'"},                     /* a key inside a top-level dict */
        {"{\"d\":{\"k\":[\"\\u0000\"]}}", NULL},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        pyj_value *f = parse_file(cases[i].file);
        pyj_value *d = shx_hp_decode(f);
        char *what = (char *)"unset";
        int r = shx_hp_find_nul(d, &what);
        if (cases[i].key) {
            assert_int_equal(r, 1);
            assert_string_equal(what, cases[i].key);
        } else {
            assert_int_equal(r, 0);
            assert_null(what);
        }
        free(what);
        pyj_free(d), pyj_free(f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hp_vectors),   cmocka_unit_test(test_decode),
        cmocka_unit_test(test_split_lists),  cmocka_unit_test(test_argv_appends),
        cmocka_unit_test(test_sort_order),   cmocka_unit_test(test_env_helpers),
        cmocka_unit_test(test_find_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
