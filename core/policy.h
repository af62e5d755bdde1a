/* policy.h - the operator's Lua policy: loading, sandbox, limits, calls.
 *
 * A struct policy is one Lua state with the policy loaded into it, owned by
 * one thread at a time. Every decision fails closed: a Lua error, a broken
 * return value or a hit limit is HF_EPOLICY, which the API answers with
 * 500 policy_error and never with a success. */
#ifndef HF_POLICY_H
#define HF_POLICY_H

#include <stddef.h>

#include "store.h"
#include "url.h"

#define HF_POLICY_CODE_MAX 64
#define HF_POLICY_MESSAGE_MAX 256

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
};

/* A decision. On deny, code/message/status say what the client gets. */
struct policy_verdict {
    int allow;
    char code[HF_POLICY_CODE_MAX + 1];
    char message[HF_POLICY_MESSAGE_MAX + 1];
    int status;                 /* HTTP status for a deny */
};

/* Compile file in a fresh sandboxed state and run its examples. On failure
 * returns HF_EPOLICY with "file:line: reason" in err; *out untouched. */
int policy_load(const char *file, struct policy **out, char *err, size_t errlen);
/* Close the state; NULL is fine. */
void policy_free(struct policy *p);

/* Content hash of the loaded file (16 hex digits); borrowed until free. */
const char *policy_version(const struct policy *p);

/* policy.check_tenant(ctx); allow when the policy does not define it. */
int policy_check_tenant(struct policy *p, const struct policy_ctx *ctx,
                        struct policy_verdict *out);
/* policy.check_return_url(url, ctx) for an already-parsed URL. */
int policy_check_return_url(struct policy *p, const char *raw,
                            const struct url *u, const struct policy_ctx *ctx,
                            struct policy_verdict *out);

#endif
