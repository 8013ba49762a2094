/* Device discovery (backends.h).
 *
 * Why a separate process: a backend dlopens a driver library (NVML starts threads, may hang on a sick GPU and
 * may crash on a driver mismatch).  None of that may happen in the supervisor, which is often PID 1, nor leak
 * into the user's program.  So the supervisor forks a probe process that loads the backend plugins, calls
 * init/probe/list (and isolate), streams what they report through a pipe as records, and exits.  A crash, a
 * hang ([devices] probe_timeout_seconds) or an error becomes a fallback to the /proc and /dev scan for that
 * backend, never a failed job.  The process is only started when some backend shows signs of its hardware, so a
 * machine without accelerators pays for a few stat() calls and nothing else.
 *
 * Records: uint32 type, uint32 length, then the payload. */
#include "plugin/backends.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "job/devices.h"
#include "plugin/hostapi.h"
#include "plugin/registry.h"

enum { R_BEGIN = 1, R_CLASS, R_DEVICE, R_INFO, R_ENV, R_ISO, R_STATUS };

struct smh_device_sink {
    shx_buf out;       /* records, sent only when list() succeeds */
    smh_device *devs;  /* what list() reported, for isolate() */
    size_t n;
};

static void rec(shx_buf *b, uint32_t type, const void *data, size_t len) {
    uint32_t hdr[2] = {type, (uint32_t)len};
    shx_buf_add(b, hdr, sizeof hdr);
    if (len) shx_buf_add(b, data, len);
}

/* "a\0b" payloads */
static void rec2(shx_buf *b, uint32_t type, const char *a, const char *c) {
    shx_buf p = {0};
    shx_buf_add(&p, a, strlen(a) + 1);
    shx_buf_add(&p, c, strlen(c) + 1);
    rec(b, type, p.p, p.len);
    shx_buf_free(&p);
}

smh_status shx_sink_device_add(smh_device_sink *sink, const smh_device *dev) {
    if (!sink || !dev || dev->struct_size < offsetof(smh_device, uuid)) return SMH_E_INVAL;
    smh_device d;
    memset(&d, 0, sizeof d);
    memcpy(&d, dev, dev->struct_size < sizeof d ? dev->struct_size : sizeof d);
    d.struct_size = sizeof d;
    rec(&sink->out, R_DEVICE, &d, sizeof d);
    sink->devs = shx_xrealloc(sink->devs, (sink->n + 1) * sizeof *sink->devs);
    sink->devs[sink->n++] = d;
    return SMH_OK;
}

smh_status shx_sink_set_info(smh_device_sink *sink, const char *key, const char *value) {
    if (!sink || !key || !*key || !value || strchr(key, '=')) return SMH_E_INVAL;
    rec2(&sink->out, R_INFO, key, value);
    return SMH_OK;
}

static int valid_env_name(const char *n) {
    if (!n || !*n || (*n >= '0' && *n <= '9')) return 0;
    for (; *n; n++)
        if (!((*n >= 'A' && *n <= 'Z') || (*n >= 'a' && *n <= 'z') || (*n >= '0' && *n <= '9') || *n == '_'))
            return 0;
    return 1;
}

smh_status shx_sink_set_env(smh_device_sink *sink, const char *name, const char *value) {
    if (!sink || !valid_env_name(name) || !value) return SMH_E_INVAL;
    rec2(&sink->out, R_ENV, name, value);
    return SMH_OK;
}

/* ---- the probe process ------------------------------------------------------------------------------------- */
static void write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) _exit(3);
        p += w;
        len -= (size_t)w;
    }
}

static void send_status(int fd, shx_backend_state st, const char *msg) {
    shx_buf b = {0};
    uint32_t s = st;
    shx_buf_add(&b, &s, sizeof s);
    shx_buf_adds(&b, msg ? msg : "");
    shx_buf_addc(&b, '\0');
    shx_buf o = {0};
    rec(&o, R_STATUS, b.p, b.len);
    write_all(fd, o.p, o.len);
    shx_buf_free(&b);
    shx_buf_free(&o);
}

/* Ranks for isolate(): the override, else one per visible device (GPUs) or core (Neuron). */
static int units(const smh_device *d, size_t n, uint32_t cls) {
    int u = 0;
    for (size_t i = 0; i < n; i++)
        if (d[i].flags & SMH_DEVICE_VISIBLE) {
            if (cls == SMH_DEVICE_NEURON) u += (int)d[i].visible_cores;
            else if (!(d[i].flags & SMH_DEVICE_MIG_CHILD)) u++;
        }
    return u;
}

static void probe_one(int fd, shx_registry *reg, const char *name, const shx_config *cfg, int nranks) {
    shx_buf b = {0};
    rec(&b, R_BEGIN, name, strlen(name) + 1);
    write_all(fd, b.p, b.len);
    shx_buf_free(&b);
    char why[1536] = "", err[2048] = "";
    const shx_plugin *p = shx_registry_find(reg, name, why, sizeof why);
    if (!p) {
        snprintf(err, sizeof err, "no usable backend plugin '%s': %s", name, why);
        send_status(fd, SHX_BK_FALLBACK, err);
        return;
    }
    if (!p->has_backend) {
        snprintf(err, sizeof err, "plugin '%s' (%s) is a %s, not a device backend; remove it from [devices] backends",
                 name, p->path, shx_kind_str(p->desc.kind));
        send_status(fd, SHX_BK_FALLBACK, err);
        return;
    }
    uint32_t cls = p->backend.device_class == SMH_DEVICE_NEURON ? SMH_DEVICE_NEURON : SMH_DEVICE_GPU;
    shx_buf c = {0};
    rec(&c, R_CLASS, &cls, sizeof cls);
    write_all(fd, c.p, c.len);
    shx_buf_free(&c);
    void *state = NULL;
    if (p->desc.init) {
        smh_status s = p->desc.init(shx_host_api(), &state, err, sizeof err);
        if (s < 0) {
            char m[2200 + 64];
            snprintf(m, sizeof m, "plugin '%s' failed to initialize (status %d): %s", name, s,
                     err[0] ? err : "no message");
            send_status(fd, SHX_BK_FALLBACK, m);
            return;
        }
    }
    err[0] = '\0';
    smh_status s = p->backend.probe(state, err, sizeof err);
    if (s == SMH_E_NOTFOUND) {
        send_status(fd, SHX_BK_ABSENT, err[0] ? err : "no devices");
    } else if (s < 0) {
        send_status(fd, SHX_BK_FALLBACK, err[0] ? err : "probe failed without a message");
    } else {
        smh_device_sink sink = {0};
        err[0] = '\0';
        s = p->backend.list(state, &sink, err, sizeof err);
        if (s < 0) {
            send_status(fd, SHX_BK_FALLBACK, err[0] ? err : "list failed without a message");
        } else {
            if (cfg->device_isolate && p->backend.isolate) {
                int n = nranks > 0 ? nranks : units(sink.devs, sink.n, cls);
                for (int r = 0; r < n; r++) {
                    char vname[128] = "", value[4096] = "";
                    smh_status is = p->backend.isolate(state, sink.devs, sink.n, r, n, vname, sizeof vname, value,
                                                       sizeof value);
                    if (is < 0 || !valid_env_name(vname)) {
                        shx_warn("devices: %s: no per-process visibility for local rank %d of %d (status %d): every "
                                 "rank sees every device", name, r, n, is);
                        break;
                    }
                    char *line = shx_xasprintf("%d %s=%s", r, vname, value);
                    rec(&sink.out, R_ISO, line, strlen(line) + 1);
                    free(line);
                }
            }
            write_all(fd, sink.out.p, sink.out.len);
            send_status(fd, SHX_BK_OK, "");
        }
        shx_buf_free(&sink.out);
        free(sink.devs);
    }
    if (p->desc.fini) p->desc.fini(state);
}

/* ---- the supervisor side ----------------------------------------------------------------------------------- */
static shx_backend_report *find_report(shx_devview *v, const char *name) {
    for (size_t i = 0; i < v->nbackends; i++)
        if (!strcmp(v->backends[i].name, name)) return &v->backends[i];
    return NULL;
}

static void env_default(shx_devview *v, const char *name, const char *value) {
    if (v->env_defaults.n && shx_env_lookup(v->env_defaults.v, name)) return; /* the first backend to ask wins */
    shx_strvec_take(&v->env_defaults, shx_xasprintf("%s=%s", name, value));
}

/* Apply the records in data[0..len).  *cur is the backend being reported on. */
static void parse(shx_devview *v, const char *data, size_t len, shx_backend_report **cur) {
    size_t off = 0;
    while (off + 8 <= len) {
        uint32_t hdr[2];
        memcpy(hdr, data + off, sizeof hdr);
        if (off + 8 + hdr[1] > len) break;
        const char *p = data + off + 8;
        size_t pl = hdr[1];
        off += 8 + pl;
        if (hdr[0] == R_BEGIN) {
            *cur = pl && p[pl - 1] == '\0' ? find_report(v, p) : NULL;
            continue;
        }
        shx_backend_report *r = *cur;
        if (!r) continue;
        if (hdr[0] == R_CLASS && pl == sizeof(uint32_t))
            memcpy(&r->device_class, p, sizeof(uint32_t));
        else if (hdr[0] == R_DEVICE && pl == sizeof(smh_device))
            shx_devview_add(v, (const smh_device *)(const void *)p, pl, r->name);
        else if ((hdr[0] == R_INFO || hdr[0] == R_ENV) && pl >= 2 && p[pl - 1] == '\0') {
            const char *a = p, *b = memchr(p, '\0', pl);
            if (!b || b + 1 >= p + pl) continue;
            if (hdr[0] == R_INFO) shx_strvec_take(&r->info, shx_xasprintf("%s=%s", a, b + 1));
            else env_default(v, a, b + 1);
        } else if (hdr[0] == R_ISO && pl && p[pl - 1] == '\0') {
            shx_strvec_push(&v->isolation, p);
        } else if (hdr[0] == R_STATUS && pl >= sizeof(uint32_t) + 1 && p[pl - 1] == '\0') {
            uint32_t st;
            memcpy(&st, p, sizeof st);
            r->state = st <= SHX_BK_FALLBACK ? (shx_backend_state)st : SHX_BK_FALLBACK;
            r->reported = 1;
            snprintf(r->message, sizeof r->message, "%s", p + sizeof st);
            *cur = NULL;
        }
    }
}

void shx_backends_discover(shx_devview *v, const shx_config *cfg, char *const *env, int nranks) {
    shx_strvec names = {0};
    shx_config_device_backends(cfg, &names);
    v->backends = shx_xcalloc(names.n ? names.n : 1, sizeof *v->backends);
    shx_strvec load = {0};
    shx_device_scan_begin(); /* the signs below read /dev once for every backend */
    for (size_t i = 0; i < names.n; i++) {
        if (find_report(v, names.v[i])) continue; /* listed twice */
        shx_backend_report *r = &v->backends[v->nbackends++];
        snprintf(r->name, sizeof r->name, "%s", names.v[i]);
        r->device_class = !strcmp(r->name, "neuron") ? SMH_DEVICE_NEURON : SMH_DEVICE_GPU;
        r->state = SHX_BK_FALLBACK; /* until the probe process says otherwise */
        int signs = shx_device_signs(r->name, env, r->message, sizeof r->message);
        if (signs == 0) r->state = SHX_BK_SKIPPED;
        else shx_strvec_push(&load, r->name);
    }
    shx_device_scan_end(); /* the probe process and the fallback counts look afresh */
    shx_strvec_free(&names);

    if (load.n) {
        int fds[2] = {-1, -1};
        pid_t pid = -1;
        if (pipe2(fds, O_CLOEXEC) == 0) {
            fflush(stdout);
            fflush(stderr);
            pid = fork();
            if (pid == 0) {
                close(fds[0]);
                signal(SIGPIPE, SIG_IGN);
                shx_registry reg;
                shx_registry_init(&reg, cfg);
                for (size_t i = 0; i < load.n; i++) probe_one(fds[1], &reg, load.v[i], cfg, nranks);
                _exit(0);
            }
        }
        int fork_errno = errno;
        if (fds[1] >= 0) close(fds[1]);
        const char *trouble = NULL;
        char tbuf[256];
        if (pid < 0) {
            snprintf(tbuf, sizeof tbuf, "cannot start the device probe process: %s", strerror(fork_errno));
            trouble = tbuf;
            if (fds[0] >= 0) close(fds[0]);
        } else {
            shx_buf in = {0};
            int limit = cfg->device_probe_timeout_seconds > 0 ? cfg->device_probe_timeout_seconds : 60;
            int64_t deadline = shx_now_ms() + (int64_t)limit * 1000;
            for (;;) {
                int64_t left = deadline - shx_now_ms();
                if (left <= 0) {
                    kill(pid, SIGKILL);
                    snprintf(tbuf, sizeof tbuf, "the device probe did not finish within %d s (a hung driver?); "
                             "killed it ([devices] probe_timeout_seconds)", limit);
                    trouble = tbuf;
                    break;
                }
                struct pollfd pf = {.fd = fds[0], .events = POLLIN};
                int pr = poll(&pf, 1, left > INT_MAX ? INT_MAX : (int)left);
                if (pr < 0 && errno == EINTR) continue;
                if (pr <= 0) continue;
                char chunk[8192];
                ssize_t n = read(fds[0], chunk, sizeof chunk);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                shx_buf_add(&in, chunk, (size_t)n);
            }
            close(fds[0]);
            int status = 0;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            if (!trouble && WIFSIGNALED(status)) {
                snprintf(tbuf, sizeof tbuf, "the device probe process was killed by signal %d (%s) while this "
                         "backend was running", WTERMSIG(status), strsignal(WTERMSIG(status)));
                trouble = tbuf;
            } else if (!trouble && WIFEXITED(status) && WEXITSTATUS(status)) {
                snprintf(tbuf, sizeof tbuf, "the device probe process exited with status %d while this backend was "
                         "running", WEXITSTATUS(status));
                trouble = tbuf;
            }
            shx_backend_report *cur = NULL;
            parse(v, in.p ? in.p : "", in.len, &cur);
            shx_buf_free(&in);
        }
        for (size_t i = 0; i < load.n; i++) {
            shx_backend_report *r = find_report(v, load.v[i]);
            if (!r->reported) { /* no status: the probe died or hung while this backend ran, or never started */
                r->state = SHX_BK_FALLBACK;
                snprintf(r->message, sizeof r->message, "%s", trouble ? trouble : "the backend reported nothing");
                /* devices it reported before dying cannot be trusted */
                size_t k = 0;
                for (size_t j = 0; j < v->n; j++)
                    if (strcmp(v->devs[j].backend, r->name)) v->devs[k++] = v->devs[j];
                v->n = k;
            }
        }
    }
    shx_strvec_free(&load);
    for (size_t i = 0; i < v->nbackends; i++) {
        shx_backend_report *r = &v->backends[i];
        if (r->state != SHX_BK_FALLBACK) continue;
        /* library, then today's /proc and /dev scan, then 0 */
        r->fallback_count = !strcmp(r->name, "nvidia")   ? shx_num_gpus()
                            : !strcmp(r->name, "neuron") ? shx_num_neurons()
                                                         : 0;
    }
    shx_devview_count(v);
}
