/* `smhost local train`: a SageMaker training job on N simulated hosts, laid out and packaged the way the
 * SageMaker Python SDK's Local Mode does it (sagemaker/local/image.py), without Docker (docs/local.md). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/pyjson.h"
#include "core/util.h"
#include "local/cluster.h"
#include "local/local.h"
#include "plugin/modules.h"
#include "unpack/pack.h"

extern char **environ;

typedef struct job {
    char *entry_point, *source_dir, *instance_type, *output_path, *job_name, *region;
    int instance_count, log_level, grace_s;
    pyj_value *hps;                 /* user hyperparameters, decoded (typed) */
    shx_strvec ch_names, ch_paths, ch_types; /* channels; ch_types "" when no ContentType */
    shx_strvec env;                 /* K=V */
} job;

static void job_free(job *j) {
    free(j->entry_point), free(j->source_dir), free(j->instance_type), free(j->output_path), free(j->job_name);
    free(j->region);
    pyj_free(j->hps);
    shx_strvec_free(&j->ch_names), shx_strvec_free(&j->ch_paths), shx_strvec_free(&j->ch_types);
    shx_strvec_free(&j->env);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: smhost local train [--job FILE.json] --entry-point FILE [--source-dir DIR|FILE.tar.gz|s3://...]\n"
            "                          [--hyperparameter K=V]... [--channel NAME=PATH]... [--instance-count N]\n"
            "                          [--instance-type local|local_gpu|ml.*] [--env K=V]... [--output-path DIR]\n"
            "                          [--job-name NAME] [--region R] [--log-level N] [--grace-seconds S]\n"
            "\n"
            "Run a SageMaker training job on N simulated hosts algo-1..algo-N, as the SageMaker SDK's Local Mode\n"
            "does, without Docker.  Each host runs `smhost train` with its own /opt/ml and the three config files;\n"
            "channel data is bound read-only, never copied.  Afterwards OUTPUT-PATH/JOB-NAME/ holds model.tar.gz\n"
            "(when the job succeeded) and output.tar.gz.\n"
            "\n"
            "  --job FILE.json        the same fields as JSON: entry_point, source_dir, hyperparameters {},\n"
            "                         channels {name: path}, instance_count, instance_type, environment {},\n"
            "                         output_path, job_name, region, container_log_level; options win\n"
            "  --hyperparameter K=V   V is JSON when it parses as JSON (10, 0.1, true, [1,2]), else a string;\n"
            "                         written JSON-encoded, as the SDK does\n"
            "  --output-path DIR      default: the current directory\n"
            "  --job-name NAME        default: <entry point>-YYYY-MM-DD-HH-MM-SS-mmm\n"
            "  --region R             AWS_REGION and sagemaker_region (default $AWS_REGION, else us-east-1)\n"
            "  --grace-seconds S      after Ctrl-C or a failed host: SIGTERM, then SIGKILL after S seconds\n"
            "                         (default: [smhost] stop_grace_seconds + 10)\n"
            "\n"
            "Exit code: the job's (the first failed host's), 130 after Ctrl-C, 64-78 for smhost's own errors.\n");
}

/* ---- the job description: job file, then options ------------------------------------------------------ */

static int fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

static void set_str(char **dst, const char *v) {
    free(*dst);
    *dst = shx_xstrdup(v);
}

static void add_channel(job *j, const char *name, const char *path, const char *ctype) {
    for (size_t i = 0; i < j->ch_names.n; i++)
        if (!strcmp(j->ch_names.v[i], name)) { /* a later definition replaces an earlier one */
            free(j->ch_paths.v[i]);
            free(j->ch_types.v[i]);
            j->ch_paths.v[i] = shx_xstrdup(path);
            j->ch_types.v[i] = shx_xstrdup(ctype ? ctype : "");
            return;
        }
    shx_strvec_push(&j->ch_names, name);
    shx_strvec_push(&j->ch_paths, path);
    shx_strvec_push(&j->ch_types, ctype ? ctype : "");
}

static int load_job_file(job *j, const char *path, char *err, size_t errlen) {
    char *text;
    size_t len;
    int rc = shx_read_file(path, &text, &len);
    if (rc) return fail(err, errlen, SHX_EXIT_NOINPUT, "job file %s: %s", path, strerror(-rc));
    pyj_error pe;
    pyj_value *v = pyj_parse(text, len, &pe);
    free(text);
    if (!v) return fail(err, errlen, SHX_EXIT_DATAERR, "job file %s: not JSON: %s", path, pe.msg);
    rc = 0;
    if (v->type != PYJ_DICT) rc = fail(err, errlen, SHX_EXIT_DATAERR, "job file %s: expected a JSON object", path);
    for (size_t i = 0; !rc && i < v->u.dict.n; i++) {
        const char *k = v->u.dict.keys[i].s;
        pyj_value *x = v->u.dict.vals[i];
        const char *s = pyj_as_string(x);
        if (!strcmp(k, "entry_point") || !strcmp(k, "source_dir") || !strcmp(k, "instance_type") ||
            !strcmp(k, "output_path") || !strcmp(k, "job_name") || !strcmp(k, "region")) {
            if (!s) {
                rc = fail(err, errlen, SHX_EXIT_DATAERR, "job file %s: \"%s\" must be a string", path, k);
                break;
            }
            char **dst = !strcmp(k, "entry_point") ? &j->entry_point : !strcmp(k, "source_dir") ? &j->source_dir
                       : !strcmp(k, "instance_type") ? &j->instance_type : !strcmp(k, "output_path") ? &j->output_path
                       : !strcmp(k, "job_name") ? &j->job_name : &j->region;
            set_str(dst, s);
        } else if (!strcmp(k, "instance_count") || !strcmp(k, "container_log_level")) {
            long n = x->type == PYJ_INT ? strtol(x->u.i, NULL, 10) : -1;
            if (x->type != PYJ_INT || n < 0 || n > 100000) {
                rc = fail(err, errlen, SHX_EXIT_DATAERR, "job file %s: \"%s\" must be a whole number", path, k);
                break;
            }
            if (!strcmp(k, "instance_count")) j->instance_count = (int)n;
            else j->log_level = (int)n;
        } else if (!strcmp(k, "hyperparameters")) {
            if (x->type != PYJ_DICT) {
                rc = fail(err, errlen, SHX_EXIT_DATAERR, "job file %s: \"hyperparameters\" must be an object", path);
                break;
            }
            for (size_t h = 0; h < x->u.dict.n; h++)
                pyj_dict_set(j->hps, x->u.dict.keys[h].s, pyj_copy(x->u.dict.vals[h]));
        } else if (!strcmp(k, "channels")) {
            if (x->type != PYJ_DICT) {
                rc = fail(err, errlen, SHX_EXIT_DATAERR, "job file %s: \"channels\" must be an object", path);
                break;
            }
            for (size_t c = 0; c < x->u.dict.n && !rc; c++) {
                pyj_value *cv = x->u.dict.vals[c];
                const char *p = pyj_as_string(cv), *ct = NULL;
                if (!p && cv->type == PYJ_DICT) {
                    p = pyj_as_string(pyj_dict_get(cv, "path"));
                    ct = pyj_as_string(pyj_dict_get(cv, "content_type"));
                }
                if (!p)
                    rc = fail(err, errlen, SHX_EXIT_DATAERR,
                              "job file %s: channel \"%s\" must be a path or {\"path\": ..., \"content_type\": ...}",
                              path, x->u.dict.keys[c].s);
                else add_channel(j, x->u.dict.keys[c].s, p, ct);
            }
        } else if (!strcmp(k, "environment")) {
            if (x->type != PYJ_DICT) {
                rc = fail(err, errlen, SHX_EXIT_DATAERR, "job file %s: \"environment\" must be an object", path);
                break;
            }
            for (size_t e = 0; e < x->u.dict.n; e++) {
                const char *ev = pyj_as_string(x->u.dict.vals[e]);
                char *str = ev ? NULL : pyj_dumps(x->u.dict.vals[e], 0);
                shx_strvec_take(&j->env, shx_xasprintf("%s=%s", x->u.dict.keys[e].s, ev ? ev : str));
                free(str);
            }
        } else {
            rc = fail(err, errlen, SHX_EXIT_DATAERR,
                      "job file %s: unknown field \"%s\" (fields: entry_point, source_dir, hyperparameters, channels, "
                      "instance_count, instance_type, environment, output_path, job_name, region, "
                      "container_log_level)", path, k);
        }
    }
    pyj_free(v);
    return rc;
}

static int parse_args(job *j, int argc, char **argv, char *err, size_t errlen) {
    for (int i = 1; i < argc; i++) /* the job file first: options win over it */
        if (!strcmp(argv[i], "--job") && i + 1 < argc) {
            int rc = load_job_file(j, argv[i + 1], err, errlen);
            if (rc) return rc;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return -1;
        static const char *const with_value[] = {"--job", "--entry-point", "--source-dir", "--hyperparameter",
                                                 "--channel", "--instance-count", "--instance-type", "--env",
                                                 "--output-path", "--job-name", "--region", "--log-level",
                                                 "--grace-seconds", NULL};
        int known = 0;
        for (const char *const *w = with_value; *w; w++) known |= !strcmp(a, *w);
        if (!known) return fail(err, errlen, SHX_EXIT_USAGE, "unknown option '%s' (smhost local train --help)", a);
        if (i + 1 >= argc) return fail(err, errlen, SHX_EXIT_USAGE, "%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--job")) continue;
        if (!strcmp(a, "--entry-point")) set_str(&j->entry_point, v);
        else if (!strcmp(a, "--source-dir")) set_str(&j->source_dir, v);
        else if (!strcmp(a, "--instance-type")) set_str(&j->instance_type, v);
        else if (!strcmp(a, "--output-path")) set_str(&j->output_path, v);
        else if (!strcmp(a, "--job-name")) set_str(&j->job_name, v);
        else if (!strcmp(a, "--region")) set_str(&j->region, v);
        else if (!strcmp(a, "--instance-count") || !strcmp(a, "--log-level") || !strcmp(a, "--grace-seconds")) {
            long n;
            if (shx_parse_long(v, 0, 100000, &n) < 0)
                return fail(err, errlen, SHX_EXIT_USAGE, "%s '%s': expected a whole number", a, v);
            if (!strcmp(a, "--instance-count")) j->instance_count = (int)n;
            else if (!strcmp(a, "--log-level")) j->log_level = (int)n;
            else j->grace_s = (int)n;
        } else {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v)
                return fail(err, errlen, SHX_EXIT_USAGE, "%s '%s': expected %s", a, v,
                            !strcmp(a, "--channel") ? "NAME=PATH" : "NAME=VALUE");
            char *name = shx_xstrndup(v, (size_t)(eq - v));
            if (!strcmp(a, "--env")) {
                shx_strvec_push(&j->env, v);
            } else if (!strcmp(a, "--channel")) {
                add_channel(j, name, eq + 1, NULL);
            } else { /* --hyperparameter: JSON when it parses, else the text */
                pyj_error pe;
                pyj_value *val = pyj_parse(eq + 1, strlen(eq + 1), &pe);
                pyj_dict_set(j->hps, name, val ? val : pyj_string(eq + 1));
            }
            free(name);
        }
    }
    return 0;
}

/* ---- checks ------------------------------------------------------------------------------------------- */

static int valid_job_name(const char *s) {
    /* SageMaker: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62} */
    size_t n = strlen(s);
    if (!n || n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1])) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-') return 0;
    return 1;
}

static int valid_channel(const char *s) {
    size_t n = strlen(s);
    if (!n || n > 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-_.", s[i])) return 0;
    return strcmp(s, ".") && strcmp(s, "..");
}

static char *absolute(const char *p) {
    char *r = realpath(p, NULL);
    return r ? r : NULL;
}

static char *default_job_name(const char *program) {
    /* the SDK's base name + timestamp: <name>-YYYY-MM-DD-HH-MM-SS-mmm */
    const char *base = strrchr(program, '/');
    base = base ? base + 1 : program;
    shx_buf b = {0};
    for (const char *p = base; *p && *p != '.' && b.len < 40; p++)
        shx_buf_addc(&b, isalnum((unsigned char)*p) ? *p : '-');
    while (b.len && b.p[b.len - 1] == '-') b.p[--b.len] = 0;
    if (!b.len || !isalnum((unsigned char)b.p[0])) {
        shx_buf_free(&b);
        shx_buf_adds(&b, "smhost-local");
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    shx_buf_printf(&b, "-%04d-%02d-%02d-%02d-%02d-%02d-%03ld", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                   tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    return shx_buf_steal(&b);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Resolve paths and defaults; the program's name relative to the source dir goes to *program. */
static int check_job(job *j, char **program, char *err, size_t errlen) {
    if (!j->entry_point || !*j->entry_point)
        return fail(err, errlen, SHX_EXIT_USAGE, "--entry-point is required (the script to run, e.g. train.py)");
    if (j->source_dir && !strncmp(j->source_dir, "s3://", 5)) {
        /* downloaded (and checked) once the run directory exists */
        if (j->entry_point[0] == '/' || strstr(j->entry_point, ".."))
            return fail(err, errlen, SHX_EXIT_USAGE,
                        "--entry-point %s: with --source-dir, give the program's path inside the source directory",
                        j->entry_point);
        *program = shx_xstrdup(j->entry_point);
    } else if (j->source_dir) {
        char *src = absolute(j->source_dir);
        if (!src)
            return fail(err, errlen, SHX_EXIT_NOINPUT, "--source-dir %s: %s: give a directory or a .tar.gz",
                        j->source_dir, strerror(errno));
        if (!shx_is_dir(src) && !(shx_is_file(src) && (ends_with(src, ".tar.gz") || ends_with(src, ".tgz")))) {
            free(src);
            return fail(err, errlen, SHX_EXIT_NOINPUT, "--source-dir %s: not a directory or a .tar.gz file",
                        j->source_dir);
        }
        free(j->source_dir);
        j->source_dir = src;
        if (j->entry_point[0] == '/' || strstr(j->entry_point, ".."))
            return fail(err, errlen, SHX_EXIT_USAGE,
                        "--entry-point %s: with --source-dir, give the program's path inside the source directory",
                        j->entry_point);
        if (shx_is_dir(src)) {
            char *p = shx_path_join(src, j->entry_point);
            int ok = shx_is_file(p);
            free(p);
            if (!ok)
                return fail(err, errlen, SHX_EXIT_NOINPUT, "--entry-point %s: no such file in --source-dir %s",
                            j->entry_point, src);
        }
        *program = shx_xstrdup(j->entry_point);
    } else {
        char *ep = absolute(j->entry_point);
        if (!ep || !shx_is_file(ep)) {
            free(ep);
            return fail(err, errlen, SHX_EXIT_NOINPUT, "--entry-point %s: no such file (without --source-dir, the "
                        "entry point's directory is the source directory)", j->entry_point);
        }
        char *slash = strrchr(ep, '/');
        *program = shx_xstrdup(slash + 1);
        *slash = 0;
        j->source_dir = shx_xstrdup(*ep ? ep : "/");
        free(ep);
    }
    if (!j->instance_count) j->instance_count = 1;
    if (j->instance_count > SHX_CLUSTER_MAX_HOSTS)
        return fail(err, errlen, SHX_EXIT_USAGE, "--instance-count %d: at most %d hosts", j->instance_count,
                    SHX_CLUSTER_MAX_HOSTS);
    if (!j->instance_type) j->instance_type = shx_xstrdup("local");
    if (strcmp(j->instance_type, "local") && strcmp(j->instance_type, "local_gpu") &&
        strncmp(j->instance_type, "ml.", 3))
        return fail(err, errlen, SHX_EXIT_USAGE, "--instance-type %s: expected local, local_gpu or ml.*",
                    j->instance_type);
    for (size_t i = 0; i < j->ch_names.n; i++) {
        if (!valid_channel(j->ch_names.v[i]))
            return fail(err, errlen, SHX_EXIT_USAGE,
                        "channel name '%s': use letters, digits, '-', '_' and '.' (at most 64)", j->ch_names.v[i]);
        if (!strncmp(j->ch_paths.v[i], "s3://", 5))
            return fail(err, errlen, SHX_EXIT_NOINPUT, "channel %s: s3:// data is not supported by smhost local; "
                        "download it and give the directory", j->ch_names.v[i]);
        char *p = absolute(j->ch_paths.v[i]);
        if (!p)
            return fail(err, errlen, SHX_EXIT_NOINPUT, "channel %s: %s: %s", j->ch_names.v[i], j->ch_paths.v[i],
                        strerror(errno));
        free(j->ch_paths.v[i]);
        j->ch_paths.v[i] = p;
    }
    if (!j->region) {
        const char *r = getenv("AWS_REGION");
        if (!r || !*r) r = getenv("AWS_DEFAULT_REGION");
        j->region = shx_xstrdup(r && *r ? r : "us-east-1");
    }
    if (!j->job_name) j->job_name = default_job_name(*program);
    if (!valid_job_name(j->job_name))
        return fail(err, errlen, SHX_EXIT_USAGE, "--job-name '%s': use letters, digits and '-' (1-63, starting and "
                    "ending with a letter or digit), as SageMaker requires", j->job_name);
    if (!j->output_path) {
        char cwd[PATH_MAX];
        j->output_path = shx_xstrdup(getcwd(cwd, sizeof cwd) ? cwd : ".");
    }
    if (!strncmp(j->output_path, "s3://", 5))
        return fail(err, errlen, SHX_EXIT_CANTCREAT, "--output-path %s: s3:// is not supported by smhost local; give "
                    "a directory", j->output_path);
    if (!strncmp(j->output_path, "file://", 7)) memmove(j->output_path, j->output_path + 7, strlen(j->output_path) - 6);
    if (j->output_path[0] != '/') {
        char cwd[PATH_MAX];
        char *abs = shx_path_join(getcwd(cwd, sizeof cwd) ? cwd : ".", j->output_path);
        free(j->output_path);
        j->output_path = abs;
    }
    return 0;
}

/* ---- config files, as Local Mode writes them ----------------------------------------------------------- */

static int write_json(const char *dir, const char *name, const pyj_value *v, char *err, size_t errlen) {
    char *path = shx_path_join(dir, name);
    char *text = pyj_dumps_default(v);
    int rc = shx_write_file(path, text, strlen(text), 0);
    if (rc) snprintf(err, errlen, "cannot write %s: %s", path, strerror(-rc));
    free(text);
    free(path);
    return rc ? SHX_EXIT_CANTCREAT : 0;
}

/* Where channel k appears in a host: its directory, or for a single file <dir>/<file name>.  ml is the host's
 * ML root as the host sees it. */
static char *channel_target(const job *j, size_t k, const char *ml) {
    const char *path = j->ch_paths.v[k];
    if (shx_is_dir(path)) return shx_xasprintf("%s/input/data/%s", ml, j->ch_names.v[k]);
    const char *base = strrchr(path, '/');
    return shx_xasprintf("%s/input/data/%s/%s", ml, j->ch_names.v[k], base ? base + 1 : path);
}

static pyj_value *encoded(const pyj_value *v) {
    char *s = pyj_dumps_default(v);
    pyj_value *r = pyj_string(s);
    free(s);
    return r;
}

static int layout_host(const job *j, const shx_cluster *c, int i, const char *root, const char *program,
                       const char *submit_dir, char *err, size_t errlen) {
    static const char *const dirs[] = {"input/config", "input/data", "code", "model", "output/data",
                                       "output/intermediate", NULL};
    for (const char *const *d = dirs; *d; d++) {
        char *p = shx_path_join(root, *d);
        int rc = shx_mkdirs(p, 0755);
        free(p);
        if (rc) return fail(err, errlen, SHX_EXIT_CANTCREAT, "cannot create %s/%s: %s", root, *d, strerror(-rc));
    }
    for (size_t k = 0; k < j->ch_names.n; k++) {
        char *p = shx_xasprintf("%s/input/data/%s", root, j->ch_names.v[k]);
        shx_mkdirs(p, 0755);
        free(p);
    }
    /* hyperparameters.json: the user's values JSON-encoded, then the SDK's own */
    pyj_value *hp = pyj_dict();
    for (size_t k = 0; k < j->hps->u.dict.n; k++) pyj_dict_set(hp, j->hps->u.dict.keys[k].s, encoded(j->hps->u.dict.vals[k]));
    pyj_value *tmp = pyj_string(program);
    pyj_dict_set(hp, "sagemaker_program", encoded(tmp));
    pyj_free(tmp);
    tmp = pyj_string(submit_dir);
    pyj_dict_set(hp, "sagemaker_submit_directory", encoded(tmp));
    pyj_free(tmp);
    tmp = pyj_string(j->job_name);
    pyj_dict_set(hp, "sagemaker_job_name", encoded(tmp));
    pyj_free(tmp);
    tmp = pyj_string(j->region);
    pyj_dict_set(hp, "sagemaker_region", encoded(tmp));
    pyj_free(tmp);
    tmp = pyj_int_ll(j->log_level);
    pyj_dict_set(hp, "sagemaker_container_log_level", encoded(tmp));
    pyj_free(tmp);
    /* resourceconfig.json */
    pyj_value *rc = pyj_dict();
    pyj_dict_set(rc, "current_host", pyj_string(c->hosts[i].name));
    pyj_value *hosts = pyj_list();
    for (int h = 0; h < c->n; h++) pyj_list_append(hosts, pyj_string(c->hosts[h].name));
    pyj_dict_set(rc, "hosts", hosts);
    pyj_dict_set(rc, "network_interface_name", pyj_string("eth0"));
    pyj_dict_set(rc, "current_instance_type", pyj_string(j->instance_type));
    /* inputdataconfig.json */
    pyj_value *idc = pyj_dict();
    for (size_t k = 0; k < j->ch_names.n; k++) {
        pyj_value *ch = pyj_dict();
        pyj_dict_set(ch, "TrainingInputMode", pyj_string("File"));
        if (j->ch_types.v[k][0]) pyj_dict_set(ch, "ContentType", pyj_string(j->ch_types.v[k]));
        pyj_dict_set(idc, j->ch_names.v[k], ch);
    }
    char *cfg = shx_path_join(root, "input/config");
    int r = write_json(cfg, "hyperparameters.json", hp, err, errlen);
    if (!r) r = write_json(cfg, "resourceconfig.json", rc, err, errlen);
    if (!r) r = write_json(cfg, "inputdataconfig.json", idc, err, errlen);
    free(cfg);
    pyj_free(hp);
    pyj_free(rc);
    pyj_free(idc);
    return r;
}

/* ---- artifacts ---------------------------------------------------------------------------------------- */

static int pack(shx_pack_spec *spec, char *err, size_t errlen) {
    int rc = shx_modules_pack(spec, err, errlen);
    if (rc) shx_error("local train: %s", err);
    return rc;
}

static char *read_failure(const char *root) {
    char *p = shx_path_join(root, "output/failure");
    char *text = NULL;
    size_t len;
    if (shx_read_file(p, &text, &len)) text = NULL;
    free(p);
    if (text) shx_utf8_clean(text, 1024);
    return text;
}

/* ---- main --------------------------------------------------------------------------------------------- */

static void free_hosts(shx_cluster *c) {
    for (int h = 0; h < c->n; h++) {
        shx_cluster_host *host = &c->hosts[h];
        shx_strvec ev = {.v = host->envp};
        if (ev.v) while (ev.v[ev.n]) ev.n++;
        shx_strvec_free(&ev);
        free(host->argv);
        for (size_t k = 0; k < host->nbinds; k++) {
            free(host->binds[k].src);
            free(host->binds[k].dst);
        }
        free(host->binds);
    }
}

int shx_local_train_main(const shx_config *cfg, int argc, char **argv) {
    job j = {.hps = pyj_dict(), .log_level = 20, .grace_s = -1};
    char err[2048] = "";
    char *program = NULL, *rundir = NULL, *outdir = NULL, *self = NULL, *code = NULL;
    shx_cluster c = {0};
    int rc = parse_args(&j, argc, argv, err, sizeof err);
    if (rc == -1) {
        usage(stdout);
        job_free(&j);
        return 0;
    }
    if (!rc) rc = check_job(&j, &program, err, sizeof err);
    if (!rc) {
        outdir = shx_path_join(j.output_path, j.job_name);
        char *m = shx_path_join(outdir, "model.tar.gz"), *o = shx_path_join(outdir, "output.tar.gz");
        if (shx_is_file(m) || shx_is_file(o))
            rc = fail(err, sizeof err, SHX_EXIT_CANTCREAT, "%s already holds the artifacts of a job named %s: choose "
                      "another --job-name, or remove them", outdir, j.job_name);
        free(m);
        free(o);
        int mk = rc ? 0 : shx_mkdirs(outdir, 0755);
        if (mk) rc = fail(err, sizeof err, SHX_EXIT_CANTCREAT, "--output-path: cannot create %s: %s", outdir,
                          strerror(-mk));
    }
    if (!rc && !(rundir = shx_local_rundir_create(err, sizeof err))) rc = SHX_EXIT_CANTCREAT;
    if (rc) goto done;

    /* hosts as namespaces where possible; one host runs without them when the kernel refuses */
    int namespaces = 1;
    char perr[1024];
    const char *want = getenv("SMHOST_LOCAL_NAMESPACES");
    int prc = want && !strcmp(want, "0") ? SHX_EXIT_UNAVAILABLE : shx_cluster_probe(perr, sizeof perr);
    if (want && !strcmp(want, "0")) snprintf(perr, sizeof perr, "SMHOST_LOCAL_NAMESPACES=0");
    if (prc) {
        if (j.instance_count > 1) {
            rc = fail(err, sizeof err, prc, "%d hosts cannot be simulated here: %s", j.instance_count, perr);
            goto done;
        }
        shx_warn("local train: no namespaces here (%s); algo-1 runs as a plain process: its ML root is under %s, "
                 "not /opt/ml, and channel data is linked, not mounted read-only", perr, rundir);
        namespaces = 0;
    }
    /* a source .tar.gz (local, or downloaded from S3 here: the hosts have no network) is unpacked once, safely,
     * and shared; a host's smhost train then finds /opt/ml/code filled and uses it as is */
    int from_s3 = !strncmp(j.source_dir, "s3://", 5);
    if (!from_s3 && shx_is_dir(j.source_dir)) {
        code = shx_xstrdup(j.source_dir);
    } else {
        code = shx_path_join(rundir, "code");
        char *tgz = from_s3 ? shx_path_join(rundir, "sourcedir.tar.gz") : NULL;
        if (from_s3) {
            shx_strvec dl_env = {0};
            for (char **e = environ; *e; e++) shx_strvec_push(&dl_env, *e);
            for (size_t k = 0; k < j.env.n; k++) shx_strvec_push(&dl_env, j.env.v[k]);
            fprintf(stderr, "smhost local train: downloading --source-dir %s\n", j.source_dir);
            rc = shx_modules_s3_download(j.source_dir, dl_env.v, j.region, tgz, err, sizeof err);
            shx_strvec_free(&dl_env);
        }
        if (!rc) rc = shx_modules_unpack(tgz ? tgz : j.source_dir, code, err, sizeof err);
        if (tgz) unlink(tgz);
        free(tgz);
        if (rc) goto done;
        char *p = shx_path_join(code, program);
        int ok = shx_is_file(p);
        free(p);
        if (!ok) {
            rc = fail(err, sizeof err, SHX_EXIT_NOINPUT, "--entry-point %s: no such file in %s", program,
                      j.source_dir);
            goto done;
        }
    }
    self = shx_self_dir();
    char *exe = shx_path_join(self, "smhost");
    free(self);
    self = exe;

    shx_cluster_init(&c, j.instance_count, rundir);
    c.namespaces = namespaces;
    c.grace_s = j.grace_s >= 0 ? j.grace_s : cfg->stop_grace_seconds + 10;
    for (int i = 0; i < c.n && !rc; i++) {
        shx_cluster_host *h = &c.hosts[i];
        char *root = shx_path_join(rundir, h->name);
        char *ml = namespaces ? shx_xstrdup("/opt/ml") : shx_xstrdup(root);
        char *submit = from_s3 ? shx_xstrdup(j.source_dir) : shx_path_join(ml, "code");
        rc = layout_host(&j, &c, i, root, program, submit, err, sizeof err);
        h->argv = shx_xcalloc(3, sizeof *h->argv);
        h->argv[0] = self;
        h->argv[1] = "train";
        shx_strvec ev = {0};
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "SAGEMAKER_BASE_DIR=", 19) && strncmp(*e, "TRAINING_JOB_NAME=", 18) &&
                strncmp(*e, "AWS_REGION=", 11))
                shx_strvec_push(&ev, *e);
        shx_strvec_take(&ev, shx_xasprintf("SAGEMAKER_BASE_DIR=%s", ml));
        shx_strvec_take(&ev, shx_xasprintf("TRAINING_JOB_NAME=%s", j.job_name));
        shx_strvec_take(&ev, shx_xasprintf("AWS_REGION=%s", j.region));
        for (size_t k = 0; k < j.env.n; k++) shx_strvec_push(&ev, j.env.v[k]);
        h->envp = ev.v;
        h->binds = shx_xcalloc(j.ch_names.n + 2, sizeof *h->binds);
        if (namespaces) {
            h->binds[h->nbinds++] = (shx_cluster_bind){shx_xstrdup(root), shx_xstrdup("/opt/ml"), 0};
            h->binds[h->nbinds++] = (shx_cluster_bind){shx_xstrdup(code), shx_xstrdup("/opt/ml/code"), 0};
            for (size_t k = 0; k < j.ch_names.n; k++)
                h->binds[h->nbinds++] = (shx_cluster_bind){shx_xstrdup(j.ch_paths.v[k]),
                                                           channel_target(&j, k, "/opt/ml"), 1};
        } else if (!rc) {
            /* links instead of mounts */
            char *cd = shx_path_join(root, "code");
            rmdir(cd);
            if (symlink(code, cd) < 0) rc = fail(err, sizeof err, SHX_EXIT_CANTCREAT, "symlink %s: %s", cd,
                                                 strerror(errno));
            free(cd);
            for (size_t k = 0; k < j.ch_names.n && !rc; k++) {
                char *p = channel_target(&j, k, root);
                if (shx_is_dir(j.ch_paths.v[k])) rmdir(p);
                if (symlink(j.ch_paths.v[k], p) < 0)
                    rc = fail(err, sizeof err, SHX_EXIT_CANTCREAT, "symlink %s: %s", p, strerror(errno));
                free(p);
            }
        }
        free(root);
        free(ml);
        free(submit);
    }
    if (rc) goto done;

    fprintf(stderr, "smhost local train: job %s on %d host%s (%s), program %s, output %s\n", j.job_name, c.n,
            c.n > 1 ? "s" : "", j.instance_type, program, outdir);
    rc = shx_cluster_run(&c, err, sizeof err);
    if (rc) goto done;
    int code_rc = shx_cluster_exit_code(&c);

    /* artifacts */
    const char **mdirs = shx_xcalloc((size_t)c.n, sizeof *mdirs), **odirs = shx_xcalloc((size_t)c.n, sizeof *odirs);
    const char **labels = shx_xcalloc((size_t)c.n, sizeof *labels);
    for (int i = 0; i < c.n; i++) {
        mdirs[i] = shx_xasprintf("%s/%s/model", rundir, c.hosts[i].name);
        odirs[i] = shx_xasprintf("%s/%s/output/data", rundir, c.hosts[i].name);
        labels[i] = c.hosts[i].name;
    }
    char *model_tgz = shx_path_join(outdir, "model.tar.gz"), *output_tgz = shx_path_join(outdir, "output.tar.gz");
    char *failure = NULL, *failure_path = NULL;
    if (c.first_failed) {
        char *root = shx_path_join(rundir, c.hosts[c.first_failed - 1].name);
        failure = read_failure(root);
        failure_path = shx_path_join(root, "output/failure");
        free(root);
    }
    int model_ok = 0, output_ok = 0;
    shx_pack_spec ms = {.out = model_tgz, .dirs = mdirs, .labels = labels, .ndirs = (size_t)c.n};
    if (!code_rc) model_ok = !pack(&ms, err, sizeof err);
    const char *files[2] = {"failure", failure_path};
    shx_pack_spec os = {.out = output_tgz, .dirs = odirs, .labels = labels, .ndirs = (size_t)c.n, .prefix = "data",
                        .files = files, .nfiles = failure ? 1 : 0};
    output_ok = !pack(&os, err, sizeof err);

    /* the summary */
    char sb[16];
    if (c.stop_signal)
        fprintf(stderr, "smhost local train: job %s stopped by %s (exit code %d)\n", j.job_name,
                shx_signal_name(c.stop_signal, sb, sizeof sb), code_rc);
    else if (code_rc)
        fprintf(stderr, "smhost local train: job %s failed on %s (exit code %d)\n", j.job_name,
                c.hosts[c.first_failed - 1].name, code_rc);
    else
        fprintf(stderr, "smhost local train: job %s completed\n", j.job_name);
    shx_local_print_hosts(&c);
    if (model_ok) fprintf(stderr, "  model:   %s (%zu entr%s)\n", model_tgz, ms.entries, ms.entries == 1 ? "y" : "ies");
    if (output_ok) fprintf(stderr, "  output:  %s\n", output_tgz);
    if (failure) {
        char *one = shx_xstrdup(failure);
        for (char *p = one; *p; p++)
            if (*p == '\n') *p = ' ';
        fprintf(stderr, "  failure: %s\n", one);
        free(one);
    }
    if (!model_ok && !code_rc) code_rc = SHX_EXIT_CANTCREAT;
    rc = code_rc;
    for (int i = 0; i < c.n; i++) {
        free((char *)mdirs[i]);
        free((char *)odirs[i]);
    }
    free(mdirs), free(odirs), free(labels), free(model_tgz), free(output_tgz), free(failure), free(failure_path);
    goto out;
done:
    if (rc) fprintf(stderr, "smhost local train: %s\n", err);
out:
    if (c.hosts) {
        free_hosts(&c);
        shx_cluster_free(&c);
    }
    if (rundir) shx_local_rundir_remove(rundir);
    free(program), free(outdir), free(self), free(code);
    job_free(&j);
    return rc;
}
