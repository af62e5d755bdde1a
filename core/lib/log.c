/* log.c - leveled, redacted log lines on stderr, text or JSON. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

#define LINE_MAX_BYTES 4096

static int use_json;
static enum log_level min_level = HF_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Secrets look like these; what follows each marker is cut. The password
 * of a URL's userinfo is cut too (url_password). */
static const struct {
    const char *marker;
    size_t keep;     /* characters of the marker kept visible */
    size_t min_run;  /* secret characters after it that make it a secret */
} secrets[] = {
    {"/payment/setup/live_", 20, 1},
    {"/payment/setup/test_", 20, 1},
    {"/payment/setup/", 15, 1},
    {"hf_live_", 12, 1},
    {"hf_test_", 12, 1},
    {"Bearer ", 7, 1},
    {"whsec_", 6, 1},   /* webhook signing secrets */
    {"live_", 5, 20},   /* a token pasted at any other path; "test_mode" is none */
    {"test_", 5, 20},
    {"sk_", 3, 20},     /* a Checkout.com secret key (sk_…, sk_sbox_…) */
    {"tok_", 4, 20},    /* a Checkout.com card token from Frames */
};

/* marker_start[c]: some marker begins with c; filled once, from secrets. */
static unsigned char marker_start[256];
static pthread_once_t marker_start_once = PTHREAD_ONCE_INIT;

static void fill_marker_start(void)
{
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        marker_start[(unsigned char)secrets[i].marker[0]] = 1;
}

void log_setup(int json, enum log_level level)
{
    use_json = json;
    min_level = level;
}

static int secret_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '%' ||
           c == '.' || c == '~';
}

/* When in starts "://user:password@" (a database URL, say): the ':'
 * before the password, with *at set to the '@' after it; else NULL. The
 * user part stops at anything a URL authority cannot hold, so one scan
 * never runs past the next "://" and the whole line stays linear. */
static const char *url_password(const char *in, const char **at)
{
    const char *colon = NULL;

    if (strncmp(in, "://", 3) != 0)
        return NULL;
    for (const char *p = in + 3;; p++) {
        unsigned char c = (unsigned char)*p;

        if (c == '@') {
            *at = p;
            return colon;
        }
        if (c <= 0x20 || c == 0x7f || c == '/' || c == '?' || c == '#' || c == '"' ||
            c == '\'')
            return NULL;
        if (c == ':' && !colon)
            colon = p;
    }
}

void log_redact(const char *in, char *out, size_t outlen)
{
    const char *password = NULL, *password_end = NULL;
    size_t o = 0;

    if (outlen == 0)
        return;
    pthread_once(&marker_start_once, fill_marker_start);
    while (*in && o + 1 < outlen) {
        size_t i, m = sizeof secrets / sizeof secrets[0];

        if (in == password) {
            const char *tag = ":[redacted]";

            for (; *tag && o + 1 < outlen; tag++)
                out[o++] = *tag;
            in = password_end;
            password = NULL;
            continue;
        }
        if (!password && *in == ':')
            password = url_password(in, &password_end);
        /* most characters start no marker: one look rules them all out */
        i = m;
        if (marker_start[(unsigned char)*in])
            for (i = 0; i < m; i++)
                if (*in == secrets[i].marker[0] &&
                    strncmp(in, secrets[i].marker, strlen(secrets[i].marker)) == 0)
                    break;
        if (i < m) {
            const char *p = in + strlen(secrets[i].marker);
            const char *tag = "[redacted]";

            while (secret_char(*p))
                p++;
            if ((size_t)(p - in) - strlen(secrets[i].marker) < secrets[i].min_run) {
                out[o++] = *in++; /* a marker without a secret after it */
                continue;
            }
            /* keep at most what was matched: the marker and the secret */
            for (size_t k = 0; k < secrets[i].keep && in + k < p && o + 1 < outlen; k++)
                out[o++] = in[k];
            for (; *tag && o + 1 < outlen; tag++)
                out[o++] = *tag;
            in = p;
            continue;
        }
        if ((unsigned char)*in < 0x20 || *in == 0x7f) {
            /* a decoded %0A in a path must not start a forged log line */
            if (o + 4 >= outlen)
                break;
            snprintf(out + o, 5, "\\x%02x", (unsigned char)*in++);
            o += 4;
            continue;
        }
        out[o++] = *in++;
    }
    out[o] = '\0';
}

static void timestamp(char buf[64])
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(buf, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (ts.tv_nsec / 1000000) % 1000);
}

/* Write one finished line in one call under the stream's lock, so lines
 * of concurrent threads never interleave. */
#define HELD_MAX (64 * 1024)

/* This thread's held lines (log_hold), NULL when it holds none. */
static _Thread_local char *held;
static _Thread_local size_t held_len;
static _Thread_local int holding;

static void write_out(const char *buf, size_t n)
{
    flockfile(stderr);
    fwrite(buf, 1, n, stderr);
    fflush(stderr);
    funlockfile(stderr);
}

void log_hold(void)
{
    holding = 1;
}

void log_release(void)
{
    holding = 0;
    if (held_len)
        write_out(held, held_len);
    held_len = 0;
    free(held); /* not kept: a thread-local buffer would outlive its thread */
    held = NULL;
}

static void emit(const char *line)
{
    size_t n = strlen(line);
    char buf[LINE_MAX_BYTES + 256];

    if (n >= sizeof buf - 1)
        n = sizeof buf - 2;
    memcpy(buf, line, n);
    buf[n++] = '\n';
    if (holding && (held || (held = malloc(HELD_MAX)))) {
        if (held_len + n > HELD_MAX) {
            write_out(held, held_len);
            held_len = 0;
        }
        memcpy(held + held_len, buf, n);
        held_len += n;
        return;
    }
    write_out(buf, n);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char raw[LINE_MAX_BYTES], clean[LINE_MAX_BYTES], ts[64], *whole = NULL;
    va_list ap;
    int n;

    if (level < min_level)
        return;
    va_start(ap, fmt);
    n = vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    /* redacted whole, then cut: a secret cut first could keep too little
     * of itself to be recognised, and its start would be printed */
    if (n >= (int)sizeof raw && (whole = malloc((size_t)n + 1))) {
        va_start(ap, fmt);
        vsnprintf(whole, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    log_redact(whole ? whole : raw, clean, sizeof clean);
    free(whole);
    timestamp(ts);
    if (use_json) {
        struct json_t *o = json_new_object();
        char *s;

        json_put_string(o, "ts", ts);
        json_put_string(o, "level", level_names[level]);
        json_put_string(o, "msg", clean);
        s = json_encode(o);
        emit(s);
        free(s);
        json_free(o);
    } else {
        char line[LINE_MAX_BYTES + 128];

        snprintf(line, sizeof line, "%s %-5s %s", ts, level_names[level], clean);
        emit(line);
    }
}

/* The redacted path as one field: what could pass for a field separator
 * or a value (space, '"', '='), '%' itself and what is not ASCII are
 * written %XX, so a request (its path arrives decoded) cannot fake fields
 * in a text line, and a JSON line keeps every path, whatever its bytes. */
static void path_field(const char *in, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *in && o + 1 < outlen; in++) {
        unsigned char c = (unsigned char)*in;

        if (c != ' ' && c != '"' && c != '=' && c != '%' && c < 0x7f) {
            out[o++] = (char)c;
            continue;
        }
        if (o + 4 > outlen)
            break;
        out[o++] = '%';
        out[o++] = hex[c >> 4];
        out[o++] = hex[c & 15];
    }
    out[o] = '\0';
}

void log_request(const struct log_request *r)
{
    char redacted[1024], path[3 * sizeof redacted], ts[64], policy_us[80] = "";

    if (HF_LOG_INFO < min_level)
        return;
    if (r->decision)
        snprintf(policy_us, sizeof policy_us, " policy_us=%lld policy_instructions=%ld",
                 r->policy_us, r->policy_instructions);
    log_redact(r->path ? r->path : "", redacted, sizeof redacted);
    path_field(redacted, path, sizeof path);
    timestamp(ts);
    if (use_json) {
        struct json_t *o = json_new_object();
        char *s;

        json_put_string(o, "ts", ts);
        json_put_string(o, "level", "info");
        json_put_string(o, "msg", "request");
        json_put_string(o, "request_id", r->request_id);
        json_put_string(o, "method", r->method);
        json_put_string(o, "path", path);
        json_put_int(o, "status", r->status);
        json_put_int(o, "duration_us", r->duration_us);
        if (r->tenant)
            json_put_string(o, "tenant", r->tenant);
        if (r->policy_version)
            json_put_string(o, "policy_version", r->policy_version);
        if (r->decision) {
            json_put_string(o, "decision", r->decision);
            json_put_int(o, "policy_us", r->policy_us);
            json_put_int(o, "policy_instructions", r->policy_instructions);
        }
        if (r->error_code)
            json_put_string(o, "error_code", r->error_code);
        s = json_encode(o);
        emit(s);
        free(s);
        json_free(o);
    } else {
        char line[LINE_MAX_BYTES];

        snprintf(line, sizeof line,
                 "%s info  request id=%s %s %s status=%d duration_us=%lld"
                 "%s%s%s%s%s%s%s%s%s",
                 ts, r->request_id ? r->request_id : "-",
                 r->method ? r->method : "-", path, r->status, r->duration_us,
                 r->tenant ? " tenant=" : "", r->tenant ? r->tenant : "",
                 r->policy_version ? " policy=" : "",
                 r->policy_version ? r->policy_version : "",
                 r->decision ? " decision=" : "", r->decision ? r->decision : "",
                 policy_us,
                 r->error_code ? " error=" : "", r->error_code ? r->error_code : "");
        emit(line);
    }
}
