/* policy_charge.c - budget-charging wrappers of C library functions (see
 * policy_charge.h). */
#include "policy_charge.h"

#include <lauxlib.h>

#include "pattern.h"

/* What the values from index from to the top cost. */
static size_t cost_of(lua_State *L, int from)
{
    int top = lua_gettop(L);
    size_t cost = 1;

    for (int i = from; i <= top; i++) {
        cost++;
        if (lua_type(L, i) == LUA_TSTRING)
            cost += lua_rawlen(L, i) / PATTERN_BYTES_PER_STEP;
    }
    return cost;
}

/* Upvalue 1: the budget; 2: the original function. Arguments are charged
 * before it runs, results (as long as the arguments, or longer) after. */
static int charged(lua_State *L)
{
    long *budget = lua_touserdata(L, lua_upvalueindex(1));

    if (pattern_charge(budget, cost_of(L, 1)))
        return luaL_error(L, PATTERN_BUDGET_MESSAGE);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    if (pattern_charge(budget, cost_of(L, 1)))
        return luaL_error(L, PATTERN_BUDGET_MESSAGE);
    return lua_gettop(L);
}

void policy_charge_wrap(lua_State *L, int table_index, const char *const names[],
                        long *budget)
{
    table_index = lua_absindex(L, table_index);
    for (const char *const *n = names; *n; n++) {
        if (lua_getfield(L, table_index, *n) != LUA_TFUNCTION) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushlightuserdata(L, budget);
        lua_insert(L, -2);
        lua_pushcclosure(L, charged, 2);
        lua_setfield(L, table_index, *n);
    }
}
