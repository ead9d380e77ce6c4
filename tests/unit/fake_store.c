/*  fake_store - sld_store in memory, for unit tests (fake_store.h). The
 *  committed state is one snapshot: topics with their records as arrays
 *  (offset = index), subscription configs, cursors and acked offsets. A
 *  write transaction works on a private copy of it, which its commit makes
 *  the committed state and its abort discards: nothing of an aborted
 *  transaction is ever seen. A read transaction borrows the committed
 *  snapshot; replaced snapshots are kept until the store is destroyed, so
 *  what a read returned stays valid until its transaction ends (and after).
 *  Record and config bytes are immutable once written and shared by every
 *  snapshot (owned by the store's blob list). Single thread.  */
#include "fake_store.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "slc.h"
#include "sluice_codes.h"

typedef struct {
    uint64_t ingest_us;
    const void *data;           /* a blob */
    size_t len;
    bool damaged;
} f_rec_t;

typedef struct {
    sld_topic_info_t info;
    f_rec_t *recs;              /* recs[offset]; offsets from 0, none trimmed */
    size_t cap;
} f_topic_t;

typedef struct {
    char name[SLD_SUB_NAME_MAX + 1];
    const void *config;         /* a blob */
    size_t len;
} f_sub_t;

typedef struct {
    char name[SLD_SUB_NAME_MAX + 1];
    uint32_t topic_id;
    uint64_t value;             /* cursors: the floor; acked: the offset */
} f_key_t;

typedef struct {
    f_topic_t *topics;          /* topics[id - 1] */
    size_t ntopics, captopics;
    f_sub_t *subs;
    size_t nsubs, capsubs;
    f_key_t *cursors;
    size_t ncursors, capcursors;
    f_key_t *acked;
    size_t nacked, capacked;
} f_state_t;

struct sld_store {
    f_state_t *committed;
    f_state_t **old;            /* replaced snapshots, freed at destroy */
    size_t nold, capold;
    void **blobs;               /* record and config bytes */
    size_t nblobs, capblobs;
    bool writing;               /* a write transaction is open */
    size_t commits, aborts;
};

struct sld_txn {
    sld_store_t *store;
    f_state_t *state;           /* write: owned copy; read: borrowed committed */
    bool write;
};

static void s_state_free(f_state_t **state_p)
{
    f_state_t *s = *state_p;
    if (!s)
        return;
    for (size_t i = 0; i < s->ntopics; i++)
        free(s->topics[i].recs);
    free(s->topics);
    free(s->subs);
    free(s->cursors);
    free(s->acked);
    free(s);
    *state_p = NULL;
}

static void *s_dup(const void *p, size_t n)
{
    void *q = malloc(n ? n : 1);
    if (q && n)
        memcpy(q, p, n);
    return q;
}

static f_state_t *s_state_copy(const f_state_t *s)
{
    f_state_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = *s;
    c->topics = s_dup(s->topics, s->captopics * sizeof(f_topic_t));
    c->subs = s_dup(s->subs, s->capsubs * sizeof(f_sub_t));
    c->cursors = s_dup(s->cursors, s->capcursors * sizeof(f_key_t));
    c->acked = s_dup(s->acked, s->capacked * sizeof(f_key_t));
    bool ok = c->topics && c->subs && c->cursors && c->acked;
    size_t done = 0;
    while (ok && done < c->ntopics) {
        c->topics[done].recs = s_dup(s->topics[done].recs,
                                     c->topics[done].cap * sizeof(f_rec_t));
        ok = c->topics[done].recs != NULL;
        done += ok;
    }
    if (!ok) {
        for (size_t i = 0; i < done; i++)
            free(c->topics[i].recs);
        free(c->topics);
        free(c->subs);
        free(c->cursors);
        free(c->acked);
        free(c);
        return NULL;
    }
    return c;
}

/* Keep N bytes of P for the store's lifetime. NULL when out of memory. */
static const void *s_blob(sld_store_t *self, const void *p, size_t n)
{
    void *b = s_dup(p, n);
    if (!b || slc_grow((void **) &self->blobs, &self->capblobs, self->nblobs + 1,
                       sizeof(void *)) != 0) {
        free(b);
        return NULL;
    }
    self->blobs[self->nblobs++] = b;
    return b;
}

static f_topic_t *s_topic(f_state_t *s, uint32_t id)
{
    return id >= 1 && id <= s->ntopics ? &s->topics[id - 1] : NULL;
}

int fake_store_new(sld_store_t **out)
{
    sld_store_t *self = calloc(1, sizeof *self);
    if (!self)
        return SL_ENOMEM;
    self->committed = calloc(1, sizeof(f_state_t));
    if (!self->committed) {
        free(self);
        return SL_ENOMEM;
    }
    *out = self;
    return 0;
}

void fake_store_destroy(sld_store_t **self_p)
{
    sld_store_t *self = *self_p;
    if (!self)
        return;
    s_state_free(&self->committed);
    for (size_t i = 0; i < self->nold; i++)
        s_state_free(&self->old[i]);
    free(self->old);
    for (size_t i = 0; i < self->nblobs; i++)
        free(self->blobs[i]);
    free(self->blobs);
    free(self);
    *self_p = NULL;
}

int fake_store_damage(sld_store_t *self, uint32_t id, uint64_t offset)
{
    f_topic_t *t = s_topic(self->committed, id);
    if (!t || offset >= t->info.next_offset)
        return SL_ENOTFOUND;
    t->recs[offset].damaged = true;
    return 0;
}

size_t fake_store_commits(const sld_store_t *self)
{
    return self->commits;
}

size_t fake_store_aborts(const sld_store_t *self)
{
    return self->aborts;
}

/* ---------------------------------------------------------- transactions */

int sld_store_begin(sld_store_t *self, bool write, sld_txn_t **out)
{
    if (write && self->writing)
        return SL_EINVAL;       /* one write transaction at a time */
    sld_txn_t *txn = calloc(1, sizeof *txn);
    if (!txn)
        return SL_ENOMEM;
    txn->store = self;
    txn->write = write;
    txn->state = write ? s_state_copy(self->committed) : self->committed;
    if (!txn->state) {
        free(txn);
        return SL_ENOMEM;
    }
    self->writing |= write;
    *out = txn;
    return 0;
}

const char *sld_txn_why(const sld_txn_t *txn)
{
    (void) txn;
    return "damaged (fake store)";
}

bool sld_txn_verified(const sld_txn_t *txn)
{
    (void) txn;
    return true;
}

int sld_txn_commit(sld_txn_t **txn_p)
{
    sld_txn_t *txn = *txn_p;
    sld_store_t *self = txn->store;
    int rc = 0;
    if (txn->write) {
        rc = slc_grow((void **) &self->old, &self->capold, self->nold + 1,
                      sizeof(f_state_t *));
        if (rc == 0) {
            self->old[self->nold++] = self->committed;
            self->committed = txn->state;
            self->commits++;
        }
        else
            s_state_free(&txn->state);
        self->writing = false;
    }
    free(txn);
    *txn_p = NULL;
    return rc;
}

void sld_txn_abort(sld_txn_t **txn_p)
{
    sld_txn_t *txn = *txn_p;
    if (!txn)
        return;
    if (txn->write) {
        s_state_free(&txn->state);
        txn->store->writing = false;
        txn->store->aborts++;
    }
    free(txn);
    *txn_p = NULL;
}

/* ---------------------------------------------------------------- topics */

int sld_store_topic_ensure(sld_txn_t *txn, const char *name, uint32_t *id)
{
    if (!txn->write)
        return SL_EINVAL;
    f_state_t *s = txn->state;
    for (size_t i = 0; i < s->ntopics; i++)
        if (strcmp(s->topics[i].info.name, name) == 0) {
            *id = s->topics[i].info.id;
            return 0;
        }
    if (slc_topic_validate(name, true) != 0)
        return SL_EINVAL;
    int rc = slc_grow((void **) &s->topics, &s->captopics, s->ntopics + 1, sizeof(f_topic_t));
    if (rc)
        return rc;
    f_topic_t *t = &s->topics[s->ntopics++];
    memset(t, 0, sizeof *t);
    t->info.id = (uint32_t) s->ntopics;
    snprintf(t->info.name, sizeof t->info.name, "%s", name);
    *id = t->info.id;
    return 0;
}

const sld_topic_info_t *sld_store_topic_by_id(const sld_store_t *self, uint32_t id)
{
    f_topic_t *t = s_topic(self->committed, id);
    return t ? &t->info : NULL;
}

const sld_topic_info_t *sld_store_topic_by_name(const sld_store_t *self, const char *name)
{
    for (size_t i = 0; i < self->committed->ntopics; i++)
        if (strcmp(self->committed->topics[i].info.name, name) == 0)
            return &self->committed->topics[i].info;
    return NULL;
}

size_t sld_store_topic_count(const sld_store_t *self)
{
    return self->committed->ntopics;
}

const sld_topic_info_t *sld_store_topic_at(const sld_store_t *self, size_t index)
{
    return index < self->committed->ntopics ? &self->committed->topics[index].info : NULL;
}

/* -------------------------------------------------------------- messages */

int sld_store_append(sld_txn_t *txn, uint32_t id, uint64_t ingest_us,
                     const void *envelope, size_t len, uint64_t *offset)
{
    f_topic_t *t = txn->write ? s_topic(txn->state, id) : NULL;
    if (!t)
        return SL_ENOTFOUND;
    const void *b = s_blob(txn->store, envelope, len);
    if (!b || slc_grow((void **) &t->recs, &t->cap, t->info.next_offset + 1,
                       sizeof(f_rec_t)) != 0)
        return SL_ENOMEM;
    t->recs[t->info.next_offset] = (f_rec_t) { ingest_us, b, len, false };
    *offset = t->info.next_offset++;
    t->info.messages++;
    t->info.bytes += SLD_RECORD_HEADER + SLD_RECORD_SUM_OVERHEAD + len;
    return 0;
}

int sld_store_read(sld_txn_t *txn, uint32_t id, uint64_t offset,
                   const void **envelope, size_t *len, uint64_t *ingest_us)
{
    f_topic_t *t = s_topic(txn->state, id);
    if (!t || offset < t->info.first_offset || offset >= t->info.next_offset)
        return SL_ENOTFOUND;
    const f_rec_t *r = &t->recs[offset];
    if (r->damaged)
        return SL_ESTORE;
    *envelope = r->data;
    *len = r->len;
    if (ingest_us)
        *ingest_us = r->ingest_us;
    return 0;
}

uint64_t sld_store_topic_next_offset(sld_txn_t *txn, uint32_t id)
{
    f_topic_t *t = s_topic(txn->state, id);
    return t ? t->info.next_offset : SLD_OFFSET_NONE;
}

uint64_t sld_store_offset_at_time(sld_txn_t *txn, uint32_t id, uint64_t time_us)
{
    f_topic_t *t = s_topic(txn->state, id);
    if (!t)
        return SLD_OFFSET_NONE;
    uint64_t off = t->info.first_offset;
    while (off < t->info.next_offset && t->recs[off].ingest_us < time_us)
        off++;
    return off;
}

/* --------------------------------------------------------- subscriptions */

int sld_subrec_put(sld_txn_t *txn, const char *name, const void *config, size_t len)
{
    f_state_t *s = txn->state;
    if (!txn->write)
        return SL_EINVAL;
    const void *b = s_blob(txn->store, config, len);
    if (!b)
        return SL_ENOMEM;
    for (size_t i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i].name, name) == 0) {
            s->subs[i].config = b;
            s->subs[i].len = len;
            return 0;
        }
    int rc = slc_grow((void **) &s->subs, &s->capsubs, s->nsubs + 1, sizeof(f_sub_t));
    if (rc)
        return rc;
    f_sub_t *sub = &s->subs[s->nsubs++];
    snprintf(sub->name, sizeof sub->name, "%s", name);
    sub->config = b;
    sub->len = len;
    return 0;
}

/* Remove the entries of KEYS (N of them) named NAME. */
static void s_keys_drop(f_key_t *keys, size_t *n, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (strcmp(keys[i].name, name) != 0)
            keys[k++] = keys[i];
    *n = k;
}

int sld_subrec_delete(sld_txn_t *txn, const char *name)
{
    f_state_t *s = txn->state;
    for (size_t i = 0; i < s->nsubs; i++)
        if (strcmp(s->subs[i].name, name) == 0) {
            s->subs[i] = s->subs[--s->nsubs];
            s_keys_drop(s->cursors, &s->ncursors, name);
            s_keys_drop(s->acked, &s->nacked, name);
            return 0;
        }
    return SL_ENOTFOUND;
}

static int s_sub_cmp(const void *a, const void *b)
{
    return strcmp(((const f_sub_t *) a)->name, ((const f_sub_t *) b)->name);
}

int sld_subrec_foreach(sld_txn_t *txn, sld_subrec_fn *fn, void *arg)
{
    f_state_t *s = txn->state;
    f_sub_t *sorted = s_dup(s->subs, s->nsubs * sizeof(f_sub_t));
    if (!sorted)
        return SL_ENOMEM;
    qsort(sorted, s->nsubs, sizeof(f_sub_t), s_sub_cmp);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->nsubs; i++)
        rc = fn(sorted[i].name, sorted[i].config, sorted[i].len, arg);
    free(sorted);
    return rc;
}

static f_key_t *s_key_find(f_key_t *keys, size_t n, const char *name, uint32_t id,
                           const uint64_t *value)
{
    for (size_t i = 0; i < n; i++)
        if (keys[i].topic_id == id && (!value || keys[i].value == *value)
            && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int s_key_add(f_key_t **keys, size_t *n, size_t *cap, const char *name,
                     uint32_t id, uint64_t value)
{
    int rc = slc_grow((void **) keys, cap, *n + 1, sizeof(f_key_t));
    if (rc)
        return rc;
    f_key_t *k = &(*keys)[(*n)++];
    snprintf(k->name, sizeof k->name, "%s", name);
    k->topic_id = id;
    k->value = value;
    return 0;
}

int sld_subrec_cursor_get(sld_txn_t *txn, const char *name, uint32_t id,
                          uint64_t *floor)
{
    f_state_t *s = txn->state;
    f_key_t *k = s_key_find(s->cursors, s->ncursors, name, id, NULL);
    if (!k)
        return SL_ENOTFOUND;
    *floor = k->value;
    return 0;
}

int sld_subrec_cursor_put(sld_txn_t *txn, const char *name, uint32_t id,
                          uint64_t floor)
{
    f_state_t *s = txn->state;
    if (!txn->write)
        return SL_EINVAL;
    f_key_t *k = s_key_find(s->cursors, s->ncursors, name, id, NULL);
    if (k) {
        k->value = floor;
        return 0;
    }
    return s_key_add(&s->cursors, &s->ncursors, &s->capcursors, name, id, floor);
}

int sld_subrec_acked_put(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset)
{
    f_state_t *s = txn->state;
    if (!txn->write)
        return SL_EINVAL;
    if (s_key_find(s->acked, s->nacked, name, id, &offset))
        return 0;
    return s_key_add(&s->acked, &s->nacked, &s->capacked, name, id, offset);
}

int sld_subrec_acked_del(sld_txn_t *txn, const char *name, uint32_t id, uint64_t offset)
{
    f_state_t *s = txn->state;
    if (!txn->write)
        return SL_EINVAL;
    f_key_t *k = s_key_find(s->acked, s->nacked, name, id, &offset);
    if (k)
        *k = s->acked[--s->nacked];
    return 0;
}

int sld_subrec_acked_clear(sld_txn_t *txn, const char *name, uint32_t id)
{
    f_state_t *s = txn->state;
    if (!txn->write)
        return SL_EINVAL;
    for (size_t i = 0; i < s->nacked;)
        if (s->acked[i].topic_id == id && strcmp(s->acked[i].name, name) == 0)
            s->acked[i] = s->acked[--s->nacked];
        else
            i++;
    return 0;
}

static int s_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

int sld_subrec_acked_foreach(sld_txn_t *txn, const char *name, uint32_t id,
                             uint64_t from, sld_subrec_offset_fn *fn, void *arg)
{
    f_state_t *s = txn->state;
    uint64_t *v = malloc((s->nacked + 1) * sizeof(uint64_t));
    if (!v)
        return SL_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < s->nacked; i++)
        if (s->acked[i].topic_id == id && s->acked[i].value >= from
            && strcmp(s->acked[i].name, name) == 0)
            v[n++] = s->acked[i].value;
    qsort(v, n, sizeof(uint64_t), s_u64_cmp);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = fn(v[i], arg);
    free(v);
    return rc;
}
