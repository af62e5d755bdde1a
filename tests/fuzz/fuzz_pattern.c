/* fuzz_pattern.c - the budgeted Lua pattern matcher (core/policy/pattern.c).
 *
 * Input: the pattern up to the first '\n', the subject after it (the
 * subject may hold any byte, NUL included; a pattern matches a newline
 * with "%c" or "\n" in a set is out of reach, which is fine).
 *
 * 1. pattern_match_at at every subject position, one shared budget of
 *    BUDGET steps: must terminate (the budget bounds it), never crash, and
 *    every match end and capture must lie inside the subject.
 * 2. Reference check: where our matcher finished within the budget, Lua
 *    5.4's own string.find(subject, "^" .. pattern, pos + 1) must agree:
 *    match or not, the end, every capture, and the error for a malformed
 *    pattern (pattern.h promises Lua's exact semantics and messages).
 *    Lua's matcher has no budget, but it takes the same steps ours
 *    charged, so it finishes just as quickly.
 * 3. pattern_find_plain with the pattern as a needle against memmem. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "pattern.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define BUDGET 100000L

#define REQUIRE(cond)                                                          \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_pattern: invariant failed: %s (line %d)\n",  \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

static lua_State *L;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    L = luaL_newstate();
    luaL_openlibs(L);
    return 0;
}

/* Our result at one position, to compare with Lua's. */
struct ours {
    int rc;                 /* PATTERN_MATCH / _NOMATCH / error */
    size_t end;
    int ncap;               /* captures pushed by find (0 without any) */
    int cap_kind[PATTERN_MAXCAPTURES]; /* 1 string, 2 position */
    size_t cap_start[PATTERN_MAXCAPTURES], cap_len[PATTERN_MAXCAPTURES];
    int cap_err;            /* a pattern_capture error, or 0 */
};

static void mismatch(const char *what, const char *pat, size_t pl, size_t pos,
                     const char *lua_said)
{
    fprintf(stderr, "fuzz_pattern: differs from Lua 5.4 (%s) at init %zu, pattern "
            "\"%.*s\": lua said: %s\n", what, pos + 1, (int)pl, pat,
            lua_said ? lua_said : "-");
    abort();
}

/* string.find(subject, "^" .. pattern, pos + 1) in real Lua. */
static void compare_with_lua(const char *subj, size_t sl, const char *pat, size_t pl,
                             size_t pos, const struct ours *o)
{
    int top = lua_gettop(L), st, nres;

    lua_getglobal(L, "string");
    lua_getfield(L, -1, "find");
    lua_pushlstring(L, subj, sl);
    lua_pushliteral(L, "^");
    lua_pushlstring(L, pat, pl);
    lua_concat(L, 2);
    lua_pushinteger(L, (lua_Integer)pos + 1);
    st = lua_pcall(L, 3, LUA_MULTRET, 0);
    nres = lua_gettop(L) - top - 1; /* minus the string table */

    if (st != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        int want_err = o->rc < 0 ? o->rc : o->cap_err;
        if (want_err == 0)
            mismatch("Lua raised, we did not", pat, pl, pos, msg);
        if (!msg || !strstr(msg, pattern_strerror(want_err)))
            mismatch("different error", pat, pl, pos, msg);
        lua_settop(L, top);
        return;
    }
    if (o->rc < 0 || o->cap_err)
        mismatch("we raised, Lua did not", pat, pl, pos, pattern_strerror(o->rc < 0 ? o->rc : o->cap_err));
    if (lua_isnil(L, top + 2)) {
        if (o->rc != PATTERN_NOMATCH)
            mismatch("Lua found no match", pat, pl, pos, NULL);
        lua_settop(L, top);
        return;
    }
    if (o->rc != PATTERN_MATCH)
        mismatch("Lua matched, we did not", pat, pl, pos, NULL);
    if (lua_tointeger(L, top + 2) != (lua_Integer)pos + 1 ||
        lua_tointeger(L, top + 3) != (lua_Integer)o->end)
        mismatch("match span", pat, pl, pos, NULL);
    if (nres - 2 != o->ncap)
        mismatch("capture count", pat, pl, pos, NULL);
    for (int i = 0; i < o->ncap; i++) {
        int idx = top + 4 + i;
        if (o->cap_kind[i] == 2) {
            if (!lua_isinteger(L, idx) ||
                lua_tointeger(L, idx) != (lua_Integer)o->cap_start[i] + 1)
                mismatch("position capture", pat, pl, pos, NULL);
        } else {
            size_t n;
            const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
            if (!s || n != o->cap_len[i] || memcmp(s, subj + o->cap_start[i], n) != 0)
                mismatch("string capture", pat, pl, pos, NULL);
        }
    }
    lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    size_t pl = nl ? (size_t)(nl - (const char *)data) : size;
    size_t sl = nl ? size - pl - 1 : 0;
    char *pat = malloc(pl ? pl : 1), *subj = malloc(sl ? sl : 1);
    struct pattern_state ms;
    long budget = BUDGET;
    static struct ours o;

    if (!pat || !subj) {
        free(pat);
        free(subj);
        return 0;
    }
    memcpy(pat, data, pl);
    if (sl)
        memcpy(subj, data + pl + 1, sl);

    pattern_init(&ms, subj, sl, pat, pl, &budget);
    for (size_t pos = 0; pos <= sl; pos++) {
        size_t end = (size_t)-1;

        memset(&o, 0, sizeof o);
        o.rc = pattern_match_at(&ms, pos, &end);
        REQUIRE(o.rc == PATTERN_MATCH || o.rc == PATTERN_NOMATCH ||
                (o.rc < 0 && o.rc >= PATTERN_ECAPINDEX9));
        REQUIRE(strcmp(pattern_strerror(o.rc), "unknown pattern error") != 0 ||
                o.rc >= 0);
        if (o.rc == PATTERN_EBUDGET)
            break;  /* the rest of the subject is out of budget */
        REQUIRE(ms.level >= 0 && ms.level <= PATTERN_MAXCAPTURES);
        if (o.rc == PATTERN_MATCH) {
            int n = pattern_capture_count(&ms, 0);

            REQUIRE(end >= pos && end <= sl);
            o.end = end;
            REQUIRE(n == ms.level);
            REQUIRE(pattern_capture_count(&ms, 1) == (n ? n : 1));
            o.ncap = n;
            for (int i = 0; i < n; i++) {
                size_t cs = (size_t)-1, cl = (size_t)-1;
                int k = pattern_capture(&ms, i, pos, end, &cs, &cl);

                if (k < 0) {
                    REQUIRE(k == PATTERN_EUNFINISHED);
                    if (!o.cap_err)
                        o.cap_err = k;
                    continue;
                }
                REQUIRE(k == 1 || k == 2);
                REQUIRE(cs <= sl);
                if (k == 1)
                    REQUIRE(cl <= sl - cs);
                o.cap_kind[i] = k;
                o.cap_start[i] = cs;
                o.cap_len[i] = cl;
            }
        }
        compare_with_lua(subj, sl, pat, pl, pos, &o);
        if (o.rc < 0)
            break;  /* Lua raises: the caller stops here */
    }

    /* plain search */
    {
        long b = BUDGET;
        size_t at = (size_t)-1;
        int rc = pattern_find_plain(subj, sl, 0, pat, pl, &b, &at);
        const char *ref = pl == 0 ? subj : memmem(subj, sl, pat, pl);

        REQUIRE(rc == PATTERN_MATCH || rc == PATTERN_NOMATCH || rc == PATTERN_EBUDGET);
        if (rc == PATTERN_MATCH)
            REQUIRE(ref != NULL && at == (size_t)(ref - subj));
        if (rc == PATTERN_NOMATCH)
            REQUIRE(ref == NULL);
        (void)pattern_has_specials(pat, pl);
    }

    free(pat);
    free(subj);
    return 0;
}
