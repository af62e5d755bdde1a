/* buf.h - a growing byte buffer: HTML pages and JSON text are written
 * into one. */
#ifndef HF_BUF_H
#define HF_BUF_H

#include <stddef.h>

/* Start from a zeroed struct; data is NUL-terminated after every put and
 * malloc'd (the writer frees it, or hands it on). */
struct buf {
    char *data;
    size_t len, cap;
};

/* Append n bytes of s; aborts when out of memory. */
void buf_put(struct buf *b, const char *s, size_t n);

#endif
