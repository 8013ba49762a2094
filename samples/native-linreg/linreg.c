/*
 * linreg: a native smhost trainer -- linear regression by (optionally ridge-regularised) least squares on the
 * CSV files of one channel.  One pass over the data: it accumulates X'X and X'y, then solves the normal
 * equations by Cholesky.  Writes <model>/model.json and <output>/data/metrics.json.
 *
 * Hyperparameters (all optional):
 *   channel        str   the channel to read (default "train")
 *   target_column  int   the column holding y; negative counts from the end (default -1: the last column)
 *   fit_intercept  bool  add an intercept (default true)
 *   l2             float ridge penalty on the coefficients, not on the intercept (default 0)
 * A first line that is not all numbers is a header and is skipped (in every file).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <smhost/trainer.h>

#define LR "linreg"

typedef struct fit {
    size_t ncols;  /* columns in the CSV, 0 until the first data row */
    size_t p;      /* coefficients solved for: features (+ 1 for the intercept, stored first) */
    double *xtx;   /* p x p, row-major */
    double *xty;   /* p */
    double *row;   /* p: the current row as a design vector */
    double yy, sy; /* sum of y^2 and of y */
    size_t n;
} fit;

typedef struct opts {
    const char *channel;
    int64_t target; /* as given; resolved against ncols */
    int intercept;
    double l2;
} opts;

static int fail(char *err, size_t errlen, int st, const char *fmt, ...) SMH_PRINTF(4, 5);
static int fail(char *err, size_t errlen, int st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return st;
}

/* Split a line into numbers.  Returns the count, or -1 when a field is not a number (*bad = its index). */
static long parse_row(char *line, double *vals, size_t cap, size_t *bad) {
    size_t n = 0;
    char *s = line;
    for (;;) {
        char *end;
        while (*s == ' ' || *s == '\t')
            s++;
        errno = 0;
        double v = strtod(s, &end);
        char *q = end;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (end == s || (*q != ',' && *q != '\0') || !isfinite(v)) {
            *bad = n;
            return -1;
        }
        if (n < cap)
            vals[n] = v;
        n++;
        if (*q == '\0')
            return (long)n;
        s = q + 1;
    }
}

static int start_fit(fit *f, const opts *o, size_t ncols, const char *file, long lineno, char *err, size_t errlen) {
    if (ncols < 2)
        return fail(err, errlen, SMH_E_INVAL, "%s:%ld: %zu column; linreg needs at least one feature and a target",
                    file, lineno, ncols);
    int64_t t = o->target < 0 ? (int64_t)ncols + o->target : o->target;
    if (t < 0 || t >= (int64_t)ncols)
        return fail(err, errlen, SMH_E_RANGE, "target_column %lld is outside the %zu columns of %s",
                    (long long)o->target, ncols, file);
    f->ncols = ncols;
    f->p = ncols - 1 + (o->intercept ? 1 : 0);
    f->xtx = calloc(f->p * f->p, sizeof(double));
    f->xty = calloc(f->p, sizeof(double));
    f->row = calloc(f->p, sizeof(double));
    if (!f->xtx || !f->xty || !f->row)
        return fail(err, errlen, SMH_E_NOMEM, "out of memory for %zu coefficients", f->p);
    return 0;
}

static void add_row(fit *f, const opts *o, const double *vals) {
    size_t t = (size_t)(o->target < 0 ? (int64_t)f->ncols + o->target : o->target);
    size_t k = 0;
    if (o->intercept)
        f->row[k++] = 1.0;
    for (size_t c = 0; c < f->ncols; c++)
        if (c != t)
            f->row[k++] = vals[c];
    double y = vals[t];
    for (size_t i = 0; i < f->p; i++) {
        f->xty[i] += f->row[i] * y;
        for (size_t j = 0; j <= i; j++)
            f->xtx[i * f->p + j] += f->row[i] * f->row[j];
    }
    f->yy += y * y;
    f->sy += y;
    f->n++;
}

static int read_file(const smh_host_api *host, const smh_job *job, fit *f, const opts *o, const char *file,
                     char *err, size_t errlen) {
    FILE *in = fopen(file, "r");
    if (in == NULL)
        return fail(err, errlen, SMH_E_NOTFOUND, "cannot open %s: %s", file, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    double *vals = NULL;
    size_t nvals = 0;
    int rc = 0;
    while (getline(&line, &cap, in) >= 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0')
            continue;
        if ((f->n & 4095) == 0 && host->cancel_requested(job)) {
            rc = fail(err, errlen, SMH_E_CANCELLED, "linreg stopped (cancelled) after %zu rows; no model written",
                      f->n);
            break;
        }
        size_t bad = 0;
        long got = parse_row(line, vals, nvals, &bad);
        if (got < 0 && lineno == 1)
            continue; /* a header */
        if (got < 0) {
            line[strcspn(line, "\r\n")] = '\0';
            rc = fail(err, errlen, SMH_E_INVAL, "%s:%ld: field %zu is not a number: \"%.80s\"", file, lineno,
                      bad + 1, line);
            break;
        }
        if ((size_t)got > nvals) { /* first row, or a longer one: size the buffer and parse again */
            free(vals);
            nvals = (size_t)got;
            vals = malloc(nvals * sizeof(double));
            if (vals == NULL) {
                rc = fail(err, errlen, SMH_E_NOMEM, "out of memory");
                break;
            }
            parse_row(line, vals, nvals, &bad);
        }
        if (f->ncols == 0 && (rc = start_fit(f, o, (size_t)got, file, lineno, err, errlen)) != 0)
            break;
        if ((size_t)got != f->ncols) {
            rc = fail(err, errlen, SMH_E_INVAL, "%s:%ld: %ld columns, but the data before has %zu", file, lineno,
                      got, f->ncols);
            break;
        }
        add_row(f, o, vals);
    }
    if (rc == 0 && ferror(in))
        rc = fail(err, errlen, SMH_E_FAIL, "error reading %s: %s", file, strerror(errno));
    free(vals);
    free(line);
    fclose(in);
    return rc;
}

/* Solve (X'X + l2*D) beta = X'y by Cholesky; D is the identity without the intercept's entry. */
static int solve(const fit *f, const opts *o, double *beta, char *err, size_t errlen) {
    size_t p = f->p;
    double *L = calloc(p * p, sizeof(double));
    if (L == NULL)
        return fail(err, errlen, SMH_E_NOMEM, "out of memory");
    double maxdiag = 0;
    for (size_t i = 0; i < p; i++)
        maxdiag = fmax(maxdiag, f->xtx[i * p + i]);
    for (size_t i = 0; i < p; i++) {
        for (size_t j = 0; j <= i; j++) {
            double s = f->xtx[i * p + j] + ((i == j && !(o->intercept && i == 0)) ? o->l2 : 0.0);
            for (size_t k = 0; k < j; k++)
                s -= L[i * p + k] * L[j * p + k];
            if (i == j) {
                if (s <= 1e-12 * fmax(maxdiag, 1.0)) {
                    free(L);
                    return fail(err, errlen, SMH_E_INVAL,
                                "the normal equations are singular: %zu rows for %zu coefficients, or collinear "
                                "(or constant) feature columns; remove them or set the l2 hyperparameter above 0",
                                f->n, p);
                }
                L[i * p + i] = sqrt(s);
            } else {
                L[i * p + j] = s / L[j * p + j];
            }
        }
    }
    for (size_t i = 0; i < p; i++) { /* L z = b */
        double s = f->xty[i];
        for (size_t k = 0; k < i; k++)
            s -= L[i * p + k] * beta[k];
        beta[i] = s / L[i * p + i];
    }
    for (size_t i = p; i-- > 0;) { /* L' beta = z */
        double s = beta[i];
        for (size_t k = i + 1; k < p; k++)
            s -= L[k * p + i] * beta[k];
        beta[i] = s / L[i * p + i];
    }
    free(L);
    return 0;
}

static int mkdirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int write_text(const char *dir, const char *name, const char *text, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (mkdirs(dir) != 0)
        return fail(err, errlen, SMH_E_FAIL, "cannot create %s: %s", dir, strerror(errno));
    FILE *out = fopen(path, "w");
    if (out == NULL)
        return fail(err, errlen, SMH_E_FAIL, "cannot write %s: %s", path, strerror(errno));
    fputs(text, out);
    if (fclose(out) != 0)
        return fail(err, errlen, SMH_E_FAIL, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every regular, non-hidden file in dir, sorted.  Returns the count, or -1. */
static long list_files(const char *dir, char ***out, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return fail(err, errlen, SMH_E_NOTFOUND, "cannot read the channel directory %s: %s", dir, strerror(errno)),
               -1;
    char **v = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        char **nv = realloc(v, (n + 1) * sizeof *v);
        if (nv == NULL || (nv[n] = strdup(path)) == NULL) {
            closedir(d);
            return fail(err, errlen, SMH_E_NOMEM, "out of memory"), -1;
        }
        v = nv;
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(v, n, sizeof *v, name_cmp);
    *out = v;
    return (long)n;
}

static int get_opts(const smh_host_api *host, const smh_job *job, opts *o, char *err, size_t errlen) {
    o->channel = "train";
    o->target = -1;
    o->intercept = 1;
    o->l2 = 0;
    smh_status st;
    if ((st = host->hp_str(job, "channel", &o->channel)) != SMH_OK && st != SMH_E_NOTFOUND)
        return fail(err, errlen, SMH_E_INVAL, "hyperparameter channel: not usable as a string");
    if ((st = host->hp_int64(job, "target_column", &o->target)) != SMH_OK && st != SMH_E_NOTFOUND)
        return fail(err, errlen, SMH_E_INVAL, "hyperparameter target_column must be an integer");
    if ((st = host->hp_bool(job, "fit_intercept", &o->intercept)) != SMH_OK && st != SMH_E_NOTFOUND)
        return fail(err, errlen, SMH_E_INVAL, "hyperparameter fit_intercept must be true or false");
    if ((st = host->hp_double(job, "l2", &o->l2)) != SMH_OK && st != SMH_E_NOTFOUND)
        return fail(err, errlen, SMH_E_INVAL, "hyperparameter l2 must be a number");
    if (!(o->l2 >= 0))
        return fail(err, errlen, SMH_E_RANGE, "hyperparameter l2 must be >= 0, not %g", o->l2);
    return 0;
}

static int train(const smh_host_api *host, const smh_job *job, char *err, size_t errlen) {
    opts o;
    int rc = get_opts(host, job, &o, err, errlen);
    if (rc != 0)
        return rc;
    const char *dir = host->channel_dir(job, o.channel);
    if (dir == NULL)
        return fail(err, errlen, SMH_E_NOTFOUND,
                    "no channel named '%s' in inputdataconfig.json; give the data as channel '%s' or name the "
                    "channel with the 'channel' hyperparameter",
                    o.channel, o.channel);
    char **files = NULL;
    long nfiles = list_files(dir, &files, err, errlen);
    if (nfiles < 0)
        return SMH_E_NOTFOUND;

    fit f;
    memset(&f, 0, sizeof f);
    for (long i = 0; i < nfiles && rc == 0; i++)
        rc = read_file(host, job, &f, &o, files[i], err, errlen);
    for (long i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    if (rc == 0 && f.n == 0)
        rc = fail(err, errlen, SMH_E_INVAL, "channel '%s' (%s) holds no data rows", o.channel, dir);

    double *beta = NULL;
    if (rc == 0 && (beta = calloc(f.p, sizeof(double))) == NULL)
        rc = fail(err, errlen, SMH_E_NOMEM, "out of memory");
    if (rc == 0)
        rc = solve(&f, &o, beta, err, errlen);
    if (rc == 0) {
        /* SSE = y'y - 2 b'X'y + b'X'X b, from the sums already kept. */
        double bxy = 0, bxxb = 0;
        for (size_t i = 0; i < f.p; i++) {
            bxy += beta[i] * f.xty[i];
            for (size_t j = 0; j < f.p; j++) {
                double a = i >= j ? f.xtx[i * f.p + j] : f.xtx[j * f.p + i];
                bxxb += beta[i] * a * beta[j];
            }
        }
        double sse = fmax(f.yy - 2 * bxy + bxxb, 0.0);
        double sst = f.yy - f.sy * f.sy / (double)f.n;
        double mse = sse / (double)f.n;
        double r2 = sst > 0 ? 1.0 - sse / sst : 1.0;

        char *model = NULL, *metrics = NULL;
        size_t mlen = 0, xlen = 0;
        FILE *m = open_memstream(&model, &mlen);
        if (m == NULL)
            rc = fail(err, errlen, SMH_E_NOMEM, "out of memory");
        else {
            size_t k = 0;
            fprintf(m, "{\"intercept\": %.17g, \"coefficients\": [", o.intercept ? beta[k++] : 0.0);
            for (size_t j = 0; k < f.p; j++, k++)
                fprintf(m, "%s%.17g", j ? ", " : "", beta[k]);
            fprintf(m, "], \"fit_intercept\": %s, \"l2\": %.17g, \"target_column\": %lld, \"columns\": %zu}\n",
                    o.intercept ? "true" : "false", o.l2, (long long)o.target, f.ncols);
            fclose(m);
            rc = write_text(host->job_path(job, SMH_PATH_MODEL), "model.json", model, err, errlen);
        }
        FILE *x = rc == 0 ? open_memstream(&metrics, &xlen) : NULL;
        if (rc == 0 && x == NULL)
            rc = fail(err, errlen, SMH_E_NOMEM, "out of memory");
        else if (rc == 0) {
            fprintf(x, "{\"rows\": %zu, \"mse\": %.17g, \"rmse\": %.17g, \"r2\": %.17g}\n", f.n, mse, sqrt(mse), r2);
            fclose(x);
            rc = write_text(host->job_path(job, SMH_PATH_OUTPUT_DATA), "metrics.json", metrics, err, errlen);
        }
        if (rc == 0)
            host->log(LR, SMH_LOG_INFO, "fitted %zu coefficients on %zu rows: train_mse=%.6g train_r2=%.6f", f.p,
                      f.n, mse, r2);
        free(model);
        free(metrics);
    }
    free(beta);
    free(f.xtx);
    free(f.xty);
    free(f.row);
    return rc;
}

/* The default entry point: found whatever the file is called. */
SMH_TRAINER(smh_train) { return train(host, job, err, errlen); }
