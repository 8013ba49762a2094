/* Python-semantics JSON values (see pyjson.h).  The parser mirrors CPython 3.11's C scanner (Modules/_json.c)
 * decision for decision, so that error wording and positions match; positions inside the text are bytes, the
 * messages count code points as Python does.  Numbers use strtod/snprintf and assume the "C" numeric locale,
 * which smhost never changes. */
#include "core/pyjson.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/unicode_tables.h"
#include "core/util.h"

/* Python raises RecursionError near 1000 levels (and the toolkit then dies); we refuse deeper input. */
#define PYJ_MAX_DEPTH 900
/* sys.get_int_max_str_digits() default in Python 3.11. */
#define PYJ_INT_MAX_DIGITS 4300

/* ---- UTF-8 -------------------------------------------------------------------------------------------- */

/* Decode one generalized UTF-8 sequence (surrogates allowed, as WTF-8 stores them).  Returns its length, or 0
 * when s does not start with a valid sequence (overlong, truncated, above U+10FFFF, stray byte). */
static size_t u8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf) len = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff) return 0;
    *cp = v;
    return len;
}

/* Next code point of s[*i..n); an invalid byte reads as U+DC80+byte (Python's surrogateescape). */
static uint32_t u8_next(const unsigned char *s, size_t n, size_t *i) {
    uint32_t cp;
    size_t l = u8_decode(s + *i, n - *i, &cp);
    if (!l) {
        cp = 0xdc00 + s[*i];
        l = 1;
    }
    *i += l;
    return cp;
}

static void u8_put(shx_buf *b, uint32_t cp) {
    char t[4];
    size_t n;
    if (cp < 0x80) t[0] = (char)cp, n = 1;
    else if (cp < 0x800) t[0] = (char)(0xc0 | cp >> 6), t[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        t[0] = (char)(0xe0 | cp >> 12), t[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), t[2] = (char)(0x80 | (cp & 0x3f)),
        n = 3;
    else
        t[0] = (char)(0xf0 | cp >> 18), t[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), t[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    shx_buf_add(b, t, n);
}

/* ---- values ------------------------------------------------------------------------------------------- */

static pyj_value *new_value(pyj_type t) {
    pyj_value *v = shx_xcalloc(1, sizeof *v);
    v->type = t;
    return v;
}
pyj_value *pyj_null(void) { return new_value(PYJ_NULL); }
pyj_value *pyj_bool(int b) {
    pyj_value *v = new_value(PYJ_BOOL);
    v->u.b = !!b;
    return v;
}
pyj_value *pyj_int_ll(long long i) {
    pyj_value *v = new_value(PYJ_INT);
    v->u.i = shx_xasprintf("%lld", i);
    return v;
}
pyj_value *pyj_int_text(const char *digits) {
    pyj_value *v = new_value(PYJ_INT);
    v->u.i = shx_xstrdup(strcmp(digits, "-0") ? digits : "0");
    return v;
}
pyj_value *pyj_float(double f) {
    pyj_value *v = new_value(PYJ_FLOAT);
    v->u.f = f;
    return v;
}
static void str_set(pyj_str *d, const char *s, size_t len) {
    d->s = shx_xstrndup(s, len);
    d->len = len;
}
pyj_value *pyj_stringn(const char *s, size_t len) {
    pyj_value *v = new_value(PYJ_STR);
    str_set(&v->u.s, s, len);
    return v;
}
pyj_value *pyj_string(const char *s) { return pyj_stringn(s, strlen(s)); }
pyj_value *pyj_list(void) { return new_value(PYJ_LIST); }
pyj_value *pyj_dict(void) { return new_value(PYJ_DICT); }

void pyj_free(pyj_value *v) {
    if (!v) return;
    switch (v->type) {
    case PYJ_INT: free(v->u.i); break;
    case PYJ_STR: free(v->u.s.s); break;
    case PYJ_LIST:
        for (size_t i = 0; i < v->u.list.n; i++) pyj_free(v->u.list.items[i]);
        free(v->u.list.items);
        break;
    case PYJ_DICT:
        for (size_t i = 0; i < v->u.dict.n; i++) {
            free(v->u.dict.keys[i].s);
            pyj_free(v->u.dict.vals[i]);
        }
        free(v->u.dict.keys);
        free(v->u.dict.vals);
        break;
    default: break;
    }
    free(v);
}

void pyj_list_append(pyj_value *list, pyj_value *item) {
    if (list->u.list.n == list->u.list.cap) {
        list->u.list.cap = list->u.list.cap ? list->u.list.cap * 2 : 4;
        list->u.list.items = shx_xrealloc(list->u.list.items, list->u.list.cap * sizeof(pyj_value *));
    }
    list->u.list.items[list->u.list.n++] = item;
}

static ssize_t dict_find(const pyj_value *d, const char *key, size_t keylen) {
    for (size_t i = 0; i < d->u.dict.n; i++)
        if (d->u.dict.keys[i].len == keylen && memcmp(d->u.dict.keys[i].s, key, keylen) == 0) return (ssize_t)i;
    return -1;
}

/* Append without looking for an existing key. */
static void dict_append(pyj_value *d, char *key, size_t keylen, pyj_value *val) {
    if (d->u.dict.n == d->u.dict.cap) {
        d->u.dict.cap = d->u.dict.cap ? d->u.dict.cap * 2 : 4;
        d->u.dict.keys = shx_xrealloc(d->u.dict.keys, d->u.dict.cap * sizeof(pyj_str));
        d->u.dict.vals = shx_xrealloc(d->u.dict.vals, d->u.dict.cap * sizeof(pyj_value *));
    }
    d->u.dict.keys[d->u.dict.n].s = key;
    d->u.dict.keys[d->u.dict.n].len = keylen;
    d->u.dict.vals[d->u.dict.n++] = val;
}

void pyj_dict_setn(pyj_value *dict, const char *key, size_t keylen, pyj_value *val) {
    ssize_t i = dict_find(dict, key, keylen);
    if (i >= 0) {
        pyj_free(dict->u.dict.vals[i]);
        dict->u.dict.vals[i] = val;
        return;
    }
    dict_append(dict, shx_xstrndup(key, keylen), keylen, val);
}
void pyj_dict_set(pyj_value *dict, const char *key, pyj_value *val) { pyj_dict_setn(dict, key, strlen(key), val); }

pyj_value *pyj_dict_get(const pyj_value *dict, const char *key) {
    if (!dict || dict->type != PYJ_DICT) return NULL;
    ssize_t i = dict_find(dict, key, strlen(key));
    return i >= 0 ? dict->u.dict.vals[i] : NULL;
}

pyj_value *pyj_dict_remove(pyj_value *dict, const char *key) {
    if (!dict || dict->type != PYJ_DICT) return NULL;
    ssize_t i = dict_find(dict, key, strlen(key));
    if (i < 0) return NULL;
    pyj_value *v = dict->u.dict.vals[i];
    free(dict->u.dict.keys[i].s);
    size_t rest = dict->u.dict.n - (size_t)i - 1;
    memmove(&dict->u.dict.keys[i], &dict->u.dict.keys[i + 1], rest * sizeof(pyj_str));
    memmove(&dict->u.dict.vals[i], &dict->u.dict.vals[i + 1], rest * sizeof(pyj_value *));
    dict->u.dict.n--;
    return v;
}

const char *pyj_as_string(const pyj_value *v) { return v && v->type == PYJ_STR ? v->u.s.s : NULL; }

pyj_value *pyj_copy(const pyj_value *v) {
    if (!v) return NULL;
    switch (v->type) {
    case PYJ_NULL: return pyj_null();
    case PYJ_BOOL: return pyj_bool(v->u.b);
    case PYJ_INT: return pyj_int_text(v->u.i);
    case PYJ_FLOAT: return pyj_float(v->u.f);
    case PYJ_STR: return pyj_stringn(v->u.s.s, v->u.s.len);
    case PYJ_LIST: {
        pyj_value *l = pyj_list();
        for (size_t i = 0; i < v->u.list.n; i++) pyj_list_append(l, pyj_copy(v->u.list.items[i]));
        return l;
    }
    case PYJ_DICT: {
        pyj_value *d = pyj_dict();
        for (size_t i = 0; i < v->u.dict.n; i++)
            dict_append(d, shx_xstrndup(v->u.dict.keys[i].s, v->u.dict.keys[i].len), v->u.dict.keys[i].len,
                        pyj_copy(v->u.dict.vals[i]));
        return d;
    }
    }
    return NULL;
}

/* ---- parser ------------------------------------------------------------------------------------------- */

typedef struct parser {
    const unsigned char *s;
    size_t n;
    pyj_error *err;
    int depth;
} parser;

/* Fill err like json.JSONDecodeError: "msg: line L column C (char P)", all counted in code points. */
static void fail_at(parser *p, const char *msg, size_t pos, int with_position) {
    if (!p->err) return;
    size_t ch = 0, nl_ch = (size_t)-1;
    int line = 1;
    for (size_t i = 0; i < pos && i < p->n; i++) {
        if ((p->s[i] & 0xc0) == 0x80) continue; /* continuation byte */
        if (p->s[i] == '\n') line++, nl_ch = ch;
        ch++;
    }
    p->err->pos = pos;
    p->err->line = line;
    p->err->col = (int)(ch - nl_ch); /* nl_ch == -1 gives ch + 1 */
    if (with_position)
        snprintf(p->err->msg, sizeof p->err->msg, "%s: line %d column %d (char %zu)", msg, line, p->err->col, ch);
    else
        snprintf(p->err->msg, sizeof p->err->msg, "%s", msg);
}
static void fail(parser *p, const char *msg, size_t pos) { fail_at(p, msg, pos, 1); }

#define IS_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')
static size_t skip_ws(const parser *p, size_t i) {
    while (i < p->n && IS_WS(p->s[i])) i++;
    return i;
}

/* Result of scanning one value: the value, or NULL with either a filled error or "no value here" (Python's
 * StopIteration, reported by the caller as "Expecting value" at *stop). */
#define NO_VALUE ((pyj_value *)0)
static pyj_value *scan_value(parser *p, size_t i, size_t *end, int *stopped);

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits at s[i..i+4); -1 if any is not hex. */
static long hex4(const parser *p, size_t i) {
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hexval(p->s[i + k]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

/* Scan a string whose opening quote is at begin-1.  Returns 0 and fills out/end, or -1 (error set). */
static int scan_string(parser *p, size_t begin, pyj_str *out, size_t *endp) {
    shx_buf b = {0};
    size_t end = begin;
    const unsigned char *s = p->s;
    size_t len = p->n;
    for (;;) {
        size_t next = end;
        unsigned char c = 0;
        for (; next < len; next++) {
            c = s[next];
            if (c == '"' || c == '\\') break;
            if (c <= 0x1f) {
                fail(p, "Invalid control character at", next);
                goto bail;
            }
        }
        if (next >= len) {
            fail(p, "Unterminated string starting at", begin - 1);
            goto bail;
        }
        shx_buf_add(&b, s + end, next - end);
        next++;
        if (c == '"') {
            end = next;
            break;
        }
        if (next == len) {
            fail(p, "Unterminated string starting at", begin - 1);
            goto bail;
        }
        c = s[next];
        if (c != 'u') {
            end = next + 1;
            char e;
            switch (c) {
            case '"': e = '"'; break;
            case '\\': e = '\\'; break;
            case '/': e = '/'; break;
            case 'b': e = '\b'; break;
            case 'f': e = '\f'; break;
            case 'n': e = '\n'; break;
            case 'r': e = '\r'; break;
            case 't': e = '\t'; break;
            default: fail(p, "Invalid \\escape", end - 2); goto bail;
            }
            shx_buf_addc(&b, e);
            continue;
        }
        next++;
        end = next + 4;
        if (end >= len) {
            fail(p, "Invalid \\uXXXX escape", next - 1);
            goto bail;
        }
        long cp = hex4(p, next);
        if (cp < 0) {
            fail(p, "Invalid \\uXXXX escape", end - 5);
            goto bail;
        }
        if (cp >= 0xd800 && cp <= 0xdbff && end + 6 < len && s[end] == '\\' && s[end + 1] == 'u') {
            long c2 = hex4(p, end + 2);
            if (c2 < 0) {
                fail(p, "Invalid \\uXXXX escape", end + 1);
                goto bail;
            }
            if (c2 >= 0xdc00 && c2 <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (c2 - 0xdc00);
                end += 6;
            }
        }
        u8_put(&b, (uint32_t)cp);
    }
    out->len = b.len;
    out->s = b.p ? shx_buf_steal(&b) : shx_xstrdup("");
    *endp = end;
    return 0;
bail:
    shx_buf_free(&b);
    return -1;
}

/* Python's _match_number_unicode.  Returns NULL with *stopped when there is no number at start. */
static pyj_value *scan_number(parser *p, size_t start, size_t *endp, int *stopped) {
    const unsigned char *s = p->s;
    size_t n = p->n, i = start;
    int is_float = 0;
    if (s[i] == '-') {
        i++;
        if (i >= n) goto stop;
    }
    if (s[i] >= '1' && s[i] <= '9') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    } else if (s[i] == '0') {
        i++;
    } else {
        goto stop;
    }
    if (i + 1 < n && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
        is_float = 1;
        i += 2;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i + 1 < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t e_start = i++;
        if (i + 1 < n && (s[i] == '-' || s[i] == '+')) i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        if (s[i - 1] >= '0' && s[i - 1] <= '9') is_float = 1;
        else i = e_start;
    }
    *endp = i;
    char *text = shx_xstrndup((const char *)s + start, i - start);
    pyj_value *v;
    if (is_float) {
        v = pyj_float(strtod(text, NULL));
    } else {
        size_t digits = i - start - (s[start] == '-');
        if (digits > PYJ_INT_MAX_DIGITS) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "Exceeds the limit (%d digits) for integer string conversion: value has %zu digits; "
                     "use sys.set_int_max_str_digits() to increase the limit",
                     PYJ_INT_MAX_DIGITS, digits);
            fail_at(p, msg, start, 0);
            free(text);
            return NULL;
        }
        v = pyj_int_text(text);
    }
    free(text);
    return v;
stop:
    *stopped = 1;
    *endp = start;
    return NULL;
}

/* A small open-addressing index over a dict's keys, used while parsing large objects. */
typedef struct key_index {
    size_t *slot; /* entry index + 1; 0 = empty */
    size_t cap;
} key_index;
static uint64_t key_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}
static void index_insert(key_index *ix, const pyj_value *d, size_t entry) {
    size_t m = ix->cap - 1, h = key_hash(d->u.dict.keys[entry].s, d->u.dict.keys[entry].len) & m;
    while (ix->slot[h]) h = (h + 1) & m;
    ix->slot[h] = entry + 1;
}
static ssize_t index_find(key_index *ix, const pyj_value *d, const pyj_str *k) {
    size_t m = ix->cap - 1, h = key_hash(k->s, k->len) & m;
    for (; ix->slot[h]; h = (h + 1) & m) {
        const pyj_str *e = &d->u.dict.keys[ix->slot[h] - 1];
        if (e->len == k->len && memcmp(e->s, k->s, k->len) == 0) return (ssize_t)(ix->slot[h] - 1);
    }
    return -1;
}
static void index_rebuild(key_index *ix, const pyj_value *d) {
    free(ix->slot);
    ix->cap = 64;
    while (ix->cap < d->u.dict.n * 2 + 2) ix->cap *= 2;
    ix->slot = shx_xcalloc(ix->cap, sizeof *ix->slot);
    for (size_t i = 0; i < d->u.dict.n; i++) index_insert(ix, d, i);
}

/* Object: '{' at i-1. */
static pyj_value *scan_object(parser *p, size_t i, size_t *endp) {
    pyj_value *d = pyj_dict();
    key_index ix = {0};
    i = skip_ws(p, i);
    if (i >= p->n || p->s[i] != '}') {
        for (;;) {
            if (i >= p->n || p->s[i] != '"') {
                fail(p, "Expecting property name enclosed in double quotes", i);
                goto bail;
            }
            pyj_str key;
            if (scan_string(p, i + 1, &key, &i) < 0) goto bail;
            i = skip_ws(p, i);
            if (i >= p->n || p->s[i] != ':') {
                free(key.s);
                fail(p, "Expecting ':' delimiter", i);
                goto bail;
            }
            i = skip_ws(p, i + 1);
            int stopped = 0;
            pyj_value *val = scan_value(p, i, &i, &stopped);
            if (!val) {
                free(key.s);
                if (stopped) fail(p, "Expecting value", i);
                goto bail;
            }
            /* dict semantics: a repeated key keeps its first position and takes the last value */
            ssize_t at = ix.slot ? index_find(&ix, d, &key) : dict_find(d, key.s, key.len);
            if (at >= 0) {
                free(key.s);
                pyj_free(d->u.dict.vals[at]);
                d->u.dict.vals[at] = val;
            } else {
                dict_append(d, key.s, key.len, val);
                if (ix.slot && d->u.dict.n * 2 + 2 <= ix.cap) index_insert(&ix, d, d->u.dict.n - 1);
                else if (d->u.dict.n > 16) index_rebuild(&ix, d);
            }
            i = skip_ws(p, i);
            if (i < p->n && p->s[i] == '}') break;
            if (i >= p->n || p->s[i] != ',') {
                fail(p, "Expecting ',' delimiter", i);
                goto bail;
            }
            i = skip_ws(p, i + 1);
        }
    }
    free(ix.slot);
    *endp = i + 1;
    return d;
bail:
    free(ix.slot);
    pyj_free(d);
    return NULL;
}

/* Array: '[' at i-1. */
static pyj_value *scan_array(parser *p, size_t i, size_t *endp) {
    pyj_value *l = pyj_list();
    i = skip_ws(p, i);
    if (i >= p->n || p->s[i] != ']') {
        for (;;) {
            int stopped = 0;
            pyj_value *val = scan_value(p, i, &i, &stopped);
            if (!val) {
                if (stopped) fail(p, "Expecting value", i);
                goto bail;
            }
            pyj_list_append(l, val);
            i = skip_ws(p, i);
            if (i < p->n && p->s[i] == ']') break;
            if (i >= p->n || p->s[i] != ',') {
                fail(p, "Expecting ',' delimiter", i);
                goto bail;
            }
            i = skip_ws(p, i + 1);
        }
    }
    *endp = i + 1;
    return l;
bail:
    pyj_free(l);
    return NULL;
}

static int literal_at(const parser *p, size_t i, const char *lit) {
    size_t n = strlen(lit);
    return i + n <= p->n && memcmp(p->s + i, lit, n) == 0;
}

/* Python's scan_once_unicode.  On "nothing here" returns NULL with *stopped = 1 and *end = i (the caller
 * reports "Expecting value" there); on other errors returns NULL with the error already set. */
static pyj_value *scan_value(parser *p, size_t i, size_t *end, int *stopped) {
    *end = i;
    if (i >= p->n) {
        *stopped = 1;
        return NULL;
    }
    pyj_value *v;
    switch (p->s[i]) {
    case '"': {
        pyj_str str;
        if (scan_string(p, i + 1, &str, end) < 0) return NULL;
        v = new_value(PYJ_STR);
        v->u.s = str;
        return v;
    }
    case '{':
    case '[':
        if (++p->depth > PYJ_MAX_DEPTH) {
            fail(p, "Nesting too deep (more than 900 levels)", i);
            return NULL;
        }
        v = p->s[i] == '{' ? scan_object(p, i + 1, end) : scan_array(p, i + 1, end);
        p->depth--;
        return v;
    case 'n':
        if (literal_at(p, i, "null")) return *end = i + 4, pyj_null();
        break;
    case 't':
        if (literal_at(p, i, "true")) return *end = i + 4, pyj_bool(1);
        break;
    case 'f':
        if (literal_at(p, i, "false")) return *end = i + 5, pyj_bool(0);
        break;
    case 'N':
        if (literal_at(p, i, "NaN")) return *end = i + 3, pyj_float(NAN);
        break;
    case 'I':
        if (literal_at(p, i, "Infinity")) return *end = i + 8, pyj_float(INFINITY);
        break;
    case '-':
        if (literal_at(p, i, "-Infinity")) return *end = i + 9, pyj_float(-INFINITY);
        return scan_number(p, i, end, stopped);
    default:
        if (p->s[i] >= '0' && p->s[i] <= '9') return scan_number(p, i, end, stopped);
        break;
    }
    *stopped = 1;
    return NULL;
}

pyj_value *pyj_parse(const char *text, size_t len, pyj_error *err) {
    parser p = {(const unsigned char *)text, len, err, 0};
    if (err) memset(err, 0, sizeof *err);
    /* A Python str is always valid text; refuse bytes that are not (lone surrogates are fine, see header). */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = u8_decode(p.s + i, len - i, &cp);
        if (!l) {
            char msg[80];
            snprintf(msg, sizeof msg, "Invalid UTF-8 byte 0x%02x", p.s[i]);
            fail(&p, msg, i);
            return NULL;
        }
        i += l;
    }
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        fail(&p, "Unexpected UTF-8 BOM (decode using utf-8-sig)", 0);
        return NULL;
    }
    size_t i = skip_ws(&p, 0), end;
    int stopped = 0;
    pyj_value *v = scan_value(&p, i, &end, &stopped);
    if (!v) {
        if (stopped) fail(&p, "Expecting value", end);
        return NULL;
    }
    end = skip_ws(&p, end);
    if (end != len) {
        pyj_free(v);
        fail(&p, "Extra data", end);
        return NULL;
    }
    return v;
}

/* ---- float repr --------------------------------------------------------------------------------------- */

/* Shortest decimal digits that read back as f (f finite, non-zero, positive), as David Gay's dtoa mode 0 gives
 * them to Python: digits without leading/trailing zeros and decpt with value = 0.DIGITS x 10^decpt. */
static void shortest_digits(double f, char *digits, int *decpt) {
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        int ok = strtod(tmp, NULL) == f;
        /* At a power of two the gap below f is half the gap above, so the nearest prec-digit decimal can miss
         * while the next one up still reads back as f: try that one too. */
        char d[24];
        int nd = 0;
        for (const char *q = tmp; *q && *q != 'e'; q++)
            if (*q >= '0' && *q <= '9') d[nd++] = *q;
        int exp = atoi(strchr(tmp, 'e') + 1);
        if (!ok && prec < 17) {
            int k = nd - 1;
            while (k >= 0 && d[k] == '9') d[k--] = '0';
            if (k < 0) {
                memmove(d + 1, d, (size_t)nd - 1);
                d[0] = '1';
                exp++;
            } else {
                d[k]++;
            }
            char up[48];
            snprintf(up, sizeof up, "%c.%.*se%d", d[0], nd - 1, d + 1, exp);
            ok = strtod(up, NULL) == f;
        }
        if (ok) {
            while (nd > 1 && d[nd - 1] == '0') nd--;
            memcpy(digits, d, (size_t)nd);
            digits[nd] = 0;
            *decpt = exp + 1;
            return;
        }
    }
    /* unreachable: 17 significant digits always round-trip */
    snprintf(digits, 2, "0");
    *decpt = 1;
}

void pyj_float_repr(double f, char *buf, size_t size) {
    if (isnan(f)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(buf, size, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        snprintf(buf, size, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    char d[24], out[48];
    int decpt, nd, o = 0;
    if (f < 0) out[o++] = '-', f = -f;
    shortest_digits(f, d, &decpt);
    nd = (int)strlen(d);
    if (decpt <= -4 || decpt > 16) {
        out[o++] = d[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, d + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    } else if (decpt <= 0) {
        out[o++] = '0', out[o++] = '.';
        for (int k = 0; k < -decpt; k++) out[o++] = '0';
        memcpy(out + o, d, (size_t)nd);
        out[o + nd] = 0;
    } else if (decpt >= nd) {
        memcpy(out + o, d, (size_t)nd);
        o += nd;
        for (int k = nd; k < decpt; k++) out[o++] = '0';
        memcpy(out + o, ".0", 3);
    } else {
        memcpy(out + o, d, (size_t)decpt);
        o += decpt;
        out[o++] = '.';
        memcpy(out + o, d + decpt, (size_t)(nd - decpt));
        out[o + nd - decpt] = 0;
    }
    snprintf(buf, size, "%s", out);
}

/* ---- dumps -------------------------------------------------------------------------------------------- */

static void dump_string(shx_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    shx_buf_addc(b, '"');
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && u[run] >= 0x20 && u[run] < 0x7f && u[run] != '"' && u[run] != '\\') run++;
        if (run > i) {
            shx_buf_add(b, s + i, run - i);
            i = run;
            continue;
        }
        uint32_t cp = u8_next(u, n, &i);
        switch (cp) {
        case '"': shx_buf_adds(b, "\\\""); continue;
        case '\\': shx_buf_adds(b, "\\\\"); continue;
        case '\n': shx_buf_adds(b, "\\n"); continue;
        case '\r': shx_buf_adds(b, "\\r"); continue;
        case '\t': shx_buf_adds(b, "\\t"); continue;
        case '\b': shx_buf_adds(b, "\\b"); continue;
        case '\f': shx_buf_adds(b, "\\f"); continue;
        default: break;
        }
        uint32_t units[2] = {cp, 0};
        int nu = 1;
        if (cp >= 0x10000) {
            units[0] = 0xd800 + ((cp - 0x10000) >> 10);
            units[1] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
            nu = 2;
        }
        for (int k = 0; k < nu; k++) {
            char e[6] = {'\\', 'u', hex[units[k] >> 12 & 15], hex[units[k] >> 8 & 15], hex[units[k] >> 4 & 15],
                         hex[units[k] & 15]};
            shx_buf_add(b, e, 6);
        }
    }
    shx_buf_addc(b, '"');
}

static int cmp_keys(const pyj_str *a, const pyj_str *b) {
    size_t m = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->s, b->s, m);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}
static int cmp_key_ptrs(const void *a, const void *b) {
    return cmp_keys(*(const pyj_str *const *)a, *(const pyj_str *const *)b);
}

/* Entry indexes of dict d in key order (code-point order, which byte order of UTF-8/WTF-8 is).  Caller frees. */
size_t *pyj_sorted_order(const pyj_value *d) {
    size_t n = d->u.dict.n;
    const pyj_str **ks = shx_xmalloc(n * sizeof *ks);
    for (size_t i = 0; i < n; i++) ks[i] = &d->u.dict.keys[i];
    qsort(ks, n, sizeof *ks, cmp_key_ptrs);
    size_t *order = shx_xmalloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++) order[i] = (size_t)(ks[i] - d->u.dict.keys);
    free(ks);
    return order;
}

static void dump_value(shx_buf *b, const pyj_value *v, int sort_keys, int spaced) {
    char num[48];
    switch (v->type) {
    case PYJ_NULL: shx_buf_adds(b, "null"); break;
    case PYJ_BOOL: shx_buf_adds(b, v->u.b ? "true" : "false"); break;
    case PYJ_INT: shx_buf_adds(b, v->u.i); break;
    case PYJ_FLOAT:
        if (isnan(v->u.f)) shx_buf_adds(b, "NaN");
        else if (isinf(v->u.f)) shx_buf_adds(b, v->u.f < 0 ? "-Infinity" : "Infinity");
        else pyj_float_repr(v->u.f, num, sizeof num), shx_buf_adds(b, num);
        break;
    case PYJ_STR: dump_string(b, v->u.s.s, v->u.s.len); break;
    case PYJ_LIST:
        shx_buf_addc(b, '[');
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i) shx_buf_adds(b, spaced ? ", " : ",");
            dump_value(b, v->u.list.items[i], sort_keys, spaced);
        }
        shx_buf_addc(b, ']');
        break;
    case PYJ_DICT: {
        size_t *order = sort_keys ? pyj_sorted_order(v) : NULL;
        shx_buf_addc(b, '{');
        for (size_t k = 0; k < v->u.dict.n; k++) {
            size_t i = order ? order[k] : k;
            if (k) shx_buf_adds(b, spaced ? ", " : ",");
            dump_string(b, v->u.dict.keys[i].s, v->u.dict.keys[i].len);
            shx_buf_adds(b, spaced ? ": " : ":");
            dump_value(b, v->u.dict.vals[i], sort_keys, spaced);
        }
        shx_buf_addc(b, '}');
        free(order);
        break;
    }
    }
}

char *pyj_dumps(const pyj_value *v, int sort_keys) {
    shx_buf b = {0};
    dump_value(&b, v, sort_keys, 0);
    return shx_buf_steal(&b);
}

char *pyj_dumps_default(const pyj_value *v) {
    shx_buf b = {0};
    dump_value(&b, v, 0, 1);
    return shx_buf_steal(&b);
}

/* ---- repr / str --------------------------------------------------------------------------------------- */

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int is_printable(uint32_t cp) {
    return !in_ranges(pyj_nonprintable, sizeof pyj_nonprintable / sizeof pyj_nonprintable[0], cp);
}

static void repr_string(shx_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char quote = has_sq && !has_dq ? '"' : '\'';
    shx_buf_addc(b, quote);
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && u[run] >= 0x20 && u[run] < 0x7f && u[run] != (unsigned char)quote && u[run] != '\\') run++;
        if (run > i) {
            shx_buf_add(b, s + i, run - i);
            i = run;
            continue;
        }
        size_t start = i;
        uint32_t cp = u8_next(u, n, &i);
        if (cp == (uint32_t)quote || cp == '\\') {
            shx_buf_addc(b, '\\');
            shx_buf_addc(b, (char)cp);
        } else if (cp == '\t') {
            shx_buf_adds(b, "\\t");
        } else if (cp == '\n') {
            shx_buf_adds(b, "\\n");
        } else if (cp == '\r') {
            shx_buf_adds(b, "\\r");
        } else if (cp >= 0x80 && is_printable(cp)) {
            shx_buf_add(b, s + start, i - start);
        } else if (cp <= 0xff) {
            char e[4] = {'\\', 'x', hex[cp >> 4], hex[cp & 15]};
            shx_buf_add(b, e, 4);
        } else if (cp <= 0xffff) {
            char e[6] = {'\\', 'u', hex[cp >> 12], hex[cp >> 8 & 15], hex[cp >> 4 & 15], hex[cp & 15]};
            shx_buf_add(b, e, 6);
        } else {
            shx_buf_printf(b, "\\U%08x", cp);
        }
    }
    shx_buf_addc(b, quote);
}

static void repr_value(shx_buf *b, const pyj_value *v) {
    char num[48];
    switch (v->type) {
    case PYJ_NULL: shx_buf_adds(b, "None"); break;
    case PYJ_BOOL: shx_buf_adds(b, v->u.b ? "True" : "False"); break;
    case PYJ_INT: shx_buf_adds(b, v->u.i); break;
    case PYJ_FLOAT: pyj_float_repr(v->u.f, num, sizeof num), shx_buf_adds(b, num); break;
    case PYJ_STR: repr_string(b, v->u.s.s, v->u.s.len); break;
    case PYJ_LIST:
        shx_buf_addc(b, '[');
        for (size_t i = 0; i < v->u.list.n; i++) {
            if (i) shx_buf_adds(b, ", ");
            repr_value(b, v->u.list.items[i]);
        }
        shx_buf_addc(b, ']');
        break;
    case PYJ_DICT:
        shx_buf_addc(b, '{');
        for (size_t i = 0; i < v->u.dict.n; i++) {
            if (i) shx_buf_adds(b, ", ");
            repr_string(b, v->u.dict.keys[i].s, v->u.dict.keys[i].len);
            shx_buf_adds(b, ": ");
            repr_value(b, v->u.dict.vals[i]);
        }
        shx_buf_addc(b, '}');
        break;
    }
}

char *pyj_repr(const pyj_value *v) {
    shx_buf b = {0};
    repr_value(&b, v);
    return shx_buf_steal(&b);
}

char *pyj_str_of(const pyj_value *v) {
    if (v->type == PYJ_STR) return shx_xstrndup(v->u.s.s, v->u.s.len);
    return pyj_repr(v);
}

/* ---- upper -------------------------------------------------------------------------------------------- */

static const pyj_upper_multi *upper_multi(uint32_t cp) {
    size_t lo = 0, hi = sizeof pyj_upper_multis / sizeof pyj_upper_multis[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < pyj_upper_multis[mid].cp) hi = mid;
        else if (cp > pyj_upper_multis[mid].cp) lo = mid + 1;
        else return &pyj_upper_multis[mid];
    }
    return NULL;
}

static uint32_t upper_single(uint32_t cp) {
    size_t lo = 0, hi = sizeof pyj_upper_runs / sizeof pyj_upper_runs[0];
    while (lo < hi) { /* last run with first <= cp */
        size_t mid = (lo + hi) / 2;
        if (pyj_upper_runs[mid].first <= cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return cp;
    const pyj_upper_run *r = &pyj_upper_runs[lo - 1];
    if (cp <= r->last && (cp - r->first) % r->stride == 0) return (uint32_t)((int32_t)cp + r->delta);
    return cp;
}

char *pyj_upper(const char *s) {
    size_t n = strlen(s);
    shx_buf b = {0};
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            shx_buf_addc(&b, (char)(u[i] >= 'a' && u[i] <= 'z' ? u[i] - 32 : u[i]));
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = u8_decode(u + i, n - i, &cp);
        if (!l) { /* not text: keep the byte */
            shx_buf_addc(&b, (char)u[i++]);
            continue;
        }
        i += l;
        const pyj_upper_multi *m = upper_multi(cp);
        if (m) {
            for (int k = 0; k < 3 && m->to[k]; k++) u8_put(&b, m->to[k]);
        } else {
            u8_put(&b, upper_single(cp));
        }
    }
    return shx_buf_steal(&b);
}
