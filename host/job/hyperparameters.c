/* Hyperparameters: decoding, the framework-parameter split and the argv mapping (contract sections 2-3).
 * Each function follows one piece of sagemaker-training-toolkit (environment.read_hyperparameters,
 * mapping.to_cmd_args, mapping.to_env_vars) so the bytes come out the same. */
#include "job/hyperparameters.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

pyj_value *shx_hp_decode(const pyj_value *file_dict) {
    pyj_value *out = pyj_dict();
    if (!file_dict || file_dict->type != PYJ_DICT) return out;
    for (size_t i = 0; i < file_dict->u.dict.n; i++) {
        const pyj_str *k = &file_dict->u.dict.keys[i];
        const pyj_value *v = file_dict->u.dict.vals[i];
        pyj_value *d = NULL;
        if (v->type == PYJ_STR) {
            pyj_error err;
            d = pyj_parse(v->u.s.s, v->u.s.len, &err);
            if (!d) shx_debug("hyperparameter %s is not JSON (%s); using the string itself", k->s, err.msg);
        }
        pyj_dict_setn(out, k->s, k->len, d ? d : pyj_copy(v));
    }
    return out;
}

static int str_eq(const pyj_str *k, const char *s) { return k->len == strlen(s) && memcmp(k->s, s, k->len) == 0; }

/* Keys the toolkit removes from the user's hyperparameters. */
static int is_sagemaker_key(const pyj_str *k) {
    return (k->len >= 10 && memcmp(k->s, "sagemaker_", 10) == 0) || str_eq(k, "_tuning_objective_metric") ||
           str_eq(k, "default_user_module_name");
}

/* Removed keys the toolkit consumes itself; the other removed keys are the framework parameters. */
static int is_toolkit_key(const pyj_str *k) {
    static const char *const names[] = {
        "sagemaker_program",        "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_region",         "sagemaker_container_log_level", "sagemaker_job_name",
        "default_user_module_name", "_tuning_objective_metric",   "sagemaker_s3_output",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (str_eq(k, names[i])) return 1;
    return 0;
}

void shx_hp_split(const pyj_value *decoded, pyj_value **user, pyj_value **framework) {
    *user = pyj_dict();
    *framework = pyj_dict();
    if (!decoded || decoded->type != PYJ_DICT) return;
    for (size_t i = 0; i < decoded->u.dict.n; i++) {
        const pyj_str *k = &decoded->u.dict.keys[i];
        pyj_value *target = !is_sagemaker_key(k) ? *user : !is_toolkit_key(k) ? *framework : NULL;
        if (target) pyj_dict_setn(target, k->s, k->len, pyj_copy(decoded->u.dict.vals[i]));
    }
}

static size_t code_points(const pyj_str *k) {
    size_t n = 0;
    for (size_t i = 0; i < k->len; i++) n += ((unsigned char)k->s[i] & 0xc0) != 0x80;
    return n;
}

void shx_hp_to_argv(const pyj_value *user, shx_strvec *out) {
    if (!user || user->type != PYJ_DICT) return;
    size_t *order = pyj_sorted_order(user);
    for (size_t j = 0; j < user->u.dict.n; j++) {
        const pyj_str *k = &user->u.dict.keys[order[j]];
        const pyj_value *v = user->u.dict.vals[order[j]];
        size_t ncp = code_points(k);
        shx_strvec_take(out, ncp == 0 ? shx_xstrdup("") : shx_xasprintf("%s%s", ncp > 1 ? "--" : "-", k->s));
        if (v->type == PYJ_DICT) {
            /* ",".join("%s=%s" % (k, v) for k, v in sorted(value.items())) */
            shx_buf b = {0};
            size_t *inner = pyj_sorted_order(v);
            for (size_t i = 0; i < v->u.dict.n; i++) {
                char *s = pyj_str_of(v->u.dict.vals[inner[i]]);
                if (i) shx_buf_addc(&b, ',');
                shx_buf_adds(&b, v->u.dict.keys[inner[i]].s);
                shx_buf_addc(&b, '=');
                shx_buf_adds(&b, s);
                free(s);
            }
            free(inner);
            shx_strvec_take(out, shx_buf_steal(&b));
        } else if (v->type == PYJ_NULL) {
            shx_strvec_take(out, shx_xstrdup(""));
        } else {
            shx_strvec_take(out, pyj_str_of(v));
        }
    }
    free(order);
}

static int has_nul(const pyj_str *s) { return memchr(s->s, 0, s->len) != NULL; }

int shx_hp_find_nul(const pyj_value *user, char **what) {
    *what = NULL;
    if (!user || user->type != PYJ_DICT) return 0;
    for (size_t i = 0; i < user->u.dict.n; i++) {
        const pyj_str *k = &user->u.dict.keys[i];
        const pyj_value *v = user->u.dict.vals[i];
        int bad = has_nul(k) || (v->type == PYJ_STR && has_nul(&v->u.s));
        for (size_t j = 0; !bad && v->type == PYJ_DICT && j < v->u.dict.n; j++) {
            const pyj_value *inner = v->u.dict.vals[j];
            bad = has_nul(&v->u.dict.keys[j]) || (inner->type == PYJ_STR && has_nul(&inner->u.s));
        }
        if (bad) {
            pyj_value *key = pyj_stringn(k->s, k->len);
            *what = pyj_repr(key);
            pyj_free(key);
            return 1;
        }
    }
    return 0;
}

char *shx_env_value(const pyj_value *v) {
    if (!v || v->type == PYJ_NULL) return shx_xstrdup("");
    if (v->type == PYJ_STR) return shx_xstrndup(v->u.s.s, v->u.s.len);
    return pyj_dumps(v, 1);
}

char *shx_env_name(const char *prefix, const char *key) {
    char *up = pyj_upper(key);
    char *name = shx_xasprintf("%s%s", prefix, up);
    free(up);
    return name;
}
