/* Unit tests for supervisor.c: shx_supervise with job processes that exec small /bin/sh scripts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/failure.h"
#include "supervisor/supervisor.h"
#include "core/util.h"

static char g_dir[64];

static char *tpath(const char *name) {
    return shx_path_join(g_dir, name);
}

/* job_main: exec /bin/sh -c <script> as the host's exec would. */
static int sh_job(void *arg) {
    shx_sup_child_reset_signals();
    execl("/bin/sh", "sh", "-c", (const char *)arg, (char *)NULL);
    return errno == ENOENT ? 127 : 126;
}

static shx_sup_opts opts(void) {
    shx_sup_opts o = {.grace_seconds = 5, .leftover_grace_ms = 300, .max_run_seconds = 0,
                      .stderr_tail_bytes = 4096};
    return o;
}

static shx_sup_result run_sh(const char *script, shx_sup_opts o) {
    shx_sup_result r;
    assert_int_equal(shx_supervise(&o, sh_job, (void *)script, &r), 0);
    return r;
}

static void test_exit_codes(void **st) {
    (void)st;
    int codes[] = {0, 1, 3, 42, 126, 127, 200, 255};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char *s = shx_xasprintf("exit %d", codes[i]);
        shx_sup_result r = run_sh(s, opts());
        assert_int_equal(r.exit_code, codes[i]);
        assert_int_equal(r.signo, 0);
        shx_sup_result_free(&r);
        free(s);
    }
}

static void test_killed_by_signal(void **st) {
    (void)st;
    int sigs[] = {SIGSEGV, SIGABRT, SIGKILL, SIGTERM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        char *s = shx_xasprintf("kill -%d $$; sleep 5", sigs[i]);
        shx_sup_result r = run_sh(s, opts());
        assert_int_equal(r.signo, sigs[i]);
        assert_int_equal(r.exit_code, 128 + sigs[i]);
        assert_int_equal(r.stop_signal, 0);
        shx_sup_result_free(&r);
        free(s);
    }
}

static int missing_job(void *arg) {
    (void)arg;
    shx_sup_child_reset_signals();
    execl("/nonexistent/program", "program", (char *)NULL);
    return errno == ENOENT ? 127 : 126;
}

static void test_exec_failure(void **st) {
    (void)st;
    shx_sup_opts o = opts();
    shx_sup_result r;
    assert_int_equal(shx_supervise(&o, missing_job, NULL, &r), 0);
    assert_int_equal(r.exit_code, 127);
    shx_sup_result_free(&r);
}

static void test_stderr_tail(void **st) {
    (void)st;
    shx_sup_opts o = opts();
    o.stderr_tail_bytes = 64;
    shx_sup_result r = run_sh("i=0; while [ $i -lt 50 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done;"
                              "echo 'ValueError: the end' >&2; exit 2",
                              o);
    assert_int_equal(r.exit_code, 2);
    assert_non_null(r.stderr_tail);
    assert_int_equal(r.stderr_tail_len, 64);
    assert_int_equal(strlen(r.stderr_tail), 64);
    assert_non_null(strstr(r.stderr_tail, "noise line 49\nValueError: the end\n"));
    shx_sup_result_free(&r);
    /* no capture at all */
    o.stderr_tail_bytes = 0;
    r = run_sh("echo hidden >&2; exit 0", o);
    assert_null(r.stderr_tail);
    shx_sup_result_free(&r);
}

static void test_clean_signal_state(void **st) {
    (void)st;
    char *f = tpath("status");
    char *s = shx_xasprintf("exec grep -E '^Sig(Blk|Ign):' /proc/self/status > %s", f);
    shx_sup_result r = run_sh(s, opts());
    assert_int_equal(r.exit_code, 0);
    char *txt;
    size_t len;
    assert_int_equal(shx_read_file(f, &txt, &len), 0);
    assert_non_null(strstr(txt, "SigBlk:\t0000000000000000\n"));
    assert_non_null(strstr(txt, "SigIgn:\t0000000000000000\n"));
    free(txt);
    shx_sup_result_free(&r);
    free(s);
    free(f);
}

static void on_usr2(int sig) {
    (void)sig;
}

/* The reset leaves every disposition at SIG_DFL (ignored and caught ones, glibc's reserved 32 when ignored,
 * real-time ones) and clears the mask. */
static void test_reset_signals_dispositions(void **st) {
    (void)st;
    pid_t c = fork();
    if (c == 0) {
        signal(SIGINT, SIG_IGN);
        signal(SIGUSR1, SIG_IGN);
        signal(SIGRTMIN + 3, SIG_IGN);
        signal(SIGUSR2, on_usr2);
        struct {
            void *handler;
            unsigned long flags;
            void *restorer;
            uint64_t mask;
        } ign = {SIG_IGN, 0, NULL, 0}, old;
        if (syscall(SYS_rt_sigaction, 32, &ign, NULL, sizeof(uint64_t)) != 0) _exit(10);
        sigset_t blk;
        sigemptyset(&blk);
        sigaddset(&blk, SIGTERM);
        sigprocmask(SIG_BLOCK, &blk, NULL);
        shx_sup_child_reset_signals();
        int sigs[] = {SIGINT, SIGUSR1, SIGRTMIN + 3, SIGUSR2, SIGTERM, SIGHUP};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
            struct sigaction sa;
            if (sigaction(sigs[i], NULL, &sa) != 0 || sa.sa_handler != SIG_DFL) _exit(20 + (int)i);
        }
        memset(&old, 0, sizeof old);
        if (syscall(SYS_rt_sigaction, 32, NULL, &old, sizeof(uint64_t)) != 0 || old.handler != SIG_DFL) _exit(11);
        sigset_t now;
        sigprocmask(SIG_BLOCK, NULL, &now);
        if (sigismember(&now, SIGTERM)) _exit(12);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(c, &status, 0), c);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Sends `sig` to this process once `file` exists (the script's trap is installed). */
typedef struct sender {
    char *file;
    int sig;
} sender;
static void *send_when_ready(void *arg) {
    sender *sd = arg;
    for (int i = 0; i < 2000 && !shx_is_file(sd->file); i++) usleep(5000);
    kill(getpid(), sd->sig);
    return NULL;
}

static shx_sup_result run_with_signal(const char *script_fmt, int sig, shx_sup_opts o) {
    char *ready = tpath("ready");
    unlink(ready);
    char *s = shx_xasprintf(script_fmt, ready, g_dir);
    sender sd = {ready, sig};
    pthread_t th;
    pthread_create(&th, NULL, send_when_ready, &sd);
    shx_sup_result r = run_sh(s, o);
    pthread_join(th, NULL);
    free(s);
    free(ready);
    return r;
}

static void test_sigterm_forwarded_handler_exits_0(void **st) {
    (void)st;
    shx_sup_result r = run_with_signal("trap 'echo saved > %2$s/ckpt; exit 0' TERM; touch %1$s;"
                                       " while :; do sleep 0.05; done",
                                       SIGTERM, opts());
    assert_int_equal(r.stop_signal, SIGTERM);
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.killed_after_grace, 0);
    char *ck = tpath("ckpt");
    assert_true(shx_is_file(ck));
    unlink(ck);
    free(ck);
    shx_sup_result_free(&r);
}

static void test_sigterm_without_handler(void **st) {
    (void)st;
    shx_sup_result r = run_with_signal("touch %1$s; exec sleep 30 # %2$s", SIGTERM, opts());
    assert_int_equal(r.stop_signal, SIGTERM);
    assert_int_equal(r.signo, SIGTERM);
    assert_int_equal(r.exit_code, 143);
    shx_sup_result_free(&r);
    /* other forwarded signals are not stops */
    r = run_with_signal("trap 'exit 7' USR1; touch %1$s; while :; do sleep 0.05; done # %2$s", SIGUSR1, opts());
    assert_int_equal(r.stop_signal, 0);
    assert_int_equal(r.exit_code, 7);
    shx_sup_result_free(&r);
}

static void test_sigterm_ignored_killed_after_grace(void **st) {
    (void)st;
    shx_sup_opts o = opts();
    o.grace_seconds = 1;
    shx_sup_result r = run_with_signal("trap '' TERM; touch %1$s; while :; do sleep 0.05; done # %2$s", SIGTERM, o);
    assert_int_equal(r.stop_signal, SIGTERM);
    assert_int_equal(r.killed_after_grace, 1);
    assert_int_equal(r.signo, SIGKILL);
    assert_int_equal(r.exit_code, 137);
    shx_sup_result_free(&r);
}

static int alive(pid_t pid) {
    return kill(pid, 0) == 0;
}

static pid_t read_pid(const char *name) {
    char *f = tpath(name), *txt;
    size_t len;
    pid_t p = -1;
    if (shx_read_file(f, &txt, &len) == 0) {
        p = (pid_t)atoi(txt);
        free(txt);
    }
    unlink(f);
    free(f);
    return p;
}

static void test_leftovers_and_daemons_are_gone(void **st) {
    (void)st;
    /* a background child in the group, and a setsid daemon whose parent exits (an orphan we inherit) */
    char *s = shx_xasprintf("sleep 1000 & echo $! > %s/bg;"
                            " (setsid sh -c 'trap \"\" TERM; echo $$ > %s/daemon; exec sleep 1000' &) ;"
                            " while [ ! -s %s/daemon ]; do sleep 0.01; done; exit 4",
                            g_dir, g_dir, g_dir);
    time_t t0 = time(NULL);
    shx_sup_result r = run_sh(s, opts());
    assert_int_equal(r.exit_code, 4);
    assert_true(time(NULL) - t0 < 5);
    pid_t bg = read_pid("bg"), dm = read_pid("daemon");
    assert_true(bg > 0 && dm > 0);
    assert_false(alive(bg)); /* killed and reaped: not even a zombie */
    assert_false(alive(dm));
    shx_sup_result_free(&r);
    free(s);
}

static void test_max_run_seconds(void **st) {
    (void)st;
    shx_sup_opts o = opts();
    o.max_run_seconds = 1;
    time_t t0 = time(NULL);
    shx_sup_result r = run_sh("exec sleep 30", o);
    assert_true(time(NULL) - t0 < 5);
    assert_int_equal(r.timed_out, 1);
    assert_int_equal(r.exit_code, 143);
    assert_int_equal(r.stop_signal, 0);
    shx_sup_result_free(&r);
}

/* A job process that crashes before the program runs, as a broken native plugin would. */
static int crashing_job(void *arg) {
    shx_status_page *p = arg;
    p->phase = SHX_PHASE_PLUGIN_INIT;
    snprintf(p->plugin, sizeof p->plugin, "crashy");
    snprintf(p->plugin_path, sizeof p->plugin_path, "/x/crashy.so");
    raise(SIGSEGV);
    return 0;
}

static void test_plugin_crash_blamed(void **st) {
    (void)st;
    shx_status_page *p = shx_status_page_create();
    shx_sup_opts o = opts();
    shx_sup_result r;
    assert_int_equal(shx_supervise(&o, crashing_job, p, &r), 0);
    assert_int_equal(r.signo, SIGSEGV);
    assert_int_equal(r.exit_code, 139);
    char *t = shx_failure_text(&r, p, 110);
    assert_non_null(strstr(t, "plugin 'crashy' (/x/crashy.so) crashed with SIGSEGV during init"));
    free(t);
    shx_sup_result_free(&r);
}

static void test_reason_from_job_process(void **st) {
    (void)st;
    shx_status_page *p = shx_status_page_create();
    snprintf(p->command, sizeof p->command, "/bin/sh train.sh");
    shx_status_set_reason(p, "ExecuteUserScriptError", "program 'x' not found");
    assert_int_equal(p->reason_set, 1);
    assert_string_equal(p->reason_kind, "ExecuteUserScriptError"); /* the exit code comes from the process */
    shx_sup_result r = {.exit_code = 127};
    char *t = shx_failure_text(&r, p, 110);
    assert_string_equal(t, "ExecuteUserScriptError:\nExitCode 127\nErrorMessage \"program 'x' not found\"\n"
                           "Command \"/bin/sh train.sh\"\n");
    free(t);
}

/* The page is a memfd: a program exec()ed with its descriptor (python3 with pyboot.so) maps the same page by descriptor
 * (the child below does only that, with no help from the mapping fork() gave it) and reports through it. */
static void test_status_page_survives_exec_through_its_fd(void **st) {
    (void)st;
    shx_status_page *p = shx_status_page_create();
    assert_non_null(p);
    assert_true(p->fd >= 0);
    assert_int_equal(fcntl(p->fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC); /* never leaks into other programs */
    int fd = fcntl(p->fd, F_DUPFD, 3);
    pid_t pid = fork();
    if (pid == 0) { /* what pyboot.so does after exec: attach by descriptor number, report */
        char arg[16];
        snprintf(arg, sizeof arg, "%d", fd);
        shx_status_page *q = shx_status_page_attach(atoi(arg));
        if (!q) _exit(2);
        q->phase = SHX_PHASE_PROGRAM;
        shx_status_set_reason(q, "ExecuteUserScriptError", "ValueError: boom");
        _exit(1);
    }
    int wst;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_int_equal(WEXITSTATUS(wst), 1);
    sigset_t chld; /* the child's SIGCHLD stays pending (blocked since main()): take it, later tests expect none */
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    struct timespec zero = {0, 0};
    while (sigtimedwait(&chld, NULL, &zero) == SIGCHLD) continue;
    assert_int_equal(p->phase, SHX_PHASE_PROGRAM);
    assert_int_equal(p->reason_set, 1);
    assert_string_equal(p->reason, "ValueError: boom");
    close(fd);
    /* anything else is refused */
    int devnull = open("/dev/null", O_RDWR);
    assert_null(shx_status_page_attach(devnull));
    close(devnull);
    assert_null(shx_status_page_attach(-1));
}

/* ---- the pieces `smhost serve` uses from its own event loop -------------------------------------------------- */
static void test_signalfd_reads_the_supervisors_signals(void **st) {
    (void)st;
    int fd = shx_sup_signalfd();
    assert_true(fd >= 0);
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    assert_true(sigismember(&cur, SIGTERM) && sigismember(&cur, SIGCHLD) && sigismember(&cur, SIGPIPE));
    struct signalfd_siginfo si;
    assert_int_equal(read(fd, &si, sizeof si), -1); /* non-blocking, nothing pending */
    assert_int_equal(errno, EAGAIN);
    kill(getpid(), SIGUSR1);
    assert_int_equal(read(fd, &si, sizeof si), (ssize_t)sizeof si);
    assert_int_equal(si.ssi_signo, SIGUSR1);
    close(fd);
}

typedef struct reaped {
    pid_t pid;
    int status, calls;
} reaped;

static void on_reaped(pid_t pid, int status, void *arg) {
    reaped *r = arg;
    r->pid = pid;
    r->status = status;
    r->calls++;
}

static void test_reap_reports_each_child(void **st) {
    (void)st;
    assert_int_equal(shx_sup_reap(NULL, NULL), -1); /* no child at all */
    pid_t c = fork();
    if (c == 0) _exit(7);
    reaped r = {0};
    for (int t = 0; t < 500 && !r.calls; t++) {
        assert_true(shx_sup_reap(on_reaped, &r) >= 0 || r.calls);
        if (!r.calls) usleep(2000);
    }
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.pid, c);
    assert_true(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 7);
    assert_int_equal(shx_sup_reap(on_reaped, &r), -1);
}

/* Start `script` as an orphan: a child in its own session starts it and exits, so that we (a subreaper) inherit
 * it.  The script writes its pid to pidfile. */
static pid_t start_orphan(const char *script, const char *pidfile) {
    pid_t c = fork();
    if (c == 0) {
        shx_sup_child_reset_signals();
        setsid();
        if (fork() == 0) {
            execl("/bin/sh", "sh", "-c", script, (char *)NULL);
            _exit(127);
        }
        _exit(0);
    }
    waitpid(c, NULL, 0);
    for (int t = 0; t < 1000; t++) {
        char *text;
        size_t len;
        if (shx_read_file(pidfile, &text, &len) == 0) {
            pid_t pid = (pid_t)atoi(text);
            free(text);
            if (pid > 0) return pid;
        }
        usleep(5000);
    }
    fail_msg("%s never appeared", pidfile);
    return -1;
}

static pid_t parent_of(pid_t pid) {
    char path[64], *text;
    size_t len;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (shx_read_file(path, &text, &len)) return -1;
    int ppid = -1;
    char *rp = strrchr(text, ')');
    if (rp) sscanf(rp + 1, " %*c %d", &ppid);
    free(text);
    return (pid_t)ppid;
}

static void test_end_leftovers_terms_then_kills_and_reaps(void **st) {
    (void)st;
    char *f1 = tpath("plain.pid"), *f2 = tpath("stubborn.pid");
    char *s1 = shx_xasprintf("echo $$ > %s.tmp && mv %s.tmp %s && exec sleep 1000", f1, f1, f1);
    char *s2 = shx_xasprintf("trap '' TERM; echo $$ > %s.tmp && mv %s.tmp %s && exec sleep 1000", f2, f2, f2);
    pid_t plain = start_orphan(s1, f1), stubborn = start_orphan(s2, f2);
    assert_int_equal(parent_of(plain), getpid()); /* adopted: we are a subreaper */
    assert_int_equal(parent_of(stubborn), getpid());
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* at least our two orphans (the double fork's middle process may not have been reaped yet) */
    assert_true(shx_sup_end_leftovers(300, "the test") >= 2);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(took >= 0.29); /* the stubborn one needed the SIGKILL after the grace */
    assert_int_equal(kill(plain, 0), -1);  /* gone and reaped: not even a zombie */
    assert_int_equal(kill(stubborn, 0), -1);
    assert_int_equal(shx_sup_reap(NULL, NULL), -1);
    assert_int_equal(shx_sup_end_leftovers(300, "the test"), 0); /* nothing left: returns at once */
    free(f1), free(f2), free(s1), free(s2);
}

int main(void) {
    shx_sup_early_init();
    snprintf(g_dir, sizeof g_dir, "/tmp/smhost-test-sup-XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_killed_by_signal),
        cmocka_unit_test(test_exec_failure),
        cmocka_unit_test(test_stderr_tail),
        cmocka_unit_test(test_clean_signal_state),
        cmocka_unit_test(test_reset_signals_dispositions),
        cmocka_unit_test(test_sigterm_forwarded_handler_exits_0),
        cmocka_unit_test(test_sigterm_without_handler),
        cmocka_unit_test(test_sigterm_ignored_killed_after_grace),
        cmocka_unit_test(test_leftovers_and_daemons_are_gone),
        cmocka_unit_test(test_max_run_seconds),
        cmocka_unit_test(test_plugin_crash_blamed),
        cmocka_unit_test(test_reason_from_job_process),
        cmocka_unit_test(test_status_page_survives_exec_through_its_fd),
        cmocka_unit_test(test_signalfd_reads_the_supervisors_signals),
        cmocka_unit_test(test_reap_reports_each_child),
        cmocka_unit_test(test_end_leftovers_terms_then_kills_and_reaps),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char *cmd = shx_xasprintf("rm -rf %s", g_dir);
    if (system(cmd) != 0) rc = 1;
    free(cmd);
    return rc;
}
