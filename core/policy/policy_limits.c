/* policy_limits.c - the limits of one state: the capped allocator and its
 * small-block cache, the count hook (instruction budget, CPU time), the
 * guarded call, and the pcall/xpcall that cannot swallow a hit limit. */
#include "policy_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "clock.h"
#include "err.h"

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

void policy_free_small_blocks(struct policy *p)
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
void *policy_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
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
int policy_guarded_call(struct policy *p, int nargs, int nresults)
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
int policy_budget_pcall(lua_State *L)
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

/* xpcall(f, handler, ...) with the same rule as policy_budget_pcall. */
int policy_budget_xpcall(lua_State *L)
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
const char *policy_error_text(lua_State *L)
{
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;

    return s ? s : "(error object is not a string)";
}
