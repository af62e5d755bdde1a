/* policy_state.c - one struct policy: a Lua state built from a generation
 * (libraries, environment, main file, overrides) and closed again. */
#define _POSIX_C_SOURCE 200809L
#include "policy_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <lauxlib.h>

#include "err.h"
#include "policy_source.h"

void policy_gen_release(struct policy_engine *e, struct generation *g)
{
    int last;

    if (!g)
        return;
    if (e)
        pthread_mutex_lock(&e->lock);
    last = --g->refs == 0;
    if (e)
        pthread_mutex_unlock(&e->lock);
    if (last) {
        policy_source_free(g->src);
        free(g);
    }
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    if (p->L)
        lua_close(p->L);
    policy_free_small_blocks(p);
    policy_gen_release(p->engine, p->gen);
    free(p);
}

const char *policy_version(const struct policy *p)
{
    return p->gen->src->version;
}

/* Run t (the main file when tenant is NULL, else an override called with
 * the shared policy) and leave the table it returns on the stack. */
static int run_chunk(struct policy *p, const struct policy_text *t, int is_override,
                     char *err, size_t errlen)
{
    int rc;

    if (policy_load_chunk(p, t) != 0) {
        snprintf(err, errlen, "%s", policy_error_text(p->L));
        return HF_EPOLICY;
    }
    if (is_override) { /* a view: an override must not change other tenants' policy */
        lua_rawgeti(p->L, LUA_REGISTRYINDEX, p->ref_policy);
        policy_make_readonly(p->L);
        /* nor the globals their calls read */
        policy_point_env_at_globals(p, policy_refuse_global);
    }
    rc = policy_guarded_call(p, is_override, 1);
    if (is_override) /* as the main chunk had it, for the next chunk */
        policy_point_env_at_globals(p, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "%s", policy_error_text(p->L));
        return HF_EPOLICY;
    }
    if (!lua_istable(p->L, -1)) {
        snprintf(err, errlen, "%s: must return a table of functions", t->chunkname + 1);
        return HF_EPOLICY;
    }
    return 0;
}

/* A state with gen's policy loaded: main file, then every override. Takes
 * a reference to gen. */
int policy_state_build(struct policy_engine *e, struct generation *g,
                       struct policy **out, char *err, size_t errlen)
{
    const struct policy_source *src = g->src;
    struct policy *p = calloc(1, sizeof *p);
    int rc;

    if (!p) {
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    p->mem_limit = MEMORY_LIMIT;
    p->engine = e;
    p->gen = g;
    if (e)
        pthread_mutex_lock(&e->lock);
    g->refs++;
    if (e)
        pthread_mutex_unlock(&e->lock);
    p->L = lua_newstate(policy_alloc, p);
    if (!p->L) {
        policy_free(p);
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    policy_open_libraries(p);
    policy_build_environment(p);

    rc = run_chunk(p, &src->main, 0, err, errlen);
    if (rc == 0) {
        lua_pushliteral(p->L, "check_return_url");
        if (lua_rawget(p->L, -2) != LUA_TFUNCTION) {
            snprintf(err, errlen, "%s: the policy must define check_return_url(url, ctx)",
                     src->main.chunkname + 1);
            rc = HF_EPOLICY;
        }
        lua_pop(p->L, 1);
    }
    if (rc == 0) {
        p->ref_policy = luaL_ref(p->L, LUA_REGISTRYINDEX);
        lua_newtable(p->L);
        for (size_t i = 0; rc == 0 && i < src->n_tenants; i++) {
            rc = run_chunk(p, &src->tenants[i], 1, err, errlen);
            if (rc == 0)
                lua_setfield(p->L, -2, src->tenants[i].name);
        }
        if (rc == 0)
            p->ref_tenants = luaL_ref(p->L, LUA_REGISTRYINDEX);
    }
    if (rc != 0) {
        policy_free(p);
        return rc;
    }
    lua_settop(p->L, 0);
    lua_gc(p->L, LUA_GCCOLLECT);
    /* generational: a call's context tables die young and are swept
     * without walking the libraries and policy each time (p99 of a
     * decision 8.3 -> 3.2 us) */
    lua_gc(p->L, LUA_GCGEN, 0, 0);
    p->spoiled = 0;
    *out = p;
    return 0;
}
