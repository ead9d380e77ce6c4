/*  pgcdc_event - what a change becomes in sluice: the relation cache
 *  (relation id -> schema, table, columns, topic), the JSON change event
 *  of docs/adapters.md ("sluice-pgcdc", "Events"), the topic name
 *  pg.<db>.<schema>.<table> with its escaping, and the per-table JSON
 *  Schema of the event envelope. Pure apart from malloc; main thread.  */
#ifndef PGCDC_EVENT_H
#define PGCDC_EVENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pgcdc_decode.h"

typedef struct {
    char *name;
    uint32_t type_oid;
    bool key;                   /* part of the primary key / replica identity */
} pgcdc_col_t;

typedef struct {
    uint32_t relid;
    char *schema;
    char *table;
    char topic[256];            /* pg.<db>.<schema>.<table>, escaped; also the
                                   registry subject */
    char qualified[160];        /* schema.table for the pg-table header (cut) */
    int ncols;
    pgcdc_col_t *cols;
    uint32_t version;           /* registry version registered for it; 0: none */
} pgcdc_rel_t;

typedef struct pgcdc_rels pgcdc_rels_t;

/* A cache for database DB (copied). NULL on allocation failure. */
pgcdc_rels_t *pgcdc_rels_new(const char *db);
void pgcdc_rels_destroy(pgcdc_rels_t **self_p);

/* Add or replace relation RELID (NSP.REL with NATTS columns ATTS, flags bit
 * 1 = key). *out (borrowed, valid until the relation is put again or the
 * cache destroyed); *changed: new, or its columns differ by name or type
 * from before. 0, SL_EINVAL (the topic name would exceed 255 bytes, with
 * the reason in ERR), SL_ENOMEM. */
int pgcdc_rels_put(pgcdc_rels_t *self, uint32_t relid, const char *nsp, const char *rel,
                   int natts, const pgcdc_column_t *atts, pgcdc_rel_t **out,
                   bool *changed, char *err, size_t errlen);

/* The relation RELID, or NULL. Borrowed as above. */
pgcdc_rel_t *pgcdc_rels_lookup(pgcdc_rels_t *self, uint32_t relid);

/* The database name given to pgcdc_rels_new. */
const char *pgcdc_rels_db(const pgcdc_rels_t *self);

/* Append NAME escaped as one sluice topic word to BUF (LEN bytes, holding
 * a NUL-terminated prefix): [A-Za-z0-9_] stay, every other byte becomes
 * '-' and two lowercase hex digits ("order items" -> "order-20items").
 * 0, or -1 when it does not fit. */
int pgcdc_topic_word(char *buf, size_t len, const char *name);

/* Where an event comes from (the "source" member). */
typedef struct {
    char op;                    /* 'c', 'u', 'd', 'r' */
    uint64_t lsn;               /* the change's LSN */
    uint64_t commit_lsn;
    uint32_t xid;
    int64_t commit_time_us;     /* microseconds since the Unix epoch */
    uint64_t index;             /* position in the transaction (r: row number) */
    bool snapshot;
} pgcdc_source_t;

/* The event for REL: OLD (may be NULL; OLD_KIND 'K' key columns only or
 * 'O' the whole old row) and NEW (may be NULL), as JSON text (caller frees
 * with free()). NULL when a tuple does not have REL's column count or on
 * allocation failure. */
char *pgcdc_event_json(const pgcdc_rel_t *rel, const char *db, const pgcdc_source_t *src,
                       const pgcdc_tuple_t *old, char old_kind, const pgcdc_tuple_t *new_);

/* True when OLD ('K' or 'O') names another key than NEW: the update
 * moved the row, which is sent as a delete and a create. */
bool pgcdc_event_key_moved(const pgcdc_rel_t *rel, const pgcdc_tuple_t *old,
                           const pgcdc_tuple_t *new_);

/* The JSON Schema of REL's events (caller frees), NULL on ENOMEM. */
char *pgcdc_event_schema(const pgcdc_rel_t *rel);

/* LSN as PostgreSQL writes it: "16/B374D848". BUF of at least 18 bytes. */
const char *pgcdc_lsn_text(uint64_t lsn, char *buf, size_t len);

/* "16/B374D848" into *out: 0 or -1. */
int pgcdc_lsn_parse(const char *text, uint64_t *out);

#endif
