/* S3 requests with libcurl's SigV4 signer (see s3.h for the work-arounds curl 7.88 needs): ranged parallel
 * downloads into a temporary file, single and multipart uploads, retries with backoff, error texts that name the
 * URL, the HTTP status and S3's error code. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"
#include "s3/s3_internal.h"

#define PART_SIZE (16LL << 20)       /* ranged GET parts */
#define PARALLEL 4                   /* parts in flight */
#define UPLOAD_PART (8LL << 20)      /* multipart upload parts (S3's minimum is 5 MiB) */
#define MULTIPART_ABOVE (16LL << 20) /* files larger than this go by multipart upload */
#define ATTEMPTS 5                   /* per request: 1 + 4 retries, backoff 0.25, 0.5, 1, 2 s */
#define ERRBODY_MAX (16 * 1024)

/* Sleep ms; returns early with the signal when stop is set and a stop signal is pending. */
static int sleep_ms(int64_t ms, int stop) {
    int64_t end = shx_now_ms() + ms;
    for (int64_t left = ms; left > 0; left = end - shx_now_ms()) {
        int sig = stop ? shx_stop_signal_pending() : 0;
        if (sig) return sig;
        int64_t step = left > 100 ? 100 : left;
        struct timespec ts = {0, (long)step * 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    s3req *r = ud;
    return r->check_stop && (r->stopped = shx_stop_signal_pending()) != 0; /* nonzero aborts the transfer */
}

int64_t shx_s3_backoff_ms(int attempt) {
    int64_t ms = 250LL << (attempt > 6 ? 6 : attempt);
    return ms + (int64_t)(rand() % 100);
}

/* ---- one request ------------------------------------------------------------------------------------------- */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    s3req *r = ud;
    size_t len = size * n;
    char line[512];
    size_t l = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, p, l);
    line[l] = 0;
    while (l && (line[l - 1] == '\r' || line[l - 1] == '\n')) line[--l] = 0;
    if (!strncasecmp(line, "HTTP/", 5)) { /* a new response (after 100 Continue): forget the previous headers */
        r->region_hdr[0] = r->etag[0] = 0;
        r->total = -1;
    } else if (!strncasecmp(line, "x-amz-bucket-region:", 20)) {
        snprintf(r->region_hdr, sizeof r->region_hdr, "%s", line + 20 + strspn(line + 20, " "));
    } else if (!strncasecmp(line, "etag:", 5)) {
        snprintf(r->etag, sizeof r->etag, "%s", line + 5 + strspn(line + 5, " "));
    } else if (!strncasecmp(line, "content-range:", 14)) {
        const char *slash = strrchr(line, '/');
        if (slash && slash[1] != '*') r->total = strtoll(slash + 1, NULL, 10);
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    s3req *r = ud;
    size_t len = size * n;
    long st = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &st);
    if (r->fd >= 0 && st >= 200 && st < 300) {
        size_t done = 0;
        while (done < len) {
            ssize_t w = pwrite(r->fd, p + done, len - done, (off_t)(r->off + r->got + (int64_t)done));
            if (w < 0) {
                if (errno == EINTR) continue;
                r->write_errno = errno;
                return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
            }
            done += (size_t)w;
        }
        r->got += (int64_t)len;
        return len;
    }
    if (r->body.len < ERRBODY_MAX) shx_buf_add(&r->body, p, len < ERRBODY_MAX ? len : ERRBODY_MAX);
    return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *ud) {
    s3req *r = ud;
    size_t want = size * n;
    if (r->mem) {
        size_t left = r->mem_len - (size_t)r->in_pos;
        if (want > left) want = left;
        memcpy(p, r->mem + r->in_pos, want);
        r->in_pos += (int64_t)want;
        return want;
    }
    int64_t left = r->in_len - r->in_pos;
    if ((int64_t)want > left) want = (size_t)left;
    if (!want) return 0;
    ssize_t got;
    do got = pread(r->in_fd, p, want, (off_t)(r->in_off + r->in_pos));
    while (got < 0 && errno == EINTR);
    if (got <= 0) {
        r->write_errno = got < 0 ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    r->in_pos += got;
    return (size_t)got;
}

void shx_s3req_reset(s3req *r) {
    if (r->h) curl_easy_cleanup(r->h);
    curl_slist_free_all(r->hdrs);
    r->h = NULL;
    r->hdrs = NULL;
    shx_buf_free(&r->body);
    free(r->url);
    r->url = NULL;
}

/* Prepare r->h for METHOD url (url owned by r).  range_end < 0: no Range.  Returns 0, or -1 with err (no
 * credentials). */
int shx_s3req_setup(shx_s3 *s, s3req *r, const char *method, char *url, int64_t range_start, int64_t range_end,
                    const char *extra_header, char *err, size_t errlen) {
    const shx_s3_creds *c = shx_s3_credentials(s, err, errlen);
    if (!c) {
        free(url);
        return -1;
    }
    shx_s3req_reset(r); /* a retry: a fresh handle, headers and body */
    r->url = url;
    r->got = 0;
    r->in_pos = 0;
    r->status = 0;
    r->write_errno = 0;
    r->total = -1;
    r->region_hdr[0] = r->etag[0] = r->errbuf[0] = 0;
    CURL *h = r->h = curl_easy_init();
    if (!h) {
        snprintf(err, errlen, "cannot initialize libcurl (out of memory?)");
        return -1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* never: a redirect means the wrong region */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L); /* a stalled transfer is an error, and retried */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
    if (s->share) curl_easy_setopt(h, CURLOPT_SHARE, s->share);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
    /* USERNAME/PASSWORD, not USERPWD: an access key id may contain ':'. */
    curl_easy_setopt(h, CURLOPT_USERNAME, c->access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, c->secret_key);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    r->check_stop = s->stop_on_signal;
    r->stopped = 0;
    if (r->check_stop) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, r);
    }
    /* curl 7.88 sends no x-amz-content-sha256, which S3 requires; the payload is not hashed (it may be GiBs). */
    r->hdrs = curl_slist_append(r->hdrs, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (c->token) { /* never an empty header: curl 7.88 signs "X-Amz-Security-Token;" wrongly */
        char *t = shx_xasprintf("X-Amz-Security-Token: %s", c->token);
        r->hdrs = curl_slist_append(r->hdrs, t);
        explicit_bzero(t, strlen(t));
        free(t);
    }
    if (range_end >= 0) {
        char rg[80];
        snprintf(rg, sizeof rg, "Range: bytes=%" PRId64 "-%" PRId64, range_start, range_end);
        r->hdrs = curl_slist_append(r->hdrs, rg);
    }
    if (extra_header) r->hdrs = curl_slist_append(r->hdrs, extra_header);
    if (!strcmp(method, "GET")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (!strcmp(method, "PUT")) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(r->mem ? (int64_t)r->mem_len : r->in_len));
        r->hdrs = curl_slist_append(r->hdrs, "Content-Type: application/octet-stream");
    } else if (!strcmp(method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->mem ? r->mem_len : 0));
        r->hdrs = curl_slist_append(r->hdrs, "Content-Type: application/xml");
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->hdrs);
    return 0;
}

/* After a transfer: 0 done, 1 worth retrying, 2 final failure. */
int shx_s3req_verdict(s3req *r, CURLcode cc) {
    r->cc = cc;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
    if (cc == CURLE_OK && r->status >= 200 && r->status < 300) {
        /* S3 may answer 200 with an <Error> (CompleteMultipartUpload) */
        if (r->fd < 0 && r->body.p && strstr(r->body.p, "<Error>")) {
            char *code = shx_s3_xml_tag(r->body.p, "Code");
            int retry = code && (!strcmp(code, "InternalError") || !strcmp(code, "SlowDown"));
            free(code);
            return retry ? 1 : 2;
        }
        return 0;
    }
    if (cc == CURLE_WRITE_ERROR && r->write_errno) return 2; /* our disk */
    if (cc == CURLE_ABORTED_BY_CALLBACK || r->stopped || (cc == CURLE_READ_ERROR && r->write_errno)) return 2;
    if (cc != CURLE_OK) {
        switch (cc) {
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_OUT_OF_MEMORY:
            return 2;
        default:
            return 1; /* connection refused/reset, timeouts, DNS, partial transfers, TLS hiccups */
        }
    }
    if (r->status >= 500 || r->status == 429) return 1;
    char *code = r->body.p ? shx_s3_xml_tag(r->body.p, "Code") : NULL;
    int retry = code && (!strcmp(code, "SlowDown") || !strcmp(code, "Throttling") ||
                         !strcmp(code, "RequestTimeout") || !strcmp(code, "RequestTimeTooSkewed"));
    free(code);
    return retry ? 1 : 2;
}

/* The error text and exit code of a failed request on s3://bucket/key. */
int shx_s3req_describe(shx_s3 *s, s3req *r, const char *what, const char *bucket, const char *key, int attempts,
                       char *err, size_t errlen) {
    if (r->stopped) {
        char sn[16];
        snprintf(err, errlen, "%s s3://%s/%s: stopped by %s before the program started", what, bucket, key,
                 shx_signal_name(r->stopped, sn, sizeof sn));
        return 128 + r->stopped;
    }
    char tries[64] = "";
    if (attempts > 1) snprintf(tries, sizeof tries, " (after %d attempts)", attempts);
    if (r->write_errno && (r->cc == CURLE_WRITE_ERROR || r->cc == CURLE_READ_ERROR ||
                           r->cc == CURLE_ABORTED_BY_CALLBACK)) {
        snprintf(err, errlen, "%s s3://%s/%s: local file error: %s", what, bucket, key, strerror(r->write_errno));
        return SHX_EXIT_CANTCREAT;
    }
    if (r->cc != CURLE_OK) {
        snprintf(err, errlen, "%s s3://%s/%s: cannot reach the S3 endpoint %s%s: %s%s. Check %s and the network "
                 "(a job with network isolation cannot reach S3).", what, bucket, key, s->t.endpoint, tries,
                 r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->cc), "",
                 s->t.endpoint_var ? s->t.endpoint_var : "AWS_REGION");
        return SHX_EXIT_UNAVAILABLE;
    }
    char *code = r->body.p ? shx_s3_xml_tag(r->body.p, "Code") : NULL;
    char *msg = r->body.p ? shx_s3_xml_tag(r->body.p, "Message") : NULL;
    char *xregion = r->body.p ? shx_s3_xml_tag(r->body.p, "Region") : NULL;
    if (msg) shx_utf8_clean(msg, 300);
    if (code) shx_utf8_clean(code, 80);
    char detail[512];
    snprintf(detail, sizeof detail, "HTTP %ld%s%s%s%s", r->status, code ? " " : "", code ? code : "",
             msg ? ": " : "", msg ? msg : "");
    const char *region = r->region_hdr[0] ? r->region_hdr : xregion;
    int rc;
    if ((r->status == 301 || r->status == 307 || r->status == 400) && region && *region &&
        strcmp(region, s->t.region)) {
        snprintf(err, errlen, "%s s3://%s/%s: the bucket is in region %s, not %s (%s); set AWS_REGION=%s (or the "
                 "sagemaker_region hyperparameter)", what, bucket, key, region, s->t.region, detail, region);
        rc = SHX_EXIT_CONFIG;
    } else if (r->status == 301 || r->status == 302 || r->status == 307) {
        snprintf(err, errlen, "%s s3://%s/%s: S3 answered with a redirect (%s), which smhost does not follow: the "
                 "bucket is probably in another region than %s; set AWS_REGION", what, bucket, key, detail,
                 s->t.region);
        rc = SHX_EXIT_CONFIG;
    } else if (r->status == 404) {
        snprintf(err, errlen, "%s s3://%s/%s: not found (%s); check the bucket and key", what, bucket, key,
                 code ? detail : "HTTP 404");
        rc = SHX_EXIT_NOINPUT;
    } else if (r->status == 403 || r->status == 401) {
        snprintf(err, errlen, "%s s3://%s/%s: access denied (%s). The credentials came from %s; check that they "
                 "are right and allow this request", what, bucket, key, detail, s->creds.source);
        rc = SHX_EXIT_NOPERM;
    } else {
        snprintf(err, errlen, "%s s3://%s/%s: S3 refused the request%s (%s)", what, bucket, key, tries, detail);
        rc = r->status >= 500 || r->status == 429 ? SHX_EXIT_UNAVAILABLE : SHX_EXIT_DATAERR;
    }
    free(code);
    free(msg);
    free(xregion);
    return rc;
}

/* One request with retries.  setup is redone for every attempt (fresh credentials, rewound body). */
static int run_request(shx_s3 *s, s3req *r, const char *what, const char *method, const char *bucket,
                       const char *key, const char *query, int64_t rs, int64_t re, const char *extra, char *err,
                       size_t errlen) {
    for (int attempt = 0;; attempt++) {
        if (r->fd >= 0 && re < 0 && ftruncate(r->fd, 0) < 0) {}
        char e[1600];
        if (shx_s3req_setup(s, r, method, shx_s3_request_url(&s->t, bucket, key, query), rs, re, extra, e,
                            sizeof e) < 0) {
            snprintf(err, errlen, "%s s3://%s/%s: %s", what, bucket, key, e);
            return SHX_EXIT_NOPERM;
        }
        int v = shx_s3req_verdict(r, curl_easy_perform(r->h));
        if (v == 0) return 0;
        if (v == 2 || attempt + 1 >= ATTEMPTS) return shx_s3req_describe(s, r, what, bucket, key, attempt + 1, err,
                                                                          errlen);
        int64_t b = shx_s3_backoff_ms(attempt);
        shx_debug("%s s3://%s/%s: attempt %d failed (HTTP %ld, %s); retrying in %" PRId64 " ms", what, bucket, key,
                  attempt + 1, r->status, r->cc ? curl_easy_strerror(r->cc) : "S3 error", b);
        if ((r->stopped = sleep_ms(b, s->stop_on_signal)))
            return shx_s3req_describe(s, r, what, bucket, key, attempt + 1, err, errlen);
    }
}

/* ---- download -------------------------------------------------------------------------------------------------- */
typedef struct part {
    s3req r;
    int64_t start, end; /* inclusive */
    int attempts;
    int64_t due; /* not before (ms) */
    int state;   /* 0 waiting, 1 running, 2 done */
} part;

int shx_s3_download(shx_s3 *s, const char *bucket, const char *key, const char *dest, char *err, size_t errlen) {
    char *tmp = shx_xasprintf("%s.part", dest);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s to download s3://%s/%s: %s", tmp, bucket, key, strerror(errno));
        free(tmp);
        return SHX_EXIT_CANTCREAT;
    }
    int64_t t0 = shx_now_ms();
    /* The first part tells the size (Content-Range) and the ETag the other parts must match. */
    s3req first = {.fd = fd, .in_fd = -1};
    int rc = run_request(s, &first, "download", "GET", bucket, key, NULL, 0, PART_SIZE - 1, NULL, err, errlen);
    if (rc && first.status == 416) { /* an empty object has no byte 0 */
        shx_s3req_reset(&first);
        rc = run_request(s, &first, "download", "GET", bucket, key, NULL, 0, -1, NULL, err, errlen);
    }
    int64_t total = first.status == 206 ? first.total : first.got;
    char etag[128];
    snprintf(etag, sizeof etag, "%s", first.etag);
    if (!rc && first.status == 206 && (total < 0 || first.got != (total < PART_SIZE ? total : PART_SIZE))) {
        snprintf(err, errlen, "download s3://%s/%s: the server sent %" PRId64 " bytes of the first part, expected "
                 "%" PRId64 " (Content-Range total %" PRId64 ")", bucket, key, first.got,
                 (int64_t)(total < PART_SIZE ? total : PART_SIZE), total);
        rc = SHX_EXIT_UNAVAILABLE;
    }
    shx_s3req_reset(&first);
    size_t nparts = 0;
    part *parts = NULL;
    if (!rc && total > PART_SIZE) {
        nparts = (size_t)((total - PART_SIZE + PART_SIZE - 1) / PART_SIZE);
        parts = shx_xcalloc(nparts, sizeof *parts);
        for (size_t i = 0; i < nparts; i++) {
            parts[i].start = PART_SIZE * (int64_t)(i + 1);
            parts[i].end = parts[i].start + PART_SIZE - 1 < total ? parts[i].start + PART_SIZE - 1 : total - 1;
            parts[i].r.fd = fd;
            parts[i].r.in_fd = -1;
            parts[i].r.off = parts[i].start;
        }
        CURLM *m = curl_multi_init();
        char *ifmatch = etag[0] ? shx_xasprintf("If-Match: %s", etag) : NULL;
        size_t done = 0, running = 0;
        while (!rc && done < nparts) {
            int sig = s->stop_on_signal ? shx_stop_signal_pending() : 0;
            if (sig) {
                char sn[16];
                snprintf(err, errlen, "download s3://%s/%s: stopped by %s before the program started", bucket, key,
                         shx_signal_name(sig, sn, sizeof sn));
                rc = 128 + sig;
                break;
            }
            int64_t now = shx_now_ms(), next_due = -1;
            for (size_t i = 0; i < nparts && running < PARALLEL && !rc; i++) {
                part *p = &parts[i];
                if (p->state != 0) continue;
                if (p->due > now) {
                    if (next_due < 0 || p->due < next_due) next_due = p->due;
                    continue;
                }
                shx_s3req_reset(&p->r);
                char e[1600];
                if (shx_s3req_setup(s, &p->r, "GET", shx_s3_request_url(&s->t, bucket, key, NULL), p->start, p->end,
                                    ifmatch, e, sizeof e) < 0) {
                    snprintf(err, errlen, "download s3://%s/%s: %s", bucket, key, e);
                    rc = SHX_EXIT_NOPERM;
                    break;
                }
                curl_easy_setopt(p->r.h, CURLOPT_PRIVATE, p);
                curl_multi_add_handle(m, p->r.h);
                p->state = 1;
                running++;
            }
            if (rc) break;
            int still = 0;
            curl_multi_perform(m, &still);
            CURLMsg *msg;
            int left;
            while ((msg = curl_multi_info_read(m, &left))) {
                if (msg->msg != CURLMSG_DONE) continue;
                part *p;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&p);
                CURLcode cc = msg->data.result;
                curl_multi_remove_handle(m, p->r.h);
                running--;
                int v = shx_s3req_verdict(&p->r, cc);
                if (v == 0 && p->r.got != p->end - p->start + 1) v = 1; /* short part */
                if (v == 0) {
                    p->state = 2;
                    done++;
                    shx_s3req_reset(&p->r);
                } else if (v == 1 && ++p->attempts < ATTEMPTS) {
                    p->state = 0;
                    p->due = shx_now_ms() + shx_s3_backoff_ms(p->attempts - 1);
                    shx_debug("download s3://%s/%s: part at %" PRId64 " failed (HTTP %ld, %s); retrying", bucket, key,
                              p->start, p->r.status, cc ? curl_easy_strerror(cc) : "S3 error");
                } else {
                    rc = shx_s3req_describe(s, &p->r, "download", bucket, key, p->attempts + (v == 2), err, errlen);
                    if (p->r.status == 412)
                        snprintf(err, errlen, "download s3://%s/%s: the object changed while it was being downloaded "
                                 "(HTTP 412 PreconditionFailed); run the job again", bucket, key);
                }
            }
            if (!rc && done < nparts) {
                int wait = 200;
                if (!running && next_due > 0) wait = (int)(next_due - shx_now_ms() > 0 ? next_due - shx_now_ms() : 0);
                curl_multi_poll(m, NULL, 0, wait, NULL);
            }
        }
        for (size_t i = 0; i < nparts; i++) {
            if (parts[i].r.h && parts[i].state == 1) curl_multi_remove_handle(m, parts[i].r.h);
            shx_s3req_reset(&parts[i].r);
        }
        curl_multi_cleanup(m);
        free(ifmatch);
        free(parts);
    }
    if (!rc && close(fd) < 0) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        rc = SHX_EXIT_CANTCREAT;
    } else if (rc) {
        close(fd);
    }
    if (!rc && rename(tmp, dest) < 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, dest, strerror(errno));
        rc = SHX_EXIT_CANTCREAT;
    }
    if (rc) unlink(tmp);
    else {
        int64_t ms = shx_now_ms() - t0;
        shx_info("downloaded s3://%s/%s (%" PRId64 " bytes) in %.2f s (%.1f MiB/s)", bucket, key, total, ms / 1000.0,
                 ms > 0 ? total / 1048576.0 / (ms / 1000.0) : 0.0);
    }
    free(tmp);
    return rc;
}

/* ---- upload ------------------------------------------------------------------------------------------------------ */
static int multipart(shx_s3 *s, const char *bucket, const char *key, int fd, int64_t size, char *err,
                     size_t errlen) {
    s3req r = {.fd = -1, .in_fd = -1};
    const char *up[] = {"uploads", NULL};
    char *q = shx_s3_canonical_query(up, 1);
    int rc = run_request(s, &r, "upload", "POST", bucket, key, q, 0, -1, NULL, err, errlen);
    free(q);
    char *id = rc ? NULL : shx_s3_xml_tag(r.body.p, "UploadId");
    shx_s3req_reset(&r);
    if (rc) return rc;
    if (!id) {
        snprintf(err, errlen, "upload s3://%s/%s: CreateMultipartUpload returned no UploadId", bucket, key);
        return SHX_EXIT_UNAVAILABLE;
    }
    shx_buf xml = {0};
    shx_buf_adds(&xml, "<CompleteMultipartUpload>");
    int n = (int)((size + UPLOAD_PART - 1) / UPLOAD_PART);
    for (int i = 0; i < n && !rc; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i + 1);
        const char *pp[] = {"partNumber", num, "uploadId", id};
        q = shx_s3_canonical_query(pp, 2);
        s3req pr = {.fd = -1, .in_fd = fd, .in_off = (int64_t)i * UPLOAD_PART};
        pr.in_len = size - pr.in_off < UPLOAD_PART ? size - pr.in_off : UPLOAD_PART;
        rc = run_request(s, &pr, "upload", "PUT", bucket, key, q, 0, -1, NULL, err, errlen);
        free(q);
        if (!rc && !pr.etag[0]) {
            snprintf(err, errlen, "upload s3://%s/%s: part %d has no ETag in the answer", bucket, key, i + 1);
            rc = SHX_EXIT_UNAVAILABLE;
        }
        if (!rc) shx_buf_printf(&xml, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1, pr.etag);
        shx_s3req_reset(&pr);
    }
    shx_buf_adds(&xml, "</CompleteMultipartUpload>");
    const char *idq[] = {"uploadId", id};
    q = shx_s3_canonical_query(idq, 1);
    if (!rc) {
        s3req cr = {.fd = -1, .in_fd = -1, .mem = xml.p, .mem_len = xml.len};
        rc = run_request(s, &cr, "upload", "POST", bucket, key, q, 0, -1, NULL, err, errlen);
        shx_s3req_reset(&cr);
    }
    if (rc) { /* don't leave the parts billed */
        char e2[256];
        s3req ar = {.fd = -1, .in_fd = -1};
        run_request(s, &ar, "abort upload", "DELETE", bucket, key, q, 0, -1, NULL, e2, sizeof e2);
        shx_s3req_reset(&ar);
    }
    free(q);
    free(id);
    shx_buf_free(&xml);
    return rc;
}

int shx_s3_upload(shx_s3 *s, const char *bucket, const char *key, const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "upload %s to s3://%s/%s: cannot read it: %s", path, bucket, key, strerror(errno));
        if (fd >= 0) close(fd);
        return SHX_EXIT_NOINPUT;
    }
    int rc;
    if (st.st_size > MULTIPART_ABOVE) {
        rc = multipart(s, bucket, key, fd, (int64_t)st.st_size, err, errlen);
    } else {
        s3req r = {.fd = -1, .in_fd = fd, .in_len = (int64_t)st.st_size};
        rc = run_request(s, &r, "upload", "PUT", bucket, key, NULL, 0, -1, NULL, err, errlen);
        shx_s3req_reset(&r);
    }
    close(fd);
    return rc;
}

/* ---- the client ------------------------------------------------------------------------------------------------ */
shx_s3 *shx_s3_new(char *const *env, const char *hp_region, const char *bucket, char *err, size_t errlen) {
    shx_s3 *s = shx_xcalloc(1, sizeof *s);
    if (shx_s3_target_choose(env, hp_region, bucket, &s->t, err, errlen) < 0) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; env && env[i]; i++) shx_strvec_push(&s->env, env[i]);
    s->sigv4 = shx_xasprintf("aws:amz:%s:s3", s->t.region);
    s->share = curl_share_init();
    if (s->share) { /* parts reuse DNS answers and TLS sessions */
        curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    return s;
}

void shx_s3_stop_on_signals(shx_s3 *s) {
    s->stop_on_signal = 1;
}

void shx_s3_free(shx_s3 *s) {
    if (!s) return;
    shx_s3_target_free(&s->t);
    shx_s3_creds_free(&s->creds);
    for (size_t i = 0; i < s->env.n; i++) explicit_bzero(s->env.v[i], strlen(s->env.v[i])); /* secrets among them */
    shx_strvec_free(&s->env);
    if (s->share) curl_share_cleanup(s->share);
    free(s->sigv4);
    free(s);
}
