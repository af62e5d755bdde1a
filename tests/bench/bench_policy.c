/* bench_policy.c - cost of one policy decision in-process: the added
 * latency a request pays for check_tenant + check_return_url on a warm
 * worker state. Prints p50/p99/mean in microseconds as one table row.
 * Usage: bench_policy POLICY_FILE [POLICY_DIR] [CALLS] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "policy.h"

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *file = argc > 1 ? argv[1] : "policies.example.lua";
    const char *dir = argc > 2 ? argv[2] : "policies";
    int calls = argc > 3 ? atoi(argv[3]) : 200000;
    static const char raw[] = "https://app.example.com/billing/done?session=1";
    struct policy_engine *e;
    struct policy *p = NULL;
    struct policy_verdict v;
    struct tenant *t = calloc(1, sizeof *t);
    double *samples = malloc(sizeof *samples * (size_t)calls), sum = 0;
    char err[HF_POLICY_ERROR_MAX];
    struct url u;

    log_setup(0, HF_LOG_OFF);
    if (!t || !samples || calls < 100 || policy_engine_new(file, dir, &e, err, sizeof err) != 0 ||
        policy_sync(e, &p) != 0) {
        fprintf(stderr, "bench_policy: %s\n", err);
        return 1;
    }
    snprintf(t->id, sizeof t->id, "tn_bench");
    snprintf(t->name, sizeof t->name, "Bench");
    for (int i = 0; i < 5; i++)
        snprintf(t->hosts[t->n_hosts++], sizeof t->hosts[0], "host%d.example.com", i);
    snprintf(t->hosts[t->n_hosts++], sizeof t->hosts[0], "app.example.com");
    url_parse(raw, strlen(raw), &u);
    for (int i = -1000; i < calls; i++) { /* the first 1000 warm up */
        struct policy_ctx ctx = {.tenant = t, .mode = "live", .contractor_id = "cn_bench",
                                 .method = "POST", .path = "/api/v1/payment/sessions",
                                 .remote_addr = "127.0.0.1", .now = (long long)time(NULL)};
        double t0 = now_us();

        if (policy_check_tenant(p, &ctx, &v) != 0 || !v.allow ||
            policy_check_return_url(p, raw, &u, &ctx, &v) != 0 || !v.allow) {
            fprintf(stderr, "bench_policy: the policy did not allow the benchmark request\n");
            return 1;
        }
        if (i >= 0)
            sum += samples[i] = now_us() - t0;
    }
    qsort(samples, (size_t)calls, sizeof *samples, by_value);
    printf("| policy decision (check_tenant + check_return_url) | %d calls | p50 %.2f us | "
           "p99 %.2f us | mean %.2f us |\n", calls, samples[calls / 2],
           samples[(size_t)calls * 99 / 100], sum / calls);
    policy_free(p);
    policy_engine_free(e);
    free(samples);
    free(t);
    return 0;
}
