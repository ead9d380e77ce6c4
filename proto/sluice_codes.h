/*  sluice_codes - the result codes shared by the SDK, the broker and the wire.
 *  Installed with libsluice; included by sluice.h and by the broker's slc.
 *  A C function returns 0 or one of the negative SL_E* values below; on the
 *  wire (Error.code, Confirm.code) the same value travels without its sign,
 *  grouped like HTTP: 4xx the request is wrong, 5xx the broker or the
 *  environment failed. slc_strerror / sl_strerror name every one.  */
#ifndef SLUICE_CODES_H
#define SLUICE_CODES_H

enum {
    SL_OK         = 0,
    SL_EMALFORMED = -400,   /* frame or protobuf could not be decoded */
    SL_ENOSESSION = -401,   /* command before a successful Hello */
    SL_EDENIED    = -403,   /* not permitted for this identity */
    SL_ENOTFOUND  = -404,   /* unknown topic, subscription or offset */
    SL_ECOMMAND   = -405,   /* unknown or unexpected command */
    SL_EAUTH      = -407,   /* the broker did not admit this client's key
                               (unknown or revoked), or the client has the
                               wrong server key (client side) */
    SL_ETIMEOUT   = -408,   /* no answer in time (client side) */
    SL_ESTALE     = -409,   /* conflict: an ack/nack for a superseded delivery attempt,
                                   an expected version that is no longer live, a mapping in use */
    SL_EEXIST     = -412,   /* exists with a different definition */
    SL_ETOOBIG    = -413,   /* message or frame larger than allowed */
    SL_EINVAL     = -422,   /* invalid argument: topic name, option, value */
    SL_EVERSION   = -426,   /* unsupported protocol version */
    SL_EBUSY      = -429,   /* backpressure or limit reached: retry later */
    SL_EINTERNAL  = -500,   /* a bug: the broker logged the details */
    SL_ESTORE     = -502,   /* storage failed (I/O, corrupt data) */
    SL_EUNAVAIL   = -503,   /* broker unreachable or shutting down */
    SL_ENOMEM     = -504,   /* out of memory */
    SL_ESYS       = -505,   /* operating-system call failed; errno is logged */
    SL_EFULL      = -507,   /* storage full: publishes refused until space frees */
};

#endif
