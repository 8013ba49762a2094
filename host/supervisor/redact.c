/* Secret redaction for failure reasons (shx_redact, declared in failure.h).
 *
 * One left-to-right pass; every secret value becomes "***" (or as many '*' as it had characters when shorter),
 * so the text never grows and the pass can work in place.  What is recognised:
 *   - AWS access key ids: AKIA/ASIA/... followed by 16 upper-case letters or digits ("AKIA***")
 *   - values after labels such as aws_secret_access_key=, "SecretAccessKey": "...", AWS_SESSION_TOKEN=,
 *     password:, api_key=, client_secret= (quotes and spaces around ':' or '=' allowed)
 *   - Authorization: headers (the scheme word stays: "Authorization: Bearer ***") and "Bearer <token>"
 *   - credentials in URLs (https://user:pass@host becomes https://[stars]@host)
 *   - query parameters token=, access_token=, X-Amz-Signature=, X-Amz-Credential=, X-Amz-Security-Token=,
 *     Signature=, sig=, AWSAccessKeyId=, password=, api_key=
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "supervisor/failure.h"
#include "core/util.h"

static const char *const akid_prefixes[] = {"AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA",
                                            "ANPA", "ANVA", "ABIA", "ACCA", NULL};

/* Is a name secret?  The name is split into lower-case words at '_', '-', '.', other punctuation and camelCase
 * ("SecretAccessKey" -> secret access key).  It is secret when a word is secret/credential(s)/passw.../apikey/...,
 * when two words make api key, access key, private key, secret key or amz signature, or when a word is "token"
 * unless the word before it makes it a count or a tokenizer's special token (max_token, eos_token ...).  This is
 * the one rule for hyperparameter and variable names in the startup log and for "label: value" in failure text. */
#define MAX_WORDS 16
/* The word lists with their lengths: the startup log asks about every key and variable name of the job (~120
 * names), so a word is compared only with the names of its length (no strlen() per name and word). */
typedef struct lit {
    const char *s;
    size_t n;
} lit;
#define LIT(x) {x, sizeof(x) - 1}
static int word_in(const char *w, size_t n, const lit *list) {
    for (; list->s; list++)
        if (list->n == n && !memcmp(w, list->s, n)) return 1;
    return 0;
}
#define WORD_IS(w, n, x) ((n) == sizeof(x) - 1 && !memcmp((w), (x), (n)))

int shx_secret_name(const char *name, size_t len) {
    static const lit secret[] = {LIT("secret"), LIT("secrets"), LIT("credential"), LIT("credentials"),
                                 LIT("apikey"), LIT("accesskey"), LIT("privatekey"), LIT("secretkey"),
                                 LIT("accesstoken"), LIT("authtoken"), LIT("sessiontoken"), LIT("securitytoken"),
                                 LIT("password"), LIT("passwd"), LIT("passphrase"), {NULL, 0}};
    static const lit key_pairs[] = {LIT("api"), LIT("access"), LIT("private"), LIT("secret"), {NULL, 0}};
    static const lit not_secret_token[] = {LIT("max"), LIT("min"), LIT("num"), LIT("n"), LIT("eos"), LIT("bos"),
                                           LIT("pad"), LIT("unk"), LIT("sep"), LIT("cls"), LIT("mask"),
                                           LIT("start"), LIT("end"), LIT("stop"), LIT("special"), {NULL, 0}};
    char low[256];
    size_t ws[MAX_WORDS], wn[MAX_WORDS], nw = 0;
    if (len >= sizeof low) len = sizeof low - 1;
    for (size_t i = 0; i < len;) {
        while (i < len && !isalnum((unsigned char)name[i])) i++;
        if (i >= len || nw == MAX_WORDS) break;
        size_t st = i;
        i++;
        while (i < len && isalnum((unsigned char)name[i]) &&
               !(isupper((unsigned char)name[i]) && islower((unsigned char)name[i - 1])))
            i++;
        for (size_t k = st; k < i; k++) low[k] = (char)tolower((unsigned char)name[k]);
        ws[nw] = st, wn[nw] = i - st, nw++;
    }
    for (size_t k = 0; k < nw; k++) {
        const char *w = low + ws[k];
        size_t n = wn[k];
        if (word_in(w, n, secret) || (n >= 5 && !memcmp(w, "passw", 5))) return 1;
        const char *p = k ? low + ws[k - 1] : NULL;
        size_t pn = k ? wn[k - 1] : 0;
        if (k && WORD_IS(w, n, "key") && word_in(p, pn, key_pairs)) return 1;
        if (k && WORD_IS(w, n, "signature") && WORD_IS(p, pn, "amz")) return 1;
        if (WORD_IS(w, n, "token") && !(k && word_in(p, pn, not_secret_token))) return 1;
    }
    return 0;
}

static const char *const query_names[] = {"token", "access_token", "id_token", "refresh_token", "x-amz-signature",
                                          "x-amz-credential", "x-amz-security-token", "signature", "sig",
                                          "awsaccesskeyid", "password", "api_key", "apikey", NULL};

static int is_word(unsigned char c) {
    return isalnum(c) || c >= 0x80;
}

/* Length of a case-insensitive match of one of `list` at s, or 0. */
static size_t match_any(const char *s, const char *const *list) {
    size_t best = 0;
    int c = tolower((unsigned char)*s);
    for (size_t i = 0; list[i]; i++) {
        if (list[i][0] != c) continue; /* the lists are lower case: a cheap first test */
        size_t n = strlen(list[i]);
        if (n > best && !strncasecmp(s, list[i], n)) best = n;
    }
    return best;
}

static void put_stars(char **o, size_t value_len) {
    size_t n = value_len < 3 ? value_len : 3;
    memset(*o, '*', n);
    *o += n;
}

/* Characters that end a secret value. */
static int value_end(unsigned char c) {
    return !c || isspace(c) || c == '"' || c == '\'' || c == ',' || c == ';' || c == '&' || c == '}' || c == ')' ||
           c == '<' || c == '>' || c == '#';
}

void shx_redact(char *s) {
    if (!s) return;
    char *in = s, *o = s; /* o never passes in */
    while (*in) {
        unsigned char prev = in > s ? (unsigned char)in[-1] : 0;
        /* AWS access key id */
        if (*in == 'A' && !is_word(prev)) {
            size_t pl = 0;
            for (size_t i = 0; akid_prefixes[i]; i++)
                if (!strncmp(in, akid_prefixes[i], 4)) pl = 4;
            if (pl) {
                size_t j = 4;
                while (j < 20 && (isupper((unsigned char)in[j]) || isdigit((unsigned char)in[j]))) j++;
                if (j == 20 && !is_word((unsigned char)in[20])) {
                    memmove(o, in, 4);
                    o += 4;
                    memcpy(o, "***", 3);
                    o += 3;
                    in += 20;
                    continue;
                }
            }
        }
        /* credentials in a URL */
        if (in[0] == ':' && in[1] == '/' && in[2] == '/') {
            const char *j = in + 3;
            while (*j && !strchr("/ \t\r\n@?#\"'<>", *j)) j++;
            if (*j == '@' && j > in + 3) {
                memmove(o, "://", 3);
                o += 3;
                put_stars(&o, (size_t)(j - (in + 3)));
                *o++ = '@';
                in = (char *)j + 1;
                continue;
            }
        }
        /* query parameters */
        if (*in == '?' || *in == '&' || *in == ';') {
            size_t n = match_any(in + 1, query_names);
            if (n && in[1 + n] == '=') {
                size_t keep = 2 + n;
                memmove(o, in, keep);
                o += keep;
                in += keep;
                const char *v = in;
                while (!value_end((unsigned char)*in)) in++;
                put_stars(&o, (size_t)(in - v));
                continue;
            }
        }
        if (!is_word(prev)) {
            /* Authorization: <scheme> <credentials> */
            if (!strncasecmp(in, "authorization", 13)) {
                const char *j = in + 13;
                if (*j == '"' || *j == '\'') j++;
                while (*j == ' ' || *j == '\t') j++;
                if (*j == ':' || *j == '=') {
                    j++;
                    while (*j == ' ' || *j == '\t' || *j == '"' || *j == '\'') j++;
                    const char *sch = j;
                    while (isalnum((unsigned char)*j) || *j == '-') j++;
                    const char *after = j;
                    if (*j == ' ' && j > sch) {
                        j++; /* keep the scheme word */
                        after = j;
                    } else {
                        after = sch;
                    }
                    size_t keep = (size_t)(after - in);
                    memmove(o, in, keep);
                    o += keep;
                    in += keep;
                    const char *v = in;
                    while (*in && *in != '\n' && *in != '\r' && *in != '"' && *in != '\'') in++;
                    put_stars(&o, (size_t)(in - v));
                    continue;
                }
            }
            /* Bearer <token> */
            if (!strncasecmp(in, "bearer ", 7) && !value_end((unsigned char)in[7])) {
                memmove(o, in, 7);
                o += 7;
                in += 7;
                const char *v = in;
                while (!value_end((unsigned char)*in)) in++;
                put_stars(&o, (size_t)(in - v));
                continue;
            }
            /* label [quote] [spaces] (':' | '=') [spaces] [quote] value */
            size_t n = 0;
            if (prev != '_' && prev != '-')
                while (isalnum((unsigned char)in[n]) || in[n] == '_' || in[n] == '-') n++;
            const char *j = in + n;
            if (n) {
                if (*j == '"' || *j == '\'') j++;
                while (*j == ' ' || *j == '\t') j++;
            }
            /* the cheap test first: most words are not labels (the startup log runs this over every word) */
            if (n && (*j == ':' || *j == '=') && shx_secret_name(in, n)) {
                j++;
                while (*j == ' ' || *j == '\t') j++;
                if (*j == '"' || *j == '\'') j++;
                const char *v = j;
                while (!value_end((unsigned char)*j)) j++;
                if (j > v) {
                    size_t keep = (size_t)(v - in);
                    memmove(o, in, keep);
                    o += keep;
                    put_stars(&o, (size_t)(j - v));
                    in = (char *)j;
                    continue;
                }
            }
        }
        *o++ = *in++;
    }
    *o = 0;
}
