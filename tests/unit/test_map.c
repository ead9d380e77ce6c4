/*  test_map - slt_map: the mapping language end to end. Every operator and
 *  function on sample documents, the example mapping, drop_if,
 *  nested targets, tables, ?? and lambdas; each class of compile error
 *  with its exact position and caret; runtime errors and every limit; an
 *  output that outlives its document and mapping. Documents are cJSON
 *  trees from slt_doc_parse. Type information comes from a small table of
 *  paths (s_types), standing in for a real schema.  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "slt_map.h"
#include "slt_doc.h"

/* ---- the source schema of the tests: shop-a.order@1 */

static const struct {
    const char *path;
    unsigned types;
} s_schema[] = {
    { "$", SLT_MAP_T_OBJECT },
    { "$.id", SLT_MAP_T_STRING },
    { "$.buyer", SLT_MAP_T_OBJECT },
    { "$.buyer.email", SLT_MAP_T_STRING },
    { "$.buyer.country", SLT_MAP_T_STRING },
    { "$.total", SLT_MAP_T_NUMBER },
    { "$.currency", SLT_MAP_T_STRING | SLT_MAP_T_NULL },
    { "$.test", SLT_MAP_T_BOOLEAN },
    { "$.count", SLT_MAP_T_INTEGER },
    { "$.items", SLT_MAP_T_ARRAY },
    { "$.items[*]", SLT_MAP_T_OBJECT },
    { "$.items[*].sku", SLT_MAP_T_STRING },
    { "$.items[*].qty", SLT_MAP_T_INTEGER },
    { "$[\"content-type\"]", SLT_MAP_T_STRING },
};

static int s_types(void *arg, const char *path, unsigned *types)
{
    int *calls = arg;
    if (calls)
        (*calls)++;
    for (size_t k = 0; k < sizeof s_schema / sizeof s_schema[0]; k++)
        if (strcmp(s_schema[k].path, path) == 0) {
            *types = s_schema[k].types;
            return 0;
        }
    return SL_ENOTFOUND;
}

static int s_types_broken(void *arg, const char *path, unsigned *types)
{
    (void) arg;
    (void) path;
    (void) types;
    return SL_ESTORE;
}

#define HEAD "name: t\nfrom: shop-a.order@1\nto: canonical.order@1\n"

static const char *s_order =
    "{\"id\": \"A-1\", \"buyer\": {\"email\": \"  Jane.Doe@Example.COM \", \"country\": \"DE\"},"
    " \"total\": 129.99, \"currency\": \"USD\", \"test\": false, \"count\": 3,"
    " \"items\": [{\"sku\": \"X-1\", \"qty\": 2}, {\"sku\": \"Y-2\", \"qty\": 1},"
    " {\"sku\": \"Z-3\", \"qty\": 5, \"tags\": [\"a\", \"b\"]}],"
    " \"content-type\": \"json\"}";

static char s_err[16384];

static cJSON *s_json(const char *text)
{
    cJSON *j = NULL;
    char e[256];
    if (slt_doc_parse(text, strlen(text), &j, e, sizeof e) != 0)
        fail_msg("bad test JSON: %s: %s", e, text);
    return j;
}

static int s_key_cmp(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *) a)->string, (*(cJSON *const *) b)->string);
}

/* Members of every object of J in key order (detached and added back). */
static void s_sort(cJSON *j)
{
    cJSON *items[256], *e;
    size_t n = 0;
    cJSON_ArrayForEach(e, j)
        s_sort(e);
    if (!cJSON_IsObject(j))
        return;
    while (j->child) {
        assert_true(n < 256);
        items[n++] = cJSON_DetachItemViaPointer(j, j->child);
    }
    qsort(items, n, sizeof *items, s_key_cmp);
    for (size_t k = 0; k < n; k++)
        assert_true(cJSON_AddItemToArray(j, items[k]));
}

/* J as compact JSON (caller frees), keys sorted so that expected texts do
 * not depend on the document's order. */
static char *s_dump(const cJSON *j)
{
    char *text = NULL;
    cJSON *c = cJSON_Duplicate(j, true);
    assert_non_null(c);
    s_sort(c);
    assert_int_equal(slt_doc_encode(c, &text, NULL), 0);
    cJSON_Delete(c);
    return text;
}

/* J as compact JSON in its own order (caller frees). */
static char *s_text(const cJSON *j)
{
    char *text = NULL;
    assert_int_equal(slt_doc_encode(j, &text, NULL), 0);
    return text;
}

static slt_map_t *s_compile(const char *yaml, slt_map_types_fn *types)
{
    slt_map_t *m = NULL;
    int rc = slt_map_compile(yaml, strlen(yaml), "t.yaml", types, NULL, &m, s_err, sizeof s_err);
    if (rc != 0)
        fail_msg("compile failed (%d):\n%s\n--- in ---\n%s", rc, s_err, yaml);
    assert_string_equal(s_err, "");
    return m;
}

/* Compile YAML expecting failure RC; the diagnostics are in s_err. */
static void s_compile_fails(const char *yaml, slt_map_types_fn *types, int rc)
{
    slt_map_t *m = (slt_map_t *) 1;
    assert_int_equal(slt_map_compile(yaml, strlen(yaml), "t.yaml", types, NULL, &m, s_err,
                                     sizeof s_err), rc);
    assert_null(m);
    assert_true(strlen(s_err) > 0);
}

static cJSON *s_meta(void)
{
    return s_json("{\"topic\": \"shop.orders\", \"offset\": 42,"
                  " \"headers\": {\"adapter\": \"http\", \"content-type\": \"text/plain\"},"
                  " \"lineage\": {\"route\": \"r1\"}}");
}

/* Evaluate EXPR (field r, after the PRE lines of YAML) on DOC; returns
 * the value of r (caller owns), or NULL with s_err on a runtime error. */
static cJSON *s_run(const char *pre, const char *expr, const char *doc, int want_rc)
{
    char yaml[65536];
    snprintf(yaml, sizeof yaml, HEAD "%smap:\n  r: |\n    %s\n", pre, expr);
    slt_map_t *m = s_compile(yaml, NULL);
    cJSON *d = s_json(doc), *meta = s_meta(), *out = NULL, *r = NULL;
    bool dropped = true;
    int rc = slt_map_eval(m, d, meta, &out, &dropped, s_err, sizeof s_err);
    if (rc != want_rc)
        fail_msg("eval of %s: rc %d, wanted %d: %s", expr, rc, want_rc, s_err);
    assert_false(dropped);
    if (rc == 0) {
        r = cJSON_DetachItemFromObjectCaseSensitive(out, "r");
        assert_non_null(r);
    } else {
        assert_null(out);
        assert_true(strlen(s_err) > 0);
    }
    cJSON_Delete(out);
    cJSON_Delete(d);
    cJSON_Delete(meta);
    slt_map_destroy(&m);
    return r;
}

/* EXPR on DOC gives the JSON text WANT. */
static void s_is_in(const char *pre, const char *expr, const char *doc, const char *want)
{
    cJSON *r = s_run(pre, expr, doc, 0);
    char *got = s_dump(r);
    if (strcmp(got, want) != 0)
        fail_msg("%s gave %s, wanted %s", expr, got, want);
    free(got);
    cJSON_Delete(r);
}

static void s_is(const char *expr, const char *want)
{
    s_is_in("", expr, s_order, want);
}

/* EXPR on DOC fails at run time with a message containing WANT. */
static void s_fails_in(const char *expr, const char *doc, const char *want)
{
    assert_null(s_run("", expr, doc, SL_EINVAL));
    if (!strstr(s_err, want))
        fail_msg("%s failed with \"%s\", wanted \"%s\"", expr, s_err, want);
}

static void s_fails(const char *expr, const char *want)
{
    s_fails_in(expr, s_order, want);
}

/* EXPR does not compile; the diagnostics contain WANT. */
static void s_bad(const char *expr, slt_map_types_fn *types, const char *want)
{
    char yaml[65536];
    snprintf(yaml, sizeof yaml, HEAD "map:\n  r: |\n    %s\n", expr);
    s_compile_fails(yaml, types, SL_EINVAL);
    if (!strstr(s_err, want))
        fail_msg("%s: diagnostics\n%s\ndo not contain \"%s\"", expr, s_err, want);
}

/* ---- the example */

static const char *s_example =
    "name: shop-a-to-canonical\n"
    "from: shop-a.order@1\n"
    "to: canonical.order@1\n"
    "map:\n"
    "  order_id: $.id\n"
    "  customer.email: lower(trim($.buyer.email))\n"
    "  amount_cents: int(round($.total * 100))\n"
    "  currency: $.currency ?? \"EUR\"\n"
    "drop_if: $.test == true\n";

static void s_example_on(const slt_map_t *m, const char *doc, const char *want)
{
    cJSON *d = s_json(doc), *out = NULL;
    bool dropped = true;
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), 0);
    if (!want) {
        assert_true(dropped);
        assert_null(out);
    } else {
        assert_false(dropped);
        char *got = s_dump(out);
        assert_string_equal(got, want);
        free(got);
    }
    cJSON_Delete(out);
    cJSON_Delete(d);
}

static void test_example(void **state)
{
    (void) state;
    int calls = 0;
    slt_map_t *m = NULL;
    assert_int_equal(slt_map_compile(s_example, strlen(s_example), "shop-a.yaml", s_types, &calls,
                                     &m, s_err, sizeof s_err), 0);
    assert_true(calls > 0);         /* the schema was asked */
    assert_string_equal(slt_map_name(m), "shop-a-to-canonical");
    assert_string_equal(slt_map_from(m), "shop-a.order@1");
    assert_string_equal(slt_map_to(m), "canonical.order@1");
    s_example_on(m, s_order, "{\"amount_cents\":12999,\"currency\":\"USD\","
                 "\"customer\":{\"email\":\"jane.doe@example.com\"},\"order_id\":\"A-1\"}");
    /* ?? with null and with missing */
    s_example_on(m, "{\"id\": \"B\", \"buyer\": {\"email\": \"b@x.org\"}, \"total\": 0.1,"
                 " \"currency\": null}",
                 "{\"amount_cents\":10,\"currency\":\"EUR\",\"customer\":{\"email\":\"b@x.org\"},"
                 "\"order_id\":\"B\"}");
    s_example_on(m, "{\"id\": \"C\", \"buyer\": {\"email\": \"C@X\"}, \"total\": 19.99}",
                 "{\"amount_cents\":1999,\"currency\":\"EUR\",\"customer\":{\"email\":\"c@x\"},"
                 "\"order_id\":\"C\"}");
    /* drop_if */
    s_example_on(m, "{\"test\": true}", NULL);
    /* A missing id is an error that names the field and the path. */
    cJSON *d = s_json("{\"buyer\": {\"email\": \"a@b\"}, \"total\": 1}"), *out = NULL;
    bool dropped = true;
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), SL_EINVAL);
    assert_null(out);
    assert_false(dropped);
    assert_string_equal(s_err, "mapping 'shop-a-to-canonical': field 'order_id' (shop-a.yaml:5:13): "
                        "$.id is missing (write $.id ?? DEFAULT to give a default)");
    cJSON_Delete(d);
    slt_map_destroy(&m);
    assert_null(m);
    slt_map_destroy(&m);            /* NULL-safe */
    slt_map_destroy(NULL);
}

/* No node of J is a cJSON reference or has a borrowed key: the output
 * owns all of its memory. */
static void s_owns_all(const cJSON *j)
{
    const cJSON *e;
    assert_false(j->type & (cJSON_IsReference | cJSON_StringIsConst));
    cJSON_ArrayForEach(e, j)
        s_owns_all(e);
}

/* The output shares nothing with the document, META or the mapping: it
 * outlives all three (under ASan every read after they are freed would be
 * caught), and changing it leaves the document as it was. */
static void test_no_alias(void **state)
{
    (void) state;
    slt_map_t *m = s_compile(HEAD "tables:\n  t:\n    k: tabled\n"
                             "map:\n  b: $.buyer\n  i: $.items\n  s: $.id\n"
                             "  m: map($.items, x => x)\n  f: filter($.items, x => x.qty > 1)\n"
                             "  p: $.items[*].sku\n  l: lookup(t, \"k\")\n"
                             "  o: '{k: \"lit\", v: [$.buyer, $meta.topic, split(\"x,y\", \",\")]}'\n"
                             "  a.h: $meta.headers\n  a.e: trim($.buyer.email)\n"
                             "  a.w: map(split(\"u v\", \" \"), w => w)\n", s_types);
    cJSON *d = s_json(s_order), *meta = s_meta(), *out = NULL;
    bool dropped;
    char *text = s_dump(d);
    assert_int_equal(slt_map_eval(m, d, meta, &out, &dropped, s_err, sizeof s_err), 0);
    s_owns_all(out);
    assert_ptr_not_equal(cJSON_GetObjectItemCaseSensitive(out, "b"),
                         cJSON_GetObjectItemCaseSensitive(d, "buyer"));
    assert_ptr_not_equal(cJSON_GetObjectItemCaseSensitive(out, "s")->valuestring,
                         cJSON_GetObjectItemCaseSensitive(d, "id")->valuestring);
    char *want = s_text(out);
    assert_string_equal(want, "{\"b\":{\"email\":\"  Jane.Doe@Example.COM \",\"country\":\"DE\"},"
        "\"i\":[{\"sku\":\"X-1\",\"qty\":2},{\"sku\":\"Y-2\",\"qty\":1},"
        "{\"sku\":\"Z-3\",\"qty\":5,\"tags\":[\"a\",\"b\"]}],\"s\":\"A-1\","
        "\"m\":[{\"sku\":\"X-1\",\"qty\":2},{\"sku\":\"Y-2\",\"qty\":1},"
        "{\"sku\":\"Z-3\",\"qty\":5,\"tags\":[\"a\",\"b\"]}],"
        "\"f\":[{\"sku\":\"X-1\",\"qty\":2},{\"sku\":\"Z-3\",\"qty\":5,\"tags\":[\"a\",\"b\"]}],"
        "\"p\":[\"X-1\",\"Y-2\",\"Z-3\"],\"l\":\"tabled\","
        "\"o\":{\"k\":\"lit\",\"v\":[{\"email\":\"  Jane.Doe@Example.COM \",\"country\":\"DE\"},"
        "\"shop.orders\",[\"x\",\"y\"]]},"
        "\"a\":{\"h\":{\"adapter\":\"http\",\"content-type\":\"text/plain\"},"
        "\"e\":\"Jane.Doe@Example.COM\",\"w\":[\"u\",\"v\"]}}");
    /* Changing the output leaves the document alone. */
    cJSON *b = cJSON_GetObjectItemCaseSensitive(out, "b");
    assert_true(cJSON_ReplaceItemInObjectCaseSensitive(b, "email", cJSON_CreateString("changed")));
    cJSON_DeleteItemFromObjectCaseSensitive(out, "i");
    char *after = s_dump(d);
    assert_string_equal(text, after);
    free(after);
    /* A fresh output outlives the document, META and the mapping. */
    cJSON_Delete(out);
    assert_int_equal(slt_map_eval(m, d, meta, &out, &dropped, s_err, sizeof s_err), 0);
    cJSON_Delete(d);
    cJSON_Delete(meta);
    slt_map_destroy(&m);
    after = s_text(out);
    assert_string_equal(want, after);
    free(after);
    free(want);
    free(text);
    cJSON_Delete(out);
}

/* ---- expressions */

static void test_literals(void **state)
{
    (void) state;
    s_is("12", "12");
    s_is("-12", "-12");
    s_is("1.5", "1.5");
    s_is("-2.5e3", "-2500");                     /* JSON numbers: 2500.0 is 2500 */
    s_is("true", "true");
    s_is("false", "false");
    s_is("null", "null");
    s_is("\"a\\\"b\\\\c\\/\\n\\t\"", "\"a\\\"b\\\\c/\\n\\t\"");
    s_is("\"\\u00e9\\ud83d\\ude00\"", "\"\xc3\xa9\xf0\x9f\x98\x80\"");
    s_is("\"caf\xc3\xa9\"", "\"caf\xc3\xa9\"");
    s_is("[]", "[]");
    s_is("[1, \"a\", [true], null]", "[1,\"a\",[true],null]");
    s_is("{}", "{}");
    s_is("{a: 1, \"b c\": [$.id], if: 2}", "{\"a\":1,\"b c\":[\"A-1\"],\"if\":2}");
}

static void test_paths(void **state)
{
    (void) state;
    s_is("$.id", "\"A-1\"");
    s_is("$.buyer.country", "\"DE\"");
    s_is("$.items[0].sku", "\"X-1\"");
    s_is("$.items[2].tags[1]", "\"b\"");
    s_is("$.items[-1].sku", "\"Z-3\"");                   /* from the end */
    s_is("$.items[-3].sku", "\"X-1\"");
    s_is("$.items[-1].tags[-2]", "\"a\"");
    s_is("$.items[-0].sku", "\"X-1\"");
    s_is("split(\"a-b-c\", \"-\")[-1]", "\"c\"");
    s_is("[10, 20, 30][-2]", "20");
    s_is("map($.items, it => it.tags[-1] ?? \"-\")", "[\"-\",\"-\",\"b\"]");
    s_is("$.items[-4] ?? \"none\"", "\"none\"");           /* out of range: missing */
    s_is("[][-1] ?? \"none\"", "\"none\"");
    s_is("$.buyer[-1] ?? \"no index of an object\"", "\"no index of an object\"");
    s_is("$.items[*].qty", "[2,1,5]");
    s_is("$.items[*]", "[{\"qty\":2,\"sku\":\"X-1\"},{\"qty\":1,\"sku\":\"Y-2\"},"
         "{\"qty\":5,\"sku\":\"Z-3\",\"tags\":[\"a\",\"b\"]}]");
    s_is("$.items[*].tags", "[[\"a\",\"b\"]]");           /* items without tags skipped */
    s_is("$.items[*].tags[*]", "[\"a\",\"b\"]");          /* a second [*] flattens */
    s_is("$[\"content-type\"]", "\"json\"");
    s_is("$.buyer[\"country\"]", "\"DE\"");
    s_is("length($)", "8");
    s_is("split(\"a-b-c\", \"-\")[1]", "\"b\"");
    s_is("[10, 20, 30][2]", "30");
    s_is("{a: {b: 7}}.a.b", "7");
    s_is("$meta.topic", "\"shop.orders\"");
    s_is("$meta.offset", "42");
    s_is("$meta.headers.adapter", "\"http\"");
    s_is("$meta.headers[\"content-type\"]", "\"text/plain\"");
    s_is("$meta.lineage.route", "\"r1\"");
    /* What a path does not reach is missing: ?? replaces it, anything
     * else is an error. */
    s_is("$.nope ?? 1", "1");
    s_is("$.items[9] ?? \"none\"", "\"none\"");
    s_is("$.id.x ?? \"no member of a string\"", "\"no member of a string\"");
    s_is("$.buyer[0] ?? \"no index of an object\"", "\"no index of an object\"");
    s_is("$meta.headers.nope ?? \"-\"", "\"-\"");
    s_is("$.nope[*] ?? 1", "[]");
    s_fails("$.nope", "$.nope is missing");
    s_fails("$.items[7].sku", "$.items[7].sku is missing");
    s_fails("$.items[-7].sku", "$.items[-7].sku is missing");
    /* Without a META every $meta path is missing. */
    slt_map_t *m = s_compile(HEAD "map:\n  r: $meta.topic ?? \"none\"\n", NULL);
    cJSON *d = s_json("{}"), *out = NULL;
    bool dropped;
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(out, "r")->valuestring, "none");
    cJSON_Delete(out);
    cJSON_Delete(d);
    slt_map_destroy(&m);
}

static void test_arithmetic(void **state)
{
    (void) state;
    s_is("1 + 2 * 3", "7");
    s_is("(1 + 2) * 3", "9");
    s_is("10 - 2 - 3", "5");
    s_is("7 % 3", "1");
    s_is("-7 % 3", "-1");
    s_is("7.5 % 2", "1.5");
    s_is("1 / 2", "0.5");
    s_is("4 / 2", "2");                           /* a float; JSON writes 2.0 as 2 */
    s_is("2 * 1.5", "3");
    s_is("$.count * 2", "6");
    s_is("-$.count", "-3");
    s_is("- -$.count", "3");
    s_is("$.count - 0.5", "2.5");
    /* Integers are exact up to 2^53 (JSON numbers are doubles); past it
     * integer arithmetic is an error, never a rounded result. */
    s_is("9007199254740992 + 0", "9007199254740992");
    s_is("-9007199254740992 - 0", "-9007199254740992");
    s_is("4503599627370496 * 2", "9007199254740992");
    s_fails("9007199254740992 + 1", "integer overflow in '+'");
    s_fails("-9007199254740992 - 1", "integer overflow in '-'");
    s_fails("4503599627370497 * 2", "integer overflow in '*'");
    s_fails("9007199254740992 * 9007199254740992", "integer overflow in '*'");
    s_is_in("", "$.n * 3", "{\"n\": 3002399751580330}", "9007199254740990");
    s_fails_in("$.n * 3", "{\"n\": 3002399751580331}", "integer overflow in '*'");
    s_is("-(-9007199254740992)", "9007199254740992");
    /* A number with an integral value is an integer, however written. */
    s_is_in("", "$.x % 7", "{\"x\": 1.5e1}", "1");
    s_fails_in("$.x * 100", "{\"x\": 1e15}", "integer overflow in '*'");
    s_is_in("", "float($.x) * 100", "{\"x\": 1e15}", "1e+17");
    s_fails("1 / 0", "division by zero");
    s_fails("1.5 / 0.0", "division by zero");
    s_fails("5 % 0", "division by zero");
    s_fails("1e300 * 1e300", "not a finite number");
    s_fails("$.id * 2", "'*' expects numbers, got a string (from $.id)");
    s_fails("-$.id", "'-' expects a number, got a string (from $.id)");
    s_fails("1 + $.nope", "$.nope is missing");
}

static void test_comparison(void **state)
{
    (void) state;
    s_is("1 == 1.0", "true");
    s_is("1 != 2", "true");
    s_is("\"a\" == \"a\"", "true");
    s_is("\"a\" == 1", "false");
    s_is("null == null", "true");
    s_is("$.nope == null", "true");
    s_is("$.nope == false", "false");
    s_is("$.nope != 1", "true");
    s_is("[1, [2]] == [1, [2.0]]", "true");
    s_is("[1, 2] == [2, 1]", "false");
    s_is("{a: 1, b: 2} == {b: 2, a: 1}", "true");
    s_is("{a: 1} == {a: 1, b: 2}", "false");
    s_is("$.buyer == {email: \"  Jane.Doe@Example.COM \", country: \"DE\"}", "true");
    s_is("1 < 2", "true");
    s_is("2 <= 2", "true");
    s_is("3 > 2.5", "true");
    s_is("2 >= 3", "false");
    s_is("9007199254740992 > 9007199254740991.0", "true");   /* exact at the edge */
    s_is("9007199254740992 == 9007199254740992.0", "true");
    s_is("[1] == [1.0000000000000002]", "false");            /* no epsilon */
    s_is("\"abc\" < \"abd\"", "true");
    s_is("\"ab\" < \"abc\"", "true");
    s_is("\"b\" > \"abc\"", "true");
    s_is("$.id >= \"A\"", "true");
    s_fails("$.id < 5", "'<' compares two numbers or two strings, got string and number");
    s_fails("$.nope < 5", "$.nope is missing");
}

static void test_logic(void **state)
{
    (void) state;
    s_is("true and false", "false");
    s_is("true or false", "true");
    s_is("not true", "false");
    s_is("not 1 == 2", "true");                   /* not binds looser than == */
    s_is("false and 1 / 0 == 1", "false");        /* short-circuit */
    s_is("true or $.nope", "true");
    s_is("1 < 2 and 2 < 3 or false", "true");
    s_is("if $.total > 100 then \"big\" else \"small\"", "\"big\"");
    s_is("if false then 1 / 0 else 2", "2");
    s_is("if $.test then 1 else if $.count == 3 then 2 else 3", "2");
    s_fails("$.count and true", "'and' expects a boolean, got a number (from $.count)");
    s_fails("true and $.id", "'and' expects a boolean, got a string (from $.id)");
    s_fails("not $.nope", "$.nope is missing");
    s_fails("if $.id then 1 else 2", "'if' expects a boolean, got a string (from $.id)");
}

static void test_coalesce(void **state)
{
    (void) state;
    s_is("$.nope ?? \"d\"", "\"d\"");
    s_is("null ?? \"d\"", "\"d\"");
    s_is("$.test ?? true", "false");              /* false is a value */
    s_is("0 ?? 1", "0");
    s_is("$.a ?? $.b ?? 3", "3");
    s_is("$.a ?? null", "null");
    s_is("$.qty ?? 1 * 2", "2");                  /* ?? binds looser than * */
    s_is("$.test ?? false == true", "false");     /* ... and tighter than == */
    s_is("$.id ?? 1 / 0", "\"A-1\"");             /* B is not evaluated */
    s_fails("(1 / 0) ?? 1", "division by zero");  /* errors are not hidden */
}

static void test_strings(void **state)
{
    (void) state;
    s_is("lower(\"AbC-\xc3\x89\")", "\"abc-\xc3\x89\"");      /* ASCII only */
    s_is("upper($.id)", "\"A-1\"");
    s_is("upper(\"x1y\")", "\"X1Y\"");
    s_is("trim(\" \\t a b \\n\")", "\"a b\"");
    s_is("trim(\"   \")", "\"\"");
    s_is("lower(trim($.buyer.email))", "\"jane.doe@example.com\"");
    s_is("concat($.id, \"/\", $.count, \"/\", 1.5, true)", "\"A-1/3/1.5true\"");
    s_is("concat(\"x\")", "\"x\"");
    s_is("split(\"a,,b\", \",\")", "[\"a\",\"\",\"b\"]");
    s_is("split(\"abc\", \"::\")", "[\"abc\"]");
    s_is("split(\"a::b::\", \"::\")", "[\"a\",\"b\",\"\"]");
    s_is("join($.items[*].sku, \"+\")", "\"X-1+Y-2+Z-3\"");
    s_is("join([1, true, \"x\"], \"\")", "\"1truex\"");
    s_is("join([], \",\")", "\"\"");
    s_is("length(\"caf\xc3\xa9\")", "4");
    s_is("length($.items)", "3");
    s_is("length($.buyer)", "2");
    s_is("sha256(\"abc\")", "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"");
    s_is("sha256(\"\")", "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"");
    s_is("length(uuid())", "36");
    s_is("uuid() != uuid()", "true");
    s_is("split(uuid(), \"-\")[2] < \"5\" and split(uuid(), \"-\")[2] >= \"4\"", "true");
    s_bad("concat($.id, null)", NULL, "concat() expects a string, number or boolean, got null");
    s_fails("concat($.id, $.nope ?? null)", "concat() expects strings, numbers or booleans, got a null");
    s_fails("split($.id, \"\")", "split() needs a separator that is not empty");
    s_fails("join([1, null], \",\")", "join() expects strings, numbers or booleans, got null at index 1");
    s_fails("join([[1]], \",\")", "got an array at index 0");
    s_fails("trim($.count)", "trim() expects a string, got a number (from $.count)");
    s_fails("lower($.nope)", "$.nope is missing");
    /* A uuid is version 4, variant 10xx. */
    cJSON *u = s_run("", "uuid()", "{}", 0);
    const char *t = u->valuestring;
    assert_int_equal(strlen(t), 36);
    assert_int_equal(t[8], '-');
    assert_int_equal(t[14], '4');
    assert_non_null(strchr("89ab", t[19]));
    cJSON_Delete(u);
}

static void test_replace(void **state)
{
    (void) state;
    s_is("replace(\"a-b-c\", \"-\", \"+\")", "\"a+b+c\"");
    s_is("replace($.id, \"-\", \"\")", "\"A1\"");
    s_is("replace(\"aaa\", \"aa\", \"b\")", "\"ba\"");     /* left to right, no overlaps */
    s_is("replace(\"abab\", \"ab\", \"abab\")", "\"abababab\"");
    s_is("replace(\"abc\", \"x\", \"y\")", "\"abc\"");
    s_is("replace(\"\", \"x\", \"y\")", "\"\"");
    s_is("replace(\"caf\xc3\xa9 caf\xc3\xa9\", \"\xc3\xa9\", \"e\")", "\"cafe cafe\"");
    s_is("replace(\"x\", \"x\", \"\xe2\x82\xac\")", "\"\xe2\x82\xac\"");
    s_is("replace(trim(\" a \"), \"a\", \"b\")", "\"b\"");
    s_fails("replace($.id, \"\", \"x\")", "replace() needs a string to replace that is not empty");
    s_fails("replace($.count, \"3\", \"4\")", "replace() expects a string, got a number (from $.count)");
    s_fails("replace($.id, $.nope, \"x\")", "$.nope is missing");
    s_bad("replace($.id, 1, \"x\")", NULL, "replace() expects a string, got an integer");
    s_bad("replace($.id, \"a\")", NULL, "replace() takes 3 arguments, got 2");
    s_bad("replace($.total, \"a\", \"b\")", s_types, "replace() expects a string, got a number (from $.total)");
    s_bad("replac($.id, \"a\", \"b\")", NULL, "unknown function 'replac' (did you mean 'replace'?)");
}

static void test_substring(void **state)
{
    (void) state;
    s_is("substring(\"hello\", 1, 3)", "\"ell\"");
    s_is("substring(\"hello\", 1)", "\"ello\"");
    s_is("substring(\"hello\", 0)", "\"hello\"");
    s_is("substring(\"hello\", -3)", "\"llo\"");          /* from the end */
    s_is("substring(\"hello\", -3, 2)", "\"ll\"");
    s_is("substring(\"hello\", 5)", "\"\"");                /* out of range: clamped */
    s_is("substring(\"hello\", 10, 2)", "\"\"");
    s_is("substring(\"hello\", -10, 2)", "\"he\"");
    s_is("substring(\"hello\", 2, 100)", "\"llo\"");
    s_is("substring(\"hello\", 1, 0)", "\"\"");
    s_is("substring(\"hello\", 1, -1)", "\"\"");
    s_is("substring(\"caf\xc3\xa9s\", 3, 1)", "\"\xc3\xa9\"");    /* code points */
    s_is("substring(\"\xf0\x9f\x98\x80x\xc3\xa9\", -2)", "\"x\xc3\xa9\"");
    s_is("substring(\"\xf0\x9f\x98\x80x\", 0, 1)", "\"\xf0\x9f\x98\x80\"");
    s_is("substring($.id, 2)", "\"1\"");
    s_is("substring($.id, $.count - 5)", "\"-1\"");
    s_is("length(substring(\"caf\xc3\xa9\", 1))", "3");
    s_fails("substring($.id, $.total)", "substring() expects an integer start, got a number (from $.total)");
    s_fails("substring($.id, 0, 1.0 * 2)", "substring() expects an integer length, got a number");
    s_fails("substring($.count, 1)", "substring() expects a string, got a number (from $.count)");
    s_fails("substring($.nope, 1)", "$.nope is missing");
    s_bad("substring(\"a\", 1.5)", NULL, "substring() expects an integer, got a number");
    s_bad("substring(\"a\", \"1\")", NULL, "substring() expects an integer, got a string");
    s_bad("substring(\"a\", 0, true)", NULL, "substring() expects an integer, got a boolean");
    s_bad("substring(1, 1)", NULL, "substring() expects a string, got an integer");
    s_bad("substring(\"a\")", NULL, "substring() takes 2 or 3 arguments, got 1");
    s_bad("substring($.id, $.total)", s_types, "substring() expects an integer, got a number (from $.total)");
}

/* let NAME = VALUE in BODY: local names (docs/mapping.md, "Local names"). */
static void test_let(void **state)
{
    (void) state;
    s_is("let e = lower(trim($.buyer.email)) in concat(e, \"|\", e)",
         "\"jane.doe@example.com|jane.doe@example.com\"");
    s_is("let n = $.count * 2 in n + n", "12");
    s_is("let b = $.buyer in b.country", "\"DE\"");
    s_is("let a = 1 in let b = a + 1 in [a, b]", "[1,2]");
    s_is("let xs = filter($.items, i => i.qty > 1) in map(xs, x => x.sku)", "[\"X-1\",\"Z-3\"]");
    s_is("let s = $.items[-1] in s.tags[-1]", "\"b\"");
    s_is("let m = $.nope in m ?? \"none\"", "\"none\"");
    s_is("if (let t = $.total in t > 100) then \"big\" else \"small\"", "\"big\"");
    s_is("map($.items, i => let q = i.qty in q * 10)", "[20,10,50]");
    /* 'let' and 'in' stay ordinary names elsewhere */
    s_is("map([1, 2], let => let + 1)", "[2,3]");
    /* the name is typed from its value: the checker still sees the schema */
    s_bad("let b = $.buyer in b.emial", s_types, "emial");
    s_bad("let n = $.id in n * 2", s_types, "'*' expects a number");
    s_bad("let a = 1 in let a = 2 in a", NULL, "'a' is already a name here");
    s_bad("let a = 1 a", NULL, "expected 'in', got name");
    s_bad("let a = 1", NULL, "expected 'in', got end of expression");
    s_bad("let a = 1 in b", NULL, "unknown name 'b'");
    s_bad("a + let", NULL, "unknown name 'a'");
    /* '=' outside let NAME = is still the typo it was */
    s_bad("let = 1", NULL, "unexpected character '='");
    s_bad("let a == 1 in a", NULL, "t.yaml:6:");
    /* runtime errors name the name's source */
    s_fails("let c = $.buyer.city in upper(c)", "$.buyer.city is missing");
}

static void test_starts_ends_contains(void **state)
{
    (void) state;
    s_is("starts_with($.id, \"A-\")", "true");
    s_is("starts_with($.id, \"a-\")", "false");               /* bytes: case matters */
    s_is("starts_with(\"a\", \"ab\")", "false");
    s_is("starts_with(\"abc\", \"\")", "true");
    s_is("ends_with($.buyer.country, \"E\")", "true");
    s_is("ends_with(\"abc\", \"ab\")", "false");
    s_is("ends_with(\"caf\xc3\xa9\", \"\xc3\xa9\")", "true");
    s_is("ends_with(\"\", \"\")", "true");
    s_is("contains($.buyer.email, \"@\")", "true");
    s_is("contains(\"abc\", \"bc\")", "true");
    s_is("contains(\"abc\", \"d\")", "false");
    s_is("contains(\"ab\", \"abc\")", "false");
    s_is("contains(\"\", \"\")", "true");
    s_is("filter($.items[*].sku, s => starts_with(s, \"Z\"))", "[\"Z-3\"]");
    s_fails("ends_with($.count, \"3\")", "ends_with() expects a string, got a number (from $.count)");
    s_fails("contains($.id, $.nope)", "$.nope is missing");
    s_fails("if contains($.id, $.count) then 1 else 2", "contains() expects a string, got a number");
    s_bad("contains(1, \"a\")", NULL, "contains() expects a string, got an integer");
    s_bad("starts_with(\"a\", [\"a\"])", NULL, "starts_with() expects a string, got an array");
    s_bad("starts_with(\"a\")", NULL, "starts_with() takes 2 arguments, got 1");
    s_bad("ends_with(\"a\", \"b\", \"c\")", NULL, "ends_with() takes 2 arguments, got 3");
    s_bad("lower(contains(\"a\", \"b\"))", NULL, "lower() expects a string, got a boolean");
    s_bad("contains($.total, \"1\")", s_types, "contains() expects a string, got a number (from $.total)");
    s_bad("start_with($.id, \"A\")", NULL, "(did you mean 'starts_with'?)");
    /* A boolean: fine as drop_if. */
    slt_map_t *m = s_compile(HEAD "map:\n  r: 1\ndrop_if: not starts_with($.id, \"A-\")\n", s_types);
    slt_map_destroy(&m);
}

static void test_conversions(void **state)
{
    (void) state;
    s_is("int(12.9)", "12");
    s_is("int(-12.9)", "-12");
    s_is("int(\"-42\")", "-42");
    s_is("int(true)", "1");
    s_is("int(7)", "7");
    s_fails("int(\"4x\")", "int() expects a decimal integer in the string");
    s_fails("int(\"\")", "int() expects a decimal integer");
    s_fails("int(\"99999999999999999999\")", "int() expects a decimal integer");
    s_fails("int(1e19)", "out of the integer range");
    s_fails("int(9007199254740994.0)", "out of the integer range (-2^53 to 2^53)");
    s_is("int(-9007199254740992.0)", "-9007199254740992");
    s_fails("int(\"9007199254740993\")", "out of the integer range");
    s_bad("int(null)", NULL, "int() expects a string, number or boolean, got null");
    s_fails("int($.buyer)", "int() expects a number, a string or a boolean, got an object");
    s_is("float(2)", "2");
    s_is("float(\"1e3\")", "1000");
    s_is("float(\"-0.25\")", "-0.25");
    s_is("float(false)", "0");
    s_fails("float(\"1,5\")", "float() expects a number in the string");
    s_fails("float(\"nan\")", "float() expects a number");
    s_fails("float(\"1e999\")", "not a finite number");
    s_is("string(12)", "\"12\"");
    s_is("string(0.1)", "\"0.1\"");
    s_is("string(129.99)", "\"129.99\"");
    s_is("string(1.0 / 3)", "\"0.3333333333333333\"");
    s_is("string(2.0)", "\"2\"");
    s_is("string(true)", "\"true\"");
    s_is("string(null)", "\"null\"");
    s_is("string($.id)", "\"A-1\"");
    s_is("string($.items[1])", "\"{\\\"sku\\\":\\\"Y-2\\\",\\\"qty\\\":1}\"");
    s_is("string([1, \"a\"])", "\"[1,\\\"a\\\"]\"");
    s_fails("string($.nope)", "$.nope is missing");
    s_is("bool(\"true\")", "true");
    s_is("bool(\"false\")", "false");
    s_is("bool(0)", "false");
    s_is("bool(0.5)", "true");
    s_fails("bool(\"yes\")", "bool() expects \"true\" or \"false\"");
    s_is("round(2.5)", "3");
    s_is("round(-2.5)", "-3");
    s_is("round(2.4)", "2");
    s_is("round(7)", "7");
    s_is("round(1.2345, 2)", "1.23");
    s_is("round(1234.5, -2)", "1200");
    s_is("round(5, 1)", "5");
    s_is("int(round($.total * 100))", "12999");
    s_fails("round(1.5, 16)", "round() takes -15 to 15 digits");
    s_bad("round(1.5, 1.0)", NULL, "round() expects an integer, got a number");
    s_fails("round(1.5, $.total)", "round() expects an integer number of digits");
    s_fails("round(1e300)", "out of the integer range");
    s_fails("round(9007199254740994.0)", "out of the integer range");
}

static void test_time(void **state)
{
    (void) state;
    s_is("parse_time(\"1970-01-01T00:00:00Z\")", "0");
    s_is("parse_time(\"2024-05-01T12:34:56Z\")", "1714566896000");
    s_is("parse_time(\"2024-05-01t12:34:56.789123z\")", "1714566896789");
    s_is("parse_time(\"2024-05-01 14:34:56.5+02:00\")", "1714566896500");
    s_is("parse_time(\"2024-05-01T07:34:56-05:00\")", "1714566896000");
    s_is("parse_time(\"2024-05-01\")", "1714521600000");
    s_is("parse_time(\"1969-12-31T23:59:59Z\")", "-1000");
    s_is("parse_time(\"2024-02-29T00:00:00Z\")", "1709164800000");
    s_is("parse_time(\"01/05/2024\", \"%d/%m/%Y\")", "1714521600000");
    s_is("parse_time(\"2024-05-01 12:34:56 +0200\", \"%Y-%m-%d %H:%M:%S %z\")", "1714559696000");
    s_fails("parse_time(\"2023-02-29T00:00:00Z\")", "parse_time() expects an RFC 3339 time");
    s_fails("parse_time(\"2024-05-01T12:34:56\")", "parse_time() expects an RFC 3339 time");
    s_fails("parse_time(\"2024-05-01T24:00:00Z\")", "RFC 3339");
    s_fails("parse_time(\"01/05/2024x\", \"%d/%m/%Y\")", "does not match the format");
    s_is("format_time(0)", "\"1970-01-01T00:00:00Z\"");
    s_is("format_time(1714566896789)", "\"2024-05-01T12:34:56.789Z\"");
    s_is("format_time(-1)", "\"1969-12-31T23:59:59.999Z\"");
    s_is("format_time(1714566896000.7)", "\"2024-05-01T12:34:56Z\"");
    s_is("format_time(1714566896000, \"%d.%m.%Y %H:%M %a %j\")", "\"01.05.2024 12:34 Wed 122\"");
    s_is("format_time(parse_time(\"2024-05-01T12:34:56+02:00\"))", "\"2024-05-01T10:34:56Z\"");
    s_is("format_time(-62167219200000)", "\"0000-01-01T00:00:00Z\"");
    s_fails("format_time(253402300800000)", "outside the years 0-9999");
    s_is("format_time(0, \"\")", "\"\"");
    s_fails("parse_time(\"1000000000000000\", \"%s\")", "parse_time() of a time out of the integer range");
    cJSON *t = s_run("", "now()", "{}", 0);
    double now = (double) time(NULL) * 1000;
    assert_true(t->valuedouble >= now - 5000 && t->valuedouble <= now + 5000);
    cJSON_Delete(t);
}

static void test_lookup(void **state)
{
    (void) state;
    const char *tables = "tables:\n"
                         "  country:\n    DE: Germany\n    FR: France\n    \"1\": one\n"
                         "  vat:\n    DE: 19\n    FR: 20.5\n    XX: null\n    YY: true\n"
                         "    ZZ: '19'\n";
    s_is_in(tables, "lookup(country, $.buyer.country)", s_order, "\"Germany\"");
    s_is_in(tables, "lookup(\"country\", \"FR\")", s_order, "\"France\"");
    s_is_in(tables, "lookup(country, 1)", s_order, "\"one\"");
    s_is_in(tables, "lookup(country, \"IT\", \"?\")", s_order, "\"?\"");
    s_is_in(tables, "[lookup(vat, \"DE\"), lookup(vat, \"FR\"), lookup(vat, \"XX\"),"
                    " lookup(vat, \"YY\"), lookup(vat, \"ZZ\")]", s_order,
            "[19,20.5,null,true,\"19\"]");
    assert_null(s_run(tables, "lookup(country, \"IT\")", s_order, SL_EINVAL));
    assert_non_null(strstr(s_err, "key 'IT' is not in table 'country'"));
    /* Keys compare as bytes, whatever their length. */
    char big[8192];
    size_t n = (size_t) snprintf(big, sizeof big, "tables:\n  t:\n");
    for (int k = 0; k < 300; k++)
        n += (size_t) snprintf(big + n, sizeof big - n, "    k%d: %d\n", 299 - k, k);
    s_is_in(big, "[lookup(t, \"k0\"), lookup(t, \"k299\"), lookup(t, \"k150\"),"
            " lookup(t, \"k\", -1), lookup(t, \"k3000\", -1)]", s_order, "[299,0,149,-1,-1]");
    /* Integers past 2^53 are refused at compile time, unless quoted. */
    s_compile_fails(HEAD "tables:\n  t:\n    a: 9007199254740993\nmap:\n  r: lookup(t, \"a\")\n",
                    NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "t.yaml:6:8: error: table integer 9007199254740993 is out of range"));
    s_is_in("tables:\n  t:\n    a: '9007199254740993'\n    b: -9007199254740992\n",
            "[lookup(t, \"a\"), lookup(t, \"b\")]", s_order, "[\"9007199254740993\",-9007199254740992]");
    s_compile_fails(HEAD "tables:\n  t:\n    \"a\\0b\": 1\nmap:\n  r: 1\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "a table key cannot contain a NUL character"));
    s_compile_fails(HEAD "tables:\n  t:\n    a: \"x\\0\"\nmap:\n  r: 1\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "a table value cannot contain a NUL character"));
}

static void test_map_filter(void **state)
{
    (void) state;
    s_is("map($.items, it => it.sku)", "[\"X-1\",\"Y-2\",\"Z-3\"]");
    s_is("map($.items, it => {s: it.sku, q: it.qty * 10})",
         "[{\"q\":20,\"s\":\"X-1\"},{\"q\":10,\"s\":\"Y-2\"},{\"q\":50,\"s\":\"Z-3\"}]");
    s_is("filter($.items, it => it.qty > 1)[*].sku", "[\"X-1\",\"Z-3\"]");
    s_is("map(filter($.items[*].qty, q => q >= 2), q => q + 1)", "[3,6]");
    s_is("map(split(\"a b\", \" \"), w => upper(w))", "[\"A\",\"B\"]");
    s_is("map([1, 2], a => map([10, 20], b => a * b))", "[[10,20],[20,40]]");
    s_is("map([], a => 1 / 0)", "[]");
    s_is("length(filter($.items, it => it.tags == null))", "2");
    s_fails("map($.id, x => x)", "map() expects an array, got a string (from $.id)");
    s_fails("filter([1, 2], x => x)", "the filter condition expects a boolean, got a number");
    s_fails("map([1], x => x.a)", "x.a is missing");
    /* Values built during the evaluation live as long as what uses them. */
    s_is("map(split(\"a b\", \" \"), w => w)", "[\"a\",\"b\"]");
    s_is("filter(split(\"a,b,c\", \",\"), w => w != \"b\")", "[\"a\",\"c\"]");
    s_is("map(map($.items, i => i), j => j.sku)", "[\"X-1\",\"Y-2\",\"Z-3\"]");
    s_is("map([[1, 2], [3]], a => a)", "[[1,2],[3]]");
    s_is("[{a: {b: [1]}}.a.b, {a: \"s\"}.a]", "[[1],\"s\"]");
    s_is("{x: {a: {b: [1]}}.a}", "{\"x\":{\"b\":[1]}}");
    s_is("map(split(\"a,b\", \",\"), w => [w, trim(w)])", "[[\"a\",\"a\"],[\"b\",\"b\"]]");
    s_is("filter(map($.items, i => {s: i.sku}), o => o.s != \"Y-2\")[*].s", "[\"X-1\",\"Z-3\"]");
    s_is("[split(\"p q\", \" \")][0][-1]", "\"q\"");
    s_is("map([1, 2], a => map(split(\"x y\", \" \"), w => concat(w, a)))",
         "[[\"x1\",\"y1\"],[\"x2\",\"y2\"]]");
    s_is("length(filter($.items, it => it.qty > 1)[*].sku)", "2");
}

static void test_targets(void **state)
{
    (void) state;
    slt_map_t *m = s_compile(HEAD "map:\n  a.b.c: 1\n  a.d: 2\n  e: 3\n  a.b.f: 4\n"
                             "  \"g-h\": 5\n  x.y z: 6\n", NULL);
    cJSON *d = s_json("{}"), *out = NULL;
    bool dropped;
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), 0);
    char *got = s_text(out);        /* file order kept */
    assert_string_equal(got, "{\"a\":{\"b\":{\"c\":1,\"f\":4},\"d\":2},\"e\":3,\"g-h\":5,"
                        "\"x\":{\"y z\":6}}");
    free(got);
    cJSON_Delete(out);
    slt_map_destroy(&m);
    /* Many parent objects, deep ones, and an order that revisits them. */
    char yaml[8192];
    size_t n = (size_t) snprintf(yaml, sizeof yaml, HEAD "map:\n");
    for (int k = 0; k < 40; k++)
        n += (size_t) snprintf(yaml + n, sizeof yaml - n, "  g%d.x: %d\n", k, k);
    n += (size_t) snprintf(yaml + n, sizeof yaml - n, "  a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p: 1\n"
                           "  g0.y: 2\n  a.b.c.z: 3\n");
    m = s_compile(yaml, NULL);
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), 0);
    got = s_text(out);
    assert_non_null(strstr(got, "{\"g0\":{\"x\":0,\"y\":2},\"g1\":{\"x\":1},"));
    assert_non_null(strstr(got, "\"g39\":{\"x\":39},\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":"
                                "{\"g\":{\"h\":{\"i\":{\"j\":{\"k\":{\"l\":{\"m\":{\"n\":{\"o\":"
                                "{\"p\":1}}}}}}}}}}}},\"z\":3}}}}"));
    free(got);
    cJSON_Delete(out);
    cJSON_Delete(d);
    slt_map_destroy(&m);
}

static void test_drop_if(void **state)
{
    (void) state;
    slt_map_t *m = s_compile(HEAD "map:\n  r: 1 / $.n\ndrop_if: $.n == 0 or $.kind != \"order\"\n",
                             NULL);
    cJSON *d = s_json("{\"n\": 0, \"kind\": \"order\"}"), *out = NULL;
    bool dropped = false;
    /* Dropped before the fields run: no division by zero. */
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), 0);
    assert_true(dropped);
    assert_null(out);
    cJSON_Delete(d);
    d = s_json("{\"n\": 2, \"kind\": \"order\"}");
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), 0);
    assert_false(dropped);
    assert_true(cJSON_GetObjectItemCaseSensitive(out, "r")->valuedouble == 0.5);
    cJSON_Delete(out);
    cJSON_Delete(d);
    slt_map_destroy(&m);
    /* Not a boolean at run time. */
    m = s_compile(HEAD "map:\n  r: 1\ndrop_if: $.flag\n", NULL);
    d = s_json("{\"flag\": \"yes\"}");
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), SL_EINVAL);
    assert_string_equal(s_err, "mapping 't': drop_if (t.yaml:6:10): drop_if must be a boolean, "
                        "got a string (from $.flag)");
    cJSON_Delete(d);
    d = s_json("{}");
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), SL_EINVAL);
    assert_non_null(strstr(s_err, "$.flag is missing"));
    cJSON_Delete(d);
    slt_map_destroy(&m);
    /* Not a boolean at compile time. */
    s_compile_fails(HEAD "map:\n  r: 1\ndrop_if: $.id\n", s_types, SL_EINVAL);
    assert_non_null(strstr(s_err, "t.yaml:6:10: error: drop_if expects a boolean, got a string (from $.id)"));
}

/* ---- compile errors: exact position and caret */

static void test_diagnostics(void **state)
{
    (void) state;
    s_compile_fails(HEAD "map:\n  order_id: $.id\n  customer.email: lowr(trim($.buyer.email))\n",
                    s_types, SL_EINVAL);
    assert_string_equal(s_err,
        "t.yaml:6:19: error: unknown function 'lowr' (did you mean 'lower'?)\n"
        "  in mapping 't', field 'customer.email'\n"
        "   6 |   customer.email: lowr(trim($.buyer.email))\n"
        "     |                   ^");
    s_compile_fails(HEAD "map:\n  email: lower($.buyer.emial)\n", s_types, SL_EINVAL);
    assert_string_equal(s_err,
        "t.yaml:5:24: error: path $.buyer.emial does not exist in shop-a.order@1 "
        "(did you mean $.buyer.email?)\n"
        "  in mapping 't', field 'email'\n"
        "   5 |   email: lower($.buyer.emial)\n"
        "     |                        ^");
    s_compile_fails(HEAD "map:\n  a: lower($.total)\n", s_types, SL_EINVAL);
    assert_string_equal(s_err,
        "t.yaml:5:12: error: lower() expects a string, got a number (from $.total)\n"
        "  in mapping 't', field 'a'\n"
        "   5 |   a: lower($.total)\n"
        "     |            ^");
    s_compile_fails(HEAD "map:\n  currency: \"EUR\"\n", NULL, SL_EINVAL);
    assert_string_equal(s_err,
        "t.yaml:5:14: error: unknown name 'EUR'\n"
        "  in mapping 't', field 'currency'\n"
        "   5 |   currency: \"EUR\"\n"
        "     |              ^\n"
        "  hint: YAML removed the quotes around this value: to write a string literal, "
        "quote it twice, e.g. '\"EUR\"'");
    s_compile_fails(HEAD "map:\n  a: [1, 2]\n", NULL, SL_EINVAL);
    assert_string_equal(s_err,
        "t.yaml:5:3: error: expected an expression, got a YAML sequence\n"
        "  in mapping 't', field 'a'\n"
        "   5 |   a: [1, 2]\n"
        "     |   ^\n"
        "  hint: YAML read '[' or '- ' as a sequence: an array literal goes in quotes: '[1, 2]'");
    /* A tab before the column stays a tab under it. */
    s_compile_fails(HEAD "map:\n  a: '1 ==\t= 3'\n", NULL, SL_EINVAL);
    assert_string_equal(s_err,
        "t.yaml:5:12: error: unexpected character '='\n"
        "  in mapping 't', field 'a'\n"
        "   5 |   a: '1 ==\t= 3'\n"
        "     |           \t^\n"
        "  hint: use '==' to compare");
    /* Inside a literal block: line and column of the line in the block. */
    s_compile_fails(HEAD "map:\n  a: |\n    if $.x > 1\n    then uper($.y)\n    else 2\n",
                    NULL, SL_EINVAL);
    assert_string_equal(s_err,
        "t.yaml:7:10: error: unknown function 'uper' (did you mean 'upper'?)\n"
        "  in mapping 't', field 'a'\n"
        "   7 |     then uper($.y)\n"
        "     |          ^");
    /* YAML syntax, with libfyaml's position. */
    s_compile_fails(HEAD "map:\n  a: 1\n  a: 2\n", NULL, SL_EINVAL);
    assert_string_equal(s_err,
        "t.yaml:6:3: error: YAML: duplicate key\n"
        "   6 |   a: 2\n"
        "     |   ^");
    /* Before the name is known there is no "in mapping" line. */
    s_compile_fails("naem: x\nfrom: a@1\nto: b@1\nmap:\n  a: 1\n", NULL, SL_EINVAL);
    assert_string_equal(s_err,
        "t.yaml: error: missing 'name:'\n"
        "t.yaml:1:1: error: unknown key 'naem' (did you mean 'name'?)\n"
        "   1 | naem: x\n"
        "     | ^\n"
        "  hint: the keys are name, from, to, tables, map and drop_if");
}

/* Every error of a file is reported, sorted, up to the limit. */
static void test_many_errors(void **state)
{
    (void) state;
    s_compile_fails(HEAD "map:\n  c: lowr(1)\n  a: $.nope\n  b: 1 +\n", s_types, SL_EINVAL);
    const char *c = strstr(s_err, "t.yaml:5:6:"), *a = strstr(s_err, "t.yaml:6:8:"),
               *b = strstr(s_err, "t.yaml:7:9:");
    assert_non_null(c);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(c < a && a < b);
    char yaml[8192];
    size_t n = (size_t) snprintf(yaml, sizeof yaml, HEAD "map:\n");
    for (int k = 0; k < 20; k++)
        n += (size_t) snprintf(yaml + n, sizeof yaml - n, "  f%d: nope%d\n", k, k);
    s_compile_fails(yaml, NULL, SL_EINVAL);
    int blocks = 0;
    for (const char *p = s_err; (p = strstr(p, ": error: ")); p++)
        blocks++;
    assert_int_equal(blocks, SLT_MAP_ERRORS_MAX);
    assert_non_null(strstr(s_err, "t.yaml: 4 more errors not shown"));
    /* A short buffer is cut, never overrun, always terminated. */
    char small[40];
    memset(small, 'x', sizeof small);
    slt_map_t *m = NULL;
    assert_int_equal(slt_map_compile(yaml, strlen(yaml), "t.yaml", NULL, NULL, &m, small, 32),
                     SL_EINVAL);
    assert_int_equal(strlen(small), 31);
    assert_int_equal(small[32], 'x');
    assert_int_equal(slt_map_compile(yaml, strlen(yaml), "t.yaml", NULL, NULL, &m, NULL, 0),
                     SL_EINVAL);
}

static void test_compile_errors(void **state)
{
    (void) state;
    /* the file */
    s_compile_fails("", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "a mapping file is a YAML mapping, got nothing"));
    s_compile_fails("- 1\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "got a YAML sequence"));
    s_compile_fails("name: x\nfrom: a@1\nto: b@1\nmap: [\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "error: YAML: "));
    s_compile_fails("name: x\nfrom: a@1\nto: b@1\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "t.yaml: error: missing 'map:'"));
    s_compile_fails("name: x y\nfrom: a@0\nto: b\nmap:\n  a: 1\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "t.yaml:1:7: error: bad mapping name 'x y'"));
    assert_non_null(strstr(s_err, "t.yaml:2:7: error: bad from 'a@0'"));
    assert_non_null(strstr(s_err, "t.yaml:3:5: error: bad to 'b'"));
    s_compile_fails(HEAD "map:\n  a: &x 1\n  b: *x\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "expected an expression, got an alias"));
    s_compile_fails(HEAD "map:\n  a:\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "t.yaml:5:3: error: empty expression"));
    s_compile_fails(HEAD "map:\n  a:\n    b: 1\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "for a nested target write 'customer.email: EXPR'"));
    s_compile_fails(HEAD "map: {}\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "map has no fields"));
    s_compile_fails(HEAD "map:\n  a: 1\n\xff: 2\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "t.yaml:6:1: error: the file is not valid UTF-8 (byte 0xff)"));
    /* targets */
    s_compile_fails(HEAD "map:\n  a.b: 1\n  a: 2\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "t.yaml:6:3: error: target 'a' conflicts with 'a.b' (line 5)"));
    s_compile_fails(HEAD "map:\n  a..b: 1\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "empty name in target 'a..b'"));
    /* tables */
    s_compile_fails(HEAD "tables:\n  t: [1]\nmap:\n  a: lookup(t, 1)\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "table 't' must be a YAML mapping, got a YAML sequence"));
    s_compile_fails(HEAD "tables:\n  countries: {DE: x}\nmap:\n  a: lookup(countrys, 1)\n",
                    NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "t.yaml:7:13: error: unknown table 'countrys' (did you mean 'countries'?)"));
    s_bad("lookup(nope, 1)", NULL, "hint: tables are declared under 'tables:' in the mapping");
    s_bad("lookup(1, 1)", NULL, "lookup() takes the name of a table first");
    /* syntax */
    s_bad("\"abc", NULL, "t.yaml:6:5: error: unterminated string");
    s_bad("\"a\\qb\"", NULL, "t.yaml:6:7: error: bad escape in a string");
    s_bad("\"\\ud800\"", NULL, "lone surrogate in a string");
    s_bad("\"\\u0000\"", NULL, "\\u0000 is not allowed in a string");
    s_bad("$.a = 1", NULL, "t.yaml:6:9: error: unexpected character '='\n");
    s_bad("$.a = 1", NULL, "hint: use '==' to compare");
    s_bad("$.a && $.b", NULL, "hint: use 'and'");
    s_bad("'x'", NULL, "hint: strings use double quotes: \"text\"");
    s_bad("$x", NULL, "unknown root '$x'");
    s_bad("1 < 2 < 3", NULL, "t.yaml:6:11: error: comparisons do not chain");
    s_bad("(1 + 2", NULL, "t.yaml:6:11: error: expected ')', got end of expression");
    s_bad("if true then 1", NULL, "every if needs an else");
    s_bad("1 2", NULL, "unexpected number after the expression");
    s_bad("12abc", NULL, "bad number '12a'");
    s_bad("99999999999999999999", NULL, "integer out of range");
    s_bad("$.a.", NULL, "expected a member name after '.'");
    s_bad("$.a[x]", NULL, "expected an index, '*' or a quoted name in [ ]");
    s_bad("{a: 1, a: 2}", NULL, "member 'a' given twice");
    s_bad("{1: 2}", NULL, "expected a member name, got number");
    /* names and functions */
    s_bad("nope", NULL, "hint: document fields are written $.nope, strings \"nope\"");
    s_bad("uuid", NULL, "'uuid' is a function: call it as uuid(...)");
    s_bad("lower()", NULL, "lower() takes 1 argument, got 0");
    s_bad("now(1)", NULL, "now() takes 0 arguments, got 1");
    s_bad("concat()", NULL, "concat() takes 1 to 16 arguments, got 0");
    s_bad("frobnicate(1)", NULL, "hint: docs/mapping.md lists the functions");
    s_bad("map($.a, x => y)", NULL, "unknown name 'y'");
    s_bad("map($.a, xx => xy)", NULL, "unknown name 'xy' (did you mean 'xx'?)");
    s_bad("map($.a, $.b)", NULL, "map() takes a lambda (x => ...) as its second argument");
    s_bad("lower(x => 1)", NULL, "a lambda (x => ...) is only allowed as the second argument");
    s_bad("x => 1", NULL, "a lambda (x => ...) is only allowed as the second argument");
    s_bad("map($.a, x => map($.b, x => 1))", NULL, "'x' is already a parameter of an enclosing lambda");
    s_bad("$meta.topik", NULL, "unknown $meta field 'topik' (did you mean 'topic'?)");
    s_bad("$meta.topic.x", NULL, "$meta.topic has no members");
    s_bad("$meta.headers.a.b", NULL, "$meta.headers.NAME has no members");
    s_bad("$meta[0]", NULL, "$meta is an object, not an array");
    /* types known without a schema */
    s_bad("lower(12)", NULL, "lower() expects a string, got an integer");
    s_bad("length(true)", NULL, "length() expects a string, object or array, got a boolean");
    s_bad("1 + \"a\"", NULL, "hint: concat() joins strings");
    s_bad("\"a\" < 1", NULL, "'<' compares two numbers or two strings, got a string and an integer");
    s_bad("if 3 then 1 else 2", NULL, "'if' expects a boolean, got an integer");
    s_bad("not \"x\"", NULL, "'not' expects a boolean");
    s_bad("now().x", NULL, "now(...) is an integer: it has no members");
    s_bad("round(1.5, \"2\")", NULL, "round() expects an integer, got a string");
    /* types from the schema */
    s_bad("$.id * 2", s_types, "'*' expects a number, got a string (from $.id)");
    s_bad("map($.id, x => x)", s_types, "map() expects an array, got a string (from $.id)");
    s_bad("if $.count then 1 else 2", s_types, "'if' expects a boolean, got an integer (from $.count)");
    s_bad("$.total.x", s_types, "path $.total.x does not exist in shop-a.order@1");
    s_bad("$.total.x", s_types, "hint: $.total is a number, which has no members");
    s_bad("$.id[0]", s_types, "hint: $.id is a string, not an array");
    s_bad("$.items[*].skuu", s_types, "(did you mean $.items[*].sku?)");
    s_bad("$.itmes[0].sku", s_types, "(did you mean $.items[0].sku?)");
    s_bad("map($.items, it => it.qyt)", s_types,
          "path it.qyt ($.items[*].qyt) does not exist in shop-a.order@1 (did you mean it.qty?)");
    s_bad("map($.items, it => lower(it.qty))", s_types, "lower() expects a string, got an integer (from it.qty)");
    s_bad("$[\"content-typ\"]", s_types, "(did you mean $[\"content-type\"]?)");
    s_bad("filter($.items, it => it.sku)", s_types, "the filter condition expects a boolean, got a string");
    /* what the schema makes possible is fine */
    slt_map_t *m = s_compile(HEAD "map:\n  a: $.currency ?? \"EUR\"\n  b: $[\"content-type\"]\n"
                             "  c: map($.items, i => i.qty + 1)\n  d: $.items[0].sku\n", s_types);
    slt_map_destroy(&m);
    /* A failing types callback ends the compilation with its code. */
    slt_map_t *bad = NULL;
    const char *y = HEAD "map:\n  a: $.id\n";
    assert_int_equal(slt_map_compile(y, strlen(y), "t.yaml", s_types_broken, NULL, &bad, s_err,
                                     sizeof s_err), SL_ESTORE);
    assert_null(bad);
    assert_non_null(strstr(s_err, "types callback failed"));
}

/* Runtime errors name the mapping, the field, the position and the path. */
static void test_runtime_errors(void **state)
{
    (void) state;
    slt_map_t *m = s_compile("name: rt\nfrom: a.b@1\nto: c.d@2\nmap:\n  ok: 1\n"
                             "  customer.email: lower(trim($.buyer.email))\n"
                             "  ratio: $.a / $.b\n", NULL);
    cJSON *d = s_json("{\"buyer\": {\"email\": 5}, \"a\": 1, \"b\": 0}"), *out = NULL;
    bool dropped;
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), SL_EINVAL);
    assert_string_equal(s_err, "mapping 'rt': field 'customer.email' (t.yaml:6:30): trim() "
                        "expects a string, got a number (from $.buyer.email)");
    assert_null(out);
    cJSON_Delete(d);
    d = s_json("{\"buyer\": {\"email\": \"x\"}, \"a\": 1, \"b\": 0}");
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), SL_EINVAL);
    assert_string_equal(s_err, "mapping 'rt': field 'ratio' (t.yaml:7:16): division by zero "
                        "(from $.b)");
    /* NULL err buffer is fine. */
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, NULL, 0), SL_EINVAL);
    cJSON_Delete(d);
    /* Any JSON value is a document. */
    d = cJSON_CreateString("text");
    assert_int_equal(slt_map_eval(m, d, NULL, &out, &dropped, s_err, sizeof s_err), SL_EINVAL);
    assert_non_null(strstr(s_err, "$.buyer.email is missing"));
    cJSON_Delete(d);
    slt_map_destroy(&m);
}

/* With a META that has them, every runtime error ends with the message's
 * topic and offset. */
static void s_meta_err(const slt_map_t *m, const char *doc, const char *meta, const char *want)
{
    cJSON *d = s_json(doc), *mt = meta ? s_json(meta) : NULL, *out = (cJSON *) 1;
    bool dropped = true;
    assert_int_equal(slt_map_eval(m, d, mt, &out, &dropped, s_err, sizeof s_err), SL_EINVAL);
    assert_null(out);
    assert_false(dropped);
    assert_string_equal(s_err, want);
    cJSON_Delete(mt);
    cJSON_Delete(d);
}

static void test_runtime_meta(void **state)
{
    (void) state;
    slt_map_t *m = s_compile("name: rt\nfrom: a.b@1\nto: c.d@2\nmap:\n  ok: 1\n"
                             "  ratio: $.a / $.b\ndrop_if: $.flag\n", NULL);
    const char *meta = "{\"topic\": \"shop.orders\", \"offset\": 42, \"headers\": {}}";
    s_meta_err(m, "{\"a\": 1, \"b\": 0, \"flag\": false}", meta,
               "mapping 'rt': field 'ratio' (t.yaml:6:16): division by zero (from $.b)"
               " (topic shop.orders, offset 42)");
    s_meta_err(m, "{\"b\": 0, \"flag\": false}", meta,
               "mapping 'rt': field 'ratio' (t.yaml:6:10): $.a is missing (write $.a ?? DEFAULT "
               "to give a default) (topic shop.orders, offset 42)");
    s_meta_err(m, "{\"flag\": \"yes\"}", meta,
               "mapping 'rt': drop_if (t.yaml:7:10): drop_if must be a boolean, got a string "
               "(from $.flag) (topic shop.orders, offset 42)");
    s_meta_err(m, "{\"a\": 1, \"b\": 0, \"flag\": false}", "{\"topic\": \"t\", \"offset\": 1e20}",
               "mapping 'rt': field 'ratio' (t.yaml:6:16): division by zero (from $.b)"
               " (topic t, offset 1e+20)");
    /* Without both, or without META, nothing is added. */
    const char *plain = "mapping 'rt': field 'ratio' (t.yaml:6:16): division by zero (from $.b)";
    s_meta_err(m, "{\"a\": 1, \"b\": 0, \"flag\": false}", NULL, plain);
    s_meta_err(m, "{\"a\": 1, \"b\": 0, \"flag\": false}", "{\"topic\": \"t\"}", plain);
    s_meta_err(m, "{\"a\": 1, \"b\": 0, \"flag\": false}", "{\"offset\": 3}", plain);
    s_meta_err(m, "{\"a\": 1, \"b\": 0, \"flag\": false}",
               "{\"topic\": 7, \"offset\": \"3\"}", plain);
    s_meta_err(m, "{\"a\": 1, \"b\": 0, \"flag\": false}", "[\"topic\", \"offset\"]", plain);
    /* A short buffer is cut, never overrun, always terminated. */
    cJSON *d = s_json("{\"a\": 1, \"b\": 0, \"flag\": false}"), *mt = s_json(meta), *out = NULL;
    char small[40];
    bool dropped;
    memset(small, 'x', sizeof small);
    assert_int_equal(slt_map_eval(m, d, mt, &out, &dropped, small, 32), SL_EINVAL);
    assert_int_equal(strlen(small), 31);
    assert_int_equal(small[32], 'x');
    cJSON_Delete(mt);
    cJSON_Delete(d);
    slt_map_destroy(&m);
}

/* ---- limits */

static void test_limits(void **state)
{
    (void) state;
    /* file size */
    size_t big = SLT_MAP_YAML_MAX + 1;
    char *y = malloc(big + 1);
    assert_non_null(y);
    memset(y, '#', big);
    y[big] = '\0';
    slt_map_t *m = NULL;
    assert_int_equal(slt_map_compile(y, big, "big.yaml", NULL, NULL, &m, s_err, sizeof s_err),
                     SL_ETOOBIG);
    assert_non_null(strstr(s_err, "big.yaml: mapping file too large"));
    free(y);
    /* nesting: parentheses, unary chains and long operator chains */
    char e[4096];
    size_t n = 0;
    for (int k = 0; k < SLT_MAP_DEPTH_MAX + 1; k++)
        e[n++] = '(';
    e[n++] = '1';
    for (int k = 0; k < SLT_MAP_DEPTH_MAX + 1; k++)
        e[n++] = ')';
    e[n] = '\0';
    s_bad(e, NULL, "expression nested too deeply (limit 64)");
    n = 0;
    for (int k = 0; k < 200; k++)
        n += (size_t) snprintf(e + n, sizeof e - n, "1 + ");
    snprintf(e + n, sizeof e - n, "1");
    s_bad(e, NULL, "expression nested too deeply (limit 64)");
    memset(e, '-', 1000);
    snprintf(e + 1000, sizeof e - 1000, "1");
    s_bad(e, NULL, "expression nested too deeply");
    n = 0;
    for (int k = 0; k < 30; k++)          /* 60 levels: allowed */
        n += (size_t) snprintf(e + n, sizeof e - n, "-(");
    e[n++] = '1';
    for (int k = 0; k < 30; k++)
        e[n++] = ')';
    e[n] = '\0';
    s_is(e, "1");
    /* expression length */
    char *longe = malloc(SLT_MAP_EXPR_MAX + 200);
    assert_non_null(longe);
    n = (size_t) snprintf(longe, 200, HEAD "map:\n  r: \"");
    memset(longe + n, 'a', SLT_MAP_EXPR_MAX + 1);
    snprintf(longe + n + SLT_MAP_EXPR_MAX + 1, 90, "\"\n");
    s_compile_fails(longe, NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "expression too long"));
    free(longe);
    /* arguments */
    s_bad("concat(1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17)", NULL, "too many arguments (limit 16)");
    /* run time: string size, array size, steps, bytes, JSON depth */
    size_t half = SLT_MAP_STR_MAX / 2 + 1;
    char *doc = malloc(half + 64);
    assert_non_null(doc);
    n = (size_t) snprintf(doc, 64, "{\"s\": \"");
    memset(doc + n, 'x', half);
    snprintf(doc + n + half, 64, "\"}");
    assert_null(s_run("", "concat($.s, $.s)", doc, SL_EINVAL));
    assert_non_null(strstr(s_err, "string too long"));
    cJSON_Delete(s_run("", "length(concat($.s, \"y\"))", doc, 0));
    assert_null(s_run("", "replace($.s, \"x\", \"xy\")", doc, SL_EINVAL));
    assert_non_null(strstr(s_err, "string too long"));
    for (size_t k = 0; k < half; k++)
        doc[n + k] = k % 2 ? ',' : 'x';
    assert_null(s_run("", "split($.s, \",\")", doc, SL_EINVAL));
    assert_non_null(strstr(s_err, "split() gives more than 65536 parts"));
    free(doc);
    /* 60000 x 60000 would run for hours: the step limit ends it */
    char *text = malloc(60000 * 7 + 16);
    assert_non_null(text);
    n = (size_t) snprintf(text, 16, "{\"a\": [0");
    for (int k = 1; k < 60000; k++)
        n += (size_t) snprintf(text + n, 16, ",%d", k);
    snprintf(text + n, 16, "]}");
    assert_null(s_run("", "map($.a, x => length(map($.a, y => y)))", text, SL_EINVAL));
    assert_non_null(strstr(s_err, "evaluation limit reached (1000000 steps for one message)"));
    /* Walking a long array counts too: 60000 x 60000 elements passed by
     * an index from the end would otherwise run for seconds. */
    assert_null(s_run("", "map($.a, x => $.a[-1])", text, SL_EINVAL));
    assert_non_null(strstr(s_err, "evaluation limit reached"));
    assert_null(s_run("", "map($.a, x => length($.a))", text, SL_EINVAL));
    assert_non_null(strstr(s_err, "evaluation limit reached"));
    cJSON_Delete(s_run("", "[$.a[-1], length($.a), $.a[59999]]", text, 0));
    free(text);
    /* 40 copies of a 500 KB string in the output: the byte limit ends it */
    doc = malloc(600000);
    assert_non_null(doc);
    n = (size_t) snprintf(doc, 64, "{\"s\": \"");
    memset(doc + n, 'x', 500000);
    snprintf(doc + n + 500000, 128, "\", \"a\": [%s]}",
             "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1");
    assert_null(s_run("", "map($.a, x => $.s)", doc, SL_EINVAL));
    assert_non_null(strstr(s_err, "output limit reached"));
    assert_null(s_run("", "string(map($.a, x => $.s))", doc, SL_EINVAL));
    assert_non_null(strstr(s_err, "string() result longer than"));
    free(doc);
    /* JSON nesting copied to the output or compared */
    doc = malloc(4096);
    assert_non_null(doc);
    n = 0;
    for (int k = 0; k < 300; k++)
        doc[n++] = '[';
    for (int k = 0; k < 300; k++)
        doc[n++] = ']';
    doc[n] = '\0';
    assert_null(s_run("", "$", doc, SL_EINVAL));
    assert_non_null(strstr(s_err, "value nested too deeply (limit 256 levels)"));
    assert_null(s_run("", "$ == $", doc, SL_EINVAL));
    assert_non_null(strstr(s_err, "value nested too deeply to compare"));
    cJSON_Delete(s_run("", "length($)", doc, 0));
    assert_null(s_run("", "string($)", doc, SL_EINVAL));
    assert_non_null(strstr(s_err, "value nested too deeply (limit 256 levels)"));
    free(doc);
}

/* Without a types callback, paths are not checked but literals are. */
static void test_no_types(void **state)
{
    (void) state;
    slt_map_t *m = s_compile(HEAD "map:\n  a: $.anything.at.all\n  b: lower($.x)\n", NULL);
    slt_map_destroy(&m);
    s_bad("upper(1.5)", NULL, "upper() expects a string, got a number");
}

/* A YAML escape puts a NUL inside a scalar: the mapping's name, from and
 * to are checked on every byte, so "a\0b@1" is no subject (it checked as
 * a and stayed a C string "a", without its version). */
static void test_names_nul(void **state)
{
    (void) state;
    s_compile_fails("name: \"m\\0x\"\nfrom: a@1\nto: b@1\nmap:\n  a: 1\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "bad mapping name"));
    s_compile_fails("name: m\nfrom: \"a\\0b@1\"\nto: b@1\nmap:\n  a: 1\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "bad from"));
    s_compile_fails("name: m\nfrom: a@1\nto: \"b@1\\0\"\nmap:\n  a: 1\n", NULL, SL_EINVAL);
    assert_non_null(strstr(s_err, "bad to"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_no_alias),
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_arithmetic),
        cmocka_unit_test(test_comparison),
        cmocka_unit_test(test_logic),
        cmocka_unit_test(test_coalesce),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_substring),
        cmocka_unit_test(test_starts_ends_contains),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_map_filter),
        cmocka_unit_test(test_targets),
        cmocka_unit_test(test_drop_if),
        cmocka_unit_test(test_diagnostics),
        cmocka_unit_test(test_many_errors),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_runtime_meta),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_no_types),
        cmocka_unit_test(test_names_nul),
        cmocka_unit_test(test_let),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
