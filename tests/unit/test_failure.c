/* Unit tests for failure.c and redact.c: ErrorMessage extraction, the 1024-byte budget, UTF-8, redaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/failure.h"
#include "supervisor/supervisor.h"
#include "core/util.h"

/* Is s valid UTF-8 (strict: no overlongs, no surrogates)? */
static int valid_utf8(const char *s) {
    char *c = shx_xstrdup(s);
    size_t before = strlen(c);
    shx_utf8_clean(c, before);
    int ok = strcmp(c, s) == 0;
    free(c);
    return ok;
}

static char *msg(const char *tail, size_t budget) {
    return shx_error_message_from_tail(tail, strlen(tail), budget);
}

static void test_exception_line_first(void **st) {
    (void)st;
    const char *tail = "epoch 1 loss 0.5\n"
                       "Traceback (most recent call last):\n"
                       "  File \"train.py\", line 3, in <module>\n"
                       "    raise ValueError(\"learning rate must be positive\")\n"
                       "ValueError: learning rate must be positive\n";
    char *m = msg(tail, 1024);
    assert_true(strncmp(m, "ValueError: learning rate must be positive\n", 43) == 0);
    assert_non_null(strstr(m, "Traceback (most recent call last):"));
    assert_non_null(strstr(m, "epoch 1 loss 0.5"));
    /* the exception is not repeated at the end */
    assert_null(strstr(m + 10, "ValueError: learning rate"));
    free(m);
}

static void test_chained_and_dotted(void **st) {
    (void)st;
    const char *tail = "Traceback (most recent call last):\n  File \"a.py\", line 1\nKeyError: 'x'\n\n"
                       "During handling of the above exception, another exception occurred:\n\n"
                       "Traceback (most recent call last):\n  File \"a.py\", line 4\n"
                       "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
                       "some cleanup output\n";
    char *m = msg(tail, 1024);
    assert_true(strncmp(m, "torch.cuda.OutOfMemoryError: CUDA out of memory.", 48) == 0);
    free(m);
    m = msg("starting\nException\n", 100);
    assert_string_equal(m, "Exception\nstarting");
    free(m);
}

static void test_shell_and_c_errors(void **st) {
    (void)st;
    char *m = msg("loading\ntrain.sh: line 3:  4242 Killed                  python train.py\ndone?\n", 1024);
    assert_true(strncmp(m, "train.sh: line 3:  4242 Killed", 30) == 0);
    free(m);
    m = msg("step 1\nSegmentation fault (core dumped)\n", 1024);
    assert_true(strncmp(m, "Segmentation fault (core dumped)\nstep 1", 39) == 0);
    free(m);
    m = msg("cc -c x.c\nx.c:3:5: error: expected ';' before '}' token\n1 error generated.\n", 1024);
    assert_true(strncmp(m, "x.c:3:5: error: expected ';'", 28) == 0);
    free(m);
    /* nothing error-like: just the last lines */
    m = msg("a\nb\nc\n", 1024);
    assert_string_equal(m, "a\nb\nc");
    free(m);
}

static void test_budget_keeps_last_lines(void **st) {
    (void)st;
    shx_buf b = {0};
    for (int i = 0; i < 500; i++) shx_buf_printf(&b, "line %03d of output\n", i);
    shx_buf_adds(&b, "RuntimeError: boom\n");
    char *m = shx_error_message_from_tail(b.p, b.len, 200);
    assert_true(strlen(m) <= 200);
    assert_true(strncmp(m, "RuntimeError: boom\n", 19) == 0);
    assert_non_null(strstr(m, "line 499 of output"));
    assert_null(strstr(m, "line 000"));
    free(m);
    shx_buf_free(&b);
}

static void test_budget_multibyte_boundary(void **st) {
    (void)st;
    /* Lines of 3-byte (U+20AC) and 4-byte (U+1F600) characters: every cut must land on a code point. */
    for (size_t budget = 20; budget < 80; budget++) {
        shx_buf b = {0};
        shx_buf_adds(&b, "ValueError: ");
        for (int i = 0; i < 40; i++) shx_buf_adds(&b, "\xe2\x82\xac");
        shx_buf_adds(&b, "\n");
        for (int i = 0; i < 40; i++) shx_buf_adds(&b, "\xf0\x9f\x98\x80");
        shx_buf_adds(&b, "\n");
        char *m = shx_error_message_from_tail(b.p, b.len, budget);
        assert_true(strlen(m) <= budget);
        assert_true(valid_utf8(m));
        assert_true(strncmp(m, "ValueError: ", 12) == 0);
        free(m);
        shx_buf_free(&b);
    }
}

static void test_invalid_utf8_replaced(void **st) {
    (void)st;
    const char raw[] = "bad \xff\xfe bytes \xc3\x28 and overlong \xc0\xaf and a NUL\0here\nOSError: \xed\xa0\x80 surrogate\n";
    char *m = shx_error_message_from_tail(raw, sizeof raw - 1, 1024);
    assert_true(valid_utf8(m));
    assert_true(strncmp(m, "OSError: ", 9) == 0);
    assert_non_null(strstr(m, "bad ?? bytes ?( and overlong ?? and a NUL?here"));
    free(m);
}

static void test_very_long_lines(void **st) {
    (void)st;
    /* A single 100 kB line (no newline) ending in a message: its end is kept. */
    size_t n = 100000;
    char *big = shx_xmalloc(n + 32);
    memset(big, 'x', n);
    strcpy(big + n, " the end");
    char *m = msg(big, 300);
    assert_true(strlen(m) <= 300);
    assert_true(strncmp(m, "...", 3) == 0);
    assert_non_null(strstr(m, "xxx the end"));
    free(m);
    /* A huge exception line is cut, leaving room for context. */
    memcpy(big, "ValueError: ", 12);
    char *tail = shx_xasprintf("context line\n%s\n", big);
    m = msg(tail, 400);
    assert_true(strlen(m) <= 400);
    assert_true(strncmp(m, "ValueError: xxx", 15) == 0);
    assert_non_null(strstr(m, "...\ncontext line"));
    free(m);
    free(tail);
    free(big);
}

static void test_host_info_lines_skipped(void **st) {
    (void)st;
    char *m = msg("2026-11-22 02:22:43,837 smhost INFO     Invoking the 'shell' runner for train.sh\n"
                  "real output\n"
                  "2026-11-22 02:22:43,900 smhost WARNING  something odd\n",
                  1024);
    assert_string_equal(m, "real output\n2026-11-22 02:22:43,900 smhost WARNING  something odd");
    free(m);
}

static void test_ansi_and_progress(void **st) {
    (void)st;
    char *m = msg("\x1b[31mERROR\x1b[0m: it broke\r 10%\r 20%\r", 1024);
    assert_true(strncmp(m, "ERROR: it broke\n", 16) == 0);
    assert_non_null(strstr(m, "20%"));
    assert_null(strchr(m, '\x1b'));
    free(m);
}

static void check_redact(const char *in, const char *want) {
    char *s = shx_xstrdup(in);
    shx_redact(s);
    assert_string_equal(s, want);
    assert_true(strlen(s) <= strlen(in));
    shx_redact(s); /* idempotent */
    assert_string_equal(s, want);
    free(s);
}

/* One rule for secret names: what the startup log masks is what failure text redacts after "name=". */
static void test_secret_names_one_rule(void **st) {
    (void)st;
    static const char *const secret[] = {"AWS_SECRET_ACCESS_KEY", "SecretAccessKey", "aws_session_token", "HF_TOKEN",
                                         "SLACK_TOKEN", "token", "db_password", "MYSQL_PASSWD", "WANDB_API_KEY",
                                         "apiKey", "client_secret", "private_key", "x-amz-signature",
                                         "x-amz-credential", "GOOGLE_APPLICATION_CREDENTIALS", "access_token", NULL};
    static const char *const plain[] = {"tokenizer", "max_token", "num_tokens", "eos_token", "pad_token", "lr",
                                        "keyboard", "monkey", "access_log", "SM_HPS", "secretary_count", NULL};
    for (size_t i = 0; secret[i]; i++) {
        if (!shx_secret_name(secret[i], strlen(secret[i]))) fail_msg("%s should be secret", secret[i]);
        char *t = shx_xasprintf("%s=hunter2xyz", secret[i]);
        shx_redact(t);
        if (strstr(t, "hunter2xyz")) fail_msg("failure text keeps the value of %s: %s", secret[i], t);
        free(t);
    }
    for (size_t i = 0; plain[i]; i++) {
        if (shx_secret_name(plain[i], strlen(plain[i]))) fail_msg("%s should not be secret", plain[i]);
        char *t = shx_xasprintf("%s=value42", plain[i]);
        shx_redact(t);
        if (!strstr(t, "value42")) fail_msg("failure text redacts the value of %s: %s", plain[i], t);
        free(t);
    }
}

static void test_redaction_vectors(void **st) {
    (void)st;
    check_redact("key AKIAIOSFODNN7EXAMPLE used", "key AKIA*** used");
    check_redact("ASIAY34FZKBOKMUTVV7A,", "ASIA***,");
    check_redact("NOTAKIAIOSFODNN7EXAMPLE", "NOTAKIAIOSFODNN7EXAMPLE"); /* inside a word: not a key id */
    check_redact("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                 "aws_secret_access_key=***");
    check_redact("AWS_SECRET_ACCESS_KEY = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\" next",
                 "AWS_SECRET_ACCESS_KEY = \"***\" next");
    check_redact("{\"SecretAccessKey\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\", \"x\": 1}",
                 "{\"SecretAccessKey\": \"***\", \"x\": 1}");
    check_redact("aws_session_token: IQoJb3JpZ2luX2VjEJr//////////wEaCXVz", "aws_session_token: ***");
    check_redact("DB_PASSWORD=hunter22 rest", "DB_PASSWORD=*** rest");
    check_redact("git clone https://user:s3cr3t@github.com/x/y.git", "git clone https://***@github.com/x/y.git");
    check_redact("https://ghp_abcdef@github.com", "https://***@github.com");
    check_redact("GET https://h/x?token=abcdef123&b=2", "GET https://h/x?token=***&b=2");
    check_redact("https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAX%2F2024"
                 "&X-Amz-Security-Token=FwoGZX&X-Amz-Signature=deadbeef01 done",
                 "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=***"
                 "&X-Amz-Security-Token=***&X-Amz-Signature=*** done");
    check_redact("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc\nnext", "Authorization: Bearer ***\nnext");
    check_redact("'Authorization': 'AWS4-HMAC-SHA256 Credential=AKIA/x, Signature=ab'",
                 "'Authorization': 'AWS4-HMAC-SHA256 ***'");
    check_redact("curl -H \"authorization: Bearer abc.def\" url", "curl -H \"authorization: Bearer ***\" url");
    check_redact("sent bearer abcdef to", "sent bearer *** to");
    /* ordinary text survives */
    check_redact("ValueError: learning rate must be positive (lr=-0.1, tokenizer: bpe, max_token=5)",
                 "ValueError: learning rate must be positive (lr=-0.1, tokenizer: bpe, max_token=5)");
    check_redact("https://example.com/path?q=1", "https://example.com/path?q=1");
    check_redact("", "");
    check_redact("pw=x password=ab", "pw=x password=**");
}

static void test_message_is_redacted(void **st) {
    (void)st;
    char *m = msg("connecting with aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
                  "botocore.exceptions.ClientError: AKIAIOSFODNN7EXAMPLE denied\n",
                  1024);
    assert_null(strstr(m, "wJalrXUtnFEMI"));
    assert_null(strstr(m, "IOSFODNN7EXAMPLE"));
    assert_true(strncmp(m, "botocore.exceptions.ClientError: AKIA*** denied", 47) == 0);
    free(m);
}

static shx_status_page *page_with(const char *command) {
    shx_status_page *p = shx_status_page_create();
    assert_non_null(p);
    p->phase = SHX_PHASE_PROGRAM;
    snprintf(p->command, sizeof p->command, "%s", command);
    return p;
}

static void test_failure_text_exit(void **st) {
    (void)st;
    shx_status_page *p = page_with("/bin/sh train.sh --lr 0.1");
    const char *tail = "Traceback (most recent call last):\n  File \"t.py\", line 1\nValueError: learning rate must be "
                       "positive\n";
    shx_sup_result r = {.exit_code = 3, .stderr_tail = (char *)tail, .stderr_tail_len = strlen(tail)};
    char *t = shx_failure_text(&r, p, 110);
    assert_true(strncmp(t, "ExecuteUserScriptError:\nExitCode 3\nErrorMessage \"ValueError: learning rate must be "
                           "positive\nTraceback",
                        94) == 0);
    assert_non_null(strstr(t, "\"\nCommand \"/bin/sh train.sh --lr 0.1\"\n"));
    free(t);
    munmap(p, sizeof *p);
}

static void test_failure_text_budget(void **st) {
    (void)st;
    shx_status_page *p = page_with("");
    memset(p->command, 'c', sizeof p->command - 1); /* a huge command line is cut too */
    shx_buf b = {0};
    for (int i = 0; i < 2000; i++) shx_buf_adds(&b, "\xe6\x97\xa5\xe6\x9c\xac ");
    shx_buf_adds(&b, "\nRuntimeError: \xf0\x9f\x98\x80\xf0\x9f\x98\x80 end\n");
    shx_sup_result r = {.exit_code = 1, .stderr_tail = b.p, .stderr_tail_len = b.len};
    char *t = shx_failure_text(&r, p, 110);
    assert_true(strlen(t) <= SHX_FAILURE_MAX);
    assert_true(valid_utf8(t));
    assert_non_null(strstr(t, "ErrorMessage \"RuntimeError: \xf0\x9f\x98\x80\xf0\x9f\x98\x80 end\n"));
    assert_non_null(strstr(t, "...\"\n"));
    assert_true(t[strlen(t) - 1] == '\n');
    free(t);
    shx_buf_free(&b);
    munmap(p, sizeof *p);
}

static void test_failure_text_signal_stop_oom(void **st) {
    (void)st;
    shx_status_page *p = page_with("/usr/bin/python3 train.py");
    shx_sup_result r = {.exit_code = 139, .signo = SIGSEGV};
    char *t = shx_failure_text(&r, p, 110);
    assert_non_null(strstr(t, "ExecuteUserScriptError:\nExitCode 139\nSignal SIGSEGV (Segmentation fault) killed"));
    free(t);

    shx_sup_result s = {.exit_code = 0, .stop_signal = SIGTERM};
    t = shx_failure_text(&s, p, 110);
    assert_true(strncmp(t, "JobStopped:\nStopped by SIGTERM", 30) == 0);
    assert_non_null(strstr(t, "exited within the 110 s grace period\nExitCode 0\n"));
    assert_null(strstr(t, "ErrorMessage"));
    free(t);
    s.exit_code = 137;
    s.signo = SIGKILL;
    s.killed_after_grace = 1;
    t = shx_failure_text(&s, p, 2);
    assert_non_null(strstr(t, "did not exit within the 2 s grace period and was killed with SIGKILL\nExitCode 137"));
    free(t);

    shx_sup_result to = {.exit_code = 143, .signo = SIGTERM, .timed_out = 1};
    t = shx_failure_text(&to, p, 5);
    assert_true(strncmp(t, "MaxRunTimeExceeded:\n", 20) == 0);
    assert_non_null(strstr(t, "max_run_seconds"));
    free(t);

    shx_sup_result o = {.exit_code = 137, .signo = SIGKILL, .oom_killed = 1};
    t = shx_failure_text(&o, p, 110);
    assert_true(strncmp(t, "OutOfMemoryError:\nExitCode 137\nErrorMessage \"The program was killed by the kernel's "
                           "out-of-memory killer (",
                        102) == 0);
    free(t);
    munmap(p, sizeof *p);
}

static void test_failure_text_plugin_crash_and_reason(void **st) {
    (void)st;
    shx_status_page *p = page_with("");
    p->phase = SHX_PHASE_PLUGIN_INIT;
    snprintf(p->plugin, sizeof p->plugin, "crashy");
    snprintf(p->plugin_path, sizeof p->plugin_path, "/usr/lib/smhost/plugins/crashy.so");
    shx_sup_result r = {.exit_code = 139, .signo = SIGSEGV};
    char *t = shx_failure_text(&r, p, 110);
    assert_non_null(strstr(t, "PluginError:\nExitCode 139\nErrorMessage \"plugin 'crashy' "
                              "(/usr/lib/smhost/plugins/crashy.so) crashed with SIGSEGV during init"));
    free(t);

    p->phase = SHX_PHASE_RUNNER;
    shx_status_set_reason(p, "ExecuteUserScriptError", "program 'train.sh' not found in /opt/ml/code\nnext line");
    shx_sup_result q = {.exit_code = 127};
    t = shx_failure_text(&q, p, 110);
    assert_string_equal(t, "ExecuteUserScriptError:\nExitCode 127\nErrorMessage \"program 'train.sh' not found in "
                           "/opt/ml/code\nnext line\"\n");
    free(t);
    munmap(p, sizeof *p);
}

static void test_write_failure_once(void **st) {
    (void)st;
    char dir[] = "/tmp/smhost-test-failure-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *out = shx_path_join(dir, "output");
    assert_int_equal(shx_write_failure(out, "First:\nsecret aws_secret_access_key=abcdefgh\n"), 0);
    assert_int_equal(shx_write_failure(out, "Second"), 1);
    char *f = shx_path_join(out, "failure"), *txt;
    size_t len;
    assert_int_equal(shx_read_file(f, &txt, &len), 0);
    assert_string_equal(txt, "First:\nsecret aws_secret_access_key=***\n");
    free(txt);
    /* The file is cut to the budget on a code point boundary. */
    unlink(f);
    shx_buf b = {0};
    for (int i = 0; i < 600; i++) shx_buf_adds(&b, "\xc3\xa9");
    assert_int_equal(shx_write_failure(out, b.p), 0);
    assert_int_equal(shx_read_file(f, &txt, &len), 0);
    assert_int_equal(len, 1024);
    assert_true(valid_utf8(txt));
    free(txt);
    shx_buf_free(&b);
    assert_int_equal(shx_write_success(out), 0);
    char *s = shx_path_join(out, "success");
    assert_true(shx_is_file(s));
    unlink(s);
    unlink(f);
    rmdir(out);
    rmdir(dir);
    free(s);
    free(f);
    free(out);
}

/* output/success made ahead (O_TMPFILE while the program runs): invisible until it is linked in, then an empty
 * 0644 file with a fresh mtime; a success file already there is truncated as before; a discarded one never shows. */
static void test_success_prepared(void **st) {
    (void)st;
    char dir[] = "/tmp/smhost-test-success-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *out = shx_path_join(dir, "output"), *s = shx_path_join(out, "success");
    assert_int_equal(shx_mkdirs(out, 0755), 0);
    mode_t old = umask(022);
    int fd = shx_success_prepare(out);
    if (fd < 0) skip(); /* a filesystem without O_TMPFILE: shx_write_success_prepared(-1) is shx_write_success */
    assert_true(shx_dir_is_empty(out));
    struct timespec backdate[2] = {{1000, 0}, {1000, 0}};
    assert_int_equal(futimens(fd, backdate), 0);
    assert_int_equal(shx_write_success_prepared(out, fd), 0);
    struct stat sb;
    assert_int_equal(stat(s, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0644);
    assert_int_equal(sb.st_size, 0);
    assert_true(sb.st_mtime > 1000);
    /* the program wrote its own: the usual path empties it */
    assert_int_equal(shx_write_file(s, "mine", 4, 0), 0);
    assert_int_equal(shx_write_success_prepared(out, shx_success_prepare(out)), 0);
    assert_int_equal(stat(s, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    unlink(s);
    shx_success_discard(shx_success_prepare(out));
    shx_success_discard(-1);
    assert_true(shx_dir_is_empty(out));
    umask(old);
    rmdir(out);
    rmdir(dir);
    free(s);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exception_line_first),
        cmocka_unit_test(test_chained_and_dotted),
        cmocka_unit_test(test_shell_and_c_errors),
        cmocka_unit_test(test_budget_keeps_last_lines),
        cmocka_unit_test(test_budget_multibyte_boundary),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_very_long_lines),
        cmocka_unit_test(test_ansi_and_progress),
        cmocka_unit_test(test_host_info_lines_skipped),
        cmocka_unit_test(test_redaction_vectors),
        cmocka_unit_test(test_secret_names_one_rule),
        cmocka_unit_test(test_message_is_redacted),
        cmocka_unit_test(test_failure_text_exit),
        cmocka_unit_test(test_failure_text_budget),
        cmocka_unit_test(test_failure_text_signal_stop_oom),
        cmocka_unit_test(test_failure_text_plugin_crash_and_reason),
        cmocka_unit_test(test_write_failure_once),
        cmocka_unit_test(test_success_prepared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
