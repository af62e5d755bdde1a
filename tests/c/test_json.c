/* test_json.c - strict request-body parsing and safe encoding. */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "check.h"
#include "err.h"
#include "json.h"

static int parse(const char *s, size_t len)
{
    struct json_t *v = NULL;
    char err[256];
    int rc = json_parse_body(s, len, &v, err, sizeof err);

    json_free(v);
    return rc;
}

#define P(s) parse((s), sizeof(s) - 1)

static char *nested(int depth)
{
    char *s = malloc((size_t)depth * 8 + 16);
    size_t n = 0;

    n += (size_t)sprintf(s, "{\"a\":");
    for (int i = 1; i < depth; i++)
        s[n++] = '[';
    s[n++] = '1';
    for (int i = 1; i < depth; i++)
        s[n++] = ']';
    s[n++] = '}';
    s[n] = '\0';
    return s;
}

/* Boolean members and array lengths, as the endpoint API reads them. */
static void member_types(void)
{
    struct json_t *v = NULL;
    const char *s;
    char err[256];
    size_t n_items;
    int flag;

    s = "{\"t\":true,\"f\":false,\"one\":1,\"a\":[1,2],\"z\":null}";
    CHECK("bool member parse", json_parse_body(s, strlen(s), &v, err, sizeof err) == 0);
    CHECK("true", json_member_bool(v, "t", &flag) == 0 && flag == 1);
    CHECK("false", json_member_bool(v, "f", &flag) == 0 && flag == 0);
    CHECK("1 is not a boolean", json_member_bool(v, "one", &flag) == HF_EINVAL);
    CHECK("null bool is absent", json_member_bool(v, "z", &flag) == HF_ENOTFOUND);
    CHECK("missing bool", json_member_bool(v, "q", &flag) == HF_ENOTFOUND);
    CHECK("array size", json_member_array_size(v, "a", &n_items) == 0 && n_items == 2);
    CHECK("size of a non-array", json_member_array_size(v, "t", &n_items) == HF_EINVAL);
    CHECK("size of a missing array", json_member_array_size(v, "q", &n_items) == HF_ENOTFOUND);
    json_free(v);
}

int main(void)
{
    struct json_t *v = NULL, *o;
    const char *str;
    char err[256], *s;

    CHECK("object parses", P("{\"contractor\":\"cn_1\",\"return_url\":\"https://a.com\"}") == 0);
    CHECK("unknown fields are fine", P("{\"x\":[1,2,{\"y\":null}],\"contractor\":\"c\"}") == 0);
    CHECK("duplicate key refused", P("{\"contractor\":\"a\",\"contractor\":\"b\"}") == HF_EINVAL);
    CHECK("nested duplicate key refused", P("{\"x\":{\"k\":1,\"k\":2}}") == HF_EINVAL);
    CHECK("array refused", P("[1,2]") == HF_EINVAL);
    CHECK("string refused", P("\"x\"") == HF_EINVAL);
    CHECK("number refused", P("1") == HF_EINVAL);
    CHECK("null refused", P("null") == HF_EINVAL);
    CHECK("empty body refused", P("") == HF_EINVAL);
    CHECK("trailing garbage refused", P("{}x") == HF_EINVAL);
    CHECK("two objects refused", P("{}{}") == HF_EINVAL);
    CHECK("truncated refused", P("{\"a\":") == HF_EINVAL);
    CHECK("invalid UTF-8 refused", P("{\"a\":\"\xff\xfe\"}") == HF_EINVAL);
    CHECK("overlong UTF-8 refused", P("{\"a\":\"\xc0\xaf\"}") == HF_EINVAL);
    CHECK("UTF-16 surrogate escape alone refused", P("{\"a\":\"\\ud800\"}") == HF_EINVAL);
    CHECK("escaped NUL refused", P("{\"a\":\"x\\u0000y\"}") == HF_EINVAL);
    CHECK("raw NUL byte refused", parse("{\"a\":\"x\0y\"}", 11) == HF_EINVAL);
    CHECK("valid UTF-8 accepted", P("{\"a\":\"caf\xc3\xa9\"}") == 0);
    CHECK("single quotes refused", P("{'a':1}") == HF_EINVAL);
    CHECK("comments refused", P("{/*x*/}") == HF_EINVAL);
    CHECK("NaN refused", P("{\"a\":NaN}") == HF_EINVAL);

    s = nested(HF_JSON_MAX_DEPTH);
    CHECK("depth at the limit accepted", parse(s, strlen(s)) == 0);
    free(s);
    s = nested(HF_JSON_MAX_DEPTH + 1);
    CHECK("depth over the limit refused", parse(s, strlen(s)) == HF_EINVAL);
    free(s);
    s = nested(5000);
    CHECK("very deep nesting refused without crashing", parse(s, strlen(s)) == HF_EINVAL);
    free(s);

    CHECK("member parse", json_parse_body("{\"c\":\"v\",\"n\":3,\"z\":null}", 24, &v, err,
                                          sizeof err) == 0);
    CHECK("string member found", json_member_string(v, "c", &str) == 0 && strcmp(str, "v") == 0);
    CHECK("number member is the wrong type", json_member_string(v, "n", &str) == HF_EINVAL);
    CHECK("null member counts as absent", json_member_string(v, "z", &str) == HF_ENOTFOUND);
    CHECK("missing member", json_member_string(v, "q", &str) == HF_ENOTFOUND);
    {
        long long n = 0;

        CHECK("integer member found", json_member_int(v, "n", &n) == 0 && n == 3);
        CHECK("string member is not an integer", json_member_int(v, "c", &n) == HF_EINVAL);
        CHECK("null integer member counts as absent", json_member_int(v, "z", &n) == HF_ENOTFOUND);
    }
    json_free(v);
    s = "{\"f\":1.5,\"big\":34560001}";
    CHECK("number members parse", json_parse_body(s, strlen(s), &v, err, sizeof err) == 0);
    {
        long long n = 0;

        CHECK("a fraction is not an integer", json_member_int(v, "f", &n) == HF_EINVAL);
        CHECK("a large integer is read whole", json_member_int(v, "big", &n) == 0 && n == 34560001);
    }
    json_free(v);

    s = "{\"error_codes\":[\"token_invalid\",7],\"n\":{},\"e\":[]}";
    CHECK("array member parse", json_parse_body(s, strlen(s), &v, err, sizeof err) == 0);
    CHECK("array element found", json_member_array_string(v, "error_codes", 0, &str) == 0 &&
                                     strcmp(str, "token_invalid") == 0);
    CHECK("array element of the wrong type",
          json_member_array_string(v, "error_codes", 1, &str) == HF_EINVAL);
    CHECK("past the array's end", json_member_array_string(v, "error_codes", 2, &str) ==
                                      HF_ENOTFOUND);
    CHECK("empty array", json_member_array_string(v, "e", 0, &str) == HF_ENOTFOUND);
    CHECK("member not an array", json_member_array_string(v, "n", 0, &str) == HF_EINVAL);
    CHECK("missing array", json_member_array_string(v, "q", 0, &str) == HF_ENOTFOUND);
    json_free(v);

    member_types();

    o = json_new_object();
    json_put_string(o, "s", "a\"b\\c</script>\n");
    json_put_string(o, "n", NULL);
    json_put_int(o, "i", 1795625068);
    s = json_encode(o);
    CHECK("encoder escapes quotes, backslashes and newlines",
          strcmp(s, "{\"s\":\"a\\\"b\\\\c</script>\\n\",\"n\":null,\"i\":1795625068}") == 0);
    free(s);
    json_put_string(o, "bad", "\xff");
    s = json_encode(o);
    CHECK("invalid UTF-8 values become null, never raw bytes", strstr(s, "\"bad\":null") != NULL);
    free(s);
    json_free(o);

    /* the encoder writes exactly what jansson's own would */
    {
        static const char *const bodies[] = {
            "{\"a\":\"\\u0001\\u001f\\b\\f\\n\\r\\t\\\"\\\\/\\u007f\"}",
            "{\"k\\n\\u0002y\":[1,-2,9223372036854775807,-9223372036854775808,true,false,null]}",
            "{\"\":{},\"e\":[],\"n\":[[[{\"x\":[]}]]],\"u\":\"\u00e9\u2028\xf0\x9f\x98\x80\"}",
            "{\"r\":1.5,\"s\":\"real numbers go to jansson\"}",
        };

        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
            char why[256], *ref;

            v = NULL;
            json_parse_body(bodies[i], strlen(bodies[i]), &v, why, sizeof why);
            s = v ? json_encode(v) : NULL;
            ref = v ? json_dumps((json_t *)v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
            printf("# %s\n", s ? s : "(not parsed)");
            CHECK("encoding is byte for byte jansson's", s && ref && strcmp(s, ref) == 0);
            free(s);
            free(ref);
            json_free(v);
        }
    }

    /* the fast path reads the bodies it knows into jansson's own tree, and
     * leaves every other body - valid or not - to jansson */
    {
        static const struct {
            const char *body;
            int flat; /* 1: the fast path must take it */
        } cases[] = {
            {"{\"contractor\":\"ctr_1\",\"return_url\":\"https://app.example.com/done\"}", 1},
            {" \t\r\n{ \"a\" : \"x y\" ,\n\"b\":true,\"c\":false,\"d\":null } \n", 1},
            {"{}", 1},
            {"{ }", 1},
            {"{\"\":\"\"}", 1},
            {"{\"a\":\"~!@#$%^&*()_+`-={}[]|:;'<>?,./\"}", 1},
            {"{\"a\":\"x\\ny\"}", 0},            /* an escape */
            {"{\"a\":\"caf\xc3\xa9\"}", 0},       /* not ASCII */
            {"{\"a\":\"\xff\"}", 0},               /* not UTF-8 */
            {"{\"a\":\"tab\there\"}", 0},           /* a raw control byte */
            {"{\"a\":\"\x7f\"}", 0},
            {"{\"a\":1}", 0},                      /* a number */
            {"{\"a\":[]}", 0},
            {"{\"a\":{}}", 0},
            {"{\"a\":\"x\",\"a\":\"y\"}", 0},     /* a repeated key */
            {"{\"a\":\"x\",}", 0},                /* a trailing comma */
            {"{\"a\":\"x\"}}", 0},
            {"{\"a\":\"x\"", 0},
            {"{\"a\" \"x\"}", 0},
            {"{\"a\":truex}", 0},
            {"{\"a\":tru}", 0},
            {"{\"a\":nul", 0},
            {"{\"a\":\"x\"} x", 0},
            {"{a:\"x\"}", 0},
            {"[]", 0},
            {"", 0},
            {"{\"a\":\"x\" \"b\":\"y\"}", 0},
        };
        int all_same = 1, all_path = 1;

        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const char *b = cases[i].body;
            json_error_t jerr;
            json_t *ref = json_loadb(b, strlen(b), JSON_REJECT_DUPLICATES, &jerr);
            struct json_t *flat = json_parse_flat(b, strlen(b)), *body = NULL;
            char why[256];
            int rc = json_parse_body(b, strlen(b), &body, why, sizeof why);
            int ref_ok = ref && json_is_object(ref);

            if ((flat != NULL) != cases[i].flat) {
                fprintf(stderr, "# fast path %s: %s\n", flat ? "took" : "left", b);
                all_path = 0;
            }
            if ((flat && (!ref || !json_equal(flat, ref))) || (rc == 0) != ref_ok ||
                (body && !json_equal(body, ref))) {
                fprintf(stderr, "# not what jansson reads: %s\n", b);
                all_same = 0;
            }
            if (flat && ref) { /* same members in the same order */
                char *a = json_dumps(flat, JSON_COMPACT | JSON_PRESERVE_ORDER);
                char *c = json_dumps(ref, JSON_COMPACT | JSON_PRESERVE_ORDER);

                if (strcmp(a, c) != 0)
                    all_same = 0;
                free(a);
                free(c);
            }
            json_free(flat);
            json_free(body);
            if (ref)
                json_decref(ref);
        }
        CHECK("the fast path takes flat ASCII objects and nothing else", all_path);
        CHECK("bodies read by the fast path or by jansson are what jansson reads", all_same);
    }

    /* the text writer writes what the builders and json_encode would */
    {
        static const char *const strs[] = {
            "plain", "", "quote\" back\\ nl\n tab\t \x01\x1f\x7f", "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80",
            "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80",
            "\xc3", "\xe2\x82", "\x80", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", "\xc2\x80", NULL};
        const size_t n = sizeof strs / sizeof strs[0];

        for (size_t i = 0; i < n; i++) {
            struct json_t *tree = json_new_object(), *arr = json_new_array();
            struct json_text t = {0};
            char *want, *got, name[64];

            json_put_string(tree, "s", strs[i]);
            json_push_string(arr, strs[i]);
            json_put(tree, "a", arr);
            json_put_int(tree, "n", -9223372036854775807LL - 1);
            json_put_null(tree, "z");
            want = json_encode(tree);
            json_text_open(&t, NULL, '{');
            json_text_string(&t, "s", strs[i]);
            json_text_open(&t, "a", '[');
            json_text_string(&t, NULL, strs[i]);
            json_text_close(&t, ']');
            json_text_int(&t, "n", -9223372036854775807LL - 1);
            json_text_null(&t, "z");
            json_text_close(&t, '}');
            got = json_text_finish(&t);
            snprintf(name, sizeof name, "text writer matches the builders, string %zu", i);
            CHECK(name, strcmp(want, got) == 0);
            free(want);
            free(got);
            json_free(tree);
        }
    }
    /* a member is written in one piece up to 256 bytes, in pieces past
     * that, and key by key when a key needs escapes: the same bytes */
    {
        static const char *const keys[] = {"k", "k\"ey", "tab\tkey", "caf\xc3\xa9"};
        int same = 1;

        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            for (size_t len = 240; len <= 260; len++) {
                struct json_t *tree = json_new_object();
                struct json_text t = {0};
                char *val = malloc(len + 1), *want, *got;

                memset(val, 'a', len);
                val[len] = '\0';
                json_put_string(tree, keys[k], val);
                json_put_int(tree, "n", (long long)len);
                json_put_null(tree, "z");
                want = json_encode(tree);
                json_text_open(&t, NULL, '{');
                json_text_string(&t, keys[k], val);
                json_text_int(&t, "n", (long long)len);
                json_text_null(&t, "z");
                json_text_close(&t, '}');
                got = json_text_finish(&t);
                if (strcmp(want, got) != 0) {
                    fprintf(stderr, "# key %zu, %zu bytes: jansson %s, text writer %s\n", k, len,
                            want, got);
                    same = 0;
                }
                free(want);
                free(got);
                free(val);
                json_free(tree);
            }
        CHECK("long members and keys that need escapes are written as jansson writes them",
              same);
    }
    {
        static const long long ints[] = {0, 1, -1, 9, 10, -10, 99, 100, 1800, -1800,
                                          1764115200, 4294967296LL, 9223372036854775807LL,
                                          -9223372036854775807LL, -9223372036854775807LL - 1};
        int same = 1;

        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
            struct json_t *tree = json_new_object();
            struct json_text t = {0};
            char *want, *got;

            json_put_int(tree, "n", ints[i]);
            want = json_encode(tree);
            json_text_open(&t, NULL, '{');
            json_text_int(&t, "n", ints[i]);
            json_text_close(&t, '}');
            got = json_text_finish(&t);
            if (strcmp(want, got) != 0) {
                fprintf(stderr, "# %lld: jansson %s, text writer %s\n", ints[i], want, got);
                same = 0;
            }
            free(want);
            free(got);
            json_free(tree);
        }
        CHECK("the text writer writes integers as jansson does, zero and both extremes too",
              same);
    }
    {
        struct json_text t = {0};
        char *s1;

        json_text_open(&t, NULL, '[');
        json_text_close(&t, ']');
        s1 = json_text_finish(&t);
        CHECK("an empty array is written as []", strcmp(s1, "[]") == 0);
        free(s1);
    }
    return CHECK_DONE();
}
