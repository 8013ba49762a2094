/* Small shared helpers: allocation that aborts cleanly, string vectors, string builders, files. */
#ifndef SHX_UTIL_H
#define SHX_UTIL_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Out of memory is not recoverable for a 2 MiB host: print one line and exit 71 (EX_OSERR). */
void *shx_xmalloc(size_t n);
void *shx_xcalloc(size_t n, size_t m);
void *shx_xrealloc(void *p, size_t n);
char *shx_xstrdup(const char *s);
char *shx_xstrndup(const char *s, size_t n);
char *shx_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A growable NULL-terminated vector of owned strings. */
typedef struct shx_strvec {
    char **v;
    size_t n, cap;
} shx_strvec;
void shx_strvec_push(shx_strvec *sv, const char *s);  /* copies */
void shx_strvec_take(shx_strvec *sv, char *s);        /* takes ownership */
void shx_strvec_free(shx_strvec *sv);
void shx_strvec_sort(shx_strvec *sv);                 /* byte order == code-point order for UTF-8 */

/* A growable byte buffer, always NUL-terminated. */
typedef struct shx_buf {
    char *p;
    size_t len, cap;
} shx_buf;
void shx_buf_add(shx_buf *b, const void *data, size_t n);
void shx_buf_adds(shx_buf *b, const char *s);
void shx_buf_addc(shx_buf *b, char c);
void shx_buf_printf(shx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *shx_buf_steal(shx_buf *b); /* returns the string (never NULL), resets b */
void shx_buf_free(shx_buf *b);

/* Read a whole file.  Returns 0, or -errno.  *out is NUL-terminated (the length excludes it). */
int shx_read_file(const char *path, char **out, size_t *len);
/* Write a whole file (O_CREAT, and O_EXCL or O_TRUNC).  Returns 0 or -errno. */
int shx_write_file(const char *path, const void *data, size_t len, int exclusive);
char *shx_path_join(const char *a, const char *b);
/* The value of NAME in a "K=V" vector (an environment); NULL when absent. */
const char *shx_env_lookup(char *const *env, const char *name);
int shx_mkdirs(const char *path, int mode); /* mkdir -p; 0 or -errno */
int shx_is_dir(const char *path);
int shx_is_file(const char *path);
int shx_dir_is_empty(const char *path); /* 1 empty or missing, 0 not empty */
/* rm -rf: removes path, a file or a whole tree, never following a symbolic link, and goes on past entries it
 * cannot remove.  A missing path is no error.  SHX_RMTREE_ONE_FS stays on path's filesystem and leaves a mount
 * point below it (and what it holds) in place, as a namespace still using it needs.  Returns 0, or the -errno
 * of the first entry that could not be removed (what is left then names the culprit). */
#define SHX_RMTREE_ONE_FS 1u
int shx_rmtree(const char *path, unsigned flags);
/* Directory of the running executable (/proc/self/exe), without trailing slash: where smhost is, which the
 * plugin and module directories are found from.  Code of smhost's running in another executable (serve.so in the
 * Python zygote, which is python3) sets smhost's directory first with shx_self_dir_set(). */
char *shx_self_dir(void);
void shx_self_dir_set(const char *dir);
/* Truncate s (in place) to at most max bytes without splitting a UTF-8 sequence; replaces invalid
 * sequences with '?' first.  Returns the new length. */
size_t shx_utf8_clean(char *s, size_t max);

/* The one monotonic clock (CLOCK_MONOTONIC): milliseconds and microseconds. */
int64_t shx_now_ms(void);
int64_t shx_now_us(void);
/* The one rule for a whole number that a user wrote (an environment variable, an option, an ini value), as
 * Python's int() reads it, which the toolkit uses for its variables: decimal digits with an optional sign,
 * blanks around them forgiven; nothing else ("", "1.5", "0x10", "12abc" are refused).  0 with *out set when
 * lo <= value <= hi, else -1. */
int shx_parse_long(const char *s, long lo, long hi, long *out);
/* The exit code a shell reports for a wait status ($?): the exit status, or 128 + the signal that killed it. */
int shx_exit_code_of(int wait_status);
/* SIGTERM, SIGINT, SIGQUIT and SIGHUP: the signals that stop a job or a server. */
int shx_is_stop_signal(int sig);
/* The first stop signal pending (smhost blocks them and reads them later from its signalfd), or 0: how long work
 * outside the event loop (a download, an unpack) notices that it should end. */
int shx_stop_signal_pending(void);
/* "SIGTERM" for 15, "signal 99" for a number without a name; the text lives in buf (cap >= 16). */
const char *shx_signal_name(int sig, char *buf, size_t cap);
#endif
