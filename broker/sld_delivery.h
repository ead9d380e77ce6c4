/*  sld_delivery - subscriptions: durable (named, acked, persisted cursors,
 *  an owner identity kept with their config) and ephemeral (session-bound
 *  fan-out). Owns every subscription, its per-topic cursors, in-flight
 *  table, redelivery heap and dead-lettering. Reads messages from the
 *  borrowed store in short read transactions; writes its state only
 *  inside the server's write transaction (sld_delivery_persist). Broker
 *  thread only, except sld_delivery_pump_ahead: the helper thread, while
 *  the broker thread waits in a commit. It does not decode client frames
 *  beyond the generated structs it is handed, and never talks to sockets:
 *  frames go out through the outbox (sld_outbox.h). sld_delivery_int.h
 *  maps the module's files.  */
#ifndef SLD_DELIVERY_H
#define SLD_DELIVERY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "slc_codec.h"
#include "sld_metrics.h"
#include "sld_outbox.h"
#include "sld_store.h"

typedef struct sld_delivery sld_delivery_t;

typedef struct {
    uint32_t ack_wait_ms;       /* default when Subscribe says 0 */
    uint32_t max_deliver;       /* default when Subscribe says 0 */
    uint32_t max_inflight;      /* unacked deliveries per subscription */
    uint64_t max_unacked_bytes; /* bytes sent, not acked, per session; 0 = no limit */
    uint32_t deliver_batch;     /* most messages per Deliver frame */
    uint32_t max_subscriptions; /* durable + ephemeral */
    uint32_t max_message_bytes; /* bounds a Deliver frame with deliver_batch */
} sld_delivery_options_t;

/* Create over STORE and METRICS (borrowed; must outlive it); OUTBOX (copied)
 * is how frames leave; a peer it reports gone is passed back through
 * sld_delivery_session_gone. Loads every durable subscription from the store. 0 and *out
 * (caller owns), SL_ENOMEM, SL_ESTORE. */
int sld_delivery_new(sld_store_t *store, sld_metrics_t *metrics,
                     const sld_delivery_options_t *opts,
                     const sld_outbox_t *outbox, sld_delivery_t **out);
void sld_delivery_destroy(sld_delivery_t **self_p);

/* Subscribe SESSION per REQ (borrowed). A durable name is created on first
 * use (persisted at the next sld_delivery_persist), with OWNER (an identity
 * name, copied; NULL or "" for none) as its owner, or taken over from the
 * session holding it. REQ->owner is ignored: only the broker sets owners.
 * Whether SESSION may attach is the caller's to check. 0 and *reply filled
 * (name borrowed until the subscription ends), SL_EINVAL, SL_EEXIST (other
 * pattern), SL_EBUSY (too many subscriptions), SL_ESTORE; the reason in
 * ERR. */
int sld_delivery_subscribe(sld_delivery_t *self, sld_session_t *session,
                           const Sluice__Subscribe *req, const char *owner,
                           Sluice__SubscribeOk *reply, char *err, size_t errlen);

/* Detach SESSION's subscription SUB_ID; with REMOVE delete a durable one
 * (and its cursors, at the next persist). 0 or SL_ENOTFOUND. */
int sld_delivery_unsubscribe(sld_delivery_t *self, sld_session_t *session,
                             uint32_t sub_id, bool remove);

/* Delete durable subscription NAME (SubRemove; who may is the caller's to
 * check). 0 or SL_ENOTFOUND. */
int sld_delivery_remove(sld_delivery_t *self, const char *name);

/* What permission checks need to know of a subscription. The strings are
 * borrowed: valid until the subscription ends or (owner) is claimed. */
typedef struct {
    const char *name;           /* durable name; "_ephemeral.N" for an ephemeral one */
    const char *pattern;
    const char *owner;          /* identity that created it; "" for none (ephemeral,
                                   stored before owners were kept, or plain text) */
    bool ephemeral;
} sld_sub_ref_t;

/* SESSION's subscription SUB_ID or, when NAME is not NULL, the durable
 * subscription NAME, into *out. 0 or SL_ENOTFOUND. */
int sld_delivery_lookup(sld_delivery_t *self, sld_session_t *session, uint32_t sub_id,
                        const char *name, sld_sub_ref_t *out);

/* Make OWNER (copied) the owner of durable subscription NAME, which has
 * none; persisted at the next sld_delivery_persist. 0, SL_ENOTFOUND,
 * SL_EEXIST (it has an owner), SL_ENOMEM. */
int sld_delivery_claim(sld_delivery_t *self, const char *name, const char *owner);

/* One topic a seek sets the cursor of. */
typedef struct {
    uint32_t topic_id;
    uint64_t from;              /* the acked floor before */
    uint64_t to;                /* the acked floor after */
    bool moved;                 /* the floor changes, or acked offsets above it or
                                   attempts in flight are dropped */
} sld_delivery_move_t;

/* Seek durable subscription NAME's cursor on topic TOPIC_ID (0: on every
 * topic it has one on) to START: SLUICE__START_KIND__START_OFFSET (OFFSET,
 * kept inside the topic's stored range), _START_TIME (the first message
 * stored at or after TIME_US), _START_EARLIEST or _START_LATEST (offsets
 * as write TXN sees them). The seek is staged: sld_delivery_persist
 * writes it in TXN (the cursor; the acked offsets go) and
 * sld_delivery_persisted(true) makes it the subscription's state
 * (messages from the target on count as not acked, those in flight are
 * forgotten: a late ack is refused; delivery resumes there and the first
 * delivery of an offset acked before carries Delivery.rewound);
 * persisted(false) forgets it. *moves (caller frees; *n entries) says what
 * each topic's cursor does. Who may is the caller's to check. 0,
 * SL_ENOTFOUND (no such durable subscription, or TOPIC_ID is not one of
 * its topics), SL_EINVAL (START), SL_ENOMEM; the reason in ERR. */
int sld_delivery_seek(sld_delivery_t *self, sld_txn_t *txn, const char *name,
                      uint32_t topic_id, Sluice__StartKind start, uint64_t offset,
                      uint64_t time_us, sld_delivery_move_t **moves, size_t *n,
                      char *err, size_t errlen);

/* Add CREDIT to SESSION's SUB_ID. 0 or SL_ENOTFOUND. */
int sld_delivery_credit(sld_delivery_t *self, sld_session_t *session,
                        uint32_t sub_id, uint32_t credit);

/* One refused ack or nack item. */
typedef struct {
    uint32_t topic_id;
    uint64_t offset;
    uint64_t token;
    int code;                   /* SL_ESTALE, SL_ENOTFOUND */
} sld_refusal_t;

/* Most bytes of a nack's reason kept; a longer one is cut at a UTF-8
 * character boundary (never refused). */
#define SLD_NACK_REASON_MAX 512

/* Apply acks (NACK false) or nacks (redeliver after DELAY_MS) for SESSION's
 * SUB_ID, then add CREDIT. A nack's REASON (borrowed; NULL or "" = none;
 * cut to SLD_NACK_REASON_MAX bytes, control characters made spaces) is
 * kept in memory with each nacked attempt, replacing an earlier one, and
 * named by the dead-letter copy and advisory if that attempt was the
 * last; it is never persisted (a broker restart forgets it), and lost
 * alone when out of memory. Refused items go to REFUSED (room for N
 * entries), their count to *nrefused. 0, or SL_ENOTFOUND for an unknown
 * subscription (then no item is applied). */
int sld_delivery_ack(sld_delivery_t *self, sld_session_t *session,
                     uint32_t sub_id, Sluice__AckItem *const *items, size_t n,
                     bool nack, uint32_t delay_ms, const char *reason, uint32_t credit,
                     sld_refusal_t *refused, size_t *nrefused);

/* SESSION is gone: detach its subscriptions (in-flight messages become due
 * for redelivery to the next consumer), end its ephemeral ones. */
void sld_delivery_session_gone(sld_delivery_t *self, sld_session_t *session);

/* Committed appends landed on topic ID (new or known): wake matching
 * subscriptions. */
void sld_delivery_topic_appended(sld_delivery_t *self, uint32_t id);

/* Fan transient messages out to matching ephemeral subscriptions now.
 * MSGS are borrowed. Messages for a subscriber without credit are counted
 * as dropped. */
void sld_delivery_transient(sld_delivery_t *self,
                            Sluice__Envelope *const *msgs, size_t n);

/* True when subscription state waits to be written (open a write txn). */
bool sld_delivery_dirty(const sld_delivery_t *self);

/* Write pending state into TXN: new/removed subscriptions, cursors, acked
 * offsets, dead-letter moves and advisories. 0, SL_EFULL, SL_ESTORE (abort
 * the txn; the state stays pending). */
int sld_delivery_persist(sld_delivery_t *self, sld_txn_t *txn);

/* The transaction that carried the last persist committed (OK true) or
 * was aborted (OK false). */
void sld_delivery_persisted(sld_delivery_t *self, bool ok);

/* Send what subscriptions with credit can take, expire ack waits
 * (redelivery, dead-lettering). Returns ms until the next deadline (at most
 * 1000). */
int sld_delivery_pump(sld_delivery_t *self, uint64_t now_ms);

/* The replies of a turn went out (SubscribeOk among them): from now on
 * sld_delivery_pump_ahead may deliver to the subscriptions they answered,
 * which the client then knows. */
void sld_delivery_replies_sent(sld_delivery_t *self);

/* Whether a subscription may have something to send. */
bool sld_delivery_awake(const sld_delivery_t *self);

/* The pump's sending half, for another thread while the owner is blocked
 * in a commit (sld_commit_finish, during sld_txn_sync_lmdb): what
 * subscriptions with credit can take of the commits before it. It expires
 * nothing, and stops at a record that does not read (sld_delivery_pump
 * deals with it), so nothing it changes is state that the commit under way
 * persists. */
void sld_delivery_pump_ahead(sld_delivery_t *self, uint64_t now_ms);

/* Fill *subs (caller frees with sld_delivery_stats_free) with one SubInfo
 * per subscription. 0 or SL_ENOMEM. */
int sld_delivery_stats(sld_delivery_t *self, Sluice__SubInfo ***subs, size_t *n);
void sld_delivery_stats_free(Sluice__SubInfo ***subs, size_t n);

/* For the first N subscriptions in the order sld_delivery_stats lists them
 * (called in the same turn): how long before NOW_MS (monotonic) the oldest
 * delivery attempt still waiting for its ack was sent, into AGE_MS[i]
 * (0: none sent and unacked). An attempt is sent at its ack deadline minus
 * the subscription's ack_wait. Walks each in-flight table: the metrics
 * snapshot's cost, at most five times a second. Broker thread. */
void sld_delivery_unacked_ages(const sld_delivery_t *self, uint64_t now_ms, uint64_t *age_ms,
                               size_t n);

#endif
