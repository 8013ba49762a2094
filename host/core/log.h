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
/* Parse "debug"/"info"/"warning"/"error" or a number; -1 when neither. */
int shx_log_parse_level(const char *s);
void shx_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void shx_vlog(int level, const char *who, const char *fmt, va_list ap);
#define shx_debug(...) shx_log(SHX_DEBUG, __VA_ARGS__)
#define shx_info(...) shx_log(SHX_INFO, __VA_ARGS__)
#define shx_warn(...) shx_log(SHX_WARNING, __VA_ARGS__)
#define shx_error(...) shx_log(SHX_ERROR, __VA_ARGS__)
#endif
