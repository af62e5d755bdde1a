/* fdio.h - whole reads and writes on a file descriptor. */
#ifndef HF_FDIO_H
#define HF_FDIO_H

#include <stddef.h>

/* Read exactly n bytes, or write all n, going on after EINTR and short
 * counts; 0, or -1 on an error or an early end of file. */
int fd_read_all(int fd, void *buf, size_t n);
int fd_write_all(int fd, const void *buf, size_t n);

#endif
