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
 * WHY (WHYLEN bytes): "frame does not decode: string field PATH holds a
 * NUL byte" (or "is not UTF-8"), PATH as in publish_batch.msgs[2].topic;
 * else that the bytes are not a sluice Frame. Walks DATA again: for the
 * error path. */
void slc_frame_why(const void *data, size_t len, char *why, size_t whylen);

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

#endif
