/*  sld_delivery_seek - SubSeek: a durable subscription's cursor moved by an
 *  operator (docs/operations.md, "Dead letters and cursors"). A seek is
 *  staged while its frame is applied, written by the persist of the same
 *  transaction (the cursor set, the acked offsets deleted: after the
 *  subscription's own pending state, which it replaces) and made the
 *  subscription's state only once that transaction committed, so an
 *  answered failure changed nothing. Then the acked floor is the target,
 *  nothing above it is acked, what was in flight is forgotten (its late
 *  ack finds no attempt: refused, as for a superseded one) and the pump
 *  goes on from the target; offsets a consumer may have acked before are
 *  sent with Delivery.rewound so that its SDK does not drop them as
 *  duplicates. Broker thread only.  */
#include "sld_delivery_int.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where START puts the cursor of topic INFO, as TXN sees the topic. */
static uint64_t s_target(sld_txn_t *txn, const sld_topic_info_t *info,
                         Sluice__StartKind start, uint64_t offset, uint64_t time_us)
{
    uint64_t first = info->first_offset;
    uint64_t next = sld_store_topic_next_offset(txn, info->id);
    if (next == SLD_OFFSET_NONE)
        next = info->next_offset;
    uint64_t to = next;
    if (start == SLUICE__START_KIND__START_OFFSET)
        to = offset;
    else if (start == SLUICE__START_KIND__START_TIME)
        to = sld_store_offset_at_time(txn, info->id, time_us);
    else if (start == SLUICE__START_KIND__START_EARLIEST)
        to = first;
    return to < first ? first : to > next ? next : to;
}

/* The floor SUB's topic ST has after the seeks staged so far. */
static uint64_t s_floor_now(const sld_delivery_t *self, const sld_delivery_sub_t *sub,
                            const sld_delivery_subtopic_t *st)
{
    uint64_t floor = st->floor;
    for (size_t i = 0; i < self->nseeks; i++)
        if (self->seeks[i].topic_id == st->topic_id && strcmp(self->seeks[i].sub, sub->name) == 0)
            floor = self->seeks[i].to;
    return floor;
}

/* Does SUB have attempts in flight on topic ID? */
static bool s_in_flight(const sld_delivery_sub_t *sub, uint32_t id)
{
    for (size_t i = 0; sub->flight.count && i < sub->flight.cap; i++)
        if (sub->flight.slot[i].state != SLD_FLIGHT_FREE && sub->flight.slot[i].topic_id == id)
            return true;
    return false;
}

int sld_delivery_seek(sld_delivery_t *self, sld_txn_t *txn, const char *name,
                      uint32_t topic_id, Sluice__StartKind start, uint64_t offset,
                      uint64_t time_us, sld_delivery_move_t **moves, size_t *n,
                      char *err, size_t errlen)
{
    *moves = NULL;
    *n = 0;
    sld_delivery_sub_t *sub = name ? zhashx_lookup(self->by_name, name) : NULL;
    if (!sub) {
        slc_errf(err, errlen, "no durable subscription %.200s", name ? name : "");
        return SL_ENOTFOUND;
    }
    if (start != SLUICE__START_KIND__START_OFFSET && start != SLUICE__START_KIND__START_TIME
        && start != SLUICE__START_KIND__START_EARLIEST
        && start != SLUICE__START_KIND__START_LATEST) {
        slc_errf(err, errlen, "say where to seek: an offset, a time, earliest or latest");
        return SL_EINVAL;
    }
    if (topic_id && !sld_delivery__subtopic_find(sub, topic_id)) {
        const sld_topic_info_t *info = sld_store_topic_by_id(self->store, topic_id);
        slc_errf(err, errlen, "subscription %.200s has no cursor on topic %.255s (its "
                 "pattern is %.255s)", sub->name, info ? info->name : "?", sub->pattern);
        return SL_ENOTFOUND;
    }
    sld_delivery_move_t *out = calloc(sub->ntopics + 1, sizeof *out);
    if (!out || slc_grow((void **) &self->seeks, &self->capseeks,
                         self->nseeks + sub->ntopics, sizeof(sld_delivery_seek_t)) != 0) {
        free(out);
        return SL_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < sub->ntopics; i++) {
        sld_delivery_subtopic_t *st = &sub->topics[i];
        const sld_topic_info_t *info = sld_store_topic_by_id(self->store, st->topic_id);
        if (!info || (topic_id && st->topic_id != topic_id))
            continue;
        sld_delivery_move_t *m = &out[k++];
        m->topic_id = st->topic_id;
        m->from = s_floor_now(self, sub, st);
        m->to = s_target(txn, info, start, offset, time_us);
        m->moved = m->from != m->to || st->acked.n || s_in_flight(sub, st->topic_id);
        sld_delivery_seek_t *s = &self->seeks[self->nseeks++];
        snprintf(s->sub, sizeof s->sub, "%s", sub->name);
        s->topic_id = st->topic_id;
        s->to = m->to;
    }
    *moves = out;
    *n = k;
    return 0;
}

int sld_delivery__seeks_persist(sld_delivery_t *self, sld_txn_t *txn)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < self->nseeks; i++) {
        const sld_delivery_seek_t *s = &self->seeks[i];
        rc = sld_subrec_cursor_put(txn, s->sub, s->topic_id, s->to);
        if (rc == 0)
            rc = sld_subrec_acked_clear(txn, s->sub, s->topic_id);
    }
    return rc;
}

/* Make the committed seek S of SUB's topic ST the state (see the top). */
static void s_apply(sld_delivery_t *self, sld_delivery_sub_t *sub,
                    sld_delivery_subtopic_t *st, uint64_t to)
{
    /* Collected first: forgetting one moves others in the table. */
    size_t nkeys = 0;
    uint64_t *keys = calloc(sub->flight.count + 1, sizeof(uint64_t));
    for (size_t i = 0; keys && i < sub->flight.cap; i++) {
        const sld_delivery_flight_t *f = &sub->flight.slot[i];
        if (f->state != SLD_FLIGHT_FREE && f->topic_id == st->topic_id)
            keys[nkeys++] = f->offset;
    }
    for (size_t i = 0; i < nkeys; i++) {
        sld_delivery_flight_t *f = sld_delivery__flight_get(&sub->flight, st->topic_id,
                                                            keys[i]);
        if (f)
            sld_delivery__forget(self, sub, f);
    }
    free(keys);
    /* Out of memory for the keys: what stays in flight is redelivered
     * after its ack wait (the floor below still moved). */
    uint64_t delivered = st->next;
    if (delivered > to && delivered > st->rewound_below)
        st->rewound_below = delivered;
    st->floor = to;
    st->next = to;
    st->acked.head = 0;
    st->acked.n = 0;
    st->nfresh = 0;
    st->persisted_floor = to;
    st->persisted_acked = 0;
    st->dirty = false;
    sld_delivery__wake(self, sub);
}

void sld_delivery__seeks_done(sld_delivery_t *self, bool ok)
{
    for (size_t i = 0; ok && i < self->nseeks; i++) {
        const sld_delivery_seek_t *s = &self->seeks[i];
        sld_delivery_sub_t *sub = zhashx_lookup(self->by_name, s->sub);
        sld_delivery_subtopic_t *st = sub ? sld_delivery__subtopic_find(sub, s->topic_id)
                                          : NULL;
        if (st)
            s_apply(self, sub, st, s->to);
    }
    self->nseeks = 0;
}
