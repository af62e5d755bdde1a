/* pattern.c - Lua 5.4 pattern matching over (pointer, length) strings that
 * charges every elementary step to a caller's budget. See pattern.h.
 *
 * The matcher is a backtracking recursive descent over the pattern, one
 * "item" (class plus optional quantifier, capture, %b, %f, back-reference)
 * at a time. Where Lua recurses we recurse too, and where Lua loops (its
 * tail calls) we loop, so that PATTERN_MAXDEPTH trips at exactly the same
 * patterns as Lua's "pattern too complex". Reading one past the end of the
 * pattern or subject yields 0, the NUL terminator Lua relies on. */
#include "pattern.h"

#include <limits.h>
#include <string.h>

#define ESC '%'
#define SPECIALS "^$*+?.([%-"

/* ---- budget ------------------------------------------------------------ */

int pattern_charge(long *budget, size_t cost)
{
    long c = cost > (size_t)LONG_MAX ? LONG_MAX : (long)cost;

    /* saturate: a spent budget keeps being charged by later calls */
    if (*budget < LONG_MIN + c)
        *budget = LONG_MIN;
    else
        *budget -= c;
    return *budget <= 0;
}

static int spend(struct pattern_state *ms, size_t cost)
{
    return pattern_charge(ms->budget, cost);
}

/* ---- character classes (C locale, like Lua's <ctype.h> calls) ----------- */

static int is_upper(int c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return is_upper(c) || is_lower(c); }
static int is_alnum(int c) { return is_alpha(c) || is_digit(c); }
static int is_graph(int c) { return c > ' ' && c < 0x7f; }
static int is_punct(int c) { return is_graph(c) && !is_alnum(c); }
static int is_space(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_cntrl(int c) { return c < ' ' || c == 0x7f; }

static int is_xdigit(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Does byte c belong to the class that letter cl names after '%'? An
 * upper-case class letter is the complement; any other byte is literal.
 * "%z" (NUL) is undocumented since Lua 5.2, yet 5.4 still accepts it. */
static int in_class(int c, int cl)
{
    int res;

    switch (is_upper(cl) ? cl - 'A' + 'a' : cl) {
    case 'a': res = is_alpha(c); break;
    case 'c': res = is_cntrl(c); break;
    case 'd': res = is_digit(c); break;
    case 'g': res = is_graph(c); break;
    case 'l': res = is_lower(c); break;
    case 'p': res = is_punct(c); break;
    case 's': res = is_space(c); break;
    case 'u': res = is_upper(c); break;
    case 'w': res = is_alnum(c); break;
    case 'x': res = is_xdigit(c); break;
    case 'z': res = c == 0; break;   /* deprecated in 5.2 but still there */
    default: return cl == c;
    }
    return is_upper(cl) ? !res : res;
}

/* ---- single-character classes ------------------------------------------- */

static int pattern_at(const struct pattern_state *ms, size_t p)
{
    return p < ms->pattern_len ? ms->pattern[p] : 0;
}

/* Set *ep just past the single-character class starting at p (< length):
 * "%x", "[...]" or one byte. Returns 0, or a malformed-pattern error. */
static int class_end(struct pattern_state *ms, size_t p, size_t *ep)
{
    const unsigned char *pat = ms->pattern;
    size_t len = ms->pattern_len;
    size_t first;

    switch (pat[p++]) {
    case ESC:
        if (p == len)
            return PATTERN_EENDSWITHESC;
        *ep = p + 1;
        return 0;
    case '[':
        first = p;
        if (pattern_at(ms, p) == '^')
            p++;
        /* the first member is taken as is, so "[]]" and "[^]]" hold ']' */
        do {
            if (p == len)
                return PATTERN_EMISSINGBRACKET;
            if (pat[p++] == ESC && p < len)
                p++;
        } while (pattern_at(ms, p) != ']');
        if (spend(ms, p - first))
            return PATTERN_EBUDGET;
        *ep = p + 1;
        return 0;
    default:
        *ep = p;
        return 0;
    }
}

/* Is byte c in the set whose '[' is at p and closing ']' at close? Returns
 * 1 or 0, or PATTERN_EBUDGET; each member looked at costs a step. */
static int in_set(struct pattern_state *ms, int c, size_t p, size_t close)
{
    const unsigned char *pat = ms->pattern;
    int found = 0, negated = 0;
    size_t members = 0;

    p++;
    if (pat[p] == '^') {
        negated = 1;
        p++;
    }
    for (; p < close; p++) {
        members++;
        if (pat[p] == ESC) {
            p++;   /* class_end guarantees p <= close here */
            if (in_class(c, pat[p])) {
                found = 1;
                break;
            }
        } else if (p + 2 < close && pat[p + 1] == '-') {
            if (pat[p] <= c && c <= pat[p + 2]) {
                found = 1;
                break;
            }
            p += 2;
        } else if (pat[p] == c) {
            found = 1;
            break;
        }
    }
    if (spend(ms, members))
        return PATTERN_EBUDGET;
    return found != negated;
}

/* Does the class at [p, ep) match the subject byte at s (none at the end)?
 * Returns 1 or 0, or PATTERN_EBUDGET. */
static int single_match(struct pattern_state *ms, size_t s, size_t p,
                        size_t ep)
{
    int c;

    if (spend(ms, 1))
        return PATTERN_EBUDGET;
    if (s >= ms->subject_len)
        return 0;
    c = ms->subject[s];
    switch (ms->pattern[p]) {
    case '.': return 1;
    case ESC: return in_class(c, ms->pattern[p + 1]);
    case '[': return in_set(ms, c, p, ep - 1);
    default: return ms->pattern[p] == c;
    }
}

/* ---- the matcher -------------------------------------------------------- */

static int do_match(struct pattern_state *ms, size_t s, size_t p,
                    size_t *end);

/* "%bxy" with p at x: on a balanced run starting at s sets *after past it.
 * Returns PATTERN_MATCH, PATTERN_NOMATCH or a negative pattern_rc. */
static int match_balance(struct pattern_state *ms, size_t s, size_t p,
                         size_t *after)
{
    const unsigned char *sub = ms->subject;
    size_t depth = 1;
    int open, close;

    if (p + 1 >= ms->pattern_len)
        return PATTERN_EBALANCEARGS;
    open = ms->pattern[p];
    close = ms->pattern[p + 1];
    if (s >= ms->subject_len || sub[s] != open)
        return PATTERN_NOMATCH;
    /* the closer is tested first, so "%baa" pairs each 'a' with the next */
    for (s++; s < ms->subject_len; s++) {
        if (spend(ms, 1))
            return PATTERN_EBUDGET;
        if (sub[s] == close) {
            if (--depth == 0) {
                *after = s + 1;
                return PATTERN_MATCH;
            }
        } else if (sub[s] == open) {
            depth++;
        }
    }
    return PATTERN_NOMATCH;
}

/* "%f[set]" with p just after "%f": matches the empty string at s when the
 * byte before s is not in set and the byte at s is (NUL at either end).
 * Sets *next_p past the set. Returns as match_balance. */
static int match_frontier(struct pattern_state *ms, size_t s, size_t p,
                          size_t *next_p)
{
    size_t ep;
    int prev, cur, rc;

    if (pattern_at(ms, p) != '[')
        return PATTERN_EFRONTIER;
    rc = class_end(ms, p, &ep);
    if (rc < 0)
        return rc;
    prev = s == 0 ? 0 : ms->subject[s - 1];
    cur = s < ms->subject_len ? ms->subject[s] : 0;
    rc = in_set(ms, prev, p, ep - 1);
    if (rc != 0)
        return rc < 0 ? rc : PATTERN_NOMATCH;
    rc = in_set(ms, cur, p, ep - 1);
    if (rc != 1)
        return rc;
    *next_p = ep;
    return PATTERN_MATCH;
}

/* "%1".."%9" (digit is the character): the text of that closed capture
 * must follow at s; a position capture's "length" never fits. Sets *after.
 * Returns as match_balance. */
static int match_backref(struct pattern_state *ms, size_t s, int digit,
                         size_t *after)
{
    int l = digit - '1';
    size_t len;

    if (l < 0 || l >= ms->level ||
        ms->capture[l].len == PATTERN_CAP_UNFINISHED)
        return PATTERN_ECAPINDEX(l + 1);
    len = ms->capture[l].len;
    if (ms->subject_len - s < len)
        return PATTERN_NOMATCH;
    if (spend(ms, 1 + len / PATTERN_BYTES_PER_STEP))
        return PATTERN_EBUDGET;
    if (memcmp(ms->subject + ms->capture[l].start, ms->subject + s, len) != 0)
        return PATTERN_NOMATCH;
    *after = s + len;
    return PATTERN_MATCH;
}

/* "(" at s: open capture kind (unfinished, or a position capture) and match
 * the rest, forgetting the capture if the rest fails. */
static int open_capture(struct pattern_state *ms, size_t s, size_t p,
                        size_t kind, size_t *end)
{
    int rc;

    if (ms->level >= PATTERN_MAXCAPTURES)
        return PATTERN_ETOOMANYCAPTURES;
    ms->capture[ms->level].start = s;
    ms->capture[ms->level].len = kind;
    ms->level++;
    rc = do_match(ms, s, p, end);
    if (rc == PATTERN_NOMATCH)
        ms->level--;
    return rc;
}

/* ")" at s: close the innermost open capture and match the rest, reopening
 * it if the rest fails. */
static int close_capture(struct pattern_state *ms, size_t s, size_t p,
                         size_t *end)
{
    int l, rc;

    for (l = ms->level - 1; l >= 0; l--)
        if (ms->capture[l].len == PATTERN_CAP_UNFINISHED)
            break;
    if (l < 0)
        return PATTERN_EPATTERNCAPTURE;
    ms->capture[l].len = s - ms->capture[l].start;
    rc = do_match(ms, s, p, end);
    if (rc == PATTERN_NOMATCH)
        ms->capture[l].len = PATTERN_CAP_UNFINISHED;
    return rc;
}

/* "x*" (and "x+" after its first byte): take as many as possible, then give
 * them back one at a time until the rest of the pattern matches. */
static int expand_greedy(struct pattern_state *ms, size_t s, size_t p,
                         size_t ep, size_t *end)
{
    size_t count = 0;
    int rc;

    while ((rc = single_match(ms, s + count, p, ep)) == 1)
        count++;
    if (rc < 0)
        return rc;
    for (;;) {
        rc = do_match(ms, s + count, ep + 1, end);
        if (rc != PATTERN_NOMATCH || count == 0)
            return rc;
        count--;
    }
}

/* "x-": try the rest first, taking one more x only when the rest fails. */
static int expand_lazy(struct pattern_state *ms, size_t s, size_t p,
                       size_t ep, size_t *end)
{
    int rc;

    for (;;) {
        rc = do_match(ms, s, ep + 1, end);
        if (rc != PATTERN_NOMATCH)
            return rc;
        rc = single_match(ms, s, p, ep);
        if (rc != 1)
            return rc;
        s++;
    }
}

/* Match pattern items from p against the subject from s. Items Lua handles
 * by a tail call continue the loop; the others recurse via do_match. */
static int match_items(struct pattern_state *ms, size_t s, size_t p,
                       size_t *end)
{
    const unsigned char *pat = ms->pattern;
    size_t ep;
    int rc, next, suffix;

    for (;;) {
        if (spend(ms, 1))
            return PATTERN_EBUDGET;
        if (p == ms->pattern_len) {
            *end = s;
            return PATTERN_MATCH;
        }
        switch (pat[p]) {
        case '(':
            if (pattern_at(ms, p + 1) == ')')
                return open_capture(ms, s, p + 2, PATTERN_CAP_POSITION, end);
            return open_capture(ms, s, p + 1, PATTERN_CAP_UNFINISHED, end);
        case ')':
            return close_capture(ms, s, p + 1, end);
        case '$':
            if (p + 1 != ms->pattern_len)
                break;   /* not last: a literal '$' */
            if (s != ms->subject_len)
                return PATTERN_NOMATCH;
            *end = s;
            return PATTERN_MATCH;
        case ESC:
            next = pattern_at(ms, p + 1);
            if (next == 'b') {
                rc = match_balance(ms, s, p + 2, &s);
                if (rc != PATTERN_MATCH)
                    return rc;
                p += 4;
                continue;
            }
            if (next == 'f') {
                rc = match_frontier(ms, s, p + 2, &p);
                if (rc != PATTERN_MATCH)
                    return rc;
                continue;
            }
            if (is_digit(next)) {
                rc = match_backref(ms, s, next, &s);
                if (rc != PATTERN_MATCH)
                    return rc;
                p += 2;
                continue;
            }
            break;   /* "%a", "%." ...: a single-character class */
        default:
            break;
        }

        /* a single-character class with an optional quantifier */
        rc = class_end(ms, p, &ep);
        if (rc < 0)
            return rc;
        rc = single_match(ms, s, p, ep);
        if (rc < 0)
            return rc;
        suffix = pattern_at(ms, ep);
        if (rc == 0) {
            if (suffix == '*' || suffix == '?' || suffix == '-') {
                p = ep + 1;   /* zero repetitions are fine */
                continue;
            }
            return PATTERN_NOMATCH;
        }
        switch (suffix) {
        case '?':
            rc = do_match(ms, s + 1, ep + 1, end);
            if (rc != PATTERN_NOMATCH)
                return rc;
            p = ep + 1;
            continue;
        case '+':
            return expand_greedy(ms, s + 1, p, ep, end);
        case '*':
            return expand_greedy(ms, s, p, ep, end);
        case '-':
            return expand_lazy(ms, s, p, ep, end);
        default:
            s++;
            p = ep;
            continue;
        }
    }
}

/* One level of Lua's recursive match(): counts nesting like MAXCCALLS. */
static int do_match(struct pattern_state *ms, size_t s, size_t p,
                    size_t *end)
{
    int rc;

    if (ms->depth_left == 0)
        return PATTERN_ETOOCOMPLEX;
    ms->depth_left--;
    rc = match_items(ms, s, p, end);
    ms->depth_left++;
    return rc;
}

/* ---- public interface --------------------------------------------------- */

void pattern_init(struct pattern_state *ms, const char *subject,
                  size_t subject_len, const char *pattern, size_t pattern_len,
                  long *budget)
{
    ms->subject = (const unsigned char *)subject;
    ms->subject_len = subject_len;
    ms->pattern = (const unsigned char *)pattern;
    ms->pattern_len = pattern_len;
    ms->budget = budget;
    ms->depth_left = PATTERN_MAXDEPTH;
    ms->level = 0;
}

int pattern_match_at(struct pattern_state *ms, size_t pos, size_t *end)
{
    ms->level = 0;
    ms->depth_left = PATTERN_MAXDEPTH;
    return do_match(ms, pos, 0, end);
}

int pattern_capture_count(const struct pattern_state *ms,
                          int with_whole_match)
{
    return ms->level == 0 && with_whole_match ? 1 : ms->level;
}

int pattern_capture(const struct pattern_state *ms, int i, size_t match_start,
                    size_t match_end, size_t *start, size_t *len)
{
    const struct pattern_capture *cap;

    if (i >= ms->level) {
        if (i != 0)   /* callers pass i <= 8 here; clamp to stay in range */
            return PATTERN_ECAPINDEX(i > 8 ? 9 : i + 1);
        *start = match_start;
        *len = match_end - match_start;
        return 1;
    }
    cap = &ms->capture[i];
    if (cap->len == PATTERN_CAP_UNFINISHED)
        return PATTERN_EUNFINISHED;
    *start = cap->start;
    if (cap->len == PATTERN_CAP_POSITION)
        return 2;
    *len = cap->len;
    return 1;
}

int pattern_find_plain(const char *subject, size_t subject_len, size_t from,
                       const char *needle, size_t needle_len, long *budget,
                       size_t *at)
{
    size_t pos, last, candidate;
    const char *hit;

    if (pattern_charge(budget, 1))
        return PATTERN_EBUDGET;
    if (from > subject_len)
        return PATTERN_NOMATCH;
    if (needle_len == 0) {   /* the empty string is everywhere */
        *at = from;
        return PATTERN_MATCH;
    }
    if (needle_len > subject_len - from)
        return PATTERN_NOMATCH;
    last = subject_len - needle_len;   /* last possible start */
    for (pos = from; pos <= last; pos = candidate + 1) {
        hit = memchr(subject + pos, (unsigned char)needle[0], last - pos + 1);
        if (!hit)
            return pattern_charge(budget, (last - pos) / PATTERN_BYTES_PER_STEP)
                       ? PATTERN_EBUDGET : PATTERN_NOMATCH;
        candidate = (size_t)(hit - subject);
        if (pattern_charge(budget, 1 + (candidate - pos) / PATTERN_BYTES_PER_STEP +
                                       needle_len / PATTERN_BYTES_PER_STEP))
            return PATTERN_EBUDGET;
        if (memcmp(hit + 1, needle + 1, needle_len - 1) == 0) {
            *at = candidate;
            return PATTERN_MATCH;
        }
    }
    return PATTERN_NOMATCH;
}

int pattern_has_specials(const char *pattern, size_t pattern_len)
{
    /* sizeof - 1: a NUL byte in the pattern is not special */
    for (size_t i = 0; i < pattern_len; i++)
        if (memchr(SPECIALS, (unsigned char)pattern[i], sizeof SPECIALS - 1))
            return 1;
    return 0;
}

const char *pattern_strerror(int rc)
{
    static const char *const capture_index[] = {
        "invalid capture index %0", "invalid capture index %1",
        "invalid capture index %2", "invalid capture index %3",
        "invalid capture index %4", "invalid capture index %5",
        "invalid capture index %6", "invalid capture index %7",
        "invalid capture index %8", "invalid capture index %9",
    };

    switch (rc) {
    case PATTERN_EBUDGET: return PATTERN_BUDGET_MESSAGE;
    case PATTERN_ETOOCOMPLEX: return "pattern too complex";
    case PATTERN_EENDSWITHESC: return "malformed pattern (ends with '%')";
    case PATTERN_EMISSINGBRACKET: return "malformed pattern (missing ']')";
    case PATTERN_EBALANCEARGS:
        return "malformed pattern (missing arguments to '%b')";
    case PATTERN_EFRONTIER: return "missing '[' after '%f' in pattern";
    case PATTERN_EPATTERNCAPTURE: return "invalid pattern capture";
    case PATTERN_ETOOMANYCAPTURES: return "too many captures";
    case PATTERN_EUNFINISHED: return "unfinished capture";
    default:
        if (rc <= PATTERN_ECAPINDEX0 && rc >= PATTERN_ECAPINDEX9)
            return capture_index[PATTERN_ECAPINDEX0 - rc];
        return "unknown pattern error";
    }
}
