/* Limits against hostile or broken clients (front.h, docs/serving.md "Limits"):
 *   - the bytes of request bodies the front holds at once (SMHOST_SERVE_QUEUE_MB): beyond them a request is
 *     answered 503 with Retry-After instead of being read into memory;
 *   - queued requests whose client went away are dropped before a worker runs them, and their memory freed;
 *   - deadlines for a request's headers (SMHOST_SERVE_HEADER_TIMEOUT) and body (SMHOST_SERVE_BODY_TIMEOUT plus one
 *     second per SMHOST_SERVE_BODY_MIN_RATE bytes), so that silent or trickling connections cannot pile up;
 *   - a connection pool that keeps room for new clients (/ping): when it is nearly full, the connections idle the
 *     longest (waiting for a request) are closed;
 *   - a lingering close (as nginx's): a client answered before its body was read (413, 503) may go on sending;
 *     closing at once would reset the connection and most clients would never read the answer, so the rest is
 *     read and dropped, bounded in bytes and time, before the socket closes.
 * Every limit that is hit is logged (at most once per LOG_EVERY_MS per kind, with a count). */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "serve/front.h"

#define LINGER_MAX 256          /* sockets lingering at once; beyond, a socket closes at once */
#define LINGER_TOTAL_MS 30000   /* a lingering close lasts at most this long (nginx: lingering_time 30 s) */
#define LINGER_IDLE_MS 5000     /* ... and ends when the client sent nothing for this long (lingering_timeout) */
#define SWEEP_EVERY_MS 100
#define LOG_EVERY_MS 10000

typedef struct linger_sock {
    int fd;
    int64_t start_ms, last_ms;
    size_t bytes;
} linger_sock;

static linger_sock lingers[LINGER_MAX];

typedef struct limit_log {
    const char *what;
    long count;
    int64_t last_ms;
} limit_log;

/* Counts a limit that was hit and logs it now and then. */
static void limit_hit(limit_log *l, int64_t now, long n) {
    l->count += n;
    if (l->count && (l->last_ms == 0 || now - l->last_ms >= LOG_EVERY_MS)) {
        shx_warn("%s (%ld since the last such message)", l->what, l->count);
        l->count = 0;
        l->last_ms = now;
    }
}

static limit_log log_headers = {"closed connections that sent no complete request headers in time "
                                "(SMHOST_SERVE_HEADER_TIMEOUT)", 0, 0};
static limit_log log_body = {"closed connections whose request body came too slowly (SMHOST_SERVE_BODY_TIMEOUT, "
                             "SMHOST_SERVE_BODY_MIN_RATE)", 0, 0};
static limit_log log_pool = {"the connection pool is nearly full (SMHOST_SERVE_MAX_CONNECTIONS): closed the "
                             "connections idle the longest", 0, 0};
static limit_log log_gone = {"dropped queued requests whose client went away", 0, 0};

/* ---- connections ------------------------------------------------------------------------------------------- */
static void conn_unlink(conn_info *ci) {
    if (ci->prev) ci->prev->next = ci->next;
    else g.conns.head = ci->next;
    if (ci->next) ci->next->prev = ci->prev;
    else g.conns.tail = ci->prev;
    ci->prev = ci->next = NULL;
    g.conns.n--;
}

static void conn_append(conn_info *ci) {
    ci->prev = g.conns.tail;
    ci->next = NULL;
    if (g.conns.tail) g.conns.tail->next = ci;
    else g.conns.head = ci;
    g.conns.tail = ci;
    g.conns.n++;
}

conn_info *conn_of(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

/* The connection moves to a new phase: it counts as active now (the pool closes the least recently active). */
void conn_phase_set(conn_info *ci, conn_phase phase, req_ctx *rc) {
    if (!ci) return;
    ci->phase = phase;
    ci->rc = rc;
    ci->since_ms = shx_now_ms();
    conn_unlink(ci);
    conn_append(ci);
}

static void linger_start(int fd);

void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                   enum MHD_ConnectionNotificationCode code) {
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_info *ci = shx_xcalloc(1, sizeof *ci);
        ci->fd = i ? i->connect_fd : -1;
        ci->phase = CI_HEADERS;
        ci->since_ms = shx_now_ms();
        ci->linger = -1;
        conn_append(ci);
        *socket_context = ci;
        return;
    }
    conn_info *ci = *socket_context;
    if (!ci) return;
    *socket_context = NULL;
    if (ci->rc) ci->rc->ci = NULL;
    if (ci->linger >= 0) linger_start(ci->linger);
    conn_unlink(ci);
    free(ci);
}

/* Stops a connection: MHD sees the socket end and closes it. */
static void conn_drop(conn_info *ci) {
    if (ci->fd >= 0) shutdown(ci->fd, SHUT_RDWR);
    ci->fd = -1; /* dropped once */
}

/* ---- bodies -------------------------------------------------------------------------------------------------- */
int body_reserve(req_ctx *rc, size_t more) {
    size_t need = rc->body.len + more + 1;
    if (need <= rc->held) return 0;
    size_t want = rc->held * 2 > need ? rc->held * 2 : need;
    if (want > g.cfg.max_body + 1 && need <= g.cfg.max_body + 1) want = g.cfg.max_body + 1;
    if (g.held - rc->held + want > g.cfg.queue_budget) want = need;
    if (g.held - rc->held + want > g.cfg.queue_budget) return -1;
    rc->body.p = shx_xrealloc(rc->body.p, want);
    rc->body.cap = want;
    rc->body.p[rc->body.len] = 0;
    g.held += want - rc->held;
    rc->held = want;
    return 0;
}

void body_release(req_ctx *rc) {
    shx_buf_free(&rc->body);
    g.held -= rc->held;
    rc->held = 0;
}

/* ---- lingering close ----------------------------------------------------------------------------------------- */
void conn_linger(conn_info *ci) {
    if (!ci || ci->fd < 0 || ci->linger >= 0 || g.nlinger >= LINGER_MAX) return;
    ci->linger = fcntl(ci->fd, F_DUPFD_CLOEXEC, 0); /* keeps the socket open after MHD closes its descriptor */
}

static void linger_end(int k) {
    epoll_ctl(g.ep, EPOLL_CTL_DEL, lingers[k].fd, NULL);
    close(lingers[k].fd);
    lingers[k] = lingers[--g.nlinger];
}

static void linger_start(int fd) {
    if (g.nlinger >= LINGER_MAX) {
        close(fd);
        return;
    }
    shutdown(fd, SHUT_WR); /* the answer is out: the client sees the end of it */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = TAG_LINGER | (uint64_t)fd};
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev)) {
        close(fd);
        return;
    }
    int64_t now = shx_now_ms();
    lingers[g.nlinger++] = (linger_sock){fd, now, now, 0};
}

/* Bytes that a lingering client still sends are dropped; the end of them (or too many) closes the socket. */
void linger_readable(int fd) {
    int k = 0;
    while (k < g.nlinger && lingers[k].fd != fd) k++;
    if (k == g.nlinger) return;
    size_t cap = g.cfg.max_body * 4 > 64 * MIB ? g.cfg.max_body * 4 : 64 * MIB;
    static char scratch[65536];
    for (int round = 0; round < 64; round++) { /* then the others get a turn: the event fires again */
        ssize_t n = recv(fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n > 0) {
            lingers[k].bytes += (size_t)n;
            lingers[k].last_ms = shx_now_ms();
            if (lingers[k].bytes <= cap) continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return;
        }
        linger_end(k); /* the end, an error, or too much */
        return;
    }
}

/* Closes every lingering socket at once (shutdown, and the HTTP fuzzer between inputs). */
void guard_close(void) {
    while (g.nlinger) linger_end(g.nlinger - 1);
}

/* ---- the sweep ------------------------------------------------------------------------------------------------ */
unsigned guard_conn_limit(void) {
    static unsigned limit;
    if (limit) return limit;
    /* Each connection is a descriptor: take the hard limit, and keep some for workers, logs and lingering. */
    struct rlimit rl;
    unsigned want = (unsigned)g.cfg.max_conns, reserve = 64 + 2 * (unsigned)g.cfg.workers + LINGER_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)want + reserve) {
            unsigned fit = rl.rlim_cur > reserve + 16 ? (unsigned)rl.rlim_cur - reserve : 16;
            shx_warn("serve: only %llu file descriptors may be open (ulimit -n): at most %u connections instead of "
                     "SMHOST_SERVE_MAX_CONNECTIONS=%u", (unsigned long long)rl.rlim_cur, fit, want);
            want = fit;
        }
    }
    limit = want;
    return limit;
}

static void drop_gone_clients(int64_t now) {
    long gone = 0;
    for (req_ctx *r = g.q.head, *next; r; r = next) {
        next = r->next;
        if (!r->ci || r->ci->fd < 0) continue;
        char c;
        ssize_t n = recv(r->ci->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) continue;
        /* the client closed its side (or reset): nobody will read the answer */
        list_remove(&g.q, r);
        r->queued = 0;
        body_release(r);
        job_error(r, 503, "the client went away");
        gone++;
    }
    if (gone) limit_hit(&log_gone, now, gone);
}

/* Room for new clients: keep a reserve free by closing the connections idle the longest (a client that sends a
 * request right after connecting, as a health check does, is never the one closed).  Runs every round of the
 * loop, so that a flood of connections waiting in the listen backlog moves through quickly. */
static void keep_room(int64_t now) {
    unsigned limit = guard_conn_limit(), reserve = limit / 16 > 16 ? limit / 16 : 16;
    int open = g.conns.n;
    if (open <= (int)(limit - reserve)) return;
    long pool = 0;
    for (conn_info *ci = g.conns.head; ci && open > (int)(limit - reserve); ci = ci->next) {
        if (ci->fd < 0) {
            open--;
            continue;
        }
        if (ci->phase != CI_HEADERS) continue;
        conn_drop(ci);
        open--;
        pool++;
    }
    if (pool) limit_hit(&log_pool, now, pool);
}

int64_t guard_sweep(int64_t now) {
    static int64_t next;
    keep_room(now);
    for (int k = 0; k < g.nlinger;) {
        if (now - lingers[k].start_ms >= LINGER_TOTAL_MS || now - lingers[k].last_ms >= LINGER_IDLE_MS) linger_end(k);
        else k++;
    }
    if (now < next) return next;
    next = now + SWEEP_EVERY_MS;
    if (g.q.head) drop_gone_clients(now);
    long hdr = 0, body = 0;
    int64_t header_ms = (int64_t)g.cfg.header_timeout_s * 1000;
    for (conn_info *ci = g.conns.head; ci; ci = ci->next) {
        if (ci->fd < 0) continue;
        if (ci->phase == CI_HEADERS && now - ci->since_ms > header_ms) {
            conn_drop(ci);
            hdr++;
        } else if (ci->phase == CI_BODY) {
            size_t got = ci->rc ? ci->rc->received : 0;
            int64_t due = ci->since_ms + (int64_t)g.cfg.body_timeout_s * 1000 +
                          (int64_t)(got / (size_t)g.cfg.body_min_rate) * 1000;
            if (now > due) {
                conn_drop(ci);
                body++;
            }
        }
    }
    if (hdr) limit_hit(&log_headers, now, hdr);
    if (body) limit_hit(&log_body, now, body);
    return next;
}

/* The front's libmicrohttpd daemon, with every callback and limit: the event loop's (serve.c, threads 1), the
 * inline handlers' thread pool (inline.c), and the HTTP fuzzer's (MHD_USE_NO_LISTEN_SOCKET, handed connections).  MHD's default SO_REUSEADDR, not SO_REUSEPORT: a second
 * server on the port must fail, not share it. */
struct MHD_Daemon *front_daemon(unsigned extra_flags, unsigned threads) {
    /* The connection guard (deadlines, the pool, lingering closes) lives in the event loop; with libmicrohttpd's
     * own threads (inline handlers) there is none, so connections are not tracked and MHD's timeout applies. */
    int loop = !(extra_flags & MHD_USE_INTERNAL_POLLING_THREAD);
    return MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_USE_ERROR_LOG | extra_flags,
        (uint16_t)g.cfg.port, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION,
        loop ? on_connection : NULL, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)g.cfg.header_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, guard_conn_limit(), MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_SOCK_ADDR, g.cfg.listen_set ? (const struct sockaddr *)&g.cfg.listen_addr : NULL,
        MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0u, MHD_OPTION_END);
}
