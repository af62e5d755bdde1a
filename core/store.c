/* store.c - the store.h API: picks the backend by the --db string and
 * forwards each call to the backend of the store it is given. The only
 * file that knows there is more than one database. */
#include "store_backend.h"

#include <string.h>

#include "err.h"
#include "log.h"

/* postgres:// or postgresql:// selects PostgreSQL; anything else is a
 * SQLite file path. */
static const struct store_ops *backend_for(const char *path)
{
    if (strncmp(path, "postgres://", 11) == 0 || strncmp(path, "postgresql://", 13) == 0)
        return &store_pg_ops;
    return &store_sqlite_ops;
}

static const struct store_ops *ops_of(const void *store_or_writer)
{
    return ((const struct store_head *)store_or_writer)->ops;
}

/* An operation this backend does not provide (yet): a log line, not a crash. */
static int unavailable(const struct store_ops *ops, const char *name)
{
    log_msg(HF_LOG_ERROR, "store: store_%s is not available on %s", name, ops->name);
    return HF_ESTORE;
}

int store_open(const char *path, struct store **out, char *err, size_t errlen)
{
    return backend_for(path)->open(path, out, err, errlen);
}

void store_close(struct store *s)
{
    if (s)
        ops_of(s)->close(s);
}

void store_read_begin(struct store *s)
{
    ops_of(s)->read_begin(s);
}

void store_read_end(struct store *s)
{
    ops_of(s)->read_end(s);
}

void store_read_begin_optimistic(struct store *s)
{
    if (ops_of(s)->read_begin_optimistic)
        ops_of(s)->read_begin_optimistic(s);
    else
        ops_of(s)->read_begin(s);
}

int store_read_current(struct store *s)
{
    return ops_of(s)->read_current ? ops_of(s)->read_current(s) : 1;
}

int store_writer_start(const char *path, struct store_writer **out, char *err,
                       size_t errlen)
{
    return backend_for(path)->writer_start(path, out, err, errlen);
}

void store_writer_stop(struct store_writer *w)
{
    if (w)
        ops_of(w)->writer_stop(w);
}

#define STORE_FORWARD(name, params, args)                                     \
    int store_##name params                                                   \
    {                                                                         \
        const struct store_ops *ops = ops_of(s);                              \
                                                                              \
        return ops->name ? ops->name args : unavailable(ops, #name);          \
    }
STORE_CALLS(STORE_FORWARD)
#undef STORE_FORWARD
