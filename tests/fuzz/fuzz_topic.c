/*  fuzz_topic - libFuzzer target for topic names and subscription patterns:
 *  slc_topic_validate, slc_pattern_validate, slc_pattern_is_literal,
 *  slc_pattern_match and slc_pattern_covers, and for slc_text_valid, the
 *  rule every string field of a frame meets first (UTF-8 without NUL).
 *  Input: PATTERN '\n' TOPIC (no '\n': the whole input is both); each half
 *  may hold NULs, as a name on the wire may. slc's answers are checked
 *  against small, deliberately naive references written from proto/slc.h
 *  and ref_text.h, and the documented invariants.
 *  Single thread; no state between inputs.  */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ref_text.h"
#include "slc.h"

/* Like assert, but kept under NDEBUG and naming the input's halves. */
#define S_CHECK(cond, p, t) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_topic: %s:%d: check failed: %s\n" \
                    "  pattern \"%s\"\n  topic   \"%s\"\n", \
                    __FILE__, __LINE__, #cond, p, t); \
            abort(); \
        } \
    } while (0)

#define S_WORDS_MAX (SLC_TOPIC_MAX / 2 + 1)

typedef struct {
    const char *w[S_WORDS_MAX];
    size_t len[S_WORDS_MAX];
    size_t n;
} s_words_t;

static bool s_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Split S at every '.'; false when a word is empty or there are too many. */
static bool s_split(const char *s, s_words_t *out)
{
    out->n = 0;
    const char *w = s;
    while (true) {
        const char *dot = strchr(w, '.');
        size_t len = dot ? (size_t) (dot - w) : strlen(w);
        if (len == 0 || out->n == S_WORDS_MAX)
            return false;
        out->w[out->n] = w;
        out->len[out->n++] = len;
        if (!dot)
            return true;
        w = dot + 1;
    }
}

static bool s_is(const s_words_t *ws, size_t i, char c)
{
    return ws->len[i] == 1 && ws->w[i][0] == c;
}

/* The rules of slc.h, written the obvious way. */
static bool s_ref_valid(const char *s, bool pattern, bool allow_reserved)
{
    s_words_t ws;
    size_t len = strlen(s);
    if (len == 0 || len > SLC_TOPIC_MAX || !s_split(s, &ws))
        return false;
    if (s[0] == '_' && !pattern && !allow_reserved)
        return false;
    for (size_t i = 0; i < ws.n; i++) {
        if (pattern && s_is(&ws, i, '*'))
            continue;
        if (pattern && s_is(&ws, i, '>')) {
            if (i + 1 != ws.n)
                return false;
            continue;
        }
        for (size_t k = 0; k < ws.len[i]; k++)
            if (!s_word_char(ws.w[i][k]))
                return false;
    }
    return true;
}

/* '*' is one word, a final '>' one or more; a wildcard first word never
 * matches a reserved topic. Both arguments valid. */
static bool s_ref_match(const char *pattern, const char *topic)
{
    s_words_t p, t;
    if (!s_split(pattern, &p) || !s_split(topic, &t))
        return false;
    bool reserved = topic[0] == '_';
    for (size_t i = 0; i < p.n; i++) {
        bool wild = s_is(&p, i, '*') || s_is(&p, i, '>');
        if (wild && i == 0 && reserved)
            return false;
        if (s_is(&p, i, '>'))
            return t.n > i;
        if (i >= t.n)
            return false;
        if (!wild && (p.len[i] != t.len[i]
                      || memcmp(p.w[i], t.w[i], p.len[i]) != 0))
            return false;
    }
    return p.n == t.n;
}

static bool s_ref_literal(const char *pattern)
{
    s_words_t p;
    if (!s_split(pattern, &p))
        return true;
    for (size_t i = 0; i < p.n; i++)
        if (s_is(&p, i, '*') || s_is(&p, i, '>'))
            return false;
    return true;
}

/* Everything about one string on its own. */
static void s_check_one(const char *s)
{
    bool topic = slc_topic_validate(s, false) == 0;
    bool reserved = slc_topic_validate(s, true) == 0;
    bool pattern = slc_pattern_validate(s) == 0;
    S_CHECK(topic == s_ref_valid(s, false, false), s, s);
    S_CHECK(reserved == s_ref_valid(s, false, true), s, s);
    S_CHECK(pattern == s_ref_valid(s, true, true), s, s);
    S_CHECK(!topic || reserved, s, s);
    /* A topic name is a literal pattern that matches itself. */
    if (reserved) {
        S_CHECK(pattern, s, s);
        S_CHECK(slc_pattern_is_literal(s), s, s);
        S_CHECK(slc_pattern_match(s, s), s, s);
        /* '>' alone: every non-reserved topic, never a reserved one. */
        S_CHECK(slc_pattern_match(">", s) == (s[0] != '_'), s, s);
    }
    if (pattern)
        S_CHECK(slc_pattern_is_literal(s) == s_ref_literal(s), s, s);
}

/* A name as a frame carries it: N bytes at S, NULs included (S[N] is 0).
 * The broker takes it only when it is whole text and valid as a C string:
 * a name that holds a NUL is refused whatever its first part is, so
 * "shop.a\0hr.salaries" never counts as shop.a. */
static void s_check_wire(const char *s, size_t n)
{
    bool text = slc_text_valid(s, n);
    S_CHECK(text == ref_text_valid((const uint8_t *) s, n), s, s);
    bool nul = memchr(s, 0, n) != NULL;
    S_CHECK(!(text && nul), s, s);
    bool topic = text && slc_topic_validate(s, true) == 0;
    bool pattern = text && slc_pattern_validate(s) == 0;
    if (nul)
        S_CHECK(!topic && !pattern, s, s);
    /* The grammar is ASCII: a name that passes is all of its bytes. */
    if (topic || pattern)
        S_CHECK(strlen(s) == n, s, s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    /* Split on the bytes, past any NUL; as C strings the validators see
     * each half up to its first NUL, as protobuf-c's strings ended. */
    char *nl = memchr(buf, '\n', size);
    const char *pattern = buf, *topic = buf;
    size_t plen = size, tlen = size;
    if (nl) {
        *nl = 0;
        topic = nl + 1;
        plen = (size_t) (nl - buf);
        tlen = size - plen - 1;
    }
    s_check_wire(pattern, plen);
    if (topic != pattern)
        s_check_wire(topic, tlen);
    s_check_one(pattern);
    if (topic != pattern)
        s_check_one(topic);
    if (slc_pattern_validate(pattern) == 0
        && slc_topic_validate(topic, true) == 0) {
        bool m = slc_pattern_match(pattern, topic);
        S_CHECK(m == s_ref_match(pattern, topic), pattern, topic);
        /* A literal pattern matches exactly the equal topic. */
        if (slc_pattern_is_literal(pattern))
            S_CHECK(m == (strcmp(pattern, topic) == 0), pattern, topic);
        /* A topic is a literal pattern: a grant covers it exactly when it
         * matches it (the ACL check of docs/security.md). */
        S_CHECK(slc_pattern_covers(pattern, topic) == m, pattern, topic);
    }
    /* Every grant covers itself. */
    if (slc_pattern_validate(pattern) == 0)
        S_CHECK(slc_pattern_covers(pattern, pattern), pattern, topic);
    free(buf);
    return 0;
}
