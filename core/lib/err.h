/* err.h - hostflow's error codes, their API names and HTTP statuses.
 *
 * Every failure a function can report is one row of HF_ERRORS: the C
 * constant (negative), the error_code string clients parse, and the HTTP
 * status the API answers with. Functions return 0 or one of these.
 * The codes are those of SPEC.md section 3: the reference SDKs raise the
 * class named by the title-cased code plus "Error" (invalid_input ->
 * InvalidInputError), so a code without an SDK class is a last resort. */
#ifndef HF_ERR_H
#define HF_ERR_H

#define HF_ERRORS(X)                                                         \
    X(HF_EINVAL,        -1,  "invalid_input",           400)                 \
    X(HF_EURL,          -2,  "invalid_return_url",      400)                 \
    X(HF_EAUTH,         -3,  "invalid_api_key",         403)                 \
    X(HF_ENOCONTRACTOR, -4,  "invalid_contractor_id",   404)                 \
    X(HF_EIDEMPOTENCY,  -5,  "idempotency_key_reused",  409)                 \
    X(HF_EPOLICY,       -6,  "policy_error",            500)                 \
    X(HF_ENOTFOUND,     -7,  "resource_not_found",      404)                 \
    X(HF_ENOTPENDING,   -8,  "session_not_pending",     409)                 \
    X(HF_EEXPIRED,      -9,  "session_expired",         409)                 \
    X(HF_ETOOBIG,       -10, "invalid_input",           413)                 \
    X(HF_EMETHOD,       -11, "method_not_allowed",      405)                 \
    X(HF_ESTORE,        -12, "internal_error",          500)                 \
    X(HF_ENOMEM,        -13, "internal_error",          500)                 \
    X(HF_EDENIED,       -14, "forbidden",               403)                 \
    X(HF_EEXISTS,       -15, "already_exists",          409)                 \
    X(HF_ELIMIT,        -16, "limit_reached",           409)                 \
    X(HF_EUPSTREAM,     -17, "upstream_error",          502)                 \
    X(HF_EUNAVAILABLE,  -18, "upstream_unavailable",    503)                 \
    X(HF_ESTALE,        -19, "internal_error",          500) /* retried, never answered */ \
    X(HF_ENOSESSION,    -20, "invalid_session_id",      404)                 \
    X(HF_ENOENDPOINT,   -21, "invalid_webhook_endpoint_id", 404)                \
    X(HF_ENOEVENT,      -22, "invalid_event_id",        404)

enum hf_err {
#define HF_ERR_ENUM(name, value, code, status) name = value,
    HF_ERRORS(HF_ERR_ENUM)
#undef HF_ERR_ENUM
};

/* The error_code string clients see for rc; "internal_error" if unknown. */
const char *hf_err_code(int rc);
/* The HTTP status for rc; 500 if unknown. */
int hf_err_status(int rc);

#endif
