/*  sld_delivery_persist - write what waits (new and removed subscriptions,
 *  cursors, acked offsets, dead-letter copies and their advisories, the
 *  staged seeks through sld_delivery_seek.c) in the
 *  server's write transaction, and forget it once that commits; an aborted
 *  transaction leaves all of it pending for the next. Owns the queues of
 *  removals and dead-letter moves. Broker thread only. It opens no write
 *  transaction of its own and never commits.  */
#include "sld_delivery_int.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sld_delivery__queue_dlq(sld_delivery_t *self, const sld_delivery_sub_t *sub,
                            uint32_t topic_id, uint64_t offset, uint32_t attempts,
                            bool nacked, bool unreadable, const char *reason)
{
    int rc = slc_grow((void **) &self->dlq, &self->capdlq, self->ndlq + 1,
                      sizeof(sld_delivery_dlq_t));
    if (rc)
        return rc;
    char *copy = NULL;
    if (reason && !(copy = strdup(reason)))
        return SL_ENOMEM;
    sld_delivery_dlq_t *d = &self->dlq[self->ndlq++];
    d->reason = copy;
    snprintf(d->sub, sizeof d->sub, "%s", sub->name);
    d->topic_id = topic_id;
    d->offset = offset;
    d->attempts = attempts;
    d->nacked = nacked;
    d->unreadable = unreadable;
    d->why = NULL;
    return 0;
}

void sld_delivery__dlq_clear(sld_delivery_t *self)
{
    for (size_t i = 0; i < self->ndlq; i++)
        free(self->dlq[i].reason);
    self->ndlq = 0;
}

bool sld_delivery_dirty(const sld_delivery_t *self)
{
    return self->dirty.n || self->nremoved || self->ndlq;
}

static int s_note_appended(sld_delivery_t *self, uint32_t id)
{
    return slc_idset_add(&self->appended, &self->nappended, &self->capappended, id);
}

static int s_collect_below(uint64_t offset, void *arg)
{
    void **ctx = arg;
    uint64_t limit = *(uint64_t *) ctx[0];
    if (offset >= limit)
        return 1;
    sld_delivery_oset_t *out = ctx[1];
    return sld_delivery__oset_add(out, offset);
}

static int s_persist_subtopic(sld_txn_t *txn, sld_delivery_sub_t *sub,
                              sld_delivery_subtopic_t *st)
{
    int rc = sld_subrec_cursor_put(txn, sub->name, st->topic_id, st->floor);
    for (size_t i = 0; rc == 0 && i < st->nfresh; i++)
        if (st->fresh[i] >= st->floor) {
            rc = sld_subrec_acked_put(txn, sub->name, st->topic_id, st->fresh[i]);
            st->persisted_acked++;
        }
    if (rc == 0 && st->persisted_acked && st->floor > st->persisted_floor) {
        sld_delivery_oset_t below = { 0 };
        uint64_t limit = st->floor;
        void *ctx[2] = { &limit, &below };
        rc = sld_subrec_acked_foreach(txn, sub->name, st->topic_id,
                                      st->persisted_floor, s_collect_below, ctx);
        if (rc == 1)
            rc = 0;
        for (size_t i = 0; rc == 0 && i < below.n; i++) {
            rc = sld_subrec_acked_del(txn, sub->name, st->topic_id, below.v[i]);
            if (st->persisted_acked)
                st->persisted_acked--;
        }
        free(below.v);
    }
    return rc;
}

static int s_persist_dlq(sld_delivery_t *self, sld_txn_t *txn, const sld_delivery_dlq_t *d)
{
    char topic[SLC_TOPIC_MAX + 8];     /* names are <= 200 bytes: always fits */
    snprintf(topic, sizeof topic, "_dlq.%s", d->sub);
    const sld_topic_info_t *src = sld_store_topic_by_id(self->store, d->topic_id);
    const char *src_name = src ? src->name : "";
    /* Under 128 bytes of our text, then at most SLD_NACK_REASON_MAX of
     * the consumer's, already cut and cleaned by sld_delivery_ack. */
    char reason[SLD_NACK_REASON_MAX + 128], offset[32], attempts[16];
    if (d->unreadable)
        snprintf(reason, sizeof reason, "stored record unreadable (%s)", d->why ? d->why
                 : "damaged, or sealed with a key this broker does not have");
    else
        snprintf(reason, sizeof reason, "%s %u times without ack (max_deliver)%s%s",
                 d->nacked ? "nacked" : "delivered", d->attempts,
                 d->reason ? "; last nack: " : "", d->reason ? d->reason : "");
    snprintf(offset, sizeof offset, "%llu", (unsigned long long) d->offset);
    snprintf(attempts, sizeof attempts, "%u", d->attempts);

    const void *env = NULL;
    const char *why;
    size_t len = 0;
    Sluice__Envelope *e = NULL;
    bool decoded = false;       /* E is slc_envelope_decode's, else calloc's */
    uint8_t *buf = NULL, *advbuf = NULL;
    char *json = NULL;
    cJSON *o = NULL;
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
        && sld_delivery__read(rtxn, d->topic_id, d->offset, &env, &len, &why) == 0
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

    /* Advisory: a small JSON document operators can alert on. cJSON
     * escapes what a nack's reason may hold (quotes, backslashes). */
    o = cJSON_CreateObject();
    if (!o || !cJSON_AddStringToObject(o, "subscription", d->sub)
        || !cJSON_AddStringToObject(o, "topic", src_name)
        || !cJSON_AddNumberToObject(o, "offset", (double) d->offset)
        || !cJSON_AddNumberToObject(o, "attempts", d->attempts)
        || !cJSON_AddStringToObject(o, "reason", reason)
        || !cJSON_AddStringToObject(o, "dlq_topic", topic)
        || !cJSON_AddNumberToObject(o, "dlq_offset", (double) dlq_off)
        || !(json = cJSON_PrintUnformatted(o))) {
        rc = SL_ENOMEM;
        goto done;
    }
    Sluice__Envelope adv = SLUICE__ENVELOPE__INIT;
    adv.topic = "_advisory.dlq";
    adv.content_type = "application/json";
    adv.payload.data = (uint8_t *) json;
    adv.payload.len = strlen(json);
    adv.ingest_ts_us = now;
    adv.source = "sluiced";
    size_t alen = sluice__envelope__get_packed_size(&adv);
    advbuf = malloc(alen ? alen : 1);
    if (!advbuf) {
        rc = SL_ENOMEM;
        goto done;
    }
    sluice__envelope__pack(&adv, advbuf);
    rc = sld_store_topic_ensure(txn, adv.topic, &adv_id);
    if (rc == 0)
        rc = sld_store_append(txn, adv_id, now, advbuf, alen, &adv_off);
    if (rc == 0)
        s_note_appended(self, adv_id);
done:
    free(buf);
    free(advbuf);
    cJSON_free(json);
    cJSON_Delete(o);
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
        rc = sld_subrec_delete(txn, self->removed[i]);
        if (rc == SL_ENOTFOUND)
            rc = 0;
    }
    for (size_t i = 0; rc == 0 && i < self->dirty.n; i++) {
        sld_delivery_sub_t *sub = self->dirty.v[i];
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
            rc = sld_subrec_put(txn, sub->name, buf, len);
        }
        for (size_t k = 0; rc == 0 && k < sub->ntopics; k++)
            if (sub->topics[k].dirty)
                rc = s_persist_subtopic(txn, sub, &sub->topics[k]);
    }
    if (rc == 0)
        rc = sld_delivery__seeks_persist(self, txn);
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
        sld_delivery__seeks_done(self, false);
        return;
    }
    for (size_t i = 0; i < self->nremoved; i++)
        free(self->removed[i]);
    self->nremoved = 0;
    for (size_t i = 0; i < self->dirty.n; i++) {
        sld_delivery_sub_t *sub = self->dirty.v[i];
        sub->config_dirty = false;
        sub->dirty = false;
        for (size_t k = 0; k < sub->ntopics; k++) {
            sld_delivery_subtopic_t *st = &sub->topics[k];
            if (!st->dirty)
                continue;
            st->dirty = false;
            st->nfresh = 0;
            st->persisted_floor = st->floor;
        }
    }
    self->dirty.n = 0;
    sld_delivery__seeks_done(self, true);
    sld_delivery__dlq_clear(self);
    for (size_t i = 0; i < self->nappended; i++)
        sld_delivery_topic_appended(self, self->appended[i]);
    self->nappended = 0;
}
