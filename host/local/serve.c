/* `smhost local serve`, `smhost local invoke`, `smhost local transform`: the serving half of Local Mode
 * (docs/local.md).  The server is `smhost serve` itself, on a private copy of the model; the client is libcurl
 * (http.so). */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/pyjson.h"
#include "core/util.h"
#include "http/http.h"
#include "local/cluster.h"
#include "local/local.h"
#include "plugin/modules.h"

extern char **environ;

#define EXIT_HTTP_4XX 4 /* the server answered 4xx (invoke, transform) */
#define EXIT_HTTP_5XX 5 /* the server answered 5xx */

static int http_exit(long status) {
    return status >= 500 ? EXIT_HTTP_5XX : EXIT_HTTP_4XX;
}

/* the message of an error answer: the body, on one line, at most 1000 bytes */
static char *error_message(const shx_http_req *r) {
    char *m = shx_xstrndup(r->resp.p ? r->resp.p : "", r->resp.len > 1000 ? 1000 : r->resp.len);
    shx_utf8_clean(m, 1000);
    for (char *p = m; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    size_t n = strlen(m);
    while (n && m[n - 1] == ' ') m[--n] = 0;
    return m;
}

static const char *status_text(long s) {
    switch (s) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 424: return "Failed Dependency";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return s >= 500 ? "Server Error" : "Client Error";
    }
}

/* ---- the server ---------------------------------------------------------------------------------------- */

typedef struct server {
    char *rundir;
    pid_t pid;
    int port;
    char url[128];
} server;

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

/* 0 when nothing listens on addr:port (a plain bind, without the SO_REUSEPORT smhost serve uses, fails when
 * anything does: otherwise /ping could reach that other server). */
static int port_in_use(const char *addr, int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0 || inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
        if (fd >= 0) close(fd);
        return 0;
    }
    int used = bind(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno == EADDRINUSE;
    close(fd);
    return used;
}

/* model/ in the private ML root: a tarball is unpacked there; a directory's entries are linked (the user's
 * folder is only read); --source-dir becomes model/code. */
static int prepare_model(const char *model, const char *source_dir, const char *model_dir, char *err, size_t errlen) {
    char *m = realpath(model, NULL);
    if (!m) {
        snprintf(err, errlen, "--model %s: %s: give a model.tar.gz or a model directory", model, strerror(errno));
        return SHX_EXIT_NOINPUT;
    }
    int rc = 0;
    if (shx_is_dir(m)) {
        rc = shx_mkdirs(model_dir, 0755) ? SHX_EXIT_CANTCREAT : 0;
        DIR *d = opendir(m);
        struct dirent *e;
        while (!rc && d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (source_dir && !strcmp(e->d_name, "code")) continue;
            char *src = shx_path_join(m, e->d_name), *dst = shx_path_join(model_dir, e->d_name);
            if (symlink(src, dst) < 0) {
                snprintf(err, errlen, "cannot link %s: %s", dst, strerror(errno));
                rc = SHX_EXIT_CANTCREAT;
            }
            free(src);
            free(dst);
        }
        if (d) closedir(d);
    } else if (shx_is_file(m)) {
        rc = shx_modules_unpack(m, model_dir, err, errlen);
        if (rc && !strstr(err, model)) {
            char tmp[1024];
            snprintf(tmp, sizeof tmp, "--model %s: %s", model, err);
            snprintf(err, errlen, "%s", tmp);
        }
    } else {
        snprintf(err, errlen, "--model %s: not a file or directory", model);
        rc = SHX_EXIT_NOINPUT;
    }
    if (!rc && source_dir) {
        char *s = realpath(source_dir, NULL);
        char *code = shx_path_join(model_dir, "code");
        if (!s || !shx_is_dir(s)) {
            snprintf(err, errlen, "--source-dir %s: not a directory", source_dir);
            rc = SHX_EXIT_NOINPUT;
        } else {
            shx_rmtree(code, SHX_RMTREE_ONE_FS); /* the private copy's code/, never the user's */
            if (symlink(s, code) < 0) {
                snprintf(err, errlen, "cannot link %s: %s", code, strerror(errno));
                rc = SHX_EXIT_CANTCREAT;
            }
        }
        free(s);
        free(code);
    }
    free(m);
    return rc;
}

static int http_get(const char *url, long timeout_ms, shx_http_req *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    r->method = "GET";
    r->url = url;
    r->timeout_ms = timeout_ms;
    return shx_modules_http(r, err, errlen);
}

/* Start `smhost serve` on the model in a private directory and wait until /ping answers 200.  The server is in
 * its own process group: Ctrl-C reaches smhost local, which stops it with SIGTERM. */
static int server_start(server *s, const char *model, const char *source_dir, int port, const char *listen,
                        const shx_strvec *env, int wait_s, const sigset_t *orig, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->pid = -1;
    if (!(s->rundir = shx_local_rundir_create(err, errlen))) return SHX_EXIT_CANTCREAT;
    char *root = shx_path_join(s->rundir, "ml");
    char *model_dir = shx_path_join(root, "model");
    int rc = prepare_model(model, source_dir, model_dir, err, errlen);
    free(model_dir);
    if (rc) {
        free(root);
        return rc;
    }
    s->port = port ? port : 8080;
    if (port_in_use(listen, s->port)) {
        snprintf(err, errlen, "port %d on %s is in use (another server?): stop it, or choose another --port", s->port,
                 listen);
        free(root);
        return SHX_EXIT_OSERR;
    }
    snprintf(s->url, sizeof s->url, "http://%s:%d", strcmp(listen, "0.0.0.0") ? listen : "127.0.0.1", s->port);
    char *self = shx_self_dir();
    char *exe = shx_path_join(self, "smhost");
    free(self);
    shx_strvec ev = {0};
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "SAGEMAKER_BASE_DIR=", 19) && strncmp(*e, "SAGEMAKER_BIND_TO_PORT=", 23) &&
            strncmp(*e, "SMHOST_SERVE_LISTEN=", 20))
            shx_strvec_push(&ev, *e);
    shx_strvec_take(&ev, shx_xasprintf("SAGEMAKER_BASE_DIR=%s", root));
    shx_strvec_take(&ev, shx_xasprintf("SAGEMAKER_BIND_TO_PORT=%d", s->port));
    if (strcmp(listen, "0.0.0.0")) shx_strvec_take(&ev, shx_xasprintf("SMHOST_SERVE_LISTEN=%s", listen));
    for (size_t k = 0; env && k < env->n; k++) shx_strvec_push(&ev, env->v[k]);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        sigprocmask(SIG_SETMASK, orig, NULL);
        /* the server's log goes to stderr: stdout is for the URL (serve) or the answers (transform) */
        dup2(2, 1);
        char *av[] = {exe, "serve", NULL};
        execve(exe, av, ev.v);
        dprintf(2, "smhost local: cannot run %s: %s\n", exe, strerror(errno));
        _exit(SHX_EXIT_NOEXEC);
    }
    shx_strvec_free(&ev);
    free(exe);
    free(root);
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    s->pid = pid;
    char ping[160];
    snprintf(ping, sizeof ping, "%s/ping", s->url);
    int64_t deadline = shx_now_ms() + (int64_t)wait_s * 1000;
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = -1;
            snprintf(err, errlen, "smhost serve exited (%s %d) before answering /ping: see its log above",
                     WIFEXITED(st) ? "exit code" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            return WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st) : SHX_EXIT_SOFTWARE;
        }
        shx_http_req r;
        char e[512];
        int hrc = http_get(ping, 2000, &r, e, sizeof e);
        long status = r.status;
        shx_buf_free(&r.resp);
        if (!hrc && status == 200) return 0;
        if (shx_now_ms() > deadline) {
            snprintf(err, errlen, "the server did not answer GET /ping with 200 within %d s (last: %s)", wait_s,
                     hrc ? e : "not ready");
            return SHX_EXIT_UNAVAILABLE;
        }
        /* a signal while waiting stops the wait */
        struct timespec ts = {0, 100 * 1000000};
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig > 0) {
            snprintf(err, errlen, "interrupted while the server was starting");
            return 128 + sig;
        }
    }
}

/* SIGTERM, wait for the server (it has its own grace period); its exit code. */
static int server_stop(server *s) {
    int code = 0;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int st;
        while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {}
        code = shx_exit_code_of(st);
        s->pid = -1;
    }
    if (s->rundir) {
        shx_local_rundir_remove(s->rundir);
        s->rundir = NULL;
    }
    return code;
}

static void block_signals(sigset_t *orig) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, orig);
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out) {
    long n;
    if (shx_parse_long(v, lo, hi, &n) < 0) {
        fprintf(stderr, "smhost local: %s '%s': expected a whole number from %d to %d\n", opt, v, lo, hi);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* ---- smhost local serve ----------------------------------------------------------------------------------- */

static void serve_usage(FILE *f) {
    fprintf(f,
            "usage: smhost local serve --model PATH [--source-dir DIR] [--port P] [--listen ADDR] [--env K=V]...\n"
            "                          [--wait-seconds S]\n"
            "\n"
            "Serve a model as a SageMaker endpoint would: PATH is a model.tar.gz (unpacked into a private temporary\n"
            "directory, never next to it) or a model directory (read, never written).  --source-dir DIR supplies\n"
            "code/ (inference.py).  Starts `smhost serve` on port P (default 8080) of ADDR (default 127.0.0.1;\n"
            "0.0.0.0 for every interface), waits for GET /ping, prints the URL and runs until Ctrl-C.\n"
            "Exit code: 130 after Ctrl-C, the server's own code when it stops by itself, 64-78 for errors.\n");
}

static int local_serve(const shx_config *cfg, int argc, char **argv) {
    const char *model = NULL, *source = NULL, *listen = "127.0.0.1";
    int port = 8080, wait_s = 300;
    shx_strvec env = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            serve_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "smhost local serve: %s: unknown option, or it needs a value (--help)\n", a);
            return SHX_EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--source-dir")) source = v;
        else if (!strcmp(a, "--listen")) listen = v;
        else if (!strcmp(a, "--port")) {
            if (parse_int(a, v, 1, 65535, &port)) return SHX_EXIT_USAGE;
        } else if (!strcmp(a, "--wait-seconds")) {
            if (parse_int(a, v, 1, 86400, &wait_s)) return SHX_EXIT_USAGE;
        } else if (!strcmp(a, "--env") && strchr(v, '=') && v[0] != '=') shx_strvec_push(&env, v);
        else {
            fprintf(stderr, "smhost local serve: unknown option '%s' (or --env without NAME=VALUE)\n", a);
            return SHX_EXIT_USAGE;
        }
    }
    if (!model) {
        fprintf(stderr, "smhost local serve: --model PATH is required (a model.tar.gz or a model directory)\n");
        return SHX_EXIT_USAGE;
    }
    sigset_t orig;
    block_signals(&orig);
    server s;
    char err[2048];
    int rc = server_start(&s, model, source, port, listen, &env, wait_s, &orig, err, sizeof err);
    shx_strvec_free(&env);
    if (rc) {
        fprintf(stderr, "smhost local serve: %s\n", err);
        server_stop(&s);
        return rc;
    }
    printf("%s\n", s.url);
    fflush(stdout);
    fprintf(stderr, "smhost local serve: serving %s at %s (POST %s/invocations; Ctrl-C stops)\n", model, s.url, s.url);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    for (;;) {
        int st;
        pid_t w = waitpid(s.pid, &st, WNOHANG);
        if (w == s.pid) {
            s.pid = -1;
            rc = shx_exit_code_of(st);
            fprintf(stderr, "smhost local serve: the server stopped by itself (exit code %d)\n", rc);
            server_stop(&s);
            return rc ? rc : SHX_EXIT_SOFTWARE;
        }
        int sig = sigwaitinfo(&set, NULL);
        if (sig == SIGCHLD || sig < 0) continue;
        char nb[16];
        fprintf(stderr, "smhost local serve: %s: stopping the server\n", shx_signal_name(sig, nb, sizeof nb));
        server_stop(&s);
        (void)cfg;
        return 128 + (sig == SIGHUP ? SIGTERM : sig);
    }
}

/* ---- smhost local invoke ---------------------------------------------------------------------------------- */

static void invoke_usage(FILE *f) {
    fprintf(f,
            "usage: smhost local invoke [--port P | --url URL] [--content-type T] [--accept A]\n"
            "                           [--custom-attributes S] [--timeout-seconds S] [FILE | -]\n"
            "\n"
            "POST FILE (or stdin) to /invocations of the server at http://127.0.0.1:P (default port 8080) or URL\n"
            "(the server's base URL) and print the answer's body on stdout.\n"
            "Exit code: 0 for a 2xx answer; 4 for a 4xx and 5 for a 5xx answer, with the status and the message on\n"
            "stderr; 69 when no server answers; 64/66 for a bad command line or an unreadable FILE.\n");
}

static int read_all(const char *path, shx_buf *out, char *err, size_t errlen) {
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return SHX_EXIT_NOINPUT;
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) shx_buf_add(out, buf, (size_t)n);
    int e = errno;
    if (fd) close(fd);
    if (n < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return SHX_EXIT_NOINPUT;
    }
    return 0;
}

static char *base_url(const char *url, int port) {
    if (!url) return shx_xasprintf("http://127.0.0.1:%d", port);
    char *u = shx_xstrdup(url);
    size_t n = strlen(u);
    while (n && u[n - 1] == '/') u[--n] = 0;
    if (n >= 12 && !strcmp(u + n - 12, "/invocations")) u[n - 12] = 0;
    return u;
}

static int local_invoke(int argc, char **argv) {
    const char *url = NULL, *ctype = "application/octet-stream", *accept = NULL, *attrs = NULL, *file = "-";
    int port = 8080, timeout = 60, files = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            invoke_usage(stdout);
            return 0;
        }
        if (a[0] != '-' || !strcmp(a, "-")) {
            file = a;
            if (++files > 1) {
                fprintf(stderr, "smhost local invoke: one body FILE at most ('%s')\n", a);
                return SHX_EXIT_USAGE;
            }
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "smhost local invoke: %s: unknown option, or it needs a value (--help)\n", a);
            return SHX_EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--url")) url = v;
        else if (!strcmp(a, "--content-type")) ctype = v;
        else if (!strcmp(a, "--accept")) accept = v;
        else if (!strcmp(a, "--custom-attributes")) attrs = v;
        else if (!strcmp(a, "--port")) {
            if (parse_int(a, v, 1, 65535, &port)) return SHX_EXIT_USAGE;
        } else if (!strcmp(a, "--timeout-seconds")) {
            if (parse_int(a, v, 1, 86400, &timeout)) return SHX_EXIT_USAGE;
        } else {
            fprintf(stderr, "smhost local invoke: unknown option '%s' (--help)\n", a);
            return SHX_EXIT_USAGE;
        }
    }
    char err[2048];
    shx_buf body = {0};
    int rc = read_all(file, &body, err, sizeof err);
    if (rc) {
        fprintf(stderr, "smhost local invoke: %s\n", err);
        return rc;
    }
    char *base = base_url(url, port);
    char *endpoint = shx_xasprintf("%s/invocations", base);
    char *h_ct = shx_xasprintf("Content-Type: %s", ctype);
    char *h_acc = accept ? shx_xasprintf("Accept: %s", accept) : NULL;
    char *h_attr = attrs ? shx_xasprintf("X-Amzn-SageMaker-Custom-Attributes: %s", attrs) : NULL;
    const char *headers[4] = {h_ct, NULL, NULL, NULL};
    int nh = 1;
    if (h_acc) headers[nh++] = h_acc;
    if (h_attr) headers[nh++] = h_attr;
    shx_http_req r = {.method = "POST", .url = endpoint, .headers = headers, .body = body.p, .body_len = body.len,
                      .timeout_ms = (long)timeout * 1000};
    rc = shx_modules_http(&r, err, sizeof err);
    if (rc == SHX_EXIT_UNAVAILABLE) {
        fprintf(stderr, "smhost local invoke: no answer from %s: %s. Is the server running (smhost local serve "
                        "--model ...)?\n", endpoint, err);
    } else if (rc) {
        fprintf(stderr, "smhost local invoke: %s\n", err);
    } else if (r.status >= 400) {
        char *m = error_message(&r);
        fprintf(stderr, "smhost local invoke: HTTP %ld %s: %s\n", r.status, status_text(r.status), m);
        free(m);
        rc = http_exit(r.status);
    } else {
        fwrite(r.resp.p ? r.resp.p : "", 1, r.resp.len, stdout);
        if (fflush(stdout)) rc = SHX_EXIT_OSERR;
    }
    shx_buf_free(&r.resp);
    shx_buf_free(&body);
    free(base), free(endpoint), free(h_ct), free(h_acc), free(h_attr);
    return rc;
}

/* ---- smhost local transform ------------------------------------------------------------------------------- */

static void transform_usage(FILE *f) {
    fprintf(f,
            "usage: smhost local transform --input DIR|FILE --output DIR [--model PATH [--source-dir DIR]]\n"
            "                              [--port P | --url URL] [--split-type None|Line]\n"
            "                              [--strategy SingleRecord|MultiRecord] [--max-payload-mb N]\n"
            "                              [--content-type T] [--accept A]\n"
            "\n"
            "A batch transform job: every file under --input goes to the model's /invocations and its answers to\n"
            "OUTPUT/<file>.out.  With --model the server is started (as smhost local serve) and stopped; otherwise\n"
            "the one at --port/--url (default 127.0.0.1:8080) is used.  GET /execution-parameters supplies the\n"
            "strategy and the payload limit unless given here (MULTI_RECORD and MultiRecord are both accepted).\n"
            "--split-type Line sends records (lines): one per request (SingleRecord), or as many as fit in the\n"
            "payload limit (MultiRecord); the answers are joined with newlines.  None (default) sends whole files.\n"
            "A record over the payload limit is refused with its number.\n"
            "Exit code: 0; 65 for a record over the limit; 4/5 for a 4xx/5xx answer; 69 when no server answers.\n");
}

static int parse_strategy(const char *v, int *multi) {
    if (!strcasecmp(v, "MultiRecord") || !strcasecmp(v, "MULTI_RECORD")) *multi = 1;
    else if (!strcasecmp(v, "SingleRecord") || !strcasecmp(v, "SINGLE_RECORD")) *multi = 0;
    else return -1;
    return 0;
}

static void list_files(const char *dir, const char *rel, shx_strvec *out) {
    char *path = rel ? shx_path_join(dir, rel) : shx_xstrdup(dir);
    DIR *d = opendir(path);
    if (!d) {
        free(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *r = rel ? shx_path_join(rel, e->d_name) : shx_xstrdup(e->d_name);
        char *full = shx_path_join(dir, r);
        if (shx_is_dir(full)) list_files(dir, r, out);
        else if (shx_is_file(full)) shx_strvec_push(out, r);
        free(full);
        free(r);
    }
    closedir(d);
    free(path);
}

static const char *guess_type(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return "application/octet-stream";
    if (!strcasecmp(dot, ".csv")) return "text/csv";
    if (!strcasecmp(dot, ".json")) return "application/json";
    if (!strcasecmp(dot, ".jsonl")) return "application/jsonlines";
    if (!strcasecmp(dot, ".npy")) return "application/x-npy";
    if (!strcasecmp(dot, ".txt")) return "text/plain";
    return "application/octet-stream";
}

typedef struct tjob {
    const char *endpoint, *ctype, *accept;
    int multi, split_line;
    size_t limit;
    int mb;
} tjob;

static int post(const tjob *t, const char *file, size_t first, size_t last, const char *body, size_t len, FILE *out,
                char *err, size_t errlen) {
    char *h_ct = shx_xasprintf("Content-Type: %s", t->ctype ? t->ctype : guess_type(file));
    char *h_acc = t->accept ? shx_xasprintf("Accept: %s", t->accept) : NULL;
    const char *headers[3] = {h_ct, h_acc, NULL};
    shx_http_req r = {.method = "POST", .url = t->endpoint, .headers = headers, .body = body, .body_len = len,
                      .timeout_ms = 3600L * 1000, .stop_on_signal = 1};
    int rc = shx_modules_http(&r, err, errlen);
    char what[96];
    if (first == last) snprintf(what, sizeof what, "record %zu", first);
    else snprintf(what, sizeof what, "records %zu-%zu", first, last);
    if (rc) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s: %s: %s", file, what, err);
        snprintf(err, errlen, "%s", tmp);
    } else if (r.status >= 400) {
        char *m = error_message(&r);
        snprintf(err, errlen, "%s: %s: HTTP %ld %s: %s", file, what, r.status, status_text(r.status), m);
        free(m);
        rc = http_exit(r.status);
    } else {
        fwrite(r.resp.p ? r.resp.p : "", 1, r.resp.len, out);
        if (t->split_line && (!r.resp.len || r.resp.p[r.resp.len - 1] != '\n')) fputc('\n', out);
    }
    shx_buf_free(&r.resp);
    free(h_ct);
    free(h_acc);
    return rc;
}

static int transform_file(const tjob *t, const char *in, const char *name, const char *outpath, char *err,
                          size_t errlen) {
    char *data;
    size_t len;
    int rc = shx_read_file(in, &data, &len);
    if (rc) {
        snprintf(err, errlen, "%s: %s", in, strerror(-rc));
        return SHX_EXIT_NOINPUT;
    }
    char *tmp = shx_xasprintf("%s.tmp", outpath);
    char *dir = shx_xstrdup(outpath);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    shx_mkdirs(dir, 0755);
    free(dir);
    FILE *out = fopen(tmp, "we");
    if (!out) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        free(data);
        return SHX_EXIT_CANTCREAT;
    }
    if (!t->split_line) {
        if (len > t->limit) {
            snprintf(err, errlen, "%s: record 1 is %zu bytes, over the payload limit of %d MB (%zu bytes); raise "
                     "--max-payload-mb or split the input (--split-type Line)", name, len, t->mb, t->limit);
            rc = SHX_EXIT_DATAERR;
        } else {
            rc = post(t, name, 1, 1, data, len, out, err, errlen);
        }
    } else {
        /* records: the lines, without their newline; a last line without newline counts too */
        shx_buf batch = {0};
        size_t first = 0, count = 0, recno = 0;
        const char *p = data, *end = data + len;
        while (!rc && p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *rec_end = nl ? nl : end;
            size_t rlen = (size_t)(rec_end - p);
            if (rlen && p[rlen - 1] == '\r') rlen--;
            const char *rec = p;
            p = nl ? nl + 1 : end;
            recno++;
            if (!rlen) continue; /* empty lines are not records */
            if (rlen > t->limit) {
                snprintf(err, errlen, "%s: record %zu is %zu bytes, over the payload limit of %d MB (%zu bytes); "
                         "raise --max-payload-mb", name, recno, rlen, t->mb, t->limit);
                rc = SHX_EXIT_DATAERR;
                break;
            }
            if (!t->multi) {
                rc = post(t, name, recno, recno, rec, rlen, out, err, errlen);
                continue;
            }
            if (count && batch.len + rlen + 1 > t->limit) {
                rc = post(t, name, first, recno - 1, batch.p, batch.len, out, err,
                          errlen);
                batch.len = 0;
                count = 0;
            }
            if (rc) break;
            if (!count) first = recno;
            shx_buf_add(&batch, rec, rlen);
            shx_buf_addc(&batch, '\n');
            count++;
        }
        if (!rc && count) rc = post(t, name, first, recno, batch.p, batch.len, out, err, errlen);
        shx_buf_free(&batch);
    }
    if (fclose(out) && !rc) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        rc = SHX_EXIT_CANTCREAT;
    }
    if (!rc && rename(tmp, outpath) < 0) {
        snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(errno));
        rc = SHX_EXIT_CANTCREAT;
    }
    if (rc) unlink(tmp);
    free(tmp);
    free(data);
    return rc;
}

static int local_transform(int argc, char **argv) {
    const char *input = NULL, *output = NULL, *model = NULL, *source = NULL, *url = NULL, *split = "None";
    const char *strategy = NULL, *ctype = NULL, *accept = NULL;
    int port = 8080, mb = 0, port_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            transform_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "smhost local transform: %s: unknown option, or it needs a value (--help)\n", a);
            return SHX_EXIT_USAGE;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--input")) input = v;
        else if (!strcmp(a, "--output")) output = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--source-dir")) source = v;
        else if (!strcmp(a, "--url")) url = v;
        else if (!strcmp(a, "--split-type")) split = v;
        else if (!strcmp(a, "--strategy")) strategy = v;
        else if (!strcmp(a, "--content-type")) ctype = v;
        else if (!strcmp(a, "--accept")) accept = v;
        else if (!strcmp(a, "--port")) {
            if (parse_int(a, v, 1, 65535, &port)) return SHX_EXIT_USAGE;
            port_set = 1;
        } else if (!strcmp(a, "--max-payload-mb")) {
            if (parse_int(a, v, 1, 100, &mb)) return SHX_EXIT_USAGE;
        } else {
            fprintf(stderr, "smhost local transform: unknown option '%s' (--help)\n", a);
            return SHX_EXIT_USAGE;
        }
    }
    tjob t = {.ctype = ctype, .accept = accept};
    if (!input || !output) {
        fprintf(stderr, "smhost local transform: --input and --output are required (--help)\n");
        return SHX_EXIT_USAGE;
    }
    if (!strcasecmp(split, "Line")) t.split_line = 1;
    else if (strcasecmp(split, "None")) {
        fprintf(stderr, "smhost local transform: --split-type '%s': expected None or Line (RecordIO and TFRecord "
                        "are not supported here)\n", split);
        return SHX_EXIT_USAGE;
    }
    int multi = -1;
    if (strategy && parse_strategy(strategy, &multi)) {
        fprintf(stderr, "smhost local transform: --strategy '%s': expected SingleRecord or MultiRecord (or "
                        "SINGLE_RECORD, MULTI_RECORD)\n", strategy);
        return SHX_EXIT_USAGE;
    }
    if (model && (url || port_set)) {
        fprintf(stderr, "smhost local transform: --model starts its own server: leave out --url and --port\n");
        return SHX_EXIT_USAGE;
    }
    shx_strvec files = {0};
    char *in_abs = realpath(input, NULL);
    if (in_abs && shx_is_dir(in_abs)) {
        list_files(in_abs, NULL, &files);
        shx_strvec_sort(&files);
    } else if (in_abs && shx_is_file(in_abs)) {
        char *slash = strrchr(in_abs, '/');
        shx_strvec_push(&files, slash + 1);
        *slash = 0;
    } else {
        fprintf(stderr, "smhost local transform: --input %s: %s\n", input, in_abs ? "not a file or directory"
                                                                            : strerror(errno));
        free(in_abs);
        return SHX_EXIT_NOINPUT;
    }
    if (!files.n) {
        fprintf(stderr, "smhost local transform: --input %s holds no files\n", input);
        free(in_abs);
        return SHX_EXIT_NOINPUT;
    }
    int mk = shx_mkdirs(output, 0755);
    if (mk) {
        fprintf(stderr, "smhost local transform: --output %s: %s\n", output, strerror(-mk));
        free(in_abs);
        shx_strvec_free(&files);
        return SHX_EXIT_CANTCREAT;
    }
    sigset_t orig;
    block_signals(&orig);
    char err[2048];
    int rc = 0;
    server s = {.pid = -1};
    char *base;
    if (model) {
        rc = server_start(&s, model, source, free_port(), "127.0.0.1", NULL, 300, &orig, err, sizeof err);
        base = shx_xstrdup(s.url);
    } else {
        base = base_url(url, port);
    }
    /* the container's execution parameters, as SageMaker reads them before the job */
    int exec_multi = -1, exec_mb = 0;
    if (!rc) {
        char *ep = shx_xasprintf("%s/execution-parameters", base);
        shx_http_req r;
        char e[1024];
        int hrc = http_get(ep, 10000, &r, e, sizeof e);
        if (hrc == SHX_EXIT_UNAVAILABLE) {
            snprintf(err, sizeof err, "no answer from %s: %s. Start a server (smhost local serve --model ...) or "
                     "pass --model", ep, e);
            rc = hrc;
        } else if (!hrc && r.status == 200) {
            pyj_error pe;
            pyj_value *v = pyj_parse(r.resp.p ? r.resp.p : "", r.resp.len, &pe);
            const char *bs = v ? pyj_as_string(pyj_dict_get(v, "BatchStrategy")) : NULL;
            pyj_value *m = v ? pyj_dict_get(v, "MaxPayloadInMB") : NULL;
            if (bs) parse_strategy(bs, &exec_multi);
            if (m && m->type == PYJ_INT) exec_mb = atoi(m->u.i);
            shx_info("local transform: %s: %.*s", ep, (int)(r.resp.len > 200 ? 200 : r.resp.len),
                     r.resp.p ? r.resp.p : "");
            pyj_free(v);
        } else if (!hrc) {
            shx_info("local transform: %s answered %ld: SageMaker's defaults apply", ep, r.status);
        }
        shx_buf_free(&r.resp);
        free(ep);
    }
    t.multi = multi >= 0 ? multi : exec_multi >= 0 ? exec_multi : 0;
    t.mb = mb ? mb : exec_mb > 0 && exec_mb <= 100 ? exec_mb : 6;
    t.limit = (size_t)t.mb * 1024 * 1024;
    char *endpoint = shx_xasprintf("%s/invocations", base);
    t.endpoint = endpoint;
    if (!rc)
        fprintf(stderr, "smhost local transform: %zu file(s), split %s, %s, max payload %d MB, to %s\n", files.n,
                t.split_line ? "Line" : "None", t.multi ? "MultiRecord" : "SingleRecord", t.mb, output);
    for (size_t i = 0; i < files.n && !rc; i++) {
        char *in = shx_path_join(in_abs, files.v[i]);
        char *outp = shx_xasprintf("%s/%s.out", output, files.v[i]);
        rc = transform_file(&t, in, files.v[i], outp, err, sizeof err);
        if (!rc) fprintf(stderr, "  %s -> %s\n", files.v[i], outp);
        free(in);
        free(outp);
    }
    if (rc) fprintf(stderr, "smhost local transform: %s\n", err);
    if (model) server_stop(&s);
    free(endpoint);
    free(base);
    free(in_abs);
    shx_strvec_free(&files);
    return rc;
}

int shx_local_serve_main(const shx_config *cfg, int argc, char **argv) {
    return local_serve(cfg, argc, argv);
}
int shx_local_invoke_main(int argc, char **argv) {
    return local_invoke(argc, argv);
}
int shx_local_transform_main(int argc, char **argv) {
    return local_transform(argc, argv);
}
