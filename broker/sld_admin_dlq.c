/*  sld_admin_dlq - dead letters and cursors (docs/operations.md, "Dead
 *  letters and cursors"): DlqList answered at once from a read
 *  transaction; DlqRemove and SubSeek applied in the turn's write
 *  transaction, audited ("dlq.remove", "subscription.seek") and answered
 *  after its commit. Broker thread only. Permissions are checked before
 *  (sld_commands); the marks are sld_dlq's, the cursors sld_delivery's.
 *  Redriving is the client's (sl_dlq_redrive): a publish and a remove.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sld_server_int.h"
#include "sld_session.h"

#define S_LIST_DEFAULT 100
#define S_LIST_MAX 1000
#define S_LIST_BYTES (4u << 20)         /* envelopes in one DlqListReply, about */

/* TOPIC as a dead-letter topic that exists: 0 and *out (committed
 * metadata, borrowed until the next commit), or SL_EINVAL / SL_ENOTFOUND
 * with the reason in WHY. */
static int s_dlq_topic(sld_server_t *self, const char *topic, const sld_topic_info_t **out,
                       char *why, size_t whylen)
{
    if (!sld_dlq_topic(topic) || slc_topic_validate(topic, true) != 0) {
        slc_errf(why, whylen, "%.255s is not a dead-letter topic: those are _dlq.SUBSCRIPTION, "
                 "_dlq.schema.TOPIC and _dlq.routes", topic);
        return SL_EINVAL;
    }
    *out = sld_store_topic_by_name(self->store, topic);
    if (!*out) {
        slc_errf(why, whylen, "no topic %.255s: nothing was dead-lettered there", topic);
        return SL_ENOTFOUND;
    }
    return 0;
}

int sld_admin_on_dlq_list(sld_server_t *self, const sld_peer_t *peer, Sluice__Frame **f_p)
{
    const Sluice__Frame *f = *f_p;
    const Sluice__DlqList *dl = f->dlq_list;
    const sld_topic_info_t *info = NULL;
    char why[512];
    int rc = s_dlq_topic(self, dl->topic ? dl->topic : "", &info, why, sizeof why);
    if (rc)
        return sld_session_error(self, peer, f->corr, rc, why);
    uint32_t max = dl->max ? (dl->max < S_LIST_MAX ? dl->max : S_LIST_MAX) : S_LIST_DEFAULT;
    Sluice__Delivery *items = calloc(max, sizeof *items);
    Sluice__Delivery **ptrs = calloc(max, sizeof *ptrs);
    sld_txn_t *txn = NULL;
    if (!items || !ptrs)
        rc = SL_ENOMEM;
    if (rc == 0)
        rc = sld_store_begin(self->store, false, &txn);
    Sluice__DlqListReply reply = SLUICE__DLQ_LIST_REPLY__INIT;
    size_t n = 0, bytes = 0;
    uint64_t off = SLD_OFFSET_NONE;
    if (rc == 0)
        off = sld_store_seek(txn, info->id, dl->from);
    while (rc == 0 && off != SLD_OFFSET_NONE && off < info->next_offset && n < max
           && bytes < S_LIST_BYTES) {
        const void *env;
        size_t len;
        if (!sld_dlq_removed(self->dlq, info->id, off)) {
            int r = sld_store_read(txn, info->id, off, &env, &len, NULL);
            if (r == SL_EBUSY || r == SL_ENOMEM)
                break;                  /* the next call goes on from here */
            if (r == 0) {
                /* Envelopes stay in the map until the reply is encoded. */
                Sluice__Delivery *d = &items[n];
                sluice__delivery__init(d);
                d->topic = (char *) info->name;
                d->topic_id = info->id;
                d->offset = off;
                d->envelope.data = (uint8_t *) env;
                d->envelope.len = len;
                ptrs[n++] = d;
                bytes += len;
            }
            /* Damaged (logged by the store): `sluiced --check` says more. */
        }
        off = sld_store_seek(txn, info->id, off + 1);
    }
    if (rc == 0) {
        uint64_t removed = sld_dlq_count(self->dlq, info->id, info->first_offset);
        reply.items = ptrs;
        reply.n_items = n;
        reply.next = off == SLD_OFFSET_NONE || off > info->next_offset ? info->next_offset : off;
        reply.remaining = info->messages > removed ? info->messages - removed : 0;
        Sluice__Frame frame = SLUICE__FRAME__INIT;
        frame.body_case = SLUICE__FRAME__BODY_DLQ_LIST_REPLY;
        frame.dlq_list_reply = &reply;
        sld_session_reply(self, peer, f->corr, &frame);
    }
    else
        sld_session_error(self, peer, f->corr, rc, NULL);
    sld_txn_abort(&txn);
    free(items);
    free(ptrs);
    return rc;
}

/* Remove dead letter TOPIC@OFFSET in TXN; *already when it was before. */
static int s_remove(sld_server_t *self, sld_txn_t *txn, const char *topic, uint64_t offset,
                    bool *already, char *why, size_t whylen)
{
    const sld_topic_info_t *info = NULL;
    int rc = s_dlq_topic(self, topic, &info, why, whylen);
    if (rc)
        return rc;
    if (offset >= info->next_offset || sld_store_seek(txn, info->id, offset) != offset) {
        slc_errf(why, whylen, "no dead letter %.255s@%" PRIu64 ": the topic holds offsets %"
                 PRIu64 " to %" PRIu64 " (older ones were trimmed by retention)", topic, offset,
                 info->first_offset, info->next_offset ? info->next_offset - 1 : 0);
        return SL_ENOTFOUND;
    }
    return sld_dlq_remove(self->dlq, txn, info->id, offset, already);
}

int sld_admin_apply_dlq_remove(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                               bool refuse, int fail)
{
    (void) refuse;
    const Sluice__DlqRemove *dr = w->frame->dlq_remove;
    const char *topic = dr->topic ? dr->topic : "";
    char why[512] = "", detail[600];
    bool already = false;
    int rc = fail ? fail : s_remove(self, txn, topic, dr->offset, &already, why, sizeof why);
    if (!fail && (rc == SL_EFULL || rc == SL_ESTORE || rc == SL_ENOMEM))
        return rc;
    if (rc)
        snprintf(detail, sizeof detail, "offset %" PRIu64 ": %s", dr->offset,
                 why[0] ? why : slc_strerror(rc));
    else
        snprintf(detail, sizeof detail, "offset %" PRIu64 "%s", dr->offset,
                 already ? " (removed before)" : "");
    sld_audit_add(self->audit, true, w->session ? sld_ident_name(w->session->ident) : NULL,
                  "dlq.remove", topic, rc ? "failed" : "ok", detail);
    sld_admin_queue_result(self, w, rc, why[0] ? why : NULL, NULL);
    return 0;
}

static const char *s_start_name(Sluice__StartKind start)
{
    switch (start) {
    case SLUICE__START_KIND__START_EARLIEST: return "earliest";
    case SLUICE__START_KIND__START_LATEST: return "latest";
    case SLUICE__START_KIND__START_OFFSET: return "offset";
    case SLUICE__START_KIND__START_TIME: return "time";
    default: return "default";
    }
}

/* The seek of SS in TXN: *moves (caller frees) and *n, or a code with WHY. */
static int s_seek(sld_server_t *self, sld_txn_t *txn, const Sluice__SubSeek *ss,
                  sld_delivery_move_t **moves, size_t *n, char *why, size_t whylen)
{
    uint32_t id = 0;
    if (ss->topic && ss->topic[0]) {
        const sld_topic_info_t *info = NULL;
        if (slc_topic_validate(ss->topic, true) != 0) {
            slc_errf(why, whylen, "invalid topic name: dot-separated words of "
                     "[A-Za-z0-9_-], at most 255 bytes");
            return SL_EINVAL;
        }
        info = sld_store_topic_by_name(self->store, ss->topic);
        if (!info) {
            slc_errf(why, whylen, "no topic %.255s", ss->topic);
            return SL_ENOTFOUND;
        }
        id = info->id;
    }
    return sld_delivery_seek(self->delivery, txn, ss->name, id, ss->start, ss->offset,
                             ss->time_us, moves, n, why, whylen);
}

int sld_admin_apply_sub_seek(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                             bool refuse, int fail)
{
    (void) refuse;
    const Sluice__SubSeek *ss = w->frame->sub_seek;
    const char *name = ss->name ? ss->name : "";
    char why[768] = "", detail[1024];
    sld_delivery_move_t *moves = NULL;
    size_t n = 0;
    int rc = fail ? fail : s_seek(self, txn, ss, &moves, &n, why, sizeof why);
    if (!fail && rc == SL_ENOMEM)
        return rc;
    Sluice__SubSeekReply reply = SLUICE__SUB_SEEK_REPLY__INIT;
    Sluice__SubSeekMove *items = calloc(n + 1, sizeof *items);
    Sluice__SubSeekMove **ptrs = calloc(n + 1, sizeof *ptrs);
    if (!rc && (!items || !ptrs)) {
        free(items);
        free(ptrs);
        free(moves);
        return fail ? fail : SL_ENOMEM;
    }
    /* The audit detail: the start, then each topic "T F -> T" while it fits. */
    size_t k = (size_t) snprintf(detail, sizeof detail, "start %s", s_start_name(ss->start));
    if (ss->start == SLUICE__START_KIND__START_OFFSET)
        k += (size_t) snprintf(detail + k, sizeof detail - k, " %" PRIu64, ss->offset);
    else if (ss->start == SLUICE__START_KIND__START_TIME)
        k += (size_t) snprintf(detail + k, sizeof detail - k, " %" PRIu64 " us", ss->time_us);
    if (rc)
        snprintf(detail + k, sizeof detail - k, ": %s", why[0] ? why : slc_strerror(rc));
    for (size_t i = 0; !rc && i < n; i++) {
        const sld_topic_info_t *info = sld_store_topic_by_id(self->store, moves[i].topic_id);
        sluice__sub_seek_move__init(&items[i]);
        items[i].topic = (char *) (info ? info->name : "");
        items[i].from = moves[i].from;
        items[i].to = moves[i].to;
        ptrs[i] = &items[i];
        reply.moved += moves[i].moved;
        if (k < sizeof detail - 1)
            k += (size_t) snprintf(detail + k, sizeof detail - k, "%s topic %.200s %" PRIu64
                                   " -> %" PRIu64, i ? ";" : ":", items[i].topic,
                                   moves[i].from, moves[i].to);
    }
    reply.n_moves = rc ? 0 : n;
    reply.moves = ptrs;
    sld_audit_add(self->audit, true, w->session ? sld_ident_name(w->session->ident) : NULL,
                  "subscription.seek", name, rc ? "failed" : "ok", detail);
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    frame.body_case = SLUICE__FRAME__BODY_SUB_SEEK_REPLY;
    frame.sub_seek_reply = &reply;
    sld_admin_queue_result(self, w, rc, why[0] ? why : NULL, &frame);
    free(items);
    free(ptrs);
    free(moves);
    return 0;
}
