/*  test_delivery_flow - what sld_delivery sends and when (issue 17, point
 *  7): credit, deliver_batch and max_inflight bound the pump; an attempt
 *  not acked within ack_wait comes back with attempt+1, lowest offset
 *  first; acks are stamped by the attempt's token; max_deliver moves the
 *  message to _dlq.<name> through persist, and an aborted transaction does
 *  not lose the move; ephemeral subscriptions take no acks and keep
 *  nothing; an unreadable record is dead-lettered by the pump, never ahead.
 *  Time is simulated: every pump gets its now_ms, nothing sleeps.
 *
 *  The store is a link-time fake (fake_store.c: design (a) of the brief),
 *  not the real store in a temp dir: the delivery module only needs topic
 *  logs, subscription records and transactions, and an in-memory fake
 *  whose write transactions are private copies makes commit and abort
 *  exactly observable (fake_store_commits/aborts, a topic absent after an
 *  abort), lets a test damage a record without corrupting LMDB pages, and
 *  runs with no files. It is linked with delivery's .c files and nothing
 *  of the real store. The outbox is a fake that records every delivery of
 *  every Deliver frame. Single thread.  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fake_store.h"
#include "sld_delivery.h"
#include "sld_metrics.h"
#include "slc.h"
#include "sluice_codes.h"

#define S_MAX_ITEMS 1024
#define S_MAX_FRAMES 256

/* One delivery as the fake outbox saw it. */
typedef struct {
    sld_session_t *session;
    uint32_t sub_id;
    uint32_t topic_id;
    char topic[64];
    uint64_t offset;
    uint64_t token;
    uint32_t attempt;
    size_t frame;               /* index of its Deliver frame */
} s_item_t;

typedef struct {
    sld_store_t *store;
    sld_metrics_t *metrics;
    sld_delivery_t *delivery;
    uint64_t t0;                /* simulated time starts here (slc_mono_ms) */
    s_item_t items[S_MAX_ITEMS];
    size_t nitems;
    size_t frame_len[S_MAX_FRAMES];
    size_t nframes;
    size_t seen;                /* items already looked at (s_take) */
} s_fixture_t;

/* Stand for sessions: the module only compares the pointers. */
static char s_alice, s_bob;
#define ALICE ((sld_session_t *) &s_alice)
#define BOB ((sld_session_t *) &s_bob)

static int s_record(void *arg, sld_session_t *session, const Sluice__Frame *frame)
{
    s_fixture_t *f = arg;
    assert_int_equal(frame->body_case, SLUICE__FRAME__BODY_DELIVER);
    assert_true(f->nframes < S_MAX_FRAMES);
    const Sluice__Deliver *d = frame->deliver;
    for (size_t i = 0; i < d->n_msgs; i++) {
        assert_true(f->nitems < S_MAX_ITEMS);
        s_item_t *it = &f->items[f->nitems++];
        it->session = session;
        it->sub_id = d->msgs[i]->sub_id;
        it->topic_id = d->msgs[i]->topic_id;
        snprintf(it->topic, sizeof it->topic, "%s", d->msgs[i]->topic ? d->msgs[i]->topic : "");
        it->offset = d->msgs[i]->offset;
        it->token = d->msgs[i]->token;
        it->attempt = d->msgs[i]->attempt;
        it->frame = f->nframes;
    }
    f->frame_len[f->nframes++] = d->n_msgs;
    return 0;
}

static const sld_delivery_options_t s_defaults = {
    .ack_wait_ms = 1000, .max_deliver = 3, .max_inflight = 100, .deliver_batch = 10,
    .max_subscriptions = 100, .max_message_bytes = 1 << 20,
};

static void s_open(s_fixture_t *f, const sld_delivery_options_t *o)
{
    sld_delivery_destroy(&f->delivery);
    sld_outbox_t outbox = { s_record, f };
    assert_int_equal(sld_delivery_new(f->store, f->metrics, o, &outbox, &f->delivery), 0);
}

static int setup(void **state)
{
    s_fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(fake_store_new(&f->store), 0);
    assert_int_equal(sld_metrics_new(&f->metrics), 0);
    f->t0 = slc_mono_ms();
    s_open(f, &s_defaults);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    s_fixture_t *f = *state;
    sld_delivery_destroy(&f->delivery);
    sld_metrics_destroy(&f->metrics);
    fake_store_destroy(&f->store);
    free(f);
    return 0;
}

/* Append N messages ("m0", "m1", ...) to TOPIC in one committed
 * transaction, as the server does, and tell delivery. Returns the id. */
static uint32_t s_publish(s_fixture_t *f, const char *topic, int n)
{
    sld_txn_t *txn = NULL;
    uint32_t id = 0;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_store_topic_ensure(txn, topic, &id), 0);
    const sld_topic_info_t *info = sld_store_topic_by_id(f->store, id);
    uint64_t base = info ? info->next_offset : 0;
    for (int i = 0; i < n; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "m%llu", (unsigned long long) base + i);
        Sluice__Envelope e = SLUICE__ENVELOPE__INIT;
        e.topic = (char *) topic;
        e.payload.data = (uint8_t *) payload;
        e.payload.len = (size_t) len;
        uint8_t buf[256];
        size_t blen = sluice__envelope__pack(&e, buf);
        uint64_t off;
        assert_int_equal(sld_store_append(txn, id, slc_now_us(), buf, blen, &off), 0);
        assert_int_equal(off, base + i);
    }
    assert_int_equal(sld_txn_commit(&txn), 0);
    sld_delivery_topic_appended(f->delivery, id);
    return id;
}

/* Subscribe SESSION: durable NAME, or ephemeral when NAME is NULL. */
static uint32_t s_subscribe(s_fixture_t *f, sld_session_t *session, const char *name,
                            uint32_t credit)
{
    Sluice__Subscribe req = SLUICE__SUBSCRIBE__INIT;
    Sluice__SubscribeOk ok = SLUICE__SUBSCRIBE_OK__INIT;
    char why[160] = "";
    req.name = (char *) name;
    req.ephemeral = name == NULL;
    req.pattern = "shop.>";
    req.start = SLUICE__START_KIND__START_EARLIEST;
    req.credit = credit;
    assert_int_equal(sld_delivery_subscribe(f->delivery, session, &req, NULL, &ok, why, sizeof why), 0);
    sld_delivery_replies_sent(f->delivery);
    return ok.sub_id;
}

static int s_pump(s_fixture_t *f, uint64_t at_ms)
{
    return sld_delivery_pump(f->delivery, f->t0 + at_ms);
}

/* The items sent since the last call: *n of them, from *first. */
static s_item_t *s_take(s_fixture_t *f, size_t *n)
{
    s_item_t *first = &f->items[f->seen];
    *n = f->nitems - f->seen;
    f->seen = f->nitems;
    return first;
}

/* Ack (or nack) one delivery; returns the refusal code, 0 when applied. */
static int s_ack(s_fixture_t *f, sld_session_t *session, uint32_t sub_id,
                 const s_item_t *it, uint64_t token, bool nack)
{
    Sluice__AckItem item = SLUICE__ACK_ITEM__INIT;
    item.topic_id = it->topic_id;
    item.offset = it->offset;
    item.token = token;
    Sluice__AckItem *items[1] = { &item };
    sld_refusal_t refused[1];
    size_t nrefused = 0;
    assert_int_equal(sld_delivery_ack(f->delivery, session, sub_id, items, 1, nack, 0, NULL, 0,
                                      refused, &nrefused), 0);
    return nrefused ? refused[0].code : 0;
}

/* Persist what is pending in one write transaction: committed (COMMIT)
 * or aborted, and tell delivery which. */
static void s_persist(s_fixture_t *f, bool commit)
{
    sld_txn_t *txn = NULL;
    assert_int_equal(sld_store_begin(f->store, true, &txn), 0);
    assert_int_equal(sld_delivery_persist(f->delivery, txn), 0);
    if (commit)
        assert_int_equal(sld_txn_commit(&txn), 0);
    else
        sld_txn_abort(&txn);
    sld_delivery_persisted(f->delivery, commit);
}

/* Stored message OFFSET of TOPIC (committed), decoded (caller frees). */
static Sluice__Envelope *s_stored(s_fixture_t *f, const char *topic, uint64_t offset)
{
    const sld_topic_info_t *info = sld_store_topic_by_name(f->store, topic);
    assert_non_null(info);
    sld_txn_t *txn = NULL;
    const void *env;
    size_t len;
    Sluice__Envelope *e = NULL;
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_store_read(txn, info->id, offset, &env, &len, NULL), 0);
    assert_int_equal(slc_envelope_decode(env, len, &e), 0);
    sld_txn_abort(&txn);
    return e;
}

static const char *s_header(const Sluice__Envelope *e, const char *key)
{
    for (size_t i = 0; i < e->n_headers; i++)
        if (strcmp(e->headers[i]->key, key) == 0)
            return e->headers[i]->value;
    return NULL;
}

/* ---------------------------------------------------------------- credit */

/* Credit N: at most N deliveries; no credit left: nothing, whatever is
 * stored; more credit: exactly that many more, in offset order. */
static void test_credit(void **state)
{
    s_fixture_t *f = *state;
    s_publish(f, "shop.orders", 8);
    uint32_t sub = s_subscribe(f, ALICE, "orders", 3);
    size_t n;
    s_pump(f, 0);
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(it[i].offset, i);
        assert_int_equal(it[i].attempt, 1);
        assert_int_equal(it[i].sub_id, sub);
        assert_string_equal(it[i].topic, "shop.orders");
    }
    s_pump(f, 1);
    s_publish(f, "shop.orders", 2);
    s_pump(f, 2);
    s_take(f, &n);
    assert_int_equal(n, 0);
    assert_false(sld_delivery_awake(f->delivery));

    assert_int_equal(sld_delivery_credit(f->delivery, ALICE, sub, 4), 0);
    s_pump(f, 3);
    s_pump(f, 4);
    it = s_take(f, &n);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(it[i].offset, 3 + i);
    /* Another session cannot grant this subscription credit. */
    assert_int_equal(sld_delivery_credit(f->delivery, BOB, sub, 4), SL_ENOTFOUND);
}

/* A pump sends each subscription at most one Deliver frame of at most
 * deliver_batch messages, and stays awake while there is more. */
static void test_batches(void **state)
{
    s_fixture_t *f = *state;
    sld_delivery_options_t o = s_defaults;
    o.deliver_batch = 4;
    s_open(f, &o);
    s_publish(f, "shop.orders", 10);
    s_subscribe(f, ALICE, "orders", 100);
    assert_int_equal(s_pump(f, 0), 0);      /* more to send: no wait */
    assert_int_equal(f->nframes, 1);
    assert_int_equal(f->frame_len[0], 4);
    s_pump(f, 1);
    s_pump(f, 2);
    s_pump(f, 3);
    assert_int_equal(f->nframes, 3);
    assert_int_equal(f->frame_len[1], 4);
    assert_int_equal(f->frame_len[2], 2);
    size_t n;
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(it[i].offset, i);
    /* Drained: the pump now waits for the first ack deadline. */
    assert_false(sld_delivery_awake(f->delivery));
    assert_int_equal(s_pump(f, 4), 996);    /* offset 0, sent at 0, due at 1000 */
}

/* max_inflight unacked deliveries per subscription, whatever the credit;
 * each ack lets one more go. */
static void test_max_inflight(void **state)
{
    s_fixture_t *f = *state;
    sld_delivery_options_t o = s_defaults;
    o.max_inflight = 3;
    s_open(f, &o);
    s_publish(f, "shop.orders", 6);
    uint32_t sub = s_subscribe(f, ALICE, "orders", 100);
    s_pump(f, 0);
    s_pump(f, 1);
    size_t n;
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 3);
    assert_int_equal(s_ack(f, ALICE, sub, &it[1], it[1].token, false), 0);
    s_pump(f, 2);
    s_pump(f, 3);
    it = s_take(f, &n);
    assert_int_equal(n, 1);
    assert_int_equal(it[0].offset, 3);
}

/* ------------------------------------------------------------ redelivery */

/* Unacked past ack_wait: sent again with attempt 2 and a new token; the
 * acked one is not. Timers that run out in reverse offset order still
 * come back lowest offset first. */
static void test_redelivery_timer(void **state)
{
    s_fixture_t *f = *state;
    s_publish(f, "shop.orders", 4);
    uint32_t sub = s_subscribe(f, ALICE, "orders", 1);
    /* One message a pump; offset 0 sent last, so its timer runs out last. */
    uint64_t sent_at[4] = { 30, 20, 10, 0 };
    s_item_t first[4];
    for (int i = 0; i < 4; i++) {
        s_pump(f, sent_at[i]);
        size_t n;
        s_item_t *it = s_take(f, &n);
        assert_int_equal(n, 1);
        assert_int_equal(it[0].offset, i);
        first[i] = it[0];
        assert_int_equal(sld_delivery_credit(f->delivery, ALICE, sub, 1), 0);
    }
    assert_int_equal(s_ack(f, ALICE, sub, &first[2], first[2].token, false), 0);
    assert_int_equal(sld_delivery_credit(f->delivery, ALICE, sub, 10), 0);

    /* Not yet: offset 3, sent at 0, is due at 1000. */
    s_pump(f, 999);
    size_t n;
    s_take(f, &n);
    assert_int_equal(n, 0);
    /* Every deadline has passed. */
    s_pump(f, 1040);
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 3);
    uint64_t want[3] = { 0, 1, 3 };
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(it[i].offset, want[i]);
        assert_int_equal(it[i].attempt, 2);
        assert_int_not_equal(it[i].token, first[want[i]].token);
    }
    assert_int_equal(sld_metrics_get(f->metrics, SLD_M_REDELIVERED), 3);
}

/* A nack with no delay makes the message due at the next pump. */
static void test_nack_redelivers(void **state)
{
    s_fixture_t *f = *state;
    sld_delivery_options_t o = s_defaults;
    o.ack_wait_ms = 60000;      /* the nack's deadline is real time: far from this */
    s_open(f, &o);
    s_publish(f, "shop.orders", 2);
    uint32_t sub = s_subscribe(f, ALICE, "orders", 10);
    s_pump(f, 0);
    size_t n;
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 2);
    s_item_t one = it[1];
    assert_int_equal(s_ack(f, ALICE, sub, &one, one.token, true), 0);
    s_pump(f, 30000);
    it = s_take(f, &n);
    assert_int_equal(n, 1);
    assert_int_equal(it[0].offset, 1);
    assert_int_equal(it[0].attempt, 2);
}

/* --------------------------------------------------------- stamped acks */

/* An ack names the attempt by its token. Before the redelivery is sent
 * the first attempt's ack still counts; once attempt 2 is out, the ack of
 * attempt 1 is refused as superseded (SL_ESTALE) and the message stays in
 * flight; attempt 2's ack counts, and again is harmless. An offset never
 * delivered is SL_ENOTFOUND. */
static void test_ack_attempt(void **state)
{
    s_fixture_t *f = *state;
    s_publish(f, "shop.orders", 2);
    uint32_t sub = s_subscribe(f, ALICE, "orders", 2);
    s_pump(f, 0);
    size_t n;
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 2);
    s_item_t a1 = it[0], b1 = it[1];

    /* Both expire; without credit neither is sent again yet, and B's late
     * ack, arriving now, is taken. */
    s_pump(f, 1010);
    s_take(f, &n);
    assert_int_equal(n, 0);
    assert_int_equal(s_ack(f, ALICE, sub, &b1, b1.token, false), 0);
    assert_int_equal(sld_delivery_credit(f->delivery, ALICE, sub, 10), 0);
    s_pump(f, 1020);
    it = s_take(f, &n);
    assert_int_equal(n, 1);     /* A again, not B */
    s_item_t a2 = it[0];
    assert_int_equal(a2.offset, a1.offset);
    assert_int_equal(a2.attempt, 2);

    assert_int_equal(s_ack(f, ALICE, sub, &a1, a1.token, false), SL_ESTALE);
    assert_int_equal(s_ack(f, ALICE, sub, &a2, a2.token, false), 0);
    assert_int_equal(s_ack(f, ALICE, sub, &a2, a2.token, false), 0);
    s_item_t never = a1;
    never.offset = 7;
    assert_int_equal(s_ack(f, ALICE, sub, &never, 1, false), SL_ENOTFOUND);
    /* Everything acked: nothing comes back. */
    s_pump(f, 5000);
    s_take(f, &n);
    assert_int_equal(n, 0);
    assert_int_equal(sld_metrics_get(f->metrics, SLD_M_ACKED), 2);
}

/* A stale ack that arrives while attempt 2 is in flight does not ack it:
 * attempt 2 still times out and comes back as attempt 3. */
static void test_stale_ack_keeps_flight(void **state)
{
    s_fixture_t *f = *state;
    s_publish(f, "shop.orders", 1);
    uint32_t sub = s_subscribe(f, ALICE, "orders", 10);
    s_pump(f, 0);
    size_t n;
    s_item_t a1 = s_take(f, &n)[0];
    s_pump(f, 1010);
    s_item_t a2 = s_take(f, &n)[0];
    assert_int_equal(a2.attempt, 2);
    assert_int_equal(s_ack(f, ALICE, sub, &a1, a1.token, false), SL_ESTALE);
    s_pump(f, 2020);
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 1);
    assert_int_equal(it[0].attempt, 3);
}

/* ------------------------------------------------------------ dead letters */

/* After max_deliver attempts the message goes to _dlq.<name>, with
 * headers saying why, and an advisory. The move is written by persist in
 * the server's transaction: aborted, nothing is stored and it stays
 * pending; committed, it is stored once, the cursor passes the message,
 * and it is never sent again. */
static void test_dlq(void **state)
{
    s_fixture_t *f = *state;
    sld_delivery_options_t o = s_defaults;
    o.max_deliver = 2;
    s_open(f, &o);
    s_publish(f, "shop.orders", 1);
    s_subscribe(f, ALICE, "orders", 10);
    s_persist(f, true);                     /* the subscription's record */
    assert_false(sld_delivery_dirty(f->delivery));
    s_pump(f, 0);
    s_pump(f, 1010);
    size_t n;
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 2);
    assert_int_equal(it[1].attempt, 2);
    s_pump(f, 2020);                        /* attempt 2 expires: max_deliver */
    s_take(f, &n);
    assert_int_equal(n, 0);
    assert_true(sld_delivery_dirty(f->delivery));
    assert_int_equal(sld_metrics_get(f->metrics, SLD_M_DEAD_LETTERED), 1);

    size_t aborts = fake_store_aborts(f->store);
    s_persist(f, false);
    assert_int_equal(fake_store_aborts(f->store), aborts + 1);
    assert_null(sld_store_topic_by_name(f->store, "_dlq.orders"));
    assert_true(sld_delivery_dirty(f->delivery));

    s_persist(f, true);
    assert_false(sld_delivery_dirty(f->delivery));
    const sld_topic_info_t *dlq = sld_store_topic_by_name(f->store, "_dlq.orders");
    assert_non_null(dlq);
    assert_int_equal(dlq->messages, 1);
    Sluice__Envelope *e = s_stored(f, "_dlq.orders", 0);
    assert_int_equal(e->payload.len, 2);
    assert_memory_equal(e->payload.data, "m0", 2);
    assert_string_equal(s_header(e, "dlq-reason"),
                        "delivered 2 times without ack (max_deliver)");
    assert_string_equal(s_header(e, "dlq-topic"), "shop.orders");
    assert_string_equal(s_header(e, "dlq-offset"), "0");
    assert_string_equal(s_header(e, "dlq-subscription"), "orders");
    slc_envelope_free(&e);
    const sld_topic_info_t *adv = sld_store_topic_by_name(f->store, "_advisory.dlq");
    assert_non_null(adv);
    assert_int_equal(adv->messages, 1);

    /* The cursor passed it: a restart does not deliver it again. */
    s_open(f, &o);
    s_subscribe(f, ALICE, "orders", 10);
    s_pump(f, 3000);
    s_take(f, &n);
    assert_int_equal(n, 0);
}

/* A record that does not read is dead-lettered by the pump (an empty copy
 * whose reason says so) and the next message flows; the pump ahead of a
 * commit stops at it instead and dead-letters nothing. */
static void test_unreadable(void **state)
{
    s_fixture_t *f = *state;
    uint32_t id = s_publish(f, "shop.orders", 3);
    assert_int_equal(fake_store_damage(f->store, id, 1), 0);
    s_subscribe(f, ALICE, "orders", 10);
    sld_delivery_pump_ahead(f->delivery, f->t0);
    size_t n;
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 1);
    assert_int_equal(it[0].offset, 0);
    assert_int_equal(sld_metrics_get(f->metrics, SLD_M_UNREADABLE), 0);
    assert_int_equal(sld_metrics_get(f->metrics, SLD_M_DEAD_LETTERED), 0);
    s_pump(f, 1);
    it = s_take(f, &n);
    assert_int_equal(n, 1);
    assert_int_equal(it[0].offset, 2);
    assert_int_equal(sld_metrics_get(f->metrics, SLD_M_DEAD_LETTERED), 1);
    s_persist(f, true);
    Sluice__Envelope *e = s_stored(f, "_dlq.orders", 0);
    assert_int_equal(e->payload.len, 0);
    assert_non_null(strstr(s_header(e, "dlq-reason"), "stored record unreadable"));
    slc_envelope_free(&e);
}

/* ---------------------------------------------------- ephemeral, durable */

/* An ephemeral subscription: no tokens, nothing in flight, nothing
 * redelivered, acks refused, nothing to persist, gone with its session.
 * A durable one is persisted, and what its consumer had in flight when
 * the session went goes to the next consumer as attempt 2. */
static void test_ephemeral_vs_durable(void **state)
{
    s_fixture_t *f = *state;
    s_publish(f, "shop.orders", 2);
    uint32_t eph = s_subscribe(f, ALICE, NULL, 10);
    assert_false(sld_delivery_dirty(f->delivery));
    uint32_t dur = s_subscribe(f, ALICE, "orders", 10);
    assert_true(sld_delivery_dirty(f->delivery));
    s_pump(f, 0);
    s_pump(f, 1);
    size_t n;
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 4);
    size_t ne = 0, nd = 0;
    for (size_t i = 0; i < n; i++) {
        if (it[i].sub_id == eph) {
            assert_int_equal(it[i].token, 0);
            assert_int_equal(it[i].offset, ne++);
            assert_int_equal(s_ack(f, ALICE, eph, &it[i], 0, false), SL_ENOTFOUND);
        }
        else {
            assert_int_equal(it[i].sub_id, dur);
            assert_int_not_equal(it[i].token, 0);
            assert_int_equal(it[i].offset, nd++);
        }
    }
    assert_int_equal(ne, 2);
    assert_int_equal(nd, 2);

    s_persist(f, true);
    Sluice__SubInfo **subs = NULL;
    size_t nsubs = 0;
    assert_int_equal(sld_delivery_stats(f->delivery, &subs, &nsubs), 0);
    assert_int_equal(nsubs, 2);
    for (size_t i = 0; i < nsubs; i++)
        assert_int_equal(subs[i]->in_flight, subs[i]->ephemeral ? 0 : 2);
    sld_delivery_stats_free(&subs, nsubs);

    /* Past ack_wait only the durable one comes back. */
    s_pump(f, 1010);
    it = s_take(f, &n);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(it[i].sub_id, dur);
        assert_int_equal(it[i].attempt, 2);
    }

    /* Alice goes: the ephemeral one ends, the durable one waits; Bob takes
     * it over and gets what was in flight, lowest offset first. */
    sld_delivery_session_gone(f->delivery, ALICE);
    assert_int_equal(sld_delivery_stats(f->delivery, &subs, &nsubs), 0);
    assert_int_equal(nsubs, 1);
    assert_false(subs[0]->attached);
    sld_delivery_stats_free(&subs, nsubs);
    uint32_t bob = s_subscribe(f, BOB, "orders", 10);
    s_pump(f, 1020);
    it = s_take(f, &n);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_true(it[i].session == BOB);
        assert_int_equal(it[i].sub_id, bob);
        assert_int_equal(it[i].offset, i);
        assert_int_equal(it[i].attempt, 3);
    }
}

/* An ephemeral subscription writes nothing, not even when a topic it
 * matches appears after it: no subscription record, no cursor. */
static int s_count_sub(const char *name, const void *config, size_t len, void *arg)
{
    (void) name; (void) config; (void) len;
    (*(size_t *) arg)++;
    return 0;
}

static void test_ephemeral_keeps_nothing(void **state)
{
    s_fixture_t *f = *state;
    s_publish(f, "shop.orders", 1);
    s_subscribe(f, ALICE, NULL, 10);
    s_publish(f, "shop.returns", 1);        /* new: matched after the subscribe */
    assert_false(sld_delivery_dirty(f->delivery));
    s_pump(f, 0);
    s_pump(f, 1);
    size_t n;
    s_item_t *it = s_take(f, &n);
    assert_int_equal(n, 2);
    assert_int_equal(it[0].token, 0);
    assert_int_equal(it[1].token, 0);
    s_persist(f, true);
    sld_txn_t *txn = NULL;
    size_t nsubs = 0;
    assert_int_equal(sld_store_begin(f->store, false, &txn), 0);
    assert_int_equal(sld_subrec_foreach(txn, s_count_sub, &nsubs), 0);
    sld_txn_abort(&txn);
    assert_int_equal(nsubs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_credit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_inflight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redelivery_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nack_redelivers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ack_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_ack_keeps_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dlq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ephemeral_vs_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ephemeral_keeps_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
