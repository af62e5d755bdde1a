/* json.c - JSON in and out: the only user of jansson. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "err.h"

static json_t *must(json_t *v)
{
    if (!v) {
        fputs("hostflow: out of memory\n", stderr);
        abort();
    }
    return v;
}

/* 1 when v nests no deeper than limit (a scalar has depth 0). */
static int depth_ok(const json_t *v, int limit)
{
    const char *key;
    json_t *child;
    size_t i;

    if (!json_is_object(v) && !json_is_array(v))
        return 1;
    if (limit == 0)
        return 0;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, child)
            if (!depth_ok(child, limit - 1))
                return 0;
    } else {
        json_array_foreach(v, i, child)
            if (!depth_ok(child, limit - 1))
                return 0;
    }
    return 1;
}

/* 1 when brackets outside strings nest deeper than limit. Run before the
 * parser, whose recursion would otherwise meet hostile depth on a worker
 * thread's small stack. Not a validator: the parser still decides. */
static int nesting_exceeds(const char *buf, size_t len, int limit)
{
    int depth = 0, in_string = 0;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];

        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > limit)
                return 1;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

/* 1 for a byte a JSON string must escape. */
static int must_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* ---- the fast path ----------------------------------------------------
 * Nearly every request body is one flat object of short ASCII strings.
 * jansson's lexer reads it a byte at a time through a stream (about 0.9 us
 * for a session create's 80 bytes, the largest step of its parse); this
 * reads that shape directly and builds the same tree. Anything it does not
 * know - escapes, bytes outside printable ASCII, numbers, arrays, nested
 * objects, a repeated key, any syntax error - gives NULL, and jansson
 * parses the body as before, and words the refusal. */

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* After optional whitespace, the byte c: 1 with *p past it; else 0. */
static int take(const char **p, const char *end, char c)
{
    *p = skip_space(*p, end);
    if (*p >= end || **p != c)
        return 0;
    (*p)++;
    return 1;
}

/* After optional whitespace, a '"' string of printable ASCII without
 * '\\': its length, with *start at its first character and *p after the
 * closing quote; -1 for anything else. */
static long plain_string(const char **p, const char *end, const char **start)
{
    const char *q;

    if (!take(p, end, '"'))
        return -1;
    for (q = *start = *p; q < end && *q != '"'; q++)
        if (must_escape((unsigned char)*q) || (unsigned char)*q > 0x7e)
            return -1;
    if (q >= end)
        return -1;
    *p = q + 1;
    return (long)(q - *start);
}

/* A literal word: *next after it, or NULL. */
static json_t *plain_word(const char *p, const char *end, const char **next)
{
    static const struct {
        const char *word;
        size_t len;
    } words[] = {{"true", 4}, {"false", 5}, {"null", 4}};

    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if ((size_t)(end - p) >= words[i].len &&
            memcmp(p, words[i].word, words[i].len) == 0) {
            *next = p + words[i].len;
            return i == 0 ? json_true() : i == 1 ? json_false() : json_null();
        }
    return NULL;
}

json_t *json_parse_flat(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len, *key, *start;
    json_t *obj = json_object(), *value;
    long keylen, n;

    if (!obj)
        return NULL;
    if (!take(&p, end, '{'))
        goto other;
    if (take(&p, end, '}'))
        goto closed;
    for (;;) {
        if ((keylen = plain_string(&p, end, &key)) < 0 || !take(&p, end, ':'))
            goto other;
        p = skip_space(p, end);
        if (p < end && *p == '"') {
            if ((n = plain_string(&p, end, &start)) < 0)
                goto other;
            value = json_stringn_nocheck(start, (size_t)n);
        } else if (!(value = plain_word(p, end, &p))) {
            goto other;
        }
        if (!value)
            goto other;
        if (json_object_getn(obj, key, (size_t)keylen)) {
            json_decref(value); /* a repeated key: jansson words the error */
            goto other;
        }
        if (json_object_setn_new_nocheck(obj, key, (size_t)keylen, value) != 0)
            goto other; /* it has dropped value */
        if (take(&p, end, ','))
            continue;
        if (take(&p, end, '}'))
            break;
        goto other;
    }
closed:
    if (skip_space(p, end) == end)
        return obj;
other:
    json_decref(obj);
    return NULL;
}

int json_parse_body(const char *buf, size_t len, json_t **out, char *err,
                    size_t errlen)
{
    json_error_t jerr;
    json_t *v;

    if ((*out = json_parse_flat(buf, len)))
        return 0;
    if (nesting_exceeds(buf, len, HF_JSON_MAX_DEPTH + 1)) {
        snprintf(err, errlen, "Request body nests deeper than %d levels.",
                 HF_JSON_MAX_DEPTH);
        return HF_EINVAL;
    }

    /* Jansson validates UTF-8, refuses \u0000 in strings unless asked,
     * and stops at its own depth ceiling before ours is checked. */
    v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        snprintf(err, errlen, "Request body is not valid JSON: %s.", jerr.text);
        return HF_EINVAL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        snprintf(err, errlen, "Request body must be a JSON object.");
        return HF_EINVAL;
    }
    if (!depth_ok(v, HF_JSON_MAX_DEPTH)) {
        json_decref(v);
        snprintf(err, errlen, "Request body nests deeper than %d levels.",
                 HF_JSON_MAX_DEPTH);
        return HF_EINVAL;
    }
    *out = v;
    return 0;
}

void json_free(json_t *v)
{
    if (v)
        json_decref(v);
}

int json_member_string(const json_t *obj, const char *key, const char **out)
{
    json_t *v = json_object_get(obj, key);

    if (!v || json_is_null(v))
        return HF_ENOTFOUND;
    if (!json_is_string(v))
        return HF_EINVAL;
    *out = json_string_value(v);
    return 0;
}

int json_member_int(const json_t *obj, const char *key, long long *out)
{
    json_t *v = json_object_get(obj, key);

    if (!v || json_is_null(v))
        return HF_ENOTFOUND;
    if (!json_is_integer(v))
        return HF_EINVAL;
    *out = (long long)json_integer_value(v);
    return 0;
}

int json_member_array_string(const json_t *obj, const char *key, size_t i,
                             const char **out)
{
    json_t *a = json_object_get(obj, key), *v;

    if (!a || json_is_null(a))
        return HF_ENOTFOUND;
    if (!json_is_array(a))
        return HF_EINVAL;
    if (i >= json_array_size(a))
        return HF_ENOTFOUND;
    v = json_array_get(a, i);
    if (!json_is_string(v))
        return HF_EINVAL;
    *out = json_string_value(v);
    return 0;
}

json_t *json_new_object(void)
{
    return must(json_object());
}

json_t *json_new_array(void)
{
    return must(json_array());
}

static json_t *string_or_null(const char *v)
{
    /* values handed to us are checked UTF-8 already; fall back to null
     * rather than emit something invalid */
    json_t *s;

    if (!v)
        return must(json_null());
    s = json_string(v);
    return s ? s : must(json_null());
}

void json_put_string(json_t *obj, const char *key, const char *v)
{
    json_object_set_new(obj, key, string_or_null(v));
}

void json_put_int(json_t *obj, const char *key, long long v)
{
    json_object_set_new(obj, key, must(json_integer(v)));
}

void json_put_bool(json_t *obj, const char *key, int v)
{
    json_object_set_new(obj, key, must(json_boolean(v)));
}

void json_put_null(json_t *obj, const char *key)
{
    json_object_set_new(obj, key, must(json_null()));
}

void json_put(json_t *obj, const char *key, json_t *child)
{
    json_object_set_new(obj, key, child);
}

void json_push(json_t *arr, json_t *child)
{
    json_array_append_new(arr, child);
}

void json_push_string(json_t *arr, const char *v)
{
    json_array_append_new(arr, string_or_null(v));
}

/* ---- encoding ---------------------------------------------------------
 * The tree is walked here rather than by json_dumps, which for its loop
 * check formats every object's address and keeps it in a hash table (a
 * fifth of a response's cost). The output is byte for byte jansson's
 * compact encoding (fuzz_json compares the two on every input); a tree
 * holding a real is left to jansson, whose number formatting is its own. */

static void out_bytes(struct json_text *o, const char *s, size_t n)
{
    buf_put(&o->out, s, n);
}

/* A JSON string: '"' and '\\' escaped, control characters as jansson
 * writes them; other bytes (valid UTF-8: jansson checked it) as they are. */
static void out_string(struct json_text *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t run = 0;

    out_bytes(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t len = 6;

        if (!must_escape(c))
            continue; /* the common case: runs are copied whole */
        out_bytes(o, s + run, i - run);
        run = i + 1;
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 15];
        switch (c) {
        case '"': case '\\': esc[1] = (char)c; len = 2; break;
        case '\b': esc[1] = 'b'; len = 2; break;
        case '\f': esc[1] = 'f'; len = 2; break;
        case '\n': esc[1] = 'n'; len = 2; break;
        case '\r': esc[1] = 'r'; len = 2; break;
        case '\t': esc[1] = 't'; len = 2; break;
        default: break;
        }
        out_bytes(o, esc, len);
    }
    out_bytes(o, s + run, n - run);
    out_bytes(o, "\"", 1);
}

_Static_assert(sizeof(json_int_t) == sizeof(long long), "jansson integers are long long");

/* v in decimal as jansson writes it ("%lld"), backwards from end;
 * returns where it starts. */
static char *int_text(char *end, long long v)
{
    char *p = end;
    /* digits from the magnitude as unsigned: LLONG_MIN has no positive twin */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return p;
}

static void out_int(struct json_text *o, long long v)
{
    char num[24], *p = int_text(num + sizeof num, v);

    out_bytes(o, p, (size_t)(num + sizeof num - p));
}

/* 0, or -1 when v holds a real. */
static int out_value(struct json_text *o, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        out_bytes(o, "{", 1);
        for (void *first = json_object_iter((json_t *)v), *it = first; it;
             it = json_object_iter_next((json_t *)v, it)) {
            if (it != first)
                out_bytes(o, ",", 1);
            out_string(o, json_object_iter_key(it), json_object_iter_key_len(it));
            out_bytes(o, ":", 1);
            if (out_value(o, json_object_iter_value(it)) != 0)
                return -1;
        }
        out_bytes(o, "}", 1);
        return 0;
    case JSON_ARRAY:
        out_bytes(o, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0)
                out_bytes(o, ",", 1);
            if (out_value(o, json_array_get(v, i)) != 0)
                return -1;
        }
        out_bytes(o, "]", 1);
        return 0;
    case JSON_STRING:
        out_string(o, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
        out_int(o, json_integer_value(v));
        return 0;
    case JSON_TRUE:
        out_bytes(o, "true", 4);
        return 0;
    case JSON_FALSE:
        out_bytes(o, "false", 5);
        return 0;
    case JSON_NULL:
        out_bytes(o, "null", 4);
        return 0;
    default:
        return -1;
    }
}

char *json_encode(const json_t *v)
{
    struct json_text o = {{NULL, 0, 0}, 1};
    char *s;

    if (out_value(&o, v) == 0)
        return o.out.data;
    free(o.out.data);
    s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!s) {
        fputs("hostflow: out of memory\n", stderr);
        abort();
    }
    return s;
}

int json_utf8_ok(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;

    for (size_t i = 0; i < n;) {
        unsigned c = u[i], len, cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            len = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            len = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            len = 4, cp = c & 0x07;
        else
            return 0;
        if (i + len > n)
            return 0;
        for (unsigned k = 1; k < len; k++) {
            if ((u[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (u[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += len;
    }
    return 1;
}

/* 1 when a comma must come before the next value, which is then no
 * longer the first of its object or array. */
static int comma_first(struct json_text *t)
{
    int comma;

    if (!t->out.data)
        t->first = 1; /* a zeroed struct: the outermost value comes first */
    comma = !t->first;
    t->first = 0;
    return comma;
}

/* 1 when s needs neither escapes nor a UTF-8 check: printable ASCII
 * (and DEL, which JSON leaves as it is). */
static int plain_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (must_escape(c) || c >= 0x80)
            return 0;
    }
    return 1;
}

/* Write a member - its comma, "key": and value, quoted when quote is set
 * - with one put, when key and value are plain ASCII and it fits (nearly
 * every member of a response: a put per piece was most of the writer's
 * work); 0, having written nothing, when the caller must go piece by
 * piece. */
static int put_member(struct json_text *t, const char *key, const char *v, size_t n,
                      int quote)
{
    size_t kn = key ? strlen(key) : 0, k = 0;
    char m[256];

    if (kn + n + 6 > sizeof m || !plain_ascii(key ? key : "", kn) ||
        (quote && !plain_ascii(v, n)))
        return 0;
    if (comma_first(t))
        m[k++] = ',';
    if (key) {
        m[k++] = '"';
        memcpy(m + k, key, kn);
        k += kn;
        m[k++] = '"';
        m[k++] = ':';
    }
    if (quote)
        m[k++] = '"';
    memcpy(m + k, v, n);
    k += n;
    if (quote)
        m[k++] = '"';
    out_bytes(t, m, k);
    return 1;
}

/* The separator and key before a member or element. */
static void text_key(struct json_text *t, const char *key)
{
    if (put_member(t, key, "", 0, 0))
        return;
    if (comma_first(t))
        out_bytes(t, ",", 1);
    if (key) {
        out_string(t, key, strlen(key));
        out_bytes(t, ":", 1);
    }
}

void json_text_open(struct json_text *t, const char *key, char bracket)
{
    text_key(t, key);
    out_bytes(t, &bracket, 1);
    t->first = 1;
}

void json_text_close(struct json_text *t, char bracket)
{
    out_bytes(t, &bracket, 1);
    t->first = 0;
}

void json_text_string(struct json_text *t, const char *key, const char *v)
{
    size_t n = v ? strlen(v) : 0;

    if (v && put_member(t, key, v, n, 1))
        return;
    text_key(t, key);
    if (v && json_utf8_ok(v, n))
        out_string(t, v, n);
    else
        out_bytes(t, "null", 4);
}

void json_text_int(struct json_text *t, const char *key, long long v)
{
    char num[24], *p = int_text(num + sizeof num, v);
    size_t n = (size_t)(num + sizeof num - p);

    if (put_member(t, key, p, n, 0))
        return;
    text_key(t, key);
    out_bytes(t, p, n);
}

void json_text_null(struct json_text *t, const char *key)
{
    if (put_member(t, key, "null", 4, 0))
        return;
    text_key(t, key);
    out_bytes(t, "null", 4);
}

char *json_text_finish(struct json_text *t)
{
    char *s;

    out_bytes(t, "", 0); /* the buffer, for an empty text */
    s = t->out.data;
    t->out.data = NULL;
    return s;
}
