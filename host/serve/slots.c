/* The workers as the front sees them: slots, the queue of requests waiting for one, pipelining to busy workers,
 * and deadlines (front.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
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
#include "serve/worker.h"
#include "core/util.h"
#include "supervisor/oom.h"

/* ---- job lists ---------------------------------------------------------------------------------------------- */
void list_push(job_list *l, req_ctx *r) {
    r->next = NULL;
    if (l->tail) l->tail->next = r;
    else l->head = r;
    l->tail = r;
    l->n++;
}

req_ctx *list_pop(job_list *l) {
    req_ctx *r = l->head;
    if (!r) return NULL;
    l->head = r->next;
    if (!l->head) l->tail = NULL;
    l->n--;
    r->next = NULL;
    return r;
}

void list_remove(job_list *l, req_ctx *r) {
    req_ctx **pp = &l->head, *prev = NULL;
    while (*pp && *pp != r) prev = *pp, pp = &(*pp)->next;
    if (!*pp) return;
    *pp = r->next;
    if (l->tail == r) l->tail = prev;
    l->n--;
    r->next = NULL;
}

/* ---- workers ------------------------------------------------------------------------------------------------- */
int ping_ok(void) {
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
void slot_down(int i, int status, const char *msg) {
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

void slot_died(int i, const char *how) {
    slot *w = &g.slots[i];
    /* The OOM killer's SIGKILL shows here only as the end of the socket: its count in the cgroup tells. */
    char oom[256];
    int64_t kills = g.oom_kills >= 0 ? shx_oom_kill_count() : -1;
    if (kills > g.oom_kills) {
        uint64_t limit = shx_memory_limit();
        if (limit)
            snprintf(oom, sizeof oom, "was killed by the OOM killer (SIGKILL: out of memory; the container's limit "
                     "is %llu MiB)", (unsigned long long)(limit >> 20));
        else
            snprintf(oom, sizeof oom, "was killed by the OOM killer (SIGKILL: out of memory)");
        g.oom_kills = kills;
        how = oom;
    }
    if (w->state == SLOT_STARTING) {
        shx_error("worker %d (slot %d) %s while starting: replacing it", (int)w->pid, i, how);
        slot_down(i, 500, NULL);
    } else if (w->jobs.n) {
        char msg[512];
        snprintf(msg, sizeof msg, "worker %d %s while handling the request (its log is above); it is being "
                 "replaced", (int)w->pid, how == oom ? how : "died");
        shx_error("worker %d (slot %d) %s while handling a request: replacing it", (int)w->pid, i, how);
        slot_down(i, 500, msg);
    } else {
        shx_error("worker %d (slot %d) %s while idle: replacing it", (int)w->pid, i, how);
        slot_down(i, 500, NULL);
    }
}

void slot_flush(int i) {
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
    w->models[w->nmodels++] = (mm_loaded){shx_xstrdup(name), gen, shx_now_ms()};
}

/* Multi-model: request r's next step at worker i is unloading model `name`. */
static void send_unload(int i, req_ctx *r, const char *name) {
    r->step = STEP_UNLOAD;
    free(r->step_name);
    r->step_name = shx_xstrdup(name);
    const char *s[SHX_FRAME_NSTR] = {r->step_name};
    slot_send(i, SHX_FR_UNLOAD, s, NULL, 0);
}

/* Multi-model: worker i makes room by unloading its least recently used model (it stays registered and is
 * loaded again when next used).  why: for the log.  Returns 1 when an UNLOAD was sent for r, 0 when the worker
 * holds no model. */
static int mm_evict_lru(int i, req_ctx *r, const char *why) {
    slot *w = &g.slots[i];
    if (!w->nmodels) return 0;
    size_t lru = 0;
    for (size_t k = 1; k < w->nmodels; k++)
        if (w->models[k].used_ms < w->models[lru].used_ms) lru = k;
    shx_info("worker %d: unloading model %s, used least recently, to make room (%s)", (int)w->pid,
             w->models[lru].name, why);
    send_unload(i, r, w->models[lru].name);
    return 1;
}

/* Resident memory of process pid in MiB (0 when unknown). */
static long rss_mib(pid_t pid) {
    char path[64], *text = NULL;
    size_t len;
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    if (pid <= 0 || shx_read_file(path, &text, &len)) return 0;
    long size = 0, pages = 0;
    if (sscanf(text, "%ld %ld", &size, &pages) != 2) pages = 0;
    free(text);
    return pages * (sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

/* Before worker i loads a model: over SMHOST_SERVE_MM_MEMORY_MB, it unloads its least recently used one first. */
static int mm_need_room(int i, req_ctx *r) {
    if (g.cfg.mm_memory_mb <= 0) return 0;
    long rss = rss_mib(g.slots[i].pid);
    if (rss < g.cfg.mm_memory_mb) return 0;
    char why[160];
    snprintf(why, sizeof why, "it uses %ld MiB, SMHOST_SERVE_MM_MEMORY_MB=%d", rss, g.cfg.mm_memory_mb);
    return mm_evict_lru(i, r, why);
}

static int pipeline_depth(void) {
    if (g.cfg.multi_model || g.service_us <= 0) return 1;
    double d = 1 + PIPELINE_BUDGET_US / g.service_us;
    return d >= g.cfg.pipeline ? g.cfg.pipeline : (int)d;
}

/* A reply from worker i for request r came now: its service time is since the worker could start it. */
static void note_service(int i, req_ctx *r) {
    int64_t now = shx_now_us(), from = r->sent_us > g.slots[i].last_reply_us ? r->sent_us : g.slots[i].last_reply_us;
    g.slots[i].last_reply_us = now;
    double t = (double)(now - from);
    g.service_us = g.service_us <= 0 ? t : g.service_us + (t - g.service_us) / 8;
}

static void send_invoke(int i, req_ctx *r) {
    const char *s[SHX_FRAME_NSTR] = {r->ctype, r->accept, r->attrs, r->model ? r->model : ""};
    r->step = STEP_INVOKE;
    r->sent_us = shx_now_us();
    slot_send(i, SHX_FR_INVOKE, s, r->body.p, r->body.len);
}

/* Multi-model: the next frame request r (the only one at worker i) needs: unload a model the registry dropped or
 * replaced, load the one it wants, then invoke; or its answer when there is nothing left to ask. */
void mm_next(int i, req_ctx *r) {
    slot *w = &g.slots[i];
    for (size_t k = 0; k < w->nmodels; k++) {
        mm_model *m = mm_find(w->models[k].name);
        if (!m || m->gen != w->models[k].gen) {
            send_unload(i, r, w->models[k].name);
            return;
        }
    }
    if (r->route == R_MM_LOAD) {
        if (mm_need_room(i, r)) return;
        r->step = STEP_LOAD;
        const char *s[SHX_FRAME_NSTR] = {r->load_name, r->load_url};
        slot_send(i, SHX_FR_LOAD, s, NULL, 0);
        return;
    }
    for (size_t k = 0; k < w->nmodels; k++)
        if (!strcmp(w->models[k].name, r->model)) {
            w->models[k].used_ms = shx_now_ms();
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
    if (mm_need_room(i, r)) return;
    r->step = STEP_LOAD;
    r->load_gen = m->gen;
    const char *s[SHX_FRAME_NSTR] = {r->model, m->url};
    slot_send(i, SHX_FR_LOAD, s, NULL, 0);
}

static int recycle_due(const slot *w) {
    return g.cfg.max_requests > 0 && w->served >= g.cfg.max_requests;
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
        if (f->a == 507 && mm_evict_lru(i, r, "the handler ran out of memory loading another")) {
            break; /* mm_next loads it again once the UNLOAD is answered */
        } else if (f->a != 200) {
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
        w->served++;
        break;
    }
    /* Recycling (a handler that leaks a little per request): once it answered what was sent to it. */
    if (w->fd >= 0 && recycle_due(w) && !w->jobs.n) {
        shx_info("worker %d (slot %d) answered %ld requests (SMHOST_SERVE_MAX_REQUESTS=%d): replacing it",
                 (int)w->pid, i, w->served, g.cfg.max_requests);
        slot_down(i, 500, NULL);
        w->spawned_ms = 0; /* replaced at once, not after the crash-loop pause */
    }
}

/* Read and handle what worker i sent.  Returns 1 when there may be more to read, 0 when not (or it is gone). */
int slot_readable(int i) {
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
void dispatch(void) {
    int depth = pipeline_depth();
    while (g.q.head && !g.closing) {
        int best = -1;
        for (int i = 0; i < g.cfg.workers; i++) {
            slot *w = &g.slots[i];
            if (w->state == SLOT_UP && w->jobs.n < depth && !recycle_due(w) &&
                (best < 0 || w->jobs.n < g.slots[best].jobs.n))
                best = i;
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
int64_t sweep(int64_t now) {
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
