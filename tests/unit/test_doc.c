/*  test_doc - slc_doc: each content type decoded to the exact documents
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
#include "slc_doc.h"

#define S_MAX 8

/* Decode TEXT as CT: WANT is the documents as compact JSON, one a line. */
static void s_ok(const char *ct, const char *text, const char *want)
{
    json_t *docs[S_MAX];
    size_t n = 99;
    char err[256] = "", got[4096] = "";
    int rc = slc_doc_decode(ct, text, strlen(text), docs, S_MAX, &n, err, sizeof err);
    if (rc != 0)
        fail_msg("%s %s: rc %d: %s", ct ? ct : "(null)", text, rc, err);
    for (size_t i = 0; i < n; i++) {
        char *one = NULL;
        size_t len = 0;
        assert_int_equal(slc_doc_encode(docs[i], &one, &len), 0);
        assert_int_equal(len, strlen(one));
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "\n" : "", one);
        free(one);
        json_decref(docs[i]);
    }
    if (strcmp(got, want))
        fail_msg("%s %s:\n got:\n%s\n want:\n%s", ct ? ct : "(null)", text, got, want);
}

/* Decoding TEXT (LEN bytes) as CT fails with CODE and exactly WANT. */
static void s_fails_n(const char *ct, const char *text, size_t len, size_t max,
                      int code, const char *want)
{
    json_t *docs[S_MAX];
    size_t n = 99;
    char err[256] = "";
    int rc = slc_doc_decode(ct, text, len, docs, max, &n, err, sizeof err);
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
            "line 2, column 6: unexpected token near '}'");
    s_fails("application/json", "{\"a\":1,\"a\":2}",
            "line 1, column 10: duplicate object key near '\"a\"'");
    s_fails("application/json", "{} {}", "line 1, column 4: end of file expected near '{'");
}

static void test_ndjson(void **state)
{
    (void) state;
    s_ok("application/x-ndjson", "{\"n\":1}\n\n  \r\n{\"n\":2}\r\n[3]", "{\"n\":1}\n{\"n\":2}\n[3]");
    s_ok("application/ndjson", "1\n", "1");
    s_ok("application/x-ndjson", "", "");
    s_fails("application/x-ndjson", "{\"n\":1}\n{\"n\":2}\n{\"n\" 3}\n",
            "line 3, column 6: ':' expected near '3'");
    /* One value per line: a value across lines is an error. */
    s_fails("application/x-ndjson", "{\"n\":\n1}",
            "line 1, column 5: unexpected token near end of file");
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
    json_t *doc = json_pack("{s:i, s:[s, b, n], s:f}", "z", 1, "a", "x\"y", 1, "r", 0.5);
    assert_non_null(doc);
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(slc_doc_encode(doc, &out, &len), 0);
    assert_string_equal(out, "{\"z\":1,\"a\":[\"x\\\"y\",true,null],\"r\":0.5}");
    assert_int_equal(len, strlen(out));
    free(out);
    /* A scalar is a document too; LEN may be NULL. */
    json_t *s = json_string("\xc3\xa9");
    assert_int_equal(slc_doc_encode(s, &out, NULL), 0);
    assert_string_equal(out, "\"\xc3\xa9\"");
    free(out);
    json_decref(s);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_ndjson),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_logfmt),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
