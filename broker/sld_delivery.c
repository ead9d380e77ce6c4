/*  sld_delivery - durable and ephemeral subscriptions.
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
 *  s_acct_t per session, shared by its subscriptions); a session at
 *  max_unacked_bytes gets nothing more until acks, nacks or expiries free
 *  room, which wakes its stalled subscriptions. Nothing is dropped: the
 *  message simply waits in the store. Messages are read from LMDB in a
 *  read transaction held only for one pump.
 *
 *  Size: about 1,950 lines, past the house's 1,200: subscriptions and
 *  their persistence, flight and timers, the pump and the transient
 *  fan-out are separable and issue 17 splits them; the due queue (sld_due)
 *  is already its own file.  */
#include "sld_delivery.h"
#include "sld_due.h"
#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TIMER_CHECK_MS 10
#define S_DEFAULT_CREDIT 1000
#define S_TIMERS_SLACK 1024     /* stale timers kept before a rebuild, beyond 2x in flight */

enum { S_FREE = 0, S_SENT = 1, S_READY = 2, S_DELAYED = 3 };

typedef struct {
    uint32_t topic_id;
    uint8_t state;
    bool nacked;
    uint32_t attempt;
    uint32_t len;               /* envelope bytes; counted while S_SENT */
    uint64_t offset;
    uint64_t token;
    uint64_t deadline;
} s_flight_t;

typedef struct {
    s_flight_t *slot;
    size_t cap;                 /* power of two */
    size_t count;
} s_ftable_t;

typedef struct {
    uint64_t deadline;
    uint64_t offset;
    uint64_t token;
    uint32_t topic_id;
} s_timer_t;

typedef struct {
    s_timer_t *v;
    size_t n, cap;
} s_heap_t;

typedef struct {
    uint64_t *v;
    size_t head, n, cap;        /* sorted ascending, v[head .. head+n) */
} s_oset_t;

typedef struct {
    uint32_t topic_id;
    uint64_t floor;
    uint64_t next;
    s_oset_t acked;             /* acked offsets above floor */
    uint64_t *fresh;            /* acked above floor since the last persist */
    size_t nfresh, capfresh;
    uint64_t persisted_floor;
    size_t persisted_acked;     /* entries of ours in the store's acked db */
    bool dirty;
} s_subtopic_t;

/* What one session has been sent and not acked, over its subscriptions. */
typedef struct {
    uint64_t bytes;             /* sum of unacked_bytes of the attached subs */
    size_t nsubs;               /* attached subscriptions sharing this record */
    bool stalled;               /* a subscription stopped for lack of room */
} s_acct_t;

/* Sizes of the messages an ephemeral subscription was sent, oldest first
 * (a ring). */
typedef struct {
    uint32_t *v;
    size_t head, n, cap;
} s_lens_t;

typedef struct s_sub s_sub_t;
struct s_sub {
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
    s_acct_t *acct;             /* the session's byte budget while attached */
    uint64_t unacked_bytes;     /* envelope bytes of our S_SENT attempts (ephemeral: of owed) */
    s_lens_t owed;              /* ephemeral: sizes sent, not yet paid back by credit */
    uint32_t sub_id;
    uint64_t credit;
    s_subtopic_t *topics;
    size_t ntopics, captopics;
    size_t rr;
    s_ftable_t flight;
    s_heap_t timers;
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
} s_dlq_t;

typedef struct {
    s_sub_t **v;
    size_t n, cap;
    bool known;                 /* topic_subs entries: matched against every sub */
} s_subvec_t;

/* The id a durable subscription had before a take-over, kept while the
 * consumer that held it is connected: its late acks are then answered 409
 * (superseded: the message goes to the new consumer), not 404. */
typedef struct {
    sld_session_t *session;     /* the consumer that was taken over (borrowed) */
    char name[SLC_TOPIC_MAX + 1];   /* the durable subscription */
} s_retired_t;

struct sld_delivery {
    sld_store_t *store;
    sld_metrics_t *metrics;
    sld_delivery_options_t opts;
    sld_outbox_t outbox;        /* how frames leave */
    s_subvec_t subs;            /* every subscription */
    zhashx_t *by_name;          /* durable name -> s_sub_t (borrowed) */
    zhashx_t *by_id;            /* "sub_id" -> s_sub_t (borrowed) */
    zhashx_t *retired;          /* "sub_id" -> s_retired_t (owned): ids a take-over replaced */
    zhashx_t *accts;            /* "%p" of a session -> s_acct_t (owned) */
    s_subvec_t *topic_subs;     /* index topic id -> matching subs */
    uint32_t ntopic_subs;       /* topics known so far (ids below this) */
    s_subvec_t awake;           /* subscriptions that may have work */
    s_subvec_t dirty;           /* subscriptions with state to persist */
    char **removed;             /* durable names to delete from the store */
    size_t nremoved, capremoved;
    s_dlq_t *dlq;               /* dead-letter moves to write */
    size_t ndlq, capdlq;
    bool renew;                 /* the pump's read txn met too much damage */
    size_t dlq_persisted;       /* how many of dlq the open txn holds */
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

/* ------------------------------------------------------------ containers */

static int s_subvec_add(s_subvec_t *vec, s_sub_t *sub)
{
    int rc = slc_grow((void **) &vec->v, &vec->cap, vec->n + 1, sizeof(s_sub_t *));
    if (rc == 0)
        vec->v[vec->n++] = sub;
    return rc;
}

static void s_subvec_remove(s_subvec_t *vec, s_sub_t *sub)
{
    for (size_t i = 0; i < vec->n; i++)
        if (vec->v[i] == sub) {
            vec->v[i] = vec->v[--vec->n];
            return;
        }
}

static s_flight_t *s_flight_get(s_ftable_t *t, uint32_t topic_id, uint64_t offset)
{
    if (t->count == 0)
        return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = slc_offset_hash(topic_id, offset) & mask;; i = (i + 1) & mask) {
        s_flight_t *f = &t->slot[i];
        if (f->state == S_FREE)
            return NULL;
        if (f->offset == offset && f->topic_id == topic_id)
            return f;
    }
}

/* Insert a fresh entry (the key must be absent). The table is sized for
 * max_inflight at half load, so it never fills. */
static s_flight_t *s_flight_put(s_ftable_t *t, uint32_t topic_id, uint64_t offset)
{
    assert(t->count < t->cap / 2 + 1);
    size_t mask = t->cap - 1;
    size_t i = slc_offset_hash(topic_id, offset) & mask;
    while (t->slot[i].state != S_FREE)
        i = (i + 1) & mask;
    s_flight_t *f = &t->slot[i];
    memset(f, 0, sizeof(*f));
    f->topic_id = topic_id;
    f->offset = offset;
    t->count++;
    return f;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void s_flight_del(s_ftable_t *t, s_flight_t *f)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t) (f - t->slot);
    t->slot[i].state = S_FREE;
    t->count--;
    for (size_t j = (i + 1) & mask; t->slot[j].state != S_FREE; j = (j + 1) & mask) {
        size_t home = slc_offset_hash(t->slot[j].topic_id, t->slot[j].offset) & mask;
        bool move = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (move) {
            t->slot[i] = t->slot[j];
            t->slot[j].state = S_FREE;
            i = j;
        }
    }
}

static int s_heap_push(s_heap_t *h, s_timer_t t)
{
    int rc = slc_grow((void **) &h->v, &h->cap, h->n + 1, sizeof(s_timer_t));
    if (rc)
        return rc;
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p].deadline <= t.deadline)
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = t;
    return 0;
}

/* Put T at slot I of H or below it, moving earlier children up. */
static void s_heap_sift(s_heap_t *h, size_t i, s_timer_t t)
{
    while (true) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1].deadline < h->v[c].deadline)
            c++;
        if (t.deadline <= h->v[c].deadline)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    h->v[i] = t;
}

static s_timer_t s_heap_pop(s_heap_t *h)
{
    s_timer_t top = h->v[0];
    s_timer_t last = h->v[--h->n];
    if (h->n)
        s_heap_sift(h, 0, last);
    return top;
}

/* The delivery T is still the timer of, or NULL: an ack or a newer
 * attempt leaves a timer behind in the heap, where it cannot be found to
 * be removed. */
static s_flight_t *s_timer_flight(s_sub_t *sub, const s_timer_t *t)
{
    s_flight_t *f = s_flight_get(&sub->flight, t->topic_id, t->offset);
    return f && f->token == t->token && f->deadline == t->deadline
           && (f->state == S_SENT || f->state == S_DELAYED) ? f : NULL;
}

/* Arm T for SUB. Every delivery acked within ack_wait leaves its timer
 * behind, one a message: under load the heap would hold rate x ack_wait
 * of them. So once the heap is twice what is in flight (each delivery has
 * at most one live timer), the dead are dropped and the heap rebuilt, at
 * a cost the pushes since the last rebuild have paid for. */
static int s_timer_arm(s_sub_t *sub, s_timer_t t)
{
    s_heap_t *h = &sub->timers;
    if (h->n >= 2 * sub->flight.count + S_TIMERS_SLACK) {
        size_t n = 0;
        for (size_t i = 0; i < h->n; i++)
            if (s_timer_flight(sub, &h->v[i]))
                h->v[n++] = h->v[i];
        h->n = n;
        for (size_t i = n / 2; i-- > 0;)
            s_heap_sift(h, i, h->v[i]);
    }
    return s_heap_push(h, t);
}

static bool s_oset_has(const s_oset_t *s, uint64_t off)
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

static int s_oset_add(s_oset_t *s, uint64_t off)
{
    if (s->head + s->n == s->cap && s->head > 0) {
        memmove(s->v, s->v + s->head, s->n * sizeof(uint64_t));
        s->head = 0;
    }
    int rc = slc_grow((void **) &s->v, &s->cap, s->head + s->n + 1, sizeof(uint64_t));
    if (rc)
        return rc;
    uint64_t *base = s->v + s->head;
    size_t i = s->n;
    while (i > 0 && base[i - 1] > off)
        i--;
    if (i > 0 && base[i - 1] == off)
        return 0;
    memmove(base + i + 1, base + i, (s->n - i) * sizeof(uint64_t));
    base[i] = off;
    s->n++;
    return 0;
}

/* ------------------------------------------------------------ subscriptions */

static void s_sub_free(s_sub_t **sub_p)
{
    s_sub_t *sub = *sub_p;
    if (!sub)
        return;
    for (size_t i = 0; i < sub->ntopics; i++) {
        free(sub->topics[i].acked.v);
        free(sub->topics[i].fresh);
    }
    free(sub->topics);
    free(sub->flight.slot);
    free(sub->timers.v);
    sld_due_clear(&sub->ready);
    free(sub->owed.v);
    free(sub);
    *sub_p = NULL;
}

static int s_sub_new(sld_delivery_t *self, s_sub_t **out)
{
    s_sub_t *sub = calloc(1, sizeof(s_sub_t));
    if (!sub)
        return SL_ENOMEM;
    size_t cap = 16;
    while (cap < 2 * (size_t) self->opts.max_inflight + 2)
        cap *= 2;
    sub->flight.cap = cap;
    sub->flight.slot = calloc(cap, sizeof(s_flight_t));
    if (!sub->flight.slot) {
        free(sub);
        return SL_ENOMEM;
    }
    *out = sub;
    return 0;
}

static s_subtopic_t *s_subtopic_find(s_sub_t *sub, uint32_t topic_id)
{
    for (size_t i = 0; i < sub->ntopics; i++)
        if (sub->topics[i].topic_id == topic_id)
            return &sub->topics[i];
    return NULL;
}

static void s_mark_dirty(sld_delivery_t *self, s_sub_t *sub)
{
    if (!sub->dirty && !sub->ephemeral && s_subvec_add(&self->dirty, sub) == 0)
        sub->dirty = true;
}

static void s_wake(sld_delivery_t *self, s_sub_t *sub)
{
    if (!sub->awake && sub->session && s_subvec_add(&self->awake, sub) == 0)
        sub->awake = true;
}

/* ------------------------------------------------------- unacked bytes */

static void s_retired_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void s_acct_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void s_acct_key(const sld_session_t *session, char *key, size_t len)
{
    snprintf(key, len, "%p", (const void *) session);
}

/* SUB is now attached to SESSION: share (or create) the session's record.
 * Without memory the subscription simply runs unbudgeted. */
static void s_acct_attach(sld_delivery_t *self, s_sub_t *sub, sld_session_t *session)
{
    char key[32];
    s_acct_key(session, key, sizeof key);
    s_acct_t *a = zhashx_lookup(self->accts, key);
    if (!a) {
        a = calloc(1, sizeof(s_acct_t));
        if (!a)
            return;
        zhashx_insert(self->accts, key, a);
    }
    a->nsubs++;
    a->bytes += sub->unacked_bytes;
    sub->acct = a;
}

/* Room was freed in A: wake the subscriptions that stopped for it. */
static void s_acct_freed(sld_delivery_t *self, s_acct_t *a)
{
    if (!a->stalled)
        return;
    a->stalled = false;
    for (size_t i = 0; i < self->subs.n; i++)
        if (self->subs.v[i]->acct == a)
            s_wake(self, self->subs.v[i]);
}

/* SUB leaves its session (detach, removal): its bytes leave the record. */
static void s_acct_release(sld_delivery_t *self, s_sub_t *sub)
{
    s_acct_t *a = sub->acct;
    if (!a)
        return;
    sub->acct = NULL;
    a->bytes -= sub->unacked_bytes;
    if (--a->nsubs == 0) {
        char key[32];
        s_acct_key(sub->session, key, sizeof key);
        zhashx_delete(self->accts, key);
        return;
    }
    if (sub->unacked_bytes)
        s_acct_freed(self, a);
}

/* Move F to STATE, counting its bytes while it is S_SENT. */
static void s_set_state(sld_delivery_t *self, s_sub_t *sub, s_flight_t *f,
                        uint8_t state)
{
    bool was = f->state == S_SENT, is = state == S_SENT;
    f->state = state;
    if (was == is)
        return;
    if (is) {
        sub->unacked_bytes += f->len;
        if (sub->acct)
            sub->acct->bytes += f->len;
        return;
    }
    sub->unacked_bytes -= f->len;
    if (sub->acct) {
        sub->acct->bytes -= f->len;
        s_acct_freed(self, sub->acct);
    }
}

/* Drop F from SUB's table (acked, dead-lettered, trimmed). */
static void s_forget(sld_delivery_t *self, s_sub_t *sub, s_flight_t *f)
{
    s_set_state(self, sub, f, S_FREE);
    s_flight_del(&sub->flight, f);
}

/* True when sending LEN more bytes would take SUB's session over
 * max_unacked_bytes. An empty budget always takes one message, so a
 * message larger than the limit still flows, one at a time. */
static bool s_no_room(sld_delivery_t *self, s_sub_t *sub, size_t len)
{
    s_acct_t *a = sub->acct;
    uint64_t max = self->opts.max_unacked_bytes;
    if (!a || max == 0 || a->bytes == 0 || a->bytes + len <= max)
        return false;
    a->stalled = true;
    return true;
}

/* Ephemeral subscriptions take no acks, so what they were sent is paid
 * back by the credit their consumer grants next (the SDK grants one credit
 * for each message it took in, in steps of a quarter of its credit). Until
 * then its bytes count in the session's max_unacked_bytes like unacked
 * deliveries. A message that does not fit is not sent: a stored one waits
 * in the store, a transient one is dropped for this subscriber and
 * counted. Without this a consumer that granted a huge credit and never
 * read had the broker buffer everything in its socket. (No message count
 * like max_inflight: a transient subscriber keeping up with a fast
 * publisher pays back a quarter of a large credit at a time.) */

/* LEN bytes went to ephemeral SUB. 0 or SL_ENOMEM (nothing counted). */
static int s_eph_sent(s_sub_t *sub, size_t len)
{
    s_lens_t *r = &sub->owed;
    if (r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64;
        uint32_t *nv = malloc(ncap * sizeof(uint32_t));
        if (!nv)
            return SL_ENOMEM;
        for (size_t i = 0; i < r->n; i++)
            nv[i] = r->v[(r->head + i) % r->cap];
        free(r->v);
        r->v = nv;
        r->cap = ncap;
        r->head = 0;
    }
    r->v[(r->head + r->n++) % r->cap] = (uint32_t) len;
    sub->unacked_bytes += len;
    if (sub->acct)
        sub->acct->bytes += len;
    return 0;
}

/* FREED bytes of ephemeral SUB are no longer owed. */
static void s_eph_release(sld_delivery_t *self, s_sub_t *sub, uint64_t freed)
{
    sub->unacked_bytes -= freed;
    if (sub->acct && freed) {
        sub->acct->bytes -= freed;
        s_acct_freed(self, sub->acct);
    }
}

/* N credits granted to ephemeral SUB pay back its N oldest messages. */
static void s_eph_paid(sld_delivery_t *self, s_sub_t *sub, uint64_t n)
{
    s_lens_t *r = &sub->owed;
    uint64_t freed = 0;
    for (; n > 0 && r->n > 0; n--, r->n--) {
        freed += r->v[r->head];
        r->head = (r->head + 1) % r->cap;
    }
    s_eph_release(self, sub, freed);
}

static s_subvec_t *s_topic_subs(sld_delivery_t *self, uint32_t id)
{
    if (id >= self->ntopic_subs) {
        size_t n = (size_t) id + 1;
        s_subvec_t *nv = realloc(self->topic_subs, n * sizeof(s_subvec_t));
        if (!nv)
            return NULL;
        memset(nv + self->ntopic_subs, 0,
               (n - self->ntopic_subs) * sizeof(s_subvec_t));
        self->topic_subs = nv;
        self->ntopic_subs = (uint32_t) n;
    }
    return &self->topic_subs[id];
}

/* Add topic INFO to SUB with its starting floor. FROM_START says the topic
 * appeared after the subscription, so every message of it is new to SUB. */
static int s_sub_add_topic(sld_delivery_t *self, s_sub_t *sub,
                           const sld_topic_info_t *info, uint64_t floor)
{
    int rc = slc_grow((void **) &sub->topics, &sub->captopics, sub->ntopics + 1,
                    sizeof(s_subtopic_t));
    if (rc)
        return rc;
    s_subvec_t *vec = s_topic_subs(self, info->id);
    if (!vec)
        return SL_ENOMEM;
    rc = s_subvec_add(vec, sub);
    if (rc)
        return rc;
    s_subtopic_t *st = &sub->topics[sub->ntopics++];
    memset(st, 0, sizeof(*st));
    st->topic_id = info->id;
    st->floor = floor;
    st->next = floor;
    st->persisted_floor = floor;
    return 0;
}

/* Where a new subscription starts on an existing topic. */
static uint64_t s_start_floor(sld_delivery_t *self, const s_sub_t *sub,
                              const sld_topic_info_t *info)
{
    switch (sub->start) {
    case SLUICE__START_KIND__START_EARLIEST:
        return info->first_offset;
    case SLUICE__START_KIND__START_OFFSET:
        return sub->start_offset < info->first_offset ? info->first_offset
             : sub->start_offset > info->next_offset ? info->next_offset
             : sub->start_offset;
    case SLUICE__START_KIND__START_TIME: {
        sld_txn_t *txn = NULL;
        uint64_t off = info->next_offset;
        if (sld_store_begin(self->store, false, &txn) == 0) {
            off = sld_store_offset_at_time(txn, info->id, sub->start_time_us);
            sld_txn_abort(&txn);
        }
        return off;
    }
    default:
        return info->next_offset;
    }
}

/* Durable names become part of the dead-letter topic `_dlq.<name>`, so they
 * follow the topic-name rules (and may not start with '_'). */
static bool s_valid_sub_name(const char *name)
{
    return strnlen(name, 201) <= 200 && slc_topic_validate(name, false) == 0;
}

/* Match SUB against every topic the store knows; new subscriptions start
 * per their start position, loaded ones at their stored cursor. */
static int s_sub_match_all(sld_delivery_t *self, s_sub_t *sub, sld_txn_t *txn)
{
    size_t n = sld_store_topic_count(self->store);
    for (size_t i = 0; i < n; i++) {
        const sld_topic_info_t *info = sld_store_topic_at(self->store, i);
        if (!slc_pattern_match(sub->pattern, info->name))
            continue;
        uint64_t floor = 0;
        int rc = SL_ENOTFOUND;
        if (txn)
            rc = sld_store_cursor_get(txn, sub->name, info->id, &floor);
        if (rc == SL_ENOTFOUND)
            floor = txn ? info->first_offset : s_start_floor(self, sub, info);
        else if (rc)
            return rc;
        if (floor < info->first_offset)
            floor = info->first_offset;
        rc = s_sub_add_topic(self, sub, info, floor);
        if (rc)
            return rc;
    }
    return 0;
}

static int s_load_acked(uint64_t offset, void *arg)
{
    s_subtopic_t *st = arg;
    st->persisted_acked++;
    return s_oset_add(&st->acked, offset);
}

static int s_register(sld_delivery_t *self, s_sub_t *sub)
{
    int rc = s_subvec_add(&self->subs, sub);
    if (rc)
        return rc;
    sub->sub_id = ++self->next_sub_id;
    char key[16];
    snprintf(key, sizeof key, "%u", sub->sub_id);
    zhashx_insert(self->by_id, key, sub);
    if (!sub->ephemeral)
        zhashx_insert(self->by_name, sub->name, sub);
    return 0;
}

static void s_unregister(sld_delivery_t *self, s_sub_t *sub)
{
    char key[16];
    snprintf(key, sizeof key, "%u", sub->sub_id);
    zhashx_delete(self->by_id, key);
    if (!sub->ephemeral && zhashx_lookup(self->by_name, sub->name) == sub)
        zhashx_delete(self->by_name, sub->name);
    s_subvec_remove(&self->subs, sub);
    s_acct_release(self, sub);
    s_subvec_remove(&self->awake, sub);
    s_subvec_remove(&self->dirty, sub);
    for (size_t i = 0; i < sub->ntopics; i++)
        if (sub->topics[i].topic_id < self->ntopic_subs)
            s_subvec_remove(&self->topic_subs[sub->topics[i].topic_id], sub);
}

static int s_sub_load(const char *name, const void *config, size_t len, void *arg)
{
    void **ctx = arg;
    sld_delivery_t *self = ctx[0];
    sld_txn_t *txn = ctx[1];
    Sluice__Subscribe *cfg = sluice__subscribe__unpack(NULL, len, config);
    if (!cfg) {
        fprintf(stderr, "sluiced: subscription %s: stored config does not decode\n", name);
        return SL_ESTORE;
    }
    s_sub_t *sub = NULL;
    int rc = s_sub_new(self, &sub);
    if (rc)
        goto fail;
    snprintf(sub->name, sizeof sub->name, "%s", name);
    snprintf(sub->pattern, sizeof sub->pattern, "%s", cfg->pattern);
    snprintf(sub->owner, sizeof sub->owner, "%s", cfg->owner ? cfg->owner : "");
    sub->ack_wait_ms = cfg->ack_wait_ms;
    sub->max_deliver = cfg->max_deliver;
    sub->start = cfg->start;
    rc = s_sub_match_all(self, sub, txn);
    for (size_t i = 0; rc == 0 && i < sub->ntopics; i++) {
        s_subtopic_t *st = &sub->topics[i];
        rc = sld_store_acked_foreach(txn, sub->name, st->topic_id, st->floor,
                                     s_load_acked, st);
    }
    if (rc == 0)
        rc = s_register(self, sub);
    if (rc)
        goto fail;
    sluice__subscribe__free_unpacked(cfg, NULL);
    return 0;
fail:
    s_sub_free(&sub);
    sluice__subscribe__free_unpacked(cfg, NULL);
    return rc;
}

int sld_delivery_new(sld_store_t *store, sld_metrics_t *metrics,
                     const sld_delivery_options_t *opts,
                     const sld_outbox_t *outbox, sld_delivery_t **out)
{
    int rc = SL_ENOMEM;
    sld_txn_t *txn = NULL;
    sld_delivery_t *self = calloc(1, sizeof(sld_delivery_t));
    if (!self)
        return SL_ENOMEM;
    self->store = store;
    self->metrics = metrics;
    self->opts = *opts;
    if (self->opts.deliver_batch == 0)
        self->opts.deliver_batch = 1000;
    if (self->opts.max_inflight == 0)
        self->opts.max_inflight = 10000;
    self->outbox = *outbox;
    self->next_token = slc_now_us();
    self->by_name = zhashx_new();
    self->by_id = zhashx_new();
    self->accts = zhashx_new();
    self->retired = zhashx_new();
    self->items = calloc(self->opts.deliver_batch, sizeof(Sluice__Delivery));
    self->item_ptrs = calloc(self->opts.deliver_batch, sizeof(Sluice__Delivery *));
    if (!self->by_name || !self->by_id || !self->accts || !self->retired
        || !self->items || !self->item_ptrs)
        goto fail;
    zhashx_set_destructor(self->accts, s_acct_free);
    zhashx_set_destructor(self->retired, s_retired_free);
    for (uint32_t i = 0; i < self->opts.deliver_batch; i++)
        self->item_ptrs[i] = &self->items[i];
    rc = sld_store_begin(store, false, &txn);
    if (rc)
        goto fail;
    void *ctx[2] = { self, txn };
    rc = sld_store_sub_foreach(txn, s_sub_load, ctx);
    sld_txn_abort(&txn);
    if (rc)
        goto fail;
    /* Every stored topic was matched against every loaded subscription. */
    for (size_t i = 0; i < sld_store_topic_count(store); i++) {
        s_subvec_t *vec = s_topic_subs(self, sld_store_topic_at(store, i)->id);
        if (!vec)
            goto fail;
        vec->known = true;
    }
    *out = self;
    return 0;
fail:
    sld_delivery_destroy(&self);
    return rc ? rc : SL_ENOMEM;
}

void sld_delivery_destroy(sld_delivery_t **self_p)
{
    sld_delivery_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->subs.n; i++)
        s_sub_free(&self->subs.v[i]);
    free(self->subs.v);
    for (uint32_t i = 0; i < self->ntopic_subs; i++)
        free(self->topic_subs[i].v);
    free(self->topic_subs);
    free(self->awake.v);
    free(self->dirty.v);
    for (size_t i = 0; i < self->nremoved; i++)
        free(self->removed[i]);
    free(self->removed);
    free(self->dlq);
    free(self->appended);
    free(self->items);
    free(self->item_ptrs);
    free(self->scratch);
    zhashx_destroy(&self->by_name);
    zhashx_destroy(&self->by_id);
    zhashx_destroy(&self->accts);
    zhashx_destroy(&self->retired);
    free(self);
    *self_p = NULL;
}

/* Topics the store knows but we have not matched yet (created since). */
static void s_discover(sld_delivery_t *self, uint32_t id)
{
    if (id < self->ntopic_subs && self->topic_subs[id].known)
        return;
    const sld_topic_info_t *info = sld_store_topic_by_id(self->store, id);
    s_subvec_t *vec = info ? s_topic_subs(self, id) : NULL;
    if (!vec)
        return;
    vec->known = true;
    for (size_t i = 0; i < self->subs.n; i++) {
        s_sub_t *sub = self->subs.v[i];
        if (!slc_pattern_match(sub->pattern, info->name))
            continue;
        /* The topic is younger than the subscription: all of it is new. */
        if (s_sub_add_topic(self, sub, info, info->first_offset) == 0) {
            sub->topics[sub->ntopics - 1].dirty = true;
            s_mark_dirty(self, sub);
        }
    }
}

static s_sub_t *s_by_id(sld_delivery_t *self, sld_session_t *session, uint32_t sub_id)
{
    char key[16];
    snprintf(key, sizeof key, "%u", sub_id);
    s_sub_t *sub = zhashx_lookup(self->by_id, key);
    return sub && sub->session == session ? sub : NULL;
}

/* Every in-flight attempt of SUB becomes due for redelivery now; the due
 * heap hands them to the next consumer in offset order. */
static void s_detach(sld_delivery_t *self, s_sub_t *sub)
{
    s_acct_release(self, sub);
    for (size_t i = 0; i < sub->flight.cap; i++) {
        s_flight_t *f = &sub->flight.slot[i];
        /* Without memory for the key it stays SENT and comes back through
         * its ack_wait deadline: later, never lost. */
        if ((f->state == S_SENT || f->state == S_DELAYED)
            && sld_due_add(&sub->ready, f->topic_id, f->offset) == 0)
            s_set_state(self, sub, f, S_READY);
    }
    sub->session = NULL;
    sub->credit = 0;
}

/* Give SUB a new id; the old one, if a consumer still holds it, is kept in
 * retired. 0 or SL_ENOMEM. */
static int s_rekey(sld_delivery_t *self, s_sub_t *sub)
{
    char key[16];
    snprintf(key, sizeof key, "%u", sub->sub_id);
    if (sub->session) {
        s_retired_t *r = calloc(1, sizeof *r);
        if (!r)
            return SL_ENOMEM;
        r->session = sub->session;
        snprintf(r->name, sizeof r->name, "%s", sub->name);
        zhashx_update(self->retired, key, r);
    }
    zhashx_delete(self->by_id, key);
    sub->sub_id = ++self->next_sub_id;
    snprintf(key, sizeof key, "%u", sub->sub_id);
    zhashx_insert(self->by_id, key, sub);
    return 0;
}

int sld_delivery_subscribe(sld_delivery_t *self, sld_session_t *session,
                           const Sluice__Subscribe *req, const char *owner,
                           Sluice__SubscribeOk *reply, const char **why)
{
    int rc = 0;
    s_sub_t *sub = NULL;
    *why = NULL;
    if (!req->pattern || slc_pattern_validate(req->pattern) != 0) {
        *why = "invalid topic pattern: words of [A-Za-z0-9_-] separated by '.', '*' for one word, '>' last for the rest";
        return SL_EINVAL;
    }
    if (!req->ephemeral && (!req->name || !s_valid_sub_name(req->name))) {
        *why = "invalid subscription name: 1-200 characters of [A-Za-z0-9_.-], not starting with '_' or '.'";
        return SL_EINVAL;
    }
    if (req->start > SLUICE__START_KIND__START_TIME) {
        *why = "unknown start position";
        return SL_EINVAL;
    }
    if (!req->ephemeral)
        sub = zhashx_lookup(self->by_name, req->name);
    if (sub) {
        if (strcmp(sub->pattern, req->pattern) != 0) {
            *why = "a durable subscription with this name exists with another pattern";
            return SL_EEXIST;
        }
        /* Take-over: the newest consumer wins; what the previous one had
         * in flight is delivered again to this one. */
        rc = s_rekey(self, sub);
        if (rc)
            return rc;
        if (sub->session)
            s_detach(self, sub);
    }
    else {
        if (self->subs.n >= self->opts.max_subscriptions) {
            *why = "too many subscriptions (limits/max_subscriptions)";
            return SL_EBUSY;
        }
        rc = s_sub_new(self, &sub);
        if (rc)
            return rc;
        sub->ephemeral = req->ephemeral;
        if (sub->ephemeral)
            snprintf(sub->name, sizeof sub->name, "_ephemeral.%u", self->next_sub_id + 1);
        else
            snprintf(sub->name, sizeof sub->name, "%s", req->name);
        snprintf(sub->pattern, sizeof sub->pattern, "%s", req->pattern);
        /* The owner is the broker's to set: req->owner is ignored. */
        if (!sub->ephemeral)
            snprintf(sub->owner, sizeof sub->owner, "%s", owner ? owner : "");
        sub->ack_wait_ms = req->ack_wait_ms ? req->ack_wait_ms : self->opts.ack_wait_ms;
        sub->max_deliver = req->max_deliver ? req->max_deliver : self->opts.max_deliver;
        sub->start = req->start;
        sub->start_offset = req->start_offset;
        sub->start_time_us = req->start_time_us;
        rc = s_sub_match_all(self, sub, NULL);
        if (rc == 0)
            rc = s_register(self, sub);
        if (rc) {
            s_sub_free(&sub);
            return rc;
        }
        if (!sub->ephemeral) {
            sub->config_dirty = true;
            for (size_t i = 0; i < sub->ntopics; i++)
                sub->topics[i].dirty = true;
            s_mark_dirty(self, sub);
        }
    }
    sub->session = session;
    sub->subscribed_at = self->replies_sent;
    s_acct_attach(self, sub, session);
    sub->credit = req->credit ? req->credit : S_DEFAULT_CREDIT;
    s_wake(self, sub);
    reply->name = sub->name;
    reply->sub_id = sub->sub_id;
    reply->ack_wait_ms = sub->ack_wait_ms;
    reply->max_deliver = sub->max_deliver;
    return 0;
}

static int s_remove_sub(sld_delivery_t *self, s_sub_t *sub)
{
    if (!sub->ephemeral) {
        int rc = slc_grow((void **) &self->removed, &self->capremoved,
                        self->nremoved + 1, sizeof(char *));
        char *name = rc ? NULL : strdup(sub->name);
        if (!name)
            return SL_ENOMEM;
        self->removed[self->nremoved++] = name;
    }
    s_unregister(self, sub);
    s_sub_free(&sub);
    return 0;
}

int sld_delivery_unsubscribe(sld_delivery_t *self, sld_session_t *session,
                             uint32_t sub_id, bool remove)
{
    s_sub_t *sub = s_by_id(self, session, sub_id);
    if (!sub)
        return SL_ENOTFOUND;
    if (remove || sub->ephemeral)
        return s_remove_sub(self, sub);
    s_detach(self, sub);
    return 0;
}

int sld_delivery_remove(sld_delivery_t *self, const char *name)
{
    s_sub_t *sub = zhashx_lookup(self->by_name, name);
    return sub ? s_remove_sub(self, sub) : SL_ENOTFOUND;
}

int sld_delivery_lookup(sld_delivery_t *self, sld_session_t *session, uint32_t sub_id,
                        const char *name, sld_sub_ref_t *out)
{
    s_sub_t *sub = name ? zhashx_lookup(self->by_name, name) : s_by_id(self, session, sub_id);
    if (!sub)
        return SL_ENOTFOUND;
    out->name = sub->name;
    out->pattern = sub->pattern;
    out->owner = sub->owner;
    out->ephemeral = sub->ephemeral;
    return 0;
}

int sld_delivery_claim(sld_delivery_t *self, const char *name, const char *owner)
{
    s_sub_t *sub = zhashx_lookup(self->by_name, name);
    if (!sub)
        return SL_ENOTFOUND;
    if (sub->owner[0])
        return SL_EEXIST;
    s_mark_dirty(self, sub);
    if (!sub->dirty)
        return SL_ENOMEM;
    snprintf(sub->owner, sizeof sub->owner, "%s", owner);
    sub->config_dirty = true;
    return 0;
}

int sld_delivery_credit(sld_delivery_t *self, sld_session_t *session,
                        uint32_t sub_id, uint32_t credit)
{
    s_sub_t *sub = s_by_id(self, session, sub_id);
    if (!sub)
        return SL_ENOTFOUND;
    sub->credit += credit;
    if (sub->ephemeral)
        s_eph_paid(self, sub, credit);
    s_wake(self, sub);
    return 0;
}

/* OFFSET of ST is acked (or dead-lettered): advance the floor over every
 * contiguous acked offset and remember what to persist. */
static int s_mark_acked(sld_delivery_t *self, s_sub_t *sub, s_subtopic_t *st,
                        uint64_t offset)
{
    int rc = 0;
    if (offset == st->floor) {
        st->floor++;
        while (st->acked.n && st->acked.v[st->acked.head] <= st->floor) {
            if (st->acked.v[st->acked.head] == st->floor)
                st->floor++;
            st->acked.head++;
            st->acked.n--;
        }
        if (st->acked.n == 0)
            st->acked.head = 0;
    }
    else if (offset > st->floor) {
        rc = s_oset_add(&st->acked, offset);
        if (rc == 0)
            rc = slc_grow((void **) &st->fresh, &st->capfresh, st->nfresh + 1,
                        sizeof(uint64_t));
        if (rc == 0)
            st->fresh[st->nfresh++] = offset;
    }
    st->dirty = true;
    s_mark_dirty(self, sub);
    return rc;
}

static bool s_is_acked(const s_subtopic_t *st, uint64_t offset)
{
    return offset < st->floor || s_oset_has(&st->acked, offset);
}

/* Acks under an id a take-over replaced: each is refused as superseded
 * (SL_ESTALE) unless its offset is acked by now. SL_ENOTFOUND when the id
 * was never this session's. */
static int s_ack_retired(sld_delivery_t *self, sld_session_t *session,
                         uint32_t sub_id, Sluice__AckItem *const *items, size_t n,
                         sld_refusal_t *refused, size_t *nrefused)
{
    char key[16];
    snprintf(key, sizeof key, "%u", sub_id);
    const s_retired_t *r = zhashx_lookup(self->retired, key);
    if (!r || r->session != session)
        return SL_ENOTFOUND;
    s_sub_t *sub = zhashx_lookup(self->by_name, r->name);
    for (size_t i = 0; i < n; i++) {
        const Sluice__AckItem *it = items[i];
        s_subtopic_t *st = sub ? s_subtopic_find(sub, it->topic_id) : NULL;
        if (st && s_is_acked(st, it->offset))
            continue;
        refused[*nrefused] = (sld_refusal_t) { it->topic_id, it->offset, it->token,
                                               SL_ESTALE };
        (*nrefused)++;
        sld_metrics_add(self->metrics, SLD_M_ACKS_REFUSED, 1);
    }
    return 0;
}

int sld_delivery_ack(sld_delivery_t *self, sld_session_t *session,
                     uint32_t sub_id, Sluice__AckItem *const *items, size_t n,
                     bool nack, uint32_t delay_ms, uint32_t credit,
                     sld_refusal_t *refused, size_t *nrefused)
{
    *nrefused = 0;
    s_sub_t *sub = s_by_id(self, session, sub_id);
    if (!sub)
        return s_ack_retired(self, session, sub_id, items, n, refused, nrefused);
    uint64_t now = slc_mono_ms();
    for (size_t i = 0; i < n; i++) {
        const Sluice__AckItem *it = items[i];
        int code = 0;
        s_subtopic_t *st = sub->ephemeral ? NULL : s_subtopic_find(sub, it->topic_id);
        s_flight_t *f = st ? s_flight_get(&sub->flight, it->topic_id, it->offset) : NULL;
        if (!st)
            code = SL_ENOTFOUND;
        else if (f && f->token == it->token) {
            if (!nack) {
                s_forget(self, sub, f);
                if (s_mark_acked(self, sub, st, it->offset) != 0)
                    code = SL_ENOMEM;
                else {
                    sub->acked++;
                    sld_metrics_add(self->metrics, SLD_M_ACKED, 1);
                }
            }
            else {
                sld_metrics_add(self->metrics, SLD_M_NACKS, 1);
                f->nacked = true;
                s_set_state(self, sub, f, S_DELAYED);
                f->deadline = now + delay_ms;
                s_timer_t t = { f->deadline, f->offset, f->token, f->topic_id };
                /* The timer decides between redelivery and the DLQ, also
                 * for delay 0; the next pump sees it due at once. */
                if (s_timer_arm(sub, t) != 0)
                    code = SL_ENOMEM;
                self->next_timer_check = now;
            }
        }
        else if (!f && s_is_acked(st, it->offset))
            code = 0;           /* acks are idempotent */
        else if (!f && it->offset >= st->next)
            code = SL_ENOTFOUND;    /* never delivered to this subscription */
        else
            code = SL_ESTALE;       /* delivered once, superseded since */
        if (code) {
            refused[*nrefused] = (sld_refusal_t) { it->topic_id, it->offset, it->token, code };
            (*nrefused)++;
            sld_metrics_add(self->metrics, SLD_M_ACKS_REFUSED, 1);
        }
    }
    sub->credit += credit;
    if (sub->ephemeral)
        s_eph_paid(self, sub, credit);
    s_wake(self, sub);
    return 0;
}

void sld_delivery_session_gone(sld_delivery_t *self, sld_session_t *session)
{
    /* Its retired ids go with it (deleting restarts the walk). */
    bool again = true;
    while (again) {
        again = false;
        for (s_retired_t *r = zhashx_first(self->retired); r; r = zhashx_next(self->retired))
            if (r->session == session) {
                zhashx_delete(self->retired, zhashx_cursor(self->retired));
                again = true;
                break;
            }
    }
    for (size_t i = 0; i < self->subs.n;) {
        s_sub_t *sub = self->subs.v[i];
        if (sub->session != session) {
            i++;
            continue;
        }
        if (sub->ephemeral) {
            s_unregister(self, sub);    /* swaps the last into slot i */
            s_sub_free(&sub);
            continue;
        }
        s_detach(self, sub);
        i++;
    }
}

void sld_delivery_topic_appended(sld_delivery_t *self, uint32_t id)
{
    s_discover(self, id);
    if (id >= self->ntopic_subs || !self->topic_subs[id].known)
        return;
    s_subvec_t *vec = &self->topic_subs[id];
    for (size_t i = 0; i < vec->n; i++)
        s_wake(self, vec->v[i]);
}

/* ------------------------------------------------------------------ send */

/* Send the N items to SUB's consumer. A full connection queue
 * (SL_EBUSY) drops the frame: for an ephemeral subscription its messages
 * are counted as dropped and their bytes no longer owed; a durable one's
 * attempts come back after ack_wait, like any lost delivery. */
static int s_send_items(sld_delivery_t *self, s_sub_t *sub, size_t n)
{
    Sluice__Deliver deliver = SLUICE__DELIVER__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    deliver.n_msgs = n;
    deliver.msgs = self->item_ptrs;
    frame.body_case = SLUICE__FRAME__BODY_DELIVER;
    frame.deliver = &deliver;
    int rc = self->outbox.send(self->outbox.arg, sub->session, &frame);
    if (rc == SL_EBUSY && sub->ephemeral) {
        s_lens_t *r = &sub->owed;
        uint64_t freed = 0;
        for (size_t i = 0; i < n && r->n > 0; i++)
            freed += r->v[(r->head + --r->n) % r->cap];
        s_eph_release(self, sub, freed);
        sub->delivered -= n;
        sub->dropped += n;
        sld_metrics_add(self->metrics, SLD_M_EPHEMERAL_DROPPED, n);
    }
    return rc;
}

static void s_item(sld_delivery_t *self, size_t i, s_sub_t *sub, uint32_t topic_id,
                   const char *topic, uint64_t offset, uint64_t token,
                   uint32_t attempt, const void *env, size_t len)
{
    Sluice__Delivery *d = &self->items[i];
    sluice__delivery__init(d);
    d->sub_id = sub->sub_id;
    d->topic_id = topic_id;
    d->topic = (char *) topic;
    d->offset = offset;
    d->token = token;
    d->attempt = attempt;
    d->envelope.data = (uint8_t *) env;
    d->envelope.len = len;
}

/* Find the next never-delivered message of SUB, round-robin over topics.
 * Returns the subtopic or NULL when every topic is drained. */
static s_subtopic_t *s_next_new(sld_delivery_t *self, s_sub_t *sub)
{
    for (size_t k = 0; k < sub->ntopics; k++) {
        size_t i = (sub->rr + k) % sub->ntopics;
        s_subtopic_t *st = &sub->topics[i];
        const sld_topic_info_t *info = sld_store_topic_by_id(self->store, st->topic_id);
        if (!info)
            continue;
        if (st->next < info->first_offset)
            st->next = info->first_offset;
        while (st->next < info->next_offset && !sub->ephemeral
               && (s_is_acked(st, st->next)
                   || s_flight_get(&sub->flight, st->topic_id, st->next)))
            st->next++;
        if (st->next < info->next_offset) {
            sub->rr = (i + 1) % sub->ntopics;
            return st;
        }
    }
    return NULL;
}

/* Retention removed offsets below the topic's first: they count as acked. */
static void s_catch_up_floor(sld_delivery_t *self, s_sub_t *sub, s_subtopic_t *st)
{
    const sld_topic_info_t *info = sld_store_topic_by_id(self->store, st->topic_id);
    if (!info || st->floor >= info->first_offset)
        return;
    st->floor = info->first_offset;
    while (st->acked.n && st->acked.v[st->acked.head] < st->floor) {
        st->acked.head++;
        st->acked.n--;
    }
    st->dirty = true;
    s_mark_dirty(self, sub);
}

static int s_queue_dlq(sld_delivery_t *self, const s_sub_t *sub, uint32_t topic_id,
                       uint64_t offset, uint32_t attempts, bool nacked, bool unreadable)
{
    int rc = slc_grow((void **) &self->dlq, &self->capdlq, self->ndlq + 1, sizeof(s_dlq_t));
    if (rc)
        return rc;
    s_dlq_t *d = &self->dlq[self->ndlq++];
    snprintf(d->sub, sizeof d->sub, "%s", sub->name);
    d->topic_id = topic_id;
    d->offset = offset;
    d->attempts = attempts;
    d->nacked = nacked;
    d->unreadable = unreadable;
    d->why = NULL;
    return 0;
}

/* OFFSET of ST is stored but did not read, open, verify or decode
 * (damaged, or sealed with a key this broker lacks; WHY, static text,
 * says which). It cannot be delivered, and skipping it would lose a
 * stored message without a trace: a durable subscription dead-letters it
 * (an empty copy whose dlq-reason says why, and the advisory) and counts
 * it as acked; an ephemeral one only counts it. Non-zero (out of memory)
 * leaves everything as it was, for a later pump. */
static int s_unreadable(sld_delivery_t *self, s_sub_t *sub, s_subtopic_t *st,
                        uint64_t offset, uint32_t attempts, const char *why)
{
    if (!sub->ephemeral) {
        int rc = s_queue_dlq(self, sub, st->topic_id, offset, attempts, false, true);
        if (rc)
            return rc;
        self->dlq[self->ndlq - 1].why = why;
        (void) s_mark_acked(self, sub, st, offset);
        sub->dead_lettered++;
        sld_metrics_add(self->metrics, SLD_M_DEAD_LETTERED, 1);
    }
    sld_metrics_add(self->metrics, SLD_M_UNREADABLE, 1);
    return 0;
}

/* Read OFFSET of topic ID for delivery. A record stored without a
 * checksum (before format 4: nothing vouches for its bytes) must also
 * decode, or it is unreadable too: the consumer could only drop it
 * unacked, and the subscription would stick at it. *WHY (static text)
 * says why a read failed with SL_ESTORE. */
static int s_read(sld_txn_t *txn, uint32_t id, uint64_t offset, const void **env,
                  size_t *len, const char **why)
{
    int rc = sld_store_read(txn, id, offset, env, len, NULL);
    *why = rc == SL_ESTORE ? sld_txn_why(txn) : NULL;
    if (rc == 0 && !sld_txn_verified(txn)) {
        Sluice__Envelope *e = NULL;
        if (slc_envelope_decode(*env, *len, &e) != 0) {
            rc = SL_ESTORE;
            *why = "does not decode as an envelope (stored without a checksum)";
        }
        slc_envelope_free(&e);
    }
    return rc;
}

/* Reading OFFSET of ST (NULL: SUB no longer has the topic) returned RC
 * (WHY: s_read's). True when the pump must stop and try again later: out
 * of memory, here or while dead-lettering an unreadable record, a read
 * transaction worn out by damage (SL_EBUSY: the pump begins a new one),
 * or any failure AHEAD (while a commit is under way nothing may be
 * skipped or dead-lettered). False when the offset is done with: read (RC
 * 0), trimmed by retention or never stored (SL_ENOTFOUND: below the
 * topic's first offset), or dead-lettered: anything else is a record that
 * should be there and does not read. */
static bool s_read_later(sld_delivery_t *self, s_sub_t *sub, s_subtopic_t *st,
                         uint64_t offset, uint32_t attempts, int rc, const char *why,
                         bool ahead)
{
    if (rc == SL_EBUSY)
        self->renew = true;
    if (rc == SL_ENOMEM || rc == SL_EBUSY || (rc && ahead))
        return true;
    return rc != 0 && rc != SL_ENOTFOUND && st
        && s_unreadable(self, sub, st, offset, attempts, why) != 0;
}

/* Deliver what SUB's credit allows. Returns true while it may have more.
 * AHEAD (sld_delivery_pump_ahead): a record that does not read stops the
 * subscription's turn instead of being skipped or dead-lettered. */
static bool s_pump_sub(sld_delivery_t *self, s_sub_t *sub, sld_txn_t *txn,
                       uint64_t now, bool ahead)
{
    size_t n = 0, bytes = 0;
    size_t limit_bytes = (size_t) self->opts.max_message_bytes + 65536;
    bool more = true;
    bool retry = false;         /* a read to try again: stay awake for it */
    while (sub->credit > 0 && n < self->opts.deliver_batch && bytes < limit_bytes) {
        const void *env;
        size_t len;
        s_flight_t *f = NULL;
        s_subtopic_t *st = NULL;
        while (sld_due_size(&sub->ready)) {
            sld_due_key_t k = sld_due_first(&sub->ready);
            f = s_flight_get(&sub->flight, k.topic_id, k.offset);
            if (f && f->state == S_READY)
                break;
            f = NULL;
        }
        if (f) {
            const char *why;
            int rc = s_read(txn, f->topic_id, f->offset, &env, &len, &why);
            if (rc) {
                /* Trimmed by retention while waiting: nothing to redeliver.
                 * Unreadable: dead-lettered. Out of memory: a later pump. */
                st = s_subtopic_find(sub, f->topic_id);
                if (s_read_later(self, sub, st, f->offset, f->attempt, rc, why, ahead)) {
                    /* Back first again; the slot just freed takes it. */
                    (void) sld_due_add(&sub->ready, f->topic_id, f->offset);
                    more = false;
                    retry = true;
                    break;
                }
                s_forget(self, sub, f);
                if (st)
                    s_catch_up_floor(self, sub, st);
                continue;
            }
            if (s_no_room(self, sub, len)) {
                (void) sld_due_add(&sub->ready, f->topic_id, f->offset);
                more = false;
                break;
            }
            f->attempt++;
            sub->redelivered++;
            sld_metrics_add(self->metrics, SLD_M_REDELIVERED, 1);
        }
        else {
            if (!sub->ephemeral && sub->flight.count >= self->opts.max_inflight) {
                more = false;
                break;
            }
            st = s_next_new(self, sub);
            if (!st) {
                more = false;
                break;
            }
            uint64_t off = st->next;
            const char *why;
            int rc = s_read(txn, st->topic_id, off, &env, &len, &why);
            if (s_read_later(self, sub, st, off, 0, rc, why, ahead)) {
                more = false;       /* the next pump tries again */
                retry = true;
                break;
            }
            if (rc) {
                st->next++;         /* trimmed, or dead-lettered as unreadable */
                s_catch_up_floor(self, sub, st);
                continue;
            }
            if (s_no_room(self, sub, len) || (sub->ephemeral && s_eph_sent(sub, len) != 0)) {
                more = false;
                break;
            }
            st->next++;
            sub->delivered++;
            sld_metrics_add(self->metrics, SLD_M_DELIVERED, 1);
            if (!sub->ephemeral) {
                f = s_flight_put(&sub->flight, st->topic_id, off);
                f->attempt = 1;
            }
            else {
                const sld_topic_info_t *info = sld_store_topic_by_id(self->store, st->topic_id);
                s_item(self, n++, sub, st->topic_id, info->name, off, 0, 1, env, len);
                bytes += len;
                sub->credit--;
                continue;
            }
        }
        f->len = (uint32_t) len;
        s_set_state(self, sub, f, S_SENT);
        f->nacked = false;
        f->token = ++self->next_token;
        f->deadline = now + sub->ack_wait_ms;
        s_timer_t t = { f->deadline, f->offset, f->token, f->topic_id };
        if (s_timer_arm(sub, t) != 0) {
            more = false;
            break;
        }
        const sld_topic_info_t *info = sld_store_topic_by_id(self->store, f->topic_id);
        s_item(self, n++, sub, f->topic_id, info ? info->name : "", f->offset,
               f->token, f->attempt, env, len);
        bytes += len;
        sub->credit--;
    }
    if (n && s_send_items(self, sub, n) != 0)
        return false;       /* the server will report the session gone */
    /* A read put off (out of memory, worn-out transaction, or a damaged
     * record met ahead of a commit, which only the pump after it may
     * dead-letter) keeps the subscription awake: nothing else may wake
     * it when every other message is acked. */
    return (more && sub->credit > 0) || retry;
}

static void s_expire(sld_delivery_t *self, s_sub_t *sub, uint64_t now)
{
    while (sub->timers.n && sub->timers.v[0].deadline <= now) {
        s_timer_t t = s_heap_pop(&sub->timers);
        s_flight_t *f = s_timer_flight(sub, &t);
        if (!f)
            continue;
        if (f->attempt >= sub->max_deliver) {
            s_subtopic_t *st = s_subtopic_find(sub, f->topic_id);
            if (s_queue_dlq(self, sub, f->topic_id, f->offset, f->attempt, f->nacked,
                            false) != 0 || !st)
                continue;
            sub->dead_lettered++;
            sld_metrics_add(self->metrics, SLD_M_DEAD_LETTERED, 1);
            uint64_t off = f->offset;
            s_forget(self, sub, f);
            s_mark_acked(self, sub, st, off);
            continue;
        }
        if (sld_due_add(&sub->ready, f->topic_id, f->offset) != 0)
            continue;
        s_set_state(self, sub, f, S_READY);
        s_wake(self, sub);
    }
}

/* One Deliver frame for each awake subscription that can take one. */
static void s_pump_awake(sld_delivery_t *self, uint64_t now_ms, bool ahead)
{
    if (self->awake.n == 0)
        return;
    sld_txn_t *txn = NULL;
    if (sld_store_begin(self->store, false, &txn) != 0)
        return;
    for (size_t i = 0; i < self->awake.n;) {
        s_sub_t *sub = self->awake.v[i];
        /* Ahead of the replies: not before its SubscribeOk is out. */
        if (ahead && sub->subscribed_at == self->replies_sent) {
            i++;
            continue;
        }
        bool more = sub->session && s_pump_sub(self, sub, txn, now_ms, ahead);
        if (self->renew) {
            /* Damage wore the read transaction out (SL_EBUSY): a new one
             * for the rest, and this subscription stays awake to go on. */
            self->renew = false;
            more = sub->session != NULL;
            sld_txn_abort(&txn);
            if (sld_store_begin(self->store, false, &txn) != 0)
                return;
        }
        if (more) {
            i++;
            continue;
        }
        sub->awake = false;
        self->awake.v[i] = self->awake.v[--self->awake.n];
    }
    sld_txn_abort(&txn);
}

void sld_delivery_replies_sent(sld_delivery_t *self)
{
    self->replies_sent++;
}

bool sld_delivery_awake(const sld_delivery_t *self)
{
    return self->awake.n > 0;
}

void sld_delivery_pump_ahead(sld_delivery_t *self, uint64_t now_ms)
{
    s_pump_awake(self, now_ms, true);
}

int sld_delivery_pump(sld_delivery_t *self, uint64_t now_ms)
{
    if (now_ms >= self->next_timer_check) {
        for (size_t i = 0; i < self->subs.n; i++)
            s_expire(self, self->subs.v[i], now_ms);
        self->next_timer_check = now_ms + S_TIMER_CHECK_MS;
    }
    s_pump_awake(self, now_ms, false);
    if (self->awake.n)
        return 0;
    uint64_t next = now_ms + 1000;
    for (size_t i = 0; i < self->subs.n; i++) {
        s_heap_t *h = &self->subs.v[i]->timers;
        if (h->n && h->v[0].deadline < next)
            next = h->v[0].deadline;
    }
    return next <= now_ms ? 0 : (int) (next - now_ms);
}

/* ------------------------------------------------------------- transient */

/* Does SUB's pattern match the topic of MSGS[I]? A batch mostly holds one
 * topic: *LAST (start with NULL) and *HIT carry the previous answer. */
static bool s_transient_match(const s_sub_t *sub, Sluice__Envelope *const *msgs,
                              size_t i, const char **last, bool *hit)
{
    const char *topic = msgs[i]->topic;
    if (!*last || strcmp(*last, topic) != 0) {
        *hit = slc_pattern_match(sub->pattern, topic);
        *last = topic;
    }
    return *hit;
}

void sld_delivery_transient(sld_delivery_t *self,
                            Sluice__Envelope *const *msgs, size_t n)
{
    for (size_t s = 0; s < self->subs.n; s++) {
        s_sub_t *sub = self->subs.v[s];
        if (!sub->ephemeral || !sub->session)
            continue;
        size_t k = 0, bytes = 0, need = 0;
        const char *last = NULL;
        bool hit = false;
        for (size_t i = 0; i < n; i++)
            if (s_transient_match(sub, msgs, i, &last, &hit))
                need += slc_envelope_size(msgs[i]);
        if (need == 0)
            continue;
        if (slc_grow((void **) &self->scratch, &self->scratch_cap, need, 1) != 0)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (!s_transient_match(sub, msgs, i, &last, &hit))
                continue;
            size_t len = slc_envelope_size(msgs[i]);
            if (sub->credit == 0 || s_no_room(self, sub, len) || s_eph_sent(sub, len) != 0) {
                sub->dropped++;
                sld_metrics_add(self->metrics, SLD_M_EPHEMERAL_DROPPED, 1);
                continue;
            }
            /* Delivery.topic stays empty: it is the envelope's own (a
             * fifth of each transient delivery's bytes, all encrypted). */
            slc_envelope_pack(msgs[i], self->scratch + bytes);
            s_item(self, k++, sub, 0, "", 0, 0, 1, self->scratch + bytes, len);
            bytes += len;
            sub->credit--;
            sub->delivered++;
            if (k == self->opts.deliver_batch) {
                s_send_items(self, sub, k);
                k = 0;
                bytes = 0;
            }
        }
        if (k)
            s_send_items(self, sub, k);
    }
    sld_metrics_add(self->metrics, SLD_M_TRANSIENT, n);
}

/* --------------------------------------------------------------- persist */

bool sld_delivery_dirty(const sld_delivery_t *self)
{
    return self->dirty.n || self->nremoved || self->ndlq;
}

static int s_note_appended(sld_delivery_t *self, uint32_t id)
{
    for (size_t i = 0; i < self->nappended; i++)
        if (self->appended[i] == id)
            return 0;
    int rc = slc_grow((void **) &self->appended, &self->capappended,
                    self->nappended + 1, sizeof(uint32_t));
    if (rc == 0)
        self->appended[self->nappended++] = id;
    return rc;
}

static int s_collect_below(uint64_t offset, void *arg)
{
    void **ctx = arg;
    uint64_t limit = *(uint64_t *) ctx[0];
    if (offset >= limit)
        return 1;
    s_oset_t *out = ctx[1];
    return s_oset_add(out, offset);
}

static int s_persist_subtopic(sld_txn_t *txn, s_sub_t *sub, s_subtopic_t *st)
{
    int rc = sld_store_cursor_put(txn, sub->name, st->topic_id, st->floor);
    for (size_t i = 0; rc == 0 && i < st->nfresh; i++)
        if (st->fresh[i] >= st->floor) {
            rc = sld_store_acked_put(txn, sub->name, st->topic_id, st->fresh[i]);
            st->persisted_acked++;
        }
    if (rc == 0 && st->persisted_acked && st->floor > st->persisted_floor) {
        s_oset_t below = { 0 };
        uint64_t limit = st->floor;
        void *ctx[2] = { &limit, &below };
        rc = sld_store_acked_foreach(txn, sub->name, st->topic_id,
                                     st->persisted_floor, s_collect_below, ctx);
        if (rc == 1)
            rc = 0;
        for (size_t i = 0; rc == 0 && i < below.n; i++) {
            rc = sld_store_acked_del(txn, sub->name, st->topic_id, below.v[i]);
            if (st->persisted_acked)
                st->persisted_acked--;
        }
        free(below.v);
    }
    return rc;
}

static int s_persist_dlq(sld_delivery_t *self, sld_txn_t *txn, const s_dlq_t *d)
{
    char topic[SLC_TOPIC_MAX + 8];     /* names are <= 200 bytes: always fits */
    snprintf(topic, sizeof topic, "_dlq.%s", d->sub);
    const sld_topic_info_t *src = sld_store_topic_by_id(self->store, d->topic_id);
    const char *src_name = src ? src->name : "";
    char reason[256], offset[32], attempts[16];
    if (d->unreadable)
        snprintf(reason, sizeof reason, "stored record unreadable (%s)", d->why ? d->why
                 : "damaged, or sealed with a key this broker does not have");
    else
        snprintf(reason, sizeof reason, "%s %u times without ack (max_deliver)",
                 d->nacked ? "nacked" : "delivered", d->attempts);
    snprintf(offset, sizeof offset, "%llu", (unsigned long long) d->offset);
    snprintf(attempts, sizeof attempts, "%u", d->attempts);

    const void *env = NULL;
    const char *why;
    size_t len = 0;
    Sluice__Envelope *e = NULL;
    bool decoded = false;       /* E is slc_envelope_decode's, else calloc's */
    uint8_t *buf = NULL;
    uint32_t dlq_id, adv_id;
    uint64_t dlq_off, adv_off, now = slc_now_us();
    int rc = 0;
    sld_txn_t *rtxn = NULL;
    /* The original, for the copy, in a read transaction of its own: a
     * damaged page met here must not poison TXN, which holds the acks and
     * publishes of this commit. One that did not read before, was trimmed
     * meanwhile or does not read now gets an empty copy; the headers and
     * the advisory still say which message it was. */
    if (!d->unreadable && sld_store_begin(self->store, false, &rtxn) == 0
        && s_read(rtxn, d->topic_id, d->offset, &env, &len, &why) == 0
        && slc_envelope_decode(env, len, &e) == 0)
        decoded = true;
    sld_txn_abort(&rtxn);
    if (!decoded) {
        e = calloc(1, sizeof(Sluice__Envelope));
        if (!e)
            return SL_ENOMEM;
        sluice__envelope__init(e);
    }
    Sluice__Header hs[5];
    Sluice__Header *hp[5];
    const char *keys[5] = { "dlq-reason", "dlq-subscription", "dlq-topic",
                            "dlq-offset", "dlq-attempts" };
    const char *vals[5] = { reason, d->sub, src_name, offset, attempts };
    Sluice__Header **all = calloc(e->n_headers + 5, sizeof(Sluice__Header *));
    if (!all) {
        rc = SL_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < e->n_headers; i++)
        all[i] = e->headers[i];
    for (int i = 0; i < 5; i++) {
        sluice__header__init(&hs[i]);
        hs[i].key = (char *) keys[i];
        hs[i].value = (char *) vals[i];
        hp[i] = &hs[i];
        all[e->n_headers + i] = hp[i];
    }
    Sluice__Envelope out = *e;
    out.topic = topic;
    out.headers = all;
    out.n_headers = e->n_headers + 5;
    out.ingest_ts_us = now;
    /* The DLQ copy is not the producer's message: no producer identity, so
     * it cannot collide with the original sequence. */
    out.producer_id.len = 0;
    out.seq = 0;
    size_t plen = sluice__envelope__get_packed_size(&out);
    buf = malloc(plen ? plen : 1);
    if (!buf) {
        free(all);
        rc = SL_ENOMEM;
        goto done;
    }
    sluice__envelope__pack(&out, buf);
    free(all);
    rc = sld_store_topic_ensure(txn, topic, &dlq_id);
    if (rc == 0)
        rc = sld_store_append(txn, dlq_id, now, buf, plen, &dlq_off);
    if (rc)
        goto done;
    s_note_appended(self, dlq_id);

    /* Advisory: a small JSON document operators can alert on. */
    char json[1024];
    int jl = snprintf(json, sizeof json,
        "{\"subscription\":\"%s\",\"topic\":\"%s\",\"offset\":%llu,"
        "\"attempts\":%u,\"reason\":\"%s\",\"dlq_topic\":\"%s\",\"dlq_offset\":%llu}",
        d->sub, src_name, (unsigned long long) d->offset, d->attempts, reason,
        topic, (unsigned long long) dlq_off);
    Sluice__Envelope adv = SLUICE__ENVELOPE__INIT;
    adv.topic = "_advisory.dlq";
    adv.content_type = "application/json";
    adv.payload.data = (uint8_t *) json;
    adv.payload.len = (size_t) jl;
    adv.ingest_ts_us = now;
    adv.source = "sluiced";
    uint8_t advbuf[1200];
    size_t alen = sluice__envelope__pack(&adv, advbuf);
    rc = sld_store_topic_ensure(txn, adv.topic, &adv_id);
    if (rc == 0)
        rc = sld_store_append(txn, adv_id, now, advbuf, alen, &adv_off);
    if (rc == 0)
        s_note_appended(self, adv_id);
done:
    free(buf);
    /* Only a decoded envelope is freed by slc_envelope_free: it finds its
     * arena in front of the message, which a calloc'd one does not have
     * (that was glibc's "double free or corruption (out)" when a record
     * that had failed to read in the pump read in this transaction). */
    if (decoded)
        slc_envelope_free(&e);
    else
        free(e);
    return rc;
}

int sld_delivery_persist(sld_delivery_t *self, sld_txn_t *txn)
{
    int rc = 0;
    self->nappended = 0;
    for (size_t i = 0; rc == 0 && i < self->nremoved; i++) {
        rc = sld_store_sub_delete(txn, self->removed[i]);
        if (rc == SL_ENOTFOUND)
            rc = 0;
    }
    for (size_t i = 0; rc == 0 && i < self->dirty.n; i++) {
        s_sub_t *sub = self->dirty.v[i];
        if (sub->config_dirty) {
            Sluice__Subscribe cfg = SLUICE__SUBSCRIBE__INIT;
            cfg.name = sub->name;
            cfg.pattern = sub->pattern;
            cfg.owner = sub->owner;
            cfg.start = sub->start;
            cfg.ack_wait_ms = sub->ack_wait_ms;
            cfg.max_deliver = sub->max_deliver;
            uint8_t buf[1024];
            size_t len = sluice__subscribe__pack(&cfg, buf);
            rc = sld_store_sub_put(txn, sub->name, buf, len);
        }
        for (size_t k = 0; rc == 0 && k < sub->ntopics; k++)
            if (sub->topics[k].dirty)
                rc = s_persist_subtopic(txn, sub, &sub->topics[k]);
    }
    for (size_t i = 0; rc == 0 && i < self->ndlq; i++)
        rc = s_persist_dlq(self, txn, &self->dlq[i]);
    return rc;
}

void sld_delivery_persisted(sld_delivery_t *self, bool ok)
{
    if (!ok) {
        /* Everything stays pending for the next transaction. The
         * persisted_acked counts may now be too high; that only costs one
         * extra (empty) range walk later. */
        self->nappended = 0;
        return;
    }
    for (size_t i = 0; i < self->nremoved; i++)
        free(self->removed[i]);
    self->nremoved = 0;
    for (size_t i = 0; i < self->dirty.n; i++) {
        s_sub_t *sub = self->dirty.v[i];
        sub->config_dirty = false;
        sub->dirty = false;
        for (size_t k = 0; k < sub->ntopics; k++) {
            s_subtopic_t *st = &sub->topics[k];
            if (!st->dirty)
                continue;
            st->dirty = false;
            st->nfresh = 0;
            st->persisted_floor = st->floor;
        }
    }
    self->dirty.n = 0;
    self->ndlq = 0;
    for (size_t i = 0; i < self->nappended; i++)
        sld_delivery_topic_appended(self, self->appended[i]);
    self->nappended = 0;
}

/* ----------------------------------------------------------------- stats */

int sld_delivery_stats(sld_delivery_t *self, Sluice__SubInfo ***subs, size_t *n)
{
    *n = 0;
    *subs = calloc(self->subs.n + 1, sizeof(Sluice__SubInfo *));
    if (!*subs)
        return SL_ENOMEM;
    for (size_t i = 0; i < self->subs.n; i++) {
        s_sub_t *sub = self->subs.v[i];
        Sluice__SubInfo *si = calloc(1, sizeof(Sluice__SubInfo));
        if (!si) {
            sld_delivery_stats_free(subs, *n);
            return SL_ENOMEM;
        }
        sluice__sub_info__init(si);
        si->name = sub->name;
        si->pattern = sub->pattern;
        si->owner = sub->owner;
        si->ephemeral = sub->ephemeral;
        si->attached = sub->session != NULL;
        for (size_t k = 0; k < sub->ntopics; k++) {
            const s_subtopic_t *st = &sub->topics[k];
            const sld_topic_info_t *info = sld_store_topic_by_id(self->store, st->topic_id);
            si->cursor += st->floor;
            if (info && !sub->ephemeral && info->next_offset > st->floor)
                si->lag += info->next_offset - st->floor - st->acked.n;
            else if (info && sub->ephemeral && info->next_offset > st->next)
                si->lag += info->next_offset - st->next;
        }
        si->in_flight = (uint32_t) sub->flight.count;
        si->delivered = sub->delivered;
        si->redelivered = sub->redelivered;
        si->dead_lettered = sub->dead_lettered;
        si->acked = sub->acked;
        si->dropped = sub->dropped;
        (*subs)[(*n)++] = si;
    }
    return 0;
}

void sld_delivery_stats_free(Sluice__SubInfo ***subs, size_t n)
{
    if (!subs || !*subs)
        return;
    for (size_t i = 0; i < n; i++)
        free((*subs)[i]);
    free(*subs);
    *subs = NULL;
}
