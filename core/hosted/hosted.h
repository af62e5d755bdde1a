/* hosted.h - the contractor's pages (/payment/...), a route of the public
 * listener. */
#ifndef HF_HOSTED_H
#define HF_HOSTED_H

#include "worker.h"

/* Answer one request under /payment/ (hosted.c). */
void hosted_handle(struct worker *w, const struct http_req *req, struct http_resp *resp);

#endif
