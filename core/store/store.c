/* store.c - the store.h API: picks the backend by the --db string and
 * forwards each call to the backend of the store it is given. The only
 * file that knows there is more than one database. */
#include "store_backend.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"

/* postgres:// or postgresql:// selects PostgreSQL. */
static int is_pg_url(const char *path)
{
    return strncmp(path, "postgres://", 11) == 0 || strncmp(path, "postgresql://", 13) == 0;
}

/* 1 when path starts like a libpq keyword string: "word=" (spaces around
 * the = allowed), as in "host=/run/postgresql dbname=hostflow". */
static int keyword_string(const char *path)
{
    const char *p = path;

    while (*p == ' ')
        p++;
    if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
        return 0;
    while ((*p >= 'a' && *p <= 'z') || *p == '_')
        p++;
    while (*p == ' ')
        p++;
    return *p == '=';
}

/* The store path names (a SQLite file unless a PostgreSQL URL); NULL with
 * err for a libpq keyword string ("host=db dbname=hostflow"), which would
 * otherwise open as a SQLite file of that name: each node on a database
 * of its own, and the password in a file name and the log. */
static const struct store_ops *backend_for(const char *path, char *err, size_t errlen)
{
    if (is_pg_url(path))
        return &store_pg_ops;
    if (!*path || strcmp(path, ":memory:") == 0) {
        /* SQLite would open a private database per connection: creates
         * answered 201 and then not found, and all of it gone at exit */
        snprintf(err, errlen, "--db needs a SQLite file path or a postgres:// URL");
        return NULL;
    }
    if (keyword_string(path)) {
        snprintf(err, errlen, "--db takes a SQLite file path or a postgres:// URL; a "
                 "libpq keyword string (host=... dbname=...) is not one: write it as "
                 "postgresql://USER@HOST/DBNAME");
        return NULL;
    }
    return &store_sqlite_ops;
}

void store_describe(const char *path, char *out, size_t outlen)
{
    if (is_pg_url(path))
        store_pg_describe(path, out, outlen);
    else
        snprintf(out, outlen, "%s", path);
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
    const struct store_ops *ops = backend_for(path, err, errlen);

    return ops ? ops->open(path, out, err, errlen) : HF_EINVAL;
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
    const struct store_ops *ops = backend_for(path, err, errlen);

    return ops ? ops->writer_start(path, out, err, errlen) : HF_EINVAL;
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
