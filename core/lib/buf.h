/* buf.h - a growing byte buffer (HTML pages and JSON text are written
 * into one), and bounded copies into fixed ones. */
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

/* Copy src into dst of n > 0 bytes, cut to fit and always terminated:
 * snprintf(dst, n, "%s", src) without parsing a format. */
void buf_copy(char *dst, size_t n, const char *src);

#endif
