/*  sld_session - the server's sessions: a connected peer that said Hello,
 *  its liveness (heartbeat, expiry), the cut-off of revoked identities, and
 *  the reply queues that carry answers to peers after the turn's commit.
 *  Owns each session (in the server's table) until it is reaped. Broker
 *  thread only; sld_session_outbox_send also on the helper thread during a
 *  pump-ahead, while the broker thread waits. It does not decide what a
 *  command may do (sld_commands) or write anything to the store.  */
#ifndef SLD_SESSION_H
#define SLD_SESSION_H
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "sld_outbox.h"
#include "sld_server_int.h"

struct sld_session {
    uint8_t id[SLD_ID_MAX];
    size_t id_len;
    char key[2 * SLD_ID_MAX + 1];
    char client[64];
    uint64_t last_seen_ms;
    uint32_t timeout_ms;
    bool gone;
    sld_ident_t *ident;         /* who is connected (borrowed from sld_auth) */
    int fd;                     /* the connection's socket (ZMQ_SRCFD), -1 if unknown */
    struct sockaddr_storage addr; /* its peer address then: a reused fd is told apart */
    socklen_t addr_len;
};

/* The session of routing id ID (LEN bytes), or NULL. Borrowed, valid until
 * it is reaped. */
sld_session_t *sld_session_lookup(sld_server_t *self, const uint8_t *id, size_t len);

/* The sessions table's destructor (zhashx). */
void sld_session_free(void **item);

/* Hello (opens or renews PEER's session) and Heartbeat: answered at once.
 * 0 or the code answered. */
int sld_session_on_hello(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);
int sld_session_on_heartbeat(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p);

/* SESSION ends at the next reap (its peer left, expired, was revoked). */
void sld_session_mark_gone(sld_server_t *self, sld_session_t *session);

/* End the sessions marked gone: delivery detaches them, they are freed. */
void sld_session_reap(sld_server_t *self);

/* End the sessions silent past their timeout (then reap); returns the ms
 * until the next one can end. */
long sld_session_expire(sld_server_t *self, uint64_t now);

/* After a commit that revoked an identity: close its sessions now. */
void sld_session_cut_revoked(sld_server_t *self);

/* The outbox the delivery module sends through (sld_outbox_send_fn, ARG
 * the server). */
int sld_session_outbox_send(void *arg, sld_session_t *session, const Sluice__Frame *frame);

/* Reply queues. Queue FRAME for routing id ID in Q with CORR (encoded now,
 * sent by sld_session_send_queue after the commit). 0 or SL_ENOMEM (the
 * frame is dropped, logged). */
int sld_session_queue(sld_server_t *self, sld_replies_t *q, const uint8_t *id,
                      size_t id_len, uint64_t corr, Sluice__Frame *frame);

/* Queue FRAME for PEER among the turn's replies. As sld_session_queue. */
int sld_session_reply(sld_server_t *self, const sld_peer_t *peer, uint64_t corr,
                      Sluice__Frame *frame);

/* Answer PEER with Error CODE and TEXT (NULL: the code's text); counted
 * per code. Returns CODE. */
int sld_session_error(sld_server_t *self, const sld_peer_t *peer, uint64_t corr, int code,
                      const char *text);

/* Refuse PEER's command with 403 TEXT and audit the attempt as ACTION (the
 * command), TARGET (what it was aimed at: topic, pattern, subscription or
 * identity) and DETAIL (its arguments and the grant it needed; never
 * secret material). Returns SL_EDENIED. */
int sld_session_deny(sld_server_t *self, const sld_peer_t *peer, uint64_t corr,
                     const char *action, const char *target, const char *detail,
                     const char *text);

/* Answer PEER with Ok. As sld_session_queue. */
int sld_session_ok(sld_server_t *self, const sld_peer_t *peer, uint64_t corr);

/* Send every frame of Q (a peer that left is marked gone); Q is emptied. */
void sld_session_send_queue(sld_server_t *self, sld_replies_t *q);

/* Drop every frame of Q unsent. */
void sld_session_drop_queue(sld_replies_t *q);

#endif
