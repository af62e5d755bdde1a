/* policy_tablib.h - table library functions that charge the policy's
 * instruction budget for the loops they run in C, where the count hook
 * never fires (table.move({}, 1, 1 << 40, 1) would otherwise spin for
 * hours). */
#ifndef HF_POLICY_TABLIB_H
#define HF_POLICY_TABLIB_H

#include <lua.h>

/* Wrap move, insert, remove, concat, unpack and sort of the table library
 * at table_index: each charges one unit per element it will touch to
 * *budget before running the original, and raises "policy exceeded its
 * instruction budget" when that would spend it. */
void policy_tablib_install(lua_State *L, int table_index, long *budget);

#endif
