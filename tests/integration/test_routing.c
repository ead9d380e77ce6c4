/*  test_routing - routing tables end to end against a real sluiced, with
 *  raw protocol frames: apply a table, publish, read the targets and check
 *  payloads and lineage; mappings, fan-out, drop, dlq, failures into
 *  _dlq.routes (with the original still confirmed), chains and the hop
 *  limit, version switches, rollback, expect_version, refused tables,
 *  duplicates not routed twice, the counters, and a restart keeping the
 *  live version (docs/routing.md).  */
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

typedef struct {
    h_broker_t b;
    h_raw_t raw;
    uint64_t corr;
} s_fx_t;

static int s_connect(s_fx_t *fx)
{
    if (h_raw_open(&fx->raw, fx->b.endpoint) != 0 || h_raw_hello(&fx->raw) != 0)
        return -1;
    return 0;
}

static int s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    h_broker_init(&fx->b, NULL);
    if (h_broker_start(&fx->b) != 0 || s_connect(fx) != 0)
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

/* ------------------------------------------------------------- routing */

/* RoutesApply; the reply (RoutesApplyReply or Error). */
static Sluice__Frame *s_apply_r(s_fx_t *fx, const char *yaml, uint32_t expect, bool dry)
{
    Sluice__RoutesApply ra = SLUICE__ROUTES_APPLY__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    ra.yaml = (char *) yaml;
    ra.expect_version = expect;
    ra.dry_run = dry;
    f.body_case = SLUICE__FRAME__BODY_ROUTES_APPLY;
    f.routes_apply = &ra;
    return s_request(fx, &f);
}

/* Apply YAML; it must succeed: the new version. */
static uint32_t s_apply(s_fx_t *fx, const char *yaml)
{
    Sluice__Frame *r = s_apply_r(fx, yaml, 0, false);
    if (r->body_case != SLUICE__FRAME__BODY_ROUTES_APPLY_REPLY)
        fail_msg("apply refused: %s", r->body_case == SLUICE__FRAME__BODY_ERROR
                 ? r->error->text : slc_frame_name(r));
    uint32_t v = r->routes_apply_reply->version;
    slc_frame_free(&r);
    return v;
}

static Sluice__Frame *s_rollback(s_fx_t *fx, uint32_t version, uint32_t expect)
{
    Sluice__RoutesRollback rb = SLUICE__ROUTES_ROLLBACK__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    rb.version = version;
    rb.expect_version = expect;
    f.body_case = SLUICE__FRAME__BODY_ROUTES_ROLLBACK;
    f.routes_rollback = &rb;
    return s_request(fx, &f);
}

static Sluice__Frame *s_get(s_fx_t *fx, uint32_t version)
{
    Sluice__RoutesGet g = SLUICE__ROUTES_GET__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    g.version = version;
    f.body_case = SLUICE__FRAME__BODY_ROUTES_GET;
    f.routes_get = &g;
    return s_request(fx, &f);
}

static uint32_t s_live(s_fx_t *fx)
{
    Sluice__RoutesList l = SLUICE__ROUTES_LIST__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_ROUTES_LIST;
    f.routes_list = &l;
    Sluice__Frame *r = s_request(fx, &f);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ROUTES_LIST_REPLY);
    uint32_t v = r->routes_list_reply->live;
    slc_frame_free(&r);
    return v;
}

/* ------------------------------------------------------------- publish */

/* Publish PAYLOAD to TOPIC (PRODUCER with SEQ when not NULL); the Confirm's
 * offset; *dup whether it was a duplicate. The publish must be stored. */
static uint64_t s_pub(s_fx_t *fx, const char *topic, const char *payload,
                      const uint8_t *producer, uint64_t seq, bool *dup)
{
    Sluice__Envelope e = SLUICE__ENVELOPE__INIT;
    Sluice__Header h = SLUICE__HEADER__INIT, *hp = &h;
    Sluice__Publish p = SLUICE__PUBLISH__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    e.topic = (char *) topic;
    e.payload.data = (uint8_t *) payload;
    e.payload.len = strlen(payload);
    h.key = "x-test";
    h.value = "kept";
    e.headers = &hp;
    e.n_headers = 1;
    if (producer) {
        e.producer_id.data = (uint8_t *) producer;
        e.producer_id.len = SLC_PRODUCER_ID_LEN;
        e.seq = seq;
    }
    p.msg = &e;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH;
    f.publish = &p;
    Sluice__Frame *r = s_request(fx, &f);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_PUBLISH_ACK);
    const Sluice__Confirm *c = r->publish_ack->confirms[0];
    if (c->code)
        fail_msg("publish to %s refused: %d %s", topic, c->code, c->text);
    uint64_t off = c->offset;
    if (dup)
        *dup = c->duplicate;
    slc_frame_free(&r);
    return off;
}

/* ---------------------------------------------------------------- read */

/* Every message stored on TOPIC (up to MAX) into OUT (caller frees each
 * with h_envelopes_free). */
static size_t s_read(s_fx_t *fx, const char *topic, Sluice__Envelope **out, size_t max)
{
    char err[512];
    size_t n = 0;
    if (h_raw_read_topic(fx->b.endpoint, topic, out, max, &n, err, sizeof err) != 0)
        fail_msg("%s", err);
    return n;
}

static const char *s_header(const Sluice__Envelope *e, const char *key)
{
    for (size_t i = 0; i < e->n_headers; i++)
        if (strcmp(e->headers[i]->key, key) == 0)
            return e->headers[i]->value;
    return NULL;
}

static bool s_payload_is(const Sluice__Envelope *e, const char *text)
{
    return e->payload.len == strlen(text) && memcmp(e->payload.data, text, e->payload.len) == 0;
}

/* --------------------------------------------------------------- tests */

/* A deliver route: the derived message has the payload, the headers, the
 * producer id and the lineage; a resend of the original makes no second
 * copy; a message no route matches is unrouted. */
static void test_deliver_lineage(void **state)
{
    s_fx_t *fx = *state;
    uint32_t v = s_apply(fx, "routes:\n"
                             "  - name: copy\n"
                             "    match: { topic: \"rt.a.in\" }\n"
                             "    to: rt.a.out\n");
    assert_true(v >= 1);
    uint8_t producer[SLC_PRODUCER_ID_LEN];
    memset(producer, 7, sizeof producer);
    bool dup = true;
    uint64_t off = s_pub(fx, "rt.a.in", "{\"n\":1}", producer, 1, &dup);
    assert_false(dup);
    /* The same producer and sequence again: a duplicate, not routed again. */
    assert_int_equal(s_pub(fx, "rt.a.in", "{\"n\":1}", producer, 1, &dup), off);
    assert_true(dup);
    s_pub(fx, "rt.a.other", "{}", NULL, 0, NULL);

    Sluice__Envelope *m[8];
    size_t n = s_read(fx, "rt.a.out", m, 8);
    assert_int_equal(n, 1);
    assert_true(s_payload_is(m[0], "{\"n\":1}"));
    assert_string_equal(s_header(m[0], "x-test"), "kept");
    assert_int_equal(m[0]->producer_id.len, SLC_PRODUCER_ID_LEN);
    assert_memory_equal(m[0]->producer_id.data, producer, SLC_PRODUCER_ID_LEN);
    assert_int_equal(m[0]->seq, 0);
    assert_non_null(m[0]->lineage);
    assert_string_equal(m[0]->lineage->source_topic, "rt.a.in");
    assert_int_equal(m[0]->lineage->source_offset, off);
    assert_string_equal(m[0]->lineage->route, "copy");
    assert_string_equal(m[0]->lineage->mapping, "");
    assert_int_equal(m[0]->lineage->mapping_version, 0);
    assert_int_equal(m[0]->lineage->table_version, v);
    assert_int_equal(m[0]->lineage->n_path, 2);
    assert_string_equal(m[0]->lineage->path[0], "rt.a.in");
    assert_string_equal(m[0]->lineage->path[1], "rt.a.out");
    h_envelopes_free(m, n);
}

/* An admin frame whose reply must not be an Error; freed. */
static void s_admin_ok(s_fx_t *fx, Sluice__Frame *f)
{
    char err[2048];
    Sluice__Frame *r = h_raw_admin(&fx->raw, &fx->corr, f, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    slc_frame_free(&r);
}

static void s_register(s_fx_t *fx, const char *subject, const char *schema)
{
    char err[1024];
    if (h_raw_schema_register(&fx->raw, &fx->corr, subject, schema, err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* A route through a mapping: the targets get its output as JSON, named in
 * the lineage; an output its `to` schema refuses is a failed leg; the
 * mapping cannot be removed while the live table uses it. */
static void test_mapping_route(void **state)
{
    s_fx_t *fx = *state;
    s_register(fx, "rt.src", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                             "\"total\":{\"type\":\"number\"}}}");
    s_register(fx, "rt.dst", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                             "\"amount\":{\"type\":\"number\"}},\"required\":[\"id\",\"amount\"]}");
    Sluice__MappingAdd ma = SLUICE__MAPPING_ADD__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    ma.yaml = "name: rt-map\nfrom: rt.src@1\nto: rt.dst@1\nmap:\n  id: $.id\n"
              "  amount: $.total\n";
    f.body_case = SLUICE__FRAME__BODY_MAPPING_ADD;
    f.mapping_add = &ma;
    s_admin_ok(fx, &f);
    s_apply(fx, "routes:\n"
                "  - name: mapped\n"
                "    match: { topic: \"rt.m.in\" }\n"
                "    map: rt-map\n"
                "    to: rt.m.out\n");
    s_pub(fx, "rt.m.in", "{\"id\":\"a\",\"total\":5}", NULL, 0, NULL);
    uint64_t bad = s_pub(fx, "rt.m.in", "{\"id\":\"b\"}", NULL, 0, NULL);
    Sluice__Envelope *m[64];
    size_t n = s_read(fx, "rt.m.out", m, 64);
    assert_int_equal(n, 1);
    assert_true(s_payload_is(m[0], "{\"id\":\"a\",\"amount\":5}"));
    assert_string_equal(m[0]->content_type, "application/json");
    assert_string_equal(m[0]->lineage->mapping, "rt-map");
    assert_int_equal(m[0]->lineage->mapping_version, 1);
    assert_string_equal(m[0]->lineage->route, "mapped");
    h_envelopes_free(m, n);
    n = s_read(fx, "_dlq.routes", m, 64);
    size_t found = 0;
    char off[24];
    snprintf(off, sizeof off, "%llu", (unsigned long long) bad);
    for (size_t i = 0; i < n; i++) {
        const char *route = s_header(m[i], "sluice-route");
        if (route && strcmp(route, "mapped") == 0
            && strcmp(s_header(m[i], "sluice-source-offset"), off) == 0) {
            found++;
            assert_non_null(s_header(m[i], "sluice-error"));
        }
    }
    assert_int_equal(found, 1);
    h_envelopes_free(m, n);
    Sluice__MappingRemove mr = SLUICE__MAPPING_REMOVE__INIT;
    Sluice__Frame g = SLUICE__FRAME__INIT;
    mr.name = "rt-map";
    g.body_case = SLUICE__FRAME__BODY_MAPPING_REMOVE;
    g.mapping_remove = &mr;
    Sluice__Frame *r = s_request(fx, &g);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 409);
    assert_non_null(strstr(r->error->text, "mapping rt-map is used by route mapped of the "
                                           "live routing table"));
    slc_frame_free(&r);
}

/* Fan-out with continue; a route after a fired one without continue
 * does not fire; drop; the dlq action. */
static void test_fanout_drop_dlq(void **state)
{
    s_fx_t *fx = *state;
    uint32_t v = s_apply(fx,
        "routes:\n"
        "  - name: tests-away\n"
        "    match: { topic: \"rt.f.in\", where: \"$.test == true\" }\n"
        "    action: drop\n"
        "  - name: no-id\n"
        "    match: { topic: \"rt.f.in\", where: \"$.id == null\" }\n"
        "    action: dlq\n"
        "    reason: \"order without id\"\n"
        "  - name: fan-x\n"
        "    match: { topic: \"rt.f.in\" }\n"
        "    to: [rt.f.x, rt.f.x2]\n"
        "    continue: true\n"
        "  - name: fan-y\n"
        "    match: { topic: \"rt.f.in\" }\n"
        "    to: rt.f.y\n"
        "  - name: never\n"
        "    match: { topic: \"rt.*.in\", where: \"$.id != null\" }\n"
        "    to: rt.f.z\n");
    s_pub(fx, "rt.f.in", "{\"id\":\"a\",\"test\":false}", NULL, 0, NULL);
    s_pub(fx, "rt.f.in", "{\"id\":\"b\",\"test\":true}", NULL, 0, NULL);
    uint64_t bad = s_pub(fx, "rt.f.in", "{\"test\":false}", NULL, 0, NULL);

    Sluice__Envelope *m[16];
    size_t n = s_read(fx, "rt.f.x", m, 16);
    assert_int_equal(n, 1);
    assert_true(s_payload_is(m[0], "{\"id\":\"a\",\"test\":false}"));
    h_envelopes_free(m, n);
    assert_int_equal((n = s_read(fx, "rt.f.x2", m, 16)), 1);
    h_envelopes_free(m, n);
    assert_int_equal((n = s_read(fx, "rt.f.y", m, 16)), 1);
    assert_string_equal(m[0]->lineage->route, "fan-y");
    h_envelopes_free(m, n);
    assert_int_equal(s_read(fx, "rt.f.z", m, 16), 0);

    n = s_read(fx, "_dlq.routes", m, 16);
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        const char *route = s_header(m[i], "sluice-route");
        if (!route || strcmp(route, "no-id") != 0)
            continue;
        found++;
        assert_string_equal(s_header(m[i], "sluice-reason"), "order without id");
        assert_string_equal(s_header(m[i], "sluice-source-topic"), "rt.f.in");
        char off[24], ver[16];
        snprintf(off, sizeof off, "%llu", (unsigned long long) bad);
        snprintf(ver, sizeof ver, "%u", v);
        assert_string_equal(s_header(m[i], "sluice-source-offset"), off);
        assert_string_equal(s_header(m[i], "sluice-table-version"), ver);
        assert_true(s_payload_is(m[i], "{\"test\":false}"));
    }
    assert_int_equal(found, 1);
    h_envelopes_free(m, n);
}

/* A predicate that fails (a payload that is not JSON): the original is
 * confirmed and stored, the leg is on _dlq.routes with the error, and an
 * advisory is on _advisory.routes. */
static void test_failure_dlq(void **state)
{
    s_fx_t *fx = *state;
    s_apply(fx, "routes:\n"
                "  - name: needs-json\n"
                "    match: { topic: \"rt.e.in\", where: \"$.n > 1\" }\n"
                "    to: rt.e.out\n");
    uint64_t off = s_pub(fx, "rt.e.in", "this is not json", NULL, 0, NULL);
    Sluice__Envelope *m[64];
    size_t n = s_read(fx, "rt.e.in", m, 64);
    assert_int_equal(n, 1);
    h_envelopes_free(m, n);
    assert_int_equal(s_read(fx, "rt.e.out", m, 64), 0);
    n = s_read(fx, "_dlq.routes", m, 64);
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        const char *route = s_header(m[i], "sluice-route");
        if (!route || strcmp(route, "needs-json") != 0)
            continue;
        found++;
        const char *error = s_header(m[i], "sluice-error");
        assert_non_null(error);
        assert_true(strlen(error) > 0);
        assert_null(strstr(error, "needs-json"));  /* the route is in sluice-route */
        assert_true(s_payload_is(m[i], "this is not json"));
    }
    assert_int_equal(found, 1);
    h_envelopes_free(m, n);
    n = s_read(fx, "_advisory.routes", m, 64);
    found = 0;
    char want[64];
    snprintf(want, sizeof want, "\"offset\":%llu", (unsigned long long) off);
    for (size_t i = 0; i < n; i++) {
        char *text = strndup((const char *) m[i]->payload.data, m[i]->payload.len);
        if (strstr(text, "needs-json") && strstr(text, want))
            found++;
        free(text);
    }
    assert_int_equal(found, 1);
    h_envelopes_free(m, n);
}

/* Derived messages are routed in turn; past 8 hops the leg goes to
 * _dlq.routes. */
static void test_chain_and_hops(void **state)
{
    s_fx_t *fx = *state;
    char yaml[4096];
    size_t k = (size_t) snprintf(yaml, sizeof yaml, "routes:\n");
    for (int i = 0; i < 10; i++)
        k += (size_t) snprintf(yaml + k, sizeof yaml - k,
                               "  - name: hop%d\n    match: { topic: \"rt.h.t%d\" }\n"
                               "    to: rt.h.t%d\n", i, i, i + 1);
    s_apply(fx, yaml);
    s_pub(fx, "rt.h.t0", "{}", NULL, 0, NULL);
    Sluice__Envelope *m[64];
    size_t n = s_read(fx, "rt.h.t8", m, 64);
    assert_int_equal(n, 1);
    assert_int_equal(m[0]->lineage->n_path, 9);
    assert_string_equal(m[0]->lineage->path[0], "rt.h.t0");
    assert_string_equal(m[0]->lineage->source_topic, "rt.h.t7");
    h_envelopes_free(m, n);
    assert_int_equal(s_read(fx, "rt.h.t9", m, 64), 0);
    n = s_read(fx, "_dlq.routes", m, 64);
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        const char *route = s_header(m[i], "sluice-route");
        if (route && strcmp(route, "hop8") == 0) {
            found++;
            assert_non_null(strstr(s_header(m[i], "sluice-error"), "hops"));
        }
    }
    assert_int_equal(found, 1);
    h_envelopes_free(m, n);
    /* A static cycle is refused at apply. */
    Sluice__Frame *r = s_apply_r(fx, "routes:\n"
                                     "  - name: ab\n    match: { topic: \"rt.c.a\" }\n"
                                     "    to: rt.c.b\n"
                                     "  - name: ba\n    match: { topic: \"rt.c.b\" }\n"
                                     "    to: rt.c.a\n", 0, false);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 422);
    assert_non_null(strstr(r->error->text, "cycle"));
    slc_frame_free(&r);
}

/* Publish, apply v2, publish: each derived message names the version that
 * routed it. Rollback makes a new version with the old table;
 * expect_version guards both; a wrong table is refused with every error;
 * a dry run writes nothing. */
static void test_versions(void **state)
{
    s_fx_t *fx = *state;
    static const char va[] = "routes:\n  - name: va\n    match: { topic: \"rt.v.in\" }\n"
                             "    to: rt.v.out\n";
    static const char vb[] = "routes:\n  - name: vb\n    match: { topic: \"rt.v.in\" }\n"
                             "    to: rt.v.out\n";
    uint32_t v1 = s_apply(fx, va);
    s_pub(fx, "rt.v.in", "{\"m\":1}", NULL, 0, NULL);
    uint32_t v2 = s_apply(fx, vb);
    assert_int_equal(v2, v1 + 1);
    s_pub(fx, "rt.v.in", "{\"m\":2}", NULL, 0, NULL);
    Sluice__Envelope *m[8];
    size_t n = s_read(fx, "rt.v.out", m, 8);
    assert_int_equal(n, 2);
    assert_true(s_payload_is(m[0], "{\"m\":1}"));
    assert_int_equal(m[0]->lineage->table_version, v1);
    assert_string_equal(m[0]->lineage->route, "va");
    assert_true(s_payload_is(m[1], "{\"m\":2}"));
    assert_int_equal(m[1]->lineage->table_version, v2);
    assert_string_equal(m[1]->lineage->route, "vb");
    h_envelopes_free(m, n);

    /* expect_version: refused when someone applied in between. */
    Sluice__Frame *r = s_apply_r(fx, va, v1, false);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 409);
    slc_frame_free(&r);
    r = s_rollback(fx, v1, v1);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 409);
    slc_frame_free(&r);
    assert_int_equal(s_live(fx), v2);

    /* Rollback to v1: v3 holds v1's table. */
    r = s_rollback(fx, v1, v2);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ROUTES_APPLY_REPLY);
    uint32_t v3 = r->routes_apply_reply->version;
    assert_int_equal(v3, v2 + 1);
    assert_true(r->routes_apply_reply->changed);
    assert_non_null(strstr(r->routes_apply_reply->diff, "va"));
    slc_frame_free(&r);
    r = s_get(fx, 0);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ROUTES_INFO);
    assert_int_equal(r->routes_info->version, v3);
    assert_int_equal(r->routes_info->rollback_of, v1);
    assert_string_equal(r->routes_info->yaml, va);
    slc_frame_free(&r);
    s_pub(fx, "rt.v.in", "{\"m\":3}", NULL, 0, NULL);
    n = s_read(fx, "rt.v.out", m, 8);
    assert_int_equal(n, 3);
    assert_string_equal(m[2]->lineage->route, "va");
    assert_int_equal(m[2]->lineage->table_version, v3);
    h_envelopes_free(m, n);

    /* A dry run: the diff, nothing written. */
    r = s_apply_r(fx, vb, 0, true);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ROUTES_APPLY_REPLY);
    assert_int_equal(r->routes_apply_reply->version, v3);
    assert_non_null(strstr(r->routes_apply_reply->diff, "vb"));
    slc_frame_free(&r);
    assert_int_equal(s_live(fx), v3);

    /* A table with two errors: refused, both listed, nothing written. */
    r = s_apply_r(fx, "routes:\n"
                      "  - name: \"bad name!\"\n    match: { topic: \"rt.v.in\" }\n"
                      "    to: rt.v.out\n"
                      "  - name: ok\n    match: { topic: \"rt..v\" }\n    to: rt.v.out\n",
                  0, false);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 422);
    assert_non_null(strstr(r->error->text, "routing table refused"));
    assert_non_null(strstr(r->error->text, "bad name!"));
    assert_non_null(strstr(r->error->text, "rt..v"));
    slc_frame_free(&r);
    assert_int_equal(s_live(fx), v3);
    r = s_get(fx, v3 + 50);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(r->error->code, 404);
    slc_frame_free(&r);
}

/* The counters in StatsReply.routing. */
static void test_stats(void **state)
{
    s_fx_t *fx = *state;
    uint32_t v = s_apply(fx, "routes:\n"
                             "  - name: counted\n"
                             "    match: { topic: \"rt.s.in\", where: \"$.keep == true\" }\n"
                             "    to: [rt.s.a, rt.s.b]\n");
    s_pub(fx, "rt.s.in", "{\"keep\":true}", NULL, 0, NULL);
    s_pub(fx, "rt.s.in", "{\"keep\":true}", NULL, 0, NULL);
    s_pub(fx, "rt.s.in", "{\"keep\":false}", NULL, 0, NULL);
    s_pub(fx, "rt.s.elsewhere", "{}", NULL, 0, NULL);
    Sluice__StatsRequest sr = SLUICE__STATS_REQUEST__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    sr.counters = true;
    f.body_case = SLUICE__FRAME__BODY_STATS;
    f.stats = &sr;
    Sluice__Frame *r = s_request(fx, &f);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_STATS_REPLY);
    const Sluice__RoutingStats *rs = r->stats_reply->routing;
    assert_non_null(rs);
    assert_int_equal(rs->version, v);
    assert_true(rs->applied_us > 0);
    assert_true(rs->unrouted >= 2);
    assert_int_equal(rs->n_routes, 1);
    assert_string_equal(rs->routes[0]->name, "counted");
    assert_int_equal(rs->routes[0]->matched, 2);
    assert_int_equal(rs->routes[0]->delivered, 4);
    assert_int_equal(rs->routes[0]->errors, 0);
    slc_frame_free(&r);
}

/* A restart keeps the versions and the live table routes again. */
static void test_restart(void **state)
{
    s_fx_t *fx = *state;
    uint32_t v = s_apply(fx, "routes:\n  - name: after\n    match: { topic: \"rt.r.in\" }\n"
                             "    to: rt.r.out\n");
    h_raw_close(&fx->raw);
    assert_int_equal(h_broker_stop(&fx->b, SIGTERM), 0);
    assert_int_equal(h_broker_start(&fx->b), 0);
    assert_int_equal(s_connect(fx), 0);
    assert_int_equal(s_live(fx), v);
    s_pub(fx, "rt.r.in", "{}", NULL, 0, NULL);
    Sluice__Envelope *m[4];
    size_t n = s_read(fx, "rt.r.out", m, 4);
    assert_int_equal(n, 1);
    assert_int_equal(m[0]->lineage->table_version, v);
    h_envelopes_free(m, n);
    /* Killed: what was committed is there, the table too. */
    h_raw_close(&fx->raw);
    h_broker_stop(&fx->b, SIGKILL);
    assert_int_equal(h_broker_start(&fx->b), 0);
    assert_int_equal(s_connect(fx), 0);
    assert_int_equal(s_live(fx), v);
    n = s_read(fx, "rt.r.out", m, 4);
    assert_int_equal(n, 1);
    h_envelopes_free(m, n);
}

/* Kill -9 while batches are being routed: after the restart every stored
 * original has its derived copy and every copy its original. */
static void test_kill_atomic(void **state)
{
    s_fx_t *fx = *state;
    s_apply(fx, "routes:\n  - name: k\n    match: { topic: \"rt.k.in\" }\n"
                "    to: rt.k.out\n");
    enum { BATCHES = 30, PER = 30 };
    Sluice__Envelope env[PER], *envp[PER];
    for (int i = 0; i < PER; i++) {
        sluice__envelope__init(&env[i]);
        env[i].topic = "rt.k.in";
        env[i].payload.data = (uint8_t *) "{\"k\":1}";
        env[i].payload.len = 7;
        envp[i] = &env[i];
    }
    Sluice__PublishBatch batch = SLUICE__PUBLISH_BATCH__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    batch.msgs = envp;
    batch.n_msgs = PER;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH_BATCH;
    f.publish_batch = &batch;
    for (int b = 0; b < BATCHES; b++) {
        f.corr = ++fx->corr;
        assert_int_equal(h_raw_send(&fx->raw, &f), 0);
    }
    /* The first batch committed: kill while the others are under way. */
    Sluice__Frame *ack = h_raw_expect(&fx->raw, SLUICE__FRAME__BODY_PUBLISH_ACK, 5000);
    assert_non_null(ack);
    slc_frame_free(&ack);
    h_broker_stop(&fx->b, SIGKILL);
    h_raw_close(&fx->raw);
    assert_int_equal(h_broker_start(&fx->b), 0);
    assert_int_equal(s_connect(fx), 0);
    enum { MAX = BATCHES * PER + 10 };
    Sluice__Envelope **in = calloc(MAX, sizeof *in), **out = calloc(MAX, sizeof *out);
    assert_true(in && out);
    size_t nin = s_read(fx, "rt.k.in", in, MAX), nout = s_read(fx, "rt.k.out", out, MAX);
    print_message("%zu of %d originals committed before the kill\n", nin, BATCHES * PER);
    assert_true(nin >= PER);
    assert_int_equal(nin, nout);
    for (size_t i = 0; i < nout; i++)
        assert_int_equal(out[i]->lineage->source_offset, out[0]->lineage->source_offset + i);
    h_envelopes_free(in, nin);
    h_envelopes_free(out, nout);
    free(in);
    free(out);
}

/* Apply and rollback are in the audit trail with the versions and the
 * diff. */
static void test_audit(void **state)
{
    s_fx_t *fx = *state;
    Sluice__Envelope *m[256];
    size_t n = s_read(fx, "_audit", m, 256), apply = 0, rollback = 0;
    for (size_t i = 0; i < n; i++) {
        char *text = strndup((const char *) m[i]->payload.data, m[i]->payload.len);
        if (strstr(text, "\"routes.apply\"") && strstr(text, "diff") && strstr(text, " -> "))
            apply++;
        if (strstr(text, "\"routes.rollback\"") && strstr(text, "\"ok\""))
            rollback++;
        free(text);
    }
    assert_true(apply >= 5);
    assert_true(rollback >= 1);
    h_envelopes_free(m, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deliver_lineage),
        cmocka_unit_test(test_mapping_route),
        cmocka_unit_test(test_fanout_drop_dlq),
        cmocka_unit_test(test_failure_dlq),
        cmocka_unit_test(test_chain_and_hops),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_kill_atomic),
        cmocka_unit_test(test_audit),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
