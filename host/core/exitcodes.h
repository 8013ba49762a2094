/* The host's own exit codes (documented in README.md).  A job that ran exits with the program's code, or
 * 128+N when signal N ended it. */
#ifndef SHX_EXITCODES_H
#define SHX_EXITCODES_H
#define SHX_EXIT_USAGE 64       /* bad command line (sysexits EX_USAGE) */
#define SHX_EXIT_DATAERR 65     /* a malformed input file: hyperparameters.json, resourceconfig.json ... */
#define SHX_EXIT_NOINPUT 66     /* no program given, program or submit directory missing */
#define SHX_EXIT_UNAVAILABLE 69 /* a host name never resolved (multi-host jobs), a distributed job's host never joined */
#define SHX_EXIT_SOFTWARE 70    /* an internal error, or a plugin that crashed */
#define SHX_EXIT_OSERR 71       /* fork, pipe, out of memory ... */
#define SHX_EXIT_CANTCREAT 73   /* cannot write under the ML root */
#define SHX_EXIT_DEVICE 75      /* a GPU or accelerator failed the health check before the job ([devices] health_check) */
#define SHX_EXIT_PEER 76        /* distributed job: another host or rank failed or stopped it (output/failure names it) */
#define SHX_EXIT_NOPERM 77      /* S3 access denied (403), or no AWS credentials at all */
#define SHX_EXIT_CONFIG 78      /* bad smhost.ini, or the plugin the job needs is missing or refused */
#define SHX_EXIT_NOEXEC 126     /* the program exists but cannot be executed */
#define SHX_EXIT_NOTFOUND 127   /* the program (or its interpreter) was not found */
#endif
