/*  sld_server - sessions, protocol dispatch and group commit.
 *
 *  One loop turn: (1) read every frame that has arrived, up to
 *  commit_max_msgs messages or commit_max_bytes bytes; frames that only read
 *  or change memory (hello, heartbeat, subscribe, credit, ack, stats) are
 *  handled at once, frames that write (publish, topic admin) are kept;
 *  (2) open ONE write transaction, apply the kept frames and the delivery
 *  module's pending state (cursors, dead letters), commit (fsync);
 *  (3) only then send the replies of the turn, so a PublishAck always
 *  names a committed offset; (4) pump deliveries and timers. A write
 *  transaction never spans two turns.
 *
 *  When LMDB reports the map full the transaction is aborted, the map grows
 *  (up to map_size_max) and the kept frames are applied again; at the
 *  ceiling they are applied once more with every publish refused (507),
 *  so acks and subscriptions still commit while publishers see a clear,
 *  retryable error. Nothing is half applied: in-memory effects of writes
 *  happen only after the commit.
 *
 *  Per session the protocol is a table of state x command -> handler
 *  (s_ready_table); a peer without a session may only say Hello.
 *
 *  Size: about 2,450 lines, twice the house's 1,200: transport, sessions,
 *  dispatch, authorization, ingest, admin and commit policy are separate
 *  concerns that issue 17 splits into their own files; new concerns go
 *  in files of their own meanwhile (sld_disk, sld_monitor).  */
#include "sld_server.h"
#include <czmq.h>
#include <errno.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slc_cert.h"
#include "slc_codec.h"
#include "sld_audit.h"
#include "sld_auth.h"
#include "sld_delivery.h"
#include "sld_disk.h"
#include "sld_helper.h"
#include "sld_keys.h"
#include "sld_registry.h"
#include "sld_seal.h"
#include <sodium.h>
#include "sld_metrics.h"
#include "sld_monitor.h"
#include "sld_store.h"
#include "sld_topics.h"

#define S_ID_MAX 255

struct sld_session {
    uint8_t id[S_ID_MAX];
    size_t id_len;
    char key[2 * S_ID_MAX + 1];
    char client[64];
    uint64_t last_seen_ms;
    uint32_t timeout_ms;
    bool gone;
    sld_ident_t *ident;         /* who is connected (borrowed from sld_auth) */
    int fd;                     /* the connection's socket (ZMQ_SRCFD), -1 if unknown */
    struct sockaddr_storage addr; /* its peer address then: a reused fd is told apart */
    socklen_t addr_len;
};

/* Envelope.ingest_ts_us (7, varint) and Envelope.source (8, bytes), as
 * s_stamp appends them to a stored envelope. */
#define S_TAG_ENVELOPE_INGEST_TS 0x38
#define S_TAG_ENVELOPE_SOURCE 0x42

/* The peer a frame came from: always an id, a session once it said Hello. */
typedef struct {
    const uint8_t *id;
    size_t id_len;
    sld_session_t *session;
    zmq_msg_t *raw;             /* the frame's encoding while it is handled, or NULL */
} s_peer_t;

typedef struct {
    uint8_t id[S_ID_MAX];
    size_t id_len;
    zmq_msg_t msg;
} s_reply_t;

typedef struct {
    s_reply_t *v;
    size_t n, cap;
} s_replies_t;

typedef struct {
    uint8_t id[S_ID_MAX];
    size_t id_len;
    sld_session_t *session;
    Sluice__Frame *frame;
    zmq_msg_t raw;              /* FRAME's encoding: stored envelopes are cut from it */
} s_write_t;

struct sld_server {
    sld_config_t cfg;
    char endpoint[256];
    void *zctx;
    void *router;
    sld_metrics_t *metrics;
    sld_store_t *store;
    sld_disk_t *disk;           /* room on the disk ahead of the store's writes */
    bool disk_full;             /* this turn's publishes refused for want of disk */
    sld_topics_t *topics;
    sld_delivery_t *delivery;
    sld_auth_t *auth;
    sld_audit_t *audit;
    sld_monitor_t *monitor;     /* the ROUTER's connection events */
    sld_registry_t *registry;
    char **texts;               /* nack texts of the frame being applied (owned) */
    size_t ntexts, captexts;
    zhashx_t *sessions;         /* key -> sld_session_t (owned) */
    uint64_t epoch;
    char instance[33];
    s_write_t *writes;          /* frames of this turn that write */
    size_t nwrites, capwrites;
    s_replies_t replies;        /* replies of this turn, sent after commit */
    s_replies_t wreplies;       /* replies of the write phase (redone on retry) */
    /* Delivery while a commit waits for the disk (s_on_commit). */
    sld_helper_t *helper;       /* runs sld_delivery_pump_ahead */
    bool ahead_ok;              /* the commit under way is s_try's */
    bool ahead_running;
    uint64_t ahead_now;
    bool turn_committed;        /* the last turn committed: its pump may wait */
    uint32_t *appended;         /* topics appended to in the open txn */
    size_t nappended, capappended;
    uint8_t *scratch;           /* envelope packing */
    size_t capscratch;
    Sluice__Confirm *confirms;
    Sluice__Confirm **confirm_ptrs;
    size_t capconfirms;
    slc_span_t *spans;          /* where a kept frame's envelopes lie in its encoding */
    size_t capspans;
    sld_refusal_t *refusals;
    size_t caprefusals;
    sld_session_t **gone;
    size_t ngone, capgone;
    uint64_t next_expiry_ms;
    uint64_t trim_at_ms;        /* give freed heap back to the system then (0: no) */
    uint64_t next_space_ms;     /* when to measure free space again */
    uint64_t space_used;        /* map bytes in use as measured, plus what
                                 * publishes may have taken since */
    bool near_full;             /* free space below the reserve: refuse publishes */
    uint64_t t_stored, t_bytes, t_dups, t_nacked; /* this attempt's publishes */
};

/* ---------------------------------------------------------------- helpers */

static void s_log(const sld_server_t *self, int level, const char *fmt, ...)
{
    if (level > self->cfg.log_level)
        return;
    static const char *const names[] = { "error", "warn", "info", "debug" };
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", gmtime_r(&now, &tm));
    fprintf(stderr, "%sZ sluiced %s: ", when, names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void s_hex(const uint8_t *id, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[2 * len] = 0;
}

/* Queue FRAME for PEER in Q (encoded now, sent after the commit). */
static void s_queue(sld_server_t *self, s_replies_t *q, const uint8_t *id,
                    size_t id_len, uint64_t corr, Sluice__Frame *frame)
{
    frame->corr = corr;
    if (slc_grow((void **) &q->v, &q->cap, q->n + 1, sizeof(s_reply_t)) != 0) {
        s_log(self, 0, "out of memory queueing a %s reply", slc_frame_name(frame));
        return;
    }
    s_reply_t *r = &q->v[q->n];
    if (slc_frame_encode(frame, &r->msg) != 0)
        return;
    /* A text may quote a name cut inside a character: clients refuse a
     * frame that is not UTF-8 (docs/protocol.md, "Names"). */
    slc_frame_texts_repair(frame, &r->msg);
    memcpy(r->id, id, id_len);
    r->id_len = id_len;
    q->n++;
}

static void s_reply(sld_server_t *self, const s_peer_t *peer, uint64_t corr,
                    Sluice__Frame *frame)
{
    s_queue(self, &self->replies, peer->id, peer->id_len, corr, frame);
}

/* Answer PEER with Error CODE and TEXT; counted per code. */
static void s_error(sld_server_t *self, const s_peer_t *peer, uint64_t corr,
                    int code, const char *text)
{
    Sluice__Error err = SLUICE__ERROR__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    err.code = -code;
    err.text = (char *) (text ? text : slc_strerror(code));
    err.retryable = slc_retryable(code);
    frame.body_case = SLUICE__FRAME__BODY_ERROR;
    frame.error = &err;
    sld_metrics_error(self->metrics, code);
    s_log(self, 3, "error %d to peer: %s", -code, err.text);
    s_reply(self, peer, corr, &frame);
}

/* Refuse PEER's command with 403 TEXT and audit the attempt as ACTION (the
 * command), TARGET (what it was aimed at: topic, pattern, subscription or
 * identity) and DETAIL (its arguments and the grant it needed; never
 * secret material). */
static void s_deny_text(sld_server_t *self, const s_peer_t *peer, uint64_t corr,
                        const char *action, const char *target, const char *detail,
                        const char *text)
{
    sld_audit_add(self->audit, false, sld_ident_name(peer->session->ident), action, target,
                  "denied", detail);
    s_error(self, peer, corr, SL_EDENIED, text);
}

/* The same, answered "identity "NAME" may not WHAT OBJECT: no grant covers
 * it". */
static void s_deny(sld_server_t *self, const s_peer_t *peer, uint64_t corr,
                   const char *action, const char *target, const char *detail,
                   const char *what, const char *object)
{
    char text[SLC_TOPIC_MAX + SLD_IDENT_NAME_MAX + 96];
    snprintf(text, sizeof text, "identity \"%s\" may not %s %s: no grant covers it",
             sld_ident_name(peer->session->ident), what, object ? object : "");
    s_deny_text(self, peer, corr, action, target, detail, text);
}

static void s_grants_text(const Sluice__GrantChange *gc, char *out, size_t len);

/* May IDENT publish to TOPIC? False with the 403 text in WHY (LEN bytes)
 * when not: a broker topic ('_') is written by no client, any other valid
 * name needs a publish grant. An invalid name passes here: its 422 comes
 * from where it is stored. */
static bool s_may_publish(const sld_ident_t *ident, const char *topic, char *why, size_t len)
{
    const char *who = sld_ident_name(ident);
    if (topic[0] == '_' && slc_topic_validate(topic, true) == 0)
        snprintf(why, len, "identity \"%s\" may not publish to %s: topics starting with '_' "
                 "are written only by the broker", who, topic);
    else if (slc_topic_validate(topic, false) == 0
             && !sld_ident_allows(ident, SLD_PERM_PUBLISH, topic))
        snprintf(why, len, "identity \"%s\" may not publish to %s: no grant covers it",
                 who, topic);
    else
        return true;
    return false;
}

static void s_mark_gone(sld_server_t *self, sld_session_t *session)
{
    if (session->gone)
        return;
    if (slc_grow((void **) &self->gone, &self->capgone, self->ngone + 1,
               sizeof(sld_session_t *)) != 0)
        return;
    session->gone = true;
    self->gone[self->ngone++] = session;
}

static void s_send_queue(sld_server_t *self, s_replies_t *q)
{
    for (size_t i = 0; i < q->n; i++) {
        s_reply_t *r = &q->v[i];
        if (zmq_send(self->router, r->id, r->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
            || zmq_msg_send(&r->msg, self->router, ZMQ_DONTWAIT) < 0) {
            /* The peer left (ROUTER_MANDATORY says so): its session goes. */
            zmq_msg_close(&r->msg);
            char key[2 * S_ID_MAX + 1];
            s_hex(r->id, r->id_len, key);
            sld_session_t *s = zhashx_lookup(self->sessions, key);
            if (s)
                s_mark_gone(self, s);
        }
    }
    q->n = 0;
}

static void s_drop_queue(s_replies_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        zmq_msg_close(&q->v[i].msg);
    q->n = 0;
}

static int s_deliver_send(void *arg, sld_session_t *session, const Sluice__Frame *frame)
{
    sld_server_t *self = arg;
    int rc = slc_frame_send(self->router, session->id, session->id_len, frame,
                            ZMQ_DONTWAIT);
    /* A full queue (SL_EBUSY) drops this frame only: the delivery module
     * counts it. A peer that is gone takes its session with it. */
    if (rc && rc != SL_EBUSY)
        s_mark_gone(self, session);
    return rc;
}

static void s_session_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void s_reap(sld_server_t *self)
{
    for (size_t i = 0; i < self->ngone; i++) {
        sld_session_t *s = self->gone[i];
        sld_delivery_session_gone(self->delivery, s);
        sld_ident_sessions(s->ident, -1);
        s_log(self, 2, "session %s (%s) closed", s->key, s->client);
        zhashx_delete(self->sessions, s->key);
    }
    /* A session that went with a full send queue (a consumer that stopped
     * reading) freed up to max_unacked_bytes plus its queue; glibc keeps
     * such memory unless asked. A second later ZeroMQ has freed the queue. */
    if (self->ngone && !self->trim_at_ms)
        self->trim_at_ms = slc_mono_ms() + 1000;
    self->ngone = 0;
}

/* End the sessions silent for longer than their timeout (docs/protocol.md:
 * max(3 x heartbeat, session_timeout_ms), fixed at Hello); returns the ms
 * until the next one can end. next_expiry_ms is the earliest deadline seen,
 * so a session is ended on time, not up to a second late; a frame since
 * only moves its deadline later, which costs one early scan. */
static long s_expire(sld_server_t *self, uint64_t now)
{
    if (now < self->next_expiry_ms)
        return (long) (self->next_expiry_ms - now);
    uint64_t next = now + 1000;
    for (sld_session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions)) {
        if (s->gone)
            continue;
        uint64_t deadline = s->last_seen_ms + s->timeout_ms;
        if (now > deadline) {
            sld_metrics_add(self->metrics, SLD_M_SESSIONS_EXPIRED, 1);
            s_log(self, 2, "session %s (%s) expired: silent for %" PRIu64 " ms (timeout %u ms)",
                  s->key, s->client, now - s->last_seen_ms, s->timeout_ms);
            s_mark_gone(self, s);
        }
        else if (deadline + 1 < next)
            next = deadline + 1;
    }
    self->next_expiry_ms = next;
    s_reap(self);
    return (long) (next - now);
}

/* --------------------------------------------------------------- handlers */

typedef bool (s_handler_fn)(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f);

static bool s_on_hello(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    Sluice__Hello *hello = f->hello;
    if (hello->version != SLC_PROTOCOL_VERSION) {
        char text[128];
        snprintf(text, sizeof text, "protocol version %u is not supported; this broker speaks %d",
                 hello->version, SLC_PROTOCOL_VERSION);
        s_error(self, peer, f->corr, SL_EVERSION, text);
        return false;
    }
    sld_ident_t *ident = sld_auth_plaintext(self->auth);
    if (!ident) {
        /* ZAP admitted the key and named its identity as User-Id; the
         * identity may have been revoked since. */
        const char *uid = peer->raw ? zmq_msg_gets(peer->raw, "User-Id") : NULL;
        ident = uid ? sld_auth_lookup(self->auth, uid) : NULL;
        if (!ident || sld_ident_revoked(ident)) {
            s_error(self, peer, f->corr, SL_EAUTH, "this connection's key is not admitted");
            return false;
        }
    }
    sld_session_t *s = peer->session;
    if (!s) {
        if (zhashx_size(self->sessions) >= self->cfg.max_connections) {
            s_error(self, peer, f->corr, SL_EBUSY, "too many sessions (limits/max_connections)");
            return false;
        }
        s = calloc(1, sizeof(sld_session_t));
        if (!s) {
            s_error(self, peer, f->corr, SL_ENOMEM, NULL);
            return false;
        }
        memcpy(s->id, peer->id, peer->id_len);
        s->id_len = peer->id_len;
        s_hex(peer->id, peer->id_len, s->key);
        s->ident = ident;
        sld_ident_sessions(ident, 1);
        s->fd = peer->raw ? zmq_msg_get(peer->raw, ZMQ_SRCFD) : -1;
        s->addr_len = sizeof s->addr;
        if (s->fd < 0 || getpeername(s->fd, (struct sockaddr *) &s->addr, &s->addr_len) != 0)
            s->addr_len = 0;
        zhashx_insert(self->sessions, s->key, s);
        sld_metrics_add(self->metrics, SLD_M_SESSIONS, 1);
    }
    snprintf(s->client, sizeof s->client, "%s", hello->client ? hello->client : "");
    uint32_t hb = hello->heartbeat_ms ? hello->heartbeat_ms : self->cfg.heartbeat_ms;
    uint64_t timeout = 3 * (uint64_t) hb;
    if (timeout < self->cfg.session_timeout_ms)
        timeout = self->cfg.session_timeout_ms;
    s->timeout_ms = timeout > UINT32_MAX ? UINT32_MAX : (uint32_t) timeout;
    s->last_seen_ms = slc_mono_ms();
    if (s->last_seen_ms + s->timeout_ms + 1 < self->next_expiry_ms)
        self->next_expiry_ms = s->last_seen_ms + s->timeout_ms + 1;
    s_log(self, 2, "session %s opened by \"%s\" as %s", s->key, s->client,
          sld_ident_name(ident));

    Sluice__HelloOk ok = SLUICE__HELLO_OK__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    ok.version = SLC_PROTOCOL_VERSION;
    ok.broker = self->instance;
    ok.session = self->epoch;
    ok.heartbeat_ms = self->cfg.heartbeat_ms;
    ok.max_message_bytes = self->cfg.max_message_bytes;
    ok.max_batch = self->cfg.max_batch;
    if (hello->producer_id.len == SLC_PRODUCER_ID_LEN)
        ok.producer_last_seq = sld_store_producer_last_seq(self->store, hello->producer_id.data);
    frame.body_case = SLUICE__FRAME__BODY_HELLO_OK;
    frame.hello_ok = &ok;
    s_reply(self, peer, f->corr, &frame);
    return false;
}

static bool s_on_heartbeat(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    hb.now_us = slc_now_us();
    frame.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &hb;
    s_reply(self, peer, f->corr, &frame);
    return false;
}

static void s_write_free(s_write_t *w)
{
    slc_frame_free(&w->frame);
    zmq_msg_close(&w->raw);
}

static void s_keep(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    if (slc_grow((void **) &self->writes, &self->capwrites, self->nwrites + 1,
               sizeof(s_write_t)) != 0) {
        s_error(self, peer, f->corr, SL_ENOMEM, NULL);
        slc_frame_free(&f);
        return;
    }
    s_write_t *w = &self->writes[self->nwrites++];
    memcpy(w->id, peer->id, peer->id_len);
    w->id_len = peer->id_len;
    w->session = peer->session;
    w->frame = f;
    zmq_msg_init(&w->raw);
    if (peer->raw)
        zmq_msg_move(&w->raw, peer->raw);
}

static bool s_on_publish(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    bool batch = f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH;
    size_t n = batch ? f->publish_batch->n_msgs : (f->publish->msg ? 1 : 0);
    Sluice__Envelope **msgs = batch ? f->publish_batch->msgs : &f->publish->msg;
    bool transient = batch ? f->publish_batch->transient : f->publish->transient;
    if (n == 0) {
        s_error(self, peer, f->corr, SL_EINVAL, "publish carries no message");
        return false;
    }
    if (n > self->cfg.max_batch) {
        char text[128];
        snprintf(text, sizeof text, "batch of %zu messages exceeds limits/max_batch (%u)",
                 n, self->cfg.max_batch);
        s_error(self, peer, f->corr, SL_ETOOBIG, text);
        return false;
    }
    if (!transient) {
        s_keep(self, peer, f);
        return true;
    }
    /* Transient: no storage, no confirm. Bad messages are counted and,
     * when the client asked (corr), reported once per frame. */
    size_t bad = 0, k = 0;
    int worst = 0;                      /* SL_EDENIED, else SL_EINVAL, else SL_ETOOBIG */
    const char *valid = NULL;           /* a batch mostly repeats one topic */
    const char *denied_topic = NULL;
    char why[SLC_TOPIC_MAX + SLD_IDENT_NAME_MAX + 96];
    for (size_t i = 0; i < n; i++) {
        const char *topic = msgs[i]->topic;
        int code = 0;
        if (!(topic && valid && strcmp(topic, valid) == 0)) {
            if (!topic || slc_topic_validate(topic, true) != 0)
                code = SL_EINVAL;
            else if (!s_may_publish(peer->session->ident, topic, why, sizeof why)) {
                code = SL_EDENIED;
                denied_topic = topic;   /* the one WHY names */
            }
            else
                valid = topic;
        }
        if (!code && msgs[i]->payload.len > self->cfg.max_message_bytes)
            code = SL_ETOOBIG;
        if (!code) {
            msgs[k++] = msgs[i];
            continue;
        }
        bad++;
        if (code == SL_EDENIED || (code == SL_EINVAL && worst != SL_EDENIED) || !worst)
            worst = code;
    }
    sld_delivery_transient(self->delivery, msgs, k);
    if (bad)
        sld_metrics_add(self->metrics, SLD_M_NACKED, bad);
    if (worst == SL_EDENIED) {
        char detail[64];
        snprintf(detail, sizeof detail, "transient; %zu of %zu messages refused", bad, n);
        s_deny_text(self, peer, f->corr, "publish", denied_topic, detail, why);
    }
    else if (worst && f->corr)
        s_error(self, peer, f->corr, worst, worst == SL_EINVAL
                ? "transient batch had messages with an invalid topic name (dropped)"
                : "transient batch had messages over limits/max_message_bytes (dropped)");
    else if (f->corr) {
        /* An empty PublishAck says "fanned out": the SDK's transient window
         * paces the publisher with it. */
        Sluice__PublishAck ack = SLUICE__PUBLISH_ACK__INIT;
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        frame.body_case = SLUICE__FRAME__BODY_PUBLISH_ACK;
        frame.publish_ack = &ack;
        s_reply(self, peer, f->corr, &frame);
    }
    /* MSGS was compacted in place; the frame's arena still holds (and
     * frees) every envelope, whatever order the array is left in. */
    return false;
}

static bool s_on_subscribe(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    Sluice__SubscribeOk ok = SLUICE__SUBSCRIBE_OK__INIT;
    const char *why = NULL;
    const sld_ident_t *id = peer->session->ident;
    /* Plain-text clients are all one identity: what they create has no
     * owner, so a store moved to CurveZMQ later is claimed like one made
     * before owners were kept (docs/security.md). */
    bool plain = sld_auth_plaintext(self->auth) != NULL;
    sld_sub_ref_t ref;
    bool claim = !plain && !f->subscribe->ephemeral && f->subscribe->name
        && sld_delivery_lookup(self->delivery, NULL, 0, f->subscribe->name, &ref) == 0
        && !ref.owner[0] && !sld_ident_may_use_sub(id, ref.name, ref.pattern, ref.owner);
    int rc = sld_delivery_subscribe(self->delivery, peer->session, f->subscribe,
                                    plain ? NULL : sld_ident_name(id), &ok, &why);
    if (rc) {
        s_error(self, peer, f->corr, rc, why);
        return false;
    }
    /* A subscription without owner is its first subscriber's when that
     * one attached by its subscribe grant alone (s_permitted). */
    if (claim && sld_delivery_claim(self->delivery, ok.name, sld_ident_name(id)) == 0) {
        char detail[SLC_TOPIC_MAX + 160];
        snprintf(detail, sizeof detail, "pattern %s; it had no owner (stored before owners "
                 "were kept, or made in plain text): its first subscriber owns it",
                 f->subscribe->pattern);
        sld_audit_add(self->audit, false, sld_ident_name(id), "sub.claim", ok.name, "ok",
                      detail);
        s_log(self, 2, "subscription %s had no owner: %s claimed it", ok.name,
              sld_ident_name(id));
    }
    s_log(self, 2, "session %s subscribed %s to %s", peer->session->key, ok.name,
          f->subscribe->pattern);
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    frame.body_case = SLUICE__FRAME__BODY_SUBSCRIBE_OK;
    frame.subscribe_ok = &ok;
    s_reply(self, peer, f->corr, &frame);
    return false;
}

static bool s_on_credit(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    if (sld_delivery_credit(self->delivery, peer->session, f->credit->sub_id,
                            f->credit->credit) != 0)
        s_error(self, peer, f->corr, SL_ENOTFOUND, "unknown subscription id in credit");
    return false;
}

static bool s_on_ack(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    bool nack = f->body_case == SLUICE__FRAME__BODY_NACK;
    uint32_t sub_id = nack ? f->nack->sub_id : f->ack->sub_id;
    size_t n = nack ? f->nack->n_items : f->ack->n_items;
    Sluice__AckItem **items = nack ? f->nack->items : f->ack->items;
    uint32_t credit = nack ? f->nack->credit : f->ack->credit;
    if (slc_grow((void **) &self->refusals, &self->caprefusals, n + 1, sizeof(sld_refusal_t))) {
        s_error(self, peer, f->corr, SL_ENOMEM, NULL);
        return false;
    }
    size_t nrefused = 0;
    int rc = sld_delivery_ack(self->delivery, peer->session, sub_id, items, n, nack,
                              nack ? f->nack->delay_ms : 0, credit,
                              self->refusals, &nrefused);
    if (rc) {
        s_error(self, peer, f->corr, rc, "unknown subscription id: subscribe again");
        return false;
    }
    if (nrefused == 0 && f->corr == 0)
        return false;
    Sluice__AckReply reply = SLUICE__ACK_REPLY__INIT;
    Sluice__AckRefused *refused = calloc(nrefused + 1, sizeof(Sluice__AckRefused));
    Sluice__AckRefused **ptrs = calloc(nrefused + 1, sizeof(Sluice__AckRefused *));
    if (!refused || !ptrs) {
        free(refused);
        free(ptrs);
        s_error(self, peer, f->corr, SL_ENOMEM, NULL);
        return false;
    }
    for (size_t i = 0; i < nrefused; i++) {
        sluice__ack_refused__init(&refused[i]);
        refused[i].topic_id = self->refusals[i].topic_id;
        refused[i].offset = self->refusals[i].offset;
        refused[i].token = self->refusals[i].token;
        refused[i].code = -self->refusals[i].code;
        refused[i].text = self->refusals[i].code == SL_ESTALE
            ? "stale token: this delivery attempt was superseded by a redelivery"
            : "offset was never delivered to this subscription";
        ptrs[i] = &refused[i];
    }
    reply.sub_id = sub_id;
    reply.n_refused = nrefused;
    reply.refused = ptrs;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    frame.body_case = SLUICE__FRAME__BODY_ACK_REPLY;
    frame.ack_reply = &reply;
    s_reply(self, peer, f->corr, &frame);
    free(refused);
    free(ptrs);
    return false;
}

static void s_ok(sld_server_t *self, const s_peer_t *peer, uint64_t corr)
{
    Sluice__Ok ok = SLUICE__OK__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    frame.body_case = SLUICE__FRAME__BODY_OK;
    frame.ok = &ok;
    s_reply(self, peer, corr, &frame);
}

/* The audit detail of a removal of REF by COMMAND into OUT. */
static void s_removal_detail(const sld_sub_ref_t *ref, const char *command, char *out,
                             size_t len)
{
    snprintf(out, len, "by %s; pattern %s, owner %s%s%s", command, ref->pattern,
             ref->owner[0] ? "\"" : "", ref->owner[0] ? ref->owner : "(none)",
             ref->owner[0] ? "\"" : "");
}

static bool s_on_unsubscribe(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    sld_sub_ref_t ref;
    char name[SLC_TOPIC_MAX + 1] = "", detail[2 * SLC_TOPIC_MAX + 128] = "";
    bool removal = f->unsubscribe->remove
        && sld_delivery_lookup(self->delivery, peer->session, f->unsubscribe->sub_id, NULL,
                               &ref) == 0
        && !ref.ephemeral;
    if (removal) {
        /* REF dies with the subscription: keep what the record needs. */
        char command[64];
        snprintf(command, sizeof command, "Unsubscribe{remove} of subscription id %u",
                 f->unsubscribe->sub_id);
        snprintf(name, sizeof name, "%s", ref.name);
        s_removal_detail(&ref, command, detail, sizeof detail);
    }
    int rc = sld_delivery_unsubscribe(self->delivery, peer->session,
                                      f->unsubscribe->sub_id, f->unsubscribe->remove);
    if (rc)
        s_error(self, peer, f->corr, rc, "unknown subscription id");
    else {
        if (removal) {
            sld_audit_add(self->audit, false, sld_ident_name(peer->session->ident), "sub.remove",
                          name, "ok", detail);
            s_log(self, 2, "subscription %s removed", name);
        }
        s_ok(self, peer, f->corr);
    }
    return false;
}

static bool s_on_sub_remove(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    const char *name = f->sub_remove->name ? f->sub_remove->name : "";
    sld_sub_ref_t ref;
    char detail[2 * SLC_TOPIC_MAX + 128] = "by SubRemove; no durable subscription by that name";
    if (sld_delivery_lookup(self->delivery, NULL, 0, name, &ref) == 0)
        s_removal_detail(&ref, "SubRemove", detail, sizeof detail);
    int rc = sld_delivery_remove(self->delivery, name);
    sld_audit_add(self->audit, false, sld_ident_name(peer->session->ident), "sub.remove", name,
                  rc ? "failed" : "ok", detail);
    if (rc)
        s_error(self, peer, f->corr, rc, "no durable subscription by that name");
    else {
        s_log(self, 2, "subscription %s removed", name);
        s_ok(self, peer, f->corr);
    }
    return false;
}

/* Topic creation and key/grant admin write: kept for the write phase. */
static bool s_on_topic_create(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    s_keep(self, peer, f);
    return true;
}

static bool s_on_stats(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    Sluice__StatsReply reply = SLUICE__STATS_REPLY__INIT;
    Sluice__Counter counters[SLD_M_COUNT];
    Sluice__Counter *cptrs[SLD_M_COUNT];
    Sluice__StatsRequest *req = f->stats;
    bool all = !req->topics && !req->subs && !req->counters;
    int rc = 0;
    if (all || req->topics)
        rc = sld_topics_info(self->topics, &reply.topics, &reply.n_topics);
    if (rc == 0 && (all || req->subs))
        rc = sld_delivery_stats(self->delivery, &reply.subs, &reply.n_subs);
    if (rc == 0 && (all || req->counters)) {
        for (int i = 0; i < SLD_M_COUNT; i++) {
            sluice__counter__init(&counters[i]);
            counters[i].name = (char *) sld_metrics_name((sld_metric_t) i);
            counters[i].value = sld_metrics_get(self->metrics, (sld_metric_t) i);
            cptrs[i] = &counters[i];
        }
        reply.n_counters = SLD_M_COUNT;
        reply.counters = cptrs;
    }
    /* Each identity sees the topics it holds any topic grant on, the
     * subscriptions its subscribe or admin grants cover and the durable
     * ones it may use (its own, those its consume grants name), and the
     * counters only with admin on everything. Items not shown move to the
     * end, so the free calls below still see all of them. */
    const sld_ident_t *id = peer->session->ident;
    size_t ntopics = reply.n_topics, nsubs = reply.n_subs, k = 0;
    for (size_t i = 0; i < ntopics; i++)
        if (sld_ident_allows(id, SLD_PERM_TOPIC, reply.topics[i]->name)) {
            Sluice__TopicInfo *t = reply.topics[k];
            reply.topics[k++] = reply.topics[i];
            reply.topics[i] = t;
        }
    reply.n_topics = k;
    k = 0;
    for (size_t i = 0; i < nsubs; i++) {
        const Sluice__SubInfo *si = reply.subs[i];
        if (sld_ident_covers(id, SLD_PERM_SUBSCRIBE | SLD_PERM_ADMIN, si->pattern)
            || (!si->ephemeral && sld_ident_may_use_sub(id, si->name, si->pattern, si->owner))) {
            Sluice__SubInfo *t = reply.subs[k];
            reply.subs[k++] = reply.subs[i];
            reply.subs[i] = t;
        }
    }
    reply.n_subs = k;
    if (!sld_ident_covers(id, SLD_PERM_ADMIN, ">"))
        reply.n_counters = 0;
    if (rc)
        s_error(self, peer, f->corr, rc, NULL);
    else {
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        frame.body_case = SLUICE__FRAME__BODY_STATS_REPLY;
        frame.stats_reply = &reply;
        s_reply(self, peer, f->corr, &frame);
    }
    sld_topics_info_free(&reply.topics, ntopics);
    sld_delivery_stats_free(&reply.subs, nsubs);
    return false;
}

/* SchemaGet and SchemaList: any session may read the registry. */
static bool s_on_schema_read(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    if (f->body_case == SLUICE__FRAME__BODY_SCHEMA_GET) {
        Sluice__SchemaInfo info;
        const char *subject = f->schema_get->subject;
        if (sld_registry_get(self->registry, subject, f->schema_get->version, &info) != 0) {
            char text[SLD_SUBJECT_MAX + 64];
            snprintf(text, sizeof text, "no schema %s%s%.0u", subject ? subject : "",
                     f->schema_get->version ? "@" : "", f->schema_get->version);
            s_error(self, peer, f->corr, SL_ENOTFOUND, text);
            return false;
        }
        frame.body_case = SLUICE__FRAME__BODY_SCHEMA_INFO;
        frame.schema_info = &info;
        s_reply(self, peer, f->corr, &frame);
        return false;
    }
    Sluice__SchemaListReply reply = SLUICE__SCHEMA_LIST_REPLY__INIT;
    int rc = sld_registry_list(self->registry, &reply.subjects, &reply.n_subjects);
    if (rc)
        s_error(self, peer, f->corr, rc, NULL);
    else {
        frame.body_case = SLUICE__FRAME__BODY_SCHEMA_LIST_REPLY;
        frame.schema_list_reply = &reply;
        s_reply(self, peer, f->corr, &frame);
    }
    sld_registry_list_free(&reply.subjects, reply.n_subjects);
    return false;
}

/* MappingGet and MappingList: any session may read them. */
static bool s_on_mapping_read(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    if (f->body_case == SLUICE__FRAME__BODY_MAPPING_GET) {
        Sluice__MappingInfo info;
        if (sld_registry_map_get(self->registry, f->mapping_get->name, &info) != 0) {
            s_error(self, peer, f->corr, SL_ENOTFOUND, "no mapping by that name");
            return false;
        }
        frame.body_case = SLUICE__FRAME__BODY_MAPPING_INFO;
        frame.mapping_info = &info;
        s_reply(self, peer, f->corr, &frame);
        return false;
    }
    Sluice__MappingListReply reply = SLUICE__MAPPING_LIST_REPLY__INIT;
    int rc = sld_registry_map_list(self->registry, &reply.mappings, &reply.n_mappings);
    if (rc)
        s_error(self, peer, f->corr, rc, NULL);
    else {
        frame.body_case = SLUICE__FRAME__BODY_MAPPING_LIST_REPLY;
        frame.mapping_list_reply = &reply;
        s_reply(self, peer, f->corr, &frame);
    }
    sld_registry_map_list_free(&reply.mappings, reply.n_mappings);
    return false;
}

static bool s_on_key_list(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    Sluice__KeyListReply reply = SLUICE__KEY_LIST_REPLY__INIT;
    int rc = sld_auth_list(self->auth, &reply.identities, &reply.n_identities);
    if (rc)
        s_error(self, peer, f->corr, rc, NULL);
    else {
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        frame.body_case = SLUICE__FRAME__BODY_KEY_LIST_REPLY;
        frame.key_list_reply = &reply;
        s_reply(self, peer, f->corr, &frame);
    }
    sld_auth_list_free(&reply.identities, reply.n_identities);
    return false;
}

static bool s_on_unexpected(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    char text[96];
    if (f->body_case == SLUICE__FRAME__BODY__NOT_SET)
        snprintf(text, sizeof text, "unknown command (not in protocol version %d)",
                 SLC_PROTOCOL_VERSION);
    else
        snprintf(text, sizeof text, "%s is sent by the broker, not to it", slc_frame_name(f));
    s_error(self, peer, f->corr, SL_ECOMMAND, text);
    return false;
}

/* State READY x command -> handler. Commands not listed are unexpected. */
static s_handler_fn *const s_ready_table[] = {
    [SLUICE__FRAME__BODY_HELLO] = s_on_hello,
    [SLUICE__FRAME__BODY_HEARTBEAT] = s_on_heartbeat,
    [SLUICE__FRAME__BODY_PUBLISH] = s_on_publish,
    [SLUICE__FRAME__BODY_PUBLISH_BATCH] = s_on_publish,
    [SLUICE__FRAME__BODY_SUBSCRIBE] = s_on_subscribe,
    [SLUICE__FRAME__BODY_CREDIT] = s_on_credit,
    [SLUICE__FRAME__BODY_ACK] = s_on_ack,
    [SLUICE__FRAME__BODY_NACK] = s_on_ack,
    [SLUICE__FRAME__BODY_UNSUBSCRIBE] = s_on_unsubscribe,
    [SLUICE__FRAME__BODY_TOPIC_CREATE] = s_on_topic_create,
    [SLUICE__FRAME__BODY_STATS] = s_on_stats,
    [SLUICE__FRAME__BODY_SUB_REMOVE] = s_on_sub_remove,
    [SLUICE__FRAME__BODY_KEY_ADD] = s_on_topic_create,
    [SLUICE__FRAME__BODY_KEY_REVOKE] = s_on_topic_create,
    [SLUICE__FRAME__BODY_GRANT_CHANGE] = s_on_topic_create,
    [SLUICE__FRAME__BODY_ROTATE_KEY] = s_on_topic_create,
    [SLUICE__FRAME__BODY_KEY_LIST] = s_on_key_list,
    [SLUICE__FRAME__BODY_SCHEMA_REGISTER] = s_on_topic_create,
    [SLUICE__FRAME__BODY_TOPIC_SET] = s_on_topic_create,
    [SLUICE__FRAME__BODY_SCHEMA_GET] = s_on_schema_read,
    [SLUICE__FRAME__BODY_SCHEMA_LIST] = s_on_schema_read,
    [SLUICE__FRAME__BODY_MAPPING_ADD] = s_on_topic_create,
    [SLUICE__FRAME__BODY_MAPPING_REMOVE] = s_on_topic_create,
    [SLUICE__FRAME__BODY_MAPPING_GET] = s_on_mapping_read,
    [SLUICE__FRAME__BODY_MAPPING_LIST] = s_on_mapping_read,
};
#define S_TABLE_SIZE (sizeof s_ready_table / sizeof s_ready_table[0])

/* The audit action of an admin command. */
static const char *s_admin_action(const Sluice__Frame *f)
{
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_KEY_ADD: return "keys.add";
    case SLUICE__FRAME__BODY_KEY_REVOKE: return "keys.revoke";
    case SLUICE__FRAME__BODY_KEY_LIST: return "keys.list";
    case SLUICE__FRAME__BODY_GRANT_CHANGE:
        return f->grant_change->revoke ? "grant.revoke" : "grant.add";
    case SLUICE__FRAME__BODY_ROTATE_KEY: return "rotate-key";
    default: return slc_frame_name(f);
    }
}

/* The top-level "name:" of mapping YAML TEXT into OUT ("" when none): the
 * target of a refused MappingAdd, which is refused before it is parsed. */
static void s_yaml_name(const char *text, char *out, size_t len)
{
    out[0] = 0;
    const char *line = text;
    while (line && *line) {
        if (strncmp(line, "name:", 5) == 0) {
            const char *v = line + 5;
            v += strspn(v, " \t\"'");
            size_t n = strcspn(v, " \t\r\n\"'#");
            snprintf(out, len, "%.*s", (int) (n < len ? n : len - 1), v);
            return;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
}

/* The arguments of command F as audit text into OUT: names, keys, limits,
 * sizes. Never secret material (a public key is none); a schema's or a
 * mapping's text only by its size. */
static void s_args(const Sluice__Frame *f, char *out, size_t len)
{
    static const char *const starts[] = { "default", "earliest", "latest", "offset", "time" };
    char key[41] = "";
    out[0] = 0;
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_SUBSCRIBE: {
        const Sluice__Subscribe *sub = f->subscribe;
        unsigned k = (unsigned) sub->start < 5 ? (unsigned) sub->start : 0;
        char at[40] = "";
        if (sub->start == SLUICE__START_KIND__START_OFFSET)
            snprintf(at, sizeof at, " %" PRIu64, sub->start_offset);
        else if (sub->start == SLUICE__START_KIND__START_TIME)
            snprintf(at, sizeof at, " %" PRIu64 " us", sub->start_time_us);
        if (sub->ephemeral)
            snprintf(out, len, "ephemeral subscription, pattern %s, start %s%s",
                     sub->pattern ? sub->pattern : "", starts[k], at);
        else
            snprintf(out, len, "durable subscription \"%s\", pattern %s, start %s%s",
                     sub->name ? sub->name : "", sub->pattern ? sub->pattern : "", starts[k], at);
        break;
    }
    case SLUICE__FRAME__BODY_CREDIT:
        snprintf(out, len, "subscription id %u, credit %u", f->credit->sub_id,
                 f->credit->credit);
        break;
    case SLUICE__FRAME__BODY_ACK:
        snprintf(out, len, "subscription id %u, %zu items", f->ack->sub_id, f->ack->n_items);
        break;
    case SLUICE__FRAME__BODY_NACK:
        snprintf(out, len, "subscription id %u, %zu items, delay %u ms", f->nack->sub_id,
                 f->nack->n_items, f->nack->delay_ms);
        break;
    case SLUICE__FRAME__BODY_UNSUBSCRIBE:
        snprintf(out, len, "subscription id %u%s", f->unsubscribe->sub_id,
                 f->unsubscribe->remove ? ", remove it" : "");
        break;
    case SLUICE__FRAME__BODY_SUB_REMOVE:
        snprintf(out, len, "subscription \"%s\"", f->sub_remove->name ? f->sub_remove->name : "");
        break;
    case SLUICE__FRAME__BODY_TOPIC_CREATE:
        snprintf(out, len, "max_age_ms %" PRIu64 ", max_bytes %" PRIu64,
                 f->topic_create->max_age_ms, f->topic_create->max_bytes);
        break;
    case SLUICE__FRAME__BODY_TOPIC_SET: {
        const Sluice__TopicSet *ts = f->topic_set;
        snprintf(out, len, "schema %s@%u, invalid: %s",
                 ts->subject && *ts->subject ? ts->subject : "(none)", ts->version,
                 ts->invalid && *ts->invalid ? ts->invalid : "reject");
        break;
    }
    case SLUICE__FRAME__BODY_SCHEMA_REGISTER:
        snprintf(out, len, "subject %s, compat %s, %zu bytes of schema%s",
                 f->schema_register->subject ? f->schema_register->subject : "",
                 f->schema_register->compat && *f->schema_register->compat
                     ? f->schema_register->compat : "(default)",
                 f->schema_register->schema ? strlen(f->schema_register->schema) : 0,
                 f->schema_register->dry_run ? ", dry run" : "");
        break;
    case SLUICE__FRAME__BODY_MAPPING_ADD:
        snprintf(out, len, "%zu bytes of YAML",
                 f->mapping_add->yaml ? strlen(f->mapping_add->yaml) : 0);
        break;
    case SLUICE__FRAME__BODY_MAPPING_REMOVE:
        snprintf(out, len, "mapping \"%s\"",
                 f->mapping_remove->name ? f->mapping_remove->name : "");
        break;
    case SLUICE__FRAME__BODY_KEY_ADD:
        if (f->key_add->public_key.len == 32)
            zmq_z85_encode(key, f->key_add->public_key.data, 32);
        else
            snprintf(key, sizeof key, "(%zu bytes, not a key)", f->key_add->public_key.len);
        snprintf(out, len, "identity \"%s\", public key %s",
                 f->key_add->name ? f->key_add->name : "", key);
        break;
    case SLUICE__FRAME__BODY_KEY_REVOKE:
        snprintf(out, len, "identity \"%s\"", f->key_revoke->name ? f->key_revoke->name : "");
        break;
    case SLUICE__FRAME__BODY_GRANT_CHANGE: {
        int k = snprintf(out, len, "identity \"%s\", %s ",
                         f->grant_change->name ? f->grant_change->name : "",
                         f->grant_change->revoke ? "take away" : "grant");
        if (k > 0 && (size_t) k < len)
            s_grants_text(f->grant_change, out + k, len - (size_t) k);
        break;
    }
    default:                            /* KeyList, RotateKey: none */
        snprintf(out, len, "no arguments");
        break;
    }
}

/* Refuse F (403) and audit it: ACTION, TARGET, F's arguments and NEED (the
 * grant it lacked); answered "may not WHAT OBJECT". */
static void s_deny_cmd(sld_server_t *self, const s_peer_t *peer, const Sluice__Frame *f,
                       const char *action, const char *target, const char *need,
                       const char *what, const char *object)
{
    char args[768], detail[1024];
    s_args(f, args, sizeof args);
    snprintf(detail, sizeof detail, "%s; needs %s", args, need);
    s_deny(self, peer, f->corr, action, target, detail, what, object);
}

/* Refuse F (403), aimed at durable subscription REF which PEER's identity
 * may not use (sld_ident_may_use_sub), and audit it as ACTION with the
 * subscription's name as target; answered "may not WHAT subscription
 * NAME: whose it is; needs ...". */
static void s_deny_sub(sld_server_t *self, const s_peer_t *peer, const Sluice__Frame *f,
                       const char *action, const sld_sub_ref_t *ref, const char *what)
{
    char args[768], need[2 * SLC_TOPIC_MAX + 96], whose[SLD_IDENT_NAME_MAX + 32];
    char detail[2048], text[3 * SLC_TOPIC_MAX + 256];
    if (ref->owner[0])
        snprintf(whose, sizeof whose, "it belongs to \"%s\"", ref->owner);
    else
        snprintf(whose, sizeof whose, "it has no owner");
    snprintf(need, sizeof need, "consume on %s or admin on %s (its pattern)", ref->name,
             ref->pattern);
    s_args(f, args, sizeof args);
    snprintf(detail, sizeof detail, "%s; %s; needs %s%s%s", args, whose,
             ref->owner[0] ? "to be its owner, " : "", need,
             ref->owner[0] ? "" : ", or subscribe on its pattern to claim it");
    snprintf(text, sizeof text, "identity \"%s\" may not %s subscription %s: %s; needs %s",
             sld_ident_name(peer->session->ident), what, ref->name, whose, need);
    s_deny_text(self, peer, f->corr, action, ref->name, detail, text);
}

/* May PEER's identity send F? Publishes are checked per message where they
 * are handled; malformed names pass here and get their 422 from the
 * handler. A refusal is answered (403) and audited here, with the command,
 * its arguments and its target. */
static bool s_permitted(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    const sld_ident_t *id = peer->session->ident;
    const char *p = NULL, *action = NULL, *target = NULL;
    char need[SLC_TOPIC_MAX + 32], name[SLC_TOPIC_MAX + 1];
    uint32_t sub_id = 0;
    sld_sub_ref_t ref;
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_SUBSCRIBE:
        p = f->subscribe->pattern;
        if (!p || slc_pattern_validate(p) != 0)
            return true;
        if (!sld_ident_covers(id, SLD_PERM_SUBSCRIBE, p)) {
            snprintf(need, sizeof need, "subscribe on %s", p);
            s_deny_cmd(self, peer, f, "subscribe", p, need, "subscribe to", p);
            return false;
        }
        /* A new durable name is the subscriber's (s_on_subscribe). An
         * existing one is attached to by who may use it, or claimed by a
         * subscriber of its whole pattern when it has no owner. */
        if (f->subscribe->ephemeral || !f->subscribe->name
            || sld_delivery_lookup(self->delivery, NULL, 0, f->subscribe->name, &ref) != 0
            || sld_ident_may_use_sub(id, ref.name, ref.pattern, ref.owner)
            || (!ref.owner[0] && sld_ident_covers(id, SLD_PERM_SUBSCRIBE, ref.pattern)))
            return true;
        s_deny_sub(self, peer, f, "subscribe", &ref, "attach to");
        return false;
    case SLUICE__FRAME__BODY_CREDIT:
        sub_id = f->credit->sub_id;
        action = "credit";
        break;
    case SLUICE__FRAME__BODY_ACK:
        sub_id = f->ack->sub_id;
        action = "ack";
        break;
    case SLUICE__FRAME__BODY_NACK:
        sub_id = f->nack->sub_id;
        action = "nack";
        break;
    case SLUICE__FRAME__BODY_UNSUBSCRIBE:
        sub_id = f->unsubscribe->sub_id;
        action = "unsubscribe";
        break;
    case SLUICE__FRAME__BODY_SUB_REMOVE:
        target = f->sub_remove->name ? f->sub_remove->name : "";
        if (sld_delivery_lookup(self->delivery, NULL, 0, target, &ref) != 0
            || sld_ident_may_use_sub(id, ref.name, ref.pattern, ref.owner))
            return true;
        s_deny_sub(self, peer, f, "sub.remove", &ref, "remove");
        return false;
    case SLUICE__FRAME__BODY_TOPIC_CREATE:
        p = f->topic_create->name;
        if (!p || slc_topic_validate(p, false) != 0 || sld_ident_allows(id, SLD_PERM_ADMIN, p))
            return true;
        snprintf(need, sizeof need, "admin on %s", p);
        s_deny_cmd(self, peer, f, "topic.create", p, need, "create topic", p);
        return false;
    case SLUICE__FRAME__BODY_TOPIC_SET:
        p = f->topic_set->topic;
        if (!p || slc_topic_validate(p, false) != 0 || sld_ident_allows(id, SLD_PERM_ADMIN, p))
            return true;
        snprintf(need, sizeof need, "admin on %s", p);
        s_deny_cmd(self, peer, f, "topic.set", p, need, "bind a schema to topic", p);
        return false;
    case SLUICE__FRAME__BODY_MAPPING_ADD:
    case SLUICE__FRAME__BODY_MAPPING_REMOVE:
        if (sld_ident_covers(id, SLD_PERM_ADMIN, ">"))
            return true;
        if (f->body_case == SLUICE__FRAME__BODY_MAPPING_ADD)
            s_yaml_name(f->mapping_add->yaml ? f->mapping_add->yaml : "", name, sizeof name);
        else
            snprintf(name, sizeof name, "%s",
                     f->mapping_remove->name ? f->mapping_remove->name : "");
        s_deny_cmd(self, peer, f, f->body_case == SLUICE__FRAME__BODY_MAPPING_ADD
                   ? "mapping.add" : "mapping.remove", name[0] ? name : "(mapping)",
                   "admin on >", "change", "mappings");
        return false;
    case SLUICE__FRAME__BODY_SCHEMA_REGISTER:
        if (sld_ident_covers(id, SLD_PERM_ADMIN, ">"))
            return true;
        s_deny_cmd(self, peer, f, "schema.register", f->schema_register->subject, "admin on >",
                   "register schema", f->schema_register->subject);
        return false;
    case SLUICE__FRAME__BODY_KEY_ADD:
    case SLUICE__FRAME__BODY_KEY_REVOKE:
    case SLUICE__FRAME__BODY_KEY_LIST:
    case SLUICE__FRAME__BODY_GRANT_CHANGE:
    case SLUICE__FRAME__BODY_ROTATE_KEY:
        if (sld_ident_covers(id, SLD_PERM_ADMIN, ">"))
            return true;
        target = f->body_case == SLUICE__FRAME__BODY_KEY_ADD ? f->key_add->name
               : f->body_case == SLUICE__FRAME__BODY_KEY_REVOKE ? f->key_revoke->name
               : f->body_case == SLUICE__FRAME__BODY_GRANT_CHANGE ? f->grant_change->name
               : f->body_case == SLUICE__FRAME__BODY_KEY_LIST ? "(identities)"
               : "at-rest data key";
        s_deny_cmd(self, peer, f, s_admin_action(f), target ? target : "", "admin on >",
                   "administer", "keys and grants");
        return false;
    default:
        return true;
    }
    /* Subscription commands: the identity must still cover the pattern
     * and, for a durable subscription, still may use it (a grant may have
     * been revoked since it attached). An unknown id passes and gets its
     * 404 from the handler. */
    if (sld_delivery_lookup(self->delivery, peer->session, sub_id, NULL, &ref) != 0)
        return true;
    p = ref.pattern;
    if (!sld_ident_covers(id, SLD_PERM_SUBSCRIBE, p)) {
        snprintf(need, sizeof need, "subscribe on %s", p);
        s_deny_cmd(self, peer, f, action, p, need, "use its subscription to", p);
        return false;
    }
    if (ref.ephemeral || sld_ident_may_use_sub(id, ref.name, ref.pattern, ref.owner))
        return true;
    s_deny_sub(self, peer, f, action, &ref, "use");
    return false;
}

/* State NEW (no session) x command: Hello opens one, the rest get 401. */
static bool s_dispatch(sld_server_t *self, const s_peer_t *peer, Sluice__Frame *f)
{
    unsigned cmd = (unsigned) f->body_case;
    if (!peer->session) {
        if (f->body_case == SLUICE__FRAME__BODY_HELLO)
            return s_on_hello(self, peer, f);
        if (cmd < S_TABLE_SIZE && s_ready_table[cmd])
            s_error(self, peer, f->corr, SL_ENOSESSION,
                    "no session: send hello first (the broker may have restarted)");
        else
            s_on_unexpected(self, peer, f);
        return false;
    }
    peer->session->last_seen_ms = slc_mono_ms();
    s_handler_fn *fn = cmd < S_TABLE_SIZE ? s_ready_table[cmd] : NULL;
    if (fn && !s_permitted(self, peer, f))
        return false;
    return fn ? fn(self, peer, f) : s_on_unexpected(self, peer, f);
}

/* Receive one ZeroMQ message. Returns 1 when one was handled (its message
 * count added to *msgs, bytes to *bytes), 0 when none was waiting. */
static int s_recv(sld_server_t *self, size_t *msgs, size_t *bytes)
{
    zmq_msg_t idm, body;
    zmq_msg_init(&idm);
    if (zmq_msg_recv(&idm, self->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&idm);
        return 0;
    }
    sld_metrics_add(self->metrics, SLD_M_FRAMES_IN, 1);
    s_peer_t peer = { zmq_msg_data(&idm), zmq_msg_size(&idm), NULL, &body };
    char key[2 * S_ID_MAX + 1];
    s_hex(peer.id, peer.id_len, key);
    peer.session = zhashx_lookup(self->sessions, key);
    zmq_msg_init(&body);
    bool parts = zmq_msg_more(&idm) && zmq_msg_recv(&body, self->router, 0) >= 0;
    bool extra = parts && zmq_msg_more(&body);
    while (zmq_msg_more(&body)) {
        zmq_msg_t skip;
        zmq_msg_init(&skip);
        zmq_msg_recv(&skip, self->router, 0);
        bool more = zmq_msg_more(&skip);
        zmq_msg_close(&skip);
        if (!more)
            break;
    }
    size_t len = zmq_msg_size(&body);
    int rc;
    *bytes += len;
    *msgs += 1;
    Sluice__Frame *f = NULL;
    /* The session belongs to the identity that opened it: a frame from
     * another key under the same routing id (a lingering session's id
     * reused) is refused, and the session ends. */
    const char *uid = peer.session && parts && !sld_auth_plaintext(self->auth)
                    ? zmq_msg_gets(&body, "User-Id") : NULL;
    /* Every direct reply echoes corr, also for a frame not decoded: read
     * from its leading bytes, only on the refusals below. */
    if (peer.session && parts && !sld_auth_plaintext(self->auth)
        && (!uid || strcmp(uid, sld_ident_name(peer.session->ident)) != 0)) {
        s_error(self, &peer, slc_frame_peek_corr(zmq_msg_data(&body), len), SL_EAUTH,
                "this connection's key does not own the session: reconnect");
        s_mark_gone(self, peer.session);
    }
    else if (!parts || extra)
        s_error(self, &peer, 0, SL_EMALFORMED,
                "a sluice message is exactly one frame holding one Frame");
    else if (len > self->cfg.max_frame_bytes)
        s_error(self, &peer, slc_frame_peek_corr(zmq_msg_data(&body), len), SL_ETOOBIG,
                "frame larger than limits/max_frame_bytes");
    /* By reference: a kept frame keeps BODY with it (s_keep). */
    else if ((rc = slc_frame_decode_ref(zmq_msg_data(&body), len, &f)) != 0) {
        char why[256] = "out of memory decoding the frame";
        if (rc != SL_ENOMEM)    /* which string field, when one is why */
            slc_frame_why(zmq_msg_data(&body), len, why, sizeof why);
        s_error(self, &peer, slc_frame_peek_corr(zmq_msg_data(&body), len), rc, why);
    }
    else {
        if (f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH)
            *msgs += f->publish_batch->n_msgs;
        if (!s_dispatch(self, &peer, f))
            slc_frame_free(&f);
    }
    zmq_msg_close(&body);
    zmq_msg_close(&idm);
    return 1;
}

/* ------------------------------------------------------------ write phase */

static int s_note_appended(sld_server_t *self, uint32_t id)
{
    for (size_t i = self->nappended; i > 0; i--)
        if (self->appended[i - 1] == id)
            return 0;
    int rc = slc_grow((void **) &self->appended, &self->capappended,
                    self->nappended + 1, sizeof(uint32_t));
    if (rc == 0)
        self->appended[self->nappended++] = id;
    return rc;
}

static const char *s_header(const Sluice__Envelope *e, const char *key)
{
    for (size_t i = 0; i < e->n_headers; i++)
        if (e->headers[i]->key && strcmp(e->headers[i]->key, key) == 0)
            return e->headers[i]->value;
    return NULL;
}

static void s_nack(Sluice__Confirm *c, int code, const char *text)
{
    c->code = -code;
    c->text = (char *) text;
    c->retryable = slc_retryable(code);
}

/* Encode E for storage into the scratch buffer: the bytes it arrived in
 * (SPAN of W's frame, when known) with the broker's fields after them, as
 * the protobuf rule "the last value of a field wins" allows; else a stamped
 * copy, encoded. *LEN is the length. 0 or SL_ENOMEM. */
static int s_stamp(sld_server_t *self, const s_write_t *w, const slc_span_t *span,
                   const Sluice__Envelope *e, uint64_t now, size_t *len)
{
    const char *source = (!e->source || !*e->source) && w->session
                       ? w->session->client : NULL;
    if (!span) {
        Sluice__Envelope stamped = *e;  /* shallow: the frame owns E's strings */
        stamped.ingest_ts_us = now;
        if (source)
            stamped.source = (char *) source;
        *len = slc_envelope_size(&stamped);
        if (slc_grow((void **) &self->scratch, &self->capscratch, *len + 1, 1) != 0)
            return SL_ENOMEM;
        slc_envelope_pack(&stamped, self->scratch);
        return 0;
    }
    size_t slen = source ? strlen(source) : 0;
    size_t need = span->len + 1 + 10 + (source ? 1 + 10 + slen : 0);
    if (slc_grow((void **) &self->scratch, &self->capscratch, need, 1) != 0)
        return SL_ENOMEM;
    memcpy(self->scratch, (const uint8_t *) zmq_msg_data((zmq_msg_t *) &w->raw) + span->off,
           span->len);
    uint8_t *p = self->scratch + span->len;
    *p++ = S_TAG_ENVELOPE_INGEST_TS;
    p = slc_varint_put(p, now);
    if (source) {
        *p++ = S_TAG_ENVELOPE_SOURCE;
        p = slc_varint_put(p, slen);
        memcpy(p, source, slen);
        p += slen;
    }
    *len = (size_t) (p - self->scratch);
    return 0;
}

/* A copy of TEXT that lives until the frame's reply is encoded (nack
 * texts); NULL when out of memory (the nack then has only its code). */
static const char *s_text(sld_server_t *self, const char *text)
{
    char *copy = strdup(text);
    if (!copy || slc_grow((void **) &self->texts, &self->captexts, self->ntexts + 1,
                          sizeof(char *)) != 0) {
        free(copy);
        return NULL;
    }
    self->texts[self->ntexts++] = copy;
    return copy;
}

static void s_texts_free(sld_server_t *self)
{
    for (size_t i = 0; i < self->ntexts; i++)
        free(self->texts[i]);
    self->ntexts = 0;
}

/* Store the invalid message of W (its stamped envelope is in the scratch
 * buffer, LEN bytes) to _dlq.schema.TOPIC with the reasons WHY as header
 * schema-error (appended as one more Header: protobuf repeats add up).
 * *offset is where it went. 0 or a store failure. */
static int s_schema_dlq(sld_server_t *self, sld_txn_t *txn, const char *topic, size_t len,
                        uint64_t now, const char *why, uint64_t *offset)
{
    static const char key[] = "schema-error";
    char name[SLC_TOPIC_MAX + 16];
    size_t wlen = strlen(why), klen = sizeof key - 1;
    size_t hlen = 1 + slc_varint_len(klen) + klen + 1 + slc_varint_len(wlen) + wlen;
    uint32_t id;
    if (slc_grow((void **) &self->scratch, &self->capscratch, len + 1 + 10 + hlen, 1) != 0)
        return SL_ENOMEM;
    uint8_t *p = self->scratch + len;
    *p++ = 0x22;                        /* Envelope.headers (4), length-delimited */
    p = slc_varint_put(p, hlen);
    *p++ = 0x0a;                        /* Header.key (1) */
    p = slc_varint_put(p, klen);
    memcpy(p, key, klen);
    p += klen;
    *p++ = 0x12;                        /* Header.value (2) */
    p = slc_varint_put(p, wlen);
    memcpy(p, why, wlen);
    p += wlen;
    snprintf(name, sizeof name, "_dlq.schema.%s", topic);
    int rc = sld_store_topic_ensure(txn, name, &id);
    if (rc == 0)
        rc = sld_store_append(txn, id, now, self->scratch, (size_t) (p - self->scratch), offset);
    if (rc == 0)
        rc = s_note_appended(self, id);
    return rc;
}

/* Why publishes are refused as storage full: the disk, or the map's
 * ceiling. */
static const char *s_full_text(const sld_server_t *self)
{
    return self->disk_full
        ? "storage full: the disk holding the data directory is full; retry later"
        : "storage full: the store reached storage/map_size_max; retry later";
}

/* Store one message (SPAN: where it lies in W's frame, or NULL). Fills C;
 * returns 0, or a store failure that dooms the whole transaction (SL_EFULL,
 * SL_ESTORE, SL_ENOMEM). */
static int s_ingest(sld_server_t *self, sld_txn_t *txn, const s_write_t *w,
                    const slc_span_t *span, Sluice__Envelope *e, Sluice__Confirm *c,
                    bool refuse)
{
    int rc;
    c->seq = e->seq;
    if (refuse) {
        s_nack(c, SL_EFULL, s_full_text(self));
        return 0;
    }
    if (e->payload.len > self->cfg.max_message_bytes) {
        s_nack(c, SL_ETOOBIG, "message payload exceeds limits/max_message_bytes");
        return 0;
    }
    bool sequenced = e->producer_id.len == SLC_PRODUCER_ID_LEN && e->seq > 0;
    if (e->producer_id.len && !sequenced) {
        s_nack(c, SL_EINVAL, "producer_id must be 16 bytes with a sequence from 1");
        return 0;
    }
    /* A client that numbers its messages expects deduplication: refused
     * rather than stored without it. */
    if (!e->producer_id.len && e->seq) {
        s_nack(c, SL_EINVAL, "seq needs a producer_id: give a 16-byte producer_id to have "
               "resends deduplicated, or leave seq 0");
        return 0;
    }
    uint32_t topic_id, orig_topic;
    uint64_t offset;
    if (sequenced) {
        rc = sld_store_producer_check(txn, e->producer_id.data, e->seq, &orig_topic, &offset);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            c->duplicate = true;
            c->offset = offset;
            return 0;
        }
    }
    const char *why = NULL;
    rc = sld_topics_resolve(self->topics, txn, e->topic, &topic_id, &why);
    if (rc == SL_EINVAL) {
        s_nack(c, rc, why);
        return 0;
    }
    if (rc)
        return rc;
    uint64_t now = slc_now_us();
    const char *msg_id = s_header(e, "msg-id");
    if (msg_id && *msg_id) {
        rc = sld_store_dedup_check(txn, topic_id, msg_id, strlen(msg_id), now,
                                   sld_topics_dedup_window_us(self->topics), &offset);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            c->duplicate = true;
            c->offset = offset;
            return sequenced ? sld_store_producer_record(txn, e->producer_id.data,
                                                         e->seq, topic_id, offset) : 0;
        }
    }
    size_t len;
    rc = s_stamp(self, w, span, e, now, &len);
    if (rc == 0 && sld_registry_any(self->registry)) {
        /* A topic bound to a schema stores only valid messages; an invalid
         * one is refused with the reasons (and kept in the topic's schema
         * dead-letter topic when the binding says so). */
        bool dlq = false;
        char why[1536];
        rc = sld_registry_check(self->registry, e->topic, e->content_type, e->payload.data,
                                e->payload.len, &dlq, why, sizeof why);
        if (rc == SL_EINVAL) {
            uint64_t dlq_off = 0;
            rc = dlq ? s_schema_dlq(self, txn, e->topic, len, now, why, &dlq_off) : 0;
            if (rc)
                return rc;
            if (dlq) {
                size_t k = strlen(why);
                snprintf(why + k, sizeof why - k, " (kept in _dlq.schema.%s at offset %" PRIu64 ")",
                         e->topic, dlq_off);
            }
            sld_metrics_add(self->metrics, SLD_M_SCHEMA_INVALID, 1);
            s_nack(c, SL_EINVAL, s_text(self, why));
            return 0;
        }
    }
    if (rc == 0)
        rc = sld_store_append(txn, topic_id, now, self->scratch, len, &offset);
    if (rc == 0 && sequenced)
        rc = sld_store_producer_record(txn, e->producer_id.data, e->seq, topic_id, offset);
    if (rc == 0 && msg_id && *msg_id)
        rc = sld_store_dedup_record(txn, topic_id, msg_id, strlen(msg_id), now, offset);
    if (rc == 0)
        rc = s_note_appended(self, topic_id);
    if (rc)
        return rc;
    c->offset = offset;
    return 0;
}

/* Apply one kept publish frame; queue its PublishAck. With FAIL != 0 every
 * message is nacked with that code (the transaction could not commit). */
static int s_apply_publish(sld_server_t *self, sld_txn_t *txn, const s_write_t *w,
                           bool refuse, int fail)
{
    Sluice__Frame *f = w->frame;
    bool batch = f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH;
    size_t n = batch ? f->publish_batch->n_msgs : 1;
    Sluice__Envelope **msgs = batch ? f->publish_batch->msgs : &f->publish->msg;
    int rc = slc_grow((void **) &self->confirms, &self->capconfirms, n, sizeof(Sluice__Confirm));
    if (rc == 0 && self->capconfirms) {
        Sluice__Confirm **p = realloc(self->confirm_ptrs, self->capconfirms * sizeof(*p));
        if (!p)
            return SL_ENOMEM;
        self->confirm_ptrs = p;
    }
    if (rc)
        return rc;
    /* The envelopes' own bytes, when the frame is laid out plainly. */
    const slc_span_t *spans = NULL;
    if (!fail && zmq_msg_size((zmq_msg_t *) &w->raw) > 0
        && slc_grow((void **) &self->spans, &self->capspans, n, sizeof(slc_span_t)) == 0
        && slc_frame_envelope_spans(zmq_msg_data((zmq_msg_t *) &w->raw),
                                    zmq_msg_size((zmq_msg_t *) &w->raw), f,
                                    self->spans, n) == 0)
        spans = self->spans;
    const sld_ident_t *ident = w->session->ident;
    const char *allowed = NULL, *denied = NULL;    /* a batch mostly repeats one topic */
    size_t ndenied = 0;
    for (size_t i = 0; i < n; i++) {
        Sluice__Confirm *c = &self->confirms[i];
        sluice__confirm__init(c);
        c->index = (uint32_t) i;
        self->confirm_ptrs[i] = c;
        const char *topic = msgs[i]->topic;
        if (!fail && topic && !(allowed && strcmp(allowed, topic) == 0)) {
            char why[SLC_TOPIC_MAX + SLD_IDENT_NAME_MAX + 96];
            if (s_may_publish(ident, topic, why, sizeof why))
                allowed = topic;
            else {
                const char *text = s_text(self, why);
                c->seq = msgs[i]->seq;
                s_nack(c, SL_EDENIED, text ? text : "this identity may not publish to the topic");
                denied = topic;
                ndenied++;
                continue;
            }
        }
        if (fail) {
            c->seq = msgs[i]->seq;
            s_nack(c, fail, fail == SL_EFULL
                   ? s_full_text(self)
                   : "storage failed; the message was not stored");
            continue;
        }
        rc = s_ingest(self, txn, w, spans ? &spans[i] : NULL, msgs[i], c, refuse);
        if (rc)
            return rc;
    }
    if (ndenied) {
        char detail[64];
        snprintf(detail, sizeof detail, "%zu of %zu messages refused", ndenied, n);
        sld_audit_add(self->audit, true, sld_ident_name(ident), "publish", denied, "denied",
                      detail);
        sld_metrics_error(self->metrics, SL_EDENIED);
    }
    for (size_t i = 0; i < n; i++) {
        Sluice__Confirm *c = &self->confirms[i];
        if (c->code)
            self->t_nacked++;
        else if (c->duplicate)
            self->t_dups++;
        else {
            self->t_stored++;
            self->t_bytes += msgs[i]->payload.len;
        }
    }
    Sluice__PublishAck ack = SLUICE__PUBLISH_ACK__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    ack.n_confirms = n;
    ack.confirms = self->confirm_ptrs;
    frame.body_case = SLUICE__FRAME__BODY_PUBLISH_ACK;
    frame.publish_ack = &ack;
    s_queue(self, &self->wreplies, w->id, w->id_len, f->corr, &frame);
    s_texts_free(self);
    return 0;
}

/* Queue the reply to kept frame W: Error{RC, WHY} when RC, else OK_FRAME
 * (NULL: Ok). */
static void s_queue_result(sld_server_t *self, const s_write_t *w, int rc, const char *why,
                           Sluice__Frame *ok_frame)
{
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Ok ok = SLUICE__OK__INIT;
    Sluice__Error err = SLUICE__ERROR__INIT;
    if (rc) {
        err.code = -rc;
        err.text = (char *) (why ? why : slc_strerror(rc));
        err.retryable = slc_retryable(rc);
        frame.body_case = SLUICE__FRAME__BODY_ERROR;
        frame.error = &err;
        sld_metrics_error(self->metrics, rc);
    }
    else if (!ok_frame) {
        frame.body_case = SLUICE__FRAME__BODY_OK;
        frame.ok = &ok;
    }
    s_queue(self, &self->wreplies, w->id, w->id_len, w->frame->corr,
            rc || !ok_frame ? &frame : ok_frame);
}

static int s_apply_topic_create(sld_server_t *self, sld_txn_t *txn,
                                const s_write_t *w, int fail)
{
    Sluice__TopicCreate *tc = w->frame->topic_create;
    const char *why = NULL;
    uint32_t id = 0;
    int rc = fail ? fail : sld_topics_create(self->topics, txn, tc->name, tc->max_age_ms,
                                             tc->max_bytes, &id, &why);
    /* A new topic may match existing pattern subscriptions: tell delivery
     * after the commit, like an append. */
    if (rc == 0)
        rc = s_note_appended(self, id);
    if (rc == SL_EFULL && !fail)
        return rc;
    if (rc && rc != SL_EINVAL && !fail)
        return rc;
    char detail[96];
    snprintf(detail, sizeof detail, "max_age_ms %llu, max_bytes %llu",
             (unsigned long long) tc->max_age_ms, (unsigned long long) tc->max_bytes);
    sld_audit_add(self->audit, true, w->session ? sld_ident_name(w->session->ident) : NULL,
                  "topic.create", tc->name, rc ? "failed" : "ok",
                  rc ? (why ? why : slc_strerror(rc)) : detail);
    s_queue_result(self, w, rc, why, NULL);
    return 0;
}

/* GRANTS of a GrantChange as audit text: "publish,subscribe shop.> ...". */
static void s_grants_text(const Sluice__GrantChange *gc, char *out, size_t len)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < gc->n_grants && k < len; i++) {
        static const char *const names[] = { "publish", "subscribe", "admin", "consume" };
        uint32_t p = gc->grants[i]->perms;
        char perms[48] = "";
        for (unsigned b = 0, n = 0; b < 4; b++)
            if (p & (1u << b))
                n += (unsigned) snprintf(perms + n, sizeof perms - n, "%s%s", n ? "," : "",
                                         names[b]);
        int w = snprintf(out + k, len - k, "%s%s %s", i ? "; " : "", perms,
                         gc->grants[i]->pattern ? gc->grants[i]->pattern : "");
        if (w < 0)
            break;
        k += (size_t) w;
    }
}

/* Apply one kept admin frame (keys, grants, key rotation); queue its reply
 * and its audit record. Errors of the request are answered; failures of
 * the transaction are returned (unless FAIL: then every request fails). */
static int s_apply_admin(sld_server_t *self, sld_txn_t *txn, const s_write_t *w, int fail)
{
    Sluice__Frame *f = w->frame;
    const char *why = NULL, *target = NULL;
    char detail[512] = "";
    uint32_t key_id = 0;
    int rc = fail;
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_KEY_ADD:
        target = f->key_add->name;
        if (f->key_add->public_key.len == 32)
            zmq_z85_encode(detail, f->key_add->public_key.data, 32);
        if (!rc && f->key_add->public_key.len != 32) {
            rc = SL_EINVAL;
            why = "a public key is 32 bytes (40 characters in Z85)";
        }
        if (!rc)
            rc = sld_auth_key_add(self->auth, txn, target, f->key_add->public_key.data, &why);
        break;
    case SLUICE__FRAME__BODY_KEY_REVOKE:
        target = f->key_revoke->name;
        if (!rc)
            rc = sld_auth_key_revoke(self->auth, txn, target, &why);
        break;
    case SLUICE__FRAME__BODY_GRANT_CHANGE:
        target = f->grant_change->name;
        s_grants_text(f->grant_change, detail, sizeof detail);
        if (!rc)
            rc = sld_auth_grant(self->auth, txn, target, f->grant_change->grants,
                                f->grant_change->n_grants, f->grant_change->revoke, &why);
        break;
    default:                            /* RotateKey */
        target = "at-rest data key";
        if (!rc && sld_store_seal_key_id(self->store) == 0) {
            rc = SL_EINVAL;
            why = "encryption at rest is off: start sluiced with --encrypt-at-rest KEYFILE";
        }
        if (!rc)
            rc = sld_store_rotate_key(txn, &key_id);
        if (!rc)
            snprintf(detail, sizeof detail, "new data key id %u", key_id);
        break;
    }
    if (!fail && (rc == SL_EFULL || rc == SL_ESTORE || rc == SL_ENOMEM))
        return rc;
    sld_audit_add(self->audit, true, w->session ? sld_ident_name(w->session->ident) : NULL,
                  s_admin_action(f), target, rc ? "failed" : "ok",
                  rc ? (why ? why : slc_strerror(rc)) : detail);
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__RotateKeyReply rk = SLUICE__ROTATE_KEY_REPLY__INIT;
    bool rotated = f->body_case == SLUICE__FRAME__BODY_ROTATE_KEY;
    rk.key_id = key_id;
    frame.body_case = SLUICE__FRAME__BODY_ROTATE_KEY_REPLY;
    frame.rotate_key_reply = &rk;
    s_queue_result(self, w, rc, why, rotated ? &frame : NULL);
    return 0;
}

/* Apply one kept SchemaRegister or TopicSet; queue its reply and audit it. */
static int s_apply_registry(sld_server_t *self, sld_txn_t *txn, const s_write_t *w, int fail)
{
    Sluice__Frame *f = w->frame;
    char why[2048] = "", detail[SLD_SUBJECT_MAX + 64] = "";
    const char *action, *target;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__SchemaRegisterReply reply = SLUICE__SCHEMA_REGISTER_REPLY__INIT;
    Sluice__MappingInfo mapping = SLUICE__MAPPING_INFO__INIT;
    int rc = fail;
    if (f->body_case == SLUICE__FRAME__BODY_SCHEMA_REGISTER) {
        Sluice__SchemaRegister *sr = f->schema_register;
        action = sr->dry_run ? "schema.check" : "schema.register";
        target = sr->subject;
        bool existed = false;
        if (!rc)
            rc = sld_registry_register(self->registry, txn, sr->subject, sr->schema,
                                       strlen(sr->schema), sr->compat, sr->dry_run,
                                       &reply.version, &existed, why, sizeof why);
        reply.existed = existed;
        snprintf(detail, sizeof detail, "version %u%s", reply.version,
                 reply.existed ? " (unchanged)" : "");
        frame.body_case = SLUICE__FRAME__BODY_SCHEMA_REGISTER_REPLY;
        frame.schema_register_reply = &reply;
    }
    else if (f->body_case == SLUICE__FRAME__BODY_MAPPING_ADD) {
        Sluice__MappingInfo info = SLUICE__MAPPING_INFO__INIT;
        action = "mapping.add";
        target = "(mapping)";
        if (!rc)
            rc = sld_registry_map_add(self->registry, txn, f->mapping_add->yaml,
                                      strlen(f->mapping_add->yaml), &info, why, sizeof why);
        if (!rc) {
            target = info.name;
            snprintf(detail, sizeof detail, "%s -> %s", info.from, info.to);
        }
        frame.body_case = SLUICE__FRAME__BODY_MAPPING_INFO;
        mapping = info;
        mapping.yaml = "";
        frame.mapping_info = &mapping;
    }
    else if (f->body_case == SLUICE__FRAME__BODY_MAPPING_REMOVE) {
        action = "mapping.remove";
        target = f->mapping_remove->name;
        if (!rc)
            rc = sld_registry_map_remove(self->registry, txn, target, why, sizeof why);
    }
    else {
        Sluice__TopicSet *ts = f->topic_set;
        action = "topic.set";
        target = ts->topic;
        if (!rc)
            rc = sld_registry_bind(self->registry, txn, ts->topic, ts->subject, ts->version,
                                   ts->invalid, why, sizeof why);
        snprintf(detail, sizeof detail, "schema %s@%s, invalid: %s",
                 *ts->subject ? ts->subject : "(none)",
                 ts->version ? "N" : "latest", *ts->invalid ? ts->invalid : "reject");
    }
    if (!fail && (rc == SL_EFULL || rc == SL_ESTORE || rc == SL_ENOMEM))
        return rc;
    /* A dry run changes nothing: no audit record. */
    if (strcmp(action, "schema.check") != 0)
        sld_audit_add(self->audit, true, w->session ? sld_ident_name(w->session->ident) : NULL,
                      action, target, rc ? "failed" : "ok", rc ? (why[0] ? why : slc_strerror(rc))
                                                               : detail);
    s_queue_result(self, w, rc, why[0] ? why : NULL,
                   frame.body_case != SLUICE__FRAME__BODY__NOT_SET ? &frame : NULL);
    return 0;
}

/* Apply every kept frame and the delivery state in TXN (NULL with FAIL). */
static int s_apply(sld_server_t *self, sld_txn_t *txn, bool refuse, int fail)
{
    int rc = 0;
    s_drop_queue(&self->wreplies);
    sld_audit_attempt(self->audit);
    self->nappended = 0;
    self->t_stored = self->t_bytes = self->t_dups = self->t_nacked = 0;
    for (size_t i = 0; rc == 0 && i < self->nwrites; i++) {
        const s_write_t *w = &self->writes[i];
        switch (w->frame->body_case) {
        case SLUICE__FRAME__BODY_TOPIC_CREATE:
            rc = s_apply_topic_create(self, txn, w, fail);
            break;
        case SLUICE__FRAME__BODY_PUBLISH:
        case SLUICE__FRAME__BODY_PUBLISH_BATCH:
            rc = s_apply_publish(self, txn, w, refuse, fail);
            break;
        case SLUICE__FRAME__BODY_SCHEMA_REGISTER:
        case SLUICE__FRAME__BODY_TOPIC_SET:
        case SLUICE__FRAME__BODY_MAPPING_ADD:
        case SLUICE__FRAME__BODY_MAPPING_REMOVE:
            rc = s_apply_registry(self, txn, w, fail);
            break;
        default:
            rc = s_apply_admin(self, txn, w, fail);
            break;
        }
    }
    if (rc == 0 && txn)
        rc = sld_delivery_persist(self->delivery, txn);
    /* Last, so that the records of this turn's changes and denials go in. */
    uint32_t audit_id = 0;
    if (rc == 0 && txn)
        rc = sld_audit_write(self->audit, txn, &audit_id);
    if (rc == 0 && audit_id)
        rc = s_note_appended(self, audit_id);
    return rc;
}

/* A committed change revoked an identity: close its sessions now. The
 * connection itself is shut down under libzmq (ROUTER has no call to drop
 * one peer), which then closes it; the client's reconnect meets ZAP's
 * refusal. A socket whose peer address changed was reused by another
 * connection and is left alone. */
static void s_cut_revoked(sld_server_t *self)
{
    for (sld_session_t *s = zhashx_first(self->sessions); s; s = zhashx_next(self->sessions)) {
        if (s->gone || !sld_ident_revoked(s->ident))
            continue;
        Sluice__Error err = SLUICE__ERROR__INIT;
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        err.code = -SL_EAUTH;
        err.text = "this identity's key was revoked: connection closed";
        frame.body_case = SLUICE__FRAME__BODY_ERROR;
        frame.error = &err;
        slc_frame_send(self->router, s->id, s->id_len, &frame, ZMQ_DONTWAIT);
        struct sockaddr_storage now;
        socklen_t len = sizeof now;
        if (s->fd >= 0 && s->addr_len && getpeername(s->fd, (struct sockaddr *) &now, &len) == 0
            && len == s->addr_len && memcmp(&now, &s->addr, len) == 0)
            shutdown(s->fd, SHUT_RDWR);
        sld_metrics_add(self->metrics, SLD_M_SESSIONS_REVOKED, 1);
        s_log(self, 2, "session %s of revoked identity %s closed", s->key, sld_ident_name(s->ident));
        s_mark_gone(self, s);
    }
}

/* While LMDB writes and syncs a commit this thread only waits, so the
 * helper thread sends, meanwhile, what subscriptions can take of the
 * commits before it (the store's committed state is still theirs); this
 * thread touches neither the delivery state nor the socket until the
 * helper is done. Only s_try's commits, where nothing else is half done. */
static void s_on_commit(void *arg, bool done)
{
    sld_server_t *self = arg;
    if (!done && self->ahead_ok && sld_delivery_awake(self->delivery)) {
        self->ahead_now = slc_mono_ms();
        self->ahead_running = true;
        sld_helper_start(self->helper);
    }
    else if (done && self->ahead_running) {
        sld_helper_wait(self->helper);
        self->ahead_running = false;
    }
}

static void s_pump_ahead(void *arg)
{
    sld_server_t *self = arg;
    sld_delivery_pump_ahead(self->delivery, self->ahead_now);
}

/* One attempt: begin, apply, commit. 0 or the failure. */
static int s_try(sld_server_t *self, bool refuse)
{
    sld_txn_t *txn = NULL;
    int rc = sld_store_begin(self->store, true, &txn);
    if (rc == 0)
        rc = s_apply(self, txn, refuse, 0);
    if (rc) {
        sld_txn_abort(&txn);
        sld_delivery_persisted(self->delivery, false);
        sld_auth_committed(self->auth, false);
        sld_audit_committed(self->audit, false);
        sld_registry_committed(self->registry, false);
        return rc;
    }
    self->ahead_ok = self->helper != NULL;
    rc = sld_txn_commit(&txn);
    self->ahead_ok = false;
    sld_delivery_persisted(self->delivery, rc == 0);
    sld_registry_committed(self->registry, rc == 0);
    bool revoked = sld_auth_committed(self->auth, rc == 0);
    sld_audit_committed(self->audit, rc == 0);
    if (revoked)
        s_cut_revoked(self);
    return rc;
}

/* Publishes stop while less than this is free below the ceiling, so that
 * retention, acks and subscriptions always have pages to commit with (an
 * LMDB delete needs fresh pages too) and can free space again. */
static uint64_t s_reserve(uint64_t map_max)
{
    uint64_t r = map_max / 32;
    return r < (256u << 10) ? 256u << 10 : r;
}

static void s_measure_space(sld_server_t *self, uint64_t now)
{
    self->next_space_ms = now + 200;
    uint64_t used, size, max = sld_store_map_max(self->store);
    sld_store_usage(self->store, &used, &size);
    self->space_used = used;
    bool full = used + s_reserve(max) > max;
    if (full != self->near_full)
        s_log(self, full ? 1 : 2, full
              ? "storage nearly full (%" PRIu64 " of %" PRIu64 " MiB used): refusing publishes"
              : "storage has room again (%" PRIu64 " of %" PRIu64 " MiB used): accepting publishes",
              used >> 20, max >> 20);
    self->near_full = full;
}

/* The most this turn's publishes can take in the map: their records with
 * index entries and part-empty pages (measured: about 1.35 times a 1 KiB
 * payload, 120 bytes for a 12-byte one). */
static uint64_t s_turn_need(const sld_server_t *self)
{
    uint64_t need = 0;
    for (size_t i = 0; i < self->nwrites; i++) {
        const Sluice__Frame *f = self->writes[i].frame;
        size_t n = f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH ? f->publish_batch->n_msgs
                 : f->body_case == SLUICE__FRAME__BODY_PUBLISH ? 1 : 0;
        if (n)
            need += zmq_msg_size((zmq_msg_t *) &self->writes[i].raw) * 3 / 2 + n * 128;
    }
    return need;
}

static void s_commit(sld_server_t *self)
{
    uint64_t now = slc_mono_ms(), max = sld_store_map_max(self->store);
    /* Publishes must never eat into the reserve, or retention could not
     * free anything: measure again when this turn could reach it. */
    uint64_t need = s_turn_need(self);
    if (now >= self->next_space_ms || self->space_used + need + s_reserve(max) > max)
        s_measure_space(self, now);
    bool refuse = self->near_full || self->space_used + need + s_reserve(max) > max;
    self->disk_full = self->disk && sld_disk_room(self->disk, need, now, false) != 0;
    refuse = refuse || self->disk_full;
    int rc = s_try(self, refuse);
    if ((rc == SL_EFULL || rc == SL_ESTORE) && !refuse && self->disk
        && sld_disk_room(self->disk, need, now, true) != 0) {
        /* The disk filled up between two looks: LMDB says ENOSPC, or EIO
         * when a write came back short. Refuse the publishes, commit the
         * rest into the reserve. */
        self->disk_full = refuse = true;
        rc = s_try(self, true);
    }
    if (rc == SL_EFULL) {
        sld_metrics_add(self->metrics, SLD_M_COMMIT_FULL, 1);
        while (rc == SL_EFULL && sld_store_grow(self->store) == 0) {
            uint64_t used, size;
            sld_store_usage(self->store, &used, &size);
            s_log(self, 2, "storage map grown to %" PRIu64 " MiB", size >> 20);
            sld_metrics_add(self->metrics, SLD_M_MAP_GROWN, 1);
            rc = s_try(self, refuse);
        }
        /* At the ceiling with room on the freelist: the pages the last
         * commit freed (a retention pass, say) are LMDB's to reuse only
         * once another commit has followed it. */
        if (rc == SL_EFULL) {
            s_measure_space(self, now);
            refuse = self->near_full;
            if (!refuse && sld_store_settle(self->store) == 0)
                rc = s_try(self, false);
        }
        if (rc == SL_EFULL) {
            refuse = true;
            rc = s_try(self, true);
        }
    }
    if (rc == 0 && !refuse)
        self->space_used += need;
    if (rc == 0) {
        sld_metrics_add(self->metrics, SLD_M_COMMITS, 1);
        sld_metrics_add(self->metrics, SLD_M_PUBLISHED, self->t_stored);
        sld_metrics_add(self->metrics, SLD_M_PUBLISH_BYTES, self->t_bytes);
        sld_metrics_add(self->metrics, SLD_M_DUPLICATES, self->t_dups);
        sld_metrics_add(self->metrics, SLD_M_NACKED, self->t_nacked);
        for (size_t i = 0; i < self->nappended; i++)
            sld_delivery_topic_appended(self->delivery, self->appended[i]);
    }
    else {
        s_log(self, 0, "commit failed: %s", slc_strerror(rc));
        s_apply(self, NULL, false, rc == SL_EFULL || rc == SL_ESTORE ? rc : SL_ESTORE);
        sld_metrics_add(self->metrics, SLD_M_NACKED, self->t_nacked);
    }
    self->nappended = 0;
    for (size_t i = 0; i < self->nwrites; i++)
        s_write_free(&self->writes[i]);
    self->nwrites = 0;
}

static void s_turn(sld_server_t *self)
{
    size_t msgs = 0, bytes = 0;
    while (msgs < self->cfg.commit_max_msgs && bytes < self->cfg.commit_max_bytes)
        if (s_recv(self, &msgs, &bytes) == 0)
            break;
    if (self->nwrites || sld_delivery_dirty(self->delivery) || sld_audit_dirty(self->audit)) {
        s_commit(self);
        self->turn_committed = true;
    }
    s_send_queue(self, &self->replies);
    s_send_queue(self, &self->wreplies);
    sld_delivery_replies_sent(self->delivery);
}

/* ------------------------------------------------------------- lifecycle */

/* ZAP refused a connection: count it, and audit and log it as sld_audit
 * tallies it (the first of a key from an address at once, repeats once an
 * interval), so refusals as fast as a client can connect grow neither the
 * trail nor the log by more than that. */
static void s_refused(void *arg, const char *name, const char *key, const char *address,
                      const char *why)
{
    sld_server_t *self = arg;
    sld_metrics_add(self->metrics, SLD_M_AUTH_REFUSED, 1);
    bool recorded = sld_audit_refused(self->audit, slc_now_us(), name, key, address, why);
    s_log(self, recorded ? 2 : 3, "connection from %s refused: %s; public key %s%s", address,
          why, *key ? key : "(none)", recorded ? " (repeats are counted in _audit)" : "");
}

/* First transaction: the local admin identity holds DATA/admin.cert's key
 * (ADMIN_KEY, NULL in plain text) and the start is audited. */
static int s_bootstrap(sld_server_t *self, const uint8_t *admin_key)
{
    sld_txn_t *txn = NULL;
    bool changed = false;
    uint32_t audit_id;
    char detail[384];
    int rc = sld_store_begin(self->store, true, &txn);
    if (rc == 0 && admin_key)
        rc = sld_auth_ensure_admin(self->auth, txn, admin_key, &changed);
    if (rc == 0 && changed) {
        char z85[41];
        zmq_z85_encode(z85, admin_key, 32);
        sld_audit_add(self->audit, true, NULL, "keys.add", SLD_AUTH_ADMIN, "ok", z85);
    }
    snprintf(detail, sizeof detail, "%s; listening on %s; at rest: %s",
             admin_key ? "CurveZMQ" : "PLAIN TEXT (--insecure-plaintext)", self->endpoint,
             sld_store_seal_key_id(self->store) ? "sealed" : "plain");
    sld_audit_add(self->audit, true, NULL, "broker.start", self->instance, "ok", detail);
    /* _audit keeps security/audit_retention by age and nothing by size, so
     * no record inside the window is ever trimmed. A change is recorded. */
    const sld_topic_info_t *audit = sld_store_topic_by_name(self->store, SLD_AUDIT_TOPIC);
    uint64_t keep = self->cfg.audit_retention_ms;
    bool retain = !audit || audit->max_age_ms != keep || audit->max_bytes != 0;
    if (retain) {
        char was[64] = "a new topic";
        if (audit)
            snprintf(was, sizeof was, "max_age_ms %" PRIu64 ", max_bytes %" PRIu64,
                     audit->max_age_ms, audit->max_bytes);
        snprintf(detail, sizeof detail, "max_age_ms %" PRIu64 "%s, max_bytes 0 "
                 "(security/audit_retention); was %s", keep, keep ? "" : " (keep forever)", was);
        sld_audit_add(self->audit, true, NULL, "audit.retention", SLD_AUDIT_TOPIC, "ok", detail);
    }
    if (rc == 0)
        rc = sld_audit_write(self->audit, txn, &audit_id);
    if (rc == 0 && retain)
        rc = sld_store_topic_set_retention(txn, audit_id, keep, 0);
    if (rc) {
        sld_txn_abort(&txn);
        sld_auth_committed(self->auth, false);
        sld_audit_committed(self->audit, false);
        return rc;
    }
    rc = sld_txn_commit(&txn);
    sld_auth_committed(self->auth, rc == 0);
    sld_audit_committed(self->audit, rc == 0);
    return rc;
}

/* Open the store, with the at-rest key when one is configured. */
static int s_open_store(sld_server_t *self, const sld_config_t *cfg)
{
    sld_store_options_t so;
    uint8_t *key = NULL;
    char why[512];
    int rc = 0;
    sld_store_options_init(&so);
    so.dir = cfg->data_dir;
    so.map_size = cfg->map_size;
    so.map_size_max = cfg->map_size_max;
    so.sync = cfg->sync;
    so.producer_window = cfg->producer_window;
    so.exclusive = true;
    if (cfg->encrypt_at_rest[0]) {
        /* sodium_malloc needs libsodium initialised. */
        key = sld_seal_init() == 0 ? sodium_malloc(SLD_SEAL_KEY_LEN) : NULL;
        if (!key)
            return SL_ENOMEM;
        rc = sld_seal_key_load(cfg->encrypt_at_rest, key, why, sizeof why);
        if (rc) {
            fprintf(stderr, "sluiced: --encrypt-at-rest: %s\n", why);
            goto fail;
        }
        so.seal_key = key;
    }
    rc = sld_store_open(&so, &self->store);
    if (rc == 0)
        rc = sld_disk_new(cfg->data_dir, cfg->disk_reserve, &self->disk);
fail:
    sodium_free(key);
    return rc;
}

/* CurveZMQ server on ROUTER with the key pair of the data dir (made on
 * first start); the ZAP handler first, so no handshake runs without it. */
static int s_secure(sld_server_t *self, uint8_t admin_key[32])
{
    slc_cert_t server, admin;
    bool created_admin = false;
    char why[512];
    int one = 1, rc = sld_keys_setup(self->cfg.data_dir, &server, &admin, &created_admin,
                                     why, sizeof why);
    if (rc) {
        fprintf(stderr, "sluiced: %s\n", why);
        return rc;
    }
    memcpy(admin_key, admin.public_key, 32);
    rc = sld_auth_zap_bind(self->auth, self->zctx);
    if (rc == 0
        && (zmq_setsockopt(self->router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0
            || zmq_setsockopt(self->router, ZMQ_CURVE_SECRETKEY, server.secret_key, 32) != 0
            || zmq_setsockopt(self->router, ZMQ_ZAP_DOMAIN, "sluice", 6) != 0)) {
        fprintf(stderr, "sluiced: cannot enable CurveZMQ: %s\n", zmq_strerror(errno));
        rc = SL_ESYS;
    }
    if (rc == 0) {
        char z85[41];
        slc_key_z85(server.public_key, z85);
        s_log(self, 2, "CurveZMQ on: server public key %s (%s/server.pub); local admin key "
              "%s/admin.cert%s", z85, self->cfg.data_dir, self->cfg.data_dir,
              created_admin ? " (new)" : "");
    }
    slc_cert_wipe(&server);
    slc_cert_wipe(&admin);
    return rc;
}

int sld_server_new(const sld_config_t *cfg, sld_server_t **out)
{
    int rc = SL_ENOMEM;
    sld_server_t *self = calloc(1, sizeof(sld_server_t));
    if (!self)
        return SL_ENOMEM;
    self->cfg = *cfg;
    self->epoch = slc_now_us();
    uint8_t admin_key[32];
    char why[512];
    rc = sld_metrics_new(&self->metrics);
    if (rc == 0)
        rc = sld_audit_new(cfg->audit_file[0] ? cfg->audit_file : NULL,
                           cfg->audit_refusal_interval_ms, &self->audit);
    if (rc == 0)
        rc = s_open_store(self, cfg);
    if (rc == 0)
        rc = sld_auth_new(self->store, cfg->insecure_plaintext, &self->auth);
    if (rc == 0)
        rc = sld_registry_new(self->store, &self->registry);
    if (rc)
        goto fail;
    sld_store_instance_id(self->store, self->instance);
    sld_topics_options_t to = {
        .max_age_ms = cfg->retention_max_age_ms,
        .max_bytes = cfg->retention_max_bytes,
        .trim_interval_ms = cfg->trim_interval_ms,
        .trim_batch = cfg->trim_batch,
        .dedup_window_ms = cfg->dedup_window_ms,
    };
    rc = sld_topics_new(self->store, self->metrics, &to, &self->topics);
    if (rc)
        goto fail;
    sld_delivery_options_t dopts = {
        .ack_wait_ms = cfg->ack_wait_ms,
        .max_deliver = cfg->max_deliver,
        .max_inflight = cfg->max_inflight,
        .max_unacked_bytes = cfg->max_unacked_bytes,
        .deliver_batch = cfg->deliver_batch,
        .max_subscriptions = cfg->max_subscriptions,
        .max_message_bytes = cfg->max_message_bytes,
    };
    sld_outbox_t outbox = { s_deliver_send, self };
    rc = sld_delivery_new(self->store, self->metrics, &dopts, &outbox,
                          &self->delivery);
    if (rc == 0)
        rc = sld_helper_new(s_pump_ahead, self, &self->helper);
    if (rc)
        goto fail;
    sld_store_on_commit(self->store, s_on_commit, self);
    rc = SL_ENOMEM;
    self->sessions = zhashx_new();
    if (!self->sessions)
        goto fail;
    zhashx_set_destructor(self->sessions, s_session_free);
    rc = SL_ESYS;
    self->zctx = zmq_ctx_new();
    if (!self->zctx)
        goto fail;
    self->router = zmq_socket(self->zctx, ZMQ_ROUTER);
    if (!self->router)
        goto fail;
    int one = 1, linger = 2000;
    /* The transport drops the connection of a peer whose frame passes
     * ZMQ_MAXMSGSIZE, without a word: that bound only keeps one frame from
     * taking unbounded memory. It sits at twice the protocol's limit, so a
     * frame a little too big still reaches us and gets its 413. */
    int64_t maxmsg = 2 * (int64_t) cfg->max_frame_bytes;
    zmq_setsockopt(self->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* Credit and the unacked-bytes budget bound what deliveries queue per
     * connection; the high-water mark is the backstop for everything else
     * (replies to a client that does not read): past it a send fails with
     * EAGAIN (ROUTER_MANDATORY), never queues more. */
    int hwm = cfg->max_queued_frames > INT32_MAX ? INT32_MAX : (int) cfg->max_queued_frames;
    zmq_setsockopt(self->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(self->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* A connection that has not finished its handshake (greeting, CurveZMQ,
     * the ZAP answer) within limits/handshake_timeout is closed by libzmq:
     * an idle or stalled socket holds a descriptor that long, not forever
     * (libzmq's default is 30 s). sld_monitor counts them. */
    int ivl = cfg->handshake_timeout_ms > INT32_MAX ? INT32_MAX : (int) cfg->handshake_timeout_ms;
    zmq_setsockopt(self->router, ZMQ_HANDSHAKE_IVL, &ivl, sizeof ivl);
    rc = sld_monitor_new(self->zctx, self->router, self->metrics, cfg->handshake_timeout_ms,
                         &self->monitor);
    if (rc)
        goto fail;
    rc = SL_ESYS;
    if (!cfg->insecure_plaintext) {
        rc = s_secure(self, admin_key);
        if (rc)
            goto fail;
        rc = SL_ESYS;
    }
    if (zmq_bind(self->router, cfg->listen) != 0) {
        fprintf(stderr, "sluiced: cannot listen on %s: %s\n", cfg->listen, zmq_strerror(errno));
        goto fail;
    }
    size_t elen = sizeof self->endpoint;
    if (zmq_getsockopt(self->router, ZMQ_LAST_ENDPOINT, self->endpoint, &elen) != 0)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", cfg->listen);
    rc = sld_keys_write_endpoint(cfg->data_dir, self->endpoint, cfg->insecure_plaintext,
                                 why, sizeof why);
    if (rc == 0)
        rc = s_bootstrap(self, cfg->insecure_plaintext ? NULL : admin_key);
    sodium_memzero(admin_key, sizeof admin_key);
    if (rc) {
        fprintf(stderr, "sluiced: %s\n", rc == SL_ESYS ? why : "cannot record the start");
        goto fail;
    }
    if (cfg->insecure_plaintext)
        s_log(self, 1, "PLAIN TEXT (--insecure-plaintext): no encryption, no keys, every "
              "client may do everything; for local development only");
    /* Last: scripts and tests wait for this line before connecting. */
    s_log(self, 2, "listening on %s, data in %s (sync %s), %zu topics",
          self->endpoint, cfg->data_dir, cfg->sync ? "on" : "OFF (unsafe)",
          sld_store_topic_count(self->store));
    *out = self;
    return 0;
fail:
    sld_server_destroy(&self);
    return rc;
}

void sld_server_destroy(sld_server_t **self_p)
{
    sld_server_t *self = *self_p;
    if (!self)
        return;
    s_drop_queue(&self->replies);
    s_drop_queue(&self->wreplies);
    if (self->store)
        sld_store_on_commit(self->store, NULL, NULL);
    sld_helper_destroy(&self->helper);
    free(self->replies.v);
    free(self->wreplies.v);
    for (size_t i = 0; i < self->nwrites; i++)
        s_write_free(&self->writes[i]);
    free(self->writes);
    sld_monitor_destroy(&self->monitor);    /* before the socket it watches */
    if (self->router)
        zmq_close(self->router);
    sld_auth_destroy(&self->auth);          /* closes the ZAP socket */
    if (self->zctx)
        zmq_ctx_term(self->zctx);
    sld_delivery_destroy(&self->delivery);
    zhashx_destroy(&self->sessions);
    sld_audit_destroy(&self->audit);
    sld_registry_destroy(&self->registry);
    s_texts_free(self);
    free(self->texts);
    sld_topics_destroy(&self->topics);
    sld_disk_destroy(&self->disk);
    sld_store_destroy(&self->store);
    sld_metrics_destroy(&self->metrics);
    free(self->appended);
    free(self->scratch);
    free(self->confirms);
    free(self->confirm_ptrs);
    free(self->spans);
    free(self->refusals);
    free(self->gone);
    free(self);
    *self_p = NULL;
}

const char *sld_server_endpoint(const sld_server_t *self)
{
    return self->endpoint;
}

void sld_server_reload(sld_server_t *self, const sld_config_t *cfg)
{
    if (cfg->map_size_max != self->cfg.map_size_max) {
        sld_store_set_map_max(self->store, cfg->map_size_max);
        s_log(self, 2, "storage/map_size_max is now %" PRIu64 " MiB", cfg->map_size_max >> 20);
    }
    self->cfg.map_size_max = cfg->map_size_max;
    self->cfg.log_level = cfg->log_level;
    if (strcmp(cfg->data_dir, self->cfg.data_dir) != 0 || strcmp(cfg->listen, self->cfg.listen) != 0)
        s_log(self, 1, "data_dir and listen change only with a restart");
    s_log(self, 2, "configuration reloaded");
}

/* Frames waiting on the socket? */
static bool s_input_waiting(sld_server_t *self)
{
    int events = 0;
    size_t len = sizeof events;
    return zmq_getsockopt(self->router, ZMQ_EVENTS, &events, &len) == 0
           && (events & ZMQ_POLLIN);
}

/* After frames were handled (or a poll timed out): deliveries, dead
 * letters, sessions, retention. Returns how long the loop may sleep. */
static long s_after(sld_server_t *self)
{
    uint64_t now = slc_mono_ms();
    /* Right after a commit with more frames waiting, the next turn will
     * most likely commit too: its wait for the disk is where this turn's
     * deliveries go out (s_on_commit), not ahead of it. Once only. */
    bool defer = self->helper && self->turn_committed && s_input_waiting(self);
    self->turn_committed = false;
    int t = defer ? 0 : sld_delivery_pump(self->delivery, now);
    long t4 = sld_audit_tick(self->audit, slc_now_us());    /* refusal summaries due */
    if (sld_delivery_dirty(self->delivery) || sld_audit_dirty(self->audit)) {
        /* Dead letters found by the pump, and audit records of refused
         * connections, are written at once. */
        s_commit(self);
        s_send_queue(self, &self->wreplies);
    }
    s_reap(self);
    int t2 = sld_topics_trim(self->topics, now);
    long t3 = s_expire(self, now);
    if (self->trim_at_ms && now >= self->trim_at_ms) {
        malloc_trim(0);
        self->trim_at_ms = 0;
    }
    long timeout = t < t2 ? t : t2;
    timeout = timeout < t3 ? timeout : t3;
    timeout = timeout < t4 ? timeout : t4;
    return timeout > 1000 ? 1000 : timeout;
}

int sld_server_step(sld_server_t *self, int timeout_ms)
{
    zmq_pollitem_t items[3] = {
        { self->router, 0, ZMQ_POLLIN, 0 },
        { sld_monitor_socket(self->monitor), 0, ZMQ_POLLIN, 0 },
        { sld_auth_zap_socket(self->auth), 0, ZMQ_POLLIN, 0 },
    };
    int n = zmq_poll(items, items[2].socket ? 3 : 2, timeout_ms);
    if (n < 0 && errno != EINTR)
        return SL_ESYS;
    if (n > 0 && (items[1].revents & ZMQ_POLLIN))
        sld_monitor_handle(self->monitor);
    if (n > 0 && (items[2].revents & ZMQ_POLLIN))
        sld_auth_zap_handle(self->auth, s_refused, self);
    if (n > 0 && (items[0].revents & ZMQ_POLLIN))
        s_turn(self);
    s_after(self);
    return 0;
}

int sld_server_run(sld_server_t *self, int stop_fd)
{
    /* Router, connection events, stop descriptor (if any), ZAP socket (if
     * any). */
    zmq_pollitem_t items[4] = {
        { self->router, 0, ZMQ_POLLIN, 0 },
        { sld_monitor_socket(self->monitor), 0, ZMQ_POLLIN, 0 },
    };
    int nitems = 2, istop = -1, izap = -1;
    if (stop_fd >= 0) {
        istop = nitems;
        items[nitems++] = (zmq_pollitem_t) { NULL, stop_fd, ZMQ_POLLIN, 0 };
    }
    if (sld_auth_zap_socket(self->auth)) {
        izap = nitems;
        items[nitems++] = (zmq_pollitem_t) { sld_auth_zap_socket(self->auth), 0, ZMQ_POLLIN, 0 };
    }
    long timeout = 0;
    while (true) {
        int n = zmq_poll(items, nitems, timeout);
        if (n < 0 && errno != EINTR) {
            s_log(self, 0, "poll failed: %s", zmq_strerror(errno));
            return SL_ESYS;
        }
        if (n > 0 && istop >= 0 && (items[istop].revents & ZMQ_POLLIN))
            return 0;
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            sld_monitor_handle(self->monitor);
        if (n > 0 && izap >= 0 && (items[izap].revents & ZMQ_POLLIN))
            sld_auth_zap_handle(self->auth, s_refused, self);
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            s_turn(self);
        timeout = s_after(self);
    }
}
