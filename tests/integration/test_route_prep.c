/*  test_route_prep - the checks and routing sld_route_prep does ahead of
 *  the write transaction (broker/route_prep_threads, docs/architecture.md
 *  "Threads") change nothing a user can see: two real brokers, one with
 *  route_prep_threads=1 and one with 0, get the same batches (valid,
 *  schema-invalid kept in the schema dead-letter topic, drops, dlq
 *  actions, mapped outputs their schema refuses, fan-out, a chain, $meta
 *  predicates, payloads that are not JSON, duplicates by msg-id and by
 *  producer sequence) and must answer, store, trace and count the same
 *  bytes; the prepared broker says in `routing.prepared` that it used its
 *  results. And routes applies and schema bindings sent between batches,
 *  with no wait, route and check every message wholly by one version.  */
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

/* A text that grows (the digest of what a broker did). */
typedef struct {
    char *s;
    size_t n, cap;
} s_buf_t;

static void s_putf(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_putf(s_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(k >= 0);
    if (b->n + (size_t) k + 1 > b->cap) {
        b->cap = (b->n + (size_t) k + 1) * 2;
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t) k;
}

static void s_start(s_fx_t *fx, const char *threads)
{
    char set[64];
    snprintf(set, sizeof set, "--set=broker/route_prep_threads=%s", threads);
    const char *extra[] = { set, NULL };
    h_broker_init(&fx->b, extra);
    assert_int_equal(h_broker_start(&fx->b), 0);
    assert_int_equal(h_raw_open(&fx->raw, fx->b.endpoint), 0);
    assert_int_equal(h_raw_hello(&fx->raw), 0);
    fx->corr = 1000;
}

static void s_stop(s_fx_t *fx)
{
    h_raw_close(&fx->raw);
    h_broker_destroy(&fx->b);
}

static Sluice__Frame *s_request(s_fx_t *fx, Sluice__Frame *f)
{
    Sluice__Frame *r = h_raw_request(&fx->raw, &fx->corr, f);
    if (!r)
        fail_msg("no reply to %s", slc_frame_name(f));
    return r;
}

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

static void s_bind_frame(Sluice__Frame *f, Sluice__TopicSet *ts, const char *topic,
                         const char *subject, const char *invalid)
{
    sluice__topic_set__init(ts);
    ts->topic = (char *) topic;
    ts->subject = (char *) subject;
    ts->invalid = (char *) invalid;
    sluice__frame__init(f);
    f->body_case = SLUICE__FRAME__BODY_TOPIC_SET;
    f->topic_set = ts;
}

static void s_mapping(s_fx_t *fx, const char *yaml)
{
    Sluice__MappingAdd ma = SLUICE__MAPPING_ADD__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    ma.yaml = (char *) yaml;
    f.body_case = SLUICE__FRAME__BODY_MAPPING_ADD;
    f.mapping_add = &ma;
    s_admin_ok(fx, &f);
}

static void s_apply_frame(Sluice__Frame *f, Sluice__RoutesApply *ra, const char *yaml)
{
    sluice__routes_apply__init(ra);
    ra->yaml = (char *) yaml;
    sluice__frame__init(f);
    f->body_case = SLUICE__FRAME__BODY_ROUTES_APPLY;
    f->routes_apply = ra;
}

static void s_apply(s_fx_t *fx, const char *yaml)
{
    Sluice__RoutesApply ra;
    Sluice__Frame f;
    s_apply_frame(&f, &ra, yaml);
    s_admin_ok(fx, &f);
}

/* ------------------------------------------------------------ batches */

/* One message of a batch being built: owns its strings. */
typedef struct {
    Sluice__Envelope e;
    Sluice__Header h[2], *hp[2];
    char topic[64], payload[128], hv[2][32];
} s_msg_t;

static uint8_t s_producer[SLC_PRODUCER_ID_LEN] = { 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8, 1, 1, 1, 1 };

static void s_msg(s_msg_t *m, const char *topic, const char *payload, uint64_t seq,
                  const char *hkey, const char *hval)
{
    memset(m, 0, sizeof *m);
    sluice__envelope__init(&m->e);
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    snprintf(m->payload, sizeof m->payload, "%s", payload);
    m->e.topic = m->topic;
    m->e.payload.data = (uint8_t *) m->payload;
    m->e.payload.len = strlen(m->payload);
    sluice__header__init(&m->h[0]);
    m->h[0].key = "x-test";
    m->h[0].value = "kept";
    m->hp[0] = &m->h[0];
    m->e.headers = m->hp;
    m->e.n_headers = 1;
    if (hkey) {
        sluice__header__init(&m->h[1]);
        snprintf(m->hv[0], sizeof m->hv[0], "%s", hkey);
        snprintf(m->hv[1], sizeof m->hv[1], "%s", hval);
        m->h[1].key = m->hv[0];
        m->h[1].value = m->hv[1];
        m->hp[1] = &m->h[1];
        m->e.n_headers = 2;
    }
    if (seq) {
        m->e.producer_id.data = s_producer;
        m->e.producer_id.len = SLC_PRODUCER_ID_LEN;
        m->e.seq = seq;
    }
}

#define S_BATCH 40

/* Message I of the mixed workload's batch B (its sequence SEQ). */
static void s_mixed(s_msg_t *m, int b, int i, uint64_t seq)
{
    char p[128], id[32];
    int k = b * S_BATCH + i;
    switch (i % 10) {
    case 0:     /* a test order: dropped */
        snprintf(p, sizeof p, "{\"id\":\"T%d\",\"total\":5,\"test\":true}", k);
        s_msg(m, "pp.orders", p, seq, NULL, NULL);
        break;
    case 1:     /* invalid against pp.src: refused, kept in _dlq.schema.pp.orders */
        snprintf(p, sizeof p, "{\"id\":\"bad%d\",\"total\":1}", k);
        s_msg(m, "pp.orders", p, seq, NULL, NULL);
        break;
    case 2:     /* too big: the dlq action */
        snprintf(p, sizeof p, "{\"id\":\"B%d\",\"total\":5000}", k);
        s_msg(m, "pp.orders", p, seq, NULL, NULL);
        break;
    case 3:     /* mapped output invalid against pp.dst: a failed leg; audited */
        snprintf(p, sizeof p, "{\"id\":\"N%d\",\"total\":-3}", k);
        s_msg(m, "pp.orders", p, seq, NULL, NULL);
        break;
    case 4:
    case 5:     /* the same msg-id twice: the second is a duplicate */
        snprintf(id, sizeof id, "dup-%d-%d", b, i / 10);
        snprintf(p, sizeof p, "{\"id\":\"D%d\",\"total\":%d.25}", k, i);
        s_msg(m, "pp.orders", p, seq, "msg-id", id);
        break;
    case 6:     /* a predicate on $meta: routed inline */
        snprintf(p, sizeof p, "{\"k\":%d}", k);
        s_msg(m, "pp.meta", p, seq, "kind", (k / 10) % 2 ? "x" : "y");
        break;
    case 7:     /* not JSON: the predicate fails, inline */
        snprintf(p, sizeof p, "not json %d", k);
        s_msg(m, "pp.raw", p, seq, NULL, NULL);
        break;
    case 8:
        snprintf(p, sizeof p, "{\"a\":%d}", k % 3 ? 1 : 2);
        s_msg(m, "pp.raw", p, seq, NULL, NULL);
        break;
    default:    /* mapped, audited twice, chained */
        snprintf(p, sizeof p, "{\"id\":\"A%d\",\"total\":%d.5,\"note\":\"\\u00e9\\t\"}", k, k);
        s_msg(m, "pp.orders", p, seq, NULL, NULL);
        break;
    }
}

/* Send N messages as one PublishBatch without waiting; the corr used. */
static uint64_t s_send_batch(s_fx_t *fx, s_msg_t *msgs, size_t n)
{
    Sluice__Envelope *ep[S_BATCH * 2];
    Sluice__PublishBatch pb = SLUICE__PUBLISH_BATCH__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    assert_true(n <= S_BATCH * 2);
    for (size_t i = 0; i < n; i++)
        ep[i] = &msgs[i].e;
    pb.msgs = ep;
    pb.n_msgs = n;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH_BATCH;
    f.publish_batch = &pb;
    f.corr = ++fx->corr;
    assert_int_equal(h_raw_send(&fx->raw, &f), 0);
    return f.corr;
}

/* The reply with CORR (other frames are dropped). */
static Sluice__Frame *s_reply(s_fx_t *fx, uint64_t corr)
{
    for (;;) {
        Sluice__Frame *r = h_raw_recv(&fx->raw, 10000);
        if (!r)
            fail_msg("no reply with corr %llu", (unsigned long long) corr);
        if (r->corr == corr)
            return r;
        slc_frame_free(&r);
    }
}

/* The confirms of a PublishAck into OUT. */
static void s_confirms(s_buf_t *out, const Sluice__Frame *r)
{
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_PUBLISH_ACK);
    for (size_t i = 0; i < r->publish_ack->n_confirms; i++) {
        const Sluice__Confirm *c = r->publish_ack->confirms[i];
        s_putf(out, "confirm %u seq %llu: code %d dup %d offset %llu text %s\n", c->index,
               (unsigned long long) c->seq, c->code, c->duplicate,
               (unsigned long long) c->offset, c->text ? c->text : "");
    }
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

/* A stored message, everything but its ingest time. */
static void s_env(s_buf_t *out, const Sluice__Envelope *e)
{
    s_putf(out, "  %s seq %llu ct %s source %s pid %zu payload %.*s\n", e->topic,
           (unsigned long long) e->seq, e->content_type ? e->content_type : "",
           e->source ? e->source : "", e->producer_id.len, (int) e->payload.len,
           (const char *) e->payload.data);
    for (size_t i = 0; i < e->n_headers; i++)
        s_putf(out, "    header %s=%s\n", e->headers[i]->key, e->headers[i]->value);
    const Sluice__Lineage *l = e->lineage;
    if (l) {
        s_putf(out, "    lineage %s@%llu route %s mapping %s v%u path", l->source_topic,
               (unsigned long long) l->source_offset, l->route, l->mapping,
               l->table_version);
        for (size_t i = 0; i < l->n_path; i++)
            s_putf(out, " %s", l->path[i]);
        s_putf(out, "\n");
    }
}

/* The trace of TOPIC@OFFSET, everything but the times. */
static void s_trace_text(s_buf_t *out, const Sluice__TraceReply *t, int depth)
{
    s_putf(out, "  trace %d %s@%llu routed %d v%u note %s\n", depth, t->topic,
           (unsigned long long) t->offset, t->routed, t->table_version,
           t->note ? t->note : "");
    for (size_t i = 0; i < t->n_steps; i++) {
        const Sluice__TraceStep *st = t->steps[i];
        s_putf(out, "    step %u %s %s %s v%u error %s\n", st->index, st->route, st->outcome,
               st->action, st->table_version, st->error);
        for (size_t k = 0; k < st->n_legs; k++)
            s_putf(out, "      -> %s@%llu\n", st->legs[k]->topic,
                   (unsigned long long) st->legs[k]->offset);
    }
    if (t->source)
        s_trace_text(out, t->source, depth + 1);
}

static void s_trace(s_fx_t *fx, s_buf_t *out, const char *topic, uint64_t offset)
{
    Sluice__Trace tr = SLUICE__TRACE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    tr.topic = (char *) topic;
    tr.offset = offset;
    f.body_case = SLUICE__FRAME__BODY_TRACE;
    f.trace = &tr;
    Sluice__Frame *r = s_request(fx, &f);
    if (r->body_case == SLUICE__FRAME__BODY_ERROR)
        s_putf(out, "  trace %s@%llu: error %d %s\n", topic, (unsigned long long) offset,
               r->error->code, r->error->text);
    else {
        assert_int_equal(r->body_case, SLUICE__FRAME__BODY_TRACE_REPLY);
        s_trace_text(out, r->trace_reply, 0);
    }
    slc_frame_free(&r);
}

/* Every message of TOPIC with its trace. */
static void s_topic(s_fx_t *fx, s_buf_t *out, const char *topic)
{
    enum { MAX = 2000 };
    Sluice__Envelope **m = calloc(MAX, sizeof *m);
    assert_non_null(m);
    size_t n = s_read(fx, topic, m, MAX);
    s_putf(out, "topic %s: %zu messages\n", topic, n);
    for (size_t i = 0; i < n; i++) {
        s_env(out, m[i]);
        s_trace(fx, out, topic, i);
    }
    h_envelopes_free(m, n);
    free(m);
}

static Sluice__Frame *s_stats(s_fx_t *fx)
{
    Sluice__StatsRequest sr = SLUICE__STATS_REQUEST__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    sr.counters = true;
    f.body_case = SLUICE__FRAME__BODY_STATS;
    f.stats = &sr;
    Sluice__Frame *r = s_request(fx, &f);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_STATS_REPLY);
    return r;
}

static uint64_t s_counter(const Sluice__Frame *r, const char *name)
{
    for (size_t i = 0; i < r->stats_reply->n_counters; i++)
        if (strcmp(r->stats_reply->counters[i]->name, name) == 0)
            return r->stats_reply->counters[i]->value;
    fail_msg("no counter %s", name);
    return 0;
}

/* Routing stats and the publish counters. */
static void s_counters(s_fx_t *fx, s_buf_t *out)
{
    static const char *const names[] = {
        "publish.stored", "publish.duplicates", "publish.nacked", "publish.schema_invalid",
    };
    Sluice__Frame *r = s_stats(fx);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        s_putf(out, "counter %s %llu\n", names[i],
               (unsigned long long) s_counter(r, names[i]));
    const Sluice__RoutingStats *rs = r->stats_reply->routing;
    assert_non_null(rs);
    s_putf(out, "routing v%u unrouted %llu\n", rs->version, (unsigned long long) rs->unrouted);
    for (size_t i = 0; i < rs->n_routes; i++)
        s_putf(out, "route %s matched %llu delivered %llu dropped %llu dlq %llu errors %llu\n",
               rs->routes[i]->name, (unsigned long long) rs->routes[i]->matched,
               (unsigned long long) rs->routes[i]->delivered,
               (unsigned long long) rs->routes[i]->dropped,
               (unsigned long long) rs->routes[i]->dead_lettered,
               (unsigned long long) rs->routes[i]->errors);
    slc_frame_free(&r);
}

/* ------------------------------------------------------- mixed workload */

static const char s_table[] =
    "routes:\n"
    "  - name: drop-tests\n"
    "    match: { topic: \"pp.orders\", where: \"$.test == true\" }\n"
    "    action: drop\n"
    "  - name: too-big\n"
    "    match: { topic: \"pp.orders\", where: \"$.total > 1000\" }\n"
    "    action: dlq\n"
    "    reason: \"order too big\"\n"
    "  - name: canon\n"
    "    match: { topic: \"pp.orders\" }\n"
    "    map: pp-map\n"
    "    to: pp.canon\n"
    "    continue: true\n"
    "  - name: audit\n"
    "    match: { topic: \"pp.orders\" }\n"
    "    to: [pp.audit, pp.audit2]\n"
    "  - name: hop2\n"
    "    match: { topic: \"pp.canon\" }\n"
    "    to: pp.canon.copy\n"
    "  - name: by-kind\n"
    "    match: { topic: \"pp.meta\", where: '$meta.headers.kind == \"x\"' }\n"
    "    to: pp.meta.out\n"
    "  - name: raw\n"
    "    match: { topic: \"pp.raw\", where: \"$.a == 1\" }\n"
    "    to: pp.raw.out\n";

/* Set up FX for the mixed workload, run it, and write everything a user
 * can see of it into OUT. */
static void s_mixed_run(s_fx_t *fx, s_buf_t *out)
{
    s_register(fx, "pp.src", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\","
                             "\"pattern\":\"^[A-Z][0-9]+$\"},\"total\":{\"type\":\"number\"},"
                             "\"test\":{\"type\":\"boolean\"}},\"required\":[\"id\"]}");
    s_register(fx, "pp.dst", "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                             "\"amount\":{\"type\":\"number\",\"minimum\":0}},"
                             "\"required\":[\"id\"]}");
    Sluice__TopicSet ts;
    Sluice__Frame f;
    s_bind_frame(&f, &ts, "pp.orders", "pp.src", "dlq");
    s_admin_ok(fx, &f);
    s_mapping(fx, "name: pp-map\nfrom: pp.src@1\nto: pp.dst@1\nmap:\n  id: $.id\n"
                  "  amount: $.total\n");
    s_apply(fx, s_table);
    s_msg_t *msgs = calloc(S_BATCH, sizeof *msgs);
    assert_non_null(msgs);
    uint64_t seq = 0;
    for (int b = 0; b < 6; b++) {
        /* Batch 4 resends batch 1 (same sequences): all duplicates. */
        uint64_t first = b == 4 ? 1 + S_BATCH : seq + 1;
        int as = b == 4 ? 1 : b;
        for (int i = 0; i < S_BATCH; i++)
            s_mixed(&msgs[i], as, i, first + (uint64_t) i);
        if (b != 4)
            seq += S_BATCH;
        s_putf(out, "batch %d\n", b);
        Sluice__Frame *r = s_reply(fx, s_send_batch(fx, msgs, S_BATCH));
        s_confirms(out, r);
        slc_frame_free(&r);
    }
    /* A few alone: below the prep's threshold, inline on both. */
    for (int i = 0; i < 3; i++) {
        s_mixed(&msgs[0], 7, 9 - i, ++seq);
        Sluice__Frame *r = s_reply(fx, s_send_batch(fx, msgs, 1));
        s_confirms(out, r);
        slc_frame_free(&r);
    }
    free(msgs);
    static const char *const topics[] = {
        "pp.orders", "pp.canon", "pp.canon.copy", "pp.audit", "pp.audit2", "pp.meta",
        "pp.meta.out", "pp.raw", "pp.raw.out", "_dlq.routes", "_advisory.routes",
        "_dlq.schema.pp.orders",
    };
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        s_topic(fx, out, topics[i]);
    s_counters(fx, out);
}

/* The first line where A and B differ, for the failure message. */
static void s_first_diff(const char *a, const char *b)
{
    size_t line = 1;
    const char *la = a, *lb = b;
    while (*a && *a == *b) {
        if (*a == '\n') {
            line++;
            la = a + 1;
            lb = b + 1;
        }
        a++;
        b++;
    }
    fprintf(stderr, "line %zu differs:\n  prep on:  %.*s\n  prep off: %.*s\n", line,
            (int) strcspn(la, "\n"), la, (int) strcspn(lb, "\n"), lb);
}

/* The same workload with prep on and off: the same bytes everywhere, and
 * the prepared broker used its results for most originals. */
static void test_same_results(void **state)
{
    (void) state;
    s_fx_t on, off;
    s_buf_t a = { 0 }, b = { 0 };
    s_start(&on, "1");
    s_start(&off, "0");
    s_mixed_run(&on, &a);
    s_mixed_run(&off, &b);
    if (strcmp(a.s, b.s) != 0) {
        s_first_diff(a.s, b.s);
        fail_msg("prep on and off differ");
    }
    /* It is not a test of nothing: each kind of message is there. */
    assert_non_null(strstr(a.s, "route canon matched"));
    assert_non_null(strstr(a.s, "header sluice-reason=order too big"));
    assert_non_null(strstr(a.s, "its output is invalid: schema pp.dst@1: /amount"));
    assert_non_null(strstr(a.s, "header schema-error=schema pp.src@1: /id"));
    /* A failed leg's error says the route once: in sluice-route. */
    assert_non_null(strstr(a.s, "header sluice-error=where: the payload is not valid"));
    assert_null(strstr(a.s, "route 'raw'"));
    assert_non_null(strstr(a.s, "topic pp.meta.out: 10 messages"));
    assert_non_null(strstr(a.s, "dup 1"));
    assert_non_null(strstr(a.s, "path pp.orders pp.canon pp.canon.copy"));
    Sluice__Frame *r = s_stats(&on);
    uint64_t prepared = s_counter(r, "routing.prepared");
    uint64_t inline_ = s_counter(r, "routing.prep_fallback");
    slc_frame_free(&r);
    /* Per batch of 40: 4 duplicates, 4 schema-invalid (not routed), 4 $meta
     * and 4 not JSON routed inline; the rest (24) prepared. Batch 4 is all
     * duplicates. */
    assert_int_equal(prepared, 5 * 24);
    assert_int_equal(inline_, 5 * 8);
    r = s_stats(&off);
    assert_int_equal(s_counter(r, "routing.prepared"), 0);
    assert_int_equal(s_counter(r, "routing.prep_fallback"), 0);
    slc_frame_free(&r);
    free(a.s);
    free(b.s);
    s_stop(&on);
    s_stop(&off);
}

/* --------------------------------------------------- admin in between */

#define S_ROUNDS 6

static char s_tables[S_ROUNDS + 2][256];

static const char *s_table_v(int k)
{
    snprintf(s_tables[k], sizeof s_tables[k],
             "routes:\n"
             "  - name: copy-%d\n"
             "    match: { topic: \"iv.in\" }\n"
             "    to: iv.out\n"
             "    continue: true\n"
             "  - name: tag-%d\n"
             "    match: { topic: \"iv.in\" }\n"
             "    to: iv.v%d\n", k, k, k);
    return s_tables[k];
}

/* Batches, schema bindings and routes applies sent back to back without
 * waiting (rounds of: batch, bind, apply; at most 4 frames a turn), so
 * that they share turns in whatever way they arrive. Whatever the turns:
 * each original is routed wholly by one version (its copy on iv.out and
 * its tag on iv.vK both name version K, from routes copy-K and tag-K); a
 * batch (one frame, one turn) is routed by one version and checked by
 * one binding (its ok:false messages all refused, or none); and the
 * (version, binding) each batch saw is the state after some prefix of
 * the frames sent before it, prefixes never shrinking from one batch to
 * the next: as if every frame had been applied one at a time in order. */
static void test_admin_between(void **state)
{
    const char *threads = *state;
    s_fx_t fx;
    char set[64];
    snprintf(set, sizeof set, "--set=broker/route_prep_threads=%s", threads);
    const char *extra[] = { set, "--set=limits/commit_max_msgs=4", NULL };
    h_broker_init(&fx.b, extra);
    assert_int_equal(h_broker_start(&fx.b), 0);
    assert_int_equal(h_raw_open(&fx.raw, fx.b.endpoint), 0);
    assert_int_equal(h_raw_hello(&fx.raw), 0);
    fx.corr = 1000;
    s_register(&fx, "iv.any", "{\"type\":\"object\"}");
    s_register(&fx, "iv.strict", "{\"type\":\"object\",\"properties\":{\"ok\":{\"const\":true}},"
                                 "\"required\":[\"ok\"]}");
    s_apply(&fx, s_table_v(1));
    s_msg_t *msgs = calloc(S_BATCH, sizeof *msgs);
    assert_non_null(msgs);
    enum { NF = S_ROUNDS * 3 };
    uint64_t corrs[NF];
    int kinds[NF];              /* 0 batch, 1 bind (strict when ROUND is even), 2 apply */
    size_t nsent = 0;
    Sluice__RoutesApply ra[S_ROUNDS];
    Sluice__TopicSet ts[S_ROUNDS];
    int k = 0;
    for (int round = 0; round < S_ROUNDS; round++) {
        for (int i = 0; i < S_BATCH; i++, k++) {
            char p[64];
            snprintf(p, sizeof p, "{\"n\":%d,\"ok\":%s}", k, k % 2 ? "false" : "true");
            s_msg(&msgs[i], "iv.in", p, 0, NULL, NULL);
        }
        kinds[nsent] = 0;
        corrs[nsent++] = s_send_batch(&fx, msgs, S_BATCH);
        Sluice__Frame f;
        s_bind_frame(&f, &ts[round], "iv.in", round % 2 ? "iv.any" : "iv.strict", "reject");
        f.corr = ++fx.corr;
        assert_int_equal(h_raw_send(&fx.raw, &f), 0);
        kinds[nsent] = 1;
        corrs[nsent++] = f.corr;
        s_apply_frame(&f, &ra[round], s_table_v(round + 2));
        f.corr = ++fx.corr;
        assert_int_equal(h_raw_send(&fx.raw, &f), 0);
        kinds[nsent] = 2;
        corrs[nsent++] = f.corr;
    }
    free(msgs);
    /* The replies, in order: per batch, which messages were stored. */
    enum { NM = S_ROUNDS * S_BATCH };
    bool stored[NM];
    uint64_t offset_of[NM];
    size_t at = 0;
    for (size_t i = 0; i < nsent; i++) {
        Sluice__Frame *r = s_reply(&fx, corrs[i]);
        if (kinds[i] == 0) {
            assert_int_equal(r->body_case, SLUICE__FRAME__BODY_PUBLISH_ACK);
            for (size_t c = 0; c < r->publish_ack->n_confirms; c++, at++) {
                const Sluice__Confirm *cf = r->publish_ack->confirms[c];
                stored[at] = cf->code == 0;
                offset_of[at] = cf->offset;
                if (cf->code)
                    assert_non_null(strstr(cf->text, "schema iv.strict@1: /ok"));
            }
        }
        else if (r->body_case == SLUICE__FRAME__BODY_ERROR)
            fail_msg("admin frame refused: %s", r->error->text);
        slc_frame_free(&r);
    }
    assert_int_equal(at, NM);
    /* Each stored original: its copy and its tag, of one version. */
    enum { MAX = NM * 2 };
    Sluice__Envelope **out = calloc(MAX, sizeof *out);
    uint32_t *ver = calloc(MAX, sizeof *ver);
    int *seen = calloc(MAX, sizeof *seen);
    assert_true(out && ver && seen);
    size_t nout = s_read(&fx, "iv.out", out, MAX);
    for (size_t i = 0; i < nout; i++) {
        const Sluice__Lineage *l = out[i]->lineage;
        assert_non_null(l);
        char name[32];
        snprintf(name, sizeof name, "copy-%u", l->table_version);
        assert_string_equal(l->route, name);
        assert_true(l->source_offset < MAX);
        assert_int_equal(seen[l->source_offset]++, 0);
        ver[l->source_offset] = l->table_version;
    }
    h_envelopes_free(out, nout);
    size_t ntags = 0;
    for (int v = 1; v <= S_ROUNDS + 1; v++) {
        char topic[32];
        snprintf(topic, sizeof topic, "iv.v%d", v);
        size_t n = s_read(&fx, topic, out, MAX);
        for (size_t i = 0; i < n; i++) {
            const Sluice__Lineage *l = out[i]->lineage;
            char name[32];
            snprintf(name, sizeof name, "tag-%d", v);
            assert_string_equal(l->route, name);
            assert_int_equal(l->table_version, (uint32_t) v);
            assert_true(l->source_offset < MAX);
            assert_int_equal(seen[l->source_offset]++, 1);
            assert_int_equal(ver[l->source_offset], (uint32_t) v);
        }
        ntags += n;
        h_envelopes_free(out, n);
    }
    free(out);
    size_t nstored = 0;
    size_t prefix = 0;          /* frames committed before the last batch's turn */
    uint32_t vmax = 1;
    for (int j = 0; j < S_ROUNDS; j++) {
        /* What batch J saw. */
        uint32_t v = 0;
        int refused = 0, odd_stored = 0;
        for (int i = 0; i < S_BATCH; i++) {
            size_t m = (size_t) j * S_BATCH + (size_t) i;
            if (!stored[m]) {
                assert_true(i % 2 == 1);            /* only ok:false is refused */
                refused++;
                continue;
            }
            nstored++;
            odd_stored += i % 2;
            uint64_t o = offset_of[m];
            assert_true(o < MAX);
            assert_int_equal(seen[o], 2);
            if (!v)
                v = ver[o];
            assert_int_equal(ver[o], v);            /* one version for the batch */
        }
        assert_true(refused == 0 || odd_stored == 0);   /* one binding for the batch */
        bool strict = refused > 0;
        /* The smallest prefix, no shorter than the last batch's, of the
         * frames before this batch whose state is (V, STRICT). */
        size_t pos = (size_t) j * 3, L = prefix;
        bool found = false;
        for (; L <= pos && !found; L++) {
            uint32_t lv = 1;
            int bind = -1;
            for (size_t f = 0; f < L; f++) {
                if (kinds[f] == 2)
                    lv++;
                else if (kinds[f] == 1)
                    bind = (int) (f / 3);
            }
            found = lv == v && (bind >= 0 && bind % 2 == 0) == strict;
        }
        if (!found)
            fail_msg("batch %d saw version %u and a %s binding: no order of the frames "
                     "before it gives that", j, v, strict ? "strict" : "lax");
        prefix = L - 1;
        vmax = v > vmax ? v : vmax;
    }
    assert_int_equal(nout, nstored);
    assert_int_equal(ntags, nstored);
    assert_true(vmax > 1);                  /* the applies took effect on the way */
    free(ver);
    free(seen);
    Sluice__Frame *r = s_stats(&fx);
    if (strcmp(threads, "0") != 0)
        assert_true(s_counter(r, "routing.prepared") > 0);
    else
        assert_int_equal(s_counter(r, "routing.prepared"), 0);
    slc_frame_free(&r);
    s_stop(&fx);
}

int main(void)
{
    static const char *on = "1", *off = "0";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_results),
        cmocka_unit_test_prestate(test_admin_between, (void *) on),
        cmocka_unit_test_prestate(test_admin_between, (void *) off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
