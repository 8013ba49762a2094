/* HTTP routing of the front: the contract's routes, answers, and the multi-model endpoints (front.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
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

#include "core/config.h"
#include "core/exitcodes.h"
#include "core/log.h"
#include "serve/front.h"
#include "serve/inline.h"
#include "serve/worker.h"
#include "core/util.h"

/* ---- answers ------------------------------------------------------------------------------------------------- */
/* One line per request costs 64 MB of logs per million requests: requests are logged at INFO only with
 * SMHOST_SERVE_ACCESS_LOG=true (else DEBUG); 5xx answers at WARNING, at most 10 a second (then a count). */
static void log_request(const char *method, const char *url, int status, int64_t start_ms) {
    int level = !strcmp(url, "/ping") ? SHX_DEBUG
                : status >= 500       ? SHX_WARNING
                : g.cfg.access_log    ? SHX_INFO
                                      : SHX_DEBUG;
    if (level < shx_log_get_level()) return;
    int64_t now = shx_now_ms();
    if (level == SHX_WARNING) {
        static int64_t second;
        static int logged;
        static long dropped;
        if (now - second >= 1000) {
            if (dropped) shx_warn("%ld more 5xx answers in the last second were not logged", dropped);
            second = now, logged = 0, dropped = 0;
        }
        if (++logged > 10) {
            dropped++;
            return;
        }
    }
    shx_log(level, "%s %.200s %d %lld ms", method, url, status, (long long)(now - start_ms));
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

/* A 503 from smhost itself (not loaded yet, queue full, shutting down) says when to try again. */
static struct MHD_Response *error_response(int status, const char *msg) {
    char *body = shx_json_error(status, msg);
    struct MHD_Response *resp = make_response("application/json", NULL, body, strlen(body));
    free(body);
    if (resp && status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    return resp;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *msg) {
    return queue_response(c, status, error_response(status, msg));
}

#define QUEUE_FULL_MSG "the server holds as many request bodies as it may (SMHOST_SERVE_QUEUE_MB): retry later"

/* An answer before the request's body was read (413, 503): the connection closes after it, lingering so that a
 * client still sending its body reads the answer instead of a reset.  A client that waits for 100 Continue sends
 * no body. */
static enum MHD_Result send_reject(struct MHD_Connection *c, conn_info *ci, int status, const char *msg) {
    const char *expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    if (!expect || strcasecmp(expect, "100-continue")) conn_linger(ci);
    struct MHD_Response *resp = error_response(status, msg);
    if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    return queue_response(c, status, resp);
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, char *json) {
    enum MHD_Result ret = send_answer(c, status, "application/json", json, strlen(json));
    free(json);
    return ret;
}

/* The request's answer is ready: keep it and wake its connection, whose handler queues it (on_request). */
void job_answer(req_ctx *r, int status, const char *ctype, const char *attrs, const void *body, size_t len) {
    r->resp = make_response(ctype, attrs, body, len);
    r->status = status;
    r->done = 1;
    r->slot = -1;
    r->queued = 0;
    r->step = STEP_NONE;
    MHD_resume_connection(r->conn);
}

void job_error(req_ctx *r, int status, const char *msg) {
    char *body = shx_json_error(status, msg);
    job_answer(r, status, "application/json", NULL, body, strlen(body));
    free(body);
    if (r->resp && status == 503) MHD_add_response_header(r->resp, "Retry-After", "1");
}

/* A handler declaring SMH_HANDLER_THREAD_SAFE answers on this thread (inline.h): no queue, no worker. */
typedef struct inline_answer {
    int status;
    struct MHD_Response *resp;
} inline_answer;

static void inline_done(void *ctx, int status, const char *ctype, const char *attrs, const void *body, size_t len) {
    inline_answer *a = ctx;
    a->status = status;
    a->resp = make_response(ctype, attrs, body, len);
}

static enum MHD_Result invoke_inline(struct MHD_Connection *c, req_ctx *rc, const char *method, const char *url,
                                     int64_t start) {
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *acc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    const char *attrs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amzn-SageMaker-Custom-Attributes");
    smh_request req = {.struct_size = sizeof req,
                       .body = rc->body.p ? rc->body.p : "",
                       .body_len = rc->body.len,
                       .content_type = ct ? ct : "",
                       .accept = acc ? acc : "",
                       .custom_attributes = attrs ? attrs : "",
                       .model_name = ""};
    inline_answer a = {500, NULL};
    front_unlock(); /* the handler runs in parallel on the pool's threads; the front's state stays locked */
    shx_inline_invoke(&req, inline_done, &a);
    front_lock();
    log_request(method, url, a.status, start);
    return queue_response(c, a.status, a.resp);
}

/* In inline mode libmicrohttpd calls the front's callbacks from several threads: they take this lock, which is
 * let go only while an inline handler runs.  The event loop is one thread and never locks. */
static pthread_mutex_t front_mutex = PTHREAD_MUTEX_INITIALIZER;
void front_lock(void) {
    if (g.threaded) pthread_mutex_lock(&front_mutex);
}
void front_unlock(void) {
    if (g.threaded) pthread_mutex_unlock(&front_mutex);
}

/* ---- multi-model registry ----------------------------------------------------------------------------------- */
mm_model *mm_find(const char *name) {
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

static char *json_status(const char *fmt, const char *name) {
    char *text = shx_xasprintf(fmt, name);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", text);
    free(text);
    return shx_json_print(o);
}

static cJSON *mm_describe_one(const mm_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "modelName", m->name);
    cJSON_AddStringToObject(o, "modelUrl", m->url);
    return o;
}

/* POST /models finished (ok: its worker loaded the model): the registry entry becomes visible, or goes. */
void mm_load_done(req_ctx *r, int ok) {
    mm_model *m = mm_find(r->load_name);
    if (ok && m && m->gen == r->load_gen) m->loading = 0;
    else if (!ok && m && m->gen == r->load_gen && m->loading) mm_remove(r->load_name);
    if (!ok) return;
    shx_info("model %s loaded from %s", r->load_name, r->load_url);
    char *body = json_status("Model %s loaded", r->load_name);
    job_answer(r, 200, "application/json", NULL, body, strlen(body));
    free(body);
}

/* ---- request routing ---------------------------------------------------------------------------------------- */
static enum MHD_Result mm_list(struct MHD_Connection *c) {
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "models");
    for (size_t k = 0; k < g.nmm; k++)
        if (!g.mm[k].loading) cJSON_AddItemToArray(list, mm_describe_one(&g.mm[k]));
    return send_json(c, 200, shx_json_print(o));
}

static enum MHD_Result mm_describe(struct MHD_Connection *c, const char *name) {
    mm_model *m = mm_find(name);
    if (!m || m->loading) {
        char msg[512];
        snprintf(msg, sizeof msg, "model %s is not loaded", name);
        return send_error(c, 404, msg);
    }
    cJSON *list = cJSON_CreateArray();
    cJSON_AddItemToArray(list, mm_describe_one(m));
    return send_json(c, 200, shx_json_print(list));
}

static enum MHD_Result mm_unload(struct MHD_Connection *c, const char *name) {
    mm_model *m = mm_find(name);
    char msg[512];
    snprintf(msg, sizeof msg, "model %s is not loaded", name);
    if (!m || m->loading) return send_error(c, 404, msg);
    mm_remove(name); /* workers drop it the next time they are used (mm_next) */
    char *out = json_status("Model %s unloaded", name);
    shx_info("model %s unloaded", name);
    return send_json(c, 200, out);
}

/* POST /models: check the body and register the model as loading; one worker loads it now (so a broken model
 * fails this call), the others on first use.  0, or an HTTP status with msg set. */
#define MM_NAME_MAX 1024

/* NULL when name can name a model (1..MM_NAME_MAX bytes, no '/', no control characters, not "." or ".."). */
static const char *mm_bad_name(const char *name) {
    size_t n = strlen(name);
    if (!n) return "it is empty";
    if (n > MM_NAME_MAX) return "it is longer than 1024 bytes";
    if (!strcmp(name, ".") || !strcmp(name, "..")) return "it is . or ..";
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p == '/' || *p < 0x20 || *p == 0x7f) return "it holds '/' or a control character";
    return NULL;
}

/* The model directory for url (absolute, or relative to <root>/models), resolved: it must be a directory under
 * the models root.  Returns the path as given (joined) or NULL with msg and *status set. */
static char *mm_resolve_url(const char *url, char *msg, size_t msglen, int *status) {
    if (!*url) {
        snprintf(msg, msglen, "the model url is empty: give a directory under %s", g.cfg.models_dir);
        *status = 400;
        return NULL;
    }
    char *path = url[0] == '/' ? shx_xstrdup(url) : shx_path_join(g.cfg.models_dir, url);
    char real[PATH_MAX], root[PATH_MAX];
    if (!realpath(path, real) || !shx_is_dir(real)) {
        snprintf(msg, msglen, "model url %.300s is not a directory", path);
        *status = 404;
    } else if (!realpath(g.cfg.models_dir, root) || strncmp(real, root, strlen(root)) || real[strlen(root)] != '/') {
        snprintf(msg, msglen, "model url %.300s is outside the models root %.200s (it resolves to %.300s): models are "
                 "loaded only from there", path, g.cfg.models_dir, real);
        *status = 403;
    } else {
        return path;
    }
    free(path);
    return NULL;
}

/* POST /models: check the body and register the model as loading; one worker loads it now (so a broken model
 * fails this call), the others on first use.  0, or an HTTP status with msg set. */
static int mm_load_begin(req_ctx *rc, char *msg, size_t msglen) {
    cJSON *j = cJSON_ParseWithLength(rc->body.p ? rc->body.p : "", rc->body.len);
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(j, "model_name");
    const cJSON *ju = cJSON_GetObjectItemCaseSensitive(j, "url");
    if (!cJSON_IsString(jn) || !cJSON_IsString(ju)) {
        cJSON_Delete(j);
        snprintf(msg, msglen, "POST /models needs a JSON body {\"model_name\": \"<name without />\", \"url\": "
                              "\"<model directory>\"}");
        return 400;
    }
    /* a \u0000 in the body would cut a name or url short where cJSON hands it over */
    const char *why = memmem(rc->body.p, rc->body.len, "\\u0000", 6) ? "it holds a NUL character"
                                                                         : mm_bad_name(jn->valuestring);
    if (why) {
        snprintf(msg, msglen, "model_name \"%.100s\" cannot name a model: %s", jn->valuestring, why);
        cJSON_Delete(j);
        return 400;
    }
    int status = 0;
    char *url = mm_resolve_url(ju->valuestring, msg, msglen, &status);
    char *name = shx_xstrdup(jn->valuestring);
    cJSON_Delete(j);
    if (!status && mm_find(name)) {
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

/* ---- framing (RFC 9112 section 6): what libmicrohttpd 0.9.75 lets through --------------------------------- */
typedef struct framing {
    int ncl, cl_conflict, nte;
    const char *cl, *te;
} framing;

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    framing *f = cls;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        if (f->ncl++ && strcmp(f->cl, value)) f->cl_conflict = 1;
        f->cl = value;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->nte++;
        f->te = value;
    }
    return MHD_YES;
}

/* 0 when the request's framing is unambiguous, else the status to answer (the connection then closes, so that
 * nothing after the request's headers can be taken as another request): both Content-Length and
 * Transfer-Encoding (a smuggling attempt: 400), Content-Length values that differ (400), a transfer coding other
 * than chunked alone (501: none is implemented). */
static int framing_error(struct MHD_Connection *c, char *msg, size_t len) {
    framing f = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, framing_header, &f);
    if (f.nte && f.ncl) {
        snprintf(msg, len, "the request has both Content-Length and Transfer-Encoding, which RFC 9112 forbids: "
                           "send one of them");
        return 400;
    }
    if (f.cl_conflict) {
        snprintf(msg, len, "the request has Content-Length headers with different values: send one");
        return 400;
    }
    if (f.nte > 1 || (f.nte && strcasecmp(f.te, "chunked"))) {
        snprintf(msg, len, "Transfer-Encoding %.100s is not implemented: send the body with Content-Length or "
                           "Transfer-Encoding: chunked alone", f.te);
        return 501;
    }
    return 0;
}

/* Requests without a body (/ping, /execution-parameters, the multi-model GET/DELETE routes, 404) are answered
 * on the second call, once MHD has the whole request: queueing an answer on the first call makes MHD close the
 * connection.  Only 413 is answered at once.  Requests for a worker are queued and their connection suspended;
 * the handler runs once more when the answer is ready (job_answer resumes the connection). */
static req_ctx ctx_ping, ctx_exec; /* markers for the two hot body-less routes: no allocation */

static enum MHD_Result on_request_locked(void *cls, struct MHD_Connection *c, const char *url, const char *method,
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
        char why[300];
        int bad = framing_error(c, why, sizeof why);
        if (bad) {
            log_request(method, url, bad, shx_now_ms());
            return send_reject(c, conn_of(c), bad, why);
        }
        if ((get || !strcmp(method, "HEAD")) && !strcmp(url, "/ping")) { /* HEAD: MHD sends the headers only */
            *con_cls = &ctx_ping;
            conn_phase_set(conn_of(c), CI_BODY, NULL);
            return MHD_YES;
        }
        if (get && !strcmp(url, "/execution-parameters")) {
            *con_cls = &ctx_exec;
            conn_phase_set(conn_of(c), CI_BODY, NULL);
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
                if (model_len > MM_NAME_MAX) model_len = 0; /* no such model: 404 */
                if (model_len && !slash && get) rt = R_MM_DESCRIBE, model = name;
                else if (model_len && !slash && del) rt = R_MM_UNLOAD, model = name;
                else if (model_len && slash && !strcmp(slash, "/invoke") && post) rt = R_MM_INVOKE, model = name;
            }
        }
        int has_body = rt == R_INVOKE || rt == R_MM_LOAD || rt == R_MM_INVOKE;
        conn_info *ci = conn_of(c);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        unsigned long long len = cl ? strtoull(cl, NULL, 10) : 0;
        if (has_body && len > g.cfg.max_body) {
            char msg[200];
            snprintf(msg, sizeof msg, "the body (%s bytes) is larger than %zu bytes (SAGEMAKER_MAX_PAYLOAD_IN_MB=%d)",
                     cl, g.cfg.max_body, g.cfg.max_payload_mb);
            log_request(method, url, 413, shx_now_ms());
            return send_reject(c, ci, 413, msg);
        }
        if (has_body && g.held + len + 1 > g.cfg.queue_budget) {
            log_request(method, url, 503, shx_now_ms());
            return send_reject(c, ci, 503, QUEUE_FULL_MSG);
        }
        rc = shx_xcalloc(1, sizeof *rc);
        rc->route = rt;
        rc->slot = -1;
        rc->ci = ci;
        if (model) rc->model = shx_xstrndup(model, model_len);
        if (has_body) {
            __atomic_add_fetch(&g.in_flight, 1, __ATOMIC_RELAXED); /* inline mode: several threads */
            rc->counted = 1;
            if (len) body_reserve(rc, len); /* fits: checked above */
        }
        conn_phase_set(ci, CI_BODY, rc);
        *con_cls = rc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (rc == &ctx_ping || rc == &ctx_exec || !rc->counted || rc->rejected) { /* a body nobody reads: drop it */
            if (rc != &ctx_ping && rc != &ctx_exec) rc->received += *upload_size;
            *upload_size = 0;
            /* a rejected chunked upload that does not end: give up on it (the client gets no answer) */
            if (rc != &ctx_ping && rc != &ctx_exec && rc->received > 4 * g.cfg.max_body + 64 * MIB) return MHD_NO;
            return MHD_YES;
        }
        rc->received += *upload_size;
        if (rc->received > g.cfg.max_body) {
            rc->too_large = 1;
            rc->rejected = 1; /* the rest is read and dropped; the 413 goes out when the body ends */
            body_release(rc);
        } else if (body_reserve(rc, *upload_size)) {
            rc->rejected = 1; /* over the queue budget: 503 when the body ends */
            body_release(rc);
        } else {
            shx_buf_add(&rc->body, upload, *upload_size);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    int64_t start = shx_now_ms();
    if (rc == &ctx_ping) {
        int ok = shx_inline_active() || ping_ok();
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
        } else if (rc->rejected) {
            snprintf(msg, sizeof msg, "%s", QUEUE_FULL_MSG);
            status = 503;
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
        if (rc->route == R_INVOKE && shx_inline_active()) return invoke_inline(c, rc, method, url, start);
        rc->conn = c;
        rc->ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        rc->accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
        rc->attrs = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amzn-SageMaker-Custom-Attributes");
        rc->start_ms = start;
        rc->deadline = start + (int64_t)g.cfg.timeout_s * 1000;
        rc->queued = 1;
        conn_phase_set(rc->ci, CI_WAIT, NULL);
        list_push(&g.q, rc);
        MHD_suspend_connection(c); /* dispatch() hands it to a worker after this round of MHD_run */
        return MHD_YES;
    }
    }
    log_request(method, url, -1, start);
    return ret;
}

enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                           const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    front_lock();
    enum MHD_Result r = on_request_locked(cls, c, url, method, version, upload, upload_size, con_cls);
    front_unlock();
    return r;
}

static void on_completed_locked(struct MHD_Connection *c, void **con_cls);
void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)toe;
    front_lock();
    on_completed_locked(c, con_cls);
    front_unlock();
}

static void on_completed_locked(struct MHD_Connection *c, void **con_cls) {
    req_ctx *rc = *con_cls;
    *con_cls = NULL;
    conn_phase_set(conn_of(c), CI_HEADERS, NULL); /* waiting for its next request */
    if (!rc || rc == &ctx_ping || rc == &ctx_exec) return;
    if (rc->queued) list_remove(&g.q, rc);
    if (rc->slot >= 0) { /* cannot happen while suspended; if it does, its worker's answer would go astray */
        int i = rc->slot;
        list_remove(&g.slots[i].jobs, rc);
        slot_down(i, 500, "the worker was stopped");
    }
    if (rc->route == R_MM_LOAD && rc->load_name && !rc->done) mm_load_done(rc, 0);
    if (rc->counted) __atomic_sub_fetch(&g.in_flight, 1, __ATOMIC_RELAXED);
    if (rc->resp) MHD_destroy_response(rc->resp);
    body_release(rc);
    free(rc->model), free(rc->step_name), free(rc->load_name), free(rc->load_url);
    free(rc);
}

void mhd_log(void *cls, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    /* Running out of descriptors or connections is worth a warning (at most one per 10 s); the rest is noise
     * from clients. */
    if (strstr(msg, "accept") || strstr(msg, "open files") || strstr(msg, "connection limit")) {
        static int64_t last;
        static long skipped;
        int64_t now = shx_now_ms();
        if (last && now - last < 10000) {
            skipped++;
            return;
        }
        shx_warn("microhttpd: %s (%ld similar messages before this one were not logged); see "
                 "SMHOST_SERVE_MAX_CONNECTIONS and ulimit -n", msg, skipped);
        last = now, skipped = 0;
        return;
    }
    shx_log(SHX_DEBUG, "microhttpd: %s", msg);
}
