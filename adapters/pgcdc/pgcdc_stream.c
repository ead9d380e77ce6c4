/*  pgcdc_stream - the logical replication stream: START_REPLICATION with
 *  pgoutput, the CopyBoth loop ('w' data, 'k' keepalives answered at once
 *  when the server asks), standby status ('r') every --status-interval
 *  carrying the flush position pgcdc_publish allows, and the heartbeat
 *  (a non-transactional pg_logical_emit_message every --heartbeat) that
 *  lets an idle slot move on. Main thread; sleeps in sl_poll_fd on the
 *  replication socket and the broker's at once.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "pgcdc_int.h"
#include "http_common.h"

#define PG_EPOCH_US 946684800000000LL   /* 2000-01-01 in Unix microseconds */
#define HEARTBEAT_PREFIX "sluice-pgcdc-heartbeat"

typedef struct {
    pgcdc_t *cdc;
    uint64_t idle_lsn;          /* decoded up to here with no transaction open */
    bool skip_txn;              /* stored before (commit before flushed_lsn) */
    bool status_now;
    uint64_t last_status, last_heartbeat;
    bool heartbeat_failed;
} s_stream_t;

static int64_t s_now_pg(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000 - PG_EPOCH_US;
}

static int s_send_status(s_stream_t *s, char *err, size_t errlen)
{
    pgcdc_t *c = s->cdc;
    int rc = pgcdc_publish_flushable(c, s->idle_lsn, err, errlen);
    if (rc < 0)
        return rc;
    uint8_t m[34];
    m[0] = 'r';
    uint64_t written = c->received_lsn > c->flushed_lsn ? c->received_lsn : c->flushed_lsn;
    pgcdc_put64(m + 1, written);
    pgcdc_put64(m + 9, c->flushed_lsn);
    pgcdc_put64(m + 17, c->flushed_lsn);
    pgcdc_put64(m + 25, (uint64_t) s_now_pg());
    m[33] = 0;
    if (PQputCopyData(c->repl, (const char *) m, sizeof m) != 1 || PQflush(c->repl) != 0) {
        snprintf(err, errlen, "cannot send standby status: %s", PQerrorMessage(c->repl));
        return PGCDC_EPG;
    }
    c->reported_lsn = c->flushed_lsn;
    s->last_status = http_now_ms();
    s->status_now = false;
    return 0;
}

static void s_heartbeat(s_stream_t *s)
{
    pgcdc_t *c = s->cdc;
    s->last_heartbeat = http_now_ms();
    PGresult *res = PQexec(c->sql, "SELECT pg_logical_emit_message(false, '"
                           HEARTBEAT_PREFIX "', '')");
    if (PQresultStatus(res) != PGRES_TUPLES_OK && !s->heartbeat_failed) {
        char q[300];
        s->heartbeat_failed = true;
        http_log(HTTP_LOG_WARN, "heartbeat_failed", "reason=%s",
                 http_log_quote(PQresultErrorMessage(res), q, sizeof q));
    }
    else if (PQresultStatus(res) == PGRES_TUPLES_OK)
        s->heartbeat_failed = false;
    PQclear(res);
}

typedef struct {
    char op;
    const pgcdc_tuple_t *old, *new_;
} s_event_t;

static int s_change(s_stream_t *s, const pgcdc_msg_t *m, char *err, size_t errlen)
{
    pgcdc_t *c = s->cdc;
    if (!c->in_txn) {
        snprintf(err, errlen, "pgoutput change outside a transaction");
        return PGCDC_EPG;
    }
    if (s->skip_txn)
        return 0;
    pgcdc_rel_t *rel = pgcdc_rels_lookup(c->rels, m->relid);
    if (!rel) {
        snprintf(err, errlen, "pgoutput change of relation %u before its Relation message",
                 m->relid);
        return PGCDC_EPG;
    }
    pgcdc_source_t src = {
        .lsn = c->change_lsn, .commit_lsn = c->txn_commit_lsn, .xid = c->txn_xid,
        .commit_time_us = c->txn_time_us, .snapshot = false,
    };
    const pgcdc_tuple_t *old = m->old_kind ? &m->old_tuple : NULL;
    s_event_t ev[2];
    int n = 0;
    if (m->tag == 'I')
        ev[n++] = (s_event_t) { 'c', NULL, &m->new_tuple };
    else if (m->tag == 'D')
        ev[n++] = (s_event_t) { 'd', old, NULL };
    else if (old && old->ncols == rel->ncols && m->new_tuple.ncols == rel->ncols
             && pgcdc_event_key_moved(rel, old, &m->new_tuple)) {
        ev[n++] = (s_event_t) { 'd', old, NULL };
        ev[n++] = (s_event_t) { 'c', NULL, &m->new_tuple };
    }
    else
        ev[n++] = (s_event_t) { 'u', old, &m->new_tuple };
    for (int i = 0; i < n; i++) {
        src.op = ev[i].op;
        src.index = c->txn_index++;
        char *json = pgcdc_event_json(rel, c->db, &src, ev[i].old, m->old_kind, ev[i].new_);
        int rc = pgcdc_publish_event(c, c->client, rel, src.op, src.lsn, json, true, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int s_message(s_stream_t *s, const uint8_t *p, size_t n, char *err, size_t errlen)
{
    pgcdc_t *c = s->cdc;
    int rc = pgcdc_decode(p, n, c->msg, err, errlen);
    if (rc < 0)
        return PGCDC_EPROTO;
    const pgcdc_msg_t *m = c->msg;
    switch (m->tag) {
    case 'B':
        c->in_txn = true;
        c->txn_commit_lsn = m->final_lsn;
        c->txn_time_us = m->commit_time + PG_EPOCH_US;
        c->txn_xid = m->xid;
        c->txn_index = 0;
        s->skip_txn = m->final_lsn < c->flushed_lsn;
        return 0;
    case 'C':
        c->in_txn = false;
        if (m->end_lsn > c->received_lsn)
            c->received_lsn = m->end_lsn;
        return s->skip_txn ? 0 : pgcdc_publish_commit(c, m->end_lsn, err, errlen);
    case 'R': {
        pgcdc_rel_t *rel;
        return pgcdc_relation(c, c->client, m->relid, m->nspname, m->relname, m->natts,
                              m->atts, &rel, err, errlen);
    }
    case 'I': case 'U': case 'D':
        return s_change(s, m, err, errlen);
    case 'T':
        if (!s->skip_txn)
            for (uint32_t i = 0; i < m->nrels; i++) {
                pgcdc_rel_t *rel = pgcdc_rels_lookup(c->rels, pgcdc_get32(m->relids + 4 * i));
                http_log(HTTP_LOG_WARN, "truncate_not_sent", "table=%s",
                         rel ? rel->qualified : "?");
            }
        return 0;
    case 'M':
        if (!m->transactional && !c->in_txn && strcmp(m->prefix, HEARTBEAT_PREFIX) == 0
            && m->msg_lsn > s->idle_lsn)
            s->idle_lsn = m->msg_lsn;
        return 0;
    default:
        return 0;                       /* 'Y' types, 'O' origins: nothing to send */
    }
}

static int s_copydata(s_stream_t *s, const uint8_t *p, size_t n, char *err, size_t errlen)
{
    pgcdc_t *c = s->cdc;
    if (n >= 25 && p[0] == 'w') {
        c->change_lsn = pgcdc_get64(p + 1);
        if (c->change_lsn > c->received_lsn)
            c->received_lsn = c->change_lsn;
        return s_message(s, p + 25, n - 25, err, errlen);
    }
    if (n >= 18 && p[0] == 'k') {
        uint64_t wal_end = pgcdc_get64(p + 1);
        if (!c->in_txn && wal_end > s->idle_lsn)
            s->idle_lsn = wal_end;
        if (p[17])
            s->status_now = true;
        return 0;
    }
    snprintf(err, errlen, "unexpected CopyData message 0x%02x of %zu bytes", p[0], n);
    return PGCDC_EPROTO;
}

static int s_start(pgcdc_t *c, uint64_t start_lsn, char *err, size_t errlen)
{
    char *slot = PQescapeIdentifier(c->repl, c->slot, strlen(c->slot));
    char *pub = PQescapeIdentifier(c->repl, c->publication, strlen(c->publication));
    char *publit = pub ? PQescapeLiteral(c->repl, pub, strlen(pub)) : NULL;
    char sql[1200], lsn[24];
    snprintf(sql, sizeof sql, "START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', "
             "publication_names %s, messages 'true')", slot ? slot : "",
             pgcdc_lsn_text(start_lsn, lsn, sizeof lsn), publit ? publit : "''");
    PQfreemem(slot);
    PQfreemem(pub);
    PQfreemem(publit);
    return pgcdc_exec(c->repl, sql, PGRES_COPY_BOTH, NULL, err, errlen);
}

int pgcdc_stream_run(pgcdc_t *c, uint64_t start_lsn, char *err, size_t errlen)
{
    s_stream_t s = { .cdc = c };
    char lsn[24];
    int rc = s_start(c, start_lsn, err, errlen);
    if (rc < 0)
        return rc;
    http_log(HTTP_LOG_INFO, "streaming", "slot=%s from=%s next_seq=%" PRIu64, c->slot,
             pgcdc_lsn_text(start_lsn, lsn, sizeof lsn), c->numbered + 1);
    s.last_status = s.last_heartbeat = http_now_ms();
    unsigned burst = 0;
    while (rc == 0 && !http_stopping()) {
        char *buf = NULL;
        int n = PQgetCopyData(c->repl, &buf, 1);
        if (n > 0) {
            rc = s_copydata(&s, (const uint8_t *) buf, (size_t) n, err, errlen);
            PQfreemem(buf);
            if (rc == 0 && ++burst % 512 == 0 && (rc = sl_poll(c->client, 0)) > 0)
                rc = 0;
            if (rc < 0 && !err[0])
                snprintf(err, errlen, "the broker connection failed");
        }
        else if (n == 0) {
            uint64_t now = http_now_ms(), due = s.last_status + c->status_ms;
            if (c->heartbeat_ms && s.last_heartbeat + c->heartbeat_ms < due)
                due = s.last_heartbeat + c->heartbeat_ms;
            int wait = s.status_now || due <= now ? 0 : (int) (due - now);
            bool ready = false;
            int prc = sl_poll_fd(c->client, PQsocket(c->repl), wait > 200 ? 200 : wait, &ready);
            if (prc < 0) {
                snprintf(err, errlen, "the broker connection failed");
                rc = prc;
            }
            else if (ready && !PQconsumeInput(c->repl)) {
                snprintf(err, errlen, "replication connection lost: %s",
                         PQerrorMessage(c->repl));
                rc = PGCDC_EPG;
            }
        }
        else {
            PGresult *res = PQgetResult(c->repl);
            snprintf(err, errlen, "PostgreSQL ended the replication stream: %s",
                     n == -2 ? PQerrorMessage(c->repl) : PQresultErrorMessage(res));
            PQclear(res);
            rc = PGCDC_EPG;
        }
        uint64_t now = http_now_ms();
        if (rc == 0 && c->heartbeat_ms && now - s.last_heartbeat >= c->heartbeat_ms)
            s_heartbeat(&s);
        if (rc == 0 && (s.status_now || now - s.last_status >= c->status_ms))
            rc = s_send_status(&s, err, errlen);
    }
    if (rc == 0) {
        /* Stopping: what is in flight gets its chance to be confirmed, so
         * the position sent last is as far as it can be. */
        (void) sl_flush(c->client, 10000);
        rc = s_send_status(&s, err, errlen);
        PQputCopyEnd(c->repl, NULL);
        PQflush(c->repl);
    }
    return rc;
}
