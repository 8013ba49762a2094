/* Inside s3.so: the client's state and one request (s3client.c), shared with s3creds.c and s3sync.c. */
#ifndef SHX_S3_INTERNAL_H
#define SHX_S3_INTERNAL_H
#include <curl/curl.h>
#include <stdint.h>

#include "core/util.h"
#include "s3/s3.h"

struct shx_s3 {
    shx_s3_target t;
    shx_strvec env;     /* a copy: the sync thread outlives nothing of the job's */
    shx_s3_creds creds; /* valid when creds.access_key != NULL */
    char *sigv4;        /* "aws:amz:REGION:s3" */
    CURLSH *share;
    int stop_on_signal; /* abort when SIGTERM/SIGINT is pending (the download, before the program starts) */
};

typedef struct s3req {
    CURL *h;
    struct curl_slist *hdrs;
    char *url;
    long status;
    CURLcode cc;
    shx_buf body;     /* the response body when it is not written to fd (errors, XML answers), capped */
    int fd;           /* download target (-1: none); written at off + got */
    int64_t off, got;
    int in_fd;        /* upload source (-1: none): in_len bytes from in_off */
    int64_t in_off, in_len, in_pos;
    const char *mem;  /* upload source in memory */
    size_t mem_len;
    int write_errno;
    int check_stop, stopped; /* stopped: the pending signal that aborted the transfer */
    int64_t total;    /* Content-Range total, -1 unknown */
    char region_hdr[64], etag[128];
    char errbuf[CURL_ERROR_SIZE];
} s3req;

int shx_s3req_setup(shx_s3 *s, s3req *r, const char *method, char *url, int64_t range_start, int64_t range_end,
                    const char *extra_header, char *err, size_t errlen);
int shx_s3req_verdict(s3req *r, CURLcode cc);
int shx_s3req_describe(shx_s3 *s, s3req *r, const char *what, const char *bucket, const char *key, int attempts,
                       char *err, size_t errlen);
void shx_s3req_reset(s3req *r);
int64_t shx_s3_backoff_ms(int attempt);
#endif
