/* log.h - one line per event on stderr, text or JSON, with secrets redacted.
 *
 * Every line passes through log_redact, so a URL token or API key secret
 * that reaches a message by mistake still never reaches the log. */
#ifndef HF_LOG_H
#define HF_LOG_H

#include <stddef.h>

enum log_level { HF_LOG_DEBUG, HF_LOG_INFO, HF_LOG_WARN, HF_LOG_ERROR, HF_LOG_OFF };

/* Choose the format (json != 0 for JSON lines) and the lowest level shown. */
void log_setup(int json, enum log_level min_level);

/* printf-style message at level. */
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One finished HTTP request. Strings may be NULL (omitted). */
struct log_request {
    const char *request_id;
    const char *method;
    const char *path;           /* redacted before printing */
    int status;
    long long duration_us;
    const char *tenant;
    const char *policy_version;
    const char *decision;       /* "allow", "deny", "error" or NULL */
    const char *error_code;
    long long policy_us;        /* time in the policy; logged when decision is set */
    long policy_instructions;   /* of its budget; logged with policy_us */
};
void log_request(const struct log_request *r);

/* Between log_hold and log_release the calling thread's lines are kept and
 * then written together, with one write: for a thread that logs a batch
 * of lines at once (the SQLite writer answering a group commit). */
void log_hold(void);
void log_release(void);

/* Copy in to out (size outlen, always NUL-terminated) with hosted-flow URL
 * tokens, API key secrets, Checkout.com secret keys and card tokens, and
 * the password of a URL ("scheme://user:[redacted]@")
 * replaced by "[redacted]" and control characters written as \xNN. */
void log_redact(const char *in, char *out, size_t outlen);

#endif
