/* test_log.c - secrets never survive log_redact, and log lines say what
 * they mean. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "log.h"

static int redacts(const char *in, const char *want)
{
    char out[512];

    log_redact(in, out, sizeof out);
    if (strcmp(out, want) != 0)
        printf("# got \"%s\"\n", out);
    return strcmp(out, want) == 0;
}

/* What the log functions print to stderr while fn runs, in out. */
static void printed(void (*fn)(void), char *out, size_t outlen)
{
    char name[] = "/tmp/hostflow-test-log.XXXXXX";
    int fd = mkstemp(name), saved = dup(2);
    FILE *f;
    size_t n = 0;

    fflush(stderr);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    if ((f = fopen(name, "r"))) {
        n = fread(out, 1, outlen - 1, f);
        fclose(f);
    }
    out[n] = '\0';
    unlink(name);
}

/* a decoded path with spaces and '=' in it, as civetweb hands it over */
static void request_with_fields_in_path(void)
{
    log_setup(0, HF_LOG_INFO);
    log_request(&(struct log_request){.request_id = "req_1", .method = "GET",
        .path = "/api/v1/x status=201 tenant=tn_victim \"q\" 100%", .status = 404});
}

static void request_with_binary_path(void)
{
    log_setup(1, HF_LOG_INFO);
    log_request(&(struct log_request){.request_id = "req_2", .method = "GET",
        .path = "/payment/x\xff\xfe", .status = 404});
    log_setup(0, HF_LOG_INFO);
}

/* a token pasted at the 4 KiB a message is cut at: cut first, too little
 * of it would be left to be known for one */
static void long_message_with_a_token(void)
{
    log_msg(HF_LOG_WARN, "%4075s%s", "", "live_S3CR3TS3CR3TS3CR3TS3CR3TS3CR3TS3CR3TS3C");
}

/* lines held, then released: nothing before the release, all in order
 * after it; a hold past its buffer writes what it kept and goes on */
static char at_hold[256];

static void held_lines(void)
{
    log_setup(0, HF_LOG_INFO);
    log_hold();
    log_msg(HF_LOG_INFO, "first held");
    log_msg(HF_LOG_INFO, "second held");
    fflush(stderr);
    snprintf(at_hold, sizeof at_hold, "%ld", lseek(2, 0, SEEK_CUR));
    log_release();
    log_msg(HF_LOG_INFO, "after release");
}

static void many_held_lines(void)
{
    log_hold();
    for (int i = 0; i < 2000; i++)
        log_msg(HF_LOG_INFO, "line %04d %100s", i, "");
    log_release();
}

int main(void)
{
    char small[8], out[16384];
    const char *status;

    CHECK("live token path", redacts("/payment/setup/live_b2sBI9TZzp1Ru9yoWm77s1wF-tP3PmEDAaJdSHSGZuw",
                                     "/payment/setup/live_[redacted]"));
    CHECK("test token path keeps the query", redacts("GET /payment/setup/test_abc_DEF-123?x=1 HTTP/1.1",
                                                     "GET /payment/setup/test_[redacted]?x=1 HTTP/1.1"));
    CHECK("token without live/test prefix", redacts("/payment/setup/zzzz", "/payment/setup/[redacted]"));
    CHECK("percent-encoded token", redacts("/payment/setup/live_%41%42", "/payment/setup/live_[redacted]"));
    CHECK("full URL in a message", redacts("url=https://h/payment/setup/live_AAAA done",
                                           "url=https://h/payment/setup/live_[redacted] done"));
    CHECK("two tokens", redacts("/payment/setup/live_a /payment/setup/test_b",
                                "/payment/setup/live_[redacted] /payment/setup/test_[redacted]"));
    CHECK("live key secret keeps its prefix", redacts("key hf_live_Kz6MSScAJg6OfXrgrYh end",
                                                      "key hf_live_Kz6M[redacted] end"));
    CHECK("test key secret", redacts("hf_test_abcdefghijkl", "hf_test_abcd[redacted]"));
    CHECK("bearer header", redacts("Authorization: Bearer sekrit-value", "Authorization: Bearer [redacted]"));
    CHECK("a token at an unexpected path", redacts("GET /test_b2sBI9TZzp1Ru9yoWm77s1wF-tP3PmEDAaJdSHSGZuw",
                                                   "GET /test_[redacted]"));
    CHECK("words that merely start like a token", redacts("test_mode live_reload",
                                                          "test_mode live_reload"));
    CHECK("Checkout.com secret key", redacts("key=sk_sbox_m73dzbpy7cnbojxwqw7kmbimyim end",
                                             "key=sk_[redacted] end"));
    CHECK("Checkout.com card token", redacts("token tok_4gzeau5o2uqubbk6fufs3m7p54.",
                                             "token tok_[redacted]"));
    CHECK("short words ending in sk_ or tok_ kept", redacts("disk_usage stok_x",
                                                            "disk_usage stok_x"));
    CHECK("plain text untouched", redacts("GET /api/v1/payment/sessions 201", "GET /api/v1/payment/sessions 201"));
    CHECK("marker with nothing after it", redacts("/payment/setup/", "/payment/setup/"));
    CHECK("newlines cannot forge a line", redacts("GET /a\n2026 error FORGED\r\x7f",
                                                  "GET /a\\x0a2026 error FORGED\\x0d\\x7f"));
    CHECK("database URL password", redacts("db postgresql://hostflow:s3cr%40t@127.0.0.1:5432/hf up",
                                           "db postgresql://hostflow:[redacted]@127.0.0.1:5432/hf up"));
    CHECK("URL without a password", redacts("postgresql://hostflow@db/hf https://h:8443/x",
                                            "postgresql://hostflow@db/hf https://h:8443/x"));
    CHECK("an @ after the authority is no userinfo", redacts("https://h/a:b@c", "https://h/a:b@c"));
    CHECK("empty password", redacts("postgres://u:@h/d", "postgres://u:[redacted]@h/d"));
    log_redact("/payment/setup/live_abcdef", small, sizeof small);
    CHECK("tiny buffer stays terminated", strlen(small) == sizeof small - 1);

    printed(request_with_fields_in_path, out, sizeof out);
    status = strstr(out, " status=");
    CHECK("a path cannot add fields to a request line",
          strstr(out, "GET /api/v1/x%20status%3D201%20tenant%3Dtn_victim%20%22q%22%20100%25 "
                      "status=404") && status && !strstr(status + 1, " status=") &&
          !strstr(out, " tenant="));
    printed(request_with_binary_path, out, sizeof out);
    CHECK("a path that is not UTF-8 is kept in a JSON line",
          strstr(out, "\"path\":\"/payment/x%FF%FE\""));
    printed(held_lines, out, sizeof out);
    CHECK("held lines are written at the release, in order, and later ones after them",
          strcmp(at_hold, "0") == 0 && strstr(out, "first held") &&
          strstr(out, "second held") > strstr(out, "first held") &&
          strstr(out, "after release") > strstr(out, "second held"));
    {
        static char big[400000];
        char want[32];

        printed(many_held_lines, big, sizeof big);
        snprintf(want, sizeof want, "line %04d ", 1999);
        CHECK("a hold longer than its buffer loses no line",
              strstr(big, "line 0000 ") && strstr(big, want) &&
              strstr(big, want) > strstr(big, "line 1000 "));
    }
    printed(long_message_with_a_token, out, sizeof out);
    CHECK("a token at the end of an over-long message is redacted, not cut",
          strstr(out, "live_[redacted]") && !strstr(out, "S3CR3T"));
    return CHECK_DONE();
}
