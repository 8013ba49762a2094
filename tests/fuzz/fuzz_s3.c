/* The S3 client's parsers of what comes from outside (host/s3/s3url.c): s3:// URLs, the credentials JSON of the
 * container endpoint / IMDS, tags of S3's XML answers, ISO 8601 times, and the SigV4 encoders.  The first byte
 * picks the parser. */
#include <ctype.h>
#include <string.h>

#include "core/util.h"
#include "fuzz.h"
#include "s3/s3.h"

static void check_encoded(const char *e, int keep_slash) {
    for (const char *p = e; *p; p++) {
        if (*p == '%') {
            FUZZ_CHECK(isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2]), "a bad escape in %s", e);
            p += 2;
        } else {
            FUZZ_CHECK(isalnum((unsigned char)*p) || strchr("-._~", *p) || (keep_slash && *p == '/'),
                       "an unencoded byte 0x%02x in %s", (unsigned char)*p, e);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    if (!size) return 0;
    int which = data[0] % 5;
    char *s = shx_xstrndup((const char *)data + 1, size - 1); /* the parsers take C strings */
    char err[1024] = "";
    switch (which) {
    case 0: {
        shx_s3_url u = {0};
        for (int need_key = 0; need_key < 2; need_key++) {
            if (shx_s3_url_parse(s, need_key, &u, err, sizeof err) == 0) {
                FUZZ_CHECK(u.bucket && *u.bucket && u.key, "a parsed URL without a bucket or key: %s", s);
                char *k1 = shx_s3_uri_encode(u.key, 1), *k0 = shx_s3_uri_encode(u.key, 0);
                check_encoded(k1, 1), check_encoded(k0, 0);
                shx_s3_target t = {.region = "us-east-1", .endpoint = "https://s3.us-east-1.amazonaws.com"};
                for (t.path_style = 0; t.path_style < 2; t.path_style++)
                    free(shx_s3_request_url(&t, u.bucket, u.key, "a=b"));
                free(k1), free(k0);
                shx_s3_url_free(&u);
            } else {
                FUZZ_CHECK(err[0], "a refused URL without a message");
            }
        }
        break;
    }
    case 1: {
        shx_s3_creds c = {0};
        if (shx_s3_creds_parse(s, &c, err, sizeof err) == 0) {
            FUZZ_CHECK(c.access_key && *c.access_key && c.secret_key && *c.secret_key, "credentials without keys");
            FUZZ_CHECK(!c.token || *c.token, "an empty token instead of none");
        } else {
            FUZZ_CHECK(err[0], "refused credentials without a message");
        }
        shx_s3_creds_free(&c);
        break;
    }
    case 2: {
        const char *tags[] = {"Code", "Message", "Region", "UploadId", "ETag", ""};
        for (size_t k = 0; k < sizeof tags / sizeof *tags; k++) free(shx_s3_xml_tag(s, tags[k]));
        break;
    }
    case 3:
        shx_s3_parse_time(s);
        shx_s3_full_uri_allowed(s);
        break;
    default: {
        const char *pairs[16];
        size_t n = 0;
        char *save = NULL;
        for (char *tok = strtok_r(s, "\n", &save); tok && n < 16; tok = strtok_r(NULL, "\n", &save), n++)
            pairs[n] = (n % 2 && !strcmp(tok, "-")) ? NULL : tok; /* "-": a valueless parameter */
        n &= ~(size_t)1;
        char *q = shx_s3_canonical_query(pairs, n / 2);
        free(q);
        break;
    }
    }
    free(s);
    return 0;
}
