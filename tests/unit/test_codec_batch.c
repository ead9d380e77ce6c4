/*  test_codec_batch - the hand-built PublishBatch of slc_codec (the SDK's
 *  publish hot path: slc_publish_batch_*, slc_batch_msg_*) against
 *  protobuf-c: the same bytes as sluice__frame__pack, and fields that
 *  sluice__frame__unpack reads back; and slc_frame_set_body. Single
 *  thread, no sockets. Does not test envelope encoding (test_codec).  */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "slc_codec.h"

#define N_MSGS 4

typedef struct {
    Sluice__Envelope env[N_MSGS];
    Sluice__Envelope *envp[N_MSGS];
    uint8_t *enc[N_MSGS];       /* each envelope encoded once */
    size_t len[N_MSGS];
    uint8_t producer[SLC_PRODUCER_ID_LEN];
} envs_t;

/* Payload sizes that give one-, two- and three-byte length varints. */
static const size_t s_sizes[N_MSGS] = { 0, 5, 300, 20000 };

static void s_envs_init(envs_t *e, bool transient)
{
    static const char *topics[N_MSGS] = { "a", "shop.orders.eu", "x.y", "big" };
    for (size_t i = 0; i < sizeof e->producer; i++)
        e->producer[i] = (uint8_t) (0xa0 + i);
    for (size_t i = 0; i < N_MSGS; i++) {
        Sluice__Envelope env = SLUICE__ENVELOPE__INIT;
        e->env[i] = env;
        e->env[i].topic = (char *) topics[i];
        if (!transient) {
            e->env[i].seq = 1000 + i;
            e->env[i].producer_id.data = e->producer;
            e->env[i].producer_id.len = sizeof e->producer;
        }
        uint8_t *payload = malloc(s_sizes[i] + 1);
        assert_non_null(payload);
        for (size_t k = 0; k < s_sizes[i]; k++)
            payload[k] = (uint8_t) (k * 7 + i);
        e->env[i].payload.data = payload;
        e->env[i].payload.len = s_sizes[i];
        e->envp[i] = &e->env[i];
        e->len[i] = slc_envelope_size(&e->env[i]);
        e->enc[i] = malloc(e->len[i] + 1);
        assert_non_null(e->enc[i]);
        assert_int_equal(slc_envelope_pack(&e->env[i], e->enc[i]), e->len[i]);
    }
}

static void s_envs_free(envs_t *e)
{
    for (size_t i = 0; i < N_MSGS; i++) {
        free(e->env[i].payload.data);
        free(e->enc[i]);
    }
}

/* What protobuf-c makes of {corr, publish_batch {ENVS[0..n), transient}}. */
static uint8_t *s_reference(envs_t *e, size_t n, uint64_t corr, bool transient,
                            size_t *len)
{
    Sluice__PublishBatch b = SLUICE__PUBLISH_BATCH__INIT;
    b.n_msgs = n;
    b.msgs = e->envp;
    b.transient = transient;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.corr = corr;
    f.body_case = SLUICE__FRAME__BODY_PUBLISH_BATCH;
    f.publish_batch = &b;
    *len = sluice__frame__get_packed_size(&f);
    uint8_t *out = malloc(*len + 1);
    assert_non_null(out);
    assert_int_equal(sluice__frame__pack(&f, out), *len);
    return out;
}

/* Decode DATA with protobuf-c and compare with what went in. */
static void s_check_decoded(const envs_t *e, size_t n, uint64_t corr,
                            bool transient, const uint8_t *data, size_t len)
{
    Sluice__Frame *f = sluice__frame__unpack(NULL, len, data);
    assert_non_null(f);
    assert_true(f->corr == corr);
    assert_int_equal(f->body_case, SLUICE__FRAME__BODY_PUBLISH_BATCH);
    assert_int_equal(f->publish_batch->n_msgs, n);
    assert_int_equal(f->publish_batch->transient, transient);
    for (size_t i = 0; i < n; i++) {
        const Sluice__Envelope *d = f->publish_batch->msgs[i];
        assert_string_equal(d->topic, e->env[i].topic);
        assert_true(d->seq == e->env[i].seq);
        assert_int_equal(d->producer_id.len, e->env[i].producer_id.len);
        assert_int_equal(d->payload.len, e->env[i].payload.len);
        if (d->payload.len)
            assert_memory_equal(d->payload.data, e->env[i].payload.data,
                                d->payload.len);
    }
    sluice__frame__free_unpacked(f, NULL);
}

/* A durable batch as sl_pub sends it: head, then each stored envelope. */
static void t_durable(void **state)
{
    (void) state;
    static const uint64_t corrs[] = { 1, 127, 128, 1ull << 40, UINT64_MAX };
    envs_t e;
    s_envs_init(&e, false);
    for (size_t c = 0; c < sizeof corrs / sizeof corrs[0]; c++)
        for (size_t n = 0; n <= N_MSGS; n++) {
            size_t msgs = 0;
            for (size_t i = 0; i < n; i++)
                msgs += slc_batch_msg_size(e.len[i]);
            size_t total = slc_publish_batch_size(corrs[c], msgs, false);
            uint8_t *buf = malloc(total + 1);
            assert_non_null(buf);
            uint8_t *p = slc_publish_batch_open(buf, corrs[c], msgs, false);
            for (size_t i = 0; i < n; i++) {
                p = slc_batch_msg_head(p, e.len[i]);
                memcpy(p, e.enc[i], e.len[i]);
                p += e.len[i];
            }
            p = slc_publish_batch_close(p, false);
            assert_int_equal((size_t) (p - buf), total);
            size_t rlen;
            uint8_t *ref = s_reference(&e, n, corrs[c], false, &rlen);
            assert_int_equal(total, rlen);
            assert_memory_equal(buf, ref, rlen);
            s_check_decoded(&e, n, corrs[c], false, buf, total);
            free(ref);
            free(buf);
        }
    s_envs_free(&e);
}

/* A transient batch as sl_pub sends it: msgs fields gathered in a buffer
 * (envelopes packed in place), then framed with transient set. */
static void t_transient(void **state)
{
    (void) state;
    envs_t e;
    s_envs_init(&e, true);
    for (size_t n = 1; n <= N_MSGS; n++) {
        uint8_t *tbuf = malloc(64 * 1024);
        assert_non_null(tbuf);
        size_t tlen = 0;
        for (size_t i = 0; i < n; i++) {
            slc_envelope_pack(&e.env[i], slc_batch_msg_head(tbuf + tlen, e.len[i]));
            tlen += slc_batch_msg_size(e.len[i]);
        }
        uint64_t corr = 300 + n;
        size_t total = slc_publish_batch_size(corr, tlen, true);
        uint8_t *buf = malloc(total);
        assert_non_null(buf);
        uint8_t *p = slc_publish_batch_open(buf, corr, tlen, true);
        memcpy(p, tbuf, tlen);
        p = slc_publish_batch_close(p + tlen, true);
        assert_int_equal((size_t) (p - buf), total);
        size_t rlen;
        uint8_t *ref = s_reference(&e, n, corr, true, &rlen);
        assert_int_equal(total, rlen);
        assert_memory_equal(buf, ref, rlen);
        s_check_decoded(&e, n, corr, true, buf, total);
        free(ref);
        free(buf);
        free(tbuf);
    }
    s_envs_free(&e);
}

static void t_set_body(void **state)
{
    (void) state;
    Sluice__TopicCreate tc = SLUICE__TOPIC_CREATE__INIT;
    tc.name = (char *) "orders";
    Sluice__Frame f = SLUICE__FRAME__INIT;
    assert_int_equal(slc_frame_set_body(&f, SLUICE__FRAME__BODY_TOPIC_CREATE, &tc), 0);
    assert_int_equal(f.body_case, SLUICE__FRAME__BODY_TOPIC_CREATE);
    assert_ptr_equal(f.topic_create, &tc);
    Sluice__Frame g = SLUICE__FRAME__INIT;
    g.body_case = SLUICE__FRAME__BODY_TOPIC_CREATE;
    g.topic_create = &tc;
    size_t len = sluice__frame__get_packed_size(&f);
    assert_int_equal(len, sluice__frame__get_packed_size(&g));
    uint8_t a[64], b[64];
    assert_true(len <= sizeof a);
    sluice__frame__pack(&f, a);
    sluice__frame__pack(&g, b);
    assert_memory_equal(a, b, len);
    /* Not a message field of the body: refused, frame unchanged. */
    Sluice__Frame h = SLUICE__FRAME__INIT;
    assert_int_equal(slc_frame_set_body(&h, SLUICE__FRAME__BODY__NOT_SET, &tc), SL_EINVAL);
    assert_int_equal(slc_frame_set_body(&h, (Sluice__Frame__BodyCase) 1, &tc), SL_EINVAL);
    assert_int_equal(slc_frame_set_body(&h, (Sluice__Frame__BodyCase) 9999, &tc), SL_EINVAL);
    assert_int_equal(h.body_case, SLUICE__FRAME__BODY__NOT_SET);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_durable),
        cmocka_unit_test(t_transient),
        cmocka_unit_test(t_set_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
