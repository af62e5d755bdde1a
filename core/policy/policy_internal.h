/* policy_internal.h - what the files of the policy engine share, private
 * to core/policy/ (callers outside it use policy.h): the limits of a
 * state, struct generation, struct policy_engine, struct policy, and the
 * functions one file defines for another.
 *
 * Each struct policy owns one lua_State with its own allocator (memory cap)
 * and a count hook (instruction budget). Policy code runs in an
 * environment holding only the safe parts of the standard library behind
 * read-only proxies. Its globals live in a per-call scratch table, so
 * nothing one request writes is seen by the next. */
#ifndef HF_POLICY_INTERNAL_H
#define HF_POLICY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <lua.h>

#include "policy.h"

struct policy_text;

#define MEMORY_LIMIT (16u << 20)       /* bytes per Lua state */
#define MEMORY_RESERVE (1u << 20)      /* more, for hostflow's own pushes outside calls */
#define INSTRUCTION_BUDGET 1000000L    /* VM instructions (or match steps) per call */
#define HOOK_EVERY 100                 /* instructions between hook checks */
/* One instruction can cost as much as its strings are long (comparing or
 * joining two of them, upper() on one): the budget counts instructions, so
 * strings are capped and each call's CPU time is bounded too. */
#define STRING_MAX (256u << 10)        /* bytes of one string, header included */
#define CPU_LIMIT_US 50000LL           /* thread CPU time per call */

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

/* ---- policy_limits.c ---- */

/* Lua's allocator for a state (ud is its struct policy): refuses beyond
 * mem_limit (plus a reserve outside calls) and strings over STRING_MAX. */
void *policy_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
/* Free the small blocks p keeps for reuse (after lua_close). */
void policy_free_small_blocks(struct policy *p);
/* Call the function below nargs arguments with the budget armed: 0, or
 * HF_EPOLICY with the message on the stack and the state spoiled. */
int policy_guarded_call(struct policy *p, int nargs, int nresults);
/* The sandbox's pcall and xpcall: like Lua's, but a hit limit is raised
 * again rather than caught. */
int policy_budget_pcall(lua_State *L);
int policy_budget_xpcall(lua_State *L);
/* The error message on top of the stack, whatever its type; borrowed
 * while it stays there. */
const char *policy_error_text(lua_State *L);

/* ---- policy_sandbox.c ---- */

/* Push the url table policy code sees for raw, parsed as u. */
void policy_push_url(lua_State *L, const char *raw, const struct url *u);
/* __newindex that refuses a module's or an override's global. */
int policy_refuse_global(lua_State *L);
/* Replace the table at the top with a read-only proxy of it. */
void policy_make_readonly(lua_State *L);
/* Load t with the environment proxy as _ENV: 0 with the function on the
 * stack, or HF_EPOLICY with the message there. */
int policy_load_chunk(struct policy *p, const struct policy_text *t);
/* Point the environment proxy at the load-time globals; writes go to them,
 * or to refuse when it is not NULL. */
void policy_point_env_at_globals(struct policy *p, lua_CFunction refuse);
/* Build the load-time globals and the environment proxy (refs in p). */
void policy_build_environment(struct policy *p);
/* Point the environment proxy at a fresh scratch table for one call. */
void policy_fresh_scratch(struct policy *p);
/* Open the standard libraries the sandbox draws from, bounded. */
void policy_open_libraries(struct policy *p);

/* ---- policy_state.c ---- */

/* A state with g's policy loaded (main file, then every override), in
 * *out; takes a reference to g. HF_ENOMEM or HF_EPOLICY with the reason
 * in err. e is NULL for a standalone check. */
int policy_state_build(struct policy_engine *e, struct generation *g,
                       struct policy **out, char *err, size_t errlen);
/* Drop a reference to g (under e's lock when e is not NULL), freeing it
 * with the last one; NULL is fine. */
void policy_gen_release(struct policy_engine *e, struct generation *g);

/* ---- policy_examples.c ---- */

/* Compile src in a fresh state, load its modules and run its examples:
 * 0 with the generation (one reference) in *out and the count in
 * *n_examples, or HF_E... with the reason in err. Takes ownership of
 * src. */
int policy_gen_prepare(struct policy_source *src, struct generation **out,
                       int *n_examples, char *err, size_t errlen);

#endif
