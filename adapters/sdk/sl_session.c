/*  sl_session - the connection: socket, CURVE, monitor, the session state
 *  machine, the I/O turn every call runs, frame dispatch through the
 *  registry of handlers the parts (sl_pub, sl_sub, sl_admin) register, and
 *  request waiters. Owns the ZeroMQ context and the one DEALER socket.
 *  Caller's thread only; there is no background thread. Calls no part by
 *  name: the parts' hooks and handlers are pointers (sl_session.h).
 *
 *  Session: IDLE --attempt--> HELLO --HelloOk--> READY. Any Error 401 (the
 *  broker forgot us: it restarted) or dead_after_ms of silence in READY
 *  closes the socket (a new socket = a new routing id, and nothing queued
 *  for the old session leaks into the new one) and goes back to IDLE with
 *  an immediate first attempt; an attempt that gets no HelloOk within
 *  dead_after_ms backs off 100 ms doubling to 2 s, with jitter. Each
 *  HelloOk bumps `gen`: publishes, subscriptions and waiting requests
 *  compare it with the generation they were sent in and go again. Error 426
 *  is terminal (SLI_SESS_VERSION): every call then returns SL_EVERSION.
 *
 *  Security. With server_key the socket does the CURVE handshake. Whether
 *  the broker admitted us shows only in libzmq's monitor events, so each
 *  session's DEALER gets a monitor (an inproc PAIR). The turn reads it
 *  while the session is not READY (the handshake), and in READY only after
 *  a blocking wait that saw nothing: the publish and delivery paths do not
 *  pay for it. A refused handshake (ZAP status 400: key unknown or revoked;
 *  a protocol or crypto failure: wrong server key or plain text on one
 *  side; the broker cutting two handshakes short) ends the session; until
 *  the next attempt, SLI_AUTH_RETRY_MS later, every call that waits for the
 *  broker returns SL_EAUTH at once. Not terminal: the key may be registered
 *  meanwhile, and the next successful handshake clears the refusal.  */
#include "sl_session.h"
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sl_producer_id.h"

#define SLI_HWM 10000           /* frames; batches are large, so this is generous */

uint64_t sli_corr(sli_session_t *self)
{
    return self->corr_next++;
}

void sli_error_set(sli_session_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->last_error, sizeof self->last_error, fmt, ap);
    va_end(ap);
}

static uint64_t s_rand(sli_session_t *self)
{
    /* xorshift64*: jitter only, no need for anything stronger. */
    uint64_t x = self->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint64_t sli_backoff(sli_session_t *self, unsigned attempt)
{
    unsigned shift = attempt > 0 ? attempt - 1 : 0;
    uint64_t base = shift >= 5 ? 2000 : sli_min(100u << shift, 2000);
    /* Between half and all of the step, so clients that lost the same
     * broker do not all come back in the same millisecond. */
    return base / 2 + s_rand(self) % (base / 2 + 1);
}

/* ------------------------------------------------------------- sending */

int sli_send(sli_session_t *self, const Sluice__Frame *frame)
{
    if (!self->sock)
        return SL_EUNAVAIL;
    int rc = slc_frame_send(self->sock, NULL, 0, frame, ZMQ_DONTWAIT);
    if (rc == 0)
        self->last_send = slc_mono_ms();
    return rc;
}

int sli_send_msg(sli_session_t *self, zmq_msg_t *msg)
{
    int rc = 0;
    if (!self->sock) {
        rc = SL_EUNAVAIL;
        goto fail;
    }
    if (zmq_msg_send(msg, self->sock, ZMQ_DONTWAIT) < 0) {
        rc = errno == EAGAIN ? SL_EBUSY : SL_EUNAVAIL;
        goto fail;
    }
    self->last_send = slc_mono_ms();
    return 0;
fail:
    zmq_msg_close(msg);
    return rc;
}

/* ------------------------------------------------------------- session */

static int s_sockopt(void *sock, int opt, int value)
{
    return zmq_setsockopt(sock, opt, &value, sizeof value) == 0 ? 0 : SL_ESYS;
}

/* libzmq sends monitor events from its I/O thread with a blocking send:
 * an event for a PAIR of ours that is closed (or full) would stop that
 * thread, and with it every socket of the client, for good. So the
 * monitor stops before its socket closes (the last events of a closing
 * connection come after zmq_close), and our PAIR's queue is unbounded
 * (events are few: connects, disconnects, handshakes). */
static void s_monitor_stop(void *sock)
{
    if (zmq_socket_monitor(sock, NULL, 0) != 0)
        SLI_LOG("cannot stop the socket monitor: %s", zmq_strerror(errno));
}

static void s_session_close(sli_session_t *self)
{
    /* The DEALER first, its monitor stopped; then our PAIR. Both linger
     * 0: nothing may hold up ctx_term. */
    if (self->sock) {
        if (self->mon)
            s_monitor_stop(self->sock);
        zmq_close(self->sock);
        self->sock = NULL;
    }
    if (self->mon) {
        zmq_close(self->mon);
        self->mon = NULL;
    }
    self->hs_pending = false;
}

/* The events that tell whether the broker admitted us. */
#define S_MON_EVENTS (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED         \
                      | ZMQ_EVENT_HANDSHAKE_SUCCEEDED                     \
                      | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL              \
                      | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL               \
                      | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

/* Monitor SOCK on a PAIR of ours, before it connects, so no event of its
 * handshake is missed (libzmq drops events nobody is connected to). */
static int s_monitor_open(sli_session_t *self, void *sock, void **mon)
{
    int rc = 0;
    char ep[64];
    *mon = NULL;
    snprintf(ep, sizeof ep, "inproc://libsluice-monitor-%u", self->mon_seq++);
    if (zmq_socket_monitor(sock, ep, S_MON_EVENTS) != 0) {
        SLI_LOG("zmq_socket_monitor: %s", zmq_strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    void *pair = zmq_socket(self->ctx, ZMQ_PAIR);
    if (!pair) {
        SLI_LOG("zmq_socket: %s", zmq_strerror(errno));
        s_monitor_stop(sock);
        rc = SL_ESYS;
        goto fail;
    }
    /* RCVHWM 0 before connecting: the inproc pipe takes it, unbounded. */
    if (s_sockopt(pair, ZMQ_LINGER, 0) != 0 || s_sockopt(pair, ZMQ_RCVHWM, 0) != 0
        || zmq_connect(pair, ep) != 0) {
        SLI_LOG("cannot attach the socket monitor: %s", zmq_strerror(errno));
        s_monitor_stop(sock);
        zmq_close(pair);
        rc = SL_ESYS;
        goto fail;
    }
    *mon = pair;
fail:
    return rc;
}

static int s_curve_opts(sli_session_t *self, void *sock)
{
    int rc = 0;
    if (!self->curve)
        goto fail;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, self->server_key, SLC_KEY_LEN) != 0
        || zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, self->public_key, SLC_KEY_LEN) != 0
        || zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->secret_key, SLC_KEY_LEN) != 0) {
        /* EINVAL here means a libzmq built without CURVE. */
        SLI_LOG("cannot set the CURVE keys: %s", zmq_strerror(errno));
        rc = errno == EINVAL ? SL_EINVAL : SL_ESYS;
        goto fail;
    }
fail:
    return rc;
}

/* A fresh socket and a Hello. ZMQ_IMMEDIATE stays 0 on purpose: the Hello
 * must queue in the pipe while TCP connects (or while the broker is down
 * and libzmq retries), and the socket is thrown away with its queue when a
 * session ends, so nothing stale reaches the next session. */
static int s_session_start(sli_session_t *self)
{
    int rc = 0;
    void *mon = NULL;
    void *sock = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!sock) {
        SLI_LOG("zmq_socket: %s", zmq_strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    rc = s_sockopt(sock, ZMQ_LINGER, 0);
    if (!rc)
        rc = s_sockopt(sock, ZMQ_RECONNECT_IVL, 100);
    if (!rc)
        rc = s_sockopt(sock, ZMQ_RECONNECT_IVL_MAX, 2000);
    if (!rc)
        rc = s_sockopt(sock, ZMQ_SNDHWM, SLI_HWM);
    if (!rc)
        rc = s_sockopt(sock, ZMQ_RCVHWM, SLI_HWM);
    if (rc) {
        SLI_LOG("zmq_setsockopt: %s", zmq_strerror(errno));
        goto fail;
    }
    rc = s_curve_opts(self, sock);
    if (rc)
        goto fail;
    rc = s_monitor_open(self, sock, &mon);
    if (rc)
        goto fail;
    if (zmq_connect(sock, self->endpoint) != 0) {
        int e = errno;
        SLI_LOG("cannot connect to %s: %s", self->endpoint, zmq_strerror(e));
        rc = (e == EINVAL || e == EPROTONOSUPPORT || e == ENOCOMPATPROTO)
           ? SL_EINVAL : SL_ESYS;
        goto fail;
    }
    self->sock = sock;
    self->mon = mon;
    sock = mon = NULL;
    self->hs_pending = false;

    Sluice__Hello hello = SLUICE__HELLO__INIT;
    hello.version = SLC_PROTOCOL_VERSION;
    hello.client = self->name;
    hello.heartbeat_ms = (uint32_t) self->opts.heartbeat_ms;
    hello.producer_id.data = self->producer_id;
    hello.producer_id.len = sizeof self->producer_id;
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.corr = sli_corr(self);
    f.body_case = SLUICE__FRAME__BODY_HELLO;
    f.hello = &hello;
    rc = sli_send(self, &f);
    if (rc) {
        SLI_LOG("cannot send hello: %s", slc_strerror(rc));
        s_session_close(self);
        goto fail;
    }
    self->state = SLI_SESS_HELLO;
    self->hello_at = slc_mono_ms();
    return 0;
fail:
    if (sock && mon)
        s_monitor_stop(sock);
    if (sock)
        zmq_close(sock);
    if (mon)
        zmq_close(mon);
    return rc;
}

static void s_parts_lost(sli_session_t *self)
{
    for (size_t i = 0; i < self->nparts; i++)
        if (self->part_ops[i]->lost)
            self->part_ops[i]->lost(self->parts[i]);
}

/* End the session. BACKOFF: this was a failed attempt, wait before the
 * next; otherwise a working session was lost and we try again at once. */
static void s_session_drop(sli_session_t *self, bool backoff)
{
    s_session_close(self);
    self->state = SLI_SESS_IDLE;
    s_parts_lost(self);
    if (!backoff)
        self->attempts = 0;
    uint64_t now = slc_mono_ms();
    self->attempt_at = now + (self->attempts ? sli_backoff(self, self->attempts) : 0);
    self->attempts++;
}

static void s_version_failed(sli_session_t *self, const Sluice__Error *err)
{
    SLI_LOG("broker refused protocol version %d: %s", SLC_PROTOCOL_VERSION,
            err->text);
    s_session_close(self);
    self->state = SLI_SESS_VERSION;
    s_parts_lost(self);
}

static void s_on_hello_ok(sli_session_t *self, const Sluice__HelloOk *ok)
{
    if (self->state != SLI_SESS_HELLO)
        return;                 /* a repeated answer: the session stands */
    self->state = SLI_SESS_READY;
    self->gen++;
    if (self->ever_ready)
        self->reconnects++;
    self->ever_ready = true;
    self->hello_refused = 0;
    self->attempts = 0;
    /* A HelloOk proves the handshake passed, even when its monitor event
     * is still on its way. */
    self->hs_lost = 0;
    self->auth = SL_AUTH_OK;
    self->auth_text[0] = '\0';
    self->max_batch = (uint32_t) self->opts.max_batch;
    if (ok->max_batch && ok->max_batch < self->max_batch)
        self->max_batch = ok->max_batch;
    self->max_msg = ok->max_message_bytes ? ok->max_message_bytes
                                          : SLI_DEFAULT_MAX_MSG;
    for (size_t i = 0; i < self->nparts; i++)
        if (self->part_ops[i]->ready)
            self->part_ops[i]->ready(self->parts[i], ok);
}

static void s_heartbeat(sli_session_t *self, uint64_t now)
{
    self->last_hb = now;
    Sluice__Heartbeat hb = SLUICE__HEARTBEAT__INIT;
    hb.now_us = slc_now_us();
    Sluice__Frame f = SLUICE__FRAME__INIT;
    f.body_case = SLUICE__FRAME__BODY_HEARTBEAT;
    f.heartbeat = &hb;
    /* A full pipe means frames are leaving anyway: nothing to do. */
    (void) sli_send(self, &f);
}

/* ------------------------------------------------------------ dispatch */

static bool s_req_complete(sli_session_t *self, Sluice__Frame *f)
{
    for (sli_req_t *r = self->reqs; r; r = r->next)
        if (!r->done && r->corr == f->corr) {
            r->done = true;
            r->reply = f;
            return true;
        }
    return false;
}

/* The handler that takes frames of BODY decoded by reference, or NULL. */
static const sli_handler_t *s_taker(const sli_session_t *self,
                                    Sluice__Frame__BodyCase body)
{
    for (size_t i = 0; i < self->nhandlers; i++)
        if (self->handlers[i].body == body && self->handlers[i].take)
            return &self->handlers[i];
    return NULL;
}

/* Takes F. */
static void s_dispatch(sli_session_t *self, Sluice__Frame *f)
{
    if (f->body_case == SLUICE__FRAME__BODY_ERROR) {
        int code = f->error->code;
        if (code == -SL_ENOSESSION) {
            if (self->state == SLI_SESS_READY)
                SLI_LOG("broker lost our session (restart?): reconnecting");
            s_session_drop(self, false);
            goto done;
        }
        if (code == -SL_EVERSION) {
            s_version_failed(self, f->error);
            goto done;
        }
        if (self->state == SLI_SESS_HELLO && code == -SL_EBUSY) {
            /* Too many sessions: keep trying, but a connect that times out
             * says why. */
            self->hello_refused = SL_EBUSY;
            SLI_LOG("broker refused the session: %s", f->error->text);
            goto done;
        }
    }
    if (f->corr && s_req_complete(self, f))
        return;
    if (f->body_case == SLUICE__FRAME__BODY_HELLO_OK) {
        s_on_hello_ok(self, f->hello_ok);
        goto done;
    }
    if (f->body_case == SLUICE__FRAME__BODY_ERROR && !f->corr) {
        SLI_LOG("broker error %d: %s", f->error->code, f->error->text);
        goto done;
    }
    /* The parts' handlers, in registration order, until one takes it. */
    for (size_t i = 0; i < self->nhandlers; i++) {
        const sli_handler_t *h = &self->handlers[i];
        if (h->body == f->body_case && h->fn && h->fn(h->arg, f))
            goto done;
    }
    /* Heartbeats only prove liveness; an Ok or StatsReply nobody waits
     * for is the late answer to a request that timed out. */
    if (f->body_case == SLUICE__FRAME__BODY_ERROR)
        SLI_LOG("broker error %d for request %llu: %s", f->error->code,
                (unsigned long long) f->corr, f->error->text);
done:
    slc_frame_free(&f);
}

static int s_drain(sli_session_t *self)
{
    int n = 0;
    while (self->sock && n < SLI_DRAIN_MAX) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            break;
        }
        self->last_recv = slc_mono_ms();
        Sluice__Frame *f = NULL;
        int rc = slc_frame_decode_ref(zmq_msg_data(&msg), zmq_msg_size(&msg), &f);
        n++;
        const sli_handler_t *h = rc == 0 ? s_taker(self, f->body_case) : NULL;
        if (h) {
            /* Decoded by reference: the frame keeps MSG's bytes. */
            h->take(h->arg, f, &msg);
            continue;
        }
        if (rc == 0 && (f->body_case == SLUICE__FRAME__BODY_DELIVER
                        || f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH)) {
            /* By reference too, and nobody takes it (no broker sends a
             * PublishBatch). */
            slc_frame_free(&f);
            rc = SL_EMALFORMED;
        }
        zmq_msg_close(&msg);
        if (rc) {
            SLI_LOG("undecodable frame from the broker ignored");
            continue;
        }
        s_dispatch(self, f);
    }
    return n;
}

/* ------------------------------------------------------------ admission */

/* The broker did not admit us: end the session and refuse waiting calls
 * until the next attempt, which comes later than after a lost session so a
 * refused client does not hammer the broker's key check. */
static void s_auth_failed(sli_session_t *self, sl_auth_t why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_auth_failed(sli_session_t *self, sl_auth_t why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->auth_text, sizeof self->auth_text, fmt, ap);
    va_end(ap);
    if (self->auth != why)
        SLI_LOG("%s", self->auth_text);     /* once, not at every retry */
    self->auth = (uint8_t) why;
    self->hs_lost = 0;
    s_session_drop(self, true);
    uint64_t wait = SLI_AUTH_RETRY_MS / 2 + s_rand(self) % (SLI_AUTH_RETRY_MS / 2 + 1);
    self->attempt_at = slc_mono_ms() + wait;
}

/* The broker closed the connection before the handshake was decided. Once
 * can be a broker going down; twice in a row is a handshake that cannot
 * succeed, and the broker hangs up without a word. With CURVE that is the
 * sign of a server key the broker cannot decrypt our Hello with (or of a
 * plain-text broker that saw our mechanism before we saw its own). In
 * plain text nothing can fail but the mechanism: a CURVE broker that saw
 * ours first. */
static void s_handshake_lost(sli_session_t *self)
{
    self->hs_pending = false;
    if (++self->hs_lost < 2)
        return;
    if (self->curve)
        s_auth_failed(self, SL_AUTH_HANDSHAKE, "the broker hung up during "
                      "the CURVE handshake: server_key is probably not "
                      "this broker's public key (or the broker does not "
                      "use CURVE)");
    else
        s_auth_failed(self, SL_AUTH_MECHANISM, "the broker hung up during "
                      "the handshake: it probably requires CURVE (give "
                      "server_key and a client key pair)");
}

static void s_on_event(sli_session_t *self, unsigned event, uint32_t value)
{
    switch (event) {
    case ZMQ_EVENT_CONNECTED:
        self->hs_pending = true;
        break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        self->hs_pending = false;
        self->hs_lost = 0;
        self->auth = SL_AUTH_OK;
        self->auth_text[0] = '\0';
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        self->hs_pending = false;
        s_auth_failed(self, SL_AUTH_REFUSED, "the broker refused this "
                      "client's key (not registered or revoked; ZAP status "
                      "%u)", (unsigned) value);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        self->hs_pending = false;
        if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH && self->curve)
            s_auth_failed(self, SL_AUTH_MECHANISM, "the broker does not use "
                          "CURVE (a plain-text broker): connect without "
                          "server_key");
        else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            s_auth_failed(self, SL_AUTH_MECHANISM, "the broker requires "
                          "CURVE: give server_key and a client key pair");
        else
            s_auth_failed(self, SL_AUTH_HANDSHAKE, "the CURVE handshake "
                          "failed (ZMTP error 0x%08x): server_key is "
                          "probably not this broker's public key",
                          (unsigned) value);
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        s_handshake_lost(self);
        break;
    case ZMQ_EVENT_DISCONNECTED:
        if (self->hs_pending)
            s_handshake_lost(self);
        break;
    default:
        break;
    }
}

/* Handle the monitor events that arrived. An event may end the session,
 * which closes the monitor too. */
static void s_monitor_drain(sli_session_t *self)
{
    while (self->mon) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        /* Frame 1: event (u16) and value (u32), native byte order;
         * frame 2: the endpoint, not needed. */
        unsigned event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&ev) >= 6) {
            uint16_t e16;
            memcpy(&e16, zmq_msg_data(&ev), sizeof e16);
            memcpy(&value, (uint8_t *) zmq_msg_data(&ev) + 2, sizeof value);
            event = e16;
        }
        bool more = zmq_msg_more(&ev);
        zmq_msg_close(&ev);
        if (more) {
            zmq_msg_init(&addr);
            /* Parts of one message arrive together: this cannot block. */
            if (zmq_msg_recv(&addr, self->mon, ZMQ_DONTWAIT) < 0)
                SLI_LOG("monitor event without its address: %s",
                        zmq_strerror(errno));
            zmq_msg_close(&addr);
        }
        s_on_event(self, event, value);
    }
}

/* Refused, and no new attempt under way: waiting would only time out. */
static bool s_refused(const sli_session_t *self)
{
    return self->auth != SL_AUTH_OK && self->state == SLI_SESS_IDLE
        && slc_mono_ms() < self->attempt_at;
}

static int s_refusal(sli_session_t *self)
{
    sli_error_set(self, "%s", self->auth_text);
    return SL_EAUTH;
}

/* ------------------------------------------------------------- the turn */

static uint64_t s_alive_since(const sli_session_t *self)
{
    return self->last_recv > self->alive_from ? self->last_recv
                                              : self->alive_from;
}

static void s_timers(sli_session_t *self, uint64_t now, bool blocking)
{
    /* The app kept us from doing I/O for a while: replies may sit unread,
     * so silence is measured from now, not from the last frame read. */
    if (now - self->last_io > (uint64_t) self->opts.heartbeat_ms)
        self->alive_from = now;
    self->last_io = now;
    uint64_t dead = (uint64_t) self->opts.dead_after_ms;
    uint64_t hb = (uint64_t) self->opts.heartbeat_ms;
    switch (self->state) {
    case SLI_SESS_IDLE:
        if (now >= self->attempt_at && s_session_start(self) != 0) {
            self->attempt_at = now + sli_backoff(self, self->attempts);
            self->attempts++;
        }
        break;
    case SLI_SESS_HELLO:
        if (now - self->hello_at >= dead)
            s_session_drop(self, true);
        break;
    case SLI_SESS_READY:
        if (now - s_alive_since(self) >= dead) {
            SLI_LOG("broker silent for %llu ms: reconnecting",
                    (unsigned long long) (now - s_alive_since(self)));
            s_session_drop(self, false);
            break;
        }
        /* About to block: nothing can join a batch while we wait, so
         * publishes and acks leave now rather than at their linger. */
        sli_session_service(self, now, blocking);
        /* Idle: prove we are alive. Busy sending but hearing nothing
         * (transient publishes get no replies): ask for a sign of life. */
        if (now - self->last_send >= hb
            || (now - s_alive_since(self) >= hb && now - self->last_hb >= hb))
            s_heartbeat(self, now);
        break;
    default:
        break;
    }
}

static int s_wait_ms(const sli_session_t *self, uint64_t now, int timeout_ms)
{
    uint64_t next = UINT64_MAX;
    switch (self->state) {
    case SLI_SESS_IDLE:
        next = self->attempt_at;
        break;
    case SLI_SESS_HELLO:
        next = self->hello_at + (uint64_t) self->opts.dead_after_ms;
        break;
    case SLI_SESS_READY:
        next = self->last_send + (uint64_t) self->opts.heartbeat_ms;
        next = sli_min(next, (s_alive_since(self) > self->last_hb
                              ? s_alive_since(self) : self->last_hb)
                             + (uint64_t) self->opts.heartbeat_ms);
        next = sli_min(next, s_alive_since(self)
                             + (uint64_t) self->opts.dead_after_ms);
        for (size_t i = 0; i < self->nparts; i++)
            if (self->part_ops[i]->deadline)
                next = sli_min(next, self->part_ops[i]->deadline(self->parts[i]));
        break;
    default:
        break;
    }
    int wait = -1;
    if (next != UINT64_MAX) {
        /* Still due right after the timers ran means blocked (full pipe):
         * look again in a millisecond rather than spin. */
        uint64_t d = next > now ? next - now : 1;
        wait = d > INT_MAX ? INT_MAX : (int) d;
    }
    if (timeout_ms >= 0 && (wait < 0 || wait > timeout_ms))
        wait = timeout_ms;
    return wait;
}

int sli_turn(sli_session_t *self, int timeout_ms)
{
    int rc = 0;
    if (self->state == SLI_SESS_VERSION)
        return SL_EVERSION;
    if (self->cb_depth > 0)
        return SL_EBUSY;        /* no I/O from inside a callback */
    if (self->auth != SL_AUTH_OK && s_refused(self))
        return s_refusal(self);
    uint64_t now = slc_mono_ms();
    s_timers(self, now, timeout_ms != 0);
    int wait = s_wait_ms(self, now, timeout_ms);
    int n = 0;
    if (self->sock) {
        /* The monitor wakes us during the handshake only; see the top. */
        bool watch = self->mon && self->state != SLI_SESS_READY;
        zmq_pollitem_t items[2] = {
            { self->sock, 0, ZMQ_POLLIN, 0 },
            { self->mon, 0, ZMQ_POLLIN, 0 },
        };
        int ready = zmq_poll(items, watch ? 2 : 1, wait);
        if (ready < 0 && errno != EINTR) {
            SLI_LOG("zmq_poll: %s", zmq_strerror(errno));
            rc = SL_ESYS;
            goto fail;
        }
        if (items[0].revents & ZMQ_POLLIN)
            n = s_drain(self);
        if (watch ? (items[1].revents & ZMQ_POLLIN) != 0 : ready == 0 && wait != 0)
            s_monitor_drain(self);
    }
    else if (wait > 0) {
        struct timespec ts = { wait / 1000, (long) (wait % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (self->state == SLI_SESS_VERSION)
        return SL_EVERSION;
    if (self->auth != SL_AUTH_OK && s_refused(self))
        return s_refusal(self);
    /* Time spent waiting in our own poll is I/O time: silence during it
     * counts toward dead_after_ms (only gaps between calls do not). */
    self->last_io = slc_mono_ms();
    s_timers(self, self->last_io, false);
    return n;
fail:
    return rc;
}

void sli_tick(sli_session_t *self, uint64_t now)
{
    /* At most one non-blocking turn per millisecond from the hot calls:
     * enough for linger, heartbeats and confirms, cheap at any rate. */
    if (self->cb_depth == 0 && now != self->last_io)
        (void) sli_turn(self, 0);
}

int sli_wait_ready(sli_session_t *self, int timeout_ms)
{
    int rc = 0;
    uint64_t deadline = slc_mono_ms() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0);
    while (self->state != SLI_SESS_READY) {
        if (self->state == SLI_SESS_VERSION) {
            rc = SL_EVERSION;
            goto fail;
        }
        int left = sli_remaining(deadline, timeout_ms);
        if (left == 0) {
            rc = self->hello_refused ? self->hello_refused : SL_ETIMEOUT;
            goto fail;
        }
        rc = sli_turn(self, left);
        if (rc < 0)
            goto fail;
        rc = 0;
    }
fail:
    return rc;
}

static void s_req_unlink(sli_session_t *self, sli_req_t *req)
{
    for (sli_req_t **pp = &self->reqs; *pp; pp = &(*pp)->next)
        if (*pp == req) {
            *pp = req->next;
            return;
        }
}

int sli_request(sli_session_t *self, Sluice__Frame *req, bool resend,
                int timeout_ms, Sluice__Frame **reply)
{
    int rc = 0;
    *reply = NULL;
    if (self->cb_depth > 0)
        return SL_EBUSY;
    self->last_error[0] = '\0';
    sli_req_t w = { .next = self->reqs };
    self->reqs = &w;
    uint64_t sent_gen = 0;      /* gen is 1 after the first HelloOk */
    uint64_t deadline = slc_mono_ms() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0);
    while (!w.done) {
        if (self->state == SLI_SESS_VERSION) {
            rc = SL_EVERSION;
            break;
        }
        if (self->state == SLI_SESS_READY && sent_gen != self->gen) {
            if (sent_gen && !resend) {
                rc = SL_EUNAVAIL;   /* its session ended: the caller decides */
                break;
            }
            w.corr = req->corr = sli_corr(self);
            rc = sli_send(self, req);
            if (rc == 0)
                sent_gen = self->gen;
            else if (rc != SL_EBUSY)
                break;
            rc = 0;
        }
        int left = sli_remaining(deadline, timeout_ms);
        if (left == 0) {
            rc = SL_ETIMEOUT;
            break;
        }
        int n = sli_turn(self, left);
        if (n < 0) {
            rc = n;
            break;
        }
    }
    s_req_unlink(self, &w);
    if (w.done) {
        rc = 0;
        if (w.reply->body_case == SLUICE__FRAME__BODY_ERROR) {
            int code = w.reply->error->code;
            rc = code > 0 ? -code : SL_EINTERNAL;
            sli_error_set(self, "%s", w.reply->error->text);
            slc_frame_free(&w.reply);
        }
        else
            *reply = w.reply;
    }
    return rc;
}


void sli_session_wait_add(sli_session_t *self, sli_req_t *w)
{
    w->next = self->reqs;
    self->reqs = w;
}

void sli_session_wait_remove(sli_session_t *self, sli_req_t *w)
{
    s_req_unlink(self, w);
}

/* ------------------------------------------------------------ registry */

static int s_handler_add(sli_session_t *self, Sluice__Frame__BodyCase body,
                         sli_frame_fn *fn, sli_frame_take_fn *take, void *arg)
{
    if (self->nhandlers == SLI_HANDLERS_MAX)
        return SL_ENOMEM;
    self->handlers[self->nhandlers++] = (sli_handler_t) {
        .body = body, .fn = fn, .take = take, .arg = arg };
    return 0;
}

int sli_session_on(sli_session_t *self, Sluice__Frame__BodyCase body,
                   sli_frame_fn *fn, void *arg)
{
    return s_handler_add(self, body, fn, NULL, arg);
}

int sli_session_take(sli_session_t *self, Sluice__Frame__BodyCase body,
                     sli_frame_take_fn *take, void *arg)
{
    return s_handler_add(self, body, NULL, take, arg);
}

int sli_session_part_add(sli_session_t *self, const sli_part_ops_t *ops,
                         void *part)
{
    if (self->nparts == SLI_PARTS_MAX)
        return SL_ENOMEM;
    self->part_ops[self->nparts] = ops;
    self->parts[self->nparts++] = part;
    return 0;
}

void sli_session_service(sli_session_t *self, uint64_t now, bool force)
{
    for (size_t i = 0; i < self->nparts; i++)
        if (self->part_ops[i]->service)
            self->part_ops[i]->service(self->parts[i], now, force);
}

void sli_error_clear(sli_session_t *self)
{
    self->last_error[0] = '\0';
}

/* ------------------------------------------------------------ lifetime */

static char *s_strdup(const char *s, int *rc)
{
    char *copy = strdup(s);
    if (!copy)
        *rc = SL_ENOMEM;
    return copy;
}

int sli_session_new(const sl_options_t *o, const sli_keys_t *k,
                    const uint8_t id[SLC_PRODUCER_ID_LEN], bool id_file,
                    sli_session_t **out)
{
    int rc = 0;
    *out = NULL;
    sli_session_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->curve = k->curve;
    if (k->curve) {
        memcpy(self->server_key, k->server_key, SLC_KEY_LEN);
        memcpy(self->public_key, k->client.public_key, SLC_KEY_LEN);
        memcpy(self->secret_key, k->client.secret_key, SLC_KEY_LEN);
        slc_key_z85(self->public_key, self->public_z85);
    }
    self->endpoint = s_strdup(o->endpoint, &rc);
    self->name = s_strdup(o->name, &rc);
    if (rc)
        goto fail;
    self->opts = *o;
    self->opts.endpoint = self->endpoint;
    self->opts.name = self->name;
    /* The id file is the client's (it keeps the lock); the keys were
     * read into the fields above: the caller's strings are not kept. */
    self->opts.producer_id_file = NULL;
    self->opts.server_key = self->opts.cert = NULL;
    self->opts.public_key = self->opts.secret_key = NULL;
    memcpy(self->producer_id, id, SLC_PRODUCER_ID_LEN);
    self->id_file = id_file;
    rc = sli_random_bytes(&self->rng, sizeof self->rng);
    if (rc)
        goto fail;
    self->rng |= 1;             /* xorshift state must not be zero */
    self->corr_next = 1;
    self->max_batch = (uint32_t) o->max_batch;
    self->max_msg = SLI_DEFAULT_MAX_MSG;
    uint64_t now = slc_mono_ms();
    self->last_recv = self->last_send = self->last_io = self->alive_from = now;
    *out = self;
    return 0;
fail:
    sli_session_destroy(&self);
    return rc;
}

int sli_session_start(sli_session_t *self)
{
    self->ctx = zmq_ctx_new();
    if (!self->ctx) {
        SLI_LOG("zmq_ctx_new: %s", zmq_strerror(errno));
        return SL_ESYS;
    }
    return s_session_start(self);
}

void sli_session_destroy(sli_session_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sli_session_t *self = *self_p;
    s_session_close(self);
    if (self->ctx)
        while (zmq_ctx_term(self->ctx) != 0 && errno == EINTR)
            ;
    free(self->endpoint);
    free(self->name);
    sodium_memzero(self->secret_key, sizeof self->secret_key);
    free(self);
    *self_p = NULL;
}
