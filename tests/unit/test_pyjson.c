/* pyjson against Python 3.11's json / repr / str.upper (expected bytes in pyjson_vectors.h, made by
 * tools/gen_pyjson_vectors.py with /usr/bin/python3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pyjson.h"
#include "pyjson_vectors.h"
#include "core/util.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void assert_bytes(const char *got, const char *want, size_t want_len, const char *what, const char *input) {
    if (strlen(got) != want_len || memcmp(got, want, want_len) != 0) {
        print_error("%s of %s:\n  got  [%s]\n  want [%.*s]\n", what, input, got, (int)want_len, want);
        fail();
    }
}

static void test_parse_vectors(void **state) {
    (void)state;
    for (size_t i = 0; i < N_OF(parse_ok_vecs); i++) {
        const struct parse_ok_vec *t = &parse_ok_vecs[i];
        pyj_error err;
        pyj_value *v = pyj_parse(t->in, t->in_len, &err);
        if (!v) {
            print_error("parse of %s failed: %s\n", t->in, err.msg);
            fail();
        }
        char *r = pyj_repr(v), *ds = pyj_dumps(v, 1), *du = pyj_dumps(v, 0);
        assert_bytes(r, t->repr, t->repr_len, "repr", t->in);
        assert_bytes(ds, t->sorted, t->sorted_len, "dumps(sort_keys=True)", t->in);
        assert_bytes(du, t->unsorted, t->unsorted_len, "dumps", t->in);
        if (v->type == PYJ_STR) { /* str() of a str is the string itself, embedded NULs included */
            assert_int_equal(v->u.s.len, t->str_len);
            assert_memory_equal(v->u.s.s, t->str, t->str_len);
            assert_int_equal(v->u.s.s[v->u.s.len], 0);
        } else {
            char *s = pyj_str_of(v);
            assert_bytes(s, t->str, t->str_len, "str", t->in);
            free(s);
        }
        /* property: what dumps writes parses back to the same value */
        pyj_value *back = pyj_parse(du, strlen(du), &err);
        assert_non_null(back);
        char *du2 = pyj_dumps(back, 0), *r2 = pyj_repr(back);
        assert_string_equal(du2, du);
        assert_string_equal(r2, r);
        free(du2), free(r2), pyj_free(back);
        /* and a deep copy prints the same */
        pyj_value *cp = pyj_copy(v);
        char *r3 = pyj_repr(cp);
        assert_string_equal(r3, r);
        free(r3), pyj_free(cp);
        free(r), free(ds), free(du);
        pyj_free(v);
    }
}

static void test_parse_errors(void **state) {
    (void)state;
    for (size_t i = 0; i < N_OF(parse_err_vecs); i++) {
        const struct parse_err_vec *t = &parse_err_vecs[i];
        size_t len = t->in_len + t->ones;
        char *text = shx_xmalloc(len + 1);
        memcpy(text, t->in, t->in_len);
        memset(text + t->in_len, '1', t->ones);
        text[len] = 0;
        pyj_error err;
        pyj_value *v = pyj_parse(text, len, &err);
        if (v) {
            print_error("parse of [%s] should fail with %s\n", text, t->msg);
            fail();
        }
        if (strcmp(err.msg, t->msg) != 0) {
            print_error("parse of [%.60s]:\n  got  %s\n  want %s\n", text, err.msg, t->msg);
            fail();
        }
        free(text);
    }
}

static void test_error_positions(void **state) {
    (void)state;
    pyj_error err;
    const char *multi = "{\"a\":\n [1,\n  2,\n  x]}";
    assert_null(pyj_parse(multi, strlen(multi), &err));
    assert_int_equal(err.line, 4);
    assert_int_equal(err.col, 3);
    assert_int_equal(err.pos, 18);
    /* positions are bytes, the message counts code points */
    const char *uni = "\"\xc3\xa9\" \xc3\xa9";
    assert_null(pyj_parse(uni, strlen(uni), &err));
    assert_int_equal(err.pos, 5);
    assert_int_equal(err.col, 5);
    assert_string_equal(err.msg, "Extra data: line 1 column 5 (char 4)");
    /* NULL err is allowed */
    assert_null(pyj_parse("x", 1, NULL));
    /* the length bounds the text: no read past it */
    assert_null(pyj_parse("12", 0, &err));
    assert_string_equal(err.msg, "Expecting value: line 1 column 1 (char 0)");
    pyj_value *v = pyj_parse("12", 1, &err);
    assert_non_null(v);
    assert_string_equal(v->u.i, "1");
    pyj_free(v);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    pyj_error err;
    static const char *bad[] = {"\"\xff\"", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xf4\x90\x80\x80\"", "\"\xe0\x80\x80\""};
    for (size_t i = 0; i < N_OF(bad); i++) {
        assert_null(pyj_parse(bad[i], strlen(bad[i]), &err));
        assert_int_equal(err.pos, 1);
        assert_true(strncmp(err.msg, "Invalid UTF-8 byte 0x", 21) == 0);
    }
    assert_string_equal(err.msg, "Invalid UTF-8 byte 0xe0: line 1 column 2 (char 1)");
    /* a value built by hand with a stray byte prints it as Python's surrogateescape would */
    pyj_value *s = pyj_string("a\xff");
    char *r = pyj_repr(s), *d = pyj_dumps(s, 0), *u = pyj_upper("a\xff");
    assert_string_equal(r, "'a\\udcff'");
    assert_string_equal(d, "\"a\\udcff\"");
    assert_string_equal(u, "A\xff");
    free(r), free(d), free(u), pyj_free(s);
}

static void test_nesting_limit(void **state) {
    (void)state;
    for (int depth = 899; depth <= 901; depth++) {
        char *t = shx_xmalloc((size_t)depth * 2 + 1);
        memset(t, '[', (size_t)depth);
        memset(t + depth, ']', (size_t)depth);
        t[depth * 2] = 0;
        pyj_error err;
        pyj_value *v = pyj_parse(t, (size_t)depth * 2, &err);
        if (depth <= 900) {
            assert_non_null(v);
            char *d = pyj_dumps(v, 1);
            assert_string_equal(d, t);
            free(d);
            pyj_free(v);
        } else {
            assert_null(v);
            assert_string_equal(err.msg, "Nesting too deep (more than 900 levels): line 1 column 901 (char 900)");
        }
        free(t);
    }
}

static void test_float_repr(void **state) {
    (void)state;
    char buf[32];
    for (size_t i = 0; i < N_OF(float_vecs); i++) {
        double d;
        memcpy(&d, &float_vecs[i].bits, sizeof d);
        pyj_float_repr(d, buf, sizeof buf);
        if (strcmp(buf, float_vecs[i].repr) != 0) {
            print_error("repr of 0x%016llx: got %s, want %s\n", (unsigned long long)float_vecs[i].bits, buf,
                        float_vecs[i].repr);
            fail();
        }
    }
    pyj_float_repr(NAN, buf, sizeof buf);
    assert_string_equal(buf, "nan");
    pyj_float_repr(-NAN, buf, sizeof buf);
    assert_string_equal(buf, "nan");
    pyj_float_repr(INFINITY, buf, sizeof buf);
    assert_string_equal(buf, "inf");
    pyj_float_repr(-INFINITY, buf, sizeof buf);
    assert_string_equal(buf, "-inf");
    pyj_float_repr(-1.2345678901234568e-300, buf, sizeof buf); /* the longest form fits 32 bytes */
    assert_string_equal(buf, "-1.2345678901234568e-300");
    char small[5];
    pyj_float_repr(0.0001, small, sizeof small); /* truncated, still terminated */
    assert_string_equal(small, "0.00");
}

static void test_float_dumps(void **state) {
    (void)state;
    pyj_value *l = pyj_list();
    pyj_list_append(l, pyj_float(NAN));
    pyj_list_append(l, pyj_float(INFINITY));
    pyj_list_append(l, pyj_float(-INFINITY));
    pyj_list_append(l, pyj_float(1e-5));
    pyj_list_append(l, pyj_float(-0.0));
    char *d = pyj_dumps(l, 1), *r = pyj_repr(l);
    assert_string_equal(d, "[NaN,Infinity,-Infinity,1e-05,-0.0]");
    assert_string_equal(r, "[nan, inf, -inf, 1e-05, -0.0]");
    free(d), free(r), pyj_free(l);
}

static void test_upper(void **state) {
    (void)state;
    for (size_t i = 0; i < N_OF(upper_vecs); i++) {
        char *u = pyj_upper(upper_vecs[i].in);
        if (strcmp(u, upper_vecs[i].out) != 0) {
            print_error("upper(%s): got %s want %s\n", upper_vecs[i].in, u, upper_vecs[i].out);
            fail();
        }
        free(u);
    }
}

static void test_builders(void **state) {
    (void)state;
    pyj_value *d = pyj_dict();
    pyj_dict_set(d, "b", pyj_int_ll(LLONG_MIN));
    pyj_dict_set(d, "a", pyj_int_text("-0"));
    pyj_dict_set(d, "c", pyj_string("x"));
    pyj_dict_set(d, "b", pyj_bool(1)); /* replaces in place */
    pyj_dict_setn(d, "e\0f", 3, pyj_null());
    pyj_value *l = pyj_list();
    pyj_list_append(l, pyj_float(2.5));
    pyj_list_append(l, pyj_stringn("n\0ul", 4));
    pyj_dict_set(d, "l", l);
    char *r = pyj_repr(d), *ds = pyj_dumps(d, 1), *du = pyj_dumps(d, 0);
    assert_string_equal(r, "{'b': True, 'a': 0, 'c': 'x', 'e\\x00f': None, 'l': [2.5, 'n\\x00ul']}");
    assert_string_equal(ds, "{\"a\":0,\"b\":true,\"c\":\"x\",\"e\\u0000f\":null,\"l\":[2.5,\"n\\u0000ul\"]}");
    assert_string_equal(du, "{\"b\":true,\"a\":0,\"c\":\"x\",\"e\\u0000f\":null,\"l\":[2.5,\"n\\u0000ul\"]}");
    free(r), free(ds), free(du);

    assert_null(pyj_dict_get(d, "e")); /* "e\0f" is not "e" */
    assert_string_equal(pyj_as_string(pyj_dict_get(d, "c")), "x");
    assert_null(pyj_as_string(pyj_dict_get(d, "a")));
    assert_null(pyj_as_string(NULL));
    assert_null(pyj_dict_get(l, "a"));
    assert_null(pyj_dict_get(NULL, "a"));
    assert_null(pyj_dict_remove(d, "zz"));
    assert_null(pyj_dict_remove(l, "a"));
    pyj_value *b = pyj_dict_remove(d, "b");
    assert_non_null(b);
    assert_int_equal(b->type, PYJ_BOOL);
    pyj_free(b);
    pyj_free(NULL);
    r = pyj_repr(d);
    assert_string_equal(r, "{'a': 0, 'c': 'x', 'e\\x00f': None, 'l': [2.5, 'n\\x00ul']}");
    free(r);
    pyj_value *i = pyj_int_ll(LLONG_MIN);
    r = pyj_str_of(i);
    assert_string_equal(r, "-9223372036854775808");
    free(r), pyj_free(i);
    pyj_free(d);
}

/* An object large enough to use the parser's key index, with repeated keys spread through it. */
static void test_large_object(void **state) {
    (void)state;
    shx_buf b = {0};
    shx_buf_addc(&b, '{');
    for (int i = 0; i < 2000; i++) shx_buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
    for (int i = 0; i < 2000; i += 7) shx_buf_printf(&b, ",\"k%d\":\"again %d\"", i, i);
    shx_buf_adds(&b, ",\"k3\":null,\"new\":1}");
    pyj_error err;
    pyj_value *v = pyj_parse(b.p, b.len, &err);
    assert_non_null(v);
    assert_int_equal(v->u.dict.n, 2001);
    for (int i = 0; i < 2000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        assert_string_equal(v->u.dict.keys[i].s, k);
        pyj_value *x = v->u.dict.vals[i];
        if (i == 3) assert_int_equal(x->type, PYJ_NULL);
        else if (i % 7 == 0) assert_int_equal(x->type, PYJ_STR);
        else assert_int_equal(x->type, PYJ_INT);
    }
    assert_string_equal(v->u.dict.keys[2000].s, "new");
    pyj_free(v);
    shx_buf_free(&b);
}

/* json.dumps(v) with Python's default separators, file order: what Local Mode writes into the config files
 * (python3 -c 'import json; print(json.dumps({"b": [1, 2.5, "\u00e9"], "a": {"x": None, "y": True}}))') */
static void test_dumps_default(void **state) {
    (void)state;
    const char *text = "{\"b\":[1,2.5,\"\\u00e9\"],\"a\":{\"x\":null,\"y\":true},\"e\":[],\"f\":{}}";
    pyj_error e;
    pyj_value *v = pyj_parse(text, strlen(text), &e);
    assert_non_null(v);
    char *s = pyj_dumps_default(v);
    assert_string_equal(s, "{\"b\": [1, 2.5, \"\\u00e9\"], \"a\": {\"x\": null, \"y\": true}, \"e\": [], \"f\": {}}");
    free(s);
    char *c = pyj_dumps(v, 0); /* the compact form is unchanged */
    assert_string_equal(c, "{\"b\":[1,2.5,\"\\u00e9\"],\"a\":{\"x\":null,\"y\":true},\"e\":[],\"f\":{}}");
    free(c);
    pyj_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_vectors), cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_error_positions), cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_nesting_limit), cmocka_unit_test(test_float_repr),
        cmocka_unit_test(test_float_dumps), cmocka_unit_test(test_upper),
        cmocka_unit_test(test_builders), cmocka_unit_test(test_large_object),
        cmocka_unit_test(test_dumps_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
