/* policy_engine.c - the engine: the active generation, reload and its
 * status, and the pool of states requests borrow (sync, acquire,
 * release). */
#define _POSIX_C_SOURCE 200809L
#include "policy_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "policy_source.h"

static void record_failure(struct policy_engine *e, const char *err)
{
    pthread_mutex_lock(&e->lock);
    e->status.reloads_failed++;
    e->status.last_error_at = clock_now_s();
    snprintf(e->status.last_error, sizeof e->status.last_error, "%s", err);
    pthread_mutex_unlock(&e->lock);
}

/* Close the idle states (a new version is active, or the engine ends). */
static void free_idle(struct policy_engine *e)
{
    struct policy *p;

    pthread_mutex_lock(&e->pool_lock);
    p = e->idle;
    e->idle = NULL;
    pthread_mutex_unlock(&e->pool_lock);
    while (p) {
        struct policy *next = p->next_idle;

        policy_free(p);
        p = next;
    }
}

/* Make g the active generation; the engine takes over g's reference. */
static void activate(struct policy_engine *e, struct generation *g)
{
    struct generation *old;

    pthread_mutex_lock(&e->lock);
    old = e->current;
    g->serial = old ? old->serial + 1 : 1;
    g->loaded_at = clock_now_s();
    e->current = g;
    snprintf(e->status.version, sizeof e->status.version, "%s", g->src->version);
    e->status.loaded_at = g->loaded_at;
    atomic_store(&e->serial, g->serial);
    pthread_mutex_unlock(&e->lock);
    free_idle(e); /* they run the old version: let it go now */
    policy_gen_release(e, old);
}

/* The file source: the policy file and its directory, as on disk now. */
static int read_files(void *arg, struct policy_source **out, char *err, size_t errlen)
{
    struct policy_engine *e = arg;

    return policy_source_read(e->file, e->dir, out, err, errlen);
}

int policy_engine_new(const char *file, const char *dir,
                      struct policy_engine **out, char *err, size_t errlen)
{
    struct policy_engine *e;
    int rc = policy_engine_new_with(NULL, NULL, "file", &e, err, errlen);

    if (rc != 0)
        return rc;
    if (!(e->file = strdup(file)) || !(e->dir = strdup(dir))) {
        policy_engine_free(e);
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    e->source = read_files;
    e->source_arg = e;
    if ((rc = policy_engine_start(e, err, errlen)) != 0) {
        policy_engine_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

int policy_engine_new_with(policy_source_fn source, void *arg, const char *kind,
                           struct policy_engine **out, char *err, size_t errlen)
{
    struct policy_engine *e = calloc(1, sizeof *e);

    if (!e) {
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    pthread_mutex_init(&e->lock, NULL);
    pthread_mutex_init(&e->pool_lock, NULL);
    pthread_mutex_init(&e->reload_lock, NULL);
    e->source = source;
    e->source_arg = arg;
    snprintf(e->status.source, sizeof e->status.source, "%s", kind);
    *out = e;
    return 0;
}

int policy_engine_start(struct policy_engine *e, char *err, size_t errlen)
{
    struct policy_source *src;
    struct generation *g;
    int n, rc;

    rc = e->source(e->source_arg, &src, err, errlen);
    if (rc == 0) {
        snprintf(e->status.wanted, sizeof e->status.wanted, "%s", src->version);
        rc = policy_gen_prepare(src, &g, &n, err, errlen);
    }
    if (rc != 0)
        return HF_EPOLICY;
    activate(e, g);
    log_msg(HF_LOG_INFO, "policy: version %s active (%s, %zu module(s), %zu tenant "
            "override(s), %d example(s) passed)", g->src->version,
            g->src->main.chunkname + 1, g->src->n_modules, g->src->n_tenants, n);
    return 0;
}

void policy_engine_free(struct policy_engine *e)
{
    if (!e)
        return;
    free_idle(e);
    policy_gen_release(NULL, e->current);
    pthread_mutex_destroy(&e->pool_lock);
    pthread_mutex_destroy(&e->lock);
    pthread_mutex_destroy(&e->reload_lock);
    free(e->file);
    free(e->dir);
    free(e);
}

int policy_engine_reload(struct policy_engine *e, int *changed, char *msg,
                         size_t msglen)
{
    struct policy_source *src;
    struct generation *g;
    char was[24];
    int n = 0, rc;

    *changed = 0;
    pthread_mutex_lock(&e->reload_lock);
    rc = e->source(e->source_arg, &src, msg, msglen);
    if (rc == 0) {
        pthread_mutex_lock(&e->lock);
        snprintf(was, sizeof was, "%s", e->status.version);
        snprintf(e->status.wanted, sizeof e->status.wanted, "%s", src->version);
        pthread_mutex_unlock(&e->lock);
        if (strcmp(src->version, was) == 0) {
            policy_source_free(src);
            pthread_mutex_lock(&e->lock);
            e->status.reloads_unchanged++;
            pthread_mutex_unlock(&e->lock);
            snprintf(msg, msglen, "%s", was);
            pthread_mutex_unlock(&e->reload_lock);
            return 0;
        }
        rc = policy_gen_prepare(src, &g, &n, msg, msglen);
    }
    if (rc != 0) {
        record_failure(e, msg);
        log_msg(HF_LOG_ERROR, "policy: reload refused, version %s keeps serving: %s",
                e->status.version, msg);
        pthread_mutex_unlock(&e->reload_lock);
        return HF_EPOLICY;
    }
    activate(e, g);
    pthread_mutex_lock(&e->lock);
    e->status.reloads_ok++;
    pthread_mutex_unlock(&e->lock);
    log_msg(HF_LOG_INFO, "policy: version %s active (was %s; %d example(s) passed)",
            g->src->version, was, n);
    snprintf(msg, msglen, "%s", g->src->version);
    *changed = 1;
    pthread_mutex_unlock(&e->reload_lock);
    return 0;
}

void policy_engine_status(struct policy_engine *e, struct policy_status *out)
{
    pthread_mutex_lock(&e->lock);
    *out = e->status;
    pthread_mutex_unlock(&e->lock);
}

/* 1 when p runs the active generation and no limit has spoiled it. */
static int state_current(struct policy_engine *e, const struct policy *p)
{
    return !p->spoiled && p->gen->serial == atomic_load(&e->serial);
}

int policy_sync(struct policy_engine *e, struct policy **pp)
{
    struct policy *p = *pp, *fresh;
    struct generation *g;
    char err[HF_POLICY_ERROR_MAX];
    int rc;

    if (p && state_current(e, p))
        return 0;
    pthread_mutex_lock(&e->lock);
    g = e->current;
    g->refs++;                       /* held while building */
    pthread_mutex_unlock(&e->lock);
    rc = policy_state_build(e, g, &fresh, err, sizeof err);
    if (rc != 0) /* it compiled when activated: only memory exhaustion gets here */
        log_msg(HF_LOG_ERROR, "policy: cannot build a state of version %s: %s",
                g->src->version, err);
    policy_gen_release(e, g);
    if (rc != 0) {
        if (p && !p->spoiled)
            return 0; /* the old version is still sound; serve with it */
        policy_free(p);
        *pp = NULL;
        return HF_EPOLICY;
    }
    policy_free(p);
    *pp = fresh;
    return 0;
}

int policy_acquire(struct policy_engine *e, struct policy **pp)
{
    pthread_mutex_lock(&e->pool_lock);
    *pp = e->idle;
    if (*pp)
        e->idle = (*pp)->next_idle;
    pthread_mutex_unlock(&e->pool_lock);
    return policy_sync(e, pp);
}

void policy_release(struct policy_engine *e, struct policy **pp)
{
    struct policy *p = *pp;

    *pp = NULL;
    if (!p)
        return;
    /* judged under the pool's lock: a switch of version empties the pool
     * after changing the serial, so no old state is left in it */
    pthread_mutex_lock(&e->pool_lock);
    if (state_current(e, p)) {
        p->next_idle = e->idle;
        e->idle = p;
        p = NULL;
    }
    pthread_mutex_unlock(&e->pool_lock);
    policy_free(p); /* never handed out again */
}
