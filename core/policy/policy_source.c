/* policy_source.c - read a policy version (file, modules, tenant
 * overrides) from disk into memory and hash it. */
#define _POSIX_C_SOURCE 200809L
#include "policy_source.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "token.h"

int policy_source_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > HF_POLICY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

static int read_text(const char *path, const char *name, struct policy_text *t,
                     size_t *budget, char *err, size_t errlen)
{
    /* not blocking at open: a FIFO named like a policy would hang the
     * reload (and every later one) until a writer came; fstat refuses it */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    struct stat st;
    size_t n;

    memset(t, 0, sizeof t[0]);
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return HF_EPOLICY;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
        (size_t)st.st_size > *budget) {
        fclose(f);
        snprintf(err, errlen, "%s: not a regular file, or the policy texts "
                 "exceed %u bytes together", path, HF_POLICY_BYTES_MAX);
        return HF_EPOLICY;
    }
    t->src = malloc((size_t)st.st_size + 1);
    t->chunkname = malloc(strlen(path) + 2);
    if (!t->src || !t->chunkname) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    /* the file may grow between fstat and fread: read at most what fits */
    n = fread(t->src, 1, (size_t)st.st_size, f);
    fclose(f);
    t->src[n] = '\0';
    t->len = n;
    *budget -= n;
    sprintf(t->chunkname, "@%s", path);
    snprintf(t->name, sizeof t->name, "%s", name);
    return 0;
}

static void text_free(struct policy_text *t)
{
    free(t->src);
    free(t->chunkname);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct policy_text *)a)->name,
                  ((const struct policy_text *)b)->name);
}

/* Read every NAME.lua in dir into *texts (sorted by name, so the version
 * hash does not depend on directory order). A missing dir is empty. */
static int read_dir(const char *dir, struct policy_text **texts, size_t *n,
                    size_t *budget, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t cap = 0;
    int rc = 0;

    *texts = NULL;
    *n = 0;
    if (!d)
        return errno == ENOENT || errno == ENOTDIR ? 0 : (snprintf(err, errlen,
               "%s: cannot read directory: %s", dir, strerror(errno)), HF_EPOLICY);
    while (rc == 0 && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        char path[4096];

        if (len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0)
            continue; /* editors' swap and backup files are not policy */
        if (!policy_source_name_ok(e->d_name, len - 4)) {
            snprintf(err, errlen, "%s/%s: file names are letters, digits and '_' "
                     "followed by .lua", dir, e->d_name);
            rc = HF_EPOLICY;
            break;
        }
        if (*n == HF_POLICY_FILES_MAX) {
            snprintf(err, errlen, "%s: more than %d policy files", dir, HF_POLICY_FILES_MAX);
            rc = HF_EPOLICY;
            break;
        }
        if (*n == cap) {
            struct policy_text *grown;
            cap = cap ? cap * 2 : 8;
            grown = realloc(*texts, cap * sizeof **texts);
            if (!grown) {
                rc = HF_ENOMEM;
                break;
            }
            *texts = grown;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        e->d_name[len - 4] = '\0';
        rc = read_text(path, e->d_name, &(*texts)[*n], budget, err, errlen);
        if (rc == 0)
            (*n)++;
        else
            text_free(&(*texts)[*n]);
    }
    closedir(d);
    if (*n)
        qsort(*texts, *n, sizeof **texts, by_name);
    return rc;
}

/* acc = H(acc || kind || NUL || name || NUL || text): the version names the
 * texts and their roles, not the paths they were read from. */
static void hash_text(unsigned char *acc, const char *kind, const struct policy_text *t)
{
    size_t klen = strlen(kind) + 1, nlen = strlen(t->name) + 1;
    size_t total = HF_HASH_BYTES + klen + nlen + t->len;
    unsigned char *buf = malloc(total);

    if (!buf)
        abort(); /* a few MiB at most, bounded before */
    memcpy(buf, acc, HF_HASH_BYTES);
    memcpy(buf + HF_HASH_BYTES, kind, klen);
    memcpy(buf + HF_HASH_BYTES + klen, t->name, nlen);
    memcpy(buf + HF_HASH_BYTES + klen + nlen, t->src, t->len);
    token_hash(buf, total, acc);
    free(buf);
}

/* The version: 16 hex digits of the hash over every text in order. */
static void name_version(struct policy_source *s)
{
    unsigned char acc[HF_HASH_BYTES] = {0};

    hash_text(acc, "policy", &s->main);
    for (size_t i = 0; i < s->n_modules; i++)
        hash_text(acc, "module", &s->modules[i]);
    for (size_t i = 0; i < s->n_tenants; i++)
        hash_text(acc, "tenant", &s->tenants[i]);
    token_hex(acc, 8, s->version);
}

int policy_source_read(const char *file, const char *dir,
                       struct policy_source **out, char *err, size_t errlen)
{
    struct policy_source *s = calloc(1, sizeof *s);
    size_t budget = HF_POLICY_BYTES_MAX;
    char tenants_dir[4096];
    int rc;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    rc = read_text(file, "", &s->main, &budget, err, errlen);
    if (rc == 0)
        rc = read_dir(dir, &s->modules, &s->n_modules, &budget, err, errlen);
    if (rc == 0) {
        snprintf(tenants_dir, sizeof tenants_dir, "%s/tenants", dir);
        rc = read_dir(tenants_dir, &s->tenants, &s->n_tenants, &budget, err, errlen);
    }
    if (rc != 0) {
        policy_source_free(s);
        return rc == HF_ENOMEM ? (snprintf(err, errlen, "out of memory"), rc) : rc;
    }
    name_version(s);
    *out = s;
    return 0;
}

void policy_source_free(struct policy_source *s)
{
    if (!s)
        return;
    text_free(&s->main);
    for (size_t i = 0; i < s->n_modules; i++)
        text_free(&s->modules[i]);
    for (size_t i = 0; i < s->n_tenants; i++)
        text_free(&s->tenants[i]);
    free(s->modules);
    free(s->tenants);
    free(s);
}

/* ---- bundles ------------------------------------------------------------
 * One version as one byte string, for storing it in the database:
 *   "hostflow-policy-bundle 1\n"
 *   "P <len>\n" <text> "\n"            the policy file
 *   "M <name> <len>\n" <text> "\n"     each module
 *   "T <name> <len>\n" <text> "\n"     each tenant override
 * Texts are taken as bytes, so any content round-trips. */

#define BUNDLE_MAGIC "hostflow-policy-bundle 1\n"

int policy_source_encode(const struct policy_source *s, char **out, size_t *outlen)
{
    size_t cap = sizeof BUNDLE_MAGIC + 32 + s->main.len, n = 0;
    char *buf;

    for (size_t i = 0; i < s->n_modules; i++)
        cap += HF_POLICY_NAME_MAX + 32 + s->modules[i].len;
    for (size_t i = 0; i < s->n_tenants; i++)
        cap += HF_POLICY_NAME_MAX + 32 + s->tenants[i].len;
    if (!(buf = malloc(cap)))
        return HF_ENOMEM;
    n += (size_t)sprintf(buf + n, "%s", BUNDLE_MAGIC);
    n += (size_t)sprintf(buf + n, "P %zu\n", s->main.len);
    memcpy(buf + n, s->main.src, s->main.len);
    n += s->main.len;
    buf[n++] = '\n';
    for (int kind = 0; kind < 2; kind++) {
        const struct policy_text *t = kind ? s->tenants : s->modules;
        size_t count = kind ? s->n_tenants : s->n_modules;

        for (size_t i = 0; i < count; i++) {
            n += (size_t)sprintf(buf + n, "%c %s %zu\n", kind ? 'T' : 'M', t[i].name, t[i].len);
            memcpy(buf + n, t[i].src, t[i].len);
            n += t[i].len;
            buf[n++] = '\n';
        }
    }
    *out = buf;
    *outlen = n;
    return 0;
}

/* Digits at *p (no sign, no leading zero but "0") up to stop; -1 if not. */
static long long strict_number(const char **p, const char *stop)
{
    const char *q = *p;
    long long n = 0;

    if (q >= stop || *q < '0' || *q > '9' || (*q == '0' && q + 1 < stop && q[1] != '\n'))
        return -1;
    for (; q < stop && *q >= '0' && *q <= '9'; q++) {
        if (n > HF_POLICY_BYTES_MAX)
            return -1;
        n = n * 10 + (*q - '0');
    }
    *p = q;
    return n;
}

/* One "K [name ]len\n" header and its text at *pos into t: exactly one
 * spelling, so a bundle encodes back to the same bytes. */
static int decode_text(const char *buf, size_t len, size_t *pos, char kind,
                       const char *chunk_prefix, struct policy_text *t, size_t *budget)
{
    const char *p = buf + *pos, *end = buf + len, *nl = memchr(p, '\n', len - *pos);
    char name[HF_POLICY_NAME_MAX + 1] = "";
    long long n;

    memset(t, 0, sizeof *t);
    if (!nl || nl - p < 3 || p[0] != kind || p[1] != ' ')
        return HF_EPOLICY;
    p += 2;
    if (kind != 'P') {
        const char *sp = memchr(p, ' ', (size_t)(nl - p));

        if (!sp || !policy_source_name_ok(p, (size_t)(sp - p)))
            return HF_EPOLICY;
        memcpy(name, p, (size_t)(sp - p));
        name[sp - p] = '\0';
        p = sp + 1;
    }
    n = strict_number(&p, nl);
    if (n < 0 || p != nl || (size_t)n > *budget || (size_t)(end - nl - 1) < (size_t)n + 1 ||
        nl[1 + n] != '\n')
        return HF_EPOLICY;
    t->src = malloc((size_t)n + 1);
    t->chunkname = malloc(strlen(chunk_prefix) + strlen(name) + 8);
    if (!t->src || !t->chunkname)
        return HF_ENOMEM;
    memcpy(t->src, nl + 1, (size_t)n);
    t->src[n] = '\0';
    t->len = (size_t)n;
    sprintf(t->chunkname, "@%s%s%s", chunk_prefix, name, kind == 'P' ? "" : ".lua");
    snprintf(t->name, sizeof t->name, "%s", name);
    *budget -= (size_t)n;
    *pos = (size_t)(nl + 1 - buf) + (size_t)n + 1;
    return 0;
}

/* Decode the texts of kind that follow at *pos, in name order. */
static int decode_list(const char *buf, size_t len, size_t *pos, char kind,
                       const char *chunk_prefix, struct policy_text **texts, size_t *n,
                       size_t *budget)
{
    size_t cap = 0;

    while (*pos < len && buf[*pos] == kind) {
        int rc;

        if (*n == HF_POLICY_FILES_MAX)
            return HF_EPOLICY;
        if (*n == cap) {
            struct policy_text *grown;
            cap = cap ? cap * 2 : 8;
            if (!(grown = realloc(*texts, cap * sizeof **texts)))
                return HF_ENOMEM;
            *texts = grown;
        }
        rc = decode_text(buf, len, pos, kind, chunk_prefix, &(*texts)[*n], budget);
        if (rc != 0) {
            text_free(&(*texts)[*n]);
            return rc;
        }
        if (*n && strcmp((*texts)[*n - 1].name, (*texts)[*n].name) >= 0) {
            (*n)++;
            return HF_EPOLICY; /* names are sorted and unique */
        }
        (*n)++;
    }
    return 0;
}

int policy_source_decode(const char *buf, size_t len, const char *label,
                         struct policy_source **out, char *err, size_t errlen)
{
    struct policy_source *s = calloc(1, sizeof *s);
    size_t pos = sizeof BUNDLE_MAGIC - 1, budget = HF_POLICY_BYTES_MAX;
    char prefix[64];
    int rc;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    rc = len >= pos && memcmp(buf, BUNDLE_MAGIC, pos) == 0 ? 0 : HF_EPOLICY;
    snprintf(prefix, sizeof prefix, "%s", label);
    if (rc == 0)
        rc = decode_text(buf, len, &pos, 'P', prefix, &s->main, &budget);
    snprintf(prefix, sizeof prefix, "%s/", label);
    if (rc == 0)
        rc = decode_list(buf, len, &pos, 'M', prefix, &s->modules, &s->n_modules, &budget);
    snprintf(prefix, sizeof prefix, "%s/tenants/", label);
    if (rc == 0)
        rc = decode_list(buf, len, &pos, 'T', prefix, &s->tenants, &s->n_tenants, &budget);
    if (rc == 0 && pos != len)
        rc = HF_EPOLICY;
    if (rc != 0) {
        policy_source_free(s);
        snprintf(err, errlen, rc == HF_ENOMEM ? "out of memory"
                 : "%s: not a well-formed policy bundle", label);
        return rc;
    }
    name_version(s);
    *out = s;
    return 0;
}
