/* smhost serve: the front process (see serve.h and docs/serving.md).
 *
 * libmicrohttpd runs one thread per connection.  /ping, /execution-parameters, 404 and 413 are answered here
 * without touching a worker, so readiness answers stay fast while every worker is busy.  An invocation takes an
 * idle worker (a socket to a process forked by the zygote), sends it one INVOKE frame and waits for the REPLY
 * until the request's deadline; a worker that overruns it is killed and replaced (504), one that dies answers
 * 500 and is replaced.  The main thread owns process management: it reads the zygote's control socket, worker
 * READY frames and SIGTERM/SIGINT (signalfd), respawns dead workers and runs the graceful shutdown. */
#include "serve.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exitcodes.h"
#include "log.h"
#include "serve_proto.h"
#include "serve_worker.h"
#include "util.h"

#define MAX_WORKERS 256
#define MIB (1024u * 1024u)

/* ---- settings --------------------------------------------------------------------------------------------- */
typedef struct settings {
    int port;
    int workers;
    int timeout_s;
    size_t max_body;
    int max_payload_mb;
    int grace_s;
    int multi_model;
    int max_concurrent_transforms;
    char *root, *model_dir, *code_dir, *models_dir;
    char *handler_path;
    char *handler_desc; /* for logs: "pyhandler (inference.py)" */
    int python, preload;
} settings;

/* ---- state shared by the connection threads and the main thread --------------------------------------------- */
typedef enum { SLOT_DEAD = 0, SLOT_STARTING, SLOT_IDLE, SLOT_BUSY } slot_state;

typedef struct mm_loaded {
    char *name;
    uint64_t gen;
} mm_loaded;

typedef struct slot {
    slot_state state;
    int fd;
    pid_t pid;
    int32_t gen;
    int64_t spawned_ms;
    mm_loaded *models; /* multi-model: what this worker has loaded */
    size_t nmodels;
} slot;

/* A request waiting for a worker.  Freed workers are handed to waiters in arrival order, never raced for. */
typedef struct waiter {
    int slot; /* set by the thread that hands over a worker */
    pthread_cond_t cv;
    struct waiter *next;
} waiter;

typedef struct mm_model {
    char *name, *url;
    uint64_t gen;
    int loading; /* registered while its first load runs: a second POST gets 409 */
} mm_model;

static struct {
    settings cfg;
    pthread_mutex_t mu;
    waiter *wq_head, *wq_tail;
    slot slots[MAX_WORKERS];
    int ever_ready;      /* every worker loaded the model once */
    int loaded_once[MAX_WORKERS];
    atomic_int stopping;
    int closing; /* the grace is over: waiting requests give up */
    int in_flight;
    int wake_fd; /* eventfd: wakes the main thread */
    mm_model *mm;
    size_t nmm;
    uint64_t mm_gen;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void wake_main(void) {
    uint64_t one = 1;
    ssize_t w = write(g.wake_fd, &one, sizeof one);
    (void)w;
}

/* ---- environment ------------------------------------------------------------------------------------------ */
static int env_int(const char *name, int def, int lo, int hi, int *out, char *err, size_t errlen) {
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    while (*end == ' ') end++;
    if (errno || *end || x < lo || x > hi) {
        snprintf(err, errlen, "%s=%s is not a whole number from %d to %d: fix or unset it", name, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int env_true(const char *name) {
    const char *v = getenv(name);
    return v && (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes"));
}

/* CPUs this container may use: the affinity mask, capped by a cgroup CPU quota (v2 cpu.max, v1 cfs quota). */
static int usable_cpus(void) {
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0) n = 1;
    char *text = NULL;
    size_t len;
    long quota = -1, period = 0;
    if (shx_read_file("/sys/fs/cgroup/cpu.max", &text, &len) == 0) {
        if (sscanf(text, "%ld %ld", &quota, &period) != 2) quota = -1; /* "max 100000" */
        free(text);
    } else {
        if (shx_read_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", &text, &len) == 0) {
            quota = strtol(text, NULL, 10);
            free(text);
            if (shx_read_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us", &text, &len) == 0) {
                period = strtol(text, NULL, 10);
                free(text);
            }
        }
    }
    if (quota > 0 && period > 0) {
        long q = (quota + period - 1) / period;
        if (q < n) n = (int)q;
    }
    return n < 1 ? 1 : n;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* A handler plugin by name: SMHOST_PLUGIN_PATH directories, then <exe dir>/../lib/smhost/plugins. */
static char *find_plugin(const char *name, char *err, size_t errlen) {
    char *file = shx_xasprintf("%s.so", name);
    const char *pp = getenv("SMHOST_PLUGIN_PATH");
    shx_buf tried = {0};
    if (pp && *pp) {
        char *copy = shx_xstrdup(pp), *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            char *p = shx_path_join(d, file);
            if (shx_is_file(p)) {
                free(copy), free(file), shx_buf_free(&tried);
                return p;
            }
            shx_buf_printf(&tried, "%s%s", tried.len ? ", " : "", d);
            free(p);
        }
        free(copy);
    }
    char *self = shx_self_dir();
    char *dir = shx_xasprintf("%s/../lib/smhost/plugins", self ? self : ".");
    char *p = shx_path_join(dir, file);
    free(self);
    if (shx_is_file(p)) {
        free(dir), free(file), shx_buf_free(&tried);
        return p;
    }
    shx_buf_printf(&tried, "%s%s", tried.len ? ", " : "", dir);
    snprintf(err, errlen, "handler plugin %s not found (looked in %s): install smhost's plugins or add their "
             "directory to SMHOST_PLUGIN_PATH", file, tried.p);
    free(p), free(dir), free(file), shx_buf_free(&tried);
    return NULL;
}

/* Which handler serves: SMHOST_SERVE_HANDLER names a handler plugin; a SAGEMAKER_PROGRAM ending in .so (or, with
 * no SAGEMAKER_PROGRAM and no inference.py, the one .so in model/code) is a native handler; else pyhandler. */
static int choose_handler(settings *s, char *err, size_t errlen) {
    const char *forced = getenv("SMHOST_SERVE_HANDLER");
    const char *program = getenv("SAGEMAKER_PROGRAM");
    if (forced && *forced) {
        if (!(s->handler_path = find_plugin(forced, err, errlen))) return -1;
        s->handler_desc = shx_xasprintf("plugin %s (SMHOST_SERVE_HANDLER)", forced);
        s->python = !strcmp(forced, "pyhandler");
        return 0;
    }
    char *native = NULL;
    if (program && *program && ends_with(program, ".so")) {
        native = program[0] == '/' ? shx_xstrdup(program) : shx_path_join(s->code_dir, program);
        if (!shx_is_file(native)) {
            snprintf(err, errlen, "SAGEMAKER_PROGRAM=%s: %s does not exist; put the handler there or fix the variable",
                     program, native);
            free(native);
            return -1;
        }
    } else if (!(program && *program)) {
        char *py = shx_path_join(s->code_dir, "inference.py");
        if (!shx_is_file(py)) {
            shx_strvec found = {0};
            char *cmd_dir = s->code_dir;
            DIR *d = opendir(cmd_dir);
            if (d) {
                struct dirent *e;
                while ((e = readdir(d)))
                    if (ends_with(e->d_name, ".so")) shx_strvec_take(&found, shx_path_join(cmd_dir, e->d_name));
                closedir(d);
            }
            if (found.n == 1) native = shx_xstrdup(found.v[0]);
            if (found.n > 1) {
                snprintf(err, errlen, "%s holds %zu .so files; set SAGEMAKER_PROGRAM to the handler to serve", cmd_dir,
                         found.n);
                shx_strvec_free(&found);
                free(py);
                return -1;
            }
            shx_strvec_free(&found);
        }
        free(py);
    }
    if (native) {
        s->handler_path = native;
        s->handler_desc = shx_xasprintf("native handler %s", native);
        return 0;
    }
    if (!(s->handler_path = find_plugin("pyhandler", err, errlen))) return -1;
    s->python = 1;
    s->handler_desc = shx_xasprintf("pyhandler (%s/%s)", s->code_dir, program && *program ? program : "inference.py");
    return 0;
}

static int load_settings(settings *s, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    int ncpu = usable_cpus();
    if (env_int("SAGEMAKER_BIND_TO_PORT", 8080, 1, 65535, &s->port, err, errlen) ||
        env_int("SAGEMAKER_MODEL_SERVER_WORKERS", ncpu, 1, MAX_WORKERS, &s->workers, err, errlen) ||
        env_int("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, 1, 86400, &s->timeout_s, err, errlen) ||
        env_int("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, 1, 1000, &s->max_payload_mb, err, errlen) ||
        env_int("SMHOST_SERVE_GRACE_SECONDS", 25, 0, 3600, &s->grace_s, err, errlen) ||
        env_int("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 0, 0, 100000, &s->max_concurrent_transforms, err, errlen))
        return -1;
    if (!s->max_concurrent_transforms) s->max_concurrent_transforms = s->workers;
    s->max_body = (size_t)s->max_payload_mb * MIB;
    s->multi_model = env_true("SAGEMAKER_MULTI_MODEL");
    const char *pre = getenv("SMHOST_SERVE_PRELOAD");
    s->preload = !(pre && (!strcasecmp(pre, "false") || !strcmp(pre, "0") || !strcasecmp(pre, "no")));
    const char *base = getenv("SAGEMAKER_BASE_DIR");
    s->root = shx_xstrdup(base && *base ? base : "/opt/ml");
    s->model_dir = shx_path_join(s->root, "model");
    s->code_dir = shx_path_join(s->model_dir, "code");
    s->models_dir = shx_path_join(s->root, "models");
    return choose_handler(s, err, errlen);
}

/* ---- workers: acquire, exchange, release --------------------------------------------------------------------- */
/* Caller holds g.mu.  The worker is gone or unusable: kill it, forget its socket, let the main thread respawn. */
static void slot_fail_locked(int i) {
    slot *w = &g.slots[i];
    if (w->pid > 0) kill(w->pid, SIGKILL);
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    w->pid = 0;
    w->state = SLOT_DEAD;
    w->gen++;
    for (size_t k = 0; k < w->nmodels; k++) free(w->models[k].name);
    w->nmodels = 0;
    wake_main();
}

static int alive_workers_locked(void) {
    int n = 0;
    for (int i = 0; i < g.cfg.workers; i++) n += g.slots[i].state == SLOT_IDLE || g.slots[i].state == SLOT_BUSY;
    return n;
}

/* Caller holds g.mu.  Worker i is free: give it to the longest-waiting request, or mark it idle. */
static void slot_free_locked(int i) {
    waiter *w = g.wq_head;
    if (!w) {
        g.slots[i].state = SLOT_IDLE;
        return;
    }
    g.wq_head = w->next;
    if (!g.wq_head) g.wq_tail = NULL;
    g.slots[i].state = SLOT_BUSY;
    w->slot = i;
    pthread_cond_signal(&w->cv);
}

/* Caller holds g.mu: wake every waiter (shutdown); they see g.closing. */
static void wake_waiters_locked(void) {
    for (waiter *w = g.wq_head; w; w = w->next) pthread_cond_signal(&w->cv);
}

/* Take an idle worker.  Returns its index, or -HTTP status with *why set. */
static int acquire(int64_t deadline, const char **why) {
    pthread_mutex_lock(&g.mu);
    if (!g.ever_ready) {
        pthread_mutex_unlock(&g.mu);
        *why = "the model is not loaded yet: wait until GET /ping answers 200";
        return -503;
    }
    for (int i = 0; i < g.cfg.workers; i++)
        if (g.slots[i].state == SLOT_IDLE && !g.wq_head) {
            g.slots[i].state = SLOT_BUSY;
            pthread_mutex_unlock(&g.mu);
            return i;
        }
    waiter w = {.slot = -1};
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (g.wq_tail) g.wq_tail->next = &w;
    else g.wq_head = &w;
    g.wq_tail = &w;
    struct timespec ts = {.tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000};
    while (w.slot < 0 && !g.closing && shx_now_ms() < deadline) pthread_cond_timedwait(&w.cv, &g.mu, &ts);
    if (w.slot < 0) { /* still queued: leave the queue */
        waiter **pp = &g.wq_head, *prev = NULL;
        while (*pp && *pp != &w) prev = *pp, pp = &(*pp)->next;
        if (*pp) {
            *pp = w.next;
            if (g.wq_tail == &w) g.wq_tail = prev;
        }
        *why = g.closing ? "smhost is shutting down"
                         : "no worker became free before the request's deadline (SAGEMAKER_MODEL_SERVER_TIMEOUT)";
    }
    int got = w.slot;
    int closing = g.closing;
    pthread_mutex_unlock(&g.mu);
    pthread_cond_destroy(&w.cv);
    return got >= 0 ? got : closing ? -503 : -504;
}

static void release(int i) {
    pthread_mutex_lock(&g.mu);
    if (g.slots[i].state == SLOT_BUSY) slot_free_locked(i);
    pthread_mutex_unlock(&g.mu);
}

typedef struct result {
    int status;
    char *content_type, *custom_attributes; /* owned, may be NULL */
    char *body;                             /* owned (malloc) */
    size_t len;
} result;

static void result_error(result *r, int status, const char *msg) {
    r->status = status;
    free(r->content_type);
    r->content_type = shx_xstrdup("application/json");
    free(r->body);
    r->body = shx_json_error(status, msg);
    r->len = strlen(r->body);
}

/* One round trip with worker i (BUSY, owned by the caller).  On failure the worker is replaced, *r holds the
 * error answer and -1 is returned; the caller must not release the slot then. */
static int exchange(int i, uint32_t type, const char *const s[SHX_FRAME_NSTR], const void *body, size_t len,
                    int64_t deadline, shx_frame *f, result *r) {
    slot *w = &g.slots[i];
    pid_t pid = w->pid;
    int rc = shx_frame_send(w->fd, type, 0, 0, 0, s, body, len);
    if (rc == 0) rc = shx_frame_recv(w->fd, f, deadline);
    if (rc == 0 && f->type == SHX_FR_REPLY) return 0;
    char msg[512];
    int status;
    if (rc == -2) {
        status = 504;
        snprintf(msg, sizeof msg, "the request took longer than SAGEMAKER_MODEL_SERVER_TIMEOUT=%d s; worker %d was "
                 "stopped and is being replaced", g.cfg.timeout_s, (int)pid);
        shx_warn("worker %d (slot %d) timed out after %d s: killing and replacing it", (int)pid, i, g.cfg.timeout_s);
    } else {
        status = 500;
        snprintf(msg, sizeof msg, "worker %d died while handling the request (its log is above); it is being replaced",
                 (int)pid);
        shx_error("worker %d (slot %d) died while handling a request: replacing it", (int)pid, i);
        if (rc == 0) shx_frame_free(f);
    }
    pthread_mutex_lock(&g.mu);
    slot_fail_locked(i);
    pthread_mutex_unlock(&g.mu);
    result_error(r, status, msg);
    return -1;
}

static void result_from_reply(result *r, shx_frame *f) {
    r->status = f->a;
    r->content_type = f->slen[0] ? shx_xstrdup(f->s[0]) : NULL;
    r->custom_attributes = f->slen[1] ? shx_xstrdup(f->s[1]) : NULL;
    r->body = shx_xmalloc(f->body_len + 1);
    memcpy(r->body, f->body, f->body_len);
    r->len = f->body_len;
}

/* ---- multi-model registry ----------------------------------------------------------------------------------- */
static mm_model *mm_find_locked(const char *name) {
    for (size_t k = 0; k < g.nmm; k++)
        if (!strcmp(g.mm[k].name, name)) return &g.mm[k];
    return NULL;
}

static void mm_remove_locked(const char *name) {
    for (size_t k = 0; k < g.nmm; k++)
        if (!strcmp(g.mm[k].name, name)) {
            free(g.mm[k].name), free(g.mm[k].url);
            g.mm[k] = g.mm[--g.nmm];
            return;
        }
}

static void slot_note_loaded(int i, const char *name, uint64_t gen) {
    slot *w = &g.slots[i];
    w->models = shx_xrealloc(w->models, (w->nmodels + 1) * sizeof *w->models);
    w->models[w->nmodels++] = (mm_loaded){shx_xstrdup(name), gen};
}

/* Bring worker i in line with the registry before it serves `want` (NULL: only unload stale models). */
static int mm_sync(int i, const char *want, int64_t deadline, result *r) {
    slot *w = &g.slots[i];
    for (size_t k = 0; k < w->nmodels;) {
        pthread_mutex_lock(&g.mu);
        mm_model *m = mm_find_locked(w->models[k].name);
        int stale = !m || m->gen != w->models[k].gen;
        pthread_mutex_unlock(&g.mu);
        if (!stale) {
            k++;
            continue;
        }
        const char *s[SHX_FRAME_NSTR] = {w->models[k].name};
        shx_frame f;
        if (exchange(i, SHX_FR_UNLOAD, s, NULL, 0, deadline, &f, r)) return -1;
        shx_frame_free(&f);
        free(w->models[k].name);
        w->models[k] = w->models[--w->nmodels];
    }
    if (!want) return 0;
    for (size_t k = 0; k < w->nmodels; k++)
        if (!strcmp(w->models[k].name, want)) return 0;
    pthread_mutex_lock(&g.mu);
    mm_model *m = mm_find_locked(want);
    char *url = m && !m->loading ? shx_xstrdup(m->url) : NULL;
    uint64_t gen = m ? m->gen : 0;
    pthread_mutex_unlock(&g.mu);
    if (!url) {
        char msg[512];
        snprintf(msg, sizeof msg, "model %s is not loaded: load it with POST /models first", want);
        result_error(r, 404, msg);
        return 1;
    }
    const char *s[SHX_FRAME_NSTR] = {want, url};
    shx_frame f;
    int rc = exchange(i, SHX_FR_LOAD, s, NULL, 0, deadline, &f, r);
    free(url);
    if (rc) return -1;
    if (f.a != 200) {
        result_from_reply(r, &f);
        shx_frame_free(&f);
        return 1;
    }
    shx_frame_free(&f);
    slot_note_loaded(i, want, gen);
    return 0;
}

/* ---- request routing ---------------------------------------------------------------------------------------- */
typedef enum route { R_NONE, R_INVOKE, R_MM_LOAD, R_MM_INVOKE } route;

typedef struct req_ctx {
    route route;
    char *model; /* R_MM_INVOKE */
    shx_buf body;
    size_t received;
    int too_large;
    int counted; /* in g.in_flight */
} req_ctx;

static enum MHD_Result send_answer(struct MHD_Connection *c, int status, const char *ctype, const char *attrs,
                                   char *body, size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (ctype && *ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (attrs && *attrs) MHD_add_response_header(resp, "X-Amzn-SageMaker-Custom-Attributes", attrs);
    if (atomic_load(&g.stopping)) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *msg) {
    char *body = shx_json_error(status, msg);
    return send_answer(c, status, "application/json", NULL, body, strlen(body));
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, char *json) {
    return send_answer(c, status, "application/json", NULL, json, strlen(json));
}

static void log_request(const char *method, const char *url, int status, int64_t start_ms) {
    int level = !strcmp(url, "/ping") ? SHX_DEBUG : status >= 500 ? SHX_WARNING : SHX_INFO;
    if (level < shx_log_get_level()) return;
    shx_log(level, "%s %s %d %lld ms", method, url, status, (long long)(shx_now_ms() - start_ms));
}

static int ping_status(void) {
    pthread_mutex_lock(&g.mu);
    int ok = g.ever_ready && alive_workers_locked() > 0;
    pthread_mutex_unlock(&g.mu);
    return ok ? 200 : 503;
}

static char *json_escape_dup(const char *s) {
    /* a JSON string literal with its quotes */
    shx_buf b = {0};
    shx_buf_addc(&b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') shx_buf_addc(&b, '\\'), shx_buf_addc(&b, (char)*p);
        else if (*p < 0x20) shx_buf_printf(&b, "\\u%04x", *p);
        else shx_buf_addc(&b, (char)*p);
    }
    shx_buf_addc(&b, '"');
    return shx_buf_steal(&b);
}

static char *mm_describe_locked(const mm_model *m) {
    char *n = json_escape_dup(m->name), *u = json_escape_dup(m->url);
    char *out = shx_xasprintf("{\"modelName\":%s,\"modelUrl\":%s}", n, u);
    free(n), free(u);
    return out;
}

static enum MHD_Result mm_list(struct MHD_Connection *c) {
    shx_buf b = {0};
    shx_buf_adds(&b, "{\"models\":[");
    pthread_mutex_lock(&g.mu);
    int first = 1;
    for (size_t k = 0; k < g.nmm; k++) {
        if (g.mm[k].loading) continue;
        char *d = mm_describe_locked(&g.mm[k]);
        shx_buf_printf(&b, "%s%s", first ? "" : ",", d);
        free(d);
        first = 0;
    }
    pthread_mutex_unlock(&g.mu);
    shx_buf_adds(&b, "]}");
    return send_json(c, 200, shx_buf_steal(&b));
}

static enum MHD_Result mm_describe(struct MHD_Connection *c, const char *name) {
    pthread_mutex_lock(&g.mu);
    mm_model *m = mm_find_locked(name);
    char *d = m && !m->loading ? mm_describe_locked(m) : NULL;
    pthread_mutex_unlock(&g.mu);
    if (!d) {
        char msg[512];
        snprintf(msg, sizeof msg, "model %s is not loaded", name);
        return send_error(c, 404, msg);
    }
    char *out = shx_xasprintf("[%s]", d);
    free(d);
    return send_json(c, 200, out);
}

static enum MHD_Result mm_unload(struct MHD_Connection *c, const char *name) {
    pthread_mutex_lock(&g.mu);
    mm_model *m = mm_find_locked(name);
    int found = m && !m->loading;
    if (found) mm_remove_locked(name); /* workers drop it the next time they are used (mm_sync) */
    pthread_mutex_unlock(&g.mu);
    char msg[512];
    snprintf(msg, sizeof msg, "model %s is not loaded", name);
    if (!found) return send_error(c, 404, msg);
    char *n = json_escape_dup(name);
    char *out = shx_xasprintf("{\"status\":\"Model %.*s unloaded\"}", (int)strlen(n) - 2, n + 1);
    free(n);
    shx_info("model %s unloaded", name);
    return send_json(c, 200, out);
}

/* Minimal extraction of two string members from {"model_name": "...", "url": "..."} without a JSON library:
 * cJSON is linked by the Makefile, so use it. */
#include <cjson/cJSON.h>

static void mm_load(const req_ctx *rc, result *r) {
    cJSON *j = cJSON_ParseWithLength(rc->body.p ? rc->body.p : "", rc->body.len);
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(j, "model_name");
    const cJSON *ju = cJSON_GetObjectItemCaseSensitive(j, "url");
    if (!cJSON_IsString(jn) || !cJSON_IsString(ju) || !*jn->valuestring || strchr(jn->valuestring, '/')) {
        cJSON_Delete(j);
        result_error(r, 400, "POST /models needs a JSON body {\"model_name\": \"<name without />\", \"url\": "
                             "\"<model directory>\"}");
        return;
    }
    char *name = shx_xstrdup(jn->valuestring);
    char *url = ju->valuestring[0] == '/' ? shx_xstrdup(ju->valuestring) : shx_path_join(g.cfg.models_dir, ju->valuestring);
    cJSON_Delete(j);
    char msg[1024];
    if (!shx_is_dir(url)) {
        snprintf(msg, sizeof msg, "model url %s is not a directory", url);
        result_error(r, 404, msg);
        free(name), free(url);
        return;
    }
    pthread_mutex_lock(&g.mu);
    if (mm_find_locked(name)) {
        pthread_mutex_unlock(&g.mu);
        snprintf(msg, sizeof msg, "model %s is already loaded: DELETE /models/%s first to replace it", name, name);
        result_error(r, 409, msg);
        free(name), free(url);
        return;
    }
    g.mm = shx_xrealloc(g.mm, (g.nmm + 1) * sizeof *g.mm);
    uint64_t gen = ++g.mm_gen;
    g.mm[g.nmm++] = (mm_model){shx_xstrdup(name), shx_xstrdup(url), gen, 1};
    pthread_mutex_unlock(&g.mu);

    /* Load it in one worker now, so a broken model fails this call; the others load it on first use. */
    int64_t deadline = shx_now_ms() + (int64_t)g.cfg.timeout_s * 1000;
    const char *why = NULL;
    int i = acquire(deadline, &why);
    int ok = 0;
    if (i < 0) {
        result_error(r, -i, why);
    } else if (mm_sync(i, NULL, deadline, r) == 0) {
        const char *s[SHX_FRAME_NSTR] = {name, url};
        shx_frame f;
        if (exchange(i, SHX_FR_LOAD, s, NULL, 0, deadline, &f, r) == 0) {
            if (f.a == 200) {
                ok = 1;
                slot_note_loaded(i, name, gen);
            } else {
                result_from_reply(r, &f);
            }
            shx_frame_free(&f);
            release(i);
        }
    } else {
        release(i);
    }
    pthread_mutex_lock(&g.mu);
    mm_model *m = mm_find_locked(name);
    if (ok && m && m->gen == gen) m->loading = 0;
    else if (!ok && m && m->gen == gen) mm_remove_locked(name);
    pthread_mutex_unlock(&g.mu);
    if (ok) {
        shx_info("model %s loaded from %s", name, url);
        char *n = json_escape_dup(name);
        r->status = 200;
        r->content_type = shx_xstrdup("application/json");
        r->body = shx_xasprintf("{\"status\":\"Model %.*s loaded\"}", (int)strlen(n) - 2, n + 1);
        r->len = strlen(r->body);
        free(n);
    }
    free(name), free(url);
}

static void invoke(struct MHD_Connection *c, const req_ctx *rc, result *r) {
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    const char *attrs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amzn-SageMaker-Custom-Attributes");
    const char *s[SHX_FRAME_NSTR] = {ct, accept, attrs, rc->model ? rc->model : ""};
    int64_t deadline = shx_now_ms() + (int64_t)g.cfg.timeout_s * 1000;
    const char *why = NULL;
    int i = acquire(deadline, &why);
    if (i < 0) {
        result_error(r, -i, why);
        return;
    }
    if (g.cfg.multi_model) {
        int m = mm_sync(i, rc->model, deadline, r);
        if (m < 0) return;
        if (m > 0) {
            release(i);
            return;
        }
    }
    shx_frame f;
    if (exchange(i, SHX_FR_INVOKE, s, rc->body.p, rc->body.len, deadline, &f, r)) return;
    release(i);
    result_from_reply(r, &f);
    shx_frame_free(&f);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    req_ctx *rc = *con_cls;
    if (!rc) {
        int64_t start = shx_now_ms();
        int get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
        route rt = R_NONE;
        const char *model = NULL;
        size_t model_len = 0;
        if (get && !strcmp(url, "/ping")) {
            int st = ping_status();
            log_request(method, url, st, start);
            if (st == 200) return send_answer(c, 200, NULL, NULL, NULL, 0);
            return send_error(c, 503, "the model is not loaded yet");
        }
        if (get && !strcmp(url, "/execution-parameters")) {
            char *j = shx_xasprintf("{\"MaxConcurrentTransforms\":%d,\"BatchStrategy\":\"MULTI_RECORD\","
                                    "\"MaxPayloadInMB\":%d}", g.cfg.max_concurrent_transforms, g.cfg.max_payload_mb);
            log_request(method, url, 200, start);
            return send_json(c, 200, j);
        }
        if (!g.cfg.multi_model && post && !strcmp(url, "/invocations")) rt = R_INVOKE;
        if (g.cfg.multi_model && !strncmp(url, "/models", 7)) {
            const char *rest = url + 7;
            if (!strcmp(rest, "") || !strcmp(rest, "/")) {
                if (get) {
                    log_request(method, url, 200, start);
                    return mm_list(c);
                }
                if (post) rt = R_MM_LOAD;
            } else if (rest[0] == '/') {
                const char *name = rest + 1, *slash = strchr(name, '/');
                model_len = slash ? (size_t)(slash - name) : strlen(name);
                char *n = shx_xstrndup(name, model_len);
                enum MHD_Result ret = MHD_NO;
                int done = 0;
                if (model_len && !slash && get) ret = mm_describe(c, n), done = 1;
                else if (model_len && !slash && del) ret = mm_unload(c, n), done = 1;
                else if (model_len && slash && !strcmp(slash, "/invoke") && post) rt = R_MM_INVOKE, model = name;
                free(n);
                if (done) {
                    log_request(method, url, -1, start);
                    return ret;
                }
            }
        }
        if (rt == R_NONE) {
            char msg[600];
            snprintf(msg, sizeof msg, "no route for %.16s %.500s%s", method, url,
                     g.cfg.multi_model ? " (multi-model endpoint: /models, /models/<name>/invoke, /ping)"
                                       : " (routes: GET /ping, POST /invocations, GET /execution-parameters)");
            log_request(method, url, 404, start);
            return send_error(c, 404, msg);
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > g.cfg.max_body) {
            char msg[200];
            snprintf(msg, sizeof msg, "the body (%s bytes) is larger than %zu bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB=%d)",
                     cl, g.cfg.max_body, g.cfg.max_payload_mb);
            log_request(method, url, 413, start);
            return send_error(c, 413, msg);
        }
        rc = shx_xcalloc(1, sizeof *rc);
        rc->route = rt;
        if (model) rc->model = shx_xstrndup(model, model_len);
        pthread_mutex_lock(&g.mu);
        g.in_flight++;
        rc->counted = 1;
        pthread_mutex_unlock(&g.mu);
        *con_cls = rc;
        return MHD_YES;
    }
    if (*upload_size) {
        rc->received += *upload_size;
        if (rc->received > g.cfg.max_body) {
            rc->too_large = 1;
            shx_buf_free(&rc->body);
            if (rc->received > 4 * g.cfg.max_body) return MHD_NO; /* a chunked upload that does not end: drop it */
        } else {
            shx_buf_add(&rc->body, upload, *upload_size);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    int64_t start = shx_now_ms();
    if (rc->too_large) {
        char msg[200];
        snprintf(msg, sizeof msg, "the body is larger than %zu bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB=%d)", g.cfg.max_body,
                 g.cfg.max_payload_mb);
        log_request(method, url, 413, start);
        return send_error(c, 413, msg);
    }
    result r = {0};
    if (rc->route == R_MM_LOAD) mm_load(rc, &r);
    else invoke(c, rc, &r);
    log_request(method, url, r.status, start);
    enum MHD_Result ret = send_answer(c, r.status, r.content_type, r.custom_attributes, r.body, r.len);
    free(r.content_type), free(r.custom_attributes);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    req_ctx *rc = *con_cls;
    if (!rc) return;
    if (rc->counted) {
        pthread_mutex_lock(&g.mu);
        g.in_flight--;
        pthread_mutex_unlock(&g.mu);
        if (atomic_load(&g.stopping)) wake_main();
    }
    shx_buf_free(&rc->body);
    free(rc->model);
    free(rc);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    shx_log(SHX_DEBUG, "microhttpd: %s", msg);
}

/* ---- the main thread: processes, signals, shutdown ------------------------------------------------------------ */
static int spawn(int ctl, int i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        shx_error("socketpair for worker %d: %s", i, strerror(errno));
        return -1;
    }
    slot *w = &g.slots[i];
    pthread_mutex_lock(&g.mu);
    w->gen++;
    int32_t gen = w->gen;
    w->fd = sv[0];
    w->pid = 0;
    w->state = SLOT_STARTING;
    w->spawned_ms = shx_now_ms();
    pthread_mutex_unlock(&g.mu);
    int rc = shx_send_fd(ctl, sv[1], i, gen);
    close(sv[1]);
    return rc;
}

static void handle_worker_frame(int i) {
    slot *w = &g.slots[i];
    shx_frame f;
    int rc = shx_frame_recv(w->fd, &f, shx_now_ms() + 5000);
    pthread_mutex_lock(&g.mu);
    if (rc == 0 && f.type == SHX_FR_READY) {
        slot_free_locked(i);
        g.loaded_once[i] = 1;
        int all = 1;
        for (int k = 0; k < g.cfg.workers; k++) all &= g.loaded_once[k];
        if (all && !g.ever_ready) {
            g.ever_ready = 1;
            shx_info("the model is loaded in all %d workers: ready", g.cfg.workers);
        }
    } else {
        if (rc == 0 && f.type == SHX_FR_FAILED) {
            pthread_mutex_unlock(&g.mu);
            shx_error("worker %d could not load the model: %s", (int)w->pid, f.s[0]);
            exit(1);
        }
        shx_error("worker %d (slot %d) died while starting: replacing it", (int)w->pid, i);
        slot_fail_locked(i);
    }
    pthread_mutex_unlock(&g.mu);
    if (rc == 0) shx_frame_free(&f);
}

static const char *describe_status(int st, char *buf, size_t len) {
    if (WIFSIGNALED(st)) snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else snprintf(buf, len, "exited with code %d", WEXITSTATUS(st));
    return buf;
}

/* A frame from the zygote.  Returns 0, or an exit code when serving cannot go on. */
static int handle_zygote_frame(int ctl, int *zygote_ready) {
    shx_frame f;
    int rc = shx_frame_recv(ctl, &f, shx_now_ms() + 5000);
    if (rc) return -1;
    int ret = 0;
    char why[128];
    switch (f.type) {
    case SHX_FR_READY:
        *zygote_ready = 1;
        shx_info("handler loaded%s; starting %d workers", f.a ? " with the model" : "", g.cfg.workers);
        break;
    case SHX_FR_FAILED:
        shx_error("%s", f.s[0]);
        ret = f.a > 0 ? f.a : 1;
        break;
    case SHX_FR_SPAWNED:
        pthread_mutex_lock(&g.mu);
        if (f.a >= 0 && f.a < g.cfg.workers && g.slots[f.a].gen == f.b && g.slots[f.a].state != SLOT_DEAD)
            g.slots[f.a].pid = f.c;
        else
            kill(f.c, SIGKILL); /* its slot was given up before we learned its pid */
        pthread_mutex_unlock(&g.mu);
        shx_debug("worker %d started (slot %d)", (int)f.c, (int)f.a);
        break;
    case SHX_FR_DIED:
        pthread_mutex_lock(&g.mu);
        for (int i = 0; i < g.cfg.workers; i++)
            if (g.slots[i].pid == f.c && (g.slots[i].state == SLOT_IDLE || g.slots[i].state == SLOT_STARTING)) {
                shx_error("worker %d (slot %d) %s while idle: replacing it", (int)f.c, i,
                          describe_status(f.a, why, sizeof why));
                slot_fail_locked(i);
            }
        pthread_mutex_unlock(&g.mu);
        if (!(WIFSIGNALED(f.a) && WTERMSIG(f.a) == SIGKILL)) shx_debug("worker %d %s", (int)f.c,
                                                                         describe_status(f.a, why, sizeof why));
        break;
    default: break;
    }
    shx_frame_free(&f);
    return ret;
}

static int serve_loop(int ctl, pid_t zygote, struct MHD_Daemon *d, int sfd) {
    int zygote_ready = 0, exit_code = 0;
    int64_t grace_deadline = 0;
    struct pollfd pfd[3 + MAX_WORKERS];
    int idx[3 + MAX_WORKERS];
    for (;;) {
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = g.wake_fd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = ctl, .events = POLLIN};
        pthread_mutex_lock(&g.mu);
        for (int i = 0; i < g.cfg.workers; i++)
            if (g.slots[i].state == SLOT_STARTING && g.slots[i].fd >= 0) {
                idx[n] = i;
                pfd[n++] = (struct pollfd){.fd = g.slots[i].fd, .events = POLLIN};
            }
        pthread_mutex_unlock(&g.mu);
        if (poll(pfd, (nfds_t)n, 100) < 0 && errno != EINTR) {
            shx_error("poll: %s", strerror(errno));
            return SHX_EXIT_OSERR;
        }
        if (pfd[0].revents) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == sizeof si && !atomic_load(&g.stopping)) {
                atomic_store(&g.stopping, 1);
                grace_deadline = shx_now_ms() + (int64_t)g.cfg.grace_s * 1000;
                MHD_socket ls = MHD_quiesce_daemon(d);
                if (ls != MHD_INVALID_SOCKET) close(ls);
                pthread_mutex_lock(&g.mu);
                int inflight = g.in_flight;
                pthread_mutex_unlock(&g.mu);
                shx_info("%s: no new connections; finishing %d request(s) in flight (grace %d s)",
                         strsignal((int)si.ssi_signo), inflight, g.cfg.grace_s);
            }
        }
        if (pfd[1].revents) {
            uint64_t v;
            ssize_t r = read(g.wake_fd, &v, sizeof v);
            (void)r;
        }
        if (pfd[2].revents) {
            int rc = handle_zygote_frame(ctl, &zygote_ready);
            if (rc < 0) {
                int st = 0;
                char why[128] = "exited";
                if (waitpid(zygote, &st, 0) == zygote) describe_status(st, why, sizeof why);
                shx_error("the serving zygote (which loads the handler%s) %s: %s", g.cfg.preload ? " and model" : "",
                          why, zygote_ready ? "no workers can be replaced, stopping" : "the model could not be loaded");
                return WIFSIGNALED(st) || !zygote_ready ? SHX_EXIT_SOFTWARE : 1;
            }
            if (rc > 0) return rc;
        }
        for (int k = 3; k < n; k++)
            if (pfd[k].revents) handle_worker_frame(idx[k]);
        /* reap anything else that was left to us (PID 1, or orphans of the zygote) */
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0)
            if (p == zygote) {
                shx_error("the serving zygote exited unexpectedly");
                return SHX_EXIT_SOFTWARE;
            }
        int64_t now = shx_now_ms();
        if (!atomic_load(&g.stopping) && zygote_ready) {
            for (int i = 0; i < g.cfg.workers; i++) {
                pthread_mutex_lock(&g.mu);
                int dead = g.slots[i].state == SLOT_DEAD && now - g.slots[i].spawned_ms >= 1000;
                pthread_mutex_unlock(&g.mu);
                if (dead && spawn(ctl, i)) {
                    shx_error("cannot pass a worker socket to the zygote: %s", strerror(errno));
                    return SHX_EXIT_SOFTWARE;
                }
            }
        }
        if (atomic_load(&g.stopping)) {
            pthread_mutex_lock(&g.mu);
            int inflight = g.in_flight;
            pthread_mutex_unlock(&g.mu);
            if (inflight == 0) break;
            if (now >= grace_deadline) {
                shx_warn("grace period over with %d request(s) still running: stopping their workers", inflight);
                exit_code = 0;
                break;
            }
        }
    }
    return exit_code;
}

int shx_serve_main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: smhost serve\nServes the model in $SAGEMAKER_BASE_DIR/model (default /opt/ml) over HTTP; "
                   "see docs/serving.md.\n");
            return 0;
        }
        fprintf(stderr, "smhost serve: unexpected argument %s (serve takes none; configure it with SAGEMAKER_* "
                        "variables)\n", argv[i]);
        return SHX_EXIT_USAGE;
    }
    const char *lvl = getenv("SAGEMAKER_CONTAINER_LOG_LEVEL");
    if (lvl && shx_log_parse_level(lvl) >= 0) shx_log_set_level(shx_log_parse_level(lvl));
    char err[2048] = "";
    if (load_settings(&g.cfg, err, sizeof err)) {
        shx_error("serve: %s", err);
        return SHX_EXIT_CONFIG;
    }
    setenv("SMHOST_SERVE_CODE_DIR", g.cfg.code_dir, 1); /* pyhandler's fallback for models without code/ */
    for (int i = 0; i < MAX_WORKERS; i++) g.slots[i].fd = -1;

    /* Signals are taken synchronously by the main thread; every thread started later inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t stopset;
    sigemptyset(&stopset);
    sigaddset(&stopset, SIGTERM);
    sigaddset(&stopset, SIGINT);
    int sfd = signalfd(-1, &stopset, SFD_CLOEXEC);
    g.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int sv[2];
    if (sfd < 0 || g.wake_fd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        shx_error("serve: cannot set up: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    /* The zygote is forked while this process still has one thread. */
    shx_serve_spec spec = {.handler_path = g.cfg.handler_path,
                           .model_dir = g.cfg.model_dir,
                           .code_dir = g.cfg.code_dir,
                           .python = g.cfg.python,
                           .preload = g.cfg.preload,
                           .multi_model = g.cfg.multi_model};
    fflush(NULL);
    pid_t zygote = fork();
    if (zygote < 0) {
        shx_error("serve: fork: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    if (zygote == 0) {
        close(sv[0]);
        close(sfd);
        close(g.wake_fd);
        shx_zygote_main(&spec, sv[1]);
    }
    close(sv[1]);
    int ctl = sv[0];

    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
            MHD_USE_ERROR_LOG,
        (uint16_t)g.cfg.port, NULL, NULL, on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024),
        MHD_OPTION_END);
    if (!d) {
        shx_error("serve: cannot listen on port %d (in use, or not allowed): set SAGEMAKER_BIND_TO_PORT to a free "
                  "port", g.cfg.port);
        kill(zygote, SIGKILL);
        waitpid(zygote, NULL, 0);
        return SHX_EXIT_OSERR;
    }
    shx_info("serving on port %d: %s, %d worker(s), timeout %d s, max payload %d MiB%s%s", g.cfg.port,
             g.cfg.handler_desc, g.cfg.workers, g.cfg.timeout_s, g.cfg.max_payload_mb,
             g.cfg.multi_model ? ", multi-model" : "", g.cfg.preload ? "" : ", model loaded per worker");

    int code = serve_loop(ctl, zygote, d, sfd);

    /* Stop: workers still busy after the grace are killed (their requests get 500), then the daemon stops. */
    pthread_mutex_lock(&g.mu);
    atomic_store(&g.stopping, 1);
    g.closing = 1;
    for (int i = 0; i < g.cfg.workers; i++)
        if (g.slots[i].pid > 0) kill(g.slots[i].pid, SIGKILL);
    wake_waiters_locked();
    pthread_mutex_unlock(&g.mu);
    /* Give the requests whose workers were just killed a moment to send their 5xx before connections close. */
    for (int t = 0; t < 100; t++) {
        pthread_mutex_lock(&g.mu);
        int inflight = g.in_flight;
        pthread_mutex_unlock(&g.mu);
        if (!inflight) break;
        usleep(10000);
    }
    MHD_stop_daemon(d);
    pthread_mutex_lock(&g.mu);
    for (int i = 0; i < g.cfg.workers; i++)
        if (g.slots[i].fd >= 0) close(g.slots[i].fd), g.slots[i].fd = -1;
    pthread_mutex_unlock(&g.mu);
    close(ctl);
    for (int t = 0; t < 50; t++) {
        int st;
        if (waitpid(zygote, &st, WNOHANG) != 0) break;
        if (t == 49) {
            kill(zygote, SIGKILL);
            waitpid(zygote, &st, 0);
        }
        usleep(100000);
    }
    if (code == 0) shx_info("stopped");
    return code;
}
