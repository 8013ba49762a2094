/* Frames between the serve front, the zygote and the workers (see serve_proto.h). */
#include "serve/proto.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/util.h"

#define MAGIC 0x53484656u /* "SHFV" */

typedef struct wire_header {
    uint32_t magic, type;
    int32_t a, b, c;
    uint32_t slen[SHX_FRAME_NSTR];
    uint32_t body_len;
} wire_header;


int shx_frame_send(int fd, uint32_t type, int32_t a, int32_t b, int32_t c, const char *const s[SHX_FRAME_NSTR],
                   const void *body, size_t body_len) {
    wire_header h = {.magic = MAGIC, .type = type, .a = a, .b = b, .c = c, .body_len = (uint32_t)body_len};
    if (body_len > SHX_FRAME_MAX_BODY) {
        errno = EMSGSIZE;
        return -1;
    }
    struct iovec iov[2 + SHX_FRAME_NSTR];
    int n = 0;
    iov[n++] = (struct iovec){&h, sizeof h};
    for (int i = 0; i < SHX_FRAME_NSTR; i++) {
        const char *str = s && s[i] ? s[i] : "";
        h.slen[i] = (uint32_t)strlen(str);
        iov[n++] = (struct iovec){(void *)str, h.slen[i] + 1}; /* with its NUL: a parsed frame points into the bytes */
    }
    if (body_len) iov[n++] = (struct iovec){(void *)body, body_len};
    struct iovec *v = iov;
    while (n > 0) {
        struct msghdr m = {.msg_iov = v, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= v->iov_len) {
            done -= v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + done;
            v->iov_len -= done;
        }
    }
    return 0;
}

/* Read exactly len bytes.  0, -1 (EOF: errno 0, or error), -2 deadline.  With a deadline the socket is polled
 * first when wait_first (a header: the peer is still working), else data already there is taken at once. */
static int read_full(int fd, void *p, size_t len, int64_t deadline_ms, int wait_first) {
    char *q = p;
    if (deadline_ms >= 0 && wait_first) {
        int64_t left = deadline_ms - shx_now_ms();
        if (left <= 0) return -2;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left) < 0 && errno != EINTR) return -1;
    }
    while (len > 0) {
        ssize_t r = recv(fd, q, len, deadline_ms >= 0 ? MSG_DONTWAIT : 0);
        if (r > 0) {
            q += r;
            len -= (size_t)r;
            continue;
        }
        if (r == 0) {
            errno = 0;
            return -1;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        int64_t left = deadline_ms - shx_now_ms();
        if (left <= 0) return -2;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left) < 0 && errno != EINTR) return -1;
    }
    return 0;
}

/* Check a header and return the whole frame's size, or 0 when it is not a frame. */
static size_t frame_size(const wire_header *h) {
    if (h->magic != MAGIC || h->body_len > SHX_FRAME_MAX_BODY) return 0;
    size_t n = sizeof *h + h->body_len;
    for (int i = 0; i < SHX_FRAME_NSTR; i++) {
        if (h->slen[i] > SHX_FRAME_MAX_BODY) return 0;
        n += (size_t)h->slen[i] + 1;
    }
    return n;
}

/* Point f into payload (the strings, each with its NUL, then the body).  0, or -1 when a NUL is missing. */
static int frame_fill(const wire_header *h, const char *payload, shx_frame *f) {
    const char *p = payload;
    for (int i = 0; i < SHX_FRAME_NSTR; i++) {
        if (p[h->slen[i]] != 0) return -1;
        f->s[i] = p;
        f->slen[i] = h->slen[i];
        p += h->slen[i] + 1;
    }
    f->body = p;
    f->body_len = h->body_len;
    f->type = h->type;
    f->a = h->a;
    f->b = h->b;
    f->c = h->c;
    return 0;
}

int shx_frame_recv(int fd, shx_frame *f, int64_t deadline_ms) {
    memset(f, 0, sizeof *f);
    wire_header h;
    int r = read_full(fd, &h, sizeof h, deadline_ms, 1);
    if (r) return r;
    size_t total = frame_size(&h);
    if (!total) {
        errno = EPROTO;
        return -1;
    }
    size_t payload = total - sizeof h;
    char *mem = shx_xmalloc(payload + 1);
    if ((r = read_full(fd, mem, payload, deadline_ms, 0))) {
        free(mem);
        return r;
    }
    mem[payload] = 0;
    if (frame_fill(&h, mem, f)) {
        free(mem);
        memset(f, 0, sizeof *f);
        errno = EPROTO;
        return -1;
    }
    f->mem = mem;
    return 0;
}

void shx_frame_encode(shx_buf *out, uint32_t type, int32_t a, int32_t b, int32_t c,
                      const char *const s[SHX_FRAME_NSTR], const void *body, size_t body_len) {
    wire_header h = {.magic = MAGIC, .type = type, .a = a, .b = b, .c = c, .body_len = (uint32_t)body_len};
    const char *str[SHX_FRAME_NSTR];
    for (int i = 0; i < SHX_FRAME_NSTR; i++) {
        str[i] = s && s[i] ? s[i] : "";
        h.slen[i] = (uint32_t)strlen(str[i]);
    }
    shx_buf_add(out, &h, sizeof h);
    for (int i = 0; i < SHX_FRAME_NSTR; i++) shx_buf_add(out, str[i], (size_t)h.slen[i] + 1);
    shx_buf_add(out, body, body_len);
}

int shx_frame_reader_next(shx_frame_reader *r, shx_frame *f) {
    memset(f, 0, sizeof *f);
    size_t have = r->len - r->start;
    if (have < sizeof(wire_header)) return 0;
    wire_header h;
    memcpy(&h, r->p + r->start, sizeof h);
    size_t total = frame_size(&h);
    if (!total) {
        errno = EPROTO;
        return -1;
    }
    if (have < total) return 0;
    if (frame_fill(&h, r->p + r->start + sizeof h, f)) {
        memset(f, 0, sizeof *f);
        errno = EPROTO;
        return -1;
    }
    r->start += total;
    return 1;
}

ssize_t shx_frame_reader_fill(shx_frame_reader *r, int fd, int flags) {
    if (r->start == r->len) r->start = r->len = 0;
    size_t want = 64 * 1024;
    if (r->len - r->start >= sizeof(wire_header)) { /* room for the frame that has begun, */
        wire_header h;
        memcpy(&h, r->p + r->start, sizeof h);
        size_t total = frame_size(&h), have = r->len - r->start;
        /* but grown with what arrives: a header may claim gigabytes that never come (found by fuzz_frames) */
        if (total > want) want = total < 4 * have ? total : 4 * have;
    }
    size_t need = r->start + want > r->len + 4096 ? r->start + want : r->len + 4096;
    if (r->start && need + 1 > r->cap) { /* move what is left to the front */
        memmove(r->p, r->p + r->start, r->len - r->start);
        r->len -= r->start;
        need -= r->start;
        r->start = 0;
    }
    if (need + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 64 * 1024;
        while (cap < need + 1) cap *= 2;
        r->p = shx_xrealloc(r->p, cap);
        r->cap = cap;
    }
    ssize_t n;
    do n = recv(fd, r->p + r->len, r->cap - r->len - 1, flags);
    while (n < 0 && errno == EINTR);
    if (n > 0) r->len += (size_t)n;
    if (n == 0) errno = 0;
    return n;
}

void shx_frame_reader_free(shx_frame_reader *r) {
    free(r->p);
    memset(r, 0, sizeof *r);
}

void shx_frame_free(shx_frame *f) {
    free(f->mem);
    memset(f, 0, sizeof *f);
}

int shx_send_fd(int sock, int fd, int32_t slot, int32_t gen) {
    int32_t payload[3] = {(int32_t)MAGIC, slot, gen};
    struct iovec iov = {payload, sizeof payload};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    ssize_t w;
    do w = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    return w == (ssize_t)sizeof payload ? 0 : -1;
}

int shx_recv_fd(int sock, int *fd, int32_t *slot, int32_t *gen) {
    int32_t payload[3];
    struct iovec iov = {payload, sizeof payload};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t r;
    do r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof payload || payload[0] != (int32_t)MAGIC) {
        if (r >= 0) errno = r == 0 ? 0 : EPROTO;
        return -1;
    }
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    if (!cm || cm->cmsg_type != SCM_RIGHTS) {
        errno = EPROTO;
        return -1;
    }
    memcpy(fd, CMSG_DATA(cm), sizeof *fd);
    *slot = payload[1];
    *gen = payload[2];
    return 0;
}

const char *shx_http_reason(int code) {
    switch (code) {
    case 200: return "OK";
    case 400: return "BadRequest";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 406: return "NotAcceptable";
    case 409: return "Conflict";
    case 413: return "PayloadTooLarge";
    case 415: return "UnsupportedMediaType";
    case 500: return "InternalServerError";
    case 502: return "BadGateway";
    case 503: return "ServiceUnavailable";
    case 504: return "GatewayTimeout";
    case 507: return "InsufficientStorage";
    default: return code >= 500 ? "ServerError" : code >= 400 ? "ClientError" : "Status";
    }
}

char *shx_json_error(int code, const char *message) {
    char *m = shx_xstrdup(message ? message : "");
    shx_utf8_clean(m, 4096);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "code", code);
    cJSON_AddStringToObject(o, "type", shx_http_reason(code));
    cJSON_AddStringToObject(o, "message", m);
    free(m);
    return shx_json_print(o);
}

char *shx_json_print(cJSON *o) {
    char *p = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *out = shx_xstrdup(p ? p : "null"); /* ours, freed with free(); p is NULL only when out of memory */
    cJSON_free(p);
    return out;
}
