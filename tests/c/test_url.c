/* test_url.c - unit tests for core/lib/url.c: accepted URLs with their exact
 * fields, and the parser-differential tricks that must be refused. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "url.h"

static const char *rc_name(int rc)
{
    switch (rc) {
    case URL_OK: return "URL_OK";
    case URL_ETOOLONG: return "URL_ETOOLONG";
    case URL_ECHAR: return "URL_ECHAR";
    case URL_ESCHEME: return "URL_ESCHEME";
    case URL_ENOAUTHORITY: return "URL_ENOAUTHORITY";
    case URL_EUSERINFO: return "URL_EUSERINFO";
    case URL_EHOST: return "URL_EHOST";
    case URL_EPORT: return "URL_EPORT";
    case URL_EFRAGMENT: return "URL_EFRAGMENT";
    case URL_EPATH: return "URL_EPATH";
    }
    return "?";
}

/* raw (len bytes) must fail with exactly want; name labels binary input. */
static void bad_n(const char *name, const char *raw, size_t len, int want)
{
    struct url u;
    char label[320];
    int rc = url_parse(raw, len, &u);

    snprintf(label, sizeof label, "%.250s -> %s", name, rc_name(want));
    CHECK(label, rc == want);
    if (rc != want)
        printf("#   got %s (%d)\n", rc_name(rc), rc);
}

static void bad(const char *raw, int want)
{
    bad_n(raw, raw, strlen(raw), want);
}

/* raw must parse and every field must match. */
static void good(const char *raw, const char *scheme, const char *host,
                 int port, int port_explicit, const char *path,
                 int has_query, const char *query)
{
    struct url u;
    char label[320];
    int rc = url_parse(raw, strlen(raw), &u);

    snprintf(label, sizeof label, "%.250s parses", raw);
    CHECK(label, rc == URL_OK);
    if (rc != URL_OK) {
        printf("#   got %s (%d)\n", rc_name(rc), rc);
        return;
    }
    snprintf(label, sizeof label, "%.250s fields", raw);
    CHECK(label, strcmp(u.scheme, scheme) == 0 && strcmp(u.host, host) == 0 &&
                     u.port == port && u.port_explicit == port_explicit &&
                     strcmp(u.path, path) == 0 && u.has_query == has_query &&
                     strcmp(u.query, query) == 0);
    if (strcmp(u.scheme, scheme) != 0 || strcmp(u.host, host) != 0 ||
        u.port != port || u.port_explicit != port_explicit ||
        strcmp(u.path, path) != 0 || u.has_query != has_query ||
        strcmp(u.query, query) != 0)
        printf("#   got scheme=%s host=%s port=%d explicit=%d path=%.80s "
               "has_query=%d query=%.80s\n", u.scheme, u.host, u.port,
               u.port_explicit, u.path, u.has_query, u.query);
}

static void test_accepts(void)
{
    good("https://example.com", "https", "example.com", 443, 0, "", 0, "");
    good("https://example.com/", "https", "example.com", 443, 0, "/", 0, "");
    good("http://example.com/a/b", "http", "example.com", 80, 0, "/a/b", 0,
         "");
    good("https://shop.example.com/return?session=abc&ok=1", "https",
         "shop.example.com", 443, 0, "/return", 1, "session=abc&ok=1");
    good("https://example.com:8443/x", "https", "example.com", 8443, 1, "/x",
         0, "");
    good("http://example.com:80/", "http", "example.com", 80, 1, "/", 0, "");
    good("https://a.com:1", "https", "a.com", 1, 1, "", 0, "");
    good("https://a.com:65535/", "https", "a.com", 65535, 1, "/", 0, "");
    good("https://a.com:443?x", "https", "a.com", 443, 1, "", 1, "x");
    good("HTTPS://EXAMPLE.COM/Path?Q=V", "https", "example.com", 443, 0,
         "/Path", 1, "Q=V");
    good("HtTp://ExAmPlE.CoM", "http", "example.com", 80, 0, "", 0, "");
    good("https://localhost", "https", "localhost", 443, 0, "", 0, "");
    good("https://a-b.c-d.com", "https", "a-b.c-d.com", 443, 0, "", 0, "");
    good("https://xn--pple-43d.com/", "https", "xn--pple-43d.com", 443, 0,
         "/", 0, "");
    good("https://123.example.com", "https", "123.example.com", 443, 0, "", 0,
         "");
    good("https://1.2.3.4.example", "https", "1.2.3.4.example", 443, 0, "", 0,
         "");
    good("https://0x7f.example", "https", "0x7f.example", 443, 0, "", 0, "");
    good("https://a.1x", "https", "a.1x", 443, 0, "", 0, "");
    /* IPv4, canonical only. */
    good("https://127.0.0.1", "https", "127.0.0.1", 443, 0, "", 0, "");
    good("http://10.0.0.1:8080/cb", "http", "10.0.0.1", 8080, 1, "/cb", 0, "");
    good("https://0.0.0.0", "https", "0.0.0.0", 443, 0, "", 0, "");
    good("https://255.255.255.255/", "https", "255.255.255.255", 443, 0, "/",
         0, "");
    /* IPv6 literals keep their brackets, lower-cased. */
    good("https://[::1]", "https", "[::1]", 443, 0, "", 0, "");
    good("https://[::1]:8443/x?y", "https", "[::1]", 8443, 1, "/x", 1, "y");
    good("https://[2001:DB8::A]/", "https", "[2001:db8::a]", 443, 0, "/", 0,
         "");
    /* Other spellings of an IPv6 address: browsers rewrite them to the
     * canonical one, so a string compare in a policy would miss them. */
    bad("https://[::ffff:127.0.0.1]", URL_EHOST);
    bad("https://[2001:0db8:0000:0000:0000:ff00:0042:8329]", URL_EHOST);
    bad("https://[0::1]", URL_EHOST);
    bad("https://[::0:1]", URL_EHOST);
    good("https://[2001:db8::ff00:42:8329]", "https", "[2001:db8::ff00:42:8329]", 443, 0,
         "", 0, "");
    /* Web URLs only: browsers parse other schemes differently. */
    bad("ftp://a.com/f", URL_ESCHEME);
    bad("file://localhost/etc/passwd", URL_ESCHEME);
    bad("git+ssh://a.com:22", URL_ESCHEME);
    bad("A1+-.z://a.com", URL_ESCHEME);
    bad("httpx://a.com", URL_ESCHEME);
    good("HtTp://a.com", "http", "a.com", 80, 0, "", 0, "");
    /* Path and query copied verbatim: not decoded, not normalized. */
    good("https://a.com/a%2Fb", "https", "a.com", 443, 0, "/a%2Fb", 0, "");
    good("https://a.com/a%2fb/../c/./d", "https", "a.com", 443, 0,
         "/a%2fb/../c/./d", 0, "");
    good("https://a.com//x", "https", "a.com", 443, 0, "//x", 0, "");
    good("https://a.com/~u/-._!$&'()*+,;=:@", "https", "a.com", 443, 0,
         "/~u/-._!$&'()*+,;=:@", 0, "");
    good("https://a.com/@b.com", "https", "a.com", 443, 0, "/@b.com", 0, "");
    good("https://a.com?@b.com", "https", "a.com", 443, 0, "", 1, "@b.com");
    good("https://a.com/p?", "https", "a.com", 443, 0, "/p", 1, "");
    good("https://a.com?", "https", "a.com", 443, 0, "", 1, "");
    good("https://a.com/p?a?b/c=d", "https", "a.com", 443, 0, "/p", 1,
         "a?b/c=d");
    good("https://a.com/p?next=https://b.com/%3F", "https", "a.com", 443, 0,
         "/p", 1, "next=https://b.com/%3F");
    good("https://a.com/%41%7e%FF", "https", "a.com", 443, 0, "/%41%7e%FF", 0,
         "");
}

static void test_lengths(void)
{
    static char buf[HF_URL_MAX + 2];
    static struct url u;
    const char *prefix = "https://a.com/";
    size_t pl = strlen(prefix);
    int rc;

    bad("", URL_ETOOLONG);
    CHECK("NULL with len 0 -> URL_ETOOLONG",
          url_parse(NULL, 0, &u) == URL_ETOOLONG);
    CHECK("non-empty string with len 0 -> URL_ETOOLONG",
          url_parse("https://a.com", 0, &u) == URL_ETOOLONG);

    memcpy(buf, prefix, pl);
    memset(buf + pl, 'a', sizeof buf - pl);
    rc = url_parse(buf, HF_URL_MAX, &u);
    CHECK("2048-byte URL -> URL_OK", rc == URL_OK);
    CHECK("2048-byte URL path length", rc == URL_OK &&
          strlen(u.path) == HF_URL_MAX - pl + 1 && u.path[0] == '/');
    CHECK("2049-byte URL -> URL_ETOOLONG",
          url_parse(buf, HF_URL_MAX + 1, &u) == URL_ETOOLONG);
    buf[HF_URL_MAX] = ' ';
    CHECK("2049-byte URL with a space: length wins -> URL_ETOOLONG",
          url_parse(buf, HF_URL_MAX + 1, &u) == URL_ETOOLONG);

    /* A 2048-byte query: longest possible query field. */
    memcpy(buf, "https://a.com?", 14);
    memset(buf + 14, 'q', HF_URL_MAX - 14);
    rc = url_parse(buf, HF_URL_MAX, &u);
    CHECK("2048-byte URL, long query -> URL_OK", rc == URL_OK &&
          u.has_query && strlen(u.query) == HF_URL_MAX - 14 &&
          u.path[0] == '\0');

    /* Only len bytes are read: the trailing "/evil" is outside. */
    rc = url_parse("https://a.com/evil", 13, &u);
    CHECK("len shorter than string stops at len", rc == URL_OK &&
          strcmp(u.host, "a.com") == 0 && strcmp(u.path, "") == 0);
    /* An escape cut by len is incomplete even if the bytes after are hex. */
    CHECK("escape cut by len -> URL_EPATH",
          url_parse("https://a.com/a%41", 17, &u) == URL_EPATH);
    CHECK("escape cut by len in query -> URL_EPATH",
          url_parse("https://a.com?%41", 16, &u) == URL_EPATH);
    rc = url_parse("https://a.com:4431", 17, &u);
    CHECK("len cuts the port", rc == URL_OK && u.port == 443 &&
          u.port_explicit == 1);

    /* Not NUL-terminated (heap buffer so ASan catches any over-read). */
    {
        const char *s = "https://a.com/x?y";
        size_t n = strlen(s);
        char *h = malloc(n);
        if (h) {
            memcpy(h, s, n);
            rc = url_parse(h, n, &u);
            CHECK("unterminated buffer parses", rc == URL_OK &&
                  strcmp(u.path, "/x") == 0 && strcmp(u.query, "y") == 0);
            rc = url_parse(h, 9, &u); /* "https://a" */
            CHECK("unterminated buffer cut after host", rc == URL_OK &&
                  strcmp(u.host, "a") == 0);
            rc = url_parse(h, 8, &u); /* "https://" */
            CHECK("unterminated buffer, empty host -> URL_EHOST",
                  rc == URL_EHOST);
            free(h);
        }
    }
}

static void test_chars(void)
{
    bad("https://a.com\\@b.com", URL_ECHAR);
    bad("https://a.com\\b.com", URL_ECHAR);
    bad("https://a.com/\\\\b.com", URL_ECHAR);
    bad_n("https://a.com<TAB>.b.com", "https://a.com\t.b.com", 20, URL_ECHAR);
    bad("https://a.com .b.com", URL_ECHAR);
    bad(" https://a.com", URL_ECHAR);
    bad("https://a.com ", URL_ECHAR);
    bad_n("https://a.com<CR><LF>", "https://a.com\r\n", 15, URL_ECHAR);
    bad_n("https://a.com/<LF>x", "https://a.com/\nx", 16, URL_ECHAR);
    bad_n("https://a.com<NUL>.b.com", "https://a.com\0.b.com", 20, URL_ECHAR);
    bad_n("<NUL>https://a.com", "\0https://a.com", 14, URL_ECHAR);
    bad_n("https://a.com/<NUL>", "https://a.com/\0", 15, URL_ECHAR);
    bad_n("https://a.com/<DEL>", "https://a.com/\x7f", 15, URL_ECHAR);
    bad_n("https://a.com/<0x1f>", "https://a.com/\x1f", 15, URL_ECHAR);
    bad_n("https://caf<UTF-8 e-acute>.com", "https://caf\xc3\xa9.com", 17,
          URL_ECHAR);
    bad_n("https://<Cyrillic a>pple.com (homograph)",
          "https://\xd0\xb0pple.com", 18, URL_ECHAR);
    bad_n("https://a.com/<UTF-8 e-acute>", "https://a.com/\xc3\xa9", 16,
          URL_ECHAR);
    bad_n("https://a.com<FULLWIDTH SOLIDUS>b.com",
          "https://a.com\xef\xbc\x8f" "b.com", 21, URL_ECHAR);
    bad_n("https://a.com/<0x80>", "https://a.com/\x80", 15, URL_ECHAR);
    bad_n("https://a.com/<0xff>", "https://a.com/\xff", 15, URL_ECHAR);
    /* Bytes are checked before structure and before '#'. */
    bad("https://a.com/ #", URL_ECHAR);
    bad("java script:alert(1)", URL_ECHAR);
}

static void test_fragment(void)
{
    bad("https://a.com#", URL_EFRAGMENT);
    bad("https://a.com/#", URL_EFRAGMENT);
    bad("https://a.com/#x", URL_EFRAGMENT);
    bad("https://a.com/p?q#x", URL_EFRAGMENT);
    bad("https://a.com#@b.com", URL_EFRAGMENT);
    bad("#https://a.com", URL_EFRAGMENT);
}

static void test_scheme(void)
{
    bad("//a.com", URL_ESCHEME);
    bad("/path", URL_ESCHEME);
    bad("a.com", URL_ESCHEME);
    bad("a.com/x:y", URL_ESCHEME);
    bad("://a.com", URL_ESCHEME);
    bad("1https://a.com", URL_ESCHEME);
    bad("+https://a.com", URL_ESCHEME);
    bad("ht_tp://a.com", URL_ESCHEME);
    bad("https//a.com", URL_ESCHEME);
    bad("https", URL_ESCHEME);
    bad("abcdefghijklmnopqrstuvwxyzabcdef://a.com", URL_ESCHEME); /* 32 */
    bad("?https://a.com", URL_ESCHEME);
}

static void test_authority(void)
{
    bad("https:b.com", URL_ENOAUTHORITY);
    bad("https:/b.com", URL_ENOAUTHORITY);
    bad("https:", URL_ENOAUTHORITY);
    bad("https:/", URL_ENOAUTHORITY);
    bad("javascript:alert(1)", URL_ESCHEME);
    bad("JavaScript:alert(1)//", URL_ESCHEME);
    bad("data:text/html,x", URL_ESCHEME);
    bad("mailto:a@b.com", URL_ESCHEME);
    bad("https:?//a.com", URL_ENOAUTHORITY);

    bad("https://user:pass@a.com", URL_EUSERINFO);
    bad("https://@a.com", URL_EUSERINFO);
    bad("https://a.com@b.com", URL_EUSERINFO);
    bad("https://user@a.com/", URL_EUSERINFO);
    bad("https://a.com:443@b.com", URL_EUSERINFO);
    bad("https://[::1]@a.com", URL_EUSERINFO);
    bad("https://a.com@", URL_EUSERINFO);
}

static void test_host(void)
{
    char host[300], url[320];

    bad("https://a.com%2eb.com", URL_EHOST);
    bad("https://%61.com", URL_EHOST);
    bad("https://a.com%", URL_EHOST);
    bad("https://", URL_EHOST);
    bad("https:///path", URL_EHOST);
    bad("https://?q", URL_EHOST);
    bad("https://:443", URL_EHOST);
    bad("https://a..com", URL_EHOST);
    bad("https://.a.com", URL_EHOST);
    bad("https://a.com.", URL_EHOST);
    bad("https://.", URL_EHOST);
    bad("https://-a.com", URL_EHOST);
    bad("https://a-.com", URL_EHOST);
    bad("https://a.-b.com", URL_EHOST);
    bad("https://a.com-", URL_EHOST);
    bad("https://a_b.com", URL_EHOST);
    bad("https://a.com;b.com", URL_EHOST);
    bad("https://a.com!", URL_EHOST);
    bad("https://a.com*", URL_EHOST);
    bad("https://a[b].com", URL_EHOST);

    /* Numeric hosts WHATWG would reinterpret as IPv4. */
    bad("https://2130706433", URL_EHOST);
    bad("https://0x7f.1", URL_EHOST);
    bad("https://0x7f000001", URL_EHOST);
    bad("https://127.1", URL_EHOST);
    bad("https://127.0.1", URL_EHOST);
    bad("https://0177.0.0.1", URL_EHOST);
    bad("https://127.0.0.01", URL_EHOST);
    bad("https://0X7F.0.0.1", URL_EHOST);
    bad("https://127.0.0.0x1", URL_EHOST);
    bad("https://127.0.0.0X1", URL_EHOST);
    bad("https://256.0.0.1", URL_EHOST);
    bad("https://1.2.3.256", URL_EHOST);
    bad("https://1234.0.0.1", URL_EHOST);
    bad("https://1.2.3.4.5", URL_EHOST);
    bad("https://a.1", URL_EHOST);
    bad("https://example.123", URL_EHOST);
    bad("https://0x", URL_EHOST);
    bad("https://a.0xg", URL_EHOST);
    bad("https://00.0.0.0", URL_EHOST);

    /* IPv6 literals. */
    bad("https://[::1%25eth0]", URL_EHOST);
    bad("https://[fe80::1%eth0]", URL_EHOST);
    bad("https://[zz]", URL_EHOST);
    bad("https://[]", URL_EHOST);
    bad("https://[", URL_EHOST);
    bad("https://[::1", URL_EHOST);
    bad("https://[::1]x", URL_EHOST);
    bad("https://[::1]]", URL_EHOST);
    bad("https://[::1].a.com", URL_EHOST);
    bad("https://a[::1]", URL_EHOST);
    bad("https://::1", URL_EHOST);
    bad("https://[1.2.3.4]", URL_EHOST);
    bad("https://[1::2::3]", URL_EHOST);
    bad("https://[v1.abc]", URL_EHOST);
    bad("https://[0000:0000:0000:0000:0000:0000:0000:0000:0000]", URL_EHOST);

    /* Label and name length limits. */
    memset(host, 'a', 63);
    host[63] = '\0';
    snprintf(url, sizeof url, "https://%s.com", host);
    good(url, "https", strchr(url, 'a'), 443, 0, "", 0, "");
    memset(host, 'a', 64);
    host[64] = '\0';
    snprintf(url, sizeof url, "https://%s.com", host);
    bad_n("https://<64-char label>.com", url, strlen(url), URL_EHOST);

    /* 63+1+63+1+63+1+61 = 253 bytes: the longest allowed name. */
    memset(host, 'b', 253);
    host[63] = host[127] = host[191] = '.';
    host[253] = '\0';
    snprintf(url, sizeof url, "https://%s", host);
    good(url, "https", host, 443, 0, "", 0, "");
    memset(host, 'b', 254);
    host[63] = host[127] = host[191] = '.';
    host[254] = '\0';
    snprintf(url, sizeof url, "https://%s", host);
    bad_n("https://<254-char host>", url, strlen(url), URL_EHOST);
}

static void test_port(void)
{
    bad("https://a.com:0", URL_EPORT);
    bad("https://a.com:00", URL_EPORT);
    bad("https://a.com:65536", URL_EPORT);
    bad("https://a.com:131073", URL_EPORT);      /* 65537 + 65536 */
    bad("https://a.com:4294967739", URL_EPORT);  /* 2^32 + 443 */
    bad("https://a.com:18446744073709552059", URL_EPORT); /* 2^64 + 443 */
    bad("https://a.com:99999999999999999999", URL_EPORT); /* 20 digits */
    bad("https://a.com:99999", URL_EPORT);
    bad("https://a.com:", URL_EPORT);
    bad("https://a.com:/", URL_EPORT);
    bad("https://a.com:?x", URL_EPORT);
    bad("https://a.com:0443", URL_EPORT);
    bad("https://a.com:00443", URL_EPORT);
    bad("https://a.com:+443", URL_EPORT);
    bad("https://a.com:-1", URL_EPORT);
    bad("https://a.com:80a", URL_EPORT);
    bad("https://a.com:0x50", URL_EPORT);
    bad("https://a.com:443:1", URL_EPORT);
    bad("https://a.com::443", URL_EPORT);
    bad("https://a.com:1.5", URL_EPORT);
    bad("https://[::1]:", URL_EPORT);
    bad("https://[::1]:0", URL_EPORT);
    bad("https://[::1]:65536", URL_EPORT);
}

static void test_path(void)
{
    bad("https://a.com/p?q=<script>", URL_EPATH);
    bad("https://a.com/<script>", URL_EPATH);
    bad("https://a.com/a%zz", URL_EPATH);
    bad("https://a.com/a%4", URL_EPATH);
    bad("https://a.com/a%4/", URL_EPATH);
    bad("https://a.com/a%", URL_EPATH);
    bad("https://a.com/%g0", URL_EPATH);
    bad("https://a.com/?q=%2", URL_EPATH);
    bad("https://a.com/?q=%", URL_EPATH);
    bad("https://a.com/\"", URL_EPATH);
    bad("https://a.com/>", URL_EPATH);
    bad("https://a.com/^", URL_EPATH);
    bad("https://a.com/`", URL_EPATH);
    bad("https://a.com/{", URL_EPATH);
    bad("https://a.com/|", URL_EPATH);
    bad("https://a.com/}", URL_EPATH);
    bad("https://a.com/[", URL_EPATH);
    bad("https://a.com/]", URL_EPATH);
    bad("https://a.com?q=|", URL_EPATH);
    bad("https://a.com?q={}", URL_EPATH);
}

static void test_strerror(void)
{
    static const int codes[] = {
        URL_OK, URL_ETOOLONG, URL_ECHAR, URL_ESCHEME, URL_ENOAUTHORITY,
        URL_EUSERINFO, URL_EHOST, URL_EPORT, URL_EFRAGMENT, URL_EPATH,
    };
    size_t n = sizeof codes / sizeof codes[0];
    int distinct = 1, nonempty = 1;

    for (size_t i = 0; i < n; i++) {
        const char *s = url_strerror(codes[i]);
        if (!s || !*s)
            nonempty = 0;
        for (size_t j = 0; j < i; j++)
            if (s && strcmp(s, url_strerror(codes[j])) == 0)
                distinct = 0;
    }
    CHECK("url_strerror: every code has a message", nonempty);
    CHECK("url_strerror: messages are distinct", distinct);
    CHECK("url_strerror: unknown code", url_strerror(-99) != NULL &&
          strcmp(url_strerror(-99), url_strerror(URL_EHOST)) != 0);
    CHECK("url_strerror: positive code", url_strerror(7) != NULL);
}

/* raw's origin must be exactly want. */
static void origin(const char *raw, const char *want)
{
    struct url u;
    char label[320];
    int rc = url_parse(raw, strlen(raw), &u);

    snprintf(label, sizeof label, "%.150s has origin %.150s", raw, want);
    CHECK(label, rc == URL_OK && strcmp(u.origin, want) == 0);
    if (rc != URL_OK || strcmp(u.origin, want) != 0)
        printf("#   got %s, origin \"%s\"\n", rc_name(rc), rc == URL_OK ? u.origin : "");
}

static void test_origin(void)
{
    /* the scheme's default port is left out, spelled or not */
    origin("https://shop.example.com/back?x=1", "https://shop.example.com");
    origin("https://shop.example.com:443/back", "https://shop.example.com");
    origin("http://shop.example.com:80", "http://shop.example.com");
    /* any other port is kept, the other scheme's default too */
    origin("https://shop.example.com:8443/back", "https://shop.example.com:8443");
    origin("http://shop.example.com:443/", "http://shop.example.com:443");
    origin("https://shop.example.com:80/", "https://shop.example.com:80");
    /* lower-cased as parsed; nothing of the path or query */
    origin("HTTPS://Shop.Example.COM/A?b=C", "https://shop.example.com");
    origin("https://a.example?@evil.example", "https://a.example");
    /* IPv6 keeps its brackets, with and without a port */
    origin("http://[::1]/x", "http://[::1]");
    origin("http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080");
    origin("http://127.0.0.1:8080", "http://127.0.0.1:8080");
    /* userinfo is refused, so it can never reach an origin */
    bad("https://user:pass@shop.example.com/", URL_EUSERINFO);
    bad("https://user@shop.example.com/", URL_EUSERINFO);
    /* the longest host still fits */
    {
        char raw[HF_URL_MAX], want[HF_URL_ORIGIN_MAX + 1];
        char host[HF_URL_HOST_MAX + 1];
        size_t n = 0;

        while (n + 64 <= HF_URL_HOST_MAX) { /* 63-byte labels and dots: 253 bytes */
            memset(host + n, 'a', 63);
            host[n + 63] = '.';
            n += 64;
        }
        memset(host + n, 'b', HF_URL_HOST_MAX - n);
        host[HF_URL_HOST_MAX] = '\0';
        snprintf(raw, sizeof raw, "https://%s:65535/p", host);
        snprintf(want, sizeof want, "https://%s:65535", host);
        origin(raw, want);
    }
}

int main(void)
{
    test_accepts();
    test_lengths();
    test_chars();
    test_fragment();
    test_scheme();
    test_authority();
    test_host();
    test_port();
    test_path();
    test_strerror();
    test_origin();
    return CHECK_DONE();
}
