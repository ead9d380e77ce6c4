/*  test_doc - slt_doc: each content type decoded to the exact documents
 *  (JSON, NDJSON, CSV with RFC 4180 quoting, logfmt), the errors with
 *  their line and column, the document limit, and compact encoding.
 *  Pure functions on memory; single thread.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slt_doc.h"

#define S_MAX 8

/* Decode TEXT as CT: WANT is the documents as compact JSON, one a line. */
static void s_ok(const char *ct, const char *text, const char *want)
{
    cJSON *docs[S_MAX];
    size_t n = 99;
    char err[256] = "", got[4096] = "";
    int rc = slt_doc_decode(ct, text, strlen(text), docs, S_MAX, &n, err, sizeof err);
    if (rc != 0)
        fail_msg("%s %s: rc %d: %s", ct ? ct : "(null)", text, rc, err);
    for (size_t i = 0; i < n; i++) {
        char *one = NULL;
        size_t len = 0;
        assert_int_equal(slt_doc_encode(docs[i], &one, &len), 0);
        assert_int_equal(len, strlen(one));
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "\n" : "", one);
        free(one);
        cJSON_Delete(docs[i]);
    }
    if (strcmp(got, want))
        fail_msg("%s %s:\n got:\n%s\n want:\n%s", ct ? ct : "(null)", text, got, want);
}

/* Decoding TEXT (LEN bytes) as CT fails with CODE and exactly WANT. */
static void s_fails_n(const char *ct, const char *text, size_t len, size_t max,
                      int code, const char *want)
{
    cJSON *docs[S_MAX];
    size_t n = 99;
    char err[256] = "";
    int rc = slt_doc_decode(ct, text, len, docs, max, &n, err, sizeof err);
    if (rc != code)
        fail_msg("%s %s: rc %d, expected %d (%s)", ct, text, rc, code, err);
    assert_int_equal(n, 0);
    assert_string_equal(err, want);
}

static void s_fails(const char *ct, const char *text, const char *want)
{
    s_fails_n(ct, text, strlen(text), S_MAX, SL_EINVAL, want);
}

static void test_json(void **state)
{
    (void) state;
    s_ok("application/json", "{ \"b\": 1, \"a\": [true, null, 2.5] }",
         "{\"b\":1,\"a\":[true,null,2.5]}");
    s_ok("application/json", " \"just a string\" ", "\"just a string\"");
    /* No type, an empty one, an unknown one, parameters and case. */
    s_ok(NULL, "[1]", "[1]");
    s_ok("", "[1]", "[1]");
    s_ok("text/plain", "[1]", "[1]");
    s_ok(" Application/JSON ; charset=utf-8", "{}", "{}");
    s_fails("application/json", "{\"a\":1,\n \"b\":}",
            "line 2, column 6: not valid JSON near '}'");
    s_fails("application/json", "{\"a\":1,\"a\":2}",
            "at the top: the key \"a\" appears twice in one object");
    s_fails("application/json", "{} {}", "line 1, column 4: text after the JSON value");
    /* What cJSON alone would let through. */
    s_fails("application/json", "{\"a\":{\"b\":[{\"c\":1,\"d\":2,\"c\":3}]}}", "at /a/b/0: the key \"c\" appears twice in one object");
    s_fails("application/json", "[\"a\xff\"]", "line 1, column 4: not UTF-8 text");
    s_fails("application/json", "[\"a\tb\"]", "line 1, column 4: a control character inside a string (escape it)");
    s_fails("application/json", "[\"a\\u0000b\"]", "line 1, column 4: \\u0000 in a string (NUL is not allowed)");
    s_fails("application/json", "[\"\\u12g4\"]", "line 1, column 3: \\u must be followed by four hex digits");
    s_fails("application/json", "{\"a\":\"\\q\"}", "line 1, column 7: an unknown escape in a string");
    s_fails("application/json", "[1, 1e999]", "at /1: a number too large for a double");
    s_fails("application/json", "", "line 1, column 1: not valid JSON (the text ends too soon)");
    /* Integers: exact up to 2^53 either way, beyond refused; reals and
     * digits inside strings are not integers. */
    s_ok("application/json", "[9007199254740992,-9007199254740992,1.5e300,\"123456789012345678901\",\"\\\\u0000\"]",
         "[9007199254740992,-9007199254740992,1.5e+300,\"123456789012345678901\",\"\\\\u0000\"]");
    s_fails("application/json", "{\"id\":\n 9007199254740993}", "line 2, column 2: an integer beyond 2^53 (9007199254740992), which would not be kept exactly; send it as a string");
    s_fails("application/json", "[-12345678901234567890]", "line 1, column 2: an integer beyond 2^53 (9007199254740992), which would not be kept exactly; send it as a string");
    /* A wide object (sorted check) with a duplicate. */
    char wide[1024] = "{";
    for (int i = 0; i < 40; i++)
        snprintf(wide + strlen(wide), sizeof wide - strlen(wide), "\"k%d\":%d,", i, i);
    strcat(wide, "\"k7\":0}");
    s_fails("application/json", wide, "at the top: the key \"k7\" appears twice in one object");
}

static void test_int(void **state)
{
    (void) state;
    cJSON *doc = NULL;
    int64_t v = 0;
    const char *text = "[1, 1.0, 1.5, -7, 9007199254740992, \"3\"]";
    assert_int_equal(slt_doc_parse(text, strlen(text), &doc, NULL, 0), 0);
    cJSON *e = doc->child;
    assert_true(slt_doc_int(e, &v));
    assert_int_equal(v, 1);
    assert_true(slt_doc_int(e->next, &v));   /* 1.0 is an integer */
    assert_false(slt_doc_int(e->next->next, &v));
    assert_true(slt_doc_int(e->next->next->next, &v));
    assert_int_equal(v, -7);
    assert_true(slt_doc_int(e->next->next->next->next, &v));
    assert_int_equal(v, 9007199254740992LL);
    assert_false(slt_doc_int(e->next->next->next->next->next, NULL));
    assert_false(slt_doc_int(NULL, NULL));
    cJSON_Delete(doc);
}

static void test_ndjson(void **state)
{
    (void) state;
    s_ok("application/x-ndjson", "{\"n\":1}\n\n  \r\n{\"n\":2}\r\n[3]", "{\"n\":1}\n{\"n\":2}\n[3]");
    s_ok("application/ndjson", "1\n", "1");
    s_ok("application/x-ndjson", "", "");
    s_fails("application/x-ndjson", "{\"n\":1}\n{\"n\":2}\n{\"n\" 3}\n",
            "line 3, column 6: not valid JSON near '3}'");
    /* One value per line: a value across lines is an error. */
    s_fails("application/x-ndjson", "{\"n\":\n1}",
            "line 1, column 5: not valid JSON near ':'");
    /* More documents than room: none are returned. */
    const char *many = "1\n2\n3\n";
    s_fails_n("application/x-ndjson", many, strlen(many), 2, SL_ETOOBIG,
              "more than 2 documents");
}

static void test_csv(void **state)
{
    (void) state;
    s_ok("text/csv", "sku,qty,note\nABC,2,\nXYZ,10,\"fast, please\"\n",
         "{\"sku\":\"ABC\",\"qty\":\"2\",\"note\":\"\"}\n"
         "{\"sku\":\"XYZ\",\"qty\":\"10\",\"note\":\"fast, please\"}");
    /* RFC 4180: "" is a quote, quoted fields hold CRLF, CRLF ends rows, a
     * BOM is skipped, the last row may lack its line end. */
    s_ok("text/csv; header=present", "\xEF\xBB\xBF" "a,b\r\n\"say \"\"hi\"\"\",\"two\r\nlines\"\r\n"
         "\r\n,\"\"",
         "{\"a\":\"say \\\"hi\\\"\",\"b\":\"two\\r\\nlines\"}\n"
         "{\"a\":\"\",\"b\":\"\"}");
    s_ok("text/csv", "only,header\n", "");
    s_ok("text/csv", "", "");
    s_ok("TEXT/CSV", "x\nh\u00e9\n", "{\"x\":\"h\u00e9\"}");
    s_fails("text/csv", "a,b\n1,2\n3\n", "line 3: 1 field, the header has 2");
    s_fails("text/csv", "a,b\n1,2,3\n", "line 2: 3 fields, the header has 2");
    s_fails("text/csv", "a,b\n1,\"open\n\nstill open", "line 2, column 3: the quoted "
            "field never ends");
    s_fails("text/csv", "a,b\n1,x\"y\n", "line 2, column 4: a quote inside an "
            "unquoted field (quote the whole field)");
    s_fails("text/csv", "a,b\n\"multi\nline\"x,2\n", "line 3, column 6: text after "
            "the closing quote (a quote inside a quoted field is written \"\")");
    s_fails("text/csv", "a,b,a\n", "line 1, column 5: this column name appears twice");
    s_fails("text/csv", "a,,b\n", "line 1, column 3: a column without a name");
    s_fails("text/csv", "a,b\n1,\xff\xfe\n", "line 2, column 3: not UTF-8 text (or a NUL byte)");
    s_fails_n("text/csv", "a\n1\n\0\n", 6, S_MAX, SL_EINVAL,
              "line 3, column 1: not UTF-8 text (or a NUL byte)");
}

static void test_logfmt(void **state)
{
    (void) state;
    s_ok("text/logfmt",
         "level=info msg=\"order \\\"42\\\" paid\" dur=1.5s ok\n"
         "\n"
         "  at=2024-01-01T00:00:00Z\tpath=/a=b empty= tab=\"a\\tb\\\\\"\r\n",
         "{\"level\":\"info\",\"msg\":\"order \\\"42\\\" paid\",\"dur\":\"1.5s\",\"ok\":true}\n"
         "{\"at\":\"2024-01-01T00:00:00Z\",\"path\":\"/a=b\",\"empty\":\"\",\"tab\":\"a\\tb\\\\\"}");
    s_ok("text/logfmt", "a=1 a=2", "{\"a\":\"2\"}");
    s_ok("text/logfmt", " \n\t\n", "");
    s_fails("text/logfmt", "a=1\nmsg=\"open", "line 2, column 5: the quoted value never ends");
    s_fails("text/logfmt", "a=\"x\\q\"", "line 1, column 5: unknown escape (use \\\" \\\\ \\n \\r \\t)");
    s_fails("text/logfmt", "a=x\"y\"", "line 1, column 4: a quote inside an unquoted value");
    s_fails("text/logfmt", "ok =1", "line 1, column 4: expected a key (key=value)");
    s_fails("text/logfmt", "a=\"x\"y", "line 1, column 6: text after the closing quote");
    s_fails("text/logfmt", "k\"=1", "line 1, column 2: expected a key (key=value)");
    s_fails("text/logfmt", "a=1\nb=\xc3\x28", "line 2, column 3: not UTF-8 text (or a NUL byte)");
    s_fails_n("text/logfmt", "a=1\nb=2\nc=3", 11, 2, SL_ETOOBIG, "more than 2 documents");
}

static void test_encode(void **state)
{
    (void) state;
    /* Numbers leave exactly as they came (cJSON's own printer would cut
     * 1234567890123456 and 0.30000000000000004 to 15 digits). */
    s_ok(NULL, "[1234567890123456,0.30000000000000004,0.1,2.5,-1e-7,1.0,\"\\u0001\\n\\/\"]",
         "[1234567890123456,0.30000000000000004,0.1,2.5,-1e-07,1,\"\\u0001\\n/\"]");
    cJSON *doc = cJSON_CreateObject(), *a = cJSON_CreateArray();
    assert_non_null(doc);
    assert_non_null(a);
    assert_non_null(cJSON_AddNumberToObject(doc, "z", 1));
    assert_true(cJSON_AddItemToObject(doc, "a", a));
    assert_true(cJSON_AddItemToArray(a, cJSON_CreateString("x\"y")));
    assert_true(cJSON_AddItemToArray(a, cJSON_CreateTrue()));
    assert_true(cJSON_AddItemToArray(a, cJSON_CreateNull()));
    assert_non_null(cJSON_AddNumberToObject(doc, "r", 0.5));
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(slt_doc_encode(doc, &out, &len), 0);
    assert_string_equal(out, "{\"z\":1,\"a\":[\"x\\\"y\",true,null],\"r\":0.5}");
    assert_int_equal(len, strlen(out));
    free(out);
    /* A whole number past 2^53 leaves as a real, so that it parses again. */
    s_ok(NULL, "[9007199254740994.0,1e20]", "[9007199254740994.0,1e+20]");
    /* Sorted keys (canonical texts), at every level. */
    cJSON *un = NULL;
    const char *text = "{\"b\":1,\"a\":{\"z\":[{\"y\":1,\"x\":2}],\"c\":null}}";
    assert_int_equal(slt_doc_parse(text, strlen(text), &un, NULL, 0), 0);
    assert_int_equal(slt_doc_encode_ex(un, SLT_DOC_SORTED, &out, NULL), 0);
    assert_string_equal(out, "{\"a\":{\"c\":null,\"z\":[{\"x\":2,\"y\":1}]},\"b\":1}");
    free(out);
    cJSON_Delete(un);
    /* A scalar is a document too; LEN may be NULL. */
    cJSON *s = cJSON_CreateString("\xc3\xa9");
    assert_int_equal(slt_doc_encode(s, &out, NULL), 0);
    assert_string_equal(out, "\"\xc3\xa9\"");
    free(out);
    cJSON_Delete(s);
    cJSON_Delete(doc);
}

/* slt_doc_print writes exactly what cJSON_PrintUnformatted writes (derived
 * messages must not change bytes when the faster printer is used): numbers
 * of every kind, escapes, nesting, empty containers. */
static void test_print_like_cjson(void **state)
{
    (void) state;
    static const char *docs[] = {
        "{\"a\":1,\"b\":-0.5,\"c\":1e300,\"d\":123456789012345678,\"e\":0.1}",
        "[0,-1,2147483647,-2147483648,4294967296,1e-7,3.141592653589793,-0]",
        "{\"s\":\"quote \\\" slash \\\\ tab \\t nl \\n ctl \\u0001 \\u00e9 \\u2028\"}",
        "{\"n\":null,\"t\":true,\"f\":false,\"o\":{},\"l\":[],\"x\":{\"y\":[{\"z\":[1,[2,[3]]]}]}}",
        "12.5", "\"plain\"", "[9007199254740993,1.7976931348623157e308,5e-324]",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        cJSON *doc = cJSON_Parse(docs[i]);
        assert_non_null(doc);
        char *want = cJSON_PrintUnformatted(doc), *got = NULL;
        size_t len = 0;
        assert_int_equal(slt_doc_print(doc, &got, &len), 0);
        assert_string_equal(got, want);
        assert_int_equal(len, strlen(want));
        free(got);
        cJSON_free(want);
        cJSON_Delete(doc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_int),
        cmocka_unit_test(test_ndjson),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_logfmt),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_print_like_cjson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
