/*  sld_ingest - the publish path: a Publish or PublishBatch as it arrives
 *  (limits, the transient fan-out), then, in the turn's write transaction,
 *  each message: per-topic permission, producer and msg-id deduplication,
 *  stamping (ingest time, source), the schema check and the schema
 *  dead-letter topic, the append, then routing (sld_route_ingest, only
 *  when a table is live: one pointer test); the PublishAck of the frame.
 *  A duplicate is answered before routing, so it is never routed again.
 *  The schema check and the evaluation come from sld_route_prep when it
 *  made them ahead of the transaction and they are still valid.
 *  Broker thread only. It does not commit (sld_groupcommit) nor send (replies
 *  wait in the server's queues). Hot path: no allocation per message but
 *  the growth of reused buffers.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sld_server_int.h"
#include "sld_session.h"

/* May IDENT publish to TOPIC? False with the 403 text in WHY (LEN bytes)
 * when not: a broker topic ('_') is written by no client, any other valid
 * name needs a publish grant. An invalid name passes here: its 422 comes
 * from where it is stored. */
static int s_may_publish(const sld_ident_t *ident, const char *topic, char *err,
                         size_t errlen)
{
    const char *who = sld_ident_name(ident);
    if (topic[0] == '_' && slc_topic_validate(topic, true) == 0)
        slc_errf(err, errlen, "identity \"%s\" may not publish to %s: topics starting with "
                 "'_' are written only by the broker", who, topic);
    else if (slc_topic_validate(topic, false) == 0
             && !sld_ident_allows(ident, SLD_PERM_PUBLISH, topic))
        slc_errf(err, errlen, "identity \"%s\" may not publish to %s: no grant covers it",
                 who, topic);
    else
        return 0;
    return SL_EDENIED;
}

int sld_ingest_on_publish(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    Sluice__Frame *f = *f_p;
    bool batch = f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH;
    size_t n = batch ? f->publish_batch->n_msgs : (f->publish->msg ? 1 : 0);
    Sluice__Envelope **msgs = batch ? f->publish_batch->msgs : &f->publish->msg;
    bool transient = batch ? f->publish_batch->transient : f->publish->transient;
    if (n == 0)
        return sld_session_error(self, peer, f->corr, SL_EINVAL, "publish carries no message");
    if (n > self->cfg.max_batch) {
        char text[128];
        snprintf(text, sizeof text, "batch of %zu messages exceeds limits/max_batch (%u)",
                 n, self->cfg.max_batch);
        return sld_session_error(self, peer, f->corr, SL_ETOOBIG, text);
    }
    if (!transient)
        return 0;                       /* kept for the write phase */
    /* Transient: no storage, no confirm. Bad messages are counted and,
     * when the client asked (corr), reported once per frame. */
    size_t bad = 0, k = 0;
    int worst = 0;                      /* SL_EDENIED, else SL_EINVAL, else SL_ETOOBIG */
    const char *valid = NULL;           /* a batch mostly repeats one topic */
    const char *denied_topic = NULL;
    char why[SLC_TOPIC_MAX + SLD_IDENT_NAME_MAX + 96];
    for (size_t i = 0; i < n; i++) {
        const char *topic = msgs[i]->topic;
        int code = 0;
        if (!(topic && valid && strcmp(topic, valid) == 0)) {
            if (!topic || slc_topic_validate(topic, true) != 0)
                code = SL_EINVAL;
            else if (s_may_publish(peer->session->ident, topic, why, sizeof why) != 0) {
                code = SL_EDENIED;
                denied_topic = topic;   /* the one WHY names */
            }
            else
                valid = topic;
        }
        if (!code && msgs[i]->payload.len > self->cfg.max_message_bytes)
            code = SL_ETOOBIG;
        if (!code) {
            msgs[k++] = msgs[i];
            continue;
        }
        bad++;
        if (code == SL_EDENIED || (code == SL_EINVAL && worst != SL_EDENIED) || !worst)
            worst = code;
    }
    sld_delivery_transient(self->delivery, msgs, k);
    if (bad)
        sld_metrics_add(self->metrics, SLD_M_NACKED, bad);
    if (worst == SL_EDENIED) {
        char detail[64];
        snprintf(detail, sizeof detail, "transient; %zu of %zu messages refused", bad, n);
        sld_session_deny(self, peer, f->corr, "publish", denied_topic, detail, why);
    }
    else if (worst && f->corr)
        sld_session_error(self, peer, f->corr, worst, worst == SL_EINVAL
                          ? "transient batch had messages with an invalid topic name (dropped)"
                          : "transient batch had messages over limits/max_message_bytes "
                            "(dropped)");
    else if (f->corr) {
        /* An empty PublishAck says "fanned out": the SDK's transient window
         * paces the publisher with it. */
        Sluice__PublishAck ack = SLUICE__PUBLISH_ACK__INIT;
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        frame.body_case = SLUICE__FRAME__BODY_PUBLISH_ACK;
        frame.publish_ack = &ack;
        sld_session_reply(self, peer, f->corr, &frame);
    }
    /* MSGS was compacted in place; the frame's arena still holds (and
     * frees) every envelope, whatever order the array is left in. Done:
     * nothing to keep. */
    slc_frame_free(f_p);
    return 0;
}

/* ------------------------------------------------------------ write phase */

int sld_ingest_note_appended(sld_server_t *self, uint32_t id)
{
    return slc_idset_add(&self->appended, &self->nappended, &self->capappended, id);
}

static const char *s_header(const Sluice__Envelope *e, const char *key)
{
    for (size_t i = 0; i < e->n_headers; i++)
        if (e->headers[i]->key && strcmp(e->headers[i]->key, key) == 0)
            return e->headers[i]->value;
    return NULL;
}

static void s_nack(Sluice__Confirm *c, int code, const char *text)
{
    c->code = -code;
    c->text = (char *) text;
    c->retryable = slc_retryable(code);
}

/* Encode E for storage into the scratch buffer: the bytes it arrived in
 * (SPAN of W's frame, when known) with the broker's fields after them, as
 * the protobuf rule "the last value of a field wins" allows; else a stamped
 * copy, encoded. *LEN is the length. 0 or SL_ENOMEM. */
static int s_stamp(sld_server_t *self, const sld_write_t *w, const slc_span_t *span,
                   const Sluice__Envelope *e, uint64_t now, size_t *len)
{
    const char *source = (!e->source || !*e->source) && w->session
                       ? w->session->client : NULL;
    if (!span) {
        Sluice__Envelope stamped = *e;  /* shallow: the frame owns E's strings */
        stamped.ingest_ts_us = now;
        if (source)
            stamped.source = (char *) source;
        *len = slc_envelope_size(&stamped);
        if (slc_grow((void **) &self->scratch, &self->capscratch, *len + 1, 1) != 0)
            return SL_ENOMEM;
        slc_envelope_pack(&stamped, self->scratch);
        return 0;
    }
    size_t slen = source ? strlen(source) : 0;
    size_t need = span->len + slc_envelope_stamp_max(source, slen);
    if (slc_grow((void **) &self->scratch, &self->capscratch, need, 1) != 0)
        return SL_ENOMEM;
    memcpy(self->scratch, (const uint8_t *) zmq_msg_data((zmq_msg_t *) &w->raw) + span->off,
           span->len);
    uint8_t *p = slc_envelope_stamp(self->scratch + span->len, now, source, slen);
    *len = (size_t) (p - self->scratch);
    return 0;
}

/* A copy of TEXT that lives until the frame's reply is encoded (nack
 * texts); NULL when out of memory (the nack then has only its code). */
static const char *s_text(sld_server_t *self, const char *text)
{
    char *copy = strdup(text);
    if (!copy || slc_grow((void **) &self->texts, &self->captexts, self->ntexts + 1,
                          sizeof(char *)) != 0) {
        free(copy);
        return NULL;
    }
    self->texts[self->ntexts++] = copy;
    return copy;
}

void sld_ingest_texts_free(sld_server_t *self)
{
    for (size_t i = 0; i < self->ntexts; i++)
        free(self->texts[i]);
    self->ntexts = 0;
}

/* Store the invalid message of W (its stamped envelope is in the scratch
 * buffer, LEN bytes) to _dlq.schema.TOPIC with the reasons WHY as header
 * schema-error (appended as one more Header: protobuf repeats add up).
 * *offset is where it went. 0 or a store failure. */
static int s_schema_dlq(sld_server_t *self, sld_txn_t *txn, const char *topic, size_t len,
                        uint64_t now, const char *why, uint64_t *offset)
{
    static const char key[] = "schema-error";
    char name[SLC_TOPIC_MAX + 16];
    size_t wlen = strlen(why), klen = sizeof key - 1;
    uint32_t id;
    if (slc_grow((void **) &self->scratch, &self->capscratch,
                 len + slc_envelope_header_size(klen, wlen), 1) != 0)
        return SL_ENOMEM;
    uint8_t *p = slc_envelope_header_put(self->scratch + len, key, klen, why, wlen);
    snprintf(name, sizeof name, "_dlq.schema.%s", topic);
    int rc = sld_store_topic_ensure(txn, name, &id);
    if (rc == 0)
        rc = sld_store_append(txn, id, now, self->scratch, (size_t) (p - self->scratch), offset);
    if (rc == 0)
        rc = sld_ingest_note_appended(self, id);
    return rc;
}

/* Why publishes are refused as storage full: the storage alarm raised
 * (sld_alarm: which one, the usage, the watermarks). */
static const char *s_full_text(const sld_server_t *self)
{
    return sld_alarm_text(self->alarm);
}

/* Store one message (SPAN: where it lies in W's frame, or NULL). Fills C;
 * returns 0, or a store failure that dooms the whole transaction (SL_EFULL,
 * SL_ESTORE, SL_ENOMEM). */
static int s_ingest(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                    const slc_span_t *span, Sluice__Envelope *e, Sluice__Confirm *c,
                    bool refuse)
{
    int rc;
    c->seq = e->seq;
    if (refuse) {
        s_nack(c, SL_EFULL, s_full_text(self));
        return 0;
    }
    if (e->payload.len > self->cfg.max_message_bytes) {
        s_nack(c, SL_ETOOBIG, "message payload exceeds limits/max_message_bytes");
        return 0;
    }
    bool sequenced = e->producer_id.len == SLC_PRODUCER_ID_LEN && e->seq > 0;
    if (e->producer_id.len && !sequenced) {
        s_nack(c, SL_EINVAL, "producer_id must be 16 bytes with a sequence from 1");
        return 0;
    }
    /* A client that numbers its messages expects deduplication: refused
     * rather than stored without it. */
    if (!e->producer_id.len && e->seq) {
        s_nack(c, SL_EINVAL, "seq needs a producer_id: give a 16-byte producer_id to have "
               "resends deduplicated, or leave seq 0");
        return 0;
    }
    uint32_t topic_id, orig_topic;
    uint64_t offset;
    if (sequenced) {
        rc = sld_store_producer_check(txn, e->producer_id.data, e->seq, &orig_topic, &offset);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            c->duplicate = true;
            c->offset = offset;
            return 0;
        }
    }
    char why[128];
    rc = sld_topics_resolve(self->topics, txn, e->topic, &topic_id, why, sizeof why);
    if (rc == SL_EINVAL) {
        s_nack(c, rc, s_text(self, why));
        return 0;
    }
    if (rc)
        return rc;
    uint64_t now = slc_now_us();
    const char *msg_id = s_header(e, "msg-id");
    if (msg_id && *msg_id) {
        rc = sld_store_dedup_check(txn, topic_id, msg_id, strlen(msg_id), now,
                                   sld_topics_dedup_window_us(self->topics), &offset);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            c->duplicate = true;
            c->offset = offset;
            return sequenced ? sld_store_producer_record(txn, e->producer_id.data,
                                                         e->seq, topic_id, offset) : 0;
        }
    }
    size_t len;
    /* Routing reads the payload the schema check parsed: parsed once. */
    const slt_route_table_t *routes = sld_routes_live(self->routes);
    cJSON *doc = NULL;
    /* The check and the evaluation sld_route_prep made ahead of the
     * transaction, while the registry and the table are still theirs. */
    bool routed = false;
    const sld_route_prepared_t *pre = self->prep
        ? sld_route_prep_take(self->prep, self->registry, self->routes, e, &routed) : NULL;
    rc = s_stamp(self, w, span, e, now, &len);
    if (rc == 0 && sld_registry_any(self->registry)) {
        /* A topic bound to a schema stores only valid messages; an invalid
         * one is refused with the reasons (and kept in the topic's schema
         * dead-letter topic when the binding says so). */
        bool dlq = false;
        char why[SLD_ROUTE_PREP_WHY_MAX];
        if (pre) {
            rc = pre->check;
            dlq = pre->dlq;
            if (rc)
                snprintf(why, sizeof why, "%s", pre->why);
        }
        else
            rc = sld_registry_check_doc(self->registry, e->topic, e->content_type,
                                        e->payload.data, e->payload.len, &dlq,
                                        routes ? &doc : NULL, why, sizeof why);
        if (rc == SL_EINVAL) {
            uint64_t dlq_off = 0;
            rc = dlq ? s_schema_dlq(self, txn, e->topic, len, now, why, &dlq_off) : 0;
            if (rc)
                return rc;
            if (dlq) {
                size_t k = strlen(why);
                snprintf(why + k, sizeof why - k, " (kept in _dlq.schema.%s at offset %" PRIu64 ")",
                         e->topic, dlq_off);
            }
            sld_metrics_add(self->metrics, SLD_M_SCHEMA_INVALID, 1);
            s_nack(c, SL_EINVAL, s_text(self, why));
            return 0;
        }
    }
    if (rc == 0)
        rc = sld_store_append(txn, topic_id, now, self->scratch, len, &offset);
    if (rc == 0 && sequenced)
        rc = sld_store_producer_record(txn, e->producer_id.data, e->seq, topic_id, offset);
    if (rc == 0 && msg_id && *msg_id)
        rc = sld_store_dedup_record(txn, topic_id, msg_id, strlen(msg_id), now, offset);
    if (rc == 0)
        rc = sld_ingest_note_appended(self, topic_id);
    if (rc == 0)
        rc = sld_topicstats_add(self->tstats, topic_id, e->payload.len);
    /* Routing: derived messages commit with the original or not at all. */
    if (rc == 0 && routes) {
        if (routed)
            self->t_prepared++;
        else if (self->prep && sld_route_prep_active(self->prep))
            self->t_prep_inline++;
        rc = sld_route_ingest_doc(self, txn, routes, e,
                                  (!e->source || !*e->source) && w->session
                                      ? w->session->client : e->source,
                                  offset, now, pre ? pre->doc : doc, &topic_id,
                                  routed ? pre : NULL);
    }
    cJSON_Delete(doc);
    if (rc)
        return rc;
    c->offset = offset;
    return 0;
}

int sld_ingest_apply(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w, bool refuse,
                     int fail)
{
    Sluice__Frame *f = w->frame;
    bool batch = f->body_case == SLUICE__FRAME__BODY_PUBLISH_BATCH;
    size_t n = batch ? f->publish_batch->n_msgs : 1;
    Sluice__Envelope **msgs = batch ? f->publish_batch->msgs : &f->publish->msg;
    int rc = slc_grow((void **) &self->confirms, &self->capconfirms, n, sizeof(Sluice__Confirm));
    if (rc == 0 && self->capconfirms) {
        Sluice__Confirm **p = realloc(self->confirm_ptrs, self->capconfirms * sizeof(*p));
        if (!p)
            return SL_ENOMEM;
        self->confirm_ptrs = p;
    }
    if (rc)
        return rc;
    /* The envelopes' own bytes, when the frame is laid out plainly. */
    const slc_span_t *spans = NULL;
    if (!fail && zmq_msg_size((zmq_msg_t *) &w->raw) > 0
        && slc_grow((void **) &self->spans, &self->capspans, n, sizeof(slc_span_t)) == 0
        && slc_frame_envelope_spans(zmq_msg_data((zmq_msg_t *) &w->raw),
                                    zmq_msg_size((zmq_msg_t *) &w->raw), f,
                                    self->spans, n) == 0)
        spans = self->spans;
    const sld_ident_t *ident = w->session->ident;
    const char *allowed = NULL, *denied = NULL;    /* a batch mostly repeats one topic */
    size_t ndenied = 0;
    for (size_t i = 0; i < n; i++) {
        Sluice__Confirm *c = &self->confirms[i];
        sluice__confirm__init(c);
        c->index = (uint32_t) i;
        self->confirm_ptrs[i] = c;
        const char *topic = msgs[i]->topic;
        if (!fail && topic && !(allowed && strcmp(allowed, topic) == 0)) {
            char why[SLC_TOPIC_MAX + SLD_IDENT_NAME_MAX + 96];
            if (s_may_publish(ident, topic, why, sizeof why) == 0)
                allowed = topic;
            else {
                const char *text = s_text(self, why);
                c->seq = msgs[i]->seq;
                s_nack(c, SL_EDENIED, text ? text : "this identity may not publish to the topic");
                denied = topic;
                ndenied++;
                continue;
            }
        }
        if (fail) {
            c->seq = msgs[i]->seq;
            s_nack(c, fail, fail == SL_EFULL
                   ? s_full_text(self)
                   : "storage failed; the message was not stored");
            continue;
        }
        rc = s_ingest(self, txn, w, spans ? &spans[i] : NULL, msgs[i], c, refuse);
        if (rc)
            return rc;
    }
    if (ndenied) {
        char detail[64];
        snprintf(detail, sizeof detail, "%zu of %zu messages refused", ndenied, n);
        sld_audit_add(self->audit, true, sld_ident_name(ident), "publish", denied, "denied",
                      detail);
        sld_metrics_error(self->metrics, SL_EDENIED);
    }
    for (size_t i = 0; i < n; i++) {
        Sluice__Confirm *c = &self->confirms[i];
        if (c->code)
            self->t_nacked++;
        else if (c->duplicate)
            self->t_dups++;
        else {
            self->t_stored++;
            self->t_bytes += msgs[i]->payload.len;
        }
    }
    Sluice__PublishAck ack = SLUICE__PUBLISH_ACK__INIT;
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    ack.n_confirms = n;
    ack.confirms = self->confirm_ptrs;
    frame.body_case = SLUICE__FRAME__BODY_PUBLISH_ACK;
    frame.publish_ack = &ack;
    sld_session_queue(self, &self->wreplies, w->id, w->id_len, f->corr, &frame);
    sld_ingest_texts_free(self);
    return 0;
}
