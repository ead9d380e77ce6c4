/*  sld_due - the messages of one subscription that are due for redelivery,
 *  handed out lowest (topic id, offset) first, so that within a topic a
 *  redelivery never runs ahead of an earlier one, whatever order their
 *  timers, nacks or a take-over made them due in. A binary min-heap; owns
 *  only its array. It may hold keys that are no longer due (acked while
 *  waiting): the caller checks each one it takes. Used by sld_delivery
 *  only, on the thread that runs it (the broker thread, or the helper
 *  during sld_delivery_pump_ahead); it knows nothing of flights, timers or
 *  the store.  */
#ifndef SLD_DUE_H
#define SLD_DUE_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t topic_id;
    uint64_t offset;
} sld_due_key_t;

typedef struct {
    sld_due_key_t *v;           /* heap ordered by (topic_id, offset) */
    size_t n, cap;
} sld_due_t;

/* Add KEY. 0, or SL_ENOMEM (SELF unchanged). */
int sld_due_add(sld_due_t *self, uint32_t topic_id, uint64_t offset);

/* The lowest key (SELF must not be empty), removed. Giving it back with
 * sld_due_add makes it the first again. */
sld_due_key_t sld_due_first(sld_due_t *self);

/* How many keys are held. */
size_t sld_due_size(const sld_due_t *self);

/* Free the array; SELF is empty and reusable. */
void sld_due_clear(sld_due_t *self);

/* -1, 0 or 1 as A orders before, with or after B. */
int sld_due_cmp(const sld_due_key_t *a, const sld_due_key_t *b);
#endif
