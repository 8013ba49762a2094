/* bench driver: runs a direct command (A) and the same work under smhost (B) alternately, side by side.
 *   bench time N -- A... -- B... [-- C...]
 *                                    wall time of each run, and CPU time (user+sys of the process and every
 *                                    descendant it waited for); prints "wallA_us wallB_us cpuA_us cpuB_us" (medians),
 *                                    with a third command "wallA wallB wallC cpuA cpuB cpuC"
 *   bench siglat N -- A... -- B...   SIGTERM to the process until the program's handler runs (bench/sigprog);
 *                                    prints "medianA_us medianB_us maxVmHWM_B_kib"
 *   bench spawn PROG ARGS...         the least a supervisor does: fork, exec PROG, wait; exits with its status
 *                                    (the floor that smhost's start-up is compared with)
 * Children get /dev/null as stdin, stdout and stderr.  BENCH_OUTPUT_DIR: its success/failure files are removed
 * before each run, so every smhost run writes its own. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void clean_output(void) {
    const char *d = getenv("BENCH_OUTPUT_DIR");
    if (!d) return;
    char p[4096];
    snprintf(p, sizeof p, "%s/success", d);
    unlink(p);
    snprintf(p, sizeof p, "%s/failure", d);
    unlink(p);
}

static pid_t spawn(char **argv) {
    clean_output();
    pid_t pid = fork();
    if (pid == 0) {
        int n = open("/dev/null", O_RDWR);
        dup2(n, 0);
        dup2(n, 1);
        dup2(n, 2);
        if (n > 2) close(n);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static long long g_cpu_us; /* CPU time of the last process wait_ok() reaped */

static int wait_ok(pid_t pid, const char *what) {
    int st;
    struct rusage ru;
    while (wait4(pid, &st, 0, &ru) < 0) {
    }
    g_cpu_us = (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench: %s failed (status %#x)\n", what, st);
        return -1;
    }
    return 0;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}
static long long median(long long *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_ll);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long hwm_kib(pid_t pid) {
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    long v = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

static long long read_stamp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1) v = -1;
    fclose(f);
    return v;
}

/* One SIGTERM latency sample in ns; *hwm gets the process's VmHWM just before the signal. */
static long long siglat_once(char **argv, long *hwm) {
    const char *ready = getenv("BENCH_READY"), *stamp = getenv("BENCH_STAMP");
    unlink(ready);
    unlink(stamp);
    pid_t pid = spawn(argv);
    long long deadline = now_ns() + 20000000000LL;
    while (access(ready, F_OK) != 0) {
        if (now_ns() > deadline || waitpid(pid, NULL, WNOHANG) == pid) {
            fprintf(stderr, "bench: %s never became ready\n", argv[0]);
            kill(pid, SIGKILL);
            return -1;
        }
        usleep(200);
    }
    usleep(20000); /* let the program settle in pause() */
    if (hwm) *hwm = hwm_kib(pid);
    long long t0 = now_ns();
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    long long t1 = read_stamp(stamp);
    if (t1 < 0) {
        fprintf(stderr, "bench: the handler of %s did not run (status %#x)\n", argv[0], st);
        return -1;
    }
    return t1 - t0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "spawn")) {
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[2], argv + 2);
            _exit(127);
        }
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) < 0) return 126;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    if (argc < 6 || strcmp(argv[3], "--")) {
        fprintf(stderr, "usage: bench time|siglat N -- A... -- B... [-- C...] | bench spawn PROG ARGS...\n");
        return 2;
    }
    int n = atoi(argv[2]);
    char **cmd[3] = {argv + 4, NULL, NULL};
    int ncmd = 1;
    for (int i = 4; i < argc; i++)
        if (!strcmp(argv[i], "--")) {
            argv[i] = NULL;
            if (ncmd == 3) return 2;
            cmd[ncmd++] = argv + i + 1;
        }
    int lat = !strcmp(argv[1], "siglat");
    if (ncmd < 2 || (lat && ncmd != 2) || n < 1) return 2;
    for (int k = 0; k < ncmd; k++)
        if (!*cmd[k]) return 2;
    long long *t[3], *c[3];
    for (int k = 0; k < ncmd; k++) {
        t[k] = calloc((size_t)n, sizeof *t[k]);
        c[k] = calloc((size_t)n, sizeof *c[k]);
    }
    long maxhwm = 0;
    for (int i = 0; i < n; i++) {
        if (lat) {
            long h = 0;
            if ((t[0][i] = siglat_once(cmd[0], NULL)) < 0) return 1;
            if ((t[1][i] = siglat_once(cmd[1], &h)) < 0) return 1;
            if (h > maxhwm) maxhwm = h;
            continue;
        }
        for (int k = 0; k < ncmd; k++) { /* interleaved: A B [C] A B [C] ... */
            long long t0 = now_ns();
            if (wait_ok(spawn(cmd[k]), cmd[k][0])) return 1;
            t[k][i] = now_ns() - t0;
            c[k][i] = g_cpu_us;
        }
    }
    for (int k = 0; k < ncmd; k++) printf("%s%lld", k ? " " : "", median(t[k], n) / 1000);
    if (lat) printf(" %ld", maxhwm);
    else
        for (int k = 0; k < ncmd; k++) printf(" %lld", median(c[k], n));
    printf("\n");
    return 0;
}
