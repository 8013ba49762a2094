/* The front process of smhost serve, split by concern: settings.c (what to serve), routes.c (HTTP routing and the
 * multi-model endpoints), slots.c (worker slots, the queue, pipelining, deadlines) and serve.c (the event loop).
 * This header is private to the serve module. */
#ifndef SHX_SERVE_FRONT_H
#define SHX_SERVE_FRONT_H
#include <microhttpd.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"
#include "serve/proto.h"
#include "serve/settings.h"

/* ---- state: the front is one thread, an event loop (serve_loop), so nothing here needs a lock -------------- */
typedef enum { SLOT_DEAD = 0, SLOT_STARTING, SLOT_UP } slot_state;

typedef struct mm_loaded {
    char *name;
    uint64_t gen;
    int64_t used_ms; /* last loaded or invoked: the least recently used is evicted first */
} mm_loaded;

typedef enum route { R_NONE, R_INVOKE, R_MM_LOAD, R_MM_INVOKE, R_MM_LIST, R_MM_DESCRIBE, R_MM_UNLOAD } route;
/* What a request waits for from its worker: multi-model requests may first unload stale models and load theirs. */
typedef enum step { STEP_NONE, STEP_UNLOAD, STEP_LOAD, STEP_INVOKE } step;

struct conn_info;

typedef struct req_ctx {
    route route;
    struct conn_info *ci; /* its connection's bookkeeping (guard.c) */
    size_t held;          /* bytes of g.held it accounts for (its body's buffer) */
    int rejected;         /* answered before its body was read: the rest of the body is dropped */
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
    long served;           /* requests answered: SMHOST_SERVE_MAX_REQUESTS recycles it */
} slot;

typedef struct mm_model {
    char *name, *url;
    uint64_t gen;
    int loading; /* registered while its first load runs: a second POST gets 409 */
} mm_model;

enum { TAG_MHD = 0, TAG_SIGNAL = 1, TAG_CTL = 2, TAG_SLOT = 16 };
#define TAG_LINGER (1ull << 32) /* | the socket: a lingering close (guard.c) */

/* One client connection, from accept to close (guard.c): what it is doing decides which deadline applies. */
typedef enum { CI_HEADERS, CI_BODY, CI_WAIT } conn_phase;
typedef struct conn_info {
    int fd;
    conn_phase phase; /* CI_HEADERS: waiting for the next request's headers; CI_BODY: reading its body; CI_WAIT:
                       * queued, at a worker, or its answer going out (the request's own deadline applies) */
    int64_t since_ms; /* when the phase began */
    req_ctx *rc;      /* CI_BODY: the request */
    int linger;       /* close lingering: its answer went out before the request was read whole */
    struct conn_info *prev, *next; /* g.conns: least recently active first */
} conn_info;

typedef struct conn_list {
    conn_info *head, *tail;
    int n;
} conn_list;

typedef struct front {
    shx_serve_settings cfg;
    struct MHD_Daemon *d;
    int ep;
    job_list q; /* requests waiting for a worker, oldest first */
    slot slots[MAX_WORKERS];
    int ever_ready; /* every worker loaded the model once */
    int threaded;   /* inline handlers: libmicrohttpd calls on_request/on_completed from a thread pool */
    int loaded_once[MAX_WORKERS];
    int stopping;
    int closing; /* the grace is over: waiting requests give up */
    int in_flight;
    mm_model *mm;
    size_t nmm;
    uint64_t mm_gen;
    double service_us; /* moving average of how long a worker takes per request (0: none measured yet) */
    size_t held;       /* bytes of request bodies held in the front (bounded by cfg.queue_budget) */
    conn_list conns;   /* open client connections */
    int nlinger;       /* sockets in a lingering close */
    int64_t oom_kills; /* the cgroup's OOM kill count when last looked at (-1: unknown) */
} front;

/* The front's state: one thread, so no locks. */
extern front g;

/* How far ahead a busy worker is sent requests: about PIPELINE_BUDGET_US of expected work, so that a request
 * pipelined behind others waits about that long at most before its worker starts it, and never more than
 * SMHOST_SERVE_PIPELINE.  Slow handlers get 1: their requests wait in the front's queue for whichever worker is
 * free first.  The budget also bounds how long the workers can keep every CPU busy without the front: when the front
 * waits longer than that for a CPU, they run dry and leave it one, which bounds /ping's latency under load.  750 us
 * instead of 1 ms took /ping's p99 at 64 connections from about 1.3 to 1.0 ms with no measurable loss of throughput
 * for a ~65 us Python handler; 500 us cost ~8% of it (docs/serving.md, "/ping under load"). */
#define PIPELINE_BUDGET_US 750.0

/* slots.c: requests waiting for a worker, the workers and pipelining */
void list_push(job_list *l, req_ctx *r);
req_ctx *list_pop(job_list *l);
void list_remove(job_list *l, req_ctx *r);
int ping_ok(void);
void slot_down(int i, int status, const char *msg);
void slot_died(int i, const char *how);
void slot_flush(int i);
void mm_next(int i, req_ctx *r);
int slot_readable(int i);
void dispatch(void);
int64_t sweep(int64_t now);

/* routes.c: HTTP routing, answers and the multi-model endpoints */
void job_answer(req_ctx *r, int status, const char *ctype, const char *attrs, const void *body, size_t len);
void job_error(req_ctx *r, int status, const char *msg);
mm_model *mm_find(const char *name);
void mm_load_done(req_ctx *r, int ok);
enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls);
void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe);
void mhd_log(void *cls, const char *fmt, va_list ap);

/* guard.c: limits against hostile or broken clients (docs/serving.md "Limits") */
void on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode);
conn_info *conn_of(struct MHD_Connection *c);
void conn_phase_set(conn_info *ci, conn_phase phase, req_ctx *rc);
/* Body bytes for rc: 0, or -1 when they would take the front over its budget (nothing is kept then). */
int body_reserve(req_ctx *rc, size_t more);
void body_release(req_ctx *rc);
/* The client will get its answer before its request was read whole: linger on close so that it reads it. */
void conn_linger(conn_info *ci);
void linger_readable(int fd);
/* Deadlines, the connection pool and queued requests whose client went away; returns the next time to look. */
int64_t guard_sweep(int64_t now);
unsigned guard_conn_limit(void);
struct MHD_Daemon *front_daemon(unsigned extra_flags, unsigned threads);
/* routes.c: the front's lock, taken only when g.threaded (inline handlers) */
void front_lock(void);
void front_unlock(void);
void guard_close(void);
#endif
