/*  sl_kmap - (topic id, offset) -> token map with linear probing and
 *  backward-shift deletion (no tombstones, so lookups stay short however
 *  many keys come and go). Owns its slots. One client thread.  */
#include "sl_kmap.h"
#include <stdlib.h>
#include "slc.h"
#include "sluice_codes.h"

#define SLI_KMAP_MIN_CAP 64

sli_kmap_slot_t *sli_kmap_lookup(const sli_kmap_t *self, uint32_t topic_id,
                                 uint64_t offset)
{
    if (!self->slots)
        return NULL;
    size_t mask = self->cap - 1;
    for (size_t i = slc_offset_hash(topic_id, offset) & mask; ; i = (i + 1) & mask) {
        sli_kmap_slot_t *s = &self->slots[i];
        if (!s->used)
            return NULL;
        if (s->offset == offset && s->topic_id == topic_id)
            return s;
    }
}

static void s_place(sli_kmap_slot_t *slots, size_t cap,
                    const sli_kmap_slot_t *src)
{
    size_t mask = cap - 1;
    size_t i = slc_offset_hash(src->topic_id, src->offset) & mask;
    while (slots[i].used)
        i = (i + 1) & mask;
    slots[i] = *src;
}

static int s_grow(sli_kmap_t *self)
{
    size_t cap = self->cap ? self->cap * 2 : SLI_KMAP_MIN_CAP;
    sli_kmap_slot_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return SL_ENOMEM;
    for (size_t i = 0; i < self->cap; i++)
        if (self->slots[i].used)
            s_place(slots, cap, &self->slots[i]);
    free(self->slots);
    self->slots = slots;
    self->cap = cap;
    return 0;
}

int sli_kmap_put(sli_kmap_t *self, uint32_t topic_id, uint64_t offset,
                 uint64_t token)
{
    int rc = 0;
    sli_kmap_slot_t *s = sli_kmap_lookup(self, topic_id, offset);
    if (s) {
        s->token = token;
        return 0;
    }
    /* Keep the load at or under three quarters: probe runs stay short
     * with this hash, and the acked-key set stays near 3 MiB at 64 Ki keys. */
    if ((self->n + 1) * 4 > self->cap * 3) {
        rc = s_grow(self);
        if (rc)
            goto fail;
    }
    sli_kmap_slot_t slot = { .offset = offset, .token = token,
                             .topic_id = topic_id, .used = 1 };
    s_place(self->slots, self->cap, &slot);
    self->n++;
fail:
    return rc;
}

bool sli_kmap_remove(sli_kmap_t *self, uint32_t topic_id, uint64_t offset)
{
    sli_kmap_slot_t *s = sli_kmap_lookup(self, topic_id, offset);
    if (!s)
        return false;
    size_t mask = self->cap - 1;
    size_t i = (size_t) (s - self->slots);
    /* Backward shift: pull later entries of the probe run into the hole
     * unless their home slot lies cyclically after the hole. */
    for (size_t j = (i + 1) & mask; self->slots[j].used; j = (j + 1) & mask) {
        size_t k = slc_offset_hash(self->slots[j].topic_id, self->slots[j].offset) & mask;
        bool stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            self->slots[i] = self->slots[j];
            i = j;
        }
    }
    self->slots[i].used = 0;
    self->n--;
    return true;
}

void sli_kmap_clear(sli_kmap_t *self)
{
    free(self->slots);
    self->slots = NULL;
    self->cap = 0;
    self->n = 0;
}
