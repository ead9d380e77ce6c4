/*  sld_route_backfill - RoutesBackfill (docs/routing.md, "Backfill"): one
 *  bounded chunk of running one route of the live table over a topic's
 *  stored messages, in the turn's write transaction, audited. It finds the
 *  messages (skipping trimmed gaps), skips those whose trace record shows
 *  the route already fired or failed (by name, through the version the
 *  record names), and hands the rest to sld_route_backfill, which acts as
 *  ingest does. Broker thread only. It evaluates and writes nothing itself
 *  and keeps no state between chunks: the client loops.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sld_commands.h"
#include "sld_server_int.h"
#include "sld_session.h"
#include "sld_trace.h"

#define S_MAX_DEFAULT 100
#define S_MAX 1000
#define S_TABLES 8

/* Table versions compiled for their route names, for one chunk. */
typedef struct {
    sld_server_t *self;
    uint32_t version[S_TABLES];
    slt_route_table_t *table[S_TABLES];
    size_t n, next;             /* used slots; the one replaced next when full */
} s_names_t;

/* The name of route IX of version V, or NULL (the version is gone, does
 * not compile any more, or has no such route). */
static const char *s_name(s_names_t *nm, uint32_t v, uint32_t ix)
{
    if (v == sld_routes_version(nm->self->routes))
        return slt_route_name(sld_routes_live(nm->self->routes), ix);
    slt_route_table_t *t = NULL;
    size_t i = 0;
    while (i < nm->n && nm->version[i] != v)
        i++;
    if (i < nm->n)
        t = nm->table[i];
    else {
        /* Compiled without resolving mappings: only the names are needed. */
        Sluice__RoutesInfo *info = NULL;
        if (sld_routes_get(nm->self->routes, v, &info) == 0 && info->yaml)
            (void) slt_route_compile(info->yaml, strlen(info->yaml), NULL, NULL, &t, NULL, 0);
        sld_routes_info_free(&info);
        if (nm->n < S_TABLES)
            i = nm->n++;
        else {                          /* full: replace the oldest entry */
            i = nm->next;
            nm->next = (nm->next + 1) % S_TABLES;
            slt_route_destroy(&nm->table[i]);
        }
        nm->version[i] = v;
        nm->table[i] = t;
    }
    return t && ix < slt_route_count(t) ? slt_route_name(t, ix) : NULL;
}

/* Does record REC show route NAME fired or failed? */
static bool s_done(s_names_t *nm, const sld_trace_t *rec, const char *name)
{
    for (size_t i = 0; i < rec->nsteps; i++) {
        const sld_trace_step_t *st = &rec->steps[i];
        if (st->outcome == SLD_TRACE_SKIPPED)
            continue;
        const char *n = s_name(nm, st->version ? st->version : rec->version, st->route);
        if (n && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

/* The chunk described by the request of W; refusals into WHY. */
static int s_chunk(sld_server_t *self, sld_txn_t *txn, const Sluice__RoutesBackfill *rb,
                   Sluice__RoutesBackfillReply *out, char *why, size_t whylen)
{
    const char *route = rb->route ? rb->route : "";
    const char *topic = rb->topic ? rb->topic : "";
    const slt_route_table_t *table = sld_routes_live(self->routes);
    uint32_t live = sld_routes_version(self->routes);
    if (!table) {
        slc_errf(why, whylen, "no routing table is live: apply one (sluice routes apply) "
                 "before backfilling a route");
        return SL_ENOTFOUND;
    }
    size_t ix = 0, n = slt_route_count(table);
    while (ix < n && strcmp(slt_route_name(table, ix), route) != 0)
        ix++;
    if (ix == n) {
        slc_errf(why, whylen, "no route \"%.128s\" in the live routing table (version %u)",
                 route, live);
        return SL_ENOTFOUND;
    }
    if (slc_topic_validate(topic, true) != 0) {
        slc_errf(why, whylen, "invalid topic name: dot-separated words of [A-Za-z0-9_-], "
                 "at most 255 bytes");
        return SL_EINVAL;
    }
    const sld_topic_info_t *ti = sld_store_topic_by_name(self->store, topic);
    if (!ti) {
        slc_errf(why, whylen, "no topic %s", topic);
        return SL_ENOTFOUND;
    }
    const char *pattern = slt_route_pattern(table, ix);
    if (!pattern || !slc_pattern_match(pattern, topic)) {
        slc_errf(why, whylen, "route %s matches topics %s, not %s: it would never see "
                 "its messages", route, pattern ? pattern : "(none)", topic);
        return SL_EINVAL;
    }
    uint32_t id = ti->id;
    uint64_t next = sld_store_topic_next_offset(txn, id);
    uint64_t until = rb->until_offset && rb->until_offset < next ? rb->until_offset : next;
    uint64_t from = rb->from_time_us ? sld_store_offset_at_time(txn, id, rb->from_time_us)
                                     : rb->from_offset;
    uint32_t max = rb->max ? (rb->max < S_MAX ? rb->max : S_MAX) : S_MAX_DEFAULT;
    out->from_offset = from;
    out->until_offset = until;
    out->table_version = live;

    s_names_t nm = { .self = self };
    sld_trace_t rec;
    memset(&rec, 0, sizeof rec);
    uint64_t now = slc_now_us();
    int rc = 0;
    uint64_t off = from < until ? sld_store_seek(txn, id, from) : SLD_OFFSET_NONE;
    while (rc == 0 && off != SLD_OFFSET_NONE && off < until && out->processed < max) {
        const void *data;
        size_t len;
        Sluice__Envelope *env = NULL;
        rc = sld_store_read(txn, id, off, &data, &len, NULL);
        if (rc == SL_ENOTFOUND || rc == SL_ESTORE) {
            rc = 0;                     /* trimmed meanwhile, or damaged (logged) */
            off = sld_store_seek(txn, id, off + 1);
            continue;
        }
        /* Decoded (copied) before anything is appended in TXN. */
        if (rc == 0 && slc_envelope_decode(data, len, &env) != 0) {
            off = sld_store_seek(txn, id, off + 1);
            continue;
        }
        if (rc == 0) {
            rc = sld_trace_get(txn, id, off, &rec);
            if (rc == SL_ENOTFOUND || rc == SL_ESTORE) {
                /* None, or one that does not read: a new one is written. */
                sld_trace_reset(&rec, 0);
                rc = 0;
            }
        }
        if (rc == 0) {
            out->processed++;
            if (s_done(&nm, &rec, route))
                out->already++;
            else {
                sld_backfill_outcome_t what;
                uint64_t made = 0;
                rc = sld_route_backfill(self, txn, table, ix, env, id, off, now, &rec, &what,
                                        &made);
                out->fired += what == SLD_BACKFILL_FIRED;
                out->failed += what == SLD_BACKFILL_FAILED;
                out->skipped += what == SLD_BACKFILL_SKIPPED;
                out->delivered += made;
            }
        }
        slc_envelope_free(&env);
        if (rc == 0)
            off = sld_store_seek(txn, id, off + 1);
    }
    out->next_offset = off == SLD_OFFSET_NONE || off > until ? until : off;
    if (out->next_offset < from && from <= until)
        out->next_offset = from;
    out->done = out->next_offset >= until;
    sld_trace_free(&rec);
    for (size_t i = 0; i < nm.n; i++)
        slt_route_destroy(&nm.table[i]);
    return rc;
}

int sld_route_backfill_apply(sld_server_t *self, sld_txn_t *txn, const sld_write_t *w,
                             bool refuse, int fail)
{
    (void) refuse;
    Sluice__Frame *f = w->frame;
    const Sluice__RoutesBackfill *rb = f->routes_backfill;
    const char *who = w->session ? sld_ident_name(w->session->ident) : NULL;
    const char *topic = rb->topic ? rb->topic : "";
    char why[512] = "";
    Sluice__RoutesBackfillReply reply = SLUICE__ROUTES_BACKFILL_REPLY__INIT;
    int rc = fail ? fail : s_chunk(self, txn, rb, &reply, why, sizeof why);
    if (!fail && (rc == SL_EFULL || rc == SL_ESTORE || rc == SL_ENOMEM || rc == SL_EINTERNAL))
        return rc;                      /* the transaction is tried again, or fails */
    char detail[1024];
    if (rc)
        snprintf(detail, sizeof detail, "route %.128s: %s", rb->route ? rb->route : "",
                 why[0] ? why : slc_strerror(rc));
    else
        snprintf(detail, sizeof detail, "route %.128s (table version %u), offsets %" PRIu64
                 "..%" PRIu64 " (until %" PRIu64 "): %" PRIu64 " processed, %" PRIu64
                 " fired, %" PRIu64 " failed, %" PRIu64 " skipped, %" PRIu64
                 " already done, %" PRIu64 " derived messages", rb->route, reply.table_version,
                 reply.from_offset, reply.next_offset, reply.until_offset, reply.processed,
                 reply.fired, reply.failed, reply.skipped, reply.already, reply.delivered);
    sld_audit_add(self->audit, true, who, "routes.backfill", topic, rc ? "failed" : "ok",
                  detail);
    Sluice__Frame frame = SLUICE__FRAME__INIT;
    Sluice__Error err = SLUICE__ERROR__INIT;
    if (rc) {
        err.code = -rc;
        err.text = (char *) (why[0] ? why : slc_strerror(rc));
        err.retryable = slc_retryable(rc);
        frame.body_case = SLUICE__FRAME__BODY_ERROR;
        frame.error = &err;
        sld_metrics_error(self->metrics, rc);
    }
    else {
        frame.body_case = SLUICE__FRAME__BODY_ROUTES_BACKFILL_REPLY;
        frame.routes_backfill_reply = &reply;
    }
    sld_session_queue(self, &self->wreplies, w->id, w->id_len, f->corr, &frame);
    return 0;
}
