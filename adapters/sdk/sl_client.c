/*  sl_client - the client handle: options, producer id and its locked file,
 *  the session state machine, the I/O turn every call runs, frame dispatch
 *  and request waiters. Owns the ZeroMQ context and the one DEALER socket.
 *  Caller's thread only; there is no background thread. Publishing is in
 *  sl_pub.c, subscriptions in sl_sub.c, admin requests in sl_admin.c.
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
 *  meanwhile, and the next successful handshake clears the refusal.
 *
 *  Size: about 1,250 lines, just past the house's 1,200: the options and
 *  producer-id file are separable from the session and issue 17 moves
 *  them out.  */
#include "sl_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define SLI_HWM 10000           /* frames; batches are large, so this is generous */

const char *sl_strerror(int code)
{
    return slc_strerror(code);
}

void sl_options_init(sl_options_t *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->endpoint = SL_DEFAULT_ENDPOINT;
    opts->name = "libsluice";
    opts->producer_id_file = NULL;
    opts->linger_ms = 1;
    opts->max_batch = 1000;
    opts->max_batch_bytes = 1024 * 1024;
    opts->max_unacked = 100000;
    opts->block_ms = 30000;
    opts->heartbeat_ms = 1000;
    opts->dead_after_ms = 5000;
    opts->connect_timeout_ms = 30000;
}

uint64_t sli_min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

uint64_t sli_corr(sl_client_t *self)
{
    return self->corr_next++;
}

void sli_error_set(sl_client_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->last_error, sizeof self->last_error, fmt, ap);
    va_end(ap);
}

static uint64_t s_rand(sl_client_t *self)
{
    /* xorshift64*: jitter only, no need for anything stronger. */
    uint64_t x = self->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint64_t sli_backoff(sl_client_t *self, unsigned attempt)
{
    unsigned shift = attempt > 0 ? attempt - 1 : 0;
    uint64_t base = shift >= 5 ? 2000 : sli_min(100u << shift, 2000);
    /* Between half and all of the step, so clients that lost the same
     * broker do not all come back in the same millisecond. */
    return base / 2 + s_rand(self) % (base / 2 + 1);
}

int sli_remaining(uint64_t deadline, int timeout_ms)
{
    if (timeout_ms < 0)
        return -1;
    uint64_t now = slc_mono_ms();
    if (now >= deadline)
        return 0;
    uint64_t left = deadline - now;
    return left > INT_MAX ? INT_MAX : (int) left;
}

static int s_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            SLI_LOG("getrandom failed: %s", strerror(errno));
            return SL_ESYS;
        }
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

/* ------------------------------------------------------- producer id file */

static int s_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int s_id_parse(const char *s, size_t len, uint8_t *id)
{
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'
                       || s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len != 2 * SLC_PRODUCER_ID_LEN)
        return SL_EINVAL;
    for (size_t i = 0; i < SLC_PRODUCER_ID_LEN; i++) {
        int hi = s_hex_value(s[2 * i]), lo = s_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return SL_EINVAL;
        id[i] = (uint8_t) (hi << 4 | lo);
    }
    return 0;
}

/* Read the id from the file, or create it. The flock is held as long as the
 * descriptor stays open: two live producers with one id would have the
 * broker drop one's messages as the other's duplicates. */
static int s_id_file(sl_client_t *self)
{
    int rc = 0;
    const char *path = self->id_file;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        SLI_LOG("cannot open producer id file %s: %s", path, strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            SLI_LOG("producer id file %s is locked by another client: "
                    "each concurrent producer needs its own file", path);
            rc = SL_EBUSY;
        }
        else {
            SLI_LOG("cannot lock producer id file %s: %s", path,
                    strerror(errno));
            rc = SL_ESYS;
        }
        goto fail;
    }
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n < 0) {
        SLI_LOG("cannot read producer id file %s: %s", path, strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    if (n > 0) {
        rc = s_id_parse(buf, (size_t) n, self->producer_id);
        if (rc) {
            SLI_LOG("producer id file %s does not hold a producer id "
                    "(%d hex digits)", path, 2 * SLC_PRODUCER_ID_LEN);
            goto fail;
        }
    }
    else {
        rc = s_random(self->producer_id, sizeof self->producer_id);
        if (rc)
            goto fail;
        char hex[2 * SLC_PRODUCER_ID_LEN + 2];
        for (size_t i = 0; i < SLC_PRODUCER_ID_LEN; i++)
            snprintf(hex + 2 * i, 3, "%02x", self->producer_id[i]);
        hex[2 * SLC_PRODUCER_ID_LEN] = '\n';
        size_t len = 2 * SLC_PRODUCER_ID_LEN + 1;
        if (pwrite(fd, hex, len, 0) != (ssize_t) len || fsync(fd) != 0) {
            SLI_LOG("cannot write producer id file %s: %s", path,
                    strerror(errno));
            rc = SL_ESYS;
            goto fail;
        }
    }
    self->id_fd = fd;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* ------------------------------------------------------------- sending */

int sli_send(sl_client_t *self, const Sluice__Frame *frame)
{
    if (!self->sock)
        return SL_EUNAVAIL;
    int rc = slc_frame_send(self->sock, NULL, 0, frame, ZMQ_DONTWAIT);
    if (rc == 0)
        self->last_send = slc_mono_ms();
    return rc;
}

int sli_send_msg(sl_client_t *self, zmq_msg_t *msg)
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

static void s_session_close(sl_client_t *self)
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
static int s_monitor_open(sl_client_t *self, void *sock, void **mon)
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

static int s_curve_opts(sl_client_t *self, void *sock)
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
static int s_session_start(sl_client_t *self)
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

/* End the session. BACKOFF: this was a failed attempt, wait before the
 * next; otherwise a working session was lost and we try again at once. */
static void s_session_drop(sl_client_t *self, bool backoff)
{
    s_session_close(self);
    self->state = SLI_SESS_IDLE;
    sli_sub_session_lost(self);
    if (!backoff)
        self->attempts = 0;
    uint64_t now = slc_mono_ms();
    self->attempt_at = now + (self->attempts ? sli_backoff(self, self->attempts) : 0);
    self->attempts++;
}

static void s_version_failed(sl_client_t *self, const Sluice__Error *err)
{
    SLI_LOG("broker refused protocol version %d: %s", SLC_PROTOCOL_VERSION,
            err->text);
    s_session_close(self);
    self->state = SLI_SESS_VERSION;
    sli_sub_session_lost(self);
}

static void s_on_hello_ok(sl_client_t *self, const Sluice__HelloOk *ok)
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
    sli_pub_session_ready(self, ok->producer_last_seq);
    sli_sub_session_ready(self);
}

static void s_heartbeat(sl_client_t *self, uint64_t now)
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

static bool s_req_complete(sl_client_t *self, Sluice__Frame *f)
{
    for (sli_req_t *r = self->reqs; r; r = r->next)
        if (!r->done && r->corr == f->corr) {
            r->done = true;
            r->reply = f;
            return true;
        }
    return false;
}

/* Takes F. */
static void s_dispatch(sl_client_t *self, Sluice__Frame *f)
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
    switch (f->body_case) {
    case SLUICE__FRAME__BODY_HELLO_OK:
        s_on_hello_ok(self, f->hello_ok);
        break;
    case SLUICE__FRAME__BODY_PUBLISH_ACK:
        sli_pub_on_ack(self, f);
        break;
    case SLUICE__FRAME__BODY_SUBSCRIBE_OK:
        sli_sub_on_subscribe_ok(self, f);
        break;
    case SLUICE__FRAME__BODY_ACK_REPLY:
        sli_sub_on_ack_reply(self, f);
        break;
    case SLUICE__FRAME__BODY_ERROR:
        if (!f->corr)
            SLI_LOG("broker error %d: %s", f->error->code, f->error->text);
        else if (sli_sub_on_error(self, f->corr, f->error->code))
            sli_error_set(self, "%s", f->error->text);  /* why sl_subscribe failed */
        else
            sli_pub_on_error(self, f->corr, f->error);
        break;
    default:
        /* Heartbeats only prove liveness; an Ok or StatsReply nobody waits
         * for is the late answer to a request that timed out. */
        break;
    }
done:
    slc_frame_free(&f);
}

static int s_drain(sl_client_t *self)
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
        if (rc == 0 && f->body_case == SLUICE__FRAME__BODY_DELIVER) {
            /* Decoded by reference: the frame keeps MSG's bytes. */
            sli_sub_on_deliver(self, f, &msg);
            continue;
        }
        if (rc == 0 && f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH) {
            slc_frame_free(&f);         /* by reference too; no broker sends it */
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
static void s_auth_failed(sl_client_t *self, sl_auth_t why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_auth_failed(sl_client_t *self, sl_auth_t why, const char *fmt, ...)
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
static void s_handshake_lost(sl_client_t *self)
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

static void s_on_event(sl_client_t *self, unsigned event, uint32_t value)
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
static void s_monitor_drain(sl_client_t *self)
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
static bool s_refused(const sl_client_t *self)
{
    return self->auth != SL_AUTH_OK && self->state == SLI_SESS_IDLE
        && slc_mono_ms() < self->attempt_at;
}

static int s_refusal(sl_client_t *self)
{
    sli_error_set(self, "%s", self->auth_text);
    return SL_EAUTH;
}

/* ------------------------------------------------------------- the turn */

static uint64_t s_alive_since(const sl_client_t *self)
{
    return self->last_recv > self->alive_from ? self->last_recv
                                              : self->alive_from;
}

static void s_timers(sl_client_t *self, uint64_t now, bool blocking)
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
        sli_pub_service(self, now, blocking);
        sli_sub_service(self, now, blocking);
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

static int s_wait_ms(const sl_client_t *self, uint64_t now, int timeout_ms)
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
        next = sli_min(next, sli_pub_deadline(self));
        next = sli_min(next, sli_sub_deadline(self));
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

int sli_turn(sl_client_t *self, int timeout_ms)
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

void sli_tick(sl_client_t *self, uint64_t now)
{
    /* At most one non-blocking turn per millisecond from the hot calls:
     * enough for linger, heartbeats and confirms, cheap at any rate. */
    if (self->cb_depth == 0 && now != self->last_io)
        (void) sli_turn(self, 0);
}

int sli_wait_ready(sl_client_t *self, int timeout_ms)
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

static void s_req_unlink(sl_client_t *self, sli_req_t *req)
{
    for (sli_req_t **pp = &self->reqs; *pp; pp = &(*pp)->next)
        if (*pp == req) {
            *pp = req->next;
            return;
        }
}

int sli_request(sl_client_t *self, Sluice__Frame *req, bool resend,
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

/* ------------------------------------------------------------- public */

static int s_options(const sl_options_t *in, sl_options_t *o, char *err,
                     size_t errlen)
{
    sl_options_t d;
    sl_options_init(&d);
    *o = in ? *in : d;
    /* Zero where zero means nothing useful: take the default, so a
     * designated initializer with a few fields works too. */
    if (!o->endpoint)
        o->endpoint = d.endpoint;
    if (!o->name)
        o->name = d.name;
    if (!o->max_batch)
        o->max_batch = d.max_batch;
    if (!o->max_batch_bytes)
        o->max_batch_bytes = d.max_batch_bytes;
    if (!o->max_unacked)
        o->max_unacked = d.max_unacked;
    if (!o->heartbeat_ms)
        o->heartbeat_ms = d.heartbeat_ms;
    if (!o->dead_after_ms)
        o->dead_after_ms = d.dead_after_ms;
    if (!o->connect_timeout_ms)
        o->connect_timeout_ms = d.connect_timeout_ms;
    if (o->linger_ms < 0 || o->max_batch < 0 || o->max_unacked < 0
        || o->block_ms < 0 || o->heartbeat_ms < 0 || o->dead_after_ms < 0
        || o->connect_timeout_ms < 0) {
        slc_errf(err, errlen, "a negative time or count in the options");
        return SL_EINVAL;
    }
    if (o->dead_after_ms <= o->heartbeat_ms) {
        slc_errf(err, errlen, "dead_after_ms must exceed heartbeat_ms");
        return SL_EINVAL;
    }
    if (!*o->endpoint) {
        slc_errf(err, errlen, "empty endpoint");
        return SL_EINVAL;
    }
    return 0;
}

/* The keys OPTS ask for, read and checked. */
typedef struct {
    bool curve;
    uint8_t server_key[SLC_KEY_LEN];
    slc_cert_t client;
} s_keys_t;

static int s_keys(const sl_options_t *o, s_keys_t *k, char *err, size_t errlen)
{
    int rc = 0;
    char why[SLI_ERROR_MAX];
    bool pair = o->public_key || o->secret_key;
    memset(k, 0, sizeof *k);
    if (!o->server_key) {
        if (o->cert || pair) {
            slc_errf(err, errlen, "a client key pair needs server_key (the "
                  "broker's public key)");
            rc = SL_EINVAL;
        }
        goto fail;              /* plain text */
    }
    rc = slc_key_parse(o->server_key, k->server_key, why, sizeof why);
    if (rc) {
        slc_errf(err, errlen, "server_key: %s", why);
        goto fail;
    }
    if (o->cert && pair) {
        slc_errf(err, errlen, "give cert or public_key+secret_key, not both");
        rc = SL_EINVAL;
        goto fail;
    }
    if (!o->cert && !pair) {
        slc_errf(err, errlen, "a client key pair is needed (cert or "
              "public_key+secret_key)");
        rc = SL_EINVAL;
        goto fail;
    }
    if (o->cert) {
        rc = slc_cert_load(o->cert, &k->client, err, errlen);
        if (rc == SL_ENOTFOUND)
            rc = SL_EINVAL;     /* a bad option, like a bad key */
        if (rc)
            goto fail;
        if (!k->client.has_secret) {
            slc_errf(err, errlen, "%s holds no secret key (a .pub file?): "
                  "the client needs its certificate", o->cert);
            rc = SL_EINVAL;
            goto fail;
        }
    }
    else {
        if (!o->public_key || !o->secret_key) {
            slc_errf(err, errlen, "public_key and secret_key go together");
            rc = SL_EINVAL;
            goto fail;
        }
        rc = slc_key_decode(o->public_key, k->client.public_key, why, sizeof why);
        if (rc) {
            slc_errf(err, errlen, "public_key: %s", why);
            goto fail;
        }
        /* No detail: the reason could quote a character of the secret. */
        rc = slc_key_decode(o->secret_key, k->client.secret_key, NULL, 0);
        if (rc) {
            slc_errf(err, errlen, "secret_key is not a key of %d Z85 "
                  "characters", SLC_Z85_LEN);
            goto fail;
        }
        k->client.has_secret = true;
        rc = slc_cert_check(&k->client, NULL, 0);
        if (rc) {
            slc_errf(err, errlen, "secret_key does not belong to public_key");
            goto fail;
        }
    }
    k->curve = true;
fail:
    sodium_memzero(why, sizeof why);
    if (rc)
        sodium_memzero(k, sizeof *k);
    return rc;
}

int sl_options_check(const sl_options_t *opts, char *err, size_t errlen)
{
    sl_options_t o;
    s_keys_t k;
    slc_errf(err, errlen, "%s", "");
    int rc = s_options(opts, &o, err, errlen);
    if (rc == 0)
        rc = s_keys(&o, &k, err, errlen);
    sodium_memzero(&k, sizeof k);
    return rc;
}

static char *s_strdup(const char *s, int *rc)
{
    char *copy = strdup(s);
    if (!copy)
        *rc = SL_ENOMEM;
    return copy;
}

int sl_client_new(const sl_options_t *opts, sl_client_t **out)
{
    int rc = 0;
    sl_client_t *self = NULL;
    s_keys_t k;
    memset(&k, 0, sizeof k);
    *out = NULL;
    sl_options_t o;
    rc = s_options(opts, &o, NULL, 0);
    if (rc)
        goto fail;
    /* The reason for a refusal here is what sl_options_check tells. */
    rc = s_keys(&o, &k, NULL, 0);
    if (rc)
        goto fail;
    self = calloc(1, sizeof *self);
    if (!self) {
        rc = SL_ENOMEM;
        goto fail;
    }
    self->curve = k.curve;
    if (k.curve) {
        memcpy(self->server_key, k.server_key, SLC_KEY_LEN);
        memcpy(self->public_key, k.client.public_key, SLC_KEY_LEN);
        memcpy(self->secret_key, k.client.secret_key, SLC_KEY_LEN);
        slc_key_z85(self->public_key, self->public_z85);
    }
    self->id_fd = -1;
    self->endpoint = s_strdup(o.endpoint, &rc);
    self->name = s_strdup(o.name, &rc);
    if (o.producer_id_file)
        self->id_file = s_strdup(o.producer_id_file, &rc);
    if (rc)
        goto fail;
    self->opts = o;
    self->opts.endpoint = self->endpoint;
    self->opts.name = self->name;
    self->opts.producer_id_file = self->id_file;
    /* Read into the keys above; the caller's strings are not kept. */
    self->opts.server_key = self->opts.cert = NULL;
    self->opts.public_key = self->opts.secret_key = NULL;
    rc = s_random(&self->rng, sizeof self->rng);
    if (rc)
        goto fail;
    self->rng |= 1;             /* xorshift state must not be zero */
    rc = self->id_file ? s_id_file(self)
                       : s_random(self->producer_id, sizeof self->producer_id);
    if (rc)
        goto fail;
    self->corr_next = 1;
    self->max_batch = (uint32_t) o.max_batch;
    self->max_msg = SLI_DEFAULT_MAX_MSG;
    uint64_t now = slc_mono_ms();
    self->last_recv = self->last_send = self->last_io = self->alive_from = now;
    rc = sli_pub_init(self);
    if (rc)
        goto fail;
    self->ctx = zmq_ctx_new();
    if (!self->ctx) {
        SLI_LOG("zmq_ctx_new: %s", zmq_strerror(errno));
        rc = SL_ESYS;
        goto fail;
    }
    rc = s_session_start(self);
    if (rc)
        goto fail;
    *out = self;
    sodium_memzero(&k, sizeof k);
    return 0;
fail:
    sodium_memzero(&k, sizeof k);
    sl_client_destroy(&self);
    return rc;
}

int sl_client_connect(sl_client_t *self)
{
    if (self->state == SLI_SESS_READY)
        return 0;
    return sli_wait_ready(self, self->opts.connect_timeout_ms);
}

void sl_client_destroy(sl_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sl_client_t *self = *self_p;
    sli_sub_destroy_all(self);
    sli_pub_destroy(self);
    s_session_close(self);
    if (self->ctx)
        while (zmq_ctx_term(self->ctx) != 0 && errno == EINTR)
            ;
    if (self->id_fd >= 0)
        close(self->id_fd);     /* releases the flock */
    free(self->endpoint);
    free(self->name);
    free(self->id_file);
    sodium_memzero(self->secret_key, sizeof self->secret_key);
    free(self);
    *self_p = NULL;
}

int sl_poll(sl_client_t *self, int timeout_ms)
{
    uint64_t deadline = slc_mono_ms() + (uint64_t) (timeout_ms > 0 ? timeout_ms : 0);
    do {
        int n = sli_turn(self, sli_remaining(deadline, timeout_ms));
        if (n != 0)
            return n;
    } while (timeout_ms < 0 || slc_mono_ms() < deadline);
    return 0;
}

bool sl_client_connected(const sl_client_t *self)
{
    return self->state == SLI_SESS_READY;
}

uint64_t sl_client_reconnects(const sl_client_t *self)
{
    return self->reconnects;
}

sl_auth_t sl_client_auth(const sl_client_t *self)
{
    return (sl_auth_t) self->auth;
}

const char *sl_client_last_error(const sl_client_t *self)
{
    return self->last_error;
}

const char *sl_client_public_key(const sl_client_t *self)
{
    return self->public_z85;
}

int sl_cert_create(const char *name, const char *cert_path,
                   const char *pub_path, char public_key[41], char *err,
                   size_t errlen)
{
    slc_cert_t cert;
    slc_errf(err, errlen, "%s", "");
    int rc = slc_cert_generate(&cert);
    if (rc) {
        slc_errf(err, errlen, "cannot generate a key pair (libsodium)");
        goto fail;
    }
    rc = slc_cert_save(&cert, name, cert_path, pub_path, err, errlen);
    if (rc)
        goto fail;
    if (public_key)
        slc_key_z85(cert.public_key, public_key);
fail:
    slc_cert_wipe(&cert);
    return rc;
}
