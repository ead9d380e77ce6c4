/*  pgsink - what the files of `sluice-pgsink` share: the options, the
 *  target table as read from the catalogue (pgsink_apply.c), the offsets
 *  and rejects kept in the target database (pgsink_offsets.c) and the
 *  result of applying one message. The program (pgsink_main.c) owns one
 *  pgsink_t; everything runs on its main thread. Includes only sluice.h of
 *  the project, libpq and cJSON.  */
#ifndef PGSINK_H
#define PGSINK_H
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "http_common.h"
#include "sluice.h"

#define PGSINK_MAX_KEYS 32

typedef enum { PGSINK_CHANGES, PGSINK_JSON } pgsink_mode_t;

typedef struct {
    http_client_opts_t client;
    const char *name;           /* the durable subscription */
    const char *dsn;
    const char *table;          /* as typed: TABLE or SCHEMA.TABLE */
    const char *keys;           /* COL[,COL] as typed */
    const char *pattern;
    pgsink_mode_t mode;
    sl_start_t start;
    uint64_t batch, linger_ms, retry_ms;
    uint64_t max_deliver;
} pgsink_opts_t;

/* A topic's last applied offset (sluice_offsets), or a (topic, offset)
 * the sink could not apply (sluice_rejects). */
typedef struct {
    char topic[256];
    uint64_t offset;
} pgsink_mark_t;

typedef struct {
    const pgsink_opts_t *o;
    PGconn *pg;
    char *qtable;               /* SCHEMA.TABLE, each part quoted (owned) */
    char **cols;                /* the table's column names (owned) */
    size_t ncols;
    char *keys[PGSINK_MAX_KEYS];/* the key columns (owned) */
    size_t nkeys;
    char *qkeys;                /* "k1","k2" quoted, for ON CONFLICT (owned) */
    pgsink_mark_t *marks;       /* sluice_offsets of this subscription */
    size_t nmarks;
    pgsink_mark_t *rejects;     /* sluice_rejects of this subscription */
    size_t nrejects;
    char *sql;                  /* statement buffer (owned) */
    size_t sqlcap;
    uint64_t applied, skipped, rejected;
    bool pipeline;              /* pgsink_exec only sends (libpq pipeline mode) */
    size_t sent;                /* statements sent in this pipeline */
} pgsink_t;

/* What applying one message did. */
typedef enum {
    PGSINK_OK = 0,              /* applied (or nothing to do) */
    PGSINK_BAD = 1,             /* this message cannot apply: its reason is set */
    PGSINK_DOWN = 2,            /* PostgreSQL failed (connection, transient
                                   state): the batch is to be tried again */
} pgsink_result_t;

/* ------------------------------------------------------- pgsink_apply.c */

/* Read the target table's columns and check --key against them and its
 * unique indexes. 0, or -1 with ERR naming the table and what is missing. */
int pgsink_table_load(pgsink_t *s, char *err, size_t errlen);

/* Free what pgsink_table_load made. */
void pgsink_table_clear(pgsink_t *s);

/* Apply MSG inside the open transaction. PGSINK_BAD with REASON (why the
 * message is refused), or PGSINK_DOWN with REASON. */
pgsink_result_t pgsink_apply(pgsink_t *s, const sl_msg_t *msg, char *reason,
                             size_t reasonlen);

/* Run SQL with NPARAMS text PARAMS. In a pipeline (s->pipeline: *res
 * must be NULL) only send it: PGSINK_OK, or PGSINK_DOWN when it cannot be
 * sent; pgsink_pipeline_end tells how it went. Else PGSINK_OK when it returned
 * PGRES_COMMAND_OK or PGRES_TUPLES_OK (*res, when not NULL, gets the
 * result: caller clears), else PGSINK_BAD (an error of the statement) or
 * PGSINK_DOWN (the connection; SQLSTATE class 08, 25, 40, 53, 55, 57,
 * 58; the table gone or forbidden, 42P01, 42501), with REASON "SQLSTATE:
 * message". */
pgsink_result_t pgsink_exec(pgsink_t *s, const char *sql, int nparams,
                            const char *const *params, PGresult **res,
                            char *reason, size_t reasonlen);

/* Start a pipeline (libpq pipeline mode): pgsink_exec sends until
 * pgsink_pipeline_end. False when libpq cannot. */
bool pgsink_pipeline_begin(pgsink_t *s);

/* Sync the pipeline, read the result of every statement sent, leave
 * pipeline mode. PGSINK_OK when each succeeded; else the first failure's
 * result and REASON, as pgsink_exec gives them (the statements after it
 * were not run). */
pgsink_result_t pgsink_pipeline_end(pgsink_t *s, char *reason, size_t reasonlen);

/* ----------------------------------------------------- pgsink_offsets.c */

/* Create sluice_offsets and sluice_rejects when missing; take the
 * subscription's advisory lock (one sink per subscription per database);
 * load its marks and rejects. 0, or -1 with ERR. */
int pgsink_offsets_open(pgsink_t *s, char *err, size_t errlen);

/* The last applied offset of TOPIC, or false when none is stored. */
bool pgsink_offsets_get(const pgsink_t *s, const char *topic, uint64_t *offset);

/* Whether TOPIC@OFFSET is in sluice_rejects. */
bool pgsink_rejected(const pgsink_t *s, const char *topic, uint64_t offset);

/* Inside the batch's transaction: store OFFSET as TOPIC's last applied
 * one (never lowered). PGSINK_OK or what pgsink_exec says. */
pgsink_result_t pgsink_offsets_store(pgsink_t *s, const char *topic, uint64_t offset,
                                     char *reason, size_t reasonlen);

/* Inside the batch's transaction: record TOPIC@OFFSET as refused with
 * REASON at ATTEMPT (or, with REASON NULL, forget it: it applied). */
pgsink_result_t pgsink_rejects_store(pgsink_t *s, const char *topic, uint64_t offset,
                                     uint32_t attempt, const char *why,
                                     char *reason, size_t reasonlen);

/* After COMMIT: the in-memory copy follows what was stored. */
int pgsink_offsets_note(pgsink_t *s, const char *topic, uint64_t offset);
int pgsink_rejects_note(pgsink_t *s, const char *topic, uint64_t offset, bool add);

/* Free the marks and rejects. */
void pgsink_offsets_clear(pgsink_t *s);

#endif
