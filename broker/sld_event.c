/*  sld_event - the broker's own JSON events stored as messages (see
 *  sld_event.h). Broker thread only.  */
#include "sld_event.h"
#include "slc.h"
#include "sluice.pb-c.h"

int sld_event_append(sld_txn_t *txn, uint32_t id, const char *topic, const char *json,
                     size_t len, uint64_t at_us, uint8_t **buf, size_t *cap)
{
    Sluice__Envelope e = SLUICE__ENVELOPE__INIT;
    e.topic = (char *) topic;
    e.content_type = "application/json";
    e.payload.data = (uint8_t *) json;
    e.payload.len = len;
    e.ingest_ts_us = at_us;
    e.source = "sluiced";
    size_t n = sluice__envelope__get_packed_size(&e);
    int rc = slc_grow((void **) buf, cap, n + 1, 1);
    if (rc)
        return rc;
    sluice__envelope__pack(&e, *buf);
    uint64_t offset;
    return sld_store_append(txn, id, at_us, *buf, n, &offset);
}
