/*  pgcdc_snapshot - the initial read of every published table as "r"
 *  events, inside one REPEATABLE READ transaction on the plain connection
 *  that adopts the slot's exported snapshot (so the stream, which starts at
 *  the slot's consistent point, neither misses nor repeats a change).
 *  Rows go through a cursor, 1000 at a time. Snapshot events have a
 *  producer id of their own, fresh each run: a run that stops during the
 *  snapshot reads it again in full the next time (docs/adapters.md).
 *  Main thread.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "pgcdc_int.h"
#include "http_common.h"

#define SNAP_FETCH 1000

typedef struct {
    pgcdc_t *cdc;
    sl_client_t *client;
    pgcdc_tuple_t *tuple;
    pgcdc_source_t src;
    uint64_t rows;
} s_snap_t;

/* Columns of RELID as pgoutput would send them (no generated columns),
 * with the replica identity's columns as the key. */
static int s_columns(s_snap_t *s, const char *relid, PGresult **out, char *err, size_t errlen)
{
    const char *sql =
        "SELECT a.attname, a.atttypid, CASE WHEN c.relreplident = 'f' THEN true ELSE "
        " COALESCE(a.attnum = ANY ((SELECT i.indkey FROM pg_index i WHERE i.indrelid = c.oid "
        "  AND CASE WHEN c.relreplident = 'i' THEN i.indisreplident ELSE i.indisprimary END "
        "  LIMIT 1)::int2[]), false) END "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped "
        " AND a.attgenerated = '' ORDER BY a.attnum";
    PGresult *res = PQexecParams(s->cdc->sql, sql, 1, NULL, &relid, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "cannot read the columns of table %s: %s", relid,
                 PQresultErrorMessage(res));
        PQclear(res);
        return PGCDC_EPG;
    }
    *out = res;
    return 0;
}

static int s_rows(s_snap_t *s, const pgcdc_rel_t *rel, char *err, size_t errlen)
{
    PGconn *c = s->cdc->sql;
    size_t cap = 256 + (size_t) rel->ncols * 140;
    char *sql = malloc(cap);
    if (!sql)
        return SL_ENOMEM;
    size_t at = (size_t) snprintf(sql, cap, "DECLARE sluice_snap NO SCROLL CURSOR FOR SELECT ");
    for (int i = 0; i < rel->ncols; i++) {
        char *q = PQescapeIdentifier(c, rel->cols[i].name, strlen(rel->cols[i].name));
        at += (size_t) snprintf(sql + at, cap - at, "%s%s", i ? ", " : "", q ? q : "");
        PQfreemem(q);
    }
    char *qn = PQescapeIdentifier(c, rel->schema, strlen(rel->schema));
    char *qr = PQescapeIdentifier(c, rel->table, strlen(rel->table));
    snprintf(sql + at, cap - at, " FROM ONLY %s.%s", qn ? qn : "", qr ? qr : "");
    PQfreemem(qn);
    PQfreemem(qr);
    int rc = pgcdc_exec(c, sql, PGRES_COMMAND_OK, NULL, err, errlen);
    free(sql);
    s->src.index = 0;
    while (rc == 0) {
        PGresult *res;
        rc = pgcdc_exec(c, "FETCH FORWARD " "1000" " FROM sluice_snap", PGRES_TUPLES_OK, &res,
                        err, errlen);
        if (rc < 0)
            break;
        int n = PQntuples(res);
        for (int r = 0; r < n && rc == 0; r++) {
            s->tuple->ncols = (uint16_t) rel->ncols;
            for (int i = 0; i < rel->ncols; i++) {
                pgcdc_value_t *v = &s->tuple->cols[i];
                v->kind = PQgetisnull(res, r, i) ? 'n' : 't';
                v->data = PQgetvalue(res, r, i);
                v->len = (uint32_t) PQgetlength(res, r, i);
            }
            char *ev = pgcdc_event_json(rel, s->cdc->db, &s->src, NULL, 0, s->tuple);
            rc = pgcdc_publish_event(s->cdc, s->client, rel, 'r', s->src.lsn, ev, false,
                                     err, errlen);
            s->src.index++;
            s->rows++;
        }
        PQclear(res);
        int prc = rc == 0 ? sl_poll(s->client, 0) : 0;
        if (rc == 0 && (prc < 0 || s->cdc->fatal)) {
            snprintf(err, errlen, "%s", s->cdc->fatal ? s->cdc->fatal_msg
                                                      : "the broker connection failed");
            rc = s->cdc->fatal ? s->cdc->fatal : prc;
        }
        if (n < SNAP_FETCH)
            break;
    }
    if (rc == 0)
        rc = pgcdc_exec(c, "CLOSE sluice_snap", PGRES_COMMAND_OK, NULL, err, errlen);
    return rc;
}

static int s_tables(s_snap_t *s, char *err, size_t errlen)
{
    pgcdc_t *cdc = s->cdc;
    const char *pub = cdc->publication;
    PGresult *tabs = PQexecParams(cdc->sql,
        "SELECT c.oid::text, n.nspname, c.relname FROM pg_publication_tables p "
        "JOIN pg_namespace n ON n.nspname = p.schemaname "
        "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename "
        "WHERE p.pubname = $1 ORDER BY 2, 3", 1, NULL, &pub, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(tabs) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "cannot list publication %s: %s", pub, PQresultErrorMessage(tabs));
        rc = PGCDC_EPG;
    }
    for (int t = 0; rc == 0 && t < PQntuples(tabs); t++) {
        PGresult *cols;
        if ((rc = s_columns(s, PQgetvalue(tabs, t, 0), &cols, err, errlen)) < 0)
            break;
        int n = PQntuples(cols);
        pgcdc_column_t *atts = calloc((size_t) n + 1, sizeof *atts);
        for (int i = 0; atts && i < n; i++) {
            atts[i].name = PQgetvalue(cols, i, 0);
            atts[i].type_oid = (uint32_t) strtoul(PQgetvalue(cols, i, 1), NULL, 10);
            atts[i].flags = PQgetvalue(cols, i, 2)[0] == 't';
        }
        pgcdc_rel_t *rel = NULL;
        rc = atts ? pgcdc_relation(cdc, s->client, (uint32_t) strtoul(PQgetvalue(tabs, t, 0),
                                   NULL, 10), PQgetvalue(tabs, t, 1), PQgetvalue(tabs, t, 2),
                                   n, atts, &rel, err, errlen) : SL_ENOMEM;
        free(atts);
        PQclear(cols);
        uint64_t before = s->rows;
        if (rc == 0)
            rc = s_rows(s, rel, err, errlen);
        if (rc == 0)
            http_log(HTTP_LOG_INFO, "snapshot_table", "table=%s topic=%s rows=%" PRIu64,
                     rel->qualified, rel->topic, s->rows - before);
    }
    PQclear(tabs);
    return rc;
}

int pgcdc_snapshot_run(pgcdc_t *self, const char *snapshot, uint64_t consistent,
                       char *err, size_t errlen)
{
    s_snap_t s = { .cdc = self };
    sl_options_t o = self->client_opts;
    o.producer_id_file = NULL;
    int rc = sl_client_new(&o, &s.client);
    if (rc < 0) {
        snprintf(err, errlen, "cannot create the snapshot's client: %s", sl_strerror(rc));
        return rc;
    }
    if (!(s.tuple = malloc(sizeof *s.tuple))) {
        rc = SL_ENOMEM;
        goto done;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s.src = (pgcdc_source_t) {
        .op = 'r', .lsn = consistent, .commit_lsn = consistent, .snapshot = true,
        .commit_time_us = (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000,
    };
    rc = pgcdc_exec(self->sql, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                    PGRES_COMMAND_OK, NULL, err, errlen);
    if (rc == 0 && snapshot) {
        char *lit = PQescapeLiteral(self->sql, snapshot, strlen(snapshot));
        char sql[256];
        snprintf(sql, sizeof sql, "SET TRANSACTION SNAPSHOT %s", lit ? lit : "''");
        PQfreemem(lit);
        rc = pgcdc_exec(self->sql, sql, PGRES_COMMAND_OK, NULL, err, errlen);
    }
    http_log(HTTP_LOG_INFO, "snapshot_start", "slot=%s exported=%s", self->slot,
             snapshot ? "yes" : "no (read again after a stop during the snapshot)");
    if (rc == 0)
        rc = s_tables(&s, err, errlen);
    if (rc == 0)
        rc = pgcdc_exec(self->sql, "COMMIT", PGRES_COMMAND_OK, NULL, err, errlen);
    else
        PQclear(PQexec(self->sql, "ROLLBACK"));
    /* Every snapshot event durable before the state says "done". */
    while (rc == 0 && sl_unconfirmed(s.client) > 0 && !self->fatal && !http_stopping())
        (void) sl_flush(s.client, 1000);
    if (rc == 0 && (self->fatal || sl_unconfirmed(s.client) > 0)) {
        snprintf(err, errlen, "%s", self->fatal ? self->fatal_msg : "stopped during the snapshot");
        rc = self->fatal ? self->fatal : SL_ETIMEOUT;
    }
    if (rc == 0)
        http_log(HTTP_LOG_INFO, "snapshot_done", "rows=%" PRIu64, s.rows);
done:
    free(s.tuple);
    sl_client_destroy(&s.client);
    return rc;
}
