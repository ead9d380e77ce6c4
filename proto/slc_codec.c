/*  slc_codec - protobuf-c frames to and from ZeroMQ messages.
 *  Stateless; any thread. Size limits are the caller's: it knows its peer.  */
#include "slc_codec.h"
#include <errno.h>
#include <stdlib.h>

int slc_frame_decode(const void *data, size_t len, Sluice__Frame **out)
{
    *out = sluice__frame__unpack(NULL, len, data);
    return *out ? 0 : SL_EMALFORMED;
}

void slc_frame_free(Sluice__Frame **frame_p)
{
    if (frame_p && *frame_p) {
        sluice__frame__free_unpacked(*frame_p, NULL);
        *frame_p = NULL;
    }
}

int slc_envelope_decode(const void *data, size_t len, Sluice__Envelope **out)
{
    *out = sluice__envelope__unpack(NULL, len, data);
    return *out ? 0 : SL_EMALFORMED;
}

void slc_envelope_free(Sluice__Envelope **env_p)
{
    if (env_p && *env_p) {
        sluice__envelope__free_unpacked(*env_p, NULL);
        *env_p = NULL;
    }
}

int slc_frame_encode(const Sluice__Frame *frame, zmq_msg_t *msg)
{
    size_t len = sluice__frame__get_packed_size(frame);
    if (zmq_msg_init_size(msg, len) != 0)
        return SL_ENOMEM;
    sluice__frame__pack(frame, zmq_msg_data(msg));
    return 0;
}

static int s_send_errno(void)
{
    if (errno == EAGAIN)
        return SL_EBUSY;
    if (errno == EHOSTUNREACH || errno == ENOTSOCK || errno == ETERM)
        return SL_EUNAVAIL;
    return SL_ESYS;
}

int slc_frame_send(void *socket, const void *routing_id, size_t id_len,
                   const Sluice__Frame *frame, int flags)
{
    zmq_msg_t msg;
    int rc = slc_frame_encode(frame, &msg);
    if (rc)
        return rc;
    if (routing_id
        && zmq_send(socket, routing_id, id_len, flags | ZMQ_SNDMORE) < 0) {
        rc = s_send_errno();
        goto fail;
    }
    if (zmq_msg_send(&msg, socket, flags) < 0) {
        rc = s_send_errno();
        goto fail;
    }
    return 0;
fail:
    zmq_msg_close(&msg);
    return rc;
}

const char *slc_frame_name(const Sluice__Frame *frame)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &sluice__frame__descriptor, (unsigned) frame->body_case);
    return f ? f->name : "unknown";
}
