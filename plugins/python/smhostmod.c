/* The built-in `smhost` module: the job as Python values, straight from the host, without parsing SM_*
 * environment variables.  Built when user code first imports it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyplugin.h"

#include <smhost/device.h>

static const smh_host_api *g_host;
static const smh_job *g_job;

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

static PyObject *path_str(const char *s) {
    if (s == NULL) Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(s);
}

static PyObject *text_str(const char *s) {
    if (s == NULL) Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "surrogateescape");
}

/* PyModule_AddObject that always consumes the reference. */
static int add(PyObject *m, const char *name, PyObject *v) {
    if (v == NULL) return -1;
    if (PyModule_AddObjectRef(m, name, v) != 0) {
        Py_DECREF(v);
        return -1;
    }
    Py_DECREF(v);
    return 0;
}

static PyObject *hyperparameters(void) {
    PyObject *json = PyImport_ImportModule("json");
    PyObject *loads = json ? PyObject_GetAttrString(json, "loads") : NULL;
    Py_XDECREF(json);
    if (loads == NULL) return NULL;
    PyObject *d = PyDict_New();
    size_t n = g_host->hp_count(g_job);
    for (size_t i = 0; d != NULL && i < n; i++) {
        const char *name = g_host->hp_name(g_job, i);
        const char *text = NULL;
        smh_status st = g_host->hp_json(g_job, name, &text);
        if (st != SMH_OK || text == NULL) {
            PyErr_Format(PyExc_RuntimeError, "smhost: the host has no JSON for hyperparameter %s (status %d)",
                         name, st);
            Py_CLEAR(d);
            break;
        }
        PyObject *k = text_str(name);
        PyObject *v = k ? PyObject_CallFunction(loads, "s", text) : NULL;
        if (v == NULL || PyDict_SetItem(d, k, v) != 0) Py_CLEAR(d);
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    Py_DECREF(loads);
    return d;
}

static PyObject *channels(void) {
    PyObject *d = PyDict_New();
    size_t n = g_host->channel_count(g_job);
    for (size_t i = 0; d != NULL && i < n; i++) {
        const char *name = g_host->channel_name(g_job, i);
        PyObject *k = text_str(name);
        PyObject *v = k ? path_str(g_host->channel_dir(g_job, name)) : NULL;
        if (v == NULL || PyDict_SetItem(d, k, v) != 0) Py_CLEAR(d);
        Py_XDECREF(k);
        Py_XDECREF(v);
    }
    return d;
}

static PyObject *hosts(void) {
    size_t n = g_host->host_count(g_job);
    PyObject *l = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; l != NULL && i < n; i++) {
        PyObject *v = text_str(g_host->host_name(g_job, i));
        if (v == NULL) {
            Py_CLEAR(l);
            break;
        }
        PyList_SET_ITEM(l, (Py_ssize_t)i, v);
    }
    return l;
}

/* The job's devices (host API v1.1).  An older host has no device calls: the list is empty. */
static PyObject *devices(void) {
    PyObject *list = PyList_New(0);
    if (!list || !SMH_HOST_HAS(g_host, device_count) || !SMH_HOST_HAS(g_host, device_get)) return list;
    static const char *const health[] = {"ok", "degraded", "failed"};
    size_t n = g_host->device_count(g_job);
    for (size_t i = 0; i < n; i++) {
        const smh_device *d = g_host->device_get(g_job, i);
        if (!d) break;
        PyObject *o = Py_BuildValue(
            "{s:s,s:i,s:N,s:N,s:N,s:N,s:s,s:N,s:O,s:N,s:I,s:I}", "backend", d->backend, "index", (int)d->index, "uuid",
            text_str(d->uuid[0] ? d->uuid : NULL), "name", text_str(d->name[0] ? d->name : NULL), "memory_total",
            d->memory_total ? PyLong_FromUnsignedLongLong((unsigned long long)d->memory_total) : Py_NewRef(Py_None),
            "pci_bus_id", text_str(d->pci_bus_id[0] ? d->pci_bus_id : NULL), "health",
            health[d->health <= SMH_HEALTH_FAILED ? d->health : SMH_HEALTH_FAILED], "reason",
            text_str(d->reason[0] ? d->reason : NULL), "visible", (d->flags & SMH_DEVICE_VISIBLE) ? Py_True : Py_False,
            "parent", (d->flags & SMH_DEVICE_MIG_CHILD) ? PyLong_FromLong(d->parent) : Py_NewRef(Py_None), "cores",
            (unsigned)d->cores, "visible_cores", (unsigned)d->visible_cores);
        if (!o || PyList_Append(list, o) < 0) {
            Py_XDECREF(o);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(o);
    }
    return list;
}

static PyObject *smhost_init(void) {
    if (g_host == NULL || g_job == NULL) {
        PyErr_SetString(PyExc_ImportError, "smhost: no job (this module exists only inside `smhost train`)");
        return NULL;
    }
    PyObject *m = PyModule_Create(&smhost_def);
    if (m == NULL) return NULL;
    static const struct {
        const char *name;
        smh_path which;
    } paths[] = {
        {"model_dir", SMH_PATH_MODEL},
        {"output_data_dir", SMH_PATH_OUTPUT_DATA},
        {"output_dir", SMH_PATH_OUTPUT},
        {"output_intermediate_dir", SMH_PATH_INTERMEDIATE},
        {"input_dir", SMH_PATH_INPUT},
        {"input_config_dir", SMH_PATH_INPUT_CONFIG},
        {"input_data_dir", SMH_PATH_INPUT_DATA},
        {"code_dir", SMH_PATH_CODE},
        {"checkpoint_dir", SMH_PATH_CHECKPOINTS},
    };
    int bad = 0; /* stop at the first error: no Python call with an exception set */
    for (size_t i = 0; !bad && i < sizeof(paths) / sizeof(paths[0]); i++)
        bad = add(m, paths[i].name, path_str(g_host->job_path(g_job, paths[i].which)));
    bad = bad || add(m, "hyperparameters", hyperparameters());
    bad = bad || add(m, "channels", channels());
    bad = bad || add(m, "hosts", hosts());
    bad = bad || add(m, "current_host", text_str(g_host->current_host(g_job)));
    bad = bad || add(m, "master_host", text_str(g_host->master_host(g_job)));
    bad = bad || add(m, "is_master", PyBool_FromLong(g_host->is_master(g_job)));
    bad = bad || add(m, "num_cpus", PyLong_FromLong(g_host->num_cpus(g_job)));
    bad = bad || add(m, "num_gpus", PyLong_FromLong(g_host->num_gpus(g_job)));
    bad = bad || add(m, "num_neurons", PyLong_FromLong(g_host->num_neurons(g_job)));
    bad = bad || add(m, "devices", devices());
    if (bad) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

int smhpy_module_register(const smh_host_api *host, const smh_job *job) {
    g_host = host;
    g_job = job;
    return PyImport_AppendInittab("smhost", smhost_init) == 0 ? SMH_OK : SMH_E_FAIL;
}
