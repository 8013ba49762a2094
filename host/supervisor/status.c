/* The status page shared by the supervisor and the job process (status.h). */
#include "supervisor/status.h"

#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

shx_status_page *shx_status_page_create(void) {
    int fd = memfd_create("smhost-status", MFD_CLOEXEC);
    void *m = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, sizeof(shx_status_page)) == 0)
        m = mmap(NULL, sizeof(shx_status_page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) { /* no memfd (an old kernel, a seccomp filter): an anonymous page, not passed on */
        if (fd >= 0) close(fd);
        fd = -1;
        m = mmap(NULL, sizeof(shx_status_page), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
    }
    shx_status_page *p = m; /* zero-filled */
    p->phase = SHX_PHASE_HOST;
    p->fd = fd;
    return p;
}

shx_status_page *shx_status_page_attach(int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != (off_t)sizeof(shx_status_page)) return NULL;
    void *m = mmap(NULL, sizeof(shx_status_page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return m == MAP_FAILED ? NULL : m;
}

static void copy_field(char *dst, size_t cap, const char *src) {
    if (!src) src = "";
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
    shx_utf8_clean(dst, cap - 1); /* never leave half a code point at the cut */
}

void shx_status_set_reason(shx_status_page *p, const char *kind, const char *reason) {
    if (!p) return;
    copy_field(p->reason_kind, sizeof p->reason_kind, kind && *kind ? kind : "AlgorithmError");
    copy_field(p->reason, sizeof p->reason, reason);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    p->reason_set = 1;
}
