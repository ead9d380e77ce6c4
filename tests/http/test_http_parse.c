/*  test_http_parse - adapters/http/http_parse.c, the pure request parsing of
 *  `sluice-http serve`: NDJSON batches and their keys, ack bodies, routes,
 *  header rules, the broker's schema text as JSON, and the JSON writer.
 *  cmocka; no broker, no sockets.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "http_parse.h"
#include "sluice_codes.h"

static void test_ndjson_idempotency_key(void **state)
{
    const char body[] = "{\"a\":1}\n\n  \n[2]\r\n\"three\"";
    http_item_t *items;
    size_t n;
    uint32_t bad;
    char err[256];

    (void) state;
    assert_int_equal(http_ndjson_parse(body, strlen(body), NULL, "K", 100, &items,
                                       &n, &bad, err, sizeof err), 0);
    assert_int_equal(n, 3);
    /* Blank lines are skipped but counted: the keys follow the body's lines. */
    assert_int_equal(items[0].line, 1);
    assert_string_equal(items[0].msg_id, "K/1");
    assert_int_equal(items[1].line, 4);
    assert_string_equal(items[1].msg_id, "K/4");
    assert_int_equal(items[1].len, 3);          /* the '\r' is not payload */
    assert_memory_equal(items[1].data, "[2]", 3);
    assert_int_equal(items[2].line, 5);         /* a last line without '\n' */
    assert_memory_equal(items[2].data, "\"three\"", 7);
    free(items);
}

static void test_ndjson_key_field(void **state)
{
    const char ok[] = "{\"id\":\"o-1\",\"v\":1}\n{\"id\":42}\n";
    const char missing[] = "{\"id\":\"x\"}\n{\"v\":1}\n";
    const char notobj[] = "[1]\n";
    http_item_t *items;
    size_t n;
    uint32_t bad;
    char err[256];

    (void) state;
    /* The key field wins over the Idempotency-Key. */
    assert_int_equal(http_ndjson_parse(ok, strlen(ok), "id", "K", 100, &items, &n,
                                       &bad, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(items[0].msg_id, "o-1");
    assert_string_equal(items[1].msg_id, "42");
    free(items);
    assert_int_equal(http_ndjson_parse(missing, strlen(missing), "id", NULL, 100,
                                       &items, &n, &bad, err, sizeof err), SL_EINVAL);
    assert_int_equal(bad, 2);
    assert_non_null(strstr(err, "line 2"));
    assert_null(items);
    assert_int_equal(http_ndjson_parse(notobj, strlen(notobj), "id", NULL, 100,
                                       &items, &n, &bad, err, sizeof err), SL_EINVAL);
}

static void test_ndjson_refusals(void **state)
{
    const char badjson[] = "{\"a\":1}\n{\"a\":\n";
    const char two[] = "1 2\n";
    const char blank[] = "\n \n";
    const char many[] = "1\n2\n3\n";
    http_item_t *items;
    size_t n;
    uint32_t bad;
    char err[256];

    (void) state;
    assert_int_equal(http_ndjson_parse(badjson, strlen(badjson), NULL, NULL, 100,
                                       &items, &n, &bad, err, sizeof err), SL_EINVAL);
    assert_int_equal(bad, 2);
    assert_string_equal(err, "line 2 is not JSON");
    /* Two values on a line are not one JSON text. */
    assert_int_equal(http_ndjson_parse(two, strlen(two), NULL, NULL, 100, &items,
                                       &n, &bad, err, sizeof err), SL_EINVAL);
    assert_int_equal(bad, 1);
    assert_int_equal(http_ndjson_parse(blank, strlen(blank), NULL, NULL, 100,
                                       &items, &n, &bad, err, sizeof err), SL_EINVAL);
    assert_int_equal(http_ndjson_parse(many, strlen(many), NULL, NULL, 2, &items,
                                       &n, &bad, err, sizeof err), SL_ETOOBIG);
}

static void test_tokens(void **state)
{
    const char ack[] = "{\"tokens\":[\"0.1.ab\",\"3.2.ff\"]}";
    const char nack[] = "{\"tokens\":[\"t\"],\"delay_ms\":1500}";
    char **tokens;
    size_t n;
    uint32_t delay;
    char err[256];

    (void) state;
    assert_int_equal(http_tokens_parse(ack, strlen(ack), 10, &tokens, &n, &delay,
                                       err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(tokens[1], "3.2.ff");
    assert_int_equal(delay, 0);
    free(tokens);
    assert_int_equal(http_tokens_parse(nack, strlen(nack), 10, &tokens, &n, &delay,
                                       err, sizeof err), 0);
    assert_int_equal(delay, 1500);
    free(tokens);
    assert_int_equal(http_tokens_parse("{\"tokens\":[]}", 13, 10, &tokens, &n,
                                       &delay, err, sizeof err), SL_EINVAL);
    assert_int_equal(http_tokens_parse("{\"tokens\":[1]}", 14, 10, &tokens, &n,
                                       &delay, err, sizeof err), SL_EINVAL);
    assert_int_equal(http_tokens_parse("{\"tokens\":[\"a\"],\"x\":1}", 22, 10,
                                       &tokens, &n, &delay, err, sizeof err), SL_EINVAL);
    assert_non_null(strstr(err, "unknown member"));
    assert_int_equal(http_tokens_parse("{\"tokens\":[\"a\"],\"delay_ms\":-1}", 30, 10,
                                       &tokens, &n, &delay, err, sizeof err), SL_EINVAL);
    assert_int_equal(http_tokens_parse("{\"tokens\":[\"a\",\"b\"]}", 20, 1, &tokens,
                                       &n, &delay, err, sizeof err), SL_ETOOBIG);
}

static void test_routes(void **state)
{
    http_route_t r;
    char err[128];

    (void) state;
    assert_int_equal(http_route_parse("POST", "/v1/topics/shop.orders", &r, err,
                                      sizeof err), 0);
    assert_int_equal(r.kind, HTTP_ROUTE_PUBLISH);
    assert_string_equal(r.name, "shop.orders");
    assert_true(r.method_ok);
    assert_int_equal(http_route_parse("GET", "/v1/topics/shop.orders", &r, err,
                                      sizeof err), 0);
    assert_false(r.method_ok);
    assert_string_equal(r.allow, "POST");
    assert_int_equal(http_route_parse("GET", "/v1/subscriptions/s1/messages", &r,
                                      err, sizeof err), 0);
    assert_int_equal(r.kind, HTTP_ROUTE_PULL);
    assert_string_equal(r.name, "s1");
    assert_int_equal(http_route_parse("POST", "/v1/subscriptions/s1/nack", &r, err,
                                      sizeof err), 0);
    assert_int_equal(r.kind, HTTP_ROUTE_NACK);
    assert_int_equal(http_route_parse("POST", "/v1/topics/a/b", &r, err, sizeof err), 0);
    assert_int_equal(r.kind, HTTP_ROUTE_NONE);
    assert_int_equal(http_route_parse("POST", "/v1/subscriptions//ack", &r, err,
                                      sizeof err), SL_EINVAL);
    assert_int_equal(http_route_parse("HEAD", "/healthz", &r, err, sizeof err), 0);
    assert_true(r.method_ok);
}

static void test_headers(void **state)
{
    char key[64];

    (void) state;
    assert_int_equal(http_header_key("Sluice-Header-Trace-ID", key, sizeof key), 1);
    assert_string_equal(key, "trace-id");
    assert_int_equal(http_header_key("Content-Type", key, sizeof key), 0);
    assert_int_equal(http_header_key("sluice-header-", key, sizeof key), -1);
    assert_int_equal(http_header_key("Sluice-Header-a b", key, sizeof key), -1);
    assert_string_equal(http_bearer("Bearer  sht_x"), "sht_x");
    assert_null(http_bearer("Basic abc"));
    assert_null(http_bearer("Bearer "));
    assert_true(http_idem_key_valid("order-1001"));
    assert_false(http_idem_key_valid("has space"));
    assert_false(http_idem_key_valid(""));
    assert_true(http_content_type_is_json("application/vnd.x+json; charset=utf-8"));
    assert_true(http_content_type_is_json("Application/JSON"));
    assert_false(http_content_type_is_json("text/plain"));
    assert_true(http_content_type_is_ndjson("application/x-ndjson"));
}

static void test_schema_errors(void **state)
{
    http_buf_t b;

    (void) state;
    http_buf_init(&b);
    assert_true(http_schema_errors("schema order@1: /id: expected string, got "
                                   "integer; /items/0: must be >= 0; a: b", &b));
    assert_string_equal(b.data,
        "[{\"pointer\":\"/id\",\"rule\":\"expected string, got integer\"},"
        "{\"pointer\":\"/items/0\",\"rule\":\"must be >= 0; a: b\"}]");
    http_buf_clear(&b);
    assert_false(http_schema_errors("limit: too big", &b));
    assert_string_equal(b.data, "[{\"pointer\":\"\",\"rule\":\"limit: too big\"}]");
    http_buf_clear(&b);
}

static void test_json_writer(void **state)
{
    const char raw[] = "a\"b\\c\n\x01\xff\xc3\xa9";
    http_buf_t b;

    (void) state;
    http_buf_init(&b);
    http_buf_json_str(&b, raw, sizeof raw - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\\ufffd\xc3\xa9\"");
    assert_true(http_json_valid(b.data, b.len));
    http_buf_clear(&b);
    http_buf_base64(&b, "bytes\x01", 6);
    assert_string_equal(b.data, "\"Ynl0ZXMB\"");
    http_buf_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ndjson_idempotency_key),
        cmocka_unit_test(test_ndjson_key_field),
        cmocka_unit_test(test_ndjson_refusals),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_schema_errors),
        cmocka_unit_test(test_json_writer),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
