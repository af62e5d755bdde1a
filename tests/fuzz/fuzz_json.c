/* fuzz_json.c - json_parse_body on raw request bodies.
 *
 * Every encoding must be byte-identical to jansson's own json_dumps of the
 * same tree (json_encode walks the tree itself).
 * Refusals must come with a NUL-terminated sentence. On success the two
 * members the API reads are fetched with json_member_string, and the
 * value is encoded, parsed again and encoded again: the second parse must
 * succeed, the two encodings must be byte-identical and the members must
 * read back unchanged. The builders get the member values too, the way
 * api.c answers with them. Whatever json_parse_flat (the fast path) reads
 * jansson must read too, into an equal tree with the members in the same
 * order. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                      \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "fuzz_json: invariant failed: %s (line %d)\n", \
                    #cond, __LINE__);                                      \
            abort();                                                       \
        }                                                                  \
    } while (0)

static const char *const keys[] = {"contractor", "return_url"};

/* json_encode walks the tree itself: it must write what jansson writes */
static void same_as_jansson(const struct json_t *v, const char *enc)
{
    char *ref = json_dumps((const json_t *)v, JSON_COMPACT | JSON_PRESERVE_ORDER);

    if (!ref || strcmp(ref, enc) != 0)
        fprintf(stderr, "fuzz_json: encoded \"%s\", jansson \"%s\"\n", enc,
                ref ? ref : "(null)");
    REQUIRE(ref != NULL && strcmp(ref, enc) == 0);
    free(ref);
}

/* The text writer against the builders, with the input as a C string
 * (any bytes: invalid UTF-8 must become null in both). */
static void text_like_tree(const char *str, long long n)
{
    struct json_t *o = json_new_object(), *arr = json_new_array();
    struct json_text t = {0};
    char *tree, *text;

    json_put_string(o, "s", str);
    json_put_int(o, "n", n);
    json_put_null(o, "z");
    json_push_string(arr, str);
    json_push_string(arr, NULL);
    json_put(o, "a", arr);
    tree = json_encode(o);
    json_text_open(&t, NULL, '{');
    json_text_string(&t, "s", str);
    json_text_int(&t, "n", n);
    json_text_null(&t, "z");
    json_text_open(&t, "a", '[');
    json_text_string(&t, NULL, str);
    json_text_string(&t, NULL, NULL);
    json_text_close(&t, ']');
    json_text_close(&t, '}');
    text = json_text_finish(&t);
    if (strcmp(tree, text) != 0)
        fprintf(stderr, "fuzz_json: written \"%s\", built \"%s\"\n", text, tree);
    REQUIRE(strcmp(tree, text) == 0);
    free(text);
    free(tree);
    json_free(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_t *v = NULL, *again = NULL, *reply;
    const char *val[2] = {NULL, NULL}, *val2;
    int mrc[2];
    char err[256], *enc, *enc2, *renc, *buf;
    int rc;

    buf = malloc(size ? size : 1); /* exact size: ASan sees reads past len */
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    {
        char *str = strndup(buf, size);

        if (str) {
            text_like_tree(str, (long long)size * (size % 2 ? -1 : 1));
            free(str);
        }
    }
    {
        struct json_t *flat = json_parse_flat(buf, size);

        if (flat) {
            json_error_t jerr;
            json_t *ref = json_loadb(buf, size, JSON_REJECT_DUPLICATES, &jerr);
            char *a, *b;

            REQUIRE(ref != NULL && json_equal((json_t *)flat, ref));
            a = json_dumps((json_t *)flat, JSON_COMPACT | JSON_PRESERVE_ORDER);
            b = json_dumps(ref, JSON_COMPACT | JSON_PRESERVE_ORDER);
            REQUIRE(a && b && strcmp(a, b) == 0);
            free(a);
            free(b);
            json_decref(ref);
            json_free(flat);
        }
    }
    memset(err, 'X', sizeof err);
    rc = json_parse_body(buf, size, &v, err, sizeof err);
    if (rc != 0) {
        REQUIRE(rc == HF_EINVAL);
        REQUIRE(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        free(buf);
        return 0;
    }
    REQUIRE(v != NULL);

    for (int i = 0; i < 2; i++) {
        mrc[i] = json_member_string(v, keys[i], &val[i]);
        REQUIRE(mrc[i] == 0 || mrc[i] == HF_ENOTFOUND || mrc[i] == HF_EINVAL);
        if (mrc[i] == 0)
            REQUIRE(val[i] != NULL && strlen(val[i]) <= size);
    }

    enc = json_encode(v);
    REQUIRE(enc != NULL);
    same_as_jansson(v, enc);
    rc = json_parse_body(enc, strlen(enc), &again, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "fuzz_json: re-parse of \"%s\" failed: %s\n", enc, err);
    REQUIRE(rc == 0);
    enc2 = json_encode(again);
    REQUIRE(strcmp(enc, enc2) == 0);
    for (int i = 0; i < 2; i++) {
        int r = json_member_string(again, keys[i], &val2);
        REQUIRE(r == mrc[i]);
        if (r == 0)
            REQUIRE(strcmp(val2, val[i]) == 0);
    }

    /* what api.c does with the members: build a reply around them */
    reply = json_new_object();
    json_put_string(reply, "contractor_id", mrc[0] == 0 ? val[0] : NULL);
    json_put_string(reply, "return_url", mrc[1] == 0 ? val[1] : NULL);
    json_put_int(reply, "created", (long long)size);
    json_put_bool(reply, "ok", 1);
    json_put_null(reply, "completed_at");
    renc = json_encode(reply);
    REQUIRE(renc != NULL && strlen(renc) > 0);
    same_as_jansson(reply, renc);

    free(renc);
    json_free(reply);
    free(enc2);
    free(enc);
    json_free(again);
    json_free(v);
    free(buf);
    return 0;
}
