/* The HTTP front's request handling, in process, through the code serve runs: the same libmicrohttpd daemon
 * (front_daemon: routes.c, guard.c's limits and framing checks) is handed one connection over a socketpair and
 * reads the input as a client's bytes.  The first byte picks the mode: bit 0 multi-model, bit 1 the model is
 * "loaded" (requests for a worker are queued; there is no worker, so they wait and are failed at the end). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "serve/front.h"

static void reset(int multi) {
    memset(&g, 0, sizeof g);
    for (int i = 0; i < MAX_WORKERS; i++) g.slots[i].fd = -1;
    shx_serve_settings *c = &g.cfg;
    c->port = 0, c->workers = 1, c->timeout_s = 60, c->grace_s = 1, c->pipeline = 1;
    c->max_payload_mb = 1, c->max_body = MIB, c->queue_mb = 2, c->queue_budget = 2 * MIB;
    c->header_timeout_s = 60, c->body_timeout_s = 20, c->body_min_rate = 65536, c->max_conns = 64;
    c->max_concurrent_transforms = 1, c->multi_model = multi;
    c->models_dir = "/nonexistent/smhost-fuzz/models";
    g.oom_kills = -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    if (!size) return 0;
    reset(data[0] & 1);
    g.ever_ready = (data[0] & 2) != 0;
    data++, size--;
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    struct MHD_Daemon *d = front_daemon(MHD_USE_NO_LISTEN_SOCKET, 1);
    if (g.ep < 0 || !d) abort();
    g.d = d;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) abort();
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(40000)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (MHD_add_connection(d, sv[0], (struct sockaddr *)&addr, sizeof addr) != MHD_YES) abort();
    size_t off = 0;
    char sink[65536];
    for (int round = 0; round < 400; round++) {
        if (off < size) {
            ssize_t w = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
            if (w > 0) off += (size_t)w;
            else if (w < 0 && errno != EAGAIN) off = size;
            if (off == size) shutdown(sv[1], SHUT_WR);
        }
        guard_sweep(shx_now_ms());
        MHD_run(d);
        dispatch();
        ssize_t n = recv(sv[1], sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;
    }
    req_ctx *r; /* queued for a worker that does not exist: answered 503, as shutdown does */
    while ((r = list_pop(&g.q))) {
        r->queued = 0;
        job_error(r, 503, "fuzz: no worker");
    }
    MHD_run(d);
    MHD_stop_daemon(d);
    guard_close();
    for (size_t k = 0; k < g.nmm; k++) free(g.mm[k].name), free(g.mm[k].url);
    free(g.mm);
    close(sv[1]);
    close(g.ep);
    FUZZ_CHECK(g.held == 0, "%zu bytes of request bodies still accounted after every request ended", g.held);
    FUZZ_CHECK(g.conns.n == 0, "%d connections still tracked after the daemon stopped", g.conns.n);
    return 0;
}
