/*  fake_store - an in-memory stand-in for sld_store, linked instead of the
 *  real one into unit tests of modules that use it (test_delivery_flow).
 *  It implements the sld_store_* / sld_txn_* / sld_subrec_* functions
 *  sld_delivery calls, with the contracts of sld_store.h and sld_subrec.h,
 *  plus the constructor and test hooks below. Single thread; no files, no LMDB, no checksums or seals.  */
#ifndef FAKE_STORE_H
#define FAKE_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "sld_store.h"
#include "sld_subrec.h"

/* An empty store. 0 and *out (caller owns, fake_store_destroy), SL_ENOMEM. */
int fake_store_new(sld_store_t **out);
void fake_store_destroy(sld_store_t **self_p);

/* Make the committed record at OFFSET of topic ID read as damaged
 * (sld_store_read: SL_ESTORE). 0 or SL_ENOTFOUND. */
int fake_store_damage(sld_store_t *self, uint32_t id, uint64_t offset);

/* Committed write transactions and aborted ones, since the store was made. */
size_t fake_store_commits(const sld_store_t *self);
size_t fake_store_aborts(const sld_store_t *self);

#endif
