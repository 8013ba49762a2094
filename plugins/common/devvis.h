/* Device visibility variables, parsed the way the software that reads them does (shared by the device backend
 * plugins, header-only like exec_program.h; unit-tested by tests/unit/test_devvis.c).
 *
 * NVIDIA_VISIBLE_DEVICES (the NVIDIA container runtime): unset or "all" -> every device; "none", "void" or ""
 *   -> none; otherwise a comma-separated list of indices and UUIDs ("0,1", "GPU-8d3c...", "MIG-...").
 * CUDA_VISIBLE_DEVICES (the CUDA runtime): unset -> every device; "" -> none; otherwise a comma-separated list
 *   of indices (counted among the devices the process can see) and UUIDs or UUID prefixes ("GPU-8d3c",
 *   "MIG-..."), read up to the first entry that is not one of those or repeats an earlier one -- CUDA ignores
 *   the rest, so "0,1,-1,2" means 0 and 1, and "all" means no device at all.
 * ROCR_VISIBLE_DEVICES (ROCm): as CUDA_VISIBLE_DEVICES, with "GPU-<hex>" UUIDs.
 * NEURON_RT_VISIBLE_CORES (the Neuron runtime): unset -> every core; otherwise comma-separated core numbers
 *   and ranges ("0-3,6"), numbered across devices in device order.
 */
#ifndef SMHOST_PLUGINS_DEVVIS_H
#define SMHOST_PLUGINS_DEVVIS_H

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define DV_MAX 128

typedef struct dv_list {
    int all;               /* every device is visible (the variable is unset or "all") */
    int n;                 /* entries in item[] (0 and !all: none is visible) */
    char item[DV_MAX][96]; /* an index ("3") or a UUID or UUID prefix ("GPU-8d3c") */
} dv_list;

static inline int dv_is_index(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return 0;
    return 1;
}

static inline int dv_is_uuid(const char *s) {
    return (!strncmp(s, "GPU-", 4) || !strncmp(s, "MIG-", 4)) && s[4] != '\0';
}

/* Split value at commas into out->item, trimming blanks.  `cuda`: stop at the first entry that is not an
 * index or UUID, or that repeats one.  Returns the number of entries kept. */
static inline int dv_split(const char *value, dv_list *out, int cuda) {
    out->n = 0;
    const char *p = value;
    while (*p && out->n < DV_MAX) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) p++, len--;
        while (len && isspace((unsigned char)p[len - 1])) len--;
        char tok[96];
        if (len >= sizeof tok) len = sizeof tok - 1;
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (cuda) {
            if (!dv_is_index(tok) && !dv_is_uuid(tok)) break;
            int dup = 0;
            for (int i = 0; i < out->n; i++)
                if (!strcmp(out->item[i], tok)) dup = 1;
            if (dup) break;
        }
        if (tok[0]) memcpy(out->item[out->n++], tok, len + 1);
        if (!e) break;
        p = e + 1;
    }
    return out->n;
}

/* NVIDIA_VISIBLE_DEVICES.  value NULL means unset. */
static inline void dv_parse_nvidia(const char *value, dv_list *out) {
    memset(out, 0, sizeof *out);
    if (value == NULL || !strcmp(value, "all")) {
        out->all = 1;
        return;
    }
    if (!*value || !strcmp(value, "none") || !strcmp(value, "void")) return;
    dv_split(value, out, 0);
}

/* CUDA_VISIBLE_DEVICES and ROCR_VISIBLE_DEVICES.  value NULL means unset. */
static inline void dv_parse_cuda(const char *value, dv_list *out) {
    memset(out, 0, sizeof *out);
    if (value == NULL) {
        out->all = 1;
        return;
    }
    dv_split(value, out, 1);
}

/* Does entry `item` name the device at `position` (its index among the devices the list applies to) with
 * UUID `uuid` (may be NULL or "")?  A UUID entry matches a UUID it is a prefix of. */
static inline int dv_item_matches(const char *item, int position, const char *uuid) {
    if (dv_is_index(item)) return position >= 0 && atoi(item) == position && strlen(item) < 10;
    return uuid && *uuid && !strncmp(uuid, item, strlen(item));
}

static inline int dv_visible(const dv_list *l, int position, const char *uuid) {
    if (l->all) return 1;
    for (int i = 0; i < l->n; i++)
        if (dv_item_matches(l->item[i], position, uuid)) return 1;
    return 0;
}

/* How many index entries (not UUIDs) the list holds. */
static inline int dv_index_entries(const dv_list *l) {
    int n = 0;
    for (int i = 0; i < l->n; i++) n += dv_is_index(l->item[i]);
    return n;
}

/* NEURON_RT_VISIBLE_CORES into a set of core numbers (set[c] = 1, c < max).  value NULL: every core.
 * Returns 0, or -1 when the value is malformed ("a-b" with b < a, a non-number, a number >= max). */
static inline int dv_parse_cores(const char *value, unsigned char *set, int max) {
    memset(set, value == NULL ? 1 : 0, (size_t)max);
    if (value == NULL) return 0;
    const char *p = value;
    while (*p) {
        while (isspace((unsigned char)*p)) p++;
        if (!isdigit((unsigned char)*p)) return -1;
        char *end;
        long a = strtol(p, &end, 10), b = a;
        p = end;
        while (isspace((unsigned char)*p)) p++;
        if (*p == '-') {
            p++;
            while (isspace((unsigned char)*p)) p++;
            if (!isdigit((unsigned char)*p)) return -1;
            b = strtol(p, &end, 10);
            p = end;
            while (isspace((unsigned char)*p)) p++;
        }
        if (b < a || b >= max) return -1;
        for (long c = a; c <= b; c++) set[c] = 1;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    return 0;
}

/* [devices] isolate: rank `rank` of `nranks` gets an equal, contiguous share of n units, [*first, *first + *per).
 * -1 when there are fewer units than ranks or the rank is out of range. */
static inline int dv_share(int n, int rank, int nranks, int *first, int *per) {
    if (nranks <= 0 || rank < 0 || rank >= nranks || n < nranks) return -1;
    *per = n / nranks;
    *first = rank * *per;
    return 0;
}

/* Append item to the comma-separated list in value (cap bytes, *used of them taken).  -1 when it does not fit. */
static inline int dv_append(char *value, size_t cap, size_t *used, const char *item) {
    size_t len = strlen(item), comma = *used ? 1 : 0;
    if (*used + comma + len >= cap) return -1;
    if (comma) value[(*used)++] = ',';
    memcpy(value + *used, item, len + 1);
    *used += len;
    return 0;
}

#endif
