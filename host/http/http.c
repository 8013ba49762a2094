/* One HTTP request with libcurl (see http.h). */
#include "http/http.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "core/exitcodes.h"

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    shx_buf_add((shx_buf *)ud, p, size * n);
    return size * n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
    shx_http_req *r = ud;
    r->stopped_by = shx_stop_signal_pending();
    return r->stopped_by ? 1 : 0;
}

int shx_http(shx_http_req *r, char *err, size_t errlen) {
    static int inited;
    if (!inited) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        inited = 1;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "libcurl could not start a request");
        return SHX_EXIT_OSERR;
    }
    struct curl_slist *hdrs = NULL;
    /* no "Expect: 100-continue" round trip on large bodies */
    hdrs = curl_slist_append(hdrs, "Expect:");
    for (const char *const *h = r->headers; h && *h; h++) hdrs = curl_slist_append(hdrs, *h);
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->resp);
    if (r->timeout_ms > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    r->stopped_by = 0;
    if (r->stop_on_signal) {
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, r);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    if (!strcmp(r->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "GET")) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
    }
    CURLcode cc = curl_easy_perform(c);
    int rc = 0;
    r->content_type[0] = 0;
    if (cc == CURLE_ABORTED_BY_CALLBACK && r->stopped_by) {
        snprintf(err, errlen, "%s %s: interrupted", r->method, r->url);
        rc = 128 + r->stopped_by;
    } else if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s %s: %s", r->method, r->url, ebuf[0] ? ebuf : curl_easy_strerror(cc));
        rc = cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL ? SHX_EXIT_USAGE : SHX_EXIT_UNAVAILABLE;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ct) snprintf(r->content_type, sizeof r->content_type, "%s", ct);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return rc;
}
