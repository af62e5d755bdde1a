/* bigstack.h - run a function on a large private stack.
 *
 * civetweb starts its worker threads with 100 KiB stacks (a compile-time
 * choice of the Debian build), too small for Lua's 200 levels of C
 * recursion that a policy can reach through pcall or metamethods. Each
 * worker runs its handler on one of these instead. */
#ifndef HF_BIGSTACK_H
#define HF_BIGSTACK_H

#include <stddef.h>

#define HF_BIGSTACK_SIZE (8u << 20) /* reserved, committed only as touched */

struct bigstack;

/* A stack of HF_BIGSTACK_SIZE bytes with a guard page below it; NULL when
 * the memory cannot be mapped. */
struct bigstack *bigstack_new(void);
/* Unmap; NULL is fine. Not while bigstack_run is using it. */
void bigstack_free(struct bigstack *bs);

/* Call fn(arg) on bs's stack and return when it returns. Not reentrant. */
void bigstack_run(struct bigstack *bs, void (*fn)(void *), void *arg);

#endif
