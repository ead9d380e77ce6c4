/*  gen_corpus - writes the binary seed inputs of fuzz_frame and
 *  fuzz_dispatch: one real encoded Frame per command (fuzz_frame) and short
 *  protocol conversations in fuzz_dispatch's input layout (flags byte,
 *  separator byte, frames). Run by hand when sluice.proto changes:
 *    build-fuzz/tests/fuzz/gen_corpus tests/fuzz/corpus
 *  It overwrites only seed-* files; crash-* regression inputs stay.  */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slc_codec.h"

#define S_SEED_MAX 8192

typedef struct {
    uint8_t data[S_SEED_MAX];
    size_t len;
} s_buf_t;

static const char *s_root;

static void s_encode(const Sluice__Frame *f, s_buf_t *out)
{
    size_t len = sluice__frame__get_packed_size(f);
    if (len > sizeof out->data) {
        fprintf(stderr, "gen_corpus: frame of %zu bytes is too big\n", len);
        exit(1);
    }
    out->len = sluice__frame__pack(f, out->data);
}

static void s_write(const char *target, const char *name, const uint8_t *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/seed-%s", s_root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* ------------------------------------------------------------ the frames */

static uint8_t s_producer[SLC_PRODUCER_ID_LEN] = "gen-producer-01";

static void s_hello(s_buf_t *b, uint32_t version)
{
    Sluice__Hello m = SLUICE__HELLO__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    m.version = version;
    m.client = (char *) "gen";
    m.heartbeat_ms = 1000;
    m.producer_id.data = s_producer;
    m.producer_id.len = sizeof s_producer;
    f.corr = 1;
    f.body_case = SLUICE__FRAME__BODY_HELLO;
    f.hello = &m;
    s_encode(&f, b);
}

static void s_heartbeat(s_buf_t *b)
{
    Sluice__Heartbeat m = SLUICE__HEARTBEAT__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    m.now_us = 1700000000000000ull;
    f.corr = 2;
    f.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
    f.heartbeat = &m;
    s_encode(&f, b);
}

static void s_envelope(Sluice__Envelope *e, Sluice__Header *h, Sluice__Header **hp,
                       const char *topic, uint64_t seq, const char *msg_id)
{
    Sluice__Envelope ei = SLUICE__ENVELOPE__INIT;
    Sluice__Header hi = SLUICE__HEADER__INIT;
    *e = ei;
    *h = hi;
    e->topic = (char *) topic;
    e->payload.data = (uint8_t *) "{\"order\":42}";
    e->payload.len = 12;
    e->content_type = (char *) "application/json";
    if (seq) {
        e->producer_id.data = s_producer;
        e->producer_id.len = sizeof s_producer;
        e->seq = seq;
    }
    if (msg_id) {
        h->key = (char *) "msg-id";
        h->value = (char *) msg_id;
        *hp = h;
        e->headers = hp;
        e->n_headers = 1;
    }
}

static void s_publish(s_buf_t *b, const char *topic, bool transient, uint64_t seq)
{
    Sluice__Envelope e;
    Sluice__Header h, *hp;
    Sluice__Publish m = SLUICE__PUBLISH__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    s_envelope(&e, &h, &hp, topic, seq, transient ? NULL : "m-1");
    m.msg = &e;
    m.transient = transient;
    f.corr = 3;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH;
    f.publish = &m;
    s_encode(&f, b);
}

/* PLAIN: no headers and every envelope from one producer with sequences,
 * as the SDK sends them (the frame the codec decodes by reference). */
static void s_batch(s_buf_t *b, bool plain, const char *const topics[4])
{
    Sluice__Envelope e[4], *ep[4];
    Sluice__Header h[4], *hp[4];
    Sluice__PublishBatch m = SLUICE__PUBLISH_BATCH__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    for (int i = 0; i < 4; i++) {
        s_envelope(&e[i], &h[i], &hp[i], topics[i], plain ? 10 + (uint64_t) i : 0,
                   i == 1 && !plain ? "m-2" : NULL);
        ep[i] = &e[i];
    }
    m.msgs = ep;
    m.n_msgs = 4;
    f.corr = 4;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH_BATCH;
    f.publish_batch = &m;
    s_encode(&f, b);
}

static void s_subscribe(s_buf_t *b, const char *name, const char *pattern, bool ephemeral)
{
    Sluice__Subscribe m = SLUICE__SUBSCRIBE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    m.name = (char *) name;
    m.pattern = (char *) pattern;
    m.start = SLUICE__START_KIND__START_EARLIEST;
    m.credit = 10;
    m.ack_wait_ms = 100;
    m.max_deliver = 2;
    m.ephemeral = ephemeral;
    f.corr = 5;
    f.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
    f.subscribe = &m;
    s_encode(&f, b);
}

static void s_credit(s_buf_t *b)
{
    Sluice__Credit m = SLUICE__CREDIT__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    m.sub_id = 1;
    m.credit = 5;
    f.body_case = SLUICE__FRAME__BODY_CREDIT;
    f.credit = &m;
    s_encode(&f, b);
}

static void s_ack(s_buf_t *b, bool nack)
{
    Sluice__AckItem it = SLUICE__ACK_ITEM__INIT, *items[1] = { &it };
    Sluice__Ack a = SLUICE__ACK__INIT;
    Sluice__Nack n = SLUICE__NACK__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    it.topic_id = 1;
    it.offset = 0;
    it.token = 1;
    f.corr = 6;
    if (nack) {
        n.sub_id = 1;
        n.items = items;
        n.n_items = 1;
        n.delay_ms = 20;
        n.reason = (char *) "later";
        n.credit = 1;
        f.body_case = SLUICE__FRAME__BODY_NACK;
        f.nack = &n;
    }
    else {
        a.sub_id = 1;
        a.items = items;
        a.n_items = 1;
        a.credit = 1;
        f.body_case = SLUICE__FRAME__BODY_ACK;
        f.ack = &a;
    }
    s_encode(&f, b);
}

static void s_unsubscribe(s_buf_t *b)
{
    Sluice__Unsubscribe m = SLUICE__UNSUBSCRIBE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    m.sub_id = 1;
    m.remove = true;
    f.corr = 7;
    f.body_case = SLUICE__FRAME__BODY_UNSUBSCRIBE;
    f.unsubscribe = &m;
    s_encode(&f, b);
}

static void s_topic_create(s_buf_t *b)
{
    Sluice__TopicCreate m = SLUICE__TOPIC_CREATE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    m.name = (char *) "orders.eu";
    m.max_age_ms = 60000;
    m.max_bytes = 4096;
    f.corr = 8;
    f.body_case = SLUICE__FRAME__BODY_TOPIC_CREATE;
    f.topic_create = &m;
    s_encode(&f, b);
}

static void s_stats(s_buf_t *b)
{
    Sluice__StatsRequest m = SLUICE__STATS_REQUEST__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.corr = 9;
    f.body_case = SLUICE__FRAME__BODY_STATS;
    f.stats = &m;
    s_encode(&f, b);
}

static void s_sub_remove(s_buf_t *b)
{
    Sluice__SubRemove m = SLUICE__SUB_REMOVE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    m.name = (char *) "s1";
    f.corr = 10;
    f.body_case = SLUICE__FRAME__BODY_SUB_REMOVE;
    f.sub_remove = &m;
    s_encode(&f, b);
}

/* Identity admin (docs/security.md): register a key, grant, list, revoke,
 * rotate the at-rest key. The fuzzed broker runs in plain text, whose
 * identity holds every right, so these reach sld_auth. */
static void s_key_add(s_buf_t *b)
{
    static uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t) (i * 7 + 1);
    Sluice__KeyAdd m = SLUICE__KEY_ADD__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    m.name = (char *) "alice";
    m.public_key.data = key;
    m.public_key.len = sizeof key;
    f.corr = 12;
    f.body_case = SLUICE__FRAME__BODY_KEY_ADD;
    f.key_add = &m;
    s_encode(&f, b);
}

static void s_grant_change(s_buf_t *b, bool revoke)
{
    Sluice__Grant g1 = SLUICE__GRANT__INIT, g2 = SLUICE__GRANT__INIT;
    Sluice__Grant *gp[2] = { &g1, &g2 };
    Sluice__GrantChange m = SLUICE__GRANT_CHANGE__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    g1.perms = 1;
    g1.pattern = (char *) "orders.>";
    g2.perms = 6;
    g2.pattern = (char *) "*.eu";
    m.name = (char *) "alice";
    m.grants = gp;
    m.n_grants = 2;
    m.revoke = revoke;
    f.corr = 13;
    f.body_case = SLUICE__FRAME__BODY_GRANT_CHANGE;
    f.grant_change = &m;
    s_encode(&f, b);
}

static void s_key_simple(s_buf_t *b, int body)
{
    Sluice__KeyRevoke rv = SLUICE__KEY_REVOKE__INIT;
    Sluice__KeyList ls = SLUICE__KEY_LIST__INIT;
    Sluice__RotateKey rk = SLUICE__ROTATE_KEY__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    rv.name = (char *) "alice";
    f.corr = 14;
    f.body_case = body;
    if (body == SLUICE__FRAME__BODY_KEY_REVOKE)
        f.key_revoke = &rv;
    else if (body == SLUICE__FRAME__BODY_KEY_LIST)
        f.key_list = &ls;
    else
        f.rotate_key = &rk;
    s_encode(&f, b);
}

/* Broker-to-client commands: fuzz_frame decodes them (the SDK does). */
static void s_deliver(s_buf_t *b, bool plain)
{
    Sluice__Envelope e;
    Sluice__Header h, *hp;
    uint8_t env[512];
    s_envelope(&e, &h, &hp, "orders.eu", 7, plain ? NULL : "m-7");
    e.ingest_ts_us = 1700000000000000ull;
    e.source = (char *) "gen";
    Sluice__Delivery d = SLUICE__DELIVERY__INIT, *dp[1] = { &d };
    Sluice__Deliver m = SLUICE__DELIVER__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    d.sub_id = 1;
    d.topic_id = 1;
    d.topic = (char *) "orders.eu";
    d.offset = 3;
    d.token = 99;
    d.attempt = 1;
    d.envelope.data = env;
    d.envelope.len = sluice__envelope__pack(&e, env);
    m.msgs = dp;
    m.n_msgs = 1;
    f.body_case = SLUICE__FRAME__BODY_DELIVER;
    f.deliver = &m;
    s_encode(&f, b);
}

static void s_error(s_buf_t *b)
{
    Sluice__Error m = SLUICE__ERROR__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    m.code = 422;
    m.text = (char *) "invalid argument";
    f.corr = 11;
    f.body_case = SLUICE__FRAME__BODY_ERROR;
    f.error = &m;
    s_encode(&f, b);
}

static void s_publish_ack(s_buf_t *b)
{
    Sluice__Confirm c = SLUICE__CONFIRM__INIT, *cp[1] = { &c };
    Sluice__PublishAck m = SLUICE__PUBLISH_ACK__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    c.seq = 1;
    c.offset = 5;
    m.confirms = cp;
    m.n_confirms = 1;
    f.corr = 3;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH_ACK;
    f.publish_ack = &m;
    s_encode(&f, b);
}

/* Overwrite the bytes of the one copy of MARKED in B from its byte AT on
 * with the LEN bytes of WITH: a NUL or bytes that are not UTF-8 in a
 * string field, which protobuf-c cannot encode (the field keeps its
 * length). */
static void s_patch(s_buf_t *b, const char *marked, size_t at, const char *with, size_t len)
{
    size_t n = strlen(marked);
    uint8_t *p = memmem(b->data, b->len, marked, n);
    if (!p || at + len > n || memmem(p + 1, b->len - (size_t) (p + 1 - b->data), marked, n)) {
        fprintf(stderr, "gen_corpus: no single '%s' to patch\n", marked);
        exit(1);
    }
    memcpy(p + at, with, len);
}

/* ------------------------------------------------------ the conversations */

/* A fuzz_dispatch input: FLAGS, a separator absent from every frame (so
 * the split gives exactly these frames), then the frames. */
static void s_conversation(const char *name, uint8_t flags, const s_buf_t *frames, size_t n)
{
    bool present[256] = { false };
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < frames[k].len; i++)
            present[frames[k].data[i]] = true;
    int sep = 255;
    while (sep > 0 && present[sep])
        sep--;
    if (present[sep]) {
        fprintf(stderr, "gen_corpus: %s: no free separator byte\n", name);
        exit(1);
    }
    uint8_t out[4 * S_SEED_MAX + 8];
    size_t len = 0;
    out[len++] = flags;
    out[len++] = (uint8_t) sep;
    for (size_t k = 0; k < n; k++) {
        if (k)
            out[len++] = (uint8_t) sep;
        memcpy(out + len, frames[k].data, frames[k].len);
        len += frames[k].len;
    }
    s_write("fuzz_dispatch", name, out, len);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus CORPUS_ROOT (tests/fuzz/corpus)\n");
        return 2;
    }
    s_root = argv[1];
    static s_buf_t hello, hello2, hb, pub, pubseq, pubt, batch, sub, subeph,
        subreserved, credit, ack, nack, unsub, tc, stats, rm, deliver, deliverplain, batchplain, err, pack,
        kadd, kgrant, kungrant, krevoke, klist, krotate;
    s_hello(&hello, 1);
    s_hello(&hello2, 2);
    s_heartbeat(&hb);
    s_publish(&pub, "orders.eu", false, 0);
    s_publish(&pubseq, "orders.eu", false, 1);
    s_publish(&pubt, "orders.eu", true, 0);
    static const char *const topics[] = { "orders.eu", "orders.us", "_reserved.x", "bad..name" };
    s_batch(&batch, false, topics);
    s_batch(&batchplain, true, topics);
    /* Names with a NUL inside and strings that are not UTF-8 (issue 16:
     * "shop.a\0hr.salaries" was stored in shop.a, KeyAdd "a\0b" made a),
     * and UTF-8 where text is free: the frame is refused whole or taken. */
    static s_buf_t batchnul, kaddnul, subnul, hdrbad, pubutf8;
    static const char *const nul_topics[] = { "orders.eu", "shop.a~hr.salaries", "orders.us",
                                              "orders.us" };
    s_batch(&batchnul, true, nul_topics);
    s_patch(&batchnul, "shop.a~hr", 6, "", 1);
    s_key_add(&kaddnul);
    s_patch(&kaddnul, "alice", 1, "", 1);           /* "a\0ice" */
    s_subscribe(&subnul, "s~nul", "orders.~>", false);
    s_patch(&subnul, "s~nul", 1, "", 1);
    s_patch(&subnul, "orders.~>", 7, "", 1);
    s_publish(&hdrbad, "orders.eu", false, 0);
    s_patch(&hdrbad, "m-1", 1, "\xc3\x28", 2);    /* the msg-id header's value */
    s_patch(&hdrbad, "json", 1, "\xed\xa0\x80", 3); /* content type: a surrogate */
    {
        Sluice__Envelope e;
        Sluice__Header h, *hp;
        Sluice__Publish m = SLUICE__PUBLISH__INIT;
        Sluice__Frame f = SLUICE__FRAME__INIT;
        s_envelope(&e, &h, &hp, "orders.eu", 0, "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9d\x84\x9e");
        e.content_type = (char *) "text/plain; charset=utf-8";
        m.msg = &e;
        f.corr = 3;
        f.body_case = SLUICE__FRAME__BODY_PUBLISH;
        f.publish = &m;
        s_encode(&f, &pubutf8);
    }
    s_subscribe(&sub, "s1", "orders.>", false);
    s_subscribe(&subeph, "", "*.eu", true);
    s_subscribe(&subreserved, "dlq-reader", "_dlq.>", false);
    s_credit(&credit);
    s_ack(&ack, false);
    s_ack(&nack, true);
    s_unsubscribe(&unsub);
    s_topic_create(&tc);
    s_stats(&stats);
    s_sub_remove(&rm);
    s_deliver(&deliver, false);
    s_deliver(&deliverplain, true);
    s_error(&err);
    s_publish_ack(&pack);
    s_key_add(&kadd);
    s_grant_change(&kgrant, false);
    s_grant_change(&kungrant, true);
    s_key_simple(&krevoke, SLUICE__FRAME__BODY_KEY_REVOKE);
    s_key_simple(&klist, SLUICE__FRAME__BODY_KEY_LIST);
    s_key_simple(&krotate, SLUICE__FRAME__BODY_ROTATE_KEY);

    const struct { const char *name; const s_buf_t *b; } frames[] = {
        { "hello", &hello }, { "hello-v2", &hello2 }, { "heartbeat", &hb },
        { "publish", &pub }, { "publish-seq", &pubseq }, { "publish-transient", &pubt },
        { "publish-batch", &batch }, { "subscribe", &sub }, { "subscribe-ephemeral", &subeph },
        { "credit", &credit }, { "ack", &ack }, { "nack", &nack },
        { "unsubscribe", &unsub }, { "topic-create", &tc }, { "stats", &stats },
        { "sub-remove", &rm }, { "deliver", &deliver }, { "error", &err },
        { "publish-ack", &pack }, { "key-add", &kadd }, { "grant", &kgrant },
        { "revoke-grant", &kungrant }, { "key-revoke", &krevoke }, { "key-list", &klist },
        { "rotate-key", &krotate }, { "publish-batch-plain", &batchplain },
        { "deliver-plain", &deliverplain }, { "publish-batch-nul-topic", &batchnul },
        { "key-add-nul-name", &kaddnul }, { "subscribe-nul-names", &subnul },
        { "publish-not-utf8", &hdrbad }, { "publish-utf8", &pubutf8 },
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++)
        s_write("fuzz_frame", frames[i].name, frames[i].b->data, frames[i].b->len);
    s_write("fuzz_frame", "empty", NULL, 0);

    /* Flags: 0x01 hello first, 0x02.. frame k from peer 1, 0x20 multipart,
     * 0x40 ack deliveries, 0x80 nack them, 0xc0 ack without corr. */
    const s_buf_t c1[] = { sub, pub, credit };
    s_conversation("sub-pub-ack", 0x41, c1, 3);
    const s_buf_t c2[] = { sub, batch, pubseq, pubseq };
    s_conversation("batch-seq-dup", 0x81, c2, 4);
    const s_buf_t c3[] = { pub, sub, stats };
    s_conversation("no-session", 0x00, c3, 3);
    const s_buf_t c4[] = { hello, sub, pub };
    s_conversation("hello-inside", 0x00, c4, 3);
    const s_buf_t c5[] = { tc, stats, pub };
    s_conversation("topic-admin", 0x01, c5, 3);
    const s_buf_t c6[] = { subeph, pubt, credit };
    s_conversation("transient", 0xc1, c6, 3);
    /* The same durable name from both session peers: a take-over. */
    const s_buf_t c7[] = { sub, sub, pub, ack };
    s_conversation("takeover", 0x45, c7, 4);
    const s_buf_t c8[] = { nack, unsub, rm, subreserved };
    s_conversation("nack-unsub-remove", 0x01, c8, 4);
    const s_buf_t c9[] = { hb, hb };
    s_conversation("multipart", 0x21, c9, 2);
    const s_buf_t c10[] = { hello2, err, deliver };
    s_conversation("version-and-broker-frames", 0x01, c10, 3);
    const s_buf_t c11[] = { kadd, kgrant, klist, krevoke };
    s_conversation("key-admin", 0x01, c11, 4);
    const s_buf_t c12[] = { kadd, kungrant, krotate, kgrant };
    s_conversation("key-admin-revoke-grant", 0x01, c12, 4);
    const s_buf_t c13[] = { batchnul, kaddnul, subnul, hdrbad };
    s_conversation("nul-names", 0x01, c13, 4);
    const s_buf_t c14[] = { pubutf8, kaddnul, klist, stats };
    s_conversation("utf8-and-nul-key", 0x01, c14, 4);
    return 0;
}
