/* S3 for smhost (contract section 8): sagemaker_submit_directory=s3://... and sagemaker_s3_output.
 *
 * Lives in the internal module s3.so (modules.h), loaded only when an s3:// URL appears, so plain jobs never map
 * libcurl.  Requests are signed by libcurl's CURLOPT_AWS_SIGV4 (curl 7.88 in Debian 12), with the work-arounds
 * its signer needs done here: the canonical query string and the object key are encoded by us (curl signs both
 * exactly as written), x-amz-content-sha256 is added by us, the key id goes through CURLOPT_USERNAME (it may
 * contain ':'), an empty session token sends no X-Amz-Security-Token header, and custom endpoints get path-style
 * URLs.
 *
 * s3url.c holds the pure parts (no network: unit-tested in tests/unit/test_s3.c); s3client.c, s3creds.c and
 * s3sync.c do the requests.  Secrets (secret key, session token, authorization token) never reach a log line or
 * an error message: error texts carry the URL, the HTTP status, S3's <Code> and <Message>, nothing else of a body.
 */
#ifndef SHX_S3_H
#define SHX_S3_H
#include <stddef.h>
#include <time.h>

/* ---- pure parts (s3url.c) -------------------------------------------------------------------------------- */
typedef struct shx_s3_url {
    char *bucket, *key; /* key without the leading '/', may be "" (a bucket URL) */
} shx_s3_url;
/* Parse "s3://bucket/key".  Returns 0, or -1 with err naming the URL and what is wrong (no bucket, a bucket name
 * S3 refuses, an empty key when need_key). */
int shx_s3_url_parse(const char *url, int need_key, shx_s3_url *out, char *err, size_t errlen);
void shx_s3_url_free(shx_s3_url *u);

/* S3's URI encoding (SigV4): A-Z a-z 0-9 - . _ ~ stay, '/' stays when keep_slash, every other byte is %XX with
 * upper-case hex ("+" is %2B, " " is %20).  Returns a new string. */
char *shx_s3_uri_encode(const char *s, int keep_slash);
/* The canonical query string of `n` name/value pairs (pairs[2i], pairs[2i+1]; a NULL value is a valueless
 * parameter and is written "name="): names and values encoded, sorted by encoded name then value, joined with
 * '&'.  Returns a new string ("" for n == 0). */
char *shx_s3_canonical_query(const char *const *pairs, size_t n);

/* Where requests go: contract section 8. */
typedef struct shx_s3_target {
    char *region;   /* sagemaker_region, AWS_REGION, AWS_DEFAULT_REGION, else "us-east-1" */
    char *endpoint; /* scheme://host[:port][/prefix] without a trailing '/' */
    int path_style; /* 1: endpoint/bucket/key (custom endpoints, buckets with dots); 0: bucket.endpoint-host/key */
    const char *endpoint_var; /* the variable the endpoint came from, or NULL for AWS's regional endpoint */
} shx_s3_target;
/* env: the environment ("K=V" vector); hp_region: the sagemaker_region hyperparameter or NULL.  Returns 0, or -1
 * with err when an endpoint variable is not an http(s) URL. */
int shx_s3_target_choose(char *const *env, const char *hp_region, const char *bucket, shx_s3_target *t, char *err,
                         size_t errlen);
void shx_s3_target_free(shx_s3_target *t);
/* The request URL for bucket/key (key may be "") with an already canonical query (may be NULL or ""). */
char *shx_s3_request_url(const shx_s3_target *t, const char *bucket, const char *key, const char *query);

typedef struct shx_s3_creds {
    char *access_key, *secret_key, *token; /* token NULL when there is none (never "") */
    time_t expiration;                     /* 0: does not expire */
    char source[96];                       /* where they came from, for logs ("the environment" ...) */
} shx_s3_creds;
/* Parse the container-credentials / IMDS JSON {"AccessKeyId","SecretAccessKey","Token","Expiration"}.  Returns 0,
 * or -1 with err naming the missing or malformed field (never a value). */
int shx_s3_creds_parse(const char *json, shx_s3_creds *c, char *err, size_t errlen);
void shx_s3_creds_free(shx_s3_creds *c);
/* Seconds since the epoch of an ISO 8601 UTC time ("2026-11-30T05:00:00Z", fractions allowed); -1 if malformed. */
time_t shx_s3_parse_time(const char *s);
/* 1 when AWS_CONTAINER_CREDENTIALS_FULL_URI may be used: https, or http to loopback (127.0.0.0/8, ::1,
 * localhost), 169.254.170.2 or 169.254.170.23 (fd00:ec2::23). */
int shx_s3_full_uri_allowed(const char *uri);
/* The text of the first <tag>...</tag> in an S3 XML body, entities decoded; NULL when absent. */
char *shx_s3_xml_tag(const char *xml, const char *tag);

/* ---- requests (s3client.c, s3creds.c) --------------------------------------------------------------------- */
typedef struct shx_s3 shx_s3;
/* A client for one job: target and credentials chain read from env.  Returns NULL with err on a bad endpoint. */
shx_s3 *shx_s3_new(char *const *env, const char *hp_region, const char *bucket, char *err, size_t errlen);
void shx_s3_free(shx_s3 *s);
/* From now on a pending SIGTERM/SIGINT aborts the transfer (within about a second), and the request fails with
 * 128 + the signal's number. */
void shx_s3_stop_on_signals(shx_s3 *s);
/* Download s3://bucket/key into dest (through dest.part, renamed on success), with parallel ranged GETs.
 * Returns 0, or an SHX_EXIT_* code with err naming the URL, the HTTP status and S3's error code. */
int shx_s3_download(shx_s3 *s, const char *bucket, const char *key, const char *dest, char *err, size_t errlen);
/* Upload the file at path to bucket/key (multipart when large).  Returns 0, or an SHX_EXIT_* code with err. */
int shx_s3_upload(shx_s3 *s, const char *bucket, const char *key, const char *path, char *err, size_t errlen);
/* Credentials valid for at least SHX_S3_REFRESH_SECONDS more; fetched through the chain when needed.
 * Returns NULL with err listing every source tried. */
#define SHX_S3_REFRESH_SECONDS 300
const shx_s3_creds *shx_s3_credentials(shx_s3 *s, char *err, size_t errlen);
#endif
