/* test_policy.c - the policy engine on real Lua states: generations and
 * reload, examples, per-tenant overrides, the sandbox, and every limit. */
#define _POSIX_C_SOURCE 200809L
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "log.h"
#include "policy.h"
#include "policy_source.h"

static char dir[64], file[128], pdir[128];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    fputs(text, f);
    fclose(f);
}

static void write_policy(const char *text)
{
    write_file(file, text);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct tenant tenant_a, tenant_b;

static struct policy_ctx ctx_for(const struct tenant *t)
{
    return (struct policy_ctx){.tenant = t, .mode = "live", .contractor_id = "cn_1",
                               .method = "POST", .path = "/api/v1/payment/sessions",
                               .remote_addr = "127.0.0.1", .now = 1700000000};
}

static long asked_instructions; /* what the last ask's call used */

/* check_return_url of raw for tenant t: 1 allow, 0 deny, -1 policy error. */
static int ask(struct policy *p, const struct tenant *t, const char *raw)
{
    struct policy_ctx ctx = ctx_for(t);
    struct policy_verdict v;
    struct url u;
    int rc;

    if (url_parse(raw, strlen(raw), &u) != URL_OK)
        return -2;
    rc = policy_check_return_url(p, raw, &u, &ctx, &v);
    asked_instructions = v.instructions;
    return rc != 0 ? -1 : v.allow;
}

static const char shared_policy[] =
    "local policy = {}\n"
    "function policy.check_return_url(url, ctx)\n"
    "  for _, h in ipairs(ctx.tenant.redirect_hosts) do\n"
    "    if url.scheme == 'https' and url.host == h then return true end\n"
    "  end\n"
    "  return false, 'invalid_return_url', 'no'\n"
    "end\n"
    "policy.examples = { { url = 'https://a.test/', redirect_hosts = { 'a.test' }, allow = true } }\n"
    "return policy\n";

static void test_reload(void)
{
    struct policy_engine *e = NULL;
    struct policy *w = NULL;
    struct policy_status st;
    char err[HF_POLICY_ERROR_MAX], v1[24], msg[HF_POLICY_ERROR_MAX];
    int changed, rc;

    write_policy(shared_policy);
    CHECK("engine loads a valid policy", policy_engine_new(file, pdir, &e, err, sizeof err) == 0);
    CHECK("worker builds a state", policy_sync(e, &w) == 0 && w);
    snprintf(v1, sizeof v1, "%s", policy_version(w));
    CHECK("version is 16 hex digits", strlen(v1) == 16 && strspn(v1, "0123456789abcdef") == 16);
    CHECK("listed host allowed", ask(w, &tenant_a, "https://a.test/x") == 1);

    CHECK("reload of the same texts changes nothing",
          policy_engine_reload(e, &changed, msg, sizeof msg) == 0 && !changed &&
          strcmp(msg, v1) == 0);

    write_policy("local p = {}\nfunction p.check_return_url(url, ctx)\n  return true\nend\n"
                 "return p\n");
    CHECK("reload of new texts activates them",
          policy_engine_reload(e, &changed, msg, sizeof msg) == 0 && changed &&
          strcmp(msg, v1) != 0);
    CHECK("a worker keeps its version until it syncs", strcmp(policy_version(w), v1) == 0 &&
          ask(w, &tenant_a, "https://b.test/") == 0);
    CHECK("sync moves the worker to the new version",
          policy_sync(e, &w) == 0 && strcmp(policy_version(w), msg) == 0 &&
          ask(w, &tenant_a, "https://b.test/") == 1);
    snprintf(v1, sizeof v1, "%s", policy_version(w));

    write_policy("local p = {}\nfunction p.check_return_url(url, ctx\n  return true\nend\nreturn p\n");
    rc = policy_engine_reload(e, &changed, msg, sizeof msg);
    CHECK("a syntax error is refused with file:line", rc == HF_EPOLICY &&
          strstr(msg, "policy.lua:3:") != NULL);
    policy_engine_status(e, &st);
    CHECK("status keeps the old version and shows the error",
          strcmp(st.version, v1) == 0 && st.reloads_failed == 1 &&
          strstr(st.last_error, "policy.lua:3:") && st.last_error_at > 0);
    CHECK("workers keep serving the old version",
          policy_sync(e, &w) == 0 && strcmp(policy_version(w), v1) == 0);

    write_policy("local p = {}\nfunction p.check_return_url(url, ctx)\n  return false\nend\n"
                 "p.examples = { { name = 'must allow', url = 'https://a.test/', allow = true } }\n"
                 "return p\n");
    rc = policy_engine_reload(e, &changed, msg, sizeof msg);
    CHECK("a failing example is refused and named", rc == HF_EPOLICY &&
          strstr(msg, "example 1 (must allow): expected allow, got deny"));

    write_policy("os.execute('touch /tmp/hostflow-pwned')\nreturn { check_return_url = "
                 "function() return true end }\n");
    rc = policy_engine_reload(e, &changed, msg, sizeof msg);
    CHECK("os.execute at load time is refused", rc == HF_EPOLICY && strstr(msg, "execute") &&
          access("/tmp/hostflow-pwned", F_OK) != 0);

    write_policy("return { check_tenant = function() return true end }\n");
    CHECK("a policy without check_return_url is refused",
          policy_engine_reload(e, &changed, msg, sizeof msg) == HF_EPOLICY &&
          strstr(msg, "check_return_url"));
    write_policy("return 42\n");
    CHECK("a policy that returns no table is refused",
          policy_engine_reload(e, &changed, msg, sizeof msg) == HF_EPOLICY);
    write_policy("while true do end\n");
    CHECK("a policy that loops at load time is refused",
          policy_engine_reload(e, &changed, msg, sizeof msg) == HF_EPOLICY &&
          strstr(msg, "policy.lua:1: policy exceeded its instruction budget"));
    write_policy("local s = 'x' for i = 1, 18 do s = s .. s end\nreturn {}\n");
    CHECK("a string over 256 KiB is refused, saying so",
          policy_engine_reload(e, &changed, msg, sizeof msg) == HF_EPOLICY &&
          strstr(msg, "policy made a string over the 256 KiB limit"));
    /* each comparison is one instruction and 128 KiB of memcmp: the CPU
     * time runs out long before the instruction budget */
    write_policy("local s = 'x' for i = 1, 17 do s = s .. s end\n"
                 "local t = s:sub(1, -2) .. 'y'\n"
                 "for i = 1, 1e6 do if s == t or s == t or s == t or s == t then break end end\n"
                 "return {}\n");
    CHECK("comparing long strings stops at the CPU-time limit, saying so",
          policy_engine_reload(e, &changed, msg, sizeof msg) == HF_EPOLICY &&
          strstr(msg, "policy.lua:3: policy exceeded its time limit"));
    policy_engine_status(e, &st);
    CHECK("after every refusal the first good version still runs",
          strcmp(st.version, v1) == 0 && st.reloads_failed == 8 && st.reloads_ok == 1);

    /* many reloads: old generations are freed as workers move on */
    {
        struct mallinfo2 before = {0}, after;
        static const char *const texts[] = {
            "return { check_return_url = function() return true end }\n",
            "return { check_return_url = function() return true end } -- b\n"};

        for (int i = 0; i < 1000; i++) {
            write_policy(texts[i % 2]);
            policy_engine_reload(e, &changed, msg, sizeof msg);
            policy_sync(e, &w);
            if (i == 99)
                before = mallinfo2();
        }
        after = mallinfo2();
        printf("# heap in use after 100 reloads %zu bytes, after 1000 %zu bytes\n",
               before.uordblks, after.uordblks);
        CHECK("heap stays flat over 900 more reloads",
              after.uordblks < before.uordblks + 256 * 1024);
    }
    policy_free(w);
    policy_engine_free(e);
}

/* Borrowed states: the last one given back is lent next; one of an older
 * version or spoiled is never lent again, and a reload closes idle ones. */
static void test_pool(void)
{
    struct policy_engine *e = NULL;
    struct policy *a = NULL, *b = NULL, *c = NULL;
    struct policy_ctx ctx = ctx_for(&tenant_a);
    struct policy_verdict v;
    char err[HF_POLICY_ERROR_MAX], v1[24], msg[HF_POLICY_ERROR_MAX];
    int changed;

    write_policy(shared_policy);
    CHECK("pool: engine loads", policy_engine_new(file, pdir, &e, err, sizeof err) == 0);
    CHECK("pool: two borrowers get two states",
          policy_acquire(e, &a) == 0 && policy_acquire(e, &b) == 0 && a && b && a != b);
    snprintf(v1, sizeof v1, "%s", policy_version(a));
    c = a;
    policy_release(e, &a);
    CHECK("pool: giving back clears the borrower's pointer", a == NULL);
    policy_release(e, &b);
    CHECK("pool: the state given back last is lent first",
          policy_acquire(e, &a) == 0 && a != c && policy_acquire(e, &b) == 0 && b == c);
    policy_release(e, &b);
    policy_release(e, &a);

    write_policy("local p = {}\nfunction p.check_return_url(url, ctx)\n  return true\nend\n"
                 "return p\n");
    policy_acquire(e, &b); /* held across the reload */
    CHECK("pool: a new version activates",
          policy_engine_reload(e, &changed, msg, sizeof msg) == 0 && changed);
    CHECK("pool: after a reload a borrower gets the new version",
          policy_acquire(e, &a) == 0 && strcmp(policy_version(a), msg) == 0 &&
          ask(a, &tenant_a, "https://b.test/") == 1);
    CHECK("pool: a request that borrowed before the reload finishes on the old version",
          strcmp(policy_version(b), v1) == 0 && ask(b, &tenant_a, "https://b.test/") == 0);
    policy_release(e, &b);
    policy_release(e, &a);

    /* n lives in the state: it counts the calls that state has answered */
    write_policy("local p, n = {}, 0\nfunction p.check_return_url(url, ctx)\n  return true\nend\n"
                 "function p.check_tenant(ctx)\n  n = n + 1\n"
                 "  if ctx.contractor.id == 'cn_loop' then while true do end end\n"
                 "  return false, 'call_' .. n\nend\nreturn p\n");
    policy_engine_reload(e, &changed, msg, sizeof msg);
    CHECK("pool: a fresh state answers its first call",
          policy_acquire(e, &a) == 0 && policy_check_tenant(a, &ctx, &v) == 0 &&
          strcmp(v.code, "call_1") == 0);
    policy_release(e, &a);
    CHECK("pool: the same state is lent again, with its locals",
          policy_acquire(e, &a) == 0 && policy_check_tenant(a, &ctx, &v) == 0 &&
          strcmp(v.code, "call_2") == 0);
    ctx.contractor_id = "cn_loop";
    CHECK("pool: a runaway check_tenant fails closed", policy_check_tenant(a, &ctx, &v) == HF_EPOLICY);
    policy_release(e, &a);
    ctx.contractor_id = "cn_1";
    CHECK("pool: the state it spoiled is not lent again",
          policy_acquire(e, &a) == 0 && policy_check_tenant(a, &ctx, &v) == 0 &&
          strcmp(v.code, "call_1") == 0);
    policy_release(e, &a);
    policy_engine_free(e);
}

/* A version (file, module, override) as one bundle and back, as `policy
 * publish` stores it and store-sourced nodes load it. */
static void test_bundle(void)
{
    struct policy_source *src, *back;
    char err[HF_POLICY_ERROR_MAX], *buf;
    size_t len;

    if (policy_source_read(file, pdir, &src, err, sizeof err) != 0) {
        CHECK("the files read as a version", 0);
        return;
    }
    CHECK("a version encodes", policy_source_encode(src, &buf, &len) == 0);
    CHECK("its bundle decodes to the same version, module and override",
          policy_source_decode(buf, len, "store:x", &back, err, sizeof err) == 0 &&
          strcmp(back->version, src->version) == 0 && back->n_modules == 1 &&
          back->n_tenants == 1 && strcmp(back->tenants[0].name, "tn_b") == 0 &&
          strcmp(back->tenants[0].chunkname, "@store:x/tenants/tn_b.lua") == 0 &&
          strcmp(back->main.src, src->main.src) == 0);
    policy_source_free(back);
    buf[len - 2] ^= 1; /* a changed byte still decodes: the version tells */
    CHECK("a changed text is another version",
          policy_source_decode(buf, len, "x", &back, err, sizeof err) == 0 &&
          strcmp(back->version, src->version) != 0);
    policy_source_free(back);
    CHECK("a cut bundle is refused with a sentence",
          policy_source_decode(buf, len - 1, "store:x", &back, err, sizeof err) == HF_EPOLICY &&
          strstr(err, "store:x: not a well-formed policy bundle"));
    free(buf);
    policy_source_free(src);
}

static void test_overrides(void)
{
    struct policy_engine *e = NULL;
    struct policy *w = NULL;
    char err[HF_POLICY_ERROR_MAX], path[256];

    write_policy(shared_policy);
    snprintf(path, sizeof path, "%s/tenants/tn_b.lua", pdir);
    write_file(path, "local shared = ...\n"
                     "return {\n"
                     "  check_return_url = function(url, ctx)\n"
                     "    if url.host == 'staging.b.test' then return true end\n"
                     "    return shared.check_return_url(url, ctx)\n"
                     "  end,\n"
                     "  examples = { { url = 'https://staging.b.test/', allow = true } },\n"
                     "}\n");
    snprintf(path, sizeof path, "%s/hosts.lua", pdir);
    write_file(path, "local M = {}\nfunction M.extra() return 'extra.test' end\nreturn M\n");
    CHECK("engine loads a policy with an override", policy_engine_new(file, pdir, &e, err,
                                                                      sizeof err) == 0);
    policy_sync(e, &w);
    CHECK("override applies to its tenant", ask(w, &tenant_b, "https://staging.b.test/") == 1);
    CHECK("override defers to the shared policy", ask(w, &tenant_b, "https://b.test/") == 1 &&
          ask(w, &tenant_b, "https://evil.test/") == 0);
    CHECK("other tenants are untouched", ask(w, &tenant_a, "https://staging.b.test/") == 0 &&
          ask(w, &tenant_a, "https://a.test/") == 1);
    policy_free(w);
    policy_engine_free(e);
    test_bundle();

    snprintf(path, sizeof path, "%s/tenants/tn_b.lua", pdir);
    write_file(path, "local shared = ...\n"
                     "return { check_return_url = function(url, ctx)\n"
                     "  shared.check_return_url = function() return true end\n"
                     "  return true\n"
                     "end }\n");
    CHECK("engine loads an override that tries to rewrite the shared policy",
          policy_engine_new(file, pdir, &e, err, sizeof err) == 0);
    w = NULL;
    policy_sync(e, &w);
    CHECK("the rewrite fails closed for that tenant", ask(w, &tenant_b, "https://b.test/") == -1);
    policy_sync(e, &w);
    CHECK("and the shared policy still refuses other tenants' unlisted hosts",
          ask(w, &tenant_a, "https://evil.test/") == 0);
    policy_free(w);
    policy_engine_free(e);
    /* a module only some calls require is compiled before the version
     * serves: its syntax error stops the version, not those calls */
    snprintf(path, sizeof path, "%s/later.lua", pdir);
    write_file(path, "local M = {}\nfunction M.f( return M\n");
    write_policy("local p = {}\n"
                 "function p.check_return_url(url, ctx)\n"
                 "  if url.host == 'rare.test' then return require('later').f() end\n"
                 "  return true\n"
                 "end\n"
                 "return p\n");
    CHECK("a module with a syntax error is refused though nothing required it yet",
          policy_engine_new(file, pdir, &e, err, sizeof err) == HF_EPOLICY &&
          strstr(err, "later.lua:2:"));
    write_file(path, "leaked3 = true\nreturn {}\n");
    CHECK("so is one whose top level sets a global, with its line and the name",
          policy_engine_new(file, pdir, &e, err, sizeof err) == HF_EPOLICY &&
          strstr(err, "later.lua:1:") && strstr(err, "cannot set the global 'leaked3'"));
    write_file(path, "error('broken on purpose')\n");
    CHECK("and one whose top level fails",
          policy_engine_new(file, pdir, &e, err, sizeof err) == HF_EPOLICY &&
          strstr(err, "broken on purpose"));
    {   /* a literal over the string limit: refused while compiling, saying why */
        size_t n = 300u << 10;
        char *text = malloc(n + 32);
        int written = text != NULL;

        if (text) {
            memcpy(text, "local s = [[", 12);
            memset(text + 12, 'x', n);
            strcpy(text + 12 + n, "]]\nreturn {}\n");
            write_file(path, text);
            free(text);
        }
        CHECK("a module with a string literal over 256 KiB is refused, saying so",
              written && policy_engine_new(file, pdir, &e, err, sizeof err) == HF_EPOLICY &&
              strstr(err, "later.lua: a string over the 256 KiB limit"));
    }
    remove(path);
    /* a FIFO named like a module: open would wait for a writer forever */
    snprintf(path, sizeof path, "%s/pipe.lua", pdir);
    CHECK("a FIFO among the modules is refused at once, not waited on",
          mkfifo(path, 0600) == 0 &&
          policy_engine_new(file, pdir, &e, err, sizeof err) == HF_EPOLICY &&
          strstr(err, "pipe.lua: not a regular file"));
    remove(path);
    write_policy(shared_policy);

    /* a global assigned by an override's top level would be read by every
     * tenant's calls: the version is refused, saying why */
    snprintf(path, sizeof path, "%s/tenants/tn_b.lua", pdir);
    write_file(path, "local shared = ...\n"
                     "ipairs = function() return function() return nil end end\n"
                     "return { check_return_url = shared.check_return_url }\n");
    CHECK("an override that sets a global is refused, with its line",
          policy_engine_new(file, pdir, &e, err, sizeof err) == HF_EPOLICY &&
          strstr(err, "tn_b.lua:2:") && strstr(err, "cannot set the global 'ipairs'"));

    /* a module first required during one tenant's call, after that call
     * set a global of its own: the module's top level must not see it */
    write_policy("local p = {}\n"
                 "function p.check_return_url(url, ctx)\n"
                 "  return require('counter').count({ 1, 2 }) == 2\n"
                 "end\n"
                 "return p\n");
    write_file(path, "return { check_return_url = function(url, ctx)\n"
                     "  ipairs = function() return function() return nil end end\n"
                     "  return require('counter').count({ 1, 2, 3 }) == 3\n"
                     "end }\n");
    snprintf(path, sizeof path, "%s/counter.lua", pdir);
    write_file(path, "local ipairs = ipairs\nlocal M = {}\n"
                     "function M.count(t) local n = 0 for _ in ipairs(t) do n = n + 1 end "
                     "return n end\nreturn M\n");
    CHECK("engine loads a policy whose module is required at call time",
          policy_engine_new(file, pdir, &e, err, sizeof err) == 0);
    w = NULL;
    policy_sync(e, &w);
    CHECK("a module loaded in one tenant's call reads the shared globals",
          ask(w, &tenant_b, "https://b.test/") == 1);
    CHECK("and serves the other tenants the same", ask(w, &tenant_a, "https://a.test/") == 1);
    policy_free(w);
    policy_engine_free(e);
    remove(path);
    snprintf(path, sizeof path, "%s/tenants/tn_b.lua", pdir);
    remove(path);
    write_policy(shared_policy);

    snprintf(path, sizeof path, "%s/hosts.lua", pdir);
    write_file(path, "return {}\n");
    snprintf(path, sizeof path, "%s/tenants/tn_b.lua", pdir);
    write_file(path, "local shared = ...\nreturn { check_return_url = function() return false end,\n"
                     "  examples = { { url = 'https://b.test/', allow = true } } }\n");
    CHECK("an override's failing example refuses the whole version",
          policy_engine_new(file, pdir, &e, err, sizeof err) == HF_EPOLICY &&
          strstr(err, "tn_b.lua: example 1"));
    remove(path);

    /* an example whose check drops the example's own strings before they
     * are compared (run under ASan this would be a use after free) */
    write_policy("local p = {}\n"
                 "function p.check_return_url(url, ctx)\n"
                 "  p.examples[1].code = nil\n"
                 "  p.examples[1].url = nil\n"
                 "  local junk = {} for i = 1, 8000 do junk[i] = ('y'):rep(64) .. i end\n"
                 "  return false, 'invalid_return_url', 'no'\n"
                 "end\n"
                 "p.examples = { { url = 'https://a.test/' .. ('q'):rep(100), allow = false, "
                 "code = 'invalid_return_url' .. '' } }\n"
                 "return p\n");
    e = NULL; /* a failed new leaves it untouched */
    CHECK("examples are judged on copies of their strings",
          policy_engine_new(file, pdir, &e, err, sizeof err) == 0);
    policy_engine_free(e);
}

/* The sandbox: each probe returns true when the policy cannot do harm. */
static const char probe_policy[] =
    "local helper = require('hosts')\n"
    "local probes = {}\n"
    "probes['/io'] = function() return io == nil end\n"
    "probes['/os'] = function() return os.execute == nil and os.getenv == nil and os.exit == nil end\n"
    "probes['/debug'] = function() return debug == nil end\n"
    "probes['/package'] = function() return package == nil end\n"
    "probes['/loaders'] = function() return dofile == nil and loadfile == nil and load == nil end\n"
    "probes['/dump'] = function() return string.dump == nil end\n"
    "probes['/gc'] = function() return collectgarbage == nil and coroutine == nil end\n"
    "probes['/rawset'] = function() return rawset == nil end\n"
    "probes['/strmeta'] = function() return getmetatable('') == 'locked' end\n"
    "probes['/strwrite'] = function() return not pcall(function() string.upper = nil end) end\n"
    "probes['/hfwrite'] = function() return not pcall(function() hostflow.log = nil end) end\n"
    "probes['/reqos'] = function() return not pcall(require, 'os') end\n"
    "probes['/reqdots'] = function() return not pcall(require, '../etc/passwd') end\n"
    "probes['/req'] = function() return helper.extra() == 'extra.test' and require('hosts') == helper end\n"
    "probes['/gcmeta'] = function() return not pcall(setmetatable, {}, { __gc = function() end }) end\n"
    "probes['/envmeta'] = function() return not pcall(setmetatable, _G, {}) end\n"
    "probes['/set'] = function() leaked = true; _G.leaked2 = true; return true end\n"
    "probes['/get'] = function() return leaked == nil and leaked2 == nil end\n"
    "probes['/pairs'] = function() local n = 0 for _ in pairs(string) do n = n + 1 end return n > 10 end\n"
    "probes['/methods'] = function() return ('ab'):rep(2) == 'abab' and ('x=1'):match('(%w)=') == 'x' end\n"
    "probes['/parse'] = function() local u = hostflow.parse_url('https://A.test:8443/p?q') "
    "return u.host == 'a.test' and u.port == 8443 and hostflow.parse_url('https://a.test#f') == nil end\n"
    "probes['/loop'] = function() while true do end end\n"
    "probes['/pcallloop'] = function() while true do pcall(function() while true do end end) end end\n"
    "probes['/errorloop'] = function() while true do pcall(error, 'x') end end\n"
    "probes['/memory'] = function() local t = {} while true do t[#t + 1] = ('x'):rep(4096) .. #t end end\n"
    "probes['/pcallmemory'] = function() local t = {} while true do pcall(function() t[#t + 1] = ('x'):rep(65536) .. #t end) end end\n"
    "probes['/rep'] = function() return #string.rep('x', 1e9) end\n"
    "probes['/match'] = function() return (('a'):rep(300)):match(('a+'):rep(8) .. 'b') end\n"
    "probes['/find'] = function() return string.find(('a'):rep(5000), ('a*'):rep(12) .. 'b') end\n"
    "probes['/gsub'] = function() return (('a'):rep(300)):gsub(('a-'):rep(8) .. 'b', '') end\n"
    "probes['/gmatch'] = function() for m in (('a'):rep(300)):gmatch(('a+'):rep(8) .. 'b') do end end\n"
    "probes['/concat'] = function() local t = {} for i = 1, 1e7 do t[i] = 'xxxxxxxx' end return table.concat(t) end\n"
    "probes['/sort'] = function() local t = {} for i = 1, 100 do t[i] = i end "
    "table.sort(t, function(a, b) while true do end end) end\n"
    "probes['/ok'] = function() return true end\n"
    "probes['/tmove'] = function() table.move({}, 1, 1 << 40, 1) end\n"
    "probes['/tinsert'] = function() table.insert(setmetatable({}, { __len = function() "
    "return 1 << 40 end }), 1, 'x') end\n"
    "probes['/tremove'] = function() table.remove(setmetatable({}, { __len = function() "
    "return 1 << 40 end }), 1) end\n"
    "probes['/tconcat'] = function() return table.concat({}, '', 1, 1 << 40) end\n"
    /* a length that reads 1 when charged and 2^26 when the loop reads it,
     * over elements got and set by C functions: no hook would ever fire */
    "local function twofaced() local reads = 0 return setmetatable({}, { __len = function() "
    "reads = reads + 1 return reads == 1 and 1 or 1 << 26 end, __index = type, "
    "__newindex = rawequal }) end\n"
    "probes['/tinsert2'] = function() table.insert(twofaced(), 1, 'x') end\n"
    "probes['/tremove2'] = function() table.remove(twofaced(), 1) end\n"
    "probes['/tsort2'] = function() table.sort(twofaced()) end\n"
    /* one instruction, a whole string's work: the budget alone would allow
     * some 40 GB of comparing here, and a minute of upper() */
    "local function long() local s = 'x' for i = 1, 17 do s = s .. s end return s end\n"
    "probes['/bigstring'] = function() local s = long() return #(s .. s) > 0 end\n"
    "probes['/longeq'] = function() local s = long() local t = s:sub(1, -2) .. 'y' "
    "for i = 1, 300000 do if s == t then return false end end end\n"
    "probes['/longupper'] = function() local s = long() "
    "for i = 1, 300000 do s:upper() end end\n"
    "probes['/swallowmem'] = function() pcall(function() local t = {} "
    "while true do t[#t + 1] = ('x'):rep(65536) .. #t end end) return true end\n"
    "probes['/pairsleak'] = function() return not pcall(function() "
    "local _, hidden = pairs(string) hidden.find = nil end) and string.find('ab', 'b') == 2 end\n"
    "probes['/modwrite'] = function() return not pcall(function() helper.extra = nil end) end\n"
    "probes['/xpcallloop'] = function() while true do xpcall(function() while true do end end, "
    "function(m) return m end) end end\n"

    /* what Lua runs on the way out of a stopped call: a message handler
     * (run with hooks off when the hook raised), __close handlers, and
     * C functions whose work grows with their arguments */
    "local function spin() while true do end end\n"
    "probes['/handlerloop'] = function() xpcall(spin, spin) return true end\n"
    "probes['/handlerfor'] = function() xpcall(spin, function(e) for i = 1, 1e9 do end return e end) "
    "return true end\n"
    "probes['/handlerraise'] = function() xpcall(spin, function(e) spin() end) return true end\n"
    "probes['/handlernest'] = function() xpcall(spin, function(e) "
    "xpcall(spin, spin) spin() end) return true end\n"
    "local zs = ('z'):rep(250000)\n"
    "local function heavy() for i = 1, 1e9 do tonumber(zs, 36) end end\n"
    "probes['/closeloop'] = function() local x <close> = setmetatable({}, { __close = spin }) "
    "spin() end\n"
    "probes['/closeheavy'] = function() local function nest(n) "
    "if n == 0 then return spin() end "
    "local x <close> = setmetatable({}, { __close = heavy }) nest(n - 1) end nest(50) end\n"
    "probes['/closepcall'] = function() for i = 1, 1e9 do pcall(function() "
    "local x <close> = setmetatable({}, { __close = heavy }) spin() end) end end\n"
    "probes['/closedeep'] = function() local mt = { __close = heavy } "
    "local function nest(n) local x <close> = setmetatable({}, mt) "
    "if n > 0 then nest(n - 1) end end nest(1e9) end\n"
    "probes['/tonumber'] = heavy\n"
    "probes['/arith'] = function() local d = ('9'):rep(250000) for i = 1, 1e9 do local _ = d + 0 end end\n"
    "probes['/utf8len'] = function() for i = 1, 1e9 do utf8.len(zs) end end\n"
    "probes['/byte'] = function() for i = 1, 1e9 do zs:byte(1, -1) end end\n"
    "probes['/upper'] = function() for i = 1, 1e9 do zs:upper() end end\n"

    "probes['/requireargs'] = function() local m = require('argsmod', {}) "
    "return type(m) == 'table' and require('argsmod', 'x') == m end\n"

    "probes['/pcallworks'] = function() local ok, e = pcall(error, 'x', 0) "
    "local ok2, v = xpcall(function(a) return a + 1 end, tostring, 1) "
    "return ok == false and e == 'x' and ok2 == true and v == 2 end\n"
    "return { check_return_url = function(url, ctx)\n"
    "  local probe = probes[url.path]\n"
    "  if not probe then return false, 'invalid_return_url', 'no such probe' end\n"
    "  return probe() == true\n"
    "end }\n";

static void test_sandbox(void)
{
    static const char *const safe[] = {
        "/io", "/os", "/debug", "/package", "/loaders", "/dump", "/gc", "/rawset",
        "/strmeta", "/strwrite", "/hfwrite", "/reqos", "/reqdots", "/req", "/gcmeta",
        "/envmeta", "/set", "/get", "/pairs", "/methods", "/parse", "/pcallworks",
        "/pairsleak", "/modwrite", "/requireargs", NULL};
    static const char *const stopped[] = {
        "/loop", "/pcallloop", "/xpcallloop", "/errorloop", "/memory", "/pcallmemory", "/rep", "/match",
        "/find", "/gsub", "/gmatch", "/concat", "/sort", "/tmove", "/tinsert", "/tremove",
        "/tconcat", "/tinsert2", "/tremove2", "/tsort2", "/bigstring", "/longeq",
        "/longupper", "/swallowmem", "/handlerloop", "/handlerfor", "/handlerraise",
        "/handlernest", "/closeloop", "/closeheavy", "/closepcall", "/closedeep", "/tonumber",
        "/arith", "/utf8len", "/byte", "/upper", NULL};
    static const char *const charged[] = {
        "/tonumber", "/arith", "/utf8len", "/byte", "/upper", NULL};
    struct policy_engine *e = NULL;
    struct policy *w = NULL;
    char err[HF_POLICY_ERROR_MAX], path[256], name[128], url[256];

    snprintf(path, sizeof path, "%s/hosts.lua", pdir);
    write_file(path, "local M = {}\nfunction M.extra() return 'extra.test' end\nreturn M\n");
    snprintf(path, sizeof path, "%s/argsmod.lua", pdir);
    write_file(path, "return { x = 1 }\n");
    write_policy(probe_policy);
    CHECK("probe policy loads", policy_engine_new(file, pdir, &e, err, sizeof err) == 0);
    if (!e) {
        printf("# %s\n", err);
        return;
    }
    policy_sync(e, &w);
    for (int i = 0; safe[i]; i++) {
        snprintf(url, sizeof url, "https://probe.test%s", safe[i]);
        snprintf(name, sizeof name, "sandbox probe %s", safe[i]);
        CHECK(name, ask(w, &tenant_a, url) == 1);
    }
    for (int i = 0; stopped[i]; i++) {
        double t0, took;
        int answer;

        snprintf(url, sizeof url, "https://probe.test%s", stopped[i]);
        policy_sync(e, &w);
        t0 = now_s();
        answer = ask(w, &tenant_a, url);
        took = now_s() - t0;
        printf("# %s stopped after %.3f s, %ld instructions\n", stopped[i], took,
               asked_instructions);
        snprintf(name, sizeof name, "limit stops %s with a policy error well under 1 s",
                 stopped[i]);
        CHECK(name, answer == -1 && took < 1.0);
        policy_sync(e, &w);
        snprintf(name, sizeof name, "the worker answers normally after %s", stopped[i]);
        CHECK(name, ask(w, &tenant_a, "https://probe.test/ok") == 1);
    }
    /* a C function's work is charged by its input: the budget, not the
     * clock read between two hook runs, stops a loop of them */
    for (int i = 0; charged[i]; i++) {
        snprintf(url, sizeof url, "https://probe.test%s", charged[i]);
        policy_sync(e, &w);
        snprintf(name, sizeof name, "%s is charged for the length of its strings", charged[i]);
        CHECK(name, ask(w, &tenant_a, url) == -1 && asked_instructions > 200000);
    }
    policy_free(w);
    policy_engine_free(e);
    remove(path);
}

int main(void)
{
    char path[256];

    log_setup(0, HF_LOG_OFF);
    alarm(120); /* a limit that fails to stop a probe ends the run, not hangs it */
    snprintf(dir, sizeof dir, "/tmp/hostflow-policy.XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(file, sizeof file, "%s/policy.lua", dir);
    snprintf(pdir, sizeof pdir, "%s/policies", dir);
    mkdir(pdir, 0700);
    snprintf(path, sizeof path, "%s/tenants", pdir);
    mkdir(path, 0700);
    snprintf(tenant_a.id, sizeof tenant_a.id, "tn_a");
    snprintf(tenant_a.hosts[0], sizeof tenant_a.hosts[0], "a.test");
    tenant_a.n_hosts = 1;
    snprintf(tenant_b.id, sizeof tenant_b.id, "tn_b");
    snprintf(tenant_b.hosts[0], sizeof tenant_b.hosts[0], "b.test");
    tenant_b.n_hosts = 1;

    test_reload();
    test_pool();
    test_overrides();
    test_sandbox();

    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path) != 0)
        printf("# could not remove %s\n", dir);
    return CHECK_DONE();
}
