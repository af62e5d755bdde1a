/* hosted_pages.h - the contractor's HTML pages: small, server-rendered,
 * every value HTML-escaped, usable without JavaScript. Each builder
 * returns a malloc'd, NUL-terminated page (the caller frees it). */
#ifndef HF_HOSTED_PAGES_H
#define HF_HOSTED_PAGES_H

/* The stylesheet every page links to (served at HF_HOSTED_CSS_PATH). */
#define HF_HOSTED_CSS_PATH "/payment/assets/hosted.css"
extern const char hosted_css[];

/* The script of the live card page (served at HF_HOSTED_CARD_JS_PATH):
 * starts the processor's script (Frames) on the form, puts the token it
 * makes into the form's `token` field and submits. The pages carry no
 * inline script, so the CSP needs no 'unsafe-inline'. */
#define HF_HOSTED_CARD_JS_PATH "/payment/assets/card.js"
extern const char hosted_card_js[];

/* The landing page: who asks, and a Continue button POSTing to action. */
char *page_landing(const char *tenant_name, const char *action, int test_mode);

/* What the card page shows. NULL strings are omitted. */
struct card_page {
    const char *session_id;
    const char *tenant_name;
    const char *csrf;
    int test_mode;
    const char *exp_month;        /* echoed back after a validation error */
    const char *exp_year;
    const char *error_number;     /* one message per field */
    const char *error_expiry;
    const char *error_cvc;
    const char *decline;          /* the processor's answer */
    /* live mode: the card is typed into the processor's own field, made
     * by its script; the form posts a token instead of card fields */
    const char *script_url;       /* the processor's script, or NULL for card fields */
    const char *public_key;       /* handed to that script */
    int unavailable;              /* no processor at all: the message and Cancel only */
};
char *page_card(const struct card_page *c);

/* The one page for every link or session that cannot be used: unknown,
 * used, expired, cancelled, completed alike. */
char *page_gone(void);

/* The page for a client over its rate limit. */
char *page_too_many(void);

/* The page for a form whose csrf value does not match. */
char *page_forbidden(void);

#endif
