/* AWS credentials in the SDKs' order (contract section 8): the environment, the container credentials endpoint,
 * EC2 instance metadata (IMDSv2).  Cached, and fetched again SHX_S3_REFRESH_SECONDS before they expire.  No
 * secret ever goes into an error text. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "s3/s3_internal.h"

static const char *var(shx_s3 *s, const char *name) {
    const char *v = s->env.v ? shx_env_lookup(s->env.v, name) : NULL;
    return v && *v ? v : NULL;
}

static size_t collect(char *p, size_t size, size_t n, void *ud) {
    shx_buf *b = ud;
    if (b->len < 64 * 1024) shx_buf_add(b, p, size * n);
    return size * n;
}

/* A plain HTTP request to a credentials service.  Returns the HTTP status (body in *out), or -1 with err. */
static long http(const char *method, const char *url, const char *hdr1, const char *hdr2, long timeout_ms,
                 shx_buf *out, char *err, size_t errlen) {
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(err, errlen, "cannot initialize libcurl");
        return -1;
    }
    char eb[CURL_ERROR_SIZE] = "";
    struct curl_slist *hd = NULL;
    if (hdr1) hd = curl_slist_append(hd, hdr1);
    if (hdr2) hd = curl_slist_append(hd, hdr2);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* link-local and loopback services: never through http_proxy */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms * 3);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, eb);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    if (!strcmp(method, "PUT")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode cc = curl_easy_perform(h);
    long st = -1;
    if (cc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    else snprintf(err, errlen, "%s", eb[0] ? eb : curl_easy_strerror(cc));
    curl_slist_free_all(hd); /* the Authorization header: curl keeps no copy beyond the handle */
    curl_easy_cleanup(h);
    shx_buf_adds(out, "");
    return st;
}

/* The container credentials endpoint.  Returns 1 got them, 0 not configured, -1 configured but failed (err). */
static int from_container(shx_s3 *s, shx_s3_creds *c, char *err, size_t errlen) {
    const char *rel = var(s, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = var(s, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (!rel && !full) return 0;
    char *url = rel ? shx_xasprintf("http://169.254.170.2%s%s", rel[0] == '/' ? "" : "/", rel) : shx_xstrdup(full);
    const char *which = rel ? "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" : "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    if (!rel && !shx_s3_full_uri_allowed(full)) {
        snprintf(err, errlen, "the container credentials URL %s (AWS_CONTAINER_CREDENTIALS_FULL_URI) is plain http to "
                 "a host other than loopback, 169.254.170.2 or 169.254.170.23, which the AWS SDKs refuse; use https "
                 "or one of those addresses", full);
        free(url);
        return -1;
    }
    char *auth = NULL;
    if (!rel) {
        const char *tf = var(s, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
        const char *tok = var(s, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
        char *text = NULL;
        if (tf) {
            size_t len;
            int e = shx_read_file(tf, &text, &len);
            if (e < 0) {
                snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=%s cannot be read: %s", tf,
                         strerror(-e));
                free(url);
                return -1;
            }
            while (len && (text[len - 1] == '\n' || text[len - 1] == '\r')) text[--len] = 0;
        }
        const char *t = text ? text : tok;
        if (t && strpbrk(t, "\r\n")) {
            snprintf(err, errlen, "the container authorization token (%s) contains a line break; fix the token",
                     text ? "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" : "AWS_CONTAINER_AUTHORIZATION_TOKEN");
            if (text) explicit_bzero(text, strlen(text));
            free(text);
            free(url);
            return -1;
        }
        if (t) auth = shx_xasprintf("Authorization: %s", t);
        if (text) explicit_bzero(text, strlen(text));
        free(text);
    }
    int rc = -1;
    char why[512] = "";
    for (int attempt = 0; attempt < 3 && rc < 0; attempt++) {
        if (attempt) usleep((useconds_t)shx_s3_backoff_ms(attempt - 1) * 1000);
        shx_buf b = {0};
        long st = http("GET", url, auth, NULL, 2000, &b, why, sizeof why);
        if (st == 200) {
            if (shx_s3_creds_parse(b.p, c, why, sizeof why) == 0) rc = 1;
            else attempt = 3; /* a malformed answer will not get better */
        } else if (st > 0) {
            snprintf(why, sizeof why, "HTTP %ld", st);
            if (st < 500 && st != 429) attempt = 3;
        }
        if (b.p) explicit_bzero(b.p, b.len);
        shx_buf_free(&b);
    }
    if (auth) explicit_bzero(auth, strlen(auth));
    free(auth);
    if (rc < 0) snprintf(err, errlen, "the container credentials endpoint %s (%s) failed: %s", url, which, why);
    else snprintf(c->source, sizeof c->source, "the container credentials endpoint (%s)", which);
    free(url);
    return rc;
}

/* IMDSv2.  Returns 1 got them, 0 disabled, -1 failed (err). */
static int from_imds(shx_s3 *s, shx_s3_creds *c, char *err, size_t errlen) {
    const char *dis = var(s, "AWS_EC2_METADATA_DISABLED");
    if (dis && !strcasecmp(dis, "true")) {
        snprintf(err, errlen, "EC2 instance metadata: disabled by AWS_EC2_METADATA_DISABLED=true");
        return 0;
    }
    const char *ep = var(s, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    char *base = shx_xstrdup(ep ? ep : "http://169.254.169.254");
    size_t n = strlen(base);
    while (n > 8 && base[n - 1] == '/') base[--n] = 0;
    char why[512] = "";
    int rc = -1;
    shx_buf tok = {0}, role = {0}, js = {0};
    char *u = shx_xasprintf("%s/latest/api/token", base);
    long st = http("PUT", u, "X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL, 1000, &tok, why, sizeof why);
    free(u);
    if (st == 200 && tok.len && !strpbrk(tok.p, "\r\n")) {
        char *th = shx_xasprintf("X-aws-ec2-metadata-token: %s", tok.p);
        u = shx_xasprintf("%s/latest/meta-data/iam/security-credentials/", base);
        st = http("GET", u, th, NULL, 1000, &role, why, sizeof why);
        free(u);
        if (st == 200 && role.len) {
            role.p[strcspn(role.p, "\r\n")] = 0;
            u = shx_xasprintf("%s/latest/meta-data/iam/security-credentials/%s", base, role.p);
            st = http("GET", u, th, NULL, 1000, &js, why, sizeof why);
            free(u);
            if (st == 200 && shx_s3_creds_parse(js.p, c, why, sizeof why) == 0) rc = 1;
            else if (st > 0 && st != 200) snprintf(why, sizeof why, "HTTP %ld for the role's credentials", st);
        } else if (st == 404) {
            snprintf(why, sizeof why, "the instance has no IAM role (HTTP 404)");
        } else if (st > 0) {
            snprintf(why, sizeof why, "HTTP %ld for the role name", st);
        }
        explicit_bzero(th, strlen(th));
        free(th);
    } else if (st > 0) {
        snprintf(why, sizeof why, "HTTP %ld for the IMDSv2 token", st);
    }
    if (tok.p) explicit_bzero(tok.p, tok.len);
    if (js.p) explicit_bzero(js.p, js.len);
    shx_buf_free(&tok);
    shx_buf_free(&role);
    shx_buf_free(&js);
    if (rc < 0) snprintf(err, errlen, "EC2 instance metadata (%s): %s", base, why);
    else snprintf(c->source, sizeof c->source, "EC2 instance metadata (%s)", base);
    free(base);
    return rc;
}

static int chain(shx_s3 *s, shx_s3_creds *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    const char *ak = var(s, "AWS_ACCESS_KEY_ID"), *sk = var(s, "AWS_SECRET_ACCESS_KEY");
    if (ak && sk) {
        c->access_key = shx_xstrdup(ak);
        c->secret_key = shx_xstrdup(sk);
        const char *t = var(s, "AWS_SESSION_TOKEN");
        if (!t) t = var(s, "AWS_SECURITY_TOKEN");
        if (t) c->token = shx_xstrdup(t);
        snprintf(c->source, sizeof c->source, "the environment (AWS_ACCESS_KEY_ID)");
        return 0;
    }
    if (ak || sk) {
        snprintf(err, errlen, "AWS credentials: %s is set but %s is not; set both, or neither to use the container "
                 "credentials endpoint or instance metadata", ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                 ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return -1;
    }
    char e1[600];
    int r = from_container(s, c, e1, sizeof e1);
    if (r > 0) return 0;
    if (r < 0) {
        snprintf(err, errlen, "AWS credentials: %s", e1);
        return -1;
    }
    char e2[600];
    r = from_imds(s, c, e2, sizeof e2);
    if (r > 0) return 0;
    snprintf(err, errlen, "no AWS credentials: tried the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not "
             "set), the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI not set), "
             "%s. A job with network isolation gets no credentials and cannot use S3: put the code into the image or "
             "the code channel instead", e2);
    return -1;
}

const shx_s3_creds *shx_s3_credentials(shx_s3 *s, char *err, size_t errlen) {
    time_t now = time(NULL);
    if (s->creds.access_key && (!s->creds.expiration || now + SHX_S3_REFRESH_SECONDS < s->creds.expiration))
        return &s->creds;
    shx_s3_creds c;
    char e[1500];
    if (chain(s, &c, e, sizeof e) == 0) {
        if (s->creds.access_key) shx_debug("AWS credentials refreshed from %s", c.source);
        else shx_debug("AWS credentials from %s", c.source);
        shx_s3_creds_free(&s->creds);
        s->creds = c;
        return &s->creds;
    }
    if (s->creds.access_key && now < s->creds.expiration) {
        shx_warn("cannot refresh the AWS credentials (%s); using the current ones until they expire", e);
        return &s->creds;
    }
    snprintf(err, errlen, "%s", e);
    return NULL;
}
