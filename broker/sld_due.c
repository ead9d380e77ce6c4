/*  sld_due - redeliveries due, lowest (topic id, offset) first: a binary
 *  min-heap over the caller's sld_due_t, owning only its array. Runs on
 *  the thread that runs sld_delivery (see sld_due.h); knows nothing of
 *  flights or timers.  */
#include "sld_due.h"
#include <assert.h>
#include <stdlib.h>
#include "slc.h"

int sld_due_cmp(const sld_due_key_t *a, const sld_due_key_t *b)
{
    if (a->topic_id != b->topic_id)
        return a->topic_id < b->topic_id ? -1 : 1;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

int sld_due_add(sld_due_t *self, uint32_t topic_id, uint64_t offset)
{
    int rc = slc_grow((void **) &self->v, &self->cap, self->n + 1, sizeof(sld_due_key_t));
    if (rc)
        return rc;
    sld_due_key_t k = { topic_id, offset };
    size_t i = self->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (sld_due_cmp(&self->v[p], &k) <= 0)
            break;
        self->v[i] = self->v[p];
        i = p;
    }
    self->v[i] = k;
    return 0;
}

sld_due_key_t sld_due_first(sld_due_t *self)
{
    assert(self->n > 0);
    sld_due_key_t top = self->v[0];
    sld_due_key_t last = self->v[--self->n];
    size_t i = 0;
    while (self->n) {
        size_t c = 2 * i + 1;
        if (c >= self->n)
            break;
        if (c + 1 < self->n && sld_due_cmp(&self->v[c + 1], &self->v[c]) < 0)
            c++;
        if (sld_due_cmp(&last, &self->v[c]) <= 0)
            break;
        self->v[i] = self->v[c];
        i = c;
    }
    if (self->n)
        self->v[i] = last;
    return top;
}

size_t sld_due_size(const sld_due_t *self)
{
    return self->n;
}

void sld_due_clear(sld_due_t *self)
{
    free(self->v);
    self->v = NULL;
    self->n = self->cap = 0;
}
