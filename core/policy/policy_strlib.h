/* policy_strlib.h - budget-charging string.find, match, gmatch, gsub and
 * rep for policy code, so string patterns stop like a runaway loop does.
 *
 * The installed functions behave exactly like Lua 5.4's (results, argument
 * errors, pattern errors) except that their work is charged to *budget, the
 * same counter the caller's count hook decrements: one unit per matcher
 * step (see pattern.h) and per 16 bytes copied. When the budget reaches
 * <= 0 they raise "policy exceeded its instruction budget" and leave
 * *budget <= 0, so the hook keeps raising if the policy catches the error.
 * Lua functions called by gsub are not charged here: the hook counts them. */
#ifndef HF_POLICY_STRLIB_H
#define HF_POLICY_STRLIB_H

#include <lua.h>

/* Replace find, match, gmatch, gsub and rep in the table at
 * string_table_index with versions carrying budget as a light userdata
 * upvalue (budget must outlive them); returns nothing and raises a Lua
 * memory error on failure. */
void policy_strlib_install(lua_State *L, int string_table_index, long *budget);

#endif
