/* hosted_pages.c - HTML of the hosted flow, built with escaping appends. */
#define _POSIX_C_SOURCE 200809L
#include "hosted_pages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

const char hosted_css[] =
    "*{box-sizing:border-box}"
    "body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
    "background:#f4f5f7;color:#1d2330}"
    ".panel{max-width:28rem;margin:2rem auto;padding:1.5rem;background:#fff;"
    "border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.12);overflow-wrap:anywhere}"
    "@media (max-width:30rem){.panel{margin:0;border-radius:0;min-height:100vh}}"
    ".tenant{margin:0 0 .25rem;font-weight:600;color:#4a5468}"
    "h1{font-size:1.4rem;margin:.25rem 0 1rem}"
    ".badge{display:inline-block;padding:.1rem .5rem;border-radius:999px;"
    "background:#fff3cd;color:#6b4e00;font-size:.8rem;font-weight:600}"
    "label{display:block;font-weight:600;margin:.75rem 0 .25rem}"
    "input{width:100%;font:inherit;padding:.6rem .7rem;border:1px solid #b8c0cc;"
    "border-radius:8px}"
    "input:focus{outline:2px solid #2f6fed;border-color:#2f6fed}"
    ".row{display:flex;gap:.75rem}.row>div{flex:1}"
    "button{width:100%;margin-top:1.25rem;padding:.75rem;font:inherit;font-weight:600;"
    "border:0;border-radius:8px;background:#2f6fed;color:#fff;cursor:pointer}"
    "button.secondary{margin-top:.5rem;background:#fff;color:#4a5468;"
    "border:1px solid #b8c0cc}"
    ".error{color:#b42318;margin:.25rem 0 0}"
    ".notice{background:#fdecea;border-radius:8px;padding:.6rem .75rem;color:#b42318}"
    ".fine{color:#6b7385;font-size:.85rem;margin-top:1.25rem}"
    ".label{font-weight:600;margin:.75rem 0 .25rem}"
    ".card-frame{min-height:2.9rem;padding:.3rem .5rem;border:1px solid #b8c0cc;"
    "border-radius:8px}"
    "button:disabled{opacity:.55;cursor:default}";

const char hosted_card_js[] =
    "(function () {\n"
    "  'use strict';\n"
    "  var form = document.getElementById('card-form');\n"
    "  var token = document.getElementById('token');\n"
    "  var save = document.getElementById('save');\n"
    "  var problem = document.getElementById('card-error');\n"
    "  if (!form || !token || !save || !problem) return;\n"
    "  function say(text) { problem.textContent = text; problem.hidden = false; }\n"
    "  var Frames = window.Frames;\n"
    "  if (!Frames || typeof Frames.init !== 'function') {\n"
    "    say('The card field could not be loaded. Reload the page to try again.');\n"
    "    return;\n"
    "  }\n"
    "  Frames.init({ publicKey: form.getAttribute('data-public-key') });\n"
    "  Frames.addEventHandler(Frames.Events.CARD_VALIDATION_CHANGED, function () {\n"
    "    save.disabled = !Frames.isCardValid();\n"
    "  });\n"
    "  Frames.addEventHandler(Frames.Events.CARD_TOKENIZED, function (event) {\n"
    "    token.value = event.token;\n"
    "    form.submit();\n"
    "  });\n"
    "  Frames.addEventHandler(Frames.Events.CARD_TOKENIZATION_FAILED, function () {\n"
    "    say('Your card could not be checked. Please try again.');\n"
    "    Frames.enableSubmitForm();\n"
    "    save.disabled = !Frames.isCardValid();\n"
    "  });\n"
    "  form.addEventListener('submit', function (event) {\n"
    "    if (token.value) return;\n"
    "    event.preventDefault();\n"
    "    if (!Frames.isCardValid()) {\n"
    "      say('Enter the card number, expiry date and security code.');\n"
    "      return;\n"
    "    }\n"
    "    problem.hidden = true;\n"
    "    save.disabled = true;\n"
    "    /* a failure arrives as CARD_TOKENIZATION_FAILED */\n"
    "    Promise.resolve(Frames.submitCard()).catch(function () {});\n"
    "  });\n"
    "})();\n";

static void put(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* s with & < > " ' escaped: safe in text and in quoted attributes. */
static void put_escaped(struct buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': put(b, "&amp;"); break;
        case '<': put(b, "&lt;"); break;
        case '>': put(b, "&gt;"); break;
        case '"': put(b, "&quot;"); break;
        case '\'': put(b, "&#39;"); break;
        default: buf_put(b, s, 1);
        }
    }
}

static void head(struct buf *b, const char *title, const char *tenant_name)
{
    put(b, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           "<title>");
    put_escaped(b, title);
    put(b, "</title><link rel=\"stylesheet\" href=\"" HF_HOSTED_CSS_PATH "\"></head>"
           "<body><main class=\"panel\">");
    if (tenant_name) {
        put(b, "<p class=\"tenant\">");
        put_escaped(b, tenant_name);
        put(b, "</p>");
    }
}

static char *finish(struct buf *b)
{
    put(b, "</main></body></html>\n");
    return b->data;
}

static void error_line(struct buf *b, const char *id, const char *msg)
{
    if (!msg)
        return;
    put(b, "<p class=\"error\" role=\"alert\" id=\"");
    put(b, id);
    put(b, "\">");
    put_escaped(b, msg);
    put(b, "</p>");
}

char *page_landing(const char *tenant_name, const char *action, int test_mode)
{
    struct buf b = {0};

    head(&b, "Save a payment card", tenant_name);
    put(&b, "<h1>Save a payment card</h1>");
    if (test_mode)
        put(&b, "<p><span class=\"badge\">Test mode</span></p>");
    put(&b, "<p>");
    put_escaped(&b, tenant_name);
    put(&b, " asks you to save a card on file. You will enter the card on the next "
            "page; the full number is never shown to them.</p>"
            "<form method=\"post\" action=\"");
    put_escaped(&b, action);
    put(&b, "\"><button type=\"submit\" id=\"continue\">Continue</button></form>"
            "<p class=\"fine\">This link works once. If you did not expect it, close "
            "this page.</p>");
    return finish(&b);
}

/* The cancel form, on every card page. */
static void cancel_form(struct buf *b, const struct card_page *c)
{
    put(b, "<form id=\"cancel-form\" method=\"post\" action=\"/payment/sessions/");
    put_escaped(b, c->session_id);
    put(b, "/cancel\"><input type=\"hidden\" name=\"csrf\" value=\"");
    put_escaped(b, c->csrf);
    put(b, "\"><button type=\"submit\" id=\"cancel\" class=\"secondary\">Cancel</button>"
           "</form>");
}

/* Live mode: the processor's script puts its card field into .card-frame
 * and hands back a token, which the form posts with the csrf value. */
static void token_form(struct buf *b, const struct card_page *c)
{
    put(b, "<form id=\"card-form\" method=\"post\" action=\"/payment/sessions/");
    put_escaped(b, c->session_id);
    put(b, "/complete\" data-public-key=\"");
    put_escaped(b, c->public_key);
    put(b, "\"><p class=\"label\" id=\"card-label\">Card</p>"
           "<div class=\"card-frame\" aria-labelledby=\"card-label\"></div>");
    error_line(b, "error-number", c->error_number);
    put(b, "<p class=\"error\" role=\"alert\" id=\"card-error\" hidden></p>"
           "<noscript><p class=\"error notice\">This page needs JavaScript: the card is "
           "typed into a secure field of our payment processor.</p></noscript>"
           "<input type=\"hidden\" name=\"token\" id=\"token\" value=\"\">"
           "<input type=\"hidden\" name=\"csrf\" value=\"");
    put_escaped(b, c->csrf);
    put(b, "\"><button type=\"submit\" id=\"save\" disabled>Save card</button></form>");
    cancel_form(b, c);
    put(b, "<p class=\"fine\">The card is typed into a field of Checkout.com, the payment "
           "processor; the full number never reaches ");
    put_escaped(b, c->tenant_name);
    put(b, ".</p><script src=\"");
    put_escaped(b, c->script_url);
    put(b, "\"></script><script src=\"" HF_HOSTED_CARD_JS_PATH "\"></script>");
}

char *page_card(const struct card_page *c)
{
    struct buf b = {0};

    head(&b, "Card details", c->tenant_name);
    put(&b, "<h1>Card details</h1>");
    if (c->test_mode)
        put(&b, "<p><span class=\"badge\">Test mode: use 4242 4242 4242 4242</span></p>");
    if (c->decline) {
        put(&b, "<p class=\"error notice\" role=\"alert\" id=\"decline\">");
        put_escaped(&b, c->decline);
        put(&b, "</p>");
    }
    if (c->unavailable) {
        cancel_form(&b, c);
        return finish(&b);
    }
    if (c->script_url) {
        token_form(&b, c);
        return finish(&b);
    }
    put(&b, "<form id=\"card-form\" method=\"post\" action=\"/payment/sessions/");
    put_escaped(&b, c->session_id);
    put(&b, "/complete\">"
            "<label for=\"card_number\">Card number</label>"
            "<input id=\"card_number\" name=\"card_number\" inputmode=\"numeric\" "
            "autocomplete=\"cc-number\" maxlength=\"23\">");
    error_line(&b, "error-number", c->error_number);
    put(&b, "<div class=\"row\"><div><label for=\"exp_month\">Expiry month</label>"
            "<input id=\"exp_month\" name=\"exp_month\" inputmode=\"numeric\" "
            "autocomplete=\"cc-exp-month\" maxlength=\"2\" placeholder=\"MM\" value=\"");
    put_escaped(&b, c->exp_month ? c->exp_month : "");
    put(&b, "\"></div><div><label for=\"exp_year\">Expiry year</label>"
            "<input id=\"exp_year\" name=\"exp_year\" inputmode=\"numeric\" "
            "autocomplete=\"cc-exp-year\" maxlength=\"4\" placeholder=\"YYYY\" value=\"");
    put_escaped(&b, c->exp_year ? c->exp_year : "");
    put(&b, "\"></div></div>");
    error_line(&b, "error-expiry", c->error_expiry);
    put(&b, "<label for=\"cvc\">Security code (CVC)</label>"
            "<input id=\"cvc\" name=\"cvc\" inputmode=\"numeric\" autocomplete=\"cc-csc\" "
            "maxlength=\"4\">");
    error_line(&b, "error-cvc", c->error_cvc);
    put(&b, "<input type=\"hidden\" name=\"csrf\" value=\"");
    put_escaped(&b, c->csrf);
    put(&b, "\"><button type=\"submit\" id=\"save\">Save card</button></form>");
    cancel_form(&b, c);
    return finish(&b);
}

char *page_gone(void)
{
    struct buf b = {0};

    head(&b, "Link not valid", NULL);
    put(&b, "<h1>This link is no longer valid</h1>"
            "<p>It may have been used already, have expired or been cancelled. Ask "
            "the company that sent it for a new link.</p>");
    return finish(&b);
}

char *page_too_many(void)
{
    struct buf b = {0};

    head(&b, "Too many requests", NULL);
    put(&b, "<h1>Too many requests</h1>"
            "<p>Wait a moment, then reload the page.</p>");
    return finish(&b);
}

char *page_forbidden(void)
{
    struct buf b = {0};

    head(&b, "Form expired", NULL);
    put(&b, "<h1>This form has expired</h1>"
            "<p>Go back, reload the page and try again.</p>");
    return finish(&b);
}
