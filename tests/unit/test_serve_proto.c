/* Frames between the serve front and its workers: round trips, EOF, deadlines, fd passing, error bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve/proto.h"

static void pair(int sv[2]) {
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static void test_round_trip(void **st) {
    int sv[2];
    pair(sv);
    const char *s[SHX_FRAME_NSTR] = {"text/csv", NULL, "a=b", "model-1"};
    assert_int_equal(shx_frame_send(sv[0], SHX_FR_INVOKE, 200, -7, 12345, s, "1,2\n3,4", 7), 0);
    shx_frame f;
    assert_int_equal(shx_frame_recv(sv[1], &f, shx_now_ms() + 1000), 0);
    assert_int_equal(f.type, SHX_FR_INVOKE);
    assert_int_equal(f.a, 200);
    assert_int_equal(f.b, -7);
    assert_int_equal(f.c, 12345);
    assert_string_equal(f.s[0], "text/csv");
    assert_string_equal(f.s[1], "");
    assert_string_equal(f.s[2], "a=b");
    assert_string_equal(f.s[3], "model-1");
    assert_int_equal(f.body_len, 7);
    assert_memory_equal(f.body, "1,2\n3,4", 7);
    shx_frame_free(&f);
    close(sv[0]);
    close(sv[1]);
}

static void test_large_body_and_no_strings(void **st) {
    int sv[2];
    pair(sv);
    size_t n = 3u << 20;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (char)(i * 7);
    if (fork() == 0) {
        close(sv[1]);
        _exit(shx_frame_send(sv[0], SHX_FR_REPLY, 413, 0, 0, NULL, big, n) ? 1 : 0);
    }
    close(sv[0]);
    shx_frame f;
    assert_int_equal(shx_frame_recv(sv[1], &f, -1), 0);
    assert_int_equal(f.body_len, n);
    assert_memory_equal(f.body, big, n);
    assert_string_equal(f.s[0], "");
    shx_frame_free(&f);
    free(big);
    close(sv[1]);
}

static void test_eof_and_truncation(void **st) {
    int sv[2];
    pair(sv);
    close(sv[0]);
    shx_frame f;
    assert_int_equal(shx_frame_recv(sv[1], &f, -1), -1);
    assert_int_equal(errno, 0);
    close(sv[1]);

    pair(sv);
    const char junk[10] = "garbage!!";
    assert_int_equal(write(sv[0], junk, sizeof junk), (ssize_t)sizeof junk);
    close(sv[0]);
    assert_int_equal(shx_frame_recv(sv[1], &f, -1), -1); /* a header cut short is EOF, not a frame */
    close(sv[1]);
}

static void test_bad_magic(void **st) {
    int sv[2];
    pair(sv);
    char zeros[64] = {0};
    assert_int_equal(write(sv[0], zeros, sizeof zeros), (ssize_t)sizeof zeros);
    shx_frame f;
    assert_int_equal(shx_frame_recv(sv[1], &f, -1), -1);
    assert_int_equal(errno, EPROTO);
    close(sv[0]);
    close(sv[1]);
}

static void test_deadline(void **st) {
    int sv[2];
    pair(sv);
    shx_frame f;
    int64_t t0 = shx_now_ms();
    assert_int_equal(shx_frame_recv(sv[1], &f, t0 + 100), -2);
    assert_true(shx_now_ms() - t0 >= 100);
    close(sv[0]);
    close(sv[1]);
}

static void test_fd_passing(void **st) {
    int sv[2], p[2];
    pair(sv);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(shx_send_fd(sv[0], p[1], 3, 9), 0);
    int fd;
    int32_t slot, gen;
    assert_int_equal(shx_recv_fd(sv[1], &fd, &slot, &gen), 0);
    assert_int_equal(slot, 3);
    assert_int_equal(gen, 9);
    assert_int_equal(write(fd, "x", 1), 1);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    assert_int_equal(c, 'x');
    close(fd), close(p[0]), close(p[1]), close(sv[0]);
    assert_int_equal(shx_recv_fd(sv[1], &fd, &slot, &gen), -1); /* peer gone */
    close(sv[1]);
}

static void test_json_error(void **st) {
    char *j = shx_json_error(415, "type \"x/y\"\nnot\tok \xff");
    assert_string_equal(j, "{\"code\":415,\"type\":\"UnsupportedMediaType\",\"message\":\"type \\\"x/y\\\"\\nnot\\tok ?\"}");
    free(j);
    assert_string_equal(shx_http_reason(504), "GatewayTimeout");
    assert_string_equal(shx_http_reason(599), "ServerError");
}

/* Several frames per recv(), one cut in two, and one larger than the reader's first buffer. */
static void test_reader_batches(void **st) {
    int sv[2];
    pair(sv);
    shx_buf out = {0};
    const char *s3[SHX_FRAME_NSTR] = {"a", "", "ccc", NULL};
    for (int i = 0; i < 3; i++) shx_frame_encode(&out, SHX_FR_REPLY, i, 0, 0, s3, "xyz", (size_t)i);
    size_t big = 200 * 1024;
    char *body = malloc(big);
    for (size_t i = 0; i < big; i++) body[i] = (char)(i * 13);
    shx_frame_encode(&out, SHX_FR_INVOKE, 3, 0, 0, NULL, body, big);
    size_t first = out.len - big / 2;
    if (fork() == 0) {
        close(sv[1]);
        ssize_t w1 = write(sv[0], out.p, first);
        usleep(50000);
        ssize_t w2 = write(sv[0], out.p + first, out.len - first);
        _exit(w1 == (ssize_t)first && w2 == (ssize_t)(out.len - first) ? 0 : 1);
    }
    close(sv[0]);
    shx_frame_reader r = {0};
    shx_frame f;
    int got = 0;
    while (got < 4) {
        int n;
        while ((n = shx_frame_reader_next(&r, &f)) == 1) {
            assert_int_equal(f.a, got);
            assert_null(f.mem);
            if (got < 3) {
                assert_int_equal(f.type, SHX_FR_REPLY);
                assert_string_equal(f.s[0], "a");
                assert_string_equal(f.s[1], "");
                assert_string_equal(f.s[2], "ccc");
                assert_string_equal(f.s[3], "");
                assert_int_equal(f.body_len, (size_t)got);
                assert_memory_equal(f.body, "xyz", f.body_len);
            } else {
                assert_int_equal(f.type, SHX_FR_INVOKE);
                assert_int_equal(f.body_len, big);
                assert_memory_equal(f.body, body, big);
            }
            got++;
        }
        assert_int_equal(n, 0);
        if (got < 4) assert_true(shx_frame_reader_fill(&r, sv[1], 0) > 0);
    }
    assert_int_equal(shx_frame_reader_fill(&r, sv[1], 0), 0); /* EOF */
    assert_int_equal(errno, 0);
    assert_int_equal(shx_frame_reader_fill(&r, sv[1], MSG_DONTWAIT), 0);
    shx_frame_reader_free(&r);
    close(sv[1]);

    /* garbage is a protocol error, not a frame */
    shx_frame_reader g = {0};
    pair(sv);
    char zeros[64] = {0};
    assert_int_equal(write(sv[0], zeros, sizeof zeros), (ssize_t)sizeof zeros);
    assert_true(shx_frame_reader_fill(&g, sv[1], MSG_DONTWAIT) == (ssize_t)sizeof zeros);
    assert_int_equal(shx_frame_reader_next(&g, &f), -1);
    assert_int_equal(errno, EPROTO);
    shx_frame_reader_free(&g);
    close(sv[0]), close(sv[1]);
    /* a frame sent with shx_frame_send reads the same through the reader */
    pair(sv);
    const char *s1[SHX_FRAME_NSTR] = {"text/csv", NULL, NULL, "m"};
    assert_int_equal(shx_frame_send(sv[0], SHX_FR_INVOKE, 1, 2, 3, s1, "b", 1), 0);
    assert_true(shx_frame_reader_fill(&g, sv[1], 0) > 0);
    assert_int_equal(shx_frame_reader_next(&g, &f), 1);
    assert_string_equal(f.s[0], "text/csv");
    assert_string_equal(f.s[3], "m");
    assert_int_equal(f.c, 3);
    shx_frame_reader_free(&g);
    close(sv[0]), close(sv[1]);
    free(body);
    shx_buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_large_body_and_no_strings),
        cmocka_unit_test(test_eof_and_truncation), cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_deadline),    cmocka_unit_test(test_fd_passing),
        cmocka_unit_test(test_json_error),  cmocka_unit_test(test_reader_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
