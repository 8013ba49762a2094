/* bench helper: waits for SIGTERM; its handler records CLOCK_MONOTONIC (ns) in $BENCH_STAMP and exits 0.
 * It creates $BENCH_READY once the handler is installed. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *stamp;

static void on_term(int sig) {
    (void)sig;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char b[32];
    int n = 0;
    long long v = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    char tmp[32];
    int k = 0;
    do tmp[k++] = (char)('0' + v % 10); while ((v /= 10));
    while (k) b[n++] = tmp[--k];
    b[n++] = '\n';
    int fd = open(stamp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        if (write(fd, b, (size_t)n) < 0) _exit(2);
        close(fd);
    }
    _exit(0);
}

int main(void) {
    stamp = getenv("BENCH_STAMP");
    const char *ready = getenv("BENCH_READY");
    if (!stamp || !ready) return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return 2;
    close(fd);
    for (;;) pause();
}
