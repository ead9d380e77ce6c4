/*  sl_kmap - an open-addressing hash map from a message key (topic id,
 *  offset) to the latest delivery token, used by the subscription dedupe.
 *  Owns its slot array; the caller owns the map struct (embedded, zeroed =
 *  empty). One client thread. Not a general container: fixed key and value.
 *  Prefix sli_: internal to libsluice, not exported by the version script.  */
#ifndef SL_KMAP_H
#define SL_KMAP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t offset;
    uint64_t token;
    uint32_t topic_id;
    uint32_t used;              /* 0 = free slot */
} sli_kmap_slot_t;

typedef struct {
    sli_kmap_slot_t *slots;     /* cap entries, cap a power of two; NULL when empty */
    size_t cap;
    size_t n;
} sli_kmap_t;

/* The slot for (TOPIC_ID, OFFSET), borrowed until the next put/remove, or
 * NULL. */
sli_kmap_slot_t *sli_kmap_lookup(const sli_kmap_t *self, uint32_t topic_id,
                                 uint64_t offset);

/* Insert or update the key with TOKEN. 0 or SL_ENOMEM (map unchanged). */
int sli_kmap_put(sli_kmap_t *self, uint32_t topic_id, uint64_t offset,
                 uint64_t token);

/* Remove the key; true when it was present. */
bool sli_kmap_remove(sli_kmap_t *self, uint32_t topic_id, uint64_t offset);

/* Free the slots; the map is empty and usable again. */
void sli_kmap_clear(sli_kmap_t *self);

#endif
