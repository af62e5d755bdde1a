/* policy_source.h - the texts of one policy version, read from disk.
 *
 * A policy version is the policy file plus the modules in the policy
 * directory and its tenants/ overrides, read together into memory and
 * named by one content hash. Immutable once read; shared by all threads. */
#ifndef HF_POLICY_SOURCE_H
#define HF_POLICY_SOURCE_H

#include <stddef.h>

#define HF_POLICY_NAME_MAX 64        /* module name or tenant id */
#define HF_POLICY_FILES_MAX 1000     /* modules + overrides */
#define HF_POLICY_BYTES_MAX (4u << 20) /* all texts together */

struct policy_text {
    char name[HF_POLICY_NAME_MAX + 1]; /* module name / tenant id / "" for the main file */
    char *chunkname;                 /* "@path", so errors read path:line */
    char *src;                       /* the text, NUL-terminated */
    size_t len;
};

struct policy_source {
    char version[17];                /* 16 hex digits of SHA-256 over every text */
    struct policy_text main;         /* the policy file */
    size_t n_modules;
    struct policy_text *modules;     /* DIR/NAME.lua, require("NAME") */
    size_t n_tenants;
    struct policy_text *tenants;     /* DIR/tenants/TENANT_ID.lua */
};

/* Read file and the .lua files of dir (a missing dir counts as empty).
 * 0 and *out, or HF_EPOLICY with "path: reason" in err. */
int policy_source_read(const char *file, const char *dir,
                       struct policy_source **out, char *err, size_t errlen);

/* Free; NULL is fine. */
void policy_source_free(struct policy_source *s);

/* The whole version as one byte string (malloc'd) for the database, and
 * back. A decoded bundle has the same version as the files it was read
 * from; its chunk names read "label", "label/NAME.lua" and
 * "label/tenants/ID.lua" (label such as "store:<version>"). decode returns
 * HF_EPOLICY with a sentence in err for anything malformed. */
int policy_source_encode(const struct policy_source *s, char **out, size_t *outlen);
int policy_source_decode(const char *buf, size_t len, const char *label,
                         struct policy_source **out, char *err, size_t errlen);

/* 1 when name may name a module or tenant file: [A-Za-z0-9_], 1..64. */
int policy_source_name_ok(const char *name, size_t len);

#endif
