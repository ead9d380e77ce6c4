/*  fuzz_frame - libFuzzer target for the wire codec (proto/slc_codec.h):
 *  arbitrary bytes through slc_frame_decode / slc_frame_name /
 *  slc_frame_encode / slc_frame_free, and through slc_envelope_decode (the
 *  stored record and Delivery.envelope format). Checks what the broker and
 *  the SDK rely on without re-checking: a decoded command's body is never
 *  NULL, envelope strings are never NULL, an envelope repacked the way the
 *  broker stores it decodes again, encode(decode(x)) is a fixed point, and
 *  the by-reference decoders agree with protobuf-c.
 *  Single thread; no state between inputs.  */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slc_codec.h"

#define S_CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_frame: %s:%d: check failed: %s\n", \
                    __FILE__, __LINE__, #cond); \
            abort(); \
        } \
    } while (0)

/* The strings a reader may use without a NULL test. */
static void s_check_envelope(const Sluice__Envelope *e)
{
    S_CHECK(e->topic && e->content_type && e->source);
    for (size_t i = 0; i < e->n_headers; i++)
        S_CHECK(e->headers[i] && e->headers[i]->key && e->headers[i]->value);
    S_CHECK(e->producer_id.len == 0 || e->producer_id.data);
    S_CHECK(e->payload.len == 0 || e->payload.data);
}

/* Pack E as the broker stores it (a stamped shallow copy, sld_server.c
 * s_ingest) and decode the result: a stored record must always decode. */
static void s_check_restamp(const Sluice__Envelope *e)
{
    Sluice__Envelope stamped = *e;
    stamped.ingest_ts_us = UINT64_MAX;
    if (!*e->source)
        stamped.source = (char *) "fuzz";
    size_t len = sluice__envelope__get_packed_size(&stamped);
    uint8_t *buf = malloc(len + 1);
    S_CHECK(buf);
    S_CHECK(sluice__envelope__pack(&stamped, buf) == len);
    /* The hand-written packer writes the same bytes. */
    uint8_t *fast = malloc(len + 1);
    S_CHECK(fast);
    S_CHECK(slc_envelope_size(&stamped) == len);
    S_CHECK(slc_envelope_pack(&stamped, fast) == len && memcmp(fast, buf, len) == 0);
    free(fast);
    Sluice__Envelope *back = NULL;
    S_CHECK(slc_envelope_decode(buf, len, &back) == 0);
    s_check_envelope(back);
    /* Strings are C strings: an inner NUL ends them in the copy too. */
    S_CHECK(strcmp(back->topic, e->topic) == 0);
    S_CHECK(back->payload.len == e->payload.len);
    S_CHECK(back->n_headers == e->n_headers);
    S_CHECK(back->ingest_ts_us == UINT64_MAX);
    slc_envelope_free(&back);
    S_CHECK(back == NULL);
    free(buf);
}

/* Bytes that claim to be an encoded Envelope (Delivery.envelope). */
static void s_check_envelope_bytes(const void *data, size_t len)
{
    Sluice__Envelope *e = NULL;
    if (slc_envelope_decode(data, len, &e) != 0) {
        S_CHECK(e == NULL);
        return;
    }
    s_check_envelope(e);
    s_check_restamp(e);
    slc_envelope_free(&e);
    S_CHECK(e == NULL);
}

/* The oneof member named by body_case, read through the descriptor so that
 * commands added to sluice.proto later are covered without editing this. */
static const void *s_body(const Sluice__Frame *f)
{
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(
        &sluice__frame__descriptor, (unsigned) f->body_case);
    S_CHECK(fd && fd->type == PROTOBUF_C_TYPE_MESSAGE);
    const void *body = NULL;
    memcpy(&body, (const char *) f + fd->offset, sizeof body);
    return body;
}

static void s_check_frame(const Sluice__Frame *f)
{
    const char *name = slc_frame_name(f);
    S_CHECK(name && *name);
    if (f->body_case == SLUICE__FRAME__BODY__NOT_SET) {
        S_CHECK(strcmp(name, "unknown") == 0);
        return;
    }
    S_CHECK(s_body(f) != NULL);         /* the broker dereferences it */
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_PUBLISH:
        if (f->publish->msg) {
            s_check_envelope(f->publish->msg);
            s_check_restamp(f->publish->msg);
        }
        break;
    case SLUICE__FRAME__BODY_PUBLISH_BATCH:
        for (size_t i = 0; i < f->publish_batch->n_msgs; i++) {
            S_CHECK(f->publish_batch->msgs[i]);
            s_check_envelope(f->publish_batch->msgs[i]);
            s_check_restamp(f->publish_batch->msgs[i]);
        }
        break;
    case SLUICE__FRAME__BODY_DELIVER:
        for (size_t i = 0; i < f->deliver->n_msgs; i++) {
            const Sluice__Delivery *d = f->deliver->msgs[i];
            S_CHECK(d && d->topic);
            s_check_envelope_bytes(d->envelope.data, d->envelope.len);
        }
        break;
    case SLUICE__FRAME__BODY_ACK:
        for (size_t i = 0; i < f->ack->n_items; i++)
            S_CHECK(f->ack->items[i]);
        break;
    case SLUICE__FRAME__BODY_NACK:
        for (size_t i = 0; i < f->nack->n_items; i++)
            S_CHECK(f->nack->items[i]);
        S_CHECK(f->nack->reason);
        break;
    case SLUICE__FRAME__BODY_SUBSCRIBE:
        S_CHECK(f->subscribe->name && f->subscribe->pattern);
        break;
    case SLUICE__FRAME__BODY_HELLO:
        S_CHECK(f->hello->client);
        break;
    case SLUICE__FRAME__BODY_TOPIC_CREATE:
        S_CHECK(f->topic_create->name);
        break;
    case SLUICE__FRAME__BODY_SUB_REMOVE:
        S_CHECK(f->sub_remove->name);
        break;
    default:
        break;
    }
}

/* Encode F, returning the bytes (caller frees) and their length. */
static uint8_t *s_encode(const Sluice__Frame *f, size_t *len)
{
    zmq_msg_t msg;
    S_CHECK(slc_frame_encode(f, &msg) == 0);
    *len = zmq_msg_size(&msg);
    uint8_t *out = malloc(*len + 1);
    S_CHECK(out);
    if (*len)
        memcpy(out, zmq_msg_data(&msg), *len);
    zmq_msg_close(&msg);
    return out;
}

/* encode(decode(x)) decodes again, to the same command, and encodes to the
 * same bytes: what a peer sends after decoding is stable. */
static void s_check_roundtrip(const Sluice__Frame *f)
{
    size_t len1 = 0, len2 = 0;
    uint8_t *once = s_encode(f, &len1);
    Sluice__Frame *g = NULL;
    S_CHECK(slc_frame_decode(once, len1, &g) == 0);
    S_CHECK(g->body_case == f->body_case && g->corr == f->corr);
    S_CHECK(strcmp(slc_frame_name(g), slc_frame_name(f)) == 0);
    uint8_t *twice = s_encode(g, &len2);
    S_CHECK(len1 == len2 && memcmp(once, twice, len1) == 0);
    slc_frame_free(&g);
    free(once);
    free(twice);
}

/* The by-reference decoders take a subset of what protobuf-c takes and must
 * decode it to the same values: both succeed or both fail, and what they
 * decode encodes to the same bytes. */
static void s_check_ref(const uint8_t *data, size_t size)
{
    Sluice__Frame *copy = NULL, *ref = NULL;
    int rc_copy = slc_frame_decode(data, size, &copy);
    int rc_ref = slc_frame_decode_ref(data, size, &ref);
    S_CHECK(rc_copy == rc_ref);
    if (rc_copy == 0) {
        size_t l1 = 0, l2 = 0;
        uint8_t *b1 = s_encode(copy, &l1), *b2 = s_encode(ref, &l2);
        S_CHECK(l1 == l2 && memcmp(b1, b2, l1) == 0);
        s_check_frame(ref);
        free(b1);
        free(b2);
    }
    slc_frame_free(&copy);
    slc_frame_free(&ref);
    Sluice__Envelope *ec = NULL, *er = NULL;
    rc_copy = slc_envelope_decode(data, size, &ec);
    rc_ref = slc_envelope_decode_ref(data, size, &er);
    S_CHECK(rc_copy == rc_ref);
    if (rc_copy == 0) {
        size_t l1 = sluice__envelope__get_packed_size(ec);
        size_t l2 = sluice__envelope__get_packed_size(er);
        S_CHECK(l1 == l2);
        uint8_t *b1 = malloc(l1 + 1), *b2 = malloc(l2 + 1);
        S_CHECK(b1 && b2);
        sluice__envelope__pack(ec, b1);
        sluice__envelope__pack(er, b2);
        S_CHECK(memcmp(b1, b2, l1) == 0);
        s_check_envelope(er);
        free(b1);
        free(b2);
    }
    /* Into a caller's buffer: the same envelope, whichever way it went. */
    _Alignas(max_align_t) unsigned char buf[SLC_ENVELOPE_BUF_MIN + 64];
    Sluice__Envelope *eb = NULL;
    bool in_buf = false;
    S_CHECK(slc_envelope_decode_in(buf, sizeof buf, data, size, &eb, &in_buf) == rc_copy);
    if (rc_copy == 0) {
        S_CHECK(sluice__envelope__get_packed_size(eb)
                == sluice__envelope__get_packed_size(ec));
        S_CHECK(strcmp(eb->topic, ec->topic) == 0 && eb->payload.len == ec->payload.len);
        if (in_buf)
            slc_envelope_release(buf);
        else
            slc_envelope_free(&eb);
    }
    slc_envelope_free(&ec);
    slc_envelope_free(&er);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Sluice__Frame *f = NULL;
    if (slc_frame_decode(data, size, &f) == 0) {
        s_check_frame(f);
        s_check_roundtrip(f);
        slc_frame_free(&f);
        S_CHECK(f == NULL);
        slc_frame_free(&f);             /* NULL-safe, as documented */
    }
    else
        S_CHECK(f == NULL);
    s_check_envelope_bytes(data, size);
    s_check_ref(data, size);
    return 0;
}
