/*  sld_delivery_flight - deliveries in flight: the open-addressing table,
 *  the heap of ack-wait timers, the acked-offset sets; acks and nacks
 *  (attempt-stamped by token; a nack's reason kept on its entry), and
 *  expiry, which makes an attempt due for redelivery or, after max_deliver
 *  attempts, queues its dead-letter move.
 *  Broker thread (acks, expiry); the pump, also on the helper thread during
 *  sld_delivery_pump_ahead, only puts entries and arms timers. It reads
 *  nothing from the store and sends nothing.  */
#include "sld_delivery_int.h"
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TIMERS_SLACK 1024     /* stale timers kept before a rebuild, beyond 2x in flight */

/* Insert a fresh entry (the key must be absent). The table is sized for
 * max_inflight at half load, so it never fills. */
sld_delivery_flight_t *sld_delivery__flight_put(sld_delivery_ftable_t *t,
                                                uint32_t topic_id, uint64_t offset)
{
    assert(t->count < t->cap / 2 + 1);
    size_t mask = t->cap - 1;
    size_t i = slc_offset_hash(topic_id, offset) & mask;
    while (t->slot[i].state != SLD_FLIGHT_FREE)
        i = (i + 1) & mask;
    sld_delivery_flight_t *f = &t->slot[i];
    memset(f, 0, sizeof(*f));
    f->topic_id = topic_id;
    f->offset = offset;
    t->count++;
    return f;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
void sld_delivery__flight_del(sld_delivery_ftable_t *t, sld_delivery_flight_t *f)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t) (f - t->slot);
    free(f->reason);
    f->reason = NULL;
    t->slot[i].state = SLD_FLIGHT_FREE;
    t->count--;
    for (size_t j = (i + 1) & mask; t->slot[j].state != SLD_FLIGHT_FREE; j = (j + 1) & mask) {
        size_t home = slc_offset_hash(t->slot[j].topic_id, t->slot[j].offset) & mask;
        bool move = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (move) {
            t->slot[i] = t->slot[j];
            t->slot[j].state = SLD_FLIGHT_FREE;
            i = j;
        }
    }
}

static int s_heap_push(sld_delivery_heap_t *h, sld_delivery_timer_t t)
{
    int rc = slc_grow((void **) &h->v, &h->cap, h->n + 1, sizeof(sld_delivery_timer_t));
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
static void s_heap_sift(sld_delivery_heap_t *h, size_t i, sld_delivery_timer_t t)
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

static sld_delivery_timer_t s_heap_pop(sld_delivery_heap_t *h)
{
    sld_delivery_timer_t top = h->v[0];
    sld_delivery_timer_t last = h->v[--h->n];
    if (h->n)
        s_heap_sift(h, 0, last);
    return top;
}

/* The delivery T is still the timer of, or NULL: an ack or a newer
 * attempt leaves a timer behind in the heap, where it cannot be found to
 * be removed. */
static sld_delivery_flight_t *s_timer_flight(sld_delivery_sub_t *sub,
                                             const sld_delivery_timer_t *t)
{
    sld_delivery_flight_t *f = sld_delivery__flight_get(&sub->flight, t->topic_id, t->offset);
    return f && f->token == t->token && f->deadline == t->deadline
           && (f->state == SLD_FLIGHT_SENT || f->state == SLD_FLIGHT_DELAYED) ? f : NULL;
}

/* Arm T for SUB. Every delivery acked within ack_wait leaves its timer
 * behind, one a message: under load the heap would hold rate x ack_wait
 * of them. So once the heap is twice what is in flight (each delivery has
 * at most one live timer), the dead are dropped and the heap rebuilt, at
 * a cost the pushes since the last rebuild have paid for. */
int sld_delivery__timer_arm(sld_delivery_sub_t *sub, sld_delivery_timer_t t)
{
    sld_delivery_heap_t *h = &sub->timers;
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

int sld_delivery__oset_add(sld_delivery_oset_t *s, uint64_t off)
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

/* OFFSET of ST is acked (or dead-lettered): advance the floor over every
 * contiguous acked offset and remember what to persist. */
int sld_delivery__mark_acked(sld_delivery_t *self, sld_delivery_sub_t *sub,
                             sld_delivery_subtopic_t *st, uint64_t offset)
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
        rc = sld_delivery__oset_add(&st->acked, offset);
        if (rc == 0)
            rc = slc_grow((void **) &st->fresh, &st->capfresh, st->nfresh + 1,
                        sizeof(uint64_t));
        if (rc == 0)
            st->fresh[st->nfresh++] = offset;
    }
    st->dirty = true;
    sld_delivery__mark_dirty(self, sub);
    return rc;
}

/* A copy of a nack's REASON as it is kept (caller owns), or NULL for none
 * or out of memory (the reason alone is lost): one line of at most
 * SLD_NACK_REASON_MAX bytes (slc_text_line), so the dlq-reason header
 * reads on one line whatever a client sent. */
static char *s_reason_copy(const char *reason)
{
    if (!reason || !reason[0])
        return NULL;
    size_t len = strlen(reason);
    char *out = malloc((len < SLD_NACK_REASON_MAX ? len : SLD_NACK_REASON_MAX) + 1);
    if (out)
        slc_text_line(reason, out, SLD_NACK_REASON_MAX);
    return out;
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
    const sld_delivery_retired_t *r = zhashx_lookup(self->retired, key);
    if (!r || r->session != session)
        return SL_ENOTFOUND;
    sld_delivery_sub_t *sub = zhashx_lookup(self->by_name, r->name);
    for (size_t i = 0; i < n; i++) {
        const Sluice__AckItem *it = items[i];
        sld_delivery_subtopic_t *st = sub ? sld_delivery__subtopic_find(sub, it->topic_id)
                                          : NULL;
        if (st && sld_delivery__is_acked(st, it->offset))
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
                     bool nack, uint32_t delay_ms, const char *reason, uint32_t credit,
                     sld_refusal_t *refused, size_t *nrefused)
{
    *nrefused = 0;
    sld_delivery_sub_t *sub = sld_delivery__by_id(self, session, sub_id);
    if (!sub)
        return s_ack_retired(self, session, sub_id, items, n, refused, nrefused);
    uint64_t now = slc_mono_ms();
    for (size_t i = 0; i < n; i++) {
        const Sluice__AckItem *it = items[i];
        int code = 0;
        sld_delivery_subtopic_t *st = sub->ephemeral ? NULL
                                    : sld_delivery__subtopic_find(sub, it->topic_id);
        sld_delivery_flight_t *f = st ? sld_delivery__flight_get(&sub->flight, it->topic_id,
                                                                 it->offset)
                                      : NULL;
        if (!st)
            code = SL_ENOTFOUND;
        else if (f && f->token == it->token) {
            if (!nack) {
                sld_delivery__forget(self, sub, f);
                if (sld_delivery__mark_acked(self, sub, st, it->offset) != 0)
                    code = SL_ENOMEM;
                else {
                    sub->acked++;
                    sld_metrics_add(self->metrics, SLD_M_ACKED, 1);
                }
            }
            else {
                sld_metrics_add(self->metrics, SLD_M_NACKS, 1);
                f->nacked = true;
                free(f->reason);
                f->reason = s_reason_copy(reason);
                sld_delivery__set_state(self, sub, f, SLD_FLIGHT_DELAYED);
                f->deadline = now + delay_ms;
                sld_delivery_timer_t t = { f->deadline, f->offset, f->token, f->topic_id };
                /* The timer decides between redelivery and the DLQ, also
                 * for delay 0; the next pump sees it due at once. */
                if (sld_delivery__timer_arm(sub, t) != 0)
                    code = SL_ENOMEM;
                self->next_timer_check = now;
            }
        }
        else if (!f && sld_delivery__is_acked(st, it->offset))
            code = 0;           /* acks are idempotent */
        else if (!f && it->offset >= st->next && it->offset >= st->rewound_below)
            code = SL_ENOTFOUND;    /* never delivered to this subscription (a seek
                                       forgot those below rewound_below) */
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
        sld_delivery__eph_paid(self, sub, credit);
    sld_delivery__wake(self, sub);
    return 0;
}

void sld_delivery__expire(sld_delivery_t *self, sld_delivery_sub_t *sub,
                          uint64_t now)
{
    while (sub->timers.n && sub->timers.v[0].deadline <= now) {
        sld_delivery_timer_t t = s_heap_pop(&sub->timers);
        sld_delivery_flight_t *f = s_timer_flight(sub, &t);
        if (!f)
            continue;
        if (f->attempt >= sub->max_deliver) {
            sld_delivery_subtopic_t *st = sld_delivery__subtopic_find(sub, f->topic_id);
            if (sld_delivery__queue_dlq(self, sub, f->topic_id, f->offset, f->attempt,
                                        f->nacked, false, f->nacked ? f->reason : NULL) != 0
                || !st)
                continue;
            sub->dead_lettered++;
            sld_metrics_add(self->metrics, SLD_M_DEAD_LETTERED, 1);
            uint64_t off = f->offset;
            sld_delivery__forget(self, sub, f);
            sld_delivery__mark_acked(self, sub, st, off);
            continue;
        }
        if (sld_due_add(&sub->ready, f->topic_id, f->offset) != 0)
            continue;
        sld_delivery__set_state(self, sub, f, SLD_FLIGHT_READY);
        sld_delivery__wake(self, sub);
    }
}

void sld_delivery_unacked_ages(const sld_delivery_t *self, uint64_t now_ms, uint64_t *age_ms,
                               size_t n)
{
    for (size_t i = 0; i < n && i < self->subs.n; i++) {
        const sld_delivery_sub_t *sub = self->subs.v[i];
        uint64_t oldest = UINT64_MAX;
        for (size_t k = 0; sub->flight.count && k < sub->flight.cap; k++) {
            const sld_delivery_flight_t *f = &sub->flight.slot[k];
            if (f->state == SLD_FLIGHT_SENT && f->deadline - sub->ack_wait_ms < oldest)
                oldest = f->deadline - sub->ack_wait_ms;
        }
        age_ms[i] = oldest != UINT64_MAX && now_ms > oldest ? now_ms - oldest : 0;
    }
}
