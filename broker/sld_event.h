/*  sld_event - the broker's own JSON events (the audit trail, alerts)
 *  stored as messages: one envelope per event, packed and appended in the
 *  caller's write transaction. Broker thread only; no state of its own
 *  (the caller owns the reused pack buffer).  */
#ifndef SLD_EVENT_H
#define SLD_EVENT_H
#include <stddef.h>
#include <stdint.h>
#include "sld_store.h"

/* Append JSON (LEN bytes, application/json, source "sluiced") at AT_US on
 * topic TOPIC (its id ID) in TXN, packing into *BUF (*CAP bytes, grown as
 * needed; caller frees). 0 or the store's / SL_ENOMEM code. */
int sld_event_append(sld_txn_t *txn, uint32_t id, const char *topic, const char *json,
                     size_t len, uint64_t at_us, uint8_t **buf, size_t *cap);

#endif
