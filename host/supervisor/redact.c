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

static const char *const labels[] = {
    "aws_secret_access_key", "secret_access_key", "secretaccesskey", "aws_session_token", "session_token",
    "sessiontoken", "aws_security_token", "security_token", "x-amz-security-token", "x-amz-signature",
    "x-amz-credential", "password", "passwd", "api_key", "apikey", "api-key", "access_token", "auth_token",
    "client_secret", "secret_key", "private_key", NULL};

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
            size_t n = match_any(in, labels);
            if (n && !isalnum((unsigned char)in[n])) {
                const char *j = in + n;
                if (*j == '"' || *j == '\'') j++;
                while (*j == ' ' || *j == '\t') j++;
                if (*j == ':' || *j == '=') {
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
        }
        *o++ = *in++;
    }
    *o = 0;
}
