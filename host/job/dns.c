/* Wait for host names to resolve (see dns.h).  The toolkit retries each lookup with exponential waits (from
 * 0.1 s, at most 30 s apart) for up to 15 minutes; smhost does the same with shorter waits (at most 5 s), a
 * configurable limit (dns_timeout_seconds) and a progress line every 30 s. */
#include "job/dns.h"

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"

#include <errno.h>
#include <signal.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define FIRST_WAIT_MS 100
#define MAX_WAIT_MS 5000
#define PROGRESS_EVERY_S 30

/* Sleep s seconds, or until SIGTERM/SIGINT arrives (the supervisor blocks them, so they wait for us).  Returns the
 * signal, or 0 after a full sleep: a StopTrainingJob during a long DNS wait must not wait for the wait. */
static int sleep_s(double s) {
    if (s <= 0) return 0;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    double end = ((double)shx_now_us() / 1e6) + s;
    for (;;) {
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig > 0) return sig;
        if (errno != EINTR) return 0;
        double left = end - ((double)shx_now_us() / 1e6);
        if (left <= 0) return 0;
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)(time_t)left) * 1e9);
    }
}

/* 0 when name resolves, else the getaddrinfo error code. */
static int resolve(const char *name) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc == 0) freeaddrinfo(res);
    return rc;
}

static const char *gai_text(int rc) {
    return rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
}

int shx_dns_wait(const char *const *hosts, size_t n, int timeout_seconds, char *err, size_t errlen) {
    if (timeout_seconds < 0) timeout_seconds = 0;
    double start = ((double)shx_now_us() / 1e6), deadline = start + timeout_seconds, last_log = start;
    for (size_t i = 0; i < n; i++) {
        const char *h = hosts[i];
        if (!h || !*h) continue;
        int wait_ms = FIRST_WAIT_MS, tries = 0, logged = 0;
        for (;;) {
            int rc = resolve(h);
            tries++;
            if (rc == 0) {
                if (logged) shx_info("host %s resolves after %.0f s", h, ((double)shx_now_us() / 1e6) - start);
                else shx_debug("host %s resolves", h);
                break;
            }
            double t = ((double)shx_now_us() / 1e6);
            if (t >= deadline) {
                snprintf(err, errlen,
                         "host name \"%s\" did not resolve within %d s (tried %d time%s; last error: %s); check the hosts "
                         "in resourceconfig.json and the container's network and DNS, or raise dns_timeout_seconds "
                         "in smhost.ini",
                         h, timeout_seconds, tries, tries == 1 ? "" : "s", gai_text(rc));
                return SHX_EXIT_UNAVAILABLE;
            }
            if (!logged || t - last_log >= PROGRESS_EVERY_S) {
                shx_info("waiting for host %s to resolve (%.0f s of %d s so far: %s)", h, t - start, timeout_seconds,
                         gai_text(rc));
                last_log = t;
                logged = 1;
            }
            double wait = wait_ms / 1000.0;
            if (wait > deadline - t) wait = deadline - t;
            int sig = sleep_s(wait);
            if (sig) {
                snprintf(err, errlen, "stopped by %s while waiting for host \"%s\" to resolve", strsignal(sig), h);
                return 128 + sig;
            }
            wait_ms = wait_ms * 2 > MAX_WAIT_MS ? MAX_WAIT_MS : wait_ms * 2;
        }
    }
    return 0;
}
