/* cli_events.c - the operator's view of the webhook outbox: list events
 * with their deliveries, re-queue the ones that failed. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "json.h"
#include "store.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000

static const char events_usage[] =
    "usage: hostflow events list [--status pending|delivered|failed] [--limit N] [--json]\n"
    "       hostflow events retry EVT_ID\n"
    "\n"
    "list shows the newest events (default 50, at most 1000), one line per\n"
    "delivery to an endpoint: event, type, session, endpoint, status, attempts,\n"
    "next attempt and the last error. An event of a tenant without endpoints\n"
    "shows status none. retry makes an event's failed deliveries pending again,\n"
    "due now, and ends the pause of its endpoints; a running server sends them\n"
    "within a second.\n"
    "Every command takes --db PATH (default $HOSTFLOW_DB, else ./hostflow.db).\n";

static void print_row_json(const struct event_row *r)
{
    struct json_t *o = json_new_object();

    json_put_string(o, "id", r->id);
    json_put_string(o, "type", r->type);
    json_put_string(o, "tenant", r->tenant_id);
    json_put_string(o, "session", r->session_id);
    json_put_int(o, "created", r->created);
    json_put_string(o, "endpoint", r->endpoint_id[0] ? r->endpoint_id : NULL);
    json_put_string(o, "status", r->status);
    json_put_int(o, "attempts", r->attempts);
    if (strcmp(r->status, "pending") == 0)
        json_put_int(o, "next_attempt_at", r->next_attempt_ms / 1000);
    else
        json_put_null(o, "next_attempt_at");
    if (r->last_status)
        json_put_int(o, "last_status", r->last_status);
    else
        json_put_null(o, "last_status");
    json_put_string(o, "last_error", r->last_error[0] ? r->last_error : NULL);
    cli_print_json(o);
}

static void print_row_text(const struct event_row *r, long long now_ms)
{
    char next[32] = "-";

    if (strcmp(r->status, "pending") == 0) {
        long long in = (r->next_attempt_ms - now_ms) / 1000;
        snprintf(next, sizeof next, "%s%llds", in > 0 ? "in " : "due ", in > 0 ? in : -in);
        if (in <= 0)
            snprintf(next, sizeof next, "due now");
    }
    printf("%-28s %-26s %-28s %-27s %-9s %8d  %-10s %s\n", r->id, r->type, r->session_id,
           r->endpoint_id[0] ? r->endpoint_id : "-", r->status, r->attempts, next,
           r->last_error[0] ? r->last_error : "");
}

static int events_list(const char *db_path, int argc, char **argv)
{
    const char *status = NULL;
    long limit = LIST_DEFAULT;
    int json = 0, rc;
    struct event_row *rows;
    struct store *s;
    size_t n;

    for (int a = 0; a < argc; a++) {
        if (strcmp(argv[a], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[a], "--status") == 0 && a + 1 < argc) {
            status = argv[++a];
            if (strcmp(status, "pending") != 0 && strcmp(status, "delivered") != 0 &&
                strcmp(status, "failed") != 0) {
                fprintf(stderr, "hostflow: --status must be pending, delivered or failed\n");
                return 2;
            }
        } else if (strcmp(argv[a], "--limit") == 0 && a + 1 < argc) {
            char *end;
            limit = strtol(argv[++a], &end, 10);
            if (*end || limit < 1 || limit > LIST_MAX) {
                fprintf(stderr, "hostflow: --limit must be 1 to %d\n", LIST_MAX);
                return 2;
            }
        } else {
            return cli_usage(events_usage, 2);
        }
    }
    if (!(rows = calloc((size_t)limit, sizeof *rows))) {
        fprintf(stderr, "hostflow: out of memory\n");
        return 1;
    }
    if (!(s = cli_open_store(db_path))) {
        free(rows);
        return 1;
    }
    rc = store_events_list(s, status, (size_t)limit, rows, &n);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "hostflow: cannot read events (%s)\n", hf_err_code(rc));
        free(rows);
        return 1;
    }
    if (!json && n)
        printf("%-28s %-26s %-28s %-27s %-9s %8s  %-10s %s\n", "EVENT", "TYPE", "SESSION",
               "ENDPOINT", "STATUS", "ATTEMPTS", "NEXT", "LAST ERROR");
    for (size_t i = 0; i < n; i++) {
        if (json)
            print_row_json(&rows[i]);
        else
            print_row_text(&rows[i], clock_wall_ms());
    }
    if (!json)
        fprintf(stderr, "%zu row(s)%s\n", n, n == (size_t)limit ? " (more with --limit)" : "");
    free(rows);
    return 0;
}

static int events_retry(const char *db_path, int argc, char **argv)
{
    struct store *s;
    int rc, n;

    if (argc != 1 || argv[0][0] == '-')
        return cli_usage(events_usage, 2);
    if (!(s = cli_open_store(db_path)))
        return 1;
    rc = store_event_retry(s, argv[0], clock_wall_ms(), &n);
    store_close(s);
    if (rc == HF_ENOTFOUND) {
        fprintf(stderr, "hostflow: no event %s\n", argv[0]);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "hostflow: cannot re-queue %s (%s)\n", argv[0], hf_err_code(rc));
        return 1;
    }
    printf("%s: %d failed deliver%s queued again\n", argv[0], n, n == 1 ? "y" : "ies");
    return 0;
}

int cli_events(const char *db_path, int argc, char **argv)
{
    if (argc < 1 || cli_is_help(argv[0]))
        return cli_usage(events_usage, argc < 1 ? 2 : 0);
    for (int a = 1; a < argc; a++)
        if (cli_is_help(argv[a]))
            return cli_usage(events_usage, 0);
    if (strcmp(argv[0], "list") == 0)
        return events_list(db_path, argc - 1, argv + 1);
    if (strcmp(argv[0], "retry") == 0)
        return events_retry(db_path, argc - 1, argv + 1);
    return cli_usage(events_usage, 2);
}
