/*  sl_pub - publishing: the unconfirmed ring, batching, confirms and their
 *  callbacks, retries with backoff, and the transient batch. Owns every
 *  unconfirmed message and the publish state (struct sli_pub). Client
 *  thread only. The session (socket, HelloOk) is sl_session's: this part
 *  registers with it (ready / service / deadline hooks, PublishAck and
 *  Error handlers) and calls nothing else of the SDK but the session.
 *
 *  The ring keeps unconfirmed publishes at slot seq & (cap - 1): seqs are
 *  handed out in order, so a Confirm finds its message in O(1) and the
 *  oldest one is always at base_seq. Seqs >= send_seq have not gone out in
 *  this session. Each envelope is encoded once, in sl_publish; a batch
 *  frame is then the Frame's head followed by the stored envelopes, each as
 *  a length-delimited PublishBatch.msgs field - byte for byte what protobuf
 *  would emit, written by slc_publish_batch_* (the codec owns the tags) -
 *  so resending after a reconnect never re-encodes anything.  */
#include "sl_pub.h"
#include <stdlib.h>
#include <string.h>
#include "sl_client_int.h"

#define SLI_RING_MIN 1024
#define SLI_HDR_STACK 16

/* Transient batches the broker has not yet answered, at most: this paces a
 * transient publisher to the broker's fan-out speed instead of letting it
 * outrun every subscriber's credit. */
#ifndef SLI_TRANSIENT_WINDOW
#define SLI_TRANSIENT_WINDOW 4
#endif

/* Smart (natural) batching: while fewer than this many batch frames await
 * their PublishAck, a publish leaves at once; otherwise publishes gather
 * until an answer arrives, the batch is full or linger_ms has passed. At
 * light load nothing waits for company; under load the batch grows by
 * itself while the broker commits the previous one. */
#ifndef SLI_PUB_INFLIGHT
#define SLI_PUB_INFLIGHT 1
#endif

typedef enum {
    SLI_PEND_UNSENT,            /* waits in the outgoing batch (seq >= send_seq) */
    SLI_PEND_SENT,              /* in a frame, awaiting its Confirm */
    SLI_PEND_RETRY,             /* retryable nack: resend at retry_at */
} sli_pend_state_t;

/* One unconfirmed publish: the envelope is encoded once here and copied
 * into every frame that carries it (first send, retries, resends). */
typedef struct {
    uint64_t seq;
    uint64_t corr;              /* frame it last went out in */
    uint64_t retry_at;          /* mono ms, state RETRY */
    sl_confirm_fn *cb;
    void *arg;
    char *topic;                /* points into this allocation */
    uint32_t len;               /* bytes in enc */
    uint8_t state;              /* sli_pend_state_t */
    uint8_t retries;
    uint8_t enc[];              /* encoded Envelope, then the topic string */
} sli_pending_t;

struct sli_pub {
    sli_session_t *sess;        /* borrowed: the client's session */
    char valid_topic[SLC_TOPIC_MAX + 1];    /* last topic that passed validation */

    /* unconfirmed publishes, slot = seq & (ring_cap - 1) */
    sli_pending_t **ring;
    size_t ring_cap;
    uint64_t base_seq;          /* every live seq is in [base_seq, next_seq) */
    uint64_t next_seq;
    uint64_t send_seq;          /* seqs >= this are UNSENT */
    size_t live;
    size_t unsent_n;
    size_t unsent_bytes;
    uint64_t batch_since;       /* mono ms of the oldest unsent publish */
    size_t wire;                /* batch frames sent, not yet answered */
    size_t retry_n;
    uint64_t retry_at;          /* earliest retry */
    sli_pending_t **scratch;    /* max_batch entries, to assemble a frame */

    /* transient batch: PublishBatch.msgs fields, already framed */
    uint8_t *tbuf;
    size_t tlen, tcap, tn;
    uint64_t tsince;
    uint64_t tcorr[SLI_TRANSIENT_WINDOW]; /* corrs of transient batches not yet answered */
    size_t tout;                /* how many of tcorr are in use */
};

/* ---------------------------------------------------------------- ring */

static int s_ring_init(sli_pub_t *self)
{
    self->ring = calloc(SLI_RING_MIN, sizeof *self->ring);
    self->scratch = calloc((size_t) self->sess->opts.max_batch, sizeof *self->scratch);
    if (!self->ring || !self->scratch)
        return SL_ENOMEM;
    self->ring_cap = SLI_RING_MIN;
    self->base_seq = self->next_seq = self->send_seq = 1;
    return 0;
}

void sli_pub_destroy(sli_pub_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sli_pub_t *self = *self_p;
    if (self->ring)
        for (uint64_t s = self->base_seq; s < self->next_seq; s++) {
            sli_pending_t *p = self->ring[s & (self->ring_cap - 1)];
            if (p && p->seq == s)
                free(p);
        }
    free(self->ring);
    free(self->scratch);
    free(self->tbuf);
    free(self);
    *self_p = NULL;
}

static sli_pending_t *s_get(const sli_pub_t *self, uint64_t seq)
{
    if (seq < self->base_seq || seq >= self->next_seq)
        return NULL;
    sli_pending_t *p = self->ring[seq & (self->ring_cap - 1)];
    return p && p->seq == seq ? p : NULL;
}

/* Make room so that seq next_seq has a slot of its own. */
static int s_fit(sli_pub_t *self)
{
    uint64_t span = self->next_seq - self->base_seq + 1;
    if (span <= self->ring_cap)
        return 0;
    size_t cap = self->ring_cap;
    while (cap < span) {
        if (cap > SIZE_MAX / 2 / sizeof *self->ring)
            return SL_ENOMEM;
        cap *= 2;
    }
    sli_pending_t **ring = calloc(cap, sizeof *ring);
    if (!ring)
        return SL_ENOMEM;
    for (uint64_t s = self->base_seq; s < self->next_seq; s++) {
        sli_pending_t *p = self->ring[s & (self->ring_cap - 1)];
        if (p && p->seq == s)
            ring[s & (cap - 1)] = p;
    }
    free(self->ring);
    self->ring = ring;
    self->ring_cap = cap;
    return 0;
}

static void s_remove(sli_pub_t *self, sli_pending_t *p)
{
    self->ring[p->seq & (self->ring_cap - 1)] = NULL;
    self->live--;
    if (p->state == SLI_PEND_UNSENT) {
        self->unsent_n--;
        self->unsent_bytes -= p->len;
    }
    else if (p->state == SLI_PEND_RETRY)
        self->retry_n--;
    if (self->live == 0)
        self->base_seq = self->next_seq;
    else
        while (self->base_seq < self->next_seq
               && !s_get(self, self->base_seq))
            self->base_seq++;
    if (self->send_seq < self->base_seq)
        self->send_seq = self->base_seq;
}

/* ------------------------------------------------------------ encoding */

typedef struct {
    Sluice__Envelope env;
    Sluice__Header hs[SLI_HDR_STACK];
    Sluice__Header *hp[SLI_HDR_STACK];
    Sluice__Header *heap_hs;
    Sluice__Header **heap_hp;
} sli_env_t;

static void s_env_free(sli_env_t *e)
{
    free(e->heap_hs);
    free(e->heap_hp);
}

/* Fill E to encode MSG; it borrows MSG's strings and bytes. */
static int s_env_build(sli_pub_t *self, const sl_message_t *msg,
                       bool transient, sli_env_t *e)
{
    size_t nh = msg->nheaders + (msg->msg_id ? 1 : 0);
    Sluice__Header *hs = e->hs;
    Sluice__Header **hp = e->hp;
    e->heap_hs = NULL;
    e->heap_hp = NULL;
    if (nh > SLI_HDR_STACK) {
        e->heap_hs = hs = malloc(nh * sizeof *hs);
        e->heap_hp = hp = malloc(nh * sizeof *hp);
        if (!hs || !hp) {
            s_env_free(e);
            return SL_ENOMEM;
        }
    }
    for (size_t i = 0; i < msg->nheaders; i++) {
        sluice__header__init(&hs[i]);
        hs[i].key = (char *) msg->headers[i].key;
        if (msg->headers[i].value)
            hs[i].value = (char *) msg->headers[i].value;
        hp[i] = &hs[i];
    }
    if (msg->msg_id) {
        sluice__header__init(&hs[nh - 1]);
        hs[nh - 1].key = (char *) "msg-id";
        hs[nh - 1].value = (char *) msg->msg_id;
        hp[nh - 1] = &hs[nh - 1];
    }
    sluice__envelope__init(&e->env);
    e->env.topic = (char *) msg->topic;
    if (!transient) {
        e->env.producer_id.data = self->sess->producer_id;
        e->env.producer_id.len = sizeof self->sess->producer_id;
    }
    e->env.n_headers = nh;
    e->env.headers = hp;
    if (msg->content_type)
        e->env.content_type = (char *) msg->content_type;
    e->env.payload.data = (uint8_t *) msg->payload;
    e->env.payload.len = msg->len;
    return 0;
}

/* May TOPIC be published to? 0, SL_EINVAL for a bad name, SL_EDENIED for a
 * broker topic ('_'), which the broker refuses with 403 for everyone.
 * Publishers mostly repeat one topic: the last one that passed is
 * remembered. */
static int s_topic_check(sli_pub_t *self, const char *topic)
{
    if (!topic)
        return SL_EINVAL;
    if (strcmp(topic, self->valid_topic) == 0 && *topic)
        return 0;
    if (slc_topic_validate(topic, true) != 0)
        return SL_EINVAL;
    if (topic[0] == '_')
        return SL_EDENIED;
    snprintf(self->valid_topic, sizeof self->valid_topic, "%s", topic);
    return 0;
}

/* True for a string the broker takes (NULL is none): UTF-8. A frame
 * holding anything else is refused whole, with the messages batched with
 * it (docs/protocol.md, "Names"), so it is refused here, alone. */
static bool s_text_ok(const char *s)
{
    return !s || slc_text_valid(s, strlen(s));
}

static int s_check(sli_pub_t *self, const sl_message_t *msg)
{
    if (self->sess->state == SLI_SESS_VERSION)
        return SL_EVERSION;
    if (!msg || (msg->len && !msg->payload) || (msg->nheaders && !msg->headers))
        return SL_EINVAL;
    int rc = s_topic_check(self, msg->topic);
    if (rc)
        return rc;
    for (size_t i = 0; i < msg->nheaders; i++)
        if (!msg->headers[i].key || !*msg->headers[i].key
            || !s_text_ok(msg->headers[i].key) || !s_text_ok(msg->headers[i].value))
            return SL_EINVAL;
    if (!s_text_ok(msg->content_type) || !s_text_ok(msg->msg_id))
        return SL_EINVAL;
    if (msg->len > self->sess->max_msg)
        return SL_ETOOBIG;
    return 0;
}

/* -------------------------------------------------------------- frames */

/* Send V[0..N) in one PublishBatch frame. On 0 they are SENT with its corr. */
static int s_send_entries(sli_pub_t *self, sli_pending_t **v, size_t n)
{
    size_t body = 0;
    for (size_t i = 0; i < n; i++)
        body += slc_batch_msg_size(v[i]->len);
    uint64_t corr = sli_corr(self->sess);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, slc_publish_batch_size(corr, body, false)) != 0)
        return SL_ENOMEM;
    uint8_t *p = slc_publish_batch_open(zmq_msg_data(&msg), corr, body, false);
    for (size_t i = 0; i < n; i++) {
        p = slc_batch_msg_head(p, v[i]->len);
        memcpy(p, v[i]->enc, v[i]->len);
        p += v[i]->len;
    }
    int rc = sli_send_msg(self->sess, &msg);
    if (rc)
        return rc;
    self->wire++;
    for (size_t i = 0; i < n; i++) {
        v[i]->corr = corr;
        v[i]->state = SLI_PEND_SENT;
    }
    return 0;
}

/* One frame of the oldest unsent publishes. */
static int s_send_fresh(sli_pub_t *self)
{
    size_t n = 0, bytes = 0;
    uint64_t s = self->send_seq;
    for (; s < self->next_seq && n < self->sess->max_batch; s++) {
        sli_pending_t *p = s_get(self, s);
        if (!p)
            continue;
        if (n && bytes + p->len > self->sess->opts.max_batch_bytes)
            break;
        self->scratch[n++] = p;
        bytes += p->len;
    }
    int rc = n ? s_send_entries(self, self->scratch, n) : 0;
    if (rc)
        return rc;
    self->send_seq = s;
    self->unsent_n -= n;
    self->unsent_bytes -= bytes;
    return 0;
}

static int s_send_retry_batch(sli_pub_t *self, size_t n)
{
    int rc = s_send_entries(self, self->scratch, n);
    if (rc == 0)
        self->retry_n -= n;
    return rc;
}

/* Resend every RETRY publish that is due, oldest first. */
static void s_send_retries(sli_pub_t *self, uint64_t now)
{
    uint64_t next_at = UINT64_MAX;
    size_t n = 0, bytes = 0;
    for (uint64_t s = self->base_seq; s < self->send_seq; s++) {
        sli_pending_t *p = s_get(self, s);
        if (!p || p->state != SLI_PEND_RETRY)
            continue;
        if (p->retry_at > now) {
            next_at = sli_min(next_at, p->retry_at);
            continue;
        }
        if (n == self->sess->max_batch
            || (n && bytes + p->len > self->sess->opts.max_batch_bytes)) {
            if (s_send_retry_batch(self, n) != 0)
                goto blocked;
            n = bytes = 0;
        }
        self->scratch[n++] = p;
        bytes += p->len;
    }
    if (n && s_send_retry_batch(self, n) != 0)
        goto blocked;
    self->retry_at = next_at;
    return;
blocked:
    self->retry_at = now + 1;
}

/* Send the transient batch with a corr: the broker answers it with an empty
 * PublishAck once fanned out, which frees a place in the window. SL_EBUSY
 * while the window is full. */
static int s_send_transient(sli_pub_t *self)
{
    if (self->tout >= SLI_TRANSIENT_WINDOW)
        return SL_EBUSY;
    uint64_t corr = sli_corr(self->sess);
    zmq_msg_t msg;
    if (zmq_msg_init_size(&msg, slc_publish_batch_size(corr, self->tlen, true)) != 0)
        return SL_ENOMEM;
    uint8_t *p = slc_publish_batch_open(zmq_msg_data(&msg), corr, self->tlen, true);
    memcpy(p, self->tbuf, self->tlen);
    (void) slc_publish_batch_close(p + self->tlen, true);
    int rc = sli_send_msg(self->sess, &msg);
    if (rc == 0) {
        self->tlen = self->tn = 0;
        self->tcorr[self->tout++] = corr;
    }
    return rc;
}

/* True when CORR answered one of our transient batches (and frees it). */
static bool s_transient_answered(sli_pub_t *self, uint64_t corr)
{
    for (size_t i = 0; i < self->tout; i++)
        if (self->tcorr[i] == corr) {
            self->tcorr[i] = self->tcorr[--self->tout];
            return true;
        }
    return false;
}

/* May the unsent publishes go now (FORCE: the caller is about to block)?
 * Yes when the wire is nearly idle (SLI_PUB_INFLIGHT), the batch is full or
 * the oldest has waited linger_ms. */
static bool s_fresh_due(const sli_pub_t *self, uint64_t now, bool force)
{
    return force || self->wire < SLI_PUB_INFLIGHT
        || self->unsent_n >= self->sess->max_batch
        || self->unsent_bytes >= self->sess->opts.max_batch_bytes
        || now - self->batch_since >= (uint64_t) self->sess->opts.linger_ms;
}

static void s_service(void *part, uint64_t now, bool force)
{
    sli_pub_t *self = part;
    if (self->sess->state != SLI_SESS_READY)
        return;
    if (self->retry_n && now >= self->retry_at)
        s_send_retries(self, now);
    while (self->unsent_n > 0) {
        if (!s_fresh_due(self, now, force))
            break;
        if (s_send_fresh(self) != 0)
            break;              /* pipe full: the next turn tries again */
    }
    if (self->tn && (force || self->tn >= self->sess->max_batch
                     || self->tlen >= self->sess->opts.max_batch_bytes
                     || now - self->tsince >= (uint64_t) self->sess->opts.linger_ms))
        (void) s_send_transient(self);
}

static uint64_t s_deadline(const void *part)
{
    const sli_pub_t *self = part;
    uint64_t d = UINT64_MAX;
    if (self->sess->state != SLI_SESS_READY)
        return d;
    if (self->unsent_n)
        d = self->wire < SLI_PUB_INFLIGHT
            ? 0 : self->batch_since + (uint64_t) self->sess->opts.linger_ms;
    if (self->retry_n)
        d = sli_min(d, self->retry_at);
    if (self->tn)
        d = sli_min(d, self->tsince + (uint64_t) self->sess->opts.linger_ms);
    return d;
}

static void s_session_ready(void *part, const Sluice__HelloOk *ok)
{
    sli_pub_t *self = part;
    uint64_t last_seq = ok->producer_last_seq;
    self->tout = 0;             /* a new session answers nothing of the old */
    self->wire = 0;
    if (last_seq >= self->next_seq) {
        if (self->live)
            SLI_LOG("the broker has sequence %llu for this producer id, "
                    "beyond ours (%llu): is another producer using the id?",
                    (unsigned long long) last_seq,
                    (unsigned long long) (self->next_seq - 1));
        self->next_seq = last_seq + 1;
        if (!self->live)
            self->base_seq = self->send_seq = self->next_seq;
    }
    /* Everything unconfirmed goes again, in seq order; the broker
     * recognises what it already stored by (producer id, seq). */
    self->send_seq = self->base_seq;
    self->unsent_n = self->live;
    self->unsent_bytes = 0;
    self->retry_n = 0;
    for (uint64_t s = self->base_seq; s < self->next_seq; s++) {
        sli_pending_t *p = s_get(self, s);
        if (p) {
            p->state = SLI_PEND_UNSENT;
            self->unsent_bytes += p->len;
        }
    }
    self->batch_since = 0;      /* due at once */
}

/* ------------------------------------------------------------ confirms */

static void s_settle(sli_pub_t *self, sli_pending_t *p, int rc,
                     const char *text, uint64_t offset, bool duplicate)
{
    s_remove(self, p);
    if (p->cb) {
        sl_confirm_t c = { .rc = rc, .text = text, .topic = p->topic,
                           .seq = p->seq, .offset = offset,
                           .duplicate = duplicate };
        self->sess->cb_depth++;
        p->cb(&c, p->arg);
        self->sess->cb_depth--;
    }
    free(p);
}

static void s_retry(sli_pub_t *self, sli_pending_t *p, uint64_t now)
{
    if (p->state != SLI_PEND_SENT)
        return;
    if (p->retries < UINT8_MAX)
        p->retries++;
    p->state = SLI_PEND_RETRY;
    p->retry_at = now + sli_backoff(self->sess, p->retries);
    self->retry_at = self->retry_n ? sli_min(self->retry_at, p->retry_at)
                                   : p->retry_at;
    self->retry_n++;
}

/* A Confirm without seq: find the INDEX-th message of frame CORR. Only a
 * fallback, hence the scan. */
static sli_pending_t *s_by_index(const sli_pub_t *self, uint64_t corr,
                                 uint32_t index)
{
    uint32_t i = 0;
    for (uint64_t s = self->base_seq; s < self->next_seq; s++) {
        sli_pending_t *p = s_get(self, s);
        if (p && p->corr == corr && p->state == SLI_PEND_SENT && i++ == index)
            return p;
    }
    return NULL;
}

static bool s_on_ack(void *arg, const Sluice__Frame *frame)
{
    sli_pub_t *self = arg;
    const Sluice__PublishAck *pa = frame->publish_ack;
    uint64_t now = slc_mono_ms();
    if (pa->n_confirms == 0 && s_transient_answered(self, frame->corr))
        return true;
    /* One PublishAck answers one batch frame: what gathered meanwhile may
     * go at the next service (the turn runs it right after the frames). */
    if (self->wire)
        self->wire--;
    for (size_t i = 0; i < pa->n_confirms; i++) {
        const Sluice__Confirm *c = pa->confirms[i];
        sli_pending_t *p = c->seq ? s_get(self, c->seq)
                                  : s_by_index(self, frame->corr, c->index);
        if (!p)
            continue;           /* settled before: the answer to a resend */
        if (c->code == 0)
            s_settle(self, p, 0, NULL, c->offset, c->duplicate);
        else if (c->retryable)
            s_retry(self, p, now);
        else
            s_settle(self, p, c->code > 0 ? -c->code : SL_EINTERNAL,
                     c->text, 0, false);
    }
    return true;
}

/* An Error answering one of our batch frames; false for any other (the
 * session logs what no part claims). */
static bool s_on_error(void *arg, const Sluice__Frame *frame)
{
    sli_pub_t *self = arg;
    uint64_t corr = frame->corr;
    const Sluice__Error *err = frame->error;
    if (s_transient_answered(self, corr)) {
        SLI_LOG("transient batch refused: %s", err->text);
        return true;
    }
    uint64_t now = slc_mono_ms();
    int code = err->code > 0 ? -err->code : SL_EINTERNAL;
    size_t hit = 0;
    /* The whole batch frame was refused. Seqs are looked up one by one
     * because a callback may publish (and grow the ring) meanwhile. */
    uint64_t end = self->next_seq;
    for (uint64_t s = self->base_seq; s < end; s++) {
        sli_pending_t *p = s_get(self, s);
        if (!p || p->corr != corr || p->state != SLI_PEND_SENT)
            continue;
        hit++;
        if (err->retryable)
            s_retry(self, p, now);
        else
            s_settle(self, p, code, err->text, 0, false);
    }
    if (hit && self->wire)
        self->wire--;
    return hit > 0;
}

/* ------------------------------------------------------------ lifetime */

static const sli_part_ops_t s_part = {
    .ready = s_session_ready,
    .service = s_service,
    .deadline = s_deadline,
};

int sli_pub_new(sli_session_t *sess, sli_pub_t **out)
{
    int rc = 0;
    *out = NULL;
    sli_pub_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->sess = sess;
    rc = s_ring_init(self);
    if (!rc)
        rc = sli_session_part_add(sess, &s_part, self);
    if (!rc)
        rc = sli_session_on(sess, SLUICE__FRAME__BODY_PUBLISH_ACK, s_on_ack, self);
    if (!rc)
        rc = sli_session_on(sess, SLUICE__FRAME__BODY_ERROR, s_on_error, self);
    if (rc) {
        sli_pub_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

/* -------------------------------------------------------------- public */

static int s_wait_room(sli_pub_t *self)
{
    int rc = 0;
    if (self->sess->cb_depth > 0 || self->sess->opts.block_ms == 0)
        return SL_EBUSY;
    uint64_t deadline = slc_mono_ms() + (uint64_t) self->sess->opts.block_ms;
    while (self->live >= (size_t) self->sess->opts.max_unacked) {
        /* Everything out now: only confirms make room. */
        s_service(self, slc_mono_ms(), true);
        int left = sli_remaining(deadline, self->sess->opts.block_ms);
        if (left == 0) {
            rc = SL_EBUSY;
            goto fail;
        }
        rc = sli_turn(self->sess, left);
        if (rc < 0)
            goto fail;
        rc = 0;
    }
fail:
    return rc;
}

/* With a persistent id the broker knows where our sequence stands:
 * numbering before HelloOk could reuse stored seqs, which the broker would
 * then take for duplicates. 0 once numbering may start, or why not. */
static int s_wait_numbering(sli_pub_t *self)
{
    if (!self->sess->id_file || self->sess->ever_ready)
        return 0;
    return self->sess->cb_depth ? SL_EBUSY
                                : sli_wait_ready(self->sess, self->sess->opts.connect_timeout_ms);
}

int sl_publish(sl_client_t *client, const sl_message_t *msg,
               sl_confirm_fn *cb, void *arg, uint64_t *seq)
{
    sli_pub_t *self = client->pub;
    int rc = s_check(self, msg);
    sli_pending_t *p = NULL;
    sli_env_t e;
    if (rc)
        goto fail;
    rc = s_wait_numbering(self);
    if (rc)
        goto fail;
    if (self->live >= (size_t) self->sess->opts.max_unacked) {
        rc = s_wait_room(self);
        if (rc)
            goto fail;
    }
    rc = s_fit(self);
    if (rc)
        goto fail;
    rc = s_env_build(self, msg, false, &e);
    if (rc)
        goto fail;
    e.env.seq = self->next_seq;
    size_t len = slc_envelope_size(&e.env);
    size_t tlen = strlen(msg->topic);
    p = malloc(sizeof *p + len + tlen + 1);
    if (!p) {
        s_env_free(&e);
        rc = SL_ENOMEM;
        goto fail;
    }
    slc_envelope_pack(&e.env, p->enc);
    s_env_free(&e);
    p->seq = self->next_seq++;
    p->corr = 0;
    p->retry_at = 0;
    p->cb = cb;
    p->arg = arg;
    p->len = (uint32_t) len;
    p->state = SLI_PEND_UNSENT;
    p->retries = 0;
    p->topic = (char *) p->enc + len;
    memcpy(p->topic, msg->topic, tlen + 1);
    self->ring[p->seq & (self->ring_cap - 1)] = p;
    self->live++;
    uint64_t now = slc_mono_ms();
    if (self->unsent_n == 0)
        self->batch_since = now;
    self->unsent_n++;
    self->unsent_bytes += len;
    if (seq)
        *seq = p->seq;
    if (s_fresh_due(self, now, false))
        s_service(self, now, false);
    sli_tick(self->sess, now);
    return 0;
fail:
    return rc;
}

int sl_publish_transient(sl_client_t *client, const sl_message_t *msg)
{
    sli_pub_t *self = client->pub;
    int rc = s_check(self, msg);
    sli_env_t e;
    if (rc)
        goto fail;
    rc = s_env_build(self, msg, true, &e);
    if (rc)
        goto fail;
    size_t len = slc_envelope_size(&e.env);
    size_t need = slc_batch_msg_size(len);
    uint64_t now = slc_mono_ms();
    if (self->tn && (self->tn >= self->sess->max_batch
                     || self->tlen + need > self->sess->opts.max_batch_bytes)) {
        /* Full: it must leave before this one joins; when the window is
         * full too, do I/O until the broker answers (at most block_ms). */
        uint64_t deadline = now + (uint64_t) self->sess->opts.block_ms;
        while (self->tn) {
            if (self->sess->state == SLI_SESS_READY && s_send_transient(self) == 0)
                break;
            int left = self->sess->cb_depth > 0 ? 0 : sli_remaining(deadline, self->sess->opts.block_ms);
            if (left == 0 || sli_turn(self->sess, left) < 0)
                break;
        }
        if (self->tn) {
            s_env_free(&e);
            rc = SL_EBUSY;
            goto fail;
        }
        now = slc_mono_ms();
    }
    if (self->tlen + need > self->tcap) {
        size_t cap = self->tcap ? self->tcap : 64 * 1024;
        while (cap < self->tlen + need)
            cap *= 2;
        uint8_t *buf = realloc(self->tbuf, cap);
        if (!buf) {
            s_env_free(&e);
            rc = SL_ENOMEM;
            goto fail;
        }
        self->tbuf = buf;
        self->tcap = cap;
    }
    slc_envelope_pack(&e.env, slc_batch_msg_head(self->tbuf + self->tlen, len));
    s_env_free(&e);
    self->tlen += need;
    if (self->tn++ == 0)
        self->tsince = now;
    if (self->sess->state == SLI_SESS_READY
        && (self->tn >= self->sess->max_batch
            || self->tlen >= self->sess->opts.max_batch_bytes))
        (void) s_send_transient(self);
    sli_tick(self->sess, now);
    return 0;
fail:
    return rc;
}

int sl_flush(sl_client_t *client, int timeout_ms)
{
    sli_pub_t *self = client->pub;
    int rc = 0;
    if (self->sess->cb_depth > 0)
        return SL_EBUSY;
    uint64_t deadline = slc_mono_ms() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0);
    while (true) {
        if (self->sess->state == SLI_SESS_VERSION) {
            rc = SL_EVERSION;
            break;
        }
        uint64_t now = slc_mono_ms();
        /* Every part's: the subscriptions' acks go out too. */
        sli_session_service(self->sess, now, true);
        /* Transient batches count until the broker has answered them: a
         * batch still in the socket when the client closes is lost. */
        if (self->live == 0 && self->tn == 0 && self->tout == 0)
            break;
        int left = sli_remaining(deadline, timeout_ms);
        if (left == 0) {
            rc = SL_ETIMEOUT;
            break;
        }
        rc = sli_turn(self->sess, left);
        if (rc < 0)
            break;
        rc = 0;
    }
    return rc;
}

typedef struct {
    bool done;
    sl_confirm_t c;
} sli_sync_t;

static void s_sync_cb(const sl_confirm_t *c, void *arg)
{
    sli_sync_t *st = arg;
    st->done = true;
    st->c = *c;
    st->c.text = NULL;          /* borrowed pointers die with the callback */
    st->c.topic = NULL;
}

int sl_publish_sync(sl_client_t *client, const sl_message_t *msg,
                    int timeout_ms, sl_confirm_t *out)
{
    sli_pub_t *self = client->pub;
    int rc = 0;
    uint64_t seq = 0;
    sli_sync_t st = { 0 };
    if (self->sess->cb_depth > 0)
        return SL_EBUSY;
    rc = sl_publish(client, msg, s_sync_cb, &st, &seq);
    if (rc)
        goto fail;
    uint64_t deadline = slc_mono_ms() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0);
    while (!st.done) {
        s_service(self, slc_mono_ms(), true);
        int left = sli_remaining(deadline, timeout_ms);
        rc = left == 0 ? SL_ETIMEOUT : sli_turn(self->sess, left);
        if (rc < 0)
            goto detach;
        rc = 0;
    }
    if (out)
        *out = st.c;
    return st.c.rc;
detach:
    /* The message stays queued and will still be delivered; only its
     * callback, which points at this stack frame, has to go. */
    {
        sli_pending_t *p = s_get(self, seq);
        if (p)
            p->cb = NULL;
    }
fail:
    return rc;
}

size_t sl_unconfirmed(const sl_client_t *client)
{
    return client->pub->live;
}

int sl_publish_next_seq(sl_client_t *client, uint64_t *next)
{
    sli_pub_t *self = client->pub;
    int rc = s_wait_numbering(self);
    if (rc == 0)
        *next = self->next_seq;
    return rc;
}
