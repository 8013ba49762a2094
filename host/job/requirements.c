/* requirements.txt installs (see requirements.h): `python3 -m pip install -r requirements.txt` in the code dir,
 * its output passed through to stderr while the last lines are kept for the failure reason. */
#include "job/requirements.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"
#include "supervisor/failure.h"

/* The python3 whose libpython the python plugin embeds (Debian's): requirements must land where the
 * program's interpreter looks. */
#ifndef SHX_PYTHON3
#define SHX_PYTHON3 "/usr/bin/python3"
#endif
#define TAIL_KEEP 16384 /* bytes of recent output kept to find the last lines in */

/* The job's environment plus pip's settings for unattended container use; the job's own values win. */
const char **shx_pip_environ(const char *const *envp, int break_system_packages) {
    size_t n = 0;
    while (envp != NULL && envp[n] != NULL) n++;
    const char **v = shx_xcalloc(n + 3, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) v[k++] = envp[i];
    if (!shx_env_lookup((char *const *)envp, "PIP_DISABLE_PIP_VERSION_CHECK")) v[k++] = "PIP_DISABLE_PIP_VERSION_CHECK=1";
    if (break_system_packages && !shx_env_lookup((char *const *)envp, "PIP_BREAK_SYSTEM_PACKAGES")) v[k++] = "PIP_BREAK_SYSTEM_PACKAGES=1";
    v[k] = NULL;
    return v;
}

/* Append data to the kept tail, dropping the oldest bytes beyond TAIL_KEEP. */
static void keep_tail(shx_buf *tail, const char *data, size_t n) {
    shx_buf_add(tail, data, n);
    if (tail->len > 2 * TAIL_KEEP) {
        size_t drop = tail->len - TAIL_KEEP;
        memmove(tail->p, tail->p + drop, tail->len - drop + 1);
        tail->len -= drop;
    }
}

int shx_requirements_install(const char *code_dir, const char *const *envp, int break_system_packages, char *err,
                             size_t errlen) {
    char *req = shx_path_join(code_dir, "requirements.txt");
    if (!shx_is_file(req)) {
        free(req);
        return 0;
    }
    free(req);
    shx_info("Installing dependencies from %s/requirements.txt: %s -m pip install -r requirements.txt", code_dir,
             SHX_PYTHON3);

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot create a pipe for pip: %s", strerror(errno));
        return SHX_EXIT_OSERR;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addchdir_np(&fa, code_dir); /* relative paths in requirements.txt, as the toolkit */
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    const char *argv[] = {SHX_PYTHON3, "-m", "pip", "install", "-r", "requirements.txt", NULL};
    const char **env = shx_pip_environ(envp, break_system_packages);
    pid_t pid;
    int rc = posix_spawn(&pid, SHX_PYTHON3, &fa, &attr, (char *const *)argv, (char *const *)env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    free(env);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        snprintf(err, errlen,
                 "cannot run %s to install %s/requirements.txt: %s; install python3 and "
                 "python3-pip in the image",
                 SHX_PYTHON3, code_dir, strerror(rc));
        return rc == ENOENT ? SHX_EXIT_NOTFOUND : SHX_EXIT_NOEXEC;
    }

    shx_buf tail = {0};
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fds[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t off = 0; off < n;) { /* pass through: pip's progress belongs in the job log */
            ssize_t w = write(STDERR_FILENO, chunk + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += w;
        }
        keep_tail(&tail, chunk, (size_t)n);
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            snprintf(err, errlen, "waiting for pip failed: %s", strerror(errno));
            shx_buf_free(&tail);
            return SHX_EXIT_OSERR;
        }
    }
    int code = shx_exit_code_of(status);
    if (code == 0) {
        shx_buf_free(&tail);
        return 0;
    }
    int head = snprintf(err, errlen,
                        "`%s -m pip install -r requirements.txt` in %s exited with code %d\n",
                        SHX_PYTHON3, code_dir, code);
    if (head > 0 && (size_t)head < errlen) {
        size_t room = errlen - (size_t)head - 1;
        char *lines = shx_error_message_from_tail(tail.p, tail.len, room);
        snprintf(err + head, errlen - (size_t)head, "%s", lines);
        free(lines);
    }
    shx_buf_free(&tail);
    return code;
}
