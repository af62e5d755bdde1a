/* policy.c - the operator's Lua policy: generations, sandbox, limits,
 * calls, examples. The only user of Lua (with policy_strlib.c, its bounded
 * string functions).
 *
 * Each struct policy owns one lua_State with its own allocator (memory cap)
 * and a count hook (instruction budget). Policy code runs in an
 * environment holding only the safe parts of the standard library behind
 * read-only proxies. Its globals live in a per-call scratch table, so
 * nothing one request writes is seen by the next. */
#define _POSIX_C_SOURCE 200809L
#include "policy.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "netaddr.h"
#include "metrics.h"
#include "policy_charge.h"
#include "policy_source.h"
#include "policy_strlib.h"
#include "policy_tablib.h"
#include "token.h"

#define MEMORY_LIMIT (16u << 20)       /* bytes per Lua state */
#define MEMORY_RESERVE (1u << 20)      /* more, for hostflow's own pushes outside calls */
#define INSTRUCTION_BUDGET 1000000L    /* VM instructions (or match steps) per call */
#define HOOK_EVERY 100                 /* instructions between hook checks */
/* One instruction can cost as much as its strings are long (comparing or
 * joining two of them, upper() on one): the budget counts instructions, so
 * strings are capped and each call's CPU time is bounded too. */
#define STRING_MAX (256u << 10)        /* bytes of one string, header included */
#define CPU_LIMIT_US 50000LL           /* thread CPU time per call */
#define EXAMPLES_MAX 1000

/* One policy version, shared by the engine and every state built from it. */
struct generation {
    struct policy_source *src;
    long serial;                     /* increases with each activation */
    long long loaded_at;
    int refs;                        /* guarded by the engine's lock */
};

struct policy_engine {
    pthread_mutex_t lock;            /* guards current, refs and status */
    pthread_mutex_t reload_lock;     /* one reload at a time */
    struct generation *current;
    atomic_long serial;              /* current->serial, read lock-free */
    policy_source_fn source;         /* where versions come from */
    void *source_arg;
    char *file;                      /* for the file source */
    char *dir;
    struct policy_status status;
    pthread_mutex_t pool_lock;       /* guards idle */
    struct policy *idle;             /* states no request holds, last returned first */
};

/* Blocks up to SMALL_MAX bytes are kept for reuse, in SMALL_STEP classes. */
#define SMALL_MAX 256
#define SMALL_STEP 16
#define SMALL_CLASSES (SMALL_MAX / SMALL_STEP)

struct small_block {
    struct small_block *next;
};

struct policy {
    lua_State *L;
    size_t mem_used;                 /* bytes the allocator handed out */
    size_t mem_limit;                /* allocations fail beyond this */
    long budget_left;                /* instructions left in this call */
    int in_call;                     /* policy code is running: no reserve */
    int mem_exhausted;               /* the cap refused memory in this call */
    int string_refused;              /* ... for a string over STRING_MAX */
    int over_time;                   /* the call ran out of CPU time */
    int hook_fired;                  /* the count hook has run in this call */
    long long hook_wall_us;          /* when it first ran, on the monotonic clock */
    long long hook_cpu_us;           /* and on the thread's CPU clock */
    int stopped;                     /* a limit stopped the call: nothing more runs */
    char stop_message[LUA_IDSIZE + 96]; /* what the hook raises from then on */
    long instructions;               /* budget the last guarded call used */
    struct policy_engine *engine;    /* NULL for a standalone check */
    struct generation *gen;          /* the version this state runs */
    int spoiled;                     /* an error left it suspect: rebuild */
    char last_error[512];            /* why the last call failed */
    int ref_policy;                  /* registry: the shared policy table */
    int ref_tenants;                 /* registry: tenant id -> override table */
    int ref_env_meta;                /* registry: metatable of the env proxy */
    int ref_globals;                 /* registry: load-time globals */
    int ref_scratch_meta;            /* registry: {__index = globals} */
    int ref_loaded;                  /* registry: require's module cache */
    struct policy *next_idle;        /* in engine->idle */
    struct small_block *small[SMALL_CLASSES]; /* freed small blocks, by size */
};

/* ---- limits ---------------------------------------------------------- */

/* Small blocks: every call makes and drops its context tables and strings,
 * more of one size than glibc's per-thread cache keeps (seven), so they
 * come from free lists of the state itself (one thread uses a state at a
 * time). A block of n <= SMALL_MAX bytes is one of its class's size. */
static size_t small_class(size_t n)
{
    return (n - 1) / SMALL_STEP;
}

static void *block_get(struct policy *p, size_t n)
{
    struct small_block *b;

    if (n > SMALL_MAX)
        return malloc(n);
    b = p->small[small_class(n)];
    if (!b)
        return malloc((small_class(n) + 1) * SMALL_STEP);
    p->small[small_class(n)] = b->next;
    return b;
}

static void block_put(struct policy *p, void *ptr, size_t n)
{
    struct small_block *b = ptr;

    if (n > SMALL_MAX) {
        free(ptr);
        return;
    }
    b->next = p->small[small_class(n)];
    p->small[small_class(n)] = b;
}

static void free_small_blocks(struct policy *p)
{
    for (size_t c = 0; c < SMALL_CLASSES; c++)
        while (p->small[c]) {
            struct small_block *b = p->small[c];

            p->small[c] = b->next;
            free(b);
        }
}

/* Lua's realloc (Lua passes every block's size back as osize). */
static void *block_resize(struct policy *p, void *ptr, size_t osize, size_t nsize)
{
    void *np;

    if (!ptr)
        return block_get(p, nsize);
    if (osize > SMALL_MAX && nsize > SMALL_MAX)
        np = realloc(ptr, nsize);
    else if (osize <= SMALL_MAX && nsize <= SMALL_MAX &&
             small_class(osize) == small_class(nsize))
        return ptr;
    else if ((np = block_get(p, nsize))) {
        memcpy(np, ptr, osize < nsize ? osize : nsize);
        block_put(p, ptr, osize);
    }
    /* Lua counts on shrinking never failing: the larger block serves */
    return np || nsize > osize ? np : ptr;
}

/* The allocator: a refused allocation raises "not enough memory". Policy
 * code gets mem_limit; hostflow's own pushes between calls (arguments,
 * results) may use a reserve above it, so a policy that filled its memory
 * cannot make them fail outside a protected call. */
static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct policy *p = ud;
    size_t old = ptr ? osize : 0;
    size_t limit = p->mem_limit + (p->in_call ? 0 : MEMORY_RESERVE);
    void *np;

    if (nsize == 0) {
        if (ptr)
            block_put(p, ptr, osize);
        p->mem_used -= old;
        return NULL;
    }
    if (nsize > old && p->mem_used + (nsize - old) > limit) {
        if (p->in_call)
            p->mem_exhausted = 1; /* sticky: a pcall that catches it still fails */
        return NULL;
    }
    /* with no block, osize is the type of the object being made */
    if (!ptr && osize == LUA_TSTRING && nsize > STRING_MAX) {
        p->string_refused = 1; /* a literal in a text being compiled, too */
        if (p->in_call)
            p->mem_exhausted = 1;
        return NULL;
    }
    np = block_resize(p, ptr, osize, nsize);
    if (np)
        p->mem_used = p->mem_used - old + nsize;
    return np;
}

/* 1 once the call has used more than CPU_LIMIT_US of its thread's CPU,
 * counted from the hook's first run (a call that never reaches it has run
 * under HOOK_EVERY instructions). The CPU clock is a system call, so it is
 * read only when the monotonic clock says the limit may be reached: a call
 * that was merely preempted is not stopped. */
static int out_of_time(struct policy *p)
{
    long long wall = clock_mono_us();

    if (!p->hook_fired) {
        p->hook_fired = 1;
        p->hook_wall_us = wall;
        p->hook_cpu_us = clock_thread_cpu_us();
        return 0;
    }
    return wall - p->hook_wall_us > CPU_LIMIT_US &&
           clock_thread_cpu_us() - p->hook_cpu_us > CPU_LIMIT_US;
}

/* 1 when a limit has stopped the current call. */
static int spent(const struct policy *p)
{
    return p->budget_left <= 0 || p->mem_exhausted;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

/* Once a limit is hit nothing more of the policy may run: not the message
 * handler of an xpcall (Lua runs it with hooks off when the error came from
 * a hook), not the __close handlers met on the way out. So from then on the
 * hook fires before every instruction and every call, C functions
 * included, and raises again. The message is made once, where the limit
 * was hit: that is where the operator must look. */
static void stop_call(struct policy *p, lua_State *L, lua_Debug *ar)
{
    const char *what = p->mem_exhausted ? "memory limit"
                       : p->over_time  ? "time limit" : "instruction budget";

    char where[LUA_IDSIZE + 16] = "";

    p->instructions = INSTRUCTION_BUDGET - (p->budget_left > 0 ? p->budget_left : 0);
    p->budget_left = 0;
    p->stopped = 1;
    if (lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
        snprintf(where, sizeof where, "%s:%d: ", ar->short_src, ar->currentline);
    if (p->string_refused)
        snprintf(p->stop_message, sizeof p->stop_message,
                 "%spolicy made a string over the %d KiB limit", where, (int)(STRING_MAX >> 10));
    else
        snprintf(p->stop_message, sizeof p->stop_message, "%spolicy exceeded its %s", where,
                 what);
    lua_sethook(L, budget_hook, LUA_MASKCALL | LUA_MASKCOUNT, 1);
}

/* The count hook: charges HOOK_EVERY instructions and watches the clock.
 * Raises every time it fires once the budget, the time or the memory is
 * spent, so a pcall inside the policy that catches the first error meets
 * the next one at once. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct policy *p;

    lua_getallocf(L, (void **)&p);
    if (!p->stopped) {
        if (ar->event == LUA_HOOKCOUNT)
            p->budget_left -= HOOK_EVERY;
        if (!spent(p) && !(p->over_time = out_of_time(p)))
            return;
        stop_call(p, L, ar);
    }
    lua_pushstring(L, p->stop_message);
    lua_error(L);
}

/* Call the function below nargs arguments with the budget armed. On error
 * leaves the message on the stack, marks the state spoiled, HF_EPOLICY.
 * Either way p->instructions says how much of the budget the call used. */
static int guarded_call(struct policy *p, int nargs, int nresults)
{
    int rc;

    p->budget_left = INSTRUCTION_BUDGET;
    p->mem_exhausted = 0;
    p->string_refused = 0;
    p->over_time = 0;
    p->hook_fired = 0;
    p->stopped = 0;
    p->in_call = 1;
    lua_sethook(p->L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    rc = lua_pcall(p->L, nargs, nresults, 0);
    lua_sethook(p->L, NULL, 0, 0);
    p->in_call = 0;
    if (!p->stopped) /* else counted where the stop came */
        p->instructions = INSTRUCTION_BUDGET - (p->budget_left > 0 ? p->budget_left : 0);
    if (p->mem_exhausted) {
        /* the policy caught the memory error and answered anyway, or the
         * error (raised again by its pcall, maybe) says only "not enough
         * memory"; a message that already says more is kept */
        const char *said = rc == LUA_OK ? NULL : lua_tostring(p->L, -1);

        if (!said || strcmp(said, "not enough memory") == 0) {
            lua_pop(p->L, rc == LUA_OK ? nresults : 1);
            if (p->string_refused)
                lua_pushfstring(p->L, "policy made a string over the %d KiB limit",
                                (int)(STRING_MAX >> 10));
            else
                lua_pushliteral(p->L, "policy exceeded its memory limit");
        }
        rc = LUA_ERRMEM;
    }
    if (rc != LUA_OK) {
        p->spoiled = 1;
        return HF_EPOLICY;
    }
    return 0;
}

/* 1 when a limit has stopped the current call: errors caught by the
 * policy's own pcall are raised again. */
static int limit_hit(const struct policy *p, int status)
{
    return spent(p) || status == LUA_ERRMEM;
}

/* pcall that cannot swallow a hit limit: the hook's or the allocator's
 * error is caught like any other, so once a limit is hit it is raised
 * again. */
static int budget_pcall(lua_State *L)
{
    struct policy *p;
    int status;

    lua_getallocf(L, (void **)&p);
    luaL_checkany(L, 1);
    status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (status != LUA_OK && limit_hit(p, status))
        return lua_error(L);
    lua_pushboolean(L, status == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

/* xpcall's message handler, the policy's own as upvalue 1: skipped once a
 * limit is hit. Lua runs a handler with hooks off when the error came from
 * a hook, so nothing could stop the policy's handler then. */
static int guarded_handler(lua_State *L)
{
    struct policy *p;

    lua_getallocf(L, (void **)&p);
    if (spent(p))
        return 1;                    /* the message as it is */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* xpcall(f, handler, ...) with the same rule as budget_pcall. */
static int budget_xpcall(lua_State *L)
{
    struct policy *p;
    int n = lua_gettop(L), status;

    lua_getallocf(L, (void **)&p);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, guarded_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);           /* slot for the status */
    lua_pushvalue(L, 1);             /* f */
    lua_rotate(L, 3, 2);             /* f, handler, true, f, args... */
    status = lua_pcall(L, n - 2, LUA_MULTRET, 2);
    if (status != LUA_OK && limit_hit(p, status))
        return lua_error(L);
    lua_pushboolean(L, status == LUA_OK);
    lua_replace(L, 3);
    return lua_gettop(L) - 2;
}

/* The error message on top of the stack, whatever its type. */
static const char *error_text(lua_State *L)
{
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;

    return s ? s : "(error object is not a string)";
}

/* ---- sandbox --------------------------------------------------------- */

static int helper_log(lua_State *L)
{
    const char *msg = luaL_checkstring(L, 1);

    log_msg(HF_LOG_INFO, "policy log: %.*s", 500, msg);
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
    push_url(L, s, &u);
    return 1;
}

static int refuse_write(lua_State *L)
{
    return luaL_error(L, "this table is read-only");
}

/* A module's or an override's top level assigning a global: it would land
 * in the globals every tenant's calls read. */
static int refuse_global(lua_State *L)
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
static void make_readonly(lua_State *L)
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
static int load_chunk(struct policy *p, const struct policy_text *t)
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
static void point_env_at_globals(struct policy *p, lua_CFunction refuse)
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
    point_env_at_globals(p, refuse_global);
    status = load_chunk(p, t);
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
        make_readonly(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name);
    return 1;
}

/* Build the load-time globals and the env proxy; registry refs in p. */
static void build_environment(struct policy *p)
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
    lua_pushcfunction(L, budget_pcall);
    lua_setfield(L, -2, "pcall");
    lua_pushcfunction(L, budget_xpcall);
    lua_setfield(L, -2, "xpcall");
    for (const char *const *n = libs; *n; n++) {
        lua_getglobal(L, *n);
        make_readonly(L);
        lua_setfield(L, -2, *n);
    }
    lua_createtable(L, 0, 2);                          /* os: clocks only */
    lua_getglobal(L, "os");
    lua_getfield(L, -1, "time");
    lua_setfield(L, -3, "time");
    lua_getfield(L, -1, "clock");
    lua_setfield(L, -3, "clock");
    lua_pop(L, 1);
    make_readonly(L);
    lua_setfield(L, -2, "os");
    lua_createtable(L, 0, 2);                          /* hostflow helpers */
    lua_pushcfunction(L, helper_log);
    lua_setfield(L, -2, "log");
    lua_pushcfunction(L, helper_parse_url);
    lua_setfield(L, -2, "parse_url");
    lua_pushcfunction(L, helper_is_internal_host);
    lua_setfield(L, -2, "is_internal_host");
    make_readonly(L);
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
static void fresh_scratch(struct policy *p)
{
    lua_State *L = p->L;

    lua_newtable(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ref_scratch_meta);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    point_env(p);
}

/* Open the libraries the sandbox draws from, and bound the string ones. */
static void open_libraries(struct policy *p)
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

/* ---- building a state from a generation ------------------------------ */

static void gen_release(struct policy_engine *e, struct generation *g)
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
    free_small_blocks(p);
    gen_release(p->engine, p->gen);
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

    if (load_chunk(p, t) != 0) {
        snprintf(err, errlen, "%s", error_text(p->L));
        return HF_EPOLICY;
    }
    if (is_override) { /* a view: an override must not change other tenants' policy */
        lua_rawgeti(p->L, LUA_REGISTRYINDEX, p->ref_policy);
        make_readonly(p->L);
        point_env_at_globals(p, refuse_global); /* nor the globals their calls read */
    }
    rc = guarded_call(p, is_override, 1);
    if (is_override) /* as the main chunk had it, for the next chunk */
        point_env_at_globals(p, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "%s", error_text(p->L));
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
static int state_build(struct policy_engine *e, struct generation *g,
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
    p->L = lua_newstate(limited_alloc, p);
    if (!p->L) {
        policy_free(p);
        snprintf(err, errlen, "out of memory");
        return HF_ENOMEM;
    }
    open_libraries(p);
    build_environment(p);

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

/* ---- calls ----------------------------------------------------------- */

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
        snprintf(p->last_error, sizeof p->last_error, "%s", error_text(p->L));
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
            snprintf(out->code, sizeof out->code, "rate_limited");
            snprintf(out->message, sizeof out->message,
                     "Too many requests; retry after %d seconds.", ctx->retry_after);
            out->status = 429;
        }
        return 0;
    }
    fresh_scratch(p);
    push_ctx(p->L, ctx);
    rc = guarded_call(p, 1, 4);
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

    fresh_scratch(p);
    push_url(p->L, raw, u);
    push_ctx(p->L, ctx);
    rc = guarded_call(p, 2, 3);
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

/* ---- examples -------------------------------------------------------- */

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
        if (guarded_call(p, 1, 1) != 0) {
            snprintf(err, errlen, "%s", error_text(p->L));
            return HF_EPOLICY;
        }
        lua_pop(p->L, 1);
    }
    return 0;
}

/* Compile src in a fresh state and run its examples: the gate every
 * version passes before it may serve. Takes ownership of src. */
static int gen_prepare(struct policy_source *src, struct generation **out,
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
    rc = state_build(NULL, g, &p, err, errlen);
    if (rc == 0) {
        rc = load_modules(p, err, errlen);
        if (rc == 0)
            rc = run_examples(p, n_examples, err, errlen);
        policy_free(p);
    }
    if (rc != 0) {
        gen_release(NULL, g);
        return rc;
    }
    *out = g;
    return 0;
}

int policy_check_source(struct policy_source *src, char *msg, size_t msglen)
{
    struct generation *g;
    int n = 0;

    if (gen_prepare(src, &g, &n, msg, msglen) != 0)
        return HF_EPOLICY;
    snprintf(msg, msglen, "version %s: %s with %zu module(s) and %zu tenant "
             "override(s) compiles; %d example(s) pass", g->src->version,
             g->src->main.chunkname + 1, g->src->n_modules, g->src->n_tenants, n);
    gen_release(NULL, g);
    return 0;
}

int policy_check_files(const char *file, const char *dir, char *msg, size_t msglen)
{
    struct policy_source *src;

    if (policy_source_read(file, dir, &src, msg, msglen) != 0)
        return HF_EPOLICY;
    return policy_check_source(src, msg, msglen);
}

/* ---- engine ---------------------------------------------------------- */

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
    gen_release(e, old);
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
        rc = gen_prepare(src, &g, &n, err, errlen);
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
    gen_release(NULL, e->current);
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
        rc = gen_prepare(src, &g, &n, msg, msglen);
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
    rc = state_build(e, g, &fresh, err, sizeof err);
    if (rc != 0) /* it compiled when activated: only memory exhaustion gets here */
        log_msg(HF_LOG_ERROR, "policy: cannot build a state of version %s: %s",
                g->src->version, err);
    gen_release(e, g);
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
