/* hosted_pages.h - the contractor's HTML pages: small, server-rendered,
 * every value HTML-escaped, usable without JavaScript. Each builder
 * returns a malloc'd, NUL-terminated page (the caller frees it). */
#ifndef HF_HOSTED_PAGES_H
#define HF_HOSTED_PAGES_H

/* The stylesheet every page links to (served at HF_HOSTED_CSS_PATH). */
#define HF_HOSTED_CSS_PATH "/payment/assets/hosted.css"
extern const char hosted_css[];

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
