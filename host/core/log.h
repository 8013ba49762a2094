/* Host logging on stderr, in the toolkit's layout: "2026-11-22 02:11:35,123 smhost INFO     message". */
#ifndef SHX_LOG_H
#define SHX_LOG_H
#include <stdarg.h>

#define SHX_DEBUG 10
#define SHX_INFO 20
#define SHX_WARNING 30
#define SHX_ERROR 40

void shx_log_set_level(int level);
/* Write log lines to fd instead of stderr (the job process keeps the supervisor's stderr, so host lines never
 * land in the program's stderr tail). */
void shx_log_set_fd(int fd);
int shx_log_get_level(void);
/* The start-up gate of a job process.  The supervisor writes the job's start-up log after fork(), while the job
 * process sets up and loads its runner, so that the log costs the program's start nothing.  Until the supervisor
 * closes its end, the job process holds back everything that could print: its own log lines (waited for here), the
 * runner plugin's init() and any program it starts (the callers wait with shx_log_gate_wait()).  fd: the read end of
 * a pipe whose write end the supervisor alone keeps open; it is closed once passed. */
void shx_log_gate(int fd);
void shx_log_gate_wait(void);
/* Parse "debug"/"info"/"warning"/"error" or a number; -1 when neither. */
int shx_log_parse_level(const char *s);
void shx_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void shx_vlog(int level, const char *who, const char *fmt, va_list ap);
#define shx_debug(...) shx_log(SHX_DEBUG, __VA_ARGS__)
#define shx_info(...) shx_log(SHX_INFO, __VA_ARGS__)
#define shx_warn(...) shx_log(SHX_WARNING, __VA_ARGS__)
#define shx_error(...) shx_log(SHX_ERROR, __VA_ARGS__)
#endif
