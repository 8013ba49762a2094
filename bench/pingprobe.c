/* pingprobe: the latency of single GET /ping requests, one at a time on one keep-alive connection, with a pause
 * between them (as a health checker asks, not a flood), for bench/serve.sh.
 *   pingprobe PORT COUNT INTERVAL_US [fifo]
 * Prints "p50_ms p90_ms p99_ms max_ms non200 fifo|normal": latencies from just before the request is written to when the whole
 * answer has been read.  With "fifo" the probe runs SCHED_FIFO (root only; else it says so on stderr and runs as
 * it is): its own scheduling delays on a busy machine then no longer count, so what it measures is the server. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        fprintf(stderr, "pingprobe: cannot connect to 127.0.0.1:%d: %s\n", port, strerror(errno));
        exit(1);
    }
    return fd;
}

/* One answer: headers, then Content-Length bytes of body.  Returns its status, or -1 when the connection broke. */
static int read_answer(int fd) {
    char buf[8192];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0) return -1;
        len += (size_t)n;
        buf[len] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) {
            if (len == sizeof buf - 1) return -1;
            continue;
        }
        size_t body = 0;
        char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl && cl < end) body = strtoul(cl + 17, NULL, 10);
        size_t want = (size_t)(end + 4 - buf) + body;
        while (len < want) { /* the body (/ping's is empty; a 503's is short) */
            if (want > sizeof buf - 1) return -1;
            n = read(fd, buf + len, want - len);
            if (n <= 0) return -1;
            len += (size_t)n;
        }
        int status = 0;
        if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return -1;
        return status;
    }
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: pingprobe PORT COUNT INTERVAL_US [fifo]\n");
        return 64;
    }
    int port = atoi(argv[1]), count = atoi(argv[2]);
    long interval_us = atol(argv[3]);
    if (count <= 0 || port <= 0) return 64;
    const char *mode = "normal";
    if (argc > 4 && !strcmp(argv[4], "fifo")) {
        struct sched_param sp = {.sched_priority = 1};
        if (sched_setscheduler(0, SCHED_FIFO, &sp))
            fprintf(stderr, "pingprobe: cannot run SCHED_FIFO (%s): measuring as a normal process\n", strerror(errno));
        else
            mode = "fifo";
    }
    int64_t *lat = calloc((size_t)count, sizeof *lat);
    static const char req[] = "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int fd = dial(port), bad = 0;
    for (int i = 0; i < count; i++) {
        int64_t t0 = now_ns();
        int status = -1;
        if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) status = read_answer(fd);
        lat[i] = now_ns() - t0;
        if (status < 0) { /* the server closed the connection: a new one, and this one counts as failed */
            close(fd);
            fd = dial(port);
        }
        if (status != 200) bad++;
        if (interval_us > 0) {
            struct timespec ts = {interval_us / 1000000, (interval_us % 1000000) * 1000};
            nanosleep(&ts, NULL);
        }
    }
    qsort(lat, (size_t)count, sizeof *lat, cmp);
#define PCT(p) (lat[(size_t)((double)(count - 1) * (p))] / 1e6)
    printf("%.3f %.3f %.3f %.3f %d %s\n", PCT(0.5), PCT(0.9), PCT(0.99), lat[count - 1] / 1e6, bad, mode);
    return 0;
}
