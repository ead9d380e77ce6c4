/*  sld_subrec - a durable subscription's records: its configuration, its
 *  cursors (acked floor per topic) and the offsets acked above a floor;
 *  delivery's records, kept in the store's named tables (sld_table_*:
 *  "subs", "cursors", "acked"). Owns the key layouts (name '\0' topic id
 *  u32 [+ offset u64], big-endian); the configuration bytes are
 *  delivery's. Broker thread only. Holds no state of its own.  */
#ifndef SLD_SUBREC_H
#define SLD_SUBREC_H
#include <stddef.h>
#include <stdint.h>
#include "sld_store.h"

/* Store durable subscription NAME's configuration (opaque bytes the
 * delivery module encodes) inside write TXN. 0, SL_EINVAL (NAME empty or
 * longer than SLD_SUB_NAME_MAX), SL_EFULL, SL_ESTORE. */
int sld_subrec_put(sld_txn_t *txn, const char *name, const void *config, size_t len);

/* Delete subscription NAME with all its cursors and acked offsets.
 * 0 or SL_ENOTFOUND (its cursors and acked offsets are deleted all the
 * same); SL_EINVAL, SL_EFULL, SL_ESTORE. */
int sld_subrec_delete(sld_txn_t *txn, const char *name);

/* Call FN for each stored subscription in name order; FN returning non-zero
 * stops the walk and that value is returned. NAME and CONFIG are borrowed
 * for the call. SL_ESTORE for a damaged record (logged). */
typedef int (sld_subrec_fn)(const char *name, const void *config,
                            size_t len, void *arg);
int sld_subrec_foreach(sld_txn_t *txn, sld_subrec_fn *fn, void *arg);

/* Acked floor of subscription NAME on topic ID: every offset below it is
 * acked. 0 and *floor, or SL_ENOTFOUND when never set; SL_EINVAL,
 * SL_ESTORE (damaged: logged). put: 0, SL_EINVAL, SL_EFULL, SL_ESTORE. */
int sld_subrec_cursor_get(sld_txn_t *txn, const char *name, uint32_t id,
                          uint64_t *floor);
int sld_subrec_cursor_put(sld_txn_t *txn, const char *name, uint32_t id,
                          uint64_t floor);

/* Offsets acked above the floor. put/del: 0 or error (deleting an offset
 * that is not there is 0); test: 1 / 0 / error. foreach calls FN(offset) in
 * ascending order for offsets >= FROM; FN returning non-zero stops the walk
 * and that value is returned; FN must not change this subscription's acked
 * set (collect, then delete after the walk). */
int sld_subrec_acked_put(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset);
int sld_subrec_acked_del(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset);
int sld_subrec_acked_test(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset);
/* Delete every acked offset of NAME on topic ID (a seek: SubSeek). 0,
 * SL_EINVAL, SL_EFULL, SL_ESTORE. */
int sld_subrec_acked_clear(sld_txn_t *txn, const char *name, uint32_t id);
typedef int (sld_subrec_offset_fn)(uint64_t offset, void *arg);
int sld_subrec_acked_foreach(sld_txn_t *txn, const char *name, uint32_t id,
                             uint64_t from, sld_subrec_offset_fn *fn, void *arg);

#endif
