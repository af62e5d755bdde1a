/* buf.c - a growing byte buffer, and bounded copies. */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 512;
        char *grown;

        if (cap < b->len + n + 1)
            cap = b->len + n + 1;
        grown = realloc(b->data, cap);
        if (!grown) {
            fputs("hostflow: out of memory\n", stderr);
            abort();
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_copy(char *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n - 1);

    memcpy(dst, src, len);
    dst[len] = '\0';
}
