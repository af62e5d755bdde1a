/* policy_strlib.c - Lua 5.4's string.find/match/gmatch/gsub/rep, results
 * and errors alike, with their work charged to the policy's budget.
 *
 * Every function carries the budget pointer as upvalue 1. The matching
 * itself is pattern.c's; this file is argument handling, capture pushing
 * and output building, mirroring Lua 5.4.4's documented behaviour. */
#include "policy_strlib.h"

#include <limits.h>
#include <string.h>
#include <lauxlib.h>

#include "pattern.h"

/* Lua 5.4 refuses string.rep results over INT_MAX bytes (its MAXSIZE) */
#define REP_MAX ((size_t)INT_MAX)
/* no match ends here: the "previous match end" before the first match */
#define NO_END ((size_t)-1)

static long *upvalue_budget(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static void charge(lua_State *L, long *budget, size_t cost)
{
    if (pattern_charge(budget, cost))
        luaL_error(L, PATTERN_BUDGET_MESSAGE);
}

static void charge_copy(lua_State *L, long *budget, size_t bytes)
{
    charge(L, budget, 1 + bytes / PATTERN_BYTES_PER_STEP);
}

/* Raise the Lua error for a negative pattern_rc. */
static int raise_pattern_error(lua_State *L, int rc)
{
    return luaL_error(L, "%s", pattern_strerror(rc));
}

/* Lua's init argument at arg (default 1) as a 0-based offset: negative
 * counts from the end, too negative or 0 means the start; may exceed len. */
static size_t start_offset(lua_State *L, int arg, size_t len)
{
    lua_Integer pos = luaL_optinteger(L, arg, 1);

    if (pos > 0)
        return (size_t)pos - 1;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 0;
    return len + (size_t)pos;   /* len + pos, in unsigned arithmetic */
}

/* Push capture i of a match spanning [s, e); see pattern_capture(). */
static void push_capture(lua_State *L, const struct pattern_state *ms, int i,
                         size_t s, size_t e)
{
    size_t start, len;
    int kind = pattern_capture(ms, i, s, e, &start, &len);

    if (kind < 0)
        raise_pattern_error(L, kind);
    if (kind == 2) {
        lua_pushinteger(L, (lua_Integer)start + 1);
    } else {
        charge_copy(L, ms->budget, len);
        lua_pushlstring(L, (const char *)ms->subject + start, len);
    }
}

/* Push every capture (or the whole match when there are none and
 * with_whole_match); returns how many values were pushed. */
static int push_captures(lua_State *L, const struct pattern_state *ms,
                         size_t s, size_t e, int with_whole_match)
{
    int n = pattern_capture_count(ms, with_whole_match);

    luaL_checkstack(L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(L, ms, i, s, e);
    return n;
}

/* string.find (find = 1) and string.match (find = 0). */
static int find_or_match(lua_State *L, int find)
{
    long *budget = upvalue_budget(L);
    size_t slen, plen, end, at;
    const char *s = luaL_checklstring(L, 1, &slen);
    const char *p = luaL_checklstring(L, 2, &plen);
    size_t init = start_offset(L, 3, slen);
    struct pattern_state ms;
    int anchored, rc;

    charge(L, budget, 1);
    if (init > slen) {   /* starts after the end: nothing to find */
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !pattern_has_specials(p, plen))) {
        rc = pattern_find_plain(s, slen, init, p, plen, budget, &at);
        if (rc < 0)
            return raise_pattern_error(L, rc);
        if (rc == PATTERN_NOMATCH) {
            luaL_pushfail(L);
            return 1;
        }
        lua_pushinteger(L, (lua_Integer)at + 1);
        lua_pushinteger(L, (lua_Integer)(at + plen));
        return 2;
    }
    anchored = plen > 0 && p[0] == '^';
    if (anchored) {
        p++;
        plen--;
    }
    pattern_init(&ms, s, slen, p, plen, budget);
    for (size_t pos = init;; pos++) {
        rc = pattern_match_at(&ms, pos, &end);
        if (rc < 0)
            return raise_pattern_error(L, rc);
        if (rc == PATTERN_MATCH) {
            if (!find)
                return push_captures(L, &ms, pos, end, 1);
            lua_pushinteger(L, (lua_Integer)pos + 1);
            lua_pushinteger(L, (lua_Integer)end);
            return push_captures(L, &ms, pos, end, 0) + 2;
        }
        if (anchored || pos >= slen)
            break;
    }
    luaL_pushfail(L);
    return 1;
}

static int policy_find(lua_State *L)
{
    return find_or_match(L, 1);
}

static int policy_match(lua_State *L)
{
    return find_or_match(L, 0);
}

/* ---- gmatch ------------------------------------------------------------- */

struct gmatch_state {
    struct pattern_state ms;   /* subject and pattern live in upvalues 1, 2 */
    size_t next;               /* where the next search starts */
    size_t last_end;           /* end of the previous match, or NO_END */
};

/* The iterator: the next match whose end differs from the previous one's
 * (so an empty match right after a match is skipped), or nothing. */
static int gmatch_step(lua_State *L)
{
    struct gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(3));
    size_t end;
    int rc;

    charge(L, gm->ms.budget, 1);
    for (size_t pos = gm->next; pos <= gm->ms.subject_len; pos++) {
        rc = pattern_match_at(&gm->ms, pos, &end);
        if (rc < 0)
            return raise_pattern_error(L, rc);
        if (rc == PATTERN_MATCH && end != gm->last_end) {
            gm->next = gm->last_end = end;
            return push_captures(L, &gm->ms, pos, end, 1);
        }
    }
    return 0;
}

/* string.gmatch(s, pattern [, init]); '^' is a literal here, as in Lua. */
static int policy_gmatch(lua_State *L)
{
    long *budget = upvalue_budget(L);
    size_t slen, plen;
    const char *s = luaL_checklstring(L, 1, &slen);
    const char *p = luaL_checklstring(L, 2, &plen);
    size_t init = start_offset(L, 3, slen);
    struct gmatch_state *gm;

    charge(L, budget, 1);
    lua_settop(L, 2);   /* the closure keeps s and p alive */
    gm = lua_newuserdatauv(L, sizeof *gm, 0);
    pattern_init(&gm->ms, s, slen, p, plen, budget);
    gm->next = init > slen ? slen + 1 : init;
    gm->last_end = NO_END;
    lua_pushcclosure(L, gmatch_step, 3);
    return 1;
}

/* ---- gsub --------------------------------------------------------------- */

/* Append the replacement string (argument 3) for the match [s, e), with
 * "%0".."%9" and "%%" expanded. */
static void add_template(lua_State *L, const struct pattern_state *ms,
                         luaL_Buffer *b, size_t s, size_t e)
{
    size_t len, literal, start, caplen;
    const char *t = lua_tolstring(L, 3, &len);
    const char *esc;
    int kind, c;

    while ((esc = memchr(t, '%', len)) != NULL) {
        literal = (size_t)(esc - t);
        charge_copy(L, ms->budget, literal);
        luaL_addlstring(b, t, literal);
        /* past the end is the string's NUL terminator: an invalid use */
        c = literal + 1 < len ? (unsigned char)esc[1] : 0;
        if (c == '%') {
            luaL_addchar(b, '%');
        } else if (c == '0') {
            charge_copy(L, ms->budget, e - s);
            luaL_addlstring(b, (const char *)ms->subject + s, e - s);
        } else if (c >= '1' && c <= '9') {
            kind = pattern_capture(ms, c - '1', s, e, &start, &caplen);
            if (kind < 0)
                raise_pattern_error(L, kind);
            if (kind == 2) {
                lua_pushinteger(L, (lua_Integer)start + 1);
                luaL_addvalue(b);
            } else {
                charge_copy(L, ms->budget, caplen);
                luaL_addlstring(b, (const char *)ms->subject + start, caplen);
            }
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
        len -= literal + 2;
        t = esc + 2;
    }
    charge_copy(L, ms->budget, len);
    luaL_addlstring(b, t, len);
}

/* Append the replacement for the match [s, e) given the type of argument
 * 3; returns 1 when the text changed, 0 when the original was kept. */
static int add_replacement(lua_State *L, const struct pattern_state *ms,
                           luaL_Buffer *b, size_t s, size_t e, int repl_type)
{
    size_t len;

    switch (repl_type) {
    case LUA_TFUNCTION:
        lua_pushvalue(L, 3);
        lua_call(L, push_captures(L, ms, s, e, 1), 1);
        break;
    case LUA_TTABLE:
        push_capture(L, ms, 0, s, e);
        lua_gettable(L, 3);
        break;
    default:   /* string or number */
        add_template(L, ms, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {   /* nil or false: keep the original */
        lua_pop(L, 1);
        charge_copy(L, ms->budget, e - s);
        luaL_addlstring(b, (const char *)ms->subject + s, e - s);
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)",
                          luaL_typename(L, -1));
    lua_tolstring(L, -1, &len);
    charge_copy(L, ms->budget, len);
    luaL_addvalue(b);
    return 1;
}

/* string.gsub(s, pattern, repl [, n]): the new string and the number of
 * matches replaced. */
static int policy_gsub(lua_State *L)
{
    long *budget = upvalue_budget(L);
    size_t slen, plen, src = 0, end, last_end = NO_END;
    const char *s = luaL_checklstring(L, 1, &slen);
    const char *p = luaL_checklstring(L, 2, &plen);
    int repl_type = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)slen + 1);
    lua_Integer n = 0;
    int anchored = plen > 0 && p[0] == '^';
    int changed = 0, rc;
    struct pattern_state ms;
    luaL_Buffer b;

    luaL_argexpected(L, repl_type == LUA_TNUMBER || repl_type == LUA_TSTRING ||
                     repl_type == LUA_TFUNCTION || repl_type == LUA_TTABLE,
                     3, "string/function/table");
    charge(L, budget, 1);
    luaL_buffinit(L, &b);
    if (anchored) {
        p++;
        plen--;
    }
    pattern_init(&ms, s, slen, p, plen, budget);
    while (n < max_n) {
        rc = pattern_match_at(&ms, src, &end);
        if (rc < 0)
            return raise_pattern_error(L, rc);
        if (rc == PATTERN_MATCH && end != last_end) {
            n++;
            changed |= add_replacement(L, &ms, &b, src, end, repl_type);
            src = last_end = end;
        } else if (src < slen) {
            luaL_addchar(&b, s[src]);   /* no match here: keep one byte */
            src++;
        } else {
            break;
        }
        if (anchored)
            break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        charge_copy(L, budget, slen - src);
        luaL_addlstring(&b, s + src, slen - src);
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

/* ---- rep ---------------------------------------------------------------- */

/* string.rep(s, n [, sep]); the whole output is charged before building. */
static int policy_rep(lua_State *L)
{
    long *budget = upvalue_budget(L);
    size_t len, sep_len, total;
    const char *s = luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &sep_len);
    luaL_Buffer b;
    char *out;

    if (n <= 0) {
        charge(L, budget, 1);
        lua_pushliteral(L, "");
        return 1;
    }
    if (len + sep_len < len || len + sep_len > REP_MAX / (size_t)n)
        return luaL_error(L, "resulting string too large");
    total = (size_t)n * len + (size_t)(n - 1) * sep_len;
    charge(L, budget, total / PATTERN_BYTES_PER_STEP ? total / PATTERN_BYTES_PER_STEP : 1);
    if (total == 0) {   /* n empty copies: do not loop n times for nothing */
        lua_pushliteral(L, "");
        return 1;
    }
    out = luaL_buffinitsize(L, &b, total);
    for (; n > 1; n--) {
        memcpy(out, s, len);
        out += len;
        memcpy(out, sep, sep_len);
        out += sep_len;
    }
    memcpy(out, s, len);
    luaL_pushresultsize(&b, total);
    return 1;
}

void policy_strlib_install(lua_State *L, int string_table_index, long *budget)
{
    static const luaL_Reg bounded[] = {
        {"find", policy_find},   {"match", policy_match},
        {"gmatch", policy_gmatch}, {"gsub", policy_gsub},
        {"rep", policy_rep},     {NULL, NULL},
    };

    lua_pushvalue(L, string_table_index);
    lua_pushlightuserdata(L, budget);
    luaL_setfuncs(L, bounded, 1);
    lua_pop(L, 1);
}
