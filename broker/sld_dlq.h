/*  sld_dlq - dead letters removed by an operator (DlqRemove; docs/
 *  operations.md, "Dead letters and cursors"): a mark per (topic id,
 *  offset) in the store's `dlq` table, which retention deletes with the
 *  message, and the committed marks in memory (sorted offsets per topic)
 *  for listing and counting. Owns the marks and the ones this transaction
 *  adds, which join the committed ones only when it commits. Broker thread
 *  only. It does not read messages, check permissions or audit.  */
#ifndef SLD_DLQ_H
#define SLD_DLQ_H
#include <stdbool.h>
#include <stdint.h>
#include "sld_store.h"

typedef struct sld_dlq sld_dlq_t;

/* Prefix of every dead-letter topic: _dlq.SUBSCRIPTION, _dlq.schema.TOPIC,
 * _dlq.routes. */
#define SLD_DLQ_PREFIX "_dlq."

/* Is NAME a dead-letter topic (starts "_dlq." and has a word after it)? */
bool sld_dlq_topic(const char *name);

/* Load the marks of STORE (borrowed; must outlive it) in a read
 * transaction. 0 and *out (caller owns), SL_ENOMEM, SL_ESTORE (a mark that
 * does not read: logged). */
int sld_dlq_new(sld_store_t *store, sld_dlq_t **out);

/* NULL-safe; sets *self_p to NULL. */
void sld_dlq_destroy(sld_dlq_t **self_p);

/* Was dead letter OFFSET of topic ID removed (committed marks)? */
bool sld_dlq_removed(const sld_dlq_t *self, uint32_t id, uint64_t offset);

/* Committed marks of topic ID at or above FIRST (the topic's first stored
 * offset): the removed dead letters it still stores. */
uint64_t sld_dlq_count(const sld_dlq_t *self, uint32_t id, uint64_t first);

/* Mark OFFSET of topic ID removed in write TXN; memory follows at
 * sld_dlq_committed(true). *already: it was removed before (by a commit
 * or earlier in TXN); nothing is written then. 0, SL_ENOMEM, SL_EFULL,
 * SL_ESTORE. */
int sld_dlq_remove(sld_dlq_t *self, sld_txn_t *txn, uint32_t id, uint64_t offset,
                   bool *already);

/* The transaction of the last sld_dlq_remove calls committed (OK) or was
 * aborted: its marks join the committed ones, or are forgotten. Marks
 * below their topic's first stored offset (trimmed with the message) are
 * dropped from memory then. */
void sld_dlq_committed(sld_dlq_t *self, bool ok);

#endif
