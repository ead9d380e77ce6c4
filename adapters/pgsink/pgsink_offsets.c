/*  pgsink_offsets - where `sluice-pgsink` keeps its place, in the target
 *  database itself: sluice_offsets (subscription, topic -> the last offset
 *  applied), written in the same transaction as the rows, and
 *  sluice_rejects (subscription, topic, offset -> why it could not apply),
 *  so that a refused message the broker delivers again is tried again and
 *  dead-lettered, never taken for an applied one (its offset is below the
 *  stored one). Also the session's advisory lock: one sink per
 *  subscription and database. Main thread; keeps an in-memory copy of both
 *  tables for this subscription, which only follows a COMMIT.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pgsink.h"

#define S_MAX_ENTRIES 100000

/* Under a transaction-scoped advisory lock: sinks starting together
 * would otherwise race in CREATE TABLE IF NOT EXISTS (23505 on pg_type). */
static const char *const s_create[] = {
    "BEGIN",
    "SELECT pg_advisory_xact_lock(hashtextextended('sluice-pgsink:create', 0))",
    "CREATE TABLE IF NOT EXISTS sluice_offsets (subscription text NOT NULL, "
    "topic text NOT NULL, \"offset\" bigint NOT NULL, "
    "updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (subscription, topic))",
    "CREATE TABLE IF NOT EXISTS sluice_rejects (subscription text NOT NULL, "
    "topic text NOT NULL, \"offset\" bigint NOT NULL, attempt integer NOT NULL, "
    "reason text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (subscription, topic, \"offset\"))",
    "COMMIT",
};

/* The entry for TOPIC in V (N entries), with OFFSET too when EXACT; NULL
 * if none. */
static pgsink_mark_t *s_find(pgsink_mark_t *v, size_t n, const char *topic,
                             uint64_t offset, bool exact)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].topic, topic) == 0 && (!exact || v[i].offset == offset))
            return &v[i];
    return NULL;
}

static int s_add(pgsink_mark_t **v, size_t *n, const char *topic, uint64_t offset)
{
    if (*n >= S_MAX_ENTRIES)
        return -1;
    pgsink_mark_t *g = realloc(*v, (*n + 1) * sizeof *g);
    if (!g)
        return -1;
    *v = g;
    snprintf(g[*n].topic, sizeof g[*n].topic, "%s", topic);
    g[*n].offset = offset;
    (*n)++;
    return 0;
}

/* The rows of SQL (topic, offset) for this subscription into *V / *N. */
static int s_load(pgsink_t *s, const char *sql, pgsink_mark_t **v, size_t *n,
                  char *err, size_t errlen)
{
    char reason[512];
    PGresult *r = NULL;
    const char *p[1] = { s->o->name };
    free(*v);
    *v = NULL;
    *n = 0;
    if (pgsink_exec(s, sql, 1, p, &r, reason, sizeof reason) != PGSINK_OK) {
        snprintf(err, errlen, "reading the offsets: %s", reason);
        return -1;
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        rc = s_add(v, n, PQgetvalue(r, i, 0), strtoull(PQgetvalue(r, i, 1), NULL, 10));
    PQclear(r);
    if (rc)
        snprintf(err, errlen, "more than %d offsets or rejects stored", S_MAX_ENTRIES);
    return rc;
}

int pgsink_offsets_open(pgsink_t *s, char *err, size_t errlen)
{
    char reason[512];
    PGresult *r = NULL;
    const char *p[1] = { s->o->name };
    if (pgsink_exec(s, "SELECT pg_try_advisory_lock(hashtextextended("
                    "'sluice-pgsink:' || $1, 0))", 1, p, &r, reason, sizeof reason)
        != PGSINK_OK) {
        snprintf(err, errlen, "advisory lock: %s", reason);
        return -1;
    }
    bool locked = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!locked) {
        snprintf(err, errlen, "another sluice-pgsink applies subscription %s to this "
                 "database (its advisory lock is held)", s->o->name);
        return -1;
    }
    for (size_t i = 0; i < sizeof s_create / sizeof *s_create; i++)
        if (pgsink_exec(s, s_create[i], 0, NULL, NULL, reason, sizeof reason) != PGSINK_OK) {
            snprintf(err, errlen, "creating sluice_offsets and sluice_rejects: %s", reason);
            if (PQstatus(s->pg) == CONNECTION_OK)
                PQclear(PQexec(s->pg, "ROLLBACK"));
            return -1;
        }
    if (s_load(s, "SELECT topic, \"offset\" FROM sluice_offsets WHERE subscription = $1",
               &s->marks, &s->nmarks, err, errlen) != 0)
        return -1;
    return s_load(s, "SELECT topic, \"offset\" FROM sluice_rejects WHERE subscription = $1",
                  &s->rejects, &s->nrejects, err, errlen);
}

bool pgsink_offsets_get(const pgsink_t *s, const char *topic, uint64_t *offset)
{
    const pgsink_mark_t *m = s_find(s->marks, s->nmarks, topic, 0, false);
    if (m)
        *offset = m->offset;
    return m != NULL;
}

bool pgsink_rejected(const pgsink_t *s, const char *topic, uint64_t offset)
{
    return s_find(s->rejects, s->nrejects, topic, offset, true) != NULL;
}

pgsink_result_t pgsink_offsets_store(pgsink_t *s, const char *topic, uint64_t offset,
                                     char *reason, size_t reasonlen)
{
    char off[24];
    snprintf(off, sizeof off, "%" PRIu64, offset);
    const char *p[3] = { s->o->name, topic, off };
    return pgsink_exec(s, "INSERT INTO sluice_offsets (subscription, topic, \"offset\") "
                       "VALUES ($1, $2, $3) ON CONFLICT (subscription, topic) DO UPDATE "
                       "SET \"offset\" = GREATEST(sluice_offsets.\"offset\", "
                       "EXCLUDED.\"offset\"), updated_at = now()",
                       3, p, NULL, reason, reasonlen);
}

pgsink_result_t pgsink_rejects_store(pgsink_t *s, const char *topic, uint64_t offset,
                                     uint32_t attempt, const char *why,
                                     char *reason, size_t reasonlen)
{
    char off[24], att[16];
    snprintf(off, sizeof off, "%" PRIu64, offset);
    snprintf(att, sizeof att, "%" PRIu32, attempt);
    const char *p[5] = { s->o->name, topic, off, att, why };
    if (!why)
        return pgsink_exec(s, "DELETE FROM sluice_rejects WHERE subscription = $1 AND "
                           "topic = $2 AND \"offset\" = $3", 3, p, NULL, reason, reasonlen);
    return pgsink_exec(s, "INSERT INTO sluice_rejects (subscription, topic, \"offset\", "
                       "attempt, reason) VALUES ($1, $2, $3, $4, $5) ON CONFLICT "
                       "(subscription, topic, \"offset\") DO UPDATE SET attempt = "
                       "EXCLUDED.attempt, reason = EXCLUDED.reason, updated_at = now()",
                       5, p, NULL, reason, reasonlen);
}

int pgsink_offsets_note(pgsink_t *s, const char *topic, uint64_t offset)
{
    pgsink_mark_t *m = s_find(s->marks, s->nmarks, topic, 0, false);
    if (!m)
        return s_add(&s->marks, &s->nmarks, topic, offset);
    if (offset > m->offset)
        m->offset = offset;
    return 0;
}

int pgsink_rejects_note(pgsink_t *s, const char *topic, uint64_t offset, bool add)
{
    pgsink_mark_t *m = s_find(s->rejects, s->nrejects, topic, offset, true);
    if (add && !m)
        return s_add(&s->rejects, &s->nrejects, topic, offset);
    if (!add && m)
        *m = s->rejects[--s->nrejects];
    return 0;
}

void pgsink_offsets_clear(pgsink_t *s)
{
    free(s->marks);
    free(s->rejects);
    s->marks = NULL;
    s->rejects = NULL;
    s->nmarks = s->nrejects = 0;
}
