/*  sld_topicstats - per-topic published bytes and last publish time; see
 *  sld_topicstats.h. One row per topic id, grown on demand; the pending
 *  bytes of the open attempt sit in the same row, with the ids touched in
 *  a small set so a commit visits only those. Broker thread only.  */
#include "sld_topicstats.h"
#include <stdlib.h>
#include <string.h>
#include "slc.h"
#include "sluice_codes.h"

typedef struct {
    uint64_t bytes;             /* committed payload bytes */
    uint64_t pending;           /* payload bytes of the open attempt */
    uint64_t last_ms;           /* last committed publish (monotonic), 0 = none */
} s_row_t;

struct sld_topicstats {
    s_row_t *rows;              /* by topic id */
    size_t nrows;
    uint32_t *touched;          /* ids with pending bytes */
    size_t ntouched, captouched;
};

int sld_topicstats_new(sld_topicstats_t **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : SL_ENOMEM;
}

void sld_topicstats_destroy(sld_topicstats_t **self_p)
{
    sld_topicstats_t *self = *self_p;
    if (!self)
        return;
    free(self->rows);
    free(self->touched);
    free(self);
    *self_p = NULL;
}

void sld_topicstats_attempt(sld_topicstats_t *self)
{
    for (size_t i = 0; i < self->ntouched; i++)
        self->rows[self->touched[i]].pending = 0;
    self->ntouched = 0;
}

int sld_topicstats_add(sld_topicstats_t *self, uint32_t id, uint64_t bytes)
{
    if (id >= self->nrows) {
        size_t n = self->nrows ? self->nrows : 64;
        while (n <= id)
            n *= 2;
        s_row_t *rows = realloc(self->rows, n * sizeof *rows);
        if (!rows)
            return SL_ENOMEM;
        memset(rows + self->nrows, 0, (n - self->nrows) * sizeof *rows);
        self->rows = rows;
        self->nrows = n;
    }
    int rc = slc_idset_add(&self->touched, &self->ntouched, &self->captouched, id);
    if (rc == 0)
        self->rows[id].pending += bytes;
    return rc;
}

void sld_topicstats_committed(sld_topicstats_t *self, uint64_t now_ms)
{
    for (size_t i = 0; i < self->ntouched; i++) {
        s_row_t *r = &self->rows[self->touched[i]];
        r->bytes += r->pending;
        r->pending = 0;
        r->last_ms = now_ms ? now_ms : 1;
    }
    self->ntouched = 0;
}

uint64_t sld_topicstats_bytes(const sld_topicstats_t *self, uint32_t id)
{
    return id < self->nrows ? self->rows[id].bytes : 0;
}

uint64_t sld_topicstats_last_ms(const sld_topicstats_t *self, uint32_t id)
{
    return id < self->nrows ? self->rows[id].last_ms : 0;
}
