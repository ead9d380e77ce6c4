/*  sld_loop - the broker's one poll loop, used by sld_server_run and
 *  sld_server_step alike. Broker thread only. It decides nothing about a
 *  frame (sld_commands) and commits nothing itself (sld_groupcommit).
 *
 *  One loop turn: (1) read every frame that has arrived, up to
 *  commit_max_msgs messages or commit_max_bytes bytes; frames that only read
 *  or change memory (hello, heartbeat, subscribe, credit, ack, stats) are
 *  handled at once, frames that write (publish, topic admin) are kept;
 *  then, before the loop sleeps again (Redis's beforeSleep): (2) open ONE
 *  write transaction, apply the kept frames and the participants' pending
 *  state (cursors, dead letters, audit), commit (fsync); (3) only then send
 *  the replies of the turn, so a PublishAck always names a committed
 *  offset; (4) pump deliveries and timers. A write transaction never spans
 *  two turns.  */
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include "sld_commands.h"
#include "sld_server_int.h"
#include "sld_session.h"

void sld_loop_refused(void *arg, const char *name, const char *key, const char *address,
                      const char *why)
{
    /* ZAP refused a connection: count it, and audit and log it as
     * sld_audit tallies it (the first of a key from an address at once,
     * repeats once an interval), so refusals as fast as a client can
     * connect grow neither the trail nor the log by more than that. */
    sld_server_t *self = arg;
    sld_metrics_add(self->metrics, SLD_M_AUTH_REFUSED, 1);
    bool recorded = sld_audit_refused(self->audit, slc_now_us(), name, key, address, why);
    sld_server_log(self, recorded ? 2 : 3, "connection from %s refused: %s; public key %s%s",
                   address, why, *key ? key : "(none)",
                   recorded ? " (repeats are counted in _audit)" : "");
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
    sld_peer_t peer = { zmq_msg_data(&idm), zmq_msg_size(&idm), NULL, &body };
    peer.session = sld_session_lookup(self, peer.id, peer.id_len);
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
        sld_session_error(self, &peer, slc_frame_peek_corr(zmq_msg_data(&body), len), SL_EAUTH,
                          "this connection's key does not own the session: reconnect");
        sld_session_mark_gone(self, peer.session);
    }
    else if (!parts || extra)
        sld_session_error(self, &peer, 0, SL_EMALFORMED,
                          "a sluice message is exactly one frame holding one Frame");
    else if (len > self->cfg.max_frame_bytes)
        sld_session_error(self, &peer, slc_frame_peek_corr(zmq_msg_data(&body), len),
                          SL_ETOOBIG, "frame larger than limits/max_frame_bytes");
    /* By reference: a kept frame keeps BODY with it (sld_commands). */
    else if ((rc = slc_frame_decode_ref(zmq_msg_data(&body), len, &f)) != 0) {
        char why[256] = "out of memory decoding the frame";
        if (rc != SL_ENOMEM)    /* which string field, when one is why */
            slc_frame_why(zmq_msg_data(&body), len, why, sizeof why);
        sld_session_error(self, &peer, slc_frame_peek_corr(zmq_msg_data(&body), len), rc, why);
    }
    else {
        if (f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH)
            *msgs += f->publish_batch->n_msgs;
        sld_commands_dispatch(self, &peer, &f);
    }
    zmq_msg_close(&body);
    zmq_msg_close(&idm);
    return 1;
}

/* A committed turn of fewer messages than this sends its deliveries at
 * once, before the loop reads again: at light load a delivery must not
 * wait for the next turn's read, apply and flush. Larger turns (a loaded
 * broker) leave them to the next commit's wait for the disk (the
 * pump-ahead), where they cost the loop nothing. */
#define SLD_PUMP_NOW_MSGS 64

/* Read the frames that arrived, within the turn's bounds: every one that
 * is waiting, so the commit that follows takes all of them (smart commit:
 * no timer; under load the turns grow while the disk syncs the last).
 * Returns the messages read (frames, plus a batch's publishes). */
static size_t s_read(sld_server_t *self)
{
    size_t msgs = 0, bytes = 0;
    while (msgs < self->cfg.commit_max_msgs && bytes < self->cfg.commit_max_bytes)
        if (s_recv(self, &msgs, &bytes) == 0)
            break;
    return msgs;
}

/* Frames waiting on the socket? */
static bool s_input_waiting(sld_server_t *self)
{
    int events = 0;
    size_t len = sizeof events;
    return zmq_getsockopt(self->router, ZMQ_EVENTS, &events, &len) == 0
           && (events & ZMQ_POLLIN);
}

/* Before the loop sleeps. When frames were read (READ, MSGS messages):
 * commit the turn, then send its replies. Always: deliveries, dead
 * letters, sessions, retention. Returns how long the loop may sleep. */
static long s_before_sleep(sld_server_t *self, bool read, size_t msgs)
{
    if (read) {
        if (self->nwrites || sld_delivery_dirty(self->delivery)
            || sld_audit_dirty(self->audit) || sld_alerts_dirty(self->alerts)) {
            sld_groupcommit_run(self);
            self->turn_committed = true;
        }
        sld_session_send_queue(self, &self->replies);
        sld_session_send_queue(self, &self->wreplies);
        sld_delivery_replies_sent(self->delivery);
    }
    uint64_t now = slc_mono_ms();
    /* Right after a large commit with more frames waiting, the next turn
     * will most likely commit too: its wait for the disk is where this
     * turn's deliveries go out (the pump-ahead, sld_commit), not ahead of
     * it. Once only. A small turn's go out now (SLD_PUMP_NOW_MSGS). */
    bool defer = self->turn_committed && msgs >= SLD_PUMP_NOW_MSGS
                 && s_input_waiting(self);
    self->turn_committed = false;
    int t = defer ? 0 : sld_delivery_pump(self->delivery, now);
    long t4 = sld_audit_tick(self->audit, slc_now_us());    /* refusal summaries due */
    sld_groupcommit_watch(self, now);                       /* storage alarms clear */
    const sld_alerts_sources_t src = { self->delivery, self->metrics, self->store,
                                       self->tstats, self->routes };
    long t6 = sld_alerts_tick(self->alerts, &src, now);
    if (sld_delivery_dirty(self->delivery) || sld_audit_dirty(self->audit)
        || sld_alerts_dirty(self->alerts)) {
        /* Dead letters found by the pump, and audit records of refused
         * connections, are written at once. */
        sld_groupcommit_run(self);
        sld_session_send_queue(self, &self->wreplies);
    }
    sld_session_reap(self);
    long t5 = sld_server_metrics_tick(self, now);
    int t2 = sld_topics_trim(self->topics, now);
    long t3 = sld_session_expire(self, now);
    if (self->trim_at_ms && now >= self->trim_at_ms) {
        malloc_trim(0);
        self->trim_at_ms = 0;
    }
    long timeout = t < t2 ? t : t2;
    timeout = timeout < t3 ? timeout : t3;
    timeout = timeout < t4 ? timeout : t4;
    timeout = timeout < t5 ? timeout : t5;
    timeout = timeout < t6 ? timeout : t6;
    return timeout > 1000 ? 1000 : timeout;
}

/* The loop, until STOP_FD (-1: none) is readable, or for one turn when
 * ONCE. Router, connection events, stop descriptor (if any), ZAP socket
 * (if any). */
static int s_loop(sld_server_t *self, int stop_fd, long timeout, bool once)
{
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
    while (true) {
        int n = zmq_poll(items, nitems, timeout);
        if (n < 0 && errno != EINTR) {
            sld_server_log(self, 0, "poll failed: %s", zmq_strerror(errno));
            return SL_ESYS;
        }
        if (n > 0 && istop >= 0 && (items[istop].revents & ZMQ_POLLIN))
            return 0;
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            sld_monitor_handle(self->monitor);
        if (n > 0 && izap >= 0 && (items[izap].revents & ZMQ_POLLIN))
            sld_auth_zap_handle(self->auth, sld_loop_refused, self);
        bool read = n > 0 && (items[0].revents & ZMQ_POLLIN);
        size_t msgs = read ? s_read(self) : 0;
        timeout = s_before_sleep(self, read, msgs);
        if (once)
            return 0;
    }
}

int sld_server_step(sld_server_t *self, int timeout_ms)
{
    return s_loop(self, -1, timeout_ms, true);
}

int sld_server_run(sld_server_t *self, int stop_fd)
{
    return s_loop(self, stop_fd, 0, false);
}
