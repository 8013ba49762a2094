/* One HTTP request with libcurl (the internal module http.so, see plugin/modules.h): the client side of
 * `smhost local serve/invoke/transform`. */
#ifndef SHX_HTTP_H
#define SHX_HTTP_H
#include <stddef.h>

#include "core/util.h"

typedef struct shx_http_req {
    const char *method;          /* "GET", "POST" */
    const char *url;
    const char *const *headers;  /* "Name: value" ..., NULL-terminated; may be NULL */
    const char *body;            /* POST body */
    size_t body_len;
    long timeout_ms;             /* whole request; 0: none */
    int stop_on_signal;          /* abort when SIGINT or SIGTERM is pending (the caller blocks them) */
    /* out */
    long status;                 /* the HTTP status */
    shx_buf resp;                /* the response body (caller frees with shx_buf_free) */
    char content_type[256];      /* the response's Content-Type, or "" */
    int stopped_by;              /* the pending signal that aborted the request, or 0 */
} shx_http_req;

/* 0 when a response came back (any status), SHX_EXIT_UNAVAILABLE when the server could not be reached or did not
 * answer in time, SHX_EXIT_USAGE for a bad URL, 128+N when signal N stopped it (stop_on_signal); err says which. */
int shx_http(shx_http_req *r, char *err, size_t errlen);
#endif
