/* The status page: one MAP_SHARED page made before the job process is forked, through which the job process tells
 * the supervisor what it is doing (so a crash is blamed on the right party), which command it runs, and the failure
 * reason to report.  The supervisor only reads it.  The page lives in a memfd so that a program a runner exec()s
 * with smhost's code in it (python3 with pyboot.so) can map it again and keep reporting: smh_host_api.status_fd. */
#ifndef SHX_STATUS_H
#define SHX_STATUS_H

/* What the job process is doing, so a crash is blamed on the right party. */
typedef enum shx_phase {
    SHX_PHASE_HOST = 0,        /* host code in the job process */
    SHX_PHASE_PLUGIN_LOAD = 1, /* dlopen / entry of plugin `plugin` */
    SHX_PHASE_PLUGIN_INIT = 2, /* its init() */
    SHX_PHASE_RUNNER = 3,      /* its run(), before user code */
    SHX_PHASE_PROGRAM = 4      /* user code (exec done, or in-process program started) */
} shx_phase;

/* Shared between the supervisor and the job process (an anonymous MAP_SHARED page made before fork). */
typedef struct shx_status_page {
    volatile int phase;          /* shx_phase */
    char plugin[64];             /* plugin in charge in phases 1..3 */
    char plugin_path[512];
    volatile int reason_set;     /* 1 when `reason` holds a failure reason from the job process */
    char reason_kind[64];        /* first line of output/failure: "ExecuteUserScriptError", "PluginError", ... */
    char reason[4096];           /* the ErrorMessage: an exception, a trainer's message, a host error */
    char command[2048];          /* the user command line, for the failure file ("/bin/sh train.sh --lr 0.1") */
    int fd;                      /* the memfd behind this page (FD_CLOEXEC), or -1 */
} shx_status_page;

shx_status_page *shx_status_page_create(void);
/* Map the page of a status fd passed across exec() (pyboot.so in python3).  NULL when fd is no status page. */
shx_status_page *shx_status_page_attach(int fd);
void shx_status_set_reason(shx_status_page *p, const char *kind, const char *reason);
#endif
