/*  sld_session - sessions and reply queues (see sld_session.h): Hello and
 *  Heartbeat, expiry, the cut-off of revoked identities, the outbox that
 *  delivery sends through, and the queues whose frames go out only after
 *  the turn's commit, so a PublishAck always names a committed offset.
 *  Broker thread only (the outbox also on the helper thread, see the
 *  header). It decides no permission and writes nothing to the store.  */
#include "sld_session.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void s_hex(const uint8_t *id, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[2 * len] = 0;
}

sld_session_t *sld_session_lookup(sld_server_t *self, const uint8_t *id, size_t len)
{
    char key[2 * SLD_ID_MAX + 1];
    s_hex(id, len, key);
    return zhashx_lookup(self->sessions, key);
}

int sld_session_queue(sld_server_t *self, sld_replies_t *q, const uint8_t *id,
                      size_t id_len, uint64_t corr, Sluice__Frame *frame)
{
    frame->corr = corr;
    if (slc_grow((void **) &q->v, &q->cap, q->n + 1, sizeof(sld_reply_t)) != 0) {
        sld_server_log(self, 0, "out of memory queueing a %s reply", slc_frame_name(frame));
        return SL_ENOMEM;
    }
    sld_reply_t *r = &q->v[q->n];
    int rc = slc_frame_encode(frame, &r->msg);
    if (rc)
        return rc;
    /* A text may quote a name cut inside a character: clients refuse a
     * frame that is not UTF-8 (docs/protocol.md, "Names"). */
    slc_frame_texts_repair(frame, &r->msg);
    memcpy(r->id, id, id_len);
    r->id_len = id_len;
    q->n++;
    return 0;
}

int sld_session_reply(sld_server_t *self, const sld_peer_t *peer, uint64_t corr,
                      Sluice__Frame *frame)
{
    return sld_session_queue(self, &self->replies, peer->id, peer->id_len, corr, frame);
}

int sld_session_error(sld_server_t *self, const sld_peer_t *peer, uint64_t corr, int code,
                      const char *text)
{
    Sluice__Error err = SLUICE__ERROR__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    err.code = -code;
    err.text = (char *) (text ? text : slc_strerror(code));
    err.retryable = slc_retryable(code);
    frame.body_case = SLUICE__FRAME__BODY_ERROR;
    frame.error = &err;
    sld_metrics_error(self->metrics, code);
    sld_server_log(self, 3, "error %d to peer: %s", -code, err.text);
    sld_session_reply(self, peer, corr, &frame);
    return code;
}

int sld_session_deny(sld_server_t *self, const sld_peer_t *peer, uint64_t corr,
                     const char *action, const char *target, const char *detail,
                     const char *text)
{
    sld_audit_add(self->audit, false, sld_ident_name(peer->session->ident), action, target,
                  "denied", detail);
    return sld_session_error(self, peer, corr, SL_EDENIED, text);
}

int sld_session_ok(sld_server_t *self, const sld_peer_t *peer, uint64_t corr)
{
    Sluice__Ok ok = SLUICE__OK__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    frame.body_case = SLUICE__FRAME__BODY_OK;
    frame.ok = &ok;
    return sld_session_reply(self, peer, corr, &frame);
}

void sld_session_mark_gone(sld_server_t *self, sld_session_t *session)
{
    if (session->gone)
        return;
    if (slc_grow((void **) &self->gone, &self->capgone, self->ngone + 1,
               sizeof(sld_session_t *)) != 0)
        return;
    session->gone = true;
    self->gone[self->ngone++] = session;
}

void sld_session_send_queue(sld_server_t *self, sld_replies_t *q)
{
    for (size_t i = 0; i < q->n; i++) {
        sld_reply_t *r = &q->v[i];
        if (zmq_send(self->router, r->id, r->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
            || zmq_msg_send(&r->msg, self->router, ZMQ_DONTWAIT) < 0) {
            /* The peer left (ROUTER_MANDATORY says so): its session goes. */
            zmq_msg_close(&r->msg);
            sld_session_t *s = sld_session_lookup(self, r->id, r->id_len);
            if (s)
                sld_session_mark_gone(self, s);
        }
    }
    q->n = 0;
}

void sld_session_drop_queue(sld_replies_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        zmq_msg_close(&q->v[i].msg);
    q->n = 0;
}

int sld_session_outbox_send(void *arg, sld_session_t *session, const Sluice__Frame *frame)
{
    sld_server_t *self = arg;
    int rc = slc_frame_send(self->router, session->id, session->id_len, frame,
                            ZMQ_DONTWAIT);
    /* A full queue (SL_EBUSY) drops this frame only: the delivery module
     * counts it. A peer that is gone takes its session with it. */
    if (rc && rc != SL_EBUSY)
        sld_session_mark_gone(self, session);
    return rc;
}

void sld_session_free(void **item)
{
    free(*item);
    *item = NULL;
}

void sld_session_reap(sld_server_t *self)
{
    for (size_t i = 0; i < self->ngone; i++) {
        sld_session_t *s = self->gone[i];
        sld_delivery_session_gone(self->delivery, s);
        sld_ident_sessions(s->ident, -1);
        sld_server_log(self, 2, "session %s (%s) closed", s->key, s->client);
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
long sld_session_expire(sld_server_t *self, uint64_t now)
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
            const sld_log_field_t f[] = { { "silent_ms", now - s->last_seen_ms },
                                          { "timeout_ms", s->timeout_ms } };
            sld_server_log_with(self, 2, f, 2, "session %s (%s) expired: silent for %" PRIu64
                                " ms (timeout %u ms)", s->key, s->client, now - s->last_seen_ms,
                                s->timeout_ms);
            sld_session_mark_gone(self, s);
        }
        else if (deadline + 1 < next)
            next = deadline + 1;
    }
    self->next_expiry_ms = next;
    sld_session_reap(self);
    return (long) (next - now);
}

int sld_session_on_hello(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    Sluice__Frame *f = *f_p;
    Sluice__Hello *hello = f->hello;
    if (hello->version != SLC_PROTOCOL_VERSION) {
        char text[128];
        snprintf(text, sizeof text, "protocol version %u is not supported; this broker speaks %d",
                 hello->version, SLC_PROTOCOL_VERSION);
        return sld_session_error(self, peer, f->corr, SL_EVERSION, text);
    }
    sld_ident_t *ident = sld_auth_plaintext(self->auth);
    if (!ident) {
        /* ZAP admitted the key and named its identity as User-Id; the
         * identity may have been revoked since. */
        const char *uid = peer->raw ? zmq_msg_gets(peer->raw, "User-Id") : NULL;
        ident = uid ? sld_auth_lookup(self->auth, uid) : NULL;
        if (!ident || sld_ident_revoked(ident))
            return sld_session_error(self, peer, f->corr, SL_EAUTH,
                                     "this connection's key is not admitted");
    }
    sld_session_t *s = peer->session;
    if (!s) {
        if (zhashx_size(self->sessions) >= self->cfg.max_connections)
            return sld_session_error(self, peer, f->corr, SL_EBUSY,
                                     "too many sessions (limits/max_connections)");
        s = calloc(1, sizeof(sld_session_t));
        if (!s)
            return sld_session_error(self, peer, f->corr, SL_ENOMEM, NULL);
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
    sld_server_log(self, 2, "session %s opened by \"%s\" as %s", s->key, s->client,
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
    sld_session_reply(self, peer, f->corr, &frame);
    return 0;
}

int sld_session_on_heartbeat(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    hb.now_us = slc_now_us();
    frame.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
    frame.heartbeat = &hb;
    sld_session_reply(self, peer, (*f_p)->corr, &frame);
    return 0;
}

/* A committed change revoked an identity: close its sessions now. The
 * connection itself is shut down under libzmq (ROUTER has no call to drop
 * one peer), which then closes it; the client's reconnect meets ZAP's
 * refusal. A socket whose peer address changed was reused by another
 * connection and is left alone. */
void sld_session_cut_revoked(sld_server_t *self)
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
        sld_server_log(self, 2, "session %s of revoked identity %s closed", s->key,
                       sld_ident_name(s->ident));
        sld_session_mark_gone(self, s);
    }
}
