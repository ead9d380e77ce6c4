/*  test_slc - the shared slc library: topic names, patterns and matching,
 *  the text rule of string fields (UTF-8 without NUL), result-code names
 *  and retryability, big-endian helpers, clocks.
 *  Pure functions only: no sockets, no files; single thread.
 *  The wire codec has its own test (test_codec).  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slc.h"

/* Every code in sluice_codes.h, for the tables below. */
static const int s_codes[] = {
    SL_EMALFORMED, SL_ENOSESSION, SL_EDENIED, SL_ENOTFOUND, SL_ECOMMAND, SL_EAUTH,
    SL_ETIMEOUT, SL_ESTALE, SL_EEXIST, SL_ETOOBIG, SL_EINVAL, SL_EVERSION,
    SL_EBUSY, SL_EINTERNAL, SL_ESTORE, SL_EUNAVAIL, SL_ENOMEM, SL_ESYS,
    SL_EFULL,
};
#define N_CODES (sizeof s_codes / sizeof s_codes[0])

static void test_topic_valid(void **state)
{
    (void) state;
    static const char *good[] = {
        "a", "shop", "shop.orders.eu", "A-b_c.0-9", "x.y.z.w.v", "a_b",
        "a._private",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (slc_topic_validate(good[i], false) != 0)
            fail_msg("\"%s\" refused", good[i]);
    /* Exactly SLC_TOPIC_MAX bytes passes. */
    char name[SLC_TOPIC_MAX + 2];
    memset(name, 'a', sizeof name);
    name[SLC_TOPIC_MAX] = 0;
    for (size_t i = 10; i < SLC_TOPIC_MAX; i += 10)
        name[i] = '.';
    assert_int_equal(slc_topic_validate(name, false), 0);
    assert_int_equal(slc_pattern_validate(name), 0);
}

static void test_topic_invalid(void **state)
{
    (void) state;
    static const char *bad[] = {
        "", ".", "a.", ".a", "a..b", "a b", "a/b", "a*", "*", ">", "a.*",
        "a.>", "ä", "a\tb", "a:b", "a#b", "a+b", "a.b.",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (slc_topic_validate(bad[i], false) != SL_EINVAL)
            fail_msg("topic \"%s\" accepted", bad[i]);
        if (slc_topic_validate(bad[i], true) != SL_EINVAL)
            fail_msg("topic \"%s\" accepted as reserved", bad[i]);
    }
    assert_int_equal(slc_topic_validate(NULL, true), SL_EINVAL);

    /* SLC_TOPIC_MAX + 1 = 256 bytes is too long, and so is far longer. */
    char name[1024];
    memset(name, 'a', sizeof name);
    name[SLC_TOPIC_MAX + 1] = 0;
    assert_int_equal(strlen(name), 256);
    assert_int_equal(slc_topic_validate(name, true), SL_EINVAL);
    assert_int_equal(slc_pattern_validate(name), SL_EINVAL);
    name[sizeof name - 1] = 0;
    assert_int_equal(slc_topic_validate(name, true), SL_EINVAL);
}

static void test_topic_reserved(void **state)
{
    (void) state;
    static const char *reserved[] = { "_dlq.orders", "_audit", "_alerts", "_" };
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        assert_int_equal(slc_topic_validate(reserved[i], false), SL_EINVAL);
        assert_int_equal(slc_topic_validate(reserved[i], true), 0);
    }
    /* '_' later in the name, or in a later word, is an ordinary character. */
    assert_int_equal(slc_topic_validate("a_b._c", false), 0);
    /* Reserving does not loosen anything else. */
    assert_int_equal(slc_topic_validate("_a..b", true), SL_EINVAL);
}

static void test_pattern_validate(void **state)
{
    (void) state;
    static const char *good[] = {
        "a", "a.b", "*", ">", "a.*", "*.b", "a.*.c", "*.*", "a.>", "*.>",
        "a.*.>", "_dlq.>", "_dlq.*", "_audit",
    };
    static const char *bad[] = {
        "", ".", "a.", "a..b", ">.a", "a.>.b", ">.>", "a>", "a*", "*a",
        "a.b*", "**", ">>", "a.>>", "a b", "a.>.", "*.",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (slc_pattern_validate(good[i]) != 0)
            fail_msg("pattern \"%s\" refused", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (slc_pattern_validate(bad[i]) != SL_EINVAL)
            fail_msg("pattern \"%s\" accepted", bad[i]);
    assert_int_equal(slc_pattern_validate(NULL), SL_EINVAL);

    assert_true(slc_pattern_is_literal("a.b.c"));
    assert_true(slc_pattern_is_literal("_dlq.x"));
    assert_true(slc_pattern_is_literal("a-*"));         /* not a valid pattern */
    assert_false(slc_pattern_is_literal("*"));
    assert_false(slc_pattern_is_literal(">"));
    assert_false(slc_pattern_is_literal("a.*"));
    assert_false(slc_pattern_is_literal("a.*.c"));
    assert_false(slc_pattern_is_literal("a.>"));
}

/* Every byte value 1-255 at the start, middle and end of a word: a topic
 * or pattern takes exactly [A-Za-z0-9_-] there (and '.', '*', '>' only as
 * separators and whole wildcard words). Nothing beyond the grammar, UTF-8
 * included, gets through. */
static void test_names_every_byte(void **state)
{
    (void) state;
    for (int c = 1; c < 256; c++) {
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                 || (c >= '0' && c <= '9') || c == '_' || c == '-';
        static const char *const forms[] = { "Xab.cd", "ab.cXd", "ab.cdX", "ab.X" };
        for (size_t k = 0; k < sizeof forms / sizeof forms[0]; k++) {
            char name[8];
            snprintf(name, sizeof name, "%s", forms[k]);
            *strchr(name, 'X') = (char) c;
            bool topic = slc_topic_validate(name, true) == 0;
            bool pattern = slc_pattern_validate(name) == 0;
            bool want = word || (k == 1 && c == '.');     /* "ab.c.d" */
            bool wild = k == 3 && (c == '*' || c == '>');
            if (topic != want || pattern != (want || wild))
                fail_msg("byte 0x%02x in \"%s\": topic %d pattern %d", c, forms[k],
                         topic, pattern);
        }
    }
}

/* slc_text_valid: UTF-8 (RFC 3629) without NUL, every length counted. */
static void test_text_valid(void **state)
{
    (void) state;
    static const struct { const char *s; size_t n; bool ok; } cases[] = {
        { "", 0, true },
        { "shop.orders", 11, true },
        { "a\0b", 3, false },
        { "\0", 1, false },
        { "ab\0", 3, false },
        { "caf\xc3\xa9", 5, true },                     /* U+00E9 */
        { "\xe2\x98\x95", 3, true },                    /* U+2615 */
        { "\xf0\x9d\x84\x9e", 4, true },                /* U+1D11E */
        { "\xc2\x80", 2, true },                        /* smallest 2-byte */
        { "\xef\xbf\xbf", 3, true },                    /* U+FFFF */
        { "\xf4\x8f\xbf\xbf", 4, true },                /* U+10FFFF */
        { "\xee\x80\x80", 3, true },                    /* U+E000, after surrogates */
        { "\x7f", 1, true },
        { "\x80", 1, false },                           /* lone continuation */
        { "\xc3", 1, false },                           /* cut */
        { "\xc3\x28", 2, false },
        { "\xc0\xaf", 2, false },                       /* overlong */
        { "\xc1\xbf", 2, false },
        { "\xe0\x9f\xbf", 3, false },                   /* overlong 3-byte */
        { "\xf0\x8f\xbf\xbf", 4, false },               /* overlong 4-byte */
        { "\xed\xa0\x80", 3, false },                   /* U+D800 */
        { "\xed\xbf\xbf", 3, false },                   /* U+DFFF */
        { "\xf4\x90\x80\x80", 4, false },               /* U+110000 */
        { "\xf5\x80\x80\x80", 4, false },
        { "\xff", 1, false },
        { "\xe2\x82", 2, false },
        { "\xe2\x82\xac\xe2\x82", 5, false },           /* a good one, then cut */
        { "\xc3\xa9\0", 3, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (slc_text_valid(cases[i].s, cases[i].n) != cases[i].ok)
            fail_msg("case %zu: expected %s", i, cases[i].ok ? "valid" : "invalid");
    /* Only LEN bytes are read: a string cut before its bad byte is fine. */
    assert_true(slc_text_valid("ab\xff", 2));
    assert_true(slc_text_valid(NULL, 0));
}

typedef struct {
    const char *pattern, *topic;
    bool match;
} match_case_t;

static void test_pattern_match(void **state)
{
    (void) state;
    static const match_case_t cases[] = {
        /* literal */
        { "a", "a", true },
        { "a.b", "a.b", true },
        { "a.b", "a.c", false },
        { "a.b", "a", false },
        { "a", "a.b", false },
        { "a", "ab", false },
        { "ab", "a", false },
        { "a.bc", "a.b", false },
        { "shop.orders", "shop.orders.eu", false },
        /* '*' is exactly one word */
        { "*", "a", true },
        { "*", "a.b", false },
        { "a.*", "a.b", true },
        { "a.*", "a", false },
        { "a.*", "a.b.c", false },
        { "*.b", "a.b", true },
        { "*.b", "a.c", false },
        { "a.*.c", "a.x.c", true },
        { "a.*.c", "a.x.y.c", false },
        { "*.*", "a.b", true },
        { "*.*", "a", false },
        /* '>' is one or more words */
        { ">", "a", true },
        { ">", "a.b.c", true },
        { "a.>", "a.b", true },
        { "a.>", "a.b.c.d", true },
        { "a.>", "a", false },
        { "a.>", "b.c", false },
        { "a.*.>", "a.b.c", true },
        { "a.*.>", "a.b", false },
        { "*.>", "a.b", true },
        { "*.>", "a", false },
        /* reserved topics: never reached by a wildcard in the first word */
        { ">", "_audit", false },
        { ">", "_dlq.orders", false },
        { "*", "_audit", false },
        { "*.orders", "_dlq.orders", false },
        { "*.>", "_dlq.orders", false },
        { "_audit", "_audit", true },
        { "_dlq.*", "_dlq.orders", true },
        { "_dlq.>", "_dlq.orders.x", true },
        { "_dlq.>", "_dlq", false },
        /* '_' in a later word is not reserved */
        { "a.*", "a._b", true },
        { "a.>", "a._b.c", true },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(slc_pattern_validate(cases[i].pattern), 0);
        if (slc_pattern_match(cases[i].pattern, cases[i].topic) != cases[i].match)
            fail_msg("\"%s\" vs \"%s\": expected %s", cases[i].pattern,
                     cases[i].topic, cases[i].match ? "match" : "no match");
    }
}

static void test_pattern_covers(void **state)
{
    (void) state;
    static const struct {
        const char *grant, *pattern;
        bool covers;
    } cases[] = {
        { "shop.orders", "shop.orders", true },
        { "shop.orders", "shop.refunds", false },
        { "shop.*", "shop.orders", true },
        { "shop.*", "shop.*", true },
        { "shop.*", "shop.>", false },
        { "shop.*", "shop.orders.eu", false },
        { "shop.>", "shop.orders.eu", true },
        { "shop.>", "shop.*", true },
        { "shop.>", "shop.>", true },
        { "shop.>", "shop", false },
        { "shop.>", "shop.*.eu", true },
        { "shop.*.eu", "shop.*.eu", true },
        { "shop.*.eu", "shop.*.us", false },
        { "shop.*.eu", "shop.>", false },
        { "shop.orders", "shop.*", false },
        { "shop.orders", "shop.>", false },
        { ">", "shop.orders", true },
        { ">", ">", true },
        { ">", "*", true },
        { "*", ">", false },
        { "*", "*", true },
        /* reserved topics are covered only by naming them */
        { ">", "_audit", false },
        { "*", "_audit", false },
        { "*.>", "_dlq.orders", false },
        { "_audit", "_audit", true },
        { "_dlq.>", "_dlq.orders", true },
        { "_dlq.>", "_dlq.*", true },
        { "_dlq.*", "_dlq.>", false },
    };
    static const char *const topics[] = {
        "shop", "shop.orders", "shop.refunds", "shop.orders.eu", "shop.x.eu",
        "shop.x.us", "hr", "hr.salaries", "_audit", "_dlq.orders", "_dlq.a.b",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(slc_pattern_validate(cases[i].grant), 0);
        assert_int_equal(slc_pattern_validate(cases[i].pattern), 0);
        if (slc_pattern_covers(cases[i].grant, cases[i].pattern) != cases[i].covers)
            fail_msg("grant \"%s\" vs pattern \"%s\": expected %s", cases[i].grant,
                     cases[i].pattern, cases[i].covers ? "covers" : "does not cover");
        /* Covering means: no topic matches the pattern but not the grant. */
        if (cases[i].covers)
            for (size_t t = 0; t < sizeof topics / sizeof topics[0]; t++)
                if (slc_pattern_match(cases[i].pattern, topics[t])
                    && !slc_pattern_match(cases[i].grant, topics[t]))
                    fail_msg("\"%s\" covers \"%s\" but not topic %s", cases[i].grant,
                             cases[i].pattern, topics[t]);
    }
}

static void test_strerror(void **state)
{
    (void) state;
    assert_string_equal(slc_strerror(SL_OK), "success");
    for (size_t i = 0; i < N_CODES; i++) {
        int code = s_codes[i];
        const char *text = slc_strerror(code);
        assert_non_null(text);
        if (strcmp(text, "unknown error") == 0)
            fail_msg("code %d has no name", code);
        /* The positive wire form names the same error. */
        assert_string_equal(slc_strerror(-code), text);
        /* No two codes share a text. */
        for (size_t j = 0; j < i; j++)
            if (strcmp(slc_strerror(s_codes[j]), text) == 0)
                fail_msg("codes %d and %d share \"%s\"", s_codes[j], code, text);
    }
    assert_string_equal(slc_strerror(SL_EINVAL), "invalid argument");
    assert_string_equal(slc_strerror(422), "invalid argument");
    static const int unknown[] = { -1, 1, -499, 200, 600, -600, INT32_MIN, INT32_MAX };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        assert_string_equal(slc_strerror(unknown[i]), "unknown error");
}

static void test_retryable(void **state)
{
    (void) state;
    static const int retry[] = {
        SL_ETIMEOUT, SL_EBUSY, SL_EUNAVAIL, SL_EFULL, SL_ENOSESSION,
    };
    for (size_t i = 0; i < N_CODES; i++) {
        bool want = false;
        for (size_t j = 0; j < sizeof retry / sizeof retry[0]; j++)
            if (s_codes[i] == retry[j])
                want = true;
        if (slc_retryable(s_codes[i]) != want || slc_retryable(-s_codes[i]) != want)
            fail_msg("slc_retryable(%d) should be %d", s_codes[i], want);
    }
    assert_false(slc_retryable(SL_OK));
    assert_false(slc_retryable(-1));
}

static void test_big_endian(void **state)
{
    (void) state;
    uint8_t b[8];
    slc_put_be32(b, 0x01020304u);
    assert_memory_equal(b, "\x01\x02\x03\x04", 4);
    assert_int_equal(slc_get_be32(b), 0x01020304u);
    slc_put_be64(b, 0x0102030405060708ull);
    assert_memory_equal(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(slc_get_be64(b), 0x0102030405060708ull);

    static const uint64_t values[] = {
        0, 1, 0xff, 0x100, 0x7fffffff, 0x80000000u, 0xffffffffu,
        0x100000000ull, 0x8000000000000000ull, UINT64_MAX, 0xdeadbeefcafef00dull,
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        slc_put_be64(b, values[i]);
        assert_int_equal(slc_get_be64(b), values[i]);
        slc_put_be32(b, (uint32_t) values[i]);
        assert_int_equal(slc_get_be32(b), (uint32_t) values[i]);
    }
    /* Byte order is numeric order: what LMDB keys rely on. */
    uint8_t lo[8], hi[8];
    slc_put_be64(lo, 0x00000000000000ffull);
    slc_put_be64(hi, 0x0000000000000100ull);
    assert_true(memcmp(lo, hi, 8) < 0);
    slc_put_be64(lo, 0x7fffffffffffffffull);
    slc_put_be64(hi, 0x8000000000000000ull);
    assert_true(memcmp(lo, hi, 8) < 0);
}

/* An id set: each id once, in the order first added; it grows past its
 * first allocation. */
static void test_idset(void **state)
{
    (void) state;
    uint32_t *v = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t id = 1; id <= 40; id++)
        assert_int_equal(slc_idset_add(&v, &n, &cap, id), 0);
    for (uint32_t id = 40; id >= 1; id--)
        assert_int_equal(slc_idset_add(&v, &n, &cap, id), 0);
    assert_int_equal(slc_idset_add(&v, &n, &cap, 7), 0);
    assert_int_equal(n, 40);
    assert_true(cap >= 40);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(v[i], i + 1);
    assert_int_equal(slc_idset_add(&v, &n, &cap, 0), 0);
    assert_int_equal(n, 41);
    assert_int_equal(v[40], 0);
    free(v);
}

/* A pool keeps what it is given and frees it all at once (LeakSanitizer
 * in the sanitizer build sees a leak if it does not); it is empty again. */
static void test_pool(void **state)
{
    (void) state;
    slc_pool_t pool = { 0 };
    for (int i = 0; i < 100; i++) {
        int *n = slc_pool_alloc(&pool, sizeof *n);
        assert_non_null(n);
        assert_int_equal(*n, 0);
    }
    assert_string_equal(slc_pool_strdup(&pool, "kept"), "kept");
    assert_string_equal(slc_pool_strdup(&pool, NULL), "");
    assert_null(slc_pool_keep(&pool, NULL));
    assert_int_equal(pool.n, 102);
    slc_pool_free(&pool);
    assert_int_equal(pool.n, 0);
    assert_null(pool.v);
    slc_pool_free(&pool);       /* twice is harmless */
}

static void test_clocks(void **state)
{
    (void) state;
    uint64_t now = slc_now_us();
    assert_true(now > 1600000000ull * 1000000u);        /* after 2020 */
    uint64_t a = slc_mono_ms(), b = slc_mono_ms();
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_valid),
        cmocka_unit_test(test_topic_invalid),
        cmocka_unit_test(test_topic_reserved),
        cmocka_unit_test(test_pattern_validate),
        cmocka_unit_test(test_names_every_byte),
        cmocka_unit_test(test_text_valid),
        cmocka_unit_test(test_pattern_match),
        cmocka_unit_test(test_pattern_covers),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_retryable),
        cmocka_unit_test(test_big_endian),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_idset),
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
