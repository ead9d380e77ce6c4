/*  test_backfill - `sluice routes backfill` and RoutesBackfill against a
 *  real sluiced (docs/routing.md, "Backfill"): a route added after ten
 *  messages arrived makes ten derived copies with its lineage and a
 *  backfilled step in their trace; a second run makes none; a run cut
 *  after one chunk and run again ends with each copy once; a predicate
 *  false for some skips them; --from TIME starts at the first message
 *  stored at or after it; unknown route or topic and a topic the route's
 *  pattern misses are refused.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "harness.h"

/* One broker for the group; the tests run in order and build on each
 * other's tables and messages. */
typedef struct {
    h_broker_t b;
    h_raw_t raw;
    uint64_t corr;
    char yaml[300];             /* the table file the CLI applies */
} s_fx_t;

static char s_cli_path[512];

static int s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    h_broker_init(&fx->b, NULL);
    if (h_broker_start(&fx->b) != 0 || h_raw_open(&fx->raw, fx->b.endpoint) != 0
        || h_raw_hello(&fx->raw) != 0)
        return -1;
    fx->corr = 1000;
    snprintf(fx->yaml, sizeof fx->yaml, "%s/routes.yaml", fx->b.dir);
    *state = fx;
    return 0;
}

static int s_teardown(void **state)
{
    s_fx_t *fx = *state;
    h_raw_close(&fx->raw);
    h_broker_destroy(&fx->b);
    free(fx);
    return 0;
}

/* Send F with a fresh corr; the reply with that corr (caller frees). */
static Sluice__Frame *s_request(s_fx_t *fx, Sluice__Frame *f)
{
    Sluice__Frame *r = h_raw_request(&fx->raw, &fx->corr, f);
    if (!r)
        fail_msg("no reply to %s", slc_frame_name(f));
    return r;
}

static void s_apply(s_fx_t *fx, const char *yaml)
{
    Sluice__RoutesApply ra = SLUICE__ROUTES_APPLY__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    ra.yaml = (char *) yaml;
    f.body_case = SLUICE__FRAME__BODY_ROUTES_APPLY;
    f.routes_apply = &ra;
    Sluice__Frame *r = s_request(fx, &f);
    if (r->body_case != SLUICE__FRAME__BODY_ROUTES_APPLY_REPLY)
        fail_msg("apply refused: %s", r->body_case == SLUICE__FRAME__BODY_ERROR
                 ? r->error->text : slc_frame_name(r));
    slc_frame_free(&r);
}

static uint64_t s_pub(s_fx_t *fx, const char *topic, const char *payload)
{
    char err[1024];
    uint64_t off = 0;
    if (h_raw_publish(&fx->raw, &fx->corr, topic, payload, &off, err, sizeof err) != 0)
        fail_msg("%s", err);
    return off;
}

/* One chunk through the raw protocol: the reply (caller frees). */
static Sluice__Frame *s_chunk(s_fx_t *fx, const char *route, const char *topic,
                              uint64_t from, uint64_t from_time_us, uint32_t max)
{
    Sluice__RoutesBackfill rb = SLUICE__ROUTES_BACKFILL__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    rb.route = (char *) route;
    rb.topic = (char *) topic;
    rb.from_offset = from;
    rb.from_time_us = from_time_us;
    rb.max = max;
    f.body_case = SLUICE__FRAME__BODY_ROUTES_BACKFILL;
    f.routes_backfill = &rb;
    return s_request(fx, &f);
}

/* The messages stored on TOPIC, read through an ephemeral subscription:
 * how many; each one's lineage must name ROUTE (when not NULL) and
 * VERSION, from SOURCE, and the source offsets must all differ. */
static size_t s_count(s_fx_t *fx, const char *topic, const char *route, uint32_t version,
                      const char *source)
{
    h_raw_t raw;
    size_t n = 0;
    uint64_t seen[64];
    assert_int_equal(h_raw_open(&raw, fx->b.endpoint), 0);
    assert_int_equal(h_raw_hello(&raw), 0);
    Sluice__Subscribe sub = SLUICE__SUBSCRIBE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    sub.pattern = (char *) topic;
    sub.ephemeral = true;
    sub.start = SLUICE__START_KIND__START_EARLIEST;
    sub.credit = 1000;
    f.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
    f.subscribe = &sub;
    f.corr = 7;
    assert_int_equal(h_raw_send(&raw, &f), 0);
    for (;;) {
        Sluice__Frame *r = h_raw_recv(&raw, 400);
        if (!r)
            break;
        if (r->body_case == SLUICE__FRAME__BODY_DELIVER)
            for (size_t i = 0; i < r->deliver->n_msgs; i++) {
                const Sluice__Delivery *d = r->deliver->msgs[i];
                Sluice__Envelope *e = NULL;
                assert_int_equal(slc_envelope_decode(d->envelope.data, d->envelope.len, &e),
                                 0);
                const Sluice__Lineage *l = e->lineage;
                assert_non_null(l);
                if (route)
                    assert_string_equal(l->route, route);
                assert_int_equal(l->table_version, version);
                assert_string_equal(l->source_topic, source);
                for (size_t k = 0; k < n && k < 64; k++)
                    if (seen[k] == l->source_offset)
                        fail_msg("%s holds two copies of %s@%llu", topic, source,
                                 (unsigned long long) l->source_offset);
                if (n < 64)
                    seen[n] = l->source_offset;
                n++;
                slc_envelope_free(&e);
            }
        slc_frame_free(&r);
    }
    h_raw_close(&raw);
    return n;
}

static int s_cli(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int s_cli(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = h_cli_v(s_cli_path, NULL, NULL, out, fmt, ap);
    va_end(ap);
    return rc;
}

static void s_has(const char *out, const char *what)
{
    if (!strstr(out, what))
        fail_msg("expected \"%s\" in the output", what);
}

/* Version 1 routes bf.in to first.out; the tests add routes to it. */
static const char s_v1[] =
    "routes:\n"
    "  - name: first\n"
    "    match: { topic: \"bf.in\" }\n"
    "    to: first.out\n"
    "    continue: true\n";

static const char s_copy[] =
    "  - name: copy\n"
    "    match: { topic: \"bf.*\" }\n"
    "    to: copy.out\n"
    "    continue: true\n";

static const char s_part[] =
    "  - name: part\n"
    "    match: { topic: \"bf.in\" }\n"
    "    to: part.out\n"
    "    continue: true\n";

static const char s_evens[] =
    "  - name: evens\n"
    "    match: { topic: \"bf.in\", where: \"$.even == true\" }\n"
    "    to: evens.out\n"
    "    continue: true\n";

static const char s_late[] =
    "  - name: late\n"
    "    match: { topic: \"bf.in\" }\n"
    "    to: late.out\n";

static void test_added_route(void **state)
{
    s_fx_t *fx = *state;
    char payload[64], *out = NULL;
    s_apply(fx, s_v1);
    for (int i = 0; i < 10; i++) {
        snprintf(payload, sizeof payload, "{\"n\":%d,\"even\":%s}", i, i % 2 ? "false" : "true");
        assert_int_equal(s_pub(fx, "bf.in", payload), (uint64_t) i);
    }
    assert_int_equal(s_count(fx, "first.out", "first", 1, "bf.in"), 10);
    /* Version 2 adds `copy`: nothing on copy.out until the backfill. */
    char table[1024];
    snprintf(table, sizeof table, "%s%s", s_v1, s_copy);
    s_apply(fx, table);
    assert_int_equal(s_cli(&out, "routes backfill copy --topic bf.in --from earliest "
                           "--broker %s --insecure-plaintext", fx->b.endpoint), 0);
    s_has(out, "backfilling route copy (table version 2) on bf.in, offsets 0..10");
    s_has(out, "10 messages: 10 fired, 0 failed (dead-lettered), 0 skipped (predicate "
               "false or not reached), 0 already done; 10 derived messages stored");
    free(out);
    assert_int_equal(s_count(fx, "copy.out", "copy", 2, "bf.in"), 10);
    assert_int_equal(s_count(fx, "first.out", "first", 1, "bf.in"), 10);

    /* The trace of a source shows the step, from version 2. */
    assert_int_equal(s_cli(&out, "trace bf.in 3 --json --broker %s --insecure-plaintext",
                           fx->b.endpoint), 0);
    s_has(out, "\"index\":0,\"route\":\"first\"");
    s_has(out, "\"index\":1,\"backfilled\":2,\"route\":\"copy\"");
    free(out);
    assert_int_equal(s_cli(&out, "trace bf.in 3 --broker %s --insecure-plaintext",
                           fx->b.endpoint), 0);
    s_has(out, "routed by table version 1");
    s_has(out, "route copy (#1) (backfilled, table version 2): fired: deliver");
    s_has(out, "-> copy.out@3");
    free(out);

    /* Again: every message is already done, nothing is stored twice. */
    assert_int_equal(s_cli(&out, "routes backfill copy --topic bf.in --from 0 "
                           "--broker %s --insecure-plaintext", fx->b.endpoint), 0);
    s_has(out, "10 messages: 0 fired, 0 failed (dead-lettered), 0 skipped (predicate "
               "false or not reached), 10 already done; 0 derived messages stored");
    free(out);
    assert_int_equal(s_count(fx, "copy.out", "copy", 2, "bf.in"), 10);

    /* A derived message is routed in turn: copy.out's copies are not
     * bf.* topics, so only first.out and copy.out hold them. */
    assert_int_equal(s_count(fx, "first.out", "first", 1, "bf.in"), 10);
}

static void test_interrupted_then_again(void **state)
{
    s_fx_t *fx = *state;
    char table[1024], *out = NULL;
    snprintf(table, sizeof table, "%s%s%s", s_v1, s_copy, s_part);
    s_apply(fx, table);                 /* version 3 */
    /* One chunk of 3, as a CLI killed after its first chunk leaves it. */
    Sluice__Frame *r = s_chunk(fx, "part", "bf.in", 0, 0, 3);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ROUTES_BACKFILL_REPLY);
    assert_int_equal(r->routes_backfill_reply->processed, 3);
    assert_int_equal(r->routes_backfill_reply->fired, 3);
    assert_int_equal(r->routes_backfill_reply->next_offset, 3);
    assert_false(r->routes_backfill_reply->done);
    slc_frame_free(&r);
    assert_int_equal(s_count(fx, "part.out", "part", 3, "bf.in"), 3);
    /* Run again from the start, in chunks of 3. */
    assert_int_equal(s_cli(&out, "routes backfill part --topic bf.in --from 0 --batch 3 "
                           "--broker %s --insecure-plaintext", fx->b.endpoint), 0);
    s_has(out, "  0..3: 3 messages, 0 fired, 0 failed, 0 skipped, 3 already done, 0 derived");
    s_has(out, "  9..10: 1 messages, 1 fired");
    s_has(out, "10 messages: 7 fired, 0 failed (dead-lettered), 0 skipped (predicate false "
               "or not reached), 3 already done; 7 derived messages stored");
    free(out);
    assert_int_equal(s_count(fx, "part.out", "part", 3, "bf.in"), 10);
}

static void test_predicate_false_skips(void **state)
{
    s_fx_t *fx = *state;
    char table[1024], *out = NULL;
    snprintf(table, sizeof table, "%s%s%s%s", s_v1, s_copy, s_part, s_evens);
    s_apply(fx, table);                 /* version 4 */
    assert_int_equal(s_cli(&out, "routes backfill evens --topic bf.in --from 0 "
                           "--broker %s --insecure-plaintext", fx->b.endpoint), 0);
    s_has(out, "10 messages: 5 fired, 0 failed (dead-lettered), 5 skipped (predicate false "
               "or not reached), 0 already done; 5 derived messages stored");
    free(out);
    assert_int_equal(s_count(fx, "evens.out", "evens", 4, "bf.in"), 5);
    /* Skipped ones are looked at again (nothing recorded), fired ones not. */
    assert_int_equal(s_cli(&out, "routes backfill evens --topic bf.in --from 0 "
                           "--broker %s --insecure-plaintext", fx->b.endpoint), 0);
    s_has(out, "10 messages: 0 fired, 0 failed (dead-lettered), 5 skipped (predicate false "
               "or not reached), 5 already done; 0 derived messages stored");
    free(out);
    assert_int_equal(s_count(fx, "evens.out", "evens", 4, "bf.in"), 5);
}

static uint64_t s_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t) tv.tv_sec * 1000000u + (uint64_t) tv.tv_usec;
}

static void test_from_time(void **state)
{
    s_fx_t *fx = *state;
    char table[1024], stamp[40], *out = NULL;
    snprintf(table, sizeof table, "%s%s%s%s%s", s_v1, s_copy, s_part, s_evens, s_late);
    s_apply(fx, table);                 /* version 5: `late` is new */
    /* Three messages stored after the next whole second: a time between. */
    uint64_t now = s_now_us(), second = now / 1000000u + 1;
    usleep((useconds_t) (second * 1000000u - now + 20000u));
    time_t t = (time_t) second;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (int i = 0; i < 3; i++)
        s_pub(fx, "bf.in", "{\"n\":100}");
    /* These were routed by version 5 at ingest: late fired for them. */
    assert_int_equal(s_count(fx, "late.out", "late", 5, "bf.in"), 3);
    /* A Unix time (microseconds) through the protocol: only the three. */
    Sluice__Frame *r = s_chunk(fx, "late", "bf.in", 0, second * 1000000u, 0);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ROUTES_BACKFILL_REPLY);
    assert_int_equal(r->routes_backfill_reply->from_offset, 10);
    assert_int_equal(r->routes_backfill_reply->processed, 3);
    assert_int_equal(r->routes_backfill_reply->already, 3);
    slc_frame_free(&r);
    /* RFC 3339 through the CLI: the same three, already done. */
    assert_int_equal(s_cli(&out, "routes backfill late --topic bf.in --from %s "
                           "--broker %s --insecure-plaintext", stamp, fx->b.endpoint), 0);
    s_has(out, "offsets 10..13");
    s_has(out, "3 messages: 0 fired, 0 failed (dead-lettered), 0 skipped (predicate false "
               "or not reached), 3 already done");
    free(out);
    /* From the start: the ten older ones get their copy. */
    assert_int_equal(s_cli(&out, "routes backfill late --topic bf.in --from 0 "
                           "--broker %s --insecure-plaintext", fx->b.endpoint), 0);
    s_has(out, "13 messages: 10 fired");
    free(out);
    assert_int_equal(s_count(fx, "late.out", NULL, 5, "bf.in"), 13);
}

static void test_refusals(void **state)
{
    s_fx_t *fx = *state;
    char *out = NULL;
    assert_int_equal(s_cli(&out, "routes backfill nope --topic bf.in --from 0 "
                           "--broker %s --insecure-plaintext", fx->b.endpoint), 1);
    s_has(out, "no route \"nope\" in the live routing table (version 5)");
    free(out);
    assert_int_equal(s_cli(&out, "routes backfill copy --topic bf.nothing --from 0 "
                           "--broker %s --insecure-plaintext", fx->b.endpoint), 1);
    s_has(out, "no topic bf.nothing");
    free(out);
    /* part matches bf.in only; first.out exists. */
    assert_int_equal(s_cli(&out, "routes backfill part --topic first.out --from 0 "
                           "--broker %s --insecure-plaintext", fx->b.endpoint), 1);
    s_has(out, "route part matches topics bf.in, not first.out");
    free(out);
    Sluice__Frame *r = s_chunk(fx, "part", "first.out", 0, 0, 0);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 422);
    slc_frame_free(&r);
    r = s_chunk(fx, "nope", "bf.in", 0, 0, 0);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 404);
    slc_frame_free(&r);
    assert_int_equal(s_cli(&out, "routes backfill copy --topic bf.in --insecure-plaintext"),
                     64);
    s_has(out, "--from is required");
    free(out);
    assert_int_equal(s_cli(&out, "routes backfill copy --topic bf.in --from yesterdayish "
                           "--insecure-plaintext"), 64);
    free(out);
    /* The chunks were audited. */
    assert_int_equal(s_cli(&out, "audit --broker %s --insecure-plaintext", fx->b.endpoint),
                     0);
    s_has(out, "routes.backfill");
    s_has(out, "route copy (table version 2), offsets 0..10");
    free(out);
}

int main(void)
{
    h_build_path("adapters/cli/sluice", s_cli_path, sizeof s_cli_path);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_added_route),
        cmocka_unit_test(test_interrupted_then_again),
        cmocka_unit_test(test_predicate_false_skips),
        cmocka_unit_test(test_from_time),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
