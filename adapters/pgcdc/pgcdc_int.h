/*  pgcdc_int - the private state of one sluice-pgcdc run, shared by its
 *  files: pgcdc_slot (publication, slot, table checks, the state file),
 *  pgcdc_snapshot (the initial read), pgcdc_publish (numbering, confirms,
 *  the flush position, the registry) and pgcdc_stream (the replication
 *  protocol). One thread (main) owns all of it.  */
#ifndef PGCDC_INT_H
#define PGCDC_INT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "pgcdc_decode.h"
#include "pgcdc_event.h"
#include "sluice.h"

/* Codes for PostgreSQL's side (sluice_codes.h has none of its own): a
 * query or the connection failed (the reason is in ERR), or the server sent
 * what pgoutput never sends. The log names them "postgresql" and
 * "pgoutput-malformed" (the reason in ERR says which side failed). */
#define PGCDC_EPG SL_EUNAVAIL
#define PGCDC_EPROTO SL_EMALFORMED

#define PGCDC_RING 131072       /* confirm ring: more than max_unacked */

typedef struct {
    uint64_t end_lsn;           /* the commit's end: the flush position it allows */
    uint64_t last_seq;          /* its last event's sequence */
} pgcdc_commit_t;

typedef struct {
    /* options (strings borrowed from argv) */
    const char *dsn, *slot, *publication, *tables, *state_dir;
    bool all_tables;
    uint64_t heartbeat_ms, status_ms;
    sl_options_t client_opts;
    /* connections */
    PGconn *repl;               /* replication=database: slot and stream */
    PGconn *sql;                /* plain: catalog, snapshot, heartbeat */
    sl_client_t *client;        /* the stream's producer (identity: the slot) */
    pgcdc_rels_t *rels;
    pgcdc_msg_t *msg;           /* decoder output (large: on the heap) */
    char db[128];
    /* the state file: what is durably stored in sluice */
    char state_path[4096], producer_path[4096];
    bool snapshot_done;
    uint64_t flushed_lsn;       /* every transaction ending at or before it is stored */
    uint64_t flushed_seq;       /* ... and its events end at this sequence */
    uint64_t reported_lsn;      /* last flush position sent to PostgreSQL */
    /* numbering and confirms */
    uint64_t numbered;          /* sequence of the last event numbered */
    uint64_t broker_last;       /* the broker's last stored sequence at start */
    uint64_t acked_upto;        /* every sequence up to it is stored */
    uint8_t *ring;              /* confirmed flags of sequences above acked_upto */
    pgcdc_commit_t *commits;    /* finished transactions not yet flushed, in order */
    size_t ncommits, capcommits;
    int fatal;                  /* a nack that is final: stop, flush nothing more */
    char fatal_msg[512];
    uint64_t published, skipped;
    /* the transaction being received */
    bool in_txn;
    uint64_t txn_commit_lsn;
    int64_t txn_time_us;
    uint32_t txn_xid;
    uint64_t txn_index;
    uint64_t change_lsn;        /* the current change's LSN ('w' dataStart) */
    uint64_t received_lsn;      /* highest LSN received */
} pgcdc_t;

/* pgcdc_slot.c */
int pgcdc_connect(pgcdc_t *self, char *err, size_t errlen);
int pgcdc_state_load(pgcdc_t *self, bool *exists, char *err, size_t errlen);
int pgcdc_state_save(pgcdc_t *self, char *err, size_t errlen);
int pgcdc_publication_ensure(pgcdc_t *self, char *err, size_t errlen);
int pgcdc_tables_check(pgcdc_t *self, char *err, size_t errlen);
int pgcdc_slot_lookup(pgcdc_t *self, bool *exists, uint64_t *confirmed, char *err, size_t errlen);
int pgcdc_slot_create(pgcdc_t *self, char *snapshot, size_t snaplen, uint64_t *consistent,
                      char *err, size_t errlen);
/* Run SQL on CONN expecting STATUS; 0 or SL_EIO with the server's reason. */
int pgcdc_exec(PGconn *conn, const char *sql, ExecStatusType status, PGresult **out,
               char *err, size_t errlen);

/* pgcdc_snapshot.c: read every published table (under SNAPSHOT when not
 * NULL, the slot's exported snapshot) as "r" events, wait until all are
 * stored. */
int pgcdc_snapshot_run(pgcdc_t *self, const char *snapshot, uint64_t consistent,
                       char *err, size_t errlen);

/* pgcdc_publish.c */
int pgcdc_publish_open(pgcdc_t *self, char *err, size_t errlen);
int pgcdc_relation(pgcdc_t *self, sl_client_t *client, uint32_t relid, const char *nsp,
                   const char *rel, int natts, const pgcdc_column_t *atts,
                   pgcdc_rel_t **out, char *err, size_t errlen);
/* Publish EVENT (JSON) of REL with CLIENT; NUMBERED: through the stream's
 * numbering (skip what the broker already has). */
int pgcdc_publish_event(pgcdc_t *self, sl_client_t *client, const pgcdc_rel_t *rel,
                        char op, uint64_t lsn, char *event, bool numbered,
                        char *err, size_t errlen);
int pgcdc_publish_commit(pgcdc_t *self, uint64_t end_lsn, char *err, size_t errlen);
/* The flush position every stored event allows; saves the state file
 * first when it moved. 0 or an error. */
int pgcdc_publish_flushable(pgcdc_t *self, uint64_t idle_lsn, char *err, size_t errlen);
void pgcdc_publish_close(pgcdc_t *self);

/* pgcdc_stream.c */
int pgcdc_stream_run(pgcdc_t *self, uint64_t start_lsn, char *err, size_t errlen);

#endif
