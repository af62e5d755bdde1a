/* err.c - the one table mapping error codes to API strings and statuses. */
#include "err.h"

struct row {
    int rc;           /* HF_E… value */
    const char *code; /* error_code in the JSON body */
    int status;       /* HTTP status */
};

static const struct row rows[] = {
#define HF_ERR_ROW(name, value, code, status) {value, code, status},
    HF_ERRORS(HF_ERR_ROW)
#undef HF_ERR_ROW
};

static const struct row *find(int rc)
{
    for (unsigned i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].rc == rc)
            return &rows[i];
    return 0;
}

const char *hf_err_code(int rc)
{
    const struct row *r = find(rc);
    return r ? r->code : "internal_error";
}

int hf_err_status(int rc)
{
    const struct row *r = find(rc);
    return r ? r->status : 500;
}
