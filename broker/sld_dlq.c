/*  sld_dlq - removed dead letters (see sld_dlq.h). The marks are few next
 *  to the messages (an operator removes dead letters by hand or a console
 *  does it a page at a time), so memory holds them all: per topic a sorted
 *  array of offsets, found by binary search, counted from the topic's first
 *  stored offset so that a mark whose message retention trimmed (the store
 *  deletes the record with the message) never counts. Broker thread only.  */
#include "sld_dlq.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_KEY_LEN 12

/* The committed marks of one topic, ascending. */
typedef struct {
    uint32_t id;
    uint64_t *v;
    size_t n, cap;
} s_marks_t;

/* A mark written in the open transaction. */
typedef struct {
    uint32_t id;
    uint64_t offset;
} s_pending_t;

struct sld_dlq {
    sld_store_t *store;
    s_marks_t *topics;
    size_t ntopics, captopics;
    s_pending_t *pending;
    size_t npending, cappending;
};

bool sld_dlq_topic(const char *name)
{
    size_t n = strlen(SLD_DLQ_PREFIX);
    return name && strncmp(name, SLD_DLQ_PREFIX, n) == 0 && name[n] != 0;
}

static void s_key(uint8_t k[S_KEY_LEN], uint32_t id, uint64_t offset)
{
    for (int i = 0; i < 4; i++)
        k[i] = (uint8_t) (id >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        k[4 + i] = (uint8_t) (offset >> (56 - 8 * i));
}

static const s_marks_t *s_find(const sld_dlq_t *self, uint32_t id)
{
    for (size_t i = 0; i < self->ntopics; i++)
        if (self->topics[i].id == id)
            return &self->topics[i];
    return NULL;
}

/* Topic ID's marks, added when absent; NULL when out of memory. */
static s_marks_t *s_get(sld_dlq_t *self, uint32_t id)
{
    s_marks_t *m = (s_marks_t *) s_find(self, id);
    if (m)
        return m;
    if (slc_grow((void **) &self->topics, &self->captopics, self->ntopics + 1,
                 sizeof(s_marks_t)) != 0)
        return NULL;
    m = &self->topics[self->ntopics++];
    memset(m, 0, sizeof *m);
    m->id = id;
    return m;
}

/* The first index of M holding an offset >= OFFSET. */
static size_t s_lower(const s_marks_t *m, uint64_t offset)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid] < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Insert OFFSET into M, kept sorted and without duplicates. */
static int s_insert(s_marks_t *m, uint64_t offset)
{
    size_t i = s_lower(m, offset);
    if (i < m->n && m->v[i] == offset)
        return 0;
    int rc = slc_grow((void **) &m->v, &m->cap, m->n + 1, sizeof(uint64_t));
    if (rc)
        return rc;
    memmove(m->v + i + 1, m->v + i, (m->n - i) * sizeof(uint64_t));
    m->v[i] = offset;
    m->n++;
    return 0;
}

static int s_load(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    (void) val;
    (void) vlen;
    sld_dlq_t *self = arg;
    const uint8_t *k = key;
    if (klen != S_KEY_LEN) {
        fprintf(stderr, "sluiced: store: a removed dead-letter mark has a %zu-byte key "
                "(12 expected); `sluiced --check` looks at the store\n", klen);
        return SL_ESTORE;
    }
    uint32_t id = 0;
    uint64_t offset = 0;
    for (int i = 0; i < 4; i++)
        id = id << 8 | k[i];
    for (int i = 4; i < S_KEY_LEN; i++)
        offset = offset << 8 | k[i];
    s_marks_t *m = s_get(self, id);
    return m ? s_insert(m, offset) : SL_ENOMEM;
}

int sld_dlq_new(sld_store_t *store, sld_dlq_t **out)
{
    sld_txn_t *txn = NULL;
    sld_dlq_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->store = store;
    int rc = sld_store_begin(store, false, &txn);
    if (rc == 0)
        rc = sld_table_foreach(txn, SLD_TABLE_DLQ, NULL, 0, s_load, self);
    sld_txn_abort(&txn);
    if (rc) {
        sld_dlq_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

void sld_dlq_destroy(sld_dlq_t **self_p)
{
    sld_dlq_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->ntopics; i++)
        free(self->topics[i].v);
    free(self->topics);
    free(self->pending);
    free(self);
    *self_p = NULL;
}

bool sld_dlq_removed(const sld_dlq_t *self, uint32_t id, uint64_t offset)
{
    const s_marks_t *m = s_find(self, id);
    if (!m)
        return false;
    size_t i = s_lower(m, offset);
    return i < m->n && m->v[i] == offset;
}

uint64_t sld_dlq_count(const sld_dlq_t *self, uint32_t id, uint64_t first)
{
    const s_marks_t *m = s_find(self, id);
    return m ? (uint64_t) (m->n - s_lower(m, first)) : 0;
}

int sld_dlq_remove(sld_dlq_t *self, sld_txn_t *txn, uint32_t id, uint64_t offset,
                   bool *already)
{
    *already = sld_dlq_removed(self, id, offset);
    for (size_t i = 0; !*already && i < self->npending; i++)
        *already = self->pending[i].id == id && self->pending[i].offset == offset;
    if (*already)
        return 0;
    int rc = slc_grow((void **) &self->pending, &self->cappending, self->npending + 1,
                      sizeof(s_pending_t));
    if (rc)
        return rc;
    uint8_t k[S_KEY_LEN];
    s_key(k, id, offset);
    rc = sld_table_put(txn, SLD_TABLE_DLQ, k, sizeof k, "", 0);
    if (rc == 0)
        self->pending[self->npending++] = (s_pending_t) { id, offset };
    return rc;
}

void sld_dlq_committed(sld_dlq_t *self, bool ok)
{
    for (size_t i = 0; ok && i < self->npending; i++) {
        s_marks_t *m = s_get(self, self->pending[i].id);
        /* Out of memory: the mark is in the store, and the next start
         * loads it; until then the dead letter still lists. */
        if (!m || s_insert(m, self->pending[i].offset) != 0)
            fprintf(stderr, "sluiced: out of memory keeping a removed dead-letter mark\n");
    }
    self->npending = 0;
    if (!ok)
        return;
    for (size_t i = 0; i < self->ntopics; i++) {
        s_marks_t *m = &self->topics[i];
        const sld_topic_info_t *info = sld_store_topic_by_id(self->store, m->id);
        size_t below = info ? s_lower(m, info->first_offset) : 0;
        if (below) {
            memmove(m->v, m->v + below, (m->n - below) * sizeof(uint64_t));
            m->n -= below;
        }
    }
}
