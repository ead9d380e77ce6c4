/*  test_file_csv - adapters/file's CSV reader (file_csv) and the typing of
 *  a row into JSON by a schema (file_record): quotes, doubled quotes,
 *  CRLF and LF, newlines inside quotes, blank lines, empty fields, the
 *  line each record starts on, the errors (text after a closing quote, a
 *  quote never closed) and going on after them; integer / number /
 *  boolean / null / string as the schema says, strings without one.  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "file_csv.h"
#include "file_record.h"

/* Read every record of TEXT into one string: fields joined by '|',
 * records by ';', errors as "E<line>". */
static char *s_dump(const char *text, char sep)
{
    file_csv_t *r = file_csv_new(text, strlen(text), sep);
    char *out = calloc(1, 4096);
    const file_csv_field_t *f;
    size_t n, end;
    uint64_t line;
    char err[256];
    int k;
    assert_non_null(r);
    while ((k = file_csv_next(r, &f, &n, &line, &end, err, sizeof err)) != 0) {
        size_t o = strlen(out);
        if (k < 0) {
            snprintf(out + o, 4096 - o, "E%llu;", (unsigned long long) line);
            continue;
        }
        snprintf(out + o, 4096 - o, "%llu:", (unsigned long long) line);
        for (size_t i = 0; i < n; i++) {
            o = strlen(out);
            assert_int_equal(strlen(f[i].ptr), f[i].len);
            snprintf(out + o, 4096 - o, "%s%s", i ? "|" : "", f[i].ptr);
        }
        o = strlen(out);
        snprintf(out + o, 4096 - o, ";");
    }
    file_csv_destroy(&r);
    assert_null(r);
    return out;
}

static void s_expect(const char *text, char sep, const char *want)
{
    char *got = s_dump(text, sep);
    assert_string_equal(got, want);
    free(got);
}

static void test_plain(void **state)
{
    (void) state;
    s_expect("a,b,c\n1,2,3\n", ',', "1:a|b|c;2:1|2|3;");
    s_expect("a,b\r\n1,2\r\n", ',', "1:a|b;2:1|2;");
    s_expect("a,b\n1,2", ',', "1:a|b;2:1|2;");            /* no final newline */
    s_expect("a,,c,\n", ',', "1:a||c|;");                   /* empty fields */
    s_expect("a;b\n", ';', "1:a|b;");
    s_expect("\n\r\na\n\nb\n", ',', "3:a;5:b;");            /* blank lines */
    s_expect("", ',', "");
    s_expect("x\ry,z\n", ',', "1:x\ry|z;");                 /* a lone CR is text */
    s_expect("ab\"c,d\n", ',', "1:ab\"c|d;");               /* a bare quote is text */
}

static void test_quoted(void **state)
{
    (void) state;
    s_expect("\"a,b\",c\n", ',', "1:a,b|c;");
    s_expect("\"say \"\"hi\"\"\",x\n", ',', "1:say \"hi\"|x;");
    s_expect("\"\",\"\"\"\"\n", ',', "1:|\";");
    s_expect("\"two\nlines\",x\nnext,y\n", ',', "1:two\nlines|x;3:next|y;");
    s_expect("\"crlf\r\ninside\",x\r\nz\r\n", ',', "1:crlf\r\ninside|x;3:z;");
    s_expect("a,\"b\"", ',', "1:a|b;");                     /* quoted at the end */
}

static void test_errors(void **state)
{
    (void) state;
    /* Text after a closing quote: that record fails, the next line goes on. */
    s_expect("\"a\"b,c\nok,1\n", ',', "E1;2:ok|1;");
    /* A quote never closed: the rest of the input is that record. */
    s_expect("x,1\n\"open,2\nmore\n", ',', "1:x|1;E2;");
}

static void test_quoted_flag(void **state)
{
    (void) state;
    const char *text = "\"\",";
    file_csv_t *r = file_csv_new(text, strlen(text), ',');
    const file_csv_field_t *f;
    size_t n, end;
    uint64_t line;
    char err[128];
    assert_int_equal(file_csv_next(r, &f, &n, &line, &end, err, sizeof err), 1);
    assert_int_equal(n, 2);
    assert_true(f[0].quoted);
    assert_false(f[1].quoted);
    assert_int_equal(end, strlen(text));
    assert_int_equal(file_csv_next(r, &f, &n, &line, &end, err, sizeof err), 0);
    file_csv_destroy(&r);
}

/* Row TEXT (after the header HEADER) as JSON by SCHEMA. */
static char *s_json(const char *schema, const char *header, const char *row)
{
    char text[512];
    snprintf(text, sizeof text, "%s\n%s\n", header, row);
    file_csv_t *r = file_csv_new(text, strlen(text), ',');
    file_record_t *rec = file_record_from_schema(schema);
    const file_csv_field_t *f;
    size_t n, end, len = 0;
    uint64_t line;
    char err[128], *json = NULL;
    assert_int_equal(file_csv_next(r, &f, &n, &line, &end, err, sizeof err), 1);
    assert_int_equal(file_record_header(rec, f, n, err, sizeof err), 0);
    assert_int_equal(file_csv_next(r, &f, &n, &line, &end, err, sizeof err), 1);
    if (file_record_json(rec, f, n, &json, &len, err, sizeof err) != 0)
        json = strdup(err);
    file_record_destroy(&rec);
    file_csv_destroy(&r);
    return json;
}

static void s_expect_json(const char *schema, const char *header, const char *row,
                          const char *want)
{
    char *got = s_json(schema, header, row);
    assert_string_equal(got, want);
    free(got);
}

static void test_typed(void **state)
{
    (void) state;
    const char *schema = "{\"properties\":{\"i\":{\"type\":\"integer\"},"
                         "\"n\":{\"type\":\"number\"},\"b\":{\"type\":\"boolean\"},"
                         "\"o\":{\"type\":[\"integer\",\"null\"]},\"s\":{\"type\":\"string\"}}}";
    s_expect_json(schema, "i,n,b,o,s,x", "12345678901234567890,-1.5e3,TRUE,,007,\"1\"",
                  "{\"i\":12345678901234567890,\"n\":-1.5e3,\"b\":true,\"o\":null,"
                  "\"s\":\"007\",\"x\":\"1\"}");
    /* Not what the schema says: a string, for the broker to refuse. */
    s_expect_json(schema, "i,n,b,o", "1.5,01,yes,\"\"",
                  "{\"i\":\"1.5\",\"n\":\"01\",\"b\":\"yes\",\"o\":\"\"}");
    /* No schema: strings. */
    s_expect_json(NULL, "a,b", "1,true", "{\"a\":\"1\",\"b\":\"true\"}");
    s_expect_json(NULL, "a,b", "1", "1 fields where the header has 2");
}

static void test_header(void **state)
{
    (void) state;
    const char *text = "a,b,a\n";
    file_csv_t *r = file_csv_new(text, strlen(text), ',');
    file_record_t *rec = file_record_from_schema(NULL);
    const file_csv_field_t *f;
    size_t n, end;
    uint64_t line;
    char err[128];
    assert_int_equal(file_csv_next(r, &f, &n, &line, &end, err, sizeof err), 1);
    assert_int_equal(file_record_header(rec, f, n, err, sizeof err), -1);
    assert_non_null(strstr(err, "'a' twice"));
    file_record_destroy(&rec);
    file_csv_destroy(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_quoted_flag),
        cmocka_unit_test(test_typed),
        cmocka_unit_test(test_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
