/* policy_examples.c - the gate every version passes before it may serve:
 * compile it in a fresh state, load every module, run every example
 * (`hostflow policy check`, a reload, the first load). */
#include "policy_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "clock.h"
#include "err.h"
#include "policy_source.h"

#define EXAMPLES_MAX 1000

/* Copy string field key of the table at idx (raw) into buf, or def when
 * absent; NULL when both are. A copy, because the policy runs between
 * reading an example and judging it and may drop the strings it holds. */
static const char *field_copy(lua_State *L, int idx, const char *key, const char *def,
                              char *buf, size_t buflen)
{
    const char *s = def;

    lua_pushstring(L, key);
    if (lua_rawget(L, idx) == LUA_TSTRING)
        s = lua_tostring(L, -1);
    if (s)
        snprintf(buf, buflen, "%s", s);
    lua_pop(L, 1);
    return s ? buf : NULL;
}

/* Boolean field key of the table at idx (raw); 0 when absent. */
static int example_flag(lua_State *L, int idx, const char *key)
{
    int v;

    lua_pushstring(L, key);
    v = lua_rawget(L, idx) == LUA_TBOOLEAN && lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* One example at the stack top against the state; 0 or HF_EPOLICY with
 * what went wrong in err. */
static int run_example(struct policy *p, int idx, const char *tenant_id,
                       struct tenant *t, char *err, size_t errlen)
{
    lua_State *L = p->L;
    char url_buf[HF_URL_MAX + 1], check_buf[16], code_buf[HF_POLICY_CODE_MAX + 1];
    char mode[8];
    const char *check, *url, *want_code;
    struct policy_verdict v;
    struct policy_ctx ctx;
    int want_allow, rc;

    lua_pushliteral(L, "allow");
    if (lua_rawget(L, idx) != LUA_TBOOLEAN) {
        snprintf(err, errlen, "needs allow = true or false");
        lua_pop(L, 1);
        return HF_EPOLICY;
    }
    want_allow = lua_toboolean(L, -1);
    lua_pop(L, 1);
    url = field_copy(L, idx, "url", NULL, url_buf, sizeof url_buf);
    check = field_copy(L, idx, "check", url ? "return_url" : "tenant", check_buf,
                       sizeof check_buf);
    want_code = field_copy(L, idx, "code", NULL, code_buf, sizeof code_buf);
    field_copy(L, idx, "mode", "live", mode, sizeof mode);

    memset(t, 0, sizeof *t);
    field_copy(L, idx, "tenant", tenant_id, t->id, sizeof t->id);
    snprintf(t->name, sizeof t->name, "Example tenant");
    lua_pushliteral(L, "redirect_hosts");
    if (lua_rawget(L, idx) == LUA_TTABLE) {
        for (lua_Integer i = 1; t->n_hosts < HF_HOSTS_MAX; i++) {
            if (lua_rawgeti(L, -1, i) != LUA_TSTRING) {
                lua_pop(L, 1);
                break;
            }
            snprintf(t->hosts[t->n_hosts++], sizeof t->hosts[0], "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    ctx = (struct policy_ctx){
        .tenant = t, .mode = mode, .rate_limited = example_flag(L, idx, "rate_limited"),
        .retry_after = example_flag(L, idx, "rate_limited") ? 1 : 0,
        .contractor_id = "cn_example", .method = "POST",
        .path = "/api/v1/payment/sessions", .remote_addr = "127.0.0.1",
        .now = clock_now_s()};

    if (strcmp(check, "return_url") == 0) {
        struct url u;

        if (!url) {
            snprintf(err, errlen, "check = \"return_url\" needs url");
            return HF_EPOLICY;
        }
        if (url_parse(url, strlen(url), &u) != URL_OK) { /* the core refuses it first */
            memset(&v, 0, sizeof v);
            snprintf(v.code, sizeof v.code, "invalid_return_url");
            rc = 0;
        } else {
            rc = policy_check_return_url(p, url, &u, &ctx, &v);
        }
    } else if (strcmp(check, "webhook_url") == 0) {
        struct url u;

        if (!url) {
            snprintf(err, errlen, "check = \"webhook_url\" needs url");
            return HF_EPOLICY;
        }
        if (url_parse(url, strlen(url), &u) != URL_OK) {
            memset(&v, 0, sizeof v);
            snprintf(v.code, sizeof v.code, "invalid_webhook_url");
            rc = 0;
        } else {
            rc = policy_check_webhook_url(p, url, &u, &ctx, &v);
        }
    } else if (strcmp(check, "tenant") == 0) {
        rc = policy_check_tenant(p, &ctx, &v);
    } else {
        snprintf(err, errlen, "check must be \"return_url\", \"webhook_url\" or \"tenant\"");
        return HF_EPOLICY;
    }
    if (rc != 0) {
        snprintf(err, errlen, "raised an error");
        return HF_EPOLICY;
    }
    if (v.allow != want_allow || (!v.allow && want_code && strcmp(v.code, want_code) != 0)) {
        snprintf(err, errlen, "expected %s%s%s, got %s%s%s",
                 want_allow ? "allow" : "deny", want_code ? " " : "",
                 want_code ? want_code : "", v.allow ? "allow" : "deny",
                 v.allow ? "" : " ", v.allow ? "" : v.code);
        return HF_EPOLICY;
    }
    return 0;
}

/* Run the examples list of the table in registry slot ref (the shared
 * policy or one override). Adds the count to *n. */
static int run_examples_of(struct policy *p, int ref, const char *file,
                           const char *tenant_id, struct tenant *scratch,
                           int *n, char *err, size_t errlen)
{
    lua_State *L = p->L;
    int rc = 0;

    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    lua_pushliteral(L, "examples");
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_settop(L, 0);
        return 0;
    }
    for (lua_Integer i = 1; rc == 0 && i <= EXAMPLES_MAX; i++) {
        char why[600], name[128];
        int top;

        if (lua_rawgeti(L, -1, i) != LUA_TTABLE) {
            lua_pop(L, 1);
            break;
        }
        top = lua_gettop(L);
        field_copy(L, top, "name", "", name, sizeof name);
        rc = run_example(p, top, tenant_id, scratch, why, sizeof why);
        if (rc != 0) {
            if (strcmp(why, "raised an error") == 0)
                snprintf(why, sizeof why, "raised: %s", p->last_error);
            snprintf(err, errlen, "%s: example %lld%s%s%s: %s", file, (long long)i,
                     *name ? " (" : "", name, *name ? ")" : "", why);
        }
        (*n)++;
        lua_settop(L, top - 1);
    }
    lua_settop(L, 0);
    return rc;
}

/* Every example of the policy and of each override (those default their
 * tenant to the override's id). */
static int run_examples(struct policy *p, int *n, char *err, size_t errlen)
{
    const struct policy_source *src = p->gen->src;
    struct tenant *scratch = malloc(sizeof *scratch);
    int rc;

    if (!scratch) {
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    *n = 0;
    rc = run_examples_of(p, p->ref_policy, src->main.chunkname + 1, "tn_example",
                         scratch, n, err, errlen);
    for (size_t i = 0; rc == 0 && i < src->n_tenants; i++) {
        lua_rawgeti(p->L, LUA_REGISTRYINDEX, p->ref_tenants);
        lua_getfield(p->L, -1, src->tenants[i].name);
        int ref = luaL_ref(p->L, LUA_REGISTRYINDEX);
        lua_settop(p->L, 0);
        rc = run_examples_of(p, ref, src->tenants[i].chunkname + 1, src->tenants[i].name,
                             scratch, n, err, errlen);
        luaL_unref(p->L, LUA_REGISTRYINDEX, ref);
    }
    free(scratch);
    return rc;
}

/* Load every module as require would, whether anything required it yet
 * or not: a syntax error, or a top level that fails (one that sets a
 * global, say), in a module only some calls require stops the version
 * here, not those calls once it serves. */
static int load_modules(struct policy *p, char *err, size_t errlen)
{
    const struct policy_source *src = p->gen->src;

    for (size_t i = 0; i < src->n_modules; i++) {
        lua_rawgeti(p->L, LUA_REGISTRYINDEX, p->ref_globals);
        lua_getfield(p->L, -1, "require");
        lua_remove(p->L, -2);
        lua_pushstring(p->L, src->modules[i].name);
        if (policy_guarded_call(p, 1, 1) != 0) {
            snprintf(err, errlen, "%s", policy_error_text(p->L));
            return HF_EPOLICY;
        }
        lua_pop(p->L, 1);
    }
    return 0;
}

/* Compile src in a fresh state and run its examples: the gate every
 * version passes before it may serve. Takes ownership of src. */
int policy_gen_prepare(struct policy_source *src, struct generation **out,
                       int *n_examples, char *err, size_t errlen)
{
    struct generation *g = calloc(1, sizeof *g);
    struct policy *p;
    int rc;

    if (!g) {
        policy_source_free(src);
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    g->src = src;
    g->refs = 1;
    rc = policy_state_build(NULL, g, &p, err, errlen);
    if (rc == 0) {
        rc = load_modules(p, err, errlen);
        if (rc == 0)
            rc = run_examples(p, n_examples, err, errlen);
        policy_free(p);
    }
    if (rc != 0) {
        policy_gen_release(NULL, g);
        return rc;
    }
    *out = g;
    return 0;
}

int policy_check_source(struct policy_source *src, char *msg, size_t msglen)
{
    struct generation *g;
    int n = 0;

    if (policy_gen_prepare(src, &g, &n, msg, msglen) != 0)
        return HF_EPOLICY;
    snprintf(msg, msglen, "version %s: %s with %zu module(s) and %zu tenant "
             "override(s) compiles; %d example(s) pass", g->src->version,
             g->src->main.chunkname + 1, g->src->n_modules, g->src->n_tenants, n);
    policy_gen_release(NULL, g);
    return 0;
}

int policy_check_files(const char *file, const char *dir, char *msg, size_t msglen)
{
    struct policy_source *src;

    if (policy_source_read(file, dir, &src, msg, msglen) != 0)
        return HF_EPOLICY;
    return policy_check_source(src, msg, msglen);
}
