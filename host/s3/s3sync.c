/* sagemaker_s3_output (contract section 8): every file closed under <root>/output/intermediate during the job
 * is uploaded to s3://<bucket>/<prefix>/<TRAINING_JOB_NAME>/output/intermediate/<relative path>, seconds after
 * the close, by a thread of the supervisor that never blocks the job; the last files are flushed, with a bound,
 * before output/success or output/failure is written.
 *
 * The watches are set before the job process starts (events queue in the inotify descriptor), the thread starts
 * after it was forked (shx_sup_opts.on_started), so the job process never inherits a half-held lock of it. */
#include "s3/s3sync.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"
#include "s3/s3.h"

#define TRIES 3 /* outer attempts per close, each with shx_s3_upload's own retries */
#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)

typedef struct watch {
    int wd;
    char *rel; /* "" for the top directory */
} watch;

typedef struct pending {
    char *rel;
    int64_t due;
    int tries;
} pending;

struct shx_s3_sync {
    shx_s3 *s;
    char *bucket, *prefix, *dir, *url;
    int ino, evfd;
    watch *w;
    size_t nw, capw;
    pending *p;
    size_t np, capp;
    pthread_t th;
    int started, finishing, uploaded, failed;
};

static char *child_rel(const char *rel, const char *name) {
    return *rel ? shx_xasprintf("%s/%s", rel, name) : shx_xstrdup(name);
}

static void queue(shx_s3_sync *y, const char *rel) {
    for (size_t i = 0; i < y->np; i++)
        if (!strcmp(y->p[i].rel, rel)) { /* closed again: the new content goes, now */
            y->p[i].due = 0;
            y->p[i].tries = 0;
            return;
        }
    if (y->np == y->capp) {
        y->capp = y->capp ? 2 * y->capp : 16;
        y->p = shx_xrealloc(y->p, y->capp * sizeof *y->p);
    }
    y->p[y->np++] = (pending){shx_xstrdup(rel), 0, 0};
}

static void add_tree(shx_s3_sync *y, const char *rel, int scan) {
    char *path = *rel ? shx_path_join(y->dir, rel) : shx_xstrdup(y->dir);
    int wd = inotify_add_watch(y->ino, path, WATCH_MASK | IN_ONLYDIR);
    if (wd < 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            shx_warn("intermediate output: cannot watch %s: %s; files closed there are uploaded at the end only",
                     path, strerror(errno));
        free(path);
        return;
    }
    size_t i = 0;
    while (i < y->nw && y->w[i].wd != wd) i++;
    if (i == y->nw) {
        if (y->nw == y->capw) {
            y->capw = y->capw ? 2 * y->capw : 16;
            y->w = shx_xrealloc(y->w, y->capw * sizeof *y->w);
        }
        y->w[y->nw++] = (watch){wd, shx_xstrdup(rel)};
    } else if (strcmp(y->w[i].rel, rel)) { /* a directory renamed: its new name */
        free(y->w[i].rel);
        y->w[i].rel = shx_xstrdup(rel);
    }
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *c = child_rel(rel, e->d_name);
        char *cp = shx_path_join(y->dir, c);
        struct stat st;
        if (lstat(cp, &st) == 0) {
            if (S_ISDIR(st.st_mode)) add_tree(y, c, scan);
            else if (S_ISREG(st.st_mode) && scan) queue(y, c); /* closed before the watch was there */
        }
        free(cp);
        free(c);
    }
    if (d) closedir(d);
    free(path);
}

static void read_events(shx_s3_sync *y) {
    char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(y->ino, buf, sizeof buf);
        if (n <= 0) return; /* EAGAIN: drained */
        for (char *q = buf; q < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)q;
            q += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                shx_warn("intermediate output: the inotify queue overflowed; rescanning %s", y->dir);
                add_tree(y, "", 1);
                continue;
            }
            size_t i = 0;
            while (i < y->nw && y->w[i].wd != ev->wd) i++;
            if (i == y->nw) continue;
            if (ev->mask & IN_IGNORED) {
                free(y->w[i].rel);
                y->w[i] = y->w[--y->nw];
                continue;
            }
            if (!ev->len) continue;
            char *c = child_rel(y->w[i].rel, ev->name);
            if (ev->mask & IN_ISDIR) {
                if (ev->mask & (IN_CREATE | IN_MOVED_TO)) add_tree(y, c, 1);
            } else if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) {
                queue(y, c);
            }
            free(c);
        }
    }
}

static void upload_one(shx_s3_sync *y, size_t i) {
    pending *p = &y->p[i];
    char *path = shx_path_join(y->dir, p->rel);
    char *key = *y->prefix ? shx_xasprintf("%s/%s", y->prefix, p->rel) : shx_xstrdup(p->rel);
    struct stat st;
    int done = 1;
    if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        shx_debug("intermediate output: %s is gone before its upload (deletions are not mirrored)", path);
    } else {
        char err[2048];
        int64_t t0 = shx_now_ms();
        int rc = shx_s3_upload(y->s, y->bucket, key, path, err, sizeof err);
        p->tries++;
        if (!rc) {
            y->uploaded++;
            shx_debug("intermediate output: uploaded %s (%lld bytes) to s3://%s/%s in %" PRId64 " ms", path,
                      (long long)st.st_size, y->bucket, key, shx_now_ms() - t0);
        } else if (p->tries < TRIES && !y->finishing) {
            int64_t wait = 5000LL << (p->tries - 1);
            shx_warn("intermediate output: cannot upload %s (attempt %d of %d): %s; trying again in %" PRId64 " s",
                     path, p->tries, TRIES, err, wait / 1000);
            p->due = shx_now_ms() + wait;
            done = 0;
        } else {
            y->failed++;
            shx_error("intermediate output: cannot upload %s, giving up after %d attempt(s): %s", path, p->tries, err);
        }
    }
    if (done) {
        free(p->rel);
        y->p[i] = y->p[--y->np];
    }
    free(key);
    free(path);
}

static void *run(void *arg) {
    shx_s3_sync *y = arg;
    for (;;) {
        int64_t now = shx_now_ms(), next = -1;
        for (size_t i = 0; i < y->np; i++)
            if (next < 0 || y->p[i].due < next) next = y->p[i].due;
        int timeout = next < 0 ? -1 : next <= now ? 0 : (int)(next - now);
        struct pollfd pf[2] = {{.fd = y->ino, .events = POLLIN}, {.fd = y->evfd, .events = POLLIN}};
        if (poll(pf, 2, timeout) < 0 && errno != EINTR) break;
        if (pf[1].revents) y->finishing = 1;
        read_events(y); /* after the job ended every close is already queued here */
        if (y->finishing) {
            while (y->np) {
                upload_one(y, 0);
                read_events(y);
            }
            break;
        }
        now = shx_now_ms();
        for (size_t i = 0; i < y->np;) {
            if (y->p[i].due > now) {
                i++;
                continue;
            }
            size_t before = y->np;
            upload_one(y, i);
            if (y->np == before) i++; /* rescheduled */
            read_events(y);           /* new directories get their watches between uploads */
            uint64_t v;
            if (read(y->evfd, &v, sizeof v) == (ssize_t)sizeof v) y->finishing = 1;
            if (y->finishing) break;
        }
    }
    return NULL;
}

int shx_s3_sync_prepare(char *const *env, const char *hp_region, const char *url, const char *job_name,
                        const char *dir, shx_s3_sync **out, char *err, size_t errlen) {
    *out = NULL;
    if (!url || !*url) return 0;
    if (!strncmp(url, "file://", 7)) {
        shx_info("sagemaker_s3_output is %s: intermediate output is not synced", url);
        return 0;
    }
    if (strncmp(url, "s3://", 5)) {
        snprintf(err, errlen, "sagemaker_s3_output=%s: only s3:// URLs (or file:// to turn syncing off) are "
                 "supported; fix the hyperparameter", url);
        return SHX_EXIT_DATAERR;
    }
    shx_s3_url u;
    char e[1024];
    if (shx_s3_url_parse(url, 0, &u, e, sizeof e) < 0) {
        snprintf(err, errlen, "sagemaker_s3_output: %s", e);
        return SHX_EXIT_DATAERR;
    }
    if (!job_name || !*job_name) {
        snprintf(err, errlen, "sagemaker_s3_output=%s needs TRAINING_JOB_NAME (it is part of the key of every "
                 "file); set it as the platform does", url);
        shx_s3_url_free(&u);
        return SHX_EXIT_DATAERR;
    }
    if (shx_is_dir(dir) || access(dir, F_OK) == 0) {
        shx_info("%s exists at start: the platform syncs it, smhost does not (sagemaker_s3_output %s)", dir, url);
        shx_s3_url_free(&u);
        return 0;
    }
    int r = shx_mkdirs(dir, 0755);
    if (r < 0) {
        snprintf(err, errlen, "cannot create %s for sagemaker_s3_output: %s", dir, strerror(-r));
        shx_s3_url_free(&u);
        return SHX_EXIT_CANTCREAT;
    }
    shx_s3 *s = shx_s3_new(env, hp_region, u.bucket, e, sizeof e);
    if (!s) {
        snprintf(err, errlen, "sagemaker_s3_output=%s: %s", url, e);
        shx_s3_url_free(&u);
        return SHX_EXIT_DATAERR;
    }
    shx_s3_sync *y = shx_xcalloc(1, sizeof *y);
    y->s = s;
    y->bucket = u.bucket;
    size_t kl = strlen(u.key);
    while (kl && u.key[kl - 1] == '/') u.key[--kl] = 0;
    y->prefix = shx_xasprintf("%s%s%s/output/intermediate", u.key, kl ? "/" : "", job_name);
    free(u.key);
    y->dir = shx_xstrdup(dir);
    y->url = shx_xstrdup(url);
    y->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    y->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (y->ino < 0 || y->evfd < 0) {
        snprintf(err, errlen, "sagemaker_s3_output: cannot watch %s: %s (fs.inotify.max_user_instances?)", dir,
                 strerror(errno));
        shx_s3_sync_free(y);
        return SHX_EXIT_OSERR;
    }
    add_tree(y, "", 1);
    /* Fail early and clearly when there are no credentials at all, not on the first checkpoint. */
    if (!shx_s3_credentials(s, e, sizeof e)) {
        snprintf(err, errlen, "sagemaker_s3_output=%s: %s", url, e);
        shx_s3_sync_free(y);
        return SHX_EXIT_NOPERM;
    }
    shx_info("syncing %s to s3://%s/%s/ while the job runs", dir, y->bucket, y->prefix);
    *out = y;
    return 0;
}

int shx_s3_sync_start(shx_s3_sync *y) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the thread takes no signal: the supervisor owns them */
    int e = pthread_create(&y->th, NULL, run, y);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        shx_warn("intermediate output: cannot start the sync thread (%s); files are uploaded at the end",
                 strerror(e));
        return -1;
    }
    y->started = 1;
    return 0;
}

int shx_s3_sync_finish(shx_s3_sync *y, int bound_seconds) {
    int64_t t0 = shx_now_ms();
    uint64_t one = 1;
    if (write(y->evfd, &one, sizeof one) < 0) {}
    if (!y->started) {
        y->finishing = 1;
        read_events(y);
        run(y); /* the thread never ran: flush from here (still bounded by each upload's retries) */
    } else {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += bound_seconds;
        int e = pthread_timedjoin_np(y->th, NULL, &dl);
        if (e) {
            shx_error("intermediate output: the final upload did not finish within %d s (SMHOST_S3_FLUSH_SECONDS); "
                      "%zu file(s) may be missing from s3://%s/%s/", bound_seconds, y->np, y->bucket, y->prefix);
            return -1; /* the thread still uses y: leave it to the process exit */
        }
    }
    int failed = y->failed;
    if (y->uploaded || failed)
        shx_info("intermediate output: %d upload(s) to s3://%s/%s/, %d failed; final flush %.2f s", y->uploaded,
                 y->bucket, y->prefix, failed, (shx_now_ms() - t0) / 1000.0);
    shx_s3_sync_free(y);
    return failed;
}

void shx_s3_sync_free(shx_s3_sync *y) {
    if (!y) return;
    shx_s3_free(y->s);
    if (y->ino >= 0) close(y->ino);
    if (y->evfd >= 0) close(y->evfd);
    for (size_t i = 0; i < y->nw; i++) free(y->w[i].rel);
    for (size_t i = 0; i < y->np; i++) free(y->p[i].rel);
    free(y->w);
    free(y->p);
    free(y->bucket);
    free(y->prefix);
    free(y->dir);
    free(y->url);
    free(y);
}
