/* output/success and output/failure (contract section 5) and the ErrorMessage (see failure.h). */
#include "supervisor/failure.h"
#include "core/atomicfile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "supervisor/oom.h"
#include "core/util.h"

#define CMD_MAX 300 /* bytes of the command line in the failure file; the rest goes to ErrorMessage */

/* ---- UTF-8 cutting (the text is already valid UTF-8) ------------------------------------------------------ */

static int is_cont(unsigned char c) {
    return (c & 0xC0) == 0x80;
}
/* The longest prefix of s[0..n) that is at most max bytes and ends on a code point boundary. */
static size_t cut_front(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    size_t l = max;
    while (l > 0 && is_cont((unsigned char)s[l])) l--;
    return l;
}
/* The start of the longest suffix of s[0..n) that is at most max bytes and starts on a code point. */
static size_t cut_back(const char *s, size_t n, size_t max) {
    if (n <= max) return 0;
    size_t st = n - max;
    while (st < n && is_cont((unsigned char)s[st])) st++;
    return st;
}

/* ---- the exception line ---------------------------------------------------------------------------------- */

typedef struct line {
    const char *p;
    size_t n;
} line;

static int starts_with(const line *l, const char *pfx) {
    size_t k = strlen(pfx);
    return l->n >= k && !memcmp(l->p, pfx, k);
}
static int contains(const line *l, const char *needle, int icase) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= l->n; i++)
        if (icase ? !strncasecmp(l->p + i, needle, k) : !memcmp(l->p + i, needle, k)) return 1;
    return 0;
}

/* "ValueError: ...", "torch.cuda.OutOfMemoryError: ...", "KeyboardInterrupt", "Exception: ..." at column 0. */
static int python_exception(const line *l) {
    size_t i = 0;
    if (!l->n || !(isalpha((unsigned char)l->p[0]) || l->p[0] == '_')) return 0;
    while (i < l->n && (isalnum((unsigned char)l->p[i]) || l->p[i] == '_' || l->p[i] == '.')) i++;
    if (i < l->n && l->p[i] != ':') return 0;
    static const char *const ends[] = {"Error", "Exception", "Interrupt", "Exit", "Fault", NULL};
    for (size_t k = 0; ends[k]; k++) {
        size_t e = strlen(ends[k]);
        if (i >= e && !memcmp(l->p + i - e, ends[k], e)) return 1;
    }
    return 0;
}

/* Shell and C-style error lines: "Killed", "Segmentation fault", "foo.c:3: error: ...", "panic: ..." */
static int other_error(const line *l) {
    static const char *const cs[] = {"Killed",  "Segmentation fault", "Aborted",        "Bus error",
                                     "terminate called", "core dumped", "Floating point exception",
                                     "panic:",  "Traceback", NULL};
    for (size_t k = 0; cs[k]; k++)
        if (contains(l, cs[k], 0)) return 1;
    return contains(l, "error:", 1) || contains(l, "fatal:", 1) || starts_with(l, "ERROR") ||
           starts_with(l, "FATAL");
}

/* Index of the most useful line, or -1. */
static long find_exception(const line *ls, size_t n) {
    /* 1. the exception that ends the last Python traceback */
    for (size_t i = n; i-- > 0;) {
        if (!starts_with(&ls[i], "Traceback (most recent call last):")) continue;
        for (size_t j = i + 1; j < n; j++) {
            const line *l = &ls[j];
            if (l->n && l->p[0] != ' ' && l->p[0] != '\t' && (python_exception(l) || memchr(l->p, ':', l->n)))
                return (long)j;
        }
        break;
    }
    /* 2. the last line shaped like a Python exception */
    for (size_t i = n; i-- > 0;)
        if (python_exception(&ls[i])) return (long)i;
    /* 3. the last shell or C-style error line */
    for (size_t i = n; i-- > 0;)
        if (other_error(&ls[i]) && !starts_with(&ls[i], "Traceback")) return (long)i;
    return -1;
}

/* smhost's own INFO/DEBUG lines ("2026-11-22 02:11:35,123 smhost INFO     ...", from the job process before the
 * program starts) are not the program's error output. */
static int host_chatter(const char *p, size_t n) {
    return n > 36 && p[4] == '-' && p[10] == ' ' && p[19] == ',' &&
           (!memcmp(p + 23, " smhost INFO ", 13) || !memcmp(p + 23, " smhost DEBUG ", 14));
}

/* Remove ANSI escape sequences (coloured logs) in place; NUL and other control bytes become '?'. */
static size_t sanitize(char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0x1b && i + 1 < n && s[i + 1] == '[') {
            size_t j = i + 2;
            while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == ';' || s[j] == '?')) j++;
            if (j < n && ((s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= 'a' && s[j] <= 'z'))) {
                i = j;
                continue;
            }
        }
        if (c == '\r') c = '\n'; /* progress bars: each redraw becomes a line */
        else if (c < 0x20 && c != '\n' && c != '\t') c = '?';
        else if (c == 0x7f) c = '?';
        s[o++] = (char)c;
    }
    s[o] = 0;
    return o;
}

char *shx_error_message_from_tail(const char *tail, size_t len, size_t budget) {
    if (!tail || !len || !budget) return shx_xstrdup("");
    char *buf = shx_xstrndup(tail, len);
    for (size_t i = 0; i < len; i++)
        if (!buf[i]) buf[i] = '?';
    len = sanitize(buf, len);
    shx_utf8_clean(buf, len); /* invalid sequences -> '?' (same length) */
    shx_redact(buf);
    len = strlen(buf);

    /* Split into non-blank lines. */
    size_t cap = 64, n = 0;
    line *ls = shx_xmalloc(cap * sizeof *ls);
    for (char *p = buf, *end = buf + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t')) l--;
        size_t k = 0;
        while (k < l && (p[k] == ' ' || p[k] == '\t')) k++;
        if (k < l && !host_chatter(p, l)) {
            if (n == cap) ls = shx_xrealloc(ls, (cap *= 2) * sizeof *ls);
            ls[n++] = (line){p, l};
        }
        p = nl ? nl + 1 : end;
    }

    shx_buf out = {0};
    long ex = find_exception(ls, n);
    size_t left = budget;
    if (ex >= 0) {
        const line *e = &ls[ex];
        /* The exception comes first; leave room for context when it is huge. */
        size_t max = n > 1 ? budget * 3 / 4 : budget;
        if (e->n <= max) {
            shx_buf_add(&out, e->p, e->n);
        } else if (max > 3) {
            shx_buf_add(&out, e->p, cut_front(e->p, e->n, max - 3));
            shx_buf_adds(&out, "...");
        }
        left = budget > out.len ? budget - out.len : 0;
    }
    /* Then as many of the last lines as fit, oldest first. */
    size_t first = n, used = 0;
    for (size_t i = n; i-- > 0;) {
        if ((long)i == ex) continue;
        size_t need = ls[i].n + 1; /* with its newline */
        if (used + need > left) break;
        used += need;
        first = i;
    }
    for (size_t i = first; i < n; i++) {
        if ((long)i == ex) continue;
        if (out.len) shx_buf_addc(&out, '\n');
        shx_buf_add(&out, ls[i].p, ls[i].n);
    }
    if (first == n && n && left > 5) {
        /* Not even the last line fits whole: keep its end. */
        size_t last = n - 1;
        if ((long)last == ex && n > 1) last--;
        if ((long)last != ex) {
            size_t room = left - (out.len ? 1 : 0) - 3;
            size_t st = cut_back(ls[last].p, ls[last].n, room);
            if (out.len) shx_buf_addc(&out, '\n');
            shx_buf_adds(&out, "...");
            shx_buf_add(&out, ls[last].p + st, ls[last].n - st);
        }
    }
    free(ls);
    free(buf);
    char *r = shx_buf_steal(&out);
    shx_utf8_clean(r, budget);
    return r;
}

/* ---- the failure file ------------------------------------------------------------------------------------- */

/* The layout's first lines, for every failure smhost reports: "<Kind>:" then the text. */
static void failure_head(shx_buf *b, const char *kind, const char *text) {
    shx_buf_printf(b, "%s:\n%s", kind, text ? text : "");
}

int shx_write_failure_reason(const char *output_dir, const char *kind, const char *msg) {
    shx_buf b = {0};
    failure_head(&b, kind, msg);
    int rc = shx_write_failure(output_dir, b.p);
    shx_buf_free(&b);
    return rc;
}

/* kind:\n<pre>ErrorMessage "<message>"\nCommand "<command>"\n, the message cut so the whole fits in
 * SHX_FAILURE_MAX bytes.  msg_head is put before the message taken from `src` (a stderr tail or a reason). */
static char *compose(const char *kind, const char *pre, const char *msg_head, const char *src, size_t src_len,
                     const char *command, int with_message, int verbatim) {
    shx_buf head = {0}, tailpart = {0};
    failure_head(&head, kind, pre);
    if (command && *command) {
        char *c = shx_xstrdup(command);
        shx_redact(c);
        size_t cl = strlen(c);
        if (cl > CMD_MAX) {
            cl = cut_front(c, cl, CMD_MAX - 3);
            memcpy(c + cl, "...", 4);
        }
        shx_buf_printf(&tailpart, "Command \"%s\"\n", c);
        free(c);
    }
    char *result;
    if (!with_message) {
        shx_buf_add(&head, tailpart.p ? tailpart.p : "", tailpart.len);
        result = shx_buf_steal(&head);
    } else {
        size_t fixed = head.len + tailpart.len + strlen("ErrorMessage \"\"\n");
        size_t budget = fixed < SHX_FAILURE_MAX ? SHX_FAILURE_MAX - fixed : 0;
        shx_buf msg = {0};
        if (msg_head && *msg_head) {
            char *h = shx_xstrdup(msg_head);
            size_t hl = shx_utf8_clean(h, budget);
            shx_buf_add(&msg, h, hl);
            free(h);
        }
        size_t left = budget > msg.len + 1 ? budget - msg.len - 1 : 0;
        if (src && src_len && left) {
            char *m;
            if (verbatim && src_len <= left) { /* a reason the job process gave: as it is, when it fits */
                m = shx_xstrndup(src, src_len);
                shx_utf8_clean(m, left);
                shx_redact(m);
            } else {
                m = shx_error_message_from_tail(src, src_len, left);
            }
            if (*m) {
                if (msg.len) shx_buf_addc(&msg, '\n');
                shx_buf_adds(&msg, m);
            }
            free(m);
        }
        shx_buf_printf(&head, "ErrorMessage \"%s\"\n%s", msg.p ? msg.p : "", tailpart.p ? tailpart.p : "");
        shx_buf_free(&msg);
        result = shx_buf_steal(&head);
    }
    shx_buf_free(&tailpart);
    shx_buf_free(&head);
    return result;
}

static const char *phase_word(int phase) {
    switch (phase) {
    case SHX_PHASE_PLUGIN_LOAD: return "while loading";
    case SHX_PHASE_PLUGIN_INIT: return "during init";
    case SHX_PHASE_RUNNER: return "while starting the program";
    default: return "";
    }
}

char *shx_failure_text(const shx_sup_result *r, const shx_status_page *page, int grace_seconds) {
    char sn[32], pre[512], head[1024];
    const char *cmd = page ? page->command : NULL;
    const char *tail = r->stderr_tail;
    size_t tl = r->stderr_tail_len;

    if (r->stop_signal || r->timed_out) {
        const char *why = r->timed_out ? "the job reached max_run_seconds (smhost configuration): smhost sent SIGTERM"
                                       : NULL;
        char what[160];
        if (why) snprintf(what, sizeof what, "%s", why);
        else snprintf(what, sizeof what, "Stopped by %s (StopTrainingJob, spot interruption or MaxRuntime)",
                      shx_signal_name(r->stop_signal, sn, sizeof sn));
        if (r->killed_after_grace)
            snprintf(pre, sizeof pre, "%s; the program did not exit within the %d s grace period and was killed "
                                      "with SIGKILL\nExitCode %d\n", what, grace_seconds, r->exit_code);
        else
            snprintf(pre, sizeof pre, "%s; the program exited within the %d s grace period\nExitCode %d\n", what,
                     grace_seconds, r->exit_code);
        return compose(r->timed_out && !r->stop_signal ? "MaxRunTimeExceeded" : "JobStopped", pre, NULL, tail, tl,
                       cmd, r->exit_code != 0, 0);
    }
    if (r->oom_killed) {
        uint64_t lim = shx_memory_limit();
        if (lim)
            snprintf(head, sizeof head, "The program was killed by the kernel's out-of-memory killer (cgroup memory "
                                        "limit %" PRIu64 " bytes)", lim);
        else
            snprintf(head, sizeof head, "The program was killed by the kernel's out-of-memory killer (no cgroup "
                                        "memory limit: the machine ran out of memory)");
        snprintf(pre, sizeof pre, "ExitCode %d\n", r->exit_code);
        return compose("OutOfMemoryError", pre, head, tail, tl, cmd, 1, 0);
    }
    int phase = page ? page->phase : SHX_PHASE_PROGRAM;
    if (r->signo && phase != SHX_PHASE_PROGRAM) {
        snprintf(pre, sizeof pre, "ExitCode %d\n", r->exit_code);
        if (phase >= SHX_PHASE_PLUGIN_LOAD && phase <= SHX_PHASE_RUNNER && page->plugin[0]) {
            snprintf(head, sizeof head, "plugin '%s' (%s) crashed with %s %s", page->plugin,
                     page->plugin_path[0] ? page->plugin_path : "built in", shx_signal_name(r->signo, sn, sizeof sn),
                     phase_word(phase));
            return compose("PluginError", pre, head, tail, tl, cmd, 1, 0);
        }
        snprintf(head, sizeof head, "smhost's job process was killed by %s before the program started",
                 shx_signal_name(r->signo, sn, sizeof sn));
        return compose("HostError", pre, head, tail, tl, cmd, 1, 0);
    }
    if (page && page->reason_set) {
        snprintf(pre, sizeof pre, "ExitCode %d\n", r->exit_code);
        return compose(page->reason_kind[0] ? page->reason_kind : "AlgorithmError", pre, NULL, page->reason,
                       strnlen(page->reason, sizeof page->reason), cmd, 1, 1);
    }
    if (r->signo) {
        const char *desc = sigdescr_np(r->signo);
        snprintf(pre, sizeof pre, "ExitCode %d\nSignal %s (%s) killed the program\n", r->exit_code,
                 shx_signal_name(r->signo, sn, sizeof sn), desc ? desc : "unknown signal");
    } else {
        snprintf(pre, sizeof pre, "ExitCode %d\n", r->exit_code);
    }
    return compose("ExecuteUserScriptError", pre, NULL, tail, tl, cmd, 1, 0);
}

int shx_write_success(const char *output_dir) {
    int rc = shx_mkdirs(output_dir, 0755);
    char *p = shx_path_join(output_dir, "success");
    if (rc == 0) rc = shx_write_file(p, "", 0, 0);
    if (rc < 0) shx_error("cannot write %s: %s", p, strerror(-rc));
    free(p);
    return rc < 0 ? -1 : 0;
}

int shx_success_prepare(const char *output_dir) {
    return output_dir ? open(output_dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644) : -1;
}

void shx_success_discard(int fd) {
    if (fd >= 0) close(fd);
}

int shx_write_success_prepared(const char *output_dir, int fd) {
    if (fd >= 0) {
        char proc[64], *p = shx_path_join(output_dir, "success");
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        futimens(fd, NULL); /* its times are the job's end, as a file written now would have */
        /* linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; the /proc link does not.  Anything in the way
         * (a success file the program wrote, no /proc, output/ gone) takes the usual path below. */
        int linked = linkat(AT_FDCWD, proc, AT_FDCWD, p, AT_SYMLINK_FOLLOW) == 0;
        close(fd);
        free(p);
        if (linked) return 0;
    }
    return shx_write_success(output_dir);
}

int shx_write_failure(const char *output_dir, const char *text) {
    int rc = shx_mkdirs(output_dir, 0755);
    char *p = shx_path_join(output_dir, "failure");
    if (rc == 0 && shx_is_file(p)) {
        shx_info("%s exists (written by the program): leaving it as it is", p);
        free(p);
        return 1;
    }
    char *t = shx_xstrdup(text ? text : "");
    shx_redact(t);
    size_t n = shx_utf8_clean(t, SHX_FAILURE_MAX);
    if (rc == 0) rc = shx_write_file_atomic_excl(p, t, n); /* a full disk must not leave an empty failure */
    int ret = 0;
    if (rc == -EEXIST) {
        ret = 1;
    } else if (rc < 0) {
        shx_error("cannot write %s: %s; the failure reason was: %.4096s", p, strerror(-rc), t);
        ret = -1;
    }
    free(t);
    free(p);
    return ret;
}
