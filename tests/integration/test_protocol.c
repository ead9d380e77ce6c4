/*  test_protocol - the wire contract of docs/protocol.md, driven frame by
 *  frame through the harness's raw DEALER client against a real sluiced:
 *  sessions, bad input, limits, topic names, idempotent publish, tokens,
 *  redelivery, nack, dead letters, resume, take-over, storage full, clean
 *  stop, wildcard discovery.
 *  Each test owns one broker (temp dir, loopback port) through its fixture;
 *  single thread. It does not test the SDK or the CLI (test_roundtrip).  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "harness.h"

/* Longest wait for a direct reply. Generous: replies follow an fsync, and
 * the disk is shared with other test runs. */
#define S_REPLY_MS 10000
#define S_MAX_CLIENTS 4
#define S_MAX_HELD 64

/* ------------------------------------------------------------ the client */

/* One delivered message, copied out of its Deliver frame. */
typedef struct {
    uint32_t sub_id, topic_id, attempt;
    uint64_t offset, token;
    char topic[SLC_TOPIC_MAX + 1];
    Sluice__Envelope *env;      /* owned by the queue until taken */
} s_dlv_t;

/* A raw connection plus what arrived before anyone asked for it: replies
 * wait in HELD, deliveries in the DLV queue, so no frame is lost while a
 * test waits for another one. */
typedef struct {
    h_raw_t raw;
    uint64_t next_corr;
    Sluice__Frame *held[S_MAX_HELD];
    size_t nheld;
    s_dlv_t *dlv;
    size_t ndlv, capdlv;
} s_client_t;

/* A test's broker and clients; the teardown releases whatever is left,
 * also when an assertion ended the test early. */
typedef struct {
    h_broker_t broker;
    bool inited;
    s_client_t *clients[S_MAX_CLIENTS];
} s_fx_t;

static int s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof(s_fx_t));
    *state = fx;
    return fx ? 0 : -1;
}

static void s_client_free(s_client_t *c)
{
    h_raw_close(&c->raw);
    for (size_t i = 0; i < c->nheld; i++)
        slc_frame_free(&c->held[i]);
    for (size_t i = 0; i < c->ndlv; i++)
        slc_envelope_free(&c->dlv[i].env);
    free(c->dlv);
    free(c);
}

static int s_teardown(void **state)
{
    s_fx_t *fx = *state;
    for (int i = 0; i < S_MAX_CLIENTS; i++)
        if (fx->clients[i])
            s_client_free(fx->clients[i]);
    if (fx->inited) {
        /* SLUICE_TEST_LOG=1 shows what the broker said, to debug a failure. */
        char cmd[400];
        snprintf(cmd, sizeof cmd, "tail -n 40 '%s' >&2", fx->broker.log);
        if (getenv("SLUICE_TEST_LOG") && system(cmd) != 0)
            fprintf(stderr, "(no broker log)\n");
        h_broker_destroy(&fx->broker);
    }
    free(fx);
    return 0;
}

static void s_broker_start(s_fx_t *fx, const char *const *extra)
{
    h_broker_init(&fx->broker, extra);
    fx->inited = true;
    assert_int_equal(h_broker_start(&fx->broker), 0);
}

/* Connect a new client; with HELLO it also opens a session. */
static s_client_t *s_connect(s_fx_t *fx, bool hello)
{
    int slot = 0;
    while (slot < S_MAX_CLIENTS && fx->clients[slot])
        slot++;
    assert_true(slot < S_MAX_CLIENTS);
    s_client_t *c = calloc(1, sizeof(s_client_t));
    assert_non_null(c);
    fx->clients[slot] = c;
    c->next_corr = 100;
    assert_int_equal(h_raw_open(&c->raw, fx->broker.endpoint), 0);
    if (hello)
        assert_int_equal(h_raw_hello(&c->raw), 0);
    return c;
}

static void s_disconnect(s_fx_t *fx, s_client_t **c_p)
{
    for (int i = 0; i < S_MAX_CLIENTS; i++)
        if (fx->clients[i] == *c_p)
            fx->clients[i] = NULL;
    s_client_free(*c_p);
    *c_p = NULL;
}

/* Close every client (before a broker stop: their sessions die with it). */
static void s_disconnect_all(s_fx_t *fx)
{
    for (int i = 0; i < S_MAX_CLIENTS; i++)
        if (fx->clients[i]) {
            s_client_free(fx->clients[i]);
            fx->clients[i] = NULL;
        }
}

static void s_send(s_client_t *c, Sluice__Frame *f)
{
    assert_int_equal(h_raw_send(&c->raw, f), 0);
}

/* Receive one frame within TIMEOUT_MS, heartbeats included, and file it:
 * deliveries into the queue, anything else into HELD. false on timeout. */
static bool s_pull(s_client_t *c, int timeout_ms)
{
    zmq_pollitem_t it = { c->raw.sock, 0, ZMQ_POLLIN, 0 };
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return false;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    assert_true(zmq_msg_recv(&msg, c->raw.sock, 0) >= 0);
    Sluice__Frame *f = NULL;
    int rc = slc_frame_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &f);
    zmq_msg_close(&msg);
    assert_int_equal(rc, 0);
    if (f->body_case == SLUICE__FRAME__BODY_DELIVER) {
        for (size_t i = 0; i < f->deliver->n_msgs; i++) {
            const Sluice__Delivery *d = f->deliver->msgs[i];
            if (c->ndlv == c->capdlv) {
                c->capdlv = c->capdlv ? 2 * c->capdlv : 64;
                c->dlv = realloc(c->dlv, c->capdlv * sizeof(s_dlv_t));
                assert_non_null(c->dlv);
            }
            s_dlv_t *q = &c->dlv[c->ndlv++];
            memset(q, 0, sizeof *q);
            q->sub_id = d->sub_id;
            q->topic_id = d->topic_id;
            q->attempt = d->attempt;
            q->offset = d->offset;
            q->token = d->token;
            snprintf(q->topic, sizeof q->topic, "%s", d->topic ? d->topic : "");
            assert_int_equal(slc_envelope_decode(d->envelope.data, d->envelope.len,
                                                 &q->env), 0);
        }
        slc_frame_free(&f);
    }
    else if (f->body_case == SLUICE__FRAME__BODY_HEARTBEAT && f->corr == 0)
        slc_frame_free(&f);
    else {
        assert_true(c->nheld < S_MAX_HELD);
        c->held[c->nheld++] = f;
    }
    return true;
}

static int s_left(uint64_t deadline)
{
    uint64_t now = slc_mono_ms();
    return now >= deadline ? 0 : (int) (deadline - now);
}

/* The next non-delivery frame with CORR (and body BODY unless 0), within
 * TIMEOUT_MS. Caller owns; NULL on timeout. */
static Sluice__Frame *s_wait(s_client_t *c, uint64_t corr, int body, int timeout_ms)
{
    uint64_t deadline = slc_mono_ms() + (uint64_t) timeout_ms;
    while (true) {
        for (size_t i = 0; i < c->nheld; i++) {
            Sluice__Frame *f = c->held[i];
            if (f->corr == corr && (body == 0 || (int) f->body_case == body)) {
                memmove(&c->held[i], &c->held[i + 1], (c->nheld - i - 1) * sizeof(f));
                c->nheld--;
                return f;
            }
        }
        int left = s_left(deadline);
        if (left == 0)
            return NULL;
        s_pull(c, left);
    }
}

/* The next delivery for SUB_ID (0 = any) within TIMEOUT_MS, into *OUT
 * (caller owns out->env). false on timeout. */
static bool s_next(s_client_t *c, uint32_t sub_id, int timeout_ms, s_dlv_t *out)
{
    uint64_t deadline = slc_mono_ms() + (uint64_t) timeout_ms;
    while (true) {
        for (size_t i = 0; i < c->ndlv; i++)
            if (sub_id == 0 || c->dlv[i].sub_id == sub_id) {
                *out = c->dlv[i];
                memmove(&c->dlv[i], &c->dlv[i + 1], (c->ndlv - i - 1) * sizeof(s_dlv_t));
                c->ndlv--;
                return true;
            }
        int left = s_left(deadline);
        if (left == 0)
            return false;
        s_pull(c, left);
    }
}

/* Send F with a fresh corr and wait for the direct reply (caller owns). */
static Sluice__Frame *s_request(s_client_t *c, Sluice__Frame *f)
{
    f->corr = c->next_corr++;
    s_send(c, f);
    Sluice__Frame *r = s_wait(c, f->corr, 0, S_REPLY_MS);
    if (!r)
        fail_msg("no reply to %s (corr %llu) within %d ms", slc_frame_name(f),
                 (unsigned long long) f->corr, S_REPLY_MS);
    return r;
}

/* Assert R is an Error with CODE; frees R. */
static void s_expect_error(Sluice__Frame *r, int code)
{
    assert_non_null(r);
    if (r->body_case != SLUICE__FRAME__BODY_ERROR)
        fail_msg("expected Error %d, got %s", code, slc_frame_name(r));
    assert_int_equal(r->error->code, code);
    assert_non_null(r->error->text);
    assert_true(strlen(r->error->text) > 0);
    slc_frame_free(&r);
}

/* ---------------------------------------------------------------- frames */

static Sluice__Frame *s_hello(s_client_t *c, uint32_t version, const uint8_t *producer)
{
    Sluice__Hello hello = SLUICE__HELLO__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    hello.version = version;
    hello.client = "test_protocol";
    if (producer) {
        hello.producer_id.data = (uint8_t *) producer;
        hello.producer_id.len = SLC_PRODUCER_ID_LEN;
    }
    f.body_case = SLUICE__FRAME__BODY_HELLO;
    f.hello = &hello;
    return s_request(c, &f);
}

/* A Heartbeat with corr is answered with a Heartbeat echoing it. */
static void s_expect_heartbeat(s_client_t *c)
{
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
    f.heartbeat = &hb;
    Sluice__Frame *r = s_request(c, &f);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_HEARTBEAT);
    slc_frame_free(&r);
}

/* One message to publish; unset fields stay empty. */
typedef struct {
    const char *topic;
    const void *payload;
    size_t len;
    const uint8_t *producer;    /* SLC_PRODUCER_ID_LEN bytes or NULL */
    uint64_t seq;
    const char *msg_id;         /* "msg-id" header or NULL */
    const char *source;         /* Envelope.source or NULL */
    uint64_t ingest_ts_us;      /* what the client claims; the broker overrides it */
} s_msg_t;

/* PublishBatch of N messages; returns the reply (PublishAck or Error). */
static Sluice__Frame *s_publish(s_client_t *c, const s_msg_t *msgs, size_t n)
{
    Sluice__Envelope *env = calloc(n + 1, sizeof(Sluice__Envelope));
    Sluice__Envelope **envp = calloc(n + 1, sizeof(Sluice__Envelope *));
    Sluice__Header *hdr = calloc(n + 1, sizeof(Sluice__Header));
    Sluice__Header **hdrp = calloc(n + 1, sizeof(Sluice__Header *));
    assert_true(env && envp && hdr && hdrp);
    for (size_t i = 0; i < n; i++) {
        sluice__envelope__init(&env[i]);
        env[i].topic = (char *) msgs[i].topic;
        env[i].payload.data = (uint8_t *) msgs[i].payload;
        env[i].payload.len = msgs[i].len;
        env[i].seq = msgs[i].seq;
        if (msgs[i].producer) {
            env[i].producer_id.data = (uint8_t *) msgs[i].producer;
            env[i].producer_id.len = SLC_PRODUCER_ID_LEN;
        }
        if (msgs[i].msg_id) {
            sluice__header__init(&hdr[i]);
            hdr[i].key = "msg-id";
            hdr[i].value = (char *) msgs[i].msg_id;
            hdrp[i] = &hdr[i];
            env[i].headers = &hdrp[i];
            env[i].n_headers = 1;
        }
        if (msgs[i].source)
            env[i].source = (char *) msgs[i].source;
        env[i].ingest_ts_us = msgs[i].ingest_ts_us;
        envp[i] = &env[i];
    }
    Sluice__PublishBatch batch = SLUICE__PUBLISH_BATCH__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    batch.msgs = envp;
    batch.n_msgs = n;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH_BATCH;
    f.publish_batch = &batch;
    Sluice__Frame *r = s_request(c, &f);
    free(env);
    free(envp);
    free(hdr);
    free(hdrp);
    return r;
}

/* The Confirm for batch position INDEX in the PublishAck R (borrowed). */
static const Sluice__Confirm *s_confirm(const Sluice__Frame *r, uint32_t index)
{
    if (r->body_case != SLUICE__FRAME__BODY_PUBLISH_ACK)
        fail_msg("expected PublishAck, got %s (code %d: %s)", slc_frame_name(r),
                 r->body_case == SLUICE__FRAME__BODY_ERROR ? r->error->code : 0,
                 r->body_case == SLUICE__FRAME__BODY_ERROR ? r->error->text : "");
    for (size_t i = 0; i < r->publish_ack->n_confirms; i++)
        if (r->publish_ack->confirms[i]->index == index)
            return r->publish_ack->confirms[i];
    fail_msg("no Confirm for index %u", index);
    return NULL;
}

/* Publish one message and assert it was stored (not a duplicate) at OFFSET. */
static void s_publish_at(s_client_t *c, const s_msg_t *m, uint64_t offset)
{
    Sluice__Frame *r = s_publish(c, m, 1);
    const Sluice__Confirm *cf = s_confirm(r, 0);
    if (cf->code != 0)
        fail_msg("publish to %s refused: %d %s", m->topic, cf->code, cf->text);
    assert_false(cf->duplicate);
    assert_int_equal(cf->offset, offset);
    slc_frame_free(&r);
}

/* Publish N small messages "m<i>" to TOPIC in one batch; all must be stored. */
static void s_publish_n(s_client_t *c, const char *topic, size_t n)
{
    s_msg_t *m = calloc(n, sizeof(s_msg_t));
    char (*body)[24] = calloc(n, 24);       /* "m" + 20 digits + NUL fits */
    assert_true(m && body);
    for (size_t i = 0; i < n; i++) {
        snprintf(body[i], 24, "m%zu", i);
        m[i] = (s_msg_t) { .topic = topic, .payload = body[i], .len = strlen(body[i]) };
    }
    Sluice__Frame *r = s_publish(c, m, n);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(s_confirm(r, i)->code, 0);
    slc_frame_free(&r);
    free(m);
    free(body);
}

/* Subscribe durable NAME to PATTERN, with MAX_DELIVER (0: the broker's);
 * returns the sub_id of SubscribeOk. */
static uint32_t s_subscribe_md(s_client_t *c, const char *name, const char *pattern,
                               Sluice__StartKind start, uint32_t credit,
                               uint32_t ack_wait_ms, uint32_t max_deliver)
{
    Sluice__Subscribe sub = SLUICE__SUBSCRIBE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    sub.name = (char *) name;
    sub.pattern = (char *) pattern;
    sub.start = start;
    sub.credit = credit;
    sub.ack_wait_ms = ack_wait_ms;
    sub.max_deliver = max_deliver;
    f.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
    f.subscribe = &sub;
    Sluice__Frame *r = s_request(c, &f);
    if (r->body_case != SLUICE__FRAME__BODY_SUBSCRIBE_OK)
        fail_msg("subscribe %s to %s: got %s", name, pattern, slc_frame_name(r));
    uint32_t id = r->subscribe_ok->sub_id;
    assert_true(id != 0);
    slc_frame_free(&r);
    return id;
}

static uint32_t s_subscribe(s_client_t *c, const char *name, const char *pattern,
                            Sluice__StartKind start, uint32_t credit, uint32_t ack_wait_ms)
{
    return s_subscribe_md(c, name, pattern, start, credit, ack_wait_ms, 0);
}

/* Grant N more credit to SUB_ID (no reply is asked for). */
static void s_credit(s_client_t *c, uint32_t sub_id, uint32_t n)
{
    Sluice__Credit cr = SLUICE__CREDIT__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    cr.sub_id = sub_id;
    cr.credit = n;
    f.body_case = SLUICE__FRAME__BODY_CREDIT;
    f.credit = &cr;
    assert_int_equal(h_raw_send(&c->raw, &f), 0);
}

/* Ack the delivery D under SUB_ID with corr; returns the reply. */
static Sluice__Frame *s_ack(s_client_t *c, uint32_t sub_id, uint32_t topic_id,
                            uint64_t offset, uint64_t token)
{
    Sluice__AckItem item = SLUICE__ACK_ITEM__INIT;
    Sluice__AckItem *items[1] = { &item };
    Sluice__Ack ack = SLUICE__ACK__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    item.topic_id = topic_id;
    item.offset = offset;
    item.token = token;
    ack.sub_id = sub_id;
    ack.items = items;
    ack.n_items = 1;
    f.body_case = SLUICE__FRAME__BODY_ACK;
    f.ack = &ack;
    return s_request(c, &f);
}

/* Nack one delivery under SUB_ID with corr, to come back after DELAY_MS. */
static Sluice__Frame *s_nack(s_client_t *c, uint32_t sub_id, uint32_t topic_id,
                             uint64_t offset, uint64_t token, uint32_t delay_ms)
{
    Sluice__AckItem item = SLUICE__ACK_ITEM__INIT;
    Sluice__AckItem *items[1] = { &item };
    Sluice__Nack nack = SLUICE__NACK__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    item.topic_id = topic_id;
    item.offset = offset;
    item.token = token;
    nack.sub_id = sub_id;
    nack.items = items;
    nack.n_items = 1;
    nack.delay_ms = delay_ms;
    nack.reason = "test";
    f.body_case = SLUICE__FRAME__BODY_NACK;
    f.nack = &nack;
    return s_request(c, &f);
}

/* Assert R is an AckReply refusing nothing; frees R. */
static void s_expect_acked(Sluice__Frame *r)
{
    if (r->body_case != SLUICE__FRAME__BODY_ACK_REPLY)
        fail_msg("expected AckReply, got %s", slc_frame_name(r));
    if (r->ack_reply->n_refused)
        fail_msg("ack refused: %d %s", r->ack_reply->refused[0]->code,
                 r->ack_reply->refused[0]->text);
    slc_frame_free(&r);
}

/* Assert R is an AckReply refusing exactly one item, OFFSET, with CODE. */
static void s_expect_refused(Sluice__Frame *r, uint64_t offset, int code)
{
    if (r->body_case != SLUICE__FRAME__BODY_ACK_REPLY)
        fail_msg("expected AckReply, got %s", slc_frame_name(r));
    assert_int_equal(r->ack_reply->n_refused, 1);
    assert_int_equal(r->ack_reply->refused[0]->offset, offset);
    assert_int_equal(r->ack_reply->refused[0]->code, code);
    assert_true(strlen(r->ack_reply->refused[0]->text) > 0);
    slc_frame_free(&r);
}

/* TopicCreate NAME with broker-default retention; asserts Ok. */
static void s_topic_create(s_client_t *c, const char *name)
{
    Sluice__TopicCreate tc = SLUICE__TOPIC_CREATE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    tc.name = (char *) name;
    f.body_case = SLUICE__FRAME__BODY_TOPIC_CREATE;
    f.topic_create = &tc;
    Sluice__Frame *r = s_request(c, &f);
    if (r->body_case != SLUICE__FRAME__BODY_OK)
        fail_msg("TopicCreate %s: got %s", name, slc_frame_name(r));
    slc_frame_free(&r);
}

static Sluice__Frame *s_stats(s_client_t *c)
{
    Sluice__StatsRequest req = SLUICE__STATS_REQUEST__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_STATS;
    f.stats = &req;
    Sluice__Frame *r = s_request(c, &f);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_STATS_REPLY);
    return r;
}

static uint64_t s_counter(const Sluice__Frame *stats, const char *name)
{
    const Sluice__StatsReply *s = stats->stats_reply;
    for (size_t i = 0; i < s->n_counters; i++)
        if (strcmp(s->counters[i]->name, name) == 0)
            return s->counters[i]->value;
    fail_msg("no counter %s in StatsReply", name);
    return 0;
}

/* TopicInfo of NAME (borrowed from STATS) or NULL. */
static const Sluice__TopicInfo *s_topic(const Sluice__Frame *stats, const char *name)
{
    const Sluice__StatsReply *s = stats->stats_reply;
    for (size_t i = 0; i < s->n_topics; i++)
        if (strcmp(s->topics[i]->name, name) == 0)
            return s->topics[i];
    return NULL;
}

static uint64_t s_topic_messages(s_client_t *c, const char *name)
{
    Sluice__Frame *st = s_stats(c);
    const Sluice__TopicInfo *t = s_topic(st, name);
    uint64_t n = t ? t->messages : 0;
    if (!t)
        fail_msg("topic %s missing from stats", name);
    slc_frame_free(&st);
    return n;
}

static const Sluice__SubInfo *s_sub(const Sluice__Frame *stats, const char *name)
{
    const Sluice__StatsReply *s = stats->stats_reply;
    for (size_t i = 0; i < s->n_subs; i++)
        if (strcmp(s->subs[i]->name, name) == 0)
            return s->subs[i];
    fail_msg("no subscription %s in StatsReply", name);
    return NULL;
}

static const char *s_header(const Sluice__Envelope *e, const char *key)
{
    for (size_t i = 0; i < e->n_headers; i++)
        if (strcmp(e->headers[i]->key, key) == 0)
            return e->headers[i]->value;
    return NULL;
}

static void s_expect_header(const Sluice__Envelope *e, const char *key, const char *value)
{
    const char *v = s_header(e, key);
    if (!v)
        fail_msg("header %s missing", key);
    if (value)
        assert_string_equal(v, value);
    else
        assert_true(strlen(v) > 0);
}

/* Expect the next delivery for SUB_ID at OFFSET with ATTEMPT; returns it
 * (caller frees env). */
static s_dlv_t s_expect_dlv(s_client_t *c, uint32_t sub_id, int timeout_ms,
                            uint64_t offset, uint32_t attempt)
{
    s_dlv_t d;
    if (!s_next(c, sub_id, timeout_ms, &d))
        fail_msg("no delivery for sub %u within %d ms (expected offset %llu attempt %u)",
                 sub_id, timeout_ms, (unsigned long long) offset, attempt);
    assert_int_equal(d.offset, offset);
    assert_int_equal(d.attempt, attempt);
    assert_true(d.token != 0);
    return d;
}

static void s_expect_no_dlv(s_client_t *c, uint32_t sub_id, int timeout_ms)
{
    s_dlv_t d;
    if (s_next(c, sub_id, timeout_ms, &d)) {
        slc_envelope_free(&d.env);
        fail_msg("unexpected delivery for sub %u: offset %llu attempt %u", sub_id,
                 (unsigned long long) d.offset, d.attempt);
    }
}

static const uint8_t s_producer[SLC_PRODUCER_ID_LEN] = {
    0x5e, 0x11, 0xce, 0x01, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
};

/* ----------------------------------------------------------------- tests */

/* 1. A command before Hello is refused with 401 and its corr; the session
 *    then opens on the same connection. */
static void test_no_session(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, false);

    s_msg_t m = { .topic = "orders", .payload = "x", .len = 1 };
    Sluice__Frame *r = s_publish(c, &m, 1);
    assert_int_equal(r->corr, c->next_corr - 1);
    assert_true(r->error ? r->error->retryable : false);
    s_expect_error(r, 401);
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
    f.heartbeat = &hb;
    s_expect_error(s_request(c, &f), 401);

    r = s_hello(c, 1, NULL);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_HELLO_OK);
    slc_frame_free(&r);
    s_publish_at(c, &m, 0);
    assert_int_equal(s_topic_messages(c, "orders"), 1);
}

/* 2. An unsupported version gets 426 naming the supported one; the
 *    session stays closed until a Hello v1 on the same socket. */
static void test_hello_version(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, false);

    Sluice__Frame *r = s_hello(c, 99, NULL);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_ERROR);
    char v[16];
    snprintf(v, sizeof v, "%d", SLC_PROTOCOL_VERSION);
    assert_non_null(strstr(r->error->text, "version"));
    assert_non_null(strstr(r->error->text, v));
    s_expect_error(r, 426);

    s_msg_t m = { .topic = "orders", .payload = "x", .len = 1 };
    s_expect_error(s_publish(c, &m, 1), 401);   /* still no session */

    r = s_hello(c, 1, NULL);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_HELLO_OK);
    assert_int_equal(r->hello_ok->version, 1);
    assert_int_equal(r->hello_ok->max_message_bytes, 1024 * 1024);
    assert_true(r->hello_ok->max_batch > 0);
    slc_frame_free(&r);
    s_publish_at(c, &m, 0);
}

/* 3. Undecodable bytes, unknown and broker-only commands, multi-part
 *    messages: each answered with its code, counted, session kept. */
static void test_bad_input(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);

    static const char garbage[] = "\xff\xff\xff garbage";
    assert_int_equal(h_raw_send_bytes(&c->raw, garbage, sizeof garbage - 1), 0);
    s_expect_error(s_wait(c, 0, SLUICE__FRAME__BODY_ERROR, S_REPLY_MS), 400);
    s_expect_heartbeat(c);

    /* corr = 7, then field 111 (a command from a newer protocol), empty. */
    static const uint8_t unknown[] = { 0x08, 0x07, 0xfa, 0x06, 0x00 };
    assert_int_equal(h_raw_send_bytes(&c->raw, unknown, sizeof unknown), 0);
    s_expect_error(s_wait(c, 7, 0, S_REPLY_MS), 405);
    s_expect_heartbeat(c);

    Sluice__Deliver dl = SLUICE__DELIVER__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_DELIVER;
    f.deliver = &dl;
    Sluice__Frame *r = s_request(c, &f);
    assert_non_null(strstr(r->error ? r->error->text : "", "deliver"));
    s_expect_error(r, 405);
    s_expect_heartbeat(c);

    /* Two parts, each a valid Heartbeat: still not one sluice message. */
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    Sluice__Frame hf = SLUICE__FRAME__INIT;
    hf.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
    hf.heartbeat = &hb;
    hf.corr = 55;
    uint8_t buf[64];
    size_t len = sluice__frame__pack(&hf, buf);
    assert_int_equal(zmq_send(c->raw.sock, buf, len, ZMQ_SNDMORE), (int) len);
    assert_int_equal(zmq_send(c->raw.sock, buf, len, 0), (int) len);
    s_expect_error(s_wait(c, 0, SLUICE__FRAME__BODY_ERROR, S_REPLY_MS), 400);
    s_expect_heartbeat(c);
    r = s_wait(c, 55, 0, 200);
    if (r)
        fail_msg("a two-part message was partly handled: got %s", slc_frame_name(r));

    Sluice__Frame *st = s_stats(c);
    assert_int_equal(s_counter(st, "errors.malformed"), 2);
    assert_int_equal(s_counter(st, "errors.unknown_command"), 2);
    slc_frame_free(&st);
}

/* 4a. Default limit 1 MiB: one byte more is a non-retryable 413 for that
 *     message only; its batch neighbour is stored. */
static void test_too_big_default(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);

    size_t big = 1024 * 1024 + 1;
    char *payload = calloc(1, big);
    assert_non_null(payload);
    s_msg_t m[2] = {
        { .topic = "blobs", .payload = "ok", .len = 2 },
        { .topic = "blobs", .payload = payload, .len = big },
    };
    Sluice__Frame *r = s_publish(c, m, 2);
    free(payload);
    assert_int_equal(s_confirm(r, 0)->code, 0);
    assert_int_equal(s_confirm(r, 0)->offset, 0);
    assert_int_equal(s_confirm(r, 1)->code, 413);
    assert_false(s_confirm(r, 1)->retryable);
    assert_true(strlen(s_confirm(r, 1)->text) > 0);
    slc_frame_free(&r);
    assert_int_equal(s_topic_messages(c, "blobs"), 1);
}

/* 4b. Configured limits: max_message_bytes=1000, max_batch=10. */
static void test_too_big_configured(void **state)
{
    s_fx_t *fx = *state;
    const char *extra[] = { "--set", "limits/max_message_bytes=1000",
                            "--set", "limits/max_frame_bytes=20000",
                            "--set", "limits/max_batch=10", NULL };
    s_broker_start(fx, extra);
    s_client_t *c = s_connect(fx, true);

    char payload[1001];
    memset(payload, 'p', sizeof payload);
    s_msg_t m[2] = {
        { .topic = "blobs", .payload = payload, .len = 1000 },
        { .topic = "blobs", .payload = payload, .len = 1001 },
    };
    Sluice__Frame *r = s_publish(c, m, 2);
    assert_int_equal(s_confirm(r, 0)->code, 0);
    assert_int_equal(s_confirm(r, 1)->code, 413);
    assert_false(s_confirm(r, 1)->retryable);
    slc_frame_free(&r);

    s_msg_t many[11];
    for (int i = 0; i < 11; i++)
        many[i] = (s_msg_t) { .topic = "blobs", .payload = "x", .len = 1 };
    r = s_publish(c, many, 11);
    assert_false(r->error ? r->error->retryable : true);
    s_expect_error(r, 413);
    r = s_publish(c, many, 10);        /* exactly max_batch is fine */
    assert_int_equal(s_confirm(r, 9)->code, 0);
    slc_frame_free(&r);
    assert_int_equal(s_topic_messages(c, "blobs"), 11);

    /* A frame over limits/max_frame_bytes is refused whole with 413 and a
     * reason; the session goes on. (Past twice the limit the transport
     * closes the connection instead: docs/protocol.md.) */
    static uint8_t big[30000];
    memset(big, 0xff, sizeof big);
    assert_int_equal(h_raw_send_bytes(&c->raw, big, sizeof big), 0);
    r = s_wait(c, 0, SLUICE__FRAME__BODY_ERROR, S_REPLY_MS);
    assert_non_null(strstr(r && r->error ? r->error->text : "", "max_frame_bytes"));
    s_expect_error(r, 413);
    s_expect_heartbeat(c);
    assert_int_equal(s_topic_messages(c, "blobs"), 11);

    /* Every direct reply echoes corr (issue 15): the 413 of a real Frame
     * over the limit, and the 400 of bytes that break after their corr. */
    static char huge[25000];
    memset(huge, 'h', sizeof huge);
    Sluice__Envelope env = SLUICE__ENVELOPE__INIT;
    Sluice__Publish pub = SLUICE__PUBLISH__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    env.topic = "blobs";
    env.payload.data = (uint8_t *) huge;
    env.payload.len = sizeof huge;
    pub.msg = &env;
    f.corr = 4242;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH;
    f.publish = &pub;
    assert_int_equal(h_raw_send(&c->raw, &f), 0);
    s_expect_error(s_wait(c, 4242, SLUICE__FRAME__BODY_ERROR, S_REPLY_MS), 413);
    static const uint8_t broken[] = { 0x08, 0x99, 0x01, 0x72, 0xff, 0xff, 0xff };
    assert_int_equal(h_raw_send_bytes(&c->raw, broken, sizeof broken), 0);
    s_expect_error(s_wait(c, 153, SLUICE__FRAME__BODY_ERROR, S_REPLY_MS), 400);
    assert_int_equal(s_topic_messages(c, "blobs"), 11);
}

/* 4c. The session timeout is max(3 x Hello.heartbeat_ms (the broker's when
 *     0), broker/session_timeout_ms), checked on time: silent just under
 *     it the session lives, just over it the next frame gets 401. */
static void test_session_timeout(void **state)
{
    s_fx_t *fx = *state;
    const char *extra[] = { "--set", "broker/session_timeout_ms=600",
                            "--set", "broker/heartbeat_ms=100", NULL };
    s_broker_start(fx, extra);
    /* Hello heartbeat, expected timeout: the floor, 3 x 400, 3 x the
     * broker's 100 (= 300, so the floor 600 again). */
    static const struct { uint32_t hb, timeout; } cases[] = {
        { 50, 600 }, { 400, 1200 }, { 0, 600 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int over = 0; over < 2; over++) {
            s_client_t *c = s_connect(fx, false);
            Sluice__Hello hello = SLUICE__HELLO__INIT;
            Sluice__Frame f = SLUICE__FRAME__INIT;
            hello.version = 1;
            hello.client = "timeout-test";
            hello.heartbeat_ms = cases[i].hb;
            f.body_case = SLUICE__FRAME__BODY_HELLO;
            f.hello = &hello;
            Sluice__Frame *r = s_request(c, &f);
            assert_int_equal(r->body_case, SLUICE__FRAME__BODY_HELLO_OK);
            slc_frame_free(&r);
            /* 250 ms each side of the deadline: the broker's tick is 10 ms,
             * the rest is for a loaded machine. */
            usleep((cases[i].timeout + (over ? 250 : -250)) * 1000u);
            Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
            Sluice__Frame h = SLUICE__FRAME__INIT;
            h.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
            h.heartbeat = &hb;
            r = s_request(c, &h);
            if (over && (r->body_case != SLUICE__FRAME__BODY_ERROR || r->error->code != 401))
                fail_msg("heartbeat %u: silent %u ms, over its timeout %u: got %s, not 401",
                         cases[i].hb, cases[i].timeout + 250, cases[i].timeout,
                         slc_frame_name(r));
            if (!over && r->body_case != SLUICE__FRAME__BODY_HEARTBEAT)
                fail_msg("heartbeat %u: silent %u ms, under its timeout %u: got %s",
                         cases[i].hb, cases[i].timeout - 250, cases[i].timeout,
                         slc_frame_name(r));
            slc_frame_free(&r);
            s_disconnect(fx, &c);
        }
    }
}

/* 5b. The broker stamps what it stores: the ingest time always (a time a
 *     client put in is replaced), the source when the client gave none
 *     (its Hello name); everything else is stored as sent. */
static void test_stamped_on_ingest(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);
    uint64_t t0 = slc_now_us();
    s_msg_t m[2] = {
        { .topic = "stamp.t", .payload = "plain", .len = 5 },
        { .topic = "stamp.t", .payload = "claims", .len = 6, .source = "mine",
          .ingest_ts_us = 1, .msg_id = "m-1" },
    };
    Sluice__Frame *r = s_publish(c, m, 2);
    assert_int_equal(s_confirm(r, 0)->code, 0);
    assert_int_equal(s_confirm(r, 1)->code, 0);
    slc_frame_free(&r);
    uint64_t t1 = slc_now_us();
    uint32_t sub = s_subscribe(c, "stamper", "stamp.t", SLUICE__START_KIND__START_EARLIEST, 10, 0);
    for (uint64_t off = 0; off < 2; off++) {
        s_dlv_t d = s_expect_dlv(c, sub, 2000, off, 1);
        const Sluice__Envelope *e = d.env;
        if (e->ingest_ts_us < t0 || e->ingest_ts_us > t1)
            fail_msg("offset %llu: ingest_ts_us %llu outside [%llu, %llu]",
                     (unsigned long long) off, (unsigned long long) e->ingest_ts_us,
                     (unsigned long long) t0, (unsigned long long) t1);
        assert_string_equal(e->topic, "stamp.t");
        assert_int_equal(e->payload.len, m[off].len);
        assert_memory_equal(e->payload.data, m[off].payload, m[off].len);
        assert_string_equal(e->source, off == 0 ? "raw-test" : "mine");  /* harness Hello */
        assert_int_equal(e->n_headers, off == 0 ? 0 : 1);
        slc_envelope_free(&d.env);
    }
}

/* 5. Invalid topic names are nacked one by one with 422 and a reason; a
 *    broker topic ('_') with 403, even without keys (docs/protocol.md);
 *    a seq without a producer id with 422. */
static void test_invalid_topics(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);

    static const char *const bad[] = { "a..b", "", "has space", "_reserved" };
    static const int code[] = { 422, 422, 422, 403 };
    s_msg_t m[6];
    for (int i = 0; i < 4; i++)
        m[i] = (s_msg_t) { .topic = bad[i], .payload = "x", .len = 1 };
    m[4] = (s_msg_t) { .topic = "good.topic", .payload = "x", .len = 1 };
    m[5] = (s_msg_t) { .topic = "good.topic", .payload = "x", .len = 1, .seq = 7 };
    Sluice__Frame *r = s_publish(c, m, 6);
    for (uint32_t i = 0; i < 4; i++) {
        const Sluice__Confirm *cf = s_confirm(r, i);
        if (cf->code != code[i])
            fail_msg("topic \"%s\": expected %d, got %d", bad[i], code[i], cf->code);
        assert_true(strlen(cf->text) > 0);
        assert_false(cf->retryable);
    }
    assert_non_null(strstr(s_confirm(r, 3)->text,
                           "may not publish to _reserved: topics starting with '_' are "
                           "written only by the broker"));
    assert_int_equal(s_confirm(r, 4)->code, 0);
    assert_int_equal(s_confirm(r, 4)->offset, 0);
    assert_int_equal(s_confirm(r, 5)->code, 422);
    assert_int_equal(s_confirm(r, 5)->seq, 7);
    assert_non_null(strstr(s_confirm(r, 5)->text, "seq needs a producer_id"));
    slc_frame_free(&r);

    Sluice__Frame *st = s_stats(c);
    assert_non_null(s_topic(st, "good.topic"));
    assert_int_equal(s_topic(st, "good.topic")->messages, 1);
    for (int i = 0; i < 4; i++)
        assert_null(s_topic(st, bad[i]));
    slc_frame_free(&st);
}

/* 6a. Producer sequences: a resend is a duplicate with the original
 *     offset, before and after kill -9; Hello reports the last sequence. */
static void test_idempotent_producer(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);

    s_msg_t m[3];
    for (int i = 0; i < 3; i++)
        m[i] = (s_msg_t) { .topic = "orders", .payload = "order", .len = 5,
                           .producer = s_producer, .seq = (uint64_t) i + 1 };
    for (int i = 0; i < 3; i++)
        s_publish_at(c, &m[i], (uint64_t) i);

    Sluice__Frame *r = s_publish(c, &m[1], 1);
    assert_int_equal(s_confirm(r, 0)->code, 0);
    assert_true(s_confirm(r, 0)->duplicate);
    assert_int_equal(s_confirm(r, 0)->offset, 1);
    assert_int_equal(s_confirm(r, 0)->seq, 2);
    slc_frame_free(&r);
    assert_int_equal(s_topic_messages(c, "orders"), 3);

    s_disconnect_all(fx);
    assert_int_equal(h_broker_stop(&fx->broker, SIGKILL), 128 + SIGKILL);
    assert_int_equal(h_broker_start(&fx->broker), 0);
    c = s_connect(fx, false);
    r = s_hello(c, 1, s_producer);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_HELLO_OK);
    assert_int_equal(r->hello_ok->producer_last_seq, 3);
    slc_frame_free(&r);

    r = s_publish(c, &m[2], 1);
    assert_int_equal(s_confirm(r, 0)->code, 0);
    assert_true(s_confirm(r, 0)->duplicate);
    assert_int_equal(s_confirm(r, 0)->offset, 2);
    slc_frame_free(&r);
    assert_int_equal(s_topic_messages(c, "orders"), 3);

    /* A producer the broker never saw starts at 0. */
    uint8_t other[SLC_PRODUCER_ID_LEN] = { 1 };
    r = s_hello(c, 1, other);
    assert_int_equal(r->hello_ok->producer_last_seq, 0);
    slc_frame_free(&r);
}

/* 6b. msg-id header dedup on one topic, across a kill -9. */
static void test_msg_id_dedup(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);

    s_msg_t m = { .topic = "events", .payload = "e", .len = 1, .msg_id = "abc" };
    s_msg_t other = { .topic = "events", .payload = "f", .len = 1, .msg_id = "xyz" };
    s_publish_at(c, &m, 0);
    s_publish_at(c, &other, 1);
    Sluice__Frame *r = s_publish(c, &m, 1);
    assert_int_equal(s_confirm(r, 0)->code, 0);
    assert_true(s_confirm(r, 0)->duplicate);
    assert_int_equal(s_confirm(r, 0)->offset, 0);
    slc_frame_free(&r);
    /* Inside one batch too: the second copy is the first one's duplicate. */
    s_msg_t twice[2] = {
        { .topic = "events", .payload = "g", .len = 1, .msg_id = "batch-1" },
        { .topic = "events", .payload = "g", .len = 1, .msg_id = "batch-1" },
    };
    r = s_publish(c, twice, 2);
    assert_int_equal(s_confirm(r, 0)->code, 0);
    assert_false(s_confirm(r, 0)->duplicate);
    assert_int_equal(s_confirm(r, 0)->offset, 2);
    assert_int_equal(s_confirm(r, 1)->code, 0);
    assert_true(s_confirm(r, 1)->duplicate);
    assert_int_equal(s_confirm(r, 1)->offset, 2);
    slc_frame_free(&r);
    /* The same msg-id on another topic is another message. */
    s_msg_t elsewhere = { .topic = "events2", .payload = "e", .len = 1, .msg_id = "abc" };
    s_publish_at(c, &elsewhere, 0);

    s_disconnect_all(fx);
    h_broker_stop(&fx->broker, SIGKILL);
    assert_int_equal(h_broker_start(&fx->broker), 0);
    c = s_connect(fx, true);
    r = s_publish(c, &m, 1);
    assert_int_equal(s_confirm(r, 0)->code, 0);
    assert_true(s_confirm(r, 0)->duplicate);
    assert_int_equal(s_confirm(r, 0)->offset, 0);
    slc_frame_free(&r);
    assert_int_equal(s_topic_messages(c, "events"), 3);
}

/* 6c. Outside storage/dedup_window the same msg-id is a new message. */
static void test_msg_id_window(void **state)
{
    s_fx_t *fx = *state;
    const char *extra[] = { "--set", "storage/dedup_window=1s", NULL };
    s_broker_start(fx, extra);
    s_client_t *c = s_connect(fx, true);

    s_msg_t m = { .topic = "events", .payload = "e", .len = 1, .msg_id = "abc" };
    s_publish_at(c, &m, 0);
    Sluice__Frame *r = s_publish(c, &m, 1);
    assert_true(s_confirm(r, 0)->duplicate);
    slc_frame_free(&r);
    usleep(1500 * 1000);
    s_publish_at(c, &m, 1);
}

/* 7. Tokens: a redelivery supersedes the first attempt's token (409);
 *    the latest token acks; unknown offsets are 404. */
static void test_ack_tokens(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);
    s_publish_n(c, "jobs", 1);

    uint32_t sub = s_subscribe(c, "workers", "jobs", SLUICE__START_KIND__START_EARLIEST,
                               10, 400);
    s_dlv_t d1 = s_expect_dlv(c, sub, 2000, 0, 1);
    assert_string_equal(d1.topic, "jobs");
    assert_int_equal(d1.env->payload.len, 2);
    assert_memory_equal(d1.env->payload.data, "m0", 2);
    s_dlv_t d2 = s_expect_dlv(c, sub, 2000, 0, 2);
    assert_true(d2.token != d1.token);
    assert_int_equal(d2.topic_id, d1.topic_id);

    s_expect_refused(s_ack(c, sub, d1.topic_id, 0, d1.token), 0, 409);
    s_expect_acked(s_ack(c, sub, d2.topic_id, 0, d2.token));
    s_expect_no_dlv(c, sub, 1000);
    /* Acks are idempotent: the same ack again is accepted. */
    s_expect_acked(s_ack(c, sub, d2.topic_id, 0, d2.token));
    s_expect_refused(s_ack(c, sub, d1.topic_id, 1000, 12345), 1000, 404);

    Sluice__Frame *st = s_stats(c);
    assert_int_equal(s_sub(st, "workers")->acked, 1);
    assert_int_equal(s_sub(st, "workers")->in_flight, 0);
    assert_int_equal(s_sub(st, "workers")->lag, 0);
    slc_frame_free(&st);
    slc_envelope_free(&d1.env);
    slc_envelope_free(&d2.env);
}

/* 8. After max_deliver attempts without ack the message moves to
 *    _dlq.<sub> with its reason, and an advisory names the subscription. */
static void test_dead_letter(void **state)
{
    s_fx_t *fx = *state;
    const char *extra[] = { "--set", "delivery/max_deliver=2", NULL };
    s_broker_start(fx, extra);
    s_client_t *c = s_connect(fx, true);
    s_msg_t m = { .topic = "payments", .payload = "poison", .len = 6 };
    s_publish_at(c, &m, 0);

    uint32_t sub = s_subscribe(c, "billing", "payments",
                               SLUICE__START_KIND__START_EARLIEST, 10, 300);
    s_dlv_t d = s_expect_dlv(c, sub, 2000, 0, 1);
    slc_envelope_free(&d.env);
    d = s_expect_dlv(c, sub, 2000, 0, 2);
    slc_envelope_free(&d.env);
    s_expect_no_dlv(c, sub, 1000);     /* 300 ms after attempt 2 it left */

    uint32_t dlq = s_subscribe(c, "billing-dlq", "_dlq.billing",
                               SLUICE__START_KIND__START_EARLIEST, 10, 0);
    d = s_expect_dlv(c, dlq, 2000, 0, 1);
    assert_string_equal(d.topic, "_dlq.billing");
    assert_int_equal(d.env->payload.len, 6);
    assert_memory_equal(d.env->payload.data, "poison", 6);
    s_expect_header(d.env, "dlq-reason", NULL);
    s_expect_header(d.env, "dlq-subscription", "billing");
    s_expect_header(d.env, "dlq-topic", "payments");
    s_expect_header(d.env, "dlq-offset", "0");
    s_expect_header(d.env, "dlq-attempts", "2");
    slc_envelope_free(&d.env);
    s_expect_no_dlv(c, dlq, 300);

    uint32_t adv = s_subscribe(c, "dlq-watch", "_advisory.dlq",
                               SLUICE__START_KIND__START_EARLIEST, 10, 0);
    d = s_expect_dlv(c, adv, 2000, 0, 1);
    char json[1024];
    snprintf(json, sizeof json, "%.*s", (int) d.env->payload.len,
             (const char *) d.env->payload.data);
    if (!strstr(json, "\"subscription\":\"billing\""))
        fail_msg("advisory does not name the subscription: %s", json);
    assert_non_null(strstr(json, "\"topic\":\"payments\""));
    slc_envelope_free(&d.env);

    s_expect_no_dlv(c, sub, 200);
    Sluice__Frame *st = s_stats(c);
    assert_int_equal(s_sub(st, "billing")->dead_lettered, 1);
    assert_int_equal(s_sub(st, "billing")->in_flight, 0);
    assert_int_equal(s_sub(st, "billing")->lag, 0);
    assert_int_equal(s_counter(st, "deliver.dead_lettered"), 1);
    slc_frame_free(&st);
}

/* Subscribe NAME to "feed" (start earliest, which a stored cursor must
 * override) and expect offset 3 first: 0..2 were acked. */
static void s_expect_resume(s_client_t *c, const char *name, uint32_t attempt_max)
{
    uint32_t sub = s_subscribe(c, name, "feed", SLUICE__START_KIND__START_EARLIEST, 10, 0);
    s_dlv_t d;
    assert_true(s_next(c, sub, 2000, &d));
    if (d.offset != 3)
        fail_msg("resumed subscription started at offset %llu, expected 3",
                 (unsigned long long) d.offset);
    assert_true(d.attempt >= 1 && d.attempt <= attempt_max);
    slc_envelope_free(&d.env);
    assert_true(s_next(c, sub, 2000, &d));
    assert_int_equal(d.offset, 4);
    slc_envelope_free(&d.env);
    s_expect_no_dlv(c, sub, 300);
}

/* 9. A durable subscription resumes at its acked cursor on a new
 *    connection and after a broker restart. */
static void test_resume(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);
    s_publish_n(c, "feed", 5);

    uint32_t sub = s_subscribe(c, "reader", "feed", SLUICE__START_KIND__START_EARLIEST, 10, 0);
    for (uint64_t i = 0; i < 5; i++) {
        s_dlv_t d = s_expect_dlv(c, sub, 2000, i, 1);
        if (i < 3)
            s_expect_acked(s_ack(c, sub, d.topic_id, d.offset, d.token));
        slc_envelope_free(&d.env);
    }
    s_disconnect(fx, &c);

    /* The old session is still attached (the broker does not know it is
     * gone): this is a take-over, so 3 may come as attempt 2. */
    c = s_connect(fx, true);
    s_expect_resume(c, "reader", 2);

    s_disconnect_all(fx);
    assert_int_equal(h_broker_stop(&fx->broker, SIGTERM), 0);
    assert_int_equal(h_broker_start(&fx->broker), 0);
    c = s_connect(fx, true);
    s_expect_resume(c, "reader", 1);
}

/* 10. A second consumer of a durable name takes it over: it gets the
 *     in-flight message at once; the first one's acks are refused. */
static void test_take_over(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *a = s_connect(fx, true);
    s_client_t *b = s_connect(fx, true);
    s_publish_n(a, "tasks", 1);

    uint32_t sa = s_subscribe(a, "crew", "tasks", SLUICE__START_KIND__START_EARLIEST, 10, 0);
    s_dlv_t da = s_expect_dlv(a, sa, 2000, 0, 1);
    uint64_t t0 = slc_mono_ms();
    uint32_t sb = s_subscribe(b, "crew", "tasks", SLUICE__START_KIND__START_EARLIEST, 10, 0);
    s_dlv_t db = s_expect_dlv(b, sb, 2000, 0, 2);
    assert_true(slc_mono_ms() - t0 < 2000);     /* ack_wait is 30 s */
    assert_true(db.token != da.token);

    /* A's late ack under its old id: superseded (409), not applied. */
    s_expect_refused(s_ack(a, sa, da.topic_id, 0, da.token), 0, 409);
    Sluice__Frame *st = s_stats(b);
    assert_int_equal(s_sub(st, "crew")->acked, 0);
    assert_int_equal(s_sub(st, "crew")->in_flight, 1);
    slc_frame_free(&st);
    s_expect_no_dlv(a, 0, 200);

    /* B cannot use A's token either; its own acks. */
    s_expect_refused(s_ack(b, sb, da.topic_id, 0, da.token), 0, 409);
    s_expect_acked(s_ack(b, sb, db.topic_id, 0, db.token));
    st = s_stats(b);
    assert_int_equal(s_sub(st, "crew")->acked, 1);
    slc_frame_free(&st);
    slc_envelope_free(&da.env);
    slc_envelope_free(&db.env);
}

/* 11. At storage/map_size_max publishes get a retryable 507; everything
 *     confirmed before stays readable and the broker keeps serving. */
static void test_storage_full(void **state)
{
    s_fx_t *fx = *state;
    const char *extra[] = { "--set", "storage/map_size=1M",
                            "--set", "storage/map_size_max=2M", NULL };
    s_broker_start(fx, extra);
    s_client_t *c = s_connect(fx, true);

    static char payload[4096];
    memset(payload, 'z', sizeof payload);
    s_msg_t m[50];
    for (int i = 0; i < 50; i++)
        m[i] = (s_msg_t) { .topic = "bulk", .payload = payload, .len = sizeof payload };
    uint64_t stored = 0;
    bool full = false;
    for (int batch = 0; batch < 60 && !full; batch++) {
        Sluice__Frame *r = s_publish(c, m, 50);
        for (uint32_t i = 0; i < 50; i++) {
            const Sluice__Confirm *cf = s_confirm(r, i);
            if (cf->code == 0) {
                assert_false(cf->duplicate);
                assert_int_equal(cf->offset, stored);
                stored++;
            }
            else if (cf->code == 507) {
                if (!full) {
                    assert_true(cf->retryable);
                    assert_non_null(strstr(cf->text, "storage full"));
                }
                full = true;
            }
            else
                fail_msg("unexpected confirm code %d: %s", cf->code, cf->text);
        }
        slc_frame_free(&r);
    }
    if (!full)
        fail_msg("no 507 after 3000 messages of 4 KiB with map_size_max=2M");
    assert_true(stored > 0);

    uint32_t sub = s_subscribe(c, "drain", "bulk", SLUICE__START_KIND__START_EARLIEST,
                               100000, 0);
    uint64_t got = 0;
    s_dlv_t d;
    while (s_next(c, sub, 1500, &d)) {
        assert_int_equal(d.offset, got);
        assert_int_equal(d.env->payload.len, sizeof payload);
        slc_envelope_free(&d.env);
        got++;
    }
    assert_int_equal(got, stored);
    s_expect_heartbeat(c);
    assert_int_equal(s_topic_messages(c, "bulk"), stored);
}

/* 12. SIGTERM exits 0 and a restart shows the same topics. */
static void test_graceful_stop(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);
    s_publish_n(c, "a.one", 3);
    s_publish_n(c, "b.two", 5);
    s_disconnect_all(fx);

    assert_int_equal(h_broker_stop(&fx->broker, SIGTERM), 0);
    assert_int_equal(h_broker_start(&fx->broker), 0);
    c = s_connect(fx, true);
    Sluice__Frame *st = s_stats(c);
    /* a.one, b.two and the broker's _audit (each start is recorded). */
    assert_int_equal(st->stats_reply->n_topics, 3);
    assert_non_null(s_topic(st, "_audit"));
    assert_non_null(s_topic(st, "a.one"));
    assert_non_null(s_topic(st, "b.two"));
    assert_int_equal(s_topic(st, "a.one")->messages, 3);
    assert_int_equal(s_topic(st, "a.one")->next_offset, 3);
    assert_int_equal(s_topic(st, "b.two")->messages, 5);
    assert_int_equal(s_topic(st, "b.two")->next_offset, 5);
    slc_frame_free(&st);
    s_msg_t m = { .topic = "a.one", .payload = "x", .len = 1 };
    s_publish_at(c, &m, 3);
}

/* 13. A wildcard subscription sees every topic created after it, whatever
 *     order the topics were created and first written in (regression: a
 *     topic created empty was missed once a later one had been seen). */
static void test_wildcard_discovery(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);
    uint32_t sub = s_subscribe(c, "all-orders", "orders.>",
                               SLUICE__START_KIND__START_EARLIEST, 100, 0);
    s_topic_create(c, "orders.a");      /* created empty: id N */
    s_publish_n(c, "orders.b", 1);      /* created and written: id N + 1 */
    s_publish_n(c, "orders.a", 1);
    bool seen_a = false, seen_b = false;
    s_dlv_t d;
    while (s_next(c, sub, 1000, &d)) {
        seen_a |= strcmp(d.topic, "orders.a") == 0;
        seen_b |= strcmp(d.topic, "orders.b") == 0;
        slc_envelope_free(&d.env);
    }
    assert_true(seen_b);
    if (!seen_a)
        fail_msg("orders.a (created before orders.b, written after) never delivered");
}

/* 14. An offset stored but never delivered (no credit reached it) is
 *     "never delivered" in docs/protocol.md: 404, like one past the end. */
static void test_ack_undelivered(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);
    s_publish_n(c, "jobs", 3);
    uint32_t sub = s_subscribe(c, "lazy", "jobs", SLUICE__START_KIND__START_EARLIEST, 1, 0);
    s_dlv_t d = s_expect_dlv(c, sub, 2000, 0, 1);
    s_expect_refused(s_ack(c, sub, d.topic_id, 2, 777), 2, 404);
    slc_envelope_free(&d.env);
}

/* 15. Nack: the message comes back with attempt + 1, at once for delay 0,
 *     not before delay_ms otherwise (regression: delay 0 once stalled). */
static void test_nack(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);
    s_publish_n(c, "jobs", 1);
    uint32_t sub = s_subscribe(c, "retry", "jobs", SLUICE__START_KIND__START_EARLIEST, 10, 0);
    s_dlv_t d = s_expect_dlv(c, sub, 2000, 0, 1);
    s_expect_acked(s_nack(c, sub, d.topic_id, 0, d.token, 500));
    uint64_t t0 = slc_mono_ms();
    slc_envelope_free(&d.env);
    d = s_expect_dlv(c, sub, 2000, 0, 2);
    assert_true(slc_mono_ms() - t0 >= 450);
    s_expect_acked(s_nack(c, sub, d.topic_id, 0, d.token, 0));
    slc_envelope_free(&d.env);
    d = s_expect_dlv(c, sub, 1000, 0, 3);
    s_expect_acked(s_ack(c, sub, d.topic_id, 0, d.token));
    slc_envelope_free(&d.env);
}

/* 16. Acks above a gap survive a restart: only the gaps come back. */
static void test_resume_gaps(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);
    s_publish_n(c, "feed", 6);
    uint32_t sub = s_subscribe(c, "gappy", "feed", SLUICE__START_KIND__START_EARLIEST, 10, 0);
    for (uint64_t i = 0; i < 6; i++) {
        s_dlv_t d = s_expect_dlv(c, sub, 2000, i, 1);
        if (i != 2 && i != 4)
            s_expect_acked(s_ack(c, sub, d.topic_id, d.offset, d.token));
        slc_envelope_free(&d.env);
    }
    s_disconnect_all(fx);
    h_broker_stop(&fx->broker, SIGKILL);
    assert_int_equal(h_broker_start(&fx->broker), 0);
    c = s_connect(fx, true);
    sub = s_subscribe(c, "gappy", "feed", SLUICE__START_KIND__START_EARLIEST, 10, 0);
    s_dlv_t d = s_expect_dlv(c, sub, 2000, 2, 1);
    s_expect_acked(s_ack(c, sub, d.topic_id, d.offset, d.token));
    slc_envelope_free(&d.env);
    d = s_expect_dlv(c, sub, 2000, 4, 1);
    slc_envelope_free(&d.env);
    s_expect_no_dlv(c, sub, 300);
    Sluice__Frame *st = s_stats(c);
    assert_int_equal(s_sub(st, "gappy")->lag, 1);
    slc_frame_free(&st);
}

/* Nack the N deliveries D under SUB_ID in one frame, DELAY_MS; asserts the
 * AckReply refuses nothing. */
static void s_nack_all(s_client_t *c, uint32_t sub_id, const s_dlv_t *d, size_t n,
                       uint32_t delay_ms)
{
    Sluice__AckItem item[16];
    Sluice__AckItem *items[16];
    Sluice__Nack nack = SLUICE__NACK__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        sluice__ack_item__init(&item[i]);
        item[i].topic_id = d[i].topic_id;
        item[i].offset = d[i].offset;
        item[i].token = d[i].token;
        items[i] = &item[i];
    }
    nack.sub_id = sub_id;
    nack.items = items;
    nack.n_items = n;
    nack.delay_ms = delay_ms;
    f.body_case = SLUICE__FRAME__BODY_NACK;
    f.nack = &nack;
    s_expect_acked(s_request(c, &f));
}

/* Take N deliveries of SUB_ID, which must be offsets FIRST, FIRST+1, ...
 * in that order, each with ATTEMPT, into D (caller frees the envelopes). */
static void s_expect_run(s_client_t *c, uint32_t sub_id, s_dlv_t *d, size_t n,
                         uint64_t first, uint32_t attempt, int timeout_ms)
{
    for (size_t i = 0; i < n; i++) {
        if (!s_next(c, sub_id, timeout_ms, &d[i]))
            fail_msg("delivery %zu of %zu (offset %llu, attempt %u) did not come", i + 1,
                     n, (unsigned long long) (first + i), attempt);
        if (d[i].offset != first + i || d[i].attempt != attempt)
            fail_msg("delivery %zu: offset %llu attempt %u, expected offset %llu attempt %u",
                     i + 1, (unsigned long long) d[i].offset, d[i].attempt,
                     (unsigned long long) (first + i), attempt);
    }
}

static void s_free_run(s_dlv_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        slc_envelope_free(&d[i].env);
}

/* 17. Redeliveries come back in offset order (issue 15): after one Nack of
 *     eight (they came back 0,1,6,7,2,3,4,5), after their ack_wait
 *     expired together (0,5,6,7,3,4,1,2), and ten in one Deliver frame
 *     (0,9,8,...,1). */
static void test_redelivery_order(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);
    s_dlv_t d[16];
    s_publish_n(c, "orders", 8);
    uint32_t sub = s_subscribe_md(c, "ordered", "orders", SLUICE__START_KIND__START_EARLIEST,
                                  100, 700, 5);
    s_expect_run(c, sub, d, 8, 0, 1, 2000);
    s_nack_all(c, sub, d, 8, 200);
    s_free_run(d, 8);
    s_expect_run(c, sub, d, 8, 0, 2, 2000);
    s_free_run(d, 8);
    /* Not acked: all eight expire after 700 ms, and come back in order. */
    s_expect_run(c, sub, d, 8, 0, 3, 3000);
    s_free_run(d, 8);

    s_publish_n(c, "tens", 10);
    sub = s_subscribe_md(c, "tenfold", "tens", SLUICE__START_KIND__START_EARLIEST, 100, 400, 5);
    s_expect_run(c, sub, d, 10, 0, 1, 2000);
    s_free_run(d, 10);
    s_expect_run(c, sub, d, 10, 0, 2, 3000);
    s_free_run(d, 10);
}

/* 18. With three expired in flight and credit for two, the two lowest go
 *     (it sent 0 and 2, skipping 1); the third waits for credit. A
 *     consumer that grants no more still has its last attempts
 *     dead-lettered on time: reaching max_deliver needs no credit. */
static void test_redelivery_short_credit(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);
    s_dlv_t d[4];
    s_publish_n(c, "short", 3);
    uint32_t sub = s_subscribe_md(c, "stingy", "short", SLUICE__START_KIND__START_EARLIEST,
                                  3, 300, 2);
    s_expect_run(c, sub, d, 3, 0, 1, 2000);
    s_free_run(d, 3);
    s_expect_no_dlv(c, sub, 600);       /* expired, but no credit left */
    s_credit(c, sub, 2);
    s_expect_run(c, sub, d, 2, 0, 2, 2000);
    s_free_run(d, 2);
    s_expect_no_dlv(c, sub, 200);
    s_credit(c, sub, 1);
    s_expect_run(c, sub, d, 1, 2, 2, 2000);
    s_free_run(d, 1);
    /* Attempt 2 of 2 for all three, and no credit: after 300 ms each is
     * dead-lettered anyway. */
    uint64_t deadline = slc_mono_ms() + 5000;
    uint64_t dead = 0;
    while (dead < 3 && slc_mono_ms() < deadline) {
        usleep(100000);
        Sluice__Frame *st = s_stats(c);
        dead = s_sub(st, "stingy")->dead_lettered;
        slc_frame_free(&st);
    }
    assert_int_equal(dead, 3);
    assert_int_equal(s_topic_messages(c, "_dlq.stingy"), 3);
    s_expect_no_dlv(c, sub, 200);
}

/* 19. A take-over hands the new consumer everything in flight lowest
 *     offset first, also what the old one had nacked with a long delay. */
static void test_redelivery_take_over_order(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *a = s_connect(fx, true);
    s_client_t *b = s_connect(fx, true);
    s_dlv_t d[16];
    s_publish_n(a, "batch", 10);
    uint32_t sa = s_subscribe(a, "pool", "batch", SLUICE__START_KIND__START_EARLIEST, 100, 0);
    s_expect_run(a, sa, d, 10, 0, 1, 2000);
    /* Nack the upper half, highest first, one frame each. */
    for (size_t i = 10; i-- > 5;)
        s_nack_all(a, sa, &d[i], 1, 60000);
    s_free_run(d, 10);
    uint32_t sb = s_subscribe(b, "pool", "batch", SLUICE__START_KIND__START_EARLIEST, 100, 0);
    s_expect_run(b, sb, d, 10, 0, 2, 2000);
    s_free_run(d, 10);
    s_expect_no_dlv(a, 0, 200);
}

/* Pack F with corr CORR, put a NUL in place of the '~' inside the one copy
 * of MARKED in it, and send the bytes raw (protobuf-c cannot encode a NUL
 * in a string: the field keeps its length). */
static void s_send_nul(s_client_t *c, Sluice__Frame *f, uint64_t corr, const char *marked)
{
    f->corr = corr;
    size_t len = sluice__frame__get_packed_size(f);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    sluice__frame__pack(f, buf);
    uint8_t *at = memmem(buf, len, marked, strlen(marked));
    assert_non_null(at);
    uint8_t *tilde = memchr(at, '~', strlen(marked));
    assert_non_null(tilde);
    *tilde = 0;
    assert_int_equal(h_raw_send_bytes(&c->raw, buf, len), 0);
    free(buf);
}

/* Expect Error 400 with CORR whose text names string field PATH. */
static void s_expect_nul_refused(s_client_t *c, uint64_t corr, const char *path)
{
    Sluice__Frame *r = s_wait(c, corr, 0, S_REPLY_MS);
    if (!r)
        fail_msg("no reply to the frame with a NUL in %s", path);
    if (r->body_case != SLUICE__FRAME__BODY_ERROR)
        fail_msg("a NUL in %s: got %s, not Error 400", path, slc_frame_name(r));
    char want[160];
    snprintf(want, sizeof want, "frame does not decode: string field %s holds a NUL byte", path);
    if (strncmp(r->error->text, want, strlen(want)) != 0)
        fail_msg("a NUL in %s: text \"%s\"", path, r->error->text);
    assert_false(r->error->retryable);
    s_expect_error(r, 400);
}

/* 7 (issue 16). A name is checked on all its bytes: "shop.a\0hr.salaries"
 *    was stored in shop.a (its stored envelope keeping the whole name) and
 *    KeyAdd "a\0b" registered a. Now the frame is refused whole with 400
 *    naming the field, nothing is stored or registered, and the session
 *    goes on. */
static void test_names_nul(void **state)
{
    s_fx_t *fx = *state;
    s_broker_start(fx, NULL);
    s_client_t *c = s_connect(fx, true);

    /* A batch of a good message and the bad one: neither is stored. */
    Sluice__Envelope env[2] = { SLUICE__ENVELOPE__INIT, SLUICE__ENVELOPE__INIT };
    Sluice__Envelope *envp[2] = { &env[0], &env[1] };
    Sluice__PublishBatch batch = SLUICE__PUBLISH_BATCH__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    env[0].topic = "shop.b";
    env[1].topic = "shop.a~hr.salaries";
    for (int i = 0; i < 2; i++) {
        env[i].payload.data = (uint8_t *) "{\"salary\": 1}";
        env[i].payload.len = 13;
    }
    batch.msgs = envp;
    batch.n_msgs = 2;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH_BATCH;
    f.publish_batch = &batch;
    s_send_nul(c, &f, 901, "shop.a~hr");
    s_expect_nul_refused(c, 901, "publish_batch.msgs[1].topic");
    /* One message alone, in Publish. */
    Sluice__Publish pub = SLUICE__PUBLISH__INIT;
    Sluice__Frame pf = SLUICE__FRAME__INIT;
    pub.msg = &env[1];
    pf.body_case = SLUICE__FRAME__BODY_PUBLISH;
    pf.publish = &pub;
    s_send_nul(c, &pf, 902, "shop.a~hr");
    s_expect_nul_refused(c, 902, "publish.msg.topic");

    /* Nothing reached shop.a (nor shop.b): the first message stored there
     * now gets offset 0, and reads back with its own name. */
    Sluice__Frame *st = s_stats(c);
    assert_null(s_topic(st, "shop.a"));
    assert_null(s_topic(st, "shop.b"));
    assert_int_equal(s_counter(st, "errors.malformed"), 2);
    slc_frame_free(&st);
    s_publish_at(c, &(s_msg_t) { .topic = "shop.a", .payload = "ok", .len = 2 }, 0);
    uint32_t sub = s_subscribe(c, "audit-shop", "shop.>", SLUICE__START_KIND__START_EARLIEST,
                               10, 0);
    s_dlv_t d = s_expect_dlv(c, sub, 2000, 0, 1);
    assert_string_equal(d.topic, "shop.a");
    assert_string_equal(d.env->topic, "shop.a");
    slc_envelope_free(&d.env);
    s_expect_no_dlv(c, sub, 200);

    /* KeyAdd "a\0b" (plain text: this session may administer) registers
     * nothing: afterwards "a" is free, and so is the key. */
    static uint8_t key[32] = { 0x42, 1, 2, 3 };
    Sluice__KeyAdd ka = SLUICE__KEY_ADD__INIT;
    Sluice__Frame kf = SLUICE__FRAME__INIT;
    ka.name = "a~b";
    ka.public_key.data = key;
    ka.public_key.len = sizeof key;
    kf.body_case = SLUICE__FRAME__BODY_KEY_ADD;
    kf.key_add = &ka;
    s_send_nul(c, &kf, 903, "a~b");
    s_expect_nul_refused(c, 903, "key_add.name");
    Sluice__KeyList kl = SLUICE__KEY_LIST__INIT;
    Sluice__Frame lf = SLUICE__FRAME__INIT;
    lf.body_case = SLUICE__FRAME__BODY_KEY_LIST;
    lf.key_list = &kl;
    Sluice__Frame *r = s_request(c, &lf);
    assert_int_equal(r->body_case, SLUICE__FRAME__BODY_KEY_LIST_REPLY);
    for (size_t i = 0; i < r->key_list_reply->n_identities; i++)
        if (r->key_list_reply->identities[i]->public_key.len == sizeof key
            && memcmp(r->key_list_reply->identities[i]->public_key.data, key, sizeof key) == 0)
            fail_msg("the key was registered as \"%s\"", r->key_list_reply->identities[i]->name);
    slc_frame_free(&r);
    ka.name = "a";
    r = s_request(c, &kf);
    if (r->body_case != SLUICE__FRAME__BODY_OK)
        fail_msg("KeyAdd a after the refused \"a\\0b\": got %s %s", slc_frame_name(r),
                 r->error ? r->error->text : "");
    slc_frame_free(&r);

    /* A durable subscription name and a pattern: refused the same way,
     * nothing created under the shortened name. */
    Sluice__Subscribe sb = SLUICE__SUBSCRIBE__INIT;
    Sluice__Frame sf = SLUICE__FRAME__INIT;
    sb.name = "pay~roll";
    sb.pattern = "hr.>";
    sb.credit = 10;
    sf.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
    sf.subscribe = &sb;
    s_send_nul(c, &sf, 904, "pay~roll");
    s_expect_nul_refused(c, 904, "subscribe.name");
    sb.name = "payroll";
    sb.pattern = "shop.a~.>";
    s_send_nul(c, &sf, 905, "shop.a~");
    s_expect_nul_refused(c, 905, "subscribe.pattern");
    st = s_stats(c);
    for (size_t i = 0; i < st->stats_reply->n_subs; i++)
        if (strncmp(st->stats_reply->subs[i]->name, "pay", 3) == 0)
            fail_msg("subscription %s created", st->stats_reply->subs[i]->name);
    slc_frame_free(&st);
    s_expect_heartbeat(c);

    /* UTF-8 in a name is whole but outside the grammar: 422, and the
     * error, which quotes the name cut at 64 bytes, is UTF-8 still (this
     * client's decoder, like any proto3 parser, refuses anything else). */
    for (int i = 0; i < 2; i++) {
        Sluice__SchemaRegister sr = SLUICE__SCHEMA_REGISTER__INIT;
        Sluice__Frame rf = SLUICE__FRAME__INIT;
        sr.subject = i ? "b" : "a";
        sr.schema = "{\"type\": \"object\"}";
        rf.body_case = SLUICE__FRAME__BODY_SCHEMA_REGISTER;
        rf.schema_register = &sr;
        r = s_request(c, &rf);
        assert_int_equal(r->body_case, SLUICE__FRAME__BODY_SCHEMA_REGISTER_REPLY);
        slc_frame_free(&r);
    }
    char yaml[256] = "name: a";
    for (int i = 0; i < 40; i++)
        strcat(yaml, "\xc3\xa9");                /* 1 + 80 bytes: the cut is inside one */
    strcat(yaml, "\nfrom: a@1\nto: b@1\nmap:\n  x: $.x\n");
    Sluice__MappingAdd ma = SLUICE__MAPPING_ADD__INIT;
    Sluice__Frame mf = SLUICE__FRAME__INIT;
    ma.yaml = yaml;
    mf.body_case = SLUICE__FRAME__BODY_MAPPING_ADD;
    mf.mapping_add = &ma;
    r = s_request(c, &mf);
    assert_non_null(strstr(r->error ? r->error->text : "", "bad mapping name 'a\xc3\xa9"));
    s_expect_error(r, 422);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_session, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hello_version, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_too_big_default, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_too_big_configured, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_session_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_invalid_topics, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stamped_on_ingest, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_idempotent_producer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_msg_id_dedup, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_msg_id_window, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ack_tokens, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_resume, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_take_over, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_storage_full, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_graceful_stop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_wildcard_discovery, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ack_undelivered, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_nack, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_resume_gaps, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_redelivery_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_redelivery_short_credit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_redelivery_take_over_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_names_nul, s_setup, s_teardown),
    };
    /* SLUICE_TEST=test_nack runs one test (cmocka glob). */
    if (getenv("SLUICE_TEST"))
        cmocka_set_test_filter(getenv("SLUICE_TEST"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
