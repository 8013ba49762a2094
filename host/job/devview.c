/* The job's device view (devview.h): counting, the health verdict, the startup log and the JSON of
 * `smhost devices`.  No plugin code runs here: the backends reported in their own process (plugin/backends.c). */
#include "job/devview.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void shx_devview_free(shx_devview *v) {
    free(v->devs);
    for (size_t i = 0; i < v->nbackends; i++) shx_strvec_free(&v->backends[i].info);
    free(v->backends);
    shx_strvec_free(&v->env_defaults);
    shx_strvec_free(&v->isolation);
    memset(v, 0, sizeof *v);
}

void shx_devview_add(shx_devview *v, const smh_device *d, size_t size, const char *backend) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->devs = shx_xrealloc(v->devs, v->cap * sizeof *v->devs);
    }
    smh_device *o = &v->devs[v->n++];
    memset(o, 0, sizeof *o);
    memcpy(o, d, size < sizeof *o ? size : sizeof *o);
    o->struct_size = sizeof *o;
    /* strings from another build may lack their NUL: force one */
    o->uuid[sizeof o->uuid - 1] = o->name[sizeof o->name - 1] = '\0';
    o->pci_bus_id[sizeof o->pci_bus_id - 1] = o->reason[sizeof o->reason - 1] = '\0';
    snprintf(o->backend, sizeof o->backend, "%s", backend);
    if (o->health > SMH_HEALTH_FAILED) o->health = SMH_HEALTH_FAILED;
}

void shx_devview_count(shx_devview *v) {
    v->num_gpus = v->num_neurons = 0;
    for (size_t b = 0; b < v->nbackends; b++) {
        const shx_backend_report *r = &v->backends[b];
        if (r->state == SHX_BK_FALLBACK) {
            if (r->device_class == SMH_DEVICE_NEURON) v->num_neurons += r->fallback_count;
            else v->num_gpus += r->fallback_count;
        }
    }
    for (size_t i = 0; i < v->n; i++) {
        const smh_device *d = &v->devs[i];
        if (!(d->flags & SMH_DEVICE_VISIBLE)) continue;
        if (d->device_class == SMH_DEVICE_GPU && !(d->flags & SMH_DEVICE_MIG_CHILD)) v->num_gpus++;
        else if (d->device_class == SMH_DEVICE_NEURON) v->num_neurons += (int)d->visible_cores;
    }
}

const char *shx_devview_class_word(uint32_t device_class) {
    return device_class == SMH_DEVICE_NEURON ? "Neuron device" : "GPU";
}

static void describe(shx_buf *b, const smh_device *d) {
    if (d->flags & SMH_DEVICE_MIG_CHILD)
        shx_buf_printf(b, "%s MIG device %d of GPU %d", d->backend, d->index, d->parent);
    else
        shx_buf_printf(b, "%s %s %d", d->backend, shx_devview_class_word(d->device_class), d->index);
    shx_buf_printf(b, " (%s)", d->uuid[0] ? d->uuid : "no UUID");
}

int shx_devview_failed(const shx_devview *v, char **msg) {
    shx_buf b = {0};
    int n = 0;
    for (size_t i = 0; i < v->n; i++) {
        const smh_device *d = &v->devs[i];
        if (!(d->flags & SMH_DEVICE_VISIBLE) || d->health != SMH_HEALTH_FAILED) continue;
        if (n++) shx_buf_adds(&b, "\n");
        describe(&b, d);
        shx_buf_printf(&b, ": %s", d->reason[0] ? d->reason : "failed");
    }
    if (msg) *msg = shx_buf_steal(&b);
    else shx_buf_free(&b);
    return n;
}

static void human_bytes(uint64_t n, char *buf, size_t len) {
    if (!n) snprintf(buf, len, "memory unknown");
    else if (n >= (1ULL << 30)) snprintf(buf, len, "%.1f GiB", (double)n / (double)(1ULL << 30));
    else snprintf(buf, len, "%.0f MiB", (double)n / (double)(1ULL << 20));
}

static const char *health_word(uint32_t h) {
    return h == SMH_HEALTH_OK ? "ok" : h == SMH_HEALTH_DEGRADED ? "degraded" : "failed";
}

void shx_devview_log(const shx_devview *v) {
    for (size_t b = 0; b < v->nbackends; b++) {
        const shx_backend_report *r = &v->backends[b];
        if (r->state == SHX_BK_FALLBACK)
            shx_warn("devices: %s: %s; counting %d %s from the /proc and /dev scan instead", r->name, r->message,
                     r->fallback_count, r->device_class == SMH_DEVICE_NEURON ? "NeuronCores" : "GPUs");
        else if (r->state == SHX_BK_ABSENT || r->state == SHX_BK_SKIPPED)
            shx_debug("devices: %s: %s", r->name, r->message);
    }
    for (size_t i = 0; i < v->n; i++) {
        const smh_device *d = &v->devs[i];
        shx_buf b = {0};
        char mem[32];
        human_bytes(d->memory_total, mem, sizeof mem);
        describe(&b, d);
        shx_buf_printf(&b, ": %s, %s", d->name[0] ? d->name : "unnamed", mem);
        if (d->cores) shx_buf_printf(&b, ", %u cores (%u visible)", d->cores, d->visible_cores);
        if (d->pci_bus_id[0]) shx_buf_printf(&b, ", bus %s", d->pci_bus_id);
        if (!(d->flags & SMH_DEVICE_VISIBLE)) shx_buf_adds(&b, ", not visible to the job");
        shx_buf_printf(&b, ", %s", health_word(d->health));
        if (d->reason[0]) shx_buf_printf(&b, ": %s", d->reason);
        char *line = shx_buf_steal(&b);
        if (d->health == SMH_HEALTH_OK) shx_info("device: %s", line);
        else shx_warn("device: %s", line);
        free(line);
    }
}

static pyj_value *str_or_null(const char *s) {
    return s && *s ? pyj_string(s) : pyj_null();
}

pyj_value *shx_devview_json(const shx_devview *v) {
    pyj_value *root = pyj_dict(), *bl = pyj_list(), *dl = pyj_list();
    static const char *const states[] = {"skipped", "ok", "absent", "fallback"};
    for (size_t b = 0; b < v->nbackends; b++) {
        const shx_backend_report *r = &v->backends[b];
        pyj_value *o = pyj_dict();
        pyj_dict_set(o, "name", pyj_string(r->name));
        pyj_dict_set(o, "state", pyj_string(states[r->state]));
        pyj_dict_set(o, "message", str_or_null(r->message));
        for (size_t k = 0; k < r->info.n; k++) {
            const char *kv = r->info.v[k], *eq = strchr(kv, '=');
            if (eq) pyj_dict_setn(o, kv, (size_t)(eq - kv), pyj_string(eq + 1));
        }
        if (r->state == SHX_BK_FALLBACK) pyj_dict_set(o, "fallback_count", pyj_int_ll(r->fallback_count));
        pyj_list_append(bl, o);
    }
    for (size_t i = 0; i < v->n; i++) {
        const smh_device *d = &v->devs[i];
        pyj_value *o = pyj_dict();
        pyj_dict_set(o, "backend", pyj_string(d->backend));
        pyj_dict_set(o, "class", pyj_string(d->device_class == SMH_DEVICE_NEURON ? "neuron" : "gpu"));
        pyj_dict_set(o, "index", pyj_int_ll(d->index));
        pyj_dict_set(o, "uuid", str_or_null(d->uuid));
        pyj_dict_set(o, "name", str_or_null(d->name));
        pyj_dict_set(o, "memory_total", d->memory_total ? pyj_int_ll((long long)d->memory_total) : pyj_null());
        pyj_dict_set(o, "pci_bus_id", str_or_null(d->pci_bus_id));
        pyj_dict_set(o, "health", pyj_string(health_word(d->health)));
        pyj_dict_set(o, "reason", str_or_null(d->reason));
        pyj_dict_set(o, "visible", pyj_bool((d->flags & SMH_DEVICE_VISIBLE) != 0));
        pyj_dict_set(o, "mig", pyj_bool((d->flags & (SMH_DEVICE_MIG_ENABLED)) != 0));
        pyj_dict_set(o, "parent", (d->flags & SMH_DEVICE_MIG_CHILD) ? pyj_int_ll(d->parent) : pyj_null());
        if (d->device_class == SMH_DEVICE_NEURON) {
            pyj_dict_set(o, "cores", pyj_int_ll(d->cores));
            pyj_dict_set(o, "visible_cores", pyj_int_ll(d->visible_cores));
        }
        pyj_list_append(dl, o);
    }
    pyj_dict_set(root, "backends", bl);
    pyj_dict_set(root, "devices", dl);
    /* the driver and CUDA versions at the top too, where a backend knew them */
    for (size_t b = 0; b < v->nbackends; b++)
        for (size_t k = 0; k < v->backends[b].info.n; k++) {
            const char *kv = v->backends[b].info.v[k], *eq = strchr(kv, '=');
            if (!eq || (strncmp(kv, "driver_version=", 15) && strncmp(kv, "cuda_version=", 13))) continue;
            char key[32];
            snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
            if (!pyj_dict_get(root, key)) pyj_dict_set(root, key, pyj_string(eq + 1));
        }
    if (!pyj_dict_get(root, "driver_version")) pyj_dict_set(root, "driver_version", pyj_null());
    if (!pyj_dict_get(root, "cuda_version")) pyj_dict_set(root, "cuda_version", pyj_null());
    pyj_dict_set(root, "num_gpus", pyj_int_ll(v->num_gpus));
    pyj_dict_set(root, "num_neurons", pyj_int_ll(v->num_neurons));
    if (v->isolation.n) {
        pyj_value *iso = pyj_dict();
        for (size_t i = 0; i < v->isolation.n; i++) {
            const char *s = v->isolation.v[i], *sp = strchr(s, ' '), *eq = sp ? strchr(sp, '=') : NULL;
            if (!eq) continue;
            char rank[16];
            snprintf(rank, sizeof rank, "%.*s", (int)(sp - s), s);
            pyj_value *r = pyj_dict_get(iso, rank);
            if (!r) {
                pyj_dict_set(iso, rank, pyj_dict());
                r = pyj_dict_get(iso, rank);
            }
            pyj_dict_setn(r, sp + 1, (size_t)(eq - sp - 1), pyj_string(eq + 1));
        }
        pyj_dict_set(root, "isolation", iso);
    }
    return root;
}

const char *shx_devview_rank_env(const shx_devview *v, int rank, const char *name) {
    char prefix[96];
    int n = snprintf(prefix, sizeof prefix, "%d %s=", rank, name);
    for (size_t i = 0; i < v->isolation.n; i++)
        if (!strncmp(v->isolation.v[i], prefix, (size_t)n)) return v->isolation.v[i] + n;
    return NULL;
}
