/* test_buf.c - unit tests for core/lib/buf.c: the growing buffer and bounded
 * copies into fixed ones. */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check.h"

int main(void)
{
    {
        char dst[8];

        memset(dst, 'x', sizeof dst);
        buf_copy(dst, sizeof dst, "pending");
        CHECK("a string that fits is copied whole", strcmp(dst, "pending") == 0);
        memset(dst, 'x', sizeof dst);
        buf_copy(dst, sizeof dst, "completed");
        CHECK("a longer one is cut to fit and terminated", strcmp(dst, "complet") == 0);
        buf_copy(dst, sizeof dst, "");
        CHECK("an empty one leaves an empty string", dst[0] == '\0');
        buf_copy(dst, 1, "abc");
        CHECK("a one-byte destination gets only the terminator", dst[0] == '\0');
    }
    {
        struct buf b = {0};
        size_t total = 0;
        int same = 1;

        for (int i = 0; i < 300; i++) { /* past the first 512 bytes, several times */
            buf_put(&b, "abcdefg", 7);
            total += 7;
        }
        for (size_t i = 0; i < total; i++)
            same &= b.data[i] == "abcdefg"[i % 7];
        CHECK("puts append in order across growth", b.len == total && same);
        CHECK("the data is terminated after every put", b.data[b.len] == '\0');
        buf_put(&b, "", 0);
        CHECK("an empty put changes nothing", b.len == total && b.data[b.len] == '\0');
        free(b.data);
    }
    return CHECK_DONE();
}
