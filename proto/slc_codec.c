/*  slc_codec - protobuf-c frames to and from ZeroMQ messages.
 *  Stateless; any thread. Size limits are the caller's: it knows its peer.  */
#include "slc_codec.h"
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

/* protobuf-c accepts a field number 0 written in two or more bytes and keeps
 * it as an unknown field, but packs it back in one byte, which no decoder
 * accepts: a stored envelope or a relayed frame would then not decode. Such
 * input is malformed; this finds it in M or any message inside M. */
static bool s_has_tag0(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return true;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *) m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *) (base + f->quantifier_offset);
            ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *) (base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (v[k] && s_has_tag0(v[k]))
                    return true;
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            && *(const uint32_t *) (base + f->quantifier_offset) != f->id)
            continue;
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *) (base + f->offset);
        if (sub && s_has_tag0(sub))
            return true;
    }
    return false;
}

int slc_frame_decode(const void *data, size_t len, Sluice__Frame **out)
{
    *out = sluice__frame__unpack(NULL, len, data);
    if (*out && s_has_tag0(&(*out)->base))
        slc_frame_free(out);
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
    if (*out && s_has_tag0(&(*out)->base))
        slc_envelope_free(out);
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
