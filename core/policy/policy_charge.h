/* policy_charge.h - budget-charging wrappers of the C functions whose work
 * grows with their arguments and that policy_strlib.c and policy_tablib.c
 * do not reimplement: tonumber, string arithmetic, string.byte/sub/upper...
 * and the utf8 library. The count hook never fires inside a C function, so
 * without a charge a policy could call them in a loop, each taking up to a
 * millisecond on a long string, far past its time limit before the hook
 * next looked at the clock. */
#ifndef HF_POLICY_CHARGE_H
#define HF_POLICY_CHARGE_H

#include <lua.h>

/* Replace each function named in names (NULL-terminated; absent ones are
 * skipped) of the table at table_index with a wrapper that charges *budget
 * one unit per argument and per result and one per 16 bytes of every
 * string among them, and raises "policy exceeded its instruction budget"
 * once that spends it. budget must outlive the wrappers. */
void policy_charge_wrap(lua_State *L, int table_index, const char *const names[],
                        long *budget);

#endif
