/*  test_schema - slt_schema: every keyword of the subset accepting and
 *  refusing, the exact pointers and texts of the reasons, $ref with a
 *  cycle, what compile refuses (and where it says), the limits, the
 *  compatibility modes with every reason listed, and slt_schema_type_at.
 *  Documents are cJSON trees read by slt_doc_parse, as the broker reads
 *  them. Pure functions on memory; single thread, but for one test where
 *  two threads validate against one schema at once.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "slt_doc.h"
#include "slt_schema.h"

#define S_ERRS 16

static slt_schema_t *s_compile(const char *text)
{
    slt_schema_t *s = NULL;
    char err[256] = "";
    int rc = slt_schema_compile(text, strlen(text), &s, err, sizeof err);
    if (rc != 0)
        fail_msg("schema %s refused (%d): %s", text, rc, err);
    return s;
}

/* Compile must fail with CODE and an ERR equal to WANT. */
static void s_refused(const char *text, int code, const char *want)
{
    slt_schema_t *s = (slt_schema_t *) 1;
    char err[256] = "";
    int rc = slt_schema_compile(text, strlen(text), &s, err, sizeof err);
    if (rc != code)
        fail_msg("schema %s: rc %d, expected %d (%s)", text, rc, code, err);
    assert_null(s);
    assert_string_equal(err, want);
}

/* Compile must fail with SL_EINVAL because slt_doc_parse refused TEXT:
 * ERR is "not JSON: " then slt_doc_parse's reason, which starts with
 * WANT_START and contains WANT_IN (its exact words are test_doc's). */
static void s_not_json(const char *text, const char *want_start,
                       const char *want_in)
{
    slt_schema_t *s = (slt_schema_t *) 1;
    char err[256] = "", start[128];
    int rc = slt_schema_compile(text, strlen(text), &s, err, sizeof err);
    if (rc != SL_EINVAL)
        fail_msg("schema %s: rc %d, expected %d (%s)", text, rc, SL_EINVAL, err);
    assert_null(s);
    snprintf(start, sizeof start, "not JSON: %s", want_start);
    if (strncmp(err, start, strlen(start)) || !strstr(err, want_in))
        fail_msg("schema %s: \"%s\" does not start with \"%s\" and hold \"%s\"",
                 text, err, start, want_in);
}

/* DOC parsed by slt_doc_parse (caller owns: cJSON_Delete); fails the test
 * when it is refused. */
static cJSON *s_doc(const char *doc)
{
    cJSON *j = NULL;
    char err[256] = "";
    if (slt_doc_parse(doc, strlen(doc), &j, err, sizeof err) != 0)
        fail_msg("test document %.200s: %s", doc, err);
    return j;
}

/* The reasons as "pointer: rule" lines, "" when there are none. */
static void s_lines(const slt_schema_error_t *errs, size_t n, char *out,
                    size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(out + len, size - len, "%s%s: %s", i ? "\n" : "",
                         errs[i].pointer, errs[i].rule);
        assert_true(w > 0 && (size_t) w < size - len);
        len += (size_t) w;
    }
}

/* Validate DOC against SCHEMA: WANT is NULL for valid, else the lines. */
static void s_expect(const char *schema, const char *doc, const char *want)
{
    slt_schema_t *s = s_compile(schema);
    cJSON *j = s_doc(doc);
    slt_schema_error_t errs[S_ERRS];
    size_t n = 99;
    char got[S_ERRS * 480];
    int rc = slt_schema_validate(s, j, errs, S_ERRS, &n);
    s_lines(errs, n, got, sizeof got);
    if (!want) {
        if (rc != 0)
            fail_msg("%s against %s: expected valid, got\n%s", doc, schema, got);
        assert_int_equal(n, 0);
    }
    else {
        if (rc != SL_EINVAL)
            fail_msg("%s against %s: expected invalid, got %d", doc, schema, rc);
        if (strcmp(got, want))
            fail_msg("%s against %s:\n got:\n%s\n want:\n%s", doc, schema, got, want);
    }
    /* MAX 0 gives the same verdict and writes nothing. */
    assert_int_equal(slt_schema_validate(s, j, NULL, 0, &n), rc);
    assert_int_equal(n, 0);
    cJSON_Delete(j);
    slt_schema_destroy(&s);
    assert_null(s);
}

/* Compatibility of NEWER after OLDER under MODE: WANT NULL or the lines. */
static void s_compat(const char *older, const char *newer, slc_compat_t mode,
                     const char *want)
{
    slt_schema_t *o = s_compile(older), *n = s_compile(newer);
    slt_schema_error_t errs[S_ERRS];
    size_t count = 99;
    char got[S_ERRS * 480];
    int rc = slt_schema_compatible(o, n, mode, errs, S_ERRS, &count);
    s_lines(errs, count, got, sizeof got);
    if (!want) {
        if (rc != 0)
            fail_msg("%s -> %s (%s): expected compatible, got\n%s", older, newer,
                     slc_compat_name(mode), got);
    }
    else {
        if (rc != SL_EINVAL)
            fail_msg("%s -> %s (%s): expected a break, got %d", older, newer,
                     slc_compat_name(mode), rc);
        if (strcmp(got, want))
            fail_msg("%s -> %s (%s):\n got:\n%s\n want:\n%s", older, newer,
                     slc_compat_name(mode), got, want);
    }
    slt_schema_destroy(&o);
    slt_schema_destroy(&n);
}

/* ----------------------------------------------------------- validation */

static void test_type(void **state)
{
    (void) state;
    s_expect("{\"type\":\"string\"}", "\"x\"", NULL);
    s_expect("{\"type\":\"string\"}", "1", ": expected string, got integer");
    s_expect("{\"type\":\"integer\"}", "3", NULL);
    s_expect("{\"type\":\"integer\"}", "3.0", NULL);      /* no fraction */
    s_expect("{\"type\":\"integer\"}", "3.5", ": expected integer, got number");
    s_expect("{\"type\":\"number\"}", "3", NULL);
    s_expect("{\"type\":\"number\"}", "-3.25e2", NULL);
    s_expect("{\"type\":\"number\"}", "\"3\"", ": expected number, got string");
    s_expect("{\"type\":\"boolean\"}", "false", NULL);
    s_expect("{\"type\":\"boolean\"}", "0", ": expected boolean, got integer");
    s_expect("{\"type\":\"object\"}", "{}", NULL);
    s_expect("{\"type\":\"object\"}", "[]", ": expected object, got array");
    s_expect("{\"type\":\"array\"}", "[1]", NULL);
    s_expect("{\"type\":\"array\"}", "{}", ": expected array, got object");
    s_expect("{\"type\":\"null\"}", "null", NULL);
    s_expect("{\"type\":\"null\"}", "false", ": expected null, got boolean");
    s_expect("{\"type\":[\"string\",\"null\"]}", "null", NULL);
    s_expect("{\"type\":[\"string\",\"null\"]}", "7",
             ": expected string or null, got integer");
    s_expect("{\"type\":[\"null\",\"integer\",\"array\"]}", "true",
             ": expected array, integer or null, got boolean");
    s_expect("{}", "{\"anything\":[1,2]}", NULL);
    s_expect("true", "1", NULL);
    s_expect("false", "1", ": no value is allowed here");
}

/* JSON Schema's "integer" is a number with no fraction, however written;
 * counts (minLength...) are read the same way. */
static void test_integer(void **state)
{
    (void) state;
    const char *i = "{\"type\":\"integer\"}";
    s_expect(i, "1.0", NULL);
    s_expect(i, "-0.0", NULL);
    s_expect(i, "1e2", NULL);
    s_expect(i, "2.5e1", NULL);
    s_expect(i, "9007199254740992", NULL);
    s_expect(i, "-9007199254740992", NULL);
    /* Past 2^53 every double is whole (and slt_doc_parse lets it through
     * only with a fraction or an exponent). */
    s_expect(i, "1e20", NULL);
    s_expect(i, "1.0e300", NULL);
    s_expect(i, "0.5", ": expected integer, got number");
    s_expect(i, "1.5e-1", ": expected integer, got number");
    s_expect(i, "4503599627370495.5", ": expected integer, got number");
    s_expect("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}}}",
             "{\"n\":1.25}", "/n: expected integer, got number");
    /* A document built in memory: a whole double is an integer too. */
    slt_schema_t *s = s_compile(i);
    cJSON *j = cJSON_CreateNumber(42.0);
    assert_non_null(j);
    assert_int_equal(slt_schema_validate(s, j, NULL, 0, NULL), 0);
    cJSON_SetNumberValue(j, 42.5);
    assert_int_equal(slt_schema_validate(s, j, NULL, 0, NULL), SL_EINVAL);
    cJSON_Delete(j);
    slt_schema_destroy(&s);
    /* Counts: 2.0 is 2; a whole number past 2^53 is as large as a size. */
    s_expect("{\"minLength\":2.0}", "\"a\"", ": must be at least 2 characters long");
    s_expect("{\"maxItems\":1e20}", "[1,2,3]", NULL);
    s_refused("{\"minItems\":2.5}", SL_EINVAL, "/minItems: must be a non-negative integer");
    s_refused("{\"maxLength\":-1.0}", SL_EINVAL,
              "/maxLength: must be a non-negative integer");
}

static void test_object(void **state)
{
    (void) state;
    const char *order =
        "{\"type\":\"object\",\"required\":[\"id\",\"email\"],"
        "\"properties\":{\"id\":{\"type\":\"integer\"},"
        "\"email\":{\"type\":\"string\"},\"note\":{}},"
        "\"additionalProperties\":false}";
    s_expect(order, "{\"id\":1,\"email\":\"a@b.c\"}", NULL);
    s_expect(order, "{\"id\":1,\"email\":\"a@b.c\",\"note\":[true]}", NULL);
    s_expect(order, "{\"id\":1}", ": required property \"email\" is missing");
    /* Missing first (schema order), then members in document order. */
    s_expect(order, "{\"x\":1,\"id\":\"7\",\"y\":2}",
             ": required property \"email\" is missing\n"
             "/x: additional property \"x\" is not allowed\n"
             "/id: expected integer, got string\n"
             "/y: additional property \"y\" is not allowed");
    /* additionalProperties as a schema; open by default. */
    s_expect("{\"properties\":{\"a\":{\"type\":\"string\"}},"
             "\"additionalProperties\":{\"type\":\"integer\"}}",
             "{\"a\":\"s\",\"b\":1,\"c\":\"no\"}",
             "/c: expected integer, got string");
    s_expect("{\"properties\":{\"a\":{\"type\":\"string\"}}}",
             "{\"a\":\"s\",\"b\":{}}", NULL);
    /* Keywords of one type do not apply to another. */
    s_expect("{\"required\":[\"a\"],\"minLength\":3}", "[1]", NULL);
    /* Required but not declared: must be present, addl decides its value. */
    s_expect("{\"required\":[\"z\"],\"additionalProperties\":false}", "{\"z\":1}",
             "/z: additional property \"z\" is not allowed");
    s_expect("{\"properties\":{\"k\":false}}", "{\"k\":1}",
             "/k: no value is allowed here");
    /* A prefix of a declared name is another name. */
    s_expect("{\"properties\":{\"ab\":{\"type\":\"string\"},\"b\":{}},"
             "\"additionalProperties\":false}", "{\"a\":\"x\",\"abc\":\"y\",\"ab\":1}",
             "/a: additional property \"a\" is not allowed\n"
             "/abc: additional property \"abc\" is not allowed\n"
             "/ab: expected string, got integer");
}

static void test_nested_pointers(void **state)
{
    (void) state;
    const char *schema =
        "{\"properties\":{\"items\":{\"type\":\"array\",\"items\":"
        "{\"type\":\"object\",\"required\":[\"sku\"],\"properties\":"
        "{\"sku\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}$\"},"
        "\"qty\":{\"type\":\"integer\",\"minimum\":1}}}},"
        "\"a/b\":{\"properties\":{\"c~d\":{\"type\":\"null\"}}}}}";
    s_expect(schema,
             "{\"items\":[{\"sku\":\"ABC\",\"qty\":2},{\"sku\":\"abc\",\"qty\":0},"
             "{\"qty\":1}],\"a/b\":{\"c~d\":1}}",
             "/items/1/sku: does not match pattern ^[A-Z]{3}$\n"
             "/items/1/qty: must be >= 1\n"
             "/items/2: required property \"sku\" is missing\n"
             "/a~1b/c~0d: expected null, got integer");
}

static void test_array(void **state)
{
    (void) state;
    const char *s = "{\"type\":\"array\",\"minItems\":1,\"maxItems\":2,"
                    "\"items\":{\"type\":\"integer\"}}";
    s_expect(s, "[1,2]", NULL);
    s_expect(s, "[]", ": must have at least 1 item");
    s_expect(s, "[1,2,3]", ": must have at most 2 items");
    s_expect(s, "[1,\"2\",3.5]",
             ": must have at most 2 items\n"
             "/1: expected integer, got string\n"
             "/2: expected integer, got number");
    s_expect("{\"minItems\":2}", "[1]", ": must have at least 2 items");
}

static void test_enum_const(void **state)
{
    (void) state;
    const char *cur = "{\"enum\":[\"EUR\",\"USD\"]}";
    s_expect(cur, "\"EUR\"", NULL);
    s_expect(cur, "\"GBP\"", ": must be one of: \"EUR\", \"USD\"");
    s_expect(cur, "1", ": must be one of: \"EUR\", \"USD\"");
    /* 1 and 1.0 are one number; structures compare deeply. */
    s_expect("{\"enum\":[1,null,{\"a\":[1]}]}", "1.0", NULL);
    s_expect("{\"enum\":[1,null,{\"a\":[1]}]}", "{\"a\":[1.0]}", NULL);
    s_expect("{\"enum\":[1,null,{\"a\":[1]}]}", "{\"a\":[2]}",
             ": must be one of: 1, null, {\"a\":[1]}");
    s_expect("{\"const\":\"v1\"}", "\"v1\"", NULL);
    s_expect("{\"const\":\"v1\"}", "\"v2\"", ": must be equal to \"v1\"");
    s_expect("{\"const\":false}", "0", ": must be equal to false");
    /* A long enum's text is cut, not overflowed. */
    char big[2048] = "{\"enum\":[";
    for (int i = 0; i < 60; i++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%s\"value-%02d\"",
                 i ? "," : "", i);
    strcat(big, "]}");
    s_expect(big, "\"value-59\"", NULL);
    slt_schema_t *sc = s_compile(big);
    cJSON *j = cJSON_CreateString("nope");
    assert_non_null(j);
    slt_schema_error_t e;
    size_t n = 0;
    assert_int_equal(slt_schema_validate(sc, j, &e, 1, &n), SL_EINVAL);
    assert_int_equal(n, 1);
    assert_true(strlen(e.rule) < sizeof e.rule);
    assert_non_null(strstr(e.rule, "\"value-00\", \"value-01\""));
    assert_non_null(strstr(e.rule, "..."));
    cJSON_Delete(j);
    slt_schema_destroy(&sc);
    /* Numbers are equal only when their doubles are (cJSON_Compare would
     * take one rounding error apart for equal). */
    s_expect("{\"const\":1}", "1.0000000000000002", ": must be equal to 1");
    s_expect("{\"enum\":[0.1]}", "0.1", NULL);
    s_expect("{\"enum\":[0.1]}", "0.10000000000000002", ": must be one of: 0.1");
    /* Objects are equal whatever the order of their keys; the same keys,
     * no more, no fewer. */
    const char *obj = "{\"const\":{\"a\":1,\"b\":[1,{\"c\":null}]}}";
    s_expect(obj, "{\"b\":[1.0,{\"c\":null}],\"a\":1}", NULL);
    s_expect(obj, "{\"a\":1}", ": must be equal to {\"a\":1,\"b\":[1,{\"c\":null}]}");
    s_expect(obj, "{\"a\":1,\"x\":2}", ": must be equal to {\"a\":1,\"b\":[1,{\"c\":null}]}");
    s_expect(obj, "{\"a\":1,\"b\":[1,{\"c\":null}],\"x\":0}",
             ": must be equal to {\"a\":1,\"b\":[1,{\"c\":null}]}");
    s_expect(obj, "{\"a\":1,\"b\":[1,{\"c\":null},2]}",
             ": must be equal to {\"a\":1,\"b\":[1,{\"c\":null}]}");
    /* A const nested 60 deep: compared in time linear in its size (a
     * comparison that doubles per level would not end). */
    char deep[1024] = "{\"const\":", val[1024] = "", other[1024];
    for (int i = 0; i < 60; i++)
        strcat(val, "{\"k\":");
    strcat(val, "[true]");
    for (int i = 0; i < 60; i++)
        strcat(val, "}");
    strcat(deep, val);
    strcat(deep, "}");
    memcpy(other, val, sizeof other);
    memcpy(strstr(other, "true"), "null", 4);     /* differs at the bottom */
    clock_t t0 = clock();
    s_expect(deep, val, NULL);
    sc = s_compile(deep);
    j = s_doc(other);
    assert_int_equal(slt_schema_validate(sc, j, &e, 1, &n), SL_EINVAL);
    assert_string_equal(e.pointer, "");
    assert_string_equal(e.rule, "must be equal to ...");   /* text cut */
    cJSON_Delete(j);
    slt_schema_destroy(&sc);
    assert_true((double) (clock() - t0) / CLOCKS_PER_SEC < 1.0);
}

static void test_numbers(void **state)
{
    (void) state;
    const char *s = "{\"type\":\"number\",\"minimum\":0,\"maximum\":100}";
    s_expect(s, "0", NULL);
    s_expect(s, "100", NULL);
    s_expect(s, "-0.5", ": must be >= 0");
    s_expect(s, "100.25", ": must be <= 100");
    const char *x = "{\"exclusiveMinimum\":0,\"exclusiveMaximum\":1.5}";
    s_expect(x, "0.001", NULL);
    s_expect(x, "0", ": must be > 0");
    s_expect(x, "1.5", ": must be < 1.5");
    s_expect(x, "\"ignored for strings\"", NULL);
    /* Both given: the tighter bound applies. */
    s_expect("{\"minimum\":5,\"exclusiveMinimum\":5}", "5", ": must be > 5");
    s_expect("{\"minimum\":6,\"exclusiveMinimum\":5}", "5.5", ": must be >= 6");
    s_expect("{\"maximum\":0.1}", "0.2", ": must be <= 0.1");
}

static void test_strings(void **state)
{
    (void) state;
    const char *s = "{\"type\":\"string\",\"minLength\":2,\"maxLength\":5}";
    s_expect(s, "\"ab\"", NULL);
    /* Code points, not bytes: 5 characters in 7 bytes. */
    s_expect(s, "\"h\\u00e9ll\\u00f6\"", NULL);
    s_expect(s, "\"\\u00e9\"", ": must be at least 2 characters long");
    s_expect(s, "\"abcdef\"", ": must be at most 5 characters long");
    s_expect("{\"maxLength\":1}", "\"ab\"", ": must be at most 1 character long");
    /* Patterns search (not anchored) and are ECMA-262 as PCRE2 reads it. */
    static const struct {
        const char *schema, *doc, *want;
    } pats[] = {
        /* POSIX classes inside [...] work too. */
        { "{\"pattern\":\"[0-9]{2}-[[:alpha:]]+\"}", "\"id 42-abc!\"", NULL },
        { "{\"pattern\":\"[0-9]{2}-[[:alpha:]]+\"}", "\"42-\"",
          ": does not match pattern [0-9]{2}-[[:alpha:]]+" },
        { "{\"pattern\":\"^a\\\\.b$\"}", "\"a.b\"", NULL },
        { "{\"pattern\":\"^a\\\\.b$\"}", "\"axb\"", ": does not match pattern ^a\\.b$" },
        { "{\"pattern\":\"^[].x]$\"}", "\"]\"", NULL },
        { "{\"pattern\":\"^\\\\d{3}-\\\\w+$\"}", "\"123-ab_c\"", NULL },
        { "{\"pattern\":\"^\\\\d{3}-\\\\w+$\"}", "\"12-x\"",
          ": does not match pattern ^\\d{3}-\\w+$" },
        /* A backslash inside [...] escapes, as in ECMA-262. */
        { "{\"pattern\":\"^[\\\\.]$\"}", "\".\"", NULL },
        { "{\"pattern\":\"^[\\\\.]$\"}", "\"\\\\\"", ": does not match pattern ^[\\.]$" },
        /* '.' is one code point, \uhhhh names one, $ is the very end. */
        { "{\"pattern\":\"^.{2}$\"}", "\"\\u00e9!\"", NULL },
        { "{\"pattern\":\"^\\\\u00e9$\"}", "\"\\u00e9\"", NULL },
        { "{\"pattern\":\"^a$\"}", "\"a\\n\"", ": does not match pattern ^a$" },
        { "{\"pattern\":\"^(?:ab)+?c$\"}", "\"ababc\"", NULL },
        /* A value whose match would backtrack without end fails after a
         * million steps, saying so, instead of holding the broker's thread. */
        { "{\"pattern\":\"^(a|aa)+$\"}", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!\"",
          ": cannot be checked against pattern ^(a|aa)+$: too costly to match "
          "(over a million steps)" },
        { "{\"pattern\":\"^(a|aa)+$\"}", "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"", NULL },
    };
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
        s_expect(pats[i].schema, pats[i].doc, pats[i].want);
}

static void test_formats(void **state)
{
    (void) state;
    const char *dt = "{\"format\":\"date-time\"}";
    static const char *good_dt[] = {
        "\"2024-02-29T23:59:59Z\"", "\"2023-12-31T00:00:00.123456+01:00\"",
        "\"1990-12-31t23:59:60z\"", "\"2024-06-01T12:00:00-08:30\"",
    };
    static const char *bad_dt[] = {
        "\"2023-02-29T00:00:00Z\"", "\"2024-13-01T00:00:00Z\"",
        "\"2024-04-31T00:00:00Z\"", "\"2024-01-01 00:00:00Z\"",
        "\"2024-01-01T24:00:00Z\"", "\"2024-01-01T00:00:00\"",
        "\"2024-01-01T00:00:00.Z\"", "\"2024-01-01T00:00:00+0100\"",
        "\"2024-01-01\"", "\"2024-01-01T00:00:00Z \"",
    };
    for (size_t i = 0; i < sizeof good_dt / sizeof good_dt[0]; i++)
        s_expect(dt, good_dt[i], NULL);
    for (size_t i = 0; i < sizeof bad_dt / sizeof bad_dt[0]; i++)
        s_expect(dt, bad_dt[i], ": is not a valid date-time (RFC 3339)");
    s_expect(dt, "17", NULL);       /* formats apply to strings only */
    const char *em = "{\"format\":\"email\"}";
    s_expect(em, "\"ann.lee+shop@mail.example.com\"", NULL);
    s_expect(em, "\"root@localhost\"", NULL);
    static const char *bad_em[] = {
        "\"no-at.example.com\"", "\"@example.com\"", "\"a@\"", "\"a..b@x.com\"",
        "\".a@x.com\"", "\"a@-x.com\"", "\"a@x..com\"", "\"a b@x.com\"",
        "\"a@x.com.\"",
    };
    for (size_t i = 0; i < sizeof bad_em / sizeof bad_em[0]; i++)
        s_expect(em, bad_em[i], ": is not a valid email");
    const char *id = "{\"format\":\"uuid\"}";
    s_expect(id, "\"123e4567-e89b-12d3-a456-426614174000\"", NULL);
    s_expect(id, "\"123E4567-E89B-12D3-A456-426614174000\"", NULL);
    s_expect(id, "\"123e4567e89b12d3a456426614174000\"", ": is not a valid uuid");
    s_expect(id, "\"123e4567-e89b-12d3-a456-42661417400g\"", ": is not a valid uuid");
}

static void test_ref(void **state)
{
    (void) state;
    const char *defs =
        "{\"definitions\":{\"money\":{\"type\":\"object\",\"required\":[\"cur\"],"
        "\"properties\":{\"cur\":{\"$ref\":\"#/$defs/cur\"}}}},"
        "\"$defs\":{\"cur\":{\"enum\":[\"EUR\",\"USD\"]}},"
        "\"properties\":{\"total\":{\"$ref\":\"#/definitions/money\","
        "\"description\":\"annotations may sit next to $ref\"}}}";
    s_expect(defs, "{\"total\":{\"cur\":\"EUR\"}}", NULL);
    s_expect(defs, "{\"total\":{\"cur\":\"JPY\"}}",
             "/total/cur: must be one of: \"EUR\", \"USD\"");
    s_expect(defs, "{\"total\":{}}", "/total: required property \"cur\" is missing");
    /* "#" and a cycle through the document: a tree of any depth. */
    const char *tree =
        "{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{"
        "\"name\":{\"type\":\"string\"},"
        "\"children\":{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}},"
        "\"additionalProperties\":false}";
    s_expect(tree, "{\"name\":\"a\",\"children\":[{\"name\":\"b\",\"children\":"
                   "[{\"name\":\"c\"}]}]}", NULL);
    s_expect(tree, "{\"name\":\"a\",\"children\":[{\"name\":\"b\",\"children\":"
                   "[{\"name\":1,\"x\":0}]}]}",
             "/children/0/children/0/name: expected string, got integer\n"
             "/children/0/children/0/x: additional property \"x\" is not allowed");
    /* A ref to a ref to a schema; escaped pointer tokens. */
    s_expect("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b~1c\"},\"b/c\":{\"type\":\"null\"}},"
             "\"items\":{\"$ref\":\"#/$defs/a\"}}", "[null,0]",
             "/1: expected null, got integer");
    /* A document nested past the limit is refused, not recursed into. */
    static char doc[32 * SLT_SCHEMA_DOC_DEPTH_MAX] = "";
    for (int i = 0; i < SLT_SCHEMA_DOC_DEPTH_MAX + 2; i++)
        strcat(doc, "{\"name\":\"n\",\"children\":[");
    doc[strlen(doc) - strlen(",\"children\":[")] = '\0';
    strcat(doc, "}");
    for (int i = 0; i < SLT_SCHEMA_DOC_DEPTH_MAX + 1; i++)
        strcat(doc, "]}");
    slt_schema_t *s = s_compile(tree);
    cJSON *j = s_doc(doc);
    slt_schema_error_t e;
    size_t n = 0;
    assert_int_equal(slt_schema_validate(s, j, &e, 1, &n), SL_EINVAL);
    assert_int_equal(n, 1);
    assert_string_equal(e.rule, "nested deeper than 128 levels");
    cJSON_Delete(j);
    slt_schema_destroy(&s);
}

static void test_ref_refused(void **state)
{
    (void) state;
    s_refused("{\"$ref\":\"#\"}", SL_EINVAL,
              "/$ref: a cycle of $refs that never reaches a schema");
    s_refused("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}},"
              "\"items\":{\"$ref\":\"#/$defs/a\"}}", SL_EINVAL,
              "/$defs/a/$ref: a cycle of $refs that never reaches a schema");
    s_refused("{\"properties\":{\"a\":{\"$ref\":\"#/definitions/nope\"}}}", SL_EINVAL,
              "/properties/a/$ref: \"#/definitions/nope\" does not resolve in "
              "this document");
    s_refused("{\"properties\":{\"a\":{\"$ref\":\"#/properties\"}}}", SL_EINVAL,
              "/properties/a/$ref: \"#/properties\" does not name a schema");
    s_refused("{\"$ref\":\"http://example.com/s.json\"}", SL_EINVAL,
              "/$ref: only a reference within the document (\"#\", "
              "\"#/definitions/x\", \"#/$defs/x\") is supported");
    s_refused("{\"$defs\":{\"a\":{}},\"properties\":{\"b\":{\"$ref\":\"#/$defs/a\","
              "\"type\":\"string\"}}}", SL_EINVAL,
              "/properties/b/type: keywords next to $ref are not supported "
              "(drafts disagree on them); move them into the referenced schema");
}

static void test_compile_refused(void **state)
{
    (void) state;
    s_refused("{\"properties\":{\"a\":{\"oneOf\":[{}]}}}", SL_EINVAL,
              "/properties/a/oneOf: unsupported keyword \"oneOf\"");
    s_refused("{\"patternProperties\":{}}", SL_EINVAL,
              "/patternProperties: unsupported keyword \"patternProperties\"");
    s_refused("{\"type\":\"str\"}", SL_EINVAL, "/type: unknown type: use string, "
              "number, integer, boolean, object, array or null");
    s_refused("{\"type\":[]}", SL_EINVAL,
              "/type: must be a type name or a non-empty array of them");
    s_refused("{\"minLength\":-1}", SL_EINVAL, "/minLength: must be a non-negative integer");
    s_refused("{\"maxItems\":1.5}", SL_EINVAL, "/maxItems: must be a non-negative integer");
    s_refused("{\"required\":\"a\"}", SL_EINVAL, "/required: must be an array of property names");
    s_refused("{\"required\":[\"a\",\"b\",\"a\"]}", SL_EINVAL, "/required: lists \"a\" twice");
    s_refused("{\"properties\":[]}", SL_EINVAL, "/properties: must be an object of schemas");
    s_refused("{\"properties\":{\"a\":3}}", SL_EINVAL,
              "/properties/a: a schema must be an object, true or false");
    s_refused("[]", SL_EINVAL, "/: a schema must be an object, true or false");
    s_refused("{\"items\":[{}]}", SL_EINVAL,
              "/items: an array of schemas (tuple validation) is not supported");
    s_refused("{\"enum\":[]}", SL_EINVAL, "/enum: must be a non-empty array");
    s_refused("{\"exclusiveMinimum\":true}", SL_EINVAL, "/exclusiveMinimum: must be "
              "a number (the draft 6+ form; the draft 4 boolean form is not supported)");
    s_refused("{\"format\":\"ipv4\"}", SL_EINVAL,
              "/format: unsupported format: use date-time, email or uuid");
    s_refused("{\"items\":{\"$id\":\"x\"}}", SL_EINVAL,
              "/items/$id: $id is supported only at the root");
    s_refused("{\"title\":3}", SL_EINVAL, "/title: must be a string");
    /* PCRE2's own compile errors, with where. */
    s_refused("{\"pattern\":\"^a**$\"}", SL_EINVAL, "/pattern: not a regular "
              "expression: quantifier does not follow a repeatable item at offset 3");
    s_refused("{\"pattern\":\"a(b\"}", SL_EINVAL, "/pattern: not a regular "
              "expression: missing closing parenthesis at offset 3");
    s_refused("{\"pattern\":\"((a{100}){100}){100}\"}", SL_EINVAL, "/pattern: not a "
              "regular expression: regular expression is too large at offset 20");
    {
        /* Groups nest at most 32 deep. */
        char pat[128];
        for (int depth = 32; depth <= 33; depth++) {
            snprintf(pat, sizeof pat, "{\"pattern\":\"%.*sa%.*s\"}", depth,
                     "((((((((((((((((((((((((((((((((((", depth,
                     "))))))))))))))))))))))))))))))))))");
            if (depth == 32)
                slt_schema_destroy((slt_schema_t *[]) { s_compile(pat) });
            else
                s_refused(pat, SL_EINVAL, "/pattern: not a regular expression: "
                          "parentheses are too deeply nested at offset 33");
        }
    }
    /* glibc's regcomp read {,m} as {0,m}: a stored schema must not change
     * meaning. Escaped, it is text. */
    s_refused("{\"pattern\":\"x{,99}\"}", SL_EINVAL,
              "/pattern: {,m} is literal text in ECMA-262: write {0,m}");
    slt_schema_destroy((slt_schema_t *[]) { s_compile("{\"pattern\":\"x\\\\{,99}\"}") });
    /* Shapes that took glibc's regcomp seconds compile at once. */
    {
        char pat[512] = "{\"pattern\":\"^";
        for (int i = 0; i < 20; i++)
            strcat(pat, i % 2 ? "(a*)*" : "(()+|x{0,3}){2,}");
        strcat(pat, "$\"}");
        slt_schema_destroy((slt_schema_t *[]) { s_compile(pat) });
    }
    slt_schema_destroy((slt_schema_t *[]) { s_compile(
        "{\"pattern\":\"^[a-z0-9]{1,63}([.][a-z0-9]{1,63}){0,10}@[[:alnum:]]{2,}$\"}") });
    /* What slt_doc_parse refuses, with its reason after "not JSON: ". */
    s_not_json("{\"type\":\"string\",", "line 1, column 17: ", "");
    s_not_json("{\"type\":\"string\",\"type\":\"null\"}", "", "\"type\"");
    /* Duplicate keys anywhere, not only at the top. */
    s_not_json("{\"properties\":{\"a\":{},\"b\":{\"maxLength\":1,\"maxLength\":2}}}",
               "", "\"maxLength\"");
    s_not_json("{\"enum\":[{\"x\":1,\"x\":1}]}", "", "\"x\"");
    /* An integer a double cannot carry (past 2^53) would change on its way
     * into the schema: refused where it stands. 2^53 itself is kept. */
    s_not_json("{\"enum\":[1,9007199254740993]}", "line 1, column 12: ", "2^53");
    s_not_json("{\"const\":-12345678901234567890}", "line 1, column 10: ", "2^53");
    s_expect("{\"enum\":[9007199254740992]}", "9007199254740992", NULL);
    s_expect("{\"enum\":[9007199254740992]}", "9007199254740991",
             ": must be one of: 9007199254740992");
    s_not_json("{\"title\":\"a\\u0000b\"}", "line 1, column ", "");
    s_not_json("{\"minimum\":1e999}", "", "/minimum");
    /* Annotations are accepted and ignored. */
    slt_schema_t *s = s_compile(
        "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","
        "\"$id\":\"urn:shop:order\",\"title\":\"Order\",\"description\":\"d\","
        "\"$comment\":\"c\",\"examples\":[{}],\"deprecated\":false,"
        "\"readOnly\":true,\"writeOnly\":false,\"default\":{}}");
    slt_schema_destroy(&s);
    slt_schema_destroy(&s);         /* NULL-safe */
}

static void test_limits(void **state)
{
    (void) state;
    char text[1024] = "";
    /* 64 nested containers compile, 65 do not. */
    for (int i = 0; i < 61; i++)
        strcat(text, "{\"items\":");
    strcat(text, "{\"enum\":[[]]}");
    for (int i = 0; i < 61; i++)
        strcat(text, "}");
    slt_schema_t *s = s_compile(text);
    slt_schema_destroy(&s);
    text[0] = '\0';
    for (int i = 0; i < 61; i++)
        strcat(text, "{\"items\":");
    strcat(text, "{\"enum\":[[[]]]}");
    for (int i = 0; i < 61; i++)
        strcat(text, "}");
    s_refused(text, SL_EINVAL, "the schema nests deeper than 64 levels");
    /* More than 1 MiB is refused before it is parsed. */
    size_t big = SLT_SCHEMA_TEXT_MAX + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    char err[128];
    s = (slt_schema_t *) 1;
    assert_int_equal(slt_schema_compile(huge, big, &s, err, sizeof err), SL_ETOOBIG);
    assert_null(s);
    assert_string_equal(err, "the schema is 1048577 bytes; the limit is 1048576");
    /* Exactly 1 MiB is parsed: first unterminated, then whole. */
    assert_int_equal(slt_schema_compile(huge, big - 1, &s, err, sizeof err),
                     SL_EINVAL);
    huge[big - 2] = '}';
    assert_int_equal(slt_schema_compile(huge, big - 1, &s, err, sizeof err), 0);
    slt_schema_destroy(&s);
    free(huge);
}

/* Required properties are found with one walk of the object, also for an
 * object with duplicate keys (built in memory) and for a schema with more
 * property entries than the walk can mark (a lookup per name then). */
static void test_required_many(void **state)
{
    (void) state;
    const int count = 4200;     /* more than slt_schema_validate.c's S_SEEN_MAX */
    size_t size = (size_t) count * 24 + 64;
    char *text = malloc(size), *doc = malloc(size);
    assert_non_null(text);
    assert_non_null(doc);
    strcpy(text, "{\"required\":[");
    strcpy(doc, "{");
    for (int i = 0; i < count; i++) {
        snprintf(text + strlen(text), size - strlen(text), "%s\"p%05d\"",
                 i ? "," : "", i);
        /* The document lacks p00007 and p04100, and lists the rest last
         * first. */
        int k = count - 1 - i;
        if (k != 7 && k != 4100)
            snprintf(doc + strlen(doc), size - strlen(doc), "%s\"p%05d\":%d",
                     strlen(doc) > 1 ? "," : "", k, k);
    }
    strcat(text, "]}");
    strcat(doc, "}");
    s_expect(text, doc, ": required property \"p00007\" is missing\n"
                        ": required property \"p04100\" is missing");
    /* 200 names (within the bitmap): the same. */
    strcpy(text, "{\"required\":[");
    for (int i = 0; i < 200; i++)
        snprintf(text + strlen(text), size - strlen(text), "%s\"p%05d\"",
                 i ? "," : "", i);
    strcat(text, "]}");
    strcpy(doc, "{");
    for (int i = 199; i >= 0; i--)
        if (i != 64 && i != 199)
            snprintf(doc + strlen(doc), size - strlen(doc), "%s\"p%05d\":0",
                     strlen(doc) > 1 ? "," : "", i);
    strcat(doc, "}");
    s_expect(text, doc, ": required property \"p00064\" is missing\n"
                        ": required property \"p00199\" is missing");
    free(text);
    free(doc);
    /* A key twice does not stand for another one that is missing. */
    slt_schema_t *s = s_compile("{\"required\":[\"a\",\"b\"]}");
    cJSON *obj = cJSON_CreateObject();
    assert_non_null(obj);
    assert_non_null(cJSON_AddNullToObject(obj, "a"));
    assert_non_null(cJSON_AddNullToObject(obj, "a"));
    slt_schema_error_t e;
    size_t n = 0;
    assert_int_equal(slt_schema_validate(s, obj, &e, 1, &n), SL_EINVAL);
    assert_int_equal(n, 1);
    assert_string_equal(e.rule, "required property \"b\" is missing");
    cJSON_Delete(obj);
    slt_schema_destroy(&s);
}

static void test_max_and_order(void **state)
{
    (void) state;
    slt_schema_t *s = s_compile("{\"additionalProperties\":{\"type\":\"string\"}}");
    cJSON *doc = s_doc("{\"a\":1,\"b\":2,\"c\":\"ok\",\"d\":4}");
    slt_schema_error_t errs[2];
    memset(errs, 'x', sizeof errs);
    size_t n = 0;
    assert_int_equal(slt_schema_validate(s, doc, errs, 2, &n), SL_EINVAL);
    assert_int_equal(n, 2);
    assert_string_equal(errs[0].pointer, "/a");
    assert_string_equal(errs[1].pointer, "/b");
    assert_string_equal(errs[1].rule, "expected string, got integer");
    assert_int_equal(slt_schema_validate(s, doc, errs, 1, NULL), SL_EINVAL);
    cJSON_Delete(doc);
    doc = s_doc("{\"c\":\"ok\"}");
    assert_int_equal(slt_schema_validate(s, doc, errs, 2, &n), 0);
    assert_int_equal(n, 0);
    cJSON_Delete(doc);
    slt_schema_destroy(&s);
    /* A pointer longer than the field is cut, still terminated. */
    char key[400];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    s = s_compile("{\"additionalProperties\":false}");
    doc = cJSON_CreateObject();
    assert_non_null(doc);
    assert_non_null(cJSON_AddTrueToObject(doc, key));
    assert_int_equal(slt_schema_validate(s, doc, errs, 1, &n), SL_EINVAL);
    assert_int_equal(strlen(errs[0].pointer), sizeof errs[0].pointer - 1);
    assert_true(strlen(errs[0].rule) == sizeof errs[0].rule - 1);
    cJSON_Delete(doc);
    slt_schema_destroy(&s);
}

static void test_text(void **state)
{
    (void) state;
    slt_schema_t *s = s_compile(" { \"type\" : \"object\",\n \"properties\": "
                                "{\"b\":{\"maximum\":0.1},\"a\":{}}, \"$id\":\"x\"}");
    const char *want = "{\"$id\":\"x\",\"properties\":{\"a\":{},\"b\":{\"maximum\":0.1}},"
                       "\"type\":\"object\"}";
    assert_string_equal(slt_schema_text(s), want);
    slt_schema_t *again = s_compile(slt_schema_text(s));
    assert_string_equal(slt_schema_text(again), want);
    slt_schema_destroy(&s);
    slt_schema_destroy(&again);
    /* A number that needs 17 digits keeps them. */
    s = s_compile("{\"minimum\":0.30000000000000004}");
    assert_string_equal(slt_schema_text(s), "{\"minimum\":0.30000000000000004}");
    slt_schema_destroy(&s);
    /* Numbers as slt_doc_number writes them: a whole one up to 2^53 in
     * digits (1.0 is 1); past 2^53 with ".0" or an exponent, so that it
     * reads back. Strings: control characters escaped, '/' and UTF-8 as
     * they are. Each text compiles to itself. */
    s = s_compile("{\"enum\":[1.0,-0.0,2.5e1,9007199254740994.0,1e20,-1.5e-7,"
                  "0.1,\"\\u001f\\n/\\u00e9\\\"\"],\"maximum\":1E+300}");
    want = "{\"enum\":[1,0,25,9007199254740994.0,1e+20,-1.5e-07,0.1,"
           "\"\\u001f\\n/\xc3\xa9\\\"\"],\"maximum\":1e+300}";
    assert_string_equal(slt_schema_text(s), want);
    again = s_compile(slt_schema_text(s));
    assert_string_equal(slt_schema_text(again), want);
    slt_schema_destroy(&s);
    slt_schema_destroy(&again);
}

/* -------------------------------------------------------- compatibility */

static const char *s_v1 =
    "{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{"
    "\"id\":{\"type\":\"integer\",\"minimum\":1},"
    "\"email\":{\"type\":[\"string\",\"null\"],\"maxLength\":100},"
    "\"currency\":{\"enum\":[\"EUR\",\"USD\",\"GBP\"]},"
    "\"sku\":{\"type\":\"string\",\"pattern\":\"^[A-Z]+$\"},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}";

static void test_compat_backward(void **state)
{
    (void) state;
    s_compat(s_v1, s_v1, SLC_COMPAT_FULL, NULL);
    /* Adding an optional property to... an open object constrains data
     * that old writers could have put there: a break (Confluent agrees). */
    s_compat("{\"type\":\"object\",\"properties\":{\"a\":{}}}",
             "{\"type\":\"object\",\"properties\":{\"a\":{},\"b\":{\"type\":\"string\"}}}",
             SLC_COMPAT_BACKWARD,
             "/properties/b: BACKWARD: type changed from any to string: data "
             "written with the old schema would be refused");
    /* ...but not to a closed one. */
    s_compat("{\"properties\":{\"a\":{}},\"additionalProperties\":false}",
             "{\"properties\":{\"a\":{},\"b\":{\"type\":\"string\"}},"
             "\"additionalProperties\":false}", SLC_COMPAT_BACKWARD, NULL);
    /* Widening is fine: more types, wider bounds, bigger enum, no pattern. */
    s_compat(s_v1,
             "{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{"
             "\"id\":{\"type\":\"number\",\"minimum\":0},"
             "\"email\":{\"type\":[\"string\",\"null\",\"integer\"]},"
             "\"currency\":{\"enum\":[\"EUR\",\"USD\",\"GBP\",\"JPY\"]},"
             "\"sku\":{\"type\":\"string\"},"
             "\"tags\":{\"type\":\"array\"}}}", SLC_COMPAT_BACKWARD, NULL);
    /* Every tightening, each reported. */
    s_compat(s_v1,
             "{\"type\":\"object\",\"required\":[\"id\",\"email\"],"
             "\"additionalProperties\":false,\"properties\":{"
             "\"id\":{\"type\":\"integer\",\"exclusiveMinimum\":1},"
             "\"email\":{\"type\":\"string\",\"maxLength\":50,\"format\":\"email\"},"
             "\"currency\":{\"enum\":[\"EUR\",\"USD\"]},"
             "\"sku\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}$\"},"
             "\"tags\":{\"type\":\"array\",\"maxItems\":5,"
             "\"items\":{\"type\":\"string\",\"minLength\":1}}}}",
             SLC_COMPAT_BACKWARD,
             "/properties/currency: BACKWARD: value \"GBP\" is refused by the new "
             "schema (must be one of: \"EUR\", \"USD\"): data written with the old "
             "schema would be refused\n"
             "/properties/email: BACKWARD: type changed from string or null to string: "
             "data written with the old schema would be refused\n"
             "/properties/email: BACKWARD: maxLength changed from 100 to 50: data "
             "written with the old schema would be refused\n"
             "/properties/email: BACKWARD: format changed from none to email: data "
             "written with the old schema would be refused\n"
             "/properties/email: BACKWARD: new required property \"email\" has no "
             "default: data written with the old schema would be refused\n"
             "/properties/id: BACKWARD: lower bound changed from >= 1 to > 1: data "
             "written with the old schema would be refused\n"
             "/properties/sku: BACKWARD: pattern changed from \"^[A-Z]+$\" to "
             "\"^[A-Z]{3}$\": data written with the old schema would be refused\n"
             "/properties/tags: BACKWARD: maxItems changed from none to 5: data "
             "written with the old schema would be refused\n"
             "/properties/tags/items: BACKWARD: minLength changed from none to 1: "
             "data written with the old schema would be refused\n"
             "/additionalProperties: BACKWARD: additionalProperties changed from "
             "allowed to false: data written with the old schema would be refused");
    /* A new required property with a default is fine (readers fill it). */
    s_compat("{\"properties\":{\"a\":{}},\"additionalProperties\":false}",
             "{\"properties\":{\"a\":{},\"b\":{\"type\":\"string\",\"default\":\"x\"}},"
             "\"required\":[\"b\"],\"additionalProperties\":false}",
             SLC_COMPAT_BACKWARD, NULL);
    /* Removing a property from a closed object. */
    s_compat("{\"properties\":{\"a\":{},\"b\":{}},\"additionalProperties\":false}",
             "{\"properties\":{\"a\":{}},\"additionalProperties\":false}",
             SLC_COMPAT_BACKWARD,
             "/properties/b: BACKWARD: property \"b\" was removed and additional "
             "properties are not allowed: data written with the old schema would "
             "be refused");
    /* An enum where there was none; a const. */
    s_compat("{\"type\":\"string\"}", "{\"enum\":[\"a\"]}", SLC_COMPAT_BACKWARD,
             ": BACKWARD: enum changed from none to \"a\": data written with the "
             "old schema would be refused");
    s_compat("{\"type\":\"boolean\"}", "{\"const\":true}", SLC_COMPAT_BACKWARD,
             ": BACKWARD: value false is refused by the new schema (must be equal "
             "to true): data written with the old schema would be refused");
    s_compat("{\"type\":\"boolean\"}", "{\"enum\":[true,false,null]}",
             SLC_COMPAT_BACKWARD, NULL);
    s_compat("{}", "false", SLC_COMPAT_BACKWARD,
             ": BACKWARD: the new schema allows no value here: data written with "
             "the old schema would be refused");
    s_compat("false", "{\"type\":\"null\"}", SLC_COMPAT_BACKWARD, NULL);
}

static void test_compat_forward_full(void **state)
{
    (void) state;
    const char *old = "{\"properties\":{\"n\":{\"type\":\"integer\",\"maximum\":10}},"
                      "\"required\":[\"n\"],\"additionalProperties\":false}";
    const char *new = "{\"properties\":{\"n\":{\"type\":[\"integer\",\"null\"],"
                      "\"maximum\":20},\"m\":{}},\"additionalProperties\":false}";
    /* Loosening is backward compatible but not forward. */
    s_compat(old, new, SLC_COMPAT_BACKWARD, NULL);
    const char *fwd =
        "/properties/n: FORWARD: type changed from integer to integer or null: data "
        "written with the new schema would be refused by the old one\n"
        "/properties/n: FORWARD: upper bound changed from <= 10 to <= 20: data "
        "written with the new schema would be refused by the old one\n"
        "/properties/n: FORWARD: property \"n\" is required by the old schema, not "
        "by the new one, and has no default: data written with the new schema "
        "would be refused by the old one\n"
        "/properties/m: FORWARD: property \"m\" was added but the old schema does "
        "not allow additional properties: data written with the new schema would "
        "be refused by the old one";
    s_compat(old, new, SLC_COMPAT_FORWARD, fwd);
    s_compat(old, new, SLC_COMPAT_FULL, fwd);
    /* FULL lists both directions, BACKWARD first. */
    s_compat("{\"type\":\"string\",\"maxLength\":5}", "{\"type\":\"string\",\"minLength\":1}",
             SLC_COMPAT_FULL,
             ": BACKWARD: minLength changed from none to 1: data written with the "
             "old schema would be refused\n"
             ": FORWARD: maxLength changed from 5 to none: data written with the "
             "new schema would be refused by the old one");
    s_compat("{\"type\":\"string\"}", "{\"type\":\"integer\"}", SLC_COMPAT_NONE, NULL);
    /* A pattern removed: forward can no longer prove the old one holds. */
    s_compat("{\"pattern\":\"^a\"}", "{}", SLC_COMPAT_FORWARD,
             ": FORWARD: pattern changed from \"^a\" to none: data written with the "
             "new schema would be refused by the old one");
}

static void test_compat_ref(void **state)
{
    (void) state;
    const char *tree =
        "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{"
        "\"v\":{\"type\":\"integer\"},"
        "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}}}},"
        "\"$ref\":\"#/$defs/node\"}";
    const char *tree2 =
        "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{"
        "\"v\":{\"type\":\"integer\",\"maximum\":9},"
        "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}}}},"
        "\"$ref\":\"#/$defs/node\"}";
    /* Cycles end: compared with itself (two compilations) and a change. */
    s_compat(tree, tree, SLC_COMPAT_FULL, NULL);
    s_compat(tree, tree2, SLC_COMPAT_FULL,
             "/properties/v: BACKWARD: upper bound changed from none to <= 9: data "
             "written with the old schema would be refused");
    /* The tightening at the second level is the same pair of nodes: reported
     * once, at the first path. The other direction is fine. */
    s_compat(tree2, tree, SLC_COMPAT_FORWARD,
             "/properties/v: FORWARD: upper bound changed from <= 9 to none: data "
             "written with the new schema would be refused by the old one");
}

static void test_compat_names(void **state)
{
    (void) state;
    slc_compat_t m = SLC_COMPAT_NONE;
    static const char *names[] = { "BACKWARD", "FORWARD", "FULL", "NONE" };
    for (int i = 0; i < 4; i++) {
        assert_string_equal(slc_compat_name((slc_compat_t) i), names[i]);
        assert_int_equal(slc_compat_parse(names[i], &m), 0);
        assert_int_equal(m, i);
    }
    assert_int_equal(slc_compat_parse("backward", &m), 0);
    assert_int_equal(m, SLC_COMPAT_BACKWARD);
    assert_int_equal(slc_compat_parse("full_transitive", &m), SL_EINVAL);
    assert_int_equal(slc_compat_parse("", &m), SL_EINVAL);
    assert_string_equal(slc_compat_name((slc_compat_t) 9), "?");
    /* Reasons past MAX are counted as broken but not written. */
    slt_schema_t *a = s_compile(s_v1), *b = s_compile("{\"type\":\"string\"}");
    slt_schema_error_t e[1];
    size_t n = 0;
    assert_int_equal(slt_schema_compatible(a, b, SLC_COMPAT_FULL, e, 1, &n), SL_EINVAL);
    assert_int_equal(n, 1);
    assert_int_equal(slt_schema_compatible(a, b, SLC_COMPAT_FULL, NULL, 0, &n), SL_EINVAL);
    assert_int_equal(n, 0);
    slt_schema_destroy(&a);
    slt_schema_destroy(&b);
}

/* ------------------------------------------------------------ type query */

static void test_type_at(void **state)
{
    (void) state;
    slt_schema_t *s = s_compile(
        "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{"
        "\"buyer\":{\"type\":\"object\",\"properties\":{"
        "\"email\":{\"type\":[\"string\",\"null\"]}}},"
        "\"total\":{\"type\":\"number\"},"
        "\"n\":{\"type\":\"integer\"},"
        "\"cur\":{\"enum\":[\"EUR\",1]},"
        "\"pair\":{\"type\":\"array\",\"maxItems\":2,\"items\":{\"$ref\":\"#/$defs/line\"}},"
        "\"never\":false,"
        "\"extra\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"boolean\"}}},"
        "\"$defs\":{\"line\":{\"type\":\"object\",\"properties\":{\"sku\":{\"type\":\"string\"}}}}}");
    unsigned t = 0;
    assert_int_equal(slt_schema_type_at(s, "", &t), 0);
    assert_int_equal(t, SLC_JSON_OBJECT);
    assert_int_equal(slt_schema_type_at(s, "buyer.email", &t), 0);
    assert_int_equal(t, SLC_JSON_STRING | SLC_JSON_NULL);
    assert_int_equal(slt_schema_type_at(s, "total", &t), 0);
    assert_int_equal(t, SLC_JSON_NUMBER | SLC_JSON_INTEGER);
    assert_int_equal(slt_schema_type_at(s, "n", &t), 0);
    assert_int_equal(t, SLC_JSON_INTEGER);
    assert_int_equal(slt_schema_type_at(s, "cur", &t), 0);
    assert_int_equal(t, SLC_JSON_STRING | SLC_JSON_INTEGER);
    assert_int_equal(slt_schema_type_at(s, "pair[*].sku", &t), 0);
    assert_int_equal(t, SLC_JSON_STRING);
    assert_int_equal(slt_schema_type_at(s, "pair[1]", &t), 0);
    assert_int_equal(t, SLC_JSON_OBJECT);
    assert_int_equal(slt_schema_type_at(s, "extra.anything", &t), 0);
    assert_int_equal(t, SLC_JSON_BOOLEAN);
    /* Open objects and untyped values: unknown, so every bit. */
    assert_int_equal(slt_schema_type_at(s, "buyer.name", &t), 0);
    assert_int_equal(t, SLC_JSON_ANY);
    assert_int_equal(slt_schema_type_at(s, "pair[0].sku2.x[3]", &t), 0);
    assert_int_equal(t, SLC_JSON_ANY);
    /* Paths the schema rules out. */
    assert_int_equal(slt_schema_type_at(s, "nope", &t), SL_ENOTFOUND);
    assert_int_equal(slt_schema_type_at(s, "tot", &t), SL_ENOTFOUND);
    assert_int_equal(slt_schema_type_at(s, "buyer.emai", &t), 0);
    assert_int_equal(t, SLC_JSON_ANY);
    assert_int_equal(slt_schema_type_at(s, "never", &t), SL_ENOTFOUND);
    assert_int_equal(slt_schema_type_at(s, "pair[2]", &t), SL_ENOTFOUND);
    assert_int_equal(slt_schema_type_at(s, "total.x", &t), SL_ENOTFOUND);
    assert_int_equal(slt_schema_type_at(s, "buyer[0]", &t), SL_ENOTFOUND);
    assert_int_equal(slt_schema_type_at(s, "extra.a.b", &t), SL_ENOTFOUND);
    /* Malformed paths. */
    static const char *bad[] = {
        ".a", "a.", "a..b", "a[", "a[]", "a[x]", "a[1", "a]", "a[*]b", "a.[0]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (slt_schema_type_at(s, bad[i], &t) != SL_EINVAL)
            fail_msg("path \"%s\" accepted", bad[i]);
    slt_schema_destroy(&s);
    s = s_compile("{}");
    assert_int_equal(slt_schema_type_at(s, "a.b[0]", &t), 0);
    assert_int_equal(t, SLC_JSON_ANY);
    slt_schema_destroy(&s);
}

/* ---- two threads, one compiled schema (the broker's loop and worker) */

typedef struct {
    const slt_schema_t *schema; /* shared */
    pthread_barrier_t *go;      /* both start together */
    int salt;                   /* which values this thread sends */
    size_t wrong;               /* verdicts or reasons not as expected */
} s_thread_t;

static void *s_validate_many(void *arg)
{
    s_thread_t *t = arg;
    char text[64];
    pthread_barrier_wait(t->go);
    for (int i = 0; i < 20000; i++) {
        /* Every other value fails the pattern, the other thread's on the
         * other rounds: each thread must get its own verdicts and reasons
         * while the other matches the same compiled pattern. */
        bool good = (i + t->salt) % 2 == 0;
        snprintf(text, sizeof text, "{\"sku\":\"%s%d\",\"n\":%d}",
                 good ? "AB-" : "ab-", i, i);
        cJSON *doc = NULL;
        slt_schema_error_t e[2];
        size_t n = 0;
        if (slt_doc_parse(text, strlen(text), &doc, NULL, 0) != 0) {
            t->wrong++;
            continue;
        }
        int rc = slt_schema_validate(t->schema, doc, e, 2, &n);
        t->wrong += good ? rc != 0 || n != 0
                         : rc != SL_EINVAL || n != 1 || strcmp(e[0].pointer, "/sku")
                           || strcmp(e[0].rule, "does not match pattern ^[A-Z]+-[0-9]+$");
        cJSON_Delete(doc);
    }
    return NULL;
}

static void test_two_threads(void **state)
{
    (void) state;
    slt_schema_t *s = s_compile("{\"type\":\"object\",\"properties\":{"
                                "\"sku\":{\"type\":\"string\",\"pattern\":\"^[A-Z]+-[0-9]+$\"},"
                                "\"n\":{\"type\":\"integer\",\"minimum\":0}}}");
    pthread_barrier_t go;
    pthread_t th[2];
    s_thread_t t[2];
    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    for (int i = 0; i < 2; i++) {
        t[i] = (s_thread_t) { .schema = s, .go = &go, .salt = i };
        assert_int_equal(pthread_create(&th[i], NULL, s_validate_many, &t[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t[i].wrong, 0);
    }
    pthread_barrier_destroy(&go);
    slt_schema_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type),
        cmocka_unit_test(test_integer),
        cmocka_unit_test(test_object),
        cmocka_unit_test(test_nested_pointers),
        cmocka_unit_test(test_array),
        cmocka_unit_test(test_enum_const),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_ref),
        cmocka_unit_test(test_ref_refused),
        cmocka_unit_test(test_compile_refused),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_required_many),
        cmocka_unit_test(test_max_and_order),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_compat_backward),
        cmocka_unit_test(test_compat_forward_full),
        cmocka_unit_test(test_compat_ref),
        cmocka_unit_test(test_compat_names),
        cmocka_unit_test(test_type_at),
        cmocka_unit_test(test_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
