/* `smhost local cluster --hosts N [--bind SRC:DST[:ro]]... [--env K=V]... [--grace-seconds S] -- CMD [ARG...]`:
 * runs CMD on N simulated hosts (cluster.h), the same machinery `smhost local train` uses, so that tests of
 * multi-host code (distributed training) run on it.  "{host}" in a bind or an argument becomes the host's name.
 * Each host also gets SMHOST_LOCAL_HOST (algo-i), SMHOST_LOCAL_INDEX (i), SMHOST_LOCAL_HOSTS (algo-1,...,algo-N)
 * and SMHOST_LOCAL_IP.  Exit code: the first failed host's, 128+N when stopped by signal N, else 0. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"
#include "local/cluster.h"
#include "local/local.h"

extern char **environ;

char *shx_local_subst_host(const char *s, const char *host) {
    shx_buf b = {0};
    const char *p;
    while ((p = strstr(s, "{host}"))) {
        shx_buf_add(&b, s, (size_t)(p - s));
        shx_buf_adds(&b, host);
        s = p + 6;
    }
    shx_buf_adds(&b, s);
    return shx_buf_steal(&b);
}

void shx_local_print_hosts(const shx_cluster *c) {
    for (int i = 0; i < c->n; i++) {
        const shx_cluster_host *h = &c->hosts[i];
        double secs = h->end_ms > h->start_ms && h->start_ms ? (double)(h->end_ms - h->start_ms) / 1000.0 : 0.0;
        fprintf(stderr, "  %-8s exit code %3d  %8.1f s%s\n", h->name, h->exit_code, secs,
                c->first_failed == h->index ? "  (failed first)" : "");
    }
}

static void cluster_usage(FILE *f) {
    fprintf(f,
            "usage: smhost local cluster --hosts N [--bind SRC:DST[:ro]]... [--env K=V]... [--grace-seconds S]\n"
            "                            [--keep-going] -- COMMAND [ARG...]\n"
            "\n"
            "Run COMMAND on N simulated hosts algo-1..algo-N, each in its own network, UTS, mount and PID\n"
            "namespaces: hostname algo-i, eth0 on a private /24 joined by a bridge, an /etc/hosts naming every host.\n"
            "'{host}' in a bind or an argument becomes the host's name (--bind /tmp/job/{host}:/opt/ml).\n"
            "Each host gets SMHOST_LOCAL_HOST, SMHOST_LOCAL_INDEX, SMHOST_LOCAL_HOSTS, SMHOST_LOCAL_IP.\n"
            "Output lines are prefixed with the host.  A failing host stops the others (--keep-going: it does not).\n"
            "Ctrl-C: SIGTERM to every host, SIGKILL after the grace period (default 30 s).\n"
            "Exit code: the first failed host's, 130 after Ctrl-C, else 0.  See docs/local.md.\n");
}

static int parse_bind(const char *arg, shx_cluster_bind *b, char *err, size_t errlen) {
    char *s = shx_xstrdup(arg);
    char *colon = strchr(s, ':');
    if (!colon || colon == s || !colon[1]) {
        snprintf(err, errlen, "--bind '%s': expected SRC:DST or SRC:DST:ro with absolute paths", arg);
        free(s);
        return -1;
    }
    *colon = 0;
    char *dst = colon + 1, *opt = strchr(dst, ':');
    b->ro = 0;
    if (opt) {
        *opt++ = 0;
        if (strcmp(opt, "ro") && strcmp(opt, "rw")) {
            snprintf(err, errlen, "--bind '%s': the option after DST must be ro or rw, not '%s'", arg, opt);
            free(s);
            return -1;
        }
        b->ro = !strcmp(opt, "ro");
    }
    if (dst[0] != '/') {
        snprintf(err, errlen, "--bind '%s': DST must be an absolute path", arg);
        free(s);
        return -1;
    }
    char *src = s[0] == '/' ? shx_xstrdup(s) : NULL;
    if (!src) {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
        src = shx_path_join(cwd, s);
    }
    b->src = src;
    b->dst = shx_xstrdup(dst);
    free(s);
    return 0;
}

int shx_local_cluster_main(const shx_config *cfg, int argc, char **argv) {
    int n = 0, grace = 30, keep_going = 0;
    shx_strvec binds = {0}, envs = {0};
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cluster_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--keep-going")) {
            keep_going = 1;
            continue;
        }
        if ((!strcmp(a, "--hosts") || !strcmp(a, "--bind") || !strcmp(a, "--env") || !strcmp(a, "--grace-seconds")) &&
            i + 1 >= argc) {
            fprintf(stderr, "smhost local cluster: %s needs a value\n", a);
            return SHX_EXIT_USAGE;
        }
        if (!strcmp(a, "--hosts") || !strcmp(a, "--grace-seconds")) {
            long v;
            int is_hosts = !strcmp(a, "--hosts");
            if (shx_parse_long(argv[++i], is_hosts ? 1 : 0, is_hosts ? SHX_CLUSTER_MAX_HOSTS : 86400, &v) < 0) {
                fprintf(stderr, "smhost local cluster: %s '%s': expected a whole number from %d to %d\n", a, argv[i],
                        is_hosts ? 1 : 0, is_hosts ? SHX_CLUSTER_MAX_HOSTS : 86400);
                return SHX_EXIT_USAGE;
            }
            if (is_hosts) n = (int)v;
            else grace = (int)v;
        } else if (!strcmp(a, "--bind")) {
            shx_strvec_push(&binds, argv[++i]);
        } else if (!strcmp(a, "--env")) {
            if (!strchr(argv[++i], '=') || argv[i][0] == '=') {
                fprintf(stderr, "smhost local cluster: --env '%s': expected NAME=VALUE\n", argv[i]);
                return SHX_EXIT_USAGE;
            }
            shx_strvec_push(&envs, argv[i]);
        } else {
            fprintf(stderr, "smhost local cluster: unknown option '%s' (the command comes after --)\n\n", a);
            cluster_usage(stderr);
            return SHX_EXIT_USAGE;
        }
    }
    if (!n || i >= argc) {
        fprintf(stderr, "smhost local cluster: %s\n\n", !n ? "--hosts N is required" : "no command after --");
        cluster_usage(stderr);
        shx_strvec_free(&binds);
        shx_strvec_free(&envs);
        return SHX_EXIT_USAGE;
    }
    char err[2048];
    shx_cluster c;
    char *rundir = shx_local_rundir_create(err, sizeof err);
    if (!rundir) {
        fprintf(stderr, "smhost local cluster: %s\n", err);
        return SHX_EXIT_CANTCREAT;
    }
    shx_cluster_init(&c, n, rundir);
    c.grace_s = grace;
    c.stop_on_failure = !keep_going;
    shx_buf hl = {0};
    for (int h = 0; h < n; h++) shx_buf_printf(&hl, "%s%s", h ? "," : "", c.hosts[h].name);
    int rc = 0;
    for (int h = 0; h < n && !rc; h++) {
        shx_cluster_host *host = &c.hosts[h];
        shx_strvec av = {0}, ev = {0};
        for (int k = i; k < argc; k++) shx_strvec_take(&av, shx_local_subst_host(argv[k], host->name));
        for (char **e = environ; *e; e++) shx_strvec_push(&ev, *e);
        for (size_t k = 0; k < envs.n; k++) shx_strvec_take(&ev, shx_local_subst_host(envs.v[k], host->name));
        shx_strvec_take(&ev, shx_xasprintf("SMHOST_LOCAL_HOST=%s", host->name));
        shx_strvec_take(&ev, shx_xasprintf("SMHOST_LOCAL_INDEX=%d", host->index));
        shx_strvec_take(&ev, shx_xasprintf("SMHOST_LOCAL_HOSTS=%s", hl.p));
        shx_strvec_take(&ev, shx_xasprintf("SMHOST_LOCAL_IP=%s", host->ip));
        host->argv = av.v;
        host->envp = ev.v;
        host->binds = shx_xcalloc(binds.n + 1, sizeof *host->binds);
        for (size_t k = 0; k < binds.n && !rc; k++) {
            char *sub = shx_local_subst_host(binds.v[k], host->name);
            if (parse_bind(sub, &host->binds[k], err, sizeof err) < 0) rc = SHX_EXIT_USAGE;
            else host->nbinds++;
            free(sub);
        }
    }
    if (!rc) rc = shx_cluster_run(&c, err, sizeof err);
    if (rc) {
        fprintf(stderr, "smhost local cluster: %s\n", err);
    } else {
        rc = shx_cluster_exit_code(&c);
        if (rc || shx_log_get_level() <= SHX_DEBUG) {
            fprintf(stderr, "smhost local cluster: %d host%s, exit code %d\n", n, n > 1 ? "s" : "", rc);
            shx_local_print_hosts(&c);
        }
    }
    for (int h = 0; h < n; h++) {
        shx_cluster_host *host = &c.hosts[h];
        shx_strvec av = {.v = host->argv}, ev = {.v = host->envp};
        if (av.v) while (av.v[av.n]) av.n++;
        if (ev.v) while (ev.v[ev.n]) ev.n++;
        shx_strvec_free(&av);
        shx_strvec_free(&ev);
        for (size_t k = 0; k < host->nbinds; k++) {
            free(host->binds[k].src);
            free(host->binds[k].dst);
        }
        free(host->binds);
    }
    shx_buf_free(&hl);
    shx_strvec_free(&binds);
    shx_strvec_free(&envs);
    shx_cluster_free(&c);
    shx_local_rundir_remove(rundir);
    (void)cfg;
    return rc;
}
