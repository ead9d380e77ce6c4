/*  sld_outbox - how a module that is not the server sends a frame to a
 *  session: a function and its argument, handed in at creation. The server
 *  implements it (encode, queue on the ROUTER socket); delivery uses it; a
 *  unit test passes a fake that records frames. Header only, no state.
 *  Called on the thread that owns the sending module (the broker thread, or
 *  the helper thread during a pump-ahead while the broker thread waits).  */
#ifndef SLD_OUTBOX_H
#define SLD_OUTBOX_H
#include "slc_codec.h"

/* A connected peer. Opaque outside the server's sessions module: other
 * modules only keep and compare the pointer. */
typedef struct sld_session sld_session_t;

/* Send FRAME (borrowed for the call) to SESSION. 0, SL_EBUSY when the
 * peer's send queue is full (the frame is dropped, the session stays), or
 * another negative code when the peer is gone (the server then tells the
 * sending module the session is gone). */
typedef int (sld_outbox_send_fn)(void *arg, sld_session_t *session,
                                 const Sluice__Frame *frame);

typedef struct {
    sld_outbox_send_fn *send;
    void *arg;                  /* passed to SEND */
} sld_outbox_t;

#endif
