/* Small shared helpers (see util.h). */
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include "core/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void oom(void) {
    static const char msg[] = "smhost: out of memory\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(71);
}

void *shx_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}
void *shx_xcalloc(size_t n, size_t m) {
    void *p = calloc(n ? n : 1, m ? m : 1);
    if (!p) oom();
    return p;
}
void *shx_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom();
    return q;
}
char *shx_xstrdup(const char *s) {
    return shx_xstrndup(s, strlen(s));
}
char *shx_xstrndup(const char *s, size_t n) {
    char *p = shx_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}
char *shx_xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    if (vasprintf(&p, fmt, ap) < 0) oom();
    va_end(ap);
    return p;
}

void shx_strvec_take(shx_strvec *sv, char *s) {
    if (sv->n + 2 > sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 8;
        sv->v = shx_xrealloc(sv->v, sv->cap * sizeof *sv->v);
    }
    sv->v[sv->n++] = s;
    sv->v[sv->n] = NULL;
}
void shx_strvec_push(shx_strvec *sv, const char *s) {
    shx_strvec_take(sv, shx_xstrdup(s));
}
void shx_strvec_free(shx_strvec *sv) {
    for (size_t i = 0; i < sv->n; i++) free(sv->v[i]);
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}
static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}
void shx_strvec_sort(shx_strvec *sv) {
    if (sv->n > 1) qsort(sv->v, sv->n, sizeof *sv->v, cmp_str);
}

static void buf_grow(shx_buf *b, size_t extra) {
    if (b->len + extra + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + extra + 1) cap *= 2;
        b->p = shx_xrealloc(b->p, cap);
        b->cap = cap;
    }
}
void shx_buf_add(shx_buf *b, const void *data, size_t n) {
    buf_grow(b, n);
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}
void shx_buf_adds(shx_buf *b, const char *s) {
    shx_buf_add(b, s, strlen(s));
}
void shx_buf_addc(shx_buf *b, char c) {
    shx_buf_add(b, &c, 1);
}
void shx_buf_printf(shx_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    buf_grow(b, (size_t)n);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}
char *shx_buf_steal(shx_buf *b) {
    if (!b->p) return shx_xstrdup("");
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}
void shx_buf_free(shx_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

int shx_read_file(const char *path, char **out, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    shx_buf b = {0};
    char tmp[65536];
    for (;;) {
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            shx_buf_free(&b);
            return -e;
        }
        if (r == 0) break;
        shx_buf_add(&b, tmp, (size_t)r);
    }
    close(fd);
    if (len) *len = b.len;
    *out = shx_buf_steal(&b);
    return 0;
}

int shx_write_file(const char *path, const void *data, size_t len, int exclusive) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), 0644);
    if (fd < 0) return -errno;
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            return -e;
        }
        p += w;
        len -= (size_t)w;
    }
    /* No fsync: these files (output/success, output/failure) are read after the container exits, from the page
     * cache; an fsync cost each job ~0.4 ms of start-to-exit time for nothing. */
    if (close(fd) < 0) return -errno;
    return 0;
}

const char *shx_env_lookup(char *const *env, const char *name) {
    size_t n = strlen(name);
    for (; env && *env; env++)
        if (!strncmp(*env, name, n) && (*env)[n] == '=') return *env + n + 1;
    return NULL;
}

char *shx_path_join(const char *a, const char *b) {
    size_t la = strlen(a);
    while (la > 1 && a[la - 1] == '/') la--;
    while (*b == '/') b++;
    return shx_xasprintf("%.*s/%s", (int)la, a, b);
}

int shx_mkdirs(const char *path, int mode) {
    if (shx_is_dir(path)) return 0; /* the usual case: one stat() instead of a mkdir() per component */
    char *p = shx_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, (mode_t)mode) < 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            return -e;
        }
        *s = '/';
    }
    int rc = 0;
    if (mkdir(p, (mode_t)mode) < 0) {
        if (errno != EEXIST) rc = -errno;
        else if (!shx_is_dir(p)) rc = -ENOTDIR;
    }
    free(p);
    return rc;
}

int shx_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
int shx_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
int shx_dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 1;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = 0;
            break;
        }
    }
    closedir(d);
    return empty;
}

static char *g_self_dir;

void shx_self_dir_set(const char *dir) {
    free(g_self_dir);
    g_self_dir = dir ? shx_xstrdup(dir) : NULL;
}

char *shx_self_dir(void) {
    /* The executable does not change: /proc/self/exe is read once per process, and a job process forked after
     * the first call inherits the answer (a new process's first /proc/self lookup is its slowest). */
    if (g_self_dir) return shx_xstrdup(g_self_dir); /* smhost's, set by code running in another executable */
    static char *cached;
    char *c = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (!c) {
        char buf[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
        if (n <= 0) return shx_xstrdup("."); /* not cached: a later call may succeed */
        buf[n] = 0;
        char *slash = strrchr(buf, '/');
        if (slash && slash != buf) *slash = 0;
        c = shx_xstrdup(buf);
        char *expected = NULL;
        if (!__atomic_compare_exchange_n(&cached, &expected, c, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            free(c); /* another thread was first */
            c = expected;
        }
    }
    return shx_xstrdup(c);
}

/* Length of the valid UTF-8 sequence at s (max n bytes), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return len;
}

size_t shx_utf8_clean(char *s, size_t max) {
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t l = utf8_seq(p + i, n - i);
        if (l == 0) {
            p[i++] = '?';
            continue;
        }
        if (i + l > max) break;
        i += l;
    }
    if (i > max) i = max;
    s[i] = 0;
    return i;
}

int64_t shx_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t shx_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

const char *shx_signal_name(int sig, char *buf, size_t cap) {
    const char *a = sigabbrev_np(sig);
    if (a) snprintf(buf, cap, "SIG%s", a);
    else snprintf(buf, cap, "signal %d", sig);
    return buf;
}

/* Empties the directory open as fd (taken: closed here), then the caller removes it.  dev: the filesystem to
 * stay on, or 0.  *first keeps the first error. */
static void rm_dir_fd(int fd, dev_t dev, int *first) {
    DIR *d = fdopendir(fd);
    if (!d) {
        if (!*first) *first = -errno;
        close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..")) continue;
        struct stat st;
        if (fstatat(fd, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT && !*first) *first = -errno;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (dev && st.st_dev != dev) continue; /* a mount point: left alone */
            int sub = openat(fd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                if (errno != ENOENT && !*first) *first = -errno;
                continue;
            }
            rm_dir_fd(sub, dev, first);
            if (unlinkat(fd, n, AT_REMOVEDIR) < 0 && errno != ENOENT && !(dev && errno == EBUSY) && !*first)
                *first = -errno;
        } else if (unlinkat(fd, n, 0) < 0 && errno != ENOENT && !*first) {
            *first = -errno;
        }
    }
    closedir(d);
}

int shx_rmtree(const char *path, unsigned flags) {
    struct stat st;
    if (lstat(path, &st) < 0) return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode)) return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
    int first = 0, fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 0 : -errno;
    rm_dir_fd(fd, flags & SHX_RMTREE_ONE_FS ? st.st_dev : 0, &first);
    if (rmdir(path) < 0 && errno != ENOENT && !((flags & SHX_RMTREE_ONE_FS) && errno == EBUSY) && !first)
        first = -errno;
    return first;
}

static const int stop_signals[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP};

int shx_is_stop_signal(int sig) {
    for (size_t k = 0; k < sizeof stop_signals / sizeof *stop_signals; k++)
        if (sig == stop_signals[k]) return 1;
    return 0;
}

int shx_stop_signal_pending(void) {
    sigset_t set;
    if (sigpending(&set) < 0) return 0;
    for (size_t k = 0; k < sizeof stop_signals / sizeof *stop_signals; k++)
        if (sigismember(&set, stop_signals[k]) == 1) return stop_signals[k];
    return 0;
}

int shx_parse_long(const char *s, long lo, long hi, long *out) {
    if (!s) return -1;
    while (isspace((unsigned char)*s)) s++;
    if (!isdigit((unsigned char)(*s == '-' || *s == '+' ? s[1] : *s))) return -1; /* strtol would take blanks */
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (isspace((unsigned char)*end)) end++;
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int shx_exit_code_of(int wait_status) {
    return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}
