/*  sld_trace - the routing trace index (docs/routing.md, "Trace"): one
 *  compact record per stored message that a live routing table evaluated
 *  and for which at least one route's topic pattern matched, in the
 *  store's `trace` table under (topic id, offset). Its record format,
 *  written by sld_route_ingest in the ingest transaction, read by the
 *  Trace handler (sld_admin_routes.c). Broker thread only. It does not
 *  evaluate routes, name routes (the record keeps indexes into its table
 *  version) or answer the wire.  */
#ifndef SLD_TRACE_H
#define SLD_TRACE_H
#include <stddef.h>
#include <stdint.h>
#include "sld_store.h"

/* What one route did with the message. */
typedef enum {
    SLD_TRACE_DELIVER = 1,      /* fired: derived messages stored (or none: a
                                   target refused, see its leg) */
    SLD_TRACE_DROP,             /* fired: drop (or a mapping's drop_if) */
    SLD_TRACE_DLQ,              /* fired: a dlq action's leg */
    SLD_TRACE_SKIPPED,          /* predicate false */
    SLD_TRACE_FAILED            /* where or map failed: a _dlq.routes leg */
} sld_trace_outcome_t;

/* Longest error text kept per failed route, bytes. */
#define SLD_TRACE_ERROR_MAX 200

typedef struct {
    uint32_t topic;             /* topic id */
    uint64_t offset;
} sld_trace_leg_t;

typedef struct {
    uint32_t route;             /* index in the table version */
    uint32_t version;           /* backfilled (sld_route_backfill): the table version
                                   ROUTE indexes (0: the record's) */
    sld_trace_outcome_t outcome;
    char error[SLD_TRACE_ERROR_MAX + 1];        /* FAILED: the error, else "" */
    sld_trace_leg_t *legs;      /* derived messages and legs, in order made */
    size_t nlegs, caplegs;
} sld_trace_step_t;

/* One message's record: built while it is routed, or read back. Zero it
 * before first use; sld_trace_reset empties it for the next message and
 * keeps its memory. */
typedef struct {
    uint32_t version;           /* the table version that routed it */
    sld_trace_step_t *steps;
    size_t nsteps, capsteps;
    uint8_t *buf;               /* encoding scratch */
    size_t capbuf;
} sld_trace_t;

void sld_trace_reset(sld_trace_t *t, uint32_t version);
void sld_trace_free(sld_trace_t *t);

/* Add a step for ROUTE with OUTCOME (ERROR: FAILED's text, shortened to
 * SLD_TRACE_ERROR_MAX bytes; may be NULL). 0 or SL_ENOMEM. */
int sld_trace_step(sld_trace_t *t, uint32_t route, sld_trace_outcome_t outcome,
                   const char *error);

/* Mark the last step as backfilled from table VERSION (its route index is
 * that version's). No step: nothing. */
void sld_trace_backfilled(sld_trace_t *t, uint32_t version);

/* Make the last step FAILED with ERROR (a mapped output refused after the
 * route fired). No step: nothing. */
void sld_trace_fail(sld_trace_t *t, const char *error);

/* Add a leg (topic id, offset) to the last step. 0 or SL_ENOMEM. */
int sld_trace_leg(sld_trace_t *t, uint32_t topic, uint64_t offset);

/* Write T as the record of (TOPIC id, OFFSET) in write TXN. 0, SL_ENOMEM
 * or the store's error. */
int sld_trace_put(sld_txn_t *txn, uint32_t topic, uint64_t offset, sld_trace_t *t);

/* Read the record of (TOPIC id, OFFSET) into *T (reset first). 0,
 * SL_ENOTFOUND (no route matched the message, or no table was live),
 * SL_ESTORE (damaged: fails its checksum or does not decode), SL_ENOMEM. */
int sld_trace_get(sld_txn_t *txn, uint32_t topic, uint64_t offset, sld_trace_t *t);

/* "fired"/"skipped"/"failed" and "deliver"/"drop"/"dlq"/"" for OUTCOME. */
const char *sld_trace_outcome_name(sld_trace_outcome_t outcome);
const char *sld_trace_action_name(sld_trace_outcome_t outcome);

#endif
