/*  slc_codec - protobuf-c frames to and from ZeroMQ messages.
 *  Stateless; any thread. Size limits are the caller's: it knows its peer.
 *
 *  Decoding allocates from an arena. protobuf-c makes one malloc per decoded
 *  message, string and bytes field (a batch of 1,000 small messages is some
 *  4,000 mallocs, and as many frees), which made malloc and free a fifth of
 *  the broker's and the SDK's work per message. slc_frame_decode and
 *  slc_envelope_decode instead give protobuf-c an allocator that bumps a
 *  pointer through chunks sized from the input, and the free functions drop
 *  the chunks whole. protobuf-c allocates the top message first, so it sits
 *  at the start of the first chunk, behind the arena header: that is how
 *  the free functions find the arena again. The consequence for callers: a
 *  decoded frame or envelope, and every pointer in it, are freed together
 *  and only by slc_frame_free / slc_envelope_free.  */
#include "slc_codec.h"
#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define S_ALIGN alignof(max_align_t)

/* A chunk taken when the arena's own space ran out. */
typedef struct s_chunk {
    struct s_chunk *next;       /* the chunk taken before this one */
    size_t cap, used;           /* bytes of data[] */
    alignas(max_align_t) unsigned char data[];
} s_chunk_t;

/* The arena: a header, then its first space, which holds the message. */
typedef struct {
    s_chunk_t *more;            /* later chunks, newest first; NULL at first */
    size_t cap, used;           /* bytes of data[] */
    alignas(max_align_t) unsigned char data[];
} s_arena_t;

/* Bump *USED by SIZE within CAP bytes at BASE: the old top, or NULL. */
static void *s_bump(unsigned char *base, size_t cap, size_t *used, size_t size)
{
    if (cap - *used < size)
        return NULL;
    void *p = base + *used;
    *used += size;
    return p;
}

static void *s_arena_alloc(void *data, size_t size)
{
    s_arena_t *a = data;
    size = (size + S_ALIGN - 1) & ~(S_ALIGN - 1);
    s_chunk_t *c = a->more;
    void *p = c ? s_bump(c->data, c->cap, &c->used, size)
                : s_bump(a->data, a->cap, &a->used, size);
    if (p)
        return p;
    size_t last = c ? c->cap : a->cap;
    size_t cap = last * 2 > size ? last * 2 : size;
    s_chunk_t *n = malloc(sizeof *n + cap);
    if (!n)
        return NULL;
    n->next = c;
    n->cap = cap;
    n->used = 0;
    a->more = n;
    return s_bump(n->data, n->cap, &n->used, size);
}

static void s_arena_free_one(void *data, void *ptr)
{
    (void) data;                /* everything goes with the arena */
    (void) ptr;
}

/* A new arena for decoding LEN bytes, or NULL. Decoded messages take a few
 * times their wire size (structs, pointer arrays, copied strings). */
static s_arena_t *s_arena_sized(size_t cap)
{
    s_arena_t *a = malloc(sizeof *a + cap);
    if (a) {
        a->more = NULL;
        a->cap = cap;
        a->used = 0;
    }
    return a;
}

static s_arena_t *s_arena_new(size_t len)
{
    return s_arena_sized(len < (SIZE_MAX - 4096) / 4 ? 3 * len + 256 : len);
}

static void s_arena_destroy(s_arena_t *a)
{
    for (s_chunk_t *c = a->more, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    free(a);
}

/* The arena whose first allocation is MSG. */
static s_arena_t *s_arena_of(const void *msg)
{
    return (s_arena_t *) ((char *) msg - offsetof(s_arena_t, data));
}

/* Unpack LEN bytes as a DESC message into an arena: the message, or NULL. */
static ProtobufCMessage *s_unpack(const ProtobufCMessageDescriptor *desc,
                                  const void *data, size_t len)
{
    s_arena_t *a = s_arena_new(len);
    if (!a)
        return NULL;
    ProtobufCAllocator alloc = { s_arena_alloc, s_arena_free_one, a };
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &alloc, len, data);
    if (!m) {
        s_arena_destroy(a);
        return NULL;
    }
    /* protobuf-c allocates the message first (see the top of the file). */
    assert((void *) m == (void *) a->data);
    return m;
}

static void s_unpacked_free(void *msg)
{
    if (msg)
        s_arena_destroy(s_arena_of(msg));
}

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

struct s_bad;
static int s_strings_check(const ProtobufCMessageDescriptor *desc, const uint8_t *b,
                           size_t len, struct s_bad *bad, bool fix);

int slc_frame_decode(const void *data, size_t len, Sluice__Frame **out)
{
    /* The strings first: a frame refused for one costs no unpack, and the
     * fields' heads the walk read are in the cache for protobuf-c. */
    *out = NULL;
    if (s_strings_check(&sluice__frame__descriptor, data, len, NULL, false) != 0)
        return SL_EMALFORMED;
    *out = (Sluice__Frame *) s_unpack(&sluice__frame__descriptor, data, len);
    if (*out && s_has_tag0(&(*out)->base))
        slc_frame_free(out);
    return *out ? 0 : SL_EMALFORMED;
}

void slc_frame_free(Sluice__Frame **frame_p)
{
    if (frame_p && *frame_p) {
        s_unpacked_free(*frame_p);
        *frame_p = NULL;
    }
}

int slc_envelope_decode(const void *data, size_t len, Sluice__Envelope **out)
{
    *out = (Sluice__Envelope *) s_unpack(&sluice__envelope__descriptor, data, len);
    if (*out && s_has_tag0(&(*out)->base))
        slc_envelope_free(out);
    return *out ? 0 : SL_EMALFORMED;
}

void slc_envelope_free(Sluice__Envelope **env_p)
{
    if (env_p && *env_p) {
        s_unpacked_free(*env_p);
        *env_p = NULL;
    }
}

/* Deliver frames are the broker's bulk output, one per batch of up to a
 * thousand deliveries, and protobuf-c's generic packing (a size pass and a
 * write pass, each walking the descriptors of every field of every item)
 * was a tenth of the broker's work. They are written here directly, field
 * by field, exactly as protobuf-c writes them (proto3: fields in number
 * order, zero values left out), which test_codec checks byte for byte.
 * Every other frame goes through protobuf-c. */
#define S_TAG_CORR 0x08                 /* Frame.corr (1), varint */
#define S_TAG_DELIVER 0x9a, 0x01        /* Frame.deliver (19), bytes: two bytes */
#define S_TAG_DELIVER_MSG 0x0a          /* Deliver.msgs (1), bytes */

/* Size of the varint field with one-byte tag holding V (0 when V is 0). */
static size_t s_vfield_len(uint64_t v)
{
    return v ? 1 + slc_varint_len(v) : 0;
}

static size_t s_bfield_len(size_t len)
{
    return len ? 1 + slc_varint_len(len) + len : 0;
}

static size_t s_delivery_len(const Sluice__Delivery *d)
{
    return s_vfield_len(d->sub_id) + s_vfield_len(d->topic_id)
         + s_bfield_len(d->topic ? strlen(d->topic) : 0)
         + s_vfield_len(d->offset) + s_vfield_len(d->token)
         + s_vfield_len(d->attempt) + s_bfield_len(d->envelope.len)
         + s_vfield_len(d->rewound ? 1 : 0);
}

static uint8_t *s_vfield_put(uint8_t *p, uint8_t tag, uint64_t v)
{
    if (!v)
        return p;
    *p++ = tag;
    return slc_varint_put(p, v);
}

static uint8_t *s_bfield_put(uint8_t *p, uint8_t tag, const void *data, size_t len)
{
    if (!len)
        return p;
    *p++ = tag;
    p = slc_varint_put(p, len);
    memcpy(p, data, len);
    return p + len;
}

static uint8_t *s_delivery_put(uint8_t *p, const Sluice__Delivery *d)
{
    p = s_vfield_put(p, 0x08, d->sub_id);
    p = s_vfield_put(p, 0x10, d->topic_id);
    p = s_bfield_put(p, 0x1a, d->topic, d->topic ? strlen(d->topic) : 0);
    p = s_vfield_put(p, 0x20, d->offset);
    p = s_vfield_put(p, 0x28, d->token);
    p = s_vfield_put(p, 0x30, d->attempt);
    p = s_bfield_put(p, 0x3a, d->envelope.data, d->envelope.len);
    return s_vfield_put(p, 0x40, d->rewound ? 1 : 0);
}

/* Envelopes are packed once per published message by the SDK and once per
 * transient message and subscriber by the broker; without headers, lineage
 * or unknown fields (the common case) they are written here, field by field
 * as protobuf-c writes them (test_codec and fuzz_frame compare the two). */
static bool s_envelope_plain(const Sluice__Envelope *e)
{
    return e->n_headers == 0 && !e->lineage && e->base.n_unknown_fields == 0;
}

static size_t s_slen(const char *s)
{
    return s ? strlen(s) : 0;
}

size_t slc_envelope_size(const Sluice__Envelope *e)
{
    if (!s_envelope_plain(e))
        return sluice__envelope__get_packed_size(e);
    return s_bfield_len(s_slen(e->topic)) + s_bfield_len(e->producer_id.len)
         + s_vfield_len(e->seq) + s_bfield_len(s_slen(e->content_type))
         + s_bfield_len(e->payload.len) + s_vfield_len(e->ingest_ts_us)
         + s_bfield_len(s_slen(e->source));
}

size_t slc_envelope_pack(const Sluice__Envelope *e, uint8_t *out)
{
    if (!s_envelope_plain(e))
        return sluice__envelope__pack(e, out);
    uint8_t *p = out;
    p = s_bfield_put(p, 0x0a, e->topic, s_slen(e->topic));
    p = s_bfield_put(p, 0x12, e->producer_id.data, e->producer_id.len);
    p = s_vfield_put(p, 0x18, e->seq);
    p = s_bfield_put(p, 0x2a, e->content_type, s_slen(e->content_type));
    p = s_bfield_put(p, 0x32, e->payload.data, e->payload.len);
    p = s_vfield_put(p, 0x38, e->ingest_ts_us);
    p = s_bfield_put(p, 0x42, e->source, s_slen(e->source));
    return (size_t) (p - out);
}

/* FRAME (a Deliver without unknown fields) into MSG. 0 or SL_ENOMEM. */
static int s_deliver_encode(const Sluice__Frame *frame, zmq_msg_t *msg)
{
    const Sluice__Deliver *dl = frame->deliver;
    static const uint8_t tag[] = { S_TAG_DELIVER };
    size_t body = 0;
    for (size_t i = 0; i < dl->n_msgs; i++) {
        size_t n = s_delivery_len(dl->msgs[i]);
        body += 1 + slc_varint_len(n) + n;
    }
    size_t len = s_vfield_len(frame->corr) + sizeof tag + slc_varint_len(body) + body;
    if (zmq_msg_init_size(msg, len) != 0)
        return SL_ENOMEM;
    uint8_t *p = zmq_msg_data(msg);
    p = s_vfield_put(p, S_TAG_CORR, frame->corr);
    memcpy(p, tag, sizeof tag);
    p = slc_varint_put(p + sizeof tag, body);
    for (size_t i = 0; i < dl->n_msgs; i++) {
        *p++ = S_TAG_DELIVER_MSG;
        p = slc_varint_put(p, s_delivery_len(dl->msgs[i]));
        p = s_delivery_put(p, dl->msgs[i]);
    }
    assert(p == (uint8_t *) zmq_msg_data(msg) + len);
    return 0;
}

/* True for a Deliver frame that s_deliver_encode writes as protobuf-c
 * would: no unknown fields anywhere (a decoded frame may carry some). */
static bool s_deliver_plain(const Sluice__Frame *frame)
{
    if (frame->body_case != SLUICE__FRAME__BODY_DELIVER || !frame->deliver
        || frame->base.n_unknown_fields || frame->deliver->base.n_unknown_fields)
        return false;
    for (size_t i = 0; i < frame->deliver->n_msgs; i++)
        if (frame->deliver->msgs[i]->base.n_unknown_fields)
            return false;
    return true;
}

int slc_frame_encode(const Sluice__Frame *frame, zmq_msg_t *msg)
{
    if (s_deliver_plain(frame))
        return s_deliver_encode(frame, msg);
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

/* Read a varint at *P (before END) into *V; false when it does not fit. */
static bool s_varint_get(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        r |= (uint64_t) (b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Step over the field at *P: its number in *FIELD; for a length-delimited
 * one its contents in *BODY and *BODY_LEN (else *BODY is NULL). False on a
 * field this reader does not take (groups) or that runs past END. */
static bool s_field_next(const uint8_t **p, const uint8_t *end, uint64_t *field,
                         const uint8_t **body, size_t *body_len)
{
    uint64_t key, v;
    *body = NULL;
    if (!s_varint_get(p, end, &key))
        return false;
    *field = key >> 3;
    switch (key & 7) {
    case 0:
        return s_varint_get(p, end, &v);
    case 1:
        if (end - *p < 8)
            return false;
        *p += 8;
        return true;
    case 5:
        if (end - *p < 4)
            return false;
        *p += 4;
        return true;
    case 2:
        if (!s_varint_get(p, end, &v) || v > (uint64_t) (end - *p))
            return false;
        *body = *p;
        *body_len = (size_t) v;
        *p += v;
        return true;
    default:
        return false;
    }
}

/* ------------------------------------------------------ whole strings
 *
 * protobuf-c hands every string field over as a C string, so a string
 * whose wire bytes hold a NUL looks shorter in C than it was sent: a topic
 * "shop.a\0hr.salaries" was checked and stored as shop.a while the stored
 * envelope kept every byte, and KeyAdd "a\0b" registered a. proto3 also
 * wants every string field to be UTF-8 (Google's parsers refuse a message
 * that breaks it, and so would a subscriber written with them). So every
 * decoded Frame has each string field checked on its wire bytes
 * (slc_text_valid): a walk guided by the generated descriptors that reads
 * the bytes of string fields only, descends into message fields and steps
 * over everything else by its length, so payloads, keys and the stored
 * envelopes of a Deliver (bytes fields) are never read. A frame that fails
 * does not decode, whatever field it is: the broker never sees a shortened
 * name, and a frame is decoded exactly as sent or not at all. The
 * by-reference reader below checks the strings it copies (s_ref_str) and
 * leaves a frame that fails to protobuf-c and this walk, which refuse it.
 * An envelope read back with slc_envelope_decode* is not walked: the broker
 * stores the bytes of walked frames. */

/* Where the walk stopped: the path to the field, innermost first. The walk
 * goes only as deep as the descriptors do (sluice.proto nests four deep
 * and has no recursive message), whatever the input. */
#define S_PATH_MAX 8
struct s_bad {
    const char *name[S_PATH_MAX];
    long index[S_PATH_MAX];     /* position in a repeated field, or -1 */
    size_t n;
    const char *what;           /* how the string is wrong; NULL: not protobuf */
};

/* How many fields numbered NUM come before AT in the message at B. */
static long s_index_before(const uint8_t *b, const uint8_t *at, uint64_t num)
{
    long k = 0;
    const uint8_t *p = b, *body;
    uint64_t field;
    size_t blen;
    while (p < at && s_field_next(&p, at, &field, &body, &blen))
        k += field == num;
    return k;
}

/* The field numbered NUM of DESC, or NULL. protobuf-c lists fields in
 * number order, and most messages number them 1..n: then it is found
 * without protobuf-c's binary search. */
static const ProtobufCFieldDescriptor *s_field_of(const ProtobufCMessageDescriptor *desc,
                                                  uint64_t num)
{
    if (num - 1 < desc->n_fields && desc->fields[num - 1].id == num)
        return &desc->fields[num - 1];
    return num <= UINT32_MAX ? protobuf_c_message_descriptor_get_field(desc, (unsigned) num)
                             : NULL;
}

/* Read a varint at *P (before END) into *V, the one-byte case inline: the
 * walk below reads two per field. False when it does not fit. */
static inline bool s_varint_fast(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    if (*p < end && **p < 0x80) {
        *v = *(*p)++;
        return true;
    }
    return s_varint_get(p, end, v);
}

/* Length of the character at S (N bytes left): 1-4, or 0 when no
 * well-formed character other than NUL starts there. */
static size_t s_char_len(const uint8_t *s, size_t n)
{
    for (size_t k = 1; k <= 4 && k <= n; k++)
        if (slc_text_valid(s, k))
            return k;
    return 0;
}

/* Every byte of the N at S that does not belong to a well-formed character
 * becomes '?': the text is UTF-8 and keeps its length. */
static void s_text_repair(uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = s_char_len(s + i, n - i);
        if (k)
            i += k;
        else
            s[i++] = '?';
    }
}

/* 0 when every string field of the DESC message at B (LEN bytes), and of
 * the messages inside it, is slc_text_valid; else SL_EMALFORMED and, when
 * BAD is not NULL, where and why (the walk is repeated for that). With FIX
 * (B is then writable) a bad string is repaired instead (s_text_repair)
 * and the walk goes on. Bytes it cannot step over (a group, a length past
 * the end) are malformed too: protobuf-c refuses them as well. */
static int s_strings_check(const ProtobufCMessageDescriptor *desc, const uint8_t *b,
                           size_t len, struct s_bad *bad, bool fix)
{
    const uint8_t *p = b, *end = b + len;
    while (p < end) {
        const uint8_t *at = p, *body;
        uint64_t key, v;
        if (!s_varint_fast(&p, end, &key))
            goto unreadable;
        switch (key & 7) {
        case 0:
            if (!s_varint_fast(&p, end, &v))
                goto unreadable;
            continue;
        case 1:
        case 5:
            v = (key & 7) == 1 ? 8 : 4;
            if ((uint64_t) (end - p) < v)
                goto unreadable;
            p += v;
            continue;
        case 2:
            if (!s_varint_fast(&p, end, &v) || v > (uint64_t) (end - p))
                goto unreadable;
            body = p;
            p += v;
            break;
        default:
            goto unreadable;
        }
        const ProtobufCFieldDescriptor *fd = s_field_of(desc, key >> 3);
        if (!fd)
            continue;           /* unknown: kept as bytes, never read */
        if (fd->type == PROTOBUF_C_TYPE_STRING) {
            if (slc_text_valid(body, (size_t) v))
                continue;
            if (fix) {
                s_text_repair((uint8_t *) body, (size_t) v);
                continue;
            }
            if (bad) {
                bad->n = 0;
                bad->what = memchr(body, 0, (size_t) v) ? "holds a NUL byte" : "is not UTF-8";
            }
        }
        else if (fd->type != PROTOBUF_C_TYPE_MESSAGE
                 || s_strings_check(fd->descriptor, body, (size_t) v, bad, fix) == 0)
            continue;
        if (bad && bad->n < S_PATH_MAX) {
            bad->name[bad->n] = fd->name;
            bad->index[bad->n] = fd->label == PROTOBUF_C_LABEL_REPEATED
                               ? s_index_before(b, at, key >> 3) : -1;
            bad->n++;
        }
        return SL_EMALFORMED;
    }
    return 0;
unreadable:
    if (bad) {
        bad->n = 0;
        bad->what = NULL;
    }
    return SL_EMALFORMED;
}

void slc_frame_why(const void *data, size_t len, char *err, size_t errlen)
{
    struct s_bad bad = { .n = 0 };
    if (s_strings_check(&sluice__frame__descriptor, data, len, &bad, false) == 0 || !bad.what) {
        slc_errf(err, errlen, "frame does not decode as a sluice Frame (protobuf)");
        return;
    }
    char path[S_PATH_MAX * 48] = "";
    size_t k = 0;
    for (size_t i = bad.n; i-- > 0 && k < sizeof path;) {
        int w = bad.index[i] >= 0
              ? snprintf(path + k, sizeof path - k, "%s%s[%ld]", k ? "." : "",
                         bad.name[i], bad.index[i])
              : snprintf(path + k, sizeof path - k, "%s%s", k ? "." : "", bad.name[i]);
        k += w > 0 ? (size_t) w : 0;
    }
    slc_errf(err, errlen, "frame does not decode: string field %s %s (string fields are "
             "UTF-8 without NUL bytes)", path, bad.what);
}

void slc_frame_texts_repair(const Sluice__Frame *frame, zmq_msg_t *msg)
{
    /* PublishAck is the bulk reply, all numbers but the texts of nacks:
     * those are looked at in the struct, and the frame walked only when
     * one is bad. */
    if (frame->body_case == SLUICE__FRAME__BODY_PUBLISH_ACK && frame->publish_ack) {
        const Sluice__PublishAck *pa = frame->publish_ack;
        size_t i = 0;
        for (const char *t; i < pa->n_confirms; i++)
            if ((t = pa->confirms[i]->text) && *t && !slc_text_valid(t, strlen(t)))
                break;
        if (i == pa->n_confirms)
            return;
    }
    s_strings_check(&sluice__frame__descriptor, zmq_msg_data(msg), zmq_msg_size(msg), NULL,
                    true);
}

uint64_t slc_frame_peek_corr(const void *data, size_t len)
{
    const uint8_t *p = data, *end = p + len;
    while (p < end) {
        const uint8_t *at = p, *body;
        uint64_t key, v, field;
        size_t body_len;
        if (!s_varint_get(&p, end, &key))
            return 0;
        if (key == (1 << 3 | 0))        /* Frame.corr, a varint */
            return s_varint_get(&p, end, &v) ? v : 0;
        p = at;
        if (!s_field_next(&p, end, &field, &body, &body_len))
            return 0;
    }
    return 0;
}

int slc_frame_envelope_spans(const void *data, size_t len, const Sluice__Frame *f,
                             slc_span_t *spans, size_t n)
{
    uint64_t want;              /* the Frame field that holds the body */
    if (f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH)
        want = SLUICE__FRAME__BODY_PUBLISH_BATCH;
    else if (f->body_case == SLUICE__FRAME__BODY_PUBLISH)
        want = SLUICE__FRAME__BODY_PUBLISH;
    else
        return SL_EMALFORMED;
    const uint8_t *start = data, *p = start, *end = start + len;
    const uint8_t *body = NULL, *b;
    size_t body_len = 0, bl, found = 0;
    uint64_t field;
    while (p < end) {
        if (!s_field_next(&p, end, &field, &b, &bl))
            return SL_EMALFORMED;
        if (field == want) {
            if (body || !b)
                return SL_EMALFORMED;   /* twice: protobuf-c merged them */
            body = b;
            body_len = bl;
        }
    }
    if (!body)
        return SL_EMALFORMED;
    /* Publish.msg and PublishBatch.msgs are both field 1. */
    p = body;
    end = body + body_len;
    while (p < end) {
        if (!s_field_next(&p, end, &field, &b, &bl))
            return SL_EMALFORMED;
        if (field != 1)
            continue;
        if (!b || found == n)
            return SL_EMALFORMED;
        spans[found].off = (size_t) (b - start);
        spans[found].len = bl;
        found++;
    }
    return found == n ? 0 : SL_EMALFORMED;
}

/* ------------------------------------------------------ by reference
 *
 * The two bulk frames, PublishBatch (client -> broker) and Deliver (broker
 * -> client), are decoded here by hand when they are laid out plainly: the
 * same structs protobuf-c would build, in one arena, but with the bytes
 * fields (payloads, stored envelopes) pointing into the input instead of
 * copied. Copying them was most of the broker's memmove under W2 and a
 * tenth of a subscriber's work. Anything this reader does not take exactly
 * (an unknown field, a header, lineage, a field twice where protobuf-c
 * would merge, a value out of its type's range) goes to protobuf-c, which
 * gives the verdict: this path accepts a subset of what protobuf-c accepts
 * and decodes it to the same values (fuzz_codec checks both agree). */

/* Input shorter than this is copied: a ZeroMQ message that small keeps its
 * bytes inside the zmq_msg_t, and zmq_msg_move would move them. */
#define S_REF_MIN 64

/* One field: its number and wire type, and its value (varint) or its
 * contents (length-delimited). */
typedef struct {
    uint64_t num;
    uint64_t v;
    const uint8_t *b;
    size_t len;
    unsigned wt;
} s_fv_t;

/* Read the field at *P. False at a wire type other than varint and
 * length-delimited, or when it runs past END. */
static bool s_fv_next(const uint8_t **p, const uint8_t *end, s_fv_t *f)
{
    uint64_t key;
    f->b = NULL;
    f->len = 0;
    if (!s_varint_get(p, end, &key))
        return false;
    f->num = key >> 3;
    f->wt = (unsigned) (key & 7);
    if (f->wt == 0)
        return s_varint_get(p, end, &f->v);
    if (f->wt != 2 || !s_varint_get(p, end, &f->v) || f->v > (uint64_t) (end - *p))
        return false;
    f->b = *p;
    f->len = (size_t) f->v;
    *p += f->len;
    return true;
}

/* Results of the readers below: decoded, not plain (protobuf-c decides),
 * or out of memory. */
enum { S_REF_OK = 0, S_REF_OTHER = 1, S_REF_NOMEM = 2 };

static int s_ref_str(s_arena_t *a, const s_fv_t *f, char **out)
{
    /* A string that is not whole in C: protobuf-c and the walk refuse it
     * in a frame, and decode it as before in a stored envelope. */
    if (f->wt != 2 || !slc_text_valid(f->b, f->len))
        return S_REF_OTHER;
    char *s = s_arena_alloc(a, f->len + 1);
    if (!s)
        return S_REF_NOMEM;
    memcpy(s, f->b, f->len);
    s[f->len] = '\0';
    *out = s;
    return S_REF_OK;
}

static int s_ref_bytes(const s_fv_t *f, ProtobufCBinaryData *out)
{
    if (f->wt != 2)
        return S_REF_OTHER;
    out->data = (uint8_t *) f->b;
    out->len = f->len;
    return S_REF_OK;
}

static int s_ref_u64(const s_fv_t *f, uint64_t *out)
{
    if (f->wt != 0)
        return S_REF_OTHER;
    *out = f->v;
    return S_REF_OK;
}

static int s_ref_u32(const s_fv_t *f, uint32_t *out)
{
    if (f->wt != 0 || f->v > UINT32_MAX)
        return S_REF_OTHER;
    *out = (uint32_t) f->v;
    return S_REF_OK;
}

static int s_ref_bool(const s_fv_t *f, protobuf_c_boolean *out)
{
    if (f->wt != 0)
        return S_REF_OTHER;
    *out = f->v != 0;
    return S_REF_OK;
}

/* How one field of a message this reader takes is stored: its kind and
 * where in the protobuf-c struct. Indexed by field number; kind 0 = a field
 * this reader leaves to protobuf-c. */
enum { S_F_NONE, S_F_STR, S_F_BYTES, S_F_U64, S_F_U32, S_F_BOOL };
typedef struct {
    uint8_t kind;
    uint16_t off;
} s_field_t;

#define S_FIELDS_MAX 10
static const s_field_t s_envelope_fields[S_FIELDS_MAX] = {
    [1] = { S_F_STR, offsetof(Sluice__Envelope, topic) },
    [2] = { S_F_BYTES, offsetof(Sluice__Envelope, producer_id) },
    [3] = { S_F_U64, offsetof(Sluice__Envelope, seq) },
    /* 4 headers and 9 lineage: protobuf-c */
    [5] = { S_F_STR, offsetof(Sluice__Envelope, content_type) },
    [6] = { S_F_BYTES, offsetof(Sluice__Envelope, payload) },
    [7] = { S_F_U64, offsetof(Sluice__Envelope, ingest_ts_us) },
    [8] = { S_F_STR, offsetof(Sluice__Envelope, source) },
};
static const s_field_t s_delivery_fields[S_FIELDS_MAX] = {
    [1] = { S_F_U32, offsetof(Sluice__Delivery, sub_id) },
    [2] = { S_F_U32, offsetof(Sluice__Delivery, topic_id) },
    [3] = { S_F_STR, offsetof(Sluice__Delivery, topic) },
    [4] = { S_F_U64, offsetof(Sluice__Delivery, offset) },
    [5] = { S_F_U64, offsetof(Sluice__Delivery, token) },
    [6] = { S_F_U32, offsetof(Sluice__Delivery, attempt) },
    [7] = { S_F_BYTES, offsetof(Sluice__Delivery, envelope) },
    [8] = { S_F_BOOL, offsetof(Sluice__Delivery, rewound) },
};

/* The message at B (LEN bytes) into MSG (initialised by the caller), whose
 * fields FIELDS describes. */
static int s_ref_fields(s_arena_t *a, const uint8_t *b, size_t len, void *msg,
                        const s_field_t *fields)
{
    const uint8_t *p = b, *end = b + len;
    s_fv_t f;
    while (p < end) {
        if (!s_fv_next(&p, end, &f))
            return S_REF_OTHER;
        const s_field_t *fd = f.num < S_FIELDS_MAX ? &fields[f.num] : &fields[0];
        char *at = (char *) msg + fd->off;
        int rc;
        switch (fd->kind) {
        case S_F_STR: rc = s_ref_str(a, &f, (char **) at); break;
        case S_F_BYTES: rc = s_ref_bytes(&f, (ProtobufCBinaryData *) at); break;
        case S_F_U64: rc = s_ref_u64(&f, (uint64_t *) at); break;
        case S_F_U32: rc = s_ref_u32(&f, (uint32_t *) at); break;
        case S_F_BOOL: rc = s_ref_bool(&f, (protobuf_c_boolean *) at); break;
        default: rc = S_REF_OTHER; break;
        }
        if (rc)
            return rc;
    }
    return S_REF_OK;
}

static int s_ref_envelope(s_arena_t *a, const uint8_t *b, size_t len, Sluice__Envelope *e)
{
    *e = (Sluice__Envelope) SLUICE__ENVELOPE__INIT;
    return s_ref_fields(a, b, len, e, s_envelope_fields);
}

static int s_ref_delivery(s_arena_t *a, const uint8_t *b, size_t len, Sluice__Delivery *d)
{
    *d = (Sluice__Delivery) SLUICE__DELIVERY__INIT;
    return s_ref_fields(a, b, len, d, s_delivery_fields);
}

/* The repeated message field 1 of a PublishBatch or Deliver body at B (LEN
 * bytes): *N items, and whether the body is plain (field 2 of a
 * PublishBatch, TRANSIENT, may be 0 or 1; nothing else may appear). */
static int s_ref_count(const uint8_t *b, size_t len, bool batch, size_t *n,
                       bool *transient)
{
    const uint8_t *p = b, *end = b + len;
    s_fv_t f;
    *n = 0;
    while (p < end) {
        if (!s_fv_next(&p, end, &f))
            return S_REF_OTHER;
        if (f.num == 1 && f.wt == 2)
            (*n)++;
        else if (batch && f.num == 2 && f.wt == 0 && f.v <= 1)
            *transient = f.v == 1;
        else
            return S_REF_OTHER;
    }
    return S_REF_OK;
}

/* A Frame holding a PublishBatch or a Deliver, decoded into *OUT. */
static int s_ref_frame(const uint8_t *data, size_t len, Sluice__Frame **out)
{
    const uint8_t *p = data, *end = data + len, *body = NULL;
    size_t body_len = 0, n = 0;
    uint64_t corr = 0, which = 0;
    bool transient = false;
    s_fv_t f;
    while (p < end) {
        if (!s_fv_next(&p, end, &f))
            return S_REF_OTHER;
        if (f.num == 1 && f.wt == 0)
            corr = f.v;
        else if ((f.num == SLUICE__FRAME__BODY_PUBLISH_BATCH
                  || f.num == SLUICE__FRAME__BODY_DELIVER) && f.wt == 2 && !body) {
            which = f.num;
            body = f.b;
            body_len = f.len;
        }
        else
            return S_REF_OTHER;
    }
    bool batch = which == SLUICE__FRAME__BODY_PUBLISH_BATCH;
    if (!body || s_ref_count(body, body_len, batch, &n, &transient) != S_REF_OK)
        return S_REF_OTHER;
    size_t item = batch ? sizeof(Sluice__Envelope) : sizeof(Sluice__Delivery);
    /* The structs, then room for the strings (topics), which are short. */
    s_arena_t *a = s_arena_sized(sizeof(Sluice__Frame) + sizeof(Sluice__Deliver)
                                 + sizeof(Sluice__PublishBatch)
                                 + n * (sizeof(void *) + item + 3 * S_ALIGN) + 256);
    if (!a)
        return S_REF_NOMEM;
    Sluice__Frame *fr = s_arena_alloc(a, sizeof *fr);
    void **items = NULL;
    unsigned char *structs = NULL;
    int rc = S_REF_NOMEM;
    if (!fr)
        goto fail;
    *fr = (Sluice__Frame) SLUICE__FRAME__INIT;
    fr->corr = corr;
    fr->body_case = (Sluice__Frame__BodyCase) which;
    if (n) {
        items = s_arena_alloc(a, n * sizeof(void *));
        structs = s_arena_alloc(a, n * item);
        if (!items || !structs)
            goto fail;
    }
    if (batch) {
        Sluice__PublishBatch *pb = s_arena_alloc(a, sizeof *pb);
        if (!pb)
            goto fail;
        *pb = (Sluice__PublishBatch) SLUICE__PUBLISH_BATCH__INIT;
        pb->n_msgs = n;
        pb->msgs = (Sluice__Envelope **) items;
        pb->transient = transient;
        fr->publish_batch = pb;
    }
    else {
        Sluice__Deliver *dl = s_arena_alloc(a, sizeof *dl);
        if (!dl)
            goto fail;
        *dl = (Sluice__Deliver) SLUICE__DELIVER__INIT;
        dl->n_msgs = n;
        dl->msgs = (Sluice__Delivery **) items;
        fr->deliver = dl;
    }
    p = body;
    end = body + body_len;
    for (size_t i = 0; i < n;) {
        if (!s_fv_next(&p, end, &f)) {
            rc = S_REF_OTHER;
            goto fail;
        }
        if (f.num != 1)
            continue;           /* PublishBatch.transient, read above */
        items[i] = structs + i * item;
        rc = batch ? s_ref_envelope(a, f.b, f.len, items[i])
                   : s_ref_delivery(a, f.b, f.len, items[i]);
        if (rc)
            goto fail;
        i++;
    }
    assert((void *) fr == (void *) a->data);
    *out = fr;
    return S_REF_OK;
fail:
    s_arena_destroy(a);
    return rc;
}

int slc_frame_decode_ref(const void *data, size_t len, Sluice__Frame **out)
{
    if (len >= S_REF_MIN) {
        int rc = s_ref_frame(data, len, out);
        if (rc == S_REF_OK)
            return 0;
        if (rc == S_REF_NOMEM)
            return SL_ENOMEM;
    }
    return slc_frame_decode(data, len, out);
}

int slc_envelope_decode_ref(const void *data, size_t len, Sluice__Envelope **out)
{
    if (len >= S_REF_MIN) {
        /* Strings are at most the input; a payload takes no room here. */
        s_arena_t *a = s_arena_sized(sizeof(Sluice__Envelope) + 3 * S_ALIGN + 128);
        if (!a)
            return SL_ENOMEM;
        Sluice__Envelope *e = s_arena_alloc(a, sizeof *e);
        int rc = s_ref_envelope(a, data, len, e);
        if (rc == S_REF_OK) {
            *out = e;
            return 0;
        }
        s_arena_destroy(a);
        if (rc == S_REF_NOMEM)
            return SL_ENOMEM;
    }
    return slc_envelope_decode(data, len, out);
}

int slc_envelope_decode_in(void *buf, size_t cap, const void *data, size_t len,
                           Sluice__Envelope **out, bool *in_buf)
{
    *in_buf = false;
    if (len >= S_REF_MIN && cap >= SLC_ENVELOPE_BUF_MIN
        && ((uintptr_t) buf % S_ALIGN) == 0) {
        s_arena_t *a = buf;
        a->more = NULL;
        a->cap = cap - sizeof *a;
        a->used = 0;
        Sluice__Envelope *e = s_arena_alloc(a, sizeof *e);
        int rc = s_ref_envelope(a, data, len, e);
        if (rc == S_REF_OK) {
            *out = e;
            *in_buf = true;
            return 0;
        }
        slc_envelope_release(buf);
        if (rc == S_REF_NOMEM)
            return SL_ENOMEM;
    }
    return slc_envelope_decode_ref(data, len, out);
}

void slc_envelope_release(void *buf)
{
    s_arena_t *a = buf;
    for (s_chunk_t *c = a->more, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->more = NULL;
}

/* ------------------------------------------- PublishBatch, by hand (SDK) */

#define S_TAG_FRAME_BATCH 0x72          /* Frame.publish_batch (14), bytes */
#define S_TAG_BATCH_TRANSIENT 0x10      /* PublishBatch.transient (2), varint */

static size_t s_batch_body(size_t msgs, bool transient)
{
    return msgs + (transient ? 2 : 0);
}

size_t slc_publish_batch_size(uint64_t corr, size_t msgs, bool transient)
{
    size_t body = s_batch_body(msgs, transient);
    return 1 + slc_varint_len(corr) + 1 + slc_varint_len(body) + body;
}

uint8_t *slc_publish_batch_open(uint8_t *p, uint64_t corr, size_t msgs,
                                bool transient)
{
    *p++ = S_TAG_CORR;
    p = slc_varint_put(p, corr);
    *p++ = S_TAG_FRAME_BATCH;
    return slc_varint_put(p, s_batch_body(msgs, transient));
}

uint8_t *slc_publish_batch_close(uint8_t *p, bool transient)
{
    if (transient) {
        *p++ = S_TAG_BATCH_TRANSIENT;
        *p++ = 1;
    }
    return p;
}

int slc_frame_set_body(Sluice__Frame *frame, Sluice__Frame__BodyCase body,
                       void *msg)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&sluice__frame__descriptor,
                                                (unsigned) body);
    if (!fd || fd->type != PROTOBUF_C_TYPE_MESSAGE
        || !(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))
        return SL_EINVAL;
    memcpy((char *) frame + fd->offset, &msg, sizeof msg);
    frame->body_case = body;
    return 0;
}

/* Envelope.ingest_ts_us (7, varint), Envelope.source (8, bytes) and
 * Envelope.headers (4, bytes) with Header.key (1) and Header.value (2),
 * for the broker's additions to a stored envelope. */
#define S_TAG_ENVELOPE_INGEST_TS 0x38
#define S_TAG_ENVELOPE_SOURCE 0x42
#define S_TAG_ENVELOPE_HEADERS 0x22
#define S_TAG_HEADER_KEY 0x0a
#define S_TAG_HEADER_VALUE 0x12

size_t slc_envelope_stamp_max(const char *source, size_t slen)
{
    return 1 + 10 + (source ? 1 + 10 + slen : 0);
}

uint8_t *slc_envelope_stamp(uint8_t *out, uint64_t ingest_ts_us, const char *source,
                            size_t slen)
{
    uint8_t *p = out;
    *p++ = S_TAG_ENVELOPE_INGEST_TS;
    p = slc_varint_put(p, ingest_ts_us);
    if (source) {
        *p++ = S_TAG_ENVELOPE_SOURCE;
        p = slc_varint_put(p, slen);
        memcpy(p, source, slen);
        p += slen;
    }
    return p;
}

/* Length of a Header{key, value} message body. */
static size_t s_header_len(size_t klen, size_t vlen)
{
    return 1 + slc_varint_len(klen) + klen + 1 + slc_varint_len(vlen) + vlen;
}

size_t slc_envelope_header_size(size_t klen, size_t vlen)
{
    size_t hlen = s_header_len(klen, vlen);
    return 1 + slc_varint_len(hlen) + hlen;
}

uint8_t *slc_envelope_header_put(uint8_t *out, const char *key, size_t klen,
                                 const char *value, size_t vlen)
{
    uint8_t *p = out;
    *p++ = S_TAG_ENVELOPE_HEADERS;
    p = slc_varint_put(p, s_header_len(klen, vlen));
    *p++ = S_TAG_HEADER_KEY;
    p = slc_varint_put(p, klen);
    memcpy(p, key, klen);
    p += klen;
    *p++ = S_TAG_HEADER_VALUE;
    p = slc_varint_put(p, vlen);
    memcpy(p, value, vlen);
    p += vlen;
    return p;
}
