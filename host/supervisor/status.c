/* The status page shared by the supervisor and the job process (status.h). */
#include "supervisor/status.h"

#include <string.h>
#include <sys/mman.h>

#include "core/util.h"

shx_status_page *shx_status_page_create(void) {
    void *m = mmap(NULL, sizeof(shx_status_page), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    shx_status_page *p = m; /* zero-filled */
    p->phase = SHX_PHASE_HOST;
    return p;
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
