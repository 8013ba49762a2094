/* The interpreter in python3 for a job: python3's own main with unbuffered output by default, the training
 * module's entry, and the audit hook through which the supervisor learns that user code starts and why it failed. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "python/smhpy.h"

/* PYTHONUNBUFFERED semantics with the container default: unbuffered unless the job sets PYTHONUNBUFFERED to the
 * empty string (Python reads an empty value as "not asked for").  Set in the configuration, not the environment,
 * so os.environ and child processes see the job's environment as it is. */
static int want_buffered(void) {
    const char *v = getenv("PYTHONUNBUFFERED");
    return v != NULL && *v == '\0';
}

static void start_failed(PyStatus st, const char *what) {
    char msg[512];
    snprintf(msg, sizeof msg, "Python could not start (%s): %s%s%s", what, st.func ? st.func : "",
             st.func ? ": " : "", st.err_msg ? st.err_msg : "unknown error");
    smhpy_set_failure("PluginError", msg);
    Py_ExitStatusException(st); /* prints "Fatal Python error: ..." and exits 1, as python3 does */
}

/* The audit hook (audit_hook, below), added once the interpreter is initialized: the events of python3's own
 * start-up (the imports of encodings, site and what it loads: ~30 opens, execs and imports, each one a tuple and a
 * call when a hook is there) come before user code and tell the hook nothing.  The first event it needs is
 * cpython.run_file/run_module/run_command, raised by Py_RunMain, or the training module's import. */
static int audit_hook(const char *event, PyObject *args, void *unused);
static void add_audit_hook(void) {
    if (PySys_AddAuditHook(audit_hook, NULL) == 0) return;
    PyErr_Clear();
    smhpy_handoff_failed("cannot add the audit hook");
}

/* What Py_BytesMain(argc, argv) does (Modules/main.c pymain_init, then Py_RunMain), through the public API so that
 * one setting differs: buffered_stdio.  Options (-u, -E, -I, -X ...) and PYTHON* variables work as in python3. */
int smhpy_run_main(int argc, char **argv) {
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre);
    PyStatus st = Py_PreInitializeFromBytesArgs(&pre, argc, argv);
    if (PyStatus_IsExit(st)) return st.exitcode;
    if (PyStatus_Exception(st)) start_failed(st, "pre-initialization");
    PyConfig c;
    PyConfig_InitPythonConfig(&c);
    c.buffered_stdio = want_buffered(); /* -u and a non-empty PYTHONUNBUFFERED can only turn buffering off */
    st = PyConfig_SetBytesArgv(&c, argc, argv);
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_IsExit(st)) return st.exitcode;
    if (PyStatus_Exception(st)) start_failed(st, "initialization");
    add_audit_hook();
    return Py_RunMain(); /* sys.path[0], the script or -m, exceptions, SystemExit, KeyboardInterrupt: python3's */
}

/* sys.path[0]: the working directory, as for python3 -m. */
static int insert_cwd(void) {
    char buf[PATH_MAX];
    if (getcwd(buf, sizeof buf) == NULL) return 0;
    PyObject *path = PySys_GetObject("path"); /* borrowed */
    PyObject *s = PyUnicode_DecodeFSDefault(buf);
    int rc = path != NULL && s != NULL && PyList_Insert(path, 0, s) == 0 ? 0 : -1;
    Py_XDECREF(s);
    return rc;
}

int smhpy_run_entry(const char *program, const char *module, const char *function) {
    PyPreConfig pre;
    PyPreConfig_InitPythonConfig(&pre); /* locale coercion and UTF-8 mode as python3 decides them */
    PyStatus st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st)) start_failed(st, "pre-initialization");
    PyConfig c;
    PyConfig_InitPythonConfig(&c); /* reads PYTHON* variables of the job's environment, like python3 */
    c.parse_argv = 0;              /* sys.argv is the toolkit's ["train"]: nothing to parse */
    c.buffered_stdio = want_buffered();
    char *argv[] = {"train", NULL}; /* the toolkit's entry is the `train` console script, called without arguments */
    st = PyConfig_SetBytesString(&c, &c.program_name, program);
    if (!PyStatus_Exception(st)) st = PyConfig_SetBytesString(&c, &c.executable, program);
    if (!PyStatus_Exception(st)) st = PyConfig_SetBytesArgv(&c, 1, argv);
    if (!PyStatus_Exception(st)) st = PyConfig_Read(&c);
    int safe_path = c.safe_path; /* PYTHONSAFEPATH: no sys.path[0] */
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_IsExit(st)) return st.exitcode;
    if (PyStatus_Exception(st)) start_failed(st, "initialization");
    add_audit_hook();

    int code = 0, kbd = 0;
    PyObject *res = NULL;
    if (safe_path || insert_cwd() == 0) {
        smhpy_program_starting();
        PyObject *m = PyImport_ImportModule(module);
        PyObject *fn = m ? PyObject_GetAttrString(m, function) : NULL;
        Py_XDECREF(m);
        res = fn ? PyObject_CallNoArgs(fn) : NULL;
        Py_XDECREF(fn);
    }
    if (res != NULL) {
        Py_DECREF(res);
    } else {
        /* As python3 -c does: SystemExit exits inside PyErr_Print with its code; anything else goes to
         * sys.excepthook (the audit hook takes the failure reason) and exits 1, KeyboardInterrupt by SIGINT. */
        kbd = PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
        PyErr_Print();
        code = 1;
    }
    /* atexit handlers, non-daemon threads and flushing, as python3 does at exit */
    if (Py_FinalizeEx() < 0) code = 120;
    if (kbd) {
        signal(SIGINT, SIG_DFL);
        kill(getpid(), SIGINT);
        code = 128 + SIGINT;
    }
    return code;
}

/* Audit events (PEP 578) are the interpreter's own account of what it does; user code cannot see or remove this
 * hook.  cpython.run_file/run_module/run_command: python3's main is about to run the program (sys.path[0] is set,
 * site imported): from here on a crash is the program's.  sys.excepthook (hook, type, value, traceback): an
 * uncaught exception is about to be printed: the failure reason. */
static int audit_hook(const char *event, PyObject *args, void *unused) {
    static int busy; /* formatting imports traceback, which raises events of its own */
    (void)unused;
    if (busy || (event[0] != 'c' && event[0] != 's')) return 0;
    if (strncmp(event, "cpython.run_", 12) == 0) {
        const char *what = event + 12;
        if (!strcmp(what, "file") || !strcmp(what, "module") || !strcmp(what, "command")) smhpy_program_starting();
        return 0;
    }
    if (strcmp(event, "sys.excepthook") != 0) return 0;
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 4) return 0;
    /* Importing traceback runs module code, which clears CPython's note of an uncaught KeyboardInterrupt (that
     * makes python3 end by SIGINT, exit status 130): keep it as it was. */
    static int *kbd_flag, looked_up;
    if (!looked_up) {
        kbd_flag = dlsym(RTLD_DEFAULT, "_Py_UnhandledKeyboardInterrupt");
        looked_up = 1;
    }
    int kbd = kbd_flag ? *kbd_flag : 0;
    busy = 1;
    char *text = smhpy_failure_text(PyTuple_GET_ITEM(args, 1), PyTuple_GET_ITEM(args, 2), PyTuple_GET_ITEM(args, 3),
                                    SMHPY_FAILURE_BUDGET);
    busy = 0;
    if (kbd_flag) *kbd_flag = kbd;
    if (text != NULL) {
        smhpy_set_failure("ExecuteUserScriptError", text);
        free(text);
    }
    return 0;
}
