/* policy.h - the operator's Lua policy: versions, sandbox, limits, calls.
 *
 * Three objects:
 * - struct policy_engine holds the active policy version (a generation)
 *   and swaps in a new one atomically after it compiled and passed its own
 *   examples. Thread-safe.
 * - struct policy is one sandboxed Lua state built from one generation,
 *   used by one thread at a time. A request borrows one from the engine's
 *   pool (policy_acquire, which syncs it to the newest generation) for its
 *   policy calls and gives it back (policy_release), so it moves to a new
 *   generation between requests, never during one.
 * - policy_check_* ask the loaded policy one question each.
 *
 * Every decision fails closed: a Lua error, a wrong return value or a hit
 * limit is HF_EPOLICY, which the API answers with 500 policy_error. */
#ifndef HF_POLICY_H
#define HF_POLICY_H

#include <stddef.h>

#include "store.h"
#include "url.h"

#define HF_POLICY_CODE_MAX 64
#define HF_POLICY_MESSAGE_MAX 256
#define HF_POLICY_ERROR_MAX 1024

struct policy_engine;
struct policy;

/* What a policy function sees as ctx. Strings are borrowed for the call. */
struct policy_ctx {
    const struct tenant *tenant;
    const char *mode;           /* "live" or "test": the key's mode */
    const char *contractor_id;
    const char *method;
    const char *path;
    const char *remote_addr;
    long long now;
    int rate_limited;           /* the core's rate limits are exceeded */
    int retry_after;            /* seconds until they are not */
};

/* A decision. On deny, code/message/status say what the client gets. */
struct policy_verdict {
    int allow;
    char code[HF_POLICY_CODE_MAX + 1];
    char message[HF_POLICY_MESSAGE_MAX + 1];
    int status;                 /* HTTP status for a deny */
    long long us;               /* how long the policy took to answer */
    long instructions;          /* budget it used: VM instructions (counted in
                                 * hundreds by the hook) and the work charged
                                 * by C functions (a match step, 16 bytes) */
};

/* What GET /admin/v1/policy shows. */
struct policy_status {
    char source[8];             /* "file" or "store": where versions come from */
    char version[24];           /* active version */
    char wanted[24];            /* the version the source offered last */
    long long loaded_at;        /* when it became active (Unix seconds) */
    unsigned long reloads_ok;   /* reloads that activated a new version */
    unsigned long reloads_unchanged; /* reloads that found the same texts */
    unsigned long reloads_failed;
    long long last_error_at;    /* 0 when no reload has failed */
    char last_error[HF_POLICY_ERROR_MAX]; /* "file:line: reason" */
};

/* Load file and the modules and tenants/ overrides of dir as the first
 * generation. HF_EPOLICY with "file:line: reason" in err when it does not
 * compile or an example fails. */
int policy_engine_new(const char *file, const char *dir,
                      struct policy_engine **out, char *err, size_t errlen);
/* Free; every struct policy built from it must be freed first. NULL ok. */
void policy_engine_free(struct policy_engine *e);

/* Where an engine gets a version: 0 with *out (the engine takes it), or
 * HF_E… with a sentence in err. Called under the engine's reload lock, so
 * one call at a time. */
struct policy_source;
typedef int (*policy_source_fn)(void *arg, struct policy_source **out, char *err,
                                size_t errlen);
/* An engine whose versions come from source(arg) (kind names it in the
 * status, e.g. "store"); nothing is loaded until policy_engine_start. */
int policy_engine_new_with(policy_source_fn source, void *arg, const char *kind,
                           struct policy_engine **out, char *err, size_t errlen);
/* Load the source's first version; HF_EPOLICY with the reason in err. */
int policy_engine_start(struct policy_engine *e, char *err, size_t errlen);

/* Ask the source again (files: read them again); when the version
 * changed, compile it and run its examples in a fresh state, then activate
 * it for every worker. On
 * failure nothing changes: HF_EPOLICY, the reason in msg, the log and the
 * status. On success msg holds the active version; *changed says whether
 * it is new. One reload runs at a time. */
int policy_engine_reload(struct policy_engine *e, int *changed, char *msg,
                         size_t msglen);
void policy_engine_status(struct policy_engine *e, struct policy_status *out);

/* Make *p a state of the active generation, building one when *p is NULL,
 * older, or spoiled by a hit limit. If building fails the old state stays.
 * 0, or HF_EPOLICY when there is no usable state at all. */
int policy_sync(struct policy_engine *e, struct policy **p);
/* Borrow a state for one request: the one given back last (its memory is
 * still in the CPU's caches; a state per worker thread was not), made
 * current by policy_sync. A few states then serve every worker. 0, or
 * HF_EPOLICY with *p NULL. */
int policy_acquire(struct policy_engine *e, struct policy **p);
/* Give it back (*p becomes NULL; NULL is fine). A spoiled state, or one
 * of an older version, is closed instead. */
void policy_release(struct policy_engine *e, struct policy **p);
/* Close a state and release its generation; NULL is fine. */
void policy_free(struct policy *p);
/* The version (content hash) this state runs; borrowed until policy_free. */
const char *policy_version(const struct policy *p);

/* policy.check_tenant(ctx), or the tenant's override; allow when neither
 * is defined. */
int policy_check_tenant(struct policy *p, const struct policy_ctx *ctx,
                        struct policy_verdict *out);
/* policy.check_return_url(url, ctx), or the tenant's override, for a URL
 * the core parser accepted. */
int policy_check_return_url(struct policy *p, const char *raw,
                            const struct url *u, const struct policy_ctx *ctx,
                            struct policy_verdict *out);

/* policy.check_webhook_url(url, ctx), or the tenant's override; without
 * either, https to a name or public address is allowed and nothing else.
 * A refusal is always 400 invalid_webhook_url. */
int policy_check_webhook_url(struct policy *p, const char *raw,
                             const struct url *u, const struct policy_ctx *ctx,
                             struct policy_verdict *out);

/* For `hostflow policy check`: compile file + dir and run every example.
 * 0 with the version and example count in msg, or HF_EPOLICY with the
 * first error. */
int policy_check_files(const char *file, const char *dir, char *msg, size_t msglen);
/* The same for a version already in memory (freed here). */
int policy_check_source(struct policy_source *src, char *msg, size_t msglen);

#endif
