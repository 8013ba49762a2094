/* The failure reason of an uncaught exception (python3 itself prints the traceback and picks the exit code):
 * "Type: message" first, then the last frames that fit in SageMaker's 1024 bytes. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "python/smhpy.h"

/* The longest prefix of s[0..len) of at most max bytes that does not split a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max) {
    if (len <= max) return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    return n;
}

/* UTF-8 bytes of a str (lone surrogates escaped, never an error).  New reference or NULL. */
static PyObject *to_utf8(PyObject *s) {
    if (s == NULL || !PyUnicode_Check(s)) return NULL;
    return PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
}

/* "".join(list_of_str) as UTF-8 bytes, or NULL. */
static PyObject *joined_utf8(PyObject *list) {
    if (list == NULL) return NULL;
    PyObject *empty = PyUnicode_FromString("");
    PyObject *s = empty ? PyUnicode_Join(empty, list) : NULL;
    Py_XDECREF(empty);
    PyObject *b = to_utf8(s);
    Py_XDECREF(s);
    return b;
}

typedef struct textbuf {
    char *p;
    size_t len, cap;
} textbuf;

static int tb_add(textbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

char *smhpy_failure_text(void *type_, void *value_, void *tb_, size_t budget) {
    PyObject *type = type_, *value = value_, *tbobj = tb_;
    PyObject *saved_t, *saved_v, *saved_tb;
    PyErr_Fetch(&saved_t, &saved_v, &saved_tb);

    PyObject *head = NULL, *frames = NULL;
    PyObject *mod = PyImport_ImportModule("traceback");
    if (mod != NULL) {
        PyObject *lines = PyObject_CallMethod(mod, "format_exception_only", "OO", type ? type : Py_None,
                                              value ? value : Py_None);
        head = joined_utf8(lines);
        Py_XDECREF(lines);
        if (tbobj != NULL && tbobj != Py_None) {
            PyObject *summary = PyObject_CallMethod(mod, "extract_tb", "O", tbobj);
            if (summary != NULL) frames = PyObject_CallMethod(mod, "format_list", "O", summary);
            Py_XDECREF(summary);
        }
        Py_DECREF(mod);
    }
    PyErr_Clear();
    if (head == NULL && type != NULL && PyType_Check(type)) { /* traceback itself failed: the type's name */
        head = PyBytes_FromString(((PyTypeObject *)type)->tp_name);
        PyErr_Clear();
    }

    textbuf out = {0};
    int oom = tb_add(&out, "", 0);
    size_t nframes = frames != NULL && PyList_Check(frames) ? (size_t)PyList_GET_SIZE(frames) : 0;
    if (head != NULL) {
        const char *h = PyBytes_AS_STRING(head);
        size_t hl = (size_t)PyBytes_GET_SIZE(head);
        while (hl > 0 && h[hl - 1] == '\n') hl--;
        size_t hmax = nframes > 0 ? budget * 3 / 4 : budget - 1; /* leave room for at least one frame */
        if (hl > hmax) {
            oom |= tb_add(&out, h, utf8_cut(h, hl, hmax - 4));
            oom |= tb_add(&out, "...", 3);
        } else {
            oom |= tb_add(&out, h, hl);
        }
        oom |= tb_add(&out, "\n", 1);
    }
    if (nframes > 0 && !oom) {
        /* the most recent frames, kept in traceback order */
        PyObject *bytes[64];
        size_t take = 0, used = out.len;
        for (size_t i = nframes; i > 0 && take < 64; i--) {
            PyObject *b = to_utf8(PyList_GET_ITEM(frames, (Py_ssize_t)(i - 1)));
            if (b == NULL) break;
            size_t bl = (size_t)PyBytes_GET_SIZE(b);
            if (used + bl > budget - 1) {
                if (take == 0 && used + 8 < budget - 1) { /* the innermost frame alone is too long: cut it */
                    bytes[take++] = b;
                    used = budget - 1;
                } else {
                    Py_DECREF(b);
                }
                break;
            }
            bytes[take++] = b;
            used += bl;
        }
        for (size_t j = take; j > 0; j--) {
            PyObject *b = bytes[j - 1];
            size_t room = budget - 1 - out.len;
            const char *s = PyBytes_AS_STRING(b);
            oom |= tb_add(&out, s, utf8_cut(s, (size_t)PyBytes_GET_SIZE(b), room));
            Py_DECREF(b);
        }
        while (out.len > 0 && out.p[out.len - 1] == '\n') out.p[--out.len] = '\0';
    }
    PyErr_Clear();
    Py_XDECREF(head);
    Py_XDECREF(frames);
    PyErr_Restore(saved_t, saved_v, saved_tb);
    if (oom) {
        free(out.p);
        return NULL;
    }
    while (out.len > 0 && out.p[out.len - 1] == '\n') out.p[--out.len] = '\0';
    return out.p;
}
