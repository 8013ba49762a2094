/* The front <-> worker protocol reader (serve/proto.c), fed arbitrary bytes as a worker could send them. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "serve/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) abort();
    shx_frame_reader r = {0};
    size_t off = 0;
    int bad = 0;
    while (!bad) {
        size_t chunk = size - off > 4096 ? 4096 : size - off; /* a worker's writes arrive in pieces */
        if (chunk && write(sv[1], data + off, chunk) != (ssize_t)chunk) abort();
        off += chunk;
        if (off == size) shutdown(sv[1], SHUT_WR);
        ssize_t n = shx_frame_reader_fill(&r, sv[0], MSG_DONTWAIT);
        shx_frame f;
        int k;
        while ((k = shx_frame_reader_next(&r, &f)) == 1) {
            FUZZ_CHECK(f.body_len == 0 || f.body, "a body length without a body");
            shx_frame_free(&f);
        }
        if (k < 0 || n <= 0) bad = 1;
    }
    shx_frame_reader_free(&r);
    close(sv[0]), close(sv[1]);
    return 0;
}
