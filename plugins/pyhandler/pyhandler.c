/* pyhandler: SageMaker Python inference handlers (inference.py) served by smhost serve.
 *
 * The interpreter is started in init(), which runs once in the serving zygote; the model is usually loaded there
 * too, and every worker forked afterwards owns a copy-on-write copy of that interpreter.  The handler contract
 * and the codecs are in runtime.py, assembled into this object; this file moves bytes between the host and it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <smhost/plugin.h>

/* runtime.py, NUL-terminated */
__asm__(".section .rodata\n"
        ".globl pyh_runtime_src\n"
        ".hidden pyh_runtime_src\n"
        "pyh_runtime_src:\n"
        ".incbin \"plugins/pyhandler/runtime.py\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char pyh_runtime_src[];

static const smh_host_api *H;
static PyObject *g_load, *g_invoke;

/* "ValueError: message" of the pending exception (cleared; its traceback printed for unexpected ones). */
static smh_status take_error(const char *what, char *err, size_t errlen) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    smh_status st = PyErr_GivenExceptionMatches(type, PyExc_MemoryError) ? SMH_E_NOMEM : SMH_E_FAIL;
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    if (!msg) PyErr_Clear();
    snprintf(err, errlen, "%s: %s: %s", what, type ? ((PyTypeObject *)type)->tp_name : "error", msg ? msg : "?");
    Py_XDECREF(s);
    PyErr_Restore(type, value, tb);
    PyErr_Print();
    fflush(stderr);
    return st;
}

static void before_fork(void) {
    PyOS_BeforeFork();
}
static void after_fork_parent(void) {
    PyOS_AfterFork_Parent();
}
static void after_fork_child(void) {
    PyOS_AfterFork_Child();
}

static smh_status init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    H = host;
    *state = NULL;
    /* Extension modules (numpy) resolve libpython's symbols globally: promote it from RTLD_LOCAL. */
    Dl_info info;
    if (dladdr((void *)Py_InitializeFromConfig, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0; /* signals belong to smhost */
    config.parse_argv = 0;
    config.buffered_stdio = 0; /* a handler's print() reaches the log at once, as with PYTHONUNBUFFERED */
    PyStatus ps = PyConfig_SetBytesString(&config, &config.program_name, "/usr/bin/python3");
    if (!PyStatus_Exception(ps)) ps = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    /* The host hands us default dispositions; python3 ignores SIGPIPE at start-up so that a write to a closed
     * pipe raises BrokenPipeError instead of killing the process, and handlers expect that.  subprocess puts the
     * default back in the programs a handler starts. */
    signal(SIGPIPE, SIG_IGN);
    if (PyStatus_Exception(ps)) {
        snprintf(err, errlen, "cannot start the Python interpreter: %s", ps.err_msg ? ps.err_msg : "?");
        return SMH_E_FAIL;
    }
    PyObject *code = Py_CompileString(pyh_runtime_src, "<smhost pyhandler runtime>", Py_file_input);
    PyObject *mod = code ? PyImport_ExecCodeModule("_smhost_pyhandler", code) : NULL;
    Py_XDECREF(code);
    if (!mod) return take_error("pyhandler runtime", err, errlen);
    g_load = PyObject_GetAttrString(mod, "load_model");
    g_invoke = PyObject_GetAttrString(mod, "invoke");
    Py_DECREF(mod);
    if (!g_load || !g_invoke) return take_error("pyhandler runtime", err, errlen);
    /* Workers are forked from the process that holds this interpreter: keep its state right across fork(). */
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    return SMH_OK;
}

static smh_status load(void *state, const char *model_dir, void **model, char *err, size_t errlen) {
    PyObject *h = PyObject_CallFunction(g_load, "s", model_dir);
    if (!h) return take_error("model_fn", err, errlen);
    *model = h;
    return SMH_OK;
}

static smh_status invoke(void *state, void *model, const smh_request *req, smh_response *resp, char *err,
                         size_t errlen) {
    PyObject *r = PyObject_CallFunction(g_invoke, "Oy#sss", (PyObject *)model, (const char *)req->body,
                                        (Py_ssize_t)req->body_len, req->content_type, req->accept,
                                        req->custom_attributes);
    if (!r) return take_error("pyhandler", err, errlen);
    int status;
    const char *body, *ct, *attrs, *msg;
    Py_ssize_t len;
    smh_status st = SMH_OK;
    if (!PyArg_ParseTuple(r, "iy#sss", &status, &body, &len, &ct, &attrs, &msg)) {
        st = take_error("pyhandler", err, errlen);
    } else if (status >= 400) {
        H->resp_set_status(resp, status);
        snprintf(err, errlen, "%s", msg);
        st = SMH_E_FAIL;
    } else {
        if (*ct && H->resp_set_content_type(resp, ct) != SMH_OK)
            H->log("pyhandler", SMH_LOG_WARNING, "ignoring a content type with a line break");
        if (*attrs) H->resp_set_custom_attributes(resp, attrs);
        st = H->resp_write(resp, body, (size_t)len);
    }
    Py_DECREF(r);
    return st;
}

static void unload(void *state, void *model) {
    Py_XDECREF((PyObject *)model);
    PyGC_Collect();
}

static const smh_handler_ops ops = {
    .struct_size = sizeof(smh_handler_ops), .flags = 0, .load = load, .invoke = invoke, .unload = unload};

SMH_PLUGIN_DEFINE(.name = "pyhandler", .version = "1.0",
                  .description = "SageMaker Python inference handlers (inference.py: model_fn ... transform_fn)",
                  .kind = SMH_KIND_HANDLER, .init = init, .handler = &ops)
