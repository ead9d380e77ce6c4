/*  pgcdc_event - relation cache, change events as JSON (cJSON), topic
 *  names and the per-table event schema. Values follow the type of the
 *  column (PostgreSQL type OIDs): integers and floats as JSON numbers
 *  (int8 beyond 2^53 and NaN/Infinity as strings), bool as true/false,
 *  json/jsonb embedded, numeric and everything else as its text form.
 *  Pure apart from malloc; main thread.  */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "pgcdc_event.h"
#include "sluice.h"

enum {
    OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_OID = 26,
    OID_JSON = 114, OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_NUMERIC = 1700,
    OID_JSONB = 3802,
};

struct pgcdc_rels {
    char *db;
    pgcdc_rel_t **rels;
    size_t n, cap;
};

pgcdc_rels_t *pgcdc_rels_new(const char *db)
{
    pgcdc_rels_t *self = calloc(1, sizeof *self);
    if (self && !(self->db = strdup(db)))
        pgcdc_rels_destroy(&self);
    return self;
}

static void s_rel_free(pgcdc_rel_t *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->ncols; i++)
        free(r->cols[i].name);
    free(r->cols);
    free(r->schema);
    free(r->table);
    free(r);
}

void pgcdc_rels_destroy(pgcdc_rels_t **self_p)
{
    pgcdc_rels_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    for (size_t i = 0; i < self->n; i++)
        s_rel_free(self->rels[i]);
    free(self->rels);
    free(self->db);
    free(self);
    *self_p = NULL;
}

const char *pgcdc_rels_db(const pgcdc_rels_t *self)
{
    return self->db;
}

pgcdc_rel_t *pgcdc_rels_lookup(pgcdc_rels_t *self, uint32_t relid)
{
    for (size_t i = 0; i < self->n; i++)
        if (self->rels[i]->relid == relid)
            return self->rels[i];
    return NULL;
}

int pgcdc_topic_word(char *buf, size_t len, const char *name)
{
    size_t at = strlen(buf);
    for (const unsigned char *p = (const unsigned char *) name; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9') || *p == '_';
        size_t need = plain ? 1 : 3;
        if (at + need >= len)
            return -1;
        if (plain)
            buf[at++] = (char) *p;
        else
            at += (size_t) snprintf(buf + at, len - at, "-%02x", *p);
    }
    buf[at] = 0;
    return 0;
}

static bool s_same_cols(const pgcdc_rel_t *r, int natts, const pgcdc_column_t *atts)
{
    if (r->ncols != natts)
        return false;
    for (int i = 0; i < natts; i++)
        if (strcmp(r->cols[i].name, atts[i].name) != 0 || r->cols[i].type_oid != atts[i].type_oid
            || r->cols[i].key != ((atts[i].flags & 1) != 0))
            return false;
    return true;
}

int pgcdc_rels_put(pgcdc_rels_t *self, uint32_t relid, const char *nsp, const char *rel,
                   int natts, const pgcdc_column_t *atts, pgcdc_rel_t **out,
                   bool *changed, char *err, size_t errlen)
{
    pgcdc_rel_t *old = pgcdc_rels_lookup(self, relid);
    if (old && s_same_cols(old, natts, atts) && strcmp(old->schema, nsp) == 0
        && strcmp(old->table, rel) == 0) {
        *out = old;
        *changed = false;
        return 0;
    }
    pgcdc_rel_t *r = calloc(1, sizeof *r);
    if (!r || !(r->schema = strdup(nsp)) || !(r->table = strdup(rel))
        || (natts && !(r->cols = calloc((size_t) natts, sizeof *r->cols)))) {
        s_rel_free(r);
        return SL_ENOMEM;
    }
    r->relid = relid;
    for (int i = 0; i < natts; i++, r->ncols++) {
        if (!(r->cols[i].name = strdup(atts[i].name))) {
            s_rel_free(r);
            return SL_ENOMEM;
        }
        r->cols[i].type_oid = atts[i].type_oid;
        r->cols[i].key = (atts[i].flags & 1) != 0;
    }
    snprintf(r->topic, sizeof r->topic, "pg.");
    if (pgcdc_topic_word(r->topic, sizeof r->topic, self->db) < 0
        || pgcdc_topic_word(strcat(r->topic, "."), sizeof r->topic, nsp) < 0
        || pgcdc_topic_word(strcat(r->topic, "."), sizeof r->topic, rel) < 0) {
        snprintf(err, errlen, "table %s.%s of database %s: the topic name would exceed "
                 "255 bytes", nsp, rel, self->db);
        s_rel_free(r);
        return SL_EINVAL;
    }
    snprintf(r->qualified, sizeof r->qualified, "%.79s.%.79s", nsp, rel);
    if (old) {
        r->version = old->version;
        for (size_t i = 0; i < self->n; i++)
            if (self->rels[i] == old)
                self->rels[i] = r;
        s_rel_free(old);
    }
    else {
        if (self->n == self->cap) {
            size_t cap = self->cap ? self->cap * 2 : 16;
            pgcdc_rel_t **v = realloc(self->rels, cap * sizeof *v);
            if (!v) {
                s_rel_free(r);
                return SL_ENOMEM;
            }
            self->rels = v;
            self->cap = cap;
        }
        self->rels[self->n++] = r;
    }
    *out = r;
    *changed = true;
    return 0;
}

/* ------------------------------------------------------------- values */

static bool s_is_int_text(const char *s, size_t n)
{
    size_t i = (n && s[0] == '-') ? 1 : 0;
    if (i == n || (s[i] == '0' && n > i + 1))
        return false;                   /* empty, or a leading zero */
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* A JSON number as RFC 8259 writes it (PostgreSQL's float output is one,
 * except NaN and [-]Infinity, which go as strings). */
static bool s_is_json_number(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return false;
    if (*p == '.') {
        if (!(*++p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == 0;
}

static cJSON *s_value(uint32_t type, const pgcdc_value_t *v)
{
    if (v->kind == 'n')
        return cJSON_CreateNull();
    char small[64];
    char *text = v->len < sizeof small ? small : malloc((size_t) v->len + 1);
    if (!text)
        return NULL;
    memcpy(text, v->data, v->len);
    text[v->len] = 0;
    cJSON *j = NULL;
    switch (type) {
    case OID_INT2: case OID_INT4: case OID_OID: case OID_INT8:
        if (!s_is_int_text(text, v->len))
            j = cJSON_CreateString(text);
        else if (type == OID_INT8 && v->len >= 16) {
            long long x = strtoll(text, NULL, 10);
            bool exact = x <= (1LL << 53) && x >= -(1LL << 53);
            j = exact ? cJSON_CreateRaw(text) : cJSON_CreateString(text);
        }
        else
            j = cJSON_CreateRaw(text);
        break;
    case OID_FLOAT4: case OID_FLOAT8:
        j = s_is_json_number(text) ? cJSON_CreateRaw(text) : cJSON_CreateString(text);
        break;
    case OID_BOOL:
        j = cJSON_CreateBool(text[0] == 't');
        break;
    case OID_JSON: case OID_JSONB:
        /* PostgreSQL validated it; parsed again so that no text can
         * change the event's own structure. */
        j = cJSON_ParseWithOpts(text, NULL, 1);
        if (!j)
            j = cJSON_CreateString(text);
        break;
    default:
        j = cJSON_CreateString(text);
    }
    if (text != small)
        free(text);
    return j;
}

/* REL's columns of T as an object; KEY_ONLY: only the key columns. With
 * TOAST (may be NULL), unchanged TOAST columns are listed there and left
 * out of the object. */
static cJSON *s_row(const pgcdc_rel_t *rel, const pgcdc_tuple_t *t, bool key_only, cJSON *toast)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; o && i < rel->ncols; i++) {
        if (key_only && !rel->cols[i].key)
            continue;
        if (t->cols[i].kind == 'u') {
            if (toast)
                cJSON_AddItemToArray(toast, cJSON_CreateString(rel->cols[i].name));
            continue;
        }
        cJSON *v = s_value(rel->cols[i].type_oid, &t->cols[i]);
        if (!v) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(o, rel->cols[i].name, v);
    }
    return o;
}

const char *pgcdc_lsn_text(uint64_t lsn, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRIX32 "/%" PRIX32, (uint32_t) (lsn >> 32), (uint32_t) lsn);
    return buf;
}

int pgcdc_lsn_parse(const char *text, uint64_t *out)
{
    unsigned int hi, lo;
    int used = 0;
    if (sscanf(text, "%X/%X%n", &hi, &lo, &used) != 2 || text[used])
        return -1;
    *out = ((uint64_t) hi << 32) | lo;
    return 0;
}

static void s_time_text(int64_t us, char *buf, size_t len)
{
    time_t sec = (time_t) (us / 1000000);
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        sec--;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    char day[40];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%06" PRId64 "Z", day, frac);
}

bool pgcdc_event_key_moved(const pgcdc_rel_t *rel, const pgcdc_tuple_t *old,
                           const pgcdc_tuple_t *new_)
{
    for (int i = 0; i < rel->ncols; i++) {
        if (!rel->cols[i].key)
            continue;
        const pgcdc_value_t *a = &old->cols[i], *b = &new_->cols[i];
        if (b->kind == 'u')
            continue;
        if (a->kind != b->kind || a->len != b->len
            || (a->len && memcmp(a->data, b->data, a->len) != 0))
            return true;
    }
    return false;
}

char *pgcdc_event_json(const pgcdc_rel_t *rel, const char *db, const pgcdc_source_t *src,
                       const pgcdc_tuple_t *old, char old_kind, const pgcdc_tuple_t *new_)
{
    if ((old && old->ncols != rel->ncols) || (new_ && new_->ncols != rel->ncols))
        return NULL;
    char *text = NULL;
    char lsn[24], commit[24], when[48];
    char op[2] = { src->op, 0 };
    cJSON *e = cJSON_CreateObject();
    cJSON *s = cJSON_CreateObject();
    cJSON *toast = cJSON_CreateArray();
    if (!e || !s || !toast)
        goto done;
    cJSON_AddStringToObject(e, "op", op);
    cJSON_AddItemToObject(e, "source", s);
    cJSON_AddStringToObject(s, "db", db);
    cJSON_AddStringToObject(s, "schema", rel->schema);
    cJSON_AddStringToObject(s, "table", rel->table);
    cJSON_AddStringToObject(s, "lsn", pgcdc_lsn_text(src->lsn, lsn, sizeof lsn));
    cJSON_AddStringToObject(s, "commit_lsn", pgcdc_lsn_text(src->commit_lsn, commit, sizeof commit));
    cJSON_AddNumberToObject(s, "txid", src->xid);
    s_time_text(src->commit_time_us, when, sizeof when);
    cJSON_AddStringToObject(s, "commit_time", when);
    cJSON_AddNumberToObject(s, "index", (double) src->index);
    cJSON_AddBoolToObject(s, "snapshot", src->snapshot);
    /* The key: from the new row, or the old one for a delete. */
    const pgcdc_tuple_t *kt = (src->op == 'd' || !new_) ? old : new_;
    cJSON *key = kt ? s_row(rel, kt, true, NULL) : cJSON_CreateObject();
    cJSON *before = (old && old_kind == 'O') ? s_row(rel, old, false, NULL) : cJSON_CreateNull();
    cJSON *after = new_ ? s_row(rel, new_, false, toast) : cJSON_CreateNull();
    cJSON_AddItemToObject(e, "key", key);
    cJSON_AddItemToObject(e, "before", before);
    cJSON_AddItemToObject(e, "after", after);
    if (!key || !before || !after)
        goto done;
    if (cJSON_GetArraySize(toast) > 0) {
        cJSON_AddItemToObject(e, "unchanged_toast", toast);
        toast = NULL;
    }
    text = cJSON_PrintUnformatted(e);
done:
    cJSON_Delete(toast);
    cJSON_Delete(e);
    return text;
}

/* ------------------------------------------------------------- schema */

static cJSON *s_types(const char *a, const char *b)
{
    cJSON *t = cJSON_CreateArray();
    cJSON_AddItemToArray(t, cJSON_CreateString(a));
    if (b)
        cJSON_AddItemToArray(t, cJSON_CreateString(b));
    cJSON_AddItemToArray(t, cJSON_CreateString("null"));
    return t;
}

static cJSON *s_col_schema(uint32_t type)
{
    cJSON *c = cJSON_CreateObject();
    switch (type) {
    case OID_INT2: case OID_INT4: case OID_OID: case OID_INT8:
        cJSON_AddItemToObject(c, "type", s_types("integer", type == OID_INT8 ? "string" : NULL));
        break;
    case OID_FLOAT4: case OID_FLOAT8:
        cJSON_AddItemToObject(c, "type", s_types("number", "string"));
        break;
    case OID_BOOL:
        cJSON_AddItemToObject(c, "type", s_types("boolean", NULL));
        break;
    case OID_JSON: case OID_JSONB:
        break;                          /* any JSON value */
    default:
        cJSON_AddItemToObject(c, "type", s_types("string", NULL));
    }
    return c;
}

static cJSON *s_row_schema(const pgcdc_rel_t *rel, bool key_only, bool nullable)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "type", nullable ? s_types("object", NULL)
                                              : cJSON_CreateString("object"));
    cJSON *props = cJSON_AddObjectToObject(o, "properties");
    for (int i = 0; i < rel->ncols; i++)
        if (!key_only || rel->cols[i].key)
            cJSON_AddItemToObject(props, rel->cols[i].name, s_col_schema(rel->cols[i].type_oid));
    return o;
}

char *pgcdc_event_schema(const pgcdc_rel_t *rel)
{
    cJSON *root = cJSON_CreateObject();
    char title[400];
    snprintf(title, sizeof title, "change events of %s (sluice-pgcdc)", rel->qualified);
    cJSON_AddStringToObject(root, "title", title);
    cJSON_AddStringToObject(root, "type", "object");
    cJSON *req = cJSON_AddArrayToObject(root, "required");
    const char *must[] = { "op", "source", "key", "before", "after" };
    for (size_t i = 0; i < sizeof must / sizeof *must; i++)
        cJSON_AddItemToArray(req, cJSON_CreateString(must[i]));
    cJSON *props = cJSON_AddObjectToObject(root, "properties");
    cJSON *op = cJSON_AddObjectToObject(props, "op");
    cJSON *ops = cJSON_AddArrayToObject(op, "enum");
    for (const char *p = "cudr"; *p; p++) {
        char one[2] = { *p, 0 };
        cJSON_AddItemToArray(ops, cJSON_CreateString(one));
    }
    cJSON *src = cJSON_AddObjectToObject(props, "source");
    cJSON_AddStringToObject(src, "type", "object");
    cJSON *sreq = cJSON_AddArrayToObject(src, "required");
    cJSON *sp = cJSON_AddObjectToObject(src, "properties");
    const char *strs[] = { "db", "schema", "table", "lsn", "commit_lsn", "commit_time" };
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
        cJSON_AddItemToArray(sreq, cJSON_CreateString(strs[i]));
        cJSON *f = cJSON_AddObjectToObject(sp, strs[i]);
        cJSON_AddStringToObject(f, "type", "string");
        if (strcmp(strs[i], "commit_time") == 0)
            cJSON_AddStringToObject(f, "format", "date-time");
    }
    cJSON_AddStringToObject(cJSON_AddObjectToObject(sp, "txid"), "type", "integer");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(sp, "index"), "type", "integer");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(sp, "snapshot"), "type", "boolean");
    cJSON_AddItemToObject(props, "key", s_row_schema(rel, true, false));
    cJSON_AddItemToObject(props, "before", s_row_schema(rel, false, true));
    cJSON_AddItemToObject(props, "after", s_row_schema(rel, false, true));
    cJSON *toast = cJSON_AddObjectToObject(props, "unchanged_toast");
    cJSON_AddStringToObject(toast, "type", "array");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(toast, "items"), "type", "string");
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}
