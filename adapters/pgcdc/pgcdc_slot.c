/*  pgcdc_slot - the PostgreSQL side of setting up a run: the two
 *  connections, the publication (created when missing), the check that
 *  every published table has a key to send, the replication slot (looked
 *  up, or created with an exported snapshot) and the state file that says
 *  what sluice durably holds (docs/adapters.md, "sluice-pgcdc").
 *  Main thread. It does not read rows (pgcdc_snapshot) nor stream.  */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "pgcdc_int.h"

int pgcdc_exec(PGconn *conn, const char *sql, ExecStatusType status, PGresult **out,
               char *err, size_t errlen)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != status) {
        const char *why = PQresultErrorMessage(res);
        snprintf(err, errlen, "%.200s: %s", sql, why && *why ? why : PQerrorMessage(conn));
        size_t n = strlen(err);
        if (n && err[n - 1] == '\n')
            err[n - 1] = 0;
        PQclear(res);
        return PGCDC_EPG;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return 0;
}

static int s_exec1(PGconn *conn, const char *sql, const char *param, PGresult **out,
                   char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, 1, NULL, &param, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "catalog query failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        return PGCDC_EPG;
    }
    *out = res;
    return 0;
}

static PGconn *s_open(const char *dsn, const char *replication, char *err, size_t errlen)
{
    const char *keys[] = { "dbname", replication ? "replication" : NULL, NULL };
    const char *vals[] = { dsn, replication, NULL };
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "cannot connect to PostgreSQL%s: %s",
                 replication ? " for replication" : "", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

int pgcdc_connect(pgcdc_t *self, char *err, size_t errlen)
{
    if (!(self->sql = s_open(self->dsn, NULL, err, errlen)))
        return PGCDC_EPG;
    if (!(self->repl = s_open(self->dsn, "database", err, errlen)))
        return PGCDC_EPG;
    snprintf(self->db, sizeof self->db, "%s", PQdb(self->sql));
    if (PQserverVersion(self->sql) < 100000) {
        snprintf(err, errlen, "PostgreSQL %d is too old: pgoutput needs 10 or later",
                 PQserverVersion(self->sql));
        return SL_EVERSION;
    }
    return pgcdc_exec(self->sql, "SET application_name = 'sluice-pgcdc'", PGRES_COMMAND_OK,
                      NULL, err, errlen);
}

/* ---------------------------------------------------------- state file */

int pgcdc_state_load(pgcdc_t *self, bool *exists, char *err, size_t errlen)
{
    FILE *f = fopen(self->state_path, "r");
    *exists = false;
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read %s: %s", self->state_path, strerror(errno));
        return SL_ESYS;
    }
    char slot[256] = "", snap[16] = "", lsn[40] = "";
    uint64_t seq = 0;
    int n = fscanf(f, "sluice-pgcdc 1\nslot %255s\nsnapshot %15s\nflushed_lsn %39s\n"
                   "flushed_seq %" SCNu64 "\n", slot, snap, lsn, &seq);
    fclose(f);
    if (n != 4 || pgcdc_lsn_parse(lsn, &self->flushed_lsn) < 0
        || strcmp(slot, self->slot) != 0) {
        snprintf(err, errlen, "%s is not a sluice-pgcdc state file of slot %s",
                 self->state_path, self->slot);
        return SL_EINVAL;
    }
    self->snapshot_done = strcmp(snap, "done") == 0;
    self->flushed_seq = seq;
    *exists = true;
    return 0;
}

int pgcdc_state_save(pgcdc_t *self, char *err, size_t errlen)
{
    char tmp[4200], lsn[24];
    snprintf(tmp, sizeof tmp, "%s.tmp", self->state_path);
    int rc = SL_ESYS;
    FILE *f = fopen(tmp, "w");
    if (!f)
        goto fail;
    fprintf(f, "sluice-pgcdc 1\nslot %s\nsnapshot %s\nflushed_lsn %s\nflushed_seq %" PRIu64 "\n",
            self->slot, self->snapshot_done ? "done" : "pending",
            pgcdc_lsn_text(self->flushed_lsn, lsn, sizeof lsn), self->flushed_seq);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        goto fail;
    }
    if (fclose(f) != 0 || rename(tmp, self->state_path) != 0)
        goto fail;
    int dir = open(self->state_dir, O_RDONLY | O_DIRECTORY);
    if (dir >= 0) {
        (void) fsync(dir);
        close(dir);
    }
    return 0;
fail:
    snprintf(err, errlen, "cannot write %s: %s", self->state_path, strerror(errno));
    return rc;
}

/* ------------------------------------------------ publication, tables */

/* "schema.table" or "table" as a quoted identifier pair appended to BUF. */
static int s_append_table(PGconn *conn, char *buf, size_t len, const char *name,
                          char *err, size_t errlen)
{
    char nsp[128] = "public", rel[128];
    const char *dot = strchr(name, '.');
    if (dot) {
        snprintf(nsp, sizeof nsp, "%.*s", (int) (dot - name), name);
        snprintf(rel, sizeof rel, "%s", dot + 1);
    }
    else
        snprintf(rel, sizeof rel, "%s", name);
    if (!*nsp || !*rel) {
        snprintf(err, errlen, "--tables: '%s' is not schema.table", name);
        return SL_EINVAL;
    }
    char *qn = PQescapeIdentifier(conn, nsp, strlen(nsp));
    char *qr = PQescapeIdentifier(conn, rel, strlen(rel));
    size_t at = strlen(buf);
    int n = snprintf(buf + at, len - at, "%s%s.%s", at && buf[at - 1] != ' ' ? ", " : "",
                     qn ? qn : "", qr ? qr : "");
    PQfreemem(qn);
    PQfreemem(qr);
    if (n < 0 || (size_t) n >= len - at) {
        snprintf(err, errlen, "--tables is too long");
        return SL_EINVAL;
    }
    return 0;
}

int pgcdc_publication_ensure(pgcdc_t *self, char *err, size_t errlen)
{
    PGresult *res;
    int rc = s_exec1(self->sql, "SELECT 1 FROM pg_publication WHERE pubname = $1",
                     self->publication, &res, err, errlen);
    if (rc < 0)
        return rc;
    bool exists = PQntuples(res) > 0;
    PQclear(res);
    if (exists)
        return 0;
    if (!self->tables && !self->all_tables) {
        snprintf(err, errlen, "publication %s does not exist: create it, or give --tables "
                 "or --all-tables to have it created", self->publication);
        return SL_ENOTFOUND;
    }
    char *qp = PQescapeIdentifier(self->sql, self->publication, strlen(self->publication));
    char sql[8192];
    snprintf(sql, sizeof sql, "CREATE PUBLICATION %s FOR %s", qp ? qp : "",
             self->all_tables ? "ALL TABLES" : "TABLE ");
    PQfreemem(qp);
    if (!self->all_tables) {
        char *list = strdup(self->tables);
        char *save = NULL;
        if (!list)
            return SL_ENOMEM;
        for (char *t = strtok_r(list, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save))
            rc = s_append_table(self->sql, sql, sizeof sql, t, err, errlen);
        free(list);
        if (rc < 0)
            return rc;
    }
    return pgcdc_exec(self->sql, sql, PGRES_COMMAND_OK, NULL, err, errlen);
}

int pgcdc_tables_check(pgcdc_t *self, char *err, size_t errlen)
{
    PGresult *res;
    int rc = s_exec1(self->sql,
        "SELECT n.nspname, c.relname, c.relreplident, "
        " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), "
        " EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) "
        "FROM pg_publication_tables p JOIN pg_namespace n ON n.nspname = p.schemaname "
        "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename "
        "WHERE p.pubname = $1 ORDER BY 1, 2", self->publication, &res, err, errlen);
    if (rc < 0)
        return rc;
    size_t at = 0;
    err[0] = 0;
    if (PQntuples(res) == 0) {
        snprintf(err, errlen, "publication %s has no tables", self->publication);
        rc = SL_EINVAL;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        char ri = PQgetvalue(res, i, 2)[0];
        bool pk = PQgetvalue(res, i, 3)[0] == 't', idx = PQgetvalue(res, i, 4)[0] == 't';
        const char *why = NULL;
        if (ri == 'n')
            why = "has REPLICA IDENTITY NOTHING";
        else if (ri == 'd' && !pk)
            why = "has no primary key";
        else if (ri == 'i' && !idx)
            why = "has REPLICA IDENTITY USING INDEX on a dropped index";
        if (!why)
            continue;
        if (at < errlen)
            at += (size_t) snprintf(err + at, errlen - at,
                "%stable %s.%s %s: updates and deletes cannot name their row (add a "
                "primary key, or ALTER TABLE %s.%s REPLICA IDENTITY FULL)",
                at ? "; " : "", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), why,
                PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        rc = SL_EINVAL;
    }
    PQclear(res);
    return rc;
}

/* ----------------------------------------------------------------- slot */

int pgcdc_slot_lookup(pgcdc_t *self, bool *exists, uint64_t *confirmed, char *err, size_t errlen)
{
    PGresult *res;
    int rc = s_exec1(self->sql, "SELECT plugin, database, confirmed_flush_lsn::text "
                     "FROM pg_replication_slots WHERE slot_name = $1", self->slot,
                     &res, err, errlen);
    if (rc < 0)
        return rc;
    *exists = PQntuples(res) > 0;
    if (*exists) {
        if (strcmp(PQgetvalue(res, 0, 0), "pgoutput") != 0
            || strcmp(PQgetvalue(res, 0, 1), self->db) != 0) {
            snprintf(err, errlen, "replication slot %s exists for plugin %s on database %s, "
                     "not pgoutput on %s: choose another --slot", self->slot,
                     PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), self->db);
            rc = SL_EEXIST;
        }
        else if (pgcdc_lsn_parse(PQgetvalue(res, 0, 2), confirmed) < 0)
            *confirmed = 0;
    }
    PQclear(res);
    return rc;
}

int pgcdc_slot_create(pgcdc_t *self, char *snapshot, size_t snaplen, uint64_t *consistent,
                      char *err, size_t errlen)
{
    char *q = PQescapeIdentifier(self->repl, self->slot, strlen(self->slot));
    char sql[512];
    snprintf(sql, sizeof sql, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput EXPORT_SNAPSHOT",
             q ? q : "");
    PQfreemem(q);
    PGresult *res;
    int rc = pgcdc_exec(self->repl, sql, PGRES_TUPLES_OK, &res, err, errlen);
    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1 || PQnfields(res) < 3
        || pgcdc_lsn_parse(PQgetvalue(res, 0, 1), consistent) < 0) {
        snprintf(err, errlen, "CREATE_REPLICATION_SLOT answered an unexpected row");
        rc = PGCDC_EPG;
    }
    else
        snprintf(snapshot, snaplen, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    return rc;
}
