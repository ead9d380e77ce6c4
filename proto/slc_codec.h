/*  slc_codec - the one door to the generated protobuf-c code: decode a wire
 *  frame with limits, encode a frame into a ZeroMQ message, send it.
 *  Broker and SDK use the generated Sluice__* structs through this header;
 *  nothing else includes sluice.pb-c.h. Any thread; no state.  */
#ifndef SLC_CODEC_H
#define SLC_CODEC_H
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>
#include "sluice.pb-c.h"
#include "slc.h"

/* Decode one wire frame of LEN bytes. Returns 0 and sets *out (caller owns,
 * free with slc_frame_free), or SL_EMALFORMED. */
int slc_frame_decode(const void *data, size_t len, Sluice__Frame **out);

/* Free a frame from slc_frame_decode. NULL-safe; sets *frame_p to NULL. */
void slc_frame_free(Sluice__Frame **frame_p);

/* Decode an encoded Envelope (as stored and as carried in Delivery).
 * 0 and *out (caller owns, slc_envelope_free), or SL_EMALFORMED. */
int slc_envelope_decode(const void *data, size_t len, Sluice__Envelope **out);
void slc_envelope_free(Sluice__Envelope **env_p);

/* Encode FRAME into MSG (initialised here; the caller sends or closes it).
 * 0 or SL_ENOMEM. */
int slc_frame_encode(const Sluice__Frame *frame, zmq_msg_t *msg);

/* Send FRAME on SOCKET. With ROUTING_ID (borrowed, LEN bytes) a routing
 * frame goes first (the ROUTER side); with NULL only the frame (DEALER).
 * FLAGS are zmq_send flags (ZMQ_DONTWAIT). 0, SL_EBUSY when the socket
 * would block, SL_EUNAVAIL when the peer is gone, or SL_ENOMEM. */
int slc_frame_send(void *socket, const void *routing_id, size_t id_len,
                   const Sluice__Frame *frame, int flags);

/* Name of the command a frame carries, for logs ("publish_batch", ...). */
const char *slc_frame_name(const Sluice__Frame *frame);

#endif
