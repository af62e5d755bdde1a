/* pattern.h - Lua 5.4 string pattern matching that charges every step to a
 * caller's budget, so a catastrophic pattern stops like a runaway loop.
 *
 * Pure: no Lua, no globals, no allocation. Semantics are exactly those of
 * Lua 5.4's find/match/gmatch/gsub matcher, quirks included: errors are
 * found lazily (only when the matcher reaches the bad spot), the end of the
 * subject reads as a NUL byte for %f, a back-reference to a position
 * capture never matches, nesting is limited to PATTERN_MAXDEPTH calls,
 * character classes are those of the C locale and the undocumented "%z"
 * (a NUL byte) still works. Subjects and patterns are
 * (pointer, length) pairs and may contain NUL bytes; all positions are
 * 0-based size_t offsets.
 *
 * Usage: pattern_init() once per (subject, pattern), then
 * pattern_match_at() per start position (it resets the captures), then
 * pattern_capture_count() and pattern_capture() to read the captures. An
 * anchoring '^' is the caller's business, as in Lua: find, match and gsub
 * strip it and try one position; gmatch keeps it as a literal.
 *
 * Cost, in budget units: 1 per matcher step (each pattern item tried, each
 * single-character test, each backtracking retry of * + - ?), 1 per set
 * member tested and per set byte scanned, 1 per subject byte %b scans, and
 * 1 per PATTERN_BYTES_PER_STEP bytes compared by a back-reference or the
 * plain search. */
#ifndef HF_PATTERN_H
#define HF_PATTERN_H

#include <stddef.h>

#define PATTERN_MAXCAPTURES 32   /* LUA_MAXCAPTURES */
#define PATTERN_MAXDEPTH 200     /* MAXCCALLS: nested matcher calls */

/* The budget's terms for every function that charges it (here,
 * policy_strlib.c, policy_tablib.c, policy_charge.c): bulk copies,
 * compares and scans cost one unit per PATTERN_BYTES_PER_STEP bytes, and
 * a spent budget raises PATTERN_BUDGET_MESSAGE. */
#define PATTERN_BYTES_PER_STEP 16
#define PATTERN_BUDGET_MESSAGE "policy exceeded its instruction budget"

/* Values of pattern_capture.len that are not lengths. */
#define PATTERN_CAP_UNFINISHED ((size_t)-1)   /* "(" seen, ")" not yet */
#define PATTERN_CAP_POSITION ((size_t)-2)     /* "()" */

enum pattern_rc {
    PATTERN_NOMATCH = 0,
    PATTERN_MATCH = 1,
    PATTERN_EBUDGET = -1,        /* *budget reached <= 0: not Lua's, ours */
    PATTERN_ETOOCOMPLEX = -2,    /* nesting deeper than PATTERN_MAXDEPTH */
    PATTERN_EENDSWITHESC = -3,   /* pattern ends with '%' */
    PATTERN_EMISSINGBRACKET = -4, /* '[' without ']' */
    PATTERN_EBALANCEARGS = -5,   /* "%b" without two characters */
    PATTERN_EFRONTIER = -6,      /* "%f" not followed by '[' */
    PATTERN_EPATTERNCAPTURE = -7, /* ')' closing nothing */
    PATTERN_ETOOMANYCAPTURES = -8, /* more than PATTERN_MAXCAPTURES */
    PATTERN_EUNFINISHED = -9,    /* match ended inside an open capture */
    /* "invalid capture index %N", N = 0..9, is PATTERN_ECAPINDEX(N) */
    PATTERN_ECAPINDEX0 = -20,
    PATTERN_ECAPINDEX9 = -29,
};

#define PATTERN_ECAPINDEX(n) (PATTERN_ECAPINDEX0 - (n))

struct pattern_capture {
    size_t start;   /* offset in the subject */
    size_t len;     /* bytes, or PATTERN_CAP_UNFINISHED / _POSITION */
};

/* The matcher's state; fields are read-only to callers. */
struct pattern_state {
    const unsigned char *subject;
    size_t subject_len;
    const unsigned char *pattern;
    size_t pattern_len;
    long *budget;        /* shared step budget, decremented in place */
    int depth_left;      /* nested matcher calls still allowed */
    int level;           /* captures opened so far */
    struct pattern_capture capture[PATTERN_MAXCAPTURES];
};

/* Prepare ms to match pattern against subject, charging *budget; both
 * strings must outlive ms. Cannot fail (returns nothing). */
void pattern_init(struct pattern_state *ms, const char *subject,
                  size_t subject_len, const char *pattern, size_t pattern_len,
                  long *budget);

/* Match the whole pattern at subject offset pos (<= subject_len), setting
 * *end to the offset just past the match. Returns PATTERN_MATCH,
 * PATTERN_NOMATCH, or a negative pattern_rc (PATTERN_EBUDGET when the
 * budget ran out, else a malformed-pattern error Lua would raise). */
int pattern_match_at(struct pattern_state *ms, size_t pos, size_t *end);

/* How many values a successful match yields: the captures, or 1 (the whole
 * match) when there are none and with_whole_match is set. Returns 0 when
 * there are no captures and with_whole_match is 0 (never fails). */
int pattern_capture_count(const struct pattern_state *ms,
                          int with_whole_match);

/* Capture i (0-based) of the last successful match that spanned
 * [match_start, match_end): a string capture sets *start and *len and
 * returns 1; a position capture sets *start (0-based) and returns 2;
 * i == 0 without captures yields the whole match. i is below
 * pattern_capture_count() or, for a "%1".."%9" in a gsub replacement, at
 * most 8. Returns PATTERN_EUNFINISHED or PATTERN_ECAPINDEX(i + 1) on
 * failure. */
int pattern_capture(const struct pattern_state *ms, int i, size_t match_start,
                    size_t match_end, size_t *start, size_t *len);

/* Plain substring search (string.find's "plain" path): the first offset
 * >= from where needle occurs, in *at. Returns PATTERN_MATCH,
 * PATTERN_NOMATCH, or PATTERN_EBUDGET when the budget ran out. */
int pattern_find_plain(const char *subject, size_t subject_len, size_t from,
                       const char *needle, size_t needle_len, long *budget,
                       size_t *at);

/* 1 when pattern holds one of Lua's special characters "^$*+?.([%-", so
 * string.find must run the matcher; 0 means a plain search is exact (this
 * cannot fail). */
int pattern_has_specials(const char *pattern, size_t pattern_len);

/* Subtract cost from *budget, saturating instead of overflowing. Returns 1
 * when the budget is spent (now <= 0), else 0. */
int pattern_charge(long *budget, size_t cost);

/* Lua's exact error message for a negative pattern_rc (the budget one is
 * hostflow's); returns "unknown pattern error" for anything else. */
const char *pattern_strerror(int rc);

#endif
