/* Unit tests for host/s3/s3url.c: the pure parts of the S3 client (URL parsing, SigV4 encoding of keys and
 * query strings, endpoint and region choice, credential JSON, the FULL_URI address rule, XML fields). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "s3/s3.h"

static char err[1024];

static void test_url_parse(void **st) {
    shx_s3_url u;
    assert_int_equal(shx_s3_url_parse("s3://my-bucket/a/b/sourcedir.tar.gz", 1, &u, err, sizeof err), 0);
    assert_string_equal(u.bucket, "my-bucket");
    assert_string_equal(u.key, "a/b/sourcedir.tar.gz");
    shx_s3_url_free(&u);
    assert_int_equal(shx_s3_url_parse("s3://bkt.with.dots/k+y ~x", 1, &u, err, sizeof err), 0);
    assert_string_equal(u.key, "k+y ~x");
    shx_s3_url_free(&u);
    assert_int_equal(shx_s3_url_parse("s3://bucket", 0, &u, err, sizeof err), 0); /* a prefix URL */
    assert_string_equal(u.key, "");
    shx_s3_url_free(&u);
    assert_int_equal(shx_s3_url_parse("s3://bucket/", 1, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "no object key"));
    assert_int_equal(shx_s3_url_parse("s3:///key", 1, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "no bucket"));
    assert_int_equal(shx_s3_url_parse("s3://ab/key", 1, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "3 to 63"));
    assert_int_equal(shx_s3_url_parse("s3://bad*bucket/key", 1, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad*bucket"));
    assert_int_equal(shx_s3_url_parse("https://bucket/key", 1, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "not an s3:// URL"));
}

static void test_uri_encode(void **st) {
    char *s = shx_s3_uri_encode("dir/a+b~c d_e.f-g%h=\xc3\xa9", 1);
    assert_string_equal(s, "dir/a%2Bb~c%20d_e.f-g%25h%3D%C3%A9");
    free(s);
    s = shx_s3_uri_encode("a/b", 0);
    assert_string_equal(s, "a%2Fb");
    free(s);
}

static void test_canonical_query(void **st) {
    /* Sorted by name, valueless parameters written "name=", values with upper-case %XX. */
    const char *p[] = {"uploadId", "a/b+c=", "partNumber", "2"};
    char *q = shx_s3_canonical_query(p, 2);
    assert_string_equal(q, "partNumber=2&uploadId=a%2Fb%2Bc%3D");
    free(q);
    const char *p2[] = {"uploads", NULL};
    q = shx_s3_canonical_query(p2, 1);
    assert_string_equal(q, "uploads=");
    free(q);
    const char *p3[] = {"prefix", "x y", "list-type", "2", "delimiter", "/", "Zed", "1"};
    q = shx_s3_canonical_query(p3, 4);
    assert_string_equal(q, "Zed=1&delimiter=%2F&list-type=2&prefix=x%20y"); /* byte order: upper case first */
    free(q);
    q = shx_s3_canonical_query(NULL, 0);
    assert_string_equal(q, "");
    free(q);
}

static void test_target(void **st) {
    shx_s3_target t;
    char *env1[] = {"AWS_REGION=eu-west-1", "AWS_DEFAULT_REGION=us-west-2", NULL};
    assert_int_equal(shx_s3_target_choose(env1, NULL, "bucket", &t, err, sizeof err), 0);
    assert_string_equal(t.region, "eu-west-1");
    assert_string_equal(t.endpoint, "https://s3.eu-west-1.amazonaws.com");
    assert_int_equal(t.path_style, 0);
    char *u = shx_s3_request_url(&t, "bucket", "a b/c", NULL);
    assert_string_equal(u, "https://bucket.s3.eu-west-1.amazonaws.com/a%20b/c");
    free(u);
    shx_s3_target_free(&t);
    /* the hyperparameter first; a bucket with dots goes path-style on AWS */
    assert_int_equal(shx_s3_target_choose(env1, "ap-south-1", "my.bucket", &t, err, sizeof err), 0);
    assert_string_equal(t.region, "ap-south-1");
    assert_int_equal(t.path_style, 1);
    u = shx_s3_request_url(&t, "my.bucket", "k", "uploads=");
    assert_string_equal(u, "https://s3.ap-south-1.amazonaws.com/my.bucket/k?uploads=");
    free(u);
    shx_s3_target_free(&t);
    char *env2[] = {"AWS_DEFAULT_REGION=us-west-2", "AWS_ENDPOINT_URL=http://other:1", "AWS_ENDPOINT_URL_S3=http://s3:2",
                    "S3_ENDPOINT_URL=http://127.0.0.1:9000/", NULL};
    assert_int_equal(shx_s3_target_choose(env2, "", "bucket", &t, err, sizeof err), 0);
    assert_string_equal(t.region, "us-west-2");
    assert_string_equal(t.endpoint, "http://127.0.0.1:9000");
    assert_string_equal(t.endpoint_var, "S3_ENDPOINT_URL");
    assert_int_equal(t.path_style, 1);
    u = shx_s3_request_url(&t, "bucket", "x+y", NULL);
    assert_string_equal(u, "http://127.0.0.1:9000/bucket/x%2By");
    free(u);
    shx_s3_target_free(&t);
    char *env3[] = {"AWS_ENDPOINT_URL=http://other:1", "AWS_ENDPOINT_URL_S3=http://s3:2", NULL};
    assert_int_equal(shx_s3_target_choose(env3, NULL, "bucket", &t, err, sizeof err), 0);
    assert_string_equal(t.endpoint, "http://s3:2");
    assert_string_equal(t.region, "us-east-1");
    shx_s3_target_free(&t);
    char *env4[] = {"S3_ENDPOINT_URL=127.0.0.1:9000", NULL};
    assert_int_equal(shx_s3_target_choose(env4, NULL, "bucket", &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "S3_ENDPOINT_URL=127.0.0.1:9000"));
    char *env5[] = {"AWS_REGION=us-east-1;x", NULL};
    assert_int_equal(shx_s3_target_choose(env5, NULL, "bucket", &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "AWS_REGION"));
    char *env6[] = {"AWS_REGION=cn-north-1", NULL};
    assert_int_equal(shx_s3_target_choose(env6, NULL, "bucket", &t, err, sizeof err), 0);
    assert_string_equal(t.endpoint, "https://s3.cn-north-1.amazonaws.com.cn");
    shx_s3_target_free(&t);
}

static void test_creds_parse(void **st) {
    shx_s3_creds c;
    assert_int_equal(shx_s3_creds_parse("{\"AccessKeyId\":\"AKIDX\",\"SecretAccessKey\":\"sek\",\"Token\":\"tok\","
                                        "\"Expiration\":\"2026-11-30T05:00:00Z\",\"RoleArn\":\"r\"}",
                                        &c, err, sizeof err), 0);
    assert_string_equal(c.access_key, "AKIDX");
    assert_string_equal(c.secret_key, "sek");
    assert_string_equal(c.token, "tok");
    assert_int_equal((long long)c.expiration, 1796014800LL);
    shx_s3_creds_free(&c);
    /* an empty token is no token; no Expiration is no expiry */
    assert_int_equal(shx_s3_creds_parse("{\"AccessKeyId\":\"a:b\",\"SecretAccessKey\":\"s\",\"Token\":\"\"}", &c, err,
                                        sizeof err), 0);
    assert_null(c.token);
    assert_int_equal((long long)c.expiration, 0);
    shx_s3_creds_free(&c);
    assert_int_equal(shx_s3_creds_parse("{\"AccessKeyId\":\"a\"}", &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "SecretAccessKey"));
    assert_int_equal(shx_s3_creds_parse("{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"AccessKeyId\":\"a\","
                                        "\"SecretAccessKey\":\"topsecret\"}", &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "AssumeRoleUnauthorizedAccess"));
    assert_null(strstr(err, "topsecret"));
    assert_int_equal(shx_s3_creds_parse("{\"AccessKeyId\":\"a\",\"SecretAccessKey\":\"topsecret\",\"Expiration\":"
                                        "\"tomorrow\"}", &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "Expiration"));
    assert_null(strstr(err, "topsecret"));
    assert_int_equal(shx_s3_creds_parse("not json", &c, err, sizeof err), -1);
    assert_int_equal((long long)shx_s3_parse_time("2026-11-30T05:00:00.123Z"), 1796014800LL);
    assert_int_equal((long long)shx_s3_parse_time("2026-11-30 05:00:00"), -1);
}

static void test_full_uri(void **st) {
    assert_true(shx_s3_full_uri_allowed("http://127.0.0.1:8080/creds"));
    assert_true(shx_s3_full_uri_allowed("http://127.3.4.5/creds"));
    assert_true(shx_s3_full_uri_allowed("http://localhost/creds"));
    assert_true(shx_s3_full_uri_allowed("http://[::1]:80/creds"));
    assert_true(shx_s3_full_uri_allowed("http://169.254.170.2/v2/creds"));
    assert_true(shx_s3_full_uri_allowed("http://169.254.170.23/v1/credentials"));
    assert_true(shx_s3_full_uri_allowed("http://[fd00:ec2::23]/v1/credentials"));
    assert_true(shx_s3_full_uri_allowed("https://creds.example.com/x"));
    assert_false(shx_s3_full_uri_allowed("http://10.0.0.1/creds"));
    assert_false(shx_s3_full_uri_allowed("http://127.0.0.1.evil.com/creds"));
    assert_false(shx_s3_full_uri_allowed("http://user@10.0.0.1/creds"));
    assert_false(shx_s3_full_uri_allowed("ftp://127.0.0.1/creds"));
}

static void test_xml_tag(void **st) {
    const char *x = "<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>a &amp; b &lt;c&gt;</Message></Error>";
    char *c = shx_s3_xml_tag(x, "Code");
    assert_string_equal(c, "NoSuchKey");
    free(c);
    c = shx_s3_xml_tag(x, "Message");
    assert_string_equal(c, "a & b <c>");
    free(c);
    assert_null(shx_s3_xml_tag(x, "UploadId"));
    assert_null(shx_s3_xml_tag(NULL, "Code"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),  cmocka_unit_test(test_uri_encode), cmocka_unit_test(test_canonical_query),
        cmocka_unit_test(test_target),     cmocka_unit_test(test_creds_parse), cmocka_unit_test(test_full_uri),
        cmocka_unit_test(test_xml_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
