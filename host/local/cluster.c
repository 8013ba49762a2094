/* N simulated hosts on one machine (see cluster.h and docs/local.md).
 *
 * Process tree (S = the supervisor, this process; it stays in the machine's namespaces, or in a new user
 * namespace when not root):
 *   S ─┬─ H_i  clone(NEWNET|NEWUTS|NEWNS|NEWPID|NEWIPC): PID 1 of host i, a tiny init.  Waits for "go", sets up
 *      │       lo, eth0, hostname, mounts, then forks the program (P_i) and relays SIGTERM/SIGINT to it; when P_i
 *      │       ends H_i exits with its code and the kernel kills whatever else is left in the host.
 *      └─ B    clone(NEWNET): holds the bridge smhbr0 and the host ends of the veth pairs (smh-<i>); the other
 *              end of each pair is created directly inside H_i's network namespace as eth0.
 * Every child has PR_SET_PDEATHSIG(SIGKILL): if S dies, so does everything, and with the last process of a
 * namespace the kernel removes the namespace with its bridge, links and mounts. */
#include "local/cluster.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"
#include "local/netlink.h"

#define BRIDGE "smhbr0"

extern char **environ;

void shx_cluster_init(shx_cluster *c, int n, const char *rundir) {
    memset(c, 0, sizeof *c);
    c->n = n;
    c->rundir = rundir;
    c->grace_s = 30;
    c->stop_on_failure = 1;
    c->namespaces = 1;
    c->hosts = shx_xcalloc((size_t)n, sizeof *c->hosts);
    for (int i = 0; i < n; i++) {
        shx_cluster_host *h = &c->hosts[i];
        h->index = i + 1;
        snprintf(h->name, sizeof h->name, "algo-%d", i + 1);
        snprintf(h->ip, sizeof h->ip, "%s.%d", SHX_CLUSTER_SUBNET, 10 + i + 1);
    }
}

void shx_cluster_free(shx_cluster *c) {
    free(c->hosts);
    c->hosts = NULL;
}

int shx_cluster_exit_code(const shx_cluster *c) {
    if (c->stop_signal) return 128 + c->stop_signal;
    if (c->first_failed) return c->hosts[c->first_failed - 1].exit_code;
    return 0;
}

/* ---- run directory --------------------------------------------------------------------------------------- */

static const char *tmpdir(void) {
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

static void clean_stale(void) {
    const char *t = tmpdir();
    DIR *d = opendir(t);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "smhost-local-", 13)) continue;
        char *dir = shx_path_join(t, e->d_name);
        char *lock = shx_path_join(dir, ".lock");
        struct stat st;
        /* a directory younger than 10 s may belong to a run that has not taken its lock yet */
        if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() && time(NULL) - st.st_mtime > 10) {
            int fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
            if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
                shx_info("removing %s, left by a local run that was killed", dir);
                close(fd);
                shx_rmtree(dir, SHX_RMTREE_ONE_FS);
            } else if (fd >= 0) {
                close(fd);
            }
        }
        free(lock);
        free(dir);
    }
    closedir(d);
}

char *shx_local_rundir_create(char *err, size_t errlen) {
    clean_stale();
    char *tmpl = shx_xasprintf("%s/smhost-local-%d-XXXXXX", tmpdir(), (int)getpid());
    if (!mkdtemp(tmpl)) {
        snprintf(err, errlen, "cannot create a run directory under %s: %s. Set TMPDIR to a writable directory.",
                 tmpdir(), strerror(errno));
        free(tmpl);
        return NULL;
    }
    char *lock = shx_path_join(tmpl, ".lock");
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(lock);
    if (fd < 0 || flock(fd, LOCK_EX) < 0) {
        snprintf(err, errlen, "cannot lock %s/.lock: %s", tmpl, strerror(errno));
        if (fd >= 0) close(fd);
        shx_rmtree(tmpl, SHX_RMTREE_ONE_FS);
        free(tmpl);
        return NULL;
    }
    /* the descriptor stays open (and locked) until this process ends; children do not inherit it (CLOEXEC) */
    return tmpl;
}

void shx_local_rundir_remove(char *dir) {
    if (!dir) return;
    if (!getenv("SMHOST_LOCAL_KEEP")) shx_rmtree(dir, SHX_RMTREE_ONE_FS);
    else shx_info("kept the run directory %s (SMHOST_LOCAL_KEEP)", dir);
    free(dir);
}

/* ---- namespaces ------------------------------------------------------------------------------------------ */

static pid_t clone_flags(int flags) {
    /* fork() semantics with namespace flags: the raw syscall with a NULL stack shares nothing but copies (COW) */
    return (pid_t)syscall(SYS_clone, (unsigned long)(flags | SIGCHLD), NULL, NULL, NULL, 0);
}

static int write_str(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    ssize_t n = write(fd, s, strlen(s));
    int rc = n == (ssize_t)strlen(s) ? 0 : -errno;
    close(fd);
    return rc;
}

static int enter_userns(char *err, size_t errlen) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (unshare(CLONE_NEWUSER) < 0) {
        int e = errno;
        snprintf(err, errlen,
                 "simulating hosts needs network, mount and UTS namespaces; as uid %d that takes a user namespace, "
                 "and the kernel refused one (unshare(CLONE_NEWUSER): %s). Run as root (sudo smhost local ...), or "
                 "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 on Debian, "
                 "user.max_user_namespaces > 0, or kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu); in a "
                 "container, run it with --privileged or with seccomp allowing unshare.",
                 (int)uid, strerror(e));
        return SHX_EXIT_UNAVAILABLE;
    }
    char map[64];
    int rc = write_str("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "0 %d 1\n", (int)uid);
    if (!rc) rc = write_str("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "0 %d 1\n", (int)gid);
    if (!rc) rc = write_str("/proc/self/gid_map", map);
    if (rc) {
        snprintf(err, errlen, "cannot map uid %d into the user namespace: %s", (int)uid, strerror(-rc));
        return SHX_EXIT_OSERR;
    }
    return 0;
}

#define HOST_NS (CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC)

/* Can this process create the host namespaces (directly, or in a user namespace)?  Probed in a child. */
int shx_cluster_probe(char *err, size_t errlen) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return SHX_EXIT_OSERR;
    }
    if (pid == 0) {
        close(p[0]);
        char e[1024] = "";
        int rc = 0;
        int userns = geteuid() != 0 || (getenv("SMHOST_LOCAL_USERNS") && !strcmp(getenv("SMHOST_LOCAL_USERNS"), "1"));
        if (userns) rc = enter_userns(e, sizeof e);
        if (!rc) {
            pid_t c = clone_flags(HOST_NS);
            if (c == 0) _exit(0);
            if (c < 0 && errno == EPERM && !userns) {
                rc = enter_userns(e, sizeof e);
                if (!rc) c = clone_flags(HOST_NS);
                if (c == 0) _exit(0);
            }
            if (!rc && c < 0) {
                snprintf(e, sizeof e,
                         "simulating hosts needs network, mount, UTS and PID namespaces, and the kernel refused them "
                         "(clone: %s). Run as root with CAP_SYS_ADMIN (in a container: --privileged), or allow "
                         "unprivileged user namespaces; or use --instance-count 1, which runs without them.",
                         strerror(errno));
                rc = SHX_EXIT_UNAVAILABLE;
            }
            if (c > 0) waitpid(c, NULL, 0);
        }
        if (rc) {
            if (write(p[1], e, strlen(e)) < 0) _exit(SHX_EXIT_OSERR);
        }
        _exit(rc);
    }
    close(p[1]);
    char e[1024];
    ssize_t n = read(p[0], e, sizeof e - 1);
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    if (n > 0) {
        e[n] = 0;
        snprintf(err, errlen, "%s", e);
    } else {
        snprintf(err, errlen, "the namespace probe failed");
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : SHX_EXIT_OSERR;
}

/* ---- inside a host (H_i, PID 1 of its PID namespace) ---------------------------------------------------- */

/* The failure of one host's set-up: said on its stderr (prefixed by S), exit 71. */
__attribute__((noreturn)) static void host_fail(const char *what, const char *path, int e) {
    dprintf(2, "smhost local: host set-up failed: %s%s%s: %s\n", what, path ? " " : "", path ? path : "",
            strerror(e));
    _exit(SHX_EXIT_OSERR);
}

static unsigned long locked_flags(const char *path) {
    /* a read-only bind must keep the flags of the mount it comes from (the kernel refuses to drop them) */
    struct statvfs sv;
    unsigned long f = 0;
    if (statvfs(path, &sv) == 0) {
        if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
        if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
    }
    return f;
}

static int under(const char *path, const char *dir) {
    size_t n = strlen(dir);
    return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == 0);
}

/* /opt/ml does not exist on this machine: cover /opt with a tmpfs that holds the same entries (each bound back
 * from the real /opt) plus an empty ml/, all inside this host's mount namespace. */
static void shadow_opt(void) {
    int fd = open("/opt", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) host_fail("/opt/ml needs /opt, which cannot be opened (create it: mkdir /opt)", "/opt", errno);
    DIR *d = opendir("/opt");
    if (!d) host_fail("cannot list", "/opt", errno);
    if (mount("tmpfs", "/opt", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0) host_fail("tmpfs on", "/opt", errno);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char src[PATH_MAX], dst[PATH_MAX];
        snprintf(src, sizeof src, "/proc/self/fd/%d/%s", fd, e->d_name);
        snprintf(dst, sizeof dst, "/opt/%s", e->d_name);
        struct stat st;
        if (stat(src, &st) < 0) continue;
        if (S_ISDIR(st.st_mode)) mkdir(dst, 0755);
        else close(open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
        if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0) host_fail("bind back", dst, errno);
    }
    closedir(d);
    close(fd);
    mkdir("/opt/ml", 0755);
}

static void host_mounts(const shx_cluster *c, const shx_cluster_host *h) {
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) host_fail("make / private", NULL, errno);
    char hosts[PATH_MAX];
    snprintf(hosts, sizeof hosts, "%s/hosts", c->rundir);
    if (mount(hosts, "/etc/hosts", NULL, MS_BIND, NULL) < 0) host_fail("bind /etc/hosts from", hosts, errno);
    int opt_shadowed = 0;
    for (size_t i = 0; i < h->nbinds; i++) {
        const shx_cluster_bind *b = &h->binds[i];
        struct stat st, sst;
        if (stat(b->src, &sst) < 0) host_fail("bind source", b->src, errno);
        if (stat(b->dst, &st) < 0) {
            int ok = 0;
            if (under(b->dst, "/opt/ml") && !opt_shadowed && stat("/opt/ml", &st) < 0) {
                shadow_opt();
                opt_shadowed = 1;
            }
            if (opt_shadowed && under(b->dst, "/opt")) ok = 1;
            for (size_t j = 0; j < i && !ok; j++)
                if (under(b->dst, h->binds[j].dst)) ok = 1;
            if (!ok) host_fail("mount point does not exist (smhost creates mount points only under /opt/ml and "
                               "other binds)", b->dst, ENOENT);
            if (S_ISDIR(sst.st_mode)) {
                int rc = shx_mkdirs(b->dst, 0755);
                if (rc) host_fail("mkdir", b->dst, -rc);
            } else {
                char *dir = shx_xstrdup(b->dst);
                char *slash = strrchr(dir, '/');
                if (slash && slash != dir) *slash = 0;
                shx_mkdirs(dir, 0755);
                free(dir);
                int fd = open(b->dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
                if (fd < 0) host_fail("create", b->dst, errno);
                close(fd);
            }
        }
        if (mount(b->src, b->dst, NULL, MS_BIND | MS_REC, NULL) < 0) host_fail("bind mount", b->dst, errno);
        if (b->ro && mount(NULL, b->dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags(b->dst), NULL) < 0)
            host_fail("make read-only", b->dst, errno);
    }
    /* its own /dev/shm, as a container has (POSIX shared memory of one host is not another's) */
    if (mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
        dprintf(2, "smhost local: note: this host shares the machine's /dev/shm (mounting its own: %s)\n",
                strerror(errno));
    /* a /proc of this PID namespace, so that ps and /proc/<pid> show the host's own processes; where the
     * kernel refuses (a container that masks parts of /proc) the machine's /proc stays */
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        dprintf(2, "smhost local: note: this host sees the machine's /proc (mounting its own: %s)\n", strerror(errno));
}

static void host_network(const shx_cluster_host *h) {
    int rc = shx_nl_link_up("lo");
    if (rc) host_fail("bring up", "lo", -rc);
    rc = shx_nl_add_ipv4("eth0", inet_addr(h->ip), 24);
    if (rc) host_fail("address eth0", h->ip, -rc);
    rc = shx_nl_link_up("eth0");
    if (rc) host_fail("bring up", "eth0", -rc);
}

/* PID 1 of the host: run the program, pass SIGTERM/SIGINT/SIGHUP on, reap orphans, exit with its code. */
__attribute__((noreturn)) static void host_init(const shx_cluster *c, const shx_cluster_host *h, int go_fd, int out,
                                                int errfd, const sigset_t *orig) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (dup2(out, 1) < 0 || dup2(errfd, 2) < 0) _exit(SHX_EXIT_OSERR);
    char go;
    if (read(go_fd, &go, 1) != 1) _exit(SHX_EXIT_OSERR); /* S gave up: exit quietly */
    close(go_fd);
    if (c->namespaces) {
        host_network(h);
        if (sethostname(h->name, strlen(h->name)) < 0) host_fail("sethostname", h->name, errno);
        host_mounts(c, h);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    pid_t p = fork();
    if (p < 0) host_fail("fork", NULL, errno);
    if (p == 0) {
        sigprocmask(SIG_SETMASK, orig, NULL);
        signal(SIGPIPE, SIG_DFL);
        setsid();
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0) dup2(null, 0);
        environ = h->envp ? h->envp : environ;
        execvp(h->argv[0], h->argv);
        int e = errno;
        dprintf(2, "smhost local: cannot run %s: %s\n", h->argv[0], strerror(e));
        _exit(e == ENOENT ? SHX_EXIT_NOTFOUND : SHX_EXIT_NOEXEC);
    }
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            kill(p, sig);
            continue;
        }
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
            if (w != p) continue;
            /* the program ended: this host ends (the kernel kills the rest of its PID namespace) */
            if (!c->namespaces) kill(-p, SIGKILL); /* without a PID namespace, its process group */
            _exit(shx_exit_code_of(st));
        }
    }
}

/* ---- the bridge (B) ------------------------------------------------------------------------------------- */

__attribute__((noreturn)) static void bridge_main(const shx_cluster *c, int status_fd) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char msg[512] = "";
    int rc = shx_nl_link_up("lo");
    if (rc) snprintf(msg, sizeof msg, "bring up lo: %s", strerror(-rc));
    if (!rc && (rc = shx_nl_add_bridge(BRIDGE))) snprintf(msg, sizeof msg, "create bridge: %s", strerror(-rc));
    if (!rc && (rc = shx_nl_link_up(BRIDGE))) snprintf(msg, sizeof msg, "bring up bridge: %s", strerror(-rc));
    for (int i = 0; i < c->n && !rc; i++) {
        char name[16];
        snprintf(name, sizeof name, "smh-%d", c->hosts[i].index);
        if ((rc = shx_nl_add_veth(name, "eth0", c->hosts[i].pid)))
            snprintf(msg, sizeof msg, "create veth pair for %s: %s", c->hosts[i].name, strerror(-rc));
        else if ((rc = shx_nl_set_master(name, BRIDGE)))
            snprintf(msg, sizeof msg, "attach %s to the bridge: %s", name, strerror(-rc));
        else if ((rc = shx_nl_link_up(name)))
            snprintf(msg, sizeof msg, "bring up %s: %s", name, strerror(-rc));
    }
    if (write(status_fd, msg, strlen(msg) + 1) < 0) _exit(1);
    close(status_fd);
    if (rc) _exit(1);
    for (;;) pause(); /* holds the bridge's namespace until S kills it */
}

/* ---- the supervisor (S) --------------------------------------------------------------------------------- */

typedef struct stream {
    int fd;
    FILE *to;
    shx_buf line;
    const char *prefix;
} stream;

static void emit(stream *s, const char *p, size_t n) {
    fprintf(s->to, "%s | ", s->prefix);
    fwrite(p, 1, n, s->to);
    if (!n || p[n - 1] != '\n') fputc('\n', s->to);
    fflush(s->to);
}

static void pump(stream *s) {
    char buf[8192];
    ssize_t n = read(s->fd, buf, sizeof buf);
    if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
        if (s->line.len) emit(s, s->line.p, s->line.len);
        s->line.len = 0;
        close(s->fd);
        s->fd = -1;
        return;
    }
    shx_buf_add(&s->line, buf, (size_t)n);
    char *start = s->line.p, *nl;
    size_t left = s->line.len;
    while ((nl = memchr(start, '\n', left))) {
        size_t len = (size_t)(nl - start) + 1;
        emit(s, start, len);
        start += len;
        left -= len;
    }
    if (left > 65536) { /* a very long line without newline: pass it on in pieces */
        emit(s, start, left);
        left = 0;
    }
    memmove(s->line.p, start, left);
    s->line.len = left;
    s->line.p[left] = 0;
}

static int write_hosts_file(const shx_cluster *c, char *err, size_t errlen) {
    shx_buf b = {0};
    shx_buf_adds(&b, "# written by smhost local: the simulated hosts of this run\n"
                     "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (int i = 0; i < c->n; i++) shx_buf_printf(&b, "%s\t%s\n", c->hosts[i].ip, c->hosts[i].name);
    char *path = shx_path_join(c->rundir, "hosts");
    int rc = shx_write_file(path, b.p, b.len, 0);
    if (rc) snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
    chmod(path, 0644);
    free(path);
    shx_buf_free(&b);
    return rc ? SHX_EXIT_CANTCREAT : 0;
}

static void stop_hosts(shx_cluster *c, int sig) {
    for (int i = 0; i < c->n; i++)
        if (c->hosts[i].running) kill(c->hosts[i].pid, sig);
}

int shx_cluster_run(shx_cluster *c, char *err, size_t errlen) {
    if (c->n < 1 || c->n > SHX_CLUSTER_MAX_HOSTS) {
        snprintf(err, errlen, "the number of hosts must be 1 to %d, not %d", SHX_CLUSTER_MAX_HOSTS, c->n);
        return SHX_EXIT_USAGE;
    }
    if (!c->namespaces && c->n > 1) {
        snprintf(err, errlen, "more than one host needs namespaces");
        return SHX_EXIT_USAGE;
    }
    int rc = write_hosts_file(c, err, errlen);
    if (rc) return rc;
    fflush(stdout);
    fflush(stderr);

    /* signals wait in a signalfd; children get the original mask back */
    sigset_t set, orig;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &orig);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);

    int ns_flags = HOST_NS;
    if (c->namespaces) {
        int userns = geteuid() != 0 || (getenv("SMHOST_LOCAL_USERNS") && !strcmp(getenv("SMHOST_LOCAL_USERNS"), "1"));
        if (!userns) {
            /* root without CAP_SYS_ADMIN (an unprivileged container): try a user namespace */
            pid_t t = clone_flags(HOST_NS);
            if (t == 0) _exit(0);
            if (t < 0 && errno == EPERM) userns = 1;
            else if (t > 0) waitpid(t, NULL, 0);
        }
        if (userns) {
            if ((rc = enter_userns(err, errlen))) goto out_sig;
            c->userns = 1;
            shx_debug("local: hosts run in a user namespace (uid %d is root there)", (int)getuid());
        }
    } else {
        ns_flags = 0;
    }

    stream *streams = shx_xcalloc((size_t)c->n * 2, sizeof *streams);
    int *go = shx_xcalloc((size_t)c->n, sizeof *go);
    for (int i = 0; i < c->n; i++) go[i] = -1;
    for (int i = 0; i < c->n * 2; i++) streams[i].fd = -1;
    pid_t bridge = -1;
    int started = 0;
    rc = 0;
    for (int i = 0; i < c->n; i++) {
        shx_cluster_host *h = &c->hosts[i];
        int po[2], pe[2], pg[2];
        if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 || pipe2(pg, O_CLOEXEC) < 0) {
            snprintf(err, errlen, "pipe: %s", strerror(errno));
            rc = SHX_EXIT_OSERR;
            break;
        }
        pid_t pid = clone_flags(ns_flags);
        if (pid == 0) {
            close(po[0]);
            close(pe[0]);
            close(pg[1]);
            host_init(c, h, pg[0], po[1], pe[1], &orig);
        }
        int e = errno;
        close(po[1]);
        close(pe[1]);
        close(pg[0]);
        streams[2 * i] = (stream){.fd = po[0], .to = stdout, .prefix = h->name};
        streams[2 * i + 1] = (stream){.fd = pe[0], .to = stderr, .prefix = h->name};
        go[i] = pg[1];
        if (pid < 0) {
            snprintf(err, errlen, "cannot start host %s in its namespaces (clone: %s).%s", h->name, strerror(e),
                     e == EPERM ? " Run as root, or allow user namespaces (see docs/local.md)." : "");
            rc = e == EPERM ? SHX_EXIT_UNAVAILABLE : SHX_EXIT_OSERR;
            break;
        }
        h->pid = pid;
        h->running = 1;
        started++;
    }
    if (!rc && c->namespaces) {
        int ps[2];
        if (pipe2(ps, O_CLOEXEC) < 0) {
            snprintf(err, errlen, "pipe: %s", strerror(errno));
            rc = SHX_EXIT_OSERR;
        } else {
            bridge = clone_flags(CLONE_NEWNET);
            if (bridge == 0) {
                close(ps[0]);
                bridge_main(c, ps[1]);
            }
            close(ps[1]);
            char msg[512] = "";
            ssize_t n = bridge > 0 ? read(ps[0], msg, sizeof msg - 1) : -1;
            close(ps[0]);
            if (bridge < 0) {
                snprintf(err, errlen, "cannot create the bridge's network namespace: %s", strerror(errno));
                rc = SHX_EXIT_OSERR;
            } else if (n <= 0 || msg[0]) {
                msg[n > 0 ? n : 0] = 0;
                snprintf(err, errlen, "cannot set up the hosts' network: %s", msg[0] ? msg : "the bridge process died");
                rc = SHX_EXIT_OSERR;
            }
        }
    }
    int64_t t0 = shx_now_ms();
    for (int i = 0; i < c->n; i++) {
        if (!rc && go[i] >= 0) {
            c->hosts[i].start_ms = t0;
            if (write(go[i], "g", 1) != 1) rc = SHX_EXIT_OSERR;
        }
        if (go[i] >= 0) close(go[i]); /* on failure the host reads EOF and exits */
    }
    if (rc) {
        /* nothing ran: take down what was started */
        for (int i = 0; i < c->n; i++)
            if (c->hosts[i].running) kill(c->hosts[i].pid, SIGKILL);
    }

    /* the loop: relay output, wait for the hosts, stop them on a signal or a failure */
    int64_t kill_at = 0;
    int running = started;
    for (;;) {
        int nfds = 0;
        struct pollfd pfd[2 * SHX_CLUSTER_MAX_HOSTS + 1];
        pfd[nfds++] = (struct pollfd){.fd = sfd, .events = POLLIN};
        for (int i = 0; i < 2 * c->n; i++)
            pfd[nfds++] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
        int open_streams = 0;
        for (int i = 0; i < 2 * c->n; i++) open_streams += streams[i].fd >= 0;
        if (!running && !open_streams) break;
        int timeout = -1;
        int64_t now = shx_now_ms();
        if (kill_at) timeout = kill_at > now ? (int)(kill_at - now) : 0;
        if (!running) timeout = 2000; /* the hosts are gone: their output is drained, not waited for forever */
        int n = poll(pfd, (nfds_t)nfds, timeout);
        if (n == 0 && !running) break;
        if (kill_at && shx_now_ms() >= kill_at) {
            shx_warn("local: hosts still running %d s after SIGTERM: killing them", c->grace_s);
            stop_hosts(c, SIGKILL);
            kill_at = 0;
        }
        if (n <= 0) continue;
        for (int i = 0; i < 2 * c->n; i++)
            if (streams[i].fd >= 0 && (pfd[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) pump(&streams[i]);
        if (!(pfd[0].revents & POLLIN)) continue;
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            int sig = (int)si.ssi_signo;
            if (sig == SIGCHLD) {
                int st;
                pid_t w;
                while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
                    for (int i = 0; i < c->n; i++) {
                        shx_cluster_host *h = &c->hosts[i];
                        if (h->pid != w || !h->running) continue;
                        h->running = 0;
                        running--;
                        h->end_ms = shx_now_ms();
                        h->exit_code = shx_exit_code_of(st);
                        if (h->exit_code && !c->first_failed && !c->stop_signal && !rc) {
                            c->first_failed = h->index;
                            if (c->stop_on_failure && running > 0) {
                                shx_warn("local: %s failed (exit code %d): stopping the other hosts", h->name,
                                         h->exit_code);
                                stop_hosts(c, SIGTERM);
                                kill_at = shx_now_ms() + (int64_t)c->grace_s * 1000;
                            }
                        }
                    }
                    if (w == bridge) {
                        bridge = -1;
                        if (running > 0 && !kill_at) {
                            shx_error("local: the process that holds the hosts' network ended: stopping the hosts");
                            stop_hosts(c, SIGTERM);
                            kill_at = shx_now_ms() + (int64_t)c->grace_s * 1000;
                        }
                    }
                }
            } else if (running > 0) {
                char nb[16];
                if (c->stop_signal == SIGINT && sig == SIGINT) {
                    shx_warn("local: second interrupt: killing every host now");
                    stop_hosts(c, SIGKILL);
                    continue;
                }
                if (!c->stop_signal) c->stop_signal = sig == SIGHUP ? SIGTERM : sig;
                shx_warn("local: %s: stopping every host (SIGTERM, then SIGKILL after %d s; Ctrl-C again kills now)",
                         shx_signal_name(sig, nb, sizeof nb), c->grace_s);
                stop_hosts(c, SIGTERM);
                if (!kill_at) kill_at = shx_now_ms() + (int64_t)c->grace_s * 1000;
            }
        }
    }
    if (bridge > 0) {
        kill(bridge, SIGKILL);
        waitpid(bridge, NULL, 0);
    }
    for (int i = 0; i < 2 * c->n; i++) {
        if (streams[i].fd >= 0) close(streams[i].fd);
        shx_buf_free(&streams[i].line);
    }
    free(streams);
    free(go);
    close(sfd);
out_sig:
    sigprocmask(SIG_SETMASK, &orig, NULL);
    return rc;
}
