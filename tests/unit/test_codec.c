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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
