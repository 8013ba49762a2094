/* The built-in `smhost` module: the job as Python values, straight from the host, without parsing SM_*
 * environment variables.  The python runner hands the job over as one JSON object (handoff.h) whose members are
 * the module's attributes; it is decoded when user code first imports the module, so a program that never
 * does pays nothing. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "python/smhpy.h"

static const char *g_json;
static size_t g_json_len;

PyDoc_STRVAR(smhost_doc,
             "The SageMaker training job this program runs in (smhost's embedded Python).\n\n"
             "hyperparameters  dict: name -> decoded value (int, float, bool, str, list, dict, None)\n"
             "channels         dict: channel name -> its directory\n"
             "model_dir, output_data_dir, output_dir, input_dir, input_data_dir, input_config_dir,\n"
             "code_dir, checkpoint_dir, output_intermediate_dir   str paths\n"
             "hosts (list), current_host, master_host (str), is_master (bool),\n"
             "num_cpus, num_gpus, num_neurons (int)\n"
             "devices          list of dicts, one per GPU or accelerator the device backends found (also hidden\n"
             "                 and unhealthy ones): backend, index, uuid, name, memory_total (bytes or None),\n"
             "                 pci_bus_id, health ('ok', 'degraded', 'failed'), reason, visible, parent (MIG), cores");

static struct PyModuleDef smhost_def = {
    PyModuleDef_HEAD_INIT, "smhost", smhost_doc, -1, NULL, NULL, NULL, NULL, NULL,
};

static PyObject *smhost_init(void) {
    if (g_json == NULL) {
        PyErr_SetString(PyExc_ImportError, "smhost: no job (this module exists only inside `smhost train`)");
        return NULL;
    }
    /* Paths are file-system bytes: decoded as os.fsdecode() would (surrogateescape), like every path in Python. */
    PyObject *text = PyUnicode_DecodeUTF8(g_json, (Py_ssize_t)g_json_len, "surrogateescape");
    PyObject *json = text ? PyImport_ImportModule("json") : NULL;
    PyObject *d = json ? PyObject_CallMethod(json, "loads", "O", text) : NULL;
    Py_XDECREF(json);
    Py_XDECREF(text);
    if (d == NULL) return NULL;
    if (!PyDict_Check(d)) {
        Py_DECREF(d);
        PyErr_SetString(PyExc_ImportError, "smhost: the job handed over by the python runner is no JSON object");
        return NULL;
    }
    PyObject *m = PyModule_Create(&smhost_def);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (m != NULL && PyDict_Next(d, &pos, &key, &value)) {
        const char *name = PyUnicode_AsUTF8(key);
        if (name == NULL || PyModule_AddObjectRef(m, name, value) != 0) Py_CLEAR(m);
    }
    Py_DECREF(d);
    return m;
}

int smhpy_module_register(const char *job_json, size_t len) {
    g_json = job_json;
    g_json_len = len;
    return PyImport_AppendInittab("smhost", smhost_init);
}
