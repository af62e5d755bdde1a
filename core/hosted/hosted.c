/* hosted.c - the contractor's side: landing, single-use redemption, card
 * capture through a processor, cancel, and the redirect back.
 *
 * Test sessions post the card fields to hostflow's own form; live sessions
 * never do: the processor's script (Checkout.com Frames) takes the card in
 * its own field and the form posts the token it makes.
 *
 * After redemption the browser holds a random secret in an HttpOnly,
 * SameSite=Strict cookie; the session row keeps only its hash. The csrf
 * value of the forms is derived from that secret, so it needs no storage
 * and is worthless without the cookie. */
#define _POSIX_C_SOURCE 200809L
#include "hosted.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "err.h"
#include "hosted_pages.h"
#include "log.h"
#include "metrics.h"
#include "processor.h"
#include "ratelimit.h"
#include "token.h"

#define SETUP_PREFIX "/payment/setup/"
#define SESSION_PREFIX "/payment/sessions/"
#define COOKIE_NAME "hf_session"
#define CSRF_HEX 32               /* 16 bytes of SHA-256 */
#define FIELD_MAX 32

#define UNAVAILABLE "Card payments are not available on this server right now."

/* Headers of every hosted page: not cached, not framed, not leaking the
 * URL (with its token) to the next site. No script at all, except on the
 * live card page (script_origin set): our own card.js, and the
 * processor's script with its frames and requests, from its origin alone. */
static void page_with(struct http_resp *resp, int status, char *html, const char *form_origin,
                      const char *script_origin)
{
    char csp[2048], scripts[1024] = ""; /* origins are under 300 bytes each */

    if (script_origin)
        snprintf(scripts, sizeof scripts, "script-src 'self' %s; frame-src %s; connect-src %s; ",
                 script_origin, script_origin, script_origin);
    snprintf(csp, sizeof csp,
             "default-src 'none'; %sstyle-src 'self'; img-src 'self'; "
             "form-action 'self'%s%s; frame-ancestors 'none'; base-uri 'none'",
             scripts, form_origin ? " " : "", form_origin ? form_origin : "");
    resp->status = status;
    resp->content_type = "text/html; charset=utf-8";
    resp->body = html;
    resp->body_len = strlen(html);
    http_resp_header(resp, "Cache-Control", "no-store");
    http_resp_header(resp, "Referrer-Policy", "no-referrer");
    http_resp_header(resp, "X-Frame-Options", "DENY");
    http_resp_header(resp, "Content-Security-Policy", csp);
}

static void page(struct http_resp *resp, int status, char *html, const char *form_origin)
{
    page_with(resp, status, html, form_origin, NULL);
}

static void gone(struct http_resp *resp)
{
    page(resp, 404, page_gone(), NULL);
}

static void asset(struct http_resp *resp, const char *content_type, const char *text)
{
    resp->status = 200;
    resp->content_type = content_type;
    resp->body = strdup(text);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    http_resp_header(resp, "Cache-Control", "public, max-age=3600");
    http_resp_header(resp, "X-Content-Type-Options", "nosniff");
}

/* The key of "live_<token>" / "test_<token>" (the mode is part of what
 * is hashed, so a token only works with its own prefix); -1 when s cannot
 * be one at all. Tokens minted before the time prefix have 43 characters. */
static int parse_token(const char *s, unsigned char key[HF_HASH_BYTES])
{
    size_t n = strlen(s);

    if ((strncmp(s, "live_", 5) != 0 && strncmp(s, "test_", 5) != 0) ||
        (n != 5 + HF_URL_TOKEN_CHARS && n != 5 + HF_TOKEN_CHARS))
        return -1;
    for (size_t i = 5; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return -1;
    token_url_key(s, n, key);
    return 0;
}

/* The tenant's display name, or a neutral one if it cannot be read. */
static const char *tenant_name(struct worker *w, const char *tenant_id)
{
    if (store_tenant_get(w->store, tenant_id, &w->tenant) != 0)
        return "The company";
    return w->tenant.name;
}

static void landing(struct worker *w, const struct http_req *req, struct http_resp *resp,
                    const unsigned char hash[HF_HASH_BYTES])
{
    struct session s;

    /* a GET changes nothing: link previews and scanners may fetch it */
    if (store_session_by_token(w->store, hash, clock_now_s(), &s) != 0) {
        gone(resp);
        return;
    }
    page(resp, 200, page_landing(tenant_name(w, s.tenant_id), req->path,
                                 strcmp(s.mode, "test") == 0), NULL);
}

static void csrf_for(const char *secret, char out[CSRF_HEX + 1])
{
    char input[HF_TOKEN_CHARS + 16];
    unsigned char digest[HF_HASH_BYTES];
    int n = snprintf(input, sizeof input, "csrf:%s", secret);

    token_hash(input, (size_t)n, digest);
    token_hex(digest, CSRF_HEX / 2, out);
    token_wipe(input, sizeof input);
}

static void redeem(struct worker *w, struct http_resp *resp,
                   const unsigned char hash[HF_HASH_BYTES])
{
    char secret[HF_TOKEN_CHARS + 1], cookie[256], location[128];
    unsigned char browser[HF_HASH_BYTES];
    struct session s;
    long long now = clock_now_s();

    token_mint(secret);
    token_hash(secret, HF_TOKEN_CHARS, browser);
    if (store_session_redeem(w->store, hash, browser, now, &s) != 0) {
        token_wipe(secret, sizeof secret);
        gone(resp);
        return;
    }
    snprintf(cookie, sizeof cookie,
             COOKIE_NAME "=%s; Path=" SESSION_PREFIX "%s; Max-Age=%lld; HttpOnly; "
             "SameSite=Strict%s", secret, s.id, s.expires_at - now,
             strncmp(w->cfg->public_url, "https://", 8) == 0 ? "; Secure" : "");
    snprintf(location, sizeof location, SESSION_PREFIX "%s", s.id);
    http_resp_header(resp, "Set-Cookie", cookie);
    http_resp_header(resp, "Location", location);
    page(resp, 303, strdup(""), NULL);
    token_wipe(cookie, sizeof cookie);
    token_wipe(secret, sizeof secret);
    log_msg(HF_LOG_INFO, "hosted: session %s redeemed", s.id);
}

/* The session this browser redeemed, if it is still pending. The cookie's
 * secret goes to secret (for the csrf value). */
static int browser_session(struct worker *w, const struct http_req *req, const char *id,
                           struct session *s, char secret[HF_TOKEN_CHARS + 1])
{
    unsigned char browser[HF_HASH_BYTES];

    if (http_req_cookie(req, COOKIE_NAME, secret, HF_TOKEN_CHARS + 1) != 0 ||
        strlen(secret) != HF_TOKEN_CHARS)
        return HF_ENOTFOUND;
    token_hash(secret, HF_TOKEN_CHARS, browser);
    if (store_session_for_browser(w->store, id, browser, clock_now_s(), s) != 0 ||
        strcmp(s->status, "pending") != 0)
        return HF_ENOTFOUND;
    return 0;
}

/* The session's return_url parsed by the same parser that accepted it
 * when the session was created (the store holds nothing else), for its
 * origin and query; URL_OK or the parser's error, logged. */
static int return_url_of(const struct session *s, struct url *u)
{
    int rc = url_parse(s->return_url, strlen(s->return_url), u);

    if (rc != URL_OK)
        log_msg(HF_LOG_ERROR, "hosted: session %s: the stored return_url does not parse: %s",
                s->id, url_strerror(rc));
    return rc;
}

/* The card page as the session's processor wants it: card fields (test),
 * the processor's own card field and a token (live), or only the message
 * and Cancel when no processor serves the session's mode. */
static void card_page(struct worker *w, struct http_resp *resp, int status,
                      const struct session *s, const char *secret, struct card_page *c)
{
    const struct processor *proc = processor_for_mode(s->mode);
    char csrf[CSRF_HEX + 1];
    const char *script_origin = NULL;
    struct url back;

    csrf_for(secret, csrf);
    c->session_id = s->id;
    c->tenant_name = tenant_name(w, s->tenant_id);
    c->csrf = csrf;
    c->test_mode = strcmp(s->mode, "test") == 0;
    if (!proc) {
        c->unavailable = 1;
        if (!c->decline)
            c->decline = UNAVAILABLE;
    } else if (proc->browser) {
        c->script_url = proc->browser->script_url;
        c->public_key = proc->browser->public_key;
        script_origin = proc->browser->script_origin;
    }
    /* the forms redirect to return_url: form-action must allow its origin */
    page_with(resp, status, page_card(c),
              return_url_of(s, &back) == URL_OK ? back.origin : NULL, script_origin);
    token_wipe(csrf, sizeof csrf);
}

static int csrf_ok(const struct http_req *req, const char *secret)
{
    char want[CSRF_HEX + 1], got[CSRF_HEX + 2];
    int ok;

    if (http_form_field(req, "csrf", got, sizeof got) != 0 || strlen(got) != CSRF_HEX)
        return 0;
    csrf_for(secret, want);
    ok = token_equal(want, got, CSRF_HEX);
    token_wipe(want, sizeof want);
    token_wipe(got, sizeof got);
    return ok;
}

/* 303 to return_url with hps_id and status added to its query. */
static void back_to_tenant(struct http_resp *resp, const struct session *s)
{
    size_t n = strlen(s->return_url), q;
    const char *sep;
    char *location;
    struct url back;

    if (return_url_of(s, &back) != URL_OK || !(location = malloc(n + 128))) {
        gone(resp);
        return;
    }
    /* hps_id joins a query of its own after an "&"; "x?" and "x?a&" need none */
    q = strlen(back.query);
    sep = !back.has_query ? "?" : (q == 0 || back.query[q - 1] == '&') ? "" : "&";
    /* ids and states are [A-Za-z0-9_]: nothing to percent-encode */
    snprintf(location, n + 128, "%s%shps_id=%s&status=%s", s->return_url, sep, s->id,
             s->status);
    http_resp_header(resp, "Location", location);
    free(location);
    page(resp, 303, strdup(""), NULL);
}

/* Digits of a card number typed with spaces or dashes; -1 if anything
 * else, or a length no card has. */
static int card_digits(const char *in, char out[20])
{
    size_t n = 0;

    for (; *in; in++) {
        if (*in == ' ' || *in == '-')
            continue;
        if (!isdigit((unsigned char)*in) || n == 19)
            return -1;
        out[n++] = *in;
    }
    out[n] = '\0';
    return n >= 12 ? 0 : -1;
}

static int luhn_ok(const char *digits)
{
    size_t n = strlen(digits);
    int sum = 0;

    for (size_t i = 0; i < n; i++) {
        int d = digits[n - 1 - i] - '0';
        if (i % 2 == 1 && (d *= 2) > 9)
            d -= 9;
        sum += d;
    }
    return sum % 10 == 0;
}

/* A whole number of 1..max_digits digits, or -1. */
static int small_number(const char *s, size_t max_digits)
{
    size_t n = strlen(s);
    int v = 0;

    if (n == 0 || n > max_digits)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Validate the form into card; the messages go to c. 0 when valid. */
static int read_card(const struct http_req *req, struct card *card, struct card_page *c,
                     char month[FIELD_MAX], char year[FIELD_MAX])
{
    char number[FIELD_MAX], cvc[FIELD_MAX];
    time_t t = (time_t)clock_now_s();
    struct tm now;
    int bad = 0;

    gmtime_r(&t, &now);
    memset(card, 0, sizeof *card);
    number[0] = cvc[0] = month[0] = year[0] = '\0';
    http_form_field(req, "card_number", number, FIELD_MAX);
    http_form_field(req, "exp_month", month, FIELD_MAX);
    http_form_field(req, "exp_year", year, FIELD_MAX);
    http_form_field(req, "cvc", cvc, FIELD_MAX);

    if (card_digits(number, card->number) != 0 || !luhn_ok(card->number)) {
        c->error_number = "Enter a valid card number.";
        bad = 1;
    }
    card->exp_month = small_number(month, 2);
    card->exp_year = small_number(year, 4);
    if (card->exp_year >= 0 && strlen(year) == 2)
        card->exp_year += 2000;
    if (card->exp_month < 1 || card->exp_month > 12 || card->exp_year < 2000) {
        c->error_expiry = "Enter the expiry month (1-12) and year.";
        bad = 1;
    } else if (card->exp_year < now.tm_year + 1900 ||
               (card->exp_year == now.tm_year + 1900 && card->exp_month < now.tm_mon + 1)) {
        c->error_expiry = "The expiry date is in the past.";
        bad = 1;
    } else if (card->exp_year > now.tm_year + 1900 + 20) {
        c->error_expiry = "The expiry year is too far ahead.";
        bad = 1;
    }
    /* American Express (34, 37) has four digits, every other brand three */
    {
        int amex = strncmp(card->number, "34", 2) == 0 || strncmp(card->number, "37", 2) == 0;
        size_t want = amex ? 4 : 3;

        if (strlen(cvc) != want || small_number(cvc, want) < 0) {
            c->error_cvc = amex ? "Enter the 4-digit security code."
                                : "Enter the 3-digit security code.";
            bad = 1;
        } else {
            memcpy(card->cvc, cvc, want + 1);
        }
    }
    token_wipe(number, sizeof number);
    token_wipe(cvc, sizeof cvc);
    return bad ? -1 : 0;
}

/* The token the processor's script put into the form; the message for
 * the page goes to c. 0 when it looks like one. */
static int read_token(const struct http_req *req, char token[HF_CARD_TOKEN_MAX + 1],
                      struct card_page *c)
{
    int got = http_form_field(req, "token", token, HF_CARD_TOKEN_MAX + 1);
    size_t n = got == 0 ? strlen(token) : 0;

    if (got == -1 || (got == 0 && n == 0)) {
        c->error_number = "Enter your card in the card field, then save.";
        return -1;
    }
    if (got != 0 || n < 8 || strncmp(token, "tok_", 4) != 0 ||
        strspn(token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != n) {
        c->error_number = "The card details could not be read. Please enter your card again.";
        return -1;
    }
    return 0;
}

/* Sessions whose card a request of this process is saving. Another
 * complete of the same session (a double click, a second tab) waits for
 * it instead of saving a second card at the processor, then follows the
 * session where that one left it. Each node of a fleet keeps its own. */
struct saving {
    const char *session_id;
    struct saving *next;
};
static pthread_mutex_t saving_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t saving_done;
static pthread_once_t saving_once = PTHREAD_ONCE_INIT;
static struct saving *saving_now;

static void saving_init(void)
{
    pthread_condattr_t monotonic; /* a step of the wall clock changes no wait */

    pthread_condattr_init(&monotonic);
    pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
    pthread_cond_init(&saving_done, &monotonic);
    pthread_condattr_destroy(&monotonic);
}

/* Hold session id with me (saving_end lets go): 0 at once, 1 after a
 * request that held it first has let go, -1 when that took over wait_ms
 * (then not held). */
static int saving_begin(struct saving *me, const char *id, long long wait_ms)
{
    struct timespec until;
    int waited = 0;

    pthread_once(&saving_once, saving_init);
    clock_mono_timespec(clock_mono_us() + wait_ms * 1000, &until);
    pthread_mutex_lock(&saving_lock);
    for (;;) {
        struct saving *x = saving_now;

        while (x && strcmp(x->session_id, id) != 0)
            x = x->next;
        if (!x)
            break;
        waited = 1;
        if (pthread_cond_timedwait(&saving_done, &saving_lock, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&saving_lock);
            return -1;
        }
    }
    me->session_id = id;
    me->next = saving_now;
    saving_now = me;
    pthread_mutex_unlock(&saving_lock);
    return waited;
}

static void saving_end(struct saving *me)
{
    pthread_mutex_lock(&saving_lock);
    for (struct saving **x = &saving_now; *x; x = &(*x)->next)
        if (*x == me) {
            *x = me->next;
            break;
        }
    pthread_cond_broadcast(&saving_done);
    pthread_mutex_unlock(&saving_lock);
}

static void complete(struct worker *w, const struct http_req *req, struct http_resp *resp,
                     const char *id)
{
    char secret[HF_TOKEN_CHARS + 1], month[FIELD_MAX], year[FIELD_MAX];
    char token[HF_CARD_TOKEN_MAX + 1] = "";
    struct card_source src = {NULL, NULL};
    struct card_page c = {0};
    struct processor_result result;
    const struct processor *proc;
    struct session s, after;
    struct card card = {0};
    struct saving me;
    int rc, held = 0;

    if (browser_session(w, req, id, &s, secret) != 0) {
        gone(resp);
        return;
    }
    if (!csrf_ok(req, secret)) {
        page(resp, 403, page_forbidden(), NULL);
        goto out;
    }
    proc = processor_for_mode(s.mode);
    if (!proc) {
        /* nothing is read: a live card must not reach a server that cannot use it */
        card_page(w, resp, 503, &s, secret, &c);
        goto out;
    }
    if (proc->browser) {
        if (read_token(req, token, &c) != 0) {
            card_page(w, resp, 422, &s, secret, &c);
            goto out;
        }
        src.token = token;
    } else {
        if (read_card(req, &card, &c, month, year) != 0) {
            c.exp_month = month;
            c.exp_year = year;
            card_page(w, resp, 422, &s, secret, &c);
            goto out;
        }
        src.card = &card;
    }
    /* the first save may take the processor's whole timeout, and more */
    rc = saving_begin(&me, s.id, 2 * w->cfg->checkout_timeout_ms + 5000);
    held = rc >= 0;
    if (rc < 0) {
        c.decline = "The card could not be saved right now. Please try again in a moment.";
        card_page(w, resp, 503, &s, secret, &c);
        goto out;
    }
    if (rc == 1) { /* another request of this session went first: follow it */
        int found = store_session_get(w->store, s.tenant_id, s.mode, s.id, clock_now_s(),
                                      &after) == 0;

        if (!found || strcmp(after.status, "pending") != 0) {
            if (found && strcmp(after.status, "completed") == 0)
                back_to_tenant(resp, &after);
            else
                gone(resp);
            goto out;
        }
    }
    rc = proc->save_card(&src, &result);
    if (rc != 0) {
        /* the processor logged why; the session stays pending */
        log_msg(HF_LOG_WARN, "hosted: session %s card not saved: processor %s failed",
                s.id, proc->name);
        c.decline = "The card could not be saved right now. Please try again in a moment.";
        card_page(w, resp, rc == HF_EUNAVAILABLE ? 503 : 502, &s, secret, &c);
        goto out;
    }
    if (!result.approved) {
        c.decline = result.decline;
        card_page(w, resp, 402, &s, secret, &c);
        log_msg(HF_LOG_INFO, "hosted: session %s card declined by %s", s.id, proc->name);
        goto out;
    }
    rc = store_session_complete(w->store, s.tenant_id, s.mode, s.id, &result.saved, clock_now_s(),
                                &after);
    if (rc != 0) {
        /* the processor keeps the card all the same: say which instrument
         * is nobody's, for the operator to remove */
        log_msg(HF_LOG_WARN, "hosted: session %s %s; %s instrument %s belongs to no session",
                s.id, rc == HF_ENOTPENDING || rc == HF_EEXPIRED
                          ? "ended while its card was being saved"
                          : "could not be recorded as completed",
                proc->name, result.saved.reference);
        gone(resp);
        goto out;
    }
    log_msg(HF_LOG_INFO, "hosted: session %s completed (%s ending %s)", s.id,
            result.saved.brand, result.saved.last4);
    metrics_session_completed();
    back_to_tenant(resp, &after);
out:
    if (held)
        saving_end(&me);
    token_wipe(&card, sizeof card);
    token_wipe(token, sizeof token);
    token_wipe(secret, sizeof secret);
}

static void cancel(struct worker *w, const struct http_req *req, struct http_resp *resp,
                   const char *id)
{
    char secret[HF_TOKEN_CHARS + 1];
    struct session s, after;

    if (browser_session(w, req, id, &s, secret) != 0) {
        gone(resp);
        return;
    }
    if (!csrf_ok(req, secret))
        page(resp, 403, page_forbidden(), NULL);
    else if (store_session_cancel(w->store, s.tenant_id, s.mode, s.id, clock_now_s(), &after) != 0)
        gone(resp);
    else {
        metrics_session_cancelled();
        back_to_tenant(resp, &after);
    }
    token_wipe(secret, sizeof secret);
}

static void show_card_page(struct worker *w, const struct http_req *req,
                           struct http_resp *resp, const char *id)
{
    char secret[HF_TOKEN_CHARS + 1];
    struct card_page c = {0};
    struct session s;

    if (browser_session(w, req, id, &s, secret) != 0)
        gone(resp);
    else
        card_page(w, resp, processor_for_mode(s.mode) ? 200 : 503, &s, secret, &c);
    token_wipe(secret, sizeof secret);
}

/* HEAD is answered as GET (http.c drops the body): link checkers use it. */
static int is(const struct http_req *req, const char *method)
{
    if (strcmp(method, "GET") == 0 && strcmp(req->method, "HEAD") == 0)
        return 1;
    return strcmp(req->method, method) == 0;
}

void hosted_handle(struct worker *w, const struct http_req *req, struct http_resp *resp)
{
    const char *path = req->path;

    if (strcmp(path, HF_HOSTED_CSS_PATH) == 0 && is(req, "GET")) {
        asset(resp, "text/css; charset=utf-8", hosted_css);
    } else if (strcmp(path, HF_HOSTED_CARD_JS_PATH) == 0 && is(req, "GET")) {
        asset(resp, "text/javascript; charset=utf-8", hosted_card_js);
    } else if (strncmp(path, SETUP_PREFIX, strlen(SETUP_PREFIX)) == 0 &&
               (is(req, "GET") || is(req, "POST"))) {
        unsigned char hash[HF_HASH_BYTES];
        int wait = ratelimit_take(w->limits->redeem_by_ip, req->remote_addr,
                                  ratelimit_now_ms());

        if (wait > 0) { /* guessing tokens needs many tries: slow them down */
            char seconds[16];
            snprintf(seconds, sizeof seconds, "%d", wait);
            http_resp_header(resp, "Retry-After", seconds);
            page(resp, 429, page_too_many(), NULL);
        } else if (parse_token(path + strlen(SETUP_PREFIX), hash) != 0)
            gone(resp);
        else if (is(req, "GET"))
            landing(w, req, resp, hash);
        else
            redeem(w, resp, hash);
    } else if (strncmp(path, SESSION_PREFIX, strlen(SESSION_PREFIX)) == 0) {
        const char *id = path + strlen(SESSION_PREFIX), *slash = strchr(id, '/');
        char sid[HF_ID_MAX];

        if ((size_t)(slash ? slash - id : (long)strlen(id)) >= sizeof sid) {
            gone(resp);
            return;
        }
        snprintf(sid, sizeof sid, "%.*s", (int)(slash ? slash - id : (long)strlen(id)), id);
        if (!slash && is(req, "GET"))
            show_card_page(w, req, resp, sid);
        else if (slash && strcmp(slash, "/complete") == 0 && is(req, "POST"))
            complete(w, req, resp, sid);
        else if (slash && strcmp(slash, "/cancel") == 0 && is(req, "POST"))
            cancel(w, req, resp, sid);
        else
            gone(resp);
    } else {
        gone(resp);
    }
}
