/*  slc_codec - the one door to the generated protobuf-c code: decode a wire
 *  frame with limits (every string whole: UTF-8 without NUL), encode a
 *  frame into a ZeroMQ message, send it.
 *  Broker and SDK use the generated Sluice__* structs through this header;
 *  nothing else includes sluice.pb-c.h. Any thread; no state.  */
#ifndef SLC_CODEC_H
#define SLC_CODEC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>
#include "sluice.pb-c.h"
#include "slc.h"

/* Decode one wire frame of LEN bytes. Returns 0 and sets *out (caller owns,
 * free with slc_frame_free), or SL_EMALFORMED: bytes that are not a Frame,
 * or a Frame with a string field, at any depth, that is not UTF-8 or holds
 * a NUL byte (slc_text_valid), so that every string of a decoded frame is
 * whole as a C string. */
int slc_frame_decode(const void *data, size_t len, Sluice__Frame **out);

/* Why DATA (LEN bytes), which slc_frame_decode or slc_frame_decode_ref
 * refused with SL_EMALFORMED, does not decode, for the 400's text, into
 * ERR (ERRLEN bytes): "frame does not decode: string field PATH holds a
 * NUL byte" (or "is not UTF-8"), PATH as in publish_batch.msgs[2].topic;
 * else that the bytes are not a sluice Frame. Walks DATA again: for the
 * error path. */
void slc_frame_why(const void *data, size_t len, char *err, size_t errlen);

/* Free a frame from slc_frame_decode. NULL-safe; sets *frame_p to NULL. */
void slc_frame_free(Sluice__Frame **frame_p);

/* Decode an encoded Envelope (as stored and as carried in Delivery).
 * 0 and *out (caller owns, slc_envelope_free), or SL_EMALFORMED. Its
 * strings are not checked as a Frame's are: a stored envelope is the bytes
 * of a checked frame, and one stored before the check reads as before. */
int slc_envelope_decode(const void *data, size_t len, Sluice__Envelope **out);
void slc_envelope_free(Sluice__Envelope **env_p);

/* Like slc_frame_decode and slc_envelope_decode, but without copying the
 * bulk: the payloads and producer ids of a PublishBatch's envelopes, the
 * envelopes of a Deliver's deliveries and an envelope's payload may point
 * into DATA, which must then stay alive and unchanged until the frame or
 * envelope is freed. (Moving a zmq_msg_t with zmq_msg_move keeps its bytes
 * where they are for the sizes this takes by reference; shorter input is
 * copied.) Other frames are decoded as slc_frame_decode does; a frame's
 * strings are checked as slc_frame_decode checks them. 0, or
 * SL_EMALFORMED, or SL_ENOMEM. */
int slc_frame_decode_ref(const void *data, size_t len, Sluice__Frame **out);
int slc_envelope_decode_ref(const void *data, size_t len, Sluice__Envelope **out);

/* slc_envelope_decode_ref into the caller's BUF (CAP bytes, aligned for
 * max_align_t): no allocation when the envelope and its strings fit, as a
 * subscriber's message with its topic does. *IN_BUF says where it went:
 * true, release with slc_envelope_release(BUF); false (BUF too small for
 * the form, or an envelope protobuf-c decodes), slc_envelope_free. */
#define SLC_ENVELOPE_BUF_MIN 256
int slc_envelope_decode_in(void *buf, size_t cap, const void *data, size_t len,
                           Sluice__Envelope **out, bool *in_buf);
void slc_envelope_release(void *buf);

/* Size of E encoded, and E encoded at OUT (that many bytes; returns it):
 * byte for byte what sluice__envelope__get_packed_size / __pack give,
 * written directly for envelopes without headers or lineage. */
size_t slc_envelope_size(const Sluice__Envelope *e);
size_t slc_envelope_pack(const Sluice__Envelope *e, uint8_t *out);

/* Encode FRAME into MSG (initialised here; the caller sends or closes it).
 * 0 or SL_ENOMEM. */
int slc_frame_encode(const Sluice__Frame *frame, zmq_msg_t *msg);

/* Make the strings of FRAME, encoded into MSG by slc_frame_encode, UTF-8
 * again where they are not, in place: each byte that is not part of a
 * well-formed character becomes '?', so every length stays. For a sender
 * of composed texts (the broker's replies) that may quote a name or a
 * value cut inside a character: a receiver (the SDK, any proto3 parser)
 * refuses a frame whose strings are not UTF-8. Client input is not
 * repaired: it is refused (slc_frame_decode). */
void slc_frame_texts_repair(const Sluice__Frame *frame, zmq_msg_t *msg);

/* Send FRAME on SOCKET. With ROUTING_ID (borrowed, LEN bytes) a routing
 * frame goes first (the ROUTER side); with NULL only the frame (DEALER).
 * FLAGS are zmq_send flags (ZMQ_DONTWAIT). 0, SL_EBUSY when the socket
 * would block, SL_EUNAVAIL when the peer is gone, or SL_ENOMEM. */
int slc_frame_send(void *socket, const void *routing_id, size_t id_len,
                   const Sluice__Frame *frame, int flags);

/* Name of the command a frame carries, for logs ("publish_batch", ...). */
const char *slc_frame_name(const Sluice__Frame *frame);

/* Where each envelope of a Publish or PublishBatch frame lies in its
 * encoding: the broker stores those bytes instead of encoding every
 * envelope again. */
typedef struct {
    size_t off;                 /* from the start of the frame */
    size_t len;
} slc_span_t;

/* For the frame DATA (LEN bytes) that decoded to F, a Publish or a
 * PublishBatch of N envelopes: 0 and SPANS[i] (caller's array of N) the
 * encoding of envelope i, or SL_EMALFORMED when the frame is not laid out
 * plainly (its body in two parts, say): then encode the envelopes. */
int slc_frame_envelope_spans(const void *data, size_t len, const Sluice__Frame *f,
                             slc_span_t *spans, size_t n);

/* Frame.corr read from the leading fields of DATA (LEN bytes) without
 * decoding the rest, for answering a frame too big or too damaged to
 * decode; 0 when no well-formed corr field comes before damage. */
uint64_t slc_frame_peek_corr(const void *data, size_t len);

/* Protobuf base-128 varints, for the few frames built by hand on hot paths
 * (the SDK's publish batches, the broker's stored envelopes). */
static inline size_t slc_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Write V at P; returns the byte after it. */
static inline uint8_t *slc_varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t) (v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t) v;
    return p;
}

/* A PublishBatch frame assembled from envelopes encoded once (the SDK's
 * publish hot path: a resend never encodes again), byte for byte what
 * sluice__frame__pack gives for {corr, publish_batch {msgs, transient}}.
 * MSGS is the byte count of the msgs fields (each slc_batch_msg_size).
 * The caller sizes one buffer with slc_publish_batch_size, writes the head
 * with slc_publish_batch_open, each msgs field (slc_batch_msg_head, then
 * the envelope's bytes) and ends with slc_publish_batch_close: no
 * allocation, the envelopes copied once. */
#define SLC_TAG_BATCH_MSG 0x0a      /* PublishBatch.msgs (1), bytes */

/* Bytes a msgs field holding an envelope of LEN bytes takes. */
static inline size_t slc_batch_msg_size(size_t len)
{
    return 1 + slc_varint_len(len) + len;
}

/* Write the tag and length of a msgs field of LEN bytes at P; the
 * envelope's LEN bytes go at the pointer returned. */
static inline uint8_t *slc_batch_msg_head(uint8_t *p, size_t len)
{
    *p++ = SLC_TAG_BATCH_MSG;
    return slc_varint_put(p, len);
}

size_t slc_publish_batch_size(uint64_t corr, size_t msgs, bool transient);
/* Frame.corr and the publish_batch field's tag and length at P; the msgs
 * fields go at the pointer returned. */
uint8_t *slc_publish_batch_open(uint8_t *p, uint64_t corr, size_t msgs,
                                bool transient);
/* PublishBatch.transient after the msgs fields; returns the frame's end. */
uint8_t *slc_publish_batch_close(uint8_t *p, bool transient);

/* Point FRAME's body at MSG (borrowed), a message of the type BODY
 * carries, and set body_case: for callers that build requests of many
 * kinds through one path (the SDK's admin calls). 0, or SL_EINVAL when
 * BODY is no message field of Frame. */
int slc_frame_set_body(Sluice__Frame *frame, Sluice__Frame__BodyCase body,
                       void *msg);

/* The broker's fields of a stored envelope, appended after the bytes it
 * arrived in (protobuf's "the last value of a field wins"):
 * Envelope.ingest_ts_us = INGEST_TS_US and, when SOURCE is not NULL,
 * Envelope.source = SOURCE (SLEN bytes, borrowed). Written at OUT, which
 * has room for slc_envelope_stamp_max(SOURCE, SLEN) bytes; returns the
 * byte after the last one written. */
size_t slc_envelope_stamp_max(const char *source, size_t slen);
uint8_t *slc_envelope_stamp(uint8_t *out, uint64_t ingest_ts_us, const char *source,
                            size_t slen);

/* One more Envelope.headers entry {KEY (KLEN bytes), VALUE (VLEN bytes)}
 * appended to an encoded envelope (a repeated field adds up): exactly
 * slc_envelope_header_size(KLEN, VLEN) bytes written at OUT; returns the
 * byte after them. */
size_t slc_envelope_header_size(size_t klen, size_t vlen);
uint8_t *slc_envelope_header_put(uint8_t *out, const char *key, size_t klen,
                                 const char *value, size_t vlen);

#endif
