/* bigstack.c - ucontext switch onto a large mmap'd stack and back. */
#define _GNU_SOURCE
#include "bigstack.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HF_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HF_ASAN 1
#endif
#ifdef HF_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

struct bigstack {
    void *map;                 /* guard page + stack */
    size_t map_len;
    ucontext_t caller;         /* where bigstack_run returns to */
    ucontext_t callee;         /* fn on the big stack */
    void (*fn)(void *);
    void *arg;
#ifdef HF_ASAN
    void *fake_stack;          /* ASan's bookkeeping across the switch */
    const void *caller_bottom;
    size_t caller_size;
#endif
};

struct bigstack *bigstack_new(void)
{
    struct bigstack *bs = calloc(1, sizeof *bs);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);

    if (!bs)
        return NULL;
    bs->map_len = HF_BIGSTACK_SIZE + page;
    bs->map = mmap(NULL, bs->map_len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (bs->map == MAP_FAILED) {
        free(bs);
        return NULL;
    }
    /* an overflow faults on the guard page instead of corrupting the heap */
    mprotect(bs->map, page, PROT_NONE);
    return bs;
}

void bigstack_free(struct bigstack *bs)
{
    if (!bs)
        return;
    munmap(bs->map, bs->map_len);
    free(bs);
}

/* makecontext passes int arguments only: split the pointer in two. */
static void trampoline(unsigned int hi, unsigned int lo)
{
    struct bigstack *bs = (struct bigstack *)(((uintptr_t)hi << 32) | (uintptr_t)lo);

#ifdef HF_ASAN
    __sanitizer_finish_switch_fiber(NULL, &bs->caller_bottom, &bs->caller_size);
#endif
    bs->fn(bs->arg);
#ifdef HF_ASAN
    __sanitizer_start_switch_fiber(NULL, bs->caller_bottom, bs->caller_size);
#endif
    /* returning resumes uc_link, the caller */
}

void bigstack_run(struct bigstack *bs, void (*fn)(void *), void *arg)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t self = (uintptr_t)bs;

    bs->fn = fn;
    bs->arg = arg;
    getcontext(&bs->callee);
    bs->callee.uc_stack.ss_sp = (char *)bs->map + page;
    bs->callee.uc_stack.ss_size = HF_BIGSTACK_SIZE;
    bs->callee.uc_link = &bs->caller;
    makecontext(&bs->callee, (void (*)(void))trampoline, 2,
                (unsigned int)(self >> 32), (unsigned int)(self & 0xffffffffu));
#ifdef HF_ASAN
    __sanitizer_start_switch_fiber(&bs->fake_stack, (char *)bs->map + page,
                                   HF_BIGSTACK_SIZE);
#endif
    swapcontext(&bs->caller, &bs->callee);
#ifdef HF_ASAN
    __sanitizer_finish_switch_fiber(bs->fake_stack, NULL, NULL);
#endif
}
