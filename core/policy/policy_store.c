/* policy_store.c - the store as the engine's policy source, and the poll
 * that follows the fleet's active version. */
#define _POSIX_C_SOURCE 200809L
#include "policy_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "periodic.h"
#include "policy.h"
#include "policy_source.h"
#include "store.h"

struct policy_store {
    struct store *reader;          /* used under the engine's reload lock only */
    struct store *poller;          /* the polling thread's connection */
    struct policy_engine *engine;
    struct periodic *thread;       /* the poll; NULL when not watching */
    long long seen_seq;            /* the activation last acted on */
    long long retry_at, retry_delay; /* after a version that could not be read */
};

#define RETRY_MAX_MS 30000

void policy_store_label(const char *version, char *out, size_t outlen)
{
    snprintf(out, outlen, "store:%s", version);
}

/* policy_source_fn: the bundle of the active version. */
static int read_active(void *arg, struct policy_source **out, char *err, size_t errlen)
{
    struct policy_store *ps = arg;
    struct policy_activation act;
    char *bundle = NULL, label[48];
    size_t len = 0;
    int rc = store_policy_active(ps->reader, &act);

    if (rc == HF_ENOTFOUND) {
        snprintf(err, errlen, "no policy was ever published to this database; run "
                 "hostflow policy publish FILE");
        return rc;
    }
    if (rc == 0)
        rc = store_policy_bundle(ps->reader, act.version, &bundle, &len);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read the active policy version from the store (%s)",
                 hf_err_code(rc));
        return rc;
    }
    policy_store_label(act.version, label, sizeof label);
    rc = policy_source_decode(bundle, len, label, out, err, errlen);
    free(bundle);
    /* the label names the texts: a row that lost its match is refused */
    if (rc == 0 && strcmp((*out)->version, act.version) != 0) {
        snprintf(err, errlen, "%s: the stored texts hash to %s, not to the version they are "
                 "stored as", label, (*out)->version);
        policy_source_free(*out);
        *out = NULL;
        rc = HF_EPOLICY;
    }
    return rc;
}

int policy_store_open(const char *db_path, struct policy_store **out,
                      struct policy_engine **engine, char *err, size_t errlen)
{
    struct policy_store *ps = calloc(1, sizeof *ps);
    struct policy_activation act;
    int rc;

    if (!ps) {
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    if ((rc = store_open(db_path, &ps->reader, err, errlen)) != 0 ||
        (rc = store_open(db_path, &ps->poller, err, errlen)) != 0) {
        policy_store_free(ps);
        return rc;
    }
    /* the activation seen before loading: a newer one found by the first
     * poll is loaded then, so none is missed */
    if (store_policy_active(ps->poller, &act) == 0)
        ps->seen_seq = act.seq;
    rc = policy_engine_new_with(read_active, ps, "store", &ps->engine, err, errlen);
    if (rc == 0)
        rc = policy_engine_start(ps->engine, err, errlen);
    if (rc != 0) {
        policy_engine_free(ps->engine);
        ps->engine = NULL;
        policy_store_free(ps);
        return rc;
    }
    *engine = ps->engine;
    *out = ps;
    return 0;
}

/* Reload when the store's active version changed since the last look. */
static void follow_activation(struct policy_store *ps)
{
    struct policy_activation act;
    char msg[HF_POLICY_ERROR_MAX];
    struct policy_status st;
    int changed;

    if (store_policy_active(ps->poller, &act) != 0 || act.seq == ps->seen_seq ||
        clock_mono_ms() < ps->retry_at)
        return;
    log_msg(HF_LOG_INFO, "policy: the store activated version %s (%s by %s)",
            act.version, act.action, act.actor);
    /* failures are logged and kept in the status by the engine */
    if (policy_engine_reload(ps->engine, &changed, msg, sizeof msg) == 0) {
        ps->seen_seq = act.seq;
        ps->retry_delay = 0;
        return;
    }
    policy_engine_status(ps->engine, &st);
    if (strcmp(st.wanted, act.version) == 0) {
        ps->seen_seq = act.seq; /* the gate refused it: for good */
    } else {
        /* it could not be read (the database away, a damaged row): again
         * later, less and less often */
        ps->retry_delay = ps->retry_delay ? ps->retry_delay * 2 : HF_POLICY_POLL_MS;
        if (ps->retry_delay > RETRY_MAX_MS)
            ps->retry_delay = RETRY_MAX_MS;
        ps->retry_at = clock_mono_ms() + ps->retry_delay;
    }
}

/* periodic_fn: a look, then on PostgreSQL a wait that a publish ends at
 * once; where the store cannot wait (SQLite, or the connection is down)
 * the thread's own interval paces the looks. */
static int poll_once(struct periodic *p, void *arg)
{
    struct policy_store *ps = arg;

    (void)p;
    follow_activation(ps);
    return store_policy_wait(ps->poller, HF_POLICY_POLL_MS) == 0;
}

int policy_store_watch(struct policy_store *ps, char *err, size_t errlen)
{
    if (!(ps->thread = periodic_start("hf-policy-poll", HF_POLICY_POLL_MS, poll_once, ps))) {
        snprintf(err, errlen, "cannot start the policy poll thread");
        return -1;
    }
    return 0;
}

void policy_store_stop(struct policy_store *ps)
{
    if (!ps)
        return;
    periodic_stop(ps->thread); /* on PostgreSQL, within one wait */
    ps->thread = NULL;
}

void policy_store_free(struct policy_store *ps)
{
    if (!ps)
        return;
    policy_store_stop(ps);
    store_close(ps->reader);
    store_close(ps->poller);
    free(ps);
}
