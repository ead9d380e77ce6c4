/*  sld_route_prep - the publish path's pure work done ahead of the write
 *  transaction, on two threads (docs/architecture.md, "Threads"): for each
 *  publish envelope of the turn, the schema check of the original (its
 *  verdict, reason and parsed document) and, with a live routing table,
 *  the table's evaluation with each mapped output validated against its
 *  `to` schema and printed. Owns its worker threads (sld_helper) and the
 *  prepared results of one turn. Called by the broker thread only (the
 *  work itself runs on the workers and on the broker thread at once,
 *  inside sld_route_prep_run). It never touches the store, counters,
 *  sessions or sockets; the transaction uses a result only while the
 *  registry and the live table are still those it was made from.  */
#ifndef SLD_ROUTE_PREP_H
#define SLD_ROUTE_PREP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "slc_codec.h"
#include "slt_route.h"
#include "sld_registry.h"
#include "sld_routes.h"

typedef struct sld_route_prep sld_route_prep_t;

/* The reason buffers of the inline path, so that both cut a long reason
 * at the same byte: the schema check of an original (sld_ingest), the
 * `to` schema's verdict on a mapped output (sld_route_ingest). */
#define SLD_ROUTE_PREP_WHY_MAX 1536
#define SLD_ROUTE_PREP_OUT_WHY_MAX 1024

/* Fewer publish envelopes than this to prepare in a turn: all inline (a
 * thread hand-over costs more than it saves). */
#define SLD_ROUTE_PREP_MIN 8

/* Most worker threads (route_prep_threads). */
#define SLD_ROUTE_PREP_THREADS_MAX 16

/* One step of a prepared evaluation (index as in the result's steps). */
typedef struct {
    bool mapped;                /* a fired deliver step with a mapping output */
    int rc;                     /* MAPPED: 0, or the `to` schema's refusal (SL_EINVAL,
                                   SL_ENOTFOUND) */
    char *why;                  /* RC != 0: the reason, as sld_registry_validate_ref
                                   writes it (owned) */
    char *json;                 /* RC == 0: the output as slt_doc_print prints it (owned) */
    size_t len;
} sld_route_prep_out_t;

/* What was prepared for one envelope. Borrowed from the prep until
 * sld_route_prep_end. */
typedef struct {
    int check;                  /* the schema check: 0 (valid, or the topic is not
                                   bound) or SL_EINVAL */
    bool dlq;                   /* CHECK SL_EINVAL: the binding keeps invalid messages */
    char *why;                  /* CHECK SL_EINVAL: the reasons (owned) */
    cJSON *doc;                 /* the payload the check parsed (owned; NULL when the
                                   evaluation below is kept, or none was parsed) */
    bool routed;                /* RES and OUTS hold the live table's evaluation */
    slt_route_result_t res;     /* no FAILED step, no $meta read; outputs freed */
    sld_route_prep_out_t *outs; /* RES.nsteps of them */
    size_t capouts;
} sld_route_prepared_t;

/* A prep with WORKERS threads besides the broker thread (1 ..
 * SLD_ROUTE_PREP_THREADS_MAX). 0 and *out (caller owns), SL_EINVAL,
 * SL_ENOMEM or SL_ESYS. */
int sld_route_prep_new(unsigned workers, sld_route_prep_t **out);

/* Join the threads, free everything. NULL-safe; sets *self_p to NULL. */
void sld_route_prep_destroy(sld_route_prep_t **self_p);

/* Start a turn: the live table and the registry (both borrowed until
 * sld_route_prep_end) as they are now. Broker thread, before the turn's
 * transaction begins. 0 or SL_ENOMEM (then nothing is prepared). */
int sld_route_prep_begin(sld_route_prep_t *self, sld_registry_t *registry,
                         sld_routes_t *routes);

/* Add envelope E (borrowed until sld_route_prep_end) of a kept publish,
 * in the order the transaction will apply them. One larger than
 * MAX_BYTES, or on a topic neither bound nor possibly routed, is not
 * added. Broker thread. */
void sld_route_prep_add(sld_route_prep_t *self, const Sluice__Envelope *e, uint32_t max_bytes);

/* Prepare what was added, split between the workers and the broker thread,
 * and return when all are done. Fewer than SLD_ROUTE_PREP_MIN: nothing is
 * prepared. Broker thread. */
void sld_route_prep_run(sld_route_prep_t *self);

/* The result prepared for E, or NULL (none, or made from a registry that
 * changed since). *ROUTED: its evaluation may be used (the live table of
 * ROUTES is still the one it was made with, and it is complete). Broker
 * thread, in the transaction; any number of times per turn (map-full
 * retries apply the frames again). */
const sld_route_prepared_t *sld_route_prep_take(sld_route_prep_t *self,
                                                const sld_registry_t *registry,
                                                const sld_routes_t *routes,
                                                const Sluice__Envelope *e, bool *routed);

/* Did this turn's run prepare anything? */
bool sld_route_prep_active(const sld_route_prep_t *self);

/* End the turn: free what was prepared. Broker thread. */
void sld_route_prep_end(sld_route_prep_t *self);

#endif
