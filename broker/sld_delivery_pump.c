/*  sld_delivery_pump - credit and the pump: for each awake subscription,
 *  what its credit, max_inflight and the byte budget let it take (due
 *  redeliveries first, then new messages round-robin over its topics), in
 *  Deliver frames of at most deliver_batch messages, through the outbox;
 *  records that do not read are dead-lettered. Broker thread; the sending
 *  half, sld_delivery_pump_ahead, runs on the helper thread while the
 *  broker thread waits on an fsync (sld_commit_finish runs it during
 *  sld_txn_sync_lmdb): then it expires nothing and skips or dead-letters nothing. It writes nothing.  */
#include "sld_delivery_int.h"

#define S_TIMER_CHECK_MS 10

/* Send the N items to SUB's consumer. A full connection queue
 * (SL_EBUSY) drops the frame: for an ephemeral subscription its messages
 * are counted as dropped and their bytes no longer owed; a durable one's
 * attempts come back after ack_wait, like any lost delivery. */
int sld_delivery__send_items(sld_delivery_t *self, sld_delivery_sub_t *sub,
                             size_t n)
{
    Sluice__Deliver deliver = SLUICE__DELIVER__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    deliver.n_msgs = n;
    deliver.msgs = self->item_ptrs;
    frame.body_case = SLUICE__FRAME__BODY_DELIVER;
    frame.deliver = &deliver;
    int rc = self->outbox.send(self->outbox.arg, sub->session, &frame);
    if (rc == SL_EBUSY && sub->ephemeral) {
        sld_delivery_lens_t *r = &sub->owed;
        uint64_t freed = 0;
        for (size_t i = 0; i < n && r->n > 0; i++)
            freed += r->v[(r->head + --r->n) % r->cap];
        sld_delivery__eph_release(self, sub, freed);
        sub->delivered -= n;
        sub->dropped += n;
        sld_metrics_add(self->metrics, SLD_M_EPHEMERAL_DROPPED, n);
    }
    return rc;
}

void sld_delivery__item(sld_delivery_t *self, size_t i, sld_delivery_sub_t *sub,
                        uint32_t topic_id, const char *topic, uint64_t offset,
                        uint64_t token, uint32_t attempt, const void *env, size_t len)
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
static sld_delivery_subtopic_t *s_next_new(sld_delivery_t *self, sld_delivery_sub_t *sub)
{
    for (size_t k = 0; k < sub->ntopics; k++) {
        size_t i = (sub->rr + k) % sub->ntopics;
        sld_delivery_subtopic_t *st = &sub->topics[i];
        const sld_topic_info_t *info = sld_store_topic_by_id(self->store, st->topic_id);
        if (!info)
            continue;
        if (st->next < info->first_offset)
            st->next = info->first_offset;
        while (st->next < info->next_offset && !sub->ephemeral
               && (sld_delivery__is_acked(st, st->next)
                   || sld_delivery__flight_get(&sub->flight, st->topic_id, st->next)))
            st->next++;
        if (st->next < info->next_offset) {
            sub->rr = (i + 1) % sub->ntopics;
            return st;
        }
    }
    return NULL;
}

/* Retention removed offsets below the topic's first: they count as acked. */
static void s_catch_up_floor(sld_delivery_t *self, sld_delivery_sub_t *sub,
                             sld_delivery_subtopic_t *st)
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
    sld_delivery__mark_dirty(self, sub);
}

/* OFFSET of ST is stored but did not read, open, verify or decode
 * (damaged, or sealed with a key this broker lacks; WHY, static text,
 * says which). It cannot be delivered, and skipping it would lose a
 * stored message without a trace: a durable subscription dead-letters it
 * (an empty copy whose dlq-reason says why, and the advisory) and counts
 * it as acked; an ephemeral one only counts it. Non-zero (out of memory)
 * leaves everything as it was, for a later pump. */
static int s_unreadable(sld_delivery_t *self, sld_delivery_sub_t *sub,
                        sld_delivery_subtopic_t *st, uint64_t offset, uint32_t attempts,
                        const char *why)
{
    if (!sub->ephemeral) {
        int rc = sld_delivery__queue_dlq(self, sub, st->topic_id, offset, attempts,
                                         false, true, NULL);
        if (rc)
            return rc;
        self->dlq[self->ndlq - 1].why = why;
        (void) sld_delivery__mark_acked(self, sub, st, offset);
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
int sld_delivery__read(sld_txn_t *txn, uint32_t id, uint64_t offset, const void **env,
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
 * (WHY: sld_delivery__read's). True when the pump must stop and try again later: out
 * of memory, here or while dead-lettering an unreadable record, a read
 * transaction worn out by damage (SL_EBUSY: the pump begins a new one),
 * or any failure AHEAD (while a commit is under way nothing may be
 * skipped or dead-lettered). False when the offset is done with: read (RC
 * 0), trimmed by retention or never stored (SL_ENOTFOUND: below the
 * topic's first offset), or dead-lettered: anything else is a record that
 * should be there and does not read. */
static bool s_read_later(sld_delivery_t *self, sld_delivery_sub_t *sub,
                         sld_delivery_subtopic_t *st, uint64_t offset, uint32_t attempts,
                         int rc, const char *why, bool ahead)
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
static bool s_pump_sub(sld_delivery_t *self, sld_delivery_sub_t *sub, sld_txn_t *txn,
                       uint64_t now, bool ahead)
{
    size_t n = 0, bytes = 0;
    size_t limit_bytes = (size_t) self->opts.max_message_bytes + 65536;
    bool more = true;
    bool retry = false;         /* a read to try again: stay awake for it */
    while (sub->credit > 0 && n < self->opts.deliver_batch && bytes < limit_bytes) {
        const void *env;
        size_t len;
        sld_delivery_flight_t *f = NULL;
        sld_delivery_subtopic_t *st = NULL;
        bool rewound = false;   /* an offset a seek made not acked again */
        while (sld_due_size(&sub->ready)) {
            sld_due_key_t k = sld_due_first(&sub->ready);
            f = sld_delivery__flight_get(&sub->flight, k.topic_id, k.offset);
            if (f && f->state == SLD_FLIGHT_READY)
                break;
            f = NULL;
        }
        if (f) {
            const char *why;
            int rc = sld_delivery__read(txn, f->topic_id, f->offset, &env, &len, &why);
            if (rc) {
                /* Trimmed by retention while waiting: nothing to redeliver.
                 * Unreadable: dead-lettered. Out of memory: a later pump. */
                st = sld_delivery__subtopic_find(sub, f->topic_id);
                if (s_read_later(self, sub, st, f->offset, f->attempt, rc, why, ahead)) {
                    /* Back first again; the slot just freed takes it. */
                    (void) sld_due_add(&sub->ready, f->topic_id, f->offset);
                    more = false;
                    retry = true;
                    break;
                }
                sld_delivery__forget(self, sub, f);
                if (st)
                    s_catch_up_floor(self, sub, st);
                continue;
            }
            if (sld_delivery__no_room(self, sub, len)) {
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
            int rc = sld_delivery__read(txn, st->topic_id, off, &env, &len, &why);
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
            if (sld_delivery__no_room(self, sub, len)
                || (sub->ephemeral && sld_delivery__eph_sent(sub, len) != 0)) {
                more = false;
                break;
            }
            st->next++;
            sub->delivered++;
            sld_metrics_add(self->metrics, SLD_M_DELIVERED, 1);
            if (!sub->ephemeral) {
                f = sld_delivery__flight_put(&sub->flight, st->topic_id, off);
                f->attempt = 1;
                rewound = off < st->rewound_below;
            }
            else {
                const sld_topic_info_t *info = sld_store_topic_by_id(self->store, st->topic_id);
                sld_delivery__item(self, n++, sub, st->topic_id, info->name, off, 0, 1,
                                   env, len);
                bytes += len;
                sub->credit--;
                continue;
            }
        }
        f->len = (uint32_t) len;
        sld_delivery__set_state(self, sub, f, SLD_FLIGHT_SENT);
        f->nacked = false;
        f->token = ++self->next_token;
        f->deadline = now + sub->ack_wait_ms;
        sld_delivery_timer_t t = { f->deadline, f->offset, f->token, f->topic_id };
        if (sld_delivery__timer_arm(sub, t) != 0) {
            more = false;
            break;
        }
        const sld_topic_info_t *info = sld_store_topic_by_id(self->store, f->topic_id);
        sld_delivery__item(self, n++, sub, f->topic_id, info ? info->name : "", f->offset,
                           f->token, f->attempt, env, len);
        self->items[n - 1].rewound = rewound;
        bytes += len;
        sub->credit--;
    }
    if (n && sld_delivery__send_items(self, sub, n) != 0)
        return false;       /* the server will report the session gone */
    /* A read put off (out of memory, worn-out transaction, or a damaged
     * record met ahead of a commit, which only the pump after it may
     * dead-letter) keeps the subscription awake: nothing else may wake
     * it when every other message is acked. */
    return (more && sub->credit > 0) || retry;
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
        sld_delivery_sub_t *sub = self->awake.v[i];
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

/* Runs on the helper thread while the broker thread is blocked in
 * sld_commit_finish, during sld_txn_sync_lmdb: nothing else touches SELF
 * meanwhile, and it changes only what the commit under way does not
 * persist (sends, flights, timers, budgets; never cursors or dlq moves). */
void sld_delivery_pump_ahead(sld_delivery_t *self, uint64_t now_ms)
{
    s_pump_awake(self, now_ms, true);
}

int sld_delivery_pump(sld_delivery_t *self, uint64_t now_ms)
{
    if (now_ms >= self->next_timer_check) {
        for (size_t i = 0; i < self->subs.n; i++)
            sld_delivery__expire(self, self->subs.v[i], now_ms);
        self->next_timer_check = now_ms + S_TIMER_CHECK_MS;
    }
    s_pump_awake(self, now_ms, false);
    if (self->awake.n)
        return 0;
    uint64_t next = now_ms + 1000;
    for (size_t i = 0; i < self->subs.n; i++) {
        sld_delivery_heap_t *h = &self->subs.v[i]->timers;
        if (h->n && h->v[0].deadline < next)
            next = h->v[0].deadline;
    }
    return next <= now_ms ? 0 : (int) (next - now_ms);
}
