/* policy_call.c - the questions a request asks (check_tenant,
 * check_return_url, check_webhook_url): ctx and arguments in, a verdict
 * out, each decision logged and counted. */
#include "policy_internal.h"

#include <stdio.h>
#include <string.h>
#include <lauxlib.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "netaddr.h"

static void push_ctx(lua_State *L, const struct policy_ctx *c)
{
    const struct tenant *t = c->tenant;

    lua_createtable(L, 0, 5); /* sized for all its fields: no rehash on the way */

    lua_createtable(L, 0, 5);
    lua_pushstring(L, t->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, t->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, c->mode);
    lua_setfield(L, -2, "mode");
    lua_createtable(L, (int)t->n_hosts, 0);
    for (size_t i = 0; i < t->n_hosts; i++) {
        lua_pushstring(L, t->hosts[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "redirect_hosts");
    lua_newtable(L);
    lua_setfield(L, -2, "settings");
    lua_setfield(L, -2, "tenant");

    lua_createtable(L, 0, 1);
    lua_pushstring(L, c->contractor_id);
    lua_setfield(L, -2, "id");
    lua_setfield(L, -2, "contractor");

    lua_createtable(L, 0, 3);
    lua_pushstring(L, c->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, c->path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, c->remote_addr);
    lua_setfield(L, -2, "remote_addr");
    lua_setfield(L, -2, "request");

    lua_pushinteger(L, c->now);
    lua_setfield(L, -2, "now");

    lua_createtable(L, 0, 2);
    lua_pushboolean(L, c->rate_limited);
    lua_setfield(L, -2, "limited");
    lua_pushinteger(L, c->retry_after);
    lua_setfield(L, -2, "retry_after");
    lua_setfield(L, -2, "rate");
}

/* 1 when s is a usable error code: [a-z0-9_], 1..64 characters. */
static int code_ok(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') ||
              s[n] == '_'))
            return 0;
    return n > 0 && n <= HF_POLICY_CODE_MAX;
}

/* Read "true | false, code, message[, status]" at stack slots base..base+3.
 * Anything but exactly true or false is a policy error. */
static int read_verdict(lua_State *L, int base, const char *default_code,
                        int default_status, struct policy_verdict *out)
{
    const char *code, *msg;

    if (!lua_isboolean(L, base)) {
        lua_pushfstring(L, "decision is a %s, not true or false", luaL_typename(L, base));
        return HF_EPOLICY;
    }
    memset(out, 0, sizeof *out);
    out->allow = lua_toboolean(L, base);
    if (out->allow)
        return 0;
    code = lua_type(L, base + 1) == LUA_TSTRING ? lua_tostring(L, base + 1) : NULL;
    msg = lua_type(L, base + 2) == LUA_TSTRING ? lua_tostring(L, base + 2) : NULL;
    snprintf(out->code, sizeof out->code, "%s",
             code && code_ok(code) ? code : default_code);
    snprintf(out->message, sizeof out->message, "%s",
             msg ? msg : "The request was refused by policy.");
    out->status = default_status;
    if (lua_isinteger(L, base + 3)) {
        lua_Integer st = lua_tointeger(L, base + 3);
        if (st >= 400 && st <= 499) /* a policy may refuse, never succeed or crash */
            out->status = (int)st;
    }
    return 0;
}

/* Push the function name for tenant_id: its override if it has one, else
 * the shared policy's. Raw reads only: a metamethod here would run outside
 * the budget. Returns 1, or 0 (nothing pushed) if neither defines it. */
static int push_function(struct policy *p, const char *tenant_id, const char *name)
{
    lua_State *L = p->L;

    p->instructions = 0;             /* a check that calls nothing uses nothing */
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_tenants);
    lua_pushstring(L, tenant_id);
    if (lua_rawget(L, -2) == LUA_TTABLE) {
        lua_pushstring(L, name);
        if (lua_rawget(L, -2) == LUA_TFUNCTION) {
            lua_replace(L, -3);
            lua_pop(L, 1);
            return 1;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_policy);
    lua_pushstring(L, name);
    if (lua_rawget(L, -2) == LUA_TFUNCTION) {
        lua_remove(L, -2);
        return 1;
    }
    lua_pop(L, 2);
    return 0;
}

/* Log the decision, drop what the call left above base. */
static int finish_call(struct policy *p, int base, int rc, const char *check,
                       const struct policy_ctx *ctx, struct policy_verdict *v,
                       long long started)
{
    long long us = clock_mono_us() - started;

    v->us = us;
    v->instructions = p->instructions;
    if (rc != 0)
        snprintf(p->last_error, sizeof p->last_error, "%s", policy_error_text(p->L));
    if (!p->engine) { /* a state running examples: its calls are not decisions */
        lua_settop(p->L, base);
        return rc;
    }
    metrics_policy_decision(check, rc != 0 ? METRICS_ERROR
                            : v->allow ? METRICS_ALLOW : METRICS_DENY,
                            v->code, us);
    if (rc != 0)
        log_msg(HF_LOG_WARN, "policy decision tenant=%s check=%s decision=error "
                "version=%s us=%lld instructions=%ld error=%s", ctx->tenant->id, check,
                policy_version(p), us, v->instructions, p->last_error);
    else /* the request's own log line carries the outcome; this is detail */
        log_msg(HF_LOG_DEBUG, "policy decision tenant=%s check=%s decision=%s%s%s "
                "version=%s us=%lld", ctx->tenant->id, check,
                v->allow ? "allow" : "deny", v->allow ? "" : " code=",
                v->allow ? "" : v->code, policy_version(p), us);
    lua_settop(p->L, base);
    return rc;
}

int policy_check_tenant(struct policy *p, const struct policy_ctx *ctx,
                        struct policy_verdict *out)
{
    long long started = clock_mono_us();
    int base = lua_gettop(p->L), rc;

    memset(out, 0, sizeof *out);
    if (!push_function(p, ctx->tenant->id, "check_tenant")) {
        /* without a check_tenant the core's rate limits decide alone */
        out->allow = !ctx->rate_limited;
        if (!out->allow) {
            snprintf(out->code, sizeof out->code, "rate_limit");
            snprintf(out->message, sizeof out->message,
                     "Too many requests; retry after %d seconds.", ctx->retry_after);
            out->status = 429;
        }
        return 0;
    }
    policy_fresh_scratch(p);
    push_ctx(p->L, ctx);
    rc = policy_guarded_call(p, 1, 4);
    if (rc == 0)
        rc = read_verdict(p->L, base + 1, "tenant_denied", 403, out);
    return finish_call(p, base, rc, "tenant", ctx, out, started);
}

/* Call the URL check the caller pushed with (url, ctx). A refused URL is
 * the client's input: always code and 400, whatever the policy said. */
static int ask_about_url(struct policy *p, int base, const char *raw, const struct url *u,
                         const struct policy_ctx *ctx, const char *code,
                         struct policy_verdict *out)
{
    int rc;

    policy_fresh_scratch(p);
    policy_push_url(p->L, raw, u);
    push_ctx(p->L, ctx);
    rc = policy_guarded_call(p, 2, 3);
    if (rc == 0)
        rc = read_verdict(p->L, base + 1, code, 400, out);
    out->status = 400;
    if (rc == 0 && !out->allow)
        snprintf(out->code, sizeof out->code, "%s", code);
    return rc;
}

int policy_check_return_url(struct policy *p, const char *raw,
                            const struct url *u, const struct policy_ctx *ctx,
                            struct policy_verdict *out)
{
    long long started = clock_mono_us();
    int base = lua_gettop(p->L), rc;

    memset(out, 0, sizeof *out);
    if (!push_function(p, ctx->tenant->id, "check_return_url")) {
        lua_pushliteral(p->L, "check_return_url is not defined");
        return finish_call(p, base, HF_EPOLICY, "return_url", ctx, out, started);
    }
    rc = ask_about_url(p, base, raw, u, ctx, "invalid_return_url", out);
    return finish_call(p, base, rc, "return_url", ctx, out, started);
}

int policy_check_webhook_url(struct policy *p, const char *raw,
                             const struct url *u, const struct policy_ctx *ctx,
                             struct policy_verdict *out)
{
    long long started = clock_mono_us();
    int base = lua_gettop(p->L), rc = 0;

    memset(out, 0, sizeof *out);
    if (push_function(p, ctx->tenant->id, "check_webhook_url")) {
        rc = ask_about_url(p, base, raw, u, ctx, "invalid_webhook_url", out);
    } else {
        /* the core's own rule when the policy has none: https to a name or
         * a public address, never an internal one */
        out->allow = strcmp(u->scheme, "https") == 0 && !netaddr_host_is_internal(u->host);
        out->status = 400;
        if (!out->allow) {
            snprintf(out->code, sizeof out->code, "invalid_webhook_url");
            snprintf(out->message, sizeof out->message,
                     "The webhook URL must be https and must not name an internal address.");
        }
    }
    return finish_call(p, base, rc, "webhook_url", ctx, out, started);
}
