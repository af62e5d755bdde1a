/* policy_sandbox.c - what policy code can reach: the hostflow helpers,
 * read-only proxies, the safe setmetatable, require over the policy
 * directory's modules, the environment proxy and its per-call scratch
 * globals, and the bounded standard libraries. */
#include "policy_internal.h"

#include <string.h>
#include <lauxlib.h>
#include <lualib.h>

#include "err.h"
#include "log.h"
#include "netaddr.h"
#include "policy_charge.h"
#include "policy_source.h"
#include "policy_strlib.h"
#include "policy_tablib.h"

static int helper_log(lua_State *L)
{
    const char *msg = luaL_checkstring(L, 1);

    log_msg(HF_LOG_INFO, "policy log: %.*s", 500, msg);
    return 0;
}

void policy_push_url(lua_State *L, const char *raw, const struct url *u)
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

/* hostflow.is_internal_host(host) -> boolean: a loopback, private,
 * link-local or otherwise non-public address literal, or a localhost name. */
static int helper_is_internal_host(lua_State *L)
{
    lua_pushboolean(L, netaddr_host_is_internal(luaL_checkstring(L, 1)));
    return 1;
}

/* hostflow.parse_url(s) -> url table | nil, reason: the core's parser. */
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
    policy_push_url(L, s, &u);
    return 1;
}

static int refuse_write(lua_State *L)
{
    return luaL_error(L, "this table is read-only");
}

/* A module's or an override's top level assigning a global: it would land
 * in the globals every tenant's calls read. */
int policy_refuse_global(lua_State *L)
{
    return luaL_error(L, "modules and overrides keep their state in locals: this one "
                      "cannot set the global '%s'",
                      lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
}

/* next() over the table a proxy hides (upvalue 1), called as (proxy, key). */
static int proxy_next(lua_State *L)
{
    lua_settop(L, 2);
    if (lua_next(L, lua_upvalueindex(1)))
        return 2;
    lua_pushnil(L);
    return 1;
}

/* __pairs of a read-only proxy: iterate its table without revealing it. */
static int proxy_pairs(lua_State *L)
{
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__index");
    lua_pushcclosure(L, proxy_next, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Replace the table at the top with a read-only proxy of it. */
void policy_make_readonly(lua_State *L)
{
    lua_newtable(L);                 /* proxy */
    lua_createtable(L, 0, 4);        /* its metatable */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, refuse_write);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, proxy_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

/* setmetatable without __gc: a finalizer would run outside any budget. */
static int safe_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in policies");
        lua_pop(L, 1);
    }
    lua_getglobal(L, "setmetatable");
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static const struct policy_text *find_module(const struct policy_source *src,
                                             const char *name)
{
    for (size_t i = 0; i < src->n_modules; i++)
        if (strcmp(src->modules[i].name, name) == 0)
            return &src->modules[i];
    return NULL;
}

/* Load text as a chunk whose _ENV is the policy environment proxy; leaves
 * the function (or an error message) on the stack. */
int policy_load_chunk(struct policy *p, const struct policy_text *t)
{
    int rc;

    p->string_refused = 0;
    rc = luaL_loadbufferx(p->L, t->src, t->len, t->chunkname, "t");
    if (rc != LUA_OK) {
        if (p->string_refused) { /* say why, not just "not enough memory" */
            lua_pop(p->L, 1);
            lua_pushfstring(p->L, "%s: a string over the %d KiB limit", t->chunkname + 1,
                            (int)(STRING_MAX >> 10));
        }
        return HF_EPOLICY;
    }
    lua_rawgeti(p->L, LUA_REGISTRYINDEX, p->ref_globals);
    lua_pushliteral(p->L, "_G");
    lua_rawget(p->L, -2);            /* the env proxy */
    lua_remove(p->L, -2);
    lua_setupvalue(p->L, -2, 1);
    return 0;
}

/* Point the env proxy's reads (__index) and writes (__newindex) at the two
 * values at the top of the stack, in that order; pops them. */
static void point_env(struct policy *p)
{
    lua_State *L = p->L;

    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_env_meta);
    lua_insert(L, -3);
    lua_setfield(L, -3, "__newindex");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

/* Point the env proxy as for a top level run at load time: reads see the
 * shared globals; writes go to them, or to refuse when it is given. */
void policy_point_env_at_globals(struct policy *p, lua_CFunction refuse)
{
    lua_rawgeti(p->L, LUA_REGISTRYINDEX, p->ref_globals);
    if (refuse)
        lua_pushcfunction(p->L, refuse);
    else
        lua_pushvalue(p->L, -1);
    point_env(p);
}

/* require(name): a module of the policy directory, loaded once per state.
 * Runs inside the caller's budgeted call. */
static int sandbox_require(lua_State *L)
{
    struct policy *p = lua_touserdata(L, lua_upvalueindex(1));
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    const struct policy_text *t;
    int status;

    lua_settop(L, 1);                /* extra arguments are ignored */
    if (!policy_source_name_ok(name, len))
        return luaL_error(L, "require: \"%s\" is not a module name of the policy "
                          "directory", name);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_loaded);
    if (lua_getfield(L, -1, name) != LUA_TNIL) {
        if (lua_islightuserdata(L, -1))
            return luaL_error(L, "require: \"%s\" requires itself", name);
        return 1;
    }
    lua_pop(L, 1);
    t = find_module(p->gen->src, name);
    if (!t)
        return luaL_error(L, "require: no module \"%s\" in the policy directory", name);
    lua_pushlightuserdata(L, p);     /* marks "being loaded" */
    lua_setfield(L, 2, name);
    /* its top level runs alike whoever requires it first, and whenever: it
     * reads the shared globals, never a request's scratch ones (which it
     * could keep in upvalues for every later request), and sets none */
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_env_meta);
    lua_getfield(L, 3, "__index");   /* 4, 5: the env as the caller had it */
    lua_getfield(L, 3, "__newindex");
    policy_point_env_at_globals(p, policy_refuse_global);
    status = policy_load_chunk(p, t);
    if (status == 0) {
        lua_pushstring(L, name);
        status = lua_pcall(L, 1, 1, 0);
    }
    lua_pushvalue(L, 4);
    lua_pushvalue(L, 5);
    point_env(p);
    if (status != 0) {               /* a later require tries again */
        lua_pushnil(L);
        lua_setfield(L, 2, name);
        return lua_error(L);
    }
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    /* one module serves the policy and every override: none may change
     * it for the others */
    if (lua_istable(L, -1))
        policy_make_readonly(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name);
    return 1;
}

/* Build the load-time globals and the env proxy; registry refs in p. */
void policy_build_environment(struct policy *p)
{
    static const char *const base[] = {
        "assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget",
        "rawlen", "select", "getmetatable", "tonumber", "tostring", "type", NULL};
    static const char *const libs[] = {"string", "table", "math", "utf8", NULL};
    lua_State *L = p->L;

    lua_newtable(L);                                   /* globals */
    for (const char *const *n = base; *n; n++) {
        lua_getglobal(L, *n);
        lua_setfield(L, -2, *n);
    }
    lua_pushcfunction(L, safe_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_pushcfunction(L, policy_budget_pcall);
    lua_setfield(L, -2, "pcall");
    lua_pushcfunction(L, policy_budget_xpcall);
    lua_setfield(L, -2, "xpcall");
    for (const char *const *n = libs; *n; n++) {
        lua_getglobal(L, *n);
        policy_make_readonly(L);
        lua_setfield(L, -2, *n);
    }
    lua_createtable(L, 0, 2);                          /* os: clocks only */
    lua_getglobal(L, "os");
    lua_getfield(L, -1, "time");
    lua_setfield(L, -3, "time");
    lua_getfield(L, -1, "clock");
    lua_setfield(L, -3, "clock");
    lua_pop(L, 1);
    policy_make_readonly(L);
    lua_setfield(L, -2, "os");
    lua_createtable(L, 0, 2);                          /* hostflow helpers */
    lua_pushcfunction(L, helper_log);
    lua_setfield(L, -2, "log");
    lua_pushcfunction(L, helper_parse_url);
    lua_setfield(L, -2, "parse_url");
    lua_pushcfunction(L, helper_is_internal_host);
    lua_setfield(L, -2, "is_internal_host");
    policy_make_readonly(L);
    lua_setfield(L, -2, "hostflow");
    lua_pushlightuserdata(L, p);
    lua_pushcclosure(L, sandbox_require, 1);
    lua_setfield(L, -2, "require");

    lua_newtable(L);                                   /* env proxy */
    lua_createtable(L, 0, 3);                          /* its metatable */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");                    /* load time: globals */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, -1);
    p->ref_env_meta = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "_G");                         /* globals._G = proxy */

    lua_createtable(L, 0, 1);                          /* scratch metatable */
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "__index");
    p->ref_scratch_meta = luaL_ref(L, LUA_REGISTRYINDEX);
    p->ref_globals = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    p->ref_loaded = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Point the env proxy at a fresh scratch table for one call: globals
 * written during the call vanish with it. */
void policy_fresh_scratch(struct policy *p)
{
    lua_State *L = p->L;

    lua_newtable(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_scratch_meta);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    point_env(p);
}

/* Open the libraries the sandbox draws from, and bound the string ones. */
void policy_open_libraries(struct policy *p)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base}, {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_OSLIBNAME, luaopen_os},
        {NULL, NULL}};
    /* what policy_strlib.c and policy_tablib.c do not already charge, of
     * the functions whose work grows with their arguments */
    static const char *const string_charged[] = {
        "byte", "char", "format", "lower", "upper", "reverse", "sub", "pack", "packsize",
        "unpack", NULL};
    static const char *const utf8_charged[] = {"char", "codepoint", "len", "offset", NULL};
    static const char *const base_charged[] = {"tonumber", NULL};
    static const char *const arith_charged[] = {
        "__add", "__sub", "__mul", "__mod", "__pow", "__div", "__idiv", "__unm", NULL};
    lua_State *L = p->L;

    for (const luaL_Reg *l = libs; l->name; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    /* the string table is also every string's __index: bound it in place,
     * drop dump (bytecode), and hide the metatable from getmetatable("") */
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    policy_strlib_install(L, lua_gettop(L), &p->budget_left);
    policy_charge_wrap(L, -1, string_charged, &p->budget_left);
    lua_pop(L, 1);
    lua_getglobal(L, LUA_TABLIBNAME);
    policy_tablib_install(L, lua_gettop(L), &p->budget_left);
    lua_pop(L, 1);
    lua_getglobal(L, LUA_UTF8LIBNAME);
    policy_charge_wrap(L, -1, utf8_charged, &p->budget_left);
    lua_pop(L, 1);
    lua_pushglobaltable(L);
    policy_charge_wrap(L, -1, base_charged, &p->budget_left);
    lua_pop(L, 1);
    /* "1e5" + 1: the string metatable converts with strtod */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    policy_charge_wrap(L, -1, arith_charged, &p->budget_left);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}
