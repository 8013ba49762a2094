/* smhost serve: the front process (see serve.h and docs/serving.md).
 *
 * One thread runs one event loop (serve_loop): libmicrohttpd in external epoll mode, the workers' sockets, the
 * zygote's control socket and SIGTERM/SIGINT (signalfd).  /ping, /execution-parameters, 404 and 413 are answered
 * in the loop without touching a worker, so readiness answers stay fast while every worker is busy.  A request
 * for a worker is queued and its connection suspended; dispatch() hands it to an idle worker (a socket to a
 * process forked by the zygote) as an INVOKE frame -- or, when every worker is busy, pipelines up to
 * SMHOST_SERVE_PIPELINE requests per worker -- and the REPLY resumes the connection.  Frames to and from the
 * workers are batched per loop round.  A worker that overruns the request's deadline is killed and replaced
 * (504), one that dies answers 500 and is replaced; requests pipelined behind either were never started and go
 * back to the head of the queue. */
#include "serve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
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
    const char *handler_name; /* a plugin found by the zygote through the registry, or */
    char *handler_path;       /* a native handler's .so */
    char *handler_desc; /* for logs: "pyhandler (inference.py)" */
    int python, preload;
    int pipeline; /* requests sent ahead to a busy worker (single model) */
} settings;

/* ---- state: the front is one thread, an event loop (serve_loop), so nothing here needs a lock -------------- */
typedef enum { SLOT_DEAD = 0, SLOT_STARTING, SLOT_UP } slot_state;

typedef struct mm_loaded {
    char *name;
    uint64_t gen;
} mm_loaded;

typedef enum route { R_NONE, R_INVOKE, R_MM_LOAD, R_MM_INVOKE, R_MM_LIST, R_MM_DESCRIBE, R_MM_UNLOAD } route;
/* What a request waits for from its worker: multi-model requests may first unload stale models and load theirs. */
typedef enum step { STEP_NONE, STEP_UNLOAD, STEP_LOAD, STEP_INVOKE } step;

typedef struct req_ctx {
    route route;
    char *model; /* R_MM_INVOKE */
    shx_buf body;
    size_t received;
    int too_large;
    int counted; /* in g.in_flight */
    /* A request for a worker: its connection is suspended from when it is queued until its answer is ready. */
    struct MHD_Connection *conn;
    const char *ctype, *accept, *attrs; /* MHD's header values: valid until the request completes */
    int64_t start_ms, deadline;
    int64_t sent_us; /* when its INVOKE frame was queued for the worker */
    int queued; /* in g.q */
    int slot;   /* in g.slots[slot].jobs, or -1 */
    step step;
    char *step_name;           /* STEP_UNLOAD: the model being unloaded */
    char *load_name, *load_url; /* R_MM_LOAD */
    uint64_t load_gen;          /* STEP_LOAD: the registry generation being loaded */
    int done, status;
    struct MHD_Response *resp;
    struct req_ctx *next;
} req_ctx;

typedef struct job_list {
    req_ctx *head, *tail;
    int n;
} job_list;

typedef struct slot {
    slot_state state;
    int fd;
    pid_t pid;
    int32_t gen;
    int64_t spawned_ms;
    mm_loaded *models; /* multi-model: what this worker has loaded */
    size_t nmodels;
    job_list jobs;         /* sent to this worker (pipelined), answered in this order */
    shx_frame_reader in;   /* replies */
    shx_buf out;           /* frames not yet written */
    size_t out_off;
    int want_out;          /* EPOLLOUT is on */
    int64_t last_reply_us; /* when its last reply came */
} slot;

typedef struct mm_model {
    char *name, *url;
    uint64_t gen;
    int loading; /* registered while its first load runs: a second POST gets 409 */
} mm_model;

enum { TAG_MHD = 0, TAG_SIGNAL = 1, TAG_CTL = 2, TAG_SLOT = 16 };

static struct {
    settings cfg;
    struct MHD_Daemon *d;
    int ep;
    job_list q; /* requests waiting for a worker, oldest first */
    slot slots[MAX_WORKERS];
    int ever_ready; /* every worker loaded the model once */
    int loaded_once[MAX_WORKERS];
    int stopping;
    int closing; /* the grace is over: waiting requests give up */
    int in_flight;
    mm_model *mm;
    size_t nmm;
    uint64_t mm_gen;
    double service_us; /* moving average of how long a worker takes per request (0: none measured yet) */
} g;

/* How far ahead a busy worker is sent requests: about PIPELINE_BUDGET_US of expected work, so that a request
 * pipelined behind others waits about that long at most before its worker starts it, and never more than
 * SMHOST_SERVE_PIPELINE.  Slow handlers get 1: their requests wait in the front's queue for whichever worker is
 * free first. */
#define PIPELINE_BUDGET_US 1000.0

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

/* Which handler serves: SMHOST_SERVE_HANDLER names a handler plugin; a SAGEMAKER_PROGRAM ending in .so (or, with
 * no SAGEMAKER_PROGRAM and no inference.py, the one .so in model/code) is a native handler; else pyhandler. */
static int choose_handler(settings *s, char *err, size_t errlen) {
    const char *forced = getenv("SMHOST_SERVE_HANDLER");
    const char *program = getenv("SAGEMAKER_PROGRAM");
    if (forced && *forced) {
        s->handler_name = forced;
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
    s->handler_name = "pyhandler";
    s->python = 1;
    s->handler_desc = shx_xasprintf("pyhandler (%s/%s)", s->code_dir, program && *program ? program : "inference.py");
    return 0;
}

static int load_settings(settings *s, const shx_config *cfg, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    int ncpu = usable_cpus();
    if (env_int("SAGEMAKER_BIND_TO_PORT", 8080, 1, 65535, &s->port, err, errlen) ||
        env_int("SAGEMAKER_MODEL_SERVER_WORKERS", ncpu, 1, MAX_WORKERS, &s->workers, err, errlen) ||
        env_int("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, 1, 86400, &s->timeout_s, err, errlen) ||
        env_int("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, 1, 1000, &s->max_payload_mb, err, errlen) ||
        env_int("SMHOST_SERVE_GRACE_SECONDS", cfg->serve_grace_seconds, 0, 3600, &s->grace_s, err, errlen) ||
        env_int("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", 0, 0, 100000, &s->max_concurrent_transforms, err, errlen) ||
        env_int("SMHOST_SERVE_PIPELINE", 16, 1, 256, &s->pipeline, err, errlen))
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


/* ---- job lists ---------------------------------------------------------------------------------------------- */
static void list_push(job_list *l, req_ctx *r) {
    r->next = NULL;
    if (l->tail) l->tail->next = r;
    else l->head = r;
    l->tail = r;
    l->n++;
}

static req_ctx *list_pop(job_list *l) {
    req_ctx *r = l->head;
    if (!r) return NULL;
    l->head = r->next;
    if (!l->head) l->tail = NULL;
    l->n--;
    r->next = NULL;
    return r;
}

static void list_remove(job_list *l, req_ctx *r) {
    req_ctx **pp = &l->head, *prev = NULL;
    while (*pp && *pp != r) prev = *pp, pp = &(*pp)->next;
    if (!*pp) return;
    *pp = r->next;
    if (l->tail == r) l->tail = prev;
    l->n--;
    r->next = NULL;
}

/* ---- answers ------------------------------------------------------------------------------------------------- */
static void log_request(const char *method, const char *url, int status, int64_t start_ms) {
    int level = !strcmp(url, "/ping") ? SHX_DEBUG : status >= 500 ? SHX_WARNING : SHX_INFO;
    if (level < shx_log_get_level()) return;
    shx_log(level, "%s %s %d %lld ms", method, url, status, (long long)(shx_now_ms() - start_ms));
}

static struct MHD_Response *make_response(const char *ctype, const char *attrs, const void *body, size_t len) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp) return NULL;
    if (ctype && *ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (attrs && *attrs) MHD_add_response_header(resp, "X-Amzn-SageMaker-Custom-Attributes", attrs);
    return resp;
}

static enum MHD_Result queue_response(struct MHD_Connection *c, int status, struct MHD_Response *resp) {
    if (!resp) return MHD_NO;
    if (g.stopping) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_answer(struct MHD_Connection *c, int status, const char *ctype, const char *body,
                                   size_t len) {
    return queue_response(c, status, make_response(ctype, NULL, body, len));
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *msg) {
    char *body = shx_json_error(status, msg);
    enum MHD_Result ret = send_answer(c, status, "application/json", body, strlen(body));
    free(body);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, char *json) {
    enum MHD_Result ret = send_answer(c, status, "application/json", json, strlen(json));
    free(json);
    return ret;
}

/* The request's answer is ready: keep it and wake its connection, whose handler queues it (on_request). */
static void job_answer(req_ctx *r, int status, const char *ctype, const char *attrs, const void *body, size_t len) {
    r->resp = make_response(ctype, attrs, body, len);
    r->status = status;
    r->done = 1;
    r->slot = -1;
    r->queued = 0;
    r->step = STEP_NONE;
    MHD_resume_connection(r->conn);
}

static void job_error(req_ctx *r, int status, const char *msg) {
    char *body = shx_json_error(status, msg);
    job_answer(r, status, "application/json", NULL, body, strlen(body));
    free(body);
}

/* ---- multi-model registry ----------------------------------------------------------------------------------- */
static mm_model *mm_find(const char *name) {
    for (size_t k = 0; k < g.nmm; k++)
        if (!strcmp(g.mm[k].name, name)) return &g.mm[k];
    return NULL;
}

static void mm_remove(const char *name) {
    for (size_t k = 0; k < g.nmm; k++)
        if (!strcmp(g.mm[k].name, name)) {
            free(g.mm[k].name), free(g.mm[k].url);
            g.mm[k] = g.mm[--g.nmm];
            return;
        }
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

/* POST /models finished (ok: its worker loaded the model): the registry entry becomes visible, or goes. */
static void mm_load_done(req_ctx *r, int ok) {
    mm_model *m = mm_find(r->load_name);
    if (ok && m && m->gen == r->load_gen) m->loading = 0;
    else if (!ok && m && m->gen == r->load_gen && m->loading) mm_remove(r->load_name);
    if (!ok) return;
    shx_info("model %s loaded from %s", r->load_name, r->load_url);
    char *n = json_escape_dup(r->load_name);
    char *body = shx_xasprintf("{\"status\":\"Model %.*s loaded\"}", (int)strlen(n) - 2, n + 1);
    job_answer(r, 200, "application/json", NULL, body, strlen(body));
    free(body), free(n);
}

/* ---- workers ------------------------------------------------------------------------------------------------- */
static int ping_ok(void) {
    if (!g.ever_ready) return 0;
    for (int i = 0; i < g.cfg.workers; i++)
        if (g.slots[i].state == SLOT_UP) return 1;
    return 0;
}

static void slot_send(int i, uint32_t type, const char *const s[SHX_FRAME_NSTR], const void *body, size_t len) {
    shx_frame_encode(&g.slots[i].out, type, 0, 0, 0, s, body, len);
}

static void slot_watch(int i, int out) {
    slot *w = &g.slots[i];
    if (w->want_out == out) return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u64 = TAG_SLOT + (uint64_t)i};
    epoll_ctl(g.ep, EPOLL_CTL_MOD, w->fd, &ev);
    w->want_out = out;
}

/* Worker i is gone or unusable: kill it, answer the request it was running (status, msg), and put the requests
 * pipelined behind it, which it never started, back at the head of the queue.  The loop respawns the slot. */
static void slot_down(int i, int status, const char *msg) {
    slot *w = &g.slots[i];
    if (w->pid > 0) kill(w->pid, SIGKILL);
    if (w->fd >= 0) {
        epoll_ctl(g.ep, EPOLL_CTL_DEL, w->fd, NULL);
        close(w->fd);
    }
    w->fd = -1;
    w->pid = 0;
    w->state = SLOT_DEAD;
    w->gen++;
    for (size_t k = 0; k < w->nmodels; k++) free(w->models[k].name);
    w->nmodels = 0;
    shx_frame_reader_free(&w->in);
    shx_buf_free(&w->out);
    w->out_off = 0;
    w->want_out = 0;
    req_ctx *head = list_pop(&w->jobs);
    if (head) {
        if (head->route == R_MM_LOAD) mm_load_done(head, 0);
        job_error(head, status, msg ? msg : "the worker stopped");
    }
    job_list rest = w->jobs;
    w->jobs = (job_list){0};
    for (req_ctx *r = rest.head; r; r = r->next) r->slot = -1, r->step = STEP_NONE, r->queued = 1;
    if (rest.head) {
        rest.tail->next = g.q.head;
        g.q.head = rest.head;
        if (!g.q.tail) g.q.tail = rest.tail;
        g.q.n += rest.n;
    }
}

static void slot_died(int i, const char *how) {
    slot *w = &g.slots[i];
    if (w->state == SLOT_STARTING) {
        shx_error("worker %d (slot %d) %s while starting: replacing it", (int)w->pid, i, how);
        slot_down(i, 500, NULL);
    } else if (w->jobs.n) {
        char msg[512];
        snprintf(msg, sizeof msg, "worker %d died while handling the request (its log is above); it is being "
                 "replaced", (int)w->pid);
        shx_error("worker %d (slot %d) %s while handling a request: replacing it", (int)w->pid, i, how);
        slot_down(i, 500, msg);
    } else {
        shx_error("worker %d (slot %d) %s while idle: replacing it", (int)w->pid, i, how);
        slot_down(i, 500, NULL);
    }
}

static void slot_flush(int i) {
    slot *w = &g.slots[i];
    while (w->fd >= 0 && w->out_off < w->out.len) {
        ssize_t n = send(w->fd, w->out.p + w->out_off, w->out.len - w->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            w->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            slot_watch(i, 1);
            return;
        } else {
            slot_died(i, "died");
            return;
        }
    }
    if (w->fd < 0) return;
    if (w->out.cap > 4 * MIB) shx_buf_free(&w->out); /* after a large body */
    w->out.len = 0;
    w->out_off = 0;
    slot_watch(i, 0);
}

static void slot_note_loaded(int i, const char *name, uint64_t gen) {
    slot *w = &g.slots[i];
    w->models = shx_xrealloc(w->models, (w->nmodels + 1) * sizeof *w->models);
    w->models[w->nmodels++] = (mm_loaded){shx_xstrdup(name), gen};
}

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int pipeline_depth(void) {
    if (g.cfg.multi_model || g.service_us <= 0) return 1;
    double d = 1 + PIPELINE_BUDGET_US / g.service_us;
    return d >= g.cfg.pipeline ? g.cfg.pipeline : (int)d;
}

/* A reply from worker i for request r came now: its service time is since the worker could start it. */
static void note_service(int i, req_ctx *r) {
    int64_t now = now_us(), from = r->sent_us > g.slots[i].last_reply_us ? r->sent_us : g.slots[i].last_reply_us;
    g.slots[i].last_reply_us = now;
    double t = (double)(now - from);
    g.service_us = g.service_us <= 0 ? t : g.service_us + (t - g.service_us) / 8;
}

static void send_invoke(int i, req_ctx *r) {
    const char *s[SHX_FRAME_NSTR] = {r->ctype, r->accept, r->attrs, r->model ? r->model : ""};
    r->step = STEP_INVOKE;
    r->sent_us = now_us();
    slot_send(i, SHX_FR_INVOKE, s, r->body.p, r->body.len);
}

/* Multi-model: the next frame request r (the only one at worker i) needs: unload a model the registry dropped or
 * replaced, load the one it wants, then invoke; or its answer when there is nothing left to ask. */
static void mm_next(int i, req_ctx *r) {
    slot *w = &g.slots[i];
    for (size_t k = 0; k < w->nmodels; k++) {
        mm_model *m = mm_find(w->models[k].name);
        if (!m || m->gen != w->models[k].gen) {
            r->step = STEP_UNLOAD;
            free(r->step_name);
            r->step_name = shx_xstrdup(w->models[k].name);
            const char *s[SHX_FRAME_NSTR] = {r->step_name};
            slot_send(i, SHX_FR_UNLOAD, s, NULL, 0);
            return;
        }
    }
    if (r->route == R_MM_LOAD) {
        r->step = STEP_LOAD;
        const char *s[SHX_FRAME_NSTR] = {r->load_name, r->load_url};
        slot_send(i, SHX_FR_LOAD, s, NULL, 0);
        return;
    }
    for (size_t k = 0; k < w->nmodels; k++)
        if (!strcmp(w->models[k].name, r->model)) {
            send_invoke(i, r);
            return;
        }
    mm_model *m = mm_find(r->model);
    if (!m || m->loading) {
        char msg[512];
        snprintf(msg, sizeof msg, "model %s is not loaded: load it with POST /models first", r->model);
        list_remove(&w->jobs, r);
        job_error(r, 404, msg);
        return;
    }
    r->step = STEP_LOAD;
    r->load_gen = m->gen;
    const char *s[SHX_FRAME_NSTR] = {r->model, m->url};
    slot_send(i, SHX_FR_LOAD, s, NULL, 0);
}

/* A frame from worker i. */
static void slot_frame(int i, const shx_frame *f) {
    slot *w = &g.slots[i];
    if (w->state == SLOT_STARTING) {
        if (f->type == SHX_FR_READY) {
            w->state = SLOT_UP;
            g.loaded_once[i] = 1;
            int all = 1;
            for (int k = 0; k < g.cfg.workers; k++) all &= g.loaded_once[k];
            if (all && !g.ever_ready) {
                g.ever_ready = 1;
                shx_info("the model is loaded in all %d workers: ready", g.cfg.workers);
            }
        } else if (f->type == SHX_FR_FAILED) {
            shx_error("worker %d could not load the model: %s", (int)w->pid, f->s[0]);
            exit(1);
        } else {
            slot_died(i, "sent garbage");
        }
        return;
    }
    req_ctx *r = w->jobs.head;
    if (f->type != SHX_FR_REPLY || !r || r->step == STEP_NONE) {
        shx_error("worker %d (slot %d) sent an unexpected frame (type %u): replacing it", (int)w->pid, i, f->type);
        slot_down(i, 500, "the worker broke the protocol; it is being replaced");
        return;
    }
    switch (r->step) {
    case STEP_UNLOAD:
        for (size_t k = 0; k < w->nmodels; k++)
            if (!strcmp(w->models[k].name, r->step_name)) {
                free(w->models[k].name);
                w->models[k] = w->models[--w->nmodels];
                break;
            }
        mm_next(i, r);
        break;
    case STEP_LOAD:
        if (f->a != 200) {
            list_pop(&w->jobs);
            if (r->route == R_MM_LOAD) mm_load_done(r, 0);
            job_answer(r, f->a, f->s[0], f->s[1], f->body, f->body_len);
        } else if (r->route == R_MM_LOAD) {
            slot_note_loaded(i, r->load_name, r->load_gen);
            list_pop(&w->jobs);
            mm_load_done(r, 1);
        } else {
            slot_note_loaded(i, r->model, r->load_gen);
            mm_next(i, r);
        }
        break;
    default:
        list_pop(&w->jobs);
        note_service(i, r);
        job_answer(r, f->a, f->s[0], f->s[1], f->body, f->body_len);
        break;
    }
}

/* Read and handle what worker i sent.  Returns 1 when there may be more to read, 0 when not (or it is gone). */
static int slot_readable(int i) {
    slot *w = &g.slots[i];
    ssize_t n = shx_frame_reader_fill(&w->in, w->fd, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    shx_frame f;
    int r = 0;
    while (w->fd >= 0 && (r = shx_frame_reader_next(&w->in, &f)) == 1) slot_frame(i, &f);
    if (w->fd < 0) return 0;
    if (r < 0) {
        shx_error("worker %d (slot %d) sent garbage: replacing it", (int)w->pid, i);
        slot_down(i, 500, "the worker broke the protocol; it is being replaced");
        return 0;
    }
    if (n <= 0) {
        slot_died(i, "died");
        return 0;
    }
    return 1;
}

/* Hand waiting requests to workers: an idle worker first, else (single model, fast handler) pipeline up to
 * pipeline_depth() requests per worker, so that a worker finds its next request in its socket the moment it
 * answers one instead of waiting for the front to hear of it. */
static void dispatch(void) {
    int depth = pipeline_depth();
    while (g.q.head && !g.closing) {
        int best = -1;
        for (int i = 0; i < g.cfg.workers; i++) {
            slot *w = &g.slots[i];
            if (w->state == SLOT_UP && w->jobs.n < depth && (best < 0 || w->jobs.n < g.slots[best].jobs.n)) best = i;
        }
        if (best < 0) return;
        req_ctx *r = list_pop(&g.q);
        r->queued = 0;
        r->slot = best;
        list_push(&g.slots[best].jobs, r);
        if (g.cfg.multi_model) mm_next(best, r);
        else send_invoke(best, r);
    }
}

/* Deadlines: a worker whose current request overran it is killed (504); waiting requests give up (504).
 * Returns the next deadline (INT64_MAX when none). */
static int64_t sweep(int64_t now) {
    int64_t next = INT64_MAX;
    for (int i = 0; i < g.cfg.workers; i++) {
        req_ctx *r = g.slots[i].jobs.head;
        if (!r) continue;
        if (r->deadline <= now) {
            char msg[512];
            snprintf(msg, sizeof msg, "the request took longer than SAGEMAKER_MODEL_SERVER_TIMEOUT=%d s; worker %d "
                     "was stopped and is being replaced", g.cfg.timeout_s, (int)g.slots[i].pid);
            shx_warn("worker %d (slot %d) timed out after %d s: killing and replacing it", (int)g.slots[i].pid, i,
                     g.cfg.timeout_s);
            slot_down(i, 504, msg);
        } else if (r->deadline < next) {
            next = r->deadline;
        }
    }
    while (g.q.head && g.q.head->deadline <= now) {
        req_ctx *r = list_pop(&g.q);
        r->queued = 0;
        job_error(r, 504, "no worker became free before the request's deadline (SAGEMAKER_MODEL_SERVER_TIMEOUT)");
    }
    if (g.q.head && g.q.head->deadline < next) next = g.q.head->deadline;
    return next;
}

/* ---- request routing ---------------------------------------------------------------------------------------- */
static char *mm_describe_one(const mm_model *m) {
    char *n = json_escape_dup(m->name), *u = json_escape_dup(m->url);
    char *out = shx_xasprintf("{\"modelName\":%s,\"modelUrl\":%s}", n, u);
    free(n), free(u);
    return out;
}

static enum MHD_Result mm_list(struct MHD_Connection *c) {
    shx_buf b = {0};
    shx_buf_adds(&b, "{\"models\":[");
    int first = 1;
    for (size_t k = 0; k < g.nmm; k++) {
        if (g.mm[k].loading) continue;
        char *d = mm_describe_one(&g.mm[k]);
        shx_buf_printf(&b, "%s%s", first ? "" : ",", d);
        free(d);
        first = 0;
    }
    shx_buf_adds(&b, "]}");
    return send_json(c, 200, shx_buf_steal(&b));
}

static enum MHD_Result mm_describe(struct MHD_Connection *c, const char *name) {
    mm_model *m = mm_find(name);
    if (!m || m->loading) {
        char msg[512];
        snprintf(msg, sizeof msg, "model %s is not loaded", name);
        return send_error(c, 404, msg);
    }
    char *d = mm_describe_one(m);
    char *out = shx_xasprintf("[%s]", d);
    free(d);
    return send_json(c, 200, out);
}

static enum MHD_Result mm_unload(struct MHD_Connection *c, const char *name) {
    mm_model *m = mm_find(name);
    char msg[512];
    snprintf(msg, sizeof msg, "model %s is not loaded", name);
    if (!m || m->loading) return send_error(c, 404, msg);
    mm_remove(name); /* workers drop it the next time they are used (mm_next) */
    char *n = json_escape_dup(name);
    char *out = shx_xasprintf("{\"status\":\"Model %.*s unloaded\"}", (int)strlen(n) - 2, n + 1);
    free(n);
    shx_info("model %s unloaded", name);
    return send_json(c, 200, out);
}

/* POST /models: check the body and register the model as loading; one worker loads it now (so a broken model
 * fails this call), the others on first use.  0, or an HTTP status with msg set. */
static int mm_load_begin(req_ctx *rc, char *msg, size_t msglen) {
    cJSON *j = cJSON_ParseWithLength(rc->body.p ? rc->body.p : "", rc->body.len);
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(j, "model_name");
    const cJSON *ju = cJSON_GetObjectItemCaseSensitive(j, "url");
    if (!cJSON_IsString(jn) || !cJSON_IsString(ju) || !*jn->valuestring || strchr(jn->valuestring, '/')) {
        cJSON_Delete(j);
        snprintf(msg, msglen, "POST /models needs a JSON body {\"model_name\": \"<name without />\", \"url\": "
                              "\"<model directory>\"}");
        return 400;
    }
    char *name = shx_xstrdup(jn->valuestring);
    char *url = ju->valuestring[0] == '/' ? shx_xstrdup(ju->valuestring)
                                          : shx_path_join(g.cfg.models_dir, ju->valuestring);
    cJSON_Delete(j);
    int status = 0;
    if (!shx_is_dir(url)) {
        snprintf(msg, msglen, "model url %s is not a directory", url);
        status = 404;
    } else if (mm_find(name)) {
        snprintf(msg, msglen, "model %s is already loaded: DELETE /models/%s first to replace it", name, name);
        status = 409;
    }
    if (status) {
        free(name), free(url);
        return status;
    }
    g.mm = shx_xrealloc(g.mm, (g.nmm + 1) * sizeof *g.mm);
    rc->load_gen = ++g.mm_gen;
    g.mm[g.nmm++] = (mm_model){shx_xstrdup(name), shx_xstrdup(url), rc->load_gen, 1};
    rc->load_name = name;
    rc->load_url = url;
    return 0;
}

/* Requests without a body (/ping, /execution-parameters, the multi-model GET/DELETE routes, 404) are answered
 * on the second call, once MHD has the whole request: queueing an answer on the first call makes MHD close the
 * connection.  Only 413 is answered at once.  Requests for a worker are queued and their connection suspended;
 * the handler runs once more when the answer is ready (job_answer resumes the connection). */
static req_ctx ctx_ping, ctx_exec; /* markers for the two hot body-less routes: no allocation */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    req_ctx *rc = *con_cls;
    if (rc && rc != &ctx_ping && rc != &ctx_exec && rc->done) { /* back from a worker */
        struct MHD_Response *resp = rc->resp;
        rc->resp = NULL;
        log_request(method, url, rc->status, rc->start_ms);
        return queue_response(c, rc->status, resp);
    }
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), del = !strcmp(method, "DELETE");
    if (!rc) {
        if (get && !strcmp(url, "/ping")) {
            *con_cls = &ctx_ping;
            return MHD_YES;
        }
        if (get && !strcmp(url, "/execution-parameters")) {
            *con_cls = &ctx_exec;
            return MHD_YES;
        }
        route rt = R_NONE;
        const char *model = NULL;
        size_t model_len = 0;
        if (!g.cfg.multi_model && post && !strcmp(url, "/invocations")) rt = R_INVOKE;
        if (g.cfg.multi_model && !strncmp(url, "/models", 7)) {
            const char *rest = url + 7;
            if (!strcmp(rest, "") || !strcmp(rest, "/")) {
                if (get) rt = R_MM_LIST;
                if (post) rt = R_MM_LOAD;
            } else if (rest[0] == '/') {
                const char *name = rest + 1, *slash = strchr(name, '/');
                model_len = slash ? (size_t)(slash - name) : strlen(name);
                if (model_len && !slash && get) rt = R_MM_DESCRIBE, model = name;
                else if (model_len && !slash && del) rt = R_MM_UNLOAD, model = name;
                else if (model_len && slash && !strcmp(slash, "/invoke") && post) rt = R_MM_INVOKE, model = name;
            }
        }
        int has_body = rt == R_INVOKE || rt == R_MM_LOAD || rt == R_MM_INVOKE;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (has_body && cl && strtoull(cl, NULL, 10) > g.cfg.max_body) {
            char msg[200];
            snprintf(msg, sizeof msg, "the body (%s bytes) is larger than %zu bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB=%d)",
                     cl, g.cfg.max_body, g.cfg.max_payload_mb);
            log_request(method, url, 413, shx_now_ms());
            return send_error(c, 413, msg);
        }
        rc = shx_xcalloc(1, sizeof *rc);
        rc->route = rt;
        rc->slot = -1;
        if (model) rc->model = shx_xstrndup(model, model_len);
        if (has_body) {
            g.in_flight++;
            rc->counted = 1;
        }
        *con_cls = rc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (rc == &ctx_ping || rc == &ctx_exec || !rc->counted) { /* a body nobody reads: drop it */
            *upload_size = 0;
            return MHD_YES;
        }
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
    if (rc == &ctx_ping) {
        int ok = ping_ok();
        log_request(method, url, ok ? 200 : 503, start);
        if (ok) return send_answer(c, 200, NULL, NULL, 0);
        return send_error(c, 503, "the model is not loaded yet");
    }
    if (rc == &ctx_exec) {
        char *j = shx_xasprintf("{\"MaxConcurrentTransforms\":%d,\"BatchStrategy\":\"MULTI_RECORD\","
                                "\"MaxPayloadInMB\":%d}", g.cfg.max_concurrent_transforms, g.cfg.max_payload_mb);
        log_request(method, url, 200, start);
        return send_json(c, 200, j);
    }
    enum MHD_Result ret;
    switch (rc->route) {
    case R_NONE: {
        char msg[600];
        snprintf(msg, sizeof msg, "no route for %.16s %.500s%s", method, url,
                 g.cfg.multi_model ? " (multi-model endpoint: /models, /models/<name>/invoke, /ping)"
                                   : " (routes: GET /ping, POST /invocations, GET /execution-parameters)");
        log_request(method, url, 404, start);
        return send_error(c, 404, msg);
    }
    case R_MM_LIST: ret = mm_list(c); break;
    case R_MM_DESCRIBE: ret = mm_describe(c, rc->model); break;
    case R_MM_UNLOAD: ret = mm_unload(c, rc->model); break;
    default: {
        char msg[1024];
        int status = 0;
        if (rc->too_large) {
            snprintf(msg, sizeof msg, "the body is larger than %zu bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB=%d)",
                     g.cfg.max_body, g.cfg.max_payload_mb);
            status = 413;
        } else if (g.closing) {
            snprintf(msg, sizeof msg, "smhost is shutting down");
            status = 503;
        } else if (!g.ever_ready) {
            snprintf(msg, sizeof msg, "the model is not loaded yet: wait until GET /ping answers 200");
            status = 503;
        } else if (rc->route == R_MM_LOAD) {
            status = mm_load_begin(rc, msg, sizeof msg);
        }
        if (status) {
            log_request(method, url, status, start);
            return send_error(c, status, msg);
        }
        rc->conn = c;
        rc->ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        rc->accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
        rc->attrs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amzn-SageMaker-Custom-Attributes");
        rc->start_ms = start;
        rc->deadline = start + (int64_t)g.cfg.timeout_s * 1000;
        rc->queued = 1;
        list_push(&g.q, rc);
        MHD_suspend_connection(c); /* dispatch() hands it to a worker after this round of MHD_run */
        return MHD_YES;
    }
    }
    log_request(method, url, -1, start);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    req_ctx *rc = *con_cls;
    *con_cls = NULL;
    if (!rc || rc == &ctx_ping || rc == &ctx_exec) return;
    if (rc->queued) list_remove(&g.q, rc);
    if (rc->slot >= 0) { /* cannot happen while suspended; if it does, its worker's answer would go astray */
        int i = rc->slot;
        list_remove(&g.slots[i].jobs, rc);
        slot_down(i, 500, "the worker was stopped");
    }
    if (rc->route == R_MM_LOAD && rc->load_name && !rc->done) mm_load_done(rc, 0);
    if (rc->counted) g.in_flight--;
    if (rc->resp) MHD_destroy_response(rc->resp);
    shx_buf_free(&rc->body);
    free(rc->model), free(rc->step_name), free(rc->load_name), free(rc->load_url);
    free(rc);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    shx_log(SHX_DEBUG, "microhttpd: %s", msg);
}

/* ---- the event loop: HTTP, workers, the zygote, signals, shutdown ------------------------------------------- */
static int epoll_add(int fd, uint64_t tag) {
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
    return epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev);
}

static int spawn(int ctl, int i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        shx_error("socketpair for worker %d: %s", i, strerror(errno));
        return -1;
    }
    slot *w = &g.slots[i];
    w->gen++;
    w->fd = sv[0];
    w->pid = 0;
    w->state = SLOT_STARTING;
    w->spawned_ms = shx_now_ms();
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    int rc = epoll_add(sv[0], TAG_SLOT + (uint64_t)i);
    if (rc == 0) rc = shx_send_fd(ctl, sv[1], i, w->gen);
    close(sv[1]);
    return rc;
}

static const char *describe_status(int st, char *buf, size_t len) {
    if (WIFSIGNALED(st)) snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else snprintf(buf, len, "exited with code %d", WEXITSTATUS(st));
    return buf;
}

/* A frame from the zygote.  Returns 0, -1 when the zygote is gone, or an exit code when serving cannot go on. */
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
        if (f.a >= 0 && f.a < g.cfg.workers && g.slots[f.a].gen == f.b && g.slots[f.a].state != SLOT_DEAD)
            g.slots[f.a].pid = f.c;
        else
            kill(f.c, SIGKILL); /* its slot was given up before we learned its pid */
        shx_debug("worker %d started (slot %d)", (int)f.c, (int)f.a);
        break;
    case SHX_FR_DIED:
        /* Usually its socket's EOF told us already; not when a child of the worker still holds the socket. */
        for (int i = 0; i < g.cfg.workers; i++)
            if (g.slots[i].pid == f.c && g.slots[i].state != SLOT_DEAD) {
                /* Replies it sent before dying come first: only the request it was running gets the 500. */
                while (g.slots[i].fd >= 0 && slot_readable(i)) continue;
                if (g.slots[i].pid == f.c && g.slots[i].state != SLOT_DEAD)
                    slot_died(i, describe_status(f.a, why, sizeof why));
            }
        if (!(WIFSIGNALED(f.a) && WTERMSIG(f.a) == SIGKILL))
            shx_debug("worker %d %s", (int)f.c, describe_status(f.a, why, sizeof why));
        break;
    default: break;
    }
    shx_frame_free(&f);
    return ret;
}

static void fail_queue(int status, const char *msg) {
    req_ctx *r;
    while ((r = list_pop(&g.q))) {
        r->queued = 0;
        job_error(r, status, msg);
    }
}

static int serve_loop(int ctl, pid_t zygote, int sfd) {
    int zygote_ready = 0, exit_code = 0;
    int64_t grace_deadline = 0, close_deadline = 0;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(g.d, MHD_DAEMON_INFO_EPOLL_FD);
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    if (g.ep < 0 || !di || epoll_add(di->epoll_fd, TAG_MHD) || epoll_add(sfd, TAG_SIGNAL) || epoll_add(ctl, TAG_CTL)) {
        shx_error("serve: cannot set up the event loop: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    int64_t next_deadline = INT64_MAX;
    for (;;) {
        int64_t now = shx_now_ms();
        int timeout = 100;
        MHD_UNSIGNED_LONG_LONG mt;
        if (MHD_get_timeout(g.d, &mt) == MHD_YES && mt < (MHD_UNSIGNED_LONG_LONG)timeout) timeout = (int)mt;
        if (next_deadline != INT64_MAX && next_deadline - now < timeout)
            timeout = next_deadline <= now ? 0 : (int)(next_deadline - now);
        struct epoll_event ev[64];
        int n = epoll_wait(g.ep, ev, 64, timeout);
        if (n < 0 && errno != EINTR) {
            shx_error("epoll_wait: %s", strerror(errno));
            return SHX_EXIT_OSERR;
        }
        for (int k = 0; k < n; k++) {
            uint64_t tag = ev[k].data.u64;
            if (tag == TAG_SIGNAL) {
                struct signalfd_siginfo si;
                if (read(sfd, &si, sizeof si) == sizeof si && !g.stopping) {
                    g.stopping = 1;
                    grace_deadline = shx_now_ms() + (int64_t)g.cfg.grace_s * 1000;
                    MHD_socket ls = MHD_quiesce_daemon(g.d);
                    if (ls != MHD_INVALID_SOCKET) close(ls);
                    shx_info("%s: no new connections; finishing %d request(s) in flight (grace %d s)",
                             strsignal((int)si.ssi_signo), g.in_flight, g.cfg.grace_s);
                }
            } else if (tag == TAG_CTL) {
                int rc = handle_zygote_frame(ctl, &zygote_ready);
                if (rc < 0) {
                    int st = 0;
                    char why[128] = "exited";
                    if (waitpid(zygote, &st, 0) == zygote) describe_status(st, why, sizeof why);
                    shx_error("the serving zygote (which loads the handler%s) %s: %s",
                              g.cfg.preload ? " and model" : "", why,
                              zygote_ready ? "no workers can be replaced, stopping" : "the model could not be loaded");
                    return WIFSIGNALED(st) || !zygote_ready ? SHX_EXIT_SOFTWARE : 1;
                }
                if (rc > 0) return rc;
            } else if (tag >= TAG_SLOT && tag < TAG_SLOT + (uint64_t)g.cfg.workers) {
                int i = (int)(tag - TAG_SLOT);
                if (g.slots[i].fd < 0) continue;
                if (ev[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) slot_readable(i);
                if (g.slots[i].fd >= 0 && (ev[k].events & EPOLLOUT)) slot_flush(i);
            }
        }
        now = shx_now_ms();
        next_deadline = sweep(now);
        MHD_run(g.d); /* new requests are queued, answered ones sent */
        dispatch();
        for (int i = 0; i < g.cfg.workers; i++)
            if (g.slots[i].fd >= 0 && g.slots[i].out.len > g.slots[i].out_off) slot_flush(i);
        for (int i = 0; i < g.cfg.workers && next_deadline != 0; i++)
            if (g.slots[i].jobs.head && g.slots[i].jobs.head->deadline < next_deadline)
                next_deadline = g.slots[i].jobs.head->deadline;
        /* reap anything else that was left to us (PID 1, or orphans of the zygote) */
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0)
            if (p == zygote) {
                shx_error("the serving zygote exited unexpectedly");
                return SHX_EXIT_SOFTWARE;
            }
        if (!g.stopping && zygote_ready) {
            for (int i = 0; i < g.cfg.workers; i++)
                if (g.slots[i].state == SLOT_DEAD && now - g.slots[i].spawned_ms >= 1000 && spawn(ctl, i)) {
                    shx_error("cannot pass a worker socket to the zygote: %s", strerror(errno));
                    return SHX_EXIT_SOFTWARE;
                }
        }
        if (g.stopping) {
            if (g.in_flight == 0) break;
            if (!g.closing && now >= grace_deadline) {
                shx_warn("grace period over with %d request(s) still running: stopping their workers", g.in_flight);
                g.closing = 1;
                close_deadline = now + 1000; /* time for their 5xx answers to go out */
                char msg[256];
                for (int i = 0; i < g.cfg.workers; i++)
                    if (g.slots[i].state != SLOT_DEAD) {
                        snprintf(msg, sizeof msg, "smhost is shutting down and its grace period "
                                 "(SMHOST_SERVE_GRACE_SECONDS=%d) is over: worker %d was stopped", g.cfg.grace_s,
                                 (int)g.slots[i].pid);
                        slot_down(i, 500, msg);
                    }
                fail_queue(503, "smhost is shutting down");
                next_deadline = 0;
            } else if (g.closing && now >= close_deadline) {
                break;
            }
        }
    }
    return exit_code;
}

int shx_serve_main(const shx_config *config, int argc, char **argv) {
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
    if (load_settings(&g.cfg, config, err, sizeof err)) {
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
    int sv[2];
    if (sfd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        shx_error("serve: cannot set up: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    /* The zygote is forked while this process still has one thread. */
    shx_serve_spec spec = {.cfg = config,
                           .handler_name = g.cfg.handler_name,
                           .handler_path = g.cfg.handler_path,
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
        shx_zygote_main(&spec, sv[1]);
    }
    close(sv[1]);
    int ctl = sv[0];

    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_USE_ERROR_LOG, (uint16_t)g.cfg.port, NULL,
        NULL, on_request, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
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

    g.d = d;
    int code = serve_loop(ctl, zygote, sfd);

    /* Stop: workers still busy are killed; requests still waiting for an answer get one before MHD stops. */
    g.closing = 1;
    g.stopping = 1;
    for (int i = 0; i < g.cfg.workers; i++)
        if (g.slots[i].state != SLOT_DEAD) slot_down(i, 503, "smhost is shutting down");
    fail_queue(503, "smhost is shutting down");
    MHD_run(d);
    MHD_stop_daemon(d);
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
