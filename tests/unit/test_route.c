/*  test_route - slt_route: routing tables end to end. Parse errors with
 *  their line:col (all listed), every table check (duplicates, shadowing,
 *  cycles, unknown mapping, mapping vs topic schema, predicate types),
 *  evaluation (order, continue, predicates true/false/failing, mapped
 *  output, drop_if, payload not JSON, drop, dlq, fan-out), the trie
 *  against slc_pattern_match over random patterns and topics, and diffs.
 *  A small resolver stands in for the broker's registry.  */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slt_route.h"
#include "slt_doc.h"
#include "slc.h"

static char s_err[16384];

/* ---- the resolver: one mapping, one topic schema */

static slt_map_t *s_map;            /* shop-a-to-canonical, reads shop-a.order@1 */
static slt_map_t *s_map_drop;       /* drops tests */

static const char *s_map_yaml =
    "name: shop-a-to-canonical\nfrom: shop-a.order@1\nto: canonical.order@1\n"
    "map:\n  order_id: $.id\n  total_cents: round($.total * 100)\n";

static const char *s_drop_yaml =
    "name: drop-tests\nfrom: shop-a.order@1\nto: canonical.order@1\n"
    "drop_if: $.test == true\nmap:\n  order_id: $.id\n";

static int s_types(void *arg, const char *path, unsigned *types)
{
    (void) arg;
    static const struct { const char *p; unsigned t; } tab[] = {
        { "$", SLT_MAP_T_OBJECT }, { "$.id", SLT_MAP_T_STRING },
        { "$.region", SLT_MAP_T_STRING }, { "$.total", SLT_MAP_T_NUMBER },
        { "$.test", SLT_MAP_T_BOOLEAN },
    };
    for (size_t k = 0; k < sizeof tab / sizeof tab[0]; k++)
        if (strcmp(tab[k].p, path) == 0) {
            *types = tab[k].t;
            return 0;
        }
    return SL_ENOTFOUND;
}

static int s_res_mapping(void *arg, const char *name, const slt_map_t **map)
{
    (void) arg;
    if (strcmp(name, "shop-a-to-canonical") == 0) {
        *map = s_map;
        return 0;
    }
    if (strcmp(name, "drop-tests") == 0) {
        *map = s_map_drop;
        return 0;
    }
    return SL_ENOTFOUND;
}

static int s_res_schema(void *arg, const char *topic, slt_map_types_fn **types,
                        void **types_arg, const char **subject)
{
    (void) arg;
    if (strcmp(topic, "shop.orders") == 0) {
        *types = s_types;
        *types_arg = NULL;
        *subject = "shop-a.order@1";
        return 0;
    }
    if (strcmp(topic, "shop.other") == 0) {
        *types = NULL;
        *types_arg = NULL;
        *subject = "shop-b.order@1";
        return 0;
    }
    return SL_ENOTFOUND;
}

static const slt_route_resolver_t s_res = { s_res_mapping, s_res_schema, NULL };

static int s_setup(void **state)
{
    (void) state;
    if (slt_map_compile(s_map_yaml, strlen(s_map_yaml), "m.yaml", NULL, NULL, &s_map, s_err,
                        sizeof s_err) != 0
        || slt_map_compile(s_drop_yaml, strlen(s_drop_yaml), "d.yaml", NULL, NULL, &s_map_drop,
                           s_err, sizeof s_err) != 0) {
        fprintf(stderr, "%s\n", s_err);
        return -1;
    }
    return 0;
}

static int s_teardown(void **state)
{
    (void) state;
    slt_map_destroy(&s_map);
    slt_map_destroy(&s_map_drop);
    return 0;
}

static slt_route_table_t *s_ok(const char *yaml)
{
    slt_route_table_t *t = NULL;
    int rc = slt_route_compile(yaml, strlen(yaml), "r.yaml", &s_res, &t, s_err, sizeof s_err);
    if (rc != 0)
        fail_msg("compile failed (%d): %s\n--- yaml:\n%s", rc, s_err, yaml);
    return t;
}

/* Compile must fail; every string of the NULL-terminated list must be in
 * the errors. */
static void s_bad(const char *yaml, ...)
{
    slt_route_table_t *t = NULL;
    va_list ap;
    int rc = slt_route_compile(yaml, strlen(yaml), "r.yaml", &s_res, &t, s_err, sizeof s_err);
    if (rc != SL_EINVAL)
        fail_msg("compile gave %d, not SL_EINVAL; yaml:\n%s", rc, yaml);
    assert_null(t);
    va_start(ap, yaml);
    for (const char *want; (want = va_arg(ap, const char *));)
        if (!strstr(s_err, want))
            fail_msg("missing '%s' in errors:\n%s", want, s_err);
    va_end(ap);
}

static void s_eval(const slt_route_table_t *t, const char *topic, const char *payload,
                   const char *ct, slt_route_result_t *res)
{
    slt_route_msg_t msg = { .topic = topic, .payload = payload,
                            .len = payload ? strlen(payload) : 0, .content_type = ct };
    assert_int_equal(slt_route_eval(t, &msg, res), 0);
}

/* ---- parsing */

static void test_parse_errors_all_listed(void **state)
{
    (void) state;
    s_bad("routes:\n"
          "  - name: a\n"
          "    match: { topic: \"shop..x\" }\n"
          "    to: out.a\n"
          "  - name: 'b c'\n"
          "    match: { topic: shop.b }\n"
          "    action: explode\n"
          "  - name: d\n"
          "    match: { topic: shop.d, wher: x }\n"
          "    to: [_dlq.x]\n"
          "    colour: red\n",
          "r.yaml:3:22: route a: match.topic: 'shop..x' is not a topic pattern",
          "r.yaml:5:12: route b c: name: 1 to 128 characters",
          "r.yaml:7:13: route b c: action: 'explode' is not an action",
          "route d: match: unknown key 'wher'",
          "r.yaml:10:10: route d: to: '_dlq.x' is a broker topic",
          "r.yaml:11:5: route d: unknown key 'colour'", NULL);
    /* sorted by position, one per line */
    const char *a = strstr(s_err, "r.yaml:3:"), *b = strstr(s_err, "r.yaml:11:");
    assert_true(a && b && a < b);
    s_bad("routes: [\n", "r.yaml:", "YAML", NULL);
    s_bad("routes: {}\n", "routes: expected a list", NULL);
    s_bad("rutes: []\n", "unknown key 'rutes'", "missing 'routes:'", NULL);
    s_bad("routes:\n  - name: x\n    match: { topic: a }\n",
          "route x: to: missing", NULL);
    s_bad("routes:\n  - name: x\n    match: { topic: a }\n    action: dlq\n",
          "route x: reason: missing", NULL);
    s_bad("routes:\n  - name: x\n    match: { topic: a }\n    action: drop\n    to: b\n"
          "    continue: true\n",
          "route x: to: only with action: deliver", "continue: action: drop ends", NULL);
    s_bad("routes:\n  - match: { topic: a }\n    to: b\n", "route #1: name: missing", NULL);
    s_bad("routes:\n  - name: x\n    match: { topic: a }\n    to: [b, b]\n    continue: yes\n",
          "'b' is listed twice", "continue: expected true or false", NULL);
    /* past 64 errors: the count of the rest */
    char big[8192];
    size_t w = (size_t) snprintf(big, sizeof big, "routes:\n");
    for (int k = 0; k < 70; k++)
        w += (size_t) snprintf(big + w, sizeof big - w, "  - name: r%d\n    match: { topic: a }\n"
                               "    to: _x\n    continue: true\n", k);
    s_bad(big, "r.yaml:4:9: route r0: to: '_x' is a broker topic", "6 more errors not shown", NULL);
    slt_route_table_t *t = s_ok("routes: []\n");
    assert_int_equal(slt_route_count(t), 0);
    slt_route_destroy(&t);
    assert_null(t);
}

static void test_where_errors(void **state)
{
    (void) state;
    /* syntax error: column inside the expression */
    s_bad("routes:\n  - name: w\n    match: { topic: shop.x, where: \"$.a ==\" }\n    to: o\n",
          "r.yaml:3:", "route w: match.where:", NULL);
    /* the topic's schema says $.region is a string: not a boolean */
    s_bad("routes:\n  - name: w\n    match: { topic: shop.orders, where: \"$.region\" }\n"
          "    to: o\n", "route w: match.where:", NULL);
    /* a path the schema does not have */
    s_bad("routes:\n  - name: w\n    match: { topic: shop.orders, where: '$.regoin == \"EU\"' }\n"
          "    to: o\n", "route w: match.where:", NULL);
    /* without a schema (wildcard) the same compiles */
    slt_route_table_t *t = s_ok("routes:\n  - name: w\n    match: { topic: \"shop.*\", where: "
                                "'$.regoin == \"EU\"' }\n    to: o\n");
    slt_route_destroy(&t);
}

/* ---- table checks */

static void test_checks(void **state)
{
    (void) state;
    s_bad("routes:\n  - name: a\n    match: { topic: x }\n    to: o\n"
          "  - name: a\n    match: { topic: y }\n    to: p\n",
          "r.yaml:5:5: route a: name: given twice (first at line 2)", NULL);
    s_bad("routes:\n  - name: all\n    match: { topic: \"shop.>\" }\n    to: o\n"
          "  - name: orders\n    match: { topic: shop.orders }\n    to: p\n",
          "route orders: match.topic: never reached: route 'all'", NULL);
    /* not shadowed: a where, continue, or a narrower earlier pattern */
    slt_route_table_t *t = s_ok(
        "routes:\n  - name: all\n    match: { topic: \"shop.>\", where: '$meta.topic != \"x\"' }\n"
        "    to: o\n  - name: c\n    match: { topic: \"shop.>\" }\n    to: o2\n    continue: true\n"
        "  - name: one\n    match: { topic: shop.orders }\n    to: p\n"
        "  - name: more\n    match: { topic: \"shop.*\" }\n    to: p2\n");
    slt_route_destroy(&t);
    s_bad("routes:\n  - name: ab\n    match: { topic: a }\n    to: b\n"
          "  - name: ba\n    match: { topic: \"b.>\" }\n    to: b.c\n"
          "  - name: bca\n    match: { topic: b.c }\n    to: a\n",
          "cycle", NULL);
    s_bad("routes:\n  - name: self\n    match: { topic: \"shop.>\" }\n    to: shop.audit\n",
          "route self: to: its targets are routed back to it: a cycle (self -> self)", NULL);
    /* a chain without a cycle is fine */
    t = s_ok("routes:\n  - name: ab\n    match: { topic: a }\n    to: b\n"
             "  - name: bc\n    match: { topic: b }\n    to: c\n");
    slt_route_destroy(&t);
    s_bad("routes:\n  - name: m\n    match: { topic: shop.orders }\n    map: nope\n    to: o\n",
          "r.yaml:4:10: route m: map: no mapping 'nope' is registered", NULL);
    s_bad("routes:\n  - name: m\n    match: { topic: shop.other }\n    map: shop-a-to-canonical\n"
          "    to: o\n", "reads shop-a.order@1, but topic shop.other carries shop-b.order@1", NULL);
    t = s_ok("routes:\n  - name: m\n    match: { topic: shop.orders }\n    map: shop-a-to-canonical\n"
             "    to: o\n");
    slt_route_destroy(&t);
}

/* ---- evaluation */

static const char *s_table =
    "routes:\n"
    "  - name: drop-tests\n"
    "    match: { topic: \"shop.>\", where: \"$.test == true\" }\n"
    "    action: drop\n"
    "  - name: eu-orders\n"
    "    match: { topic: shop.orders, where: '$.region == \"EU\"' }\n"
    "    map: shop-a-to-canonical\n"
    "    to: [canonical.orders.eu, audit.orders]\n"
    "    continue: true\n"
    "  - name: malformed\n"
    "    match: { topic: shop.orders, where: \"$.id == null\" }\n"
    "    action: dlq\n"
    "    reason: \"order without id\"\n"
    "  - name: meta-only\n"
    "    match: { topic: \"logs.*\", where: '$meta.topic == \"logs.app\"' }\n"
    "    to: archive.app\n"
    "  - name: copy\n"
    "    match: { topic: \"logs.>\" }\n"
    "    to: archive.all\n";

static void test_eval(void **state)
{
    (void) state;
    slt_route_table_t *t = s_ok(s_table);
    slt_route_result_t res = { 0 };
    assert_int_equal(slt_route_count(t), 5);
    assert_string_equal(slt_route_name(t, 1), "eu-orders");
    assert_null(slt_route_name(t, 5));
    assert_string_equal(slt_route_mapping(t, 1), "shop-a-to-canonical");
    assert_null(slt_route_mapping(t, 0));
    assert_null(slt_route_mapping(t, 5));

    /* drop wins first */
    s_eval(t, "shop.orders", "{\"test\": true, \"id\": \"A\"}", NULL, &res);
    assert_int_equal(res.nsteps, 1);
    assert_int_equal(res.steps[0].outcome, SLT_ROUTE_FIRED);
    assert_int_equal(res.steps[0].action, SLT_ROUTE_DROP);

    /* EU: mapped fan-out to two targets, continue, then malformed skipped */
    s_eval(t, "shop.orders", "{\"id\": \"A-1\", \"region\": \"EU\", \"total\": 1.5}", NULL, &res);
    assert_int_equal(res.nsteps, 3);
    assert_int_equal(res.steps[0].outcome, SLT_ROUTE_SKIPPED);
    assert_int_equal(res.steps[1].outcome, SLT_ROUTE_FIRED);
    assert_int_equal(res.steps[1].action, SLT_ROUTE_DELIVER);
    assert_int_equal(res.steps[1].ntargets, 2);
    assert_string_equal(res.steps[1].targets[0], "canonical.orders.eu");
    assert_string_equal(res.steps[1].targets[1], "audit.orders");
    assert_string_equal(res.steps[1].mapping, "shop-a-to-canonical");
    assert_ptr_equal(res.steps[1].map, s_map);
    char *out = cJSON_PrintUnformatted(res.steps[1].output);
    assert_string_equal(out, "{\"order_id\":\"A-1\",\"total_cents\":150}");
    cJSON_free(out);
    assert_int_equal(res.steps[2].outcome, SLT_ROUTE_SKIPPED);
    assert_true(res.decoded);

    /* no id: eu skipped (region missing compares false), dlq fires */
    s_eval(t, "shop.orders", "{\"id\": null}", NULL, &res);
    assert_int_equal(res.nsteps, 3);
    assert_int_equal(res.steps[2].outcome, SLT_ROUTE_FIRED);
    assert_int_equal(res.steps[2].action, SLT_ROUTE_DLQ);
    assert_string_equal(res.steps[2].reason, "order without id");

    /* not JSON: every route that reads the payload fails; the first ends it */
    s_eval(t, "shop.orders", "not json", "application/json", &res);
    assert_int_equal(res.nsteps, 1);
    assert_int_equal(res.steps[0].outcome, SLT_ROUTE_FAILED);
    assert_non_null(strstr(res.steps[0].reason, "drop-tests"));
    assert_non_null(strstr(res.steps[0].reason, "not valid"));

    /* meta-only predicate: the payload is never parsed */
    cJSON *meta = cJSON_Parse("{\"topic\": \"logs.app\", \"offset\": 7}");
    slt_route_msg_t msg = { .topic = "logs.app", .payload = "\x01\x02", .len = 2,
                            .content_type = "application/octet-stream", .meta = meta };
    assert_int_equal(slt_route_eval(t, &msg, &res), 0);
    assert_int_equal(res.nsteps, 1);
    assert_int_equal(res.steps[0].outcome, SLT_ROUTE_FIRED);
    assert_string_equal(res.steps[0].targets[0], "archive.app");
    assert_false(res.decoded);
    cJSON_Delete(meta);

    /* deeper topic: only the '>' route; unrouted topics have no step */
    s_eval(t, "logs.app.x", "x", "text/plain", &res);
    assert_int_equal(res.nsteps, 1);
    assert_int_equal(res.steps[0].route, 4);
    s_eval(t, "other", "{}", NULL, &res);
    assert_int_equal(res.nsteps, 0);
    slt_route_result_free(&res);
    slt_route_result_free(&res);
    slt_route_destroy(&t);
}

static void test_eval_failures(void **state)
{
    (void) state;
    slt_route_table_t *t = s_ok(
        "routes:\n"
        "  - name: nonbool\n"
        "    match: { topic: \"a.*\", where: \"$.x\" }\n"
        "    to: o1\n"
        "    continue: true\n"
        "  - name: mapped\n"
        "    match: { topic: \"a.*\" }\n"
        "    map: shop-a-to-canonical\n"
        "    to: o2\n"
        "    continue: true\n"
        "  - name: dropper\n"
        "    match: { topic: \"a.*\" }\n"
        "    map: drop-tests\n"
        "    to: o3\n"
        "    continue: true\n"
        "  - name: last\n"
        "    match: { topic: \"a.*\" }\n"
        "    to: o4\n");
    slt_route_result_t res = { 0 };
    /* $.x a string: runtime failure with field and position; mapping fails
     * on a missing id; drop_if drops; the last still fires */
    s_eval(t, "a.b", "{\"x\": \"yes\", \"test\": true, \"total\": 1}", NULL, &res);
    assert_int_equal(res.nsteps, 4);
    assert_int_equal(res.steps[0].outcome, SLT_ROUTE_FAILED);
    assert_non_null(strstr(res.steps[0].reason, "route 'nonbool': where (r.yaml:3:"));
    assert_non_null(strstr(res.steps[0].reason, "boolean"));
    assert_int_equal(res.steps[1].outcome, SLT_ROUTE_FAILED);
    assert_non_null(strstr(res.steps[1].reason, "route 'mapped': map: mapping 'shop-a-to-canonical'"));
    assert_non_null(strstr(res.steps[1].reason, "$.id"));
    assert_int_equal(res.steps[2].outcome, SLT_ROUTE_FIRED);
    assert_int_equal(res.steps[2].action, SLT_ROUTE_DROP);
    assert_null(res.steps[2].output);
    assert_int_equal(res.steps[3].outcome, SLT_ROUTE_FIRED);
    assert_int_equal(res.steps[3].action, SLT_ROUTE_DELIVER);
    /* a predicate that is true */
    s_eval(t, "a.b", "{\"x\": true, \"id\": \"I\", \"total\": 2, \"test\": false}", NULL, &res);
    assert_int_equal(res.steps[0].outcome, SLT_ROUTE_FIRED);
    assert_int_equal(res.steps[2].outcome, SLT_ROUTE_FIRED);
    assert_int_equal(res.steps[2].action, SLT_ROUTE_DELIVER);
    assert_non_null(res.steps[2].output);
    /* CSV payload of one row is one document; of two rows it fails */
    s_eval(t, "a.b", "x,id\nfalse,I\n", "text/csv", &res);
    assert_int_equal(res.steps[0].outcome, SLT_ROUTE_FAILED);
    s_eval(t, "a.b", "x,id\n1,2\n3,4\n", "text/csv", &res);
    assert_non_null(strstr(res.steps[0].reason, "more than one document"));
    slt_route_result_free(&res);
    slt_route_destroy(&t);
}

/* ---- the trie against slc_pattern_match */

static unsigned s_rand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

static void s_words(unsigned *seed, char *buf, size_t len, bool pattern)
{
    static const char *const words[] = { "a", "b", "c", "_r", "ab" };
    size_t n = 1 + s_rand(seed) % 4, w = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < n; k++) {
        const char *word = words[s_rand(seed) % 5];
        if (k > 0 && word[0] == '_')
            word = "d";
        if (pattern && s_rand(seed) % 4 == 0)
            word = "*";
        if (pattern && k == n - 1 && s_rand(seed) % 4 == 0)
            word = ">";
        w += (size_t) snprintf(buf + w, len - w, "%s%s", k ? "." : "", word);
    }
}

static void test_trie_property(void **state)
{
    (void) state;
    unsigned seed = 12345;
    for (int round = 0; round < 40; round++) {
        char pats[60][64], yaml[16384];
        size_t np = 1 + s_rand(&seed) % 60, w = 0;
        w += (size_t) snprintf(yaml + w, sizeof yaml - w, "routes:\n");
        for (size_t k = 0; k < np; k++) {
            s_words(&seed, pats[k], sizeof pats[k], true);
            w += (size_t) snprintf(yaml + w, sizeof yaml - w,
                                   "  - name: r%zu\n    match: { topic: \"%s\", where: \"true\" }\n"
                                   "    action: drop\n", k, pats[k]);
        }
        /* every route has a where: none is shadowed; drop has no targets */
        slt_route_table_t *t = s_ok(yaml);
        slt_route_result_t res = { 0 };
        for (int q = 0; q < 50; q++) {
            char topic[64];
            s_words(&seed, topic, sizeof topic, false);
            /* drop stops at the first: compare the first match only */
            size_t first = np;
            for (size_t k = 0; k < np && first == np; k++)
                if (slc_pattern_match(pats[k], topic))
                    first = k;
            s_eval(t, topic, "{}", NULL, &res);
            if (first == np) {
                assert_int_equal(res.nsteps, 0);
            } else {
                assert_int_equal(res.nsteps, 1);
                if (res.steps[0].route != first)
                    fail_msg("topic %s: route %zu (%s), want %zu (%s)", topic,
                             res.steps[0].route, pats[res.steps[0].route], first, pats[first]);
            }
        }
        slt_route_result_free(&res);
        slt_route_destroy(&t);
        /* all matches, in order: with continue */
        w = (size_t) snprintf(yaml, sizeof yaml, "routes:\n");
        for (size_t k = 0; k < np; k++)
            w += (size_t) snprintf(yaml + w, sizeof yaml - w,
                                   "  - name: r%zu\n    match: { topic: \"%s\" }\n"
                                   "    action: dlq\n    reason: r\n    continue: true\n",
                                   k, pats[k]);
        t = s_ok(yaml);
        for (int q = 0; q < 50; q++) {
            char topic[64];
            s_words(&seed, topic, sizeof topic, false);
            s_eval(t, topic, "{}", NULL, &res);
            size_t j = 0;
            for (size_t k = 0; k < np; k++)
                if (slc_pattern_match(pats[k], topic)) {
                    assert_true(j < res.nsteps);
                    assert_int_equal(res.steps[j++].route, k);
                }
            assert_int_equal(j, res.nsteps);
        }
        slt_route_result_free(&res);
        slt_route_destroy(&t);
    }
}

/* ---- diff and equality */

static void test_diff(void **state)
{
    (void) state;
    slt_route_table_t *a = s_ok(
        "routes:\n  - name: x\n    match: { topic: a }\n    to: b\n"
        "  - name: y\n    match: { topic: c }\n    action: drop\n"
        "  - name: z\n    match: { topic: d }\n    to: [e, f]\n");
    slt_route_table_t *b = s_ok(
        "routes:\n  - name: z\n    match: { topic: d, where: \"true\" }\n    to: [e]\n"
        "    continue: true\n"
        "  - name: x\n    match: { topic: a }\n    to: b\n"
        "  - name: w\n    match: { topic: g }\n    action: dlq\n    reason: why\n");
    slt_route_table_t *a2 = s_ok(
        "routes:\n  - name: x\n    match: { topic: a }\n    to: [b]\n"
        "  - name: y\n    match: { topic: c }\n    action: drop\n"
        "  - name: z\n    match: { topic: d }\n    to: [e, f]\n");
    char *d = slt_route_diff(a, b);
    assert_non_null(d);
    assert_non_null(strstr(d, "- y\n"));
    assert_non_null(strstr(d, "+ w\n"));
    assert_non_null(strstr(d, "~ z: match.where (none) -> true\n"));
    assert_non_null(strstr(d, "~ z: to [e, f] -> [e]\n"));
    assert_non_null(strstr(d, "~ z: continue false -> true\n"));
    assert_non_null(strstr(d, "~ z: position 3 -> 1\n"));
    assert_non_null(strstr(d, "~ x: position 1 -> 2\n"));
    free(d);
    d = slt_route_diff(a, a2);
    assert_string_equal(d, "(no change)\n");
    free(d);
    d = slt_route_diff(NULL, a);
    assert_string_equal(d, "+ x\n+ y\n+ z\n");
    free(d);
    assert_true(slt_route_equal(a, a2));
    assert_false(slt_route_equal(a, b));
    assert_true(slt_route_equal(NULL, NULL));
    slt_route_destroy(&a);
    slt_route_destroy(&a2);
    slt_route_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors_all_listed),
        cmocka_unit_test(test_where_errors),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_eval_failures),
        cmocka_unit_test(test_trie_property),
        cmocka_unit_test(test_diff),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
