/* processor_checkout.c - the live processor: Checkout.com.
 *
 * The card never reaches hostflow. The live card page loads Checkout.com's
 * Frames script with the public key; Frames takes the card in its own
 * iframe and hands the page a single-use token (tok_…), which the form
 * posts. Here the token is exchanged for a stored payment instrument:
 *
 *   POST {base}/instruments
 *   Authorization: Bearer <secret key>
 *   {"type":"token","token":"tok_…"}
 *
 * 201 (or 200) carries the instrument: its id (src_…) is the session's
 * reference, with scheme and last4. 422 carries {"error_codes": […]}: the
 * token was refused, and the contractor may try again. Anything else —
 * 401 (key refused), 5xx, a redirect, garbage, no answer — is an error of
 * ours, not the contractor's: the session stays pending and the cause is
 * logged, never the key or the token.
 *
 * The settings are fixed by processor_checkout_setup before any worker
 * thread starts and only read afterwards; each call has its own curl
 * handle, so workers call save_card in parallel without a lock. */
#include "processor.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "httpc.h"
#include "json.h"
#include "log.h"
#include "token.h"
#include "url.h"

#define AUTH_MAX 256              /* "Authorization: Bearer " + a key of up to 200 */
#define BODY_MAX (64 * 1024)      /* an instrument is well under 2 KiB */
#define CONNECT_TIMEOUT_MS 5000   /* capped by the total timeout */

static struct {
    char authorization[AUTH_MAX];        /* the whole header line, key included */
    char instruments_url[HF_URL_MAX + 16];
    long timeout_ms;
    long connect_timeout_ms;
    struct processor_browser browser;    /* points into the config */
} cko;

int processor_checkout_setup(const struct config *cfg, char *err, size_t errlen)
{
    int n;

    n = snprintf(cko.authorization, sizeof cko.authorization, "Authorization: Bearer %s",
                 cfg->checkout_secret_key);
    if (n < 0 || (size_t)n >= sizeof cko.authorization) {
        token_wipe(cko.authorization, sizeof cko.authorization);
        snprintf(err, errlen, "the Checkout.com secret key is too long");
        return -1;
    }
    n = snprintf(cko.instruments_url, sizeof cko.instruments_url, "%s/instruments",
                 cfg->checkout_base_url);
    if (n < 0 || (size_t)n >= sizeof cko.instruments_url) {
        processor_checkout_teardown();
        snprintf(err, errlen, "--checkout-base-url is too long");
        return -1;
    }
    cko.timeout_ms = (long)cfg->checkout_timeout_ms;
    cko.connect_timeout_ms = cko.timeout_ms < CONNECT_TIMEOUT_MS ? cko.timeout_ms
                                                                 : CONNECT_TIMEOUT_MS;
    cko.browser.script_url = cfg->checkout_frames_url;
    cko.browser.script_origin = cfg->checkout_frames_origin;
    cko.browser.public_key = cfg->checkout_public_key;
    return 0;
}

void processor_checkout_teardown(void)
{
    token_wipe(&cko, sizeof cko);
}

/* Copy the characters of s that are letters, digits, '_' or '-' (codes
 * and ids from the answer) into out, for the log: nothing the remote side
 * sent can shape a log line. */
static void loggable(const char *s, char *out, size_t outlen)
{
    size_t o = 0;

    for (; s && *s && o + 1 < outlen; s++)
        if (isalnum((unsigned char)*s) || *s == '_' || *s == '-')
            out[o++] = *s;
    out[o] = '\0';
}

/* The brand kept with the session: the scheme lower-cased, words joined
 * by '_' ("Mastercard" -> "mastercard", "American Express" -> "amex"). */
static void brand_of(const char *scheme, char *out, size_t outlen)
{
    char b[64];
    const char *v;
    size_t o = 0, n;

    for (; scheme && *scheme && o + 1 < sizeof b; scheme++) {
        unsigned char ch = (unsigned char)*scheme;

        if (isalnum(ch))
            b[o++] = (char)tolower(ch);
        else if (o > 0 && b[o - 1] != '_')
            b[o++] = '_';
    }
    while (o > 0 && b[o - 1] == '_')
        o--;
    b[o] = '\0';
    v = strcmp(b, "american_express") == 0 ? "amex" : b[0] ? b : "card";
    n = strlen(v) < outlen ? strlen(v) : outlen - 1; /* the column holds 15 */
    memcpy(out, v, n);
    out[n] = '\0';
}

static int digits4(const char *s)
{
    if (strlen(s) != 4)
        return 0;
    for (int i = 0; i < 4; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* The instrument of a 2xx answer into out. 0, or HF_EUPSTREAM with the
 * reason logged. */
static int instrument(const struct httpc_response *r, struct processor_result *out)
{
    struct json_t *o = NULL;
    const char *id = NULL, *scheme = NULL, *last4 = NULL;
    char why[160];
    size_t idlen;
    int rc = HF_EUPSTREAM;

    if (json_parse_body(r->body, r->body_len, &o, why, sizeof why) != 0) {
        log_msg(HF_LOG_WARN, "checkout: instrument answer (%ld) is not a JSON object",
                r->status);
        return rc;
    }
    if (json_member_string(o, "id", &id) != 0 || json_member_string(o, "last4", &last4) != 0) {
        log_msg(HF_LOG_WARN, "checkout: instrument answer (%ld) has no id or last4", r->status);
        goto out;
    }
    json_member_string(o, "scheme", &scheme); /* optional */
    idlen = strlen(id);
    if (strncmp(id, "src_", 4) != 0 || idlen >= sizeof out->saved.reference ||
        strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789_") != idlen || !digits4(last4)) {
        log_msg(HF_LOG_WARN, "checkout: instrument answer (%ld) has a malformed id or last4",
                r->status);
        goto out;
    }
    out->approved = 1;
    snprintf(out->saved.reference, sizeof out->saved.reference, "%s", id);
    snprintf(out->saved.last4, sizeof out->saved.last4, "%s", last4);
    brand_of(scheme, out->saved.brand, sizeof out->saved.brand);
    rc = 0;
out:
    json_free(o);
    return rc;
}

/* A 422: the token was refused. The sentence for the contractor, and a
 * log line with the codes and Checkout.com's request id. */
static void refused(const struct httpc_response *r, struct processor_result *out)
{
    struct json_t *o = NULL;
    const char *code = NULL, *request_id = NULL;
    char why[160], codes[160] = "", one[48], rid[80] = "";

    if (json_parse_body(r->body, r->body_len, &o, why, sizeof why) == 0) {
        for (size_t i = 0; i < 3 && json_member_array_string(o, "error_codes", i, &code) == 0;
             i++) {
            loggable(code, one, sizeof one);
            snprintf(codes + strlen(codes), sizeof codes - strlen(codes), "%s%s",
                     i ? "," : "", one);
        }
        if (json_member_string(o, "request_id", &request_id) == 0)
            loggable(request_id, rid, sizeof rid);
    }
    if (strncmp(codes, "token_expired", 13) == 0 || strncmp(codes, "token_used", 10) == 0)
        snprintf(out->decline, sizeof out->decline,
                 "The card details expired before they were saved. Please enter your card again.");
    else if (strncmp(codes, "token_", 6) == 0)
        snprintf(out->decline, sizeof out->decline,
                 "Your card could not be saved. Please enter it again.");
    else if (strncmp(codes, "card_", 5) == 0)
        snprintf(out->decline, sizeof out->decline,
                 "Your card was declined. Check the details or use another card.");
    else
        snprintf(out->decline, sizeof out->decline,
                 "Your card could not be saved. Check the details or use another card.");
    log_msg(HF_LOG_INFO, "checkout: instrument refused (422 %s)%s%s",
            codes[0] ? codes : "no error_codes", rid[0] ? " request_id=" : "", rid);
    json_free(o);
}

static int save_card(const struct card_source *src, struct processor_result *out)
{
    const char *headers[] = {cko.authorization, "Content-Type: application/json",
                             "Accept: application/json", "Expect:", NULL};
    struct httpc_response r = {0, NULL, 0};
    struct httpc_request req;
    struct json_t *o;
    char *body, err[256];
    int rc;

    memset(out, 0, sizeof *out);
    if (!src->token)
        return HF_EINVAL;
    o = json_new_object();
    json_put_string(o, "type", "token");
    json_put_string(o, "token", src->token);
    body = json_encode(o);
    json_free(o); /* jansson frees its copy of the token without wiping it */
    req = (struct httpc_request){.method = "POST", .url = cko.instruments_url,
                                 .headers = headers, .body = body, .body_len = strlen(body),
                                 .connect_timeout_ms = cko.connect_timeout_ms,
                                 .timeout_ms = cko.timeout_ms, .max_body = BODY_MAX};
    rc = httpc_send(&req, &r, err, sizeof err);
    token_wipe(body, strlen(body));
    free(body);
    if (rc != 0) {
        log_msg(HF_LOG_WARN, "checkout: POST /instruments failed: %s", err);
        return rc;
    }
    if (r.status == 200 || r.status == 201) {
        rc = instrument(&r, out);
    } else if (r.status == 422) {
        refused(&r, out);
    } else if (r.status == 401 || r.status == 403) {
        log_msg(HF_LOG_ERROR, "checkout: POST /instruments answered %ld: the secret key was "
                "refused (check --checkout-secret-key and its scopes)", r.status);
        rc = HF_EUPSTREAM;
    } else if (r.status == 429) {
        log_msg(HF_LOG_WARN, "checkout: POST /instruments answered 429 (rate limited)");
        rc = HF_EUNAVAILABLE;
    } else {
        log_msg(HF_LOG_WARN, "checkout: POST /instruments answered %ld", r.status);
        rc = HF_EUPSTREAM;
    }
    httpc_response_free(&r);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}

const struct processor processor_checkout = {"checkout", &cko.browser, save_card};
