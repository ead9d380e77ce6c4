/*  test_trace - `Trace` and `sluice trace` against a real sluiced
 *  (docs/routing.md, "Trace"): an original that fanned out names every
 *  derived topic and offset; a route whose predicate was false is
 *  "skipped"; a failed route carries its error and its _dlq.routes
 *  offset; a derived message shows its lineage and its source's trace; an
 *  unrouted message says why (no table live, no route matching); an
 *  unknown topic or offset is 404; a message routed by version 1 still
 *  says version 1 and its route names after version 2 is live.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "harness.h"

/* One broker for the group; the tests run in order and build on each
 * other's messages. */
typedef struct {
    h_broker_t b;
    h_raw_t raw;
    uint64_t corr;
    uint64_t orig;              /* tr.in: the message that fanned out */
    uint64_t bad;               /* tr.in: the one whose route failed */
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

static uint32_t s_apply(s_fx_t *fx, const char *yaml)
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
    uint32_t v = r->routes_apply_reply->version;
    slc_frame_free(&r);
    return v;
}

static uint64_t s_pub(s_fx_t *fx, const char *topic, const char *payload)
{
    char err[1024];
    uint64_t off = 0;
    if (h_raw_publish(&fx->raw, &fx->corr, topic, payload, &off, err, sizeof err) != 0)
        fail_msg("%s", err);
    return off;
}

/* Trace TOPIC@OFFSET: the reply (TraceReply or Error; caller frees). */
static Sluice__Frame *s_trace(s_fx_t *fx, const char *topic, uint64_t offset)
{
    Sluice__Trace t = SLUICE__TRACE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    t.topic = (char *) topic;
    t.offset = offset;
    f.body_case = SLUICE__FRAME__BODY_TRACE;
    f.trace = &t;
    return s_request(fx, &f);
}

static Sluice__Frame *s_trace_ok(s_fx_t *fx, const char *topic, uint64_t offset)
{
    Sluice__Frame *r = s_trace(fx, topic, offset);
    if (r->body_case != SLUICE__FRAME__BODY_TRACE_REPLY)
        fail_msg("trace %s@%llu: %s", topic, (unsigned long long) offset,
                 r->body_case == SLUICE__FRAME__BODY_ERROR ? r->error->text
                                                          : slc_frame_name(r));
    return r;
}

/* The offset on _dlq.routes of the leg of tr.in@SOURCE by ROUTE, read
 * through an ephemeral subscription; UINT64_MAX when there is none. */
static uint64_t s_dlq_leg(s_fx_t *fx, uint64_t source, const char *route)
{
    h_raw_t raw;
    uint64_t found = UINT64_MAX;
    char off[24];
    snprintf(off, sizeof off, "%llu", (unsigned long long) source);
    assert_int_equal(h_raw_open(&raw, fx->b.endpoint), 0);
    assert_int_equal(h_raw_hello(&raw), 0);
    Sluice__Subscribe sub = SLUICE__SUBSCRIBE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    sub.pattern = "_dlq.routes";
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
                const char *src = NULL, *rt = NULL;
                for (size_t k = 0; k < e->n_headers; k++) {
                    if (strcmp(e->headers[k]->key, "sluice-source-offset") == 0)
                        src = e->headers[k]->value;
                    if (strcmp(e->headers[k]->key, "sluice-route") == 0)
                        rt = e->headers[k]->value;
                }
                if (src && rt && strcmp(src, off) == 0 && strcmp(rt, route) == 0)
                    found = d->offset;
                slc_envelope_free(&e);
            }
        slc_frame_free(&r);
    }
    h_raw_close(&raw);
    return found;
}

/* Run `sluice ARGS`, stdout and stderr into *out; the exit status. */
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

static const char s_v1[] =
    "routes:\n"
    "  - name: tests-away\n"
    "    match: { topic: \"tr.in\", where: \"$.test == true\" }\n"
    "    action: drop\n"
    "  - name: big\n"
    "    match: { topic: \"tr.in\", where: \"$.n > 1\" }\n"
    "    to: tr.big\n"
    "    continue: true\n"
    "  - name: fan\n"
    "    match: { topic: \"tr.in\" }\n"
    "    to: [tr.x, tr.y]\n"
    "  - name: onward\n"
    "    match: { topic: \"tr.x\", where: \"$.n > 100\" }\n"
    "    to: tr.far\n";

/* Renamed and reordered: a v1 record must still read with v1's names. */
static const char s_v2[] =
    "routes:\n"
    "  - name: all-of-it\n"
    "    match: { topic: \"tr.in\" }\n"
    "    to: tr.z\n";

/* --------------------------------------------------------------- tests */

/* Before any table: stored, never routed, and the trace says so. */
static void test_no_table_yet(void **state)
{
    s_fx_t *fx = *state;
    uint64_t off = s_pub(fx, "tr.early", "{}");
    Sluice__Frame *r = s_trace_ok(fx, "tr.early", off);
    const Sluice__TraceReply *t = r->trace_reply;
    assert_false(t->routed);
    assert_int_equal(t->table_version, 0);
    assert_int_equal(t->n_steps, 0);
    assert_null(t->lineage);
    s_has(t->note, "no routing table was live when it was stored");
    slc_frame_free(&r);
}

/* An original that fanned out: every route whose pattern matched, in
 * order, with each derived message's topic and offset; a false predicate
 * is "skipped". */
static void test_fanout(void **state)
{
    s_fx_t *fx = *state;
    assert_int_equal(s_apply(fx, s_v1), 1);
    /* Something on each target first, so offsets are not all 0. */
    s_pub(fx, "tr.y", "{}");
    s_pub(fx, "tr.y", "{}");
    fx->orig = s_pub(fx, "tr.in", "{\"n\":5,\"test\":false}");
    Sluice__Frame *r = s_trace_ok(fx, "tr.in", fx->orig);
    const Sluice__TraceReply *t = r->trace_reply;
    assert_string_equal(t->topic, "tr.in");
    assert_int_equal(t->offset, fx->orig);
    assert_true(t->routed);
    assert_int_equal(t->table_version, 1);
    assert_true(t->ingest_us > 0);
    assert_null(t->lineage);
    assert_int_equal(t->n_steps, 3);
    assert_string_equal(t->steps[0]->route, "tests-away");
    assert_string_equal(t->steps[0]->outcome, "skipped");
    assert_int_equal(t->steps[0]->n_legs, 0);
    assert_string_equal(t->steps[1]->route, "big");
    assert_string_equal(t->steps[1]->outcome, "fired");
    assert_string_equal(t->steps[1]->action, "deliver");
    assert_int_equal(t->steps[1]->n_legs, 1);
    assert_string_equal(t->steps[1]->legs[0]->topic, "tr.big");
    assert_int_equal(t->steps[1]->legs[0]->offset, 0);
    assert_string_equal(t->steps[2]->route, "fan");
    assert_int_equal(t->steps[2]->index, 2);
    assert_int_equal(t->steps[2]->n_legs, 2);
    assert_string_equal(t->steps[2]->legs[0]->topic, "tr.x");
    assert_int_equal(t->steps[2]->legs[0]->offset, 0);
    assert_string_equal(t->steps[2]->legs[1]->topic, "tr.y");
    assert_int_equal(t->steps[2]->legs[1]->offset, 2);
    slc_frame_free(&r);
}

/* A route whose predicate fails (a payload that is not JSON): "failed",
 * the error, and the leg's offset on _dlq.routes. */
static void test_failed_route(void **state)
{
    s_fx_t *fx = *state;
    fx->bad = s_pub(fx, "tr.in", "this is not json");
    uint64_t leg = s_dlq_leg(fx, fx->bad, "tests-away");
    assert_true(leg != UINT64_MAX);
    Sluice__Frame *r = s_trace_ok(fx, "tr.in", fx->bad);
    const Sluice__TraceReply *t = r->trace_reply;
    assert_true(t->routed);
    /* continue: false: a failure ends the evaluation. */
    assert_int_equal(t->n_steps, 1);
    assert_string_equal(t->steps[0]->route, "tests-away");
    assert_string_equal(t->steps[0]->outcome, "failed");
    assert_true(strlen(t->steps[0]->error) > 0);
    assert_int_equal(t->steps[0]->n_legs, 1);
    assert_string_equal(t->steps[0]->legs[0]->topic, "_dlq.routes");
    assert_int_equal(t->steps[0]->legs[0]->offset, leg);
    slc_frame_free(&r);
    /* The leg itself: its lineage names the original, and it is not routed. */
    r = s_trace_ok(fx, "_dlq.routes", leg);
    t = r->trace_reply;
    assert_false(t->routed);
    assert_non_null(t->lineage);
    assert_string_equal(t->lineage->source_topic, "tr.in");
    assert_int_equal(t->lineage->source_offset, fx->bad);
    assert_non_null(t->source);
    assert_int_equal(t->source->n_steps, 1);
    slc_frame_free(&r);
}

/* A derived message: its lineage, why it went no further, and its
 * source's own trace. */
static void test_derived_shows_source(void **state)
{
    s_fx_t *fx = *state;
    Sluice__Frame *r = s_trace_ok(fx, "tr.x", 0);
    const Sluice__TraceReply *t = r->trace_reply;
    assert_non_null(t->lineage);
    assert_string_equal(t->lineage->source_topic, "tr.in");
    assert_int_equal(t->lineage->source_offset, fx->orig);
    assert_string_equal(t->lineage->route, "fan");
    assert_int_equal(t->lineage->table_version, 1);
    /* tr.x has a route (onward) whose predicate was false for it. */
    assert_true(t->routed);
    assert_int_equal(t->n_steps, 1);
    assert_string_equal(t->steps[0]->route, "onward");
    assert_string_equal(t->steps[0]->outcome, "skipped");
    assert_non_null(t->source);
    assert_string_equal(t->source->topic, "tr.in");
    assert_int_equal(t->source->offset, fx->orig);
    assert_int_equal(t->source->n_steps, 3);
    assert_null(t->source->source);
    slc_frame_free(&r);
    /* tr.big has no route at all: not routed further, by version 1. */
    r = s_trace_ok(fx, "tr.big", 0);
    t = r->trace_reply;
    assert_false(t->routed);
    assert_int_equal(t->table_version, 1);
    s_has(t->note, "not routed further: no route of table version 1 matches topic tr.big");
    assert_string_equal(t->lineage->route, "big");
    slc_frame_free(&r);
}

/* A message no route's pattern matches while a table is live. */
static void test_unrouted(void **state)
{
    s_fx_t *fx = *state;
    uint64_t off = s_pub(fx, "tr.other", "{}");
    Sluice__Frame *r = s_trace_ok(fx, "tr.other", off);
    const Sluice__TraceReply *t = r->trace_reply;
    assert_false(t->routed);
    assert_int_equal(t->table_version, 1);
    assert_int_equal(t->n_steps, 0);
    s_has(t->note, "not routed: no route of table version 1 matches topic tr.other");
    slc_frame_free(&r);
}

/* An unknown topic, an offset never stored, a bad name. */
static void test_not_found(void **state)
{
    s_fx_t *fx = *state;
    Sluice__Frame *r = s_trace(fx, "tr.nothing.here", 0);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 404);
    s_has(r->error->text, "no topic tr.nothing.here");
    slc_frame_free(&r);
    r = s_trace(fx, "tr.in", 999);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 404);
    s_has(r->error->text, "no message at tr.in@999");
    slc_frame_free(&r);
    r = s_trace(fx, "tr.*", 0);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 422);
    slc_frame_free(&r);
}

/* After version 2 is live, a message routed by version 1 still says 1
 * and version 1's route names; new messages say 2. */
static void test_old_version_kept(void **state)
{
    s_fx_t *fx = *state;
    assert_int_equal(s_apply(fx, s_v2), 2);
    uint64_t now = s_pub(fx, "tr.in", "{\"n\":1}");
    Sluice__Frame *r = s_trace_ok(fx, "tr.in", fx->orig);
    const Sluice__TraceReply *t = r->trace_reply;
    assert_int_equal(t->table_version, 1);
    assert_int_equal(t->n_steps, 3);
    assert_string_equal(t->steps[0]->route, "tests-away");
    assert_string_equal(t->steps[2]->route, "fan");
    slc_frame_free(&r);
    r = s_trace_ok(fx, "tr.in", now);
    t = r->trace_reply;
    assert_int_equal(t->table_version, 2);
    assert_int_equal(t->n_steps, 1);
    assert_string_equal(t->steps[0]->route, "all-of-it");
    assert_string_equal(t->steps[0]->legs[0]->topic, "tr.z");
    slc_frame_free(&r);
}

/* `sluice trace`: readable text, --json, and its exit codes. */
static void test_cli(void **state)
{
    s_fx_t *fx = *state;
    const char *ep = fx->b.endpoint;
    char *out = NULL;
    char leg[48];
    assert_int_equal(s_cli(&out, "trace tr.in %llu --broker %s",
                           (unsigned long long) fx->orig, ep), 0);
    s_has(out, "routed by table version 1");
    s_has(out, "route tests-away (#0): skipped (predicate false)");
    s_has(out, "route fan (#2): fired: deliver");
    s_has(out, "-> tr.x@0");
    s_has(out, "-> tr.y@2");
    s_has(out, "-> tr.big@0");
    free(out);
    assert_int_equal(s_cli(&out, "trace tr.in %llu --broker %s",
                           (unsigned long long) fx->bad, ep), 0);
    s_has(out, "route tests-away (#0): failed: ");
    snprintf(leg, sizeof leg, "-> _dlq.routes@%llu",
             (unsigned long long) s_dlq_leg(fx, fx->bad, "tests-away"));
    s_has(out, leg);
    free(out);
    assert_int_equal(s_cli(&out, "trace tr.x 0 --broker %s", ep), 0);
    s_has(out, "made by route fan (table version 1) from tr.in@");
    s_has(out, "source:");
    free(out);
    assert_int_equal(s_cli(&out, "trace tr.x 0 --json --broker %s", ep), 0);
    s_has(out, "\"lineage\":{\"source_topic\":\"tr.in\"");
    s_has(out, "\"source\":{\"topic\":\"tr.in\"");
    s_has(out, "\"outcome\":\"skipped\"");
    free(out);
    assert_int_equal(s_cli(&out, "trace tr.other 0 --broker %s", ep), 0);
    s_has(out, "not routed: no route of table version 1 matches topic tr.other");
    free(out);
    assert_int_equal(s_cli(&out, "trace tr.in 999 --broker %s", ep), 1);
    s_has(out, "no message at tr.in@999");
    free(out);
    assert_int_equal(s_cli(&out, "trace tr.in --broker %s", ep), 64);
    free(out);
    assert_int_equal(s_cli(&out, "trace tr.in x --broker %s", ep), 64);
    free(out);
}

int main(void)
{
    h_build_path("adapters/cli/sluice", s_cli_path, sizeof s_cli_path);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_table_yet),
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_failed_route),
        cmocka_unit_test(test_derived_shows_source),
        cmocka_unit_test(test_unrouted),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_old_version_kept),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
