/* A native handler for the serving tests and benchmark.  The model is <model_dir>/model.txt (its text is the
 * model's name).  A load fails when the model dir holds a file named "broken" (500) or "huge" (out of memory,
 * 507).  X-Amzn-SageMaker-Custom-Attributes drives invoke():
 *   sleep=<ms>   sleep first            crash        die with SIGSEGV       fail     return an error (500)
 *   sleep=<ms>,crash   sleep, then die with SIGSEGV
 *   status=<n>   answer status n        whoami       body is the model's text
 *   alloc=<MiB>  take that much memory (to meet the OOM killer)
 *   signals      body is the SigBlk: and SigIgn: lines of the worker's /proc/self/status
 *   procs        body is "pid state ppid comm" for every process this worker's /proc shows, one a line
 *   orphans      double-fork 5 processes that exit after 2 s: orphans of smhost, which must reap them; body: pids
 *   daemon       start a daemon (setsid, double fork, exec sleep 1000): body is its pid
 *   daemon-noterm  the same, ignoring SIGTERM
 * A file alloc_mb holding N makes the model take N MiB of memory (multi-model eviction tests).
 * Otherwise: text/csv rows of numbers get one predicted class per row (argmax of a fixed linear model over the
 * four iris features), application/json is echoed, anything else is 415; an Accept other than JSON/CSV is 406.
 * The response echoes the custom attributes as "echo:<value>".  SERVE_TEST_LOAD_LOG names a file that gets one
 * line "<pid>" per load().  serve_test_inline.c builds the same handler declaring SMH_HANDLER_THREAD_SAFE. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <smhost/plugin.h>

static const smh_host_api *H;

typedef struct model {
    char name[256];
    char *ballast; /* alloc_mb */
} model;

static smh_status init(const smh_host_api *host, void **state, char *err, size_t errlen) {
    H = host;
    *state = NULL;
    return SMH_OK;
}

static int has_file(const char *dir, const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static smh_status load(void *state, const char *model_dir, void **out, char *err, size_t errlen) {
    const char *log = getenv("SERVE_TEST_LOAD_LOG");
    if (log && *log) {
        FILE *f = fopen(log, "a");
        if (f) fprintf(f, "%d\n", (int)getpid()), fclose(f);
    }
    if (has_file(model_dir, "broken")) {
        snprintf(err, errlen, "the model in %s is broken", model_dir);
        return SMH_E_FAIL;
    }
    if (has_file(model_dir, "huge")) {
        snprintf(err, errlen, "the model in %s does not fit in memory", model_dir);
        return SMH_E_NOMEM;
    }
    model *m = calloc(1, sizeof *m);
    if (!m) return SMH_E_NOMEM;
    char p[4096];
    snprintf(p, sizeof p, "%s/model.txt", model_dir);
    FILE *f = fopen(p, "r");
    if (f) {
        size_t n = fread(m->name, 1, sizeof m->name - 1, f);
        m->name[n] = 0;
        fclose(f);
    } else {
        strcpy(m->name, "default");
    }
    snprintf(p, sizeof p, "%s/alloc_mb", model_dir); /* the model takes that many MiB of memory */
    f = fopen(p, "r");
    if (f) {
        int mb = 0;
        if (fscanf(f, "%d", &mb) == 1 && mb > 0 && (m->ballast = malloc((size_t)mb << 20)))
            memset(m->ballast, 1, (size_t)mb << 20);
        fclose(f);
    }
    *out = m;
    return SMH_OK;
}

/* ---- processes a handler may start ---------------------------------------------------------------------- */
static smh_status text_reply(smh_response *resp, const char *text, size_t len) {
    H->resp_set_content_type(resp, "text/plain");
    return H->resp_write(resp, text, len);
}

static smh_status signals_reply(smh_response *resp, char *err, size_t errlen) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) {
        snprintf(err, errlen, "cannot read /proc/self/status");
        return SMH_E_FAIL;
    }
    char line[256], out[512] = "";
    size_t o = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "SigBlk:", 7) || !strncmp(line, "SigIgn:", 7))
            o += (size_t)snprintf(out + o, sizeof out - o, "%s", line);
    fclose(f);
    return text_reply(resp, out, o);
}

static smh_status procs_reply(smh_response *resp, char *err, size_t errlen) {
    DIR *d = opendir("/proc");
    if (!d) {
        snprintf(err, errlen, "cannot list /proc");
        return SMH_E_FAIL;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0) continue;
        ssize_t r = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (r <= 0) continue;
        buf[r] = 0;
        char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (!lp || !rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2) continue;
        char line[128];
        int n = snprintf(line, sizeof line, "%ld %c %d %.*s\n", pid, state, ppid, (int)(rp - lp - 1), lp + 1);
        H->resp_write(resp, line, (size_t)n);
    }
    closedir(d);
    H->resp_set_content_type(resp, "text/plain");
    return SMH_OK;
}

/* Fork a child that starts `grandchild` in a process of its own and exits at once, and reap it: the grandchild is
 * left an orphan, which smhost (PID 1 or subreaper) inherits.  The grandchild calls ready() once it is set up, so
 * that what a test does next finds it so.  Returns the grandchild's pid. */
static void ready(int fd) {
    pid_t self = getpid();
    if (write(fd, &self, sizeof self) != (ssize_t)sizeof self) _exit(1);
    close(fd);
}

static pid_t double_fork(void (*grandchild)(int ready_fd)) {
    int p[2];
    if (pipe(p)) return -1;
    pid_t child = fork();
    if (child < 0) return -1;
    if (child == 0) {
        close(p[0]);
        setsid();
        if (fork() == 0) {
            grandchild(p[1]);
            _exit(0);
        }
        _exit(0);
    }
    close(p[1]);
    pid_t gc = -1;
    if (read(p[0], &gc, sizeof gc) != (ssize_t)sizeof gc) gc = -1;
    close(p[0]);
    waitpid(child, NULL, 0);
    return gc;
}

static void exit_soon(int fd) {
    ready(fd);
    struct timespec ts = {2, 0};
    nanosleep(&ts, NULL);
    _exit(0);
}

static void run_sleep(int fd) {
    ready(fd);
    /* a daemon keeps none of its parent's descriptors */
    for (int i = 3; i < 1024; i++) close(i);
    int null = open("/dev/null", O_RDWR);
    for (int i = 0; i <= 2; i++) dup2(null, i);
    if (null > 2) close(null);
    execl("/bin/sleep", "sleep", "1000", (char *)NULL);
    _exit(127);
}

static void run_sleep_noterm(int fd) {
    signal(SIGTERM, SIG_IGN); /* before ready(): a SIGTERM that follows the answer finds it ignored */
    run_sleep(fd);
}

static const double W[3][4] = {{0.4, 1.4, -2.2, -1.0}, {0.5, -1.6, 0.6, -1.3}, {-1.6, -1.4, 2.4, 2.4}};

static int predict_row(const double x[4]) {
    int best = 0;
    double bs = -1e300;
    for (int k = 0; k < 3; k++) {
        double s = 0;
        for (int j = 0; j < 4; j++) s += W[k][j] * x[j];
        if (s > bs) bs = s, best = k;
    }
    return best;
}

static smh_status invoke(void *state, void *mp, const smh_request *req, smh_response *resp, char *err,
                         size_t errlen) {
    model *m = mp;
    const char *a = req->custom_attributes;
    if (*a) {
        char echo[600];
        snprintf(echo, sizeof echo, "echo:%s", a);
        H->resp_set_custom_attributes(resp, echo);
    }
    if (!strncmp(a, "sleep=", 6)) {
        long ms = atol(a + 6);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (strstr(a, ",crash")) raise(SIGSEGV);
    } else if (!strcmp(a, "crash")) {
        raise(SIGSEGV);
    } else if (!strncmp(a, "alloc=", 6)) { /* take (and touch) that many MiB: meets the OOM killer in a cgroup */
        size_t n = (size_t)atol(a + 6) << 20;
        volatile char *p = malloc(n); /* volatile: the compiler may not drop the allocation */
        for (size_t k = 0; p && k < n; k += 4096) p[k] = 1;
        free((void *)p);
    } else if (!strcmp(a, "fail")) {
        snprintf(err, errlen, "ValueError: the test handler was asked to fail");
        return SMH_E_FAIL;
    } else if (!strncmp(a, "status=", 7)) {
        H->resp_set_status(resp, atoi(a + 7));
    } else if (!strcmp(a, "signals")) {
        return signals_reply(resp, err, errlen);
    } else if (!strcmp(a, "procs")) {
        return procs_reply(resp, err, errlen);
    } else if (!strcmp(a, "orphans") || !strcmp(a, "daemon") || !strcmp(a, "daemon-noterm")) {
        int n = !strcmp(a, "orphans") ? 5 : 1;
        void (*what)(int) = !strcmp(a, "orphans") ? exit_soon : !strcmp(a, "daemon") ? run_sleep : run_sleep_noterm;
        char out[128];
        size_t o = 0;
        for (int i = 0; i < n; i++) {
            pid_t pid = double_fork(what);
            if (pid < 0) {
                snprintf(err, errlen, "cannot start a process: fork failed");
                return SMH_E_FAIL;
            }
            o += (size_t)snprintf(out + o, sizeof out - o, "%s%d", i ? " " : "", (int)pid);
        }
        return text_reply(resp, out, o);
    } else if (!strcmp(a, "whoami")) {
        H->resp_set_content_type(resp, "text/plain");
        return H->resp_write(resp, m->name, strlen(m->name));
    }
    const char *acc = req->accept;
    int want_csv = !strncmp(acc, "text/csv", 8);
    if (*acc && strcmp(acc, "*/*") && strncmp(acc, "application/json", 16) && !want_csv) {
        H->resp_set_status(resp, 406);
        snprintf(err, errlen, "cannot answer in %s: accepts application/json or text/csv", acc);
        return SMH_E_UNSUPPORTED;
    }
    if (!strncmp(req->content_type, "application/json", 16)) {
        H->resp_set_content_type(resp, "application/json");
        return H->resp_write(resp, req->body, req->body_len);
    }
    if (strncmp(req->content_type, "text/csv", 8)) {
        H->resp_set_status(resp, 415);
        snprintf(err, errlen, "content type '%s' is not supported: send text/csv or application/json",
                 req->content_type);
        return SMH_E_UNSUPPORTED;
    }
    /* CSV rows -> classes */
    const char *p = req->body, *end = p + req->body_len;
    char out[8192];
    size_t o = 0;
    if (!want_csv) out[o++] = '[';
    int rows = 0;
    while (p < end) {
        double x[4] = {0};
        int nx = 0;
        while (p < end && *p != '\n') {
            char *q;
            double v = strtod(p, &q);
            if (q == p) {
                H->resp_set_status(resp, 400);
                snprintf(err, errlen, "row %d is not numeric CSV", rows + 1);
                return SMH_E_INVAL;
            }
            if (nx < 4) x[nx] = v;
            nx++;
            p = q;
            while (p < end && (*p == ',' || *p == ' ' || *p == '\r')) p++;
        }
        if (p < end) p++;
        if (!nx) continue;
        if (o + 16 >= sizeof out) {
            H->resp_write(resp, out, o);
            o = 0;
        }
        if (want_csv) o += (size_t)snprintf(out + o, sizeof out - o, "%d\n", predict_row(x));
        else o += (size_t)snprintf(out + o, sizeof out - o, "%s%d", rows ? "," : "", predict_row(x));
        rows++;
    }
    if (!want_csv) out[o++] = ']';
    H->resp_set_content_type(resp, want_csv ? "text/csv" : "application/json");
    return H->resp_write(resp, out, o);
}

static void unload(void *state, void *mp) {
    model *m = mp;
    free(m->ballast);
    free(m);
}

#ifndef SERVE_TEST_FLAGS
#define SERVE_TEST_FLAGS 0
#endif
#ifndef SERVE_TEST_NAME
#define SERVE_TEST_NAME "serve_test"
#endif
static const smh_handler_ops ops = {
    .struct_size = sizeof(smh_handler_ops), .flags = SERVE_TEST_FLAGS, .load = load, .invoke = invoke, .unload = unload};

SMH_PLUGIN_DEFINE(.name = SERVE_TEST_NAME, .version = "1.0", .description = "test handler for smhost serve",
                  .kind = SMH_KIND_HANDLER, .init = init, .handler = &ops)
