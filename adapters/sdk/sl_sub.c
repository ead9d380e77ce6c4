/*  sl_sub - subscriptions and messages: Subscribe and resubscribe, the
 *  per-subscription delivery queue, credit, acks and nacks, redelivery
 *  dedupe, and the sl_msg_t accessors. Owns the subscriptions, their queued
 *  deliveries and queued acks. Client thread only.
 *
 *  Dedupe (durable only): `out` maps (topic id, offset) -> latest token for
 *  messages handed to the application and not yet settled; a redelivery of
 *  such a key only refreshes the token (sl_ack sends the newest) and is
 *  dropped. `acked` remembers the last SLI_ACKED_RING acked keys (a ring,
 *  and `acked_set` as bitmaps of 64 offsets, s_acked_has); a
 *  redelivery of one of those means our ack was lost or refused, so it is
 *  acked again at once with the new token and dropped. Every dropped
 *  delivery still gives its credit back.
 *
 *  A subscription is reference counted: the client's list holds one
 *  reference and every live sl_msg_t one, so messages stay valid (and
 *  harmless to ack) after sl_unsubscribe or sl_client_destroy.
 *
 *  A part of the client (struct sli_subs): it registers with the session
 *  (ready / lost / service / deadline hooks; Deliver, SubscribeOk, AckReply
 *  and Error handlers) and calls nothing else of the SDK but the session
 *  and the key map.  */
#include "sl_sub.h"
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include "sl_client_int.h"
#include "sl_kmap.h"

#define SLI_ACK_BATCH 1024                    /* acks that go out without waiting */
#define SLI_ACK_FRAME_MAX 8192                /* most items per Ack frame */
#define SLI_ACKED_RING 65536                  /* recently acked keys remembered */
#define SLI_MSG_ENVBUF 384      /* a message's envelope and strings, in place */
#define SLI_MSG_POOL 64         /* destroyed messages a subscription keeps for reuse */

typedef enum {
    SLI_SUB_PENDING,            /* Subscribe to send or sent, no answer yet */
    SLI_SUB_ACTIVE,             /* SubscribeOk for this session */
    SLI_SUB_FAILED,             /* broker refused; rc says why */
    SLI_SUB_CLOSING,            /* sl_unsubscribe under way: no resubscribe */
} sli_sub_state_t;

/* A received Deliver frame, shared by the queued deliveries it carries and
 * by the messages handed out from it: the frame is decoded by reference,
 * so its envelopes and their payloads are bytes of RAW. */
typedef struct {
    Sluice__Frame *frame;
    zmq_msg_t raw;
    size_t refs;
} sli_dframe_t;

typedef struct {
    sli_dframe_t *df;
    Sluice__Delivery *d;        /* borrowed from df->frame */
} sli_qitem_t;

typedef struct {
    uint64_t offset;
    uint32_t topic_id;
} sli_key_t;

/* The client's subscriptions. */
struct sli_subs {
    sli_session_t *sess;        /* borrowed: the client's session */
    sl_sub_t *head;             /* the list, in subscription order */
};

struct sl_sub {
    sli_subs_t *owner;          /* NULL once detached (unsubscribed, client gone) */
    sl_sub_t *next;             /* owner's list */
    char *name;                 /* "" for ephemeral */
    char *pattern;
    sl_sub_options_t opts;      /* copy; its strings point at name/pattern */
    uint8_t state;              /* sli_sub_state_t */
    bool ok_once;               /* had a SubscribeOk: resubscribe with START_DEFAULT */
    int rc;                     /* state FAILED */
    uint32_t sub_id;            /* this session's handle */
    uint64_t corr;              /* of the Subscribe awaiting its answer */
    size_t refs;                /* 1 for the owner's list + 1 per live sl_msg_t */
    /* deliveries received, not yet handed out (FIFO ring) */
    sli_qitem_t *q;
    size_t qcap, qhead, qn;
    uint32_t owed;              /* credit to give back to the broker */
    /* acks queued for the next Ack frame */
    Sluice__AckItem *acks;
    Sluice__AckItem **ackp;
    size_t nacks, ackcap;
    uint64_t ack_since;         /* mono ms of the first queued ack */
    /* dedupe: handed out and not acked -> latest token */
    sli_kmap_t out;
    /* recently acked keys: ring + membership, (topic id, offset / 64) ->
     * bitmap of the block's acked offsets (s_acked_has) */
    sli_key_t *acked;
    size_t acked_head, acked_n;
    sli_kmap_t acked_set;
    uint64_t refused;           /* acks the broker refused (unsolicited AckReply) */
    uint64_t malformed;         /* deliveries whose envelope did not decode */
    /* destroyed messages kept for the next ones: no malloc per message */
    sl_msg_t *pool[SLI_MSG_POOL];
    size_t pool_n;
};

struct sl_msg {
    sl_sub_t *sub;              /* holds a reference */
    sli_dframe_t *df;           /* holds a reference: ENV's bytes are in it */
    Sluice__Envelope *env;      /* owned */
    char *topic_own;            /* owned copy when Delivery.topic differs from env's */
    uint64_t offset;
    uint64_t token;             /* token at hand-out; sl_ack uses the latest */
    uint32_t topic_id;
    uint32_t attempt;
    bool settled;               /* acked or nacked */
    bool env_in_buf;            /* ENV lives in ENVBUF (slc_envelope_decode_in) */
    alignas(max_align_t) unsigned char envbuf[SLI_MSG_ENVBUF];
};

/* ------------------------------------------------------------ lifetime */

static void s_df_release(sli_dframe_t *df)
{
    if (--df->refs == 0) {
        slc_frame_free(&df->frame);
        zmq_msg_close(&df->raw);
        free(df);
    }
}

static void s_queue_clear(sl_sub_t *sub)
{
    for (; sub->qn > 0; sub->qn--) {
        s_df_release(sub->q[sub->qhead].df);
        sub->qhead = (sub->qhead + 1) & (sub->qcap - 1);
    }
    sub->qhead = 0;
}

static void s_sub_free(sl_sub_t *sub)
{
    while (sub->pool_n > 0)
        free(sub->pool[--sub->pool_n]);
    s_queue_clear(sub);
    free(sub->q);
    free(sub->acks);
    free(sub->ackp);
    sli_kmap_clear(&sub->out);
    sli_kmap_clear(&sub->acked_set);
    free(sub->acked);
    free(sub->name);
    free(sub->pattern);
    free(sub);
}

static void s_sub_unref(sl_sub_t *sub)
{
    if (--sub->refs == 0)
        s_sub_free(sub);
}

/* Take SUB off the client and drop the client's reference. */
static void s_sub_detach(sli_subs_t *self, sl_sub_t *sub)
{
    for (sl_sub_t **pp = &self->head; *pp; pp = &(*pp)->next)
        if (*pp == sub) {
            *pp = sub->next;
            break;
        }
    sub->next = NULL;
    sub->owner = NULL;
    s_queue_clear(sub);
    s_sub_unref(sub);
}

void sli_subs_destroy(sli_subs_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sli_subs_t *self = *self_p;
    while (self->head)
        s_sub_detach(self, self->head);
    free(self);
    *self_p = NULL;
}

static sl_sub_t *s_by_id(const sli_subs_t *self, uint32_t sub_id)
{
    for (sl_sub_t *s = self->head; s; s = s->next)
        if (s->state == SLI_SUB_ACTIVE && s->sub_id == sub_id)
            return s;
    return NULL;
}

static sl_sub_t *s_by_corr(const sli_subs_t *self, uint64_t corr)
{
    for (sl_sub_t *s = self->head; s; s = s->next)
        if (s->state == SLI_SUB_PENDING && s->corr == corr)
            return s;
    return NULL;
}

/* ----------------------------------------------------------- acks, credit */

static int s_ack_queue(sl_sub_t *sub, uint32_t topic_id, uint64_t offset,
                       uint64_t token)
{
    if (sub->nacks == sub->ackcap) {
        size_t cap = sub->ackcap ? sub->ackcap * 2 : 64;
        Sluice__AckItem *acks = realloc(sub->acks, cap * sizeof *acks);
        if (!acks)
            return SL_ENOMEM;
        sub->acks = acks;
        Sluice__AckItem **ackp = realloc(sub->ackp, cap * sizeof *ackp);
        if (!ackp)
            return SL_ENOMEM;
        sub->ackp = ackp;
        sub->ackcap = cap;
        for (size_t i = 0; i < cap; i++)
            sub->ackp[i] = &sub->acks[i];
    }
    Sluice__AckItem *it = &sub->acks[sub->nacks];
    sluice__ack_item__init(it);
    it->topic_id = topic_id;
    it->offset = offset;
    it->token = token;
    if (sub->nacks++ == 0)
        sub->ack_since = slc_mono_ms();
    return 0;
}

/* Send the queued acks (with all owed credit piggy-backed). */
static int s_flush_acks(sli_subs_t *self, sl_sub_t *sub)
{
    while (sub->nacks > 0) {
        size_t n = sub->nacks < SLI_ACK_FRAME_MAX ? sub->nacks
                                                  : SLI_ACK_FRAME_MAX;
        Sluice__Ack ack = SLUICE__ACK__INIT;
        ack.sub_id = sub->sub_id;
        ack.n_items = n;
        ack.items = sub->ackp;
        ack.credit = sub->owed;
        Sluice__Frame f = SLUICE__FRAME__INIT;
        f.body_case = SLUICE__FRAME__BODY_ACK;
        f.ack = &ack;
        int rc = sli_send(self->sess, &f);
        if (rc)
            return rc;
        sub->owed = 0;
        sub->nacks -= n;
        memmove(sub->acks, sub->acks + n, sub->nacks * sizeof *sub->acks);
    }
    return 0;
}

static int s_send_credit(sli_subs_t *self, sl_sub_t *sub)
{
    Sluice__Credit c = SLUICE__CREDIT__INIT;
    c.sub_id = sub->sub_id;
    c.credit = sub->owed;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_CREDIT;
    f.credit = &c;
    int rc = sli_send(self->sess, &f);
    if (rc == 0)
        sub->owed = 0;
    return rc;
}

/* Credit goes back in quarters of the window: the broker never runs dry
 * (3/4 of the window is still granted), and we send no frame per message. */
static uint32_t s_credit_step(const sl_sub_t *sub)
{
    uint32_t step = sub->opts.credit / 4;
    return step ? step : 1;
}

static void s_give_credit(sli_subs_t *self, sl_sub_t *sub)
{
    if (sub->owed < s_credit_step(sub) || sub->state != SLI_SUB_ACTIVE
        || self->sess->state != SLI_SESS_READY)
        return;
    /* Failure (full pipe) leaves it owed for the next turn. */
    if (sub->nacks)
        (void) s_flush_acks(self, sub);
    else
        (void) s_send_credit(self, sub);
}

static void s_service(void *part, uint64_t now, bool force)
{
    sli_subs_t *self = part;
    if (self->sess->state != SLI_SESS_READY)
        return;
    for (sl_sub_t *s = self->head; s; s = s->next) {
        if (s->state != SLI_SUB_ACTIVE)
            continue;
        if (s->nacks && (force || s->nacks >= SLI_ACK_BATCH
                         || now - s->ack_since >= (uint64_t) self->sess->opts.linger_ms))
            (void) s_flush_acks(self, s);
        s_give_credit(self, s);
    }
}

static uint64_t s_deadline(const void *part)
{
    const sli_subs_t *self = part;
    uint64_t d = UINT64_MAX;
    for (const sl_sub_t *s = self->head; s; s = s->next) {
        if (s->state != SLI_SUB_ACTIVE)
            continue;
        if (s->nacks)
            d = sli_min(d, s->ack_since + (uint64_t) self->sess->opts.linger_ms);
        if (s->owed >= s_credit_step(s))
            d = 0;
    }
    return d;
}

/* The recently acked keys are kept in blocks of 64 offsets: acked_set's
 * key is (topic id, offset / 64) and its token the bitmap of the block's
 * acked offsets. Acks mostly ascend, so the ring's 64 Ki keys take about
 * 1 Ki blocks, a map that stays in cache (one slot per key took 3 MiB a
 * subscription, and W2's eight subscribers missed the cache on most of
 * their lookups). */
static bool s_acked_has(const sl_sub_t *sub, uint32_t topic_id, uint64_t offset)
{
    const sli_kmap_slot_t *b = sli_kmap_lookup(&sub->acked_set, topic_id, offset / 64);
    return b && (b->token >> (offset % 64) & 1);
}

static void s_acked_forget(sl_sub_t *sub, uint32_t topic_id, uint64_t offset)
{
    sli_kmap_slot_t *b = sli_kmap_lookup(&sub->acked_set, topic_id, offset / 64);
    if (b && (b->token &= ~(UINT64_C(1) << (offset % 64))) == 0)
        (void) sli_kmap_remove(&sub->acked_set, topic_id, offset / 64);
}

static int s_acked_add(sl_sub_t *sub, uint32_t topic_id, uint64_t offset)
{
    if (!sub->acked) {
        sub->acked = malloc(SLI_ACKED_RING * sizeof *sub->acked);
        if (!sub->acked)
            return SL_ENOMEM;
    }
    if (s_acked_has(sub, topic_id, offset))
        return 0;
    if (sub->acked_n == SLI_ACKED_RING) {
        sli_key_t *old = &sub->acked[sub->acked_head];
        s_acked_forget(sub, old->topic_id, old->offset);
        sub->acked_head = (sub->acked_head + 1) % SLI_ACKED_RING;
        sub->acked_n--;
    }
    uint64_t bit = UINT64_C(1) << (offset % 64);
    sli_kmap_slot_t *b = sli_kmap_lookup(&sub->acked_set, topic_id, offset / 64);
    if (b)
        b->token |= bit;
    else {
        int rc = sli_kmap_put(&sub->acked_set, topic_id, offset / 64, bit);
        if (rc)
            return rc;
    }
    sli_key_t *k = &sub->acked[(sub->acked_head + sub->acked_n) % SLI_ACKED_RING];
    k->topic_id = topic_id;
    k->offset = offset;
    sub->acked_n++;
    return 0;
}

/* False when this delivery must not reach the application (see top). */
static bool s_fresh(sl_sub_t *sub, const Sluice__Delivery *d)
{
    if (sub->opts.ephemeral)
        return true;
    sli_kmap_slot_t *s = sli_kmap_lookup(&sub->out, d->topic_id, d->offset);
    if (s) {
        s->token = d->token;
        return false;
    }
    /* A seek (sl_sub_seek) made it not acked again: it is due once more. */
    if (d->rewound)
        s_acked_forget(sub, d->topic_id, d->offset);
    else if (s_acked_has(sub, d->topic_id, d->offset)) {
        /* Out of memory only delays it: the broker redelivers again. */
        (void) s_ack_queue(sub, d->topic_id, d->offset, d->token);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ session */

static int s_subscribe_send(sli_subs_t *self, sl_sub_t *sub)
{
    Sluice__Subscribe s = SLUICE__SUBSCRIBE__INIT;
    s.name = sub->name;
    s.pattern = sub->pattern;
    /* Once the broker has the subscription, resume its stored cursor. */
    s.start = sub->ok_once ? SLUICE__START_KIND__START_DEFAULT
                           : (Sluice__StartKind) sub->opts.start;
    s.start_offset = sub->opts.start_offset;
    s.start_time_us = sub->opts.start_time_us;
    s.credit = sub->opts.credit;
    s.ack_wait_ms = sub->opts.ack_wait_ms;
    s.max_deliver = sub->opts.max_deliver;
    s.ephemeral = sub->opts.ephemeral;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.corr = sli_corr(self->sess);
    f.body_case = SLUICE__FRAME__BODY_SUBSCRIBE;
    f.subscribe = &s;
    sub->state = SLI_SUB_PENDING;
    sub->sub_id = 0;
    sub->owed = 0;
    int rc = sli_send(self->sess, &f);
    sub->corr = rc == 0 ? f.corr : 0;
    return rc;
}

static void s_session_lost(void *part)
{
    sli_subs_t *self = part;
    /* Queued deliveries belong to the old session: the broker returns them
     * to redelivery. Queued acks stay and go out after resubscribing. */
    for (sl_sub_t *s = self->head; s; s = s->next) {
        s_queue_clear(s);
        s->owed = 0;
        s->sub_id = 0;
        s->corr = 0;
        if (s->state == SLI_SUB_ACTIVE)
            s->state = SLI_SUB_PENDING;
    }
}

static void s_session_ready(void *part, const Sluice__HelloOk *ok)
{
    sli_subs_t *self = part;
    (void) ok;
    for (sl_sub_t *s = self->head; s; s = s->next)
        if (s->state == SLI_SUB_PENDING)
            (void) s_subscribe_send(self, s);   /* retried by the waiter */
}

static bool s_on_subscribe_ok(void *arg, const Sluice__Frame *frame)
{
    sli_subs_t *self = arg;
    const Sluice__SubscribeOk *ok = frame->subscribe_ok;
    sl_sub_t *sub = frame->corr ? s_by_corr(self, frame->corr) : NULL;
    if (!sub) {
        /* We gave up waiting for it: do not leave it attached. */
        Sluice__Unsubscribe u = SLUICE__UNSUBSCRIBE__INIT;
        u.sub_id = ok->sub_id;
        Sluice__Frame f = SLUICE__FRAME__INIT;
        f.body_case = SLUICE__FRAME__BODY_UNSUBSCRIBE;
        f.unsubscribe = &u;
        (void) sli_send(self->sess, &f);
        return true;
    }
    sub->corr = 0;
    sub->sub_id = ok->sub_id;
    sub->state = SLI_SUB_ACTIVE;
    sub->ok_once = true;
    return true;
}

/* An Error answering a Subscribe of ours: why sl_subscribe failed. */
static bool s_on_error(void *arg, const Sluice__Frame *frame)
{
    sli_subs_t *self = arg;
    int code = frame->error->code;
    sl_sub_t *sub = s_by_corr(self, frame->corr);
    if (!sub)
        return false;
    sli_error_set(self->sess, "%s", frame->error->text);
    if (sub->ok_once)
        SLI_LOG("subscribing %s again failed: %s", sub->name[0] ? sub->name
                : sub->pattern, slc_strerror(code));
    sub->corr = 0;
    sub->state = SLI_SUB_FAILED;
    sub->rc = code > 0 ? -code : SL_EINTERNAL;
    return true;
}

static bool s_on_ack_reply(void *arg, const Sluice__Frame *frame)
{
    sli_subs_t *self = arg;
    /* Unsolicited: refused acks. Each refused key is in the acked set, so
     * its redelivery is acked again with the new token. */
    const Sluice__AckReply *r = frame->ack_reply;
    for (sl_sub_t *s = self->head; s; s = s->next)
        if (s->sub_id == r->sub_id && s->state == SLI_SUB_ACTIVE)
            s->refused += r->n_refused;
    return true;
}

static int s_q_push(sl_sub_t *sub, sli_dframe_t *df, Sluice__Delivery *d)
{
    if (sub->qn == sub->qcap) {
        size_t cap = sub->qcap ? sub->qcap * 2 : 64;
        sli_qitem_t *q = malloc(cap * sizeof *q);
        if (!q)
            return SL_ENOMEM;
        for (size_t i = 0; i < sub->qn; i++)
            q[i] = sub->q[(sub->qhead + i) & (sub->qcap - 1)];
        free(sub->q);
        sub->q = q;
        sub->qcap = cap;
        sub->qhead = 0;
    }
    sub->q[(sub->qhead + sub->qn) & (sub->qcap - 1)] = (sli_qitem_t) { df, d };
    sub->qn++;
    df->refs++;
    return 0;
}

/* Takes FRAME (a Deliver decoded by reference) and RAW, its bytes. */
static void s_on_deliver(void *arg, Sluice__Frame *frame, zmq_msg_t *raw)
{
    sli_subs_t *self = arg;
    const Sluice__Deliver *dv = frame->deliver;
    sli_dframe_t *df = malloc(sizeof *df);
    if (df) {
        df->frame = frame;
        zmq_msg_init(&df->raw);
        zmq_msg_move(&df->raw, raw);
        df->refs = 1;           /* ours, for the loop */
    }
    else
        zmq_msg_close(raw);
    sl_sub_t *sub = NULL;
    for (size_t i = 0; i < dv->n_msgs; i++) {
        Sluice__Delivery *d = dv->msgs[i];
        if (!sub || sub->sub_id != d->sub_id)
            sub = s_by_id(self, d->sub_id);
        if (!sub)
            continue;           /* unsubscribed meanwhile */
        if (!s_fresh(sub, d) || !df || s_q_push(sub, df, d) != 0)
            sub->owed++;        /* dropped; without memory the broker
                                   redelivers it after ack_wait */
    }
    if (df)
        s_df_release(df);
    else {
        SLI_LOG("out of memory: deliveries dropped");
        slc_frame_free(&frame);
    }
}

/* ------------------------------------------------------------ lifetime */

static const sli_part_ops_t s_part = {
    .ready = s_session_ready,
    .lost = s_session_lost,
    .service = s_service,
    .deadline = s_deadline,
};

int sli_subs_new(sli_session_t *sess, sli_subs_t **out)
{
    int rc = 0;
    *out = NULL;
    sli_subs_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->sess = sess;
    rc = sli_session_part_add(sess, &s_part, self);
    if (!rc)
        rc = sli_session_take(sess, SLUICE__FRAME__BODY_DELIVER, s_on_deliver, self);
    if (!rc)
        rc = sli_session_on(sess, SLUICE__FRAME__BODY_SUBSCRIBE_OK,
                            s_on_subscribe_ok, self);
    if (!rc)
        rc = sli_session_on(sess, SLUICE__FRAME__BODY_ACK_REPLY, s_on_ack_reply, self);
    if (!rc)
        rc = sli_session_on(sess, SLUICE__FRAME__BODY_ERROR, s_on_error, self);
    if (rc) {
        sli_subs_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

/* ----------------------------------------------------------- messages */

/* Free what M holds besides itself: its envelope and its topic copy. */
static void s_msg_clear(sl_msg_t *m)
{
    if (m->env_in_buf)
        slc_envelope_release(m->envbuf);
    else
        slc_envelope_free(&m->env);
    m->env = NULL;
    m->env_in_buf = false;
    free(m->topic_own);
    m->topic_own = NULL;
}

/* A message from SUB's pool, or a new one: fields zero. */
static sl_msg_t *s_msg_alloc(sl_sub_t *sub)
{
    if (sub->pool_n == 0)
        return calloc(1, sizeof(sl_msg_t));
    sl_msg_t *m = sub->pool[--sub->pool_n];
    memset(m, 0, offsetof(sl_msg_t, envbuf));
    return m;
}

/* Back to SUB's pool, or freed when it is full. */
static void s_msg_recycle(sl_sub_t *sub, sl_msg_t *m)
{
    if (sub->pool_n < SLI_MSG_POOL)
        sub->pool[sub->pool_n++] = m;
    else
        free(m);
}

static int s_msg_new(sl_sub_t *sub, sli_dframe_t *df, const Sluice__Delivery *d,
                     sl_msg_t **out)
{
    int rc = 0;
    sl_msg_t *m = s_msg_alloc(sub);
    if (!m)
        return SL_ENOMEM;
    /* The payload stays in the received frame, which the message holds;
     * the envelope's structure and strings go into the message itself. */
    rc = slc_envelope_decode_in(m->envbuf, sizeof m->envbuf, d->envelope.data,
                                d->envelope.len, &m->env, &m->env_in_buf);
    if (rc)
        goto fail;
    if (d->topic[0] && strcmp(d->topic, m->env->topic) != 0) {
        m->topic_own = strdup(d->topic);
        if (!m->topic_own) {
            rc = SL_ENOMEM;
            goto fail;
        }
    }
    m->topic_id = d->topic_id;
    m->offset = d->offset;
    m->token = d->token;
    m->attempt = d->attempt;
    if (!sub->opts.ephemeral) {
        rc = sli_kmap_put(&sub->out, d->topic_id, d->offset, d->token);
        if (rc)
            goto fail;
    }
    m->sub = sub;
    sub->refs++;
    m->df = df;
    df->refs++;
    *out = m;
    return 0;
fail:
    s_msg_clear(m);
    s_msg_recycle(sub, m);
    return rc;
}

int sli_msg_detached(const char *topic, uint32_t topic_id, uint64_t offset, const void *env,
                     size_t len, sl_msg_t **out)
{
    sl_msg_t *m = calloc(1, sizeof *m);
    if (!m)
        return SL_ENOMEM;
    int rc = slc_envelope_decode(env, len, &m->env);
    if (rc == 0 && topic && topic[0] && strcmp(topic, m->env->topic ? m->env->topic : "") != 0
        && !(m->topic_own = strdup(topic)))
        rc = SL_ENOMEM;
    if (rc) {
        s_msg_clear(m);
        free(m);
        return rc;
    }
    m->topic_id = topic_id;
    m->offset = offset;
    m->settled = true;          /* nothing to ack: sl_ack & co. say SL_EINVAL */
    *out = m;
    return 0;
}

/* Hand out the next queued delivery: 0 and *OUT, 1 when none is queued,
 * or an error. */
static int s_take(sl_sub_t *sub, sl_msg_t **out)
{
    while (sub->qn > 0) {
        sli_qitem_t it = sub->q[sub->qhead];
        sub->qhead = (sub->qhead + 1) & (sub->qcap - 1);
        sub->qn--;
        sub->owed++;
        int rc = s_fresh(sub, it.d) ? s_msg_new(sub, it.df, it.d, out) : 1;
        if (rc == SL_EMALFORMED) {
            /* Left unacked: redelivered until max_deliver, then it goes
             * to the dead-letter topic, where someone can look at it. */
            sub->malformed++;
            SLI_LOG("delivery %s/%llu has an undecodable envelope",
                    it.d->topic, (unsigned long long) it.d->offset);
        }
        s_df_release(it.df);
        if (rc <= 0 && rc != SL_EMALFORMED)
            return rc;
    }
    return 1;
}

int sl_sub_next(sl_sub_t *sub, int timeout_ms, sl_msg_t **out)
{
    int rc = 0;
    *out = NULL;
    sli_subs_t *self = sub->owner;
    if (!self)
        return SL_EINVAL;
    /* The clock is read once per call where a message is queued (for the
     * tick), and for the deadline only when there is none: at a million
     * messages a second the reads were a tenth of a subscriber's work. */
    uint64_t deadline = 0;
    bool polled = false;
    while (true) {
        rc = s_take(sub, out);
        if (rc == 0) {
            s_give_credit(self, sub);
            sli_tick(self->sess, slc_mono_ms());
            break;
        }
        if (rc < 0)
            break;
        if (sub->state == SLI_SUB_FAILED) {
            rc = sub->rc;
            break;
        }
        if (!polled)
            deadline = slc_mono_ms() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0);
        int left = sli_remaining(deadline, timeout_ms);
        if (polled && left == 0) {
            rc = SL_ETIMEOUT;
            break;
        }
        rc = sli_turn(self->sess, left);
        polled = true;
        if (rc < 0)
            break;
    }
    return rc;
}

void sl_sub_options_init(sl_sub_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->start = SL_START_DEFAULT;
    opts->credit = 1000;
}

int sl_subscribe(sl_client_t *client, const sl_sub_options_t *opts,
                 sl_sub_t **out)
{
    sli_subs_t *self = client->subs;
    int rc = 0;
    sl_sub_t *sub = NULL;
    *out = NULL;
    if (!opts || !opts->pattern || slc_pattern_validate(opts->pattern) != 0
        || (unsigned) opts->start > SL_START_TIME
        || (!opts->ephemeral
            && (!opts->name || slc_topic_validate(opts->name, false) != 0))) {
        rc = SL_EINVAL;
        goto fail;
    }
    if (self->sess->state == SLI_SESS_VERSION) {
        rc = SL_EVERSION;
        goto fail;
    }
    if (self->sess->cb_depth > 0) {
        rc = SL_EBUSY;
        goto fail;
    }
    sli_error_clear(self->sess);
    sub = calloc(1, sizeof *sub);
    if (!sub) {
        rc = SL_ENOMEM;
        goto fail;
    }
    sub->name = strdup(opts->ephemeral ? "" : opts->name);
    sub->pattern = strdup(opts->pattern);
    if (!sub->name || !sub->pattern) {
        free(sub->name);
        free(sub->pattern);
        free(sub);
        sub = NULL;
        rc = SL_ENOMEM;
        goto fail;
    }
    sub->opts = *opts;
    sub->opts.name = sub->name;
    sub->opts.pattern = sub->pattern;
    if (!sub->opts.credit)
        sub->opts.credit = 1000;
    sub->refs = 1;
    sub->owner = self;
    sub->state = SLI_SUB_PENDING;
    sl_sub_t **tail = &self->head;
    while (*tail)
        tail = &(*tail)->next;
    *tail = sub;
    uint64_t deadline = slc_mono_ms() + (uint64_t) self->sess->opts.connect_timeout_ms;
    while (sub->state == SLI_SUB_PENDING) {
        if (self->sess->state == SLI_SESS_READY && !sub->corr)
            (void) s_subscribe_send(self, sub);
        int left = sli_remaining(deadline, self->sess->opts.connect_timeout_ms);
        if (left == 0) {
            rc = SL_ETIMEOUT;
            goto fail;
        }
        rc = sli_turn(self->sess, left);
        if (rc < 0)
            goto fail;
        rc = 0;
    }
    if (sub->state == SLI_SUB_FAILED) {
        rc = sub->rc;
        goto fail;
    }
    *out = sub;
    return 0;
fail:
    if (sub)
        s_sub_detach(self, sub);
    return rc;
}

int sl_unsubscribe(sl_sub_t **sub_p, bool remove)
{
    int rc = 0;
    if (!sub_p || !*sub_p)
        return SL_EINVAL;
    sl_sub_t *sub = *sub_p;
    *sub_p = NULL;
    sli_subs_t *self = sub->owner;
    if (!self)
        return SL_EINVAL;
    Sluice__Frame *reply = NULL;
    bool attached = sub->state == SLI_SUB_ACTIVE
                 && self->sess->state == SLI_SESS_READY;
    bool done = false;
    if (attached) {
        /* What the application acked must reach the broker first. */
        (void) s_flush_acks(self, sub);
        sub->state = SLI_SUB_CLOSING;
        Sluice__Unsubscribe u = SLUICE__UNSUBSCRIBE__INIT;
        u.sub_id = sub->sub_id;
        u.remove = remove;
        Sluice__Frame f = SLUICE__FRAME__INIT;
        f.body_case = SLUICE__FRAME__BODY_UNSUBSCRIBE;
        f.unsubscribe = &u;
        /* No resend: sub_id means nothing in a later session. */
        rc = sli_request(self->sess, &f, false, self->sess->opts.connect_timeout_ms,
                         &reply);
        slc_frame_free(&reply);
        done = rc != SL_EUNAVAIL;
    }
    sub->state = SLI_SUB_CLOSING;
    if (!done) {
        rc = 0;                 /* no session: nothing is attached anyway */
        if (remove && !sub->opts.ephemeral) {
            Sluice__SubRemove sr = SLUICE__SUB_REMOVE__INIT;
            sr.name = sub->name;
            Sluice__Frame f = SLUICE__FRAME__INIT;
            f.body_case = SLUICE__FRAME__BODY_SUB_REMOVE;
            f.sub_remove = &sr;
            rc = sli_request(self->sess, &f, true, self->sess->opts.connect_timeout_ms,
                             &reply);
            slc_frame_free(&reply);
        }
    }
    s_sub_detach(self, sub);
    return rc;
}

/* The token to settle M with: the newest attempt we have seen. */
static uint64_t s_token(const sl_msg_t *m)
{
    sli_kmap_slot_t *s = sli_kmap_lookup(&m->sub->out, m->topic_id, m->offset);
    return s ? s->token : m->token;
}

static int s_settle_check(const sl_msg_t *msg)
{
    const sl_sub_t *sub = msg->sub;
    if (msg->settled || sub->opts.ephemeral || !sub->owner
        || sub->state == SLI_SUB_CLOSING)
        return SL_EINVAL;
    return 0;
}

int sl_ack(sl_msg_t *msg)
{
    int rc = s_settle_check(msg);
    if (rc)
        goto fail;
    sl_sub_t *sub = msg->sub;
    rc = s_acked_add(sub, msg->topic_id, msg->offset);
    if (!rc)
        rc = s_ack_queue(sub, msg->topic_id, msg->offset, s_token(msg));
    if (rc)
        goto fail;
    (void) sli_kmap_remove(&sub->out, msg->topic_id, msg->offset);
    msg->settled = true;
    /* Natural batching, as for publishes: the acks leave once the
     * application has taken every delivery it had (nothing more to gather
     * without waiting), or when the batch is full; linger_ms only bounds
     * acks of messages settled while more wait in the queue. */
    if ((sub->nacks >= SLI_ACK_BATCH || sub->qn == 0) && sub->state == SLI_SUB_ACTIVE
        && sub->owner->sess->state == SLI_SESS_READY)
        (void) s_flush_acks(sub->owner, sub);
    sli_tick(sub->owner->sess, slc_mono_ms());
fail:
    return rc;
}

int sl_ack_sync(sl_msg_t *msg, int timeout_ms)
{
    int rc = s_settle_check(msg);
    if (rc)
        return rc;
    sl_sub_t *sub = msg->sub;
    sli_subs_t *self = sub->owner;
    if (self->sess->cb_depth > 0)
        return SL_EBUSY;
    sli_req_t w = { 0 };
    sli_session_wait_add(self->sess, &w);
    uint64_t sent_gen = 0;
    uint64_t deadline = slc_mono_ms() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0);
    while (!w.done) {
        if (self->sess->state == SLI_SESS_VERSION) {
            rc = SL_EVERSION;
            break;
        }
        if (sub->state == SLI_SUB_FAILED) {
            rc = sub->rc;
            break;
        }
        /* (Re)send in every session the subscription is active in, with
         * the newest token and the new sub_id. */
        if (self->sess->state == SLI_SESS_READY && sub->state == SLI_SUB_ACTIVE
            && sent_gen != self->sess->gen) {
            (void) s_flush_acks(self, sub);
            Sluice__AckItem item = SLUICE__ACK_ITEM__INIT;
            item.topic_id = msg->topic_id;
            item.offset = msg->offset;
            item.token = s_token(msg);
            Sluice__AckItem *items = &item;
            Sluice__Ack ack = SLUICE__ACK__INIT;
            ack.sub_id = sub->sub_id;
            ack.n_items = 1;
            ack.items = &items;
            ack.credit = sub->owed;
            Sluice__Frame f = SLUICE__FRAME__INIT;
            f.corr = w.corr = sli_corr(self->sess);
            f.body_case = SLUICE__FRAME__BODY_ACK;
            f.ack = &ack;
            rc = sli_send(self->sess, &f);
            if (rc == 0) {
                sent_gen = self->sess->gen;
                sub->owed = 0;
            }
            else if (rc != SL_EBUSY)
                break;
            rc = 0;
        }
        int left = sli_remaining(deadline, timeout_ms);
        if (left == 0) {
            rc = SL_ETIMEOUT;
            break;
        }
        int n = sli_turn(self->sess, left);
        if (n < 0) {
            rc = n;
            break;
        }
    }
    sli_session_wait_remove(self->sess, &w);
    if (w.done) {
        rc = 0;
        Sluice__Frame *reply = w.reply;
        if (reply->body_case == SLUICE__FRAME__BODY_ERROR)
            rc = reply->error->code > 0 ? -reply->error->code : SL_EINTERNAL;
        else if (reply->body_case == SLUICE__FRAME__BODY_ACK_REPLY) {
            const Sluice__AckReply *ar = reply->ack_reply;
            for (size_t i = 0; i < ar->n_refused; i++) {
                const Sluice__AckRefused *r = ar->refused[i];
                if (r->topic_id == msg->topic_id && r->offset == msg->offset)
                    rc = r->code == -SL_ESTALE ? SL_ESTALE
                       : r->code > 0 ? -r->code : SL_EINTERNAL;
                else
                    sub->refused++;
            }
        }
        slc_frame_free(&reply);
        /* Stale: another consumer holds the newer attempt; if it comes back
         * here, it is handed out again. */
        if (rc == 0 || rc == SL_ESTALE) {
            (void) sli_kmap_remove(&sub->out, msg->topic_id, msg->offset);
            msg->settled = true;
        }
        if (rc == 0)
            (void) s_acked_add(sub, msg->topic_id, msg->offset);
    }
    return rc;
}

int sl_nack(sl_msg_t *msg, uint32_t delay_ms)
{
    return sl_nack_reason(msg, delay_ms, NULL);
}

int sl_nack_reason(sl_msg_t *msg, uint32_t delay_ms, const char *reason)
{
    char clean[SL_NACK_REASON_MAX + 1];
    int rc = s_settle_check(msg);
    if (rc)
        goto fail;
    sl_sub_t *sub = msg->sub;
    sli_subs_t *self = sub->owner;
    if (sub->state == SLI_SUB_ACTIVE && self->sess->state == SLI_SESS_READY) {
        Sluice__AckItem item = SLUICE__ACK_ITEM__INIT;
        item.topic_id = msg->topic_id;
        item.offset = msg->offset;
        item.token = s_token(msg);
        Sluice__AckItem *items = &item;
        Sluice__Nack nack = SLUICE__NACK__INIT;
        nack.sub_id = sub->sub_id;
        nack.n_items = 1;
        nack.items = &items;
        nack.delay_ms = delay_ms;
        if (reason && reason[0]) {
            /* One line, as the broker keeps it (it refuses a frame whose
             * strings are not UTF-8). */
            slc_text_line(reason, clean, SL_NACK_REASON_MAX);
            nack.reason = clean;
        }
        nack.credit = sub->owed;
        Sluice__Frame f = SLUICE__FRAME__INIT;
        f.body_case = SLUICE__FRAME__BODY_NACK;
        f.nack = &nack;
        rc = sli_send(self->sess, &f);
        if (rc)
            goto fail;
        sub->owed = 0;
    }
    /* Without a session the broker has already put it back for
     * redelivery. Either way, when it comes back it is handed out again. */
    (void) sli_kmap_remove(&sub->out, msg->topic_id, msg->offset);
    msg->settled = true;
fail:
    return rc;
}

void sl_msg_destroy(sl_msg_t **msg_p)
{
    if (!msg_p || !*msg_p)
        return;
    sl_msg_t *m = *msg_p;
    sl_sub_t *sub = m->sub;
    if (!sub) {                 /* sli_msg_detached's */
        s_msg_clear(m);
        free(m);
        *msg_p = NULL;
        return;
    }
    /* Not acked: forget that we hold it, so its redelivery is handed out. */
    if (!m->settled && !sub->opts.ephemeral)
        (void) sli_kmap_remove(&sub->out, m->topic_id, m->offset);
    s_msg_clear(m);
    s_df_release(m->df);
    s_msg_recycle(sub, m);
    s_sub_unref(sub);
    *msg_p = NULL;
}

/* ----------------------------------------------------------- accessors */

const char *sl_msg_topic(const sl_msg_t *msg)
{
    return msg->topic_own ? msg->topic_own : msg->env->topic;
}

uint64_t sl_msg_offset(const sl_msg_t *msg)
{
    return msg->offset;
}

const void *sl_msg_payload(const sl_msg_t *msg, size_t *len)
{
    if (len)
        *len = msg->env->payload.len;
    return msg->env->payload.data;
}

const char *sl_msg_content_type(const sl_msg_t *msg)
{
    return msg->env->content_type ? msg->env->content_type : "";
}

const char *sl_msg_header(const sl_msg_t *msg, const char *key)
{
    for (size_t i = 0; i < msg->env->n_headers; i++)
        if (strcmp(msg->env->headers[i]->key, key) == 0)
            return msg->env->headers[i]->value;
    return NULL;
}

size_t sl_msg_header_count(const sl_msg_t *msg)
{
    return msg->env->n_headers;
}

int sl_msg_header_at(const sl_msg_t *msg, size_t i, const char **key,
                     const char **value)
{
    if (i >= msg->env->n_headers)
        return SL_EINVAL;
    if (key)
        *key = msg->env->headers[i]->key;
    if (value)
        *value = msg->env->headers[i]->value;
    return 0;
}

uint32_t sl_msg_attempt(const sl_msg_t *msg)
{
    return msg->attempt;
}

uint64_t sl_msg_ingest_us(const sl_msg_t *msg)
{
    return msg->env->ingest_ts_us;
}

uint64_t sl_msg_seq(const sl_msg_t *msg)
{
    return msg->env->seq;
}

const char *sl_msg_subscription(const sl_msg_t *msg)
{
    return msg->sub ? msg->sub->name : "";
}
