/* smhost.ini: read with inih through a line-counting reader, so that every warning and error names
 * file:line (Debian's libinih is built without INI_HANDLER_LINENO). */
#include "core/config.h"

#include "core/log.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_CONFIG "/etc/smhost/smhost.ini"

static void config_defaults(shx_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->log_level = -1;
    cfg->stop_grace_seconds = 110;
    cfg->serve_grace_seconds = 25;
    cfg->dns_timeout_seconds = 900;
    cfg->max_run_seconds = 0;
    cfg->pip_break_system_packages = 1;
    cfg->device_health_check = SHX_HEALTH_FAIL;
    cfg->device_probe_timeout_seconds = 60;
    cfg->dist_failure_grace_seconds = 10;
    cfg->dist_master_port = 7777;
    cfg->dist_control_port = 7779;
    cfg->dist_start_timeout_seconds = 600;
}

void shx_config_device_backends(const shx_config *cfg, shx_strvec *out) {
    static const char *const dflt[] = {"nvidia", "neuron", "amd"};
    if (cfg && cfg->device_backends_set) {
        for (size_t i = 0; i < cfg->device_backends.n; i++) shx_strvec_push(out, cfg->device_backends.v[i]);
        return;
    }
    for (size_t i = 0; i < sizeof dflt / sizeof dflt[0]; i++) shx_strvec_push(out, dflt[i]);
}

void shx_config_free(shx_config *cfg) {
    if (!cfg) return;
    free(cfg->path);
    shx_strvec_free(&cfg->plugin_path);
    shx_strvec_free(&cfg->device_backends);
    for (size_t i = 0; i < cfg->noverrides; i++) {
        free(cfg->overrides[i].ext);
        free(cfg->overrides[i].runner);
    }
    free(cfg->overrides);
    config_defaults(cfg);
}

const char *shx_config_runner_for(const shx_config *cfg, const char *ext) {
    if (!cfg || !ext) return NULL;
    for (size_t i = 0; i < cfg->noverrides; i++)
        if (!strcmp(cfg->overrides[i].ext, ext)) return cfg->overrides[i].runner;
    return NULL;
}

/* ---- parsing --------------------------------------------------------------------------------------------- */

typedef struct parse_state {
    shx_config *cfg;
    const char *file;
    const char *data;
    size_t pos, len;
    int line;          /* number of the line inih is working on */
    int indented;      /* that line starts with blank space (inih: a continuation line) */
    char last_section[64];
    char last_name[64];
    int last_line;     /* line of the previous handler call */
    char *err;         /* the first error, "file:line: ..." */
} parse_state;

static void parse_error(parse_state *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void parse_error(parse_state *ps, const char *fmt, ...) {
    if (ps->err) return; /* keep the first */
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
    ps->err = shx_xasprintf("%s:%d: %s", ps->file, ps->line, msg ? msg : "error");
    free(msg);
}

static int known_section(const char *s) {
    return !strcmp(s, "smhost") || !strcmp(s, "python") || !strcmp(s, "runners") || !strcmp(s, "devices") ||
           !strcmp(s, "distributed");
}

/* fgets-style reader over the file in memory; counts lines and spots section headers for warnings. */
static char *reader(char *str, int num, void *stream) {
    parse_state *ps = stream;
    if (ps->err || ps->pos >= ps->len) return NULL;
    const char *p = ps->data + ps->pos;
    const char *nl = memchr(p, '\n', ps->len - ps->pos);
    size_t n = nl ? (size_t)(nl - p) + 1 : ps->len - ps->pos;
    ps->line++;
    /* inih needs room for the text plus "\r\n\0"; a longer line would be split silently, so refuse it. */
    if (num < 4 || n > (size_t)num - 1) {
        parse_error(ps, "line is longer than %d characters; shorten it (plugin_path may continue on indented "
                        "lines)",
                    num - 3);
        return NULL;
    }
    if (memchr(p, '\0', n)) {
        parse_error(ps, "line contains a NUL byte; smhost.ini must be a text file");
        return NULL;
    }
    memcpy(str, p, n);
    str[n] = 0;
    ps->pos += n;
    ps->indented = (p[0] == ' ' || p[0] == '\t');
    /* A section header: "[name]" after optional blanks (inih's rule: '[' starts it, the first ']' ends it). */
    const char *s = p;
    while (s < p + n && (*s == ' ' || *s == '\t')) s++;
    if (s < p + n && *s == '[') {
        const char *end = memchr(s, ']', (size_t)(p + n - s));
        if (end) {
            ps->last_name[0] = 0; /* inih forgets the previous key at a section header */
            char name[64];
            size_t len = (size_t)(end - s - 1);
            if (len >= sizeof name) len = sizeof name - 1;
            memcpy(name, s + 1, len);
            name[len] = 0;
            if (!known_section(name))
                shx_warn("%s:%d: unknown section [%s] ignored (known: [smhost], [python], [runners], [devices], [distributed])",
                         ps->file, ps->line, name);
        }
    }
    return str;
}

/* A whole number >= 0 that fits an int (shx_parse_long's rule). */
static int parse_count(const char *v, int *out) {
    long x;
    if (shx_parse_long(v, 0, INT_MAX, &x) < 0) return -1;
    *out = (int)x;
    return 0;
}

static int parse_bool(const char *v, int *out) {
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) return *out = 1, 0;
        if (!strcasecmp(v, no[i])) return *out = 0, 0;
    }
    return -1;
}

static void add_plugin_path(shx_config *cfg, const char *v) {
    const char *p = v;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        while (n && (*p == ' ' || *p == '\t')) p++, n--;
        if (n) shx_strvec_take(&cfg->plugin_path, shx_xstrndup(p, n));
        if (!colon) break;
        p = colon + 1;
    }
}

static const struct {
    const char *key;
    size_t offset;
    const char *dflt;
} counts[] = {
    {"stop_grace_seconds", offsetof(shx_config, stop_grace_seconds), "110"},
    {"serve_grace_seconds", offsetof(shx_config, serve_grace_seconds), "25"},
    {"dns_timeout_seconds", offsetof(shx_config, dns_timeout_seconds), "900"},
    {"max_run_seconds", offsetof(shx_config, max_run_seconds), "0, no limit"},
};

/* [distributed]: the launcher layer (docs/distributed.md). */
static const struct {
    const char *key;
    size_t offset;
    int min, max;
    const char *dflt;
} dist_keys[] = {
    {"failure_grace_seconds", offsetof(shx_config, dist_failure_grace_seconds), 0, 3600, "10"},
    {"master_port", offsetof(shx_config, dist_master_port), 1, 65535, "7777"},
    {"control_port", offsetof(shx_config, dist_control_port), 1, 65535, "7779"},
    {"start_timeout_seconds", offsetof(shx_config, dist_start_timeout_seconds), 1, 86400, "600"},
};

static int handle_distributed(parse_state *ps, const char *name, const char *value) {
    for (size_t i = 0; i < sizeof dist_keys / sizeof dist_keys[0]; i++) {
        if (strcasecmp(name, dist_keys[i].key)) continue;
        int v;
        if (parse_count(value, &v) < 0 || v < dist_keys[i].min || v > dist_keys[i].max) {
            parse_error(ps, "[distributed] %s = \"%s\" is not valid: expected a whole number from %d to %d; fix the "
                            "value or remove the line (default: %s)",
                        dist_keys[i].key, value, dist_keys[i].min, dist_keys[i].max, dist_keys[i].dflt);
            return 0;
        }
        *(int *)((char *)ps->cfg + dist_keys[i].offset) = v;
        return 1;
    }
    shx_warn("%s:%d: unknown key \"%s\" in [distributed] ignored (known: failure_grace_seconds, master_port, "
             "control_port, start_timeout_seconds)",
             ps->file, ps->line, name);
    return 1;
}

static int handle_smhost(parse_state *ps, const char *name, const char *value) {
    shx_config *cfg = ps->cfg;
    if (!strcasecmp(name, "plugin_path")) { /* a second plugin_path line replaces the first */
        shx_strvec_free(&cfg->plugin_path);
        add_plugin_path(cfg, value);
        return 1;
    }
    if (!strcasecmp(name, "log_level")) {
        int lv = shx_log_parse_level(value);
        if (lv < 0) {
            parse_error(ps, "log_level = \"%s\" is not valid: expected debug, info, warning, error or a number 0-100; "
                            "fix the value or remove the line (default: info)",
                        value);
            return 0;
        }
        cfg->log_level = lv;
        return 1;
    }
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        if (strcasecmp(name, counts[i].key)) continue;
        int v;
        if (parse_count(value, &v) < 0) {
            parse_error(ps, "%s = \"%s\" is not valid: expected a whole number of seconds, 0 or more; "
                            "fix the value or remove the line (default: %s)",
                        counts[i].key, value, counts[i].dflt);
            return 0;
        }
        *(int *)((char *)cfg + counts[i].offset) = v;
        return 1;
    }
    shx_warn("%s:%d: unknown key \"%s\" in [smhost] ignored (known: plugin_path, log_level, stop_grace_seconds, "
             "serve_grace_seconds, dns_timeout_seconds, max_run_seconds)",
             ps->file, ps->line, name);
    return 1;
}

static int handle_python(parse_state *ps, const char *name, const char *value) {
    if (!strcasecmp(name, "break_system_packages")) {
        int b;
        if (parse_bool(value, &b) < 0) {
            parse_error(ps, "break_system_packages = \"%s\" is not valid: expected true or false (also yes/no, "
                            "on/off, 1/0); fix the value or remove the line (default: true)",
                        value);
            return 0;
        }
        ps->cfg->pip_break_system_packages = b;
        return 1;
    }
    shx_warn("%s:%d: unknown key \"%s\" in [python] ignored (known: break_system_packages)", ps->file, ps->line,
             name);
    return 1;
}

/* [devices] (docs/devices.md). */
static int handle_devices(parse_state *ps, const char *name, const char *value) {
    shx_config *cfg = ps->cfg;
    if (!strcasecmp(name, "health_check")) {
        if (!strcasecmp(value, "fail")) cfg->device_health_check = SHX_HEALTH_FAIL;
        else if (!strcasecmp(value, "warn")) cfg->device_health_check = SHX_HEALTH_WARN;
        else if (!strcasecmp(value, "off")) cfg->device_health_check = SHX_HEALTH_OFF;
        else {
            parse_error(ps, "health_check = \"%s\" is not valid: expected fail, warn or off; fix the value or remove "
                            "the line (default: fail)",
                        value);
            return 0;
        }
        return 1;
    }
    if (!strcasecmp(name, "isolate")) {
        int b;
        if (parse_bool(value, &b) < 0) {
            parse_error(ps, "isolate = \"%s\" is not valid: expected true or false (also yes/no, on/off, 1/0); fix "
                            "the value or remove the line (default: false)",
                        value);
            return 0;
        }
        cfg->device_isolate = b;
        return 1;
    }
    if (!strcasecmp(name, "backends")) {
        shx_strvec_free(&cfg->device_backends);
        cfg->device_backends_set = 1;
        char *copy = shx_xstrdup(value), *save = NULL;
        for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
            for (const char *c = t; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-')) {
                    parse_error(ps, "backends = \"%s\": \"%s\" is not a plugin name (a-z, 0-9, '_', '-'); list "
                                    "backend plugins separated by commas, like \"nvidia, neuron\", or leave it empty "
                                    "for none",
                                value, t);
                    free(copy);
                    return 0;
                }
            shx_strvec_push(&cfg->device_backends, t);
        }
        free(copy);
        return 1;
    }
    if (!strcasecmp(name, "probe_timeout_seconds")) {
        int v;
        if (parse_count(value, &v) < 0 || v < 1) {
            parse_error(ps, "probe_timeout_seconds = \"%s\" is not valid: expected a whole number of seconds, 1 or "
                            "more; fix the value or remove the line (default: 60)",
                        value);
            return 0;
        }
        cfg->device_probe_timeout_seconds = v;
        return 1;
    }
    shx_warn("%s:%d: unknown key \"%s\" in [devices] ignored (known: health_check, isolate, backends, "
             "probe_timeout_seconds)", ps->file, ps->line, name);
    return 1;
}

static int handle_runners(parse_state *ps, const char *name, const char *value) {
    shx_config *cfg = ps->cfg;
    if (name[0] != '.' || !name[1] || strchr(name, '/')) {
        parse_error(ps, "[runners] key \"%s\" is not a file extension: keys start with '.', like \".jl = julia\"",
                    name);
        return 0;
    }
    if (!*value || strchr(value, '/') || strchr(value, ' ')) {
        parse_error(ps, "[runners] %s = \"%s\" is not valid: expected the name of a runner plugin, like "
                        "\"%s = python\" (`smhost plugins` lists them)",
                    name, value, name);
        return 0;
    }
    for (size_t i = 0; i < cfg->noverrides; i++) {
        if (!strcmp(cfg->overrides[i].ext, name)) { /* the later line wins, as in configparser */
            free(cfg->overrides[i].runner);
            cfg->overrides[i].runner = shx_xstrdup(value);
            return 1;
        }
    }
    cfg->overrides = shx_xrealloc(cfg->overrides, (cfg->noverrides + 1) * sizeof *cfg->overrides);
    cfg->overrides[cfg->noverrides].ext = shx_xstrdup(name);
    cfg->overrides[cfg->noverrides].runner = shx_xstrdup(value);
    cfg->noverrides++;
    return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    parse_state *ps = user;
    if (ps->err) return 0;
    /* inih passes an indented line after a key as more of that key's value. */
    int continuation = ps->indented && ps->last_line && !strcmp(section, ps->last_section) &&
                       !strcmp(name, ps->last_name);
    snprintf(ps->last_section, sizeof ps->last_section, "%s", section);
    snprintf(ps->last_name, sizeof ps->last_name, "%s", name);
    ps->last_line = ps->line;
    if (!value) value = "";
    if (!*section) {
        shx_warn(
            "%s:%d: key \"%s\" outside any section ignored (put it under [smhost], [python], [runners] or [devices])",
            ps->file, ps->line, name);
        return 1;
    }
    if (!known_section(section)) return 1; /* warned at its header */
    if (continuation) {
        if (!strcmp(section, "smhost") && !strcasecmp(name, "plugin_path")) {
            add_plugin_path(ps->cfg, value);
            return 1;
        }
        parse_error(ps, "indented line continues the value of %s from the line above, and %s takes one value; "
                        "remove the indentation",
                    name, name);
        return 0;
    }
    if (!strcmp(section, "smhost")) return handle_smhost(ps, name, value);
    if (!strcmp(section, "python")) return handle_python(ps, name, value);
    if (!strcmp(section, "devices")) return handle_devices(ps, name, value);
    if (!strcmp(section, "distributed")) return handle_distributed(ps, name, value);
    return handle_runners(ps, name, value);
}

/* The text of line n (1-based) of data, for the malformed-line message. */
static char *line_text(const char *data, size_t len, int n) {
    const char *p = data, *end = data + len;
    for (int i = 1; i < n && p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return shx_xstrdup("");
        p = nl + 1;
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (l && p[l - 1] == '\r') l--;
    if (l > 80) l = 80;
    char *s = shx_xstrndup(p, l);
    shx_utf8_clean(s, l);
    return s;
}

int shx_config_load_file(shx_config *cfg, const char *path, int must_exist, char *err, size_t errlen) {
    config_defaults(cfg);
    char *data = NULL;
    size_t len = 0;
    int rc = shx_read_file(path, &data, &len);
    if (rc == -ENOENT && !must_exist) {
        shx_debug("no %s; using the built-in defaults", path);
        return 0;
    }
    if (rc < 0) {
        if (rc == -ENOENT)
            snprintf(err, errlen,
                     "configuration file %s (named by SMHOST_CONFIG) does not exist; create it (see "
                     "smhost.ini.sample) or unset SMHOST_CONFIG to use %s",
                     path, DEFAULT_CONFIG);
        else
            snprintf(err, errlen, "cannot read configuration file %s: %s; fix its permissions or point SMHOST_CONFIG "
                     "at another file", path, strerror(-rc));
        return -1;
    }
    parse_state ps = {.cfg = cfg, .file = path, .data = data, .len = len};
    int r = ini_parse_stream(reader, &ps, handler, &ps);
    if (!ps.err && r > 0) {
        char *text = line_text(data, len, r);
        ps.line = r;
        parse_error(&ps, "cannot parse \"%s\": expected [section], key = value, or a comment starting with ; or #",
                    text);
        free(text);
    } else if (!ps.err && r < 0) {
        parse_error(&ps, "inih failed (%d) while reading the file", r);
    }
    free(data);
    if (ps.err) {
        snprintf(err, errlen, "%s", ps.err);
        free(ps.err);
        shx_config_free(cfg);
        return -1;
    }
    cfg->path = shx_xstrdup(path);
    return 0;
}

int shx_config_load(shx_config *cfg, char *err, size_t errlen) {
    const char *env = getenv("SMHOST_CONFIG");
    if (env && *env) return shx_config_load_file(cfg, env, 1, err, errlen);
    return shx_config_load_file(cfg, DEFAULT_CONFIG, 0, err, errlen);
}
