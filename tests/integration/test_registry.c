/*  test_registry - the schema registry end to end through the `sluice`
 *  command and a real sluiced: register versions under a compatibility
 *  mode (a breaking one refused with its reasons), list and show, bind a
 *  topic, watch invalid publishes refused with JSON pointers (or kept in
 *  _dlq.schema.<topic>), and find it all again after a restart.  */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "harness.h"
#include "sluice.h"

static const char s_v1[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"id\",\"total\"],"
    "\"properties\":{\"id\":{\"type\":\"string\"},\"total\":{\"type\":\"number\",\"minimum\":0},"
    "\"currency\":{\"type\":\"string\",\"enum\":[\"EUR\",\"USD\"]}}}";
/* Adds a required property: breaks BACKWARD (old orders lack it). */
static const char s_v2_breaking[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"id\",\"total\",\"email\"],"
    "\"properties\":{\"id\":{\"type\":\"string\"},\"total\":{\"type\":\"number\",\"minimum\":0},"
    "\"currency\":{\"type\":\"string\",\"enum\":[\"EUR\",\"USD\"]},\"email\":{\"type\":\"string\"}}}";
/* Adds an optional property to a closed object: BACKWARD compatible (no
 * old document can hold it). */
static const char s_v2_ok[] =
    "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"id\",\"total\"],"
    "\"properties\":{\"id\":{\"type\":\"string\"},\"total\":{\"type\":\"number\",\"minimum\":0},"
    "\"currency\":{\"type\":\"string\",\"enum\":[\"EUR\",\"USD\"]},\"email\":{\"type\":\"string\"}}}";

typedef struct {
    h_broker_t b;
    char cli[512];
    char dir[300];
} s_fx_t;

static int s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    h_broker_init(&fx->b, NULL);
    if (h_broker_start(&fx->b) != 0)
        return -1;
    h_build_path("adapters/cli/sluice", fx->cli, sizeof fx->cli);
    snprintf(fx->dir, sizeof fx->dir, "%s", fx->b.dir);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    s_fx_t *fx = *state;
    h_broker_destroy(&fx->b);
    free(fx);
    return 0;
}

/* Run `sluice ARGS --broker B` (stdout and stderr into *out when OUT is not
 * NULL; IN on stdin); returns the exit status. */
static int s_cli(s_fx_t *fx, const char *in, char **out, const char *fmt, ...)
{
    char args[1024], cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s %s --broker %s 2>&1", fx->cli, args, fx->b.endpoint);
    return h_run(cmd, in, out);
}

static void s_write(s_fx_t *fx, const char *name, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", fx->dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_register_versions(void **state)
{
    s_fx_t *fx = *state;
    char p1[400], p2[400], p3[400];
    char *out = NULL;
    s_write(fx, "v1.json", s_v1, p1, sizeof p1);
    s_write(fx, "v2-breaking.json", s_v2_breaking, p2, sizeof p2);
    s_write(fx, "v2.json", s_v2_ok, p3, sizeof p3);

    assert_int_equal(s_cli(fx, NULL, &out, "schema register shop.order %s", p1), 0);
    assert_non_null(strstr(out, "registered shop.order@1"));
    free(out);
    /* The same text again: nothing new. */
    assert_int_equal(s_cli(fx, NULL, &out, "schema register shop.order %s", p1), 0);
    assert_non_null(strstr(out, "already"));
    free(out);
    /* A breaking version: refused, the reason names the property. */
    assert_int_not_equal(s_cli(fx, NULL, &out, "schema register shop.order %s", p2), 0);
    assert_non_null(strstr(out, "incompatible with shop.order@1 (BACKWARD)"));
    assert_non_null(strstr(out, "email"));
    free(out);
    assert_int_not_equal(s_cli(fx, NULL, &out, "schema check shop.order %s", p2), 0);
    free(out);
    /* ... but NONE lets it through a check. */
    assert_int_equal(s_cli(fx, NULL, &out, "schema check shop.order %s --compat NONE", p2), 0);
    assert_non_null(strstr(out, "shop.order@2"));
    free(out);
    /* A compatible one is version 2. */
    assert_int_equal(s_cli(fx, NULL, &out, "schema register shop.order %s", p3), 0);
    assert_non_null(strstr(out, "registered shop.order@2"));
    free(out);
    /* Not JSON Schema at all. */
    assert_int_not_equal(s_cli(fx, "{\"type\": 12}", &out, "schema register bad.one -"), 0);
    assert_non_null(strstr(out, "does not compile"));
    free(out);

    assert_int_equal(s_cli(fx, NULL, &out, "schema list"), 0);
    assert_non_null(strstr(out, "shop.order"));
    assert_non_null(strstr(out, "BACKWARD"));
    assert_null(strstr(out, "bad.one"));
    free(out);
    assert_int_equal(s_cli(fx, NULL, &out, "schema show shop.order@1"), 0);
    assert_non_null(strstr(out, "\"required\""));
    assert_null(strstr(out, "email"));
    free(out);
    assert_int_equal(s_cli(fx, NULL, &out, "schema show shop.order"), 0);
    assert_non_null(strstr(out, "email"));
    free(out);
    assert_int_not_equal(s_cli(fx, NULL, &out, "schema show shop.order@9"), 0);
    free(out);
}

static void test_topic_validation(void **state)
{
    s_fx_t *fx = *state;
    char p1[400];
    char *out = NULL;
    s_write(fx, "v1.json", s_v1, p1, sizeof p1);
    assert_int_equal(s_cli(fx, NULL, &out, "schema register shop.order %s", p1), 0);
    free(out);
    assert_int_not_equal(s_cli(fx, NULL, &out, "topic set shop.orders --schema no.such"), 0);
    free(out);
    assert_int_equal(s_cli(fx, NULL, &out, "topic set shop.orders --schema shop.order"), 0);
    free(out);

    /* Valid: stored. */
    assert_int_equal(s_cli(fx, "{\"id\":\"A1\",\"total\":12.5,\"currency\":\"EUR\"}\n", &out,
                           "pub shop.orders --content-type application/json"), 0);
    free(out);
    /* Invalid: refused with the pointer and the rule. */
    assert_int_not_equal(s_cli(fx, "{\"id\":7,\"total\":-1}\n", &out,
                               "pub shop.orders --content-type application/json"), 0);
    assert_non_null(strstr(out, "/id"));
    assert_non_null(strstr(out, "/total"));
    assert_non_null(strstr(out, "shop.order@1"));
    free(out);
    assert_int_not_equal(s_cli(fx, "not json\n", &out, "pub shop.orders"), 0);
    assert_non_null(strstr(out, "does not decode"));
    free(out);
    /* Unbound topics take anything. */
    assert_int_equal(s_cli(fx, "not json\n", &out, "pub other.topic"), 0);
    free(out);

    /* dlq: refused too, and kept with the reasons. */
    assert_int_equal(s_cli(fx, NULL, &out, "topic set shop.orders --schema shop.order@1 "
                           "--invalid=dlq"), 0);
    free(out);
    assert_int_not_equal(s_cli(fx, "{\"id\":\"A2\"}\n", &out, "pub shop.orders"), 0);
    assert_non_null(strstr(out, "_dlq.schema.shop.orders"));
    free(out);
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = fx->b.endpoint;
    sl_client_t *c = NULL;
    assert_int_equal(sl_client_new(&o, &c), 0);
    sl_sub_options_t so;
    sl_sub_options_init(&so);
    so.name = "dlq-reader";
    so.pattern = "_dlq.schema.shop.orders";
    so.start = SL_START_EARLIEST;
    sl_sub_t *sub = NULL;
    assert_int_equal(sl_subscribe(c, &so, &sub), 0);
    sl_msg_t *m = NULL;
    assert_int_equal(sl_sub_next(sub, 10000, &m), 0);
    size_t n = 0;
    const char *payload = sl_msg_payload(m, &n);
    assert_int_equal(n, strlen("{\"id\":\"A2\"}"));
    assert_memory_equal(payload, "{\"id\":\"A2\"}", n);
    const char *reason = sl_msg_header(m, "schema-error");
    assert_non_null(reason);
    assert_non_null(strstr(reason, "total"));
    sl_ack(m);
    sl_msg_destroy(&m);
    sl_client_destroy(&c);

    /* After a restart the registry and the binding are back. */
    assert_int_equal(h_broker_stop(&fx->b, SIGTERM), 0);
    assert_int_equal(h_broker_start(&fx->b), 0);
    assert_int_not_equal(s_cli(fx, "{\"id\":7,\"total\":1}\n", &out, "pub shop.orders"), 0);
    assert_non_null(strstr(out, "/id"));
    free(out);
    assert_int_equal(s_cli(fx, "{\"id\":\"A3\",\"total\":1}\n", &out, "pub shop.orders"), 0);
    free(out);
    /* Unbinding: anything goes again. */
    assert_int_equal(s_cli(fx, NULL, &out, "topic set shop.orders --no-schema"), 0);
    free(out);
    assert_int_equal(s_cli(fx, "{\"id\":7}\n", &out, "pub shop.orders"), 0);
    free(out);
}

/* NDJSON and CSV are decoded by content type; each document is checked. */
static void test_formats(void **state)
{
    s_fx_t *fx = *state;
    char p1[400];
    char *out = NULL;
    s_write(fx, "v1.json", s_v1, p1, sizeof p1);
    assert_int_equal(s_cli(fx, NULL, &out, "schema register csv.order %s --compat NONE", p1), 0);
    free(out);
    assert_int_equal(s_cli(fx, NULL, &out, "topic set csv.orders --schema csv.order"), 0);
    free(out);
    /* CSV fields are strings: total is not a number, so refused. */
    sl_options_t o;
    sl_options_init(&o);
    o.endpoint = fx->b.endpoint;
    sl_client_t *c = NULL;
    assert_int_equal(sl_client_new(&o, &c), 0);
    const char *csv = "id,total\nA1,12\n";
    sl_message_t m = { .topic = "csv.orders", .payload = csv, .len = strlen(csv),
                       .content_type = "text/csv" };
    assert_int_equal(sl_publish_sync(c, &m, 10000, NULL), SL_EINVAL);
    const char *nd = "{\"id\":\"A\",\"total\":1}\n{\"id\":\"B\",\"total\":\"x\"}\n";
    sl_message_t m2 = { .topic = "csv.orders", .payload = nd, .len = strlen(nd),
                        .content_type = "application/x-ndjson" };
    assert_int_equal(sl_publish_sync(c, &m2, 10000, NULL), SL_EINVAL);
    const char *nd_ok = "{\"id\":\"A\",\"total\":1}\n{\"id\":\"B\",\"total\":2}\n";
    sl_message_t m3 = { .topic = "csv.orders", .payload = nd_ok, .len = strlen(nd_ok),
                        .content_type = "application/x-ndjson" };
    assert_int_equal(sl_publish_sync(c, &m3, 10000, NULL), 0);
    sl_client_destroy(&c);
}

/* Mappings: added (compiled and checked against the from schema at the
 * broker), listed, shown, run by `mapping test` against the broker's
 * schemas, removed; a typo in a path is refused with line:column. */
static void test_mappings(void **state)
{
    s_fx_t *fx = *state;
    char p_from[400], p_to[400], p_map[400], p_bad[400], p_test[400];
    char *out = NULL;
    s_write(fx, "from.json",
            "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"id\",\"total\"],"
            "\"properties\":{\"id\":{\"type\":\"string\"},\"total\":{\"type\":\"number\"},"
            "\"email\":{\"type\":\"string\"}}}", p_from, sizeof p_from);
    s_write(fx, "to.json",
            "{\"type\":\"object\",\"required\":[\"order_id\",\"amount_cents\"],"
            "\"properties\":{\"order_id\":{\"type\":\"string\"},"
            "\"amount_cents\":{\"type\":\"integer\"},\"email\":{\"type\":\"string\"}}}",
            p_to, sizeof p_to);
    s_write(fx, "m.yaml",
            "name: a-to-c\nfrom: shop-a.order@1\nto: canonical.order@1\nmap:\n"
            "  order_id: $.id\n  amount_cents: int(round($.total * 100))\n"
            "  email: lower($.email ?? \"none@example.com\")\n", p_map, sizeof p_map);
    s_write(fx, "bad.yaml",
            "name: a-to-c-bad\nfrom: shop-a.order@1\nto: canonical.order@1\nmap:\n"
            "  order_id: $.idd\n  amount_cents: int($.total)\n  email: lowr($.email)\n",
            p_bad, sizeof p_bad);
    s_write(fx, "m.test.yaml",
            "mapping: a-to-c\ncases:\n"
            "  - name: cents\n    input: {id: A1, total: 12.5}\n"
            "    output: {order_id: A1, amount_cents: 1250, email: none@example.com}\n",
            p_test, sizeof p_test);

    /* Before the schemas exist: refused, naming what is missing. */
    assert_int_not_equal(s_cli(fx, NULL, &out, "mapping add %s", p_map), 0);
    assert_non_null(strstr(out, "shop-a.order@1"));
    free(out);
    assert_int_equal(s_cli(fx, NULL, &out, "schema register shop-a.order %s", p_from), 0);
    free(out);
    assert_int_equal(s_cli(fx, NULL, &out, "schema register canonical.order %s", p_to), 0);
    free(out);
    assert_int_equal(s_cli(fx, NULL, &out, "mapping add %s", p_map), 0);
    assert_non_null(strstr(out, "a-to-c version 1: shop-a.order@1 -> canonical.order@1"));
    free(out);
    /* $.idd does not exist in the closed source schema: line 5, caret. */
    assert_int_not_equal(s_cli(fx, NULL, &out, "mapping add %s", p_bad), 0);
    assert_non_null(strstr(out, ":5:"));
    assert_non_null(strstr(out, "$.idd"));
    assert_non_null(strstr(out, "^"));
    /* ... reported together with the unknown function of line 7. */
    assert_non_null(strstr(out, ":7:"));
    assert_non_null(strstr(out, "did you mean 'lower'"));
    free(out);
    assert_int_equal(s_cli(fx, NULL, &out, "mapping list"), 0);
    assert_non_null(strstr(out, "a-to-c"));
    assert_null(strstr(out, "a-to-c-bad"));
    free(out);
    assert_int_equal(s_cli(fx, NULL, &out, "mapping show a-to-c"), 0);
    assert_non_null(strstr(out, "int(round($.total * 100))"));
    free(out);
    /* Fixtures against the broker's mapping and schemas. */
    assert_int_equal(s_cli(fx, NULL, &out, "mapping test %s", p_test), 0);
    assert_non_null(strstr(out, "1 passed, 0 failed"));
    free(out);
    /* Still there after a restart; then removed. */
    assert_int_equal(h_broker_stop(&fx->b, SIGTERM), 0);
    assert_int_equal(h_broker_start(&fx->b), 0);
    assert_int_equal(s_cli(fx, NULL, &out, "mapping show a-to-c"), 0);
    free(out);
    assert_int_equal(s_cli(fx, NULL, &out, "mapping rm a-to-c"), 0);
    free(out);
    assert_int_not_equal(s_cli(fx, NULL, &out, "mapping show a-to-c"), 0);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_versions, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_topic_validation, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_formats, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_mappings, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
