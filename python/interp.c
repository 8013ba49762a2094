/* The interpreter: an explicit PyConfig that behaves like `/usr/bin/python3 script.py` (or `-m module`), the run
 * itself and finalization. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "python/smhpy.h"

static int status_error(PyStatus st, const char *what, char *err, size_t errlen) {
    snprintf(err, errlen, "Python could not start (%s): %s%s%s", what, st.func ? st.func : "",
             st.func ? ": " : "", st.err_msg ? st.err_msg : "unknown error");
    return -1;
}

/* PYTHONUNBUFFERED semantics with the container default: unbuffered unless the job sets PYTHONUNBUFFERED
 * to the empty string (Python reads an empty value as "not asked for"). */
static int want_buffered(void) {
    const char *v = getenv("PYTHONUNBUFFERED");
    return v != NULL && *v == '\0';
}

static int build_argv(const smhpy_target *t, char ***out, int *outc) {
    char **v = calloc((size_t)t->nargs + 2, sizeof(*v));
    if (v == NULL) return -1;
    int k = 0;
    if (t->kind == SMHPY_SCRIPT)
        v[k++] = (char *)t->script;
    else if (t->kind == SMHPY_MODULE)
        v[k++] = "-m"; /* runpy replaces it with the module's file, as `python3 -m` does */
    else
        v[k++] = "train"; /* the toolkit's entry is the `train` console script, called without arguments */
    if (t->kind != SMHPY_ENTRY)
        for (int i = 0; i < t->nargs; i++) v[k++] = t->args[i];
    v[k] = NULL;
    *out = v;
    *outc = k;
    return 0;
}

/* sys.path[0] as python3 computes it: the script's real directory, or the working directory for -m. */
static int insert_sys_path0(const smhpy_target *t) {
    char buf[PATH_MAX];
    const char *dir = NULL;
    if (t->kind == SMHPY_SCRIPT) {
        if (realpath(t->script, buf) == NULL) snprintf(buf, sizeof(buf), "%s", t->script);
        dir = dirname(buf);
    } else if (getcwd(buf, sizeof(buf)) != NULL) {
        dir = buf;
    }
    if (dir == NULL) return 0;
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *s = PyUnicode_DecodeFSDefault(dir);
    if (path == NULL || s == NULL || PyList_Insert(path, 0, s) != 0) {
        Py_XDECREF(s);
        return -1;
    }
    Py_DECREF(s);
    return 0;
}

/* python3 script.py: run the file in __main__'s namespace with __file__ set (_PyRun_SimpleFileObject). */
static PyObject *run_script(const char *path, int *open_errno) {
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        *open_errno = errno;
        PyObject *p = PyUnicode_DecodeFSDefault(path);
        if (p != NULL) {
            PySys_FormatStderr("%s: can't open file %R: [Errno %d] %s\n", SMHPY_PYTHON3, p, *open_errno,
                               strerror(*open_errno));
            Py_DECREF(p);
        }
        PyErr_Clear();
        return NULL;
    }
    PyObject *main = PyImport_AddModule("__main__"); /* borrowed */
    PyObject *d = main ? PyModule_GetDict(main) : NULL;
    PyObject *file = PyUnicode_DecodeFSDefault(path);
    if (d == NULL || file == NULL || PyDict_SetItemString(d, "__file__", file) != 0 ||
        PyDict_SetItemString(d, "__cached__", Py_None) != 0) {
        Py_XDECREF(file);
        fclose(fp);
        return NULL;
    }
    Py_DECREF(file);
    PyCompilerFlags cf = _PyCompilerFlags_INIT;
    PyObject *res = PyRun_FileExFlags(fp, path, Py_file_input, d, d, 1, &cf);
    /* python3 removes them again once the script is done */
    PyObject *saved_type, *saved_value, *saved_tb;
    PyErr_Fetch(&saved_type, &saved_value, &saved_tb);
    if (PyDict_DelItemString(d, "__file__") != 0) PyErr_Clear();
    if (PyDict_DelItemString(d, "__cached__") != 0) PyErr_Clear();
    PyErr_Restore(saved_type, saved_value, saved_tb);
    return res;
}

/* python3 -m module: runpy._run_module_as_main(module, True), as pymain_run_module() does. */
static PyObject *run_module(const char *module) {
    PyObject *runpy = PyImport_ImportModule("runpy");
    if (runpy == NULL) return NULL;
    PyObject *fn = PyObject_GetAttrString(runpy, "_run_module_as_main");
    Py_DECREF(runpy);
    if (fn == NULL) return NULL;
    PyObject *res = PyObject_CallFunction(fn, "si", module, 1);
    Py_DECREF(fn);
    return res;
}

/* SAGEMAKER_TRAINING_MODULE=module:function -> importlib.import_module(module).function() */
static PyObject *run_entry(const char *module, const char *function) {
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL) return NULL;
    PyObject *fn = PyObject_GetAttrString(m, function);
    Py_DECREF(m);
    if (fn == NULL) return NULL;
    PyObject *res = PyObject_CallNoArgs(fn);
    Py_DECREF(fn);
    return res;
}

int smhpy_interp_run(const smhpy_target *t, char *err, size_t errlen) {
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre); /* locale coercion and UTF-8 mode as python3 decides them */
    PyStatus st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st)) return status_error(st, "pre-initialization", err, errlen);

    PyConfig c;
    PyConfig_InitPythonConfig(&c); /* reads PYTHON* variables of the job's environment, like python3 */
    c.parse_argv = 0;              /* the user's arguments are sys.argv, never interpreter options */
    c.install_signal_handlers = 1; /* Python's own: SIGINT -> KeyboardInterrupt, signal.signal() works */
    c.buffered_stdio = want_buffered();
    char **argv = NULL;
    int argc = 0;
    if (build_argv(t, &argv, &argc) != 0) {
        PyConfig_Clear(&c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* sys.executable is the real python3 so subprocess and multiprocessing (spawn) start the same Python; as the
     * program name it also makes the standard library be found under python3's prefix. */
    st = PyConfig_SetBytesString(&c, &c.program_name, SMHPY_PYTHON3);
    if (!PyStatus_Exception(st)) st = PyConfig_SetBytesString(&c, &c.executable, SMHPY_PYTHON3);
    if (!PyStatus_Exception(st)) st = PyConfig_SetBytesArgv(&c, argc, argv);
    free(argv);
    if (!PyStatus_Exception(st)) st = PyConfig_Read(&c);
    if (PyStatus_Exception(st)) {
        PyConfig_Clear(&c);
        return status_error(st, "configuration", err, errlen);
    }
    int safe_path = c.safe_path; /* PYTHONSAFEPATH: no sys.path[0] */
    st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_IsExit(st)) return st.exitcode & 0xff;
    if (PyStatus_Exception(st)) return status_error(st, "initialization", err, errlen);

    int code = 0, open_errno = 0;
    if (!safe_path && insert_sys_path0(t) != 0) {
        code = smhpy_exception_exit();
    } else {
        smhpy_program_starting();
        PyObject *res = NULL;
        if (t->kind == SMHPY_SCRIPT)
            res = run_script(t->script, &open_errno);
        else if (t->kind == SMHPY_MODULE)
            res = run_module(t->module);
        else
            res = run_entry(t->module, t->function);
        if (res != NULL) {
            Py_DECREF(res);
        } else if (open_errno != 0) {
            char msg[512];
            snprintf(msg, sizeof(msg), "can't open the Python program %s: %s", t->script, strerror(open_errno));
            smhpy_set_failure(msg);
            code = 2;
        } else {
            code = smhpy_exception_exit();
        }
    }
    /* atexit handlers, non-daemon threads and flushing, as python3 does at exit */
    if (Py_FinalizeEx() < 0) code = 120;
    return code;
}
