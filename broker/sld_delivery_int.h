/*  sld_delivery_int - what the files of the delivery module share, and
 *  nothing outside them includes: the subscription, its subtopics, the
 *  in-flight table, timer heap and acked-offset set, the per-session byte
 *  budget, struct sld_delivery itself, and the internal functions (named
 *  sld_delivery__verb) one file defines and another calls. Broker thread,
 *  except what sld_delivery_pump_ahead reaches on the helper thread while
 *  the broker thread waits on a commit (see sld_delivery_pump.c). No code
 *  but the three lookups the pump's inner loop makes.
 *
 *  Design. A subscription matches topics by pattern; for each matched topic
 *  it keeps a subtopic: `floor` (every offset below is acked), the set of
 *  offsets acked above the floor, and `next` (the next offset never yet
 *  delivered). Deliveries in flight live in an open-addressing table keyed
 *  by (topic id, offset) holding the attempt's token, attempt number and
 *  deadline; a binary heap of deadlines (lazily invalidated) finds expired
 *  attempts, which go to the due heap (sld_due, lowest offset first) for
 *  redelivery, or to the dead-letter topic once max_deliver attempts have
 *  failed.
 *
 *  Acks change memory at once and mark the subtopic dirty; the server calls
 *  sld_delivery_persist inside its next write transaction, so acks are
 *  group-committed with publishes. If that commit fails the state stays
 *  dirty and is written by the next one: an ack is never lost in memory,
 *  and a crash before the commit only means a redelivery, which the token
 *  and the consumer's topic/offset idempotence absorb.
 *
 *  Flow control is credit: a subscription sends only while its consumer
 *  has credit and fewer than max_inflight messages are unacked, so the
 *  broker never buffers more for a slow consumer than it granted. On top,
 *  the bytes of every attempt in state SENT are counted per session (one
 *  sld_delivery_acct_t per session, shared by its subscriptions); a
 *  session at max_unacked_bytes gets nothing more until acks, nacks or expiries free
 *  room, which wakes its stalled subscriptions. Nothing is dropped: the
 *  message simply waits in the store. Messages are read from LMDB in a
 *  read transaction held only for one pump.
 *
 *  Files. sld_delivery.c: subscription lifecycle (load, subscribe,
 *  detach, remove, claim, credit, stats). sld_delivery_budget.c: unacked
 *  bytes per session and what ephemeral subscriptions owe.
 *  sld_delivery_flight.c: the in-flight table, timers, acks and nacks,
 *  expiry into redelivery or the dead-letter queue. sld_delivery_pump.c:
 *  credit and the pump (what to send, batches, unreadable records).
 *  sld_delivery_transient.c: transient fan-out to ephemeral subscriptions.
 *  sld_delivery_persist.c: pending state and dead-letter moves written in
 *  the server's transaction. sld_delivery_seek.c: cursors moved by
 *  SubSeek, staged, written and applied. The due queue is sld_due.  */
#ifndef SLD_DELIVERY_INT_H
#define SLD_DELIVERY_INT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <czmq.h>
#include "sld_delivery.h"
#include "sld_due.h"
#include "sld_subrec.h"

enum { SLD_FLIGHT_FREE = 0, SLD_FLIGHT_SENT = 1, SLD_FLIGHT_READY = 2, SLD_FLIGHT_DELAYED = 3 };

typedef struct {
    uint32_t topic_id;
    uint8_t state;
    bool nacked;
    uint32_t attempt;
    uint32_t len;               /* envelope bytes; counted while SLD_FLIGHT_SENT */
    uint64_t offset;
    uint64_t token;
    uint64_t deadline;
    char *reason;               /* the last nack's reason (owned; NULL = none): read
                                   only when it dead-letters, freed with the entry */
} sld_delivery_flight_t;

typedef struct {
    sld_delivery_flight_t *slot;
    size_t cap;                 /* power of two */
    size_t count;
} sld_delivery_ftable_t;

typedef struct {
    uint64_t deadline;
    uint64_t offset;
    uint64_t token;
    uint32_t topic_id;
} sld_delivery_timer_t;

typedef struct {
    sld_delivery_timer_t *v;
    size_t n, cap;
} sld_delivery_heap_t;

typedef struct {
    uint64_t *v;
    size_t head, n, cap;        /* sorted ascending, v[head .. head+n) */
} sld_delivery_oset_t;

typedef struct {
    uint32_t topic_id;
    uint64_t floor;
    uint64_t next;
    sld_delivery_oset_t acked;  /* acked offsets above floor */
    uint64_t *fresh;            /* acked above floor since the last persist */
    size_t nfresh, capfresh;
    uint64_t persisted_floor;
    size_t persisted_acked;     /* entries of ours in the store's acked db */
    uint64_t rewound_below;     /* a seek made offsets below this (and >= floor) not
                                   acked again: their next delivery says so */
    bool dirty;
} sld_delivery_subtopic_t;

/* What one session has been sent and not acked, over its subscriptions. */
typedef struct {
    uint64_t bytes;             /* sum of unacked_bytes of the attached subs */
    size_t nsubs;               /* attached subscriptions sharing this record */
    bool stalled;               /* a subscription stopped for lack of room */
} sld_delivery_acct_t;

/* Sizes of the messages an ephemeral subscription was sent, oldest first
 * (a ring). */
typedef struct {
    uint32_t *v;
    size_t head, n, cap;
} sld_delivery_lens_t;

typedef struct sld_delivery_sub sld_delivery_sub_t;
struct sld_delivery_sub {
    char name[SLC_TOPIC_MAX + 1];
    char pattern[SLC_TOPIC_MAX + 1];
    char owner[SLD_IDENT_NAME_MAX + 1]; /* durable: identity that created it; "" = none */
    bool ephemeral;
    uint32_t ack_wait_ms;
    uint32_t max_deliver;
    Sluice__StartKind start;
    uint64_t start_offset;
    uint64_t start_time_us;
    sld_session_t *session;
    sld_delivery_acct_t *acct;  /* the session's byte budget while attached */
    uint64_t unacked_bytes;     /* envelope bytes of our SENT attempts (ephemeral: of owed) */
    sld_delivery_lens_t owed;   /* ephemeral: sizes sent, not yet paid back by credit */
    uint32_t sub_id;
    uint64_t credit;
    sld_delivery_subtopic_t *topics;
    size_t ntopics, captopics;
    size_t rr;
    sld_delivery_ftable_t flight;
    sld_delivery_heap_t timers;
    sld_due_t ready;            /* due for redelivery, in offset order */
    bool config_dirty;
    bool dirty;                 /* in self->dirty list */
    bool awake;                 /* in self->awake list */
    uint64_t subscribed_at;     /* self->replies_sent when (re)subscribed */
    uint64_t delivered, redelivered, dead_lettered, acked, dropped;
};

typedef struct {
    char sub[SLC_TOPIC_MAX + 1];
    uint32_t topic_id;
    uint64_t offset;
    uint32_t attempts;
    bool nacked;
    bool unreadable;            /* the stored record did not read or open */
    const char *why;            /* unreadable: why (static text), or NULL */
    char *reason;               /* nacked: the last nack's reason (owned), or NULL */
} sld_delivery_dlq_t;

/* A seek staged by sld_delivery_seek for the open transaction. */
typedef struct {
    char sub[SLC_TOPIC_MAX + 1];
    uint32_t topic_id;
    uint64_t to;
} sld_delivery_seek_t;

typedef struct {
    sld_delivery_sub_t **v;
    size_t n, cap;
    bool known;                 /* topic_subs entries: matched against every sub */
} sld_delivery_subvec_t;

/* The id a durable subscription had before a take-over, kept while the
 * consumer that held it is connected: its late acks are then answered 409
 * (superseded: the message goes to the new consumer), not 404. */
typedef struct {
    sld_session_t *session;     /* the consumer that was taken over (borrowed) */
    char name[SLC_TOPIC_MAX + 1];   /* the durable subscription */
} sld_delivery_retired_t;

struct sld_delivery {
    sld_store_t *store;
    sld_metrics_t *metrics;
    sld_delivery_options_t opts;
    sld_outbox_t outbox;        /* how frames leave */
    sld_delivery_subvec_t subs; /* every subscription */
    zhashx_t *by_name;          /* durable name -> sld_delivery_sub_t (borrowed) */
    zhashx_t *by_id;            /* "sub_id" -> sld_delivery_sub_t (borrowed) */
    zhashx_t *retired;          /* "sub_id" -> sld_delivery_retired_t (owned): ids a
                                   take-over replaced */
    zhashx_t *accts;            /* "%p" of a session -> sld_delivery_acct_t (owned) */
    sld_delivery_subvec_t *topic_subs; /* index topic id -> matching subs */
    uint32_t ntopic_subs;       /* topics known so far (ids below this) */
    sld_delivery_subvec_t awake; /* subscriptions that may have work */
    sld_delivery_subvec_t dirty; /* subscriptions with state to persist */
    char **removed;             /* durable names to delete from the store */
    size_t nremoved, capremoved;
    sld_delivery_dlq_t *dlq;    /* dead-letter moves to write */
    size_t ndlq, capdlq;
    bool renew;                 /* the pump's read txn met too much damage */
    size_t dlq_persisted;       /* how many of dlq the open txn holds */
    sld_delivery_seek_t *seeks; /* seeks staged for the open transaction */
    size_t nseeks, capseeks;
    uint32_t *appended;         /* topics our persist appended to */
    size_t nappended, capappended;
    uint32_t next_sub_id;
    uint64_t next_token;
    uint64_t next_timer_check;
    uint64_t replies_sent;      /* sld_delivery_replies_sent calls */
    Sluice__Delivery *items;    /* deliver_batch scratch items */
    Sluice__Delivery **item_ptrs;
    uint8_t *scratch;           /* transient envelope packing */
    size_t scratch_cap;
};


/* ---- lookups on the pump's hot path: inline, as the compiler had them when
 * the module was one file (no call across files per message) */

static inline sld_delivery_flight_t *sld_delivery__flight_get(sld_delivery_ftable_t *t,
                                                              uint32_t topic_id,
                                                              uint64_t offset)
{
    if (t->count == 0)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = slc_offset_hash(topic_id, offset) & mask;; i = (i + 1) & mask) {
        sld_delivery_flight_t *f = &t->slot[i];
        if (f->state == SLD_FLIGHT_FREE)
            return NULL;
        if (f->offset == offset && f->topic_id == topic_id)
            return f;
    }
}

static inline bool sld_delivery__oset_has(const sld_delivery_oset_t *s, uint64_t off)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint64_t v = s->v[s->head + mid];
        if (v == off)
            return true;
        if (v < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static inline bool sld_delivery__is_acked(const sld_delivery_subtopic_t *st, uint64_t offset)
{
    return offset < st->floor || sld_delivery__oset_has(&st->acked, offset);
}

/* ---- sld_delivery.c: subscriptions */

/* SUB's subtopic for topic TOPIC_ID, or NULL when SUB does not match it. */
sld_delivery_subtopic_t *sld_delivery__subtopic_find(sld_delivery_sub_t *sub,
                                                     uint32_t topic_id);
/* SUB (durable) has state to persist: into self->dirty. */
void sld_delivery__mark_dirty(sld_delivery_t *self, sld_delivery_sub_t *sub);
/* SUB (attached) may have work: into self->awake. */
void sld_delivery__wake(sld_delivery_t *self, sld_delivery_sub_t *sub);
/* SESSION's subscription SUB_ID (borrowed), or NULL. */
sld_delivery_sub_t *sld_delivery__by_id(sld_delivery_t *self, sld_session_t *session,
                                        uint32_t sub_id);

/* ---- sld_delivery_budget.c: unacked bytes */

/* SUB is now attached to SESSION: share (or create) its byte record. */
void sld_delivery__acct_attach(sld_delivery_t *self, sld_delivery_sub_t *sub,
                               sld_session_t *session);
/* SUB leaves its session: its bytes leave the record. */
void sld_delivery__acct_release(sld_delivery_t *self, sld_delivery_sub_t *sub);
/* Move F to STATE, counting its bytes while it is SLD_FLIGHT_SENT. */
void sld_delivery__set_state(sld_delivery_t *self, sld_delivery_sub_t *sub,
                             sld_delivery_flight_t *f, uint8_t state);
/* Drop F from SUB's table (acked, dead-lettered, trimmed). */
void sld_delivery__forget(sld_delivery_t *self, sld_delivery_sub_t *sub,
                          sld_delivery_flight_t *f);
/* True when LEN more bytes would take SUB's session over max_unacked_bytes. */
bool sld_delivery__no_room(sld_delivery_t *self, sld_delivery_sub_t *sub, size_t len);
/* LEN bytes went to ephemeral SUB. 0 or SL_ENOMEM (nothing counted). */
int sld_delivery__eph_sent(sld_delivery_sub_t *sub, size_t len);
/* FREED bytes of ephemeral SUB are no longer owed. */
void sld_delivery__eph_release(sld_delivery_t *self, sld_delivery_sub_t *sub,
                               uint64_t freed);
/* N credits granted to ephemeral SUB pay back its N oldest messages. */
void sld_delivery__eph_paid(sld_delivery_t *self, sld_delivery_sub_t *sub, uint64_t n);

/* ---- sld_delivery_flight.c: in flight, timers, acks, expiry */

/* Insert a fresh entry for (TOPIC_ID, OFFSET), which must be absent. */
sld_delivery_flight_t *sld_delivery__flight_put(sld_delivery_ftable_t *t,
                                                uint32_t topic_id, uint64_t offset);
/* Remove F from T, freeing its reason. */
void sld_delivery__flight_del(sld_delivery_ftable_t *t, sld_delivery_flight_t *f);
/* Arm timer T for SUB. 0 or SL_ENOMEM. */
int sld_delivery__timer_arm(sld_delivery_sub_t *sub, sld_delivery_timer_t t);
/* Add OFF to S (kept sorted, no duplicates). 0 or SL_ENOMEM. */
int sld_delivery__oset_add(sld_delivery_oset_t *s, uint64_t off);
/* OFFSET of ST is acked or dead-lettered: advance the floor, mark dirty. */
int sld_delivery__mark_acked(sld_delivery_t *self, sld_delivery_sub_t *sub,
                             sld_delivery_subtopic_t *st, uint64_t offset);
/* SUB's ack waits that ended by NOW: due for redelivery, or dead-lettered. */
void sld_delivery__expire(sld_delivery_t *self, sld_delivery_sub_t *sub, uint64_t now);

/* ---- sld_delivery_pump.c: reading and sending */

/* Read OFFSET of topic ID for delivery (see the definition). */
int sld_delivery__read(sld_txn_t *txn, uint32_t id, uint64_t offset, const void **env,
                       size_t *len, const char **why);
/* Fill scratch item I (self->items) with one delivery to SUB. */
void sld_delivery__item(sld_delivery_t *self, size_t i, sld_delivery_sub_t *sub,
                        uint32_t topic_id, const char *topic, uint64_t offset,
                        uint64_t token, uint32_t attempt, const void *env, size_t len);
/* Send the first N scratch items to SUB's consumer in one Deliver frame. */
int sld_delivery__send_items(sld_delivery_t *self, sld_delivery_sub_t *sub, size_t n);

/* ---- sld_delivery_persist.c: dead-letter moves */

/* Queue a dead-letter move of (TOPIC_ID, OFFSET) for the next persist;
 * REASON (the last nack's, borrowed and copied; NULL for none) goes into
 * its dlq-reason and advisory. 0 or SL_ENOMEM (nothing queued). */
int sld_delivery__queue_dlq(sld_delivery_t *self, const sld_delivery_sub_t *sub,
                            uint32_t topic_id, uint64_t offset, uint32_t attempts,
                            bool nacked, bool unreadable, const char *reason);
/* Free the queued dead-letter moves' reasons and empty the queue. */
void sld_delivery__dlq_clear(sld_delivery_t *self);

/* ---- sld_delivery_seek.c: seeks */

/* Write the staged seeks in TXN (after the dirty subscriptions: a seek
 * replaces what they wrote). 0, SL_EFULL, SL_ESTORE. */
int sld_delivery__seeks_persist(sld_delivery_t *self, sld_txn_t *txn);
/* The transaction committed (OK): the staged seeks become the state; or
 * not: they are forgotten. */
void sld_delivery__seeks_done(sld_delivery_t *self, bool ok);

#endif
