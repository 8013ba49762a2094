/*
 * Python-semantics JSON values.
 *
 * The contract (../shared/contract.md, sections 2-3) wants the bytes Python's json and str()/repr() produce:
 * integers of any size kept exact, 1.0 kept apart from 1, floats printed as Python's repr, strings escaped
 * with ensure_ascii, dicts in file order for repr and sorted for SM_* JSON.  cJSON rounds every number
 * through a double and cannot tell 1.0 from 1, so the contract's values use this small module instead.
 *
 * Parsing follows json.loads: NaN, Infinity and -Infinity are accepted, surrounding whitespace is allowed,
 * anything after the value is an error, duplicate keys keep the last value at the first key's position,
 * lone surrogate escapes survive as WTF-8.
 */
#ifndef SHX_PYJSON_H
#define SHX_PYJSON_H
#include <stddef.h>

typedef enum pyj_type { PYJ_NULL, PYJ_BOOL, PYJ_INT, PYJ_FLOAT, PYJ_STR, PYJ_LIST, PYJ_DICT } pyj_type;

typedef struct pyj_value pyj_value;
typedef struct pyj_str {
    char *s;    /* UTF-8 (WTF-8 for lone surrogates), NUL-terminated; may hold embedded NULs */
    size_t len;
} pyj_str;

struct pyj_value {
    pyj_type type;
    union {
        int b;                 /* PYJ_BOOL */
        char *i;               /* PYJ_INT: canonical decimal text: "-12345678901234567890", "0" */
        double f;              /* PYJ_FLOAT */
        pyj_str s;             /* PYJ_STR */
        struct {
            pyj_value **items;
            size_t n, cap;
        } list;                /* PYJ_LIST */
        struct {
            pyj_str *keys;
            pyj_value **vals;
            size_t n, cap;
        } dict;                /* PYJ_DICT, insertion order */
    } u;
};

typedef struct pyj_error {
    size_t pos;          /* byte offset of the problem */
    int line, col;       /* 1-based, as Python reports them */
    char msg[160];       /* Python's wording: "Expecting value: line 1 column 1 (char 0)" */
} pyj_error;

/* Parse text (len bytes).  Returns NULL and fills err on failure. */
pyj_value *pyj_parse(const char *text, size_t len, pyj_error *err);
void pyj_free(pyj_value *v);
pyj_value *pyj_copy(const pyj_value *v);

pyj_value *pyj_null(void);
pyj_value *pyj_bool(int b);
pyj_value *pyj_int_ll(long long i);
pyj_value *pyj_int_text(const char *digits); /* must be a valid canonical integer */
pyj_value *pyj_float(double f);
pyj_value *pyj_string(const char *s);                 /* NUL-terminated */
pyj_value *pyj_stringn(const char *s, size_t len);
pyj_value *pyj_list(void);
pyj_value *pyj_dict(void);
void pyj_list_append(pyj_value *list, pyj_value *item);                 /* takes ownership */
void pyj_dict_set(pyj_value *dict, const char *key, pyj_value *val);    /* takes ownership; replaces in place */
void pyj_dict_setn(pyj_value *dict, const char *key, size_t keylen, pyj_value *val);
pyj_value *pyj_dict_get(const pyj_value *dict, const char *key);        /* NULL when absent or not a dict */
pyj_value *pyj_dict_remove(pyj_value *dict, const char *key);           /* returns the value, caller frees */
const char *pyj_as_string(const pyj_value *v);                          /* the string, or NULL if not PYJ_STR */
/* Entry indexes of dict d in Python's sorted() key order (code points).  Caller frees. */
size_t *pyj_sorted_order(const pyj_value *d);

/* json.dumps(v, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=True).  Caller frees. */
char *pyj_dumps(const pyj_value *v, int sort_keys);
/* json.dumps(v) with Python's defaults: file order, separators (", ", ": "), ensure_ascii.  Caller frees. */
char *pyj_dumps_default(const pyj_value *v);
/* repr(v) and str(v) as Python 3.11 prints them (str of a string is the string itself).  Caller frees. */
char *pyj_repr(const pyj_value *v);
char *pyj_str_of(const pyj_value *v);
/* repr(float) into buf (at least 32 bytes): "1e-05", "0.1", "3.0", "1e+16", "-0.0", "inf", "nan". */
void pyj_float_repr(double f, char *buf, size_t size);
/* Python str.upper() of a UTF-8 string (full Unicode case mapping).  Caller frees. */
char *pyj_upper(const char *s);

#endif
