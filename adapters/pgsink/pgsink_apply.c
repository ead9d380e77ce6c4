/*  pgsink_apply - one message as SQL on the target table: the table's
 *  columns and key read from the catalogue at start, then per message an
 *  upsert (INSERT ... ON CONFLICT (KEY) DO UPDATE) of its row or a delete
 *  by its key. The row travels as ONE jsonb parameter and PostgreSQL types
 *  it (jsonb_populate_record over the table's own row type), so no value
 *  is ever spliced into SQL text and every column gets its type's input
 *  function; identifiers are quoted with PQescapeIdentifier. Also the one
 *  way statements are run (pgsink_exec: at once, or sent into a libpq
 *  pipeline and answered at pgsink_pipeline_end). Main thread. It does not
 *  decide batches, offsets or acks (pgsink_main.c).  */
#include <assert.h>
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pgsink.h"

/* ------------------------------------------------------------- SQL text */

static int s_sql_put(pgsink_t *s, size_t *len, const char *text)
{
    size_t n = strlen(text);
    if (*len + n + 1 > s->sqlcap) {
        size_t cap = s->sqlcap ? s->sqlcap : 1024;
        while (cap < *len + n + 1)
            cap *= 2;
        char *b = realloc(s->sql, cap);
        if (!b)
            return -1;
        s->sql = b;
        s->sqlcap = cap;
    }
    memcpy(s->sql + *len, text, n + 1);
    *len += n;
    return 0;
}

/* NAME as a quoted identifier appended, with PREFIX before it. */
static int s_sql_ident(pgsink_t *s, size_t *len, const char *prefix, const char *name)
{
    char *q = PQescapeIdentifier(s->pg, name, strlen(name));
    int rc = q && s_sql_put(s, len, prefix) == 0 && s_sql_put(s, len, q) == 0 ? 0 : -1;
    PQfreemem(q);
    return rc;
}

/* A PQescapeIdentifier result as a malloc'd string (NULL on failure). */
static char *s_quote(PGconn *pg, const char *name)
{
    char *q = PQescapeIdentifier(pg, name, strlen(name));
    char *copy = q ? strdup(q) : NULL;
    PQfreemem(q);
    return copy;
}

/* R (cleared here; NULL = no result: the connection) as a result, with
 * REASON on failure. */
static pgsink_result_t s_result(pgsink_t *s, PGresult *r, PGresult **res, char *reason,
                                size_t reasonlen)
{
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (res)
            *res = r;
        else
            PQclear(r);
        return PGSINK_OK;
    }
    const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char state[8] = "";
    snprintf(state, sizeof state, "%s", code ? code : "");
    snprintf(reason, reasonlen, "%s: %s", *state ? state : "connection",
             msg ? msg : PQerrorMessage(s->pg));
    /* Strip libpq's trailing newline so the reason fits one log line. */
    size_t n = strlen(reason);
    while (n && (reason[n - 1] == '\n' || reason[n - 1] == ' '))
        reason[--n] = '\0';
    PQclear(r);
    /* What says nothing about the row: connection (08), transaction
     * state (25), rollback (40: serialization, deadlock), resources (53),
     * object state (55: a lock not available), operator intervention (57:
     * shutdown), system (58); and the table itself gone or forbidden
     * (42P01, 42501), which would otherwise dead-letter every message.
     * The batch waits for PostgreSQL, or the operator. */
    static const char *const down_states[] = { "08", "25", "40", "53", "55", "57", "58",
                                               "42P01", "42501" };
    bool down = PQstatus(s->pg) != CONNECTION_OK || !*state;
    for (size_t i = 0; !down && i < sizeof down_states / sizeof *down_states; i++)
        down = strncmp(state, down_states[i], strlen(down_states[i])) == 0;
    return down ? PGSINK_DOWN : PGSINK_BAD;
}

pgsink_result_t pgsink_exec(pgsink_t *s, const char *sql, int nparams,
                            const char *const *params, PGresult **res,
                            char *reason, size_t reasonlen)
{
    if (!s->pipeline)
        return s_result(s, PQexecParams(s->pg, sql, nparams, NULL, params, NULL, NULL, 0),
                        res, reason, reasonlen);
    assert(!res);
    if (!PQsendQueryParams(s->pg, sql, nparams, NULL, params, NULL, NULL, 0)) {
        snprintf(reason, reasonlen, "connection: %s", PQerrorMessage(s->pg));
        return PGSINK_DOWN;
    }
    s->sent++;
    return PGSINK_OK;
}

bool pgsink_pipeline_begin(pgsink_t *s)
{
    s->sent = 0;
    s->pipeline = PQenterPipelineMode(s->pg) == 1;
    return s->pipeline;
}

pgsink_result_t pgsink_pipeline_end(pgsink_t *s, char *reason, size_t reasonlen)
{
    pgsink_result_t rc = PGSINK_OK;
    PGresult *r;
    s->pipeline = false;
    if (!PQpipelineSync(s->pg)) {
        snprintf(reason, reasonlen, "connection: %s", PQerrorMessage(s->pg));
        return PGSINK_DOWN;
    }
    /* Each statement's result then a NULL; then the sync's. */
    for (size_t i = 0; i < s->sent; i++) {
        r = PQgetResult(s->pg);
        if (!r) {
            snprintf(reason, reasonlen, "connection: %s", PQerrorMessage(s->pg));
            return PGSINK_DOWN;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED)
            PQclear(r);
        else if (rc == PGSINK_OK)
            rc = s_result(s, r, NULL, reason, reasonlen);
        else
            PQclear(r);
        while ((r = PQgetResult(s->pg)) != NULL)
            PQclear(r);
    }
    r = PQgetResult(s->pg);
    bool synced = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
    PQclear(r);
    if (!synced || !PQexitPipelineMode(s->pg)) {
        snprintf(reason, reasonlen, "connection: the pipeline did not end: %s",
                 PQerrorMessage(s->pg));
        return PGSINK_DOWN;
    }
    return rc;
}

/* ------------------------------------------------------------ the table */

static bool s_is_col(const pgsink_t *s, const char *name)
{
    for (size_t i = 0; i < s->ncols; i++)
        if (strcmp(s->cols[i], name) == 0)
            return true;
    return false;
}

static bool s_is_key(const pgsink_t *s, const char *name)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (strcmp(s->keys[i], name) == 0)
            return true;
    return false;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The table's schema and name as the catalogue spells them, quoted, into
 * s->qtable. 0 or -1 with ERR. */
static int s_table_resolve(pgsink_t *s, char *err, size_t errlen)
{
    char reason[512], *typed = NULL;
    const char *dot = strchr(s->o->table, '.');
    int rc = -1;
    PGresult *r = NULL;
    if (dot) {
        char *schema = strndup(s->o->table, (size_t) (dot - s->o->table));
        char *qs = schema ? s_quote(s->pg, schema) : NULL;
        char *qt = s_quote(s->pg, dot + 1);
        if (qs && qt && asprintf(&typed, "%s.%s", qs, qt) < 0)
            typed = NULL;
        free(schema);
        free(qs);
        free(qt);
    }
    else
        typed = s_quote(s->pg, s->o->table);
    if (!typed) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *p[1] = { typed };
    if (pgsink_exec(s, "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
                    1, p, &r, reason, sizeof reason) != PGSINK_OK) {
        snprintf(err, errlen, "table %s: %s", s->o->table, reason);
        goto done;
    }
    if (PQntuples(r) != 1) {
        snprintf(err, errlen, "table %s does not exist (create it first: the sink "
                 "never creates the target table)", s->o->table);
        goto done;
    }
    char *qs = s_quote(s->pg, PQgetvalue(r, 0, 0)), *qt = s_quote(s->pg, PQgetvalue(r, 0, 1));
    if (qs && qt && asprintf(&s->qtable, "%s.%s", qs, qt) < 0)
        s->qtable = NULL;
    free(qs);
    free(qt);
    if (!s->qtable) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    PQclear(r);
    free(typed);
    return rc;
}

/* The key columns: present in the table, and the columns of one of its
 * unique indexes (ON CONFLICT needs one). 0 or -1 with ERR. */
static int s_keys_check(pgsink_t *s, char *err, size_t errlen)
{
    char reason[512], missing[1024] = "", want[1024] = "", *sorted[PGSINK_MAX_KEYS];
    int rc = -1;
    PGresult *r = NULL;
    for (size_t i = 0; i < s->nkeys; i++)
        if (!s_is_col(s, s->keys[i]))
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                     *missing ? ", " : "", s->keys[i]);
    if (*missing) {
        snprintf(err, errlen, "table %s has no column %s (the --key columns)", s->qtable,
                 missing);
        return -1;
    }
    memcpy(sorted, s->keys, s->nkeys * sizeof *sorted);
    qsort(sorted, s->nkeys, sizeof *sorted, s_cmp_str);
    for (size_t i = 0; i < s->nkeys; i++)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", i ? "\x1f" : "",
                 sorted[i]);
    const char *p[1] = { s->qtable };
    if (pgsink_exec(s, "SELECT array_to_string(ARRAY(SELECT a.attname FROM pg_attribute a "
                    "WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                    "ORDER BY a.attname), chr(31)) FROM pg_index i WHERE i.indrelid = "
                    "$1::regclass AND i.indisunique AND i.indpred IS NULL "
                    "AND i.indexprs IS NULL", 1, p, &r, reason, sizeof reason) != PGSINK_OK) {
        snprintf(err, errlen, "table %s: %s", s->qtable, reason);
        goto done;
    }
    for (int i = 0; i < PQntuples(r); i++)
        if (strcmp(PQgetvalue(r, i, 0), want) == 0)
            rc = 0;
    if (rc)
        snprintf(err, errlen, "table %s has no primary key or unique index on exactly "
                 "(%s): an upsert by key needs one", s->qtable, s->o->keys);
done:
    PQclear(r);
    return rc;
}

int pgsink_table_load(pgsink_t *s, char *err, size_t errlen)
{
    char reason[512];
    PGresult *r = NULL;
    pgsink_table_clear(s);
    if (s_table_resolve(s, err, errlen) != 0)
        return -1;
    const char *p[1] = { s->qtable };
    if (pgsink_exec(s, "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass "
                    "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    1, p, &r, reason, sizeof reason) != PGSINK_OK) {
        snprintf(err, errlen, "table %s: %s", s->qtable, reason);
        return -1;
    }
    s->ncols = (size_t) PQntuples(r);
    s->cols = calloc(s->ncols ? s->ncols : 1, sizeof *s->cols);
    for (size_t i = 0; s->cols && i < s->ncols; i++)
        s->cols[i] = strdup(PQgetvalue(r, (int) i, 0));
    PQclear(r);
    /* --key, split at commas. */
    const char *k = s->o->keys;
    while (*k && s->nkeys < PGSINK_MAX_KEYS) {
        size_t n = strcspn(k, ",");
        s->keys[s->nkeys++] = strndup(k, n);
        k += n + (k[n] == ',');
    }
    size_t len = 0;
    bool ok = s->cols != NULL;
    for (size_t i = 0; ok && i < s->ncols; i++)
        ok = s->cols[i] != NULL;
    if (s->sql)
        s->sql[0] = '\0';
    for (size_t i = 0; ok && i < s->nkeys; i++)
        ok = s->keys[i] && s_sql_ident(s, &len, i ? "," : "", s->keys[i]) == 0;
    if (!ok || !(s->qkeys = strdup(s->sql ? s->sql : ""))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return s_keys_check(s, err, errlen);
}

void pgsink_table_clear(pgsink_t *s)
{
    for (size_t i = 0; s->cols && i < s->ncols; i++)
        free(s->cols[i]);
    free(s->cols);
    s->cols = NULL;
    s->ncols = 0;
    for (size_t i = 0; i < s->nkeys; i++)
        free(s->keys[i]);
    s->nkeys = 0;
    free(s->qtable);
    free(s->qkeys);
    s->qtable = s->qkeys = NULL;
}

/* ---------------------------------------------------------- a message */

static bool s_in_array(const cJSON *arr, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        if (cJSON_IsString(e) && strcmp(e->valuestring, name) == 0)
            return true;
    }
    return false;
}

/* The upsert of ROW (columns not in SKIP) into s->sql. 0, 1 with REASON
 * (a column the table lacks), -1 out of memory. */
static int s_upsert_sql(pgsink_t *s, const cJSON *row, const cJSON *skip, char *reason,
                        size_t reasonlen)
{
    size_t len = 0, ncols = 0, nset = 0;
    const cJSON *c;
    if (s_sql_put(s, &len, "INSERT INTO ") || s_sql_put(s, &len, s->qtable)
        || s_sql_put(s, &len, " ("))
        return -1;
    size_t list_start = len;
    cJSON_ArrayForEach(c, row) {
        if (s_in_array(skip, c->string))
            continue;
        if (!s_is_col(s, c->string)) {
            snprintf(reason, reasonlen, "column \"%s\" is not in table %s", c->string,
                     s->qtable);
            return 1;
        }
        if (s_sql_ident(s, &len, ncols++ ? "," : "", c->string))
            return -1;
    }
    /* The column list again, as the SELECT list over the typed record. */
    size_t list_end = len;
    if (s_sql_put(s, &len, ") SELECT "))
        return -1;
    char *list = strndup(s->sql + list_start, list_end - list_start);
    int rc = !list || s_sql_put(s, &len, list) || s_sql_put(s, &len, " FROM jsonb_populate_record(NULL::")
             || s_sql_put(s, &len, s->qtable) || s_sql_put(s, &len, ", $1::jsonb) ON CONFLICT (")
             || s_sql_put(s, &len, s->qkeys) || s_sql_put(s, &len, ") DO ") ? -1 : 0;
    free(list);
    if (rc)
        return -1;
    cJSON_ArrayForEach(c, row) {
        if (s_in_array(skip, c->string) || s_is_key(s, c->string))
            continue;
        if (s_sql_put(s, &len, nset++ ? ", " : "UPDATE SET ")
            || s_sql_ident(s, &len, "", c->string)
            || s_sql_ident(s, &len, " = EXCLUDED.", c->string))
            return -1;
    }
    return nset ? 0 : s_sql_put(s, &len, "NOTHING");
}

/* The delete by key into s->sql. 0 or -1 out of memory. */
static int s_delete_sql(pgsink_t *s)
{
    size_t len = 0;
    if (s_sql_put(s, &len, "DELETE FROM ") || s_sql_put(s, &len, s->qtable)
        || s_sql_put(s, &len, " AS t USING jsonb_populate_record(NULL::")
        || s_sql_put(s, &len, s->qtable) || s_sql_put(s, &len, ", $1::jsonb) AS r WHERE "))
        return -1;
    for (size_t i = 0; i < s->nkeys; i++)
        if (s_sql_ident(s, &len, i ? " AND t." : "t.", s->keys[i])
            || s_sql_ident(s, &len, " = r.", s->keys[i]))
            return -1;
    return 0;
}

/* The row a change event applies and whether it is a delete: 0, or 1 with
 * REASON. */
static int s_change_row(const cJSON *doc, const cJSON **row, const cJSON **skip,
                        bool *del, char *reason, size_t reasonlen)
{
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(doc, "op");
    const char *v = cJSON_IsString(op) ? op->valuestring : "";
    *skip = cJSON_GetObjectItemCaseSensitive(doc, "unchanged_toast");
    *del = strcmp(v, "d") == 0;
    if (*del) {
        *row = cJSON_GetObjectItemCaseSensitive(doc, "key");
        if (!cJSON_IsObject(*row))
            *row = cJSON_GetObjectItemCaseSensitive(doc, "before");
    }
    else if (strcmp(v, "c") == 0 || strcmp(v, "u") == 0 || strcmp(v, "r") == 0)
        *row = cJSON_GetObjectItemCaseSensitive(doc, "after");
    else {
        snprintf(reason, reasonlen, "\"op\" is not c, u, d or r");
        return 1;
    }
    if (!cJSON_IsObject(*row)) {
        snprintf(reason, reasonlen, "op %s without an object in \"%s\"", v,
                 *del ? "key" : "after");
        return 1;
    }
    return 0;
}

pgsink_result_t pgsink_apply(pgsink_t *s, const sl_msg_t *msg, char *reason,
                             size_t reasonlen)
{
    size_t len;
    const char *p = sl_msg_payload(msg, &len);
    cJSON *doc = len ? cJSON_ParseWithLength(p, len) : NULL;
    const cJSON *row = doc, *skip = NULL;
    bool del = false;
    char *param = NULL;
    pgsink_result_t rc = PGSINK_BAD;
    if (!cJSON_IsObject(doc)) {
        snprintf(reason, reasonlen, "the payload is not a JSON object");
        goto done;
    }
    if (s->o->mode == PGSINK_CHANGES
        && s_change_row(doc, &row, &skip, &del, reason, reasonlen) != 0)
        goto done;
    for (size_t i = 0; i < s->nkeys; i++) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(row, s->keys[i]);
        if (!k || cJSON_IsNull(k)) {
            snprintf(reason, reasonlen, "key column \"%s\" is %s", s->keys[i],
                     k ? "null" : "missing");
            goto done;
        }
    }
    int built = del ? s_delete_sql(s) : s_upsert_sql(s, row, skip, reason, reasonlen);
    if (built > 0)
        goto done;
    param = built == 0 ? cJSON_PrintUnformatted(row) : NULL;
    if (!param) {
        snprintf(reason, reasonlen, "out of memory");
        rc = PGSINK_DOWN;
        goto done;
    }
    const char *params[1] = { param };
    rc = pgsink_exec(s, s->sql, 1, params, NULL, reason, reasonlen);
done:
    free(param);
    cJSON_Delete(doc);
    return rc;
}
