/*  fuzz_frame - libFuzzer target for the wire codec (proto/slc_codec.h):
 *  arbitrary bytes through slc_frame_decode / slc_frame_name /
 *  slc_frame_encode / slc_frame_free, and through slc_envelope_decode (the
 *  stored record and Delivery.envelope format). Checks what the broker and
 *  the SDK rely on without re-checking: a decoded command's body is never
 *  NULL, envelope strings are never NULL, an envelope repacked the way the
 *  broker stores it decodes again, encode(decode(x)) is a fixed point, the
 *  by-reference decoders agree with protobuf-c, and a frame decodes only
 *  when every string field in it, at any depth, is UTF-8 without NUL (a
 *  naive reference walk, so no name reaches the broker cut short), and
 *  slc_frame_texts_repair leaves none bad.
 *  Single thread; no state between inputs.  */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ref_text.h"
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

/* Pack E as the broker stores it (a stamped shallow copy, sld_ingest.c
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

static bool s_ref_varint(const uint8_t *b, size_t len, size_t *i, uint64_t *v)
{
    *v = 0;
    for (unsigned k = 0; k < 10; k++) {
        if (*i >= len)
            return false;
        uint8_t c = b[(*i)++];
        *v |= (uint64_t) (c & 0x7f) << (7 * k);
        if (!(c & 0x80))
            return true;
    }
    return false;
}

/* Does a string field of the DESC message at B (LEN bytes), at any depth,
 * break ref_text_valid? 1 yes, 0 no, -1 when the bytes cannot be walked
 * (no claim then). Fields are looked up one by one, the slow way. */
static int s_ref_strings_bad(const ProtobufCMessageDescriptor *desc, const uint8_t *b,
                             size_t len)
{
    size_t i = 0;
    int bad = 0;
    while (i < len) {
        uint64_t key, v;
        if (!s_ref_varint(b, len, &i, &key))
            return -1;
        switch (key & 7) {
        case 0:
            if (!s_ref_varint(b, len, &i, &v))
                return -1;
            continue;
        case 1:
        case 5:
            v = (key & 7) == 1 ? 8 : 4;
            if (len - i < v)
                return -1;
            i += v;
            continue;
        case 2:
            break;
        default:
            return -1;
        }
        if (!s_ref_varint(b, len, &i, &v) || v > len - i)
            return -1;
        const ProtobufCFieldDescriptor *f = NULL;
        for (unsigned k = 0; k < desc->n_fields; k++)
            if (desc->fields[k].id == key >> 3)
                f = &desc->fields[k];
        if (f && f->type == PROTOBUF_C_TYPE_STRING && !ref_text_valid(b + i, v))
            bad = 1;
        else if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
            int r = s_ref_strings_bad(f->descriptor, b + i, v);
            if (r < 0)
                return -1;
            bad |= r;
        }
        i += v;
    }
    return bad;
}

/* Both decoders refuse a frame with a bad string and decode none that has
 * one; a refused frame's explanation names a string field exactly when
 * one is bad. */
static void s_check_strings(const uint8_t *data, size_t size)
{
    int bad = s_ref_strings_bad(&sluice__frame__descriptor, data, size);
    Sluice__Frame *f = NULL;
    int rc = slc_frame_decode(data, size, &f);
    slc_frame_free(&f);
    S_CHECK(rc != 0 || bad == 0);
    S_CHECK(bad != 1 || rc == SL_EMALFORMED);
    if (rc == 0)
        return;
    char why[256];
    slc_frame_why(data, size, why, sizeof why);
    bool named = strncmp(why, "frame does not decode: string field ", 36) == 0;
    S_CHECK(!named || bad != 0);
    S_CHECK(bad != 1 || named);
}

/* slc_frame_texts_repair (the broker's replies) leaves no bad string in a
 * frame it can walk, and changes nothing in a frame without one. */
static void s_check_repair(const uint8_t *data, size_t size)
{
    zmq_msg_t msg;
    S_CHECK(zmq_msg_init_size(&msg, size) == 0);
    if (size)
        memcpy(zmq_msg_data(&msg), data, size);
    Sluice__Frame none = SLUICE__FRAME__INIT;     /* no shortcut: walk it all */
    slc_frame_texts_repair(&none, &msg);
    S_CHECK(zmq_msg_size(&msg) == size);
    S_CHECK(s_ref_strings_bad(&sluice__frame__descriptor, zmq_msg_data(&msg), size) != 1);
    if (s_ref_strings_bad(&sluice__frame__descriptor, data, size) == 0)
        S_CHECK(size == 0 || memcmp(zmq_msg_data(&msg), data, size) == 0);
    zmq_msg_close(&msg);
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
    s_check_strings(data, size);
    s_check_repair(data, size);
    return 0;
}
