/* policy.c - the operator's Lua policy in a sandbox: the only user of Lua.
 *
 * Each struct policy owns one lua_State with its own allocator (memory cap)
 * and a count hook (instruction budget). The policy chunk runs with a fresh
 * environment holding only the safe parts of the standard library, so it
 * cannot reach files, processes, bytecode or the debug library. */
#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "err.h"
#include "log.h"
#include "token.h"

#define MEMORY_LIMIT (16u << 20)       /* bytes per Lua state */
#define INSTRUCTION_BUDGET 1000000     /* VM instructions per call */
#define HOOK_EVERY 1000                /* instructions between hook checks */
#define POLICY_FILE_MAX (1u << 20)

struct policy {
    lua_State *L;
    size_t mem_used;                 /* bytes the allocator handed out */
    size_t mem_limit;                /* allocation fails beyond this */
    long budget_left;                /* instructions left in this call */
    int ref;                         /* registry ref of the policy table */
    char version[HF_VERSION_MAX];    /* content hash of the file */
};

/* The allocator: a refused allocation raises "not enough memory". */
static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct policy *p = ud;
    size_t old = ptr ? osize : 0;

    if (nsize == 0) {
        free(ptr);
        p->mem_used -= old;
        return NULL;
    }
    if (nsize > old && p->mem_used + (nsize - old) > p->mem_limit)
        return NULL;
    void *np = realloc(ptr, nsize);
    if (np)
        p->mem_used = p->mem_used - old + nsize;
    return np;
}

/* Raised every time it fires once the budget is spent, so a pcall inside
 * the policy that catches the first error hits the next one at once. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct policy *p;

    (void)ar;
    lua_getallocf(L, (void **)&p);
    p->budget_left -= HOOK_EVERY;
    if (p->budget_left <= 0)
        luaL_error(L, "policy exceeded its instruction budget");
}

static int helper_log(lua_State *L)
{
    const char *msg = luaL_checkstring(L, 1);

    log_msg(HF_LOG_INFO, "policy: %.*s", 500, msg);
    return 0;
}

static void push_url(lua_State *L, const char *raw, const struct url *u)
{
    lua_createtable(L, 0, 6);
    lua_pushstring(L, raw);
    lua_setfield(L, -2, "raw");
    lua_pushstring(L, u->scheme);
    lua_setfield(L, -2, "scheme");
    lua_pushstring(L, u->host);
    lua_setfield(L, -2, "host");
    if (u->port > 0) {
        lua_pushinteger(L, u->port);
        lua_setfield(L, -2, "port");
    }
    lua_pushstring(L, u->path);
    lua_setfield(L, -2, "path");
    if (u->has_query) {
        lua_pushstring(L, u->query);
        lua_setfield(L, -2, "query");
    }
}

/* hostflow.parse_url(s) -> table | nil, message: the core's own parser. */
static int helper_parse_url(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct url u;
    int rc = url_parse(s, len, &u);

    if (rc != URL_OK) {
        lua_pushnil(L);
        lua_pushstring(L, url_strerror(rc));
        return 2;
    }
    push_url(L, s, &u);
    return 1;
}

static int readonly(lua_State *L)
{
    return luaL_error(L, "the hostflow table is read-only");
}

/* Copy the named fields of library lib (a global of the full state) into a
 * new table at the top of the stack. */
static void copy_fields(lua_State *L, const char *lib, const char *const *names)
{
    lua_newtable(L);
    lua_getglobal(L, lib);
    for (; *names; names++) {
        lua_getfield(L, -1, *names);
        lua_setfield(L, -3, *names);
    }
    lua_pop(L, 1);
}

static void copy_library(lua_State *L, const char *lib)
{
    lua_newtable(L);
    lua_getglobal(L, lib);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_settable(L, -5);
    }
    lua_pop(L, 1);
}

/* Build the environment policy code runs in and leave it on the stack. */
static void push_sandbox(lua_State *L)
{
    static const char *const base[] = {
        "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
        "rawget", "rawlen", "rawset", "select", "setmetatable", "getmetatable",
        "tonumber", "tostring", "type", "xpcall", NULL};
    static const char *const os_safe[] = {"time", "clock", NULL};
    static const char *const libs[] = {"table", "math", "utf8", NULL};

    lua_newtable(L);
    lua_pushglobaltable(L);
    for (const char *const *n = base; *n; n++) {
        lua_getfield(L, -1, *n);
        lua_setfield(L, -3, *n);
    }
    lua_pop(L, 1);
    for (const char *const *n = libs; *n; n++) {
        copy_library(L, *n);
        lua_setfield(L, -2, *n);
    }
    /* string without dump: bytecode must not be produced or loaded */
    copy_library(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_setfield(L, -2, "string");
    copy_fields(L, "os", os_safe);
    lua_setfield(L, -2, "os");

    /* hostflow: helpers behind a read-only proxy */
    lua_newtable(L);                       /* proxy */
    lua_newtable(L);                       /* metatable */
    lua_newtable(L);                       /* helpers */
    lua_pushcfunction(L, helper_log);
    lua_setfield(L, -2, "log");
    lua_pushcfunction(L, helper_parse_url);
    lua_setfield(L, -2, "parse_url");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, readonly);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "hostflow");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
}

/* Call the function below nargs arguments with the budget armed; on error
 * leaves the message on the stack and returns HF_EPOLICY. */
static int guarded_call(struct policy *p, int nargs, int nresults)
{
    int rc;

    p->budget_left = INSTRUCTION_BUDGET;
    lua_sethook(p->L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    rc = lua_pcall(p->L, nargs, nresults, 0);
    lua_sethook(p->L, NULL, 0, 0);
    return rc == LUA_OK ? 0 : HF_EPOLICY;
}

static int read_file(const char *path, char **out, size_t *len, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f) {
        snprintf(err, errlen, "%s: cannot open policy file", path);
        return HF_EPOLICY;
    }
    buf = malloc(POLICY_FILE_MAX + 1);
    n = buf ? fread(buf, 1, POLICY_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > POLICY_FILE_MAX) {
        free(buf);
        snprintf(err, errlen, "%s: policy file is over %u bytes", path,
                 POLICY_FILE_MAX);
        return HF_EPOLICY;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int policy_load(const char *file, struct policy **out, char *err, size_t errlen)
{
    unsigned char hash[HF_HASH_BYTES];
    char hex[17];
    struct policy *p;
    size_t len;
    char *src;
    int rc;

    if ((rc = read_file(file, &src, &len, err, errlen)) != 0)
        return rc;
    p = calloc(1, sizeof *p);
    if (!p) {
        free(src);
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    p->mem_limit = MEMORY_LIMIT;
    p->ref = LUA_NOREF;
    token_hash(src, len, hash);
    token_hex(hash, 8, hex); /* 16 hex digits name a version well enough */
    memcpy(p->version, hex, 17);
    p->L = lua_newstate(limited_alloc, p);
    if (!p->L) {
        free(src);
        free(p);
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    luaL_openlibs(p->L);

    /* "@file" makes errors read file:line; mode "t" refuses bytecode */
    lua_pushfstring(p->L, "@%s", file);
    rc = luaL_loadbufferx(p->L, src, len, lua_tostring(p->L, -1), "t");
    free(src);
    if (rc != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(p->L, -1));
        policy_free(p);
        return HF_EPOLICY;
    }
    push_sandbox(p->L);
    lua_setupvalue(p->L, -2, 1); /* the chunk's _ENV */
    if (guarded_call(p, 0, 1) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(p->L, -1));
        policy_free(p);
        return HF_EPOLICY;
    }
    if (!lua_istable(p->L, -1)) {
        snprintf(err, errlen, "%s: the policy must return a table", file);
        policy_free(p);
        return HF_EPOLICY;
    }
    lua_getfield(p->L, -1, "check_return_url");
    if (!lua_isfunction(p->L, -1)) {
        snprintf(err, errlen, "%s: the policy must define check_return_url(url, ctx)",
                 file);
        policy_free(p);
        return HF_EPOLICY;
    }
    lua_pop(p->L, 1);
    p->ref = luaL_ref(p->L, LUA_REGISTRYINDEX);
    lua_settop(p->L, 0);
    *out = p;
    return 0;
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    if (p->L)
        lua_close(p->L);
    free(p);
}

const char *policy_version(const struct policy *p)
{
    return p->version;
}

static void push_ctx(lua_State *L, const struct policy_ctx *c)
{
    const struct tenant *t = c->tenant;

    lua_createtable(L, 0, 5);

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
        log_msg(HF_LOG_WARN, "policy: decision is %s, not a boolean",
                luaL_typename(L, base));
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

/* Push policy[name]; 1 if it is a function, 0 (nothing pushed) if absent. */
static int push_function(struct policy *p, const char *name)
{
    lua_rawgeti(p->L, LUA_REGISTRYINDEX, p->ref);
    lua_getfield(p->L, -1, name);
    lua_remove(p->L, -2);
    if (lua_isfunction(p->L, -1))
        return 1;
    lua_pop(p->L, 1);
    return 0;
}

static int finish_call(struct policy *p, int rc, const char *what)
{
    if (rc != 0) {
        log_msg(HF_LOG_WARN, "policy %s: %s failed: %s", p->version, what,
                lua_tostring(p->L, -1));
    }
    lua_settop(p->L, 0);
    /* collect what the call left so one request's garbage never
     * accumulates toward the next one's memory cap */
    lua_gc(p->L, LUA_GCSTEP, 0);
    return rc;
}

int policy_check_tenant(struct policy *p, const struct policy_ctx *ctx,
                        struct policy_verdict *out)
{
    int rc;

    if (!push_function(p, "check_tenant")) {
        memset(out, 0, sizeof *out);
        out->allow = 1;
        return 0;
    }
    push_ctx(p->L, ctx);
    rc = guarded_call(p, 1, 4);
    if (rc == 0)
        rc = read_verdict(p->L, 1, "tenant_denied", 403, out);
    return finish_call(p, rc, "check_tenant");
}

int policy_check_return_url(struct policy *p, const char *raw,
                            const struct url *u, const struct policy_ctx *ctx,
                            struct policy_verdict *out)
{
    int rc;

    if (!push_function(p, "check_return_url"))
        return HF_EPOLICY;
    push_url(p->L, raw, u);
    push_ctx(p->L, ctx);
    rc = guarded_call(p, 2, 3);
    if (rc == 0) {
        rc = read_verdict(p->L, 1, "invalid_return_url", 400, out);
        out->status = 400; /* a refused URL is always the client's input */
        if (!out->allow)
            snprintf(out->code, sizeof out->code, "invalid_return_url");
    }
    return finish_call(p, rc, "check_return_url");
}
