/* The pure parts of the S3 client (s3.h): URL parsing, SigV4 encoding, endpoint and region choice, credential
 * JSON.  No network, no libcurl: unit-tested in tests/unit/test_s3.c. */
#include "s3.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"

#define ERR(...) (snprintf(err, errlen, __VA_ARGS__), -1)

static int bucket_char(unsigned char c) {
    return islower(c) || isdigit(c) || c == '.' || c == '-' || c == '_' || isupper(c);
}

int shx_s3_url_parse(const char *url, int need_key, shx_s3_url *out, char *err, size_t errlen) {
    out->bucket = out->key = NULL;
    if (strncmp(url, "s3://", 5))
        return ERR("%s is not an s3:// URL; write it as s3://BUCKET/KEY", url);
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t bl = slash ? (size_t)(slash - b) : strlen(b);
    if (bl == 0) return ERR("%s has no bucket name; write it as s3://BUCKET/KEY", url);
    if (bl < 3 || bl > 63)
        return ERR("%s: the bucket name '%.*s' must be 3 to 63 characters long; write the URL as s3://BUCKET/KEY",
                   url, (int)(bl > 80 ? 80 : bl), b);
    for (size_t i = 0; i < bl; i++)
        if (!bucket_char((unsigned char)b[i]))
            return ERR("%s: the bucket name '%.*s' has a character S3 does not allow (0x%02x at position %zu); "
                       "bucket names are letters, digits, '.' and '-'", url, (int)bl, b, (unsigned char)b[i], i + 1);
    const char *k = slash ? slash + 1 : "";
    if (need_key && !*k) return ERR("%s names a bucket but no object key; write it as s3://BUCKET/KEY", url);
    out->bucket = shx_xstrndup(b, bl);
    out->key = shx_xstrdup(k);
    return 0;
}

void shx_s3_url_free(shx_s3_url *u) {
    free(u->bucket);
    free(u->key);
    u->bucket = u->key = NULL;
}

char *shx_s3_uri_encode(const char *s, int keep_slash) {
    static const char hex[] = "0123456789ABCDEF";
    shx_buf b = {0};
    shx_buf_adds(&b, "");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~' || (keep_slash && *p == '/')) {
            shx_buf_addc(&b, (char)*p);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            shx_buf_add(&b, e, 3);
        }
    }
    return shx_buf_steal(&b);
}

typedef struct qpair {
    char *k, *v;
} qpair;

static int qcmp(const void *a, const void *b) {
    const qpair *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

char *shx_s3_canonical_query(const char *const *pairs, size_t n) {
    qpair *q = shx_xcalloc(n ? n : 1, sizeof *q);
    for (size_t i = 0; i < n; i++) {
        q[i].k = shx_s3_uri_encode(pairs[2 * i], 0);
        q[i].v = shx_s3_uri_encode(pairs[2 * i + 1] ? pairs[2 * i + 1] : "", 0);
    }
    qsort(q, n, sizeof *q, qcmp);
    shx_buf b = {0};
    shx_buf_adds(&b, "");
    for (size_t i = 0; i < n; i++) {
        shx_buf_printf(&b, "%s%s=%s", i ? "&" : "", q[i].k, q[i].v);
        free(q[i].k);
        free(q[i].v);
    }
    free(q);
    return shx_buf_steal(&b);
}

static const char *env_nonempty(char *const *env, const char *name) {
    const char *v = env ? shx_env_lookup(env, name) : NULL;
    return v && *v ? v : NULL;
}

/* A bucket usable as a host name label under TLS: lower case, digits, '-', no dots. */
static int dns_bucket(const char *b) {
    for (const char *p = b; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-')) return 0;
    return b[0] != '-';
}

int shx_s3_target_choose(char *const *env, const char *hp_region, const char *bucket, shx_s3_target *t, char *err,
                         size_t errlen) {
    memset(t, 0, sizeof *t);
    const char *r = hp_region && *hp_region ? hp_region : env_nonempty(env, "AWS_REGION");
    if (!r) r = env_nonempty(env, "AWS_DEFAULT_REGION");
    t->region = shx_xstrdup(r ? r : "us-east-1");
    for (const char *p = t->region; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-')) {
            int e = ERR("the AWS region '%s' (from %s) is not a region name such as us-west-2; fix the variable",
                        t->region, hp_region && *hp_region ? "the sagemaker_region hyperparameter"
                                   : env_nonempty(env, "AWS_REGION") ? "AWS_REGION" : "AWS_DEFAULT_REGION");
            shx_s3_target_free(t);
            return e;
        }
    static const char *const vars[] = {"S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *e = env_nonempty(env, vars[i]);
        if (!e) continue;
        if (strncasecmp(e, "http://", 7) && strncasecmp(e, "https://", 8)) {
            int rc = ERR("%s=%s is not an http:// or https:// URL; set it to the S3 endpoint, e.g. "
                         "http://127.0.0.1:9000", vars[i], e);
            shx_s3_target_free(t);
            return rc;
        }
        size_t n = strlen(e);
        while (n > 8 && e[n - 1] == '/') n--;
        t->endpoint = shx_xstrndup(e, n);
        t->endpoint_var = vars[i];
        t->path_style = 1; /* an IP address or plain http: virtual-hosted names would not resolve */
        return 0;
    }
    t->endpoint = shx_xasprintf("https://s3.%s.amazonaws.com%s", t->region, strncmp(t->region, "cn-", 3) ? "" : ".cn");
    t->path_style = !dns_bucket(bucket ? bucket : "");
    return 0;
}

void shx_s3_target_free(shx_s3_target *t) {
    free(t->region);
    free(t->endpoint);
    t->region = t->endpoint = NULL;
}

char *shx_s3_request_url(const shx_s3_target *t, const char *bucket, const char *key, const char *query) {
    char *k = shx_s3_uri_encode(key, 1);
    const char *q = query && *query ? "?" : "";
    char *url;
    if (t->path_style) {
        url = shx_xasprintf("%s/%s/%s%s%s", t->endpoint, bucket, k, q, query ? query : "");
    } else {
        const char *host = strstr(t->endpoint, "://") + 3;
        url = shx_xasprintf("%.*s%s.%s/%s%s%s", (int)(host - t->endpoint), t->endpoint, bucket, host, k, q,
                            query ? query : "");
    }
    free(k);
    return url;
}

time_t shx_s3_parse_time(const char *s) {
    int Y, M, D, h, m, sec, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 19) return -1;
    const char *p = s + n;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++) {}
    if (strcmp(p, "Z") && strcmp(p, "+00:00") && strcmp(p, "")) return -1;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -1;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
    return timegm(&tm);
}

int shx_s3_creds_parse(const char *json, shx_s3_creds *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    cJSON *j = cJSON_Parse(json);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ERR("the credentials response is not a JSON object");
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(j, "Code");
    if (cJSON_IsString(code) && strcmp(code->valuestring, "Success")) {
        int rc = ERR("the credentials response says Code=%.60s", code->valuestring);
        cJSON_Delete(j);
        return rc;
    }
    static const char *const names[] = {"AccessKeyId", "SecretAccessKey"};
    const cJSON *v[2];
    for (int i = 0; i < 2; i++) {
        v[i] = cJSON_GetObjectItemCaseSensitive(j, names[i]);
        if (!cJSON_IsString(v[i]) || !v[i]->valuestring[0]) {
            int rc = ERR("the credentials response has no %s string", names[i]);
            cJSON_Delete(j);
            return rc;
        }
    }
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(j, "Token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(j, "Expiration");
    if (tok && !cJSON_IsNull(tok) && !cJSON_IsString(tok)) {
        cJSON_Delete(j);
        return ERR("the credentials response's Token is not a string");
    }
    if (exp && !cJSON_IsNull(exp)) {
        time_t t = cJSON_IsString(exp) ? shx_s3_parse_time(exp->valuestring) : -1;
        if (t < 0) {
            int rc = ERR("the credentials response's Expiration %s%.40s%s is not an ISO 8601 UTC time such as "
                         "2026-11-30T05:00:00Z", cJSON_IsString(exp) ? "'" : "",
                         cJSON_IsString(exp) ? exp->valuestring : "(not a string)", cJSON_IsString(exp) ? "'" : "");
            cJSON_Delete(j);
            return rc;
        }
        c->expiration = t;
    }
    c->access_key = shx_xstrdup(v[0]->valuestring);
    c->secret_key = shx_xstrdup(v[1]->valuestring);
    if (cJSON_IsString(tok) && tok->valuestring[0]) c->token = shx_xstrdup(tok->valuestring);
    cJSON_Delete(j);
    return 0;
}

void shx_s3_creds_free(shx_s3_creds *c) {
    if (c->secret_key) explicit_bzero(c->secret_key, strlen(c->secret_key));
    if (c->token) explicit_bzero(c->token, strlen(c->token));
    free(c->access_key);
    free(c->secret_key);
    free(c->token);
    c->access_key = c->secret_key = c->token = NULL;
    c->expiration = 0;
}

int shx_s3_full_uri_allowed(const char *uri) {
    if (!strncasecmp(uri, "https://", 8)) return 1;
    if (strncasecmp(uri, "http://", 7)) return 0;
    const char *h = uri + 7, *end;
    char host[256];
    if (*h == '[') {
        end = strchr(h, ']');
        if (!end) return 0;
        h++;
    } else {
        end = h + strcspn(h, ":/?#");
    }
    if ((size_t)(end - h) >= sizeof host || memchr(h, '@', (size_t)(end - h))) return 0;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = 0;
    if (!strcasecmp(host, "localhost")) return 1;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        unsigned long a = ntohl(a4.s_addr);
        return (a >> 24) == 127 || a == 0xA9FEAA02UL /* 169.254.170.2 */ || a == 0xA9FEAA17UL /* .23 */;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        static const unsigned char lo[16] = {[15] = 1};
        static const unsigned char ecs[16] = {0xfd, 0x00, 0x0e, 0xc2, [15] = 0x23};
        return !memcmp(&a6, lo, 16) || !memcmp(&a6, ecs, 16);
    }
    return 0;
}

char *shx_s3_xml_tag(const char *xml, const char *tag) {
    if (!xml) return NULL;
    char *open = shx_xasprintf("<%s>", tag), *close = shx_xasprintf("</%s>", tag);
    const char *a = strstr(xml, open), *b = a ? strstr(a + strlen(open), close) : NULL;
    char *res = NULL;
    if (b) {
        a += strlen(open);
        shx_buf out = {0};
        shx_buf_adds(&out, "");
        static const char *const ents[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""},
                                              {"&apos;", "'"}, {"&#34;", "\""}, {"&#39;", "'"}};
        while (a < b) {
            size_t i = 0;
            if (*a == '&')
                for (; i < sizeof ents / sizeof ents[0]; i++)
                    if (!strncmp(a, ents[i][0], strlen(ents[i][0]))) break;
            if (*a == '&' && i < sizeof ents / sizeof ents[0]) {
                shx_buf_adds(&out, ents[i][1]);
                a += strlen(ents[i][0]);
            } else {
                shx_buf_addc(&out, *a++);
            }
        }
        res = shx_buf_steal(&out);
    }
    free(open);
    free(close);
    return res;
}
