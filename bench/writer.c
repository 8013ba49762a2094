/* bench helper: a chatty program.  Formats training-log lines and writes BYTES bytes of them to stdout and as
 * many to stderr, each stream in 4 KiB blocks (what a buffered logger or stdio does), alternating streams.
 * BYTES: argv[1], else $BENCH_WRITE_BYTES, else 1 GiB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void put(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) exit(1);
        p += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv) {
    const char *arg = argc > 1 ? argv[1] : getenv("BENCH_WRITE_BYTES");
    unsigned long long total = arg ? strtoull(arg, NULL, 10) : (1ULL << 30);
    char buf[2][4096];
    size_t len[2] = {0, 0};
    unsigned long long done[2] = {0, 0};
    unsigned long step = 0;
    while (done[0] < total || done[1] < total) {
        for (int s = 0; s < 2; s++) {
            if (done[s] >= total) continue;
            char line[160];
            int n = snprintf(line, sizeof line, "%s step=%lu epoch=%lu loss=%.6f lr=%.3e throughput=%.1f samples/s\n",
                             s ? "[stderr]" : "[stdout]", step, step / 1000, 1.0 / (double)(step + 1), 1e-3 / (double)(step % 97 + 1),
                             12345.6 + (double)(step % 1000));
            if (len[s] + (size_t)n > sizeof buf[s]) {
                put(s + 1, buf[s], len[s]);
                done[s] += len[s];
                len[s] = 0;
            }
            memcpy(buf[s] + len[s], line, (size_t)n);
            len[s] += (size_t)n;
        }
        step++;
    }
    for (int s = 0; s < 2; s++)
        if (len[s]) put(s + 1, buf[s], len[s]);
    return 0;
}
