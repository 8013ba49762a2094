/* Frames between the serve front, the zygote and the workers: a fixed header, four NUL-terminated strings and a body,
 * over SOCK_STREAM socketpairs.  Internal to one smhost binary (front and workers are the same build), so no
 * versioning beyond a magic number. */
#ifndef SHX_SERVE_PROTO_H
#define SHX_SERVE_PROTO_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

typedef enum shx_frame_type {
    SHX_FR_INVOKE = 1,  /* front->worker: s = content type, accept, custom attributes, model name; body */
    SHX_FR_REPLY = 2,   /* worker->front: a = HTTP status; s = content type, custom attributes; body */
    SHX_FR_LOAD = 3,    /* front->worker (multi-model): s = name, model dir.  Answered with REPLY */
    SHX_FR_UNLOAD = 4,  /* front->worker (multi-model): s = name.  Answered with REPLY */
    SHX_FR_READY = 5,   /* worker->front: model loaded; zygote->front: plugin (and model) loaded */
    SHX_FR_FAILED = 6,  /* zygote/worker->front: loading failed; a = exit code; s[0] = message */
    SHX_FR_SPAWNED = 7, /* zygote->front: a = slot, b = generation, c = pid */
    SHX_FR_DIED = 8     /* zygote->front: a = wait status, c = pid */
} shx_frame_type;

#define SHX_FRAME_NSTR 4
#define SHX_FRAME_MAX_BODY (1024u * 1024u * 1024u)

typedef struct shx_frame {
    uint32_t type;
    int32_t a, b, c;
    const char *s[SHX_FRAME_NSTR]; /* NUL-terminated ("" when absent); point into `mem` */
    size_t slen[SHX_FRAME_NSTR];
    const char *body;
    size_t body_len;
    char *mem; /* owned */
} shx_frame;

/* Send one frame (NULL strings are sent as ""); retries on EINTR, never raises SIGPIPE.  0 or -1 (errno). */
int shx_frame_send(int fd, uint32_t type, int32_t a, int32_t b, int32_t c, const char *const s[SHX_FRAME_NSTR],
                   const void *body, size_t body_len);
/* Receive one frame.  deadline_ms: CLOCK_MONOTONIC milliseconds, or -1 to wait forever.
 * Returns 0, -1 on EOF or error (errno; 0 for a clean EOF), -2 when the deadline passed. */
int shx_frame_recv(int fd, shx_frame *f, int64_t deadline_ms);
void shx_frame_free(shx_frame *f);

/* Append one frame, as shx_frame_send writes it, to out (for sending several at once). */
void shx_frame_encode(shx_buf *out, uint32_t type, int32_t a, int32_t b, int32_t c,
                      const char *const s[SHX_FRAME_NSTR], const void *body, size_t body_len);

/* Buffered reading of many frames per recv(): fill() reads what one recv() gives (flags: 0 or MSG_DONTWAIT;
 * returns its result, errno 0 on EOF), next() takes the next whole frame out of the buffer (1; 0 when more bytes
 * are needed; -1 with EPROTO for garbage).  A frame from next() points into the buffer (mem is NULL, do not
 * free it) and stays valid until the next fill(). */
typedef struct shx_frame_reader {
    char *p;
    size_t start, len, cap;
} shx_frame_reader;
ssize_t shx_frame_reader_fill(shx_frame_reader *r, int fd, int flags);
int shx_frame_reader_next(shx_frame_reader *r, shx_frame *f);
void shx_frame_reader_free(shx_frame_reader *r);

/* Pass a socket to the zygote, and take it there.  0 or -1. */
int shx_send_fd(int sock, int fd, int32_t slot, int32_t gen);
int shx_recv_fd(int sock, int *fd, int32_t *slot, int32_t *gen);


/* {"code":N,"type":"NotFound","message":"..."}: the JSON body of every error smhost serve answers.  Caller frees. */
char *shx_json_error(int code, const char *message);
/* o printed compactly (and deleted): every JSON body the serving side writes goes through cJSON.  Caller frees. */
struct cJSON;
char *shx_json_print(struct cJSON *o);
const char *shx_http_reason(int code);
#endif
