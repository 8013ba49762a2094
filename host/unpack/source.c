/* sagemaker_submit_directory -> <root>/code (see source.h).
 *
 * Both kinds of source go through one pipeline: entries are read with libarchive (read_disk for a directory,
 * the tar reader for an archive), checked here, and written with write_disk into a staging directory
 * <code_dir>/.smhost-unpack-XXXXXX.  Only when every entry went in are the staged top-level names renamed
 * into code_dir; on any failure the staging tree is removed, so code_dir is left as empty as it was.
 *
 * Checks, on top of libarchive's ARCHIVE_EXTRACT_SECURE_{NODOTDOT,SYMLINKS,NOABSOLUTEPATHS}:
 *   - no absolute path and no ".." component, in names and in hard-link targets;
 *   - a symlink's target is relative, may only start with "..", never climbs above code_dir, and has no ".."
 *     after a name (so "s/../.." through another link cannot escape either);
 *   - a hard-link target is not reached through a symlink;
 *   - no device nodes, FIFOs or sockets;
 *   - modes keep their rwx bits only (no setuid/setgid/sticky), owner always rw (rwx for directories);
 *     ownership is not restored.
 * write_disk works on paths relative to the working directory, so extraction chdir()s into the staging
 * directory and back (the host is single-threaded while it prepares the code).
 *
 * Bounds: at most SMHOST_UNPACK_MAX_MB of file data and SMHOST_UNPACK_MAX_FILES entries (a small archive can
 * expand to any size); holes of sparse files are not data and stay holes.  A stop signal (SIGTERM, SIGINT,
 * SIGQUIT, SIGHUP: blocked in smhost from the start, so pending here) ends the unpack between two blocks of data
 * with 128+N.  Staging directories left by a run that was killed (SIGKILL cannot be caught) are removed at the
 * start of the next. */
#include "unpack/source.h"

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct unpack {
    const char *submit;   /* as given, for messages */
    const char *code_dir; /* as given */
    int from_dir;         /* the source is a directory (else an archive) */
    const char *src_abs;  /* resolved source path */
    char *err;
    size_t errlen;
    unsigned long long max_bytes, bytes; /* file data: the cap and what went in so far */
    unsigned long max_files, files;
    int max_mb;
} unpack;

#define STAGING_PREFIX ".smhost-unpack-"

static int fail(unpack *u, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(unpack *u, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->err, u->errlen, fmt, ap);
    va_end(ap);
    return code;
}

static int stopped(unpack *u, int sig) {
    return fail(u, 128 + sig, "smhost got SIG%s while unpacking sagemaker_submit_directory %s: stopped; nothing was "
                "unpacked into %s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "a stop signal", u->submit, u->code_dir);
}

static const char *next_step(const unpack *u) {
    return u->from_dir ? "remove or fix it in the directory and run again"
                       : "rebuild the archive from inside the code directory (tar -czf code.tar.gz -C <dir> .) "
                         "with only files, directories and links that stay inside it";
}

/* "./a/./b" -> "a/./b"; "." and "./" -> "". */
static const char *skip_dot_slash(const char *p) {
    for (;;) {
        if (p[0] == '.' && p[1] == '/') p += 2;
        else if (p[0] == '/' && p[1] == '/') p++;
        else if (p[0] == '.' && p[1] == 0) p++;
        else return p;
    }
}

/* NULL when p is a relative path without "..", else why not. */
static const char *bad_relpath(const char *p) {
    if (p[0] == '/') return "it is an absolute path";
    for (const char *c = p; *c;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.') return "its path has a '..' component";
        if (!slash) break;
        c = slash + 1;
    }
    return NULL;
}

/* NULL when a symlink at name pointing to target stays inside the tree, else why not. */
static const char *bad_symlink(const char *name, const char *target) {
    if (!*target) return "it is a symlink with an empty target";
    if (target[0] == '/') return "it is a symlink to an absolute path";
    int depth = 0; /* directories above the link, inside the tree */
    for (const char *c = name; *c;) {
        const char *slash = strchr(c, '/');
        if (!slash) break;
        if (slash - c > 0 && !(slash - c == 1 && c[0] == '.')) depth++;
        c = slash + 1;
    }
    int up = 0, named = 0;
    for (const char *c = target; *c;) {
        const char *slash = strchr(c, '/');
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.') {
            if (named) return "it is a symlink whose target has '..' after a name";
            if (++up > depth) return "it is a symlink that points outside the code directory";
        } else if (n && !(n == 1 && c[0] == '.')) {
            named = 1;
        }
        if (!slash) break;
        c = slash + 1;
    }
    return NULL;
}

/* NULL when no directory on the way to the hard-link target (relative to the cwd) is a symlink. */
static const char *bad_hardlink_path(const char *target) {
    char *p = shx_xstrdup(target);
    const char *why = NULL;
    for (char *s = p;; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            struct stat st;
            if (*p && lstat(p, &st) == 0 && S_ISLNK(st.st_mode) && c) why = "it is a hard link through a symlink";
            *s = c;
            if (!c || why) break;
        }
    }
    free(p);
    return why;
}

static int write_errno_code(struct archive *w) {
    int e = archive_errno(w);
    if (e == ENOSPC || e == EDQUOT || e == EROFS || e == EACCES || e == EPERM || e == EIO || e == EMFILE)
        return SHX_EXIT_CANTCREAT;
    return SHX_EXIT_DATAERR;
}

/* Checks one entry, rewrites its name and mode, writes it (and its data) into the cwd.  0 or an exit code. */
static int put_entry(unpack *u, struct archive *in, struct archive *out, struct archive_entry *e, const char *name) {
    const char *why = bad_relpath(name);
    if (why)
        return fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s: refusing \"%s\": %s; nothing was unpacked "
                    "into %s; %s", u->submit, name, why, u->code_dir, next_step(u));
    char *rel = shx_xstrdup(skip_dot_slash(name));
    int rc = 0;
    if (!*rel) goto done; /* the top directory itself */
    const char *hl = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);
    if (hl) {
        const char *target = skip_dot_slash(hl);
        why = bad_relpath(hl);
        if (why) {
            rc = fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s: refusing hard link \"%s\" -> \"%s\": "
                      "its target is outside the code directory (%s); nothing was unpacked into %s; %s",
                      u->submit, name, hl, why, u->code_dir, next_step(u));
            goto done;
        }
        if ((why = bad_hardlink_path(target))) {
            rc = fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s: refusing hard link \"%s\" -> \"%s\": "
                      "%s; nothing was unpacked into %s; %s", u->submit, name, hl, why, u->code_dir, next_step(u));
            goto done;
        }
        char *t = shx_xstrdup(target);
        archive_entry_set_hardlink(e, t);
        free(t);
    } else if (type == AE_IFLNK) {
        const char *target = archive_entry_symlink(e);
        if ((why = bad_symlink(rel, target ? target : ""))) {
            rc = fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s: refusing \"%s\" -> \"%s\": %s; nothing "
                      "was unpacked into %s; %s", u->submit, name, target ? target : "", why, u->code_dir,
                      next_step(u));
            goto done;
        }
    } else if (type != AE_IFREG && type != AE_IFDIR) {
        const char *kind = type == AE_IFCHR || type == AE_IFBLK ? "a device node"
                           : type == AE_IFIFO                   ? "a FIFO"
                           : type == AE_IFSOCK                  ? "a socket"
                                                                : "of an unknown file type";
        rc = fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s: refusing \"%s\": it is %s; nothing was "
                  "unpacked into %s; %s", u->submit, name, kind, u->code_dir, next_step(u));
        goto done;
    }
    archive_entry_set_pathname(e, rel);
    if (type == AE_IFDIR) archive_entry_set_perm(e, (archive_entry_perm(e) & 0777) | 0700);
    else if (type == AE_IFREG) archive_entry_set_perm(e, (archive_entry_perm(e) & 0777) | 0600);

    int r = archive_write_header(out, e);
    if (r == ARCHIVE_WARN) shx_warn("unpacking %s: %s: %s", u->submit, name, archive_error_string(out));
    if (r < ARCHIVE_WARN) {
        rc = fail(u, write_errno_code(out), "sagemaker_submit_directory %s: cannot unpack \"%s\" into %s: %s; "
                  "nothing was unpacked; %s", u->submit, name, u->code_dir, archive_error_string(out),
                  write_errno_code(out) == SHX_EXIT_CANTCREAT ? "check the space and permissions of that directory"
                                                              : next_step(u));
        goto done;
    }
    if (archive_entry_size(e) > 0 && (type == AE_IFREG || hl)) {
        const void *buf;
        size_t len;
        la_int64_t off;
        for (;;) {
            r = archive_read_data_block(in, &buf, &len, &off);
            if (r == ARCHIVE_EOF) break;
            if (r < ARCHIVE_WARN) {
                if (u->from_dir)
                    rc = fail(u, SHX_EXIT_NOINPUT, "sagemaker_submit_directory %s: cannot read \"%s\": %s; nothing "
                              "was copied into %s; check the file's permissions", u->submit, name,
                              archive_error_string(in), u->code_dir);
                else
                    rc = fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s is damaged at \"%s\": %s "
                              "(libarchive); nothing was unpacked into %s; create the archive again", u->submit,
                              name, archive_error_string(in), u->code_dir);
                goto done;
            }
            int sig = shx_stop_signal_pending();
            if (sig) {
                rc = stopped(u, sig);
                goto done;
            }
            u->bytes += len;
            if (u->bytes > u->max_bytes) {
                rc = fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s holds more than %d MiB of file data "
                          "(reached at \"%s\"; SMHOST_UNPACK_MAX_MB=%d); nothing was unpacked into %s; make the "
                          "archive smaller or raise SMHOST_UNPACK_MAX_MB", u->submit, u->max_mb, name, u->max_mb,
                          u->code_dir);
                goto done;
            }
            if (archive_write_data_block(out, buf, len, off) < ARCHIVE_WARN) {
                rc = fail(u, write_errno_code(out), "sagemaker_submit_directory %s: cannot write \"%s\" into %s: %s; "
                          "nothing was unpacked; check the space and permissions of that directory",
                          u->submit, name, u->code_dir, archive_error_string(out));
                goto done;
            }
        }
    }
    if (archive_write_finish_entry(out) < ARCHIVE_WARN)
        rc = fail(u, write_errno_code(out), "sagemaker_submit_directory %s: cannot finish \"%s\" in %s: %s; nothing "
                  "was unpacked", u->submit, name, u->code_dir, archive_error_string(out));
done:
    free(rel);
    return rc;
}

/* Every entry of in, through put_entry, into the cwd. */
static int copy_all(unpack *u, struct archive *in, struct archive *out) {
    struct archive_entry *e = archive_entry_new();
    size_t prefix = u->from_dir ? strlen(u->src_abs) : 0;
    int rc = 0, count = 0;
    for (;;) {
        archive_entry_clear(e);
        int r = archive_read_next_header2(in, e);
        if (r == ARCHIVE_EOF) break;
        if (r == ARCHIVE_RETRY) continue;
        const char *path = archive_entry_pathname(e);
        if (r == ARCHIVE_WARN) shx_warn("reading %s: %s", u->submit, archive_error_string(in));
        if (r < ARCHIVE_WARN) {
            if (u->from_dir)
                rc = fail(u, SHX_EXIT_NOINPUT, "sagemaker_submit_directory %s: cannot read %s: %s; nothing was "
                          "copied into %s; check the directory's permissions and its symlinks",
                          u->submit, path ? path : "an entry", archive_error_string(in), u->code_dir);
            else if (count == 0)
                rc = fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s is not a readable .tar.gz, .tgz or "
                          ".tar archive: %s (libarchive); pass a directory or a tar archive", u->submit,
                          archive_error_string(in));
            else
                rc = fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s is damaged after %d entries: %s "
                          "(libarchive); nothing was unpacked into %s; create the archive again", u->submit, count,
                          archive_error_string(in), u->code_dir);
            break;
        }
        count++;
        int sig = shx_stop_signal_pending();
        if (sig) {
            rc = stopped(u, sig);
            break;
        }
        if (++u->files > u->max_files) {
            rc = fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s has more than %lu entries "
                      "(SMHOST_UNPACK_MAX_FILES=%lu); nothing was unpacked into %s; make the archive smaller or raise "
                      "SMHOST_UNPACK_MAX_FILES", u->submit, u->max_files, u->max_files, u->code_dir);
            break;
        }
        if (!path) {
            rc = fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s: entry %d has no usable name; %s",
                      u->submit, count, next_step(u));
            break;
        }
        char *name;
        if (u->from_dir) {
            /* read_disk names entries "<src>/rel"; descend into directories (symlinks are followed, as
             * shutil.copytree does in the toolkit). */
            if (archive_entry_filetype(e) == AE_IFDIR) archive_read_disk_descend(in);
            if (strncmp(path, u->src_abs, prefix)) {
                rc = fail(u, SHX_EXIT_SOFTWARE, "internal error: %s is not under %s", path, u->src_abs);
                break;
            }
            name = shx_xstrdup(path[prefix] == '/' ? path + prefix + 1 : path + prefix);
        } else {
            name = shx_xstrdup(path);
        }
        rc = put_entry(u, in, out, e, name);
        free(name);
        if (rc) break;
    }
    archive_entry_free(e);
    return rc;
}

/* rm -rf, with a warning naming what stays behind */
static void remove_tree(const char *path) {
    int rc = shx_rmtree(path, 0);
    if (rc < 0) shx_warn("cannot remove all of %s: %s", path, strerror(-rc));
}

/* Renames every name in staging into root.  On failure moves nothing back: removes what it moved. */
static int move_into(unpack *u, const char *staging, const char *root) {
    DIR *d = opendir(staging);
    if (!d)
        return fail(u, SHX_EXIT_CANTCREAT, "cannot open %s: %s; check the permissions of %s", staging,
                    strerror(errno), u->code_dir);
    shx_strvec moved = {0};
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *from = shx_path_join(staging, de->d_name), *to = shx_path_join(root, de->d_name);
        if (rename(from, to) < 0) {
            rc = fail(u, SHX_EXIT_CANTCREAT, "cannot move %s to %s: %s; nothing was unpacked into %s", from, to,
                      strerror(errno), u->code_dir);
            free(from);
            free(to);
            break;
        }
        shx_strvec_take(&moved, to);
        free(from);
    }
    closedir(d);
    if (rc)
        for (size_t i = 0; i < moved.n; i++) remove_tree(moved.v[i]);
    shx_strvec_free(&moved);
    return rc;
}

static struct archive *open_source(unpack *u) {
    struct archive *in;
    if (u->from_dir) {
        in = archive_read_disk_new();
        archive_read_disk_set_symlink_logical(in);
        archive_read_disk_set_behavior(in, ARCHIVE_READDISK_NO_XATTR | ARCHIVE_READDISK_NO_ACL |
                                               ARCHIVE_READDISK_NO_FFLAGS); /* holes stay holes */
        if (archive_read_disk_open(in, u->src_abs) != ARCHIVE_OK) {
            fail(u, SHX_EXIT_NOINPUT, "sagemaker_submit_directory %s: cannot read the directory: %s; check its "
                 "permissions", u->submit, archive_error_string(in));
            archive_read_free(in);
            return NULL;
        }
    } else {
        in = archive_read_new();
        archive_read_support_filter_gzip(in);
        archive_read_support_format_tar(in);
        if (archive_read_open_filename(in, u->src_abs, 64 * 1024) != ARCHIVE_OK) {
            fail(u, SHX_EXIT_DATAERR, "sagemaker_submit_directory %s is not a readable .tar.gz, .tgz or .tar "
                 "archive: %s (libarchive); pass a directory or a tar archive", u->submit, archive_error_string(in));
            archive_read_free(in);
            return NULL;
        }
    }
    return in;
}

static int unpack_into(unpack *u, const char *root) {
    char *staging = shx_path_join(root, STAGING_PREFIX "XXXXXX");
    if (!mkdtemp(staging)) {
        int rc = fail(u, SHX_EXIT_CANTCREAT, "cannot create a staging directory in %s: %s; check its permissions "
                      "and free space", u->code_dir, strerror(errno));
        free(staging);
        return rc;
    }
    int rc = 0;
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0 || chdir(staging) < 0) {
        rc = fail(u, SHX_EXIT_OSERR, "cannot enter %s: %s", staging, strerror(errno));
        if (cwd >= 0) close(cwd);
        goto out;
    }
    /* Opened from inside the staging directory: read_disk returns to the directory it was opened in after
     * looking at each file (it fchdir()s into the source to find holes), and write_disk writes relative to it. */
    struct archive *in = open_source(u);
    if (!in) {
        rc = u->from_dir ? SHX_EXIT_NOINPUT : SHX_EXIT_DATAERR;
        if (fchdir(cwd) < 0) shx_warn("cannot return to the working directory: %s", strerror(errno));
        close(cwd);
        goto out;
    }
    struct archive *out = archive_write_disk_new();
    archive_write_disk_set_options(out, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                                            ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                            ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
    rc = copy_all(u, in, out);
    /* Closing applies deferred directory modes and times, on paths relative to the staging directory. */
    if (archive_write_close(out) < ARCHIVE_WARN && !rc)
        rc = fail(u, write_errno_code(out), "sagemaker_submit_directory %s: cannot finish unpacking into %s: %s",
                  u->submit, u->code_dir, archive_error_string(out));
    archive_write_free(out);
    archive_read_free(in);
    if (fchdir(cwd) < 0 && !rc) rc = fail(u, SHX_EXIT_OSERR, "cannot return to the working directory: %s",
                                          strerror(errno));
    close(cwd);
    if (!rc) rc = move_into(u, staging, root);
out:
    remove_tree(staging);
    free(staging);
    return rc;
}

/* Staging directories of a run that was killed: without them, code_dir may be empty again. */
static void remove_debris(const char *code_dir) {
    DIR *d = opendir(code_dir);
    if (!d) return;
    shx_strvec found = {0};
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, STAGING_PREFIX, strlen(STAGING_PREFIX)))
            shx_strvec_take(&found, shx_path_join(code_dir, de->d_name));
    closedir(d);
    for (size_t i = 0; i < found.n; i++) {
        shx_info("removing %s, left by an unpack that was killed", found.v[i]);
        remove_tree(found.v[i]);
    }
    shx_strvec_free(&found);
}

/* A whole number from the environment in [lo, hi]; def when unset.  -1 when bad. */
static long env_long(const char *name, long def, long lo, long hi) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    long x;
    return shx_parse_long(v, lo, hi, &x) < 0 ? -1 : x;
}

int shx_source_prepare(const char *submit, const char *code_dir, char *err, size_t errlen) {
    if (!submit || !*submit) return 0;
    unpack u = {.submit = submit, .code_dir = code_dir, .err = err, .errlen = errlen};
    long mb = env_long("SMHOST_UNPACK_MAX_MB", 2048, 1, 1L << 30), files = env_long("SMHOST_UNPACK_MAX_FILES", 100000,
                                                                                  1, 1L << 30);
    if (mb < 0 || files < 0)
        return fail(&u, SHX_EXIT_CONFIG, "%s=%s is not a whole number from 1 to %ld: fix or unset it",
                    mb < 0 ? "SMHOST_UNPACK_MAX_MB" : "SMHOST_UNPACK_MAX_FILES",
                    getenv(mb < 0 ? "SMHOST_UNPACK_MAX_MB" : "SMHOST_UNPACK_MAX_FILES"), 1L << 30);
    u.max_mb = (int)mb;
    u.max_bytes = (unsigned long long)mb << 20;
    u.max_files = (unsigned long)files;
    remove_debris(code_dir);
    if (!shx_dir_is_empty(code_dir)) {
        shx_info("%s is not empty: using the code there, not sagemaker_submit_directory %s", code_dir, submit);
        return 0;
    }
    if (!strncmp(submit, "s3://", 5))
        return fail(&u, SHX_EXIT_NOINPUT, "sagemaker_submit_directory %s: s3:// sources are downloaded by "
                    "`smhost train` (s3.so) and then unpacked from the local copy; this unpacker takes a local "
                    "directory or .tar.gz path (or put the code under %s)", submit, code_dir);
    if (strstr(submit, "://"))
        return fail(&u, SHX_EXIT_NOINPUT, "sagemaker_submit_directory %s: only local paths are supported; put the "
                    "code under %s or pass a local directory or .tar.gz path", submit, code_dir);
    struct stat st;
    if (stat(submit, &st) < 0)
        return fail(&u, SHX_EXIT_NOINPUT, "sagemaker_submit_directory %s: %s; pass an existing directory or "
                    ".tar.gz file, or put the code under %s", submit,
                    errno == ENOENT || errno == ENOTDIR ? "no such file or directory" : strerror(errno), code_dir);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return fail(&u, SHX_EXIT_NOINPUT, "sagemaker_submit_directory %s is neither a directory nor a file; pass a "
                    "directory or a .tar.gz file", submit);
    u.from_dir = S_ISDIR(st.st_mode);
    int r = shx_mkdirs(code_dir, 0755);
    if (r < 0)
        return fail(&u, SHX_EXIT_CANTCREAT, "cannot create the code directory %s: %s; check the permissions of the "
                    "ML root", code_dir, strerror(-r));
    char root[PATH_MAX], src[PATH_MAX];
    if (!realpath(code_dir, root))
        return fail(&u, SHX_EXIT_CANTCREAT, "cannot resolve the code directory %s: %s", code_dir, strerror(errno));
    if (!realpath(submit, src))
        return fail(&u, SHX_EXIT_NOINPUT, "cannot resolve sagemaker_submit_directory %s: %s", submit,
                    strerror(errno));
    u.src_abs = src;
    if (u.from_dir) {
        if (!strcmp(src, root)) return 0; /* already the code directory */
        size_t n = strlen(src);
        if (!strncmp(root, src, n) && (root[n] == '/' || n == 1))
            return fail(&u, SHX_EXIT_NOINPUT, "sagemaker_submit_directory %s contains the code directory %s, so it "
                        "cannot be copied into it; point it at a directory outside %s", submit, code_dir, code_dir);
    }
    shx_info("%s %s into %s", u.from_dir ? "copying" : "unpacking", submit, code_dir);
    return unpack_into(&u, root);
}
