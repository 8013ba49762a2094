/* model.tar.gz / output.tar.gz with libarchive (see pack.h). */
#include "unpack/pack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/exitcodes.h"
#include "core/log.h"
#include "core/util.h"

/* the names in dir, sorted (a stable archive for the same tree) */
static void list_dir(const char *dir, shx_strvec *out) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) shx_strvec_push(out, e->d_name);
    closedir(d);
    shx_strvec_sort(out);
}

static int add_path(struct archive *a, const char *path, const char *name, char *err, size_t errlen) {
    struct stat st;
    if (lstat(path, &st) < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return SHX_EXIT_NOINPUT;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
        shx_warn("artifacts: %s is not a file, directory or link: left out of the archive", path);
        return 0;
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_copy_stat(e, &st);
    archive_entry_set_pathname(e, name);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        archive_entry_set_symlink(e, target);
    }
    int rc = 0;
    if (archive_write_header(a, e) != ARCHIVE_OK) {
        snprintf(err, errlen, "cannot write %s into the archive: %s", name, archive_error_string(a));
        rc = SHX_EXIT_CANTCREAT;
    } else if (S_ISREG(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
            rc = SHX_EXIT_NOINPUT;
        }
        char buf[65536];
        ssize_t n;
        while (!rc && (n = read(fd, buf, sizeof buf)) > 0)
            if (archive_write_data(a, buf, (size_t)n) < 0) {
                snprintf(err, errlen, "cannot write %s into the archive: %s", name, archive_error_string(a));
                rc = SHX_EXIT_CANTCREAT;
            }
        if (fd >= 0) close(fd);
    }
    archive_entry_free(e);
    if (rc || !S_ISDIR(st.st_mode)) return rc;
    shx_strvec kids = {0};
    list_dir(path, &kids);
    for (size_t i = 0; i < kids.n && !rc; i++) {
        char *kp = shx_path_join(path, kids.v[i]);
        char *kn = shx_xasprintf("%s/%s", name, kids.v[i]);
        rc = add_path(a, kp, kn, err, errlen);
        free(kp);
        free(kn);
    }
    shx_strvec_free(&kids);
    return rc;
}

int shx_pack_tgz(shx_pack_spec *spec, char *err, size_t errlen) {
    char *tmp = shx_xasprintf("%s.tmp", spec->out);
    struct archive *a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_pax_restricted(a);
    int rc = 0;
    if (archive_write_open_filename(a, tmp) != ARCHIVE_OK) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, archive_error_string(a));
        rc = SHX_EXIT_CANTCREAT;
    }
    spec->entries = 0;
    shx_strvec seen = {0};
    if (!rc && spec->prefix) {
        /* the prefix directory itself, so that an empty output/data still shows */
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, spec->prefix);
        archive_entry_set_filetype(e, AE_IFDIR);
        archive_entry_set_perm(e, 0755);
        archive_entry_set_mtime(e, time(NULL), 0);
        if (archive_write_header(a, e) != ARCHIVE_OK) {
            snprintf(err, errlen, "cannot write %s: %s", tmp, archive_error_string(a));
            rc = SHX_EXIT_CANTCREAT;
        }
        archive_entry_free(e);
    }
    for (size_t d = 0; d < spec->ndirs && !rc; d++) {
        shx_strvec names = {0};
        list_dir(spec->dirs[d], &names);
        for (size_t i = 0; i < names.n && !rc; i++) {
            int dup = 0;
            for (size_t j = 0; j < seen.n && !dup; j++) dup = !strcmp(seen.v[j], names.v[i]);
            if (dup) {
                shx_info("artifacts: %s from %s is left out: an earlier host wrote the same name (the first host "
                         "that writes a name wins)", names.v[i], spec->labels ? spec->labels[d] : spec->dirs[d]);
                continue;
            }
            shx_strvec_push(&seen, names.v[i]);
            char *path = shx_path_join(spec->dirs[d], names.v[i]);
            char *name = spec->prefix ? shx_xasprintf("%s/%s", spec->prefix, names.v[i]) : shx_xstrdup(names.v[i]);
            rc = add_path(a, path, name, err, errlen);
            spec->entries++;
            free(path);
            free(name);
        }
        shx_strvec_free(&names);
    }
    for (size_t f = 0; f < spec->nfiles && !rc; f++) {
        rc = add_path(a, spec->files[2 * f + 1], spec->files[2 * f], err, errlen);
        spec->entries++;
    }
    shx_strvec_free(&seen);
    if (archive_write_close(a) != ARCHIVE_OK && !rc) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, archive_error_string(a));
        rc = SHX_EXIT_CANTCREAT;
    }
    archive_write_free(a);
    if (!rc && rename(tmp, spec->out) < 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, spec->out, strerror(errno));
        rc = SHX_EXIT_CANTCREAT;
    }
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
