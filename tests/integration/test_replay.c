/*  test_replay - `sluice routes diff FILE --replay TOPIC [--last N]`
 *  against a real sluiced: version 1 is live and five orders are stored;
 *  a proposed table that adds a route, widens a predicate and moves a
 *  route's target reports exactly the messages that would change, with
 *  the route sets and outputs, a summary by route and exit 1; an equal
 *  table exits 0; a mapping change shows the field that differs; --last
 *  reads only the newest messages; the broker's topics (offsets, counts,
 *  bytes) are the same after every replay; bad operands exit 2 / 64.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "harness.h"

#define S_FIXTURES SOURCE_ROOT "/tests/routes"

static char s_cli_path[512];

/* Run `sluice ARGS` with IN on stdin (may be NULL); stdout and stderr into
 * *OUT (may be NULL); the exit status. */
static int s_cli(const char *in, char **out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_cli(const char *in, char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = h_cli_v(s_cli_path, in, NULL, out, fmt, ap);
    va_end(ap);
    return rc;
}

static void s_has(const char *out, const char *what)
{
    if (!strstr(out, what))
        fail_msg("expected \"%s\" in the output", what);
}

static void s_lacks(const char *out, const char *what)
{
    if (strstr(out, what))
        fail_msg("did not expect \"%s\" in the output", what);
}

/* The summary row of ROUTE says GAINED, LOST and CHANGED messages. */
static void s_row(const char *out, const char *route, unsigned gained, unsigned lost,
                  unsigned changed)
{
    char name[128];
    unsigned g, l, c;
    for (const char *line = out; line && *line; line = strchr(line, '\n')) {
        line += *line == '\n';
        if (sscanf(line, "%127s %u %u %u", name, &g, &l, &c) == 4 && strcmp(name, route) == 0) {
            if (g != gained || l != lost || c != changed)
                fail_msg("%s: gained %u lost %u changed %u, expected %u %u %u", route, g, l, c,
                         gained, lost, changed);
            return;
        }
    }
    fail_msg("no summary row for %s", route);
}

static void s_write(const char *dir, const char *name, const char *text, char *path,
                    size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char s_v1[] =
    "routes:\n"
    "  - name: eu-orders\n"
    "    match: { topic: shop.orders, where: '$.region == \"EU\"' }\n"
    "    map: order-to-canonical\n"
    "    to: canonical.orders.eu\n"
    "    continue: true\n"
    "  - name: archive\n"
    "    match: { topic: shop.orders }\n"
    "    to: archive.orders\n";

/* A new route first, a wider predicate, another target. */
static const char s_v2[] =
    "routes:\n"
    "  - name: drop-tests\n"
    "    match: { topic: shop.orders, where: '$.test == true' }\n"
    "    action: drop\n"
    "  - name: eu-orders\n"
    "    match: { topic: shop.orders, where: '$.region != \"US\"' }\n"
    "    map: order-to-canonical\n"
    "    to: canonical.orders.europe\n"
    "    continue: true\n"
    "  - name: archive\n"
    "    match: { topic: shop.orders }\n"
    "    to: archive.orders\n";

/* Version 1 with another mapping: the same routes fire, the output differs. */
static const char s_v3[] =
    "routes:\n"
    "  - name: eu-orders\n"
    "    match: { topic: shop.orders, where: '$.region == \"EU\"' }\n"
    "    map: order-in-mills\n"
    "    to: canonical.orders.eu\n"
    "    continue: true\n"
    "  - name: archive\n"
    "    match: { topic: shop.orders }\n"
    "    to: archive.orders\n";

static const char s_mills[] =
    "name: order-in-mills\n"
    "from: shop.order@1\n"
    "to: canonical.order@1\n"
    "map:\n"
    "  order_id: $.id\n"
    "  amount_cents: int(round($.total * 1000))\n"
    "  region: $.region\n";

static const char s_orders[] =
    "{\"id\":\"A1\",\"region\":\"EU\",\"total\":12.5}\n"             /* 0: target moves */
    "{\"id\":\"U1\",\"region\":\"US\",\"total\":3}\n"                /* 1: same */
    "{\"id\":\"J1\",\"region\":\"JP\",\"total\":1}\n"                /* 2: gains eu-orders */
    "{\"id\":\"T1\",\"region\":\"US\",\"total\":1,\"test\":true}\n"  /* 3: dropped now */
    "{\"id\":\"U2\",\"region\":\"US\",\"total\":2}\n";               /* 4: same */

/* The broker's topics (offsets, message counts, bytes) as JSON. */
static char *s_topics(const char *ep)
{
    char *out = NULL;
    assert_int_equal(s_cli(NULL, &out, "topics --json --broker %s", ep), 0);
    return out;
}

static void test_replay(void **state)
{
    (void) state;
    h_broker_t b;
    char v1[512], v2[512], v3[512], mills[512];
    char *out = NULL;
    h_broker_init(&b, NULL);
    assert_int_equal(h_broker_start(&b), 0);
    const char *ep = b.endpoint;
    s_write(b.dir, "v1.yaml", s_v1, v1, sizeof v1);
    s_write(b.dir, "v2.yaml", s_v2, v2, sizeof v2);
    s_write(b.dir, "v3.yaml", s_v3, v3, sizeof v3);
    s_write(b.dir, "mills.yaml", s_mills, mills, sizeof mills);

    assert_int_equal(s_cli(NULL, NULL, "schema register shop.order "
                           S_FIXTURES "/schemas/shop.order@1.json --broker %s", ep), 0);
    assert_int_equal(s_cli(NULL, NULL, "schema register canonical.order "
                           S_FIXTURES "/schemas/canonical.order@1.json --broker %s", ep), 0);
    assert_int_equal(s_cli(NULL, NULL, "mapping add "
                           S_FIXTURES "/mappings/order-to-canonical.yaml --broker %s", ep), 0);
    assert_int_equal(s_cli(NULL, NULL, "mapping add %s --broker %s", mills, ep), 0);
    assert_int_equal(s_cli(NULL, NULL, "routes apply %s --broker %s", v1, ep), 0);
    assert_int_equal(s_cli(s_orders, NULL, "pub shop.orders --broker %s", ep), 0);
    char *before = s_topics(ep);
    s_has(before, "canonical.orders.eu");

    /* The proposed table against the live one over the whole topic. */
    assert_int_equal(s_cli(NULL, &out, "routes diff %s --replay shop.orders --broker %s",
                           v2, ep), 1);
    s_has(out, "--- version 1 (live)");
    s_has(out, "+ drop-tests");
    s_has(out, "replaying shop.orders, offsets 0..4 (5 messages)");
    s_has(out, "shop.orders offset 0: [eu-orders, archive] -> [eu-orders, archive]\n"
          "    - eu-orders: canonical.orders.eu {\"order_id\":\"A1\",\"amount_cents\":1250,"
          "\"region\":\"EU\"}\n"
          "    + eu-orders: canonical.orders.europe {\"order_id\":\"A1\",\"amount_cents\":1250,"
          "\"region\":\"EU\"}\n");
    s_has(out, "shop.orders offset 2: [archive] -> [eu-orders, archive]\n"
          "    + eu-orders: canonical.orders.europe {\"order_id\":\"J1\"");
    s_has(out, "shop.orders offset 3: [archive] -> [drop-tests]\n"
          "    - archive: archive.orders {\"id\":\"T1\"");
    s_lacks(out, "offset 1:");
    s_lacks(out, "offset 4:");
    s_has(out, "ROUTE");
    s_has(out, "GAINED");
    /* eu-orders: gained by J1, changed for A1; drop-tests gained by T1;
     * archive lost by T1. */
    s_row(out, "eu-orders", 1, 0, 1);
    s_row(out, "drop-tests", 1, 0, 0);
    s_row(out, "archive", 0, 1, 0);
    s_has(out, "5 messages replayed, 3 would change");
    free(out);

    /* --last: only the newest two (offsets 3, 4). */
    assert_int_equal(s_cli(NULL, &out, "routes diff %s --replay shop.orders --last 2 "
                           "--broker %s", v2, ep), 1);
    s_has(out, "offsets 3..4 (2 messages)");
    s_has(out, "shop.orders offset 3:");
    s_lacks(out, "offset 0:");
    s_has(out, "2 messages replayed, 1 would change");
    free(out);

    /* The live table itself: nothing changes, exit 0. */
    assert_int_equal(s_cli(NULL, &out, "routes diff %s --replay shop.orders --broker %s",
                           v1, ep), 0);
    s_has(out, "(no change)");
    s_has(out, "5 messages replayed, 0 would change");
    s_lacks(out, "ROUTE");
    free(out);

    /* Another mapping: the same routes fire, the output's field differs. */
    assert_int_equal(s_cli(NULL, &out, "routes diff %s --replay shop.orders --broker %s",
                           v3, ep), 1);
    s_has(out, "shop.orders offset 0: [eu-orders, archive] -> [eu-orders, archive]\n"
          "    ~ eu-orders: canonical.orders.eu /amount_cents: 1250 -> 12500\n");
    s_row(out, "eu-orders", 0, 0, 1);
    s_has(out, "5 messages replayed, 1 would change");
    free(out);

    /* Two operands: version 1 against a file, the same as above. */
    assert_int_equal(s_cli(NULL, &out, "routes diff 1 %s --replay shop.orders --broker %s",
                           v3, ep), 1);
    s_has(out, "--- version 1\n");
    s_has(out, "5 messages replayed, 1 would change");
    free(out);

    /* Nothing was written: every topic as it was. */
    char *after = s_topics(ep);
    assert_string_equal(before, after);
    free(after);
    free(before);

    /* No such topic, a table that does not compile: 2. Usage: 64. */
    assert_int_equal(s_cli(NULL, &out, "routes diff %s --replay no.such --broker %s", v2, ep),
                     2);
    s_has(out, "no topic no.such");
    free(out);
    s_write(b.dir, "bad.yaml", "routes:\n  - name: x\n    match: { topic: a.b }\n"
            "    map: no-such-mapping\n    to: c.d\n", v3, sizeof v3);
    assert_int_equal(s_cli(NULL, &out, "routes diff %s --replay shop.orders --broker %s", v3,
                           ep), 2);
    s_has(out, "nothing replayed");
    free(out);
    assert_int_equal(s_cli(NULL, NULL, "routes diff %s --last 3 --broker %s", v2, ep), 64);
    assert_int_equal(s_cli(NULL, NULL, "routes diff %s --replay 'a.*' --broker %s", v2, ep),
                     64);
    assert_int_equal(s_cli(NULL, NULL, "routes diff %s --replay shop.orders --last 0 "
                           "--broker %s", v2, ep), 64);
    h_broker_destroy(&b);
}

int main(void)
{
    h_build_path("adapters/cli/sluice", s_cli_path, sizeof s_cli_path);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
