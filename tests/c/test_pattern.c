/* test_pattern.c - tests for core/policy/pattern.c and core/policy/policy_strlib.c: the
 * bounded string functions must agree with Lua 5.4's own on every result
 * and error (hand-written and random cases), and must stop catastrophic
 * patterns and huge string.rep calls with the budget error. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "check.h"
#include "pattern.h"
#include "policy_strlib.h"

#define BUDGET_ERROR "error: policy exceeded its instruction budget"
#define HUGE_BUDGET (LONG_MAX / 2)
#define RANDOM_CASES 20000
#define NUL_RANDOM_CASES 3000
#define RANDOM_SEED 0x9e3779b97f4a7c15u

/* The differential helper, run with (real string table, bounded table).
 * Each case runs find, match, gmatch (all iterations) and gsub with a
 * string, a table and a function replacement through both tables and
 * compares the serialized results, or "error: <message>" without the
 * position prefix. Cases built with X(code) run a chunk instead. */
static const char helper_lua[] =
    "-- differential helper: runs one case through two string libraries\n"
    "local real, mine = ...\n"
    "local fmt, concat = string.format, table.concat\n"
    "local pack, unpack = table.pack, table.unpack\n"
    "\n"
    "local function ser(...)\n"
    "    local out = {}\n"
    "    for i = 1, select('#', ...) do\n"
    "        local v = select(i, ...)\n"
    "        local t = type(v)\n"
    "        if t == 'string' then out[i] = fmt('%q', v)\n"
    "        elseif t == 'number' then\n"
    "            out[i] = math.type(v) .. ':' .. tostring(v)\n"
    "        else out[i] = t .. ':' .. tostring(v) end\n"
    "    end\n"
    "    return select('#', ...) .. '[' .. concat(out, ',') .. ']'\n"
    "end\n"
    "\n"
    "local function strip(msg)\n"
    "    if type(msg) ~= 'string' then return 'non-string ' .. type(msg) end\n"
    "    return (string.gsub(msg, '^diff:%d+: ', ''))\n"
    "end\n"
    "\n"
    "local function result(ok, ...)\n"
    "    if ok then return ser(...) end\n"
    "    return 'error: ' .. strip((...))\n"
    "end\n"
    "\n"
    "local tbl = {a = 'A', b = false, ab = 7, x = 'XX', ['('] = {},\n"
    "             [1] = 'one', [2] = true, ['%'] = 'pct', [''] = 'empty',\n"
    "             abc = 1.5}\n"
    "\n"
    "local function make_fn()\n"
    "    local calls, k = {}, 0\n"
    "    return function(...)\n"
    "        k = k + 1\n"
    "        calls[#calls + 1] = ser(...)\n"
    "        local m = k % 5\n"
    "        if m == 1 then return nil\n"
    "        elseif m == 2 then return false\n"
    "        elseif m == 3 then return 'F' .. select('#', ...)\n"
    "        elseif m == 4 then return k * 10\n"
    "        else return (...) end\n"
    "    end, calls\n"
    "end\n"
    "\n"
    "local function gmatch_all(lib, s, p, init)\n"
    "    local parts = {}\n"
    "    local it = lib.gmatch(s, p, init)\n"
    "    for _ = 1, 10000 do\n"
    "        local r = pack(it())\n"
    "        if r[1] == nil then break end\n"
    "        parts[#parts + 1] = ser(unpack(r, 1, r.n))\n"
    "    end\n"
    "    return concat(parts, ';')\n"
    "end\n"
    "\n"
    "local chunks = {}\n"
    "local function run_code(lib, code)\n"
    "    local f = chunks[code]\n"
    "    if not f then\n"
    "        f = assert(load('local lib = ...; ' .. code, '=diff'))\n"
    "        chunks[code] = f\n"
    "    end\n"
    "    return result(pcall(f, lib))\n"
    "end\n"
    "\n"
    "local function run_all(lib, c)\n"
    "    if c.code then return run_code(lib, c.code) end\n"
    "    local s, p, init, plain = c.s, c.p, c.init, c.plain\n"
    "    local repl, n = c.repl, c.n\n"
    "    local out = {}\n"
    "    out[1] = 'find=' .. result(pcall(function()\n"
    "        return lib.find(s, p, init, plain) end))\n"
    "    out[2] = 'match=' .. result(pcall(function()\n"
    "        return lib.match(s, p, init) end))\n"
    "    out[3] = 'gmatch=' .. result(pcall(function()\n"
    "        return gmatch_all(lib, s, p, init) end))\n"
    "    if repl == nil then repl = '<%1>' end\n"
    "    out[4] = 'gsub=' .. result(pcall(function()\n"
    "        return lib.gsub(s, p, repl, n) end))\n"
    "    out[5] = 'gsubt=' .. result(pcall(function()\n"
    "        return lib.gsub(s, p, tbl, n) end))\n"
    "    local fn, calls = make_fn()\n"
    "    out[6] = 'gsubf=' .. result(pcall(function()\n"
    "        return lib.gsub(s, p, fn, n) end))\n"
    "        .. ' calls=' .. concat(calls, '|')\n"
    "    return concat(out, '\\n')\n"
    "end\n"
    "\n"
    "local function compare(c)\n"
    "    local a, b = run_all(real, c), run_all(mine, c)\n"
    "    if a == b then return nil end\n"
    "    return 'real:\\n' .. a .. '\\nmine:\\n' .. b\n"
    "end\n"
    "\n"
    "local function printable(s)\n"
    "    return (string.gsub(s, '[^%w%p ]', function(ch)\n"
    "        return fmt('\\\\%d', string.byte(ch)) end))\n"
    "end\n"
    "\n"
    "local function label(c)\n"
    "    local text\n"
    "    if c.code then text = c.code\n"
    "    else text = fmt('%s on %s', printable(c.p), printable(c.s)) end\n"
    "    if #text > 90 then text = text:sub(1, 90) .. '...' end\n"
    "    return text\n"
    "end\n"
    "\n"
    "local function C(s, p, init, plain, repl, n)\n"
    "    return {s = s, p = p, init = init, plain = plain, repl = repl,\n"
    "            n = n}\n"
    "end\n"
    "local function X(code) return {code = code} end\n"
    "local R = string.rep\n"
    "local imax, imin = math.maxinteger, math.mininteger\n"
    "\n"
    "local hand = {\n"
    "    -- literals and the plain fast path\n"
    "    C('hello world', 'o w'), C('hello world', 'l'),\n"
    "    C('hello world', 'xyz'),\n"
    "    C('', ''), C('abc', ''), C('', 'a'), C('hello', 'hello world'),\n"
    "    C('a.b', '.', nil, true), C('a.b', '%.', nil, true),\n"
    "    C('a+b', '+', nil, true),\n"
    "    C('a+b', 'a+', nil, true), C('a+b', 'a+', nil, false),\n"
    "    C('a+b', 'a+b', nil, 1),\n"
    "    C('aaa', 'aa', 2, true), C('abc', '', 4, true),\n"
    "    C('abc', '', 5, true),\n"
    "    C('a[b', '[', nil, true), C('abcabc', 'ca', -4, true),\n"
    "    -- init\n"
    "    C('hello', 'l', 4), C('hello', 'l', -1), C('hello', 'l', -2),\n"
    "    C('hello', 'l', -100), C('hello', 'l', 0), C('hello', 'l', 6),\n"
    "    C('hello', 'l', 7), C('hello', '', 6), C('hello', '', 7),\n"
    "    C('hello', '^l', 3), C('hello', 'o$', -1), C('hello', '()', imax),\n"
    "    C('hello', '()', imin), C('hello', '%a', -5), C('hello', '%a', -6),\n"
    "    -- single-character classes\n"
    "    C('abc123 DEF', '%a+'), C('abc123 DEF', '%d+'),\n"
    "    C('abc\\t\\n\\v\\f\\r x', '%s+'),\n"
    "    C('abc123 DEF', '%w+'), C('abc123 DEF', '%u+'),\n"
    "    C('abc123 DEF', '%l+'),\n"
    "    C('a,b;c!', '%p'), C('0x1Fg', '%x+'), C('a\\1b\\127c', '%c'),\n"
    "    C(' \\t~x', '%g'), C('abc123', '%A+'), C('abc123', '%D+'),\n"
    "    C('a b\\tc', '%S+'), C('abc DEF', '%U+'), C('abc DEF', '%L+'),\n"
    "    C('abc, def', '%P+'), C('abcxyz', '%X+'), C('a\\1b', '%C+'),\n"
    "    C('a b', '%G'), C('a_b c', '%W'), C('a.b', '%.'), C('a%b', '%%'),\n"
    "    C('z', '%z'), C('aQb', '%Q'), C('a\\128\\255b', '[\\128-\\255]+'),\n"
    "    C('a\\128\\255b', '%a+'), C('a\\128\\255b', '%W+'), C('x.y', '.'),\n"
    "    C('xyz', '..'), C('a b', '% '), C('a_b', '%_'),\n"
    "    -- sets\n"
    "    C('hello', '[aeiou]'), C('hello', '[^aeiou]+'), C('a-z', '[a-]'),\n"
    "    C('a-z', '[-a]+'), C('b]a', '[]]'), C('b]a', '[^]]+'),\n"
    "    C('abc123', '[a-c1-2]+'), C('a_b1', '[%a_]+'), C('a^b', '[%^]'),\n"
    "    C('a^b', '[b^]'), C('x]', '[%]]'), C('x-y', '[x%-y]+'),\n"
    "    C('abc', '[c-a]'),\n"
    "    C('a%b', '[%%]'), C(']-a', '[]-a]+'), C('AbC', '[^%l]+'),\n"
    "    C('a.b', '[.]'),\n"
    "    C('a-%]', '[a-%%]+'), C('a%b', '[a-%]]'),\n"
    "    C('ab', '[a'), C('ab', '['), C('ab', '[^'), C('ab', '[]'),\n"
    "    C('ab', '[%'),\n"
    "    C('ab', '[a%]'), C('ab', '[^]'),\n"
    "    -- quantifiers\n"
    "    C('aaab', 'a*'), C('aaab', 'a+'), C('aaab', 'a-b'),\n"
    "    C('aaab', 'a?b'),\n"
    "    C('b', 'a?b'), C('<a><b>', '<.->'), C('<a><b>', '<.*>'),\n"
    "    C('xyz', 'x*y+z?'), C('', 'a*'), C('', 'a+'), C('aaa', 'a-'),\n"
    "    C('aaa', 'a-$'), C('ab*', '*'), C('a*b', 'a*%*'), C('aaa', '^a-'),\n"
    "    C('abab)*', '(ab)*'), C('aaa*', 'a**'), C('a+b', 'a++'),\n"
    "    C('a?', 'a?' .. '?'),\n"
    "    C('[[x]', '[[]+'), C('-+?*', '[-+?*]+'),\n"
    "    -- anchors\n"
    "    C('hello', '^h'), C('hello', '^e'), C('hello', 'o$'),\n"
    "    C('hello$', 'o$'),\n"
    "    C('a$b', '$b'), C('a^b', 'a^b'), C('^ab', '^^a'), C('hello', '^$'),\n"
    "    C('', '^$'), C('ab', '$'), C('ab', '^'),\n"
    "    C('aaa', '^a', nil, nil, 'b'),\n"
    "    C('hello world', '^(%w+)', nil, nil, '%1!'), C('a$', '$$'),\n"
    "    -- captures\n"
    "    C('hello world', '(o)(r)'), C('hello world', '(h)(e)(l)(l)(o)'),\n"
    "    C('hello', '()ll()'), C('hello', '()'),\n"
    "    C('key = value', '(%w+)%s*=%s*(%w+)'),\n"
    "    C('hello', '((l)(l))'), C('hello', '(h(e(l)))'),\n"
    "    C('abc', '(a)()(b)'),\n"
    "    C('abc', '('), C('abc', '(a'), C('abc', 'a)'), C('abc', ')'),\n"
    "    C('abc', '(()'),\n"
    "    C('abc', '(a)(b'), C('x', R('()', 32)), C('x', R('()', 33)),\n"
    "    C(R('a', 40), R('(a)', 33)), C('abc', '(a)(b)(c)(d)'), C('', '()'),\n"
    "    -- back-references\n"
    "    C('hello', '(l)%1'), C('say \"hi\" ok', '([\"\\'])(.-)%1'),\n"
    "    C('abab', '(ab)%1'),\n"
    "    C('abcabc', '(%a+)%1'), C('aa', '%1'), C('aa', '(a)%2'),\n"
    "    C('aa', '(a%1)'),\n"
    "    C('aa', '%0'), C('xx', '()%1'), C('a\\0a\\0', '(a\\0)%1'),\n"
    "    C('aaa', '(a*)%1'),\n"
    "    C('abcabc', '(a)(b)(c)%3'), C('x', 'x%9'),\n"
    "    -- %b\n"
    "    C('f(a(b)c) d', '%b()'), C('f(a(b)c d', '%b()'), C('[[x]]', '%b[]'),\n"
    "    C('aXbYa', '%baa'), C('abc', '%b'), C('abc', '%ba'),\n"
    "    C('((x)', '%b()'),\n"
    "    C('x(y)z', 'x%b()z'),\n"
    "    C('if (a) then (b) end', '%b()', nil, nil, '[]'),\n"
    "    C('x', 'x%b'),\n"
    "    -- %f\n"
    "    C('THE (quick) fox', '%f[%a]%a+'), C('hello world', '%f[%w]%w+'),\n"
    "    C('hello', '%f[\\0]'), C('hello', '%f[%l]'), C('hello', '%f[^%l]'),\n"
    "    C('aaa', '%fa'), C('aaa', '%f'), C('aaa', '%f[a'),\n"
    "    C('THE (quick) fox', '%f[%a]%a+%f[%A]', nil, nil, '<%0>'),\n"
    "    C('x', 'x%f[%z]'), C('ab', '%f[b]'), C('ab', '%f[]]'),\n"
    "    -- malformed patterns, lazily detected as in Lua\n"
    "    C('abc', '%'), C('abc', 'a%'), C('xbc', 'a%'), C('abc', 'a['),\n"
    "    C('xyz', 'a('),\n"
    "    C('abc', 'b)'), C('abc', 'c%1'),\n"
    "    -- matcher depth (MAXCCALLS 200)\n"
    "    C(R('a', 199), R('a?', 199)), C(R('a', 200), R('a?', 200)),\n"
    "    C(R('x', 210), R('x*', 210)), C(R('x', 50), R('x-', 50) .. '$'),\n"
    "    C(R('x', 150), R('(x', 20) .. R(')', 20) .. R('x?', 190)),\n"
    "    -- NUL bytes in subjects and patterns\n"
    "    C('a\\0b\\0c', '\\0'), C('a\\0b\\0c', '%z'), C('a\\0b\\0c', '[\\0]'),\n"
    "    C('a\\0b\\0c', '[^\\0]+'), C('a\\0b', 'a\\0b', nil, true),\n"
    "    C('a\\0b', '%\\0'),\n"
    "    C('a\\0b', '\\0*'), C('a\\0\\0b', '(\\0+)'), C('\\0(\\0)\\0', '%b()'),\n"
    "    C('a\\0b', '%f[\\0]'), C('a\\0b', '.', nil, nil, '%0\\0'),\n"
    "    C('x\\0y', '\\0', nil, nil, '%%\\0'), C('\\0', ''), C('a\\0', '%c'),\n"
    "    C('a\\0b', '[\\0-\\1]'), C('\\0\\0', '%b\\0\\0'),\n"
    "    C('a\\0b', '%\\0', nil, nil, '%\\0'),\n"
    "    -- gsub replacements\n"
    "    C('hello world', 'o', nil, nil, '0'),\n"
    "    C('hello world', '(o)', nil, nil, '[%1%1]'),\n"
    "    C('hello world', 'o', nil, nil, '%2'),\n"
    "    C('hello world', '(o)', nil, nil, '%2'),\n"
    "    C('hello world', 'o', nil, nil, '%'),\n"
    "    C('hello world', 'o', nil, nil, '%x'),\n"
    "    C('hello world', 'o', nil, nil, '%%'),\n"
    "    C('hello world', '()o', nil, nil, '%1'),\n"
    "    C('hello', '', nil, nil, '-'),\n"
    "    C('hello world', '%w*', nil, nil, 'X'),\n"
    "    C('abc', '%w', nil, nil, '%0%0', 2),\n"
    "    C('abc', '%w', nil, nil, 'x', 0),\n"
    "    C('abc', '%w', nil, nil, 'x', -1),\n"
    "    C('abc', '%w', nil, nil, 'x', 100),\n"
    "    C('abc', 'b*', nil, nil, '-'),\n"
    "    C('a,b,,c', '[^,]*', nil, nil, '<%0>'),\n"
    "    C('xyz', 'q', nil, nil, 'Q'),\n"
    "    C('abc', '(a)(b)(c)', nil, nil, '%3%2%1%0'),\n"
    "    C('abc', '(a)', nil, nil, '%9'), C('abc', 'b', nil, nil, 5),\n"
    "    C('abc', 'b', nil, nil, 1.5), C('a b ab x abc', '%w+'),\n"
    "    C('a ( b', '%S'),\n"
    "    C('ab', '()'), C('hello', '()ll'), C('a%b', '%%', nil, nil, '%%%%'),\n"
    "    C('abc', '(b)', nil, nil, '%1%'), C('abc', 'b', nil, nil, ''),\n"
    "    C('abc', '^', nil, nil, '>'), C('abc', '$', nil, nil, '<'),\n"
    "    C('abc', '.', nil, nil, '%0', 2.0),\n"
    "    -- gmatch\n"
    "    C('one two three', '%a+'), C('k1=v1, k2=v2', '(%w+)=(%w+)'),\n"
    "    C('abc', ''),\n"
    "    C('abc', '()'), C('a^b^', '^.'), C('hello world', '%a+', 3),\n"
    "    C('hello world', '%a+', -5), C('hello', 'l*'), C('aaa', 'a-'),\n"
    "    -- argument handling and string.rep\n"
    "    X(\"return lib.find('x')\"), X('return lib.find()'),\n"
    "    X(\"return lib.find('abc', 'b', 1.5)\"),\n"
    "    X(\"return lib.find('abc', 'b', '2')\"),\n"
    "    X('return lib.find(12345, 34)'),\n"
    "    X(\"return lib.find('abc', 'b', {})\"),\n"
    "    X(\"return lib.gsub('abc', 'b')\"),\n"
    "    X(\"return lib.gsub('abc', 'b', true)\"),\n"
    "    X(\"return lib.gsub('abc', 'b', 'x', 'y')\"),\n"
    "    X(\"return lib.gsub('abc', 'b', true, 'y')\"),\n"
    "    X(\"return lib.gsub('abc', 'b', 'x', 1.5)\"),\n"
    "    X('return lib.gsub(123, 2, 9)'),\n"
    "    X(\"return lib.gmatch('abc')\"),\n"
    "    X(\"return lib.gmatch('abc', 'b', 'x')\"),\n"
    "    X(\"local t = {} for a, b in lib.gmatch('a=1, b=2', '(%w+)=(%w+)') \"\n"
    "      .. \"do t[#t + 1] = a .. b end return table.concat(t, ',')\"),\n"
    "    X(\"local it = lib.gmatch('ab', '.') return it(), it(), it(), it()\"),\n"
    "    X(\"local it = lib.gmatch('ab', '%') return pcall(it)\"),\n"
    "    X(\"return lib.match('abc')\"),\n"
    "    X(\"return lib.match('abc', 'b', 'x')\"),\n"
    "    X(\"return lib.rep('ab', 3)\"), X(\"return lib.rep('ab', 3, ', ')\"),\n"
    "    X(\"return lib.rep('', 5)\"), X(\"return lib.rep('', 5, '-')\"),\n"
    "    X(\"return lib.rep('x', 0)\"),\n"
    "    X(\"return lib.rep('x', -1, 'sep')\"),\n"
    "    X(\"return lib.rep('x', 1, 'sep')\"),\n"
    "    X('return lib.rep(12, 2, 3)'), X(\"return lib.rep('x', 2.0)\"),\n"
    "    X(\"return lib.rep('x', 2.5)\"),\n"
    "    X(\"return lib.rep('x')\"), X(\"return lib.rep('xx', 2^30)\"),\n"
    "    X(\"return lib.rep('x', 2^31)\"),\n"
    "    X(\"return lib.rep('x', math.maxinteger)\"),\n"
    "    X(\"return lib.rep('a\\\\0b', 3, '\\\\0')\"),\n"
    "    X(\"return lib.rep('', math.maxinteger, 'x')\"),\n"
    "    X('return lib.rep(nil, 2)'),\n"
    "    X(\"return lib.rep('x', 3, {})\"),\n"
    "    X(\"return #lib.rep('abc', 1000, '--')\"),\n"
    "    X(\"return lib.gsub('abc', '%w', function(c) \"\n"
    "      .. \"return c:upper() .. '.' end)\"),\n"
    "    X(\"return lib.gsub('abc', '%w', function() error('boom') end)\"),\n"
    "    X(\"return lib.gsub('abc', '%w', function() error({}) end)\"),\n"
    "    X(\"return lib.gsub('abc', '%w', {a = 1.5})\"),\n"
    "    X(\"return lib.gsub('abc', '%w', setmetatable({}, \"\n"
    "      .. \"{__index = function(_, k) return k .. k end}))\"),\n"
    "    X(\"return lib.gsub('hello world', '(%w+) (%w+)', '%2 %1')\"),\n"
    "    X(\"return lib.gsub('abc', '', '-', 2)\"),\n"
    "    X(\"return lib.match(' x ', '^%s*(.-)%s*$')\"),\n"
    "    X(\"return lib.gsub('abc', 'b', '%1')\"),\n"
    "    X(\"return lib.gsub('abc', '(b)', '%0%1', nil)\"),\n"
    "    X(\"return lib.find('abc', 'b', nil, nil)\"),\n"
    "    X(\"return lib.find('a+b', '+', 1, false)\"),\n"
    "    X(\"return lib.gsub('abc', '%w', function(c) return {} end)\"),\n"
    "    X(\"return lib.gsub('abc', '%w', function(c) return true end)\"),\n"
    "}\n"
    "\n"
    "local M = {}\n"
    "function M.hand_count() return #hand end\n"
    "function M.hand_case(i)\n"
    "    local c = hand[i]\n"
    "    return label(c), compare(c)\n"
    "end\n"
    "function M.diff_case(s, p, init, plain, repl, n)\n"
    "    return compare(C(s, p, init, plain, repl, n))\n"
    "end\n"
    "M.ser = ser\n"
    "function M.run_mine(code) return run_code(mine, code) end\n"
    "return M\n";

/* Budget shared by every bounded function in the test state. */
static long budget = HUGE_BUDGET;

/* ---- allocator that remembers the largest request ------------------------ */

static size_t largest_request;

static void *tracking_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > largest_request)
        largest_request = nsize;
    return realloc(ptr, nsize);
}

/* ---- deterministic random cases ------------------------------------------ */

static uint64_t rng_state = RANDOM_SEED;

static uint64_t rng_next(void)
{
    /* xorshift64*: fixed seed, so every run tests the same cases */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

/* A set of strings to draw from; lengths are explicit for NUL bytes. */
struct alphabet {
    const char *const *items;
    size_t count;
};

#define ALPHABET(a) {a, sizeof a / sizeof a[0]}

static const char *const pattern_chars[] = {
    "a", "b", "(", ")", "%", ".", "[", "]", "^", "$", "*", "+", "-", "?",
    "1", "f", "b", "x", "A", "0", "2", " ",
};
static const char *const pattern_tokens[] = {
    "%a", "%d", "%s", "%w", "%A", "%p", "%x", "%l", "%u", "%c", "%g", "%D",
    "%W", "[ab]", "[^a]", "[a-c]", "[%a_]", "[]]", "[^]a]", "[%]x]", "%b()",
    "%bab", "%f[a]", "%f[%w]", "%f[^a]", "()", "%1", "%2", "%0", "%.", "%%",
    "%(", "a*", "b+", ".-", "x?", "(a)", "(.)", "[(]", "%b)(", "%f[%(]",
};
static const char *const nul_pattern_tokens[] = {
    "\0", "%z", "[\0]", "[^\0]", "%b\0a", "%f[\0]", "%f[^\0]", "%\0", "\0*",
    "[\0-a]", ".", "a", "(", ")", "%1", "+", "-", "()",
};
static const char *const subject_chars[] = {
    "a", "b", "x", "(", ")", "1", "f", ".", "%", "]", "[", "^", "$", " ",
    "A", "_", "-", "\xff",
};
static const char *const nul_subject_chars[] = {"a", "\0", "b", "(", ")"};
static const char *const replacements[] = {
    "<%0>", "%1", "%2-%1", "%%", "%", "%x", "x%0y", "", "%9", "[%1%1]",
};

/* Append one token (a NUL-byte token is the one-byte string "\0"). */
static void append_token(char *buf, size_t *len, size_t cap, const char *tok)
{
    size_t n = tok[0] ? strlen(tok) : 1;

    if (*len + n <= cap) {
        memcpy(buf + *len, tok, n);
        *len += n;
    }
}

static void random_string(char *buf, size_t *len, size_t cap, size_t max_items,
                          struct alphabet chars, struct alphabet tokens)
{
    size_t items = rng_below(max_items + 1);

    *len = 0;
    for (size_t i = 0; i < items; i++) {
        if (tokens.count && rng_below(2))
            append_token(buf, len, cap, tokens.items[rng_below(tokens.count)]);
        else
            append_token(buf, len, cap, chars.items[rng_below(chars.count)]);
    }
}

/* ---- calling the helper ---------------------------------------------------- */

/* Print text as TAP comment lines. */
static void print_comment(const char *text)
{
    const char *line = text, *nl;

    while (line && *line) {
        nl = strchr(line, '\n');
        printf("#   %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
        line = nl ? nl + 1 : NULL;
    }
}

/* Push field name of the helper table at index helper. */
static void push_helper(lua_State *L, int helper, const char *name)
{
    lua_getfield(L, helper, name);
}

/* Run code (with lib = the bounded table) and return its serialized result
 * or "error: <message>"; the string lives until the next call. */
static const char *run_bounded(lua_State *L, int helper, const char *code)
{
    static char out[512];

    push_helper(L, helper, "run_mine");
    lua_pushstring(L, code);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        snprintf(out, sizeof out, "helper failed: %s", lua_tostring(L, -1));
    else
        snprintf(out, sizeof out, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return out;
}

static void test_hand_cases(lua_State *L, int helper)
{
    lua_Integer count;
    char name[160];

    push_helper(L, helper, "hand_count");
    lua_call(L, 0, 1);
    count = lua_tointeger(L, -1);
    lua_pop(L, 1);
    CHECK("at least 150 hand-written differential cases", count >= 150);
    for (lua_Integer i = 1; i <= count; i++) {
        push_helper(L, helper, "hand_case");
        lua_pushinteger(L, i);
        lua_call(L, 1, 2);
        snprintf(name, sizeof name, "same as Lua: %s", lua_tostring(L, -2));
        CHECK(name, lua_isnil(L, -1));
        if (!lua_isnil(L, -1))
            print_comment(lua_tostring(L, -1));
        lua_pop(L, 2);
    }
}

/* Run cases random cases through the helper's diff_case; returns how many
 * disagreed and prints the first. */
static int run_random_cases(lua_State *L, int helper, int cases,
                            struct alphabet pat_chars,
                            struct alphabet pat_tokens,
                            struct alphabet subj_chars)
{
    char subject[64], pattern[96];
    size_t slen, plen;
    int mismatches = 0;

    for (int i = 0; i < cases; i++) {
        random_string(subject, &slen, sizeof subject, 12, subj_chars,
                      (struct alphabet){NULL, 0});
        random_string(pattern, &plen, sizeof pattern, 8, pat_chars, pat_tokens);
        push_helper(L, helper, "diff_case");
        lua_pushlstring(L, subject, slen);
        lua_pushlstring(L, pattern, plen);
        if (rng_below(4))
            lua_pushinteger(L, (lua_Integer)rng_below(2 * slen + 7) -
                                   (lua_Integer)slen - 3);
        else
            lua_pushnil(L);
        if (rng_below(4) == 0)
            lua_pushboolean(L, 1);
        else
            lua_pushnil(L);
        lua_pushstring(L, replacements[rng_below(sizeof replacements /
                                                 sizeof replacements[0])]);
        if (rng_below(3) == 0)
            lua_pushinteger(L, (lua_Integer)rng_below(6) - 1);
        else
            lua_pushnil(L);
        lua_call(L, 6, 1);
        if (!lua_isnil(L, -1) && mismatches++ == 0) {
            printf("# first disagreement (case %d):\n", i);
            print_comment(lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
    return mismatches;
}

static void test_random_cases(lua_State *L, int helper)
{
    struct alphabet pchars = ALPHABET(pattern_chars);
    struct alphabet ptokens = ALPHABET(pattern_tokens);
    struct alphabet schars = ALPHABET(subject_chars);
    struct alphabet nul_tokens = ALPHABET(nul_pattern_tokens);
    struct alphabet nul_schars = ALPHABET(nul_subject_chars);
    int bad;

    bad = run_random_cases(L, helper, RANDOM_CASES, pchars, ptokens, schars);
    printf("# %d of %d random cases disagree\n", bad, RANDOM_CASES);
    CHECK("20000 random patterns and subjects: same as Lua", bad == 0);

    bad = run_random_cases(L, helper, NUL_RANDOM_CASES, pchars, nul_tokens,
                           nul_schars);
    printf("# %d of %d random NUL-byte cases disagree\n", bad,
           NUL_RANDOM_CASES);
    CHECK("random patterns and subjects with NUL bytes: same as Lua",
          bad == 0);
}

/* ---- budget --------------------------------------------------------------- */

static double elapsed_ms(const struct timespec *t0, const struct timespec *t1)
{
    return (double)(t1->tv_sec - t0->tv_sec) * 1e3 +
           (double)(t1->tv_nsec - t0->tv_nsec) / 1e6;
}

static void test_catastrophic(lua_State *L, int helper)
{
    static const char *const calls[] = {
        "return lib.match(string.rep('a', 300), string.rep('a+', 8) .. 'b')",
        "return lib.find(string.rep('a', 300), string.rep('a+', 8) .. 'b')",
        "return lib.gsub(string.rep('a', 300), string.rep('a+', 8) .. 'b', '')",
        "for m in lib.gmatch(string.rep('a', 300), string.rep('a+', 8) .. 'b')"
        " do end",
        "return lib.find(string.rep('(', 20000), '%b()')",
        "return lib.find(string.rep('a', 1e6), string.rep('a', 1000) .. 'b', 1,"
        " true)",
        "return lib.find(string.rep('a', 1e5), '[' .. string.rep('b', 5000) .."
        " ']')",
        "return lib.gsub(string.rep('a', 1e5), 'a', string.rep('b', 1000))",
        "return lib.match(string.rep('ab', 1e4), '(.*)%1%1')",
    };
    struct timespec t0, t1;
    const char *res;
    char name[200];

    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        budget = 1000000;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        res = run_bounded(L, helper, calls[i]);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("# %.72s: stopped after %.1f ms\n", calls[i],
               elapsed_ms(&t0, &t1));
        snprintf(name, sizeof name, "budget 1000000 stops %.120s", calls[i]);
        CHECK(name, strcmp(res, BUDGET_ERROR) == 0 && budget <= 0);
        if (strcmp(res, BUDGET_ERROR) != 0)
            printf("#   got %s\n", res);
    }

    /* a policy that catches the error is stopped again at once */
    res = run_bounded(L, helper, "return lib.find('a', 'a')");
    CHECK("a spent budget stops the next call too",
          strcmp(res, BUDGET_ERROR) == 0 && budget <= 0);
    res = run_bounded(L, helper, "return lib.rep('a', 1)");
    CHECK("a spent budget stops string.rep too",
          strcmp(res, BUDGET_ERROR) == 0);
}

static void test_budget_exact(lua_State *L, int helper)
{
    const char *code = "return lib.match('hello world', 'w(o)r')";
    const char *res;
    long cost;

    budget = HUGE_BUDGET;
    res = run_bounded(L, helper, code);
    cost = HUGE_BUDGET - budget;
    printf("# simple match cost %ld steps\n", cost);
    CHECK("simple match result", strcmp(res, "1[\"o\"]") == 0);
    CHECK("simple match costs a few dozen steps", cost > 0 && cost < 200);

    budget = 200;
    res = run_bounded(L, helper, code);
    CHECK("budget 200 lets a simple match succeed",
          strcmp(res, "1[\"o\"]") == 0 && budget == 200 - cost);

    budget = cost + 1;
    res = run_bounded(L, helper, code);
    CHECK("budget of cost + 1 succeeds and leaves 1",
          strcmp(res, "1[\"o\"]") == 0 && budget == 1);

    budget = cost;
    res = run_bounded(L, helper, code);
    CHECK("budget of exactly the cost is exhausted (reaches 0)",
          strcmp(res, BUDGET_ERROR) == 0 && budget <= 0);
}

static void test_rep(lua_State *L, int helper)
{
    const char *res;

    budget = 1000000;
    largest_request = 0;
    res = run_bounded(L, helper, "return lib.rep('x', 1e9)");
    CHECK("string.rep('x', 1e9) with budget 1000000: budget error",
          strcmp(res, BUDGET_ERROR) == 0 && budget <= 0);
    printf("# largest allocation meanwhile: %zu bytes\n", largest_request);
    CHECK("string.rep('x', 1e9) allocates nothing large",
          largest_request < (1u << 20));

    budget = 1000000;
    res = run_bounded(L, helper, "return #lib.rep('x', 1e6)");
    CHECK("string.rep('x', 1e6) fits a budget of 1000000",
          strcmp(res, "1[integer:1000000]") == 0 && budget == 1000000 - 62500);

    budget = 1000000;
    res = run_bounded(L, helper, "return lib.rep('x', 1e9, ',')");
    CHECK("string.rep with separator charges the separators too",
          strcmp(res, BUDGET_ERROR) == 0);

    budget = 1000000;
    res = run_bounded(L, helper, "return lib.rep('', 1e18)");
    CHECK("string.rep('', 1e18) is instant and empty",
          strcmp(res, "1[\"\"]") == 0 && budget == 999999);

    budget = 1000000;
    res = run_bounded(L, helper, "return lib.rep('xx', 2^30)");
    CHECK("string.rep('xx', 2^30): resulting string too large",
          strcmp(res, "error: resulting string too large") == 0);
}

static void test_nul_bytes(lua_State *L, int helper)
{
    const char *res;

    budget = HUGE_BUDGET;
    res = run_bounded(L, helper, "return lib.find('a\\0b\\0c', 'b%z?\\0()')");
    CHECK("NUL bytes: find with a pattern NUL and a position capture",
          strcmp(res, "3[integer:3,integer:4,integer:5]") == 0);
    if (strcmp(res, "3[integer:3,integer:4,integer:5]") != 0)
        printf("#   got %s\n", res);
    res = run_bounded(L, helper, "return lib.gsub('a\\0b\\0', '%z', '<%0>')");
    CHECK("NUL bytes: gsub keeps every byte",
          strcmp(res, "2[\"a<\\0>b<\\0>\",integer:2]") == 0);
    if (strcmp(res, "2[\"a<\\0>b<\\0>\",integer:2]") != 0)
        printf("#   got %s\n", res);
}

/* ---- pattern.c directly --------------------------------------------------- */

static void test_pattern_api(void)
{
    static const struct {
        int rc;
        const char *msg;
    } messages[] = {
        {PATTERN_EBUDGET, "policy exceeded its instruction budget"},
        {PATTERN_ETOOCOMPLEX, "pattern too complex"},
        {PATTERN_EENDSWITHESC, "malformed pattern (ends with '%')"},
        {PATTERN_EMISSINGBRACKET, "malformed pattern (missing ']')"},
        {PATTERN_EBALANCEARGS, "malformed pattern (missing arguments to '%b')"},
        {PATTERN_EFRONTIER, "missing '[' after '%f' in pattern"},
        {PATTERN_EPATTERNCAPTURE, "invalid pattern capture"},
        {PATTERN_ETOOMANYCAPTURES, "too many captures"},
        {PATTERN_EUNFINISHED, "unfinished capture"},
        {PATTERN_ECAPINDEX(0), "invalid capture index %0"},
        {PATTERN_ECAPINDEX(9), "invalid capture index %9"},
        {-12345, "unknown pattern error"},
    };
    struct pattern_state ms;
    long steps = 1000;
    size_t end = 0, start = 0, len = 0;
    int rc, ok = 1;

    for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++)
        ok &= strcmp(pattern_strerror(messages[i].rc), messages[i].msg) == 0;
    CHECK("pattern_strerror gives Lua's messages", ok);

    pattern_init(&ms, "key=val", 7, "(%w+)=()", 8, &steps);
    rc = pattern_match_at(&ms, 0, &end);
    CHECK("pattern_match_at matches at 0", rc == PATTERN_MATCH && end == 4);
    CHECK("two captures", pattern_capture_count(&ms, 1) == 2);
    CHECK("string capture",
          pattern_capture(&ms, 0, 0, end, &start, &len) == 1 && start == 0 &&
              len == 3);
    CHECK("position capture",
          pattern_capture(&ms, 1, 0, end, &start, &len) == 2 && start == 4);
    CHECK("capture past the last: invalid capture index",
          pattern_capture(&ms, 2, 0, end, &start, &len) ==
              PATTERN_ECAPINDEX(3));
    CHECK("steps were charged", steps > 0 && steps < 1000);

    steps = 5;
    pattern_init(&ms, "aaaaaaaaaaaaaaaaaaaa", 20, "a*b", 3, &steps);
    CHECK("tiny budget: PATTERN_EBUDGET",
          pattern_match_at(&ms, 0, &end) == PATTERN_EBUDGET && steps <= 0);

    steps = LONG_MIN + 3;
    CHECK("pattern_charge saturates", pattern_charge(&steps, 100) &&
                                          steps == LONG_MIN);

    CHECK("no specials", !pattern_has_specials("abc\0def", 7));
    CHECK("specials", pattern_has_specials("ab\0c.", 5));

    steps = 1000;
    CHECK("plain search past NUL bytes",
          pattern_find_plain("a\0b\0c", 5, 0, "\0c", 2, &steps, &end) ==
                  PATTERN_MATCH && end == 3);
}

int main(void)
{
    lua_State *L = lua_newstate(tracking_alloc, NULL);
    int helper;

    luaL_openlibs(L);
    /* real: a copy of the string table; mine: a copy with ours installed */
    for (int i = 0; i < 2; i++) {
        lua_newtable(L);
        lua_getglobal(L, "string");
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_settable(L, -5);
        }
        lua_pop(L, 1);
    }
    policy_strlib_install(L, -1, &budget);
    if (luaL_loadbuffer(L, helper_lua, sizeof helper_lua - 1, "=helper") ||
        (lua_insert(L, -3), lua_pcall(L, 2, 1, 0))) {
        printf("not ok - helper chunk: %s\n", lua_tostring(L, -1));
        return 1;
    }
    helper = lua_gettop(L);

    test_pattern_api();
    test_hand_cases(L, helper);
    test_random_cases(L, helper);
    test_budget_exact(L, helper);
    test_nul_bytes(L, helper);
    test_rep(L, helper);
    test_catastrophic(L, helper);
    lua_close(L);
    return CHECK_DONE();
}
