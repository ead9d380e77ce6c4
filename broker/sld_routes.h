/*  sld_routes - the broker's routing tables (docs/routing.md): every
 *  applied version in the store's `routes` table, the live one compiled
 *  (slt_route) with its own compiled copies of the mappings it names, the
 *  changes of the open transaction staged until it commits, and the
 *  per-route counters. Broker thread only. It does not evaluate messages
 *  or write them (sld_ingest does, with sld_routes_live), nor answer the
 *  wire (sld_admin_routes.c).  */
#ifndef SLD_ROUTES_H
#define SLD_ROUTES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "slc_codec.h"
#include "slt_route.h"
#include "sld_registry.h"
#include "sld_store.h"

typedef struct sld_routes sld_routes_t;

/* Load every stored version of STORE and compile the live one against
 * REGISTRY (both borrowed, must outlive the result). A live table that no
 * longer compiles is logged and routing stays off until one is applied.
 * 0 and *out (caller owns), SL_ESTORE (a record does not decode), SL_ENOMEM. */
int sld_routes_new(sld_store_t *store, sld_registry_t *registry, sld_routes_t **out);
void sld_routes_destroy(sld_routes_t **self_p);

/* ---------------------------------------------------------------- live */

/* The live compiled table, or NULL when none is applied (the ingest path
 * tests this one pointer). Borrowed until the next sld_routes_committed. */
const slt_route_table_t *sld_routes_live(const sld_routes_t *self);

/* The live version (0: none). */
uint32_t sld_routes_version(const sld_routes_t *self);

/* Bumped whenever the live table or the versions change (an applied or
 * rolled back version going live, the table compiled again after a
 * mapping change): a result computed from the live table (sld_route_prep)
 * is still the live table's while this and the table pointer stay. */
uint64_t sld_routes_gen(const sld_routes_t *self);

/* The compiled mapping of the live table named NAME (its `to` schema is
 * what a mapped output is validated against), or NULL. */
const slt_map_t *sld_routes_mapping(const sld_routes_t *self, const char *name);

/* The registry's version of MAP, one of the live table's compiled
 * mappings (a step's `map`): what a derived message's lineage says it was
 * made by. 0 when MAP is not the live table's. */
uint32_t sld_routes_mapping_version(const sld_routes_t *self, const slt_map_t *map);

/* Counters of the open transaction, kept when it commits. ROUTE is an index
 * of the live table. */
typedef enum {
    SLD_ROUTE_MATCHED, SLD_ROUTE_DELIVERED, SLD_ROUTE_DROPPED, SLD_ROUTE_DLQ,
    SLD_ROUTE_ERRORS, SLD_ROUTE_NCOUNTERS
} sld_route_counter_t;
void sld_routes_count(sld_routes_t *self, size_t route, sld_route_counter_t which, uint64_t n);
void sld_routes_count_unrouted(sld_routes_t *self);

/* ------------------------------------------------------------- changes */
/* Written in TXN and staged: the new version becomes live in
 * sld_routes_committed(self, true), so the transaction that writes it is
 * still routed by the version before. */

/* Apply table YAML (LEN bytes) as the next version, by IDENTITY (may be
 * NULL). EXPECT (0: any) must be the current version (the live one, or
 * one staged earlier in TXN). ROLLBACK_OF records that the table is that
 * version's. DRY_RUN: compile and diff, write nothing (TXN may be NULL).
 * *version: the new version (dry run, or a table equal to the current one:
 * the current version, nothing written); *changed; *diff (caller frees;
 * may be NULL when out of memory) against the current table. 0; SL_EINVAL
 * (the table does not compile: every error in ERR), SL_ETOOBIG, SL_ESTALE
 * (EXPECT is not the current version), SL_EFULL, SL_ESTORE, SL_ENOMEM. */
int sld_routes_apply(sld_routes_t *self, sld_txn_t *txn, const char *yaml, size_t len,
                     const char *identity, uint32_t expect, uint32_t rollback_of,
                     bool dry_run, uint32_t *version, bool *changed, char **diff,
                     char *err, size_t errlen);

/* Apply the table of stored version K as a new version (as above, with
 * ROLLBACK_OF K). SL_ENOTFOUND when K does not exist; else as apply. */
int sld_routes_rollback(sld_routes_t *self, sld_txn_t *txn, uint32_t k, const char *identity,
                        uint32_t expect, uint32_t *version, bool *changed, char **diff,
                        char *err, size_t errlen);

/* After the transaction: OK = committed (a staged version goes live, the
 * counters of the transaction are kept); else both are dropped. Also
 * compiles the live table again when the registry's mappings changed. */
void sld_routes_committed(sld_routes_t *self, bool ok);

/* Does a table staged in the open transaction, or the live one, name
 * mapping NAME? When one does, WHY (WHYLEN bytes) says which routes of
 * which version: "mapping M is used by route R of the live routing table
 * (version V)". */
bool sld_routes_uses_mapping(const sld_routes_t *self, const char *name, char *why,
                             size_t whylen);

/* --------------------------------------------------------------- reads */

/* Version V (0: the live one) with its YAML into *out (caller frees with
 * sld_routes_info_free). 0, SL_ENOTFOUND, SL_ESTORE, SL_ENOMEM. */
int sld_routes_get(sld_routes_t *self, uint32_t v, Sluice__RoutesInfo **out);
void sld_routes_info_free(Sluice__RoutesInfo **info_p);

/* Every version, oldest first, without YAML: *out holds *n pointers
 * (free with sld_routes_list_free); *live the live version. 0, SL_ENOMEM. */
int sld_routes_list(sld_routes_t *self, Sluice__RoutesInfo ***out, size_t *n,
                    uint32_t *live);
void sld_routes_list_free(Sluice__RoutesInfo ***out, size_t n);

/* The live version, when it was applied, unrouted and per route counters
 * into *out (caller frees with sld_routes_stats_free). 0 or SL_ENOMEM. */
int sld_routes_stats(const sld_routes_t *self, Sluice__RoutingStats **out);
void sld_routes_stats_free(Sluice__RoutingStats **out_p);

#endif
