/* Host logging (see log.h). */
#include "core/log.h"
#include "core/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>

static int g_level = SHX_INFO;
static int g_fd = 2;

void shx_log_set_fd(int fd) {
    g_fd = fd;
}

void shx_log_set_level(int level) {
    g_level = level;
}
int shx_log_get_level(void) {
    return g_level;
}

int shx_log_parse_level(const char *s) {
    if (!s || !*s) return -1;
    static const struct {
        const char *name;
        int level;
    } names[] = {{"debug", 10}, {"info", 20}, {"warning", 30}, {"warn", 30}, {"error", 40}, {"critical", 50}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(s, names[i].name)) return names[i].level;
    long v;
    return shx_parse_long(s, 0, 100, &v) < 0 ? -1 : (int)v;
}

static const char *level_name(int level) {
    if (level >= 50) return "CRITICAL";
    if (level >= 40) return "ERROR";
    if (level >= 30) return "WARNING";
    if (level >= 20) return "INFO";
    return "DEBUG";
}

void shx_vlog(int level, const char *who, const char *fmt, va_list ap) {
    if (level < g_level) return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    char msg[8192];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* One write per line so lines from several processes never interleave. */
    char line[8448];
    int n = snprintf(line, sizeof line, "%s,%03d %s %-8s %s\n", when, (int)(tv.tv_usec / 1000), who ? who : "smhost",
                     level_name(level), msg);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line - 1;
        line[n - 1] = '\n';
    }
    if (g_fd == 2) fflush(stderr);
    for (char *p = line; n > 0;) {
        ssize_t w = write(g_fd, p, (size_t)n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        p += w;
        n -= (int)w;
    }
}

void shx_log(int level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    shx_vlog(level, "smhost", fmt, ap);
    va_end(ap);
}
