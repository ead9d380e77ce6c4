/*  test_codec - slc_codec: frames to zmq messages and back, hostile bytes,
 *  unknown commands from a newer peer, send over inproc DEALER/ROUTER.
 *  Owns one ZeroMQ context per socket test; single thread.
 *  It does not test the broker's size limits: the codec leaves those to it.  */
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slc_codec.h"

#define N_MSGS 3

/* A PublishBatch of N_MSGS envelopes with headers, binary payloads and
 * every scalar field set, built on the stack of the caller's storage. */
typedef struct {
    Sluice__Frame frame;
    Sluice__PublishBatch batch;
    Sluice__Envelope env[N_MSGS];
    Sluice__Envelope *envp[N_MSGS];
    Sluice__Header hdr[N_MSGS][2];
    Sluice__Header *hdrp[N_MSGS][2];
    Sluice__Lineage lineage;
    uint8_t payload[N_MSGS][300];
    uint8_t producer[SLC_PRODUCER_ID_LEN];
} batch_t;

static void s_batch_init(batch_t *b)
{
    static const char *topics[N_MSGS] = { "shop.orders.eu", "a", "_dlq.x" };
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__PublishBatch batch = SLUICE__PUBLISH_BATCH__INIT;
    Sluice__Lineage lineage = SLUICE__LINEAGE__INIT;
    b->frame = frame;
    b->batch = batch;
    b->lineage = lineage;
    b->lineage.source_topic = (char *) "src.topic";
    b->lineage.source_offset = 1ull << 40;
    b->lineage.route = (char *) "route-1";
    b->lineage.mapping = (char *) "map";
    b->lineage.mapping_version = 7;
    for (size_t i = 0; i < sizeof b->producer; i++)
        b->producer[i] = (uint8_t) (0xf0 + i);
    for (size_t i = 0; i < N_MSGS; i++) {
        Sluice__Envelope env = SLUICE__ENVELOPE__INIT;
        Sluice__Header h = SLUICE__HEADER__INIT;
        b->env[i] = env;
        b->hdr[i][0] = h;
        b->hdr[i][1] = h;
        b->hdr[i][0].key = (char *) "content-encoding";
        b->hdr[i][0].value = (char *) "identity";
        b->hdr[i][1].key = (char *) "x-trace";
        b->hdr[i][1].value = (char *) (i % 2 ? "" : "abc def");
        b->hdrp[i][0] = &b->hdr[i][0];
        b->hdrp[i][1] = &b->hdr[i][1];
        for (size_t k = 0; k < sizeof b->payload[i]; k++)
            b->payload[i][k] = (uint8_t) (k * 7 + i);      /* includes 0 bytes */
        b->env[i].topic = (char *) topics[i];
        b->env[i].producer_id.data = b->producer;
        b->env[i].producer_id.len = sizeof b->producer;
        b->env[i].seq = 1000 + i;
        b->env[i].n_headers = 2;
        b->env[i].headers = b->hdrp[i];
        b->env[i].content_type = (char *) "application/octet-stream";
        b->env[i].payload.data = b->payload[i];
        b->env[i].payload.len = sizeof b->payload[i] - i;
        b->env[i].ingest_ts_us = 1700000000000000ull + i;
        b->env[i].source = (char *) "test";
        b->env[i].lineage = i == 1 ? &b->lineage : NULL;
        b->envp[i] = &b->env[i];
    }
    b->batch.n_msgs = N_MSGS;
    b->batch.msgs = b->envp;
    b->batch.transient = 1;
    b->frame.corr = 42;
    b->frame.body_case = SLUICE__FRAME__BODY_PUBLISH_BATCH;
    b->frame.publish_batch = &b->batch;
}

static void s_assert_envelope(const Sluice__Envelope *got, const Sluice__Envelope *want)
{
    assert_string_equal(got->topic, want->topic);
    assert_int_equal(got->producer_id.len, want->producer_id.len);
    assert_memory_equal(got->producer_id.data, want->producer_id.data,
                        want->producer_id.len);
    assert_int_equal(got->seq, want->seq);
    assert_int_equal(got->n_headers, want->n_headers);
    for (size_t h = 0; h < want->n_headers; h++) {
        assert_string_equal(got->headers[h]->key, want->headers[h]->key);
        assert_string_equal(got->headers[h]->value, want->headers[h]->value);
    }
    assert_string_equal(got->content_type, want->content_type);
    assert_int_equal(got->payload.len, want->payload.len);
    assert_memory_equal(got->payload.data, want->payload.data, want->payload.len);
    assert_int_equal(got->ingest_ts_us, want->ingest_ts_us);
    assert_string_equal(got->source, want->source);
    if (!want->lineage) {
        assert_null(got->lineage);
        return;
    }
    assert_non_null(got->lineage);
    assert_string_equal(got->lineage->source_topic, want->lineage->source_topic);
    assert_int_equal(got->lineage->source_offset, want->lineage->source_offset);
    assert_string_equal(got->lineage->route, want->lineage->route);
    assert_string_equal(got->lineage->mapping, want->lineage->mapping);
    assert_int_equal(got->lineage->mapping_version, want->lineage->mapping_version);
}

static void s_assert_batch(const Sluice__Frame *got, const batch_t *want)
{
    assert_int_equal(got->corr, want->frame.corr);
    assert_int_equal(got->body_case, SLUICE__FRAME__BODY_PUBLISH_BATCH);
    assert_non_null(got->publish_batch);
    assert_int_equal(got->publish_batch->transient, 1);
    assert_int_equal(got->publish_batch->n_msgs, N_MSGS);
    for (size_t i = 0; i < N_MSGS; i++)
        s_assert_envelope(got->publish_batch->msgs[i], &want->env[i]);
}

static void test_round_trip(void **state)
{
    (void) state;
    batch_t b;
    s_batch_init(&b);
    zmq_msg_t msg;
    assert_int_equal(slc_frame_encode(&b.frame, &msg), 0);
    assert_true(zmq_msg_size(&msg) > N_MSGS * 290);

    Sluice__Frame *got = NULL;
    assert_int_equal(slc_frame_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &got), 0);
    s_assert_batch(got, &b);
    assert_string_equal(slc_frame_name(got), "publish_batch");
    slc_frame_free(&got);
    assert_null(got);
    slc_frame_free(&got);                       /* NULL-safe */
    slc_frame_free(NULL);
    assert_int_equal(zmq_msg_close(&msg), 0);

    /* An empty frame is valid and carries no command. */
    Sluice__Frame empty = SLUICE__FRAME__INIT;
    assert_int_equal(slc_frame_encode(&empty, &msg), 0);
    assert_int_equal(zmq_msg_size(&msg), 0);
    assert_int_equal(slc_frame_decode(zmq_msg_data(&msg), 0, &got), 0);
    assert_int_equal(got->body_case, SLUICE__FRAME__BODY__NOT_SET);
    slc_frame_free(&got);
    assert_int_equal(zmq_msg_close(&msg), 0);
}

static void test_envelope(void **state)
{
    (void) state;
    batch_t b;
    s_batch_init(&b);
    for (size_t i = 0; i < N_MSGS; i++) {
        size_t len = sluice__envelope__get_packed_size(&b.env[i]);
        uint8_t *buf = malloc(len);
        assert_non_null(buf);
        assert_int_equal(sluice__envelope__pack(&b.env[i], buf), len);
        Sluice__Envelope *env = NULL;
        assert_int_equal(slc_envelope_decode(buf, len, &env), 0);
        s_assert_envelope(env, &b.env[i]);
        slc_envelope_free(&env);
        assert_null(env);
        /* Every proper prefix that cuts a field is malformed. */
        assert_int_equal(slc_envelope_decode(buf, len - 1, &env), SL_EMALFORMED);
        assert_null(env);
        free(buf);
    }
    slc_envelope_free(NULL);
}

static void test_malformed(void **state)
{
    (void) state;
    Sluice__Frame *got = NULL;
    static const struct { const char *bytes; size_t len; } bad[] = {
        { "\x0f", 1 },                          /* wire type 7 does not exist */
        { "\x08", 1 },                          /* corr tag, no varint */
        { "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12 }, /* varint > 64 bits */
        { "\x72\x05\x0a", 3 },                  /* publish_batch of 5 bytes, 1 there */
        { "\x72\xff\xff\xff\xff\x0f", 6 },      /* length far beyond the data */
        { "\x72\x02\x0a\x05", 4 },              /* envelope longer than its batch */
        { "\x00\x00", 2 },                      /* field number 0 */
        { "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11 },
        { "\x0a\x01", 2 },                      /* corr sent as bytes, truncated */
        /* field number 0 in two bytes: protobuf-c keeps it, but would pack
         * it back in one byte that no decoder takes (fuzz_frame found it) */
        { "\x08\x1a\x80\x00\x04\x12\x02s1", 9 },
        /* the same inside the envelope of a publish_batch */
        { "\x72\x08\x0a\x06\x0a\x01" "a\x80\x00\x04", 10 },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        got = (Sluice__Frame *) 1;
        int rc = slc_frame_decode(bad[i].bytes, bad[i].len, &got);
        if (rc != SL_EMALFORMED || got != NULL)
            fail_msg("case %zu decoded (rc %d)", i, rc);
    }

    /* Every truncation of a real frame that cuts its body is malformed. */
    batch_t b;
    s_batch_init(&b);
    b.frame.corr = 0;                           /* the body is the only field */
    zmq_msg_t msg;
    assert_int_equal(slc_frame_encode(&b.frame, &msg), 0);
    size_t len = zmq_msg_size(&msg);
    for (size_t cut = 1; cut < len; cut++) {
        /* A copy of exactly CUT bytes, so valgrind sees any over-read. */
        uint8_t *part = malloc(cut);
        assert_non_null(part);
        memcpy(part, zmq_msg_data(&msg), cut);
        int rc = slc_frame_decode(part, cut, &got);
        free(part);
        if (rc != SL_EMALFORMED)
            fail_msg("frame cut to %zu of %zu bytes decoded", cut, len);
    }

    /* Random bytes and single-byte corruptions: an error or a frame, never a
     * crash (run under valgrind by meson test --wrap). */
    uint8_t *copy = malloc(len);
    assert_non_null(copy);
    uint32_t seed = 12345;
    for (int round = 0; round < 2000; round++) {
        memcpy(copy, zmq_msg_data(&msg), len);
        seed = seed * 1103515245u + 12345u;
        size_t at = (seed >> 8) % len;
        seed = seed * 1103515245u + 12345u;
        copy[at] = (uint8_t) (seed >> 16);
        int rc = slc_frame_decode(copy, len, &got);
        assert_true(rc == 0 || rc == SL_EMALFORMED);
        assert_true(rc == 0 ? got != NULL : got == NULL);
        if (got)
            (void) slc_frame_name(got);
        slc_frame_free(&got);
    }
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t) round % 64 + 1;
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[k] = (uint8_t) (seed >> 16);
        }
        int rc = slc_frame_decode(copy, n, &got);
        assert_true(rc == 0 || rc == SL_EMALFORMED);
        slc_frame_free(&got);
    }
    free(copy);
    assert_int_equal(zmq_msg_close(&msg), 0);

    /* A stored envelope with field number 0 written long is refused too. */
    Sluice__Envelope *env = (Sluice__Envelope *) 1;
    assert_int_equal(slc_envelope_decode("\x0a\x01" "a\x80\x00\x04", 6, &env),
                     SL_EMALFORMED);
    assert_null(env);
}

/* The envelopes' own bytes in a publish frame: each span decodes to its
 * envelope; a frame whose body comes in two parts, or a frame of another
 * command, has no spans. */
static void test_envelope_spans(void **state)
{
    (void) state;
    batch_t b;
    s_batch_init(&b);
    zmq_msg_t msg;
    assert_int_equal(slc_frame_encode(&b.frame, &msg), 0);
    const uint8_t *data = zmq_msg_data(&msg);
    size_t len = zmq_msg_size(&msg);
    Sluice__Frame *f = NULL;
    assert_int_equal(slc_frame_decode(data, len, &f), 0);
    slc_span_t spans[N_MSGS];
    assert_int_equal(slc_frame_envelope_spans(data, len, f, spans, N_MSGS), 0);
    for (size_t i = 0; i < N_MSGS; i++) {
        Sluice__Envelope *e = NULL;
        assert_true(spans[i].off + spans[i].len <= len);
        assert_int_equal(slc_envelope_decode(data + spans[i].off, spans[i].len, &e), 0);
        s_assert_envelope(e, &b.env[i]);
        slc_envelope_free(&e);
    }
    /* Asked for another count: no spans. */
    assert_int_equal(slc_frame_envelope_spans(data, len, f, spans, N_MSGS - 1),
                     SL_EMALFORMED);

    /* The same body twice: protobuf-c keeps the last one; spans refuse to
     * guess which (the broker then encodes the envelopes). */
    uint8_t *twice = malloc(2 * len);
    assert_non_null(twice);
    memcpy(twice, data, len);
    memcpy(twice + len, data, len);
    Sluice__Frame *g = NULL;
    assert_int_equal(slc_frame_decode(twice, 2 * len, &g), 0);
    assert_int_equal(g->publish_batch->n_msgs, N_MSGS);
    assert_int_equal(slc_frame_envelope_spans(twice, 2 * len, g, spans, N_MSGS),
                     SL_EMALFORMED);
    slc_frame_free(&g);
    free(twice);

    /* A single Publish. */
    Sluice__Publish pub = SLUICE__PUBLISH__INIT;
    pub.msg = &b.env[1];
    Sluice__Frame one = SLUICE__FRAME__INIT;
    one.body_case = SLUICE__FRAME__BODY_PUBLISH;
    one.publish = &pub;
    zmq_msg_t m1;
    assert_int_equal(slc_frame_encode(&one, &m1), 0);
    Sluice__Frame *h = NULL;
    assert_int_equal(slc_frame_decode(zmq_msg_data(&m1), zmq_msg_size(&m1), &h), 0);
    assert_int_equal(slc_frame_envelope_spans(zmq_msg_data(&m1), zmq_msg_size(&m1), h,
                                              spans, 1), 0);
    Sluice__Envelope *e = NULL;
    assert_int_equal(slc_envelope_decode((const uint8_t *) zmq_msg_data(&m1) + spans[0].off,
                                         spans[0].len, &e), 0);
    s_assert_envelope(e, &b.env[1]);
    slc_envelope_free(&e);
    slc_frame_free(&h);
    assert_int_equal(zmq_msg_close(&m1), 0);

    /* Not a publish. */
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    Sluice__Frame hf = SLUICE__FRAME__INIT;
    hf.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
    hf.heartbeat = &hb;
    assert_int_equal(slc_frame_envelope_spans(data, len, &hf, spans, 1), SL_EMALFORMED);
    slc_frame_free(&f);
    assert_int_equal(zmq_msg_close(&msg), 0);
}

/* Deliver frames are written by hand (slc_codec.c): byte for byte what
 * protobuf-c writes, for zero and large values, empty and long fields. */
static void test_deliver_bytes(void **state)
{
    (void) state;
    enum { N = 40 };
    Sluice__Delivery d[N], *dp[N];
    static uint8_t env[N][300];
    static char topic[N][64];
    uint32_t seed = 777;
    for (int round = 0; round < 50; round++) {
        size_t n = (size_t) round % N;
        for (size_t i = 0; i < n; i++) {
            sluice__delivery__init(&d[i]);
            seed = seed * 1103515245u + 12345u;
            uint32_t r = seed >> 4;
            d[i].sub_id = r % 3 == 0 ? 0 : r;
            d[i].topic_id = r % 5 == 0 ? 0 : r % 70000;
            snprintf(topic[i], sizeof topic[i], "t%u.x", r % 1000);
            d[i].topic = r % 7 == 0 ? (char *) "" : topic[i];
            d[i].offset = r % 11 == 0 ? 0 : ((uint64_t) r << 33) | r;
            d[i].token = r % 13 == 0 ? 0 : UINT64_MAX - r;
            d[i].attempt = r % 2 ? 1 : r % 300;
            d[i].rewound = r % 19 == 0;
            size_t len = r % 17 == 0 ? 0 : r % sizeof env[i];
            for (size_t k = 0; k < len; k++)
                env[i][k] = (uint8_t) (k + r);
            d[i].envelope.data = env[i];
            d[i].envelope.len = len;
            dp[i] = &d[i];
        }
        Sluice__Deliver dl = SLUICE__DELIVER__INIT;
        dl.msgs = dp;
        dl.n_msgs = n;
        Sluice__Frame f = SLUICE__FRAME__INIT;
        f.body_case = SLUICE__FRAME__BODY_DELIVER;
        f.deliver = &dl;
        f.corr = round % 3 ? 0 : (uint64_t) round * 1000003u;
        size_t want_len = sluice__frame__get_packed_size(&f);
        uint8_t *want = malloc(want_len + 1);
        assert_non_null(want);
        assert_int_equal(sluice__frame__pack(&f, want), want_len);
        zmq_msg_t msg;
        assert_int_equal(slc_frame_encode(&f, &msg), 0);
        if (zmq_msg_size(&msg) != want_len
            || memcmp(zmq_msg_data(&msg), want, want_len) != 0)
            fail_msg("round %d (%zu deliveries): %zu bytes, protobuf-c %zu", round, n,
                     zmq_msg_size(&msg), want_len);
        assert_int_equal(zmq_msg_close(&msg), 0);
        free(want);
    }
}

/* Bytes of F as protobuf-c packs them (caller frees). */
static uint8_t *s_pack(const Sluice__Frame *f, size_t *len)
{
    *len = sluice__frame__get_packed_size(f);
    uint8_t *b = malloc(*len + 1);
    assert_non_null(b);
    assert_int_equal(sluice__frame__pack(f, b), *len);
    return b;
}

static bool s_inside(const void *p, const uint8_t *buf, size_t len)
{
    return (const uint8_t *) p >= buf && (const uint8_t *) p < buf + len;
}

/* The batch of s_batch_init without headers and lineage: the envelopes
 * the by-reference decoder takes. */
static void s_batch_init_plain(batch_t *b)
{
    s_batch_init(b);
    for (size_t i = 0; i < N_MSGS; i++) {
        b->env[i].n_headers = 0;
        b->env[i].lineage = NULL;
    }
}

/* slc_frame_decode_ref: a plain PublishBatch decodes to the same values
 * with payloads and producer ids pointing into the input; a batch with
 * headers and lineage takes protobuf-c's path and decodes the same too; a
 * truncated frame is malformed on both paths. */
static void test_decode_ref_batch(void **state)
{
    (void) state;
    batch_t b;
    s_batch_init_plain(&b);
    size_t len;
    uint8_t *buf = s_pack(&b.frame, &len);
    Sluice__Frame *f = NULL;
    assert_int_equal(slc_frame_decode_ref(buf, len, &f), 0);
    s_assert_batch(f, &b);
    for (size_t i = 0; i < N_MSGS; i++) {
        assert_true(s_inside(f->publish_batch->msgs[i]->payload.data, buf, len));
        assert_true(s_inside(f->publish_batch->msgs[i]->producer_id.data, buf, len));
        assert_false(s_inside(f->publish_batch->msgs[i]->topic, buf, len));
    }
    slc_frame_free(&f);
    for (size_t cut = 1; cut < len; cut += 37) {
        assert_int_equal(slc_frame_decode_ref(buf, len - cut, &f), SL_EMALFORMED);
        assert_null(f);
    }
    free(buf);

    s_batch_init(&b);           /* headers and lineage: protobuf-c decodes */
    buf = s_pack(&b.frame, &len);
    assert_int_equal(slc_frame_decode_ref(buf, len, &f), 0);
    s_assert_batch(f, &b);
    slc_frame_free(&f);
    free(buf);
}

/* A body field twice: whatever protobuf-c makes of it (in a oneof the
 * last one wins), the by-reference decoder makes the same. */
static void test_decode_ref_merge(void **state)
{
    (void) state;
    batch_t b;
    s_batch_init_plain(&b);
    size_t len;
    uint8_t *one = s_pack(&b.frame, &len);
    uint8_t *two = malloc(2 * len);
    assert_non_null(two);
    memcpy(two, one, len);
    memcpy(two + len, one, len);
    Sluice__Frame *f = NULL, *g = NULL;
    assert_int_equal(slc_frame_decode_ref(two, 2 * len, &f), 0);
    assert_int_equal(slc_frame_decode(two, 2 * len, &g), 0);
    assert_int_equal(f->publish_batch->n_msgs, g->publish_batch->n_msgs);
    slc_frame_free(&f);
    slc_frame_free(&g);
    free(one);
    free(two);
}

/* Deliver frames decode by reference to what protobuf-c decodes, and an
 * envelope decoded by reference points its payload into its bytes. */
static void test_decode_ref_deliver(void **state)
{
    (void) state;
    batch_t b;
    s_batch_init(&b);
    b.env[0].n_headers = 0;
    b.env[0].lineage = NULL;
    uint8_t env[N_MSGS][512];
    Sluice__Delivery d[N_MSGS], *dp[N_MSGS];
    for (size_t i = 0; i < N_MSGS; i++) {
        sluice__delivery__init(&d[i]);
        d[i].sub_id = 7 + (uint32_t) i;
        d[i].topic_id = UINT32_MAX - (uint32_t) i;
        d[i].topic = b.env[i].topic;
        d[i].offset = 1ull << (30 + i);
        d[i].token = UINT64_MAX - i;
        d[i].attempt = 1 + (uint32_t) i;
        d[i].rewound = i % 2 == 1;
        d[i].envelope.data = env[i];
        d[i].envelope.len = sluice__envelope__pack(&b.env[i], env[i]);
        dp[i] = &d[i];
    }
    Sluice__Deliver dl = SLUICE__DELIVER__INIT;
    dl.msgs = dp;
    dl.n_msgs = N_MSGS;
    Sluice__Frame fr = SLUICE__FRAME__INIT;
    fr.body_case = SLUICE__FRAME__BODY_DELIVER;
    fr.deliver = &dl;
    size_t len;
    uint8_t *buf = s_pack(&fr, &len);
    Sluice__Frame *f = NULL;
    assert_int_equal(slc_frame_decode_ref(buf, len, &f), 0);
    assert_int_equal(f->body_case, SLUICE__FRAME__BODY_DELIVER);
    assert_int_equal(f->deliver->n_msgs, N_MSGS);
    for (size_t i = 0; i < N_MSGS; i++) {
        const Sluice__Delivery *g = f->deliver->msgs[i];
        assert_int_equal(g->sub_id, d[i].sub_id);
        assert_int_equal(g->topic_id, d[i].topic_id);
        assert_string_equal(g->topic, d[i].topic);
        assert_int_equal(g->offset, d[i].offset);
        assert_int_equal(g->token, d[i].token);
        assert_int_equal(g->attempt, d[i].attempt);
        assert_int_equal(g->rewound, d[i].rewound);
        assert_int_equal(g->envelope.len, d[i].envelope.len);
        assert_memory_equal(g->envelope.data, env[i], d[i].envelope.len);
        assert_true(s_inside(g->envelope.data, buf, len));
        Sluice__Envelope *e = NULL;
        assert_int_equal(slc_envelope_decode_ref(g->envelope.data, g->envelope.len, &e), 0);
        s_assert_envelope(e, &b.env[i]);
        /* Without headers the payload is read in place. */
        assert_true(s_inside(e->payload.data, buf, len) == (i == 0));
        slc_envelope_free(&e);
    }
    slc_frame_free(&f);
    free(buf);
}

/* slc_envelope_decode_in: the envelope in the caller's buffer, strings
 * that do not fit spilled (and released), and envelopes with headers
 * decoded by protobuf-c as before. */
static void test_decode_in(void **state)
{
    (void) state;
    batch_t b;
    s_batch_init(&b);
    static char long_topic[1000];
    memset(long_topic, 'a', sizeof long_topic - 1);
    alignas(max_align_t) unsigned char buf[384];
    uint8_t env[2048];
    for (int round = 0; round < 3; round++) {
        Sluice__Envelope want = b.env[0];
        want.n_headers = round == 2 ? 2 : 0;
        want.lineage = NULL;
        if (round == 1)
            want.topic = long_topic;
        size_t len = sluice__envelope__pack(&want, env);
        Sluice__Envelope *e = NULL;
        bool in_buf = false;
        assert_int_equal(slc_envelope_decode_in(buf, sizeof buf, env, len, &e, &in_buf), 0);
        s_assert_envelope(e, &want);
        assert_true(in_buf == (round < 2));
        if (in_buf) {
            assert_true((unsigned char *) e >= buf && (unsigned char *) e < buf + sizeof buf);
            assert_true(s_inside(e->payload.data, env, len));
            slc_envelope_release(buf);
        }
        else
            slc_envelope_free(&e);
    }
}

/* slc_envelope_pack writes what protobuf-c writes, for envelopes with any
 * mix of empty and set fields, with and without headers. */
static void test_envelope_pack(void **state)
{
    (void) state;
    batch_t b;
    s_batch_init(&b);
    static uint8_t payload[600];
    uint32_t seed = 4242;
    for (int round = 0; round < 400; round++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t r = seed >> 4;
        Sluice__Envelope e = b.env[r % N_MSGS];
        e.topic = r % 5 == 0 ? (char *) "" : (r % 7 == 0 ? NULL : e.topic);
        e.producer_id.len = r % 3 == 0 ? 0 : e.producer_id.len;
        e.seq = r % 4 == 0 ? 0 : ((uint64_t) r << (r % 40));
        e.content_type = r % 6 == 0 ? (char *) "" : e.content_type;
        e.payload.data = payload;
        e.payload.len = r % 11 == 0 ? 0 : r % sizeof payload;
        e.ingest_ts_us = r % 2 ? 0 : UINT64_MAX - r;
        e.source = r % 9 == 0 ? (char *) "" : e.source;
        e.n_headers = r % 8 == 0 ? 2 : 0;
        e.lineage = r % 10 == 0 ? &b.lineage : NULL;
        for (size_t k = 0; k < e.payload.len; k++)
            payload[k] = (uint8_t) (k ^ r);
        size_t want_len = sluice__envelope__get_packed_size(&e);
        uint8_t want[2048], got[2048];
        assert_true(want_len <= sizeof want);
        assert_int_equal(sluice__envelope__pack(&e, want), want_len);
        assert_int_equal(slc_envelope_size(&e), want_len);
        assert_int_equal(slc_envelope_pack(&e, got), want_len);
        if (memcmp(got, want, want_len) != 0)
            fail_msg("round %d: envelope bytes differ from protobuf-c's", round);
    }
}

/* A command from a newer protocol: a oneof field this build does not know. */
static void test_unknown_command(void **state)
{
    (void) state;
    /* corr = 7; field 99 (length-delimited) = "hi"; field 90 varint = 1 */
    static const uint8_t bytes[] = {
        0x08, 0x07,
        0x9a, 0x06, 0x02, 'h', 'i',
        0xd0, 0x05, 0x01,
    };
    Sluice__Frame *got = NULL;
    assert_int_equal(slc_frame_decode(bytes, sizeof bytes, &got), 0);
    assert_int_equal(got->corr, 7);
    assert_int_equal(got->body_case, SLUICE__FRAME__BODY__NOT_SET);
    assert_string_equal(slc_frame_name(got), "unknown");
    slc_frame_free(&got);
}

static void test_frame_name(void **state)
{
    (void) state;
    static const struct { Sluice__Frame__BodyCase body; const char *name; } names[] = {
        { SLUICE__FRAME__BODY_HELLO, "hello" },
        { SLUICE__FRAME__BODY_HELLO_OK, "hello_ok" },
        { SLUICE__FRAME__BODY_HEARTBEAT, "heartbeat" },
        { SLUICE__FRAME__BODY_PUBLISH, "publish" },
        { SLUICE__FRAME__BODY_PUBLISH_BATCH, "publish_batch" },
        { SLUICE__FRAME__BODY_PUBLISH_ACK, "publish_ack" },
        { SLUICE__FRAME__BODY_SUBSCRIBE, "subscribe" },
        { SLUICE__FRAME__BODY_DELIVER, "deliver" },
        { SLUICE__FRAME__BODY_ACK, "ack" },
        { SLUICE__FRAME__BODY_NACK, "nack" },
        { SLUICE__FRAME__BODY_STATS, "stats" },
        { SLUICE__FRAME__BODY_ERROR, "error" },
        { SLUICE__FRAME__BODY__NOT_SET, "unknown" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        Sluice__Frame f = SLUICE__FRAME__INIT;
        f.body_case = names[i].body;
        assert_string_equal(slc_frame_name(&f), names[i].name);
    }
}

/* Receive one whole message part from SOCKET into a new frame. */
static Sluice__Frame *s_recv_frame(void *socket)
{
    zmq_msg_t msg;
    Sluice__Frame *frame = NULL;
    assert_int_equal(zmq_msg_init(&msg), 0);
    assert_true(zmq_msg_recv(&msg, socket, 0) >= 0);
    assert_false(zmq_msg_more(&msg));
    assert_int_equal(slc_frame_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &frame), 0);
    assert_int_equal(zmq_msg_close(&msg), 0);
    return frame;
}

static void test_send_recv(void **state)
{
    (void) state;
    void *ctx = zmq_ctx_new();
    assert_non_null(ctx);
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    assert_non_null(router);
    assert_non_null(dealer);
    int one = 1, timeout = 5000;
    assert_int_equal(zmq_setsockopt(router, ZMQ_ROUTER_MANDATORY, &one, sizeof one), 0);
    assert_int_equal(zmq_setsockopt(router, ZMQ_RCVTIMEO, &timeout, sizeof timeout), 0);
    assert_int_equal(zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout), 0);
    static const char id[] = "client-1";
    assert_int_equal(zmq_setsockopt(dealer, ZMQ_ROUTING_ID, id, sizeof id - 1), 0);
    assert_int_equal(zmq_bind(router, "inproc://test_codec"), 0);

    /* DEALER without a peer: would block. */
    batch_t b;
    s_batch_init(&b);
    assert_int_equal(slc_frame_send(dealer, NULL, 0, &b.frame, ZMQ_DONTWAIT), SL_EBUSY);
    assert_int_equal(zmq_connect(dealer, "inproc://test_codec"), 0);

    /* DEALER -> ROUTER: the router sees the routing id, then the frame. */
    assert_int_equal(slc_frame_send(dealer, NULL, 0, &b.frame, 0), 0);
    char rid[256];
    int n = zmq_recv(router, rid, sizeof rid, 0);
    assert_int_equal(n, (int) sizeof id - 1);
    assert_memory_equal(rid, id, sizeof id - 1);
    int more = 0;
    size_t more_len = sizeof more;
    assert_int_equal(zmq_getsockopt(router, ZMQ_RCVMORE, &more, &more_len), 0);
    assert_true(more);
    Sluice__Frame *got = s_recv_frame(router);
    s_assert_batch(got, &b);
    slc_frame_free(&got);

    /* ROUTER -> DEALER by routing id: the dealer gets only the frame. */
    Sluice__Frame reply = SLUICE__FRAME__INIT;
    Sluice__Error error = SLUICE__ERROR__INIT;
    error.code = -SL_ETOOBIG;
    error.text = (char *) "too big";
    reply.corr = 42;
    reply.body_case = SLUICE__FRAME__BODY_ERROR;
    reply.error = &error;
    assert_int_equal(slc_frame_send(router, rid, (size_t) n, &reply, 0), 0);
    got = s_recv_frame(dealer);
    assert_int_equal(got->corr, 42);
    assert_int_equal(got->body_case, SLUICE__FRAME__BODY_ERROR);
    assert_int_equal(got->error->code, 413);
    assert_string_equal(got->error->text, "too big");
    assert_string_equal(slc_frame_name(got), "error");
    slc_frame_free(&got);

    /* ROUTER to a peer that is not there (ROUTER_MANDATORY): unavailable. */
    assert_int_equal(slc_frame_send(router, "nobody", 6, &reply, ZMQ_DONTWAIT),
                     SL_EUNAVAIL);

    assert_int_equal(zmq_close(dealer), 0);
    assert_int_equal(zmq_close(router), 0);
    assert_int_equal(zmq_ctx_term(ctx), 0);
}

/* ------------------------------------------------------ whole strings */

/* The frames of the string tests: each puts TEXT into one string field (a
 * name the broker acts on, or a text), packed into *LEN bytes (caller
 * frees). PATH is what slc_frame_why names. */
enum {
    S_PUBLISH, S_BATCH_PLAIN, S_BATCH_HEADER, S_BATCH_LINEAGE, S_SUB_PATTERN,
    S_SUB_NAME, S_SUB_REMOVE, S_KEY_ADD, S_KEY_REVOKE, S_GRANT, S_SCHEMA_REGISTER,
    S_SCHEMA_GET, S_TOPIC_SET, S_TOPIC_CREATE, S_MAPPING_GET, S_MAPPING_REMOVE,
    S_MAPPING_ADD, S_HELLO, S_CONTENT_TYPE, S_DELIVERY_TOPIC, S_NCASES
};
static const char *const s_paths[S_NCASES] = {
    "publish.msg.topic", "publish_batch.msgs[1].topic",
    "publish_batch.msgs[2].headers[1].value", "publish_batch.msgs[1].lineage.route",
    "subscribe.pattern", "subscribe.name", "sub_remove.name", "key_add.name",
    "key_revoke.name", "grant_change.grants[1].pattern", "schema_register.subject",
    "schema_get.subject", "topic_set.topic", "topic_create.name", "mapping_get.name",
    "mapping_remove.name", "mapping_add.yaml", "hello.client",
    "publish_batch.msgs[0].content_type", "deliver.msgs[0].topic",
};

static uint8_t *s_string_frame(int which, const char *text, size_t *len)
{
    static uint8_t key[32] = { 1, 2, 3 };
    Sluice__Frame f = SLUICE__FRAME__INIT;
    Sluice__Publish pub = SLUICE__PUBLISH__INIT;
    Sluice__Envelope env = SLUICE__ENVELOPE__INIT;
    Sluice__Subscribe sub = SLUICE__SUBSCRIBE__INIT;
    Sluice__SubRemove rm = SLUICE__SUB_REMOVE__INIT;
    Sluice__KeyAdd ka = SLUICE__KEY_ADD__INIT;
    Sluice__KeyRevoke kr = SLUICE__KEY_REVOKE__INIT;
    Sluice__Grant g[2] = { SLUICE__GRANT__INIT, SLUICE__GRANT__INIT };
    Sluice__Grant *gp[2] = { &g[0], &g[1] };
    Sluice__GrantChange gc = SLUICE__GRANT_CHANGE__INIT;
    Sluice__SchemaRegister sr = SLUICE__SCHEMA_REGISTER__INIT;
    Sluice__SchemaGet sg = SLUICE__SCHEMA_GET__INIT;
    Sluice__TopicSet ts = SLUICE__TOPIC_SET__INIT;
    Sluice__TopicCreate tc = SLUICE__TOPIC_CREATE__INIT;
    Sluice__MappingGet mg = SLUICE__MAPPING_GET__INIT;
    Sluice__MappingRemove mr = SLUICE__MAPPING_REMOVE__INIT;
    Sluice__MappingAdd ma = SLUICE__MAPPING_ADD__INIT;
    Sluice__Hello hello = SLUICE__HELLO__INIT;
    Sluice__Delivery d = SLUICE__DELIVERY__INIT, *dp[1] = { &d };
    Sluice__Deliver dl = SLUICE__DELIVER__INIT;
    char yaml[256];
    batch_t b;
    f.corr = 77;
    switch (which) {
    case S_PUBLISH:
        env.topic = (char *) text;
        env.payload.data = (uint8_t *) "{}";
        env.payload.len = 2;
        pub.msg = &env;
        f.body_case = SLUICE__FRAME__BODY_PUBLISH;
        f.publish = &pub;
        break;
    case S_BATCH_PLAIN:         /* the by-reference reader's frame */
        s_batch_init_plain(&b);
        b.env[1].topic = (char *) text;
        f = b.frame;
        break;
    case S_BATCH_HEADER:        /* protobuf-c's */
        s_batch_init(&b);
        b.hdr[2][1].value = (char *) text;
        f = b.frame;
        break;
    case S_BATCH_LINEAGE:
        s_batch_init(&b);
        b.lineage.route = (char *) text;
        f = b.frame;
        break;
    case S_CONTENT_TYPE:
        s_batch_init_plain(&b);
        b.env[0].content_type = (char *) text;
        f = b.frame;
        break;
    case S_SUB_PATTERN:
    case S_SUB_NAME:
        sub.name = which == S_SUB_NAME ? (char *) text : "orders-eu";
        sub.pattern = which == S_SUB_PATTERN ? (char *) text : "orders.eu";
        f.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
        f.subscribe = &sub;
        break;
    case S_SUB_REMOVE:
        rm.name = (char *) text;
        f.body_case = SLUICE__FRAME__BODY_SUB_REMOVE;
        f.sub_remove = &rm;
        break;
    case S_KEY_ADD:
        ka.name = (char *) text;
        ka.public_key.data = key;
        ka.public_key.len = sizeof key;
        f.body_case = SLUICE__FRAME__BODY_KEY_ADD;
        f.key_add = &ka;
        break;
    case S_KEY_REVOKE:
        kr.name = (char *) text;
        f.body_case = SLUICE__FRAME__BODY_KEY_REVOKE;
        f.key_revoke = &kr;
        break;
    case S_GRANT:
        g[0].perms = 1;
        g[0].pattern = "orders.>";
        g[1].perms = 2;
        g[1].pattern = (char *) text;
        gc.name = "alice";
        gc.grants = gp;
        gc.n_grants = 2;
        f.body_case = SLUICE__FRAME__BODY_GRANT_CHANGE;
        f.grant_change = &gc;
        break;
    case S_SCHEMA_REGISTER:
        sr.subject = (char *) text;
        sr.schema = "{\"type\": \"object\"}";
        f.body_case = SLUICE__FRAME__BODY_SCHEMA_REGISTER;
        f.schema_register = &sr;
        break;
    case S_SCHEMA_GET:
        sg.subject = (char *) text;
        f.body_case = SLUICE__FRAME__BODY_SCHEMA_GET;
        f.schema_get = &sg;
        break;
    case S_TOPIC_SET:
        ts.topic = (char *) text;
        ts.subject = "orders";
        f.body_case = SLUICE__FRAME__BODY_TOPIC_SET;
        f.topic_set = &ts;
        break;
    case S_TOPIC_CREATE:
        tc.name = (char *) text;
        f.body_case = SLUICE__FRAME__BODY_TOPIC_CREATE;
        f.topic_create = &tc;
        break;
    case S_MAPPING_GET:
        mg.name = (char *) text;
        f.body_case = SLUICE__FRAME__BODY_MAPPING_GET;
        f.mapping_get = &mg;
        break;
    case S_MAPPING_REMOVE:
        mr.name = (char *) text;
        f.body_case = SLUICE__FRAME__BODY_MAPPING_REMOVE;
        f.mapping_remove = &mr;
        break;
    case S_MAPPING_ADD:
        snprintf(yaml, sizeof yaml, "name: %s\nfrom: a@1\nto: b@1\nmap:\n  x: $.x\n", text);
        ma.yaml = yaml;
        f.body_case = SLUICE__FRAME__BODY_MAPPING_ADD;
        f.mapping_add = &ma;
        break;
    case S_HELLO:
        hello.version = 1;
        hello.client = (char *) text;
        f.body_case = SLUICE__FRAME__BODY_HELLO;
        f.hello = &hello;
        break;
    case S_DELIVERY_TOPIC:
        d.sub_id = 1;
        d.topic = (char *) text;
        d.offset = 5;
        d.token = 9;
        d.envelope.data = (uint8_t *) "\x0a\x06orders\x32\x30" "012345678901234567890123456789012345678901234567";
        d.envelope.len = 8 + 2 + 48;
        dl.msgs = dp;
        dl.n_msgs = 1;
        f.body_case = SLUICE__FRAME__BODY_DELIVER;
        f.deliver = &dl;
        break;
    default:
        fail();
    }
    return s_pack(&f, len);
}

/* The '~' inside the one copy of TEXT in BUF (LEN bytes): the byte the
 * string tests overwrite, so that the field keeps its length. */
static uint8_t *s_tilde(uint8_t *buf, size_t len, const char *text)
{
    size_t n = strlen(text);
    uint8_t *at = memmem(buf, len, text, n);
    assert_non_null(at);
    assert_null(memmem(at + 1, len - (size_t) (at + 1 - buf), text, n));
    uint8_t *t = memchr(at, '~', n);
    assert_non_null(t);
    return t;
}

/* A NUL in any string field, at any depth, on either decoder's path: the
 * frame does not decode, and slc_frame_why names the field. The same
 * frame with '~' in its place decodes: the NUL alone is refused. (Before,
 * protobuf-c's C string stopped at the NUL: "shop.a\0hr.salaries" decoded
 * as shop.a, KeyAdd "a\0b" as a.) */
static void test_string_nul(void **state)
{
    (void) state;
    static const char *const texts[S_NCASES] = {
        "shop.a~hr.salaries", "shop.a~hr.salaries", "v~w", "r~oute", "orders.~>",
        "sub~x", "sub~x", "a~b", "a~b", "a.~>", "subj~x", "subj~x", "shop.a~hr",
        "shop.a~hr", "m~x", "m~x", "m~x", "cli~ent", "text/~plain", "orders.~eu",
    };
    for (int i = 0; i < S_NCASES; i++) {
        size_t len;
        uint8_t *buf = s_string_frame(i, texts[i], &len);
        Sluice__Frame *f = NULL;
        if (slc_frame_decode(buf, len, &f) != 0)
            fail_msg("%s: the frame without a NUL does not decode", s_paths[i]);
        slc_frame_free(&f);
        if (slc_frame_decode_ref(buf, len, &f) != 0)
            fail_msg("%s: the frame without a NUL does not decode by reference", s_paths[i]);
        slc_frame_free(&f);
        *s_tilde(buf, len, texts[i]) = 0;
        f = (Sluice__Frame *) 1;
        int rc = slc_frame_decode(buf, len, &f);
        if (rc != SL_EMALFORMED || f)
            fail_msg("%s with a NUL: slc_frame_decode gave %d", s_paths[i], rc);
        f = (Sluice__Frame *) 1;
        rc = slc_frame_decode_ref(buf, len, &f);
        if (rc != SL_EMALFORMED || f)
            fail_msg("%s with a NUL: slc_frame_decode_ref gave %d", s_paths[i], rc);
        char why[256], want[256];
        slc_frame_why(buf, len, why, sizeof why);
        snprintf(want, sizeof want, "frame does not decode: string field %s holds a NUL byte",
                 s_paths[i]);
        if (strncmp(why, want, strlen(want)) != 0)
            fail_msg("why: \"%s\", expected it to start \"%s\"", why, want);
        free(buf);
    }
    /* A frame that is not protobuf at all says so. */
    char why[256];
    slc_frame_why("\xff\xff\xff", 3, why, sizeof why);
    assert_string_equal(why, "frame does not decode as a sluice Frame (protobuf)");
    slc_frame_why("\x72\x03\x0a\x01", 4, why, 8);     /* cut to WHYLEN */
    assert_int_equal(strlen(why), 7);
}

/* Bytes that are not UTF-8 in a string field (proto3 requires it) are
 * refused the same way; UTF-8 of 2, 3 and 4 bytes is taken as sent. Names
 * stay ASCII by their grammar, which slc_topic_validate applies. */
static void test_string_utf8(void **state)
{
    (void) state;
    static const struct { uint8_t b[4]; size_t n; } bad[] = {
        { { 0xc3, 0x28 }, 2 },                  /* lead without continuation */
        { { 0xc0, 0xaf }, 2 },                  /* overlong '/' */
        { { 0xe0, 0x80, 0xaf }, 3 },            /* overlong, 3 bytes */
        { { 0xed, 0xa0, 0x80 }, 3 },            /* a UTF-16 surrogate */
        { { 0xf4, 0x90, 0x80, 0x80 }, 4 },      /* above U+10FFFF */
        { { 0xff }, 1 }, { { 0x80 }, 1 }, { { 0xe2, 0x82 }, 2 },    /* cut short */
    };
    static const int where[] = { S_CONTENT_TYPE, S_BATCH_HEADER, S_PUBLISH, S_KEY_ADD };
    for (size_t w = 0; w < sizeof where / sizeof where[0]; w++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            /* '~' then filler: the bad bytes replace them, length kept. */
            size_t len;
            uint8_t *buf = s_string_frame(where[w], "x~@@@z", &len);
            uint8_t *at = s_tilde(buf, len, "x~@@@z");
            memcpy(at, bad[i].b, bad[i].n);
            for (size_t k = bad[i].n; k < 4; k++)
                at[k] = 'y';
            Sluice__Frame *f = NULL;
            assert_int_equal(slc_frame_decode(buf, len, &f), SL_EMALFORMED);
            assert_int_equal(slc_frame_decode_ref(buf, len, &f), SL_EMALFORMED);
            assert_null(f);
            char why[256], want[256];
            slc_frame_why(buf, len, why, sizeof why);
            snprintf(want, sizeof want, "frame does not decode: string field %s is not UTF-8",
                     s_paths[where[w]]);
            if (strncmp(why, want, strlen(want)) != 0)
                fail_msg("case %zu: why \"%s\"", i, why);
            free(buf);
        }

    /* é, ☕, 𝄞 (2, 3 and 4 bytes) where text is free: decoded as sent. */
    static const char *utf8 = "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9d\x84\x9e";
    static const int free_text[] = { S_BATCH_HEADER, S_CONTENT_TYPE, S_HELLO, S_BATCH_LINEAGE };
    for (size_t w = 0; w < sizeof free_text / sizeof free_text[0]; w++) {
        size_t len;
        uint8_t *buf = s_string_frame(free_text[w], utf8, &len);
        Sluice__Frame *f = NULL, *g = NULL;
        assert_int_equal(slc_frame_decode(buf, len, &f), 0);
        assert_int_equal(slc_frame_decode_ref(buf, len, &g), 0);
        const char *got = free_text[w] == S_HELLO ? f->hello->client
                        : free_text[w] == S_CONTENT_TYPE
                          ? g->publish_batch->msgs[0]->content_type
                        : free_text[w] == S_BATCH_LINEAGE
                          ? f->publish_batch->msgs[1]->lineage->route
                        : f->publish_batch->msgs[2]->headers[1]->value;
        assert_string_equal(got, utf8);
        slc_frame_free(&f);
        slc_frame_free(&g);
        free(buf);
    }
    /* In a topic the codec takes UTF-8 too; the name's grammar refuses it
     * (a 422 for that message, not a 400 for the frame). */
    size_t len;
    uint8_t *buf = s_string_frame(S_BATCH_PLAIN, "caf\xc3\xa9", &len);
    Sluice__Frame *f = NULL;
    assert_int_equal(slc_frame_decode_ref(buf, len, &f), 0);
    assert_string_equal(f->publish_batch->msgs[1]->topic, "caf\xc3\xa9");
    assert_int_equal(slc_topic_validate(f->publish_batch->msgs[1]->topic, false), SL_EINVAL);
    slc_frame_free(&f);
    free(buf);
}

/* Only string fields are read: a NUL or any byte in a bytes field (a
 * payload, a key, the stored envelope a Deliver carries) is data. A stored
 * envelope decodes as it was stored, also one written before the check. */
static void test_string_bytes_fields(void **state)
{
    (void) state;
    size_t len;
    uint8_t *buf = s_string_frame(S_DELIVERY_TOPIC, "orders", &len);
    uint8_t *at = memmem(buf, len, "\x0a\x06orders", 8);
    assert_non_null(at);
    at[5] = 0;                  /* the envelope's topic: "ord\0rs" */
    at[10] = 0xff;              /* and a payload byte that is not UTF-8 */
    Sluice__Frame *f = NULL;
    assert_int_equal(slc_frame_decode(buf, len, &f), 0);
    slc_frame_free(&f);
    assert_int_equal(slc_frame_decode_ref(buf, len, &f), 0);
    const Sluice__Delivery *d = f->deliver->msgs[0];
    Sluice__Envelope *e = NULL;
    assert_int_equal(slc_envelope_decode(d->envelope.data, d->envelope.len, &e), 0);
    assert_string_equal(e->topic, "ord");
    slc_envelope_free(&e);
    slc_frame_free(&f);
    free(buf);

    batch_t b;                  /* payloads and producer ids with NULs and 0xff */
    s_batch_init_plain(&b);
    for (size_t i = 0; i < N_MSGS; i++)
        b.payload[i][0] = 0xff, b.producer[i] = 0;
    buf = s_pack(&b.frame, &len);
    assert_int_equal(slc_frame_decode_ref(buf, len, &f), 0);
    s_assert_batch(f, &b);
    slc_frame_free(&f);
    free(buf);
}

/* The broker's replies may quote a name cut inside a character (a mapping
 * name cut at 64 bytes in its error): slc_frame_texts_repair makes every
 * string UTF-8 again, each stray byte a '?', lengths kept, so the reply
 * decodes; a PublishAck whose texts are whole is left as it is. */
static void test_texts_repair(void **state)
{
    (void) state;
    Sluice__Error err = SLUICE__ERROR__INIT;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    err.code = 422;
    err.text = "bad mapping name 'a\xc3\xa9\xc3\xa9\xc3' (\xff\xe2\x82)";
    f.corr = 5;
    f.body_case = SLUICE__FRAME__BODY_ERROR;
    f.error = &err;
    zmq_msg_t msg;
    assert_int_equal(slc_frame_encode(&f, &msg), 0);
    size_t len = zmq_msg_size(&msg);
    Sluice__Frame *got = NULL;
    assert_int_equal(slc_frame_decode(zmq_msg_data(&msg), len, &got), SL_EMALFORMED);
    slc_frame_texts_repair(&f, &msg);
    assert_int_equal(zmq_msg_size(&msg), len);
    assert_int_equal(slc_frame_decode(zmq_msg_data(&msg), len, &got), 0);
    assert_string_equal(got->error->text, "bad mapping name 'a\xc3\xa9\xc3\xa9?' (?" "?" "?)");
    slc_frame_free(&got);
    zmq_msg_close(&msg);

    Sluice__Confirm c[3] = { SLUICE__CONFIRM__INIT, SLUICE__CONFIRM__INIT,
                             SLUICE__CONFIRM__INIT };
    Sluice__Confirm *cp[3] = { &c[0], &c[1], &c[2] };
    Sluice__PublishAck pa = SLUICE__PUBLISH_ACK__INIT;
    Sluice__Frame af = SLUICE__FRAME__INIT;
    c[0].offset = 7;
    c[1].code = 422;
    c[1].text = "/name: 'Jos\xc3\xa9' is not one of ['Ren\xc3";      /* cut at a buffer's end */
    c[2].code = 413;
    c[2].text = "too big";
    pa.confirms = cp;
    pa.n_confirms = 3;
    af.body_case = SLUICE__FRAME__BODY_PUBLISH_ACK;
    af.publish_ack = &pa;
    assert_int_equal(slc_frame_encode(&af, &msg), 0);
    slc_frame_texts_repair(&af, &msg);
    assert_int_equal(slc_frame_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &got), 0);
    assert_string_equal(got->publish_ack->confirms[1]->text,
                        "/name: 'Jos\xc3\xa9' is not one of ['Ren?");
    assert_string_equal(got->publish_ack->confirms[2]->text, "too big");
    slc_frame_free(&got);
    zmq_msg_close(&msg);
    c[1].text = "/name: 'Jos\xc3\xa9' is not one of ['Ren\xc3\xa9" "e']";
    assert_int_equal(slc_frame_encode(&af, &msg), 0);
    len = zmq_msg_size(&msg);
    uint8_t *before = malloc(len);
    assert_non_null(before);
    memcpy(before, zmq_msg_data(&msg), len);
    slc_frame_texts_repair(&af, &msg);
    assert_memory_equal(zmq_msg_data(&msg), before, len);
    free(before);
    zmq_msg_close(&msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_envelope_spans),
        cmocka_unit_test(test_deliver_bytes),
        cmocka_unit_test(test_decode_ref_batch),
        cmocka_unit_test(test_decode_ref_merge),
        cmocka_unit_test(test_decode_ref_deliver),
        cmocka_unit_test(test_decode_in),
        cmocka_unit_test(test_envelope_pack),
        cmocka_unit_test(test_unknown_command),
        cmocka_unit_test(test_frame_name),
        cmocka_unit_test(test_send_recv),
        cmocka_unit_test(test_string_nul),
        cmocka_unit_test(test_string_utf8),
        cmocka_unit_test(test_string_bytes_fields),
        cmocka_unit_test(test_texts_repair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
