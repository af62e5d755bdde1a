/* policy_tablib.c - budget-charging wrappers of the table library. */
#include "policy_tablib.h"

#include <limits.h>
#include <lauxlib.h>

#include "pattern.h"

/* Charge cost elements to the budget (upvalue 1); raise once it is spent
 * (left at 0, so the count hook keeps raising too). */
static void charge(lua_State *L, lua_Unsigned cost)
{
    long *budget = lua_touserdata(L, lua_upvalueindex(1));

    if (*budget <= 0 || cost >= (lua_Unsigned)*budget) {
        *budget = 0;
        luaL_error(L, PATTERN_BUDGET_MESSAGE);
    }
    *budget -= (long)cost;
}

/* Elements from i to j inclusive, without overflow; 0 when j < i. */
static lua_Unsigned span(lua_Integer i, lua_Integer j)
{
    if (j < i)
        return 0;
    return (lua_Unsigned)j - (lua_Unsigned)i + 1u;
}

/* The length of the table at idx, as the original function will read it.
 * A __len metamethod could answer this read small and the original's own
 * read huge, and its loop over the elements would then run unpaid, in C,
 * where the count hook never fires. So a table with one is refused: a raw
 * length cannot change between this read and the original's. */
static lua_Integer length(lua_State *L, int idx)
{
    if (luaL_getmetafield(L, idx, "__len") != LUA_TNIL)
        luaL_error(L, "the table functions take no table with a __len metamethod in a policy");
    return luaL_len(L, idx);
}

/* Call the original function (upvalue 2) with every argument. */
static int forward(lua_State *L)
{
    int n = lua_gettop(L);

    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static int bounded_move(lua_State *L)
{
    charge(L, span(luaL_checkinteger(L, 2), luaL_checkinteger(L, 3)));
    return forward(L);
}

static int bounded_insert(lua_State *L)
{
    if (lua_gettop(L) == 3) /* shifts the elements from pos to the end */
        charge(L, span(luaL_checkinteger(L, 2), length(L, 1)));
    else
        charge(L, 1);
    return forward(L);
}

static int bounded_remove(lua_State *L)
{
    lua_Integer len = length(L, 1);

    charge(L, span(luaL_optinteger(L, 2, len), len) + 1u);
    return forward(L);
}

static int bounded_concat(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 3, 1);
    lua_Integer j = lua_isnoneornil(L, 4) ? length(L, 1) : luaL_checkinteger(L, 4);

    charge(L, span(i, j));
    return forward(L);
}

static int bounded_unpack(lua_State *L)
{
    lua_Integer i = luaL_optinteger(L, 2, 1);
    lua_Integer j = lua_isnoneornil(L, 3) ? length(L, 1) : luaL_checkinteger(L, 3);

    charge(L, span(i, j));
    return forward(L);
}

static int bounded_sort(lua_State *L)
{
    lua_Integer n = length(L, 1);
    lua_Unsigned cost = n > 0 ? (lua_Unsigned)n : 0, log2n = 1;

    for (lua_Unsigned m = cost; m > 1; m >>= 1)
        log2n++;
    charge(L, cost > ((lua_Unsigned)LONG_MAX) / log2n ? (lua_Unsigned)LONG_MAX : cost * log2n);
    return forward(L);
}

void policy_tablib_install(lua_State *L, int table_index, long *budget)
{
    static const luaL_Reg wrappers[] = {
        {"move", bounded_move}, {"insert", bounded_insert}, {"remove", bounded_remove},
        {"concat", bounded_concat}, {"unpack", bounded_unpack}, {"sort", bounded_sort},
        {NULL, NULL}};

    table_index = lua_absindex(L, table_index);
    for (const luaL_Reg *w = wrappers; w->name; w++) {
        lua_pushlightuserdata(L, budget);
        lua_getfield(L, table_index, w->name);
        lua_pushcclosure(L, w->func, 2);
        lua_setfield(L, table_index, w->name);
    }
}
